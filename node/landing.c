/*
 * A fetch's chunks into the store or the spool, and its prefix into the
 * whole-file hash. The chunks held are ZeroMQ's messages, closed once the
 * store has copied them.
 */
#include "landing.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "holders.h"
#include "log.h"
#include "swarm.h"

/* A chunk received this turn, for the store. */
struct wm_held {
    uint32_t idx;
    zmq_msg_t msg;
};

void
wm_landing_init(wm_landing *l, wm_download *dl, void *pub, wm_sha256 *hash,
                uint32_t prefix)
{
    memset(l, 0, sizeof(*l));
    l->dl = dl;
    l->pub = pub;
    l->hash = hash;
    l->prefix = prefix;
}

void
wm_landing_release(wm_landing *l)
{
    for (size_t i = 0; i < l->nheld; i++)
        zmq_msg_close(&l->held[i].msg);
    l->nheld = 0;
}

void
wm_landing_free(wm_landing *l)
{
    wm_landing_release(l);
    free(l->held);
    l->held = NULL;
    l->held_cap = 0;
    wm_sha256_destroy(&l->hash);
}

int
wm_landing_hold(wm_landing *l, wm_chunks *c, wm_transport *t, uint32_t idx)
{
    if (l->nheld == l->held_cap) {
        size_t cap = l->held_cap ? 2 * l->held_cap : WM_HOLDER_WINDOW;
        struct wm_held *grown = realloc(l->held, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        l->held = grown;
        l->held_cap = cap;
    }
    if (wm_transport_take_bulk(t, &l->held[l->nheld].msg) != 0)
        return -1;
    l->held[l->nheld++].idx = idx;
    c->state[idx] = WM_CS_HELD;
    return 0;
}

int
wm_landing_write(wm_landing *l, wm_chunks *c, uint32_t idx, const void *bulk,
                 size_t len)
{
    if (pwrite(l->dl->fd, bulk, len, (off_t)idx * WM_CHUNK_SIZE) !=
        (ssize_t)len)
        return -1;
    c->state[idx] = WM_CS_DONE;
    return 0;
}

int
wm_landing_put(const wm_landing *l, wm_store_batch *b)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < l->nheld; i++) {
        zmq_msg_t *msg = &l->held[i].msg;
        rc = wm_store_batch_put_chunk(b, l->dl->sha256, l->held[i].idx,
                                      zmq_msg_data(msg), zmq_msg_size(msg));
        if (rc == -EEXIST) /* stored meanwhile: these very bytes */
            rc = 0;
    }
    return rc;
}

void
wm_landing_stored(wm_landing *l, wm_chunks *c)
{
    for (size_t i = 0; i < l->nheld; i++) {
        c->state[l->held[i].idx] = WM_CS_DONE;
        l->stored += zmq_msg_size(&l->held[i].msg);
    }
}

int
wm_landing_to_spool(wm_landing *l, wm_chunks *c, const char *why)
{
    wm_warn("cluster: %s: the store cannot take chunks now (%s); going on "
            "in a spool file",
            l->dl->filename, why);
    if (wm_download_leave_store(l->dl) != 0)
        return -1;
    /* What followed the prefix left the store with it: asked again. */
    for (size_t i = l->prefix; i < c->room; i++)
        if (c->state[i] == WM_CS_DONE)
            c->state[i] = WM_CS_TO_ASK;
    for (size_t i = 0; i < l->nheld; i++) {
        uint32_t idx = l->held[i].idx;
        zmq_msg_t *msg = &l->held[i].msg;
        if (pwrite(l->dl->fd, zmq_msg_data(msg), zmq_msg_size(msg),
                   (off_t)idx * WM_CHUNK_SIZE) != (ssize_t)zmq_msg_size(msg))
            return -1;
        c->state[idx] = WM_CS_DONE;
    }
    return 0;
}

/* The bytes of chunk IDX in hand: received this turn, or CHUNK when IDX
 * is AT (the one just received); NULL when they must be read back. */
static const void *
in_hand(const wm_landing *l, uint32_t idx, uint32_t at, const void *chunk)
{
    if (idx == at && chunk != NULL)
        return chunk;
    for (size_t i = 0; i < l->nheld; i++)
        if (l->held[i].idx == idx)
            return zmq_msg_data((zmq_msg_t *)&l->held[i].msg);
    return NULL;
}

int
wm_landing_advance(wm_landing *l, const wm_chunks *c, uint32_t idx,
                   const void *chunk)
{
    static uint8_t buf[WM_CHUNK_SIZE]; /* loop thread only */
    int moved = 0;

    while (l->prefix < c->room && c->state[l->prefix] == WM_CS_DONE &&
           (c->last == UINT32_MAX || l->prefix <= c->last)) {
        uint64_t len = wm_chunks_len(c, l->prefix);
        const void *data = in_hand(l, l->prefix, idx, chunk);
        if (data == NULL) {
            if (wm_download_pread(l->dl, buf, len,
                                  (uint64_t)l->prefix * WM_CHUNK_SIZE) !=
                (ssize_t)len)
                return -1;
            data = buf;
        }
        wm_sha256_update(l->hash, data, len);
        l->prefix++;
        moved = 1;
    }
    if (moved) {
        atomic_store(&l->dl->received, wm_chunks_bytes(c, l->prefix));
        wm_progress_publish(l->pub, l->dl->sha256);
    }
    return c->last != UINT32_MAX && l->prefix > c->last;
}
