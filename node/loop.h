/*
 * The node loop: one thread that polls every ZeroMQ socket and file
 * descriptor the parts of the node register, runs their timers, serves
 * calls from HTTP threads and reads signals through a signalfd. Parts
 * never call the loop back; they give it functions to call.
 */
#ifndef WM_LOOP_H
#define WM_LOOP_H

#include <signal.h>
#include <stddef.h>
#include <zmq.h>

#include "call.h"

typedef struct wm_loop wm_loop;

/* Fills ITEMS (room for MAX) with the part's poll items and lowers
 * *TIMEOUT_MS to its next timer. Returns how many it wants: more than MAX
 * means "call me again with more room". */
typedef size_t (*wm_poll_fn)(void *arg, zmq_pollitem_t *items, size_t max,
                             long *timeout_ms);
/* Handles what the poll found on the part's N items (N may be 0: timers
 * only). */
typedef void (*wm_dispatch_fn)(void *arg, const zmq_pollitem_t *items,
                               size_t n);
typedef void (*wm_call_fn)(void *arg, wm_call *c);
typedef void (*wm_hup_fn)(void *arg);

/* The signals the loop reads; block them in every thread (before any is
 * created) with this mask. */
void wm_loop_signals(sigset_t *mask);

/* Creates the loop on context ZMQ: binds the call ROUTER and the progress
 * PUB, opens the signalfd (the signals must be blocked already). Returns 0
 * or a negative error with *WHY set. */
int wm_loop_new(wm_loop **out, void *zmq, const char **why);

/* The PUB socket that carries download progress. */
void *wm_loop_pub(wm_loop *l);

/* Adds a part. Returns 0 or -ENOMEM. */
int wm_loop_add(wm_loop *l, wm_poll_fn poll, wm_dispatch_fn dispatch,
                void *arg);

/* Routes calls of OP to FN. */
void wm_loop_handle(wm_loop *l, enum wm_op op, wm_call_fn fn, void *arg);

/* Calls FN on SIGHUP. */
void wm_loop_on_hup(wm_loop *l, wm_hup_fn fn, void *arg);

/* Runs until SIGTERM or SIGINT. Returns 0, or -1 when polling failed. */
int wm_loop_run(wm_loop *l);

/* Stops taking calls and releases those still queued; callers waiting
 * for a reply are woken by the context's shutdown. */
void wm_loop_close_calls(wm_loop *l);

/* Closes the sockets and the signalfd, frees (NULL is fine), clears the
 * pointer. */
void wm_loop_destroy(wm_loop **l);

#endif
