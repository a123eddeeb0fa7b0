/*
 * The upstream side of the node loop: PyPI-style indexes reached through
 * one libcurl multi handle driven by the loop's poll. It keeps each
 * project's upstream page (revalidated after page_ttl_s, served stale when
 * upstream fails), prepares the merged /simple/<project>/ pages, and pulls
 * wheels and their metadata that the node lacks, verifying every byte
 * against the sha256 the page advertised before anything is stored.
 *
 * Everything here runs on the loop thread.
 */
#ifndef WM_UPSTREAM_H
#define WM_UPSTREAM_H

#include <stddef.h>
#include <zmq.h>

#include "node.h"

/* A request the loop answers later: the HTTP thread's REQ identity and its
 * request. wm_loop_answer() sends the reply and frees the waiter. */
typedef struct wm_waiter {
    struct wm_waiter *next;
    wm_request *req;
    size_t idlen;
    unsigned char id[256];
} wm_waiter;

void wm_loop_answer(void *router, wm_waiter *w);

typedef struct wm_upstream wm_upstream;

/* Creates the upstream side for NODE. ROUTER answers waiters; PUB carries
 * download progress (one message per update: the 32-byte sha256). Returns
 * 0 or -ENOMEM. */
int wm_upstream_new(wm_upstream **out, wm_node *node, void *router, void *pub);

/* Ends every transfer (their waiters get 503), frees, clears the pointer. */
void wm_upstream_destroy(wm_upstream **u);

/* Takes W (a WM_OP_PAGE, WM_OP_FETCH or WM_OP_META request) and answers it
 * now or once upstream has replied. */
void wm_upstream_request(wm_upstream *u, wm_waiter *w);

struct wm_cluster;

/* Lets fetches try the cluster's peers before upstream. */
void wm_upstream_set_cluster(wm_upstream *u, struct wm_cluster *c);

/* Tells HTTP threads streaming SHA that there is news. */
void wm_upstream_publish(wm_upstream *u, const uint8_t *sha);

/* The download of SHA from upstream in progress, or NULL. No reference is
 * taken: use it before returning to the loop. */
wm_download *wm_upstream_download(wm_upstream *u, const uint8_t *sha);

/* Starts fetching SHA (FILENAME) from upstream for a peer. Returns 0 when
 * it is (now) being fetched, -EAGAIN while its page is being fetched (ask
 * again), -EEXIST when stored, -ENOENT when upstream does not list it. */
int wm_upstream_prefetch(wm_upstream *u, const uint8_t *sha,
                         const char *filename);

/* Continues DL, which no peer can serve any more, from upstream: asks
 * for the bytes after those DL already has (a Range request; a server
 * that ignores it is handled), hashing the whole file. Takes its own
 * reference. Returns 0, or -ENOENT when the page the node holds does not
 * list it. */
int wm_upstream_take_over(wm_upstream *u, wm_download *dl, const uint8_t *sha,
                          const char *filename);

/* Tells the upstream side that the store changed (a commit), so prepared
 * pages are rendered again. */
void wm_upstream_store_changed(wm_upstream *u);

/* Adds libcurl's sockets to ITEMS (room for MAX) and lowers *TIMEOUT_MS to
 * libcurl's next timer. Returns the number of items added. */
size_t wm_upstream_pollitems(wm_upstream *u, zmq_pollitem_t *items, size_t max,
                             long *timeout_ms);

/* After the poll: drives libcurl for the ready sockets and due timers, and
 * finishes completed transfers. */
void wm_upstream_dispatch(wm_upstream *u, const zmq_pollitem_t *items,
                          size_t n);

#endif
