/*
 * The cluster on the node loop.
 *
 * Transport: one ROUTER bound on cluster.listen (CURVE server) that peers'
 * requests arrive on, and one DEALER per known member (CURVE client with
 * the member's key) that this node's requests and the answers to them use.
 * A ZAP handler, bound before the ROUTER, admits only trusted keys, and
 * the sender of anything on the ROUTER is the User-Id it returned, never
 * what the peer says. Seeds are addresses without keys: each is tried with
 * every trusted key and the one that answers is the member there.
 *
 * Membership is SWIM-like: a probe a second, indirect probes through three
 * others, suspect, dead; incarnations let a node refute its own suspicion;
 * changes ride on probe traffic. The index is a log per origin of signed
 * add entries, reconciled scuttlebutt-style (digest hash, then digests,
 * then the missing entries) and pushed eagerly to three peers when new.
 * Fetches pull 1 MiB chunks from the holders, a window per holder, each
 * chunk checked against the chunk map whose hash the origin signed.
 */
#include "cluster.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "wheelname.h"
#include "wheelzip.h"
#include "wire.h"

#define ZAP_ENDPOINT     "inproc://zeromq.zap.01"
#define ZAP_DOMAIN       "wheelmesh"
#define MAX_MSG          ((int64_t)4 << 20) /* ZeroMQ drops bigger ones unread */
#define TICK_MS          50
#define PROBE_MS         1000
#define PROBE_TIMEOUT_MS 500
#define GOSSIP_MS        1000
#define SEED_RETRY_MS    2000
#define DEAD_PROBE_MS    5000
#define FANOUT           3
#define WINDOW           8
#define CHUNK_TIMEOUT_MS 5000
#define LATER_RETRY_MS   100
#define MAP_TIMEOUT_MS   3000
#define MAX_HOLDERS      8
#define MAX_UPDATES      32

struct trusted {
    uint8_t id[WM_ID_LEN];
    uint8_t curve[32];
};

struct member {
    uint8_t id[WM_ID_LEN];
    uint8_t curve[32];
    char hex[WM_PUBKEY_HEX];
    char addr[WM_WIRE_ADDR_MAX + 1];
    int state;
    uint64_t incarnation;
    int64_t last_heard;
    int64_t state_since;
    void *dealer;
    /* the current probe */
    uint32_t probe_seq;
    int64_t probe_sent;
    int probing, indirect_sent;
    int64_t digest_sent; /* last full digest sent in answer to it */
    /* counters */
    uint64_t bytes_in, bytes_out, failures, bad_chunks;
};

/* A seed address tried with one trusted key until someone answers. */
struct seed_try {
    char addr[WM_WIRE_ADDR_MAX + 1];
    const struct trusted *key;
    void *sock;
    int done;
};

/* A probe this node makes for another (PING_REQ). */
struct relay {
    uint32_t seq_out;
    struct member *requester;
    uint32_t seq_in;
    int64_t expires;
};

struct origin {
    uint8_t id[WM_ID_LEN];
    uint64_t gen, max_seq;
    wm_entry *e;
    size_t n, cap;
};

struct queued_update {
    wm_member_update u;
    int left;
};

/* A wheel being pulled from peers. */
struct holder {
    struct member *m;
    int dropped;
    int inflight;
    int64_t not_before; /* after a LATER */
};

struct fetch {
    struct fetch *next;
    uint8_t sha[32];
    char filename[WM_WHEELNAME_MAX + 1];
    wm_download *dl;
    uint64_t size;    /* WM_SIZE_UNKNOWN for a designee fetch */
    uint32_t nchunks; /* known chunks (grows for an unknown size) */
    uint32_t last;    /* index of the last chunk once known, else UINT32_MAX */
    uint32_t end;     /* no chunk at or after this (an upper bound) */
    uint8_t root[32];
    uint8_t (*map)[32]; /* chunk hashes, NULL until MAPDATA (or none) */
    int need_map;
    struct member *map_from;
    int64_t map_sent;
    uint8_t *state; /* per chunk: 0 to ask, 1 asked, 2 done */
    struct member **asked_of;
    int64_t *asked_at;
    size_t cap;
    uint32_t prefix; /* chunks hashed in order */
    wm_sha256 *hash;
    struct holder holders[MAX_HOLDERS];
    size_t nholders;
    int upstream_flag;
};

struct wm_cluster {
    wm_node *node;
    wm_upstream *up;
    int enabled;
    void *zap, *router;
    uint8_t curve_pk[32], curve_sk[32];
    char advertise[WM_WIRE_ADDR_MAX + 1];
    struct trusted *trusted;
    size_t ntrusted;
    struct member **members;
    size_t nmembers;
    struct seed_try *seeds;
    size_t nseeds;
    struct relay relays[16];
    struct origin **origins;
    size_t norigins;
    uint64_t gen, incarnation;
    struct queued_update updates[MAX_UPDATES];
    size_t nupdates;
    struct fetch *fetches;
    int64_t next_tick, next_probe, next_gossip, next_seed, next_dead_probe;
    size_t probe_cursor;
    uint32_t seq;
    wm_msg *in, *out;
    uint8_t (*scratch)[32];
    size_t scratch_cap;
    void **retired;
    size_t nretired;
    void **owners; /* per poll item from index 2: a member or a seed_try */
    int *owner_is_seed;
    size_t nowners;
    /* counters */
    int fault_bad_chunks; /* test-only: serve corrupted chunks */
    uint64_t rounds, bytes_out, bytes_in, rejected_msgs, rejected_entries;
    uint64_t peer_fetches, peer_fetch_failures;
};

/* Where a message came from and how to answer it. */
struct from {
    struct member *m;
    void *sock;
    uint8_t rid[256];
    size_t ridlen;
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const uint8_t *
self_id(const wm_cluster *c)
{
    return wm_identity_pubkey(c->node->id);
}

static int
is_self(const wm_cluster *c, const uint8_t *id)
{
    return memcmp(id, self_id(c), WM_ID_LEN) == 0;
}

static const struct trusted *
find_trusted(const wm_cluster *c, const uint8_t *id)
{
    for (size_t i = 0; i < c->ntrusted; i++)
        if (memcmp(c->trusted[i].id, id, WM_ID_LEN) == 0)
            return &c->trusted[i];
    return NULL;
}

/* --- sending */

static void
set_sockopts(void *sock)
{
    int linger = 0, hwm = 1000, ivl = 100, ivl_max = 2000;
    int64_t max = MAX_MSG;

    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof(max));
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
}

/* Sends M (and BULK, when not NULL) on SOCK, to routing id RID on a
 * ROUTER. Never blocks: a full queue drops the message, which every
 * exchange here survives (probes time out, gossip repeats, chunks are asked
 * again). Returns 0 or -1. */
static int
send_msg(wm_cluster *c, void *sock, const uint8_t *rid, size_t ridlen,
         const wm_msg *m, const void *bulk, size_t bulklen)
{
    wm_buf b;
    int rc = -1;

    wm_buf_init(&b, WM_WIRE_FRAME_MAX);
    if (wm_msg_encode(m, &b) != 0 || b.failed) {
        wm_buf_free(&b);
        return -1;
    }
    if (rid != NULL &&
        zmq_send(sock, rid, ridlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        goto out;
    if (zmq_send(sock, b.data, b.len,
                 ZMQ_DONTWAIT | (bulk != NULL ? ZMQ_SNDMORE : 0)) < 0)
        goto out;
    if (bulk != NULL && zmq_send(sock, bulk, bulklen, ZMQ_DONTWAIT) < 0)
        goto out;
    c->bytes_out += b.len + bulklen;
    rc = 0;
out:
    wm_buf_free(&b);
    return rc;
}

static int
reply(wm_cluster *c, const struct from *f, const wm_msg *m, const void *bulk,
      size_t bulklen)
{
    if (f->m != NULL)
        f->m->bytes_out += bulklen;
    return send_msg(c, f->sock, f->ridlen > 0 ? f->rid : NULL, f->ridlen, m,
                    bulk, bulklen);
}

static int
send_to(wm_cluster *c, struct member *m, const wm_msg *msg)
{
    if (m->dealer == NULL)
        return -1;
    return send_msg(c, m->dealer, NULL, 0, msg, NULL, 0);
}

/* --- members */

static void queue_update(wm_cluster *c, const uint8_t *id, int state,
                         uint64_t inc, const char *addr);

static void introduce(wm_cluster *c, struct member *to);

/* Closes SOCK once the current dispatch is over: the poll items of this
 * round may still name it. */
static void
retire(wm_cluster *c, void *sock)
{
    void **grown;

    if (sock == NULL)
        return;
    grown = realloc(c->retired, (c->nretired + 1) * sizeof(*grown));
    if (grown == NULL) {
        zmq_close(sock); /* rare; the poll round skips unknown sockets */
        return;
    }
    c->retired = grown;
    c->retired[c->nretired++] = sock;
}

static void
member_connect(wm_cluster *c, struct member *m)
{
    retire(c, m->dealer);
    m->dealer = NULL;
    if (m->addr[0] == '\0')
        return;
    m->dealer = zmq_socket(c->node->zmq, ZMQ_DEALER);
    if (m->dealer == NULL)
        return;
    set_sockopts(m->dealer);
    zmq_setsockopt(m->dealer, ZMQ_CURVE_SERVERKEY, m->curve, 32);
    zmq_setsockopt(m->dealer, ZMQ_CURVE_PUBLICKEY, c->curve_pk, 32);
    zmq_setsockopt(m->dealer, ZMQ_CURVE_SECRETKEY, c->curve_sk, 32);
    if (zmq_connect(m->dealer, m->addr) != 0) {
        wm_warn("cluster: cannot connect to %s: %s", m->addr,
                zmq_strerror(errno));
        zmq_close(m->dealer);
        m->dealer = NULL;
        return;
    }
    /* Tell the others where it is, and it whom we know. */
    queue_update(c, m->id, m->state, m->incarnation, m->addr);
    introduce(c, m);
}

static struct member *
find_member(const wm_cluster *c, const uint8_t *id)
{
    for (size_t i = 0; i < c->nmembers; i++)
        if (memcmp(c->members[i]->id, id, WM_ID_LEN) == 0)
            return c->members[i];
    return NULL;
}

/* Adds a trusted member (not yet connected). NULL when untrusted or OOM. */
static struct member *
add_member(wm_cluster *c, const uint8_t *id)
{
    const struct trusted *t = find_trusted(c, id);
    struct member *m, **grown;

    if (t == NULL || is_self(c, id))
        return NULL;
    m = calloc(1, sizeof(*m));
    grown = realloc(c->members, (c->nmembers + 1) * sizeof(*grown));
    if (m == NULL || grown == NULL) {
        free(m);
        if (grown != NULL)
            c->members = grown;
        return NULL;
    }
    c->members = grown;
    memcpy(m->id, id, WM_ID_LEN);
    memcpy(m->curve, t->curve, 32);
    wm_hex_encode(id, WM_ID_LEN, m->hex);
    m->state = WM_ALIVE;
    m->last_heard = m->state_since = now_ms();
    c->members[c->nmembers++] = m;
    return m;
}

static size_t
retransmits(const wm_cluster *c)
{
    size_t n = c->nmembers + 1, r = 1;

    while (n >= 10) { /* ceil(log10(N + 1)) */
        n /= 10;
        r++;
    }
    return 4 * r;
}

static void
queue_update(wm_cluster *c, const uint8_t *id, int state, uint64_t inc,
             const char *addr)
{
    struct queued_update *q = NULL;

    for (size_t i = 0; i < c->nupdates; i++)
        if (memcmp(c->updates[i].u.id, id, WM_ID_LEN) == 0)
            q = &c->updates[i];
    if (q == NULL) {
        if (c->nupdates == MAX_UPDATES) /* drop the oldest */
            memmove(c->updates, c->updates + 1,
                    (MAX_UPDATES - 1) * sizeof(*c->updates)),
                c->nupdates--;
        q = &c->updates[c->nupdates++];
    }
    memset(q, 0, sizeof(*q));
    memcpy(q->u.id, id, WM_ID_LEN);
    q->u.state = (uint8_t)state;
    q->u.incarnation = inc;
    snprintf(q->u.addr, sizeof(q->u.addr), "%s", addr);
    q->left = (int)retransmits(c);
}

static void
set_state(wm_cluster *c, struct member *m, int state)
{
    static const char *const names[] = {"alive", "suspect", "dead"};

    if (m->state == state)
        return;
    wm_info("cluster: %.16s at %s is %s", m->hex, m->addr, names[state]);
    m->state = state;
    m->state_since = now_ms();
    queue_update(c, m->id, state, m->incarnation, m->addr);
    wm_upstream_store_changed(c->up); /* pages list live holders only */
}

/* Direct evidence: M just spoke to us. */
static void
heard_from(wm_cluster *c, struct member *m)
{
    m->last_heard = now_ms();
    if (m->state != WM_ALIVE)
        set_state(c, m, WM_ALIVE);
}

/* Fills M's piggyback: this node's own entry first, then queued changes. */
static void
piggyback(wm_cluster *c, wm_msg *m)
{
    wm_member_update *self = &m->updates[0];

    memset(self, 0, sizeof(*self));
    memcpy(self->id, self_id(c), WM_ID_LEN);
    self->state = WM_ALIVE;
    self->incarnation = c->incarnation;
    snprintf(self->addr, sizeof(self->addr), "%s", c->advertise);
    m->nupdates = 1;
    for (size_t i = 0; i < c->nupdates && m->nupdates < 8;) {
        if (c->updates[i].u.addr[0] != '\0')
            m->updates[m->nupdates++] = c->updates[i].u;
        if (--c->updates[i].left <= 0)
            c->updates[i] = c->updates[--c->nupdates];
        else
            i++;
    }
}

static void
apply_update(wm_cluster *c, const wm_member_update *u)
{
    struct member *m;

    if (is_self(c, u->id)) {
        if (u->state != WM_ALIVE && u->incarnation >= c->incarnation) {
            c->incarnation = u->incarnation + 1; /* refute */
            queue_update(c, self_id(c), WM_ALIVE, c->incarnation, c->advertise);
        }
        return;
    }
    m = find_member(c, u->id);
    if (m == NULL) {
        m = add_member(c, u->id);
        if (m == NULL)
            return; /* untrusted: ignored */
        m->state = u->state;
        m->incarnation = u->incarnation;
        snprintf(m->addr, sizeof(m->addr), "%s", u->addr);
        member_connect(c, m);
        queue_update(c, m->id, m->state, m->incarnation, m->addr);
        wm_info("cluster: learned of %.16s at %s", m->hex, m->addr);
        return;
    }
    if (u->addr[0] != '\0' && strcmp(u->addr, m->addr) != 0 &&
        u->incarnation >= m->incarnation) {
        snprintf(m->addr, sizeof(m->addr), "%s", u->addr);
        member_connect(c, m);
    } else if (m->dealer == NULL && m->addr[0] == '\0' && u->addr[0] != '\0') {
        snprintf(m->addr, sizeof(m->addr), "%s", u->addr);
        member_connect(c, m);
    }
    /* SWIM precedence: newer incarnations win; at equal incarnation
     * suspect beats alive and dead beats both. */
    if (u->incarnation > m->incarnation ||
        (u->incarnation == m->incarnation && u->state > m->state)) {
        m->incarnation = u->incarnation;
        set_state(c, m, u->state);
    }
}

static void
apply_updates(wm_cluster *c, const wm_msg *msg)
{
    for (size_t i = 0; i < msg->nupdates; i++)
        apply_update(c, &msg->updates[i]);
}

/* --- the index */

static struct origin *
find_origin(const wm_cluster *c, const uint8_t *id)
{
    for (size_t i = 0; i < c->norigins; i++)
        if (memcmp(c->origins[i]->id, id, WM_ID_LEN) == 0)
            return c->origins[i];
    return NULL;
}

static struct origin *
get_origin(wm_cluster *c, const uint8_t *id)
{
    struct origin *o = find_origin(c, id), **grown;

    if (o != NULL)
        return o;
    o = calloc(1, sizeof(*o));
    grown = realloc(c->origins, (c->norigins + 1) * sizeof(*grown));
    if (o == NULL || grown == NULL) {
        free(o);
        if (grown != NULL)
            c->origins = grown;
        return NULL;
    }
    c->origins = grown;
    memcpy(o->id, id, WM_ID_LEN);
    c->origins[c->norigins++] = o;
    return o;
}

static void
persist_entry(wm_cluster *c, const wm_entry *e)
{
    uint8_t key[WM_ID_LEN + 16];
    wm_buf b;

    memcpy(key, e->origin, WM_ID_LEN);
    for (int i = 0; i < 8; i++) {
        key[WM_ID_LEN + i] = (uint8_t)(e->generation >> (56 - 8 * i));
        key[WM_ID_LEN + 8 + i] = (uint8_t)(e->seq >> (56 - 8 * i));
    }
    memset(c->out, 0, sizeof(*c->out));
    c->out->type = WM_MSG_ENTRIES;
    c->out->entries[0] = *e;
    c->out->nentries = 1;
    wm_buf_init(&b, WM_WIRE_FRAME_MAX);
    if (wm_msg_encode(c->out, &b) != 0 || b.failed ||
        wm_store_put_kv(c->node->store, WM_TABLE_LOG, key, sizeof(key), b.data,
                        b.len) != 0)
        wm_warn("cluster: cannot keep an index entry");
    wm_buf_free(&b);
}

/* Takes E into the index when it is the next entry of a trusted origin
 * with a good signature. Returns 1 when new, 0 when already known or out
 * of order, -1 when rejected. */
static int
accept_entry(wm_cluster *c, const wm_entry *e, int persist)
{
    uint8_t msg[WM_ENTRY_SIGNED_MAX];
    size_t len = wm_entry_signed_bytes(e, msg);
    wm_wheelname wn;
    struct origin *o;

    if ((!is_self(c, e->origin) && find_trusted(c, e->origin) == NULL) ||
        wm_identity_verify(e->origin, msg, len, e->sig) != 0 ||
        wm_wheelname_parse(e->filename, &wn, NULL) != 0) {
        c->rejected_entries++;
        return -1;
    }
    o = get_origin(c, e->origin);
    if (o == NULL || e->generation < o->gen)
        return 0;
    if (e->generation > o->gen) { /* that node started a new log */
        o->gen = e->generation;
        o->max_seq = 0;
        o->n = 0;
    }
    if (e->seq != o->max_seq + 1)
        return 0;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 16;
        wm_entry *grown = realloc(o->e, cap * sizeof(*grown));
        if (grown == NULL)
            return 0;
        o->e = grown;
        o->cap = cap;
    }
    o->e[o->n++] = *e;
    o->max_seq = e->seq;
    if (persist)
        persist_entry(c, e);
    return 1;
}

/* The add entry by which origin O holds SHA, or NULL. */
static const wm_entry *
origin_holds(const struct origin *o, const uint8_t *sha)
{
    const wm_entry *held = NULL;

    for (size_t i = 0; i < o->n; i++)
        if (memcmp(o->e[i].sha256, sha, 32) == 0)
            held = o->e[i].op == WM_OP_ADD ? &o->e[i] : NULL;
    return held;
}

static int
member_usable(const struct member *m)
{
    return m != NULL && m->state != WM_DEAD && m->dealer != NULL;
}

/* Live members other than this node that hold SHA, into OUT (room for
 * MAX); *ENTRY gets one of their entries. */
static size_t
holders_of(wm_cluster *c, const uint8_t *sha, struct member **out, size_t max,
           const wm_entry **entry)
{
    size_t n = 0;

    *entry = NULL;
    for (size_t i = 0; i < c->norigins && n < max; i++) {
        const struct origin *o = c->origins[i];
        const wm_entry *e;
        struct member *m;
        if (is_self(c, o->id))
            continue;
        e = origin_holds(o, sha);
        m = e != NULL ? find_member(c, o->id) : NULL;
        if (member_usable(m)) {
            out[n++] = m;
            *entry = e;
        }
    }
    return n;
}

/* Sends ENTRIES (in messages of at most WM_WIRE_MAX_ENTRIES) to M. */
static void
send_entries(wm_cluster *c, void *sock, const uint8_t *rid, size_t ridlen,
             const wm_entry *const *list, size_t n)
{
    for (size_t i = 0; i < n; i += WM_WIRE_MAX_ENTRIES) {
        size_t k = n - i < WM_WIRE_MAX_ENTRIES ? n - i : WM_WIRE_MAX_ENTRIES;
        memset(c->out, 0, offsetof(wm_msg, entries));
        c->out->type = WM_MSG_ENTRIES;
        for (size_t j = 0; j < k; j++)
            c->out->entries[j] = *list[i + j];
        c->out->nentries = k;
        send_msg(c, sock, rid, ridlen, c->out, NULL, 0);
    }
}

/* Up to FANOUT random usable members other than EXCEPT. */
static size_t
pick_members(wm_cluster *c, const struct member *except, struct member **out,
             size_t want)
{
    size_t n = 0, tries = 0;

    while (n < want && tries++ < 4 * c->nmembers + 4 && c->nmembers > 0) {
        struct member *m = c->members[(size_t)rand() % c->nmembers];
        int dup = 0;
        if (!member_usable(m) || m == except || m->state != WM_ALIVE)
            continue;
        for (size_t i = 0; i < n; i++)
            dup |= out[i] == m;
        if (!dup)
            out[n++] = m;
    }
    return n;
}

static void
push_entries(wm_cluster *c, const struct member *except,
             const wm_entry *const *list, size_t n)
{
    struct member *to[FANOUT];
    size_t k = pick_members(c, except, to, FANOUT);

    for (size_t i = 0; i < k; i++)
        send_entries(c, to[i]->dealer, NULL, 0, list, n);
}

void
wm_cluster_stored(wm_cluster *c, const wm_file_info *info)
{
    struct origin *o = get_origin(c, self_id(c));
    uint8_t msg[WM_ENTRY_SIGNED_MAX];
    wm_entry e;
    const wm_entry *list[1];

    if (o == NULL || origin_holds(o, info->sha256) != NULL)
        return;
    if (o->gen != c->gen) {
        o->gen = c->gen;
        o->n = 0;
        o->max_seq = 0;
    }
    memset(&e, 0, sizeof(e));
    memcpy(e.origin, self_id(c), WM_ID_LEN);
    e.generation = c->gen;
    e.seq = o->max_seq + 1;
    e.op = WM_OP_ADD;
    e.size = info->size;
    memcpy(e.sha256, info->sha256, 32);
    memcpy(e.chunks_root, info->chunks_root, 32);
    e.source = info->source;
    snprintf(e.filename, sizeof(e.filename), "%s", info->filename);
    wm_identity_sign(c->node->id, msg, wm_entry_signed_bytes(&e, msg), e.sig);
    if (accept_entry(c, &e, 1) == 1 && c->enabled) {
        list[0] = &o->e[o->n - 1];
        push_entries(c, NULL, list, 1);
    }
}

/* The digest: one item per origin, sorted by origin id. */
static int
cmp_origin(const void *a, const void *b)
{
    return memcmp((*(struct origin *const *)a)->id,
                  (*(struct origin *const *)b)->id, WM_ID_LEN);
}

static size_t
make_digest(wm_cluster *c, wm_digest_item *items, size_t max)
{
    size_t n = 0;

    if (c->norigins > 1)
        qsort(c->origins, c->norigins, sizeof(*c->origins), cmp_origin);
    for (size_t i = 0; i < c->norigins && n < max; i++) {
        if (c->origins[i]->max_seq == 0)
            continue;
        memcpy(items[n].origin, c->origins[i]->id, WM_ID_LEN);
        items[n].generation = c->origins[i]->gen;
        items[n].max_seq = c->origins[i]->max_seq;
        n++;
    }
    return n;
}

static void
send_digest(wm_cluster *c, void *sock, const uint8_t *rid, size_t ridlen,
            int flags)
{
    wm_msg *m = c->out;

    memset(m, 0, sizeof(*m));
    m->type = WM_MSG_DIGEST;
    m->ndigest = make_digest(c, m->digest, WM_WIRE_MAX_DIGEST);
    wm_digest_hash(m->digest, m->ndigest, m->digest_hash);
    m->flags = (uint8_t)flags;
    if (!(flags & WM_DIGEST_FULL))
        m->ndigest = 0;
    send_msg(c, sock, rid, ridlen, m, NULL, 0);
}

/* Answers a digest: the entries the sender lacks, and whether this node
 * lacks some the sender has (returned). */
static int
answer_digest(wm_cluster *c, const struct from *f, const wm_msg *d)
{
    const wm_entry **list = NULL;
    size_t n = 0, cap = 0;
    int lacking = 0;

    for (size_t i = 0; i < c->norigins; i++) {
        const struct origin *o = c->origins[i];
        uint64_t have = 0; /* their highest seq of our generation */
        for (size_t j = 0; j < d->ndigest; j++) {
            if (memcmp(d->digest[j].origin, o->id, WM_ID_LEN) != 0)
                continue;
            if (d->digest[j].generation == o->gen)
                have = d->digest[j].max_seq;
            else if (d->digest[j].generation > o->gen)
                have = UINT64_MAX; /* theirs is newer */
        }
        for (size_t k = 0; k < o->n && have != UINT64_MAX; k++) {
            if (o->e[k].seq <= have)
                continue;
            if (n == cap) {
                size_t more = cap ? 2 * cap : 64;
                const wm_entry **grown = realloc(list, more * sizeof(*grown));
                if (grown == NULL)
                    break;
                list = grown;
                cap = more;
            }
            list[n++] = &o->e[k];
        }
    }
    if (n > 0) {
        send_entries(c, f->sock, f->ridlen ? f->rid : NULL, f->ridlen, list, n);
    }
    free(list);
    for (size_t j = 0; j < d->ndigest; j++) {
        const struct origin *o = find_origin(c, d->digest[j].origin);
        /* An origin we do not trust: its entries would only be dropped. */
        if (!is_self(c, d->digest[j].origin) &&
            find_trusted(c, d->digest[j].origin) == NULL)
            continue;
        if (o == NULL || d->digest[j].generation > o->gen ||
            (d->digest[j].generation == o->gen &&
             d->digest[j].max_seq > o->max_seq))
            lacking = 1;
    }
    return lacking;
}

static void
on_digest(wm_cluster *c, const struct from *f, const wm_msg *d)
{
    uint8_t mine[32];
    wm_digest_item *items = c->out->digest;
    size_t n;

    if (!(d->flags & WM_DIGEST_FULL)) {
        n = make_digest(c, items, WM_WIRE_MAX_DIGEST);
        wm_digest_hash(items, n, mine);
        if (memcmp(mine, d->digest_hash, 32) != 0)
            send_digest(c, f->sock, f->ridlen ? f->rid : NULL, f->ridlen,
                        WM_DIGEST_FULL | WM_DIGEST_REPLY);
        return;
    }
    /* Send what the peer lacks; when this node lacks some, show it our
     * digest so the peer sends them. At most one such answer per peer per
     * probe interval: entries that keep failing (a bad signature) must not
     * make two nodes trade digests forever. */
    int lacking = answer_digest(c, f, d);
    int64_t now = now_ms();
    if (!lacking || f->m == NULL || now - f->m->digest_sent < PROBE_MS)
        return;
    f->m->digest_sent = now;
    send_digest(c, f->sock, f->ridlen ? f->rid : NULL, f->ridlen,
                (d->flags & WM_DIGEST_REPLY)
                    ? WM_DIGEST_FULL
                    : WM_DIGEST_FULL | WM_DIGEST_REPLY);
}

static void
on_entries(wm_cluster *c, const struct from *f, const wm_msg *m)
{
    /* Pointers into m: accepting may move the origins' arrays. */
    const wm_entry *fresh[WM_WIRE_MAX_ENTRIES];
    size_t n = 0;

    for (size_t i = 0; i < m->nentries; i++)
        if (accept_entry(c, &m->entries[i], 1) == 1)
            fresh[n++] = &m->entries[i];
    if (n > 0) {
        wm_upstream_store_changed(c->up);
        push_entries(c, f->m, fresh, n);
    }
}

/* Sends TO every member this node knows, on PINGs: a node that joins
 * through one seed learns the whole cluster in one round trip. */
static void
introduce(wm_cluster *c, struct member *to)
{
    wm_msg *msg = c->out;
    size_t i = 0;

    do {
        memset(msg, 0, offsetof(wm_msg, digest));
        msg->type = WM_MSG_PING;
        msg->seq = ++c->seq;
        msg->incarnation = c->incarnation;
        memcpy(msg->updates[0].id, self_id(c), WM_ID_LEN);
        msg->updates[0].incarnation = c->incarnation;
        snprintf(msg->updates[0].addr, sizeof(msg->updates[0].addr), "%s",
                 c->advertise);
        msg->nupdates = 1;
        for (; i < c->nmembers && msg->nupdates < WM_WIRE_MAX_UPDATES; i++) {
            const struct member *m = c->members[i];
            wm_member_update *u = &msg->updates[msg->nupdates];
            if (m == to || m->addr[0] == '\0')
                continue;
            memcpy(u->id, m->id, WM_ID_LEN);
            u->state = (uint8_t)m->state;
            u->incarnation = m->incarnation;
            snprintf(u->addr, sizeof(u->addr), "%s", m->addr);
            msg->nupdates++;
        }
        send_to(c, to, msg);
    } while (i < c->nmembers);
}

/* --- membership: probes */

static void
send_ping(wm_cluster *c, struct member *m, int type, uint32_t seq,
          const uint8_t *target)
{
    wm_msg *msg = c->out;

    memset(msg, 0, offsetof(wm_msg, digest));
    msg->type = (uint8_t)type;
    msg->seq = seq;
    msg->incarnation = c->incarnation;
    if (target != NULL)
        memcpy(msg->target, target, WM_ID_LEN);
    piggyback(c, msg);
    send_to(c, m, msg);
}

static void
probe_next(wm_cluster *c)
{
    for (size_t tries = 0; tries < c->nmembers; tries++) {
        struct member *m = c->members[c->probe_cursor++ % c->nmembers];
        if (m->state == WM_DEAD || m->dealer == NULL || m->probing)
            continue;
        m->probe_seq = ++c->seq;
        m->probe_sent = now_ms();
        m->probing = 1;
        m->indirect_sent = 0;
        send_ping(c, m, WM_MSG_PING, m->probe_seq, NULL);
        return;
    }
}

static int64_t
suspicion_ms(const wm_cluster *c)
{
    size_t n = c->nmembers + 1;
    int64_t k = 1;

    while (n >= 10) { /* max(1, log10 N) */
        n /= 10;
        k++;
    }
    return 4 * k * PROBE_MS;
}

static void
check_probes(wm_cluster *c, int64_t now)
{
    for (size_t i = 0; i < c->nmembers; i++) {
        struct member *m = c->members[i];
        if (m->probing && !m->indirect_sent &&
            now - m->probe_sent >= PROBE_TIMEOUT_MS) {
            struct member *via[FANOUT];
            size_t k = pick_members(c, m, via, FANOUT);
            for (size_t j = 0; j < k; j++)
                send_ping(c, via[j], WM_MSG_PING_REQ, m->probe_seq, m->id);
            m->indirect_sent = 1;
        }
        if (m->probing && now - m->probe_sent >= 2 * PROBE_MS) {
            m->probing = 0;
            m->failures++;
            if (m->state == WM_ALIVE)
                set_state(c, m, WM_SUSPECT);
        }
        if (m->state == WM_SUSPECT && now - m->state_since >= suspicion_ms(c))
            set_state(c, m, WM_DEAD);
    }
}

/* Dead members are asked now and then, so one that comes back is seen. */
static void
probe_dead(wm_cluster *c)
{
    for (size_t i = 0; i < c->nmembers; i++) {
        struct member *m = c->members[i];
        if (m->state == WM_DEAD && m->dealer != NULL)
            send_ping(c, m, WM_MSG_PING, ++c->seq, NULL);
    }
}

static void
on_ping(wm_cluster *c, const struct from *f, const wm_msg *msg)
{
    wm_msg *out = c->out;
    uint32_t seq = msg->seq;

    apply_updates(c, msg);
    memset(out, 0, offsetof(wm_msg, digest));
    out->type = WM_MSG_ACK;
    out->seq = seq;
    out->incarnation = c->incarnation;
    piggyback(c, out);
    reply(c, f, out, NULL, 0);
}

static void
on_ping_req(wm_cluster *c, const struct from *f, const wm_msg *msg)
{
    struct member *target = find_member(c, msg->target);
    struct relay *r = NULL;
    int64_t now = now_ms();

    apply_updates(c, msg);
    if (!member_usable(target) || f->m == NULL)
        return;
    for (size_t i = 0; i < 16; i++)
        if (c->relays[i].requester == NULL || c->relays[i].expires < now)
            r = &c->relays[i];
    if (r == NULL)
        return;
    r->seq_out = ++c->seq;
    r->requester = f->m;
    r->seq_in = msg->seq;
    r->expires = now + PROBE_MS;
    send_ping(c, target, WM_MSG_PING, r->seq_out, NULL);
}

static void
on_ack(wm_cluster *c, const struct from *f, const wm_msg *msg)
{
    int64_t now = now_ms();

    apply_updates(c, msg);
    for (size_t i = 0; i < c->nmembers; i++) {
        struct member *m = c->members[i];
        if (m->probing && m->probe_seq == msg->seq &&
            (m == f->m || m->indirect_sent)) {
            m->probing = 0;
            heard_from(c, m);
        }
    }
    for (size_t i = 0; i < 16; i++) {
        struct relay *r = &c->relays[i];
        if (r->requester != NULL && r->seq_out == msg->seq &&
            r->expires >= now) {
            send_ping(c, r->requester, WM_MSG_ACK, r->seq_in, NULL);
            r->requester = NULL;
        }
    }
}

/* --- seeds */

static void
seed_ping(wm_cluster *c, struct seed_try *s)
{
    wm_msg *msg = c->out;

    memset(msg, 0, offsetof(wm_msg, digest));
    msg->type = WM_MSG_PING;
    msg->seq = ++c->seq;
    msg->incarnation = c->incarnation;
    piggyback(c, msg);
    send_msg(c, s->sock, NULL, 0, msg, NULL, 0);
}

static void
seeds_start(wm_cluster *c)
{
    const wm_config *cfg = c->node->cfg;

    for (size_t i = 0; i < cfg->nseeds; i++) {
        if (strcmp(cfg->seeds[i], c->advertise) == 0)
            continue;
        for (size_t k = 0; k < c->ntrusted; k++) {
            struct seed_try *s, *grown;
            if (is_self(c, c->trusted[k].id))
                continue;
            grown = realloc(c->seeds, (c->nseeds + 1) * sizeof(*grown));
            if (grown == NULL)
                return;
            c->seeds = grown;
            s = &c->seeds[c->nseeds];
            memset(s, 0, sizeof(*s));
            snprintf(s->addr, sizeof(s->addr), "%s", cfg->seeds[i]);
            s->key = &c->trusted[k];
            s->sock = zmq_socket(c->node->zmq, ZMQ_DEALER);
            if (s->sock == NULL)
                continue;
            set_sockopts(s->sock);
            zmq_setsockopt(s->sock, ZMQ_CURVE_SERVERKEY, s->key->curve, 32);
            zmq_setsockopt(s->sock, ZMQ_CURVE_PUBLICKEY, c->curve_pk, 32);
            zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, c->curve_sk, 32);
            if (zmq_connect(s->sock, s->addr) != 0) {
                zmq_close(s->sock);
                continue;
            }
            c->nseeds++;
        }
    }
}

static void
seeds_close(wm_cluster *c, const char *addr)
{
    for (size_t i = 0; i < c->nseeds; i++) {
        if (c->seeds[i].sock != NULL && strcmp(c->seeds[i].addr, addr) == 0) {
            retire(c, c->seeds[i].sock);
            c->seeds[i].sock = NULL;
            c->seeds[i].done = 1;
        }
    }
}

/* A seed socket got an answer: the key it was made with is the member's. */
static struct member *
seed_identified(wm_cluster *c, struct seed_try *s)
{
    struct member *m = find_member(c, s->key->id);
    char addr[WM_WIRE_ADDR_MAX + 1];

    if (m == NULL)
        m = add_member(c, s->key->id);
    if (m == NULL)
        return NULL;
    snprintf(addr, sizeof(addr), "%s", s->addr);
    if (m->dealer == NULL || strcmp(m->addr, addr) != 0) {
        snprintf(m->addr, sizeof(m->addr), "%s", addr);
        member_connect(c, m);
    }
    wm_info("cluster: seed %s is %.16s", addr, m->hex);
    seeds_close(c, addr);
    return m;
}

/* --- fetching from peers */

static struct fetch *
find_fetch(const wm_cluster *c, const uint8_t *sha)
{
    for (struct fetch *f = c->fetches; f != NULL; f = f->next)
        if (memcmp(f->sha, sha, 32) == 0)
            return f;
    return NULL;
}

static int
fetch_grow(struct fetch *f, size_t n)
{
    size_t cap = f->cap;
    uint8_t *st;
    struct member **of;
    int64_t *at;

    if (n <= cap)
        return 0;
    while (cap < n)
        cap = cap ? 2 * cap : 64;
    st = realloc(f->state, cap);
    if (st == NULL)
        return -1;
    f->state = st;
    of = realloc(f->asked_of, cap * sizeof(*of));
    if (of == NULL)
        return -1;
    f->asked_of = of;
    at = realloc(f->asked_at, cap * sizeof(*at));
    if (at == NULL)
        return -1;
    f->asked_at = at;
    memset(f->state + f->cap, 0, cap - f->cap);
    f->cap = cap;
    return 0;
}

static void
fetch_free(struct fetch *f)
{
    wm_download_release(f->dl);
    wm_sha256_destroy(&f->hash);
    free(f->map);
    free(f->state);
    free(f->asked_of);
    free(f->asked_at);
    free(f);
}

static void
fetch_unlink(wm_cluster *c, struct fetch *f)
{
    for (struct fetch **p = &c->fetches; *p != NULL; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            return;
        }
    }
}

static struct holder *
holder_of(struct fetch *f, const struct member *m)
{
    for (size_t i = 0; i < f->nholders; i++)
        if (f->holders[i].m == m)
            return &f->holders[i];
    return NULL;
}

static void
drop_holder(struct fetch *f, struct member *m, const char *why)
{
    struct holder *h = holder_of(f, m);

    if (h == NULL || h->dropped)
        return;
    h->dropped = 1;
    h->inflight = 0;
    m->failures++;
    for (size_t i = 0; i < f->cap; i++)
        if (f->state[i] == 1 && f->asked_of[i] == m)
            f->state[i] = 0;
    if (f->map_from == m)
        f->map_from = NULL;
    wm_warn("cluster: %s: dropped %.16s for this fetch: %s", f->filename,
            m->hex, why);
}

static void
publish(wm_cluster *c, const uint8_t *sha)
{
    wm_upstream_publish(c->up, sha);
}

static void
fetch_finish(wm_cluster *c, struct fetch *f, int ok)
{
    fetch_unlink(c, f);
    if (ok) {
        atomic_store(&f->dl->total, f->size);
        atomic_store(&f->dl->received, f->size);
        atomic_store(&f->dl->state, WM_DL_VERIFIED);
        publish(c, f->sha);
        wm_node_commit(c->node, f->dl, f->map);
    } else if (wm_upstream_take_over(c->up, f->dl, f->sha, f->filename) == 0) {
        wm_info("cluster: %s: no peer could serve it; going upstream",
                f->filename);
    } else {
        c->peer_fetch_failures++;
        atomic_store(&f->dl->state, WM_DL_FAILED);
        publish(c, f->sha);
    }
    fetch_free(f);
}

static uint64_t
chunk_len(const struct fetch *f, uint32_t idx)
{
    uint64_t off = (uint64_t)idx * WM_CHUNK_SIZE;

    if (f->size == WM_SIZE_UNKNOWN)
        return WM_CHUNK_SIZE;
    return f->size - off < WM_CHUNK_SIZE ? f->size - off : WM_CHUNK_SIZE;
}

/* Moves the readable prefix over the chunks that now follow it, and lets
 * readers have them. Chunks checked against a signed chunk map need no
 * more; without a map (a wheel still arriving from upstream at the
 * designee) the whole file is hashed in order, from CHUNK (the bytes of
 * chunk IDX just received) when it is next, else read back from the spool.
 * Returns 1 when the wheel is complete, -1 on a read error. */
static int
advance_prefix(wm_cluster *c, struct fetch *f, uint32_t idx, const void *chunk)
{
    static uint8_t buf[WM_CHUNK_SIZE]; /* loop thread only */
    int moved = 0;

    while (f->prefix < f->cap && f->state[f->prefix] == 2 &&
           (f->last == UINT32_MAX || f->prefix <= f->last)) {
        if (f->map == NULL) {
            uint64_t len = chunk_len(f, f->prefix);
            const void *data = chunk;
            if (f->prefix != idx || chunk == NULL) {
                if (pread(f->dl->fd, buf, len,
                          (off_t)f->prefix * WM_CHUNK_SIZE) != (ssize_t)len)
                    return -1;
                data = buf;
            }
            wm_sha256_update(f->hash, data, len);
        }
        f->prefix++;
        moved = 1;
    }
    if (moved) {
        uint64_t bytes = (uint64_t)f->prefix * WM_CHUNK_SIZE;
        if (f->size != WM_SIZE_UNKNOWN && bytes > f->size)
            bytes = f->size;
        atomic_store(&f->dl->received, bytes);
        publish(c, f->sha);
    }
    return f->last != UINT32_MAX && f->prefix > f->last;
}

static void
fetch_complete(wm_cluster *c, struct fetch *f)
{
    uint8_t digest[32];
    char want[WM_SHA256_HEX], got[WM_SHA256_HEX];

    /* With a map every chunk was checked against it, and the origin
     * signed the map's hash with the wheel's; the store's commit checks the
     * whole sha256 once more. */
    if (f->map == NULL)
        wm_sha256_final(f->hash, digest);
    if (f->map != NULL || memcmp(digest, f->sha, 32) == 0) {
        c->peer_fetches++;
        wm_info("cluster: fetched %s (%" PRIu64 " bytes) from peers",
                f->filename, f->size);
        fetch_finish(c, f, 1);
        return;
    }
    wm_hex_encode(f->sha, 32, want);
    wm_hex_encode(digest, 32, got);
    wm_error("cluster: %s: sha256 mismatch from peers: want %s, got %s",
             f->filename, want, got);
    atomic_fetch_add(&c->node->counters.hash_mismatches, 1);
    fetch_finish(c, f, 0);
}

static void
send_fetch(wm_cluster *c, struct fetch *f, struct holder *h, uint32_t idx,
           int64_t now)
{
    wm_msg *m = c->out;

    memset(m, 0, sizeof(*m) - sizeof(m->filename));
    m->type = WM_MSG_FETCH;
    memcpy(m->sha256, f->sha, 32);
    m->idx = idx;
    m->flags = f->upstream_flag ? WM_FETCH_UPSTREAM : 0;
    snprintf(m->filename, sizeof(m->filename), "%s", f->filename);
    if (send_to(c, h->m, m) != 0)
        return;
    f->state[idx] = 1;
    f->asked_of[idx] = h->m;
    f->asked_at[idx] = now;
    h->inflight++;
}

/* Keeps every holder's window full; drops holders that stall. */
static void
fetch_fill(wm_cluster *c, struct fetch *f, int64_t now)
{
    size_t live = 0;

    for (size_t i = 0; i < f->cap; i++)
        if (f->state[i] == 1 && now - f->asked_at[i] > CHUNK_TIMEOUT_MS)
            drop_holder(f, f->asked_of[i], "no answer in time");
    for (size_t i = 0; i < f->nholders; i++) {
        struct holder *h = &f->holders[i];
        if (!h->dropped && !member_usable(h->m))
            drop_holder(f, h->m, "not alive");
        live += !h->dropped;
    }
    if (live == 0) {
        fetch_finish(c, f, 0);
        return;
    }
    if (f->need_map && f->map == NULL) {
        if (f->map_from != NULL && now - f->map_sent > MAP_TIMEOUT_MS)
            drop_holder(f, f->map_from, "no chunk map in time");
        if (f->map_from == NULL) {
            for (size_t i = 0; i < f->nholders; i++) {
                if (f->holders[i].dropped)
                    continue;
                memset(c->out, 0, sizeof(*c->out) - sizeof(c->out->filename));
                c->out->type = WM_MSG_MAP;
                memcpy(c->out->sha256, f->sha, 32);
                send_to(c, f->holders[i].m, c->out);
                f->map_from = f->holders[i].m;
                f->map_sent = now;
                break;
            }
        }
        return;
    }
    uint32_t next = f->prefix;
    for (size_t i = 0; i < f->nholders; i++) {
        struct holder *h = &f->holders[i];
        if (h->dropped || now < h->not_before)
            continue;
        while (h->inflight < WINDOW) {
            uint32_t end = f->last != UINT32_MAX
                               ? f->last + 1
                               : f->prefix + (uint32_t)(WINDOW * f->nholders);
            if (end > f->end)
                end = f->end;
            while (next < end && next < f->cap && f->state[next] != 0)
                next++;
            if (next >= end)
                break;
            if (next >= f->cap && fetch_grow(f, (size_t)next + 1) != 0)
                break;
            if (f->state[next] != 0)
                continue;
            send_fetch(c, f, h, next, now);
            if (f->state[next] == 0)
                break; /* could not send */
        }
    }
}

static struct fetch *
fetch_new(wm_cluster *c, const uint8_t *sha, const char *filename,
          uint64_t size)
{
    struct fetch *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->dl = wm_download_new(c->node, sha, filename, size, WM_SOURCE_PEER);
    if (f->dl == NULL)
        goto fail;
    memcpy(f->sha, sha, 32);
    snprintf(f->filename, sizeof(f->filename), "%s", filename);
    f->size = size;
    f->last = UINT32_MAX;
    f->end = UINT32_MAX;
    if (size != WM_SIZE_UNKNOWN) {
        uint64_t n = (size + WM_CHUNK_SIZE - 1) / WM_CHUNK_SIZE;
        if (n == 0 || n > UINT32_MAX)
            goto fail;
        f->nchunks = (uint32_t)n;
        f->last = (uint32_t)n - 1;
    }
    f->hash = wm_sha256_new();
    if (f->hash == NULL || fetch_grow(f, f->nchunks > 0 ? f->nchunks : 64) != 0)
        goto fail;
    f->next = c->fetches;
    c->fetches = f;
    return f;
fail:
    fetch_free(f);
    return NULL;
}

/* The member that fetches SHA from upstream for everyone: the highest
 * sha256(id || sha) among the live members and this node. NULL: this one. */
static struct member *
designee(wm_cluster *c, const uint8_t *sha)
{
    uint8_t buf[WM_ID_LEN + 32], best[32], score[32];
    struct member *who = NULL;

    memcpy(buf, self_id(c), WM_ID_LEN);
    memcpy(buf + WM_ID_LEN, sha, 32);
    wm_sha256_digest(buf, sizeof(buf), best);
    for (size_t i = 0; i < c->nmembers; i++) {
        struct member *m = c->members[i];
        if (m->state != WM_ALIVE || m->dealer == NULL)
            continue;
        memcpy(buf, m->id, WM_ID_LEN);
        wm_sha256_digest(buf, sizeof(buf), score);
        if (memcmp(score, best, 32) > 0) {
            memcpy(best, score, 32);
            who = m;
        }
    }
    return who;
}

wm_download *
wm_cluster_fetch(wm_cluster *c, const uint8_t *sha, const char *filename,
                 int upstream_ok)
{
    struct member *holders[MAX_HOLDERS];
    const wm_entry *entry;
    wm_download *dl;
    struct fetch *f;
    size_t n;

    if (!c->enabled)
        return NULL;
    f = find_fetch(c, sha);
    if (f != NULL)
        return wm_download_ref(f->dl);
    dl = wm_node_committing(c->node, sha);
    if (dl != NULL)
        return wm_download_ref(dl);
    n = holders_of(c, sha, holders, MAX_HOLDERS, &entry);
    if (n > 0) {
        if (strcmp(entry->filename, filename) != 0)
            return NULL;
        f = fetch_new(c, sha, filename, entry->size);
        if (f == NULL)
            return NULL;
        memcpy(f->root, entry->chunks_root, 32);
        f->need_map = 1;
    } else if (upstream_ok) {
        struct member *d = designee(c, sha);
        if (d == NULL)
            return NULL;
        f = fetch_new(c, sha, filename, WM_SIZE_UNKNOWN);
        if (f == NULL)
            return NULL;
        f->upstream_flag = 1;
        holders[0] = d;
        n = 1;
        wm_info("cluster: %s: %.16s fetches it from upstream for the cluster",
                filename, d->hex);
    } else {
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        f->holders[f->nholders++].m = holders[i];
    dl = wm_download_ref(f->dl); /* fetch_fill may end (free) the fetch */
    fetch_fill(c, f, now_ms());
    return dl;
}

static void
on_mapdata(wm_cluster *c, const struct from *from, const wm_msg *m,
           const void *bulk, size_t len)
{
    struct fetch *f = find_fetch(c, m->sha256);
    uint8_t digest[32];

    if (f == NULL || f->map != NULL || f->map_from != from->m)
        return;
    if (m->status != WM_CHUNK_OK) {
        drop_holder(f, from->m, "has no chunk map");
        return;
    }
    wm_sha256_digest(bulk, len, digest);
    if (len != (size_t)f->nchunks * 32 || memcmp(digest, f->root, 32) != 0) {
        from->m->bad_chunks++;
        drop_holder(f, from->m, "sent a chunk map that fails its signed hash");
        return;
    }
    f->map = malloc(len);
    if (f->map != NULL)
        memcpy(f->map, bulk, len);
}

static void
on_chunk(wm_cluster *c, const struct from *from, const wm_msg *m,
         const void *bulk, size_t len)
{
    struct fetch *f = find_fetch(c, m->sha256);
    struct holder *h;
    uint32_t idx = m->idx;
    uint8_t digest[32];
    uint64_t want;
    int done;

    if (f == NULL || idx >= f->cap || f->state[idx] != 1 ||
        f->asked_of[idx] != from->m)
        return; /* late or unasked: ignore */
    h = holder_of(f, from->m);
    if (h != NULL && h->inflight > 0)
        h->inflight--;
    f->state[idx] = 0;
    if (m->status == WM_CHUNK_LATER) {
        if (h != NULL)
            h->not_before = now_ms() + LATER_RETRY_MS;
        return;
    }
    if (m->status != WM_CHUNK_OK) {
        drop_holder(f, from->m, "does not have it");
        return;
    }
    if (f->size != WM_SIZE_UNKNOWN && idx > f->last) {
        if (len > 0)
            goto bad;
        f->state[idx] = 2; /* "nothing here": past the end, as we know */
        fetch_fill(c, f, now_ms());
        return;
    }
    if (f->size == WM_SIZE_UNKNOWN) {
        /* A wheel still arriving at the designee: its size shows at the
         * end. A short chunk is the last one; an empty one only says the
         * wheel ends before it (replies to later chunks may overtake the
         * last one's). */
        if (len > WM_CHUNK_SIZE || (len == 0 && idx == 0))
            goto bad;
        if (len == 0) {
            if (idx < f->end)
                f->end = idx;
            for (size_t i = idx; i < f->cap; i++)
                if (f->state[i] == 0)
                    f->state[i] = 2; /* nothing to ask there */
            f->state[idx] = 2;
            if (f->state[idx - 1] != 2 || f->end != idx) {
                fetch_fill(c, f, now_ms());
                return;
            }
            len = 0; /* chunk idx-1 was full: the size is a whole number */
            f->size = (uint64_t)idx * WM_CHUNK_SIZE;
            f->last = idx - 1;
        } else if (len < WM_CHUNK_SIZE) {
            f->size = (uint64_t)idx * WM_CHUNK_SIZE + len;
            f->last = idx;
        } else if (f->end != UINT32_MAX && idx + 1 == f->end) {
            f->size = (uint64_t)f->end * WM_CHUNK_SIZE; /* full, and last */
            f->last = idx;
        }
        if (f->size != WM_SIZE_UNKNOWN) {
            atomic_store(&f->dl->total, f->size);
            for (size_t i = (size_t)f->last + 1; i < f->cap; i++)
                if (f->state[i] == 0)
                    f->state[i] = 2; /* past the end: nothing to ask */
        }
    } else {
        want = chunk_len(f, idx);
        if (len != want)
            goto bad;
        if (f->map != NULL) {
            wm_sha256_digest(bulk, len, digest);
            if (memcmp(digest, f->map[idx], 32) != 0)
                goto bad;
        }
    }
    if (len > 0 && pwrite(f->dl->fd, bulk, len, (off_t)idx * WM_CHUNK_SIZE) !=
                       (ssize_t)len) {
        fetch_finish(c, f, 0);
        return;
    }
    from->m->bytes_in += len;
    f->state[idx] = 2;
    done = advance_prefix(c, f, idx, bulk);
    if (done < 0)
        fetch_finish(c, f, 0);
    else if (done)
        fetch_complete(c, f);
    else
        fetch_fill(c, f, now_ms());
    return;
bad:
    from->m->bad_chunks++;
    drop_holder(f, from->m, "sent a bad chunk");
    fetch_fill(c, f, now_ms());
}

/* --- serving peers */

static void
reply_chunk(wm_cluster *c, const struct from *from, const uint8_t *sha,
            uint32_t idx, int status, const void *data, size_t len)
{
    wm_msg *m = c->out;

    memset(m, 0, sizeof(*m) - sizeof(m->filename));
    m->type = WM_MSG_CHUNK;
    memcpy(m->sha256, sha, 32);
    m->idx = idx;
    m->status = (uint8_t)status;
    if (c->fault_bad_chunks && status == WM_CHUNK_OK && len > 0) {
        static uint8_t bad[WM_CHUNK_SIZE];
        memcpy(bad, data, len);
        bad[len / 2] ^= 0xff;
        data = bad;
    }
    /* CHUNK always has its bulk frame: empty unless the status is OK. */
    if (status != WM_CHUNK_OK || data == NULL)
        data = "", len = 0;
    reply(c, from, m, data, len);
}

/* Serves chunk IDX of a download still arriving: whole chunks only. */
static void
serve_partial(wm_cluster *c, const struct from *from, wm_download *dl,
              uint32_t idx)
{
    static uint8_t buf[WM_CHUNK_SIZE];
    int state = atomic_load(&dl->state);
    uint64_t got = atomic_load(&dl->received),
             off = (uint64_t)idx * WM_CHUNK_SIZE;
    uint64_t len;

    if (state == WM_DL_FAILED) {
        reply_chunk(c, from, dl->sha256, idx, WM_CHUNK_MISSING, NULL, 0);
        return;
    }
    if (state == WM_DL_VERIFIED) {
        len = off >= got
                  ? 0
                  : (got - off < WM_CHUNK_SIZE ? got - off : WM_CHUNK_SIZE);
    } else if (off + WM_CHUNK_SIZE <= got) {
        len = WM_CHUNK_SIZE;
    } else {
        reply_chunk(c, from, dl->sha256, idx, WM_CHUNK_LATER, NULL, 0);
        return;
    }
    if (len > 0 && pread(dl->fd, buf, len, (off_t)off) != (ssize_t)len) {
        reply_chunk(c, from, dl->sha256, idx, WM_CHUNK_MISSING, NULL, 0);
        return;
    }
    reply_chunk(c, from, dl->sha256, idx, WM_CHUNK_OK, buf, len);
}

static void
on_fetch(wm_cluster *c, const struct from *from, const wm_msg *m)
{
    wm_store_view *v;
    const void *data;
    size_t len;
    wm_download *dl;
    struct fetch *f;
    uint8_t sha[32];
    uint32_t idx = m->idx;
    int rc;

    memcpy(sha, m->sha256, 32);
    if (wm_store_view_open(c->node->store, &v) == 0) {
        wm_file_info info;
        if (wm_store_get(v, sha, &info) == 0) {
            if (wm_store_chunk(v, sha, idx, &data, &len) == 0)
                reply_chunk(c, from, sha, idx, WM_CHUNK_OK, data, len);
            else /* past the end: the end marker for unknown sizes */
                reply_chunk(c, from, sha, idx, WM_CHUNK_OK, NULL, 0);
            wm_store_view_close(&v);
            return;
        }
        wm_store_view_close(&v);
    }
    dl = wm_upstream_download(c->up, sha);
    f = find_fetch(c, sha);
    if (dl == NULL && f != NULL)
        dl = f->dl;
    if (dl != NULL) {
        serve_partial(c, from, dl, idx);
        return;
    }
    if ((m->flags & WM_FETCH_UPSTREAM) && m->filename[0] != '\0') {
        rc = wm_upstream_prefetch(c->up, sha, m->filename);
        reply_chunk(c, from, sha, idx,
                    rc == 0 || rc == -EAGAIN ? WM_CHUNK_LATER
                                             : WM_CHUNK_MISSING,
                    NULL, 0);
        return;
    }
    reply_chunk(c, from, sha, idx, WM_CHUNK_MISSING, NULL, 0);
}

static void
on_map(wm_cluster *c, const struct from *from, const wm_msg *m)
{
    wm_store_view *v;
    const void *data = NULL;
    size_t len = 0;
    uint8_t sha[32];
    int ok = 0;

    memcpy(sha, m->sha256, 32);
    memset(c->out, 0, sizeof(*c->out) - sizeof(c->out->filename));
    c->out->type = WM_MSG_MAPDATA;
    memcpy(c->out->sha256, sha, 32);
    if (wm_store_view_open(c->node->store, &v) == 0) {
        ok = wm_store_chunkmap(v, sha, &data, &len) == 0;
        c->out->status = ok ? WM_CHUNK_OK : WM_CHUNK_MISSING;
        reply(c, from, c->out, ok ? data : "", ok ? len : 0);
        wm_store_view_close(&v);
    }
}

/* --- receiving */

static void
handle(wm_cluster *c, struct from *f, const void *hdr, size_t hlen,
       const void *bulk, size_t blen, int has_bulk)
{
    const char *why = NULL;
    wm_msg *m = c->in;
    int want_bulk;

    c->bytes_in += hlen + blen;
    if (blen > WM_CHUNK_SIZE) {
        why = "bulk frame over 1 MiB";
        goto reject;
    }
    if (wm_msg_decode(hdr, hlen, m, &why) != 0)
        goto reject;
    want_bulk = m->type == WM_MSG_CHUNK || m->type == WM_MSG_MAPDATA;
    if (want_bulk != has_bulk) {
        why = "wrong frame count";
        goto reject;
    }
    if (f->m != NULL)
        heard_from(c, f->m);
    switch (m->type) {
    case WM_MSG_PING:
        on_ping(c, f, m);
        break;
    case WM_MSG_ACK:
        on_ack(c, f, m);
        break;
    case WM_MSG_PING_REQ:
        on_ping_req(c, f, m);
        break;
    case WM_MSG_DIGEST:
        on_digest(c, f, m);
        break;
    case WM_MSG_ENTRIES:
        on_entries(c, f, m);
        break;
    case WM_MSG_FETCH:
        on_fetch(c, f, m);
        break;
    case WM_MSG_CHUNK:
        on_chunk(c, f, m, bulk, blen);
        break;
    case WM_MSG_MAP:
        on_map(c, f, m);
        break;
    case WM_MSG_MAPDATA:
        on_mapdata(c, f, m, bulk, blen);
        break;
    }
    return;
reject:
    c->rejected_msgs++;
    wm_warn("cluster: rejected a message from %.16s: %s",
            f->m != NULL ? f->m->hex : "?", why != NULL ? why : "malformed");
}

/* Reads the rest of a multipart message, counting the frames. */
static int
drain(void *sock)
{
    int more = 0, extra = 0;
    size_t len = sizeof(more);
    zmq_msg_t msg;

    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) == 0 && more) {
        zmq_msg_init(&msg);
        zmq_msg_recv(&msg, sock, 0);
        zmq_msg_close(&msg);
        extra++;
    }
    return extra;
}

static int
rcvmore(void *sock)
{
    int more = 0;
    size_t len = sizeof(more);

    return zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) == 0 && more;
}

/* [header] [bulk]? after the routing id (ROUTER) or alone (DEALER). */
static void
read_body(wm_cluster *c, void *sock, struct from *f, zmq_msg_t *hdr)
{
    zmq_msg_t bulk;
    int has_bulk = 0;

    zmq_msg_init(&bulk);
    if (rcvmore(sock)) {
        zmq_msg_recv(&bulk, sock, 0);
        has_bulk = 1;
        if (drain(sock) > 0) {
            c->rejected_msgs++;
            zmq_msg_close(&bulk);
            return;
        }
    }
    handle(c, f, zmq_msg_data(hdr), zmq_msg_size(hdr), zmq_msg_data(&bulk),
           zmq_msg_size(&bulk), has_bulk);
    zmq_msg_close(&bulk);
}

static void
read_router(wm_cluster *c)
{
    for (int i = 0; i < 256; i++) {
        zmq_msg_t rid, hdr;
        struct from f = {0};
        const char *user;
        uint8_t id[WM_ID_LEN];

        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, c->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            return;
        }
        zmq_msg_init(&hdr);
        if (!rcvmore(c->router) || zmq_msg_recv(&hdr, c->router, 0) < 0 ||
            zmq_msg_size(&rid) > sizeof(f.rid)) {
            drain(c->router);
            goto next;
        }
        /* Who sent it is what the ZAP handler said, nothing else. */
        user = zmq_msg_gets(&hdr, "User-Id");
        if (user == NULL || wm_hex_decode(user, id, sizeof(id)) != 0) {
            drain(c->router);
            goto next;
        }
        f.m = find_member(c, id);
        if (f.m == NULL)
            f.m = add_member(c, id);
        if (f.m == NULL) {
            drain(c->router);
            goto next;
        }
        f.sock = c->router;
        f.ridlen = zmq_msg_size(&rid);
        memcpy(f.rid, zmq_msg_data(&rid), f.ridlen);
        read_body(c, c->router, &f, &hdr);
    next:
        zmq_msg_close(&hdr);
        zmq_msg_close(&rid);
    }
}

static void
read_dealer(wm_cluster *c, void *sock, struct member *m)
{
    for (int i = 0; i < 256; i++) {
        zmq_msg_t hdr;
        struct from f = {0};

        zmq_msg_init(&hdr);
        if (zmq_msg_recv(&hdr, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&hdr);
            return;
        }
        f.m = m;
        f.sock = sock;
        read_body(c, sock, &f, &hdr);
        zmq_msg_close(&hdr);
        if (m == NULL)
            return;
    }
}

/* An answer on a seed socket names the member there: its key is the one
 * the socket was made with. */
static void
read_seed(wm_cluster *c, struct seed_try *s)
{
    struct member *m = find_member(c, s->key->id);

    if (m == NULL)
        m = add_member(c, s->key->id);
    if (m == NULL) {
        drain(s->sock);
        return;
    }
    read_dealer(c, s->sock, m);
    seed_identified(c, s);
}

/* ZAP (RFC 27): admits CURVE clients whose key is trusted; the User-Id is
 * the node id in hex. */
static void
read_zap(wm_cluster *c)
{
    char frames[7][256];
    size_t lens[7];
    int n = 0;
    const struct trusted *who = NULL;
    char user[WM_PUBKEY_HEX] = "";

    for (;;) {
        int got = zmq_recv(c->zap, frames[n < 7 ? n : 6], 256, ZMQ_DONTWAIT);
        if (got < 0)
            return;
        if (n < 7)
            lens[n] = (size_t)(got > 256 ? 256 : got);
        n++;
        if (!rcvmore(c->zap))
            break;
    }
    if (n >= 7 && lens[5] == 5 && memcmp(frames[5], "CURVE", 5) == 0 &&
        lens[6] == 32) {
        for (size_t i = 0; i < c->ntrusted; i++)
            if (memcmp(c->trusted[i].curve, frames[6], 32) == 0)
                who = &c->trusted[i];
    }
    if (who != NULL)
        wm_hex_encode(who->id, WM_ID_LEN, user);
    else
        c->rejected_msgs++;
    zmq_send(c->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(c->zap, frames[1], n > 1 ? lens[1] : 0, ZMQ_SNDMORE);
    zmq_send(c->zap, who != NULL ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(c->zap, who != NULL ? "OK" : "untrusted key", who ? 2 : 13,
             ZMQ_SNDMORE);
    zmq_send(c->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(c->zap, "", 0, 0);
}

/* --- what pages list */

static int
cmp_remote(const void *a, const void *b)
{
    return strcmp(((const wm_remote_file *)a)->filename,
                  ((const wm_remote_file *)b)->filename);
}

/* True when origin O belongs to a member that is not dead. */
static int
origin_live(wm_cluster *c, const struct origin *o)
{
    struct member *m;

    if (is_self(c, o->id))
        return 0;
    m = find_member(c, o->id);
    return m != NULL && m->state != WM_DEAD;
}

/* Note this walks every entry of every origin, and origin_holds walks an
 * origin's log again: O(entries^2 / origins). Fine for the thousands of
 * wheels a fleet caches (project pages are prepared once per change, the
 * flat /links/ page is not); a larger index wants a per-origin hash of
 * holdings. */
wm_remote_file *
wm_cluster_remote(wm_cluster *c, const char *project, size_t *n)
{
    wm_remote_file *out = NULL;
    size_t count = 0, cap = 0, nholders = 0, at = 0;
    wm_store_view *v = NULL;
    wm_file_info info;
    wm_wheelname wn;

    *n = 0;
    if (wm_store_view_open(c->node->store, &v) != 0)
        return NULL;
    /* One row per wheel that live peers hold and this node does not. */
    for (size_t i = 0; i < c->norigins; i++) {
        const struct origin *o = c->origins[i];
        if (!origin_live(c, o))
            continue;
        for (size_t k = 0; k < o->n; k++) {
            const wm_entry *e = &o->e[k];
            int dup = 0;
            if (origin_holds(o, e->sha256) != e ||
                wm_wheelname_parse(e->filename, &wn, NULL) != 0 ||
                (project != NULL && strcmp(wn.project, project) != 0) ||
                wm_store_get(v, e->sha256, &info) == 0)
                continue;
            nholders++;
            for (size_t j = 0; j < count && !dup; j++)
                dup = memcmp(out[j].sha256, e->sha256, 32) == 0;
            if (dup)
                continue;
            if (count == cap) {
                size_t more = cap ? 2 * cap : 16;
                wm_remote_file *g = realloc(out, more * sizeof(*g));
                if (g == NULL)
                    goto fail;
                out = g;
                cap = more;
            }
            memset(&out[count], 0, sizeof(out[count]));
            out[count].filename = e->filename;
            out[count].sha256 = e->sha256;
            out[count].size = e->size;
            count++;
        }
    }
    wm_store_view_close(&v);
    /* Their holders, each file's ids side by side in c->scratch. */
    if (nholders > c->scratch_cap) {
        void *g = realloc(c->scratch, nholders * WM_ID_LEN);
        if (g == NULL)
            goto fail;
        c->scratch = g;
        c->scratch_cap = nholders;
    }
    for (size_t j = 0; j < count; j++) {
        out[j].holders = (const uint8_t(*)[32])c->scratch[at];
        for (size_t i = 0; i < c->norigins && at < nholders; i++) {
            const struct origin *o = c->origins[i];
            if (origin_live(c, o) && origin_holds(o, out[j].sha256) != NULL) {
                memcpy(c->scratch[at++], o->id, WM_ID_LEN);
                out[j].nholders++;
            }
        }
    }
    if (count > 1)
        qsort(out, count, sizeof(*out), cmp_remote);
    *n = count;
    return out;
fail:
    wm_store_view_close(&v);
    free(out);
    return NULL;
}

/* --- status */

static const char *
state_name(int state)
{
    static const char *const names[] = {"alive", "suspect", "dead"};
    return names[state];
}

static void
holdings(const wm_cluster *c, const uint8_t *id, uint64_t *files,
         uint64_t *bytes)
{
    const struct origin *o = find_origin(c, id);

    *files = *bytes = 0;
    for (size_t i = 0; o != NULL && i < o->n; i++) {
        if (origin_holds(o, o->e[i].sha256) == &o->e[i]) {
            (*files)++;
            *bytes += o->e[i].size;
        }
    }
}

void
wm_cluster_status(wm_cluster *c, cJSON *root)
{
    cJSON *members = cJSON_AddArrayToObject(root, "members"), *o;
    int64_t now = now_ms();
    uint64_t files, bytes;
    size_t by_state[3] = {0, 0, 0};

    for (size_t i = 0; members != NULL && i < c->nmembers; i++) {
        struct member *m = c->members[i];
        cJSON *j = cJSON_CreateObject();
        if (j == NULL)
            break;
        cJSON_AddItemToArray(members, j);
        holdings(c, m->id, &files, &bytes);
        by_state[m->state]++;
        cJSON_AddStringToObject(j, "id", m->hex);
        cJSON_AddStringToObject(j, "address", m->addr);
        cJSON_AddStringToObject(j, "state", state_name(m->state));
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
    cJSON_AddStringToObject(o, "advertise", c->advertise);
    cJSON_AddNumberToObject(o, "alive", (double)by_state[WM_ALIVE]);
    cJSON_AddNumberToObject(o, "suspect", (double)by_state[WM_SUSPECT]);
    cJSON_AddNumberToObject(o, "dead", (double)by_state[WM_DEAD]);
    cJSON_AddNumberToObject(o, "origins", (double)c->norigins);
    cJSON_AddNumberToObject(o, "gossip_rounds", (double)c->rounds);
    cJSON_AddNumberToObject(o, "bytes_out", (double)c->bytes_out);
    cJSON_AddNumberToObject(o, "bytes_in", (double)c->bytes_in);
    cJSON_AddNumberToObject(o, "rejected_messages", (double)c->rejected_msgs);
    cJSON_AddNumberToObject(o, "rejected_entries", (double)c->rejected_entries);
    cJSON_AddNumberToObject(o, "peer_fetches", (double)c->peer_fetches);
    cJSON_AddNumberToObject(o, "peer_fetch_failures",
                            (double)c->peer_fetch_failures);
}

void
wm_cluster_metrics(wm_cluster *c, wm_buf *b)
{
    size_t by_state[3] = {0, 0, 0};

    for (size_t i = 0; i < c->nmembers; i++)
        by_state[c->members[i]->state]++;
    wm_buf_adds(b, "# TYPE wheelmesh_members gauge\n");
    for (int s = 0; s < 3; s++)
        wm_buf_printf(b, "wheelmesh_members{state=\"%s\"} %zu\n", state_name(s),
                      by_state[s]);
    wm_buf_printf(
        b,
        "# TYPE wheelmesh_gossip_rounds_total counter\n"
        "wheelmesh_gossip_rounds_total %" PRIu64 "\n"
        "# TYPE wheelmesh_cluster_bytes_total counter\n"
        "wheelmesh_cluster_bytes_total{dir=\"out\"} %" PRIu64 "\n"
        "wheelmesh_cluster_bytes_total{dir=\"in\"} %" PRIu64 "\n"
        "# TYPE wheelmesh_cluster_rejected_total counter\n"
        "wheelmesh_cluster_rejected_total{what=\"message\"} %" PRIu64 "\n"
        "wheelmesh_cluster_rejected_total{what=\"entry\"} %" PRIu64 "\n",
        c->rounds, c->bytes_out, c->bytes_in, c->rejected_msgs,
        c->rejected_entries);
    wm_buf_adds(b, "# TYPE wheelmesh_peer_bytes_total counter\n");
    for (size_t i = 0; i < c->nmembers; i++) {
        struct member *m = c->members[i];
        wm_buf_printf(b,
                      "wheelmesh_peer_bytes_total{peer=\"%.16s\",dir=\"in\"} "
                      "%" PRIu64 "\n"
                      "wheelmesh_peer_bytes_total{peer=\"%.16s\",dir=\"out\"} "
                      "%" PRIu64 "\n",
                      m->hex, m->bytes_in, m->hex, m->bytes_out);
    }
    wm_buf_adds(b, "# TYPE wheelmesh_peer_failures_total counter\n");
    for (size_t i = 0; i < c->nmembers; i++)
        wm_buf_printf(
            b, "wheelmesh_peer_failures_total{peer=\"%.16s\"} %" PRIu64 "\n",
            c->members[i]->hex, c->members[i]->failures);
    wm_buf_adds(b, "# TYPE wheelmesh_peer_bad_chunks_total counter\n");
    for (size_t i = 0; i < c->nmembers; i++)
        wm_buf_printf(
            b, "wheelmesh_peer_bad_chunks_total{peer=\"%.16s\"} %" PRIu64 "\n",
            c->members[i]->hex, c->members[i]->bad_chunks);
}

/* --- life cycle */

static int
load_trusted(wm_cluster *c, const char **why)
{
    static char reason[512];
    uint8_t(*keys)[WM_PUBKEY_LEN] = NULL;
    struct trusted *t;
    size_t n = 0;

    if (wm_identity_load_trusted(c->node->cfg->trusted_keys, &keys, &n, reason,
                                 sizeof(reason)) != 0) {
        *why = reason;
        return -EINVAL;
    }
    t = calloc(n + 1, sizeof(*t));
    if (t == NULL) {
        free(keys);
        *why = "out of memory";
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(t[i].id, keys[i], WM_ID_LEN);
        wm_identity_curve_pub(keys[i], t[i].curve);
    }
    free(keys);
    free(c->trusted);
    c->trusted = t;
    c->ntrusted = n;
    return 0;
}

void
wm_cluster_reload(wm_cluster *c)
{
    const char *why = NULL;

    if (!c->enabled)
        return;
    if (load_trusted(c, &why) != 0) {
        wm_warn("cluster: keeping the old trusted keys: %s", why);
        return;
    }
    /* A member whose key is gone is dropped from the cluster. */
    for (size_t i = 0; i < c->nmembers;) {
        struct member *m = c->members[i];
        if (find_trusted(c, m->id) != NULL) {
            i++;
            continue;
        }
        for (struct fetch *f = c->fetches; f != NULL; f = f->next)
            drop_holder(f, m, "no longer trusted");
        for (size_t k = 0; k < 16; k++)
            if (c->relays[k].requester == m)
                c->relays[k].requester = NULL;
        for (struct fetch *f = c->fetches; f != NULL; f = f->next) {
            for (size_t k = 0; k < f->cap; k++)
                if (f->asked_of[k] == m)
                    f->asked_of[k] = NULL;
            for (size_t k = 0; k < f->nholders; k++)
                if (f->holders[k].m == m)
                    f->holders[k].m = NULL, f->holders[k].dropped = 1;
            if (f->map_from == m)
                f->map_from = NULL;
        }
        wm_info("cluster: %.16s is no longer trusted", m->hex);
        retire(c, m->dealer);
        free(m);
        c->members[i] = c->members[--c->nmembers];
    }
    for (size_t i = 0; i < c->nseeds; i++)
        c->seeds[i].key = NULL, retire(c, c->seeds[i].sock),
        c->seeds[i].sock = NULL;
    c->nseeds = 0;
    seeds_start(c);
    wm_upstream_store_changed(c->up);
    wm_info("cluster: %zu trusted keys", c->ntrusted);
}

static uint64_t
state_u64(wm_cluster *c, const char *name, uint64_t fresh, int bump)
{
    wm_store_view *v;
    const void *val;
    size_t len;
    uint64_t x = 0;
    int found = 0;

    if (wm_store_view_open(c->node->store, &v) == 0) {
        if (wm_store_get_kv(v, WM_TABLE_STATE, name, strlen(name), &val,
                            &len) == 0 &&
            len == sizeof(x)) {
            memcpy(&x, val, sizeof(x));
            found = 1;
        }
        wm_store_view_close(&v);
    }
    if (!found)
        x = fresh;
    else if (bump)
        x++;
    if (!found || bump)
        wm_store_put_kv(c->node->store, WM_TABLE_STATE, name, strlen(name), &x,
                        sizeof(x));
    return x;
}

static int
load_entry(const void *key, size_t klen, const void *val, size_t vlen,
           void *arg)
{
    wm_cluster *c = arg;

    if (wm_msg_decode(val, vlen, c->in, NULL) == 0 &&
        c->in->type == WM_MSG_ENTRIES && c->in->nentries == 1)
        accept_entry(c, &c->in->entries[0], 0);
    return 0;
}

static int
log_local(const wm_file_info *info, void *arg)
{
    wm_cluster_stored(arg, info);
    return 0;
}

/* Loads the index kept in LMDB and makes sure this node's own log lists
 * every wheel its store holds (wheels stored before the cluster existed).
 * The log writes go to another table than the view reads. */
static void
load_index(wm_cluster *c)
{
    wm_store_view *v;

    if (wm_store_view_open(c->node->store, &v) != 0)
        return;
    wm_store_each_kv(v, WM_TABLE_LOG, load_entry, c);
    wm_store_each_file(v, NULL, log_local, c);
    wm_store_view_close(&v);
}

/* The address peers should use: cluster.advertise, else cluster.listen
 * with a wildcard host replaced by this host's first address. */
static void
derive_advertise(wm_cluster *c)
{
    const wm_config *cfg = c->node->cfg;
    const char *listen = cfg->cluster_listen, *port = strrchr(listen, ':');
    char host[256];
    struct addrinfo hints, *res = NULL;

    if (cfg->cluster_advertise != NULL) {
        snprintf(c->advertise, sizeof(c->advertise), "%s",
                 cfg->cluster_advertise);
        return;
    }
    snprintf(c->advertise, sizeof(c->advertise), "%s", listen);
    if (port == NULL || (strncmp(listen, "tcp://0.0.0.0:", 14) != 0 &&
                         strncmp(listen, "tcp://*:", 8) != 0))
        return;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    if (gethostname(host, sizeof(host)) == 0 &&
        getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL) {
        char ip[64];
        if (getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof(ip), NULL, 0,
                        NI_NUMERICHOST) == 0)
            snprintf(c->advertise, sizeof(c->advertise), "tcp://%s%s", ip,
                     port);
    }
    if (res != NULL)
        freeaddrinfo(res);
}

int
wm_cluster_new(wm_cluster **out, wm_node *node, wm_upstream *up,
               const char **why)
{
    wm_cluster *c = calloc(1, sizeof(*c));
    int one = 1, rc;

    *out = NULL;
    if (c == NULL || (c->in = malloc(sizeof(wm_msg))) == NULL ||
        (c->out = calloc(1, sizeof(wm_msg))) == NULL) {
        *why = "out of memory";
        rc = -ENOMEM;
        goto fail;
    }
    c->node = node;
    c->up = up;
    /* Each node its own random choices (probe order, gossip peers): with
     * one shared sequence they all pick alike and spread worse. */
    srand((unsigned)time(NULL) ^ (unsigned)getpid() ^
          ((unsigned)wm_identity_pubkey(node->id)[0] << 24 |
           (unsigned)wm_identity_pubkey(node->id)[1] << 16));
    /* A fault hook for the tests of bad peers; never set it otherwise. */
    c->fault_bad_chunks = getenv("WHEELMESH_TEST_FAULT_BAD_CHUNKS") != NULL;
    if (c->fault_bad_chunks)
        wm_warn("cluster: WHEELMESH_TEST_FAULT_BAD_CHUNKS is set: this node "
                "serves corrupted chunks");
    c->gen = state_u64(c, "generation", (uint64_t)time(NULL), 0);
    c->incarnation = state_u64(c, "incarnation", 1, 1);
    load_index(c);
    if (node->cfg->trusted_keys == NULL) {
        *out = c; /* alone: keeps its own index, opens no socket */
        return 0;
    }
    rc = load_trusted(c, why);
    if (rc != 0)
        goto fail;
    wm_identity_curve(node->id, c->curve_pk, c->curve_sk);
    derive_advertise(c);
    /* The ZAP handler first: a CURVE server without one admits anyone
     * who knows its key. */
    c->zap = zmq_socket(node->zmq, ZMQ_REP);
    if (c->zap == NULL || zmq_bind(c->zap, ZAP_ENDPOINT) != 0) {
        *why = "cannot bind the ZAP handler";
        rc = -EIO;
        goto fail;
    }
    c->router = zmq_socket(node->zmq, ZMQ_ROUTER);
    if (c->router == NULL) {
        *why = "cannot create the cluster socket";
        rc = -EIO;
        goto fail;
    }
    set_sockopts(c->router);
    zmq_setsockopt(c->router, ZMQ_CURVE_SERVER, &one, sizeof(one));
    zmq_setsockopt(c->router, ZMQ_CURVE_SECRETKEY, c->curve_sk, 32);
    zmq_setsockopt(c->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
    if (zmq_bind(c->router, node->cfg->cluster_listen) != 0) {
        *why = "cannot listen on cluster.listen (address in use?)";
        rc = -EADDRINUSE;
        goto fail;
    }
    c->enabled = 1;
    seeds_start(c);
    c->next_tick = c->next_probe = c->next_gossip = now_ms();
    wm_info("cluster: listening on %s, advertising %s, %zu trusted keys",
            node->cfg->cluster_listen, c->advertise, c->ntrusted);
    *out = c;
    return 0;
fail:
    wm_cluster_destroy(&c);
    return rc;
}

void
wm_cluster_destroy(wm_cluster **cp)
{
    wm_cluster *c;

    if (cp == NULL || *cp == NULL)
        return;
    c = *cp;
    while (c->fetches != NULL) {
        struct fetch *f = c->fetches;
        c->fetches = f->next;
        atomic_store(&f->dl->state, WM_DL_FAILED);
        publish(c, f->sha);
        fetch_free(f);
    }
    for (size_t i = 0; i < c->nmembers; i++) {
        if (c->members[i]->dealer != NULL)
            zmq_close(c->members[i]->dealer);
        free(c->members[i]);
    }
    for (size_t i = 0; i < c->nseeds; i++)
        if (c->seeds[i].sock != NULL)
            zmq_close(c->seeds[i].sock);
    for (size_t i = 0; i < c->nretired; i++)
        zmq_close(c->retired[i]);
    for (size_t i = 0; i < c->norigins; i++) {
        free(c->origins[i]->e);
        free(c->origins[i]);
    }
    if (c->router != NULL)
        zmq_close(c->router);
    if (c->zap != NULL)
        zmq_close(c->zap);
    free(c->members);
    free(c->seeds);
    free(c->retired);
    free(c->origins);
    free(c->trusted);
    free(c->scratch);
    free(c->owners);
    free(c->owner_is_seed);
    free(c->in);
    free(c->out);
    free(c);
    *cp = NULL;
}

size_t
wm_cluster_pollitems(wm_cluster *c, zmq_pollitem_t *items, size_t max,
                     long *timeout_ms)
{
    size_t n = 0, k = 0, want = c->nmembers + c->nseeds;
    int64_t left;

    if (!c->enabled || max < 2)
        return 0;
    if (want > c->nowners) {
        void **o = realloc(c->owners, want * sizeof(*o));
        int *s =
            o != NULL ? realloc(c->owner_is_seed, want * sizeof(*s)) : NULL;
        if (o != NULL)
            c->owners = o;
        if (s != NULL)
            c->owner_is_seed = s;
        if (o == NULL || s == NULL)
            want = 0;
        else
            c->nowners = want;
    }
    items[n++] = (zmq_pollitem_t){c->zap, 0, ZMQ_POLLIN, 0};
    items[n++] = (zmq_pollitem_t){c->router, 0, ZMQ_POLLIN, 0};
    for (size_t i = 0; i < c->nmembers && n < max && k < want; i++) {
        if (c->members[i]->dealer == NULL)
            continue;
        items[n++] = (zmq_pollitem_t){c->members[i]->dealer, 0, ZMQ_POLLIN, 0};
        c->owners[k] = c->members[i];
        c->owner_is_seed[k++] = 0;
    }
    for (size_t i = 0; i < c->nseeds && n < max && k < want; i++) {
        if (c->seeds[i].sock == NULL)
            continue;
        items[n++] = (zmq_pollitem_t){c->seeds[i].sock, 0, ZMQ_POLLIN, 0};
        c->owners[k] = &c->seeds[i];
        c->owner_is_seed[k++] = 1;
    }
    left = c->next_tick - now_ms();
    if (left < 0)
        left = 0;
    if (left < *timeout_ms)
        *timeout_ms = (long)left;
    return n;
}

static void
tick(wm_cluster *c, int64_t now)
{
    if (now >= c->next_probe) {
        c->next_probe = now + PROBE_MS;
        probe_next(c);
    }
    check_probes(c, now);
    if (now >= c->next_gossip) {
        struct member *to[1];
        c->next_gossip = now + GOSSIP_MS - 100 + rand() % 200;
        if (pick_members(c, NULL, to, 1) == 1) {
            send_digest(c, to[0]->dealer, NULL, 0, 0);
            c->rounds++;
        }
    }
    if (now >= c->next_seed) {
        c->next_seed = now + SEED_RETRY_MS;
        for (size_t i = 0; i < c->nseeds; i++)
            if (c->seeds[i].sock != NULL)
                seed_ping(c, &c->seeds[i]);
    }
    if (now >= c->next_dead_probe) {
        c->next_dead_probe = now + DEAD_PROBE_MS;
        probe_dead(c);
    }
    for (struct fetch *f = c->fetches, *next; f != NULL; f = next) {
        next = f->next;
        fetch_fill(c, f, now);
    }
}

void
wm_cluster_dispatch(wm_cluster *c, const zmq_pollitem_t *items, size_t n)
{
    int64_t now;

    if (!c->enabled)
        return;
    if (n >= 2 && (items[0].revents & ZMQ_POLLIN))
        read_zap(c);
    if (n >= 2 && (items[1].revents & ZMQ_POLLIN))
        read_router(c);
    for (size_t i = 2; i < n; i++) {
        size_t k = i - 2;
        if (!(items[i].revents & ZMQ_POLLIN) || k >= c->nowners)
            continue;
        if (c->owner_is_seed[k]) {
            struct seed_try *s = c->owners[k];
            if (s->sock == items[i].socket)
                read_seed(c, s);
        } else {
            struct member *m = c->owners[k];
            int alive = 0;
            for (size_t j = 0; j < c->nmembers; j++)
                alive |= c->members[j] == m;
            if (alive && m->dealer == items[i].socket)
                read_dealer(c, m->dealer, m);
        }
    }
    now = now_ms();
    if (now >= c->next_tick) {
        c->next_tick = now + TICK_MS;
        tick(c, now);
    }
    for (size_t i = 0; i < c->nretired; i++)
        zmq_close(c->retired[i]);
    c->nretired = 0;
}
