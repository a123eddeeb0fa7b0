/*
 * The collector. A pass reads every record (O(wheels), on the loop, once
 * per pass), ranks them and keeps a list of victims; steps then drop a
 * few a turn. Ranks, first to go first: wheels upstream can give back that
 * other members also hold, those upstream can give back, those only the
 * cluster names but others hold; least recently used first within each.
 * Last copies (only the cluster names them, nobody else holds them) are
 * never dropped. Use times reach the store from the usage table once a
 * minute, in one batch.
 */
#include "collector.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define TICK_MS        60000 /* usage into the store, expiry checked */
#define HIGH_PERCENT   95    /* past this fill a pass starts ... */
#define LOW_PERCENT    85    /* ... and drops wheels down to this */
#define STEP_WHEELS    4
#define MAX_HOLDERS    64
#define MAX_TOUCH      4096

enum reason { BY_SIZE, BY_EXPIRY, BY_PRUNE, BY_NAMESAKE };

struct victim {
    uint8_t sha[32];
    char project[WM_PROJECT_MAX + 1];
    uint64_t size;
};

/* A wheel as a pass sees it. */
struct cand {
    uint8_t sha[32];
    char project[WM_PROJECT_MAX + 1];
    uint64_t size;
    int64_t last_used;
    int rank; /* 0..2, or 3 for a last copy */
};

struct wm_collector {
    wm_collector_parts p;
    wm_collector_stats stats;
    int64_t next_tick, tick_ms;
    int pending;         /* a pass is wanted */
    enum reason reason;  /* of the victims in the list */
    struct victim *victims;
    size_t nvictims, next;
    wm_call *prunes; /* answered when the list is done */
    uint64_t prune_evicted, prune_bytes;
    uint64_t kept, kept_bytes; /* last copies the last plan left */
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

    if (c->ntouch == MAX_TOUCH)
        return; /* the rest wait for the next minute */
    c->touch_prefix[c->ntouch] = prefix;
    c->touch_when[c->ntouch++] = when;
}

static void
write_uses(wm_collector *c)
{
    c->ntouch = 0;
    wm_usage_drain(c->p.node->usage, on_use, c);
    if (c->ntouch > 0 &&
        wm_store_touch(c->p.node->store, c->touch_prefix, c->touch_when,
                       c->ntouch) != 0)
        wm_warn("collector: cannot write when wheels were last used");
}

/* --- a pass */

struct pass {
    wm_collector *c;
    struct cand *v;
    size_t n, cap;
    int64_t now;
    const wm_call *filter; /* a prune's, or NULL */
};

/* How replaceable INFO is: 0 upstream gives it back and others hold it,
 * 1 upstream gives it back, 2 others hold it, 3 nobody else: a last
 * copy. */
static int
rank_of(wm_collector *c, const wm_file_info *info)
{
    wm_holding hs[MAX_HOLDERS];
    wm_pageinfo page;
    size_t n = wm_index_holders(c->p.index, info->sha256, hs, MAX_HOLDERS);
    int upstream, others = 0;

    wm_pagecache_peek(c->p.pages, info->project, &page);
    upstream = wm_pagecache_file(c->p.pages, info->project, info->sha256,
                                 info->filename) != NULL;
    for (size_t i = 0; i < n && i < MAX_HOLDERS && !others; i++)
        others = c->p.members != NULL &&
                 wm_member_usable(wm_members_get(c->p.members, hs[i].origin));
    if (upstream)
        return others ? 0 : 1;
    return others ? 2 : 3;
}

/* Does the pass of FILTER see every wheel? */
static int
sees_all(const wm_call *filter)
{
    return filter == NULL || filter->prune.all || filter->prune.to_size > 0;
}

static int
selected(const struct pass *ps, const wm_file_info *info)
{
    const wm_call *f = ps->filter;

    if (sees_all(f))
        return 1;
    if (f->project[0] != '\0')
        return strcmp(f->project, info->project) == 0;
    return ps->now - info->last_used >= (int64_t)f->prune.older_than_days *
                                            86400;
}

static int
collect(const wm_file_info *info, void *arg)
{
    struct pass *ps = arg;
    struct cand *k;

    if (!selected(ps, info))
        return 0;
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 256;
        struct cand *more = realloc(ps->v, cap * sizeof(*more));
        if (more == NULL)
            return -1;
        ps->v = more;
        ps->cap = cap;
    }
    k = &ps->v[ps->n++];
    memcpy(k->sha, info->sha256, 32);
    snprintf(k->project, sizeof(k->project), "%s", info->project);
    k->size = info->size;
    k->last_used = info->last_used;
    k->rank = rank_of(ps->c, info);
    return 0;
}

static int
cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;

    if (x->rank != y->rank)
        return x->rank - y->rank;
    return x->last_used < y->last_used ? -1 : x->last_used > y->last_used;
}

/* Plans the victims of a pass for REASON (FILTER: a prune's), down to
 * TARGET bytes held (UINT64_MAX: whatever the selection and expiry say). */
static void
plan(wm_collector *c, enum reason reason, const wm_call *filter,
     uint64_t target)
{
    struct pass ps = {c, NULL, 0, 0, wm_usage_now(), filter};
    uint64_t held = held_bytes(c), expire =
                                       (uint64_t)c->p.node->cfg
                                           ->expire_after_days *
                                       86400;
    wm_store_view *v;
    int64_t t0 = wm_now_ms();

    free(c->victims);
    c->victims = NULL;
    c->nvictims = c->next = 0;
    c->reason = reason;
    write_uses(c); /* the order is by use times as of now */
    if (wm_store_view_open(c->p.node->store, &v) != 0)
        return;
    wm_store_each_file(v, NULL, collect, &ps);
    wm_store_view_close(&v);
    if (ps.n > 1)
        qsort(ps.v, ps.n, sizeof(*ps.v), cmp_cand);
    c->victims = calloc(ps.n + 1, sizeof(*c->victims));
    c->kept = c->kept_bytes = 0;
    for (size_t i = 0; c->victims != NULL && i < ps.n; i++) {
        const struct cand *k = &ps.v[i];
        int expired = expire > 0 && ps.now - k->last_used >= (int64_t)expire;
        if (k->rank == 3) {
            c->kept++;
            c->kept_bytes += k->size;
            continue;
        }
        /* By size, down to the target; by expiry or a prune, all
         * selected. */
        if (reason == BY_SIZE && held <= target && !expired)
            continue;
        if (reason == BY_EXPIRY && !expired)
            continue;
        if (reason == BY_PRUNE && filter->prune.to_size > 0 &&
            held <= filter->prune.to_size)
            continue;
        memcpy(c->victims[c->nvictims].sha, k->sha, 32);
        snprintf(c->victims[c->nvictims].project,
                 sizeof(c->victims[0].project), "%s", k->project);
        c->victims[c->nvictims++].size = k->size;
        held = held > k->size ? held - k->size : 0;
    }
    free(ps.v);
    if (sees_all(filter)) {
        c->stats.last_copies = c->kept;
        c->stats.last_copy_bytes = c->kept_bytes;
    }
    c->stats.passes++;
    c->stats.busy_s += (double)(wm_now_ms() - t0) / 1000.0;
    if (c->nvictims > 0)
        wm_info("collector: %zu wheels to drop (%s)", c->nvictims,
                reason == BY_SIZE     ? "over cache.max_size"
                : reason == BY_EXPIRY ? "unused too long"
                                      : "prune");
}

/* Drops one wheel with its remove entry, in one transaction. */
static int
evict(wm_collector *c, const struct victim *vi, enum reason reason)
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
    rc = wm_store_remove(c->p.node->store, vi->sha, logged == 1 ? &kv : NULL);
    wm_buf_free(&val);
    if (rc != 0)
        return rc;
    if (logged == 1 && wm_index_take_local(c->p.index, &e) == 0 &&
        c->p.removed != NULL)
        c->p.removed(c->p.arg, &e, vi->project);
    c->stats.evicted[reason]++;
    c->stats.bytes_freed += vi->size;
    if (reason == BY_PRUNE) {
        c->prune_evicted++;
        c->prune_bytes += vi->size;
    }
    return 0;
}

static void
answer_prunes(wm_collector *c)
{
    char body[256];
    int n;

    n = snprintf(body, sizeof(body),
                 "{\"evicted\": %llu, \"bytes\": %llu, "
                 "\"kept_last_copies\": %llu}",
                 (unsigned long long)c->prune_evicted,
                 (unsigned long long)c->prune_bytes,
                 (unsigned long long)c->kept);
    while (c->prunes != NULL) {
        wm_call *call = c->prunes;
        c->prunes = call->next;
        call->blob = wm_blob_new(body, (size_t)n);
        if (call->blob == NULL)
            wm_call_fail(call, 500, "out of memory");
        else
            wm_call_answer(call);
    }
    c->prune_evicted = c->prune_bytes = 0;
}

static void
step(wm_collector *c)
{
    int64_t t0 = wm_now_ms();

    for (int i = 0; i < STEP_WHEELS && c->next < c->nvictims; i++) {
        const struct victim *vi = &c->victims[c->next++];
        int rc = evict(c, vi, c->reason);
        if (rc != 0 && rc != -ENOENT)
            wm_warn("collector: cannot drop a wheel of %s: %s", vi->project,
                    strerror(-rc));
    }
    c->stats.busy_s += (double)(wm_now_ms() - t0) / 1000.0;
    if (c->next < c->nvictims)
        return;
    if (c->reason == BY_PRUNE)
        answer_prunes(c);
    free(c->victims);
    c->victims = NULL;
    c->nvictims = c->next = 0;
}

void
wm_collector_stored(void *arg, const wm_file_info *info,
                    const wm_entry *logged)
{
    wm_collector *c = arg;

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
wm_collector_room(wm_collector *c, uint64_t size)
{
    uint64_t cap = c->p.node->cfg->max_size;

    if (held_bytes(c) + size <= cap)
        return 1;
    if (c->nvictims == 0) /* see what can go, and start on it */
        plan(c, BY_SIZE, NULL, mark(c, LOW_PERCENT));
    return c->stats.last_copy_bytes + size <= cap;
}

int
wm_collector_drop(void *arg, const uint8_t *sha)
{
    wm_collector *c = arg;
    struct victim vi;
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
    return evict(c, &vi, BY_NAMESAKE);
}

void
wm_collector_prune_call(void *arg, wm_call *call)
{
    wm_collector *c = arg;

    if (c->nvictims > 0 && c->reason == BY_PRUNE) {
        wm_call_fail(call, 409, "a prune is running; ask again when it ends");
        return;
    }
    plan(c, BY_PRUNE, call, UINT64_MAX);
    call->next = c->prunes;
    c->prunes = call;
    if (c->nvictims == 0)
        answer_prunes(c);
}

void
wm_collector_stats_get(const wm_collector *c, wm_collector_stats *s)
{
    *s = c->stats;
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
                  "# HELP wheelmesh_last_copies Wheels kept over the cap: "
                  "nobody else can give them back.\n"
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

    if (c->nvictims > 0 || c->pending)
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
    int64_t now = wm_now_ms();

    if (c->nvictims > 0) {
        step(c);
        return;
    }
    if (now >= c->next_tick) {
        c->next_tick = now + c->tick_ms;
        write_uses(c);
        if (c->p.node->cfg->expire_after_days > 0)
            plan(c, BY_EXPIRY, NULL, UINT64_MAX);
        if (c->nvictims > 0)
            return;
    }
    if (c->pending) {
        c->pending = 0;
        if (held_bytes(c) > mark(c, HIGH_PERCENT))
            plan(c, BY_SIZE, NULL, mark(c, LOW_PERCENT));
    }
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
    c->pending = 1; /* a store over its cap from the last run */
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
    free(c->victims);
    free(c);
    *cp = NULL;
}
