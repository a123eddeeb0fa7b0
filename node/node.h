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
    atomic_uint_fast64_t upstream_bytes;
    atomic_uint_fast64_t upstream_errors;
    atomic_uint_fast64_t hash_mismatches;
    atomic_uint_fast64_t upstream_pages; /* page fetches, incl. 304s */
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
    /* Loop thread only: called after every commit to the store; the
     * wheels waiting to be written; the loop's ROUTER. */
    void (*on_stored)(void *arg, const wm_file_info *info);
    void *on_stored_arg;
    struct wm_commit *commits;
    void *router;
} wm_node;

/* An immutable byte string shared between the loop and HTTP threads (a
 * prepared page, fetched metadata). Freed when the last reference goes. */
typedef struct wm_blob {
    atomic_int refs;
    size_t len;
    char etag[40]; /* quoted, ready for the header */
    char data[];
} wm_blob;

/* A copy of DATA with one reference and an ETag from its hash; NULL when
 * out of memory. */
wm_blob *wm_blob_new(const void *data, size_t len);
wm_blob *wm_blob_ref(wm_blob *b);
void wm_blob_release(wm_blob *b); /* NULL-safe */

enum wm_download_state { WM_DL_RUNNING, WM_DL_VERIFIED, WM_DL_FAILED };
#define WM_SIZE_UNKNOWN UINT64_MAX

/* A wheel on its way from upstream. The loop appends to the spool file and
 * publishes progress; HTTP threads read what has arrived. The last byte is
 * held back until the whole file has been verified, so no client ever gets
 * a complete body with the wrong hash. */
typedef struct wm_download {
    atomic_int refs;
    uint8_t sha256[WM_SHA256_LEN];
    char filename[WM_WHEELNAME_MAX + 1];
    int fd;     /* unlinked spool file */
    int source; /* WM_SOURCE_PEER or WM_SOURCE_UPSTREAM */
    atomic_uint_fast64_t received;
    atomic_uint_fast64_t total; /* WM_SIZE_UNKNOWN until the headers came */
    atomic_int state;           /* enum wm_download_state */
} wm_download;

/* A new download of SHA (FILENAME) with one reference, an empty spool file
 * and TOTAL bytes expected (WM_SIZE_UNKNOWN: not yet known). NULL when out
 * of memory or the spool cannot be made. */
wm_download *wm_download_new(const wm_node *node, const uint8_t *sha,
                             const char *filename, uint64_t total, int source);
wm_download *wm_download_ref(wm_download *d);
void wm_download_release(wm_download *d); /* NULL-safe; closes the spool */

/* Bytes a reader may send now: all of them once verified, else all but the
 * last one. */
uint64_t wm_download_available(wm_download *d);

enum wm_op {
    WM_OP_PUT,     /* store the wheel in FD under INFO */
    WM_OP_PAGE,    /* the prepared /simple/<project>/ page */
    WM_OP_FETCH,   /* a download of a wheel this node lacks */
    WM_OP_META,    /* the core metadata of a wheel this node lacks */
    WM_OP_LINKS,   /* the flat --find-links page (project may be "") */
    WM_OP_FILES,   /* /api/files JSON (project may be "") */
    WM_OP_STATUS,  /* /api/status JSON */
    WM_OP_METRICS, /* /metrics text */
};

/* A request from an HTTP thread to the loop. The caller owns it and waits
 * in wm_node_call() while the loop fills in the results. */
typedef struct wm_request {
    enum wm_op op;
    /* WM_OP_PUT */
    wm_file_info info; /* filename, project, sha256, size, meta_* set */
    int fd;
    const void *meta;
    size_t meta_len;
    /* WM_OP_PAGE: project and format (0 HTML, 1 JSON); FETCH/META: sha256
     * and filename */
    char project[WM_PROJECT_MAX + 1];
    int json;
    uint8_t sha256[WM_SHA256_LEN];
    char filename[WM_WHEELNAME_MAX + 1];
    /* results: 0 or a negative error (PUT: as wm_store_put_fd), an HTTP
     * status and reason for failures, and a reference the caller releases */
    int result;
    unsigned status;
    char why[200];
    wm_blob *blob;
    wm_download *download;
} wm_request;

/* Hands REQ to the node loop and waits until it is answered. Returns 0
 * (see REQ's results) or -ESHUTDOWN when the node is stopping. Any thread
 * but the loop's. */
int wm_node_call(wm_node *node, wm_request *req);

/* Waits up to TIMEOUT_MS for progress on D (any thread but the loop's).
 * SUB is a socket from wm_node_progress_socket(), or NULL to just sleep. */
void *wm_node_progress_socket(wm_node *node, const uint8_t *sha);
void wm_node_progress_wait(void *sub, int timeout_ms);

/* Opens an unlinked temporary file in the data directory (the store's
 * file system, and nothing to clean up after a crash). Returns the fd or
 * -errno. */
int wm_node_spool(const wm_node *node);

/* Queues the verified download DL for the store: checks the wheel in its
 * spool (filename, zip, METADATA), signs the record, and writes it a batch
 * per loop turn; then the cluster and the page cache are told. CHUNKMAP:
 * the chunk hashes every chunk was checked against, or NULL. Returns 0
 * (also when it is stored already) or a negative error, logged. Loop
 * thread only. */
int wm_node_commit(wm_node *node, wm_download *dl, const void *chunkmap);

/* The download of SHA waiting to be written into the store (it can still
 * be served from its spool), or NULL. No reference is taken. Loop thread
 * only. */
wm_download *wm_node_committing(wm_node *node, const uint8_t *sha);

/* Runs the `wheelmesh node` command. Returns the process exit code. */
int wm_node_main(int argc, char **argv);

#endif
