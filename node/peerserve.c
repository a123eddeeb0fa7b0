/*
 * Answers to FETCH and MAP. Stored wheels go out as frames pointing into
 * the LMDB map (ZeroMQ copies them into its queue); a wheel still arriving
 * is read from its download, whole chunks only until it is verified, and
 * a chunk of a swarm's goes to a few peers at a time (spread_enough).
 *
 * Uploads never take the agent's whole link: at most MAX_PEERS peers are
 * served at a time, each with a token bucket holding it to its share of
 * cluster.max_upload_rate (so one greedy peer cannot crowd out the
 * rest), and the node's own bucket holds their sum to the rate; past
 * any of these an answer that would carry bytes is BUSY instead, and
 * the fetcher asks another holder.
 */
#include "peerserve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define MAX_PEERS     16   /* served at once: a swarm of 16 fetchers */
#define PEER_IDLE_MS  2000 /* a peer not heard for this long is done */
#define BURST_S       0.25 /* the bucket holds a quarter second's rate */
#define SPREAD_PEERS  2    /* a chunk of a fetch still running, at once */
#define SPREAD_MS     2000
#define RECENT        256  /* such chunks remembered: 16 peers x 8 x 2 */

struct wm_peerserve {
    wm_node *node;
    wm_transport *t;
    wm_fetch *fetch;
    wm_peerfetch *fetching; /* this node's fetches from peers */
    wm_msg *out;
    int fault_bad_chunks;
    /* the peers being served, and their buckets */
    struct peer {
        const wm_member *m;
        int64_t last_ms;
        double tokens; /* bytes it may be sent now; may dip below 0 */
        int64_t refilled_ms;
    } peers[MAX_PEERS];
    double tokens; /* the node's bucket: bytes all peers may be sent now */
    int64_t refilled_ms;
    /* chunks of running fetches lately sent, for spread_enough */
    struct sent {
        const wm_member *to;
        uint8_t sha[8];
        uint32_t idx;
        int64_t at;
    } recent[RECENT];
    size_t next_recent;
    uint64_t busy_replies, uploaded;
};

/* M's slot among the peers being served (a new one when there is room),
 * or NULL. */
static struct peer *
peer_slot(wm_peerserve *ps, const wm_member *m, int64_t now)
{
    struct peer *idle = NULL;

    for (int i = 0; i < MAX_PEERS; i++) {
        struct peer *p = &ps->peers[i];
        if (p->m == m) {
            p->last_ms = now;
            return p;
        }
        if (idle == NULL &&
            (p->m == NULL || now - p->last_ms > PEER_IDLE_MS))
            idle = p;
    }
    if (idle != NULL)
        *idle = (struct peer){m, now, 1, now}; /* a token: its first chunk
                                                  needs only the node's */
    return idle;
}

/* The node's bucket, refilled at RATE up to a quarter second's, or a
 * chunk where that is less. Every peer may owe a chunk (below), so
 * without it sixteen peers could be sent sixteen chunks over the rate at
 * once; a chunk goes only when the node has a whole one's tokens. */
static int
node_admitted(wm_peerserve *ps, double rate, int64_t now)
{
    double cap =
        rate * BURST_S > WM_CHUNK_SIZE ? rate * BURST_S : WM_CHUNK_SIZE;

    ps->tokens += rate * (double)(now - ps->refilled_ms) / 1000.0;
    ps->refilled_ms = now;
    if (ps->tokens > cap)
        ps->tokens = cap;
    return ps->tokens >= WM_CHUNK_SIZE;
}

/* May a chunk go out to M now? Each active peer's bucket fills at its
 * share of the rate; it may go into debt by one chunk, so a share below a
 * chunk a second still moves. The node's bucket, never in debt, must hold
 * a whole chunk too. */
static int
upload_admitted(wm_peerserve *ps, const wm_member *m)
{
    double rate = (double)ps->node->cfg->max_upload_rate, share;
    int64_t now = wm_now_ms();
    struct peer *p = peer_slot(ps, m, now);
    int active = 0;

    if (p == NULL)
        return 0;
    if (rate <= 0)
        return 1;
    for (int i = 0; i < MAX_PEERS; i++)
        active += ps->peers[i].m != NULL &&
                  now - ps->peers[i].last_ms <= PEER_IDLE_MS;
    share = rate / (active > 0 ? active : 1);
    p->tokens += share * (double)(now - p->refilled_ms) / 1000.0;
    p->refilled_ms = now;
    if (p->tokens > share * BURST_S)
        p->tokens = share * BURST_S;
    return node_admitted(ps, rate, now) && p->tokens > 0;
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
    /* Only an answer with bytes waits for the buckets. */
    if (len > 0 && !upload_admitted(ps, from->m)) {
        m->status = WM_CHUNK_BUSY;
        data = "", len = 0;
        ps->busy_replies++;
    }
    for (int i = 0; i < MAX_PEERS && len > 0; i++)
        if (ps->peers[i].m == from->m)
            ps->peers[i].tokens -= (double)len;
    ps->tokens -= (double)len; /* read only where there is a cap */
    ps->uploaded += len;
    wm_transport_reply(ps->t, from, m, data, len);
}

/* Has chunk IDX of SHA, which a fetch from peers still running has,
 * gone to SPREAD_PEERS other peers than TO in the last SPREAD_MS? Then TO
 * is told "later" (a swarm's fetcher then asks for another chunk, and
 * this one of whoever got it once they say so), rather than all sent it
 * at once at a fraction of this uplink each: the last chunks of a swarm
 * spread hop by hop. Else it is counted as sent to TO now (once per
 * peer: one asking again cannot take the others' turns). */
static int
spread_enough(wm_peerserve *ps, const wm_member *to, const uint8_t *sha,
              uint32_t idx)
{
    int64_t now = wm_now_ms();
    struct sent *s, *mine = NULL, *free_slot = NULL;
    int others = 0;

    for (size_t i = 0; i < RECENT; i++) {
        s = &ps->recent[i];
        if (now - s->at >= SPREAD_MS) {
            free_slot = free_slot != NULL ? free_slot : s;
            continue;
        }
        if (s->idx != idx || memcmp(s->sha, sha, sizeof(s->sha)) != 0)
            continue;
        if (s->to == to)
            mine = s;
        else
            others++;
    }
    if (others >= SPREAD_PEERS)
        return 1;
    if (mine == NULL)
        mine = free_slot != NULL ? free_slot
                                 : &ps->recent[ps->next_recent++ % RECENT];
    *mine = (struct sent){.to = to, .idx = idx, .at = now};
    memcpy(mine->sha, sha, sizeof(mine->sha));
    return 0;
}

/* Chunk IDX of a download still arriving: whole chunks of its prefix, or
 * a chunk a fetch from peers checked against its chunk map. */
static void
serve_partial(wm_peerserve *ps, const wm_from *from, wm_download *dl,
              uint32_t idx)
{
    static uint8_t buf[WM_CHUNK_SIZE]; /* loop thread only */
    int state = atomic_load(&dl->state);
    uint64_t got = atomic_load(&dl->received),
             off = (uint64_t)idx * WM_CHUNK_SIZE, len;
    size_t checked = wm_peerfetch_chunk_ready(ps->fetching, dl->sha256, idx);

    if (state == WM_DL_FAILED) {
        reply_chunk(ps, from, dl->sha256, idx, WM_CHUNK_MISSING, NULL, 0);
        return;
    }
    if (state != WM_DL_VERIFIED && checked > 0) {
        /* A peer refused by the buckets takes no turn of the spread. */
        if (!upload_admitted(ps, from->m)) {
            reply_chunk(ps, from, dl->sha256, idx, WM_CHUNK_BUSY, NULL, 0);
            ps->busy_replies++;
            return;
        }
        if (spread_enough(ps, from->m, dl->sha256, idx)) {
            reply_chunk(ps, from, dl->sha256, idx, WM_CHUNK_LATER, NULL, 0);
            return;
        }
    }
    if (state == WM_DL_VERIFIED) {
        len = off >= got
                  ? 0
                  : (got - off < WM_CHUNK_SIZE ? got - off : WM_CHUNK_SIZE);
    } else if (off + WM_CHUNK_SIZE <= got) {
        len = WM_CHUNK_SIZE;
    } else if (checked > 0) {
        len = checked;
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
wm_peerserve_new(wm_node *node, wm_transport *t, wm_fetch *fetch,
                 wm_peerfetch *peers)
{
    wm_peerserve *ps = calloc(1, sizeof(*ps));

    if (ps == NULL || (ps->out = calloc(1, sizeof(wm_msg))) == NULL) {
        free(ps);
        return NULL;
    }
    ps->node = node;
    ps->t = t;
    ps->fetch = fetch;
    ps->fetching = peers;
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
