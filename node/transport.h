/*
 * The cluster's sockets, on the node loop: a ZAP handler that admits only
 * trusted CURVE keys, one ROUTER bound on cluster.listen that peers'
 * requests arrive on, one DEALER per member this node talks to for its
 * requests and the answers to them (opened by the first message, closed
 * after a minute without traffic), and seed sockets that find out which
 * trusted key answers at each seed address. Every message is decoded
 * (wire.h) before the handler sees it; its sender is the key the ZAP
 * handler admitted, never anything the peer says.
 */
#ifndef WM_TRANSPORT_H
#define WM_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "membership.h"
#include "node.h"
#include "trust.h"
#include "wire.h"

typedef struct wm_transport wm_transport;

/* Where a message came from and how to answer it. */
typedef struct wm_from {
    wm_member *m; /* the sender */
    void *sock;
    uint8_t rid[256]; /* routing id on the ROUTER; empty on a DEALER */
    size_t ridlen;
} wm_from;

/* What the transport tells its owner. */
typedef struct wm_transport_io {
    void *arg;
    /* Every well-formed message, with its bulk frame (CHUNK and MAPDATA
     * only; else NULL, 0). */
    void (*recv)(void *arg, const wm_from *f, const wm_msg *m,
                 const void *bulk, size_t blen);
    /* libzmq refused M's address: M is no longer reachable. Called from
     * inside wm_transport_send, maybe in a caller's loop over members or
     * holders: it must not send, nor add or remove either. */
    void (*unreachable)(void *arg, wm_member *m);
} wm_transport_io; /* every callback is required */

/* Binds the ZAP handler, then the ROUTER on cluster.listen, for NODE;
 * members come from MS and are checked against T. Returns 0, or a
 * negative error with *WHY set. */
int wm_transport_new(wm_transport **out, wm_node *node, const wm_trust *t,
                     wm_members *ms, const wm_transport_io *io,
                     const char **why);
void wm_transport_destroy(wm_transport **t);

/* M is reachable at its signed address, or at ADDR when not NULL (a
 * seed's): the next message to M opens a DEALER there (a socket to an
 * older address is closed). */
void wm_transport_connect(wm_transport *t, wm_member *m, const char *addr);

/* Closes M's DEALER and forgets its address (it is no longer trusted). */
void wm_transport_disconnect(wm_transport *t, wm_member *m);

/* Starts trying every seed address with every trusted key (again after a
 * reload). */
void wm_transport_seeds(wm_transport *t);

/* Sends M (and BULK) to member TO, opening TO's DEALER if it has none, or
 * as an answer to F. Never blocks: a full queue drops the message, which
 * every exchange survives. Returns 0 or -1 (TO is not reachable once
 * libzmq refused its address). */
int wm_transport_send(wm_transport *t, wm_member *to, const wm_msg *m,
                      const void *bulk, size_t blen);
int wm_transport_reply(wm_transport *t, const wm_from *f, const wm_msg *m,
                       const void *bulk, size_t blen);

/* From a handler of a message with a bulk frame (io->recv): moves the
 * frame into OUT, which the caller closes, so its bytes outlive the call
 * without a copy. Read them with zmq_msg_data(OUT) from then on: the BULK
 * pointer the handler got does not follow a small frame. Returns 0, or -1
 * when there is no such frame. */
int wm_transport_take_bulk(wm_transport *t, zmq_msg_t *out);

/* The address this node gives peers. */
const char *wm_transport_advertise(const wm_transport *t);

typedef struct wm_transport_stats {
    uint64_t rejected; /* messages refused: malformed, wrong frames,
                          untrusted keys */
    uint64_t bytes_in, bytes_out;
    uint64_t opened; /* DEALERs opened, again after an idle close included */
    size_t open;     /* DEALERs open now (a dead member's too: it is asked
                        every 5 s whether it is back) */
} wm_transport_stats;

/* What the transport counted so far, and its DEALERs open now. */
void wm_transport_stats_get(const wm_transport *t, wm_transport_stats *out);

/* The loop's part. */
size_t wm_transport_poll(void *t, zmq_pollitem_t *items, size_t max,
                         long *timeout_ms);
void wm_transport_dispatch(void *t, const zmq_pollitem_t *items, size_t n);

/* The advertised address from CFG: cluster.advertise, else cluster.listen
 * with a wildcard host replaced by this host's first address. */
void wm_transport_derive_advertise(const wm_config *cfg, char *out,
                                   size_t outsz);

#endif
