/*
 * SWIM membership with signed statements. The rules that keep one hostile
 * member from moving another:
 * - an ALIVE update is taken only with a valid signature of the member it
 *   is about, and only when its incarnation is newer than the one known;
 * - SUSPECT and DEAD reports count only at the incarnation known, so a
 *   report can never push a member's incarnation up (nor to the wrap);
 * - a node refutes a report about its own current incarnation by signing
 *   the next one; values at or past WM_WIRE_COUNTER_MAX never decode.
 *
 * Lifeguard (Dadgar et al., 2018; as in hashicorp/memberlist), because a
 * node that handles its messages late suspects healthy members and
 * spreads verdicts it alone believes (tests/sim shows it):
 * - local health: a probe that goes unanswered, or a suspicion of this
 *   node it has to refute, makes it slower to probe and to suspect; an
 *   answered probe makes it quicker again;
 * - a suspicion waits SUSPICION_MAX times the base timeout until others
 *   confirm it, down to the base with SUSPICION_K confirmations;
 * - a member that this node knows was suspected is told so in whatever
 *   this node sends it, so it refutes before the verdict (the buddy
 *   system).
 */
#include "membership.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

#define PROBE_MS         1000
#define PROBE_TIMEOUT_MS 500
#define DEAD_PROBE_MS    5000
#define FANOUT           3
#define MAX_QUEUED       32
#define MAX_RELAYS       16
#define PIGGYBACK        8 /* updates per probe message, ours included */
#define HEALTH_MAX       8 /* local health stays in [0, HEALTH_MAX - 1] */
#define SYNC_MS          1000 /* views that grow are swapped this often */
#define SYNC_NEWS        2    /* members new to this node that make it so */
#define SETTLE_MAX_MS    4000 /* swaps after a start: 1, 3 and 7 s after it */
#define SUSPICION_K      2 /* confirmations that bring the base timeout */
#define SUSPICION_MAX    6 /* a lone suspicion waits this many times it */

_Static_assert(WM_MEMBER_ACCUSERS == SUSPICION_K + 1,
               "a suspicion remembers its origin and K confirmations");

struct queued {
    wm_member_update u;
    int left;  /* sends to go */
    int taken; /* already in the message being filled */
};

/* A probe this node makes for another (PING_REQ). */
struct relay {
    uint32_t seq_out;
    wm_member *requester;
    uint32_t seq_in;
    int64_t expires;
};

struct wm_members {
    const wm_identity *self;
    uint8_t self_id[WM_ID_LEN];
    wm_alive self_alive;
    wm_members_io io;
    wm_member **members;
    size_t n, cap;
    struct queued queue[MAX_QUEUED];
    size_t nqueued;
    struct relay relays[MAX_RELAYS];
    uint32_t seq;
    wm_member **order; /* this round's probe order, a shuffle of members */
    size_t norder, cursor;
    int64_t next_probe, next_dead_probe;
    int64_t next_sync;
    int64_t next_settle, settle_gap; /* the swaps after a start; gap 0: done */
    size_t news; /* members whose statement came since the last swap */
    uint64_t rng;
    uint64_t rejected;
    int health; /* Lifeguard's local health: 0 is healthy */
    wm_probe_rtt rtt;
    wm_msg *out;
};

const int64_t wm_probe_rtt_ms[WM_PROBE_RTT_BUCKETS - 1] = {5,   25,  100,
                                                           250, 500, 1000};

const char *
wm_member_state_name(int state)
{
    static const char *const names[] = {"alive", "suspect", "dead"};

    return state >= 0 && state <= WM_DEAD ? names[state] : "?";
}

/* xorshift64*: cheap, and repeatable from a seed (the simulator). */
static uint64_t
rnd(wm_members *ms)
{
    ms->rng ^= ms->rng >> 12;
    ms->rng ^= ms->rng << 25;
    ms->rng ^= ms->rng >> 27;
    return ms->rng * 2685821657736338717ULL;
}

static int
is_self(const wm_members *ms, const uint8_t *id)
{
    return memcmp(id, ms->self_id, WM_ID_LEN) == 0;
}

static void
sign_self(wm_members *ms)
{
    wm_alive_sign(ms->self, &ms->self_alive);
}

/* Copies S into the array DST of CAP bytes, keeping printable ASCII only
 * (a node name from the config may hold anything). */
static void
copy_printable(char *dst, size_t cap, const char *s)
{
    size_t i = 0;

    for (; s != NULL && s[i] != '\0' && i + 1 < cap; i++)
        dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    dst[i] = '\0';
}

wm_members *
wm_members_new(const wm_identity *self, const char *addr, const char *name,
               uint64_t incarnation, const wm_members_io *io, uint64_t seed)
{
    wm_members *ms = calloc(1, sizeof(*ms));

    if (ms == NULL || (ms->out = calloc(1, sizeof(wm_msg))) == NULL) {
        free(ms);
        return NULL;
    }
    ms->self = self;
    memcpy(ms->self_id, wm_identity_pubkey(self), WM_ID_LEN);
    ms->io = *io;
    ms->rng = seed | 1;
    ms->settle_gap = SYNC_MS;
    if (incarnation == 0 || incarnation >= WM_WIRE_COUNTER_MAX)
        incarnation = 1;
    ms->self_alive.incarnation = incarnation;
    snprintf(ms->self_alive.addr, sizeof(ms->self_alive.addr), "%s", addr);
    copy_printable(ms->self_alive.name, sizeof(ms->self_alive.name), name);
    sign_self(ms);
    return ms;
}

void
wm_members_destroy(wm_members **msp)
{
    wm_members *ms;

    if (msp == NULL || *msp == NULL)
        return;
    ms = *msp;
    for (size_t i = 0; i < ms->n; i++)
        free(ms->members[i]);
    free(ms->members);
    free(ms->order);
    free(ms->out);
    free(ms);
    *msp = NULL;
}

wm_member *
wm_members_get(const wm_members *ms, const uint8_t *id)
{
    /* Linear: a fleet has at most a few hundred members, and a lookup
     * costs far less than the message that asked for it. */
    for (size_t i = 0; i < ms->n; i++)
        if (memcmp(ms->members[i]->id, id, WM_ID_LEN) == 0)
            return ms->members[i];
    return NULL;
}

wm_member *
wm_members_add(wm_members *ms, const uint8_t *id, int64_t now)
{
    wm_member *m = wm_members_get(ms, id);

    if (m != NULL)
        return m->trusted ? m : NULL;
    if (is_self(ms, id) || !ms->io.trusted(ms->io.arg, id))
        return NULL;
    if (ms->n == ms->cap) {
        size_t cap = ms->cap ? 2 * ms->cap : 16;
        wm_member **grown = realloc(ms->members, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        ms->members = grown;
        ms->cap = cap;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    memcpy(m->id, id, WM_ID_LEN);
    wm_hex_encode(id, WM_ID_LEN, m->hex);
    m->state = WM_ALIVE;
    m->trusted = 1;
    m->last_heard = m->state_since = now;
    ms->members[ms->n++] = m;
    return m;
}

size_t
wm_members_count(const wm_members *ms)
{
    return ms->n;
}

const uint8_t *
wm_members_self_id(const wm_members *ms)
{
    return ms->self_id;
}

wm_member *
wm_members_at(const wm_members *ms, size_t i)
{
    return ms->members[i];
}

int
wm_member_usable(const wm_member *m)
{
    return m != NULL && m->trusted && m->state != WM_DEAD && m->reachable;
}

uint64_t
wm_members_incarnation(const wm_members *ms)
{
    return ms->self_alive.incarnation;
}

uint64_t
wm_members_rejected(const wm_members *ms)
{
    return ms->rejected;
}

int
wm_members_health(const wm_members *ms)
{
    return ms->health;
}

const wm_probe_rtt *
wm_members_probe_rtt(const wm_members *ms)
{
    return &ms->rtt;
}

static void
rtt_add(wm_members *ms, int64_t ms_taken)
{
    size_t i = 0;

    while (i < WM_PROBE_RTT_BUCKETS - 1 && ms_taken > wm_probe_rtt_ms[i])
        i++;
    ms->rtt.count[i]++;
    ms->rtt.sum_ms += (uint64_t)(ms_taken > 0 ? ms_taken : 0);
}

/* T, a probe interval or timeout, stretched by this node's local health:
 * a node that cannot get answers in time waits longer before it blames
 * anyone else. */
static int64_t
scaled(const wm_members *ms, int64_t t)
{
    return t * (ms->health + 1);
}

static void
health_add(wm_members *ms, int delta)
{
    ms->health += delta;
    if (ms->health < 0)
        ms->health = 0;
    if (ms->health > HEALTH_MAX - 1)
        ms->health = HEALTH_MAX - 1;
}

/* --- dissemination */

static size_t
retransmits(const wm_members *ms)
{
    size_t n = ms->n + 1, r = 1;

    while (n >= 10) { /* ceil(log10(N + 1)) */
        n /= 10;
        r++;
    }
    return 4 * r;
}

/* Queues what this node knows of M (or of itself, when M is NULL) to
 * ride on the next probes. */
static void
enqueue(wm_members *ms, const wm_member *m)
{
    const uint8_t *id = m != NULL ? m->id : ms->self_id;
    struct queued *q = NULL;

    if (m != NULL && m->state == WM_ALIVE && !m->has_alive)
        return; /* nothing signed to pass on */
    for (size_t i = 0; i < ms->nqueued; i++)
        if (memcmp(ms->queue[i].u.id, id, WM_ID_LEN) == 0)
            q = &ms->queue[i];
    if (q == NULL) {
        if (ms->nqueued == MAX_QUEUED) { /* full: replace the most sent */
            q = &ms->queue[0];
            for (size_t i = 1; i < ms->nqueued; i++)
                if (ms->queue[i].left < q->left)
                    q = &ms->queue[i];
        } else {
            q = &ms->queue[ms->nqueued++];
        }
    }
    memset(q, 0, sizeof(*q));
    memcpy(q->u.id, id, WM_ID_LEN);
    if (m == NULL) {
        q->u.state = WM_ALIVE;
        q->u.incarnation = ms->self_alive.incarnation;
        q->u.alive = ms->self_alive;
    } else {
        q->u.state = (uint8_t)m->state;
        q->u.incarnation = m->incarnation;
        if (m->state == WM_ALIVE)
            q->u.alive = m->alive;
    }
    q->left = (int)retransmits(ms);
}

/* Fills U with this node's own signed statement. */
static void
self_update(const wm_members *ms, wm_member_update *u)
{
    memset(u, 0, sizeof(*u));
    memcpy(u->id, ms->self_id, WM_ID_LEN);
    u->state = WM_ALIVE;
    u->incarnation = ms->self_alive.incarnation;
    u->alive = ms->self_alive;
}

/* Fills M's updates: this node's statement first; then, when M goes to a
 * member TO (NULL: unknown) that was reported suspect or dead at the
 * incarnation it last signed, that report, so TO refutes it; then queued
 * changes. */
static void
piggyback(wm_members *ms, wm_msg *m, const wm_member *to)
{
    self_update(ms, &m->updates[0]);
    m->nupdates = 1;
    if (to != NULL && to->has_rumor && to->rumor_inc == to->incarnation) {
        wm_member_update *u = &m->updates[m->nupdates++];
        memset(u, 0, sizeof(*u));
        memcpy(u->id, to->id, WM_ID_LEN);
        u->state = WM_SUSPECT;
        u->incarnation = to->rumor_inc;
    }
    /* The least sent first, as memberlist's queue does: news (a
     * suspicion, its refutation) must not wait behind old news. */
    while (m->nupdates < PIGGYBACK) {
        size_t best = ms->nqueued;
        for (size_t i = 0; i < ms->nqueued; i++)
            if (!ms->queue[i].taken &&
                (best == ms->nqueued ||
                 ms->queue[i].left > ms->queue[best].left))
                best = i;
        if (best == ms->nqueued)
            break;
        m->updates[m->nupdates++] = ms->queue[best].u;
        ms->queue[best].taken = 1;
        ms->queue[best].left--;
    }
    for (size_t i = 0; i < ms->nqueued;) {
        ms->queue[i].taken = 0;
        if (ms->queue[i].left <= 0)
            ms->queue[i] = ms->queue[--ms->nqueued];
        else
            i++;
    }
}

static void
set_state(wm_members *ms, wm_member *m, int state, int64_t now)
{
    if (m->state == state)
        return;
    wm_info("cluster: %.16s (%s) at %s is %s", m->hex,
            m->has_alive && m->alive.name[0] ? m->alive.name : "?",
            m->has_alive ? m->alive.addr : "?", wm_member_state_name(state));
    if (state != WM_ALIVE) {
        m->rumor_inc = m->incarnation;
        m->has_rumor = 1;
    }
    m->naccusers = 0;
    m->state = state;
    m->state_since = now;
    enqueue(ms, m);
    if (ms->io.changed != NULL)
        ms->io.changed(ms->io.arg, m);
}

/* ACCUSER (NULL: this node's own probe) says M is suspect: the first to
 * say so starts the suspicion, each other one confirms it. */
static void
suspect(wm_members *ms, wm_member *m, const wm_member *accuser, int64_t now)
{
    if (m->state == WM_ALIVE) {
        set_state(ms, m, WM_SUSPECT, now);
        m->accusers[0] = accuser;
        m->naccusers = 1;
        return;
    }
    if (m->state != WM_SUSPECT || m->naccusers == WM_MEMBER_ACCUSERS)
        return;
    for (size_t i = 0; i < m->naccusers; i++)
        if (m->accusers[i] == accuser)
            return;
    m->accusers[m->naccusers++] = accuser;
}

void
wm_members_heard(wm_members *ms, wm_member *m, int64_t now)
{
    m->last_heard = now;
    if (m->state != WM_ALIVE && m->trusted)
        set_state(ms, m, WM_ALIVE, now);
}

/* Someone says this node is suspect or dead at INC. */
static void
refute(wm_members *ms, uint64_t inc)
{
    if (inc != ms->self_alive.incarnation ||
        inc + 1 >= WM_WIRE_COUNTER_MAX)
        return;
    ms->self_alive.incarnation = inc + 1;
    sign_self(ms);
    health_add(ms, 1); /* others could not hear us in time */
    if (ms->io.incarnation != NULL)
        ms->io.incarnation(ms->io.arg, inc + 1);
    enqueue(ms, NULL);
}

static void
take_alive(wm_members *ms, wm_member *m, const wm_member_update *u,
           int64_t now)
{
    int moved = !m->has_alive || strcmp(m->alive.addr, u->alive.addr) != 0;

    m->alive = u->alive;
    m->has_alive = 1;
    if (u->incarnation > m->incarnation || m->state == WM_ALIVE) {
        m->incarnation = u->incarnation;
        if (m->state != WM_ALIVE)
            set_state(ms, m, WM_ALIVE, now);
        else
            enqueue(ms, m);
    }
    if (moved && ms->io.connect != NULL)
        ms->io.connect(ms->io.arg, m);
}

static void
apply(wm_members *ms, const wm_member *from, const wm_member_update *u,
      int64_t now)
{
    wm_member *m;

    if (is_self(ms, u->id)) {
        if (u->state != WM_ALIVE)
            refute(ms, u->incarnation);
        return;
    }
    m = wm_members_get(ms, u->id);
    if (m != NULL && !m->trusted)
        return;
    if (u->state == WM_ALIVE) {
        int newer = m == NULL || !m->has_alive ||
                    u->incarnation > m->incarnation;
        if (!newer)
            return;
        if (!wm_alive_valid(u->id, &u->alive)) {
            ms->rejected++;
            return;
        }
        if (m == NULL) {
            m = wm_members_add(ms, u->id, now);
            if (m == NULL)
                return; /* untrusted: ignored */
            m->incarnation = u->incarnation;
            wm_info("cluster: learned of %.16s (%s) at %s", m->hex,
                    u->alive.name[0] ? u->alive.name : "?", u->alive.addr);
        }
        if (!m->has_alive)
            ms->news++; /* its statement reached this node: news */
        take_alive(ms, m, u, now);
        return;
    }
    /* A report: it counts at the incarnation the member last signed. */
    if (m == NULL || u->incarnation != m->incarnation)
        return;
    if (u->state == WM_SUSPECT)
        suspect(ms, m, from, now);
    else if (u->state > m->state)
        set_state(ms, m, u->state, now);
}

static void
apply_all(wm_members *ms, const wm_member *from, const wm_msg *msg,
          int64_t now)
{
    for (size_t i = 0; i < msg->nupdates; i++)
        apply(ms, from, &msg->updates[i], now);
}

/* --- probes */

static void
send_ping(wm_members *ms, wm_member *to, int type, uint32_t seq,
          const uint8_t *target)
{
    wm_msg *msg = ms->out;

    memset(msg, 0, offsetof(wm_msg, digest));
    msg->type = (uint8_t)type;
    msg->seq = seq;
    if (target != NULL)
        memcpy(msg->target, target, WM_ID_LEN);
    piggyback(ms, msg, to);
    ms->io.send(ms->io.arg, to, msg);
}

void
wm_members_ping(wm_members *ms, wm_msg *m)
{
    memset(m, 0, offsetof(wm_msg, digest));
    m->type = WM_MSG_PING;
    m->seq = ++ms->seq;
    piggyback(ms, m, NULL);
}

void
wm_members_sync(wm_members *ms, wm_member *to, int ask)
{
    wm_msg *msg = ms->out;
    size_t i = 0;

    do {
        memset(msg, 0, offsetof(wm_msg, digest));
        msg->type = WM_MSG_SYNC;
        msg->seq = ++ms->seq;
        msg->flags = ask && i == 0 ? WM_SYNC_ASK : 0;
        self_update(ms, &msg->updates[0]);
        msg->nupdates = 1;
        for (; i < ms->n && msg->nupdates < WM_WIRE_MAX_UPDATES; i++) {
            const wm_member *m = ms->members[i];
            wm_member_update *u = &msg->updates[msg->nupdates];
            if (m == to || !m->trusted || !m->has_alive ||
                m->state == WM_DEAD)
                continue;
            memset(u, 0, sizeof(*u));
            memcpy(u->id, m->id, WM_ID_LEN);
            u->state = WM_ALIVE;
            u->incarnation = m->alive.incarnation;
            u->alive = m->alive;
            msg->nupdates++;
        }
        ms->io.send(ms->io.arg, to, msg);
    } while (i < ms->n);
}

size_t
wm_members_pick(wm_members *ms, const wm_member *except, wm_member **out,
                size_t want)
{
    size_t n = 0, tries = 0;

    while (n < want && ms->n > 0 && tries++ < 4 * ms->n + 4) {
        wm_member *m = ms->members[rnd(ms) % ms->n];
        int dup = 0;
        if (!wm_member_usable(m) || m == except || m->state != WM_ALIVE)
            continue;
        for (size_t i = 0; i < n; i++)
            dup |= out[i] == m;
        if (!dup)
            out[n++] = m;
    }
    return n;
}

/* The next member to probe. Every member once a round, in an order
 * shuffled anew each round: in the order members were learned, which is
 * much the same on every node, all would probe the same member at about
 * the same time and a dead one could go unprobed for most of a round. A
 * member learned during a round waits for the next. */
static wm_member *
probe_order_next(wm_members *ms)
{
    if (ms->cursor >= ms->norder) {
        wm_member **grown = realloc(ms->order, ms->n * sizeof(*grown));
        if (grown == NULL && ms->n > 0)
            return ms->members[rnd(ms) % ms->n]; /* out of memory */
        ms->order = grown;
        ms->norder = ms->n;
        ms->cursor = 0;
        memcpy(ms->order, ms->members, ms->n * sizeof(*grown));
        for (size_t i = ms->n; i > 1; i--) { /* Fisher-Yates */
            size_t j = rnd(ms) % i;
            wm_member *t = ms->order[i - 1];
            ms->order[i - 1] = ms->order[j];
            ms->order[j] = t;
        }
    }
    return ms->norder > 0 ? ms->order[ms->cursor++] : NULL;
}

static void
probe_next(wm_members *ms, int64_t now)
{
    for (size_t tries = 0; tries < ms->n; tries++) {
        wm_member *m = probe_order_next(ms);
        if (m == NULL)
            return;
        if (!wm_member_usable(m) || m->probing)
            continue;
        m->probe_seq = ++ms->seq;
        m->probe_sent = now;
        m->probing = 1;
        m->indirect_sent = 0;
        send_ping(ms, m, WM_MSG_PING, m->probe_seq, NULL);
        return;
    }
}

static int64_t
suspicion_ms(const wm_members *ms)
{
    size_t n = ms->n + 1;
    int64_t k = 1;

    while (n >= 10) { /* max(1, log10 N) */
        n /= 10;
        k++;
    }
    return 4 * k * PROBE_MS;
}

/* True when fewer than SUSPICION_K members besides M could confirm a
 * suspicion of it: the trusted ones not dead. Dead ones confirm nothing. */
static int
too_few_witnesses(const wm_members *ms, const wm_member *m)
{
    size_t n = 0;

    for (size_t i = 0; i < ms->n && n < SUSPICION_K; i++) {
        const wm_member *w = ms->members[i];
        n += w != m && w->trusted && w->state != WM_DEAD;
    }
    return n < SUSPICION_K;
}

/* How long M stays suspect before this node declares it dead: from
 * SUSPICION_MAX times suspicion_ms while nobody confirms the suspicion,
 * down to suspicion_ms with SUSPICION_K confirmations, by log(c + 1) /
 * log(K + 1) as Lifeguard does. Where too few members are left to
 * confirm it (a small cluster, or one whose other members died), the
 * wait is suspicion_ms: waiting for confirmations that cannot come only
 * kept a dead member listed 30 s and more. */
static int64_t
suspicion_timeout(const wm_members *ms, const wm_member *m)
{
    static const int64_t permille[SUSPICION_K + 1] = {0, 631, 1000};
    int64_t base = suspicion_ms(ms), max = SUSPICION_MAX * base;
    size_t c = m->naccusers > 0 ? m->naccusers - 1 : 0;

    if (too_few_witnesses(ms, m))
        return base;
    return max - (max - base) * permille[c] / 1000;
}

static void
check_probes(wm_members *ms, int64_t now)
{
    for (size_t i = 0; i < ms->n; i++) {
        wm_member *m = ms->members[i];
        if (m->probing && !m->indirect_sent &&
            now - m->probe_sent >= scaled(ms, PROBE_TIMEOUT_MS)) {
            wm_member *via[FANOUT];
            size_t k = wm_members_pick(ms, m, via, FANOUT);
            for (size_t j = 0; j < k; j++)
                send_ping(ms, via[j], WM_MSG_PING_REQ, m->probe_seq, m->id);
            m->indirect_sent = 1;
        }
        if (m->probing && now - m->probe_sent >= scaled(ms, 2 * PROBE_MS)) {
            m->probing = 0;
            m->failures++;
            health_add(ms, 1);
            suspect(ms, m, NULL, now);
        }
        if (m->state == WM_SUSPECT &&
            now - m->state_since >= suspicion_timeout(ms, m))
            set_state(ms, m, WM_DEAD, now);
    }
}

int64_t
wm_members_tick(wm_members *ms, int64_t now)
{
    if (now >= ms->next_probe) {
        ms->next_probe = now + scaled(ms, PROBE_MS);
        probe_next(ms, now);
    }
    check_probes(ms, now);
    /* A view that grew by more than one member in the last period (many
     * nodes starting at once) is swapped with a random member: full views
     * spread in a few periods, where gossip carries a few members per
     * probe and drops what its bounded queue cannot hold. And a node swaps
     * a few times, further and further apart, after it starts: a member
     * whose news it missed in the join is not news any more. */
    if (ms->next_settle == 0) /* the first tick */
        ms->next_settle = now + ms->settle_gap;
    if (now >= ms->next_sync) {
        wm_member *to;
        int settle = ms->settle_gap > 0 && now >= ms->next_settle;
        int sent = 0;
        if ((ms->news >= SYNC_NEWS || settle) &&
            wm_members_pick(ms, NULL, &to, 1) == 1) {
            wm_members_sync(ms, to, 1);
            sent = 1;
        }
        ms->news = 0;
        ms->next_sync = now + SYNC_MS;
        if (settle && sent) { /* one after a start waits for someone */
            ms->settle_gap *= 2;
            ms->next_settle = now + ms->settle_gap;
            if (ms->settle_gap > SETTLE_MAX_MS)
                ms->settle_gap = 0;
        }
    }
    /* Dead members are asked now and then, so one that comes back is
     * seen. */
    if (now >= ms->next_dead_probe) {
        ms->next_dead_probe = now + DEAD_PROBE_MS;
        for (size_t i = 0; i < ms->n; i++) {
            wm_member *m = ms->members[i];
            if (m->trusted && m->state == WM_DEAD && m->reachable)
                send_ping(ms, m, WM_MSG_PING, ++ms->seq, NULL);
        }
    }
    return wm_members_next(ms);
}

static void
earliest(int64_t *t, int64_t candidate)
{
    if (candidate < *t)
        *t = candidate;
}

int64_t
wm_members_next(const wm_members *ms)
{
    int64_t t = ms->next_probe;

    earliest(&t, ms->next_dead_probe);
    earliest(&t, ms->next_sync);
    for (size_t i = 0; i < ms->n; i++) {
        const wm_member *m = ms->members[i];
        if (m->probing && !m->indirect_sent)
            earliest(&t, m->probe_sent + scaled(ms, PROBE_TIMEOUT_MS));
        if (m->probing)
            earliest(&t, m->probe_sent + scaled(ms, 2 * PROBE_MS));
        if (m->state == WM_SUSPECT)
            earliest(&t, m->state_since + suspicion_timeout(ms, m));
    }
    return t;
}

static void
on_ping_req(wm_members *ms, wm_member *from, const wm_msg *msg, int64_t now)
{
    wm_member *target = wm_members_get(ms, msg->target);
    struct relay *r = NULL;

    if (!wm_member_usable(target) || from == NULL)
        return;
    for (size_t i = 0; i < MAX_RELAYS; i++)
        if (ms->relays[i].requester == NULL || ms->relays[i].expires < now)
            r = &ms->relays[i];
    if (r == NULL)
        return;
    r->seq_out = ++ms->seq;
    r->requester = from;
    r->seq_in = msg->seq;
    r->expires = now + PROBE_MS;
    send_ping(ms, target, WM_MSG_PING, r->seq_out, NULL);
}

static void
on_ack(wm_members *ms, wm_member *from, const wm_msg *msg, int64_t now)
{
    for (size_t i = 0; i < ms->n; i++) {
        wm_member *m = ms->members[i];
        if (m->probing && m->probe_seq == msg->seq &&
            (m == from || m->indirect_sent)) {
            m->probing = 0;
            if (m == from) {
                health_add(ms, -1); /* answered directly, in time */
                rtt_add(ms, now - m->probe_sent);
            }
            wm_members_heard(ms, m, now);
        }
    }
    for (size_t i = 0; i < MAX_RELAYS; i++) {
        struct relay *r = &ms->relays[i];
        if (r->requester != NULL && r->seq_out == msg->seq &&
            r->expires >= now) {
            send_ping(ms, r->requester, WM_MSG_ACK, r->seq_in, NULL);
            r->requester = NULL;
        }
    }
}

int
wm_members_receive(wm_members *ms, wm_member *from, const wm_msg *msg,
                   int64_t now, wm_msg *reply)
{
    apply_all(ms, from, msg, now);
    switch (msg->type) {
    case WM_MSG_PING:
        memset(reply, 0, offsetof(wm_msg, digest));
        reply->type = WM_MSG_ACK;
        reply->seq = msg->seq;
        piggyback(ms, reply, from);
        return 1;
    case WM_MSG_ACK:
        on_ack(ms, from, msg, now);
        return 0;
    case WM_MSG_PING_REQ:
        on_ping_req(ms, from, msg, now);
        return 0;
    case WM_MSG_SYNC:
        /* A view for a small ASK: at most once a period per member, or one
         * hostile member could make this node send its view nonstop. */
        if (from != NULL && (msg->flags & WM_SYNC_ASK) &&
            (from->sync_answered == 0 ||
             now - from->sync_answered >= SYNC_MS)) {
            from->sync_answered = now;
            wm_members_sync(ms, from, 0);
        }
        return 0;
    default:
        return 0;
    }
}

wm_member *
wm_members_designee(const wm_members *ms, const uint8_t *sha)
{
    uint8_t buf[WM_ID_LEN + 32], best[32], score[32];
    wm_member *who = NULL;

    memcpy(buf, ms->self_id, WM_ID_LEN);
    memcpy(buf + WM_ID_LEN, sha, 32);
    wm_sha256_digest(buf, sizeof(buf), best);
    for (size_t i = 0; i < ms->n; i++) {
        wm_member *m = ms->members[i];
        if (!wm_member_usable(m) || m->state != WM_ALIVE)
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

void
wm_members_retrust(wm_members *ms, int64_t now)
{
    for (size_t i = 0; i < ms->n; i++) {
        wm_member *m = ms->members[i];
        int trusted = ms->io.trusted(ms->io.arg, m->id);
        if (trusted == m->trusted)
            continue;
        m->trusted = trusted;
        if (!trusted) {
            wm_info("cluster: %.16s is no longer trusted", m->hex);
            m->state = WM_DEAD;
            m->state_since = now;
            m->probing = 0;
            for (size_t k = 0; k < MAX_RELAYS; k++)
                if (ms->relays[k].requester == m)
                    ms->relays[k].requester = NULL;
        } else {
            m->state = WM_ALIVE; /* trusted again: probes will tell */
            m->state_since = m->last_heard = now;
        }
        if (ms->io.changed != NULL)
            ms->io.changed(ms->io.arg, m);
    }
}
