/*
 * What the threads of a running node share: the configuration, the store,
 * the identity, the ZeroMQ context and the counters. The node loop owns
 * every ZeroMQ socket but the ones HTTP threads make for their calls, and
 * is the only LMDB writer.
 */
#ifndef WM_NODE_H
#define WM_NODE_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "identity.h"
#include "store.h"
#include "usage.h"

/* Counters read by /metrics and /api/status; any thread may bump them. */
typedef struct wm_counters {
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t hits_local; /* wheel requests served from the store */
    atomic_uint_fast64_t hits_peer;
    atomic_uint_fast64_t hits_upstream;
    atomic_uint_fast64_t misses; /* wheel requests nothing could serve */
    atomic_uint_fast64_t bytes_served;
    atomic_uint_fast64_t puts;
    atomic_uint_fast64_t put_rejected;
    atomic_uint_fast64_t upstream_bytes;
    atomic_uint_fast64_t upstream_errors;
    atomic_uint_fast64_t hash_mismatches;
    atomic_uint_fast64_t upstream_pages; /* page fetches, incl. 304s */
    atomic_uint_fast64_t fetch_failures; /* fetches every source failed */
    atomic_uint_fast64_t negative_hits;  /* answered from a recent failure */
    atomic_uint_fast64_t listing_conflicts; /* claims dropped from pages */
    atomic_uint_fast64_t store_full; /* wheels served but not kept: no room */
} wm_counters;

typedef struct wm_node {
    const wm_config *cfg;
    wm_store *store;
    wm_identity *id;
    wm_usage *usage; /* which wheels were read lately */
    char id_hex[WM_PUBKEY_HEX];
    void *zmq; /* ZeroMQ context */
    time_t started;
    char url[128]; /* http://HOST:PORT/ as served */
    wm_counters counters;
} wm_node;

#endif
