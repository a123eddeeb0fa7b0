/*
 * Cluster membership, SWIM-style: a probe a second, indirect probes
 * through three others, suspect, then dead; changes ride on probe traffic.
 * With Lifeguard's refinements: a node whose own probes go unanswered
 * slows down and waits longer before it suspects anyone (local health),
 * a suspicion waits longest while nobody else confirms it, and a member
 * hears of a suspicion of itself in whatever is sent to it.
 * A member's address, name and incarnation are its own statement, signed
 * by it: nobody else can move it. Others may only report that a member
 * seems suspect or dead at the incarnation it last signed, and the member
 * refutes that by signing a higher one.
 *
 * Pure state: no sockets and no clock. Messages go out through the io
 * functions; the caller passes the time in.
 */
#ifndef WM_MEMBERSHIP_H
#define WM_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>

#include "identity.h"
#include "wire.h"

/* The accusers a suspicion remembers: its origin and the confirmations
 * that bring it to its shortest timeout. */
#define WM_MEMBER_ACCUSERS 3

/* A member as this node sees it. Other modules read it and may bump the
 * counters; membership writes the rest (and the transport CONNECTED). */
typedef struct wm_member {
    uint8_t id[WM_ID_LEN];
    char hex[WM_PUBKEY_HEX];
    int state; /* enum wm_member_state */
    uint64_t incarnation;
    wm_alive alive; /* its latest signed statement, if HAS_ALIVE */
    int has_alive;
    int trusted;   /* cleared when its key leaves trusted_keys */
    int reachable; /* the transport has its address and key, and may open a
                      socket to it */
    int64_t last_heard, state_since;
    /* the current probe */
    uint32_t probe_seq;
    int64_t probe_sent;
    int probing, indirect_sent;
    int64_t digest_sent;   /* last full digest sent in answer to it */
    int64_t sync_answered; /* last view sent in answer to its ASK */
    /* Lifeguard. Who reported the current suspicion (NULL: this node's own
     * probe); the first is its origin and every other one a confirmation
     * that brings the dead verdict closer. Wire statements name no
     * accuser, so a member that relays a report counts as one. */
    const struct wm_member *accusers[WM_MEMBER_ACCUSERS];
    size_t naccusers;
    /* It was reported suspect or dead at RUMOR_INC: until it signs a newer
     * statement, everything sent to it says so, so that it refutes at
     * once (the buddy system). */
    uint64_t rumor_inc;
    int has_rumor;
    /* counters */
    uint64_t bytes_in, bytes_out, failures, bad_chunks;
} wm_member;

typedef struct wm_members_io {
    void *arg;
    /* Sends M to member TO (best effort). */
    void (*send)(void *arg, wm_member *to, const wm_msg *m);
    /* TO's address is new or changed: (re)connect to it. */
    void (*connect)(void *arg, wm_member *to);
    /* M's state changed. */
    void (*changed)(void *arg, wm_member *m);
    /* True when ID's key is trusted. */
    int (*trusted)(void *arg, const uint8_t *id);
    /* This node's incarnation changed: keep it across restarts. */
    void (*incarnation)(void *arg, uint64_t inc);
} wm_members_io;

typedef struct wm_members wm_members;

/* Membership for node SELF, reachable at ADDR, called NAME, starting at
 * INCARNATION (one more than the last run's). SEED seeds its random
 * choices. NULL when out of memory. */
wm_members *wm_members_new(const wm_identity *self, const char *addr,
                           const char *name, uint64_t incarnation,
                           const wm_members_io *io, uint64_t seed);
void wm_members_destroy(wm_members **ms);

/* The member ID, or NULL. */
wm_member *wm_members_get(const wm_members *ms, const uint8_t *id);

/* The member ID, added (alive, no address yet) when new and trusted; NULL
 * when untrusted, ID is this node, or out of memory. */
wm_member *wm_members_add(wm_members *ms, const uint8_t *id, int64_t now);

size_t wm_members_count(const wm_members *ms);
const uint8_t *wm_members_self_id(const wm_members *ms);
wm_member *wm_members_at(const wm_members *ms, size_t i);

/* True when M may be asked for anything: trusted, not dead, reachable. */
int wm_member_usable(const wm_member *m);

/* M just spoke to us: direct evidence that it is alive. */
void wm_members_heard(wm_members *ms, wm_member *m, int64_t now);

/* Handles a PING, ACK, PING_REQ or SYNC from FROM (NULL: from a seed not
 * yet identified). For a PING, fills REPLY with the ACK to send back and
 * returns 1; else returns 0. */
int wm_members_receive(wm_members *ms, wm_member *from, const wm_msg *msg,
                       int64_t now, wm_msg *reply);

/* Fills M (a PING) with this node's statement and queued changes, as the
 * first message to a seed. */
void wm_members_ping(wm_members *ms, wm_msg *m);

/* Sends TO this node's view: its own statement and every member it knows
 * alive with theirs, in as many SYNC messages as that takes. ASK: TO
 * answers with its view (a push-pull, as memberlist's). A joiner swaps
 * views with its seed, and every node with a random member now and then
 * (wm_members_tick). */
void wm_members_sync(wm_members *ms, wm_member *to, int ask);

/* Probes, timeouts, suspicion and dead re-probes due at NOW. Returns the
 * time of the next one (wm_members_next). */
int64_t wm_members_tick(wm_members *ms, int64_t now);

/* When the next probe, timeout, verdict or swap is due: what a message
 * changed included, so a caller that asks after handling its messages
 * need not wake before then. */
int64_t wm_members_next(const wm_members *ms);

/* Up to WANT random alive, usable members other than EXCEPT into OUT. */
size_t wm_members_pick(wm_members *ms, const wm_member *except,
                       wm_member **out, size_t want);

/* The member that fetches SHA from upstream for everyone: the highest
 * sha256(id || sha) among the live members and this node. NULL: this
 * one. */
wm_member *wm_members_designee(const wm_members *ms, const uint8_t *sha);

/* Asks io->trusted about every member again (after a reload): one that
 * is no longer trusted is dead to this node and ignored from now on. */
void wm_members_retrust(wm_members *ms, int64_t now);

/* This node's current incarnation, and updates refused (bad signatures,
 * forged statements). */
uint64_t wm_members_incarnation(const wm_members *ms);
uint64_t wm_members_rejected(const wm_members *ms);

/* This node's local health (Lifeguard): 0 when its probes are answered,
 * up to 7 as they go unanswered or it has to refute suspicions of itself.
 * Its probe interval and timeouts are (health + 1) times the usual. */
int wm_members_health(const wm_members *ms);

/* How long this node's direct probes took to be answered: in COUNT[i]
 * those within wm_probe_rtt_ms[i] and over the one before (the last
 * bucket: all slower ones), and the sum of all in ms. A connection opened
 * for the probe (transport.h) shows here as its handshake. */
#define WM_PROBE_RTT_BUCKETS 7
extern const int64_t wm_probe_rtt_ms[WM_PROBE_RTT_BUCKETS - 1];
typedef struct wm_probe_rtt {
    uint64_t count[WM_PROBE_RTT_BUCKETS];
    uint64_t sum_ms;
} wm_probe_rtt;
const wm_probe_rtt *wm_members_probe_rtt(const wm_members *ms);

/* "alive", "suspect", "dead". */
const char *wm_member_state_name(int state);

#endif
