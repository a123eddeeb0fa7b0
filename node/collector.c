/*
 * The collector. A pass reads every file record, a slice per loop turn
 * (each slice in a fresh read view, so neither probes nor LMDB's page
 * reuse wait on it), ranks the wheels and keeps a list of victims; steps
 * then drop a few a turn, each in its own transaction with its remove
 * entry.
 *
 * Ranks: a wheel an upstream page lists can be given back, so it may go,
 * first when other members hold it too, least recently used first. A
 * wheel no upstream page lists is kept, whoever else says they hold it:
 * a holdings log is a peer's word, and a compromised peer (or two nodes
 * pruning at once) must not make a node drop the last real copy. Only a
 * prune of its project by an operator drops it.
 */
#include "collector.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "download.h"
#include "log.h"

#define TICK_MS      60000 /* use times into the store, expiry checked */
#define HIGH_PERCENT 95    /* past this fill a pass starts ... */
#define LOW_PERCENT  85    /* ... and drops wheels down to this */
#define SLICE        512   /* records read a loop turn */
#define STEP_WHEELS  4     /* wheels dropped a loop turn */
#define MAX_HOLDERS  64
#define MAX_TOUCH    4096  /* use times written at once */

enum reason { BY_SIZE, BY_EXPIRY, BY_PRUNE, BY_NAMESAKE };
enum rank { RANK_SHARED, RANK_UPSTREAM, RANK_KEEP };

/* A wheel as a pass sees it. */
struct cand {
    uint8_t sha[32];
    char project[WM_PROJECT_MAX + 1];
    uint64_t size;
    int64_t last_used;
    enum rank rank;
};

struct wm_collector {
    wm_collector_parts p;
    wm_collector_stats stats;
    int64_t next_tick, tick_ms;
    int pending; /* a size pass is wanted */
    /* what is known of the store: the last pass over every wheel, and
     * what came and went since */
    int known;
    uint64_t keep_bytes, evictable_bytes;
    /* the pass being read, a slice a turn */
    int scanning;
    enum reason reason;
    const wm_call *filter; /* a prune's (the first waiting), or NULL */
    uint8_t from[32];
    int64_t now; /* the use clock when the pass began */
    struct cand *v;
    size_t n, cap;
    uint64_t pass_keep, pass_keep_bytes, pass_evictable_bytes;
    /* its victims: V[0..NVICTIMS), dropped from NEXT on */
    size_t nvictims, next;
    wm_call *prunes; /* answered when their pass is done */
    uint64_t prune_evicted, prune_bytes, prune_kept;
    uint64_t touch_prefix[MAX_TOUCH];
    int64_t touch_when[MAX_TOUCH];
    size_t ntouch;
};

static uint64_t
held_bytes(const wm_collector *c)
{
    uint64_t files = 0, bytes = 0;

    wm_store_usage(c->p.node->store, &files, &bytes);
    return bytes;
}

static uint64_t
mark(const wm_collector *c, int percent)
{
    return c->p.node->cfg->max_size / 100 * (uint64_t)percent;
}

/* --- use times */

static void
on_use(void *arg, uint64_t prefix, int64_t when)
{
    wm_collector *c = arg;

    c->touch_prefix[c->ntouch] = prefix;
    c->touch_when[c->ntouch++] = when;
}

/* Writes the use times noted since the last time, MAX_TOUCH at once. */
static void
write_uses(wm_collector *c)
{
    do {
        c->ntouch = 0;
        wm_usage_drain(c->p.node->usage, MAX_TOUCH, on_use, c);
        if (c->ntouch > 0 &&
            wm_store_touch(c->p.node->store, c->touch_prefix, c->touch_when,
                           c->ntouch) != 0) {
            wm_warn("collector: cannot write when wheels were last used");
            return;
        }
    } while (c->ntouch == MAX_TOUCH);
}

/* --- ranks */

static enum rank
rank_of(wm_collector *c, const wm_file_info *info)
{
    wm_holding hs[MAX_HOLDERS];
    wm_pageinfo page;
    size_t n;

    /* Loads the project's kept page, if any, for the lookup below. */
    wm_pagecache_peek(c->p.pages, info->project, &page);
    if (wm_pagecache_file(c->p.pages, info->project, info->sha256,
                          info->filename) == NULL)
        return RANK_KEEP;
    n = wm_index_holders(c->p.index, info->sha256, hs, MAX_HOLDERS);
    for (size_t i = 0; i < n && i < MAX_HOLDERS; i++)
        if (c->p.members != NULL &&
            wm_member_usable(wm_members_get(c->p.members, hs[i].origin)))
            return RANK_SHARED;
    return RANK_UPSTREAM;
}

/* Counts a wheel of RANK and SIZE in (SIGN 1) or out (-1) of what is
 * known of the store. */
static void
account(wm_collector *c, enum rank rank, uint64_t size, int sign)
{
    uint64_t *b = rank == RANK_KEEP ? &c->keep_bytes : &c->evictable_bytes;

    if (sign > 0)
        *b += size;
    else
        *b = *b > size ? *b - size : 0;
}

/* --- a pass */

/* Does the pass of FILTER see every wheel? */
static int
sees_all(const wm_call *filter)
{
    return filter == NULL || filter->prune.all || filter->prune.to_size > 0;
}

static int
selected(const wm_collector *c, const wm_file_info *info)
{
    const wm_call *f = c->filter;

    if (sees_all(f))
        return 1;
    if (f->project[0] != '\0')
        return strcmp(f->project, info->project) == 0;
    return c->now - info->last_used >=
           (int64_t)f->prune.older_than_days * 86400;
}

static int
collect(const wm_file_info *info, void *arg)
{
    wm_collector *c = arg;
    enum rank rank;
    struct cand *k;

    if (!selected(c, info))
        return 0;
    rank = rank_of(c, info);
    if (rank == RANK_KEEP) {
        c->pass_keep++;
        c->pass_keep_bytes += info->size;
        /* Kept, unless an operator prunes its project by name. */
        if (c->filter == NULL || c->filter->project[0] == '\0')
            return 0;
    } else {
        c->pass_evictable_bytes += info->size;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        struct cand *more = realloc(c->v, cap * sizeof(*more));
        if (more == NULL)
            return -ENOMEM;
        c->v = more;
        c->cap = cap;
    }
    k = &c->v[c->n++];
    memcpy(k->sha, info->sha256, 32);
    snprintf(k->project, sizeof(k->project), "%s", info->project);
    k->size = info->size;
    k->last_used = info->last_used;
    k->rank = rank;
    return 0;
}

static int
cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;

    if (x->rank != y->rank)
        return (int)x->rank - (int)y->rank;
    return x->last_used < y->last_used ? -1 : x->last_used > y->last_used;
}

/* Starts a pass for REASON; FILTER is the prune it serves, or NULL. */
static void
pass_begin(wm_collector *c, enum reason reason, const wm_call *filter)
{
    write_uses(c); /* the order is by use times as of now */
    c->scanning = 1;
    c->reason = reason;
    c->filter = filter;
    memset(c->from, 0, sizeof(c->from));
    c->now = wm_usage_now();
    c->n = c->nvictims = c->next = 0;
    c->pass_keep = c->pass_keep_bytes = c->pass_evictable_bytes = 0;
}

static void answer_prunes(wm_collector *c, const char *failed);

/* The pass has read every record: what is known of the store is renewed,
 * and the victims are picked, in rank and use order. */
static void
pass_end(wm_collector *c)
{
    uint64_t held = held_bytes(c);
    uint64_t expire = (uint64_t)c->p.node->cfg->expire_after_days * 86400;
    uint64_t to = c->reason == BY_PRUNE && c->filter->prune.to_size > 0
                      ? c->filter->prune.to_size
                      : 0;
    size_t m = 0;

    c->scanning = 0;
    c->stats.passes++;
    if (c->reason == BY_SIZE) /* past the high-water mark: down to low */
        to = held > mark(c, HIGH_PERCENT) ? mark(c, LOW_PERCENT) : held;
    if (sees_all(c->filter)) {
        c->known = 1;
        c->keep_bytes = c->pass_keep_bytes;
        c->evictable_bytes = c->pass_evictable_bytes;
        c->stats.last_copies = c->pass_keep;
        c->stats.last_copy_bytes = c->pass_keep_bytes;
    }
    if (c->n > 1)
        qsort(c->v, c->n, sizeof(*c->v), cmp_cand);
    for (size_t i = 0; i < c->n; i++) {
        const struct cand *k = &c->v[i];
        int expired = expire > 0 && c->now - k->last_used >= (int64_t)expire;
        int take = c->reason == BY_SIZE     ? held > to
                   : c->reason == BY_EXPIRY ? expired
                   : to > 0                 ? held > to
                                            : 1;
        if (!take)
            continue;
        c->v[m++] = *k;
        held = held > k->size ? held - k->size : 0;
    }
    c->nvictims = m;
    c->next = 0;
    c->prune_kept = c->reason == BY_PRUNE ? c->pass_keep : 0;
    if (m > 0)
        wm_info("collector: %zu wheels to drop (%s)", m,
                c->reason == BY_SIZE     ? "over cache.max_size"
                : c->reason == BY_EXPIRY ? "unused too long"
                                         : "prune");
    else if (c->reason == BY_PRUNE)
        answer_prunes(c, NULL);
}

/* Reads the next slice of records. */
static void
pass_slice(wm_collector *c)
{
    wm_store_view *v;
    int rc = wm_store_view_open(c->p.node->store, &v);

    if (rc == 0) {
        rc = wm_store_scan(v, c->from, SLICE, collect, c);
        wm_store_view_close(&v);
    }
    if (rc == 1) {
        pass_end(c);
    } else if (rc < 0) {
        wm_warn("collector: a pass stopped: %s", strerror(-rc));
        c->scanning = 0;
        c->n = 0;
        if (c->reason == BY_PRUNE)
            answer_prunes(c, strerror(-rc));
    }
}

/* --- dropping */

/* Drops one wheel with its remove entry, in one transaction. */
static int
evict(wm_collector *c, const struct cand *vi, enum reason reason)
{
    uint8_t key[WM_INDEX_KEY_LEN];
    wm_store_kv kv = {WM_TABLE_LOG, key, sizeof(key), NULL, 0};
    wm_entry e;
    wm_buf val;
    int rc, logged;

    logged = wm_index_prepare_local(c->p.index, NULL, vi->sha, &e);
    if (logged < 0)
        return -EIO;
    wm_buf_init(&val, WM_WIRE_FRAME_MAX);
    if (logged == 1 && wm_index_record(c->p.index, &e, key, &val) != 0) {
        wm_buf_free(&val);
        return -EIO;
    }
    kv.val = val.data;
    kv.vlen = val.len;
    /* A download whose bytes are this wheel's chunks (stored from a peer
     * fetch, a client still reading it) goes on from its spool. */
    wm_download_unstore(vi->sha);
    rc = wm_store_remove(c->p.node->store, vi->sha, logged == 1 ? &kv : NULL);
    wm_buf_free(&val);
    if (rc != 0)
        return rc;
    if (logged == 1 && wm_index_take_local(c->p.index, &e) == 0 &&
        c->p.removed != NULL)
        c->p.removed(c->p.arg, &e, vi->project);
    account(c, vi->rank, vi->size, -1);
    c->stats.evicted[reason]++;
    c->stats.bytes_freed += vi->size;
    if (reason == BY_PRUNE) {
        c->prune_evicted++;
        c->prune_bytes += vi->size;
    }
    return 0;
}

/* Answers every waiting prune: with the counts, or FAILED. */
static void
answer_prunes(wm_collector *c, const char *failed)
{
    char body[256];
    int n;

    n = snprintf(body, sizeof(body),
                 "{\"evicted\": %" PRIu64 ", \"bytes\": %" PRIu64
                 ", \"kept_last_copies\": %" PRIu64 "}",
                 c->prune_evicted, c->prune_bytes, c->prune_kept);
    while (c->prunes != NULL) {
        wm_call *call = c->prunes;
        c->prunes = call->next;
        if (failed != NULL) {
            wm_call_fail(call, 500, "the prune stopped: %s", failed);
            continue;
        }
        call->blob = wm_blob_new(body, (size_t)n);
        if (call->blob == NULL)
            wm_call_fail(call, 500, "out of memory");
        else
            wm_call_answer(call);
    }
    c->prune_evicted = c->prune_bytes = c->prune_kept = 0;
    c->filter = NULL;
}

static void
step(wm_collector *c)
{
    for (int i = 0; i < STEP_WHEELS && c->next < c->nvictims; i++) {
        const struct cand *vi = &c->v[c->next++];
        int rc = evict(c, vi, c->reason);
        if (rc != 0 && rc != -ENOENT)
            wm_warn("collector: cannot drop a wheel of %s: %s", vi->project,
                    strerror(-rc));
    }
    if (c->next < c->nvictims)
        return;
    if (c->reason == BY_PRUNE)
        answer_prunes(c, NULL);
    c->nvictims = c->next = c->n = 0;
    /* Still over: what came in meanwhile, or a pass a prune cut short. */
    if (held_bytes(c) > mark(c, HIGH_PERCENT))
        c->pending = 1;
}

/* --- the loop's part and the calls */

void
wm_collector_stored(void *arg, const wm_file_info *info,
                    const wm_entry *logged)
{
    wm_collector *c = arg;

    (void)logged;
    account(c, rank_of(c, info), info->size, 1);
    if (held_bytes(c) > mark(c, HIGH_PERCENT))
        c->pending = 1;
}

void
wm_collector_full(void *arg)
{
    wm_collector *c = arg;

    c->pending = 1;
}

int
wm_collector_room(void *arg, uint64_t size)
{
    wm_collector *c = arg;
    uint64_t cap = c->p.node->cfg->max_size;
    /* Until a pass has read every wheel, all of them might be kept. */
    uint64_t keep = c->known ? c->keep_bytes : held_bytes(c);

    return held_bytes(c) + size <= cap || keep + size <= cap;
}

int
wm_collector_room_chunks(void *arg, uint64_t bytes)
{
    wm_collector *c = arg;
    uint64_t cap = c->p.node->cfg->max_size;
    uint64_t used = held_bytes(c) + wm_store_orphan_bytes(c->p.node->store);

    return used <= cap && bytes <= cap - used;
}

int
wm_collector_drop(void *arg, const uint8_t *sha)
{
    wm_collector *c = arg;
    struct cand vi;
    wm_file_info info;
    wm_store_view *v;
    int rc;

    if (wm_store_view_open(c->p.node->store, &v) != 0)
        return -EIO;
    rc = wm_store_get(v, sha, &info);
    wm_store_view_close(&v);
    if (rc != 0)
        return rc;
    memcpy(vi.sha, sha, sizeof(vi.sha));
    snprintf(vi.project, sizeof(vi.project), "%s", info.project);
    vi.size = info.size;
    vi.rank = rank_of(c, &info);
    return evict(c, &vi, BY_NAMESAKE);
}

void
wm_collector_prune_call(void *arg, wm_call *call)
{
    wm_collector *c = arg;

    if (c->prunes != NULL) {
        wm_call_fail(call, 409, "a prune is running; ask again when it ends");
        return;
    }
    if (c->reason != BY_PRUNE && (c->scanning || c->next < c->nvictims))
        c->pending = 1; /* the size pass it cuts short starts again */
    call->next = NULL;
    c->prunes = call;
    pass_begin(c, BY_PRUNE, call);
}

void
wm_collector_status(const wm_collector *c, cJSON *root)
{
    const wm_collector_stats *s = &c->stats;
    cJSON *o = cJSON_AddObjectToObject(root, "collector");

    if (o == NULL)
        return;
    cJSON_AddNumberToObject(o, "evicted_size", (double)s->evicted[BY_SIZE]);
    cJSON_AddNumberToObject(o, "evicted_expiry",
                            (double)s->evicted[BY_EXPIRY]);
    cJSON_AddNumberToObject(o, "evicted_prune", (double)s->evicted[BY_PRUNE]);
    cJSON_AddNumberToObject(o, "replaced", (double)s->evicted[BY_NAMESAKE]);
    cJSON_AddNumberToObject(o, "bytes_freed", (double)s->bytes_freed);
    cJSON_AddNumberToObject(o, "last_copies", (double)s->last_copies);
    cJSON_AddNumberToObject(o, "last_copy_bytes", (double)s->last_copy_bytes);
    cJSON_AddNumberToObject(o, "busy_s", s->busy_s);
}

void
wm_collector_metrics(const wm_collector *c, wm_buf *b)
{
    const wm_collector_stats *s = &c->stats;

    wm_buf_printf(b,
                  "# HELP wheelmesh_evictions_total Wheels dropped from the "
                  "store, by reason.\n"
                  "# TYPE wheelmesh_evictions_total counter\n"
                  "wheelmesh_evictions_total{reason=\"size\"} %" PRIu64 "\n"
                  "wheelmesh_evictions_total{reason=\"expiry\"} %" PRIu64 "\n"
                  "wheelmesh_evictions_total{reason=\"prune\"} %" PRIu64 "\n"
                  "wheelmesh_evictions_total{reason=\"replaced\"} %" PRIu64
                  "\n",
                  s->evicted[BY_SIZE], s->evicted[BY_EXPIRY],
                  s->evicted[BY_PRUNE], s->evicted[BY_NAMESAKE]);
    wm_buf_printf(b,
                  "# HELP wheelmesh_evicted_bytes_total Bytes of wheels "
                  "dropped from the store.\n"
                  "# TYPE wheelmesh_evicted_bytes_total counter\n"
                  "wheelmesh_evicted_bytes_total %" PRIu64 "\n"
                  "# HELP wheelmesh_last_copies Wheels the collector never "
                  "drops: no upstream page lists them.\n"
                  "# TYPE wheelmesh_last_copies gauge\n"
                  "wheelmesh_last_copies %" PRIu64 "\n"
                  "# HELP wheelmesh_collector_seconds_total Time the "
                  "collector spent on the loop.\n"
                  "# TYPE wheelmesh_collector_seconds_total counter\n"
                  "wheelmesh_collector_seconds_total %.3f\n",
                  s->bytes_freed, s->last_copies, s->busy_s);
}

size_t
wm_collector_poll(void *arg, zmq_pollitem_t *items, size_t max,
                  long *timeout_ms)
{
    wm_collector *c = arg;
    int64_t left = c->next_tick - wm_now_ms();

    (void)items;
    (void)max;
    if (c->scanning || c->next < c->nvictims || c->pending)
        left = 0;
    if (left < 0)
        left = 0;
    if (left < *timeout_ms)
        *timeout_ms = (long)left;
    return 0;
}

void
wm_collector_dispatch(void *arg, const zmq_pollitem_t *items, size_t n)
{
    wm_collector *c = arg;
    int64_t t0 = wm_now_ms();

    (void)items;
    (void)n;
    if (c->next < c->nvictims)
        step(c);
    else if (c->scanning)
        pass_slice(c);
    else if (t0 >= c->next_tick) {
        c->next_tick = t0 + c->tick_ms;
        if (c->p.node->cfg->expire_after_days > 0)
            pass_begin(c, BY_EXPIRY, NULL);
        else
            write_uses(c);
    } else if (c->pending) {
        c->pending = 0;
        /* Nothing to gain when the last pass found only kept wheels. */
        if (held_bytes(c) > mark(c, HIGH_PERCENT) &&
            (!c->known || c->evictable_bytes > 0))
            pass_begin(c, BY_SIZE, NULL);
    }
    c->stats.busy_s += (double)(wm_now_ms() - t0) / 1000.0;
}

int
wm_collector_new(wm_collector **out, const wm_collector_parts *parts)
{
    wm_collector *c = calloc(1, sizeof(*c));

    *out = c;
    if (c == NULL)
        return -ENOMEM;
    c->p = *parts;
    c->tick_ms = TICK_MS;
    c->next_tick = wm_now_ms() + TICK_MS;
    if (wm_usage_clock_offset() != 0) {
        /* A test that moved the clock wants to see wheels expire soon,
         * after its first reads. */
        c->tick_ms = 1000;
        c->next_tick = wm_now_ms() + 3000;
    }
    /* A first pass learns what is kept (and trims a store over its cap
     * from the last run). */
    pass_begin(c, BY_SIZE, NULL);
    return 0;
}

void
wm_collector_destroy(wm_collector **cp)
{
    wm_collector *c;

    if (cp == NULL || *cp == NULL)
        return;
    c = *cp;
    while (c->prunes != NULL) {
        wm_call *call = c->prunes;
        c->prunes = call->next;
        wm_call_fail(call, 503, "node is stopping");
    }
    free(c->v);
    free(c);
    *cp = NULL;
}
