/*
 * The simulator's world: a virtual clock that jumps from event to event, a
 * queue of timed events, and a seeded random source for latency and loss.
 * Nothing here reads the real clock or the system's randomness, so a run
 * with the same seed and options repeats exactly.
 */
#ifndef SIM_NET_H
#define SIM_NET_H

#include <stddef.h>
#include <stdint.h>

/* xoshiro256**: fast, and the same numbers from the same seed everywhere. */
typedef struct sim_rng {
    uint64_t s[4];
} sim_rng;

/* Seeds R from SEED (any value, 0 included). */
void sim_rng_seed(sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng *r);
/* Uniform in [0, 1). */
double sim_rng_uniform(sim_rng *r);
/* Uniform in [0, N); N > 0. */
uint64_t sim_rng_below(sim_rng *r, uint64_t n);
/* exp(MU + SIGMA * a standard normal): a log-normal draw whose median is
 * exp(MU). */
double sim_rng_lognormal(sim_rng *r, double mu, double sigma);

/* An event. At equal times, a lower CLS runs first (messages before
 * timers, as the node's loop reads its sockets before it ticks); then
 * the one queued first. DATA, when not NULL, is the event's (malloc'd);
 * whoever pops the event owns it. */
typedef struct sim_event {
    int64_t at; /* microseconds of virtual time */
    int cls;
    uint64_t order; /* set by the queue */
    int kind;
    uint32_t node, from;
    void *data;
    size_t len;
} sim_event;

typedef struct sim_queue sim_queue;

/* An empty queue; NULL when out of memory. */
sim_queue *sim_queue_new(void);
/* Frees Q and the data of the events still in it; clears the pointer. */
void sim_queue_destroy(sim_queue **q);

/* Queues a copy of E. Returns 0 or -ENOMEM (E's data stays the
 * caller's). */
int sim_queue_push(sim_queue *q, const sim_event *e);
/* Takes the earliest event into OUT. Returns 0, or -1 when empty. */
int sim_queue_pop(sim_queue *q, sim_event *out);
/* The time of the earliest event; INT64_MAX when empty. */
int64_t sim_queue_next_at(const sim_queue *q);
size_t sim_queue_len(const sim_queue *q);

#endif
