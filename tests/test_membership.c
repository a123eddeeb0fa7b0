/*
 * Unit tests for node/membership, without sockets or a clock: the io
 * functions record what would be sent, and time is passed in. Signed
 * statements (only a member moves its own address), reports that count
 * only at the incarnation a member signed, refutation that never wraps,
 * the probe cycle (suspect, dead, alive again), the designee, trust
 * taken back, Lifeguard (local health, suspicions that wait for
 * confirmations, the suspect told of its suspicion), and views swapped
 * when they grow.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
#include "log.h"
#include "membership.h"

#define NKEYS 6

static wm_identity *keys[NKEYS]; /* 0 is the node under test */
static int trusted[NKEYS];
static int sent, connects, changes, syncs;
static uint64_t saved_incarnation;
static wm_msg last, last_sync;

static int
key_index(const uint8_t *id)
{
    for (int i = 0; i < NKEYS; i++)
        if (memcmp(wm_identity_pubkey(keys[i]), id, WM_ID_LEN) == 0)
            return i;
    return -1;
}

static void
io_send(void *arg, wm_member *to, const wm_msg *m)
{
    /* Swaps are counted apart: the probe tests count what probes send. */
    if (m->type == WM_MSG_SYNC) {
        syncs++;
        last_sync = *m;
        return;
    }
    sent++;
    last = *m;
}

static void
io_connect(void *arg, wm_member *m)
{
    connects++;
    m->reachable = 1;
}

static void
io_changed(void *arg, wm_member *m)
{
    changes++;
}

static int
io_trusted(void *arg, const uint8_t *id)
{
    int k = key_index(id);

    return k >= 0 && trusted[k];
}

static void
io_incarnation(void *arg, uint64_t inc)
{
    saved_incarnation = inc;
}

static wm_members *
new_members(uint64_t incarnation)
{
    wm_members_io io = {NULL, io_send, io_connect, io_changed, io_trusted,
                        io_incarnation};

    for (int i = 0; i < NKEYS; i++)
        trusted[i] = 1;
    sent = connects = changes = syncs = 0;
    return wm_members_new(keys[0], "tcp://10.0.0.1:7391", "self",
                          incarnation, &io, 42);
}

/* A message carrying member K's own statement at INC, address ADDR,
 * signed by SIGNER (K itself, or a forger). */
static void
alive_update(wm_msg *m, int k, uint64_t inc, const char *addr, int signer)
{
    wm_member_update *u;

    memset(m, 0, sizeof(*m));
    m->type = WM_MSG_PING;
    m->seq = 1;
    m->nupdates = 1;
    u = &m->updates[0];
    memcpy(u->id, wm_identity_pubkey(keys[k]), WM_ID_LEN);
    u->state = WM_ALIVE;
    u->incarnation = inc;
    u->alive.incarnation = inc;
    snprintf(u->alive.addr, sizeof(u->alive.addr), "%s", addr);
    snprintf(u->alive.name, sizeof(u->alive.name), "agent-%d", k);
    wm_alive_sign(keys[signer], &u->alive);
}

static void
report(wm_msg *m, int k, int state, uint64_t inc)
{
    memset(m, 0, sizeof(*m));
    m->type = WM_MSG_ACK;
    m->nupdates = 1;
    memcpy(m->updates[0].id, wm_identity_pubkey(keys[k]), WM_ID_LEN);
    m->updates[0].state = (uint8_t)state;
    m->updates[0].incarnation = inc;
}

static wm_member *
member(wm_members *ms, int k)
{
    return wm_members_get(ms, wm_identity_pubkey(keys[k]));
}

static void
test_only_a_member_moves_itself(void **state)
{
    wm_members *ms = new_members(1);
    static wm_msg m, reply;
    wm_member *b;

    alive_update(&m, 1, 5, "tcp://10.0.0.2:7391", 1);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    b = member(ms, 1);
    assert_non_null(b);
    assert_string_equal(b->alive.addr, "tcp://10.0.0.2:7391");
    assert_string_equal(b->alive.name, "agent-1");
    assert_int_equal(b->incarnation, 5);
    assert_int_equal(connects, 1);

    /* C forges B's statement with a higher incarnation: refused. */
    alive_update(&m, 1, WM_WIRE_COUNTER_MAX - 1, "tcp://10.9.9.9:1", 2);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_string_equal(b->alive.addr, "tcp://10.0.0.2:7391");
    assert_int_equal(b->incarnation, 5);
    assert_int_equal(wm_members_rejected(ms), 1);
    assert_int_equal(connects, 1);

    /* An older statement of B's own changes nothing either. */
    alive_update(&m, 1, 4, "tcp://10.0.0.3:7391", 1);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_string_equal(b->alive.addr, "tcp://10.0.0.2:7391");

    /* B moves itself with a newer one. */
    alive_update(&m, 1, 6, "tcp://10.0.0.3:7391", 1);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_string_equal(b->alive.addr, "tcp://10.0.0.3:7391");
    assert_int_equal(connects, 2);

    /* An untrusted key's statement adds nobody. */
    trusted[3] = 0;
    alive_update(&m, 3, 1, "tcp://10.0.0.4:7391", 3);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_null(member(ms, 3));
    wm_members_destroy(&ms);
}

static void
test_reports_count_at_the_signed_incarnation(void **state)
{
    wm_members *ms = new_members(1);
    static wm_msg m, reply;
    wm_member *b;

    alive_update(&m, 1, 5, "tcp://10.0.0.2:7391", 1);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    b = member(ms, 1);
    /* A report about an incarnation B never signed does nothing. */
    report(&m, 1, WM_DEAD, 6);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_int_equal(b->state, WM_ALIVE);
    assert_int_equal(b->incarnation, 5);
    /* At the signed one it counts; alive at the same does not undo it. */
    report(&m, 1, WM_SUSPECT, 5);
    wm_members_receive(ms, NULL, &m, 10, &reply);
    assert_int_equal(b->state, WM_SUSPECT);
    alive_update(&m, 1, 5, "tcp://10.0.0.2:7391", 1);
    wm_members_receive(ms, NULL, &m, 20, &reply);
    assert_int_equal(b->state, WM_SUSPECT);
    /* B's refutation, one higher, does. */
    alive_update(&m, 1, 6, "tcp://10.0.0.2:7391", 1);
    wm_members_receive(ms, NULL, &m, 30, &reply);
    assert_int_equal(b->state, WM_ALIVE);
    assert_int_equal(b->incarnation, 6);
    wm_members_destroy(&ms);
}

static void
test_refutation_never_wraps(void **state)
{
    static wm_msg m, reply;
    wm_members *ms = new_members(7);

    /* A report about our own current incarnation: signed one higher. */
    report(&m, 0, WM_SUSPECT, 7);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_int_equal(wm_members_incarnation(ms), 8);
    assert_int_equal(saved_incarnation, 8);
    /* ... and the statement we send says so, validly signed. */
    assert_int_equal(wm_members_receive(ms, NULL, &m, 0, &reply), 0);
    wm_members_ping(ms, &reply);
    assert_int_equal(reply.updates[0].incarnation, 8);
    assert_true(wm_alive_valid(wm_identity_pubkey(keys[0]),
                               &reply.updates[0].alive));
    /* Reports about other incarnations are not refuted. */
    report(&m, 0, WM_DEAD, 100);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_int_equal(wm_members_incarnation(ms), 8);
    wm_members_destroy(&ms);

    /* At the top of the range: one step to the last value, then none. */
    ms = new_members(WM_WIRE_COUNTER_MAX - 2);
    report(&m, 0, WM_SUSPECT, WM_WIRE_COUNTER_MAX - 2);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_int_equal(wm_members_incarnation(ms), WM_WIRE_COUNTER_MAX - 1);
    report(&m, 0, WM_SUSPECT, WM_WIRE_COUNTER_MAX - 1);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    assert_int_equal(wm_members_incarnation(ms), WM_WIRE_COUNTER_MAX - 1);
    wm_members_destroy(&ms);

    /* A start at or past the maximum starts again at 1. */
    ms = new_members(WM_WIRE_COUNTER_MAX);
    assert_int_equal(wm_members_incarnation(ms), 1);
    wm_members_destroy(&ms);
}

static void
test_probe_cycle(void **state)
{
    wm_members *ms = new_members(1);
    static wm_msg m, reply;
    wm_member *b;
    int64_t now = 0;

    alive_update(&m, 1, 1, "tcp://10.0.0.2:7391", 1);
    wm_members_receive(ms, NULL, &m, now, &reply);
    b = member(ms, 1);
    assert_true(wm_member_usable(b));
    /* A PING is answered with an ACK of the same seq. */
    wm_members_ping(ms, &m);
    assert_int_equal(wm_members_receive(ms, b, &m, now, &reply), 1);
    assert_int_equal(reply.type, WM_MSG_ACK);
    assert_int_equal(reply.seq, m.seq);
    /* Probed, never answers: suspect after two probe periods, then dead
     * after the suspicion timeout. */
    sent = 0;
    wm_members_tick(ms, now);
    assert_true(sent >= 1);
    assert_int_equal(last.type, WM_MSG_PING);
    for (now = 0; now <= 2000; now += 100)
        wm_members_tick(ms, now);
    assert_int_equal(b->state, WM_SUSPECT);
    for (; now <= 2000 + 4000 + 100; now += 100)
        wm_members_tick(ms, now);
    assert_int_equal(b->state, WM_DEAD);
    assert_false(wm_member_usable(b));
    /* Direct word from it: alive again. */
    wm_members_heard(ms, b, now);
    assert_int_equal(b->state, WM_ALIVE);
    wm_members_destroy(&ms);
}

/* A direct answer to a probe counts in the round trip histogram with the
 * time it took; one that came through a relay, or answers no probe, does
 * not. */
static void
test_probe_rtt(void **state)
{
    wm_members *ms = new_members(1);
    static wm_msg m, reply;
    const wm_probe_rtt *rtt = wm_members_probe_rtt(ms);
    wm_member *b;

    (void)state;
    alive_update(&m, 1, 1, "tcp://10.0.0.2:7391", 1);
    wm_members_receive(ms, NULL, &m, 0, &reply);
    b = member(ms, 1);
    wm_members_tick(ms, 1000);
    assert_int_equal(last.type, WM_MSG_PING);
    memset(&m, 0, sizeof(m));
    m.type = WM_MSG_ACK;
    m.seq = last.seq + 1; /* no probe of that number */
    wm_members_receive(ms, b, &m, 1030, &reply);
    assert_int_equal(rtt->count[2], 0);
    m.seq = last.seq;
    wm_members_receive(ms, b, &m, 1030, &reply);
    /* 30 ms: over 25, within 100: the third bucket. */
    assert_int_equal(rtt->count[2], 1);
    assert_int_equal(rtt->sum_ms, 30);
    for (size_t i = 0; i < WM_PROBE_RTT_BUCKETS; i++)
        if (i != 2)
            assert_int_equal(rtt->count[i], 0);
    /* Answered again: the probe is over, nothing more is counted. */
    wm_members_receive(ms, b, &m, 1040, &reply);
    assert_int_equal(rtt->count[2], 1);
    wm_members_destroy(&ms);
}

/* A node whose probes go unanswered probes less often and waits longer
 * before it suspects; answers make it healthy again; so does nothing
 * else. A suspicion it has to refute counts against it too. */
static void
test_local_health(void **state)
{
    wm_members *ms = new_members(1);
    static wm_msg m, reply;
    wm_member *b;
    int64_t now = 0, sent_at;

    alive_update(&m, 1, 1, "tcp://10.0.0.2:7391", 1);
    wm_members_receive(ms, NULL, &m, now, &reply);
    b = member(ms, 1);
    assert_int_equal(wm_members_health(ms), 0);
    /* Unanswered: suspect after 2 s, and the node's health drops. */
    for (; now <= 2000; now += 100)
        wm_members_tick(ms, now);
    assert_int_equal(b->state, WM_SUSPECT);
    assert_int_equal(wm_members_health(ms), 1);
    wm_members_heard(ms, b, now);

    /* The next probe waits 2 s instead of 1 ... */
    sent = 0;
    for (; sent == 0; now += 100)
        wm_members_tick(ms, now);
    sent_at = now - 100;
    assert_int_equal(last.type, WM_MSG_PING);
    assert_true(sent_at >= 3000);
    /* ... asks others only after 1 s instead of 0.5 (B is the only
     * member, so nobody is asked; the probe stays open) ... */
    for (; now < sent_at + 3900; now += 100)
        wm_members_tick(ms, now);
    /* ... and suspects only after 4 s instead of 2. */
    assert_int_equal(b->state, WM_ALIVE);
    for (; now <= sent_at + 4000; now += 100)
        wm_members_tick(ms, now);
    assert_int_equal(b->state, WM_SUSPECT);
    assert_int_equal(wm_members_health(ms), 2);
    wm_members_heard(ms, b, now);

    /* A direct answer in time brings it back by one. */
    sent = 0;
    for (; sent == 0; now += 100)
        wm_members_tick(ms, now);
    m = last;
    m.type = WM_MSG_ACK;
    m.nupdates = 0;
    wm_members_receive(ms, b, &m, now, &reply);
    assert_int_equal(wm_members_health(ms), 1);

    /* Refuting a suspicion of itself counts as a missed answer; the
     * score never passes 7. */
    for (int i = 0; i < 10; i++) {
        report(&m, 0, WM_SUSPECT, wm_members_incarnation(ms));
        wm_members_receive(ms, b, &m, now, &reply);
    }
    assert_int_equal(wm_members_health(ms), 7);
    wm_members_destroy(&ms);
}

/* Members 1..NKEYS-1 known, none probed (no connection), so that only
 * reports move them. */
static wm_members *
quiet_cluster(void)
{
    wm_members *ms = new_members(1);
    static wm_msg m, reply;

    for (int k = 1; k < NKEYS; k++) {
        char addr[64];
        snprintf(addr, sizeof(addr), "tcp://10.0.0.%d:7391", k + 1);
        alive_update(&m, k, 1, addr, k);
        wm_members_receive(ms, NULL, &m, 0, &reply);
        member(ms, k)->reachable = 0;
    }
    return ms;
}

/* Member 1 is reported suspect at 0 by each of ACCUSERS in turn (-1 ends
 * the list); returns the first tick (100 ms steps) that finds it dead. */
static int64_t
dead_after(const int *accusers)
{
    wm_members *ms = quiet_cluster();
    static wm_msg m, reply;
    int64_t now;

    for (int i = 0; accusers[i] >= 0; i++) {
        report(&m, 1, WM_SUSPECT, 1);
        wm_members_receive(ms, member(ms, accusers[i]), &m, 0, &reply);
    }
    assert_int_equal(member(ms, 1)->state, WM_SUSPECT);
    for (now = 0; member(ms, 1)->state == WM_SUSPECT && now < 60000; now += 100)
        wm_members_tick(ms, now);
    assert_int_equal(member(ms, 1)->state, WM_DEAD);
    wm_members_destroy(&ms);
    return now - 100;
}

/* With 6 nodes the base timeout is 4 s. A lone accuser's suspicion waits
 * six times that; each other accuser shortens it, by log(c + 1) / log(3)
 * of the difference, down to the base with two; the same accuser twice
 * counts once. */
static void
test_suspicion_waits_for_confirmations(void **state)
{
    static const struct {
        int accusers[5];
        int64_t dead_at;
    } cases[] = {
        {{2, -1}, 24000},
        {{2, 2, 2, -1}, 24000},
        {{2, 3, -1}, 24000 - 20000 * 631 / 1000},
        {{2, 3, 4, -1}, 4000},
        {{2, 3, 4, 5, -1}, 4000},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t got = dead_after(cases[i].accusers);
        assert_true(got >= cases[i].dead_at);
        assert_true(got < cases[i].dead_at + 100);
    }
}

/* When the others are dead, nobody is left to confirm a suspicion: it
 * waits the base timeout, not six times it (a dead member stayed listed
 * 30 s and more on a node whose other peers had gone). */
static void
test_suspicion_without_witnesses(void **state)
{
    wm_members *ms = quiet_cluster();
    static wm_msg m, reply;
    int64_t now;

    (void)state;
    for (int k = 3; k < NKEYS; k++) {
        report(&m, k, WM_DEAD, 1);
        wm_members_receive(ms, member(ms, 2), &m, 0, &reply);
        assert_int_equal(member(ms, k)->state, WM_DEAD);
    }
    /* Member 2 is the only one left who could confirm: one is too few. */
    report(&m, 1, WM_SUSPECT, 1);
    wm_members_receive(ms, member(ms, 2), &m, 0, &reply);
    for (now = 0; member(ms, 1)->state == WM_SUSPECT && now < 60000; now += 100)
        wm_members_tick(ms, now);
    assert_int_equal(member(ms, 1)->state, WM_DEAD);
    assert_true(now - 100 >= 4000);
    assert_true(now - 100 < 4100);
    wm_members_destroy(&ms);
}

/* A member this node knows is suspected hears of it in whatever is sent
 * to it, until it signs a newer statement; others do not. */
static void
test_suspect_is_told(void **state)
{
    wm_members *ms = quiet_cluster();
    static wm_msg m, reply;
    wm_member *b = member(ms, 1), *c = member(ms, 2);

    report(&m, 1, WM_SUSPECT, 1);
    wm_members_receive(ms, c, &m, 0, &reply);
    assert_int_equal(b->state, WM_SUSPECT);
    /* B speaks to us: alive to this node, but the others still suspect
     * it, so the answer tells it. */
    wm_members_heard(ms, b, 100);
    assert_int_equal(b->state, WM_ALIVE);
    wm_members_ping(ms, &m);
    assert_int_equal(wm_members_receive(ms, b, &m, 100, &reply), 1);
    assert_true(reply.nupdates >= 2);
    assert_memory_equal(reply.updates[1].id, wm_identity_pubkey(keys[1]),
                        WM_ID_LEN);
    assert_int_equal(reply.updates[1].state, WM_SUSPECT);
    assert_int_equal(reply.updates[1].incarnation, 1);
    /* C is told nothing about itself. */
    wm_members_ping(ms, &m);
    wm_members_receive(ms, c, &m, 100, &reply);
    for (size_t i = 1; i < reply.nupdates; i++)
        assert_memory_not_equal(reply.updates[i].id,
                                wm_identity_pubkey(keys[2]), WM_ID_LEN);
    /* B refutes: no more news for it. */
    alive_update(&m, 1, 2, "tcp://10.0.0.2:7391", 1);
    wm_members_receive(ms, b, &m, 200, &reply);
    wm_members_ping(ms, &m);
    wm_members_receive(ms, b, &m, 300, &reply);
    for (size_t i = 1; i < reply.nupdates; i++)
        assert_false(reply.updates[i].state != WM_ALIVE &&
                     memcmp(reply.updates[i].id, wm_identity_pubkey(keys[1]),
                            WM_ID_LEN) == 0);
    wm_members_destroy(&ms);
}

static void
test_designee_and_trust(void **state)
{
    wm_members *ms = new_members(1);
    static wm_msg m, reply;
    uint8_t sha[32], buf[64], best[32], score[32];
    int want = 0;

    for (int k = 1; k < NKEYS; k++) {
        char addr[64];
        snprintf(addr, sizeof(addr), "tcp://10.0.0.%d:7391", k + 1);
        alive_update(&m, k, 1, addr, k);
        wm_members_receive(ms, NULL, &m, 0, &reply);
    }
    memset(sha, 0x5a, sizeof(sha));
    /* The highest sha256(id || sha) wins; NULL when it is this node. */
    memset(best, 0, sizeof(best));
    for (int k = 0; k < NKEYS; k++) {
        memcpy(buf, wm_identity_pubkey(keys[k]), 32);
        memcpy(buf + 32, sha, 32);
        wm_sha256_digest(buf, sizeof(buf), score);
        if (memcmp(score, best, 32) > 0) {
            memcpy(best, score, 32);
            want = k;
        }
    }
    if (want == 0)
        assert_null(wm_members_designee(ms, sha));
    else
        assert_ptr_equal(wm_members_designee(ms, sha), member(ms, want));
    /* A key taken out of trust: dead to us, never picked again. */
    trusted[want == 0 ? 1 : want] = 0;
    wm_members_retrust(ms, 100);
    assert_false(wm_member_usable(member(ms, want == 0 ? 1 : want)));
    if (want != 0)
        assert_ptr_not_equal(wm_members_designee(ms, sha), member(ms, want));
    for (int i = 0; i < 50; i++) {
        wm_member *out[3];
        size_t n = wm_members_pick(ms, NULL, out, 3);
        for (size_t k = 0; k < n; k++)
            assert_true(out[k]->trusted);
    }
    wm_members_destroy(&ms);
}

static int
setup(void **state)
{
    if (wm_identity_init() != 0)
        return -1;
    wm_log_set_level(WM_LOG_ERROR);
    for (int i = 0; i < NKEYS; i++)
        if ((keys[i] = wm_identity_generate()) == NULL)
            return -1;
    return 0;
}

static int
teardown(void **state)
{
    for (int i = 0; i < NKEYS; i++)
        wm_identity_destroy(&keys[i]);
    return 0;
}

/* A view swap (SYNC): what it carries is taken as gossip is; ASK gets
 * this node's view back, once a second at most; a view that grew by more
 * than one member is swapped with someone on the next tick, a node swaps
 * a few times after it starts, and a settled one does not. */
static void
test_view_swap(void **state)
{
    wm_members *ms = new_members(1);
    static wm_msg m, one, reply;
    wm_member *b;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.type = WM_MSG_SYNC;
    m.seq = 7;
    m.flags = WM_SYNC_ASK;
    for (int k = 1; k <= 4; k++) {
        alive_update(&one, k, 3, "tcp://10.0.0.9:7391", k);
        m.updates[m.nupdates++] = one.updates[0];
    }
    b = wm_members_add(ms, wm_identity_pubkey(keys[1]), 0);
    assert_non_null(b);
    assert_int_equal(wm_members_receive(ms, b, &m, 0, &reply), 0);
    for (int k = 1; k <= 4; k++)
        assert_int_equal(member(ms, k)->incarnation, 3);
    /* The answer: this node's view, less what B said of itself, not asking
     * for another answer. */
    assert_int_equal(syncs, 1);
    assert_int_equal(last_sync.flags, 0);
    assert_int_equal(last_sync.nupdates, 1 + 3);
    assert_int_equal(key_index(last_sync.updates[0].id), 0);
    for (size_t i = 1; i < last_sync.nupdates; i++)
        assert_int_not_equal(key_index(last_sync.updates[i].id), 1);

    /* No ASK, no answer; a forged statement in a swap is refused. */
    m.flags = 0;
    alive_update(&one, 5, 9, "tcp://10.0.0.66:7391", 1);
    m.updates[0] = one.updates[0];
    m.nupdates = 1;
    wm_members_receive(ms, b, &m, 0, &reply);
    assert_int_equal(syncs, 1);
    assert_null(member(ms, 5));

    /* Four members learned: the next tick swaps views with one of them,
     * asking for theirs. With nothing new since, the swaps after a start
     * only: 1, 3 and 7 s after it, then none. Keep
     * B alive (heard) so that there is someone to swap with. */
    wm_members_tick(ms, 0);
    assert_int_equal(syncs, 2);
    assert_int_equal(last_sync.flags, WM_SYNC_ASK);
    for (int64_t t = 100; t <= 600000; t += 100) {
        wm_members_heard(ms, b, t);
        wm_members_tick(ms, t);
        if (t == 1000)
            assert_int_equal(syncs, 3);
        if (t == 2900)
            assert_int_equal(syncs, 3);
        if (t == 3000)
            assert_int_equal(syncs, 4);
    }
    assert_int_equal(syncs, 2 + 3);

    /* An ASK is answered at most once a second per member: a hostile one
     * cannot make this node send its view nonstop. */
    m.flags = WM_SYNC_ASK;
    m.nupdates = 0;
    wm_members_receive(ms, b, &m, 700000, &reply);
    assert_int_equal(syncs, 6);
    wm_members_receive(ms, b, &m, 700500, &reply);
    assert_int_equal(syncs, 6);
    wm_members_receive(ms, b, &m, 701000, &reply);
    assert_int_equal(syncs, 7);
    wm_members_destroy(&ms);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_only_a_member_moves_itself),
        cmocka_unit_test(test_reports_count_at_the_signed_incarnation),
        cmocka_unit_test(test_refutation_never_wraps),
        cmocka_unit_test(test_probe_cycle),
        cmocka_unit_test(test_designee_and_trust),
        cmocka_unit_test(test_local_health),
        cmocka_unit_test(test_suspicion_waits_for_confirmations),
        cmocka_unit_test(test_suspicion_without_witnesses),
        cmocka_unit_test(test_suspect_is_told),
        cmocka_unit_test(test_view_swap),
        cmocka_unit_test(test_probe_rtt),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
