/*
 * HTTP(S) transfers from upstream indexes, on the node loop: one libcurl
 * multi handle whose sockets and timer join the loop's poll. Two kinds of
 * transfer: a body into memory (pages, metadata), and a wheel into a
 * download's spool, hashed as it arrives and published to its readers.
 * Either ends with one call of its completion function, from the loop's
 * dispatch, unless it was cancelled first. This module decides nothing
 * about where bytes should come from.
 */
#ifndef WM_UPSTREAM_H
#define WM_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "download.h"
#include "hash.h"
#include "node.h"

typedef struct wm_upstream wm_upstream;
typedef struct wm_xfer wm_xfer;

/* How a transfer ended. RC: 0, -ETIMEDOUT (stalled or past its deadline),
 * -EMSGSIZE (over its cap), -EBADMSG (the bytes fail their sha256), -EIO
 * (connection, HTTP error, spool write). STATUS: the HTTP status, 0 when
 * none came. WHY: one line for logs and clients. The body fields are set
 * for wm_upstream_get transfers whose status is 2xx/3xx. */
typedef struct wm_xfer_result {
    int rc;
    long status;
    const char *why;
    const char *url;
    const char *body;
    size_t len;
    const char *content_type;
    const char *effective_url;
    const char *etag, *last_modified;
} wm_xfer_result;

typedef void (*wm_xfer_fn)(void *arg, const wm_xfer_result *r);

/* Creates the transfers' home for NODE; PUB carries download progress.
 * Returns 0 or -ENOMEM. */
int wm_upstream_new(wm_upstream **out, wm_node *node, void *pub);

/* Ends every transfer without calling its completion, frees (NULL is
 * fine), clears the pointer. */
void wm_upstream_destroy(wm_upstream **u);

/* GET URL into memory, at most CAP bytes, within TIMEOUT_S seconds in all
 * (0: only the stall bound, upstream.timeout_s). HEADERS: a NULL-ended
 * list of extra request headers, or NULL. Returns the transfer, or NULL
 * when it cannot start. */
wm_xfer *wm_upstream_get(wm_upstream *u, const char *url,
                         const char *const *headers, size_t cap,
                         unsigned timeout_s, wm_xfer_fn done, void *arg);

/* GET URL into DL's spool after its first RESUME bytes (a Range request;
 * a server that ignores it is handled), at most CAP bytes in all. HASH
 * covers those first RESUME bytes and is taken (NULL when RESUME is 0);
 * at the end the whole file must hash to DL's sha256 (else -EBADMSG). DL
 * gets its total once the headers tell, and its progress as bytes arrive;
 * whether it is verified and kept is the caller's call. Returns the
 * transfer, or NULL when it cannot start (HASH is freed then). */
wm_xfer *wm_upstream_fetch(wm_upstream *u, const char *url, wm_download *dl,
                           uint64_t resume, wm_sha256 *hash, uint64_t cap,
                           wm_xfer_fn done, void *arg);

/* Ends X at once; its completion is not called. */
void wm_upstream_cancel(wm_upstream *u, wm_xfer *x);

/* The loop's part: libcurl's sockets and timer. */
size_t wm_upstream_poll(void *u, zmq_pollitem_t *items, size_t max,
                        long *timeout_ms);
void wm_upstream_dispatch(void *u, const zmq_pollitem_t *items, size_t n);

#endif
