/*
 * The monotonic clock in milliseconds: deadlines, timers and rates, never
 * wall time (which jumps).
 */
#ifndef WM_CLOCK_H
#define WM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
wm_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
