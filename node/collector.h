/*
 * The collector, on the node loop: keeps the store inside cache.max_size
 * and drops wheels unused for cache.expire_after_days, least recently used
 * first, a slice of work a loop turn so pages and probes are answered
 * meanwhile; `wheelmesh prune` asks it for the same by hand. Only wheels
 * an upstream page lists go: one no upstream can give back is kept (and
 * counted), whoever else says they hold it; an operator's prune of its
 * project is the one way out. Each wheel leaves the store in one
 * transaction with the remove entry of this node's holdings log, so the
 * log and the store never disagree.
 */
#ifndef WM_COLLECTOR_H
#define WM_COLLECTOR_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "call.h"
#include "index.h"
#include "membership.h"
#include "node.h"
#include "pagecache.h"

typedef struct wm_collector wm_collector;

typedef struct wm_collector_parts {
    wm_node *node; /* its store, config and usage table */
    wm_pagecache *pages;
    wm_index *index;
    wm_members *members; /* NULL when the node runs alone */
    /* A wheel of PROJECT left the store; E is its remove entry (taken). */
    void (*removed)(void *arg, const wm_entry *e, const char *project);
    void *arg;
} wm_collector_parts;

/* What the collector has done, for status and metrics. */
typedef struct wm_collector_stats {
    uint64_t evicted[4]; /* by reason: size, expiry, prune, replaced */
    uint64_t bytes_freed;
    uint64_t last_copies; /* kept: no upstream page lists them */
    uint64_t last_copy_bytes;
    uint64_t passes;
    double busy_s; /* time spent collecting */
} wm_collector_stats;

/* Returns 0 or -ENOMEM. */
int wm_collector_new(wm_collector **out, const wm_collector_parts *parts);

/* Answers waiting prune calls, frees (NULL is fine), clears the pointer. */
void wm_collector_destroy(wm_collector **c);

/* A commit listener: the store grew; past the high-water mark the
 * collector starts. */
void wm_collector_stored(void *c, const wm_file_info *info,
                         const wm_entry *logged);

/* The store had no room for a wheel: collect now. */
void wm_collector_full(void *c);

/* Is there room for SIZE more bytes of wheels that will be kept (puts
 * no upstream page lists)? Not when the kept wheels and they would pass
 * cache.max_size. */
int wm_collector_room(void *c, uint64_t size);

/* Is there room for BYTES more of chunks that go into the map before
 * their wheel's record (peer fetches in progress)? Only when the wheels
 * held, the chunks no record names yet (wm_store_orphan_bytes) and they
 * stay inside cache.max_size: such bytes are not wheels the collector can
 * drop, so they never count on it. */
int wm_collector_room_chunks(void *c, uint64_t bytes);

/* Drops the stored wheel SHA now, with its remove entry (a commit's
 * namesake handler: its filename names other bytes now). Returns 0,
 * -ENOENT, or another negative error. */
int wm_collector_drop(void *c, const uint8_t *sha);

/* WM_OP_PRUNE: drops what the call's filter selects (every wheel, a
 * project's, those unused for DAYS, or down to SIZE bytes; kept wheels
 * only when their project is named), answering with JSON counts once
 * done; 409 while another prune runs. */
void wm_collector_prune_call(void *c, wm_call *call);

/* The collector's part of /api/status ("collector") and of /metrics. */
struct cJSON;
void wm_collector_status(const wm_collector *c, struct cJSON *root);
void wm_collector_metrics(const wm_collector *c, wm_buf *b);

/* The loop's part: a timer, and steps while there is work. */
size_t wm_collector_poll(void *c, zmq_pollitem_t *items, size_t max,
                         long *timeout_ms);
void wm_collector_dispatch(void *c, const zmq_pollitem_t *items, size_t n);

#endif
