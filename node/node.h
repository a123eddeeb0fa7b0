/*
 * A running node: what its threads share, and the node loop that owns every
 * ZeroMQ socket and every LMDB write. HTTP threads reach the loop only by
 * wm_node_call() over an inproc socket.
 */
#ifndef WM_NODE_H
#define WM_NODE_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "identity.h"
#include "store.h"

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
} wm_counters;

typedef struct wm_node {
    const wm_config *cfg;
    wm_store *store;
    wm_identity *id;
    char id_hex[WM_PUBKEY_HEX];
    void *zmq; /* ZeroMQ context */
    time_t started;
    char url[128]; /* http://HOST:PORT/ as served */
    wm_counters counters;
} wm_node;

/* A request for the loop: store the wheel in FD under INFO. */
typedef struct wm_put_job {
    wm_file_info info; /* filename, project, sha256, size set by caller */
    int fd;
    const void *meta;
    size_t meta_len;
    int result; /* set by the loop: 0 or a negative error of wm_store_put_fd */
} wm_put_job;

/* Hands JOB to the node loop and waits for it to be done. Returns 0 (see
 * JOB->result) or -ESHUTDOWN when the node is stopping. Any thread. */
int wm_node_put(wm_node *node, wm_put_job *job);

/* Runs the `wheelmesh node` command. Returns the process exit code. */
int wm_node_main(int argc, char **argv);

#endif
