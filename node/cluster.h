/*
 * The cluster, on the node loop: trusted peers over CurveZMQ (a ZAP
 * handler admits only keys in cluster.trusted_keys), SWIM-style membership,
 * a signed scuttlebutt index of who holds which wheel, and fetches of
 * wheels from peers in verified chunks.
 *
 * Everything here runs on the loop thread.
 */
#ifndef WM_CLUSTER_H
#define WM_CLUSTER_H

#include <stddef.h>
#include <zmq.h>

#include "buf.h"
#include "node.h"
#include "upstream.h"

typedef struct wm_cluster wm_cluster;

/* Starts the cluster side of NODE: ZAP handler, the ROUTER on
 * cluster.listen, the index from LMDB, the seeds. When cluster.trusted_keys
 * is not set the node runs alone and this only keeps its own index.
 * Returns 0, or a negative error with *WHY set. */
int wm_cluster_new(wm_cluster **out, wm_node *node, wm_upstream *up,
                   const char **why);

/* Stops and frees (NULL is fine); in-flight peer fetches fail. */
void wm_cluster_destroy(wm_cluster **c);

/* Adds the cluster's sockets to ITEMS (room for MAX) and lowers
 * *TIMEOUT_MS to its next timer. Returns the number added. */
size_t wm_cluster_pollitems(wm_cluster *c, zmq_pollitem_t *items, size_t max,
                            long *timeout_ms);

/* After the poll: reads the ready sockets and runs the due timers. */
void wm_cluster_dispatch(wm_cluster *c, const zmq_pollitem_t *items, size_t n);

/* A wheel was committed to the local store: logs and spreads it. */
void wm_cluster_stored(wm_cluster *c, const wm_file_info *info);

/* Re-reads cluster.trusted_keys (SIGHUP). */
void wm_cluster_reload(wm_cluster *c);

/* A wheel held by live peers, as pages list it. */
typedef struct wm_remote_file {
    const char *filename;
    const char *project;
    const uint8_t *sha256;
    uint64_t size;
    size_t nholders;
    const uint8_t (*holders)[32]; /* node ids */
} wm_remote_file;

/* The wheels that live peers hold (of PROJECT, or all when NULL), sorted
 * by filename: a malloc'd array (caller frees; NULL when empty) whose
 * pointers stay valid until the loop next handles a message. */
wm_remote_file *wm_cluster_remote(wm_cluster *c, const char *project,
                                  size_t *n);

/* Starts (or joins) a fetch of SHA from the peers that hold it, or from the
 * member designated to fetch it from upstream for the whole cluster when
 * UPSTREAM_OK and no peer holds it. Returns a reference to the download, or
 * NULL when no live peer can serve it (the caller goes upstream itself). */
wm_download *wm_cluster_fetch(wm_cluster *c, const uint8_t *sha,
                              const char *filename, int upstream_ok);

/* Adds "members" and "cluster" to the status JSON object ROOT. */
struct cJSON;
void wm_cluster_status(wm_cluster *c, struct cJSON *root);

/* Appends Prometheus lines for the cluster to B. */
void wm_cluster_metrics(wm_cluster *c, wm_buf *b);

#endif
