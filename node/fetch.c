/*
 * The fetch coordinator. A job per sha256 the node is fetching: its
 * download (shared with every reader), the sources it has tried, the one
 * running now. Each time a source ends, fetchsm says what comes next; a
 * job therefore ends after at most three sources, each bounded by its own
 * deadlines (chunk timeouts and the "later" budget for peers, libcurl's
 * connect and stall bounds for upstream).
 *
 * Alongside: the negative cache (sha256 -> failure, retry-after), the
 * suspects (sha256 -> chunk map roots and designees whose bytes failed
 * the hash), and metadata fetches, which are small and go upstream only.
 */
#include "fetch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetchsm.h"
#include "log.h"
#include "map.h"
#include "wheelzip.h"

#define MAX_HOLDERS     8
#define MAX_NEGATIVE    4096
#define MAX_SUSPECTS    1024
#define MAX_BAD_ROOTS   4
#define NEG_ABSENT_S    5   /* nothing names it: cheap to ask again */
#define NEG_FAILED_S    10  /* a source failed: spare upstream, ... */
#define NEG_FAILED_MAX  120 /* ... doubling while it keeps failing */
#define SUSPECT_S       600

struct job {
    wm_fetch *f;
    uint8_t sha[WM_SHA256_LEN];
    char filename[WM_WHEELNAME_MAX + 1];
    char project[WM_PROJECT_MAX + 1];
    wm_download *dl;
    int for_peer, waiting;
    enum wm_fetch_action running; /* the source started last */
    uint8_t designee[WM_ID_LEN];  /* when it is the designee */
    unsigned tried;
    int timed_out;
    char why[256]; /* the last source's failure */
    wm_pfetch *pf;
    wm_xfer *xfer;
    wm_sha256 *resume_hash; /* the verified prefix's hash, for upstream */
};

struct negative {
    time_t retry_at;
    unsigned failures; /* in a row; kept after RETRY_AT for the backoff */
    unsigned status;
    char why[200];
};

struct suspects {
    time_t until;
    uint8_t roots[MAX_BAD_ROOTS][32];
    size_t nroots;
    uint8_t designee[WM_ID_LEN];
    int has_designee;
};

/* A metadata file on its way from upstream, and the calls waiting. */
struct meta {
    struct meta *next;
    wm_fetch *f;
    uint8_t sha[WM_SHA256_LEN];
    uint8_t expect[WM_SHA256_LEN];
    char filename[WM_WHEELNAME_MAX + 1];
    wm_xfer *xfer;
    wm_call *waiters;
};

struct wm_fetch {
    wm_fetch_parts p;
    wm_map *jobs, *negative, *suspects;
    struct meta *metas;
    wm_call *parked; /* META calls waiting for their page */
};

static void advance(struct job *j);

/* --- the negative cache and the suspects */

/* Remembers that SHA failed with STATUS: for a few seconds when nothing
 * names it, else for a time that doubles with each failure in a row. */
static void
remember_failure(wm_fetch *f, const uint8_t *sha, unsigned status,
                 const char *why)
{
    long seconds;

    struct negative *n = wm_map_touch(f->negative, sha, WM_SHA256_LEN);

    if (n == NULL) {
        while (wm_map_count(f->negative) >= MAX_NEGATIVE) {
            const void *k;
            size_t kl;
            struct negative *old = wm_map_oldest(f->negative, &k, &kl);
            wm_map_remove(f->negative, k, kl);
            free(old);
        }
        n = calloc(1, sizeof(*n));
        if (n == NULL || wm_map_put(f->negative, sha, WM_SHA256_LEN, n) != 0) {
            free(n);
            return;
        }
    }
    n->failures++;
    seconds = NEG_FAILED_S << (n->failures < 5 ? n->failures - 1 : 4);
    if (status == 404)
        seconds = NEG_ABSENT_S;
    else if (seconds > NEG_FAILED_MAX)
        seconds = NEG_FAILED_MAX;
    n->retry_at = time(NULL) + seconds;
    n->status = status;
    snprintf(n->why, sizeof(n->why), "%s", why);
}

static const struct negative *
negative_hit(wm_fetch *f, const uint8_t *sha)
{
    struct negative *n = wm_map_get(f->negative, sha, WM_SHA256_LEN);

    if (n == NULL || time(NULL) >= n->retry_at)
        return NULL;
    atomic_fetch_add(&f->p.node->counters.negative_hits, 1);
    return n;
}

static struct suspects *
suspects_of(wm_fetch *f, const uint8_t *sha, int create)
{
    struct suspects *s = wm_map_get(f->suspects, sha, WM_SHA256_LEN);

    if (s != NULL && time(NULL) >= s->until) {
        wm_map_remove(f->suspects, sha, WM_SHA256_LEN);
        free(s);
        s = NULL;
    }
    if (s != NULL || !create)
        return s;
    while (wm_map_count(f->suspects) >= MAX_SUSPECTS) {
        const void *k;
        size_t kl;
        struct suspects *old = wm_map_oldest(f->suspects, &k, &kl);
        wm_map_remove(f->suspects, k, kl);
        free(old);
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || wm_map_put(f->suspects, sha, WM_SHA256_LEN, s) != 0) {
        free(s);
        return NULL;
    }
    s->until = time(NULL) + SUSPECT_S;
    return s;
}

static int
root_suspected(const struct suspects *s, const uint8_t *root)
{
    for (size_t i = 0; s != NULL && i < s->nroots; i++)
        if (memcmp(s->roots[i], root, 32) == 0)
            return 1;
    return 0;
}

/* --- jobs */

static struct job *
job_find(wm_fetch *f, const uint8_t *sha)
{
    return wm_map_get(f->jobs, sha, WM_SHA256_LEN);
}

static void
job_free(struct job *j)
{
    if (j == NULL)
        return;
    wm_peerfetch_cancel(j->f->p.peers, j->pf);
    wm_upstream_cancel(j->f->p.up, j->xfer);
    wm_sha256_destroy(&j->resume_hash);
    wm_download_release(j->dl);
    free(j);
}

static void
job_end(struct job *j)
{
    wm_map_remove(j->f->jobs, j->sha, WM_SHA256_LEN);
    job_free(j);
}

/* The job has every byte, checked: readers get the last one, the store
 * gets the wheel. */
static void
job_done(struct job *j, const void *chunkmap)
{
    wm_holding hs[MAX_HOLDERS * 4];
    wm_entry claimed;
    size_t n = 0;

    atomic_store(&j->dl->total, atomic_load(&j->dl->received));
    atomic_store(&j->dl->state, WM_DL_VERIFIED);
    wm_progress_publish(j->f->p.pub, j->sha);
    /* A publisher's claim on these bytes under this name is kept with
     * them, unchanged. */
    memset(&claimed, 0, sizeof(claimed));
    if (j->f->p.index != NULL)
        n = wm_index_holders(j->f->p.index, j->sha, hs, MAX_HOLDERS * 4);
    for (size_t i = 0; i < n && i < MAX_HOLDERS * 4; i++) {
        if (hs[i].claim != NULL &&
            strcmp(hs[i].claim->filename, j->filename) == 0) {
            claimed.has_claim = 1;
            claimed.claim = *hs[i].claim;
            break;
        }
    }
    wm_commit_download(j->f->p.commit, j->dl, chunkmap,
                       claimed.has_claim ? &claimed : NULL);
    free(wm_map_remove(j->f->negative, j->sha, WM_SHA256_LEN));
    job_end(j);
}

static void
job_fail(struct job *j, unsigned status, const char *why, int remember)
{
    wm_fetch *f = j->f;

    atomic_fetch_add(&f->p.node->counters.fetch_failures, 1);
    wm_warn("fetch: %s: %s", j->filename, why);
    wm_download_fail(j->dl, status, "%s: %s", j->filename, why);
    wm_progress_publish(f->p.pub, j->sha);
    wm_download_drop_store(j->dl);
    if (remember)
        remember_failure(f, j->sha, status, why);
    job_end(j);
}

/* The live holders of J's sha256 whose chunk map is not suspected, all
 * with the same map (the one most of them signed), into OUT. */
static size_t
holders(struct job *j, wm_pf_holder *out, uint64_t *size)
{
    wm_fetch *f = j->f;
    const struct suspects *s = suspects_of(f, j->sha, 0);
    wm_holding all[MAX_HOLDERS * 4];
    size_t n, k = 0, best = 0, best_votes = 0;

    if (f->p.index == NULL)
        return 0;
    n = wm_index_holders(f->p.index, j->sha, all, MAX_HOLDERS * 4);
    if (n > MAX_HOLDERS * 4)
        n = MAX_HOLDERS * 4;
    for (size_t i = 0; i < n; i++) {
        size_t votes = 0;
        for (size_t q = 0; q < n; q++)
            votes += memcmp(all[q].root, all[i].root, 32) == 0;
        if (votes > best_votes && !root_suspected(s, all[i].root)) {
            best = i;
            best_votes = votes;
        }
    }
    for (size_t i = 0; i < n && k < MAX_HOLDERS && best_votes > 0; i++) {
        wm_member *m = wm_members_get(f->p.members, all[i].origin);
        if (!wm_member_usable(m) ||
            memcmp(all[i].root, all[best].root, 32) != 0 ||
            all[i].size != all[best].size)
            continue;
        out[k].m = m;
        memcpy(out[k].root, all[i].root, 32);
        k++;
    }
    *size = best_votes > 0 ? all[best].size : 0;
    return k;
}

/* The designee for J, unless this node is it or it is suspected. */
static wm_member *
designee(struct job *j)
{
    const struct suspects *s;
    wm_member *m;

    if (j->f->p.members == NULL)
        return NULL;
    m = wm_members_designee(j->f->p.members, j->sha);
    s = suspects_of(j->f, j->sha, 0);
    if (m != NULL && s != NULL && s->has_designee &&
        memcmp(s->designee, m->id, WM_ID_LEN) == 0)
        return NULL;
    return m;
}

/* What upstream says of J's file, starting the page fetch when needed;
 * *FILE is set when it is listed. */
static int
upstream_fact(struct job *j, const wm_upfile **file)
{
    wm_pageinfo info;

    *file = NULL;
    wm_pagecache_get(j->f->p.pages, j->project, &info);
    *file = wm_pagecache_file(j->f->p.pages, j->project, j->sha, j->filename);
    if (*file != NULL)
        return WM_UP_LISTED;
    return info.pending ? WM_UP_PENDING : WM_UP_ABSENT;
}

/* Remembers that ROOT (a chunk map hash), or J's designee when ROOT is
 * NULL, gave bytes that are not J's wheel. */
static void
suspect(struct job *j, const uint8_t *root)
{
    struct suspects *s = suspects_of(j->f, j->sha, 1);

    if (s == NULL)
        return;
    if (root == NULL) {
        memcpy(s->designee, j->designee, WM_ID_LEN);
        s->has_designee = 1;
    } else if (s->nroots < MAX_BAD_ROOTS) {
        memcpy(s->roots[s->nroots++], root, 32);
    }
}

static void on_peers_done(void *arg, wm_pfetch *pf, int rc, const char *why);
static void on_upstream_done(void *arg, const wm_xfer_result *r);

/* Starts the source STEP names. Returns 0, or -1 when it cannot start
 * (then it counts as tried). */
static int
start(struct job *j, enum wm_fetch_action action, const wm_upfile *file)
{
    wm_fetch *f = j->f;
    uint64_t cap = f->p.node->cfg->max_size, size = 0;
    wm_pf_holder hs[MAX_HOLDERS];
    size_t n;

    j->running = action;
    /* What a fetch from peers left in the store moves to the spool, where
     * every other source goes on from. */
    if (wm_download_leave_store(j->dl) != 0)
        return -1;
    switch (action) {
    case WM_FA_PEERS:
        n = holders(j, hs, &size);
        if (n == 0)
            return -1;
        atomic_store(&j->dl->source, WM_SOURCE_PEER);
        atomic_store(&j->dl->total, size);
        j->pf = wm_peerfetch_start(f->p.peers, j->dl, hs, n, size, size, 0,
                                   atomic_load(&j->dl->received),
                                   j->resume_hash, on_peers_done, j);
        j->resume_hash = NULL; /* taken */
        return j->pf != NULL ? 0 : -1;
    case WM_FA_DESIGNEE:
        hs[0].m = designee(j);
        if (hs[0].m == NULL)
            return -1;
        if (file != NULL && file->size > 0)
            cap = file->size;
        memcpy(j->designee, hs[0].m->id, WM_ID_LEN);
        atomic_store(&j->dl->source, WM_SOURCE_PEER);
        atomic_store(&j->dl->total, file != NULL && file->size > 0
                                        ? file->size
                                        : WM_SIZE_UNKNOWN);
        wm_info("fetch: %s: %.16s fetches it from upstream for the cluster",
                j->filename, hs[0].m->hex);
        j->pf = wm_peerfetch_start(f->p.peers, j->dl, hs, 1, WM_SIZE_UNKNOWN,
                                   cap, 1, 0, NULL, on_peers_done, j);
        return j->pf != NULL ? 0 : -1;
    case WM_FA_UPSTREAM:
        if (file == NULL ||
            (atomic_load(&j->dl->received) > 0) != (j->resume_hash != NULL))
            return -1;
        if (file->size > 0)
            cap = file->size;
        atomic_store(&j->dl->source, WM_SOURCE_UPSTREAM);
        /* Readers may have been promised what peers stated: the size
         * changes only where the page says otherwise, or upstream's
         * headers will. */
        if (file->size > 0)
            atomic_store(&j->dl->total, file->size);
        j->xfer = wm_upstream_fetch(f->p.up, file->url, j->dl,
                                    atomic_load(&j->dl->received),
                                    j->resume_hash, cap, on_upstream_done, j);
        j->resume_hash = NULL; /* taken */
        return j->xfer != NULL ? 0 : -1;
    default:
        return -1;
    }
}

/* Decides and starts J's next source, or ends it. */
static void
advance(struct job *j)
{
    for (;;) {
        wm_fetch_facts facts;
        wm_pf_holder hs[MAX_HOLDERS];
        const wm_upfile *file;
        uint64_t size;
        wm_fetch_step step;

        memset(&facts, 0, sizeof(facts));
        facts.holders = (unsigned)holders(j, hs, &size);
        facts.upstream = upstream_fact(j, &file);
        facts.designee_peer = designee(j) != NULL;
        facts.for_peer = j->for_peer;
        facts.tried = j->tried;
        facts.prefix = atomic_load(&j->dl->received);
        facts.timed_out = j->timed_out;
        step = wm_fetchsm_next(&facts);
        j->waiting = step.action == WM_FA_WAIT_PAGE;
        if (j->waiting)
            return;
        if (step.action == WM_FA_FAIL) {
            int have_why = j->why[0] != '\0';
            job_fail(j, step.status, have_why ? j->why : step.why,
                     step.status != 0);
            return;
        }
        if (start(j, step.action, file) == 0)
            return;
        j->tried |= step.action == WM_FA_PEERS      ? WM_SRC_PEERS
                    : step.action == WM_FA_DESIGNEE ? WM_SRC_DESIGNEE
                                                    : WM_SRC_UPSTREAM;
        snprintf(j->why, sizeof(j->why), "cannot start a fetch from %s",
                 wm_fetchsm_action_name(step.action));
    }
}

static void
on_peers_done(void *arg, wm_pfetch *pf, int rc, const char *why)
{
    struct job *j = arg;
    int designee = j->running == WM_FA_DESIGNEE;

    j->pf = NULL;
    if (rc == 0) {
        job_done(j, wm_pfetch_map(pf));
        return;
    }
    snprintf(j->why, sizeof(j->why), "%s", why);
    if (!designee && j->f->p.members != NULL) {
        /* A holder that sent bad bytes is not asked again as designee. */
        wm_member *d = wm_members_designee(j->f->p.members, j->sha);
        if (d != NULL && wm_pfetch_was_bad(pf, d)) {
            memcpy(j->designee, d->id, WM_ID_LEN);
            suspect(j, NULL);
        }
    }
    if (rc == -EBADMSG) {
        /* The bytes readers had are wrong: this download fails, and the
         * next one keeps away from the map or designee that lied. */
        suspect(j, designee ? NULL : wm_pfetch_root(pf));
        job_fail(j, 502, why, 0);
        return;
    }
    /* The verified prefix stays; another source may go on from it. */
    wm_sha256_destroy(&j->resume_hash);
    if (wm_pfetch_prefix(pf) > 0)
        j->resume_hash = wm_pfetch_take_hash(pf);
    j->tried |= designee ? WM_SRC_DESIGNEE : WM_SRC_PEERS;
    if (designee && rc == -EMSGSIZE)
        suspect(j, NULL);
    if (atomic_load(&j->dl->received) > 0)
        wm_info("fetch: %s: %s; going on from upstream", j->filename, why);
    advance(j);
}

static void
on_upstream_done(void *arg, const wm_xfer_result *r)
{
    struct job *j = arg;

    j->xfer = NULL;
    if (r->rc == 0) {
        job_done(j, NULL);
        return;
    }
    j->tried |= WM_SRC_UPSTREAM;
    j->timed_out = r->rc == -ETIMEDOUT;
    snprintf(j->why, sizeof(j->why), "%s", r->why);
    advance(j);
}

/* A new job for SHA (FILENAME, a valid wheel name), registered. */
static struct job *
job_new(wm_fetch *f, const uint8_t *sha, const wm_wheelname *wn, int for_peer)
{
    struct job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    j->f = f;
    memcpy(j->sha, sha, WM_SHA256_LEN);
    snprintf(j->filename, sizeof(j->filename), "%s", wn->filename);
    snprintf(j->project, sizeof(j->project), "%s", wn->project);
    j->for_peer = for_peer;
    j->dl = wm_download_new(f->p.node->cfg->data_dir, sha, wn->filename,
                            WM_SIZE_UNKNOWN, WM_SOURCE_UPSTREAM);
    if (j->dl == NULL || wm_map_put(f->jobs, sha, WM_SHA256_LEN, j) != 0) {
        wm_download_release(j->dl);
        free(j);
        return NULL;
    }
    return j;
}

static int
stored(wm_fetch *f, const uint8_t *sha)
{
    wm_store_view *v;
    wm_file_info info;
    int found = 0;

    if (wm_store_view_open(f->p.node->store, &v) == 0) {
        found = wm_store_get(v, sha, &info) == 0;
        wm_store_view_close(&v);
    }
    return found;
}

wm_download *
wm_fetch_running(wm_fetch *f, const uint8_t *sha)
{
    struct job *j = job_find(f, sha);

    return j != NULL ? j->dl : wm_commit_find(f->p.commit, sha);
}

void
wm_fetch_call(void *arg, wm_call *c)
{
    wm_fetch *f = arg;
    const struct negative *n;
    wm_download *dl;
    wm_wheelname wn;
    struct job *j;

    dl = wm_fetch_running(f, c->sha256);
    if (dl != NULL) {
        c->download = wm_download_ref(dl);
        wm_call_answer(c);
        return;
    }
    if (stored(f, c->sha256)) {
        c->result = -EEXIST;
        wm_call_answer(c);
        return;
    }
    n = negative_hit(f, c->sha256);
    if (n != NULL) {
        wm_call_fail(c, n->status, "%s (remembered; ask again in %lds)",
                     n->why, (long)(n->retry_at - time(NULL)));
        return;
    }
    if (wm_wheelname_parse(c->filename, &wn, NULL) != 0) {
        wm_call_fail(c, 400, "bad wheel filename");
        return;
    }
    j = job_new(f, c->sha256, &wn, 0);
    if (j == NULL) {
        wm_call_fail(c, 503, "cannot start a download (out of memory or "
                             "spool)");
        return;
    }
    /* The caller streams the download; how it ends is in it. */
    c->download = wm_download_ref(j->dl);
    wm_call_answer(c);
    advance(j);
}

int
wm_fetch_for_peer(wm_fetch *f, const uint8_t *sha, const char *filename)
{
    wm_wheelname wn;
    struct job *j;

    if (wm_fetch_running(f, sha) != NULL)
        return 0;
    if (negative_hit(f, sha) != NULL ||
        wm_wheelname_parse(filename, &wn, NULL) != 0 || stored(f, sha))
        return -ENOENT;
    j = job_new(f, sha, &wn, 1);
    if (j == NULL)
        return -ENOENT;
    advance(j); /* may end it at once */
    j = job_find(f, sha);
    if (j == NULL)
        return -ENOENT;
    return j->waiting ? -EAGAIN : 0;
}

/* --- metadata */

static void
meta_done(void *arg, const wm_xfer_result *r)
{
    struct meta *m = arg, **p;
    wm_fetch *f = m->f;
    uint8_t digest[WM_SHA256_LEN];
    wm_blob *blob = NULL;
    const char *why = "upstream has no usable metadata";

    for (p = &f->metas; *p != m; p = &(*p)->next)
        ;
    *p = m->next;
    if (r->rc == 0 && r->status == 200) {
        wm_sha256_digest(r->body, r->len, digest);
        if (memcmp(digest, m->expect, WM_SHA256_LEN) == 0) {
            if (wm_store_put_meta(f->p.node->store, m->sha, r->body,
                                  r->len) != 0)
                wm_warn("upstream: cannot keep the metadata of %s",
                        m->filename);
            blob = wm_blob_new(r->body, r->len);
            why = "out of memory";
        } else {
            atomic_fetch_add(&f->p.node->counters.hash_mismatches, 1);
            wm_error("upstream: %s.metadata fails its sha256; not kept",
                     m->filename);
            why = "upstream metadata fails its hash";
        }
    }
    while (m->waiters != NULL) {
        wm_call *c = m->waiters;
        m->waiters = c->next;
        if (blob == NULL) {
            wm_call_fail(c, 502, "%s", why);
            continue;
        }
        c->blob = wm_blob_ref(blob);
        wm_call_answer(c);
    }
    wm_blob_release(blob);
    free(m);
}

void
wm_fetch_meta_call(void *arg, wm_call *c)
{
    wm_fetch *f = arg;
    char url[WM_URL_MAX + 16];
    const wm_upfile *file;
    wm_store_view *v;
    const void *data;
    wm_pageinfo info;
    wm_wheelname wn;
    struct meta *m;
    size_t len;

    if (wm_store_view_open(f->p.node->store, &v) == 0) {
        if (wm_store_metadata(v, c->sha256, &data, &len) == 0)
            c->blob = wm_blob_new(data, len);
        wm_store_view_close(&v);
        if (c->blob != NULL) {
            wm_call_answer(c);
            return;
        }
    }
    for (m = f->metas; m != NULL; m = m->next) {
        if (memcmp(m->sha, c->sha256, WM_SHA256_LEN) == 0) {
            c->next = m->waiters;
            m->waiters = c;
            return;
        }
    }
    if (wm_wheelname_parse(c->filename, &wn, NULL) != 0) {
        wm_call_fail(c, 400, "bad wheel filename");
        return;
    }
    wm_pagecache_get(f->p.pages, wn.project, &info);
    if (info.pending) {
        c->next = f->parked;
        f->parked = c;
        return;
    }
    file = wm_pagecache_file(f->p.pages, wn.project, c->sha256, c->filename);
    if (file == NULL || !file->metadata_sha256_known) {
        wm_call_fail(c, 404, "no metadata for this file");
        return;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        wm_call_fail(c, 503, "out of memory");
        return;
    }
    m->f = f;
    memcpy(m->sha, c->sha256, WM_SHA256_LEN);
    memcpy(m->expect, file->metadata_sha256, WM_SHA256_LEN);
    snprintf(m->filename, sizeof(m->filename), "%s", c->filename);
    snprintf(url, sizeof(url), "%s.metadata", file->url);
    m->xfer = wm_upstream_get(f->p.up, url, NULL, WM_METADATA_MAX,
                              f->p.node->cfg->timeout_s, meta_done, m);
    if (m->xfer == NULL) {
        free(m);
        wm_call_fail(c, 503, "cannot start the upstream request");
        return;
    }
    c->next = NULL;
    m->waiters = c;
    m->next = f->metas;
    f->metas = m;
}

/* --- the page cache's news */

void
wm_fetch_page_done(void *arg, const char *project, int changed)
{
    wm_fetch *f = arg;
    wm_call *parked = f->parked, *c;
    struct job *ready[64];
    size_t n = 0;
    void *cur = NULL;
    struct job *j;
    wm_wheelname wn;

    /* Collect first: advancing may end jobs and change the map. */
    while ((j = wm_map_next(f->jobs, &cur, NULL, NULL)) != NULL && n < 64)
        if (j->waiting && strcmp(j->project, project) == 0)
            ready[n++] = j;
    for (size_t i = 0; i < n; i++)
        advance(ready[i]);
    f->parked = NULL;
    while (parked != NULL) {
        c = parked;
        parked = c->next;
        if (wm_wheelname_parse(c->filename, &wn, NULL) == 0 &&
            strcmp(wn.project, project) == 0) {
            wm_fetch_meta_call(f, c);
        } else {
            c->next = f->parked;
            f->parked = c;
        }
    }
}

/* --- life cycle */

int
wm_fetch_new(wm_fetch **out, const wm_fetch_parts *parts)
{
    wm_fetch *f = calloc(1, sizeof(*f));

    *out = NULL;
    if (f == NULL)
        return -ENOMEM;
    f->p = *parts;
    f->jobs = wm_map_new();
    f->negative = wm_map_new();
    f->suspects = wm_map_new();
    if (f->jobs == NULL || f->negative == NULL || f->suspects == NULL) {
        wm_fetch_destroy(&f);
        return -ENOMEM;
    }
    *out = f;
    return 0;
}

static void
job_stop(void *arg)
{
    struct job *j = arg;

    wm_download_fail(j->dl, 503, "%s: the node is stopping", j->filename);
    wm_progress_publish(j->f->p.pub, j->sha);
    wm_download_drop_store(j->dl);
    job_free(j);
}

void
wm_fetch_destroy(wm_fetch **fp)
{
    wm_fetch *f;

    if (fp == NULL || *fp == NULL)
        return;
    f = *fp;
    wm_map_destroy(&f->jobs, job_stop);
    wm_map_destroy(&f->negative, free);
    wm_map_destroy(&f->suspects, free);
    while (f->metas != NULL) {
        struct meta *m = f->metas;
        f->metas = m->next;
        wm_upstream_cancel(f->p.up, m->xfer);
        while (m->waiters != NULL) {
            wm_call *c = m->waiters;
            m->waiters = c->next;
            wm_call_fail(c, 503, "node is stopping");
        }
        free(m);
    }
    while (f->parked != NULL) {
        wm_call *c = f->parked;
        f->parked = c->next;
        wm_call_fail(c, 503, "node is stopping");
    }
    free(f);
    *fp = NULL;
}
