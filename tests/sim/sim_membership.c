/*
 * sim_membership: N instances of the real membership state machine
 * (node/membership.c) on one virtual clock, over a simulated network with
 * seeded latency (log-normal) and loss, and optionally CPU-starved nodes.
 * Every message is encoded and decoded by common/wire.c, so the byte
 * counts are the frames a node would send (what /metrics counts; CURVE
 * and TCP add their own). Identities are real Ed25519 keys and every
 * statement is really signed and checked. Nothing depends on the keys'
 * bytes, so a run repeats exactly from its seed.
 *
 * The glue is that of node/cluster.c and node/transport.c: a message from
 * a member marks it heard, a PING is answered on the socket it came on, a
 * member whose address is new is reachable, a joining node pings its
 * seed address every 2 s until the member there answers and then swaps
 * views with it (wm_members_sync), and the index's idle gossip sends one random
 * member a digest hash every second (it is heard like any message).
 *
 * A run has three phases: all nodes start within 100 ms, seeded from node
 * 0, until every node sees every other alive (convergence; --preload
 * skips it and hands every node every statement instead); then, after a
 * warm-up that lets the join's queued news go out, a quiet phase that
 * counts bytes and false verdicts (starved nodes, if any, are starved
 * from here on); then one member stops for good, until every other node
 * has declared it dead. One line per run (tests/sim/README.md has a
 * legend): rounds (seconds of the join / the 1 s probe period) and their
 * ratio to log2 N; seconds after the death until the first suspicion and
 * until half, 99 % and all of the others know it is dead; false dead
 * verdicts (a live member declared dead by anyone, starved nodes
 * included) and their rate per node-hour of the quiet and kill phases;
 * bytes per node per second in the quiet phase, membership messages alone
 * and with the idle digests; messages per node per second.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "identity.h"
#include "log.h"
#include "map.h"
#include "membership.h"
#include "simnet.h"
#include "wire.h"

/* cluster.c and transport.c timings the simulation follows */
#define TICK_US       (50 * 1000)
#define GOSSIP_US     (1000 * 1000)
#define SEED_RETRY_US (2000 * 1000)
#define SAMPLE_US     (100 * 1000)
#define PROBE_PERIOD  1.0 /* seconds: membership's PROBE_MS */

enum kind {
    EV_START,
    EV_TICK,
    EV_GOSSIP,
    EV_SEED_TRY,
    EV_PEER,       /* a message to a member's socket */
    EV_SEED,       /* a message to a seed address (a joiner's first) */
    EV_SEED_REPLY, /* the answer, on the joiner's seed socket */
};

/* Messages are read before timers at the same instant. */
enum { CLS_MSG = 0, CLS_TIMER = 1 };

enum phase { PH_JOIN, PH_QUIET, PH_KILL };

typedef struct node {
    uint32_t idx;
    wm_identity *key;
    wm_members *ms;
    char addr[32], name[16];
    int killed, seed_found;
    /* A starved CPU runs for BURST, then stalls for STALL, from PHASE
     * (microseconds). LATE: every message is handled that much late. */
    int64_t burst, stall, phase, late;
    wm_member *victim; /* this node's view of the victim, once chosen */
} node;

struct options {
    double latency_ms, sigma;
    int warmup_s, quiet_s, join_limit_s, kill_limit_s;
    int starve, late;
    int burst_ms, stall_ms, late_ms;
    int digest;
    int preload; /* start converged: no join phase */
    int check;
    int progress;   /* print the join's progress every second */
    int trace;      /* print every verdict after the join */
    int max_rounds; /* --check: convergence within this many rounds */
    uint64_t seed;
};

struct result {
    size_t n;
    double loss;
    double conv_s; /* from the last start; < 0: never */
    /* after the kill: the first suspicion; half, 99 % and all of the live
     * nodes know it is dead (< 0: not within --kill-limit-s) */
    double suspect_s, dead50_s, dead99_s, dead_s;
    uint64_t false_dead, false_suspect, by_starved, refutations;
    double node_hours;
    double bytes_per_node_s, swim_bytes_per_node_s, msgs_per_node_s;
    double wall_s;
    uint64_t join_bytes;
};

static struct sim {
    struct options opt;
    node *nodes;
    size_t n;
    double loss;
    sim_queue *q;
    sim_rng net;
    wm_map *by_id;
    int64_t now;
    int64_t last_start;
    enum phase phase;
    node *victim;
    wm_msg *in, *reply, *out;
    /* counters of the current phase */
    uint64_t bytes, swim_bytes, msgs;
    uint64_t false_dead, false_suspect, by_starved, refutations;
} S;

static void
die(const char *what)
{
    fprintf(stderr, "sim_membership: %s\n", what);
    exit(2);
}

static int64_t
now_ms(void)
{
    return S.now / 1000;
}

static node *
node_of(const uint8_t *id)
{
    return wm_map_get(S.by_id, id, WM_ID_LEN);
}

static void
queue(int64_t at, int kind, uint32_t to, uint32_t from, void *data, size_t len)
{
    sim_event e = {.at = at,
                   .cls = kind >= EV_PEER ? CLS_MSG : CLS_TIMER,
                   .kind = kind,
                   .node = to,
                   .from = from,
                   .data = data,
                   .len = len};

    if (sim_queue_push(S.q, &e) != 0)
        die("out of memory");
}

/* --- the network */

/* Sends M from SRC to DST: encoded, counted, then lost or delivered after
 * a log-normal delay (plus DST's lateness). */
static void
transmit(node *src, node *dst, int kind, const wm_msg *m)
{
    wm_buf b;
    size_t len;
    void *frame;
    int64_t delay;

    wm_buf_init(&b, WM_WIRE_FRAME_MAX);
    if (wm_msg_encode(m, &b) != 0 || b.failed)
        die("a message would not encode");
    S.bytes += b.len;
    S.msgs++;
    if (m->type != WM_MSG_DIGEST)
        S.swim_bytes += b.len;
    if (sim_rng_uniform(&S.net) < S.loss) {
        wm_buf_free(&b);
        return;
    }
    delay = (int64_t)(1000.0 * sim_rng_lognormal(&S.net, log(S.opt.latency_ms),
                                                 S.opt.sigma));
    frame = wm_buf_steal(&b, &len);
    if (frame == NULL)
        die("out of memory");
    queue(S.now + delay + dst->late, kind, dst->idx, src->idx, frame, len);
}

/* --- membership's io, as node/cluster.c does it */

static void
io_send(void *arg, wm_member *to, const wm_msg *m)
{
    node *dst = node_of(to->id);

    /* The transport has no socket to a member without an address. */
    if (!to->reachable || dst == NULL)
        return;
    transmit(arg, dst, EV_PEER, m);
}

static void
io_connect(void *arg, wm_member *m)
{
    (void)arg;
    m->reachable = 1; /* its signed address is known */
}

static void
io_changed(void *arg, wm_member *m)
{
    node *self = arg, *who = node_of(m->id);

    if (who == NULL || who->killed || S.phase == PH_JOIN)
        return;
    if (S.opt.trace)
        fprintf(stderr,
                "  t=%9.3f s: n%u sees n%u %s at incarnation %" PRIu64 "\n",
                (double)S.now / 1e6, self->idx, who->idx,
                wm_member_state_name(m->state), m->incarnation);
    if (m->state == WM_DEAD) {
        S.false_dead++;
        if (self->burst > 0 || self->late > 0)
            S.by_starved++;
    } else if (m->state == WM_SUSPECT) {
        S.false_suspect++;
    }
}

static int
io_trusted(void *arg, const uint8_t *id)
{
    return node_of(id) != NULL;
}

static void
io_incarnation(void *arg, uint64_t inc)
{
    if (S.phase != PH_JOIN)
        S.refutations++;
}

/* --- a node's events */

/* The transport's seed_identified: the answer on the seed socket names
 * the member there. */
static wm_member *
seed_identified(node *self, node *seed)
{
    wm_member *m =
        wm_members_add(self->ms, wm_identity_pubkey(seed->key), now_ms());

    if (m == NULL)
        return NULL;
    if (!m->reachable) {
        m->reachable = 1; /* reachable at the seed's address */
        wm_members_sync(self->ms, m, 1);
    }
    self->seed_found = 1;
    return m;
}

static void
on_message(node *self, const sim_event *e)
{
    node *src = &S.nodes[e->from];
    const char *why = NULL;
    wm_member *f;

    if (e->kind == EV_SEED_REPLY && self->seed_found)
        return; /* the seed socket is closed */
    if (wm_msg_decode(e->data, e->len, S.in, &why) != 0)
        die(why != NULL ? why : "a message would not decode");
    if (e->kind == EV_SEED_REPLY)
        f = seed_identified(self, src);
    else
        f = wm_members_add(self->ms, wm_identity_pubkey(src->key), now_ms());
    if (f == NULL)
        return;
    wm_members_heard(self->ms, f, now_ms());
    if (S.in->type == WM_MSG_DIGEST)
        return; /* idle gossip: equal digests need no answer */
    if (wm_members_receive(self->ms, f, S.in, now_ms(), S.reply))
        transmit(self, src, e->kind == EV_SEED ? EV_SEED_REPLY : EV_PEER,
                 S.reply);
}

static void
on_gossip(node *self)
{
    wm_member *to[1];

    if (wm_members_pick(self->ms, NULL, to, 1) == 1) {
        memset(S.out, 0, offsetof(wm_msg, entries));
        S.out->type = WM_MSG_DIGEST;
        wm_digest_hash(NULL, 0, S.out->digest_hash);
        io_send(self, to[0], S.out);
    }
    queue(S.now + GOSSIP_US - 100000 + (int64_t)sim_rng_below(&S.net, 200000),
          EV_GOSSIP, self->idx, self->idx, NULL, 0);
}

static void
on_seed_try(node *self)
{
    if (self->seed_found)
        return;
    wm_members_ping(self->ms, S.out);
    transmit(self, &S.nodes[0], EV_SEED, S.out);
    queue(S.now + SEED_RETRY_US, EV_SEED_TRY, self->idx, self->idx, NULL, 0);
}

/* When a starved node is stalled at AT, the end of that stall; else AT. */
static int64_t
awake_at(const node *self, int64_t at)
{
    int64_t period = self->burst + self->stall, pos;

    if (self->burst <= 0)
        return at;
    pos = (at - self->phase) % period;
    if (pos < 0)
        pos += period;
    return pos < self->burst ? at : at + (period - pos);
}

static void
run_event(sim_event *e)
{
    node *self = e->node < S.n ? &S.nodes[e->node] : NULL;
    int64_t at;

    if (self != NULL && self->killed)
        goto done;
    if (self != NULL && (at = awake_at(self, e->at)) != e->at) {
        e->at = at; /* stopped: it waits in the socket or the timer */
        if (sim_queue_push(S.q, e) != 0)
            die("out of memory");
        return;
    }
    switch (e->kind) {
    case EV_START:
        if (e->node != 0 && !self->seed_found)
            queue(S.now, EV_SEED_TRY, e->node, e->node, NULL, 0);
        queue(S.now, EV_TICK, e->node, e->node, NULL, 0);
        if (S.opt.digest)
            queue(S.now + GOSSIP_US, EV_GOSSIP, e->node, e->node, NULL, 0);
        break;
    case EV_TICK:
        wm_members_tick(self->ms, now_ms());
        queue(S.now + TICK_US, EV_TICK, e->node, e->node, NULL, 0);
        break;
    case EV_GOSSIP:
        on_gossip(self);
        break;
    case EV_SEED_TRY:
        on_seed_try(self);
        break;
    default:
        on_message(self, e);
        break;
    }
done:
    free(e->data);
}

/* --- measuring */

/* Prints what the nodes still miss of each other: members unknown, known
 * without a signed statement, suspect, dead. */
static void
print_progress(void)
{
    uint64_t unknown = 0, unsigned_ = 0, suspect = 0, dead = 0;

    for (size_t i = 0; i < S.n; i++) {
        wm_members *ms = S.nodes[i].ms;
        unknown += S.n - 1 - wm_members_count(ms);
        for (size_t k = 0; k < wm_members_count(ms); k++) {
            const wm_member *m = wm_members_at(ms, k);
            unsigned_ += !m->has_alive;
            suspect += m->state == WM_SUSPECT;
            dead += m->state == WM_DEAD;
        }
    }
    fprintf(stderr,
            "  t=%6.1f s: pairs unknown %" PRIu64 ", unsigned %" PRIu64
            ", suspect %" PRIu64 ", dead %" PRIu64 ", queue %zu\n",
            (double)S.now / 1e6, unknown, unsigned_, suspect, dead,
            sim_queue_len(S.q));
}

static int
converged(void)
{
    if (S.opt.progress && S.now % 1000000 == 0)
        print_progress();
    for (size_t i = 0; i < S.n; i++) {
        wm_members *ms = S.nodes[i].ms;
        size_t alive = 0;
        if (wm_members_count(ms) < S.n - 1)
            return 0;
        for (size_t k = 0; k < wm_members_count(ms); k++) {
            const wm_member *m = wm_members_at(ms, k);
            alive += m->state == WM_ALIVE && m->has_alive;
        }
        if (alive < S.n - 1)
            return 0;
    }
    return 1;
}

/* The share of live nodes that know the victim is dead; *ANY: whether
 * one of them at least suspects it. */
static double
victim_known(int *any)
{
    size_t live = 0, dead = 0;

    *any = 0;
    for (size_t i = 0; i < S.n; i++) {
        node *x = &S.nodes[i];
        if (x->killed)
            continue;
        live++;
        if (x->victim == NULL)
            x->victim =
                wm_members_get(x->ms, wm_identity_pubkey(S.victim->key));
        if (x->victim == NULL)
            continue;
        dead += x->victim->state == WM_DEAD;
        *any |= x->victim->state != WM_ALIVE;
    }
    return live > 0 ? (double)dead / (double)live : 1.0;
}

/* How many live nodes see the victim alive, suspect, dead. */
static void
print_victim_views(void)
{
    size_t by[3] = {0, 0, 0}, unknown = 0;

    for (size_t i = 0; i < S.n; i++) {
        const node *x = &S.nodes[i];
        if (x->killed)
            continue;
        if (x->victim == NULL)
            unknown++;
        else
            by[x->victim->state]++;
    }
    fprintf(stderr,
            "  t=%6.1f s: the victim is alive to %zu, suspect to %zu, dead "
            "to %zu, unknown to %zu\n",
            (double)S.now / 1e6, by[WM_ALIVE], by[WM_SUSPECT], by[WM_DEAD],
            unknown);
}

/* Runs events until virtual time UNTIL, or until DONE (checked every
 * SAMPLE_US) returns true. Returns 1 when DONE did. */
static int
run_until(int64_t until, int (*done)(void))
{
    int64_t next_sample = S.now + SAMPLE_US;
    sim_event e;

    for (;;) {
        if (sim_queue_next_at(S.q) > next_sample) {
            S.now = next_sample;
            if (done != NULL && done())
                return 1;
            if (S.now >= until)
                return 0;
            next_sample += SAMPLE_US;
            continue;
        }
        if (sim_queue_pop(S.q, &e) != 0)
            die("the event queue ran dry");
        S.now = e.at;
        run_event(&e);
    }
}

static void
reset_counters(void)
{
    S.bytes = S.swim_bytes = S.msgs = 0;
    S.false_dead = S.false_suspect = S.by_starved = S.refutations = 0;
}

/* --- a run */

static void
setup(size_t n, double loss, uint64_t seed)
{
    wm_members_io io = {NULL,       io_send,    io_connect,
                        io_changed, io_trusted, io_incarnation};
    sim_rng r;

    S.n = n;
    S.loss = loss;
    S.now = 0;
    S.phase = PH_JOIN;
    S.victim = NULL;
    S.q = sim_queue_new();
    S.by_id = wm_map_new();
    S.nodes = calloc(n, sizeof(node));
    if (S.q == NULL || S.by_id == NULL || S.nodes == NULL)
        die("out of memory");
    sim_rng_seed(&S.net, seed);
    sim_rng_seed(&r, seed ^ 0x5eed);
    for (size_t i = 0; i < n; i++) {
        node *x = &S.nodes[i];
        x->idx = (uint32_t)i;
        x->key = wm_identity_generate();
        if (x->key == NULL ||
            wm_map_put(S.by_id, wm_identity_pubkey(x->key), WM_ID_LEN, x) != 0)
            die("out of memory");
        snprintf(x->addr, sizeof(x->addr), "tcp://10.%zu.%zu.%zu:7391",
                 i >> 16 & 255, i >> 8 & 255, i & 255);
        snprintf(x->name, sizeof(x->name), "n%zu", i);
    }
    for (size_t i = 0; i < n; i++) {
        node *x = &S.nodes[i];
        io.arg = x;
        x->ms =
            wm_members_new(x->key, x->addr, x->name, 1, &io, sim_rng_next(&r));
        if (x->ms == NULL)
            die("out of memory");
        queue((int64_t)sim_rng_below(&r, 100000), EV_START, x->idx, x->idx,
              NULL, 0);
    }
    S.last_start = 100000;
}

/* Hands every node every other node's signed statement, as if the join
 * were over: each statement is checked by each node, as in a real join,
 * but nothing is sent. */
static void
preload(void)
{
    wm_member_update *own = calloc(S.n, sizeof(*own));
    wm_msg *m = S.in;

    if (own == NULL)
        die("out of memory");
    for (size_t j = 0; j < S.n; j++) {
        wm_members_ping(S.nodes[j].ms, S.out);
        own[j] = S.out->updates[0];
    }
    for (size_t i = 0; i < S.n; i++) {
        size_t j = 0;
        while (j < S.n) {
            memset(m, 0, offsetof(wm_msg, flags));
            m->type = WM_MSG_PING;
            for (; j < S.n && m->nupdates < WM_WIRE_MAX_UPDATES; j++)
                if (j != i)
                    m->updates[m->nupdates++] = own[j];
            wm_members_receive(S.nodes[i].ms, NULL, m, 0, S.reply);
        }
        S.nodes[i].seed_found = 1;
    }
    free(own);
}

static void
teardown(void)
{
    for (size_t i = 0; i < S.n; i++) {
        wm_members_destroy(&S.nodes[i].ms);
        wm_identity_destroy(&S.nodes[i].key);
    }
    free(S.nodes);
    S.nodes = NULL;
    sim_queue_destroy(&S.q);
    wm_map_destroy(&S.by_id, NULL);
}

/* Starves the nodes 1..K (the seed is never one of them): bursts and
 * stalls from a random phase, or a constant lateness. */
static void
starve(void)
{
    for (int i = 0; i < S.opt.starve && (size_t)(i + 1) < S.n; i++) {
        node *x = &S.nodes[i + 1];
        x->burst = (int64_t)S.opt.burst_ms * 1000;
        x->stall = (int64_t)S.opt.stall_ms * 1000;
        x->phase = S.now + (int64_t)sim_rng_below(
                               &S.net, (uint64_t)(x->burst + x->stall));
    }
    for (int i = 0; i < S.opt.late && (size_t)(S.opt.starve + i + 1) < S.n; i++)
        S.nodes[S.opt.starve + i + 1].late = (int64_t)S.opt.late_ms * 1000;
}

static struct result
run(size_t n, double loss)
{
    struct result res;
    struct timespec t0, t1;
    int64_t quiet_start;

    memset(&res, 0, sizeof(res));
    res.n = n;
    res.loss = loss;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    setup(n, loss, S.opt.seed);
    reset_counters();

    if (S.opt.preload) {
        preload();
        res.conv_s = NAN;
        run_until(S.last_start, NULL);
    } else if (run_until((int64_t)S.opt.join_limit_s * 1000000, converged)) {
        res.conv_s = (double)(S.now - S.last_start) / 1e6;
    } else {
        res.conv_s = -1;
    }
    res.join_bytes = S.bytes;

    /* What the join left in the queues is sent before the quiet phase
     * counts anything. */
    run_until(S.now + (int64_t)S.opt.warmup_s * 1000000, NULL);
    S.phase = PH_QUIET;
    starve();
    reset_counters();
    quiet_start = S.now;
    run_until(S.now + (int64_t)S.opt.quiet_s * 1000000, NULL);
    res.bytes_per_node_s = (double)S.bytes / (double)n / S.opt.quiet_s;
    res.swim_bytes_per_node_s =
        (double)S.swim_bytes / (double)n / S.opt.quiet_s;
    res.msgs_per_node_s = (double)S.msgs / (double)n / S.opt.quiet_s;

    /* The victim: a random node that is neither the seed nor starved. */
    S.phase = PH_KILL;
    {
        size_t first = (size_t)(S.opt.starve + S.opt.late + 1);
        size_t v = first < n ? first + sim_rng_below(&S.net, n - first) : n - 1;
        int64_t killed_at = S.now, limit;
        S.victim = &S.nodes[v];
        S.victim->killed = 1;
        limit = S.now + 1000000 * (S.opt.kill_limit_s > 0
                                       ? (int64_t)S.opt.kill_limit_s
                                       : (int64_t)n + 120);
        res.suspect_s = res.dead50_s = res.dead99_s = res.dead_s = -1;
        while (S.now < limit) {
            int any;
            double known, t;
            run_until(S.now + SAMPLE_US, NULL);
            known = victim_known(&any);
            t = (double)(S.now - killed_at) / 1e6;
            if (S.opt.progress && S.now % 1000000 == 0)
                print_victim_views();
            if (any && res.suspect_s < 0)
                res.suspect_s = t;
            if (known >= 0.5 && res.dead50_s < 0)
                res.dead50_s = t;
            if (known >= 0.99 && res.dead99_s < 0)
                res.dead99_s = t;
            if (known >= 1.0) {
                res.dead_s = t;
                break;
            }
        }
    }
    res.false_dead = S.false_dead;
    res.false_suspect = S.false_suspect;
    res.by_starved = S.by_starved;
    res.refutations = S.refutations;
    res.node_hours = (double)n * (double)(S.now - quiet_start) / 3.6e9;
    teardown();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res.wall_s = (double)(t1.tv_sec - t0.tv_sec) +
                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return res;
}

/* --- the report */

static void
print_header(void)
{
    printf("%6s %5s %7s %7s | %7s %6s %6s %6s | %6s %8s | %7s %7s %6s | "
           "%6s\n",
           "N", "loss%", "rounds", "r/log2N", "suspect", "dead50", "dead99",
           "dead", "false", "false/nh", "swimB/s", "allB/s", "msgs/s",
           "wall_s");
    fflush(stdout);
}

/* "-" for a time not measured (a preloaded run's convergence) or not
 * reached. */
static const char *
secs(char *buf, size_t cap, double s, double scale)
{
    if (isnan(s) || s < 0)
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.1f", s / scale);
    return buf;
}

static void
print_result(const struct result *r)
{
    double lg = log2((double)r->n);
    char b[6][32];

    printf("%6zu %5.1f %7s %7s | %7s %6s %6s %6s | %6" PRIu64 " %8.3f | "
           "%7.0f %7.0f %6.1f | %6.1f\n",
           r->n, 100 * r->loss, secs(b[0], 32, r->conv_s, PROBE_PERIOD),
           secs(b[1], 32, r->conv_s, PROBE_PERIOD * lg),
           secs(b[2], 32, r->suspect_s, 1), secs(b[3], 32, r->dead50_s, 1),
           secs(b[4], 32, r->dead99_s, 1), secs(b[5], 32, r->dead_s, 1),
           r->false_dead, (double)r->false_dead / r->node_hours,
           r->swim_bytes_per_node_s, r->bytes_per_node_s, r->msgs_per_node_s,
           r->wall_s);
    printf("       false suspicions %" PRIu64 ", dead verdicts by starved "
           "nodes %" PRIu64 ", refutations %" PRIu64 ", node-hours %.2f, "
           "join traffic %.1f MB\n",
           r->false_suspect, r->by_starved, r->refutations, r->node_hours,
           (double)r->join_bytes / 1e6);
    fflush(stdout);
}

static void
usage(FILE *f)
{
    fprintf(
        f,
        "usage: sim_membership [options]\n"
        "  -n LIST            node counts, comma-separated (default 100)\n"
        "  --loss LIST        message loss in %%, comma-separated (0)\n"
        "  --seed S           seed of every random choice (1)\n"
        "  --latency-ms M     median one-way latency (2)\n"
        "  --sigma S          log-normal sigma of the latency (0.6)\n"
        "  --warmup-s W       after convergence, before the quiet phase (30)\n"
        "  --quiet-s D        quiet phase: bytes and false verdicts (60)\n"
        "  --join-limit-s T   give up on convergence after T (300)\n"
        "  --kill-limit-s T   give up on the death after T (N + 120)\n"
        "  --starve K         nodes 1..K run BURST then stall STALL\n"
        "  --burst-ms B       (300)\n"
        "  --stall-ms S       (300)\n"
        "  --late K           the next K nodes handle every message late\n"
        "  --late-ms L        by L (1000)\n"
        "  --no-digest        no idle index gossip\n"
        "  --preload          start converged (every node handed every\n"
        "                     statement): no join, rounds are \"-\"\n"
        "  --check            exit 1 unless every run converged within\n"
        "                     --max-rounds, found the death, and had no\n"
        "                     false dead verdict\n"
        "  --max-rounds R     (20)\n"
        "  --progress         what the nodes miss of each other, every\n"
        "                     second of the join, on stderr\n"
        "  --trace            every verdict after the join, on stderr\n"
        "  -v                 membership's log lines on stderr\n");
}

/* Parses "a,b,c" into OUT (at most MAX); returns the count. */
static size_t
parse_list(const char *s, double *out, size_t max)
{
    size_t n = 0;
    char *end;

    while (*s != '\0' && n < max) {
        out[n++] = strtod(s, &end);
        if (end == s)
            return 0;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"loss", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},
        {"latency-ms", required_argument, NULL, 'L'},
        {"sigma", required_argument, NULL, 'g'},
        {"quiet-s", required_argument, NULL, 'q'},
        {"warmup-s", required_argument, NULL, 'w'},
        {"join-limit-s", required_argument, NULL, 'j'},
        {"kill-limit-s", required_argument, NULL, 'k'},
        {"starve", required_argument, NULL, 'S'},
        {"burst-ms", required_argument, NULL, 'b'},
        {"stall-ms", required_argument, NULL, 't'},
        {"late", required_argument, NULL, 'a'},
        {"late-ms", required_argument, NULL, 'A'},
        {"no-digest", no_argument, NULL, 'D'},
        {"preload", no_argument, NULL, 'p'},
        {"check", no_argument, NULL, 'c'},
        {"max-rounds", required_argument, NULL, 'R'},
        {"progress", no_argument, NULL, 'P'},
        {"trace", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    double ns[8] = {100}, losses[8] = {0};
    size_t nn = 1, nl = 1;
    int c, failed = 0;

    S.opt = (struct options){.latency_ms = 2,
                             .sigma = 0.6,
                             .warmup_s = 30,
                             .quiet_s = 60,
                             .join_limit_s = 300,
                             .kill_limit_s = 0,
                             .burst_ms = 300,
                             .stall_ms = 300,
                             .late_ms = 1000,
                             .digest = 1,
                             .max_rounds = 20,
                             .seed = 1};
    wm_log_set_level(WM_LOG_WARN);
    while ((c = getopt_long(argc, argv, "n:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            nn = parse_list(optarg, ns, 8);
            break;
        case 'l':
            nl = parse_list(optarg, losses, 8);
            break;
        case 's':
            S.opt.seed = strtoull(optarg, NULL, 0);
            break;
        case 'L':
            S.opt.latency_ms = atof(optarg);
            break;
        case 'g':
            S.opt.sigma = atof(optarg);
            break;
        case 'q':
            S.opt.quiet_s = atoi(optarg);
            break;
        case 'w':
            S.opt.warmup_s = atoi(optarg);
            break;
        case 'j':
            S.opt.join_limit_s = atoi(optarg);
            break;
        case 'k':
            S.opt.kill_limit_s = atoi(optarg);
            break;
        case 'S':
            S.opt.starve = atoi(optarg);
            break;
        case 'b':
            S.opt.burst_ms = atoi(optarg);
            break;
        case 't':
            S.opt.stall_ms = atoi(optarg);
            break;
        case 'a':
            S.opt.late = atoi(optarg);
            break;
        case 'A':
            S.opt.late_ms = atoi(optarg);
            break;
        case 'D':
            S.opt.digest = 0;
            break;
        case 'p':
            S.opt.preload = 1;
            break;
        case 'c':
            S.opt.check = 1;
            break;
        case 'R':
            S.opt.max_rounds = atoi(optarg);
            break;
        case 'T':
            S.opt.trace = 1;
            break;
        case 'P':
            S.opt.progress = 1;
            break;
        case 'v':
            wm_log_set_level(WM_LOG_INFO);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (nn == 0 || nl == 0 || optind != argc || S.opt.quiet_s <= 0 ||
        S.opt.warmup_s < 0 || S.opt.latency_ms <= 0 || S.opt.burst_ms <= 0 ||
        S.opt.stall_ms < 0) {
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < nn; i++)
        if (ns[i] < 2 || ns[i] > 100000)
            die("-n: between 2 and 100000 nodes");
    if (wm_identity_init() != 0)
        die("libsodium would not start");
    S.in = calloc(1, sizeof(wm_msg));
    S.reply = calloc(1, sizeof(wm_msg));
    S.out = calloc(1, sizeof(wm_msg));
    if (S.in == NULL || S.reply == NULL || S.out == NULL)
        die("out of memory");

    printf("# seed %" PRIu64 ", latency median %.1f ms sigma %.2f, quiet "
           "%d s, starved %d (%d ms run / %d ms stall), late %d (%d "
           "ms)\n",
           S.opt.seed, S.opt.latency_ms, S.opt.sigma, S.opt.quiet_s,
           S.opt.starve, S.opt.burst_ms, S.opt.stall_ms, S.opt.late,
           S.opt.late_ms);
    print_header();
    for (size_t i = 0; i < nn; i++) {
        for (size_t j = 0; j < nl; j++) {
            struct result r = run((size_t)ns[i], losses[j] / 100.0);
            print_result(&r);
            if (r.conv_s < 0 || r.conv_s / PROBE_PERIOD > S.opt.max_rounds ||
                r.dead_s < 0 || r.false_dead > 0)
                failed = 1;
        }
    }
    free(S.in);
    free(S.reply);
    free(S.out);
    if (S.opt.check && failed) {
        printf("FAIL: a run did not converge within %d rounds, did not "
               "find the death, or had a false dead verdict\n",
               S.opt.max_rounds);
        return 1;
    }
    return 0;
}
