/*
 * The cluster's glue and its gossip. Messages from the transport go to the
 * part they are for: probes to membership, chunks to peer fetches,
 * requests to peer serving, digests and entries to the index's
 * anti-entropy here. Anti-entropy is scuttlebutt: every second one random
 * member gets the hash of this node's digest; only when the hashes differ
 * do the two swap digests, then exactly the missing entries. New entries
 * are also pushed to three members at once and relayed once by each.
 */
#include "cluster.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "peerserve.h"
#include "transport.h"
#include "wheelname.h"

#define TICK_MS   50 /* while a peer fetch runs */
#define GOSSIP_MS 1000
#define FANOUT    3

struct wm_cluster {
    wm_node *node;
    wm_trust *trust;
    void *pub;
    wm_listing_fn changed;
    void *changed_arg;
    int enabled;
    wm_index *index;
    wm_members *members;
    wm_transport *t;
    wm_peerfetch *peers;
    wm_peerserve *serve;
    int64_t next_gossip;
    int64_t next_fetch_tick; /* while a peer fetch runs */
    wm_msg *out;
    /* entries for one peer, gathered before sending */
    const wm_from *batch_to;
    wm_member *batch_member;
    size_t batch_n;
    uint64_t rounds;
};

static void
listing_changed(wm_cluster *c, const char *project)
{
    if (c->changed != NULL)
        c->changed(c->changed_arg, project);
}

/* The project an entry's claim names, into OUT; NULL when none. */
static const char *
entry_project(const wm_entry *e, wm_wheelname *wn)
{
    if (!e->has_claim || wm_wheelname_parse(e->claim.filename, wn, NULL) != 0)
        return NULL;
    return wn->project;
}

/* --- sending entries, in messages of at most WM_WIRE_MAX_ENTRIES */

static void
batch_flush(wm_cluster *c)
{
    if (c->batch_n == 0)
        return;
    c->out->type = WM_MSG_ENTRIES;
    c->out->nentries = c->batch_n;
    if (c->batch_to != NULL)
        wm_transport_reply(c->t, c->batch_to, c->out, NULL, 0);
    else
        wm_transport_send(c->t, c->batch_member, c->out, NULL, 0);
    c->batch_n = 0;
}

static void
batch_add(void *arg, const wm_entry *e)
{
    wm_cluster *c = arg;

    if (c->batch_n == WM_WIRE_MAX_ENTRIES)
        batch_flush(c);
    c->out->entries[c->batch_n++] = *e;
}

/* Sends the N entries of LIST to up to FANOUT random members but EXCEPT. */
static void
push(wm_cluster *c, const wm_member *except, const wm_entry *list, size_t n)
{
    wm_member *to[FANOUT];
    size_t k = wm_members_pick(c->members, except, to, FANOUT);

    for (size_t i = 0; i < k; i++) {
        c->batch_to = NULL;
        c->batch_member = to[i];
        for (size_t j = 0; j < n; j++)
            batch_add(c, &list[j]);
        batch_flush(c);
    }
}

/* Tells peers and the catalog of E, an entry of this node's own log about
 * a wheel of PROJECT. */
static void
spread_local(wm_cluster *c, const wm_entry *e, const char *project)
{
    if (e->has_claim || e->op == WM_OP_REMOVE)
        listing_changed(c, project);
    if (c->enabled)
        push(c, NULL, e, 1);
}

void
wm_cluster_stored(void *arg, const wm_file_info *info, const wm_entry *logged)
{
    if (logged != NULL)
        spread_local(arg, logged, info->project);
}

void
wm_cluster_removed(void *arg, const wm_entry *e, const char *project)
{
    spread_local(arg, e, project);
}

/* --- anti-entropy */

static void
send_digest(wm_cluster *c, const wm_from *f, wm_member *to, int flags)
{
    wm_msg *m = c->out;

    memset(m, 0, sizeof(*m));
    m->type = WM_MSG_DIGEST;
    m->ndigest = wm_index_digest(c->index, m->digest, WM_WIRE_MAX_DIGEST);
    wm_digest_hash(m->digest, m->ndigest, m->digest_hash);
    m->flags = (uint8_t)flags;
    if (!(flags & WM_DIGEST_FULL))
        m->ndigest = 0;
    if (f != NULL)
        wm_transport_reply(c->t, f, m, NULL, 0);
    else
        wm_transport_send(c->t, to, m, NULL, 0);
}

static void
on_digest(wm_cluster *c, const wm_from *f, const wm_msg *d)
{
    uint8_t mine[32];
    wm_digest_item *items = c->out->digest;
    size_t n;
    int lacking;
    int64_t now = wm_now_ms();

    if (!(d->flags & WM_DIGEST_FULL)) {
        n = wm_index_digest(c->index, items, WM_WIRE_MAX_DIGEST);
        wm_digest_hash(items, n, mine);
        if (memcmp(mine, d->digest_hash, 32) != 0)
            send_digest(c, f, NULL, WM_DIGEST_FULL | WM_DIGEST_REPLY);
        return;
    }
    /* Send what the peer lacks; when this node lacks some, show it our
     * digest so the peer sends them. At most one such answer per peer per
     * second: entries that keep failing (a bad signature) must not make
     * two nodes trade digests forever. */
    memset(c->out, 0, offsetof(wm_msg, entries));
    c->batch_to = f;
    c->batch_n = 0;
    lacking = wm_index_compare(c->index, d->digest, d->ndigest, batch_add, c);
    batch_flush(c);
    if (!lacking || f->m == NULL || now - f->m->digest_sent < GOSSIP_MS)
        return;
    f->m->digest_sent = now;
    send_digest(c, f, NULL,
                (d->flags & WM_DIGEST_REPLY) ? WM_DIGEST_FULL
                                             : WM_DIGEST_FULL |
                                                   WM_DIGEST_REPLY);
}

static void
on_entries(wm_cluster *c, const wm_from *f, const wm_msg *m)
{
    wm_entry fresh[WM_WIRE_MAX_ENTRIES];
    wm_wheelname wn;
    size_t n = 0;

    for (size_t i = 0; i < m->nentries; i++) {
        if (wm_index_accept(c->index, &m->entries[i], 1) != 1)
            continue;
        fresh[n++] = m->entries[i];
        if (entry_project(&m->entries[i], &wn) != NULL)
            listing_changed(c, wn.project);
    }
    if (n > 0)
        push(c, f->m, fresh, n);
}

/* --- the transport's messages */

static void
on_message(void *arg, const wm_from *f, const wm_msg *m, const void *bulk,
           size_t blen)
{
    wm_cluster *c = arg;
    int64_t now = wm_now_ms();

    if (f->m != NULL)
        wm_members_heard(c->members, f->m, now);
    switch (m->type) {
    case WM_MSG_PING:
    case WM_MSG_ACK:
    case WM_MSG_PING_REQ:
    case WM_MSG_SYNC:
        if (wm_members_receive(c->members, f->m, m, now, c->out))
            wm_transport_reply(c->t, f, c->out, NULL, 0);
        break;
    case WM_MSG_DIGEST:
        on_digest(c, f, m);
        break;
    case WM_MSG_ENTRIES:
        on_entries(c, f, m);
        break;
    case WM_MSG_FETCH:
        wm_peerserve_on_fetch(c->serve, f, m);
        break;
    case WM_MSG_MAP:
        wm_peerserve_on_map(c->serve, f, m);
        break;
    case WM_MSG_CHUNK:
        wm_peerfetch_on_chunk(c->peers, f, m, bulk, blen);
        break;
    case WM_MSG_MAPDATA:
        wm_peerfetch_on_mapdata(c->peers, f, m, bulk, blen);
        break;
    case WM_MSG_HAVE:
        wm_peerfetch_on_have(c->peers, f, m);
        break;
    }
}

/* --- membership's io */

static void
io_send(void *arg, wm_member *to, const wm_msg *m)
{
    wm_cluster *c = arg;

    wm_transport_send(c->t, to, m, NULL, 0);
}

static void
io_connect(void *arg, wm_member *m)
{
    wm_cluster *c = arg;
    int was = m->reachable;

    wm_transport_connect(c->t, m, NULL);
    /* Pages list what reachable members hold. A member that spoke first
     * is alive before its statement names an address, so its state
     * does not change when it becomes reachable: say so here. */
    if (m->reachable != was)
        listing_changed(c, NULL);
}

static void
io_changed(void *arg, wm_member *m)
{
    wm_cluster *c = arg;

    /* Pages list claims only where a live member holds the bytes. */
    listing_changed(c, NULL);
    if (!m->trusted)
        wm_transport_disconnect(c->t, m);
}

/* The transport's: libzmq refused M's address. */
static void
on_unreachable(void *arg, wm_member *m)
{
    (void)m;
    listing_changed(arg, NULL); /* pages list what reachable members hold */
}

static int
io_trusted(void *arg, const uint8_t *id)
{
    wm_cluster *c = arg;

    return wm_trust_is_trusted(c->trust, id);
}

/* --- state kept across restarts */

static uint64_t
state_u64(wm_node *node, const char *name, uint64_t fresh, int bump)
{
    wm_store_view *v;
    const void *val;
    size_t len;
    uint64_t x = fresh;
    int found = 0;

    if (wm_store_view_open(node->store, &v) == 0) {
        if (wm_store_get_kv(v, WM_TABLE_STATE, name, strlen(name), &val,
                            &len) == 0 &&
            len == sizeof(x)) {
            memcpy(&x, val, sizeof(x));
            found = 1;
        }
        wm_store_view_close(&v);
    }
    if (found && bump)
        x++;
    if (!found || bump)
        wm_store_put_kv(node->store, WM_TABLE_STATE, name, strlen(name), &x,
                        sizeof(x));
    return x;
}

static void
io_incarnation(void *arg, uint64_t inc)
{
    wm_cluster *c = arg;

    wm_store_put_kv(c->node->store, WM_TABLE_STATE, "incarnation", 11, &inc,
                    sizeof(inc));
}

/* The wheels of the store the log does not list yet. */
struct unlogged {
    wm_cluster *c;
    uint8_t (*shas)[32];
    size_t n, cap;
};

static int
find_unlogged(const wm_file_info *info, void *arg)
{
    struct unlogged *u = arg;

    if (wm_index_holds_local(u->c->index, info->sha256))
        return 0;
    if (u->n == u->cap) {
        size_t cap = u->cap ? 2 * u->cap : 64;
        void *more = realloc(u->shas, cap * 32);
        if (more == NULL)
            return -ENOMEM;
        u->shas = more;
        u->cap = cap;
    }
    memcpy(u->shas[u->n++], info->sha256, 32);
    return 0;
}

/* Logs the wheel SHA in batch B. Returns 0 or a negative error. */
static int
log_one(wm_cluster *c, wm_store_batch *b, const uint8_t *sha, wm_buf *val)
{
    uint8_t key[WM_INDEX_KEY_LEN];
    wm_store_view *v;
    wm_file_info info;
    wm_entry e;
    int rc = wm_store_view_open(c->node->store, &v);

    if (rc == 0) {
        rc = wm_store_get(v, sha, &info);
        wm_store_view_close(&v);
    }
    if (rc != 0 || wm_index_prepare_local(c->index, &info, NULL, &e) != 1)
        return rc;
    wm_buf_free(val);
    if (wm_index_record(c->index, &e, key, val) != 0)
        return -EIO;
    rc = wm_store_batch_put_kv(b, WM_TABLE_LOG, key, sizeof(key), val->data,
                               val->len);
    return rc == 0 ? wm_index_take_local(c->index, &e) == 0 ? 0 : -EIO : rc;
}

/* Makes sure this node's own log lists every wheel its store holds: a
 * data dir written before the log entry went into the record's
 * transaction, or a new generation of the log, may lack some. The list is
 * taken in one view and written in batches (a view held across the writes
 * would keep LMDB from reusing a page); peers learn of them by digest. */
static void
log_store(wm_cluster *c)
{
    struct unlogged u = {c, NULL, 0, 0};
    wm_store_batch *b = NULL;
    wm_store_view *v;
    wm_buf val;
    size_t done = 0;
    int rc = wm_store_view_open(c->node->store, &v);

    if (rc == 0) {
        rc = wm_store_each_file(v, NULL, find_unlogged, &u);
        wm_store_view_close(&v);
    }
    wm_buf_init(&val, WM_WIRE_FRAME_MAX);
    for (size_t i = 0; rc == 0 && i < u.n; i++) {
        if (b == NULL && (rc = wm_store_batch_begin(c->node->store, &b)) != 0)
            break;
        rc = log_one(c, b, u.shas[i], &val);
        if (rc == 0 && (++done % 1000 == 0 || i + 1 == u.n))
            rc = wm_store_batch_commit(&b);
    }
    if (b != NULL)
        wm_store_batch_abort(&b);
    if (rc != 0)
        wm_warn("cluster: cannot list every stored wheel in the log: %s",
                strerror(-rc));
    else if (done > 0)
        wm_info("cluster: %zu stored wheels added to this node's log", done);
    wm_buf_free(&val);
    free(u.shas);
}

static int
trusted_for_index(void *arg, const uint8_t *id)
{
    wm_cluster *c = arg;

    return wm_trust_is_trusted(c->trust, id);
}

/* --- life cycle */

void
wm_cluster_listen(wm_cluster *c, wm_listing_fn changed, void *arg)
{
    c->changed = changed;
    c->changed_arg = arg;
}

int
wm_cluster_new(wm_cluster **out, wm_node *node, wm_trust *trust, void *pub,
               const char **why)
{
    wm_cluster *c = calloc(1, sizeof(*c));
    uint8_t seed[8];
    uint64_t gen, rng = 0;
    int rc;

    *out = NULL;
    if (c == NULL || (c->out = calloc(1, sizeof(wm_msg))) == NULL) {
        free(c);
        *why = "out of memory";
        return -ENOMEM;
    }
    c->node = node;
    c->trust = trust;
    c->pub = pub;
    /* "generation2": logs of wire version 1 are not read, so this node's
     * log starts again in a generation of its own. */
    gen = state_u64(node, "generation2", (uint64_t)time(NULL), 0);
    c->index = wm_index_new(node->store, node->id, gen, trusted_for_index, c);
    if (c->index == NULL) {
        wm_cluster_destroy(&c);
        *why = "out of memory";
        return -ENOMEM;
    }
    wm_index_load(c->index);
    if (node->cfg->trusted_keys == NULL) {
        log_store(c);
        *out = c; /* alone: keeps its own index, opens no socket */
        return 0;
    }
    /* Each node its own random choices (probe order, gossip peers). */
    wm_random_bytes(seed, sizeof(seed));
    for (int i = 0; i < 8; i++)
        rng = rng << 8 | seed[i];
    wm_members_io io = {c, io_send, io_connect, io_changed, io_trusted,
                        io_incarnation};
    char advertise[WM_WIRE_ADDR_MAX + 1];
    wm_transport_derive_advertise(node->cfg, advertise, sizeof(advertise));
    c->members = wm_members_new(node->id, advertise, node->cfg->name,
                                state_u64(node, "incarnation", 1, 1), &io,
                                rng);
    if (c->members == NULL) {
        wm_cluster_destroy(&c);
        *why = "out of memory";
        return -ENOMEM;
    }
    wm_transport_io tio = {
        .arg = c, .recv = on_message, .unreachable = on_unreachable};
    rc = wm_transport_new(&c->t, node, trust, c->members, &tio, why);
    if (rc != 0) {
        wm_cluster_destroy(&c);
        return rc;
    }
    c->peers = wm_peerfetch_new(c->t, c->members, pub, node->store,
                                (int64_t)node->cfg->timeout_s * 1000);
    if (c->peers == NULL) {
        wm_cluster_destroy(&c);
        *why = "out of memory";
        return -ENOMEM;
    }
    c->enabled = 1;
    log_store(c);
    wm_transport_seeds(c->t);
    c->next_gossip = wm_now_ms();
    wm_info("cluster: listening on %s, advertising %s, %zu trusted keys",
            node->cfg->cluster_listen, wm_transport_advertise(c->t),
            wm_trust_count(trust));
    *out = c;
    return 0;
}

int
wm_cluster_serve(wm_cluster *c, wm_fetch *fetch)
{
    const char *fault = getenv("WHEELMESH_TEST_FAULT_BAD_CHUNKS");

    if (!c->enabled)
        return 0;
    c->serve = wm_peerserve_new(c->node, c->t, fetch, c->peers);
    if (c->serve == NULL)
        return -ENOMEM;
#ifdef WM_TEST_HOOKS
    /* A fault hook for the tests of bad peers, in test builds only. */
    if (fault != NULL && strcmp(fault, "1") == 0) {
        wm_warn("cluster: WHEELMESH_TEST_FAULT_BAD_CHUNKS=1: this node "
                "serves corrupted chunks");
        wm_peerserve_set_fault(c->serve, 1);
    }
#else
    (void)fault;
#endif
    return 0;
}

void
wm_cluster_destroy(wm_cluster **cp)
{
    wm_cluster *c;

    if (cp == NULL || *cp == NULL)
        return;
    c = *cp;
    wm_peerserve_destroy(&c->serve);
    wm_peerfetch_destroy(&c->peers);
    wm_transport_destroy(&c->t);
    wm_members_destroy(&c->members);
    wm_index_destroy(&c->index);
    free(c->out);
    free(c);
    *cp = NULL;
}

wm_index *
wm_cluster_index(wm_cluster *c)
{
    return c->index;
}

wm_members *
wm_cluster_members(wm_cluster *c)
{
    return c->members;
}

wm_peerfetch *
wm_cluster_peerfetch(wm_cluster *c)
{
    return c->peers;
}

void
wm_cluster_reload(wm_cluster *c)
{
    if (!c->enabled)
        return;
    wm_members_retrust(c->members, wm_now_ms());
    wm_transport_seeds(c->t);
    listing_changed(c, NULL);
}

/* --- the loop's part */

/* When the cluster next has work without a message: the membership's next
 * probe, timeout or verdict, the next digest, and every TICK_MS while a
 * peer fetch runs. No sooner: every wake polls one socket per connection,
 * and at 128 members waking every 50 ms took most of an idle node's CPU. */
static int64_t
next_tick(const wm_cluster *c)
{
    int64_t t = wm_members_next(c->members);

    if (c->next_gossip < t)
        t = c->next_gossip;
    if (wm_peerfetch_active(c->peers) && c->next_fetch_tick < t)
        t = c->next_fetch_tick;
    return t;
}

size_t
wm_cluster_poll(void *arg, zmq_pollitem_t *items, size_t max,
                long *timeout_ms)
{
    wm_cluster *c = arg;
    int64_t now = wm_now_ms(), left;

    if (!c->enabled)
        return 0;
    left = next_tick(c) - now;
    if (left < 0)
        left = 0;
    if (left < *timeout_ms)
        *timeout_ms = (long)left;
    return wm_transport_poll(c->t, items, max, timeout_ms);
}

void
wm_cluster_dispatch(void *arg, const zmq_pollitem_t *items, size_t n)
{
    wm_cluster *c = arg;
    int64_t now;

    if (!c->enabled)
        return;
    wm_transport_dispatch(c->t, items, n);
    wm_peerfetch_flush(c->peers);
    now = wm_now_ms();
    if (now < next_tick(c))
        return;
    if (now >= wm_members_next(c->members))
        wm_members_tick(c->members, now);
    if (now >= c->next_fetch_tick) {
        c->next_fetch_tick = now + TICK_MS;
        wm_peerfetch_tick(c->peers, now);
    }
    if (now >= c->next_gossip) {
        wm_member *to[1];
        c->next_gossip = now + GOSSIP_MS - 100 + rand() % 200;
        if (wm_members_pick(c->members, NULL, to, 1) == 1) {
            send_digest(c, NULL, to[0], 0);
            c->rounds++;
        }
    }
}

/* --- status and metrics */

void
wm_cluster_status(wm_cluster *c, cJSON *root)
{
    cJSON *members = cJSON_AddArrayToObject(root, "members"), *o;
    int64_t now = wm_now_ms();
    uint64_t files, bytes, done = 0, failed = 0;
    wm_transport_stats ts = {0};
    size_t by_state[3] = {0, 0, 0}, n = 0;

    if (c->enabled) {
        n = wm_members_count(c->members);
        wm_transport_stats_get(c->t, &ts);
        wm_peerfetch_counters(c->peers, &done, &failed);
    }
    for (size_t i = 0; members != NULL && i < n; i++) {
        wm_member *m = wm_members_at(c->members, i);
        cJSON *j;
        if (!m->trusted)
            continue;
        j = cJSON_CreateObject();
        if (j == NULL)
            break;
        cJSON_AddItemToArray(members, j);
        wm_index_origin_stats(c->index, m->id, &files, &bytes);
        by_state[m->state]++;
        cJSON_AddStringToObject(j, "name", m->has_alive ? m->alive.name : "");
        cJSON_AddStringToObject(j, "id", m->hex);
        cJSON_AddStringToObject(j, "address", m->has_alive ? m->alive.addr
                                                           : "");
        cJSON_AddStringToObject(j, "state", wm_member_state_name(m->state));
        cJSON_AddNumberToObject(j, "incarnation", (double)m->incarnation);
        cJSON_AddNumberToObject(j, "last_heard_s",
                                (double)(now - m->last_heard) / 1000.0);
        cJSON_AddNumberToObject(j, "wheels", (double)files);
        cJSON_AddNumberToObject(j, "bytes", (double)bytes);
        cJSON_AddNumberToObject(j, "bytes_in", (double)m->bytes_in);
        cJSON_AddNumberToObject(j, "bytes_out", (double)m->bytes_out);
        cJSON_AddNumberToObject(j, "failures", (double)m->failures);
        cJSON_AddNumberToObject(j, "bad_chunks", (double)m->bad_chunks);
    }
    o = cJSON_AddObjectToObject(root, "cluster");
    if (o == NULL)
        return;
    cJSON_AddBoolToObject(o, "enabled", c->enabled);
    cJSON_AddStringToObject(o, "advertise",
                            c->enabled ? wm_transport_advertise(c->t) : "");
    cJSON_AddNumberToObject(o, "alive", (double)by_state[WM_ALIVE]);
    cJSON_AddNumberToObject(o, "suspect", (double)by_state[WM_SUSPECT]);
    cJSON_AddNumberToObject(o, "dead", (double)by_state[WM_DEAD]);
    cJSON_AddNumberToObject(o, "gossip_rounds", (double)c->rounds);
    cJSON_AddNumberToObject(o, "bytes_out", (double)ts.bytes_out);
    cJSON_AddNumberToObject(o, "bytes_in", (double)ts.bytes_in);
    cJSON_AddNumberToObject(o, "connections", (double)ts.open);
    cJSON_AddNumberToObject(o, "rejected_messages", (double)ts.rejected);
    cJSON_AddNumberToObject(o, "rejected_entries",
                            (double)wm_index_rejected(c->index));
    cJSON_AddNumberToObject(o, "rejected_updates",
                            c->enabled ? (double)wm_members_rejected(c->members)
                                       : 0.0);
    cJSON_AddNumberToObject(o, "incarnation",
                            c->enabled
                                ? (double)wm_members_incarnation(c->members)
                                : 0.0);
    cJSON_AddNumberToObject(o, "peer_fetches", (double)done);
    cJSON_AddNumberToObject(o, "peer_fetch_failures", (double)failed);
}

/* R as a Prometheus histogram (cumulative buckets, in seconds). */
static void
probe_rtt_metrics(const wm_probe_rtt *r, wm_buf *b)
{
    uint64_t below = 0;

    wm_buf_adds(b, "# HELP wheelmesh_probe_rtt_seconds How long this "
                   "node's direct probes took to be answered.\n"
                   "# TYPE wheelmesh_probe_rtt_seconds histogram\n");
    for (size_t i = 0; i < WM_PROBE_RTT_BUCKETS - 1; i++) {
        below += r->count[i];
        wm_buf_printf(b,
                      "wheelmesh_probe_rtt_seconds_bucket{le=\"%g\"} %" PRIu64
                      "\n",
                      (double)wm_probe_rtt_ms[i] / 1000.0, below);
    }
    below += r->count[WM_PROBE_RTT_BUCKETS - 1];
    wm_buf_printf(b,
                  "wheelmesh_probe_rtt_seconds_bucket{le=\"+Inf\"} %" PRIu64
                  "\n"
                  "wheelmesh_probe_rtt_seconds_sum %g\n"
                  "wheelmesh_probe_rtt_seconds_count %" PRIu64 "\n",
                  below, (double)r->sum_ms / 1000.0, below);
}

void
wm_cluster_metrics(wm_cluster *c, wm_buf *b)
{
    size_t by_state[3] = {0, 0, 0}, n = c->enabled ? wm_members_count(c->members)
                                                   : 0;
    wm_transport_stats ts = {0};

    if (c->enabled)
        wm_transport_stats_get(c->t, &ts);
    for (size_t i = 0; i < n; i++) {
        wm_member *m = wm_members_at(c->members, i);
        if (m->trusted)
            by_state[m->state]++;
    }
    wm_buf_adds(b, "# TYPE wheelmesh_members gauge\n");
    for (int s = 0; s < 3; s++)
        wm_buf_printf(b, "wheelmesh_members{state=\"%s\"} %zu\n",
                      wm_member_state_name(s), by_state[s]);
    wm_buf_printf(
        b,
        "# TYPE wheelmesh_gossip_rounds_total counter\n"
        "wheelmesh_gossip_rounds_total %" PRIu64 "\n"
        "# TYPE wheelmesh_cluster_bytes_total counter\n"
        "wheelmesh_cluster_bytes_total{dir=\"out\"} %" PRIu64 "\n"
        "wheelmesh_cluster_bytes_total{dir=\"in\"} %" PRIu64 "\n"
        "# HELP wheelmesh_cluster_connections Connections this node opened "
        "to members, open now (closed after a minute unused; a dead "
        "member's is used every 5 s).\n"
        "# TYPE wheelmesh_cluster_connections gauge\n"
        "wheelmesh_cluster_connections %zu\n"
        "# TYPE wheelmesh_cluster_connections_opened_total counter\n"
        "wheelmesh_cluster_connections_opened_total %" PRIu64 "\n"
        "# TYPE wheelmesh_cluster_rejected_total counter\n"
        "wheelmesh_cluster_rejected_total{what=\"message\"} %" PRIu64 "\n"
        "wheelmesh_cluster_rejected_total{what=\"entry\"} %" PRIu64 "\n"
        "wheelmesh_cluster_rejected_total{what=\"update\"} %" PRIu64 "\n",
        c->rounds, ts.bytes_out, ts.bytes_in, ts.open, ts.opened,
        ts.rejected, wm_index_rejected(c->index),
        c->enabled ? wm_members_rejected(c->members) : 0);
    if (c->enabled)
        probe_rtt_metrics(wm_members_probe_rtt(c->members), b);
    if (c->serve != NULL) {
        uint64_t up = 0, busy = 0;
        wm_peerserve_stats(c->serve, &up, &busy);
        wm_buf_printf(b,
                      "# HELP wheelmesh_upload_bytes_total Chunk bytes sent "
                      "to peers.\n"
                      "# TYPE wheelmesh_upload_bytes_total counter\n"
                      "wheelmesh_upload_bytes_total %" PRIu64 "\n"
                      "# HELP wheelmesh_upload_busy_total Chunk requests "
                      "answered busy (cluster.max_upload_rate, or peers "
                      "served at once).\n"
                      "# TYPE wheelmesh_upload_busy_total counter\n"
                      "wheelmesh_upload_busy_total %" PRIu64 "\n",
                      up, busy);
    }
    wm_buf_adds(b, "# TYPE wheelmesh_peer_bytes_total counter\n");
    for (size_t i = 0; i < n; i++) {
        wm_member *m = wm_members_at(c->members, i);
        wm_buf_printf(b,
                      "wheelmesh_peer_bytes_total{peer=\"%.16s\",dir=\"in\"} "
                      "%" PRIu64 "\n"
                      "wheelmesh_peer_bytes_total{peer=\"%.16s\",dir=\"out\"} "
                      "%" PRIu64 "\n",
                      m->hex, m->bytes_in, m->hex, m->bytes_out);
    }
    wm_buf_adds(b, "# TYPE wheelmesh_peer_failures_total counter\n");
    for (size_t i = 0; i < n; i++) {
        wm_member *m = wm_members_at(c->members, i);
        wm_buf_printf(
            b, "wheelmesh_peer_failures_total{peer=\"%.16s\"} %" PRIu64 "\n",
            m->hex, m->failures);
    }
    wm_buf_adds(b, "# TYPE wheelmesh_peer_bad_chunks_total counter\n");
    for (size_t i = 0; i < n; i++) {
        wm_member *m = wm_members_at(c->members, i);
        wm_buf_printf(
            b, "wheelmesh_peer_bad_chunks_total{peer=\"%.16s\"} %" PRIu64 "\n",
            m->hex, m->bad_chunks);
    }
}
