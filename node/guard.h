/*
 * A deadline for each HTTP connection's request head. A connection enters
 * the guard when it opens, says when its request line and headers are
 * in, and leaves before its socket is closed; one still without its head
 * when its deadline passes is shut down (the thread serving it sees its
 * socket end, and the connection is closed), so neither idle nor dripping
 * connections can hold the node's connection slots. Any thread may call
 * these; the guard has one thread of its own.
 */
#ifndef WM_GUARD_H
#define WM_GUARD_H

#include <stddef.h>

typedef struct wm_guard wm_guard;

/* A guard for up to MAX connections, each with DEADLINE_S seconds to send
 * its head. NULL when out of memory or no thread could start. */
wm_guard *wm_guard_new(unsigned deadline_s, size_t max);

/* Stops the thread, frees (NULL is fine), clears the pointer. */
void wm_guard_destroy(wm_guard **g);

/* The connection on socket FD opened: returns its slot, or -1 when the
 * table is full (it then goes unguarded). */
int wm_guard_enter(wm_guard *g, int fd);

/* Its head is in: no deadline any more. */
void wm_guard_head(wm_guard *g, int slot);

/* Its request is done and it stays open for another: the next head must
 * be in within IDLE_S seconds. */
void wm_guard_next(wm_guard *g, int slot, unsigned idle_s);

/* It is closing (its socket still open): frees the slot. */
void wm_guard_leave(wm_guard *g, int slot);

/* Connections shut down for missing their deadline so far. */
unsigned long wm_guard_cut(const wm_guard *g);

#endif
