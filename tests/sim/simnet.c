/*
 * The simulator's clock, event queue (a binary heap ordered by time, class
 * and arrival) and random source. See simnet.h.
 */
#include "simnet.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

static uint64_t
rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64 spreads one seed over the four words of state. */
static uint64_t
splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void
sim_rng_seed(sim_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

uint64_t
sim_rng_next(sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double
sim_rng_uniform(sim_rng *r)
{
    return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t
sim_rng_below(sim_rng *r, uint64_t n)
{
    /* The modulo bias is below 2^-40 for any n a run uses. */
    return sim_rng_next(r) % n;
}

double
sim_rng_lognormal(sim_rng *r, double mu, double sigma)
{
    /* Box-Muller; 1 - u keeps the logarithm's argument above zero. */
    double u = 1.0 - sim_rng_uniform(r), v = sim_rng_uniform(r);
    double z = sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);

    return exp(mu + sigma * z);
}

/* --- the queue */

struct sim_queue {
    sim_event *heap;
    size_t n, cap;
    uint64_t order;
};

sim_queue *
sim_queue_new(void)
{
    return calloc(1, sizeof(sim_queue));
}

void
sim_queue_destroy(sim_queue **qp)
{
    sim_queue *q;

    if (qp == NULL || *qp == NULL)
        return;
    q = *qp;
    for (size_t i = 0; i < q->n; i++)
        free(q->heap[i].data);
    free(q->heap);
    free(q);
    *qp = NULL;
}

static int
before(const sim_event *a, const sim_event *b)
{
    if (a->at != b->at)
        return a->at < b->at;
    if (a->cls != b->cls)
        return a->cls < b->cls;
    return a->order < b->order;
}

static void
swap(sim_event *a, sim_event *b)
{
    sim_event t = *a;

    *a = *b;
    *b = t;
}

int
sim_queue_push(sim_queue *q, const sim_event *e)
{
    size_t i;

    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 1024;
        sim_event *grown = realloc(q->heap, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        q->heap = grown;
        q->cap = cap;
    }
    i = q->n++;
    q->heap[i] = *e;
    q->heap[i].order = q->order++;
    while (i > 0 && before(&q->heap[i], &q->heap[(i - 1) / 2])) {
        swap(&q->heap[i], &q->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    return 0;
}

int
sim_queue_pop(sim_queue *q, sim_event *out)
{
    size_t i = 0;

    if (q->n == 0)
        return -1;
    *out = q->heap[0];
    q->heap[0] = q->heap[--q->n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->n && before(&q->heap[l], &q->heap[m]))
            m = l;
        if (r < q->n && before(&q->heap[r], &q->heap[m]))
            m = r;
        if (m == i)
            break;
        swap(&q->heap[i], &q->heap[m]);
        i = m;
    }
    return 0;
}

int64_t
sim_queue_next_at(const sim_queue *q)
{
    return q->n > 0 ? q->heap[0].at : INT64_MAX;
}

size_t
sim_queue_len(const sim_queue *q)
{
    return q->n;
}
