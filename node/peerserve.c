/*
 * Answers to FETCH and MAP. Stored wheels go out as frames pointing into
 * the LMDB map (ZeroMQ copies them into its queue); a wheel still arriving
 * is read from its download, whole chunks only until it is verified.
 *
 * Uploads never take the agent's whole link: a token bucket holds them to
 * cluster.max_upload_rate, and at most MAX_PEERS peers are served at a
 * time; past either a chunk request is answered BUSY, and the fetcher
 * asks another holder.
 */
#include "peerserve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MAX_PEERS     8    /* served at once */
#define PEER_IDLE_MS  2000 /* a peer not heard for this long is done */
#define BURST_S       0.25 /* the bucket holds a quarter second's rate */

struct wm_peerserve {
    wm_node *node;
    wm_transport *t;
    wm_fetch *fetch;
    wm_msg *out;
    int fault_bad_chunks;
    /* the upload limit */
    double tokens; /* bytes that may go out now; may dip below 0 */
    int64_t refilled_ms;
    struct {
        const wm_member *m;
        int64_t last_ms;
    } peers[MAX_PEERS];
    uint64_t busy_replies, uploaded;
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Is M one of the peers being served, or is there room for it? */
static int
peer_admitted(wm_peerserve *ps, const wm_member *m, int64_t now)
{
    int free_slot = -1;

    for (int i = 0; i < MAX_PEERS; i++) {
        if (ps->peers[i].m == m) {
            ps->peers[i].last_ms = now;
            return 1;
        }
        if (free_slot < 0 &&
            (ps->peers[i].m == NULL ||
             now - ps->peers[i].last_ms > PEER_IDLE_MS))
            free_slot = i;
    }
    if (free_slot < 0)
        return 0;
    ps->peers[free_slot].m = m;
    ps->peers[free_slot].last_ms = now;
    return 1;
}

/* May a chunk go out to M now? The bucket may go into debt by one chunk,
 * so a rate below a chunk a second still moves. */
static int
upload_admitted(wm_peerserve *ps, const wm_member *m)
{
    double rate = (double)ps->node->cfg->max_upload_rate;
    int64_t now = now_ms();

    if (!peer_admitted(ps, m, now))
        return 0;
    if (rate <= 0)
        return 1;
    ps->tokens += rate * (double)(now - ps->refilled_ms) / 1000.0;
    ps->refilled_ms = now;
    if (ps->tokens > rate * BURST_S)
        ps->tokens = rate * BURST_S;
    return ps->tokens > 0;
}

static void
reply_chunk(wm_peerserve *ps, const wm_from *from, const uint8_t *sha,
            uint32_t idx, int status, const void *data, size_t len)
{
    static uint8_t bad[WM_CHUNK_SIZE]; /* loop thread only */
    wm_msg *m = ps->out;

    memset(m, 0, sizeof(*m) - sizeof(m->filename));
    m->type = WM_MSG_CHUNK;
    memcpy(m->sha256, sha, 32);
    m->idx = idx;
    m->status = (uint8_t)status;
    if (ps->fault_bad_chunks && status == WM_CHUNK_OK && len > 0) {
        memcpy(bad, data, len);
        bad[len / 2] ^= 0xff;
        data = bad;
    }
    /* CHUNK always has its bulk frame: empty unless the status is OK. */
    if (status != WM_CHUNK_OK || data == NULL)
        data = "", len = 0;
    ps->tokens -= (double)len;
    ps->uploaded += len;
    wm_transport_reply(ps->t, from, m, data, len);
}

/* Chunk IDX of a download still arriving: whole chunks only. */
static void
serve_partial(wm_peerserve *ps, const wm_from *from, wm_download *dl,
              uint32_t idx)
{
    static uint8_t buf[WM_CHUNK_SIZE]; /* loop thread only */
    int state = atomic_load(&dl->state);
    uint64_t got = atomic_load(&dl->received),
             off = (uint64_t)idx * WM_CHUNK_SIZE, len;

    if (state == WM_DL_FAILED) {
        reply_chunk(ps, from, dl->sha256, idx, WM_CHUNK_MISSING, NULL, 0);
        return;
    }
    if (state == WM_DL_VERIFIED) {
        len = off >= got
                  ? 0
                  : (got - off < WM_CHUNK_SIZE ? got - off : WM_CHUNK_SIZE);
    } else if (off + WM_CHUNK_SIZE <= got) {
        len = WM_CHUNK_SIZE;
    } else {
        reply_chunk(ps, from, dl->sha256, idx, WM_CHUNK_LATER, NULL, 0);
        return;
    }
    if (len > 0 && wm_download_pread(dl, buf, len, off) != (ssize_t)len) {
        reply_chunk(ps, from, dl->sha256, idx, WM_CHUNK_MISSING, NULL, 0);
        return;
    }
    reply_chunk(ps, from, dl->sha256, idx, WM_CHUNK_OK, buf, len);
}

/* Serves chunk IDX of SHA from the store. Returns 0, or -ENOENT when the
 * store does not hold SHA. */
static int
serve_stored(wm_peerserve *ps, const wm_from *from, const uint8_t *sha,
             uint32_t idx)
{
    wm_store_view *v;
    wm_file_info info;
    const void *data;
    size_t len;
    int rc = -ENOENT;

    if (wm_store_view_open(ps->node->store, &v) != 0)
        return -ENOENT;
    if (wm_store_get(v, sha, &info) == 0) {
        if (idx == 0) /* a peer's fetch is a use too */
            wm_usage_note(ps->node->usage, sha);
        if (wm_store_chunk(v, sha, idx, &data, &len) == 0)
            reply_chunk(ps, from, sha, idx, WM_CHUNK_OK, data, len);
        else /* past the end: the end marker for unknown sizes */
            reply_chunk(ps, from, sha, idx, WM_CHUNK_OK, NULL, 0);
        rc = 0;
    }
    wm_store_view_close(&v);
    return rc;
}

void
wm_peerserve_on_fetch(wm_peerserve *ps, const wm_from *from, const wm_msg *m)
{
    wm_download *dl;
    int rc;

    if (!upload_admitted(ps, from->m)) {
        ps->busy_replies++;
        reply_chunk(ps, from, m->sha256, m->idx, WM_CHUNK_BUSY, NULL, 0);
        return;
    }
    if (serve_stored(ps, from, m->sha256, m->idx) == 0)
        return;
    dl = wm_fetch_running(ps->fetch, m->sha256);
    if (dl != NULL) {
        serve_partial(ps, from, dl, m->idx);
        return;
    }
    if ((m->flags & WM_FETCH_UPSTREAM) && m->filename[0] != '\0') {
        rc = wm_fetch_for_peer(ps->fetch, m->sha256, m->filename);
        dl = rc == 0 ? wm_fetch_running(ps->fetch, m->sha256) : NULL;
        if (dl != NULL)
            serve_partial(ps, from, dl, m->idx);
        else
            reply_chunk(ps, from, m->sha256, m->idx,
                        rc == -EAGAIN ? WM_CHUNK_LATER : WM_CHUNK_MISSING,
                        NULL, 0);
        return;
    }
    reply_chunk(ps, from, m->sha256, m->idx, WM_CHUNK_MISSING, NULL, 0);
}

void
wm_peerserve_on_map(wm_peerserve *ps, const wm_from *from, const wm_msg *m)
{
    wm_store_view *v;
    const void *data = NULL;
    size_t len = 0;
    int ok;

    memset(ps->out, 0, sizeof(*ps->out) - sizeof(ps->out->filename));
    ps->out->type = WM_MSG_MAPDATA;
    memcpy(ps->out->sha256, m->sha256, 32);
    if (wm_store_view_open(ps->node->store, &v) != 0)
        return;
    ok = wm_store_chunkmap(v, m->sha256, &data, &len) == 0;
    ps->out->status = ok ? WM_CHUNK_OK : WM_CHUNK_MISSING;
    wm_transport_reply(ps->t, from, ps->out, ok ? data : "", ok ? len : 0);
    wm_store_view_close(&v);
}

void
wm_peerserve_stats(const wm_peerserve *ps, uint64_t *uploaded,
                   uint64_t *busy_replies)
{
    *uploaded = ps->uploaded;
    *busy_replies = ps->busy_replies;
}

void
wm_peerserve_set_fault(wm_peerserve *ps, int bad_chunks)
{
    ps->fault_bad_chunks = bad_chunks;
}

wm_peerserve *
wm_peerserve_new(wm_node *node, wm_transport *t, wm_fetch *fetch)
{
    wm_peerserve *ps = calloc(1, sizeof(*ps));

    if (ps == NULL || (ps->out = calloc(1, sizeof(wm_msg))) == NULL) {
        free(ps);
        return NULL;
    }
    ps->node = node;
    ps->t = t;
    ps->fetch = fetch;
    ps->refilled_ms = now_ms();
    ps->tokens = (double)node->cfg->max_upload_rate * BURST_S;
    return ps;
}

void
wm_peerserve_destroy(wm_peerserve **psp)
{
    if (psp == NULL || *psp == NULL)
        return;
    free((*psp)->out);
    free(*psp);
    *psp = NULL;
}
