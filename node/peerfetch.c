/*
 * Chunked fetches from peers. Per fetch: its chunk table (chunks.h: a
 * state per chunk, asked of whom and when, and where the wheel ends), the
 * holders with their windows (holders.h), the chunk map once a holder sent
 * one that hashes to the signed root, and where the checked chunks land
 * (landing.h: the store at the end of the loop's turn, or the spool; the
 * in-order prefix, hashed into the whole-file hash). This file asks,
 * checks each answer, and says when a fetch ends.
 *
 * A swarm: a holder fetch of a wheel of SWARM_MIN_CHUNKS or more tells
 * every usable member that it is fetching it (HAVE with ASK); members
 * fetching it too answer with the chunks they have, and from then on
 * both send each other what they have, at most every HAVE_MS. Which
 * chunk to ask of which holder is swarm.h's choice. A partial holder's
 * chunks are checked against the chunk map like any. Windows follow each
 * holder's delay: a holder slowed by contention gets fewer chunks in
 * flight rather than timeouts.
 */
#include "peerfetch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunks.h"
#include "clock.h"
#include "hash.h"
#include "holders.h"
#include "identity.h"
#include "landing.h"
#include "log.h"
#include "store.h"
#include "swarm.h"

#define MAX_INFLIGHT     24   /* chunks in flight per fetch */
#define SWARM_MIN_CHUNKS 8
#define HAVE_MS          250
#define SWARM_WAIT_MS    50   /* for fetchers that started with this one */
#define SWARM_SETTLE_MS  5000 /* stripes scanned from a random point */
#define STALL_MS         2000 /* then others' stripes are asked of whole */
#define STALLED_MS       5000 /* ... for this long */
#define LATER_RETRY_MS   100
#define MAP_TIMEOUT_MS   3000

struct wm_pfetch {
    wm_pfetch *next;
    wm_peerfetch *pf;
    wm_download *dl;
    wm_pf_fn done;
    void *arg;
    wm_chunks chunks;   /* each chunk's state, and where the wheel ends */
    wm_landing landing; /* where checked chunks go; the prefix */
    uint8_t root[32];
    uint8_t (*map)[32]; /* chunk hashes, NULL until MAPDATA (or designee) */
    int designee;
    wm_member *map_from;
    int64_t map_sent;
    wm_holders hs;
    size_t turn; /* the holder served first next time */
    uint32_t from_whole, from_partial, reasked, late; /* for the log */
    int64_t started;
    int64_t stalled_until; /* whole holders asked for any stripe till then */
    int64_t progress_at; /* the last chunk that came in */
    /* the swarm (a holder fetch of SWARM_MIN_CHUNKS or more) */
    int swarm;
    uint32_t start;  /* where whole holders' picks begin */
    uint8_t *rarity; /* per chunk: partial holders that have it */
    int have_news;   /* chunks done since partial holders were told */
    int64_t have_at;
};

struct wm_peerfetch {
    wm_transport *t;
    wm_members *members;
    void *pub;
    wm_store *store;
    int (*room)(void *arg, uint64_t bytes); /* may chunks go in first? */
    void *room_arg;
    int64_t later_budget_ms;
    wm_pfetch *list;
    wm_msg *out;
    uint64_t ndone, nfailed;
};

static wm_pfetch *
find(const wm_peerfetch *pf, const uint8_t *sha)
{
    for (wm_pfetch *f = pf->list; f != NULL; f = f->next)
        if (memcmp(f->dl->sha256, sha, 32) == 0)
            return f;
    return NULL;
}

static void
fetch_free(wm_pfetch *f)
{
    wm_landing_free(&f->landing);
    wm_holders_free(&f->hs);
    free(f->rarity);
    wm_download_release(f->dl);
    free(f->map);
    wm_chunks_free(&f->chunks);
    free(f);
}

static void
unlink_fetch(wm_peerfetch *pf, wm_pfetch *f)
{
    for (wm_pfetch **p = &pf->list; *p != NULL; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            return;
        }
    }
}

/* Ends F: its completion runs, then F is freed. */
static void
finish(wm_pfetch *f, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
finish(wm_pfetch *f, int rc, const char *fmt, ...)
{
    wm_peerfetch *pf = f->pf;
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    unlink_fetch(pf, f);
    if (rc == 0)
        pf->ndone++;
    else
        pf->nfailed++;
    f->done(f->arg, f, rc, why);
    fetch_free(f);
}

/* HAVE for F into the fetcher's message: the chunks it has, checked and
 * kept. */
static void
build_have(wm_pfetch *f, int ask)
{
    wm_msg *m = f->pf->out;

    memset(m, 0, sizeof(*m) - sizeof(m->filename));
    m->type = WM_MSG_HAVE;
    memcpy(m->sha256, f->dl->sha256, 32);
    m->flags = ask ? WM_HAVE_ASK : 0;
    m->nchunks = f->chunks.last + 1;
    wm_swarm_done(f->chunks.state, m->nchunks, m->bitmap);
}

/* A swarm fetch starts: every usable member not already a holder hears
 * of it; those fetching the wheel too answer with their chunks. */
static void
announce(wm_pfetch *f)
{
    wm_members *ms = f->pf->members;

    build_have(f, 1);
    for (size_t i = 0; i < wm_members_count(ms); i++) {
        wm_member *m = wm_members_at(ms, i);
        if (wm_member_usable(m) && wm_holders_of(&f->hs, m) == NULL)
            wm_transport_send(f->pf->t, m, f->pf->out, NULL, 0);
    }
}

/* Tells F's partial holders what it has now, when that changed and
 * HAVE_MS passed since it last did (or NOW is the end). */
static void
tell_partials(wm_pfetch *f, int64_t now, int now_or_never)
{
    if (!f->have_news || f->hs.npartial == 0 ||
        (!now_or_never && now - f->have_at < HAVE_MS))
        return;
    build_have(f, 0);
    for (size_t i = 0; i < f->hs.n; i++)
        if (f->hs.h[i].has != NULL && !f->hs.h[i].dropped)
            wm_transport_send(f->pf->t, f->hs.h[i].m, f->pf->out, NULL, 0);
    f->have_news = 0;
    f->have_at = now;
}

static void
mark_bad(wm_pfetch *f, const wm_member *m)
{
    wm_holder *h = wm_holders_of(&f->hs, m);

    if (h != NULL)
        h->bad = 1;
}

static void
drop(wm_pfetch *f, wm_member *m, const char *why)
{
    wm_holder *h = wm_holders_of(&f->hs, m);

    if (h == NULL || h->dropped)
        return;
    wm_holders_drop(&f->hs, h);
    if (h->has == NULL || h->bad) /* a partial holder's fetch may end */
        m->failures++;
    wm_chunks_unask(&f->chunks, m);
    if (f->map_from == m)
        f->map_from = NULL;
    wm_warn("cluster: %s: dropped %.16s for this fetch: %s", f->dl->filename,
            m->hex, why);
}

/* Every chunk is in: the whole file must hash to the sha256 asked for. */
static void
complete(wm_pfetch *f)
{
    uint8_t digest[32];
    char want[WM_SHA256_HEX], got[WM_SHA256_HEX];

    wm_sha256_final(f->landing.hash, digest);
    wm_sha256_destroy(&f->landing.hash); /* nothing to take over from now */
    if (memcmp(digest, f->dl->sha256, 32) == 0) {
        if (f->swarm) /* they may ask this node for anything now */
            tell_partials(f, wm_now_ms(), 1);
        atomic_store(&f->dl->total, f->chunks.size);
        atomic_store(&f->dl->received, f->chunks.size);
        wm_info("cluster: fetched %s (%" PRIu64 " bytes) from peers: %" PRIu32
                " chunks from whole holders, %" PRIu32
                " from partial ones, %" PRIu32 " asked again, %" PRIu32 " late",
                f->dl->filename, f->chunks.size, f->from_whole, f->from_partial,
                f->reasked, f->late);
        finish(f, 0, "ok");
        return;
    }
    wm_hex_encode(f->dl->sha256, 32, want);
    wm_hex_encode(digest, 32, got);
    wm_error("cluster: %s: sha256 mismatch from peers: want %s, got %s",
             f->dl->filename, want, got);
    for (size_t i = 0; i < f->hs.n; i++) {
        f->hs.h[i].m->bad_chunks++;
        f->hs.h[i].bad = 1;
    }
    finish(f, -EBADMSG, "the bytes from peers fail their sha256");
}

static void
send_fetch(wm_pfetch *f, wm_holder *h, uint32_t idx, int64_t now)
{
    wm_msg *m = f->pf->out;

    memset(m, 0, sizeof(*m) - sizeof(m->filename));
    m->type = WM_MSG_FETCH;
    memcpy(m->sha256, f->dl->sha256, 32);
    m->idx = idx;
    m->flags = f->designee ? WM_FETCH_UPSTREAM : 0;
    snprintf(m->filename, sizeof(m->filename), "%s", f->dl->filename);
    if (wm_transport_send(f->pf->t, h->m, m, NULL, 0) != 0)
        return;
    f->chunks.state[idx] = WM_CS_ASKED;
    f->chunks.asked_of[idx] = h->m;
    f->chunks.asked_at[idx] = now;
    f->chunks.asked_seq[idx] = wm_holders_asked(&f->hs, h);
}

static void
ask_map(wm_pfetch *f, int64_t now)
{
    wm_msg *m = f->pf->out;

    if (f->map_from != NULL && now - f->map_sent > MAP_TIMEOUT_MS)
        drop(f, f->map_from, "no chunk map in time");
    if (f->map_from != NULL)
        return;
    for (size_t i = 0; i < f->hs.n; i++) {
        if (f->hs.h[i].dropped || f->hs.h[i].has != NULL)
            continue; /* a partial holder has no map to give */
        memset(m, 0, sizeof(*m) - sizeof(m->filename));
        m->type = WM_MSG_MAP;
        memcpy(m->sha256, f->dl->sha256, 32);
        wm_transport_send(f->pf->t, f->hs.h[i].m, m, NULL, 0);
        f->map_from = f->hs.h[i].m;
        f->map_sent = now;
        return;
    }
}

/* Keeps every holder's window full; drops holders that stall or keep
 * answering "later" while nothing else comes in. Returns 0, or -1 when F
 * ended. */
static int
fill(wm_pfetch *f, int64_t now)
{
    size_t whole = wm_holders_whole_left(&f->hs);
    uint32_t next = f->landing.prefix;
    wm_stripe stripe = {0, 1, 0};
    int64_t budget = f->pf->later_budget_ms;

    /* A holder answers in the order it is asked: a chunk is asked again
     * (of whoever has room) once one asked after it came back first. One
     * not answered in time (wm_holder_timeout) is only queued while its
     * holder answers others (asked again, it would cross a full uplink
     * twice), up to twice that time. A holder that answered nothing at
     * all for as long is gone, or its uplink is that full (a swarm's
     * seed, a partial holder serving many), or a lost connection took its
     * answers: slow because busy is not gone. Its window drops to one
     * while the fetch still moves (a partial holder's until it has been
     * silent for the whole budget); else it is dropped, and so is a
     * silent whole holder while another is left. Membership says when a
     * member is gone. */
    for (size_t i = 0; i < f->chunks.room; i++) {
        wm_holder *h;
        int64_t limit, age;
        int lost;
        if (f->chunks.state[i] != WM_CS_ASKED)
            continue;
        h = wm_holders_of(&f->hs, f->chunks.asked_of[i]); /* never NULL */
        limit = wm_holder_timeout(h);
        age = now - f->chunks.asked_at[i];
        lost = wm_holder_lost(h, f->chunks.asked_seq[i]);
        if (!lost && (age <= limit ||
                      (now - h->last_reply <= limit && age <= 2 * limit)))
            continue;
        if (!lost && now - h->last_reply > limit) {
            int keep = h->has != NULL ? now - h->last_reply <= budget
                                      : whole == 1 &&
                                            now - f->progress_at <= limit;
            if (!keep) {
                whole -= h->has == NULL;
                drop(f, h->m, "no answer in time");
                continue;
            }
            h->window = 1;
            /* The one whole holder, silent to this fetch while others'
             * chunks fill its uplink: asked again, the chunk would queue
             * behind its first copy. A silent partial holder's chunk is
             * not counted as its until it says so again (else it might
             * be asked of it again and again). */
            if (h->has == NULL && age <= 2 * limit)
                continue;
            if (h->has != NULL)
                wm_swarm_forget(h->has, (uint32_t)i);
        }
        f->reasked++;
        f->chunks.state[i] = WM_CS_TO_ASK;
        wm_holders_answered(&f->hs, h);
    }
    for (size_t i = 0; i < f->hs.n; i++) {
        wm_holder *h = &f->hs.h[i];
        if (!h->dropped && !wm_member_usable(h->m))
            drop(f, h->m, "not alive");
        if (!h->dropped && h->later_since != 0 &&
            now - h->later_since > budget && now - f->progress_at > budget)
            drop(f, h->m, "kept answering \"later\"");
    }
    if (wm_holders_whole_left(&f->hs) == 0 &&
        (f->map == NULL ||
         !wm_holders_useful(&f->hs, f->chunks.state, f->landing.prefix))) {
        finish(f, -ENOENT, "no peer could serve it");
        return -1;
    }
    if (!f->designee && f->map == NULL) {
        ask_map(f, now);
        return 0;
    }
    if (f->swarm && now - f->started < SWARM_WAIT_MS)
        return 0; /* ticks come every 50 ms */
    if (f->swarm)
        tell_partials(f, now, 0);
    if (f->hs.npartial > 0) {
        const uint8_t *has[WM_HOLDERS_PARTIAL], *ids[WM_HOLDERS_PARTIAL];
        size_t n = wm_holders_partials(&f->hs, has, ids);
        wm_swarm_rarity(f->rarity, f->chunks.last + 1, has, n);
        stripe = wm_swarm_stripe(wm_members_self_id(f->pf->members), ids, n);
        /* A fetcher that started before the others heard of them asked
         * for the first chunks, now in their stripes. Scanned from a
         * random point at first, a stripe reaches those once they are
         * the swarm's (else h1 sent each twice); then in order, for the
         * readers. */
        if (now - f->started < SWARM_SETTLE_MS)
            stripe.scan = f->start;
        /* Nothing came in for a while: for STALLED_MS whole holders may
         * be asked for other stripes too (a fetcher that is slow, or
         * joined a swarm and never fetches its stripe). Not before the
         * first chunk: until then a whole holder is sending every
         * fetcher's first chunks at once, and more would only queue
         * (unless none came for long: a member claiming every chunk and
         * sending none would hold the fetch). */
        if ((f->from_whole + f->from_partial > 0 ||
             now - f->started > STALL_MS + SWARM_SETTLE_MS) &&
            now - f->progress_at > STALL_MS && now >= f->stalled_until)
            f->stalled_until = now + STALLED_MS;
    }
    /* The holders in turn, from a different one each time, so the
     * fetch's chunks in flight are spread over all of them. */
    f->turn++;
    for (size_t j = 0; j < f->hs.n; j++) {
        wm_holder *h = &f->hs.h[(f->turn + j) % f->hs.n];
        if (h->dropped || now < h->not_before)
            continue;
        while (h->inflight < h->window && f->hs.inflight < MAX_INFLIGHT) {
            if (f->hs.npartial > 0) {
                uint32_t c =
                    h->has != NULL
                        ? wm_swarm_pick_partial(
                              f->chunks.state, f->rarity, f->landing.prefix,
                              f->chunks.last + 1, h->has, f->start)
                        : wm_swarm_pick_whole(f->chunks.state, f->rarity,
                                              f->landing.prefix,
                                              f->chunks.last + 1, stripe,
                                              f->start, now < f->stalled_until);
                if (c == WM_NO_CHUNK)
                    break;
                send_fetch(f, h, c, now);
                if (f->chunks.state[c] == WM_CS_TO_ASK)
                    break; /* could not send */
                continue;
            }
            /* No swarm: in order from the prefix, for the readers. */
            uint32_t end = f->chunks.last != UINT32_MAX
                               ? f->chunks.last + 1
                               : f->landing.prefix +
                                     (uint32_t)(WM_HOLDER_WINDOW * f->hs.n);
            if (end > f->chunks.end)
                end = f->chunks.end;
            while (next < end && next < f->chunks.room &&
                   f->chunks.state[next] != WM_CS_TO_ASK)
                next++;
            if (next >= end)
                break;
            if (next >= f->chunks.room &&
                wm_chunks_grow(&f->chunks, (size_t)next + 1) != 0)
                break;
            if (f->chunks.state[next] != WM_CS_TO_ASK)
                continue;
            send_fetch(f, h, next, now);
            if (f->chunks.state[next] == WM_CS_TO_ASK)
                break; /* could not send */
        }
    }
    return 0;
}

/* May a fetch of SIZE bytes put its chunks into the store before its
 * record? They count against cache.max_size from the start: the room
 * check is asked for SIZE and what the fetches already in the store have
 * still to put there (what they put is the store's orphan count, which
 * the check adds). Without room the fetch writes its spool, as a designee
 * fetch does, so the bytes in the map that no record names stay bounded
 * by the cap. */
static int
room_first(wm_peerfetch *pf, uint64_t size)
{
    uint64_t bytes = size;

    if (pf->room == NULL)
        return 1;
    for (const wm_pfetch *f = pf->list; f != NULL; f = f->next)
        if (atomic_load(&f->dl->in_store) &&
            f->chunks.size != WM_SIZE_UNKNOWN &&
            f->chunks.size > f->landing.stored)
            bytes += f->chunks.size - f->landing.stored;
    return pf->room(pf->room_arg, bytes);
}

wm_pfetch *
wm_peerfetch_start(wm_peerfetch *pf, wm_download *dl,
                   const wm_pf_holder *holders, size_t n, uint64_t size,
                   uint64_t cap, int designee, uint64_t resume, wm_sha256 *hash,
                   wm_pf_fn done, void *arg)
{
    wm_pfetch *f = calloc(1, sizeof(*f));
    size_t usable = 0;

    for (size_t i = 0; i < n && i < WM_HOLDERS_WHOLE; i++)
        usable += wm_member_usable(holders[i].m);
    if (f == NULL || usable == 0 || resume % WM_CHUNK_SIZE != 0 ||
        (resume > 0) != (hash != NULL) ||
        (size != WM_SIZE_UNKNOWN && resume >= size) || resume >= cap)
        goto fail;
    f->pf = pf;
    f->dl = wm_download_ref(dl);
    f->done = done;
    f->arg = arg;
    f->designee = designee;
    memcpy(f->root, holders[0].root, 32);
    wm_landing_init(&f->landing, dl, pf->pub,
                    hash != NULL ? hash : wm_sha256_new(),
                    (uint32_t)(resume / WM_CHUNK_SIZE));
    hash = NULL;
    if (f->landing.hash == NULL ||
        wm_chunks_init(&f->chunks, size, cap, f->landing.prefix) != 0)
        goto fail;
    if (!designee && resume == 0 && pf->store != NULL) {
        if (room_first(pf, size))
            wm_download_use_store(dl, pf->store);
        else
            wm_info("cluster: %s: no room in the cache for its %" PRIu64
                    " bytes before it is stored; fetched into a spool file",
                    dl->filename, size);
    }
    wm_holders_init(&f->hs,
                    f->chunks.last != UINT32_MAX ? f->chunks.last + 1 : 0);
    for (size_t i = 0; i < n; i++)
        wm_holders_add_whole(&f->hs, holders[i].m, wm_now_ms());
    f->started = f->progress_at = wm_now_ms();
    if (!designee && f->chunks.last + 1 >= SWARM_MIN_CHUNKS &&
        f->chunks.last < WM_WIRE_MAX_CHUNKS && pf->members != NULL) {
        uint32_t r;
        wm_random_bytes(&r, sizeof(r));
        f->swarm = 1;
        f->start = r % (f->chunks.last + 1); /* a bias of < 2^-16: no matter */
        if ((f->rarity = calloc(1, (size_t)f->chunks.last + 1)) == NULL)
            goto fail;
    }
    f->next = pf->list;
    pf->list = f;
    if (f->swarm)
        announce(f);
    fill(f, wm_now_ms()); /* a usable holder: it cannot end here */
    return f;
fail:
    wm_sha256_destroy(&hash);
    if (f != NULL)
        fetch_free(f);
    return NULL;
}

void
wm_peerfetch_on_room(wm_peerfetch *pf, int (*fn)(void *arg, uint64_t bytes),
                     void *arg)
{
    pf->room = fn;
    pf->room_arg = arg;
}

void
wm_peerfetch_cancel(wm_peerfetch *pf, wm_pfetch *f)
{
    if (f == NULL)
        return;
    unlink_fetch(pf, f);
    fetch_free(f);
}

uint64_t
wm_pfetch_prefix(const wm_pfetch *f)
{
    return wm_chunks_bytes(&f->chunks, f->landing.prefix);
}

wm_sha256 *
wm_pfetch_take_hash(wm_pfetch *f)
{
    wm_sha256 *h = f->landing.hash;

    f->landing.hash = NULL;
    return h;
}

const void *
wm_pfetch_map(const wm_pfetch *f)
{
    return f->map;
}

int
wm_pfetch_was_bad(const wm_pfetch *f, const wm_member *m)
{
    for (size_t i = 0; i < f->hs.n; i++)
        if (f->hs.h[i].m == m)
            return f->hs.h[i].bad;
    return 0;
}

const uint8_t *
wm_pfetch_root(const wm_pfetch *f)
{
    return f->root;
}

void
wm_peerfetch_on_mapdata(wm_peerfetch *pf, const wm_from *from,
                        const wm_msg *m, const void *bulk, size_t len)
{
    wm_pfetch *f = find(pf, m->sha256);
    uint8_t digest[32];

    if (f == NULL || f->map != NULL || f->map_from != from->m)
        return;
    if (m->status != WM_CHUNK_OK) {
        drop(f, from->m, "has no chunk map");
        return;
    }
    wm_sha256_digest(bulk, len, digest);
    if (len != ((size_t)f->chunks.last + 1) * 32 ||
        memcmp(digest, f->root, 32) != 0) {
        from->m->bad_chunks++;
        mark_bad(f, from->m);
        drop(f, from->m, "sent a chunk map that fails its signed hash");
        return;
    }
    f->map = malloc(len);
    if (f->map != NULL)
        memcpy(f->map, bulk, len);
    fill(f, wm_now_ms());
}

/* The turn's chunks into the store, in one transaction. Returns 0, or a
 * negative error (nothing was written). */
static int
put_held(wm_peerfetch *pf)
{
    wm_store_batch *b = NULL;
    int rc = wm_store_batch_begin(pf->store, &b);

    for (wm_pfetch *f = pf->list; rc == 0 && f != NULL; f = f->next)
        rc = wm_landing_put(&f->landing, b);
    if (rc != 0) {
        wm_store_batch_abort(&b);
        return rc;
    }
    return wm_store_batch_commit(&b);
}

void
wm_peerfetch_flush(wm_peerfetch *pf)
{
    int any = 0, stored;

    for (wm_pfetch *f = pf->list; f != NULL && !any; f = f->next)
        any = f->landing.nheld > 0;
    if (!any)
        return;
    stored = put_held(pf);
    for (wm_pfetch *f = pf->list, *next; f != NULL; f = next) {
        int rc;

        next = f->next;
        if (f->landing.nheld == 0)
            continue;
        if (stored != 0 && wm_landing_to_spool(&f->landing, &f->chunks,
                                               strerror(-stored)) != 0) {
            finish(f, -EIO, "cannot write the spool file (disk full?)");
            continue;
        }
        if (stored == 0)
            wm_landing_stored(&f->landing, &f->chunks);
        f->have_news = 1;
        rc = wm_landing_advance(&f->landing, &f->chunks, UINT32_MAX, NULL);
        wm_landing_release(&f->landing);
        if (rc < 0)
            finish(f, -EIO, "cannot read back what arrived");
        else if (rc > 0)
            complete(f);
        else
            fill(f, wm_now_ms());
    }
}

/* A chunk H sends after it was asked again (of H or another holder): its
 * bytes are as good as any once they match the chunk map, and taking
 * them saves the other answer (on a swarm's full uplinks, a chunk's
 * worth). Nothing from a holder that sent bad bytes. Returns 1 when M is
 * to be handled as asked of H now. */
static int
take_late(wm_pfetch *f, wm_holder *h, const wm_msg *m)
{
    uint32_t idx = m->idx;
    wm_holder *other;

    if (h == NULL || h->bad || m->status != WM_CHUNK_OK || f->map == NULL ||
        idx > f->chunks.last ||
        (f->chunks.state[idx] != WM_CS_TO_ASK &&
         f->chunks.state[idx] != WM_CS_ASKED))
        return 0;
    if (f->chunks.state[idx] == WM_CS_ASKED &&
        (other = wm_holders_of(&f->hs, f->chunks.asked_of[idx])) != NULL)
        wm_holders_answered(&f->hs, other); /* its answer will be late */
    f->chunks.state[idx] = WM_CS_ASKED;
    f->chunks.asked_of[idx] = h->m;
    wm_holders_asked(&f->hs, h); /* as if asked now: the caller counts
                                    the answer */
    f->late++;
    return 1;
}

void
wm_peerfetch_on_chunk(wm_peerfetch *pf, const wm_from *from, const wm_msg *m,
                      const void *bulk, size_t len)
{
    wm_pfetch *f = find(pf, m->sha256);
    wm_holder *h;
    uint32_t idx = m->idx;
    uint8_t digest[32];
    int rc, late;

    if (f == NULL || idx >= f->chunks.room)
        return;
    h = wm_holders_of(&f->hs, from->m);
    late = f->chunks.state[idx] != WM_CS_ASKED ||
           f->chunks.asked_of[idx] != from->m;
    if (late && !take_late(f, h, m))
        return; /* unasked, or not worth having: ignore */
    if (h != NULL) {
        wm_holders_answered(&f->hs, h);
        h->last_reply = wm_now_ms();
        if (!late)
            wm_holder_answered_seq(h, f->chunks.asked_seq[idx]);
    }
    f->chunks.state[idx] = WM_CS_TO_ASK;
    if (h != NULL && h->has != NULL && m->status != WM_CHUNK_OK &&
        m->status != WM_CHUNK_MISSING) {
        /* A partial holder without it (yet), or busy: the chunk is not
         * counted as its until it says so again. One that never sends a
         * byte runs out of budget like any. */
        wm_swarm_forget(h->has, idx);
        if (m->status == WM_CHUNK_BUSY)
            h->not_before = wm_now_ms() + LATER_RETRY_MS;
        if (h->later_since == 0)
            h->later_since = wm_now_ms();
        fill(f, wm_now_ms());
        return;
    }
    if (m->status == WM_CHUNK_LATER || m->status == WM_CHUNK_BUSY) {
        /* Alive, not ready (or at its upload limit): others are asked
         * meanwhile; one that never sends a byte runs out of budget. */
        int64_t now = wm_now_ms();
        if (h != NULL) {
            h->not_before = now + LATER_RETRY_MS;
            if (h->later_since == 0)
                h->later_since = now;
        }
        if (m->status == WM_CHUNK_BUSY)
            fill(f, now);
        return;
    }
    if (m->status != WM_CHUNK_OK) {
        drop(f, from->m, "does not have it");
        fill(f, wm_now_ms());
        return;
    }
    if (h != NULL && !late)
        wm_holder_took(h, wm_now_ms() - f->chunks.asked_at[idx]);
    if (h != NULL)
        h->later_since = 0;
    f->progress_at = wm_now_ms();
    if (h != NULL && h->has != NULL)
        f->from_partial++;
    else
        f->from_whole++;
    if (f->chunks.size != WM_SIZE_UNKNOWN && idx > f->chunks.last) {
        if (len > 0)
            goto bad;
        /* "nothing here": past the known end */
        f->chunks.state[idx] = WM_CS_DONE;
        fill(f, wm_now_ms());
        return;
    }
    if (f->designee && f->chunks.size == WM_SIZE_UNKNOWN) {
        rc = wm_chunks_designee(&f->chunks, idx, len);
        if (rc == -2) {
            from->m->bad_chunks++;
            mark_bad(f, from->m);
            drop(f, from->m, "sent more than the wheel's size can be");
            finish(f, -EMSGSIZE, "a peer sent more than %" PRIu64 " bytes",
                   f->chunks.cap);
            return;
        }
        if (rc < 0)
            goto bad;
        if (f->chunks.size != WM_SIZE_UNKNOWN)
            atomic_store(&f->dl->total, f->chunks.size);
        if (rc == 0) {
            fill(f, wm_now_ms());
            return;
        }
    } else {
        /* A designee's chunks are bound by the whole-file hash only; a
         * holder's also by the chunk map its entry signed. */
        if (len != wm_chunks_len(&f->chunks, idx))
            goto bad;
        if (f->map != NULL) {
            wm_sha256_digest(bulk, len, digest);
            if (memcmp(digest, f->map[idx], 32) != 0)
                goto bad;
        }
    }
    if (atomic_load(&f->dl->in_store)) {
        /* Kept as received; the store gets it at the end of the turn. */
        if (wm_landing_hold(&f->landing, &f->chunks, pf->t, idx) != 0)
            finish(f, -EIO, "out of memory");
        return;
    }
    if (wm_landing_write(&f->landing, &f->chunks, idx, bulk, len) != 0) {
        finish(f, -EIO, "cannot write the spool file (disk full?)");
        return;
    }
    f->have_news = 1;
    rc = wm_landing_advance(&f->landing, &f->chunks, idx, bulk);
    if (rc < 0)
        finish(f, -EIO, "cannot read the spool file");
    else if (rc > 0)
        complete(f);
    else
        fill(f, wm_now_ms());
    return;
bad:
    from->m->bad_chunks++;
    mark_bad(f, from->m);
    drop(f, from->m, "sent a bad chunk");
    fill(f, wm_now_ms());
}

void
wm_peerfetch_on_have(wm_peerfetch *pf, const wm_from *from, const wm_msg *m)
{
    wm_pfetch *f = find(pf, m->sha256);
    wm_holder *h;
    int fresh = 0, news;

    if (f == NULL || !f->swarm || from->m == NULL ||
        !wm_member_usable(from->m) || m->nchunks != f->chunks.last + 1)
        return;
    h = wm_holders_of(&f->hs, from->m);
    if (h == NULL) {
        if ((h = wm_holders_add_partial(&f->hs, from->m, wm_now_ms())) ==
            NULL)
            return;
        fresh = 1;
    }
    if (h->dropped || h->has == NULL)
        return; /* a whole holder has every chunk anyway */
    news = wm_swarm_merge(h->has, m->bitmap, m->nchunks);
    if (fresh && (m->flags & WM_HAVE_ASK)) {
        build_have(f, 0);
        wm_transport_send(pf->t, from->m, pf->out, NULL, 0);
    }
    if (news) /* a HAVE that says nothing new costs nothing more */
        fill(f, wm_now_ms());
}

size_t
wm_peerfetch_chunk_ready(const wm_peerfetch *pf, const uint8_t *sha,
                         uint32_t idx)
{
    const wm_pfetch *f = find(pf, sha);

    if (f == NULL || f->map == NULL || idx > f->chunks.last ||
        f->chunks.state[idx] != WM_CS_DONE)
        return 0;
    return (size_t)wm_chunks_len(&f->chunks, idx);
}

void
wm_peerfetch_tick(wm_peerfetch *pf, int64_t now)
{
    for (wm_pfetch *f = pf->list, *next; f != NULL; f = next) {
        next = f->next;
        fill(f, now);
    }
}

int
wm_peerfetch_active(const wm_peerfetch *pf)
{
    return pf->list != NULL;
}

void
wm_peerfetch_counters(const wm_peerfetch *pf, uint64_t *done,
                      uint64_t *failed)
{
    *done = pf->ndone;
    *failed = pf->nfailed;
}

wm_peerfetch *
wm_peerfetch_new(wm_transport *t, wm_members *members, void *pub,
                 wm_store *store, int64_t later_budget_ms)
{
    wm_peerfetch *pf = calloc(1, sizeof(*pf));

    if (pf == NULL || (pf->out = calloc(1, sizeof(wm_msg))) == NULL) {
        free(pf);
        return NULL;
    }
    pf->t = t;
    pf->members = members;
    pf->pub = pub;
    pf->store = store;
    pf->later_budget_ms = later_budget_ms;
    return pf;
}

void
wm_peerfetch_destroy(wm_peerfetch **pfp)
{
    wm_peerfetch *pf;

    if (pfp == NULL || *pfp == NULL)
        return;
    pf = *pfp;
    while (pf->list != NULL) {
        wm_pfetch *f = pf->list;
        pf->list = f->next;
        fetch_free(f);
    }
    free(pf->out);
    free(pf);
    *pfp = NULL;
}
