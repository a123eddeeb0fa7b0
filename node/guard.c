/*
 * The head guard. Slots hold a socket and a deadline; a slot's state is
 * the only thing threads race on, and it is atomic: the guard shuts a
 * socket down only while it holds the slot in CUTTING, and a leaving
 * connection waits for CUTTING to end, so a socket is never shut down
 * after its connection let go of it (its number may be reused by then).
 */
#include "guard.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define SCAN_MS 250

enum { FREE, WAITING, HEAD_IN, CUTTING };

struct slot {
    atomic_int state;
    int fd;
    int64_t deadline_ms;
};

struct wm_guard {
    struct slot *slots;
    size_t max;
    int64_t deadline_ms;
    pthread_t thread;
    pthread_mutex_t lock; /* with WAKE: a stop ends the pause at once */
    pthread_cond_t wake;
    int stop;             /* under LOCK */
    atomic_ulong cut;
};

/* Pauses SCAN_MS, or less when told to stop. Returns true to go on. */
static int
pause_scan(wm_guard *g)
{
    struct timespec until;
    int go_on;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += SCAN_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&g->lock);
    while (!g->stop &&
           pthread_cond_timedwait(&g->wake, &g->lock, &until) == 0)
        ;
    go_on = !g->stop;
    pthread_mutex_unlock(&g->lock);
    return go_on;
}

static void *
run(void *arg)
{
    wm_guard *g = arg;

    do {
        int64_t now = wm_now_ms();
        for (size_t i = 0; i < g->max; i++) {
            struct slot *s = &g->slots[i];
            int waiting = WAITING;
            if (atomic_load(&s->state) != WAITING || now < s->deadline_ms ||
                !atomic_compare_exchange_strong(&s->state, &waiting,
                                                CUTTING))
                continue;
            shutdown(s->fd, SHUT_RDWR);
            atomic_fetch_add(&g->cut, 1);
            atomic_store(&s->state, HEAD_IN); /* nothing more to do */
        }
    } while (pause_scan(g));
    return NULL;
}

wm_guard *
wm_guard_new(unsigned deadline_s, size_t max)
{
    wm_guard *g = calloc(1, sizeof(*g));
    pthread_condattr_t attr;

    if (g == NULL || (g->slots = calloc(max, sizeof(*g->slots))) == NULL) {
        free(g);
        return NULL;
    }
    g->max = max;
    g->deadline_ms = (int64_t)deadline_s * 1000;
    for (size_t i = 0; i < max; i++)
        atomic_init(&g->slots[i].state, FREE);
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&g->thread, NULL, run, g) != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->lock);
        free(g->slots);
        free(g);
        return NULL;
    }
    return g;
}

void
wm_guard_destroy(wm_guard **gp)
{
    wm_guard *g;

    if (gp == NULL || *gp == NULL)
        return;
    g = *gp;
    pthread_mutex_lock(&g->lock);
    g->stop = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g->slots);
    free(g);
    *gp = NULL;
}

int
wm_guard_enter(wm_guard *g, int fd)
{
    for (size_t i = 0; i < g->max; i++) {
        struct slot *s = &g->slots[i];
        int free_state = FREE;
        /* Claim the slot, then arm it: the guard reads fd and deadline
         * only once it sees WAITING. */
        if (atomic_load(&s->state) != FREE ||
            !atomic_compare_exchange_strong(&s->state, &free_state, HEAD_IN))
            continue;
        s->fd = fd;
        s->deadline_ms = wm_now_ms() + g->deadline_ms;
        atomic_store(&s->state, WAITING);
        return (int)i;
    }
    return -1;
}

void
wm_guard_head(wm_guard *g, int slot)
{
    struct slot *s;
    int waiting = WAITING;

    if (slot < 0)
        return;
    s = &g->slots[slot];
    atomic_compare_exchange_strong(&s->state, &waiting, HEAD_IN);
}

void
wm_guard_next(wm_guard *g, int slot, unsigned idle_s)
{
    struct slot *s;
    int head_in = HEAD_IN;

    if (slot < 0)
        return;
    s = &g->slots[slot];
    /* HEAD_IN -> CUTTING keeps the guard off while the deadline moves. */
    if (!atomic_compare_exchange_strong(&s->state, &head_in, CUTTING))
        return;
    s->deadline_ms = wm_now_ms() + (int64_t)idle_s * 1000;
    atomic_store(&s->state, WAITING);
}

void
wm_guard_leave(wm_guard *g, int slot)
{
    struct slot *s;

    if (slot < 0)
        return;
    s = &g->slots[slot];
    for (;;) {
        int state = atomic_load(&s->state);
        if (state == CUTTING) { /* the guard is in shutdown(): a moment */
            sched_yield();
            continue;
        }
        if (atomic_compare_exchange_strong(&s->state, &state, FREE))
            return;
    }
}

unsigned long
wm_guard_cut(const wm_guard *g)
{
    return atomic_load(&((wm_guard *)g)->cut);
}
