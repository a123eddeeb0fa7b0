/*
 * Which stored wheels were read lately, for the collector's least
 * recently used order. Any thread notes a use without a lock (a slot per
 * sha256 prefix in a fixed table, atomics only); the loop drains the
 * table now and then and writes the times into the store in one batch,
 * rather than a write per GET. A note may be lost to a collision: the
 * order is approximate, by design.
 */
#ifndef WM_USAGE_H
#define WM_USAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wm_usage wm_usage;

/* A table of SLOTS (a power of two) notes. NULL when out of memory. */
wm_usage *wm_usage_new(size_t slots);
void wm_usage_destroy(wm_usage **u);

/* Any thread: the wheel SHA was used just now. */
void wm_usage_note(wm_usage *u, const uint8_t sha[32]);

/* The time that use times are counted in: unix seconds, moved forward by
 * WHEELMESH_TEST_CLOCK_OFFSET_S in builds with the test hooks (so a test
 * can see wheels age without waiting days). */
int64_t wm_usage_now(void);

/* Reads the test clock offset; call once before any thread starts.
 * Returns the offset (always 0 in builds without the test hooks). */
int64_t wm_usage_clock_init(void);
int64_t wm_usage_clock_offset(void);

/* One thread (the loop): calls FN for up to MAX notes made since the
 * last drain, with the first 8 bytes of the sha256 (big-endian) and the
 * time, and clears them; the rest wait for the next drain. Returns how
 * many. */
size_t wm_usage_drain(wm_usage *u, size_t max,
                      void (*fn)(void *arg, uint64_t prefix, int64_t when),
                      void *arg);

#endif
