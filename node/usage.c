/*
 * The usage table: slot = prefix mod size; a slot holds the prefix (0:
 * empty) and the latest time. Writers store the time, then the prefix;
 * the drain swaps the prefix out for 0 and reads the time. A writer racing
 * the drain may leave its note for the next drain, or lose it.
 */
#include "usage.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct slot {
    atomic_uint_fast64_t prefix;
    atomic_int_fast64_t when;
};

struct wm_usage {
    struct slot *slots;
    size_t mask;
};

wm_usage *
wm_usage_new(size_t slots)
{
    wm_usage *u = calloc(1, sizeof(*u));

    if (u == NULL || slots == 0 || (slots & (slots - 1)) != 0 ||
        (u->slots = calloc(slots, sizeof(*u->slots))) == NULL) {
        free(u);
        return NULL;
    }
    u->mask = slots - 1;
    return u;
}

void
wm_usage_destroy(wm_usage **up)
{
    if (up == NULL || *up == NULL)
        return;
    free((*up)->slots);
    free(*up);
    *up = NULL;
}

static uint64_t
prefix_of(const uint8_t sha[32])
{
    uint64_t p = 0;

    for (int i = 0; i < 8; i++)
        p = p << 8 | sha[i];
    return p != 0 ? p : 1; /* 0 marks an empty slot */
}

static int64_t clock_offset; /* set before threads start, then read only */

int64_t
wm_usage_clock_init(void)
{
#ifdef WM_TEST_HOOKS
    const char *s = getenv("WHEELMESH_TEST_CLOCK_OFFSET_S");

    clock_offset = s != NULL ? strtoll(s, NULL, 10) : 0;
#endif
    return clock_offset;
}

int64_t
wm_usage_clock_offset(void)
{
    return clock_offset;
}

int64_t
wm_usage_now(void)
{
    return (int64_t)time(NULL) + clock_offset;
}

void
wm_usage_note(wm_usage *u, const uint8_t sha[32])
{
    uint64_t p = prefix_of(sha);
    int64_t now = wm_usage_now();
    struct slot *s = &u->slots[p & u->mask];

    atomic_store_explicit(&s->when, now, memory_order_relaxed);
    atomic_store_explicit(&s->prefix, p, memory_order_release);
}

size_t
wm_usage_drain(wm_usage *u, size_t max,
               void (*fn)(void *arg, uint64_t prefix, int64_t when),
               void *arg)
{
    size_t n = 0;

    for (size_t i = 0; i <= u->mask && n < max; i++) {
        struct slot *s = &u->slots[i];
        uint64_t p;
        if (atomic_load_explicit(&s->prefix, memory_order_relaxed) == 0)
            continue;
        p = atomic_exchange_explicit(&s->prefix, 0, memory_order_acquire);
        if (p == 0)
            continue;
        fn(arg, p, atomic_load_explicit(&s->when, memory_order_relaxed));
        n++;
    }
    return n;
}
