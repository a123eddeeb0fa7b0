/*
 * The cluster, on the node loop: it puts together the transport, the
 * membership, the index and its gossip, fetching from peers and serving
 * them, routes each message to the part it is for, and runs their timers.
 * When cluster.trusted_keys is not set the node runs alone: the cluster
 * then only keeps the node's own index and opens no socket.
 */
#ifndef WM_CLUSTER_H
#define WM_CLUSTER_H

#include <stddef.h>
#include <zmq.h>

#include "buf.h"
#include "fetch.h"
#include "index.h"
#include "membership.h"
#include "node.h"
#include "peerfetch.h"
#include "trust.h"

typedef struct wm_cluster wm_cluster;

/* Called when what pages list may have changed: for PROJECT, or for all
 * projects when PROJECT is NULL (members came or went, trust changed). */
typedef void (*wm_listing_fn)(void *arg, const char *project);

/* Starts the cluster side of NODE with the trust T (kept by the caller),
 * publishing download progress on PUB. Returns 0, or a negative error
 * with *WHY set. */
int wm_cluster_new(wm_cluster **out, wm_node *node, wm_trust *t, void *pub,
                   const char **why);

/* Calls CHANGED(ARG, project) when what pages list may have changed. */
void wm_cluster_listen(wm_cluster *c, wm_listing_fn changed, void *arg);

/* Second step of start-up, once the coordinator exists: peers that chose
 * this node as designee are served through it. Returns 0 or -ENOMEM. */
int wm_cluster_serve(wm_cluster *c, wm_fetch *fetch);

/* Stops and frees (NULL is fine); fetches from peers end. */
void wm_cluster_destroy(wm_cluster **c);

/* The parts others read: NULL when the node runs alone (the index is
 * always there). */
wm_index *wm_cluster_index(wm_cluster *c);
wm_members *wm_cluster_members(wm_cluster *c);
wm_peerfetch *wm_cluster_peerfetch(wm_cluster *c);

/* A commit listener: a wheel was stored; its log entry is spread. */
void wm_cluster_stored(void *c, const wm_file_info *info,
                       const wm_entry *logged);

/* A wheel of PROJECT left the store; E, its remove entry, is spread. */
void wm_cluster_removed(void *c, const wm_entry *e, const char *project);

/* After the trust was reloaded (SIGHUP): members whose key is gone are
 * dropped, seeds are tried again. */
void wm_cluster_reload(wm_cluster *c);

/* The loop's part. */
size_t wm_cluster_poll(void *c, zmq_pollitem_t *items, size_t max,
                       long *timeout_ms);
void wm_cluster_dispatch(void *c, const zmq_pollitem_t *items, size_t n);

/* Adds "members" and "cluster" to the status JSON object ROOT. */
struct cJSON;
void wm_cluster_status(wm_cluster *c, struct cJSON *root);

/* Appends Prometheus lines for the cluster to B. */
void wm_cluster_metrics(wm_cluster *c, wm_buf *b);

#endif
