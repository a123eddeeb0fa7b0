/*
 * Serving peers, on the node loop: chunks and chunk maps of the wheels
 * this node holds, chunks of wheels still arriving, and, for a peer that
 * chose this node as the designee of a wheel, the fetch from upstream
 * that the coordinator starts for it ("later" until bytes are in).
 */
#ifndef WM_PEERSERVE_H
#define WM_PEERSERVE_H

#include "fetch.h"
#include "node.h"
#include "peerfetch.h"
#include "transport.h"

typedef struct wm_peerserve wm_peerserve;

/* Serves from NODE's store and FETCH's downloads (with the chunks PEERS
 * checked of those it fetches from peers), answering through T. NULL when
 * out of memory. */
wm_peerserve *wm_peerserve_new(wm_node *node, wm_transport *t,
                               wm_fetch *fetch, wm_peerfetch *peers);
void wm_peerserve_destroy(wm_peerserve **ps);

/* FETCH and MAP requests. */
void wm_peerserve_on_fetch(wm_peerserve *ps, const wm_from *from,
                           const wm_msg *m);
void wm_peerserve_on_map(wm_peerserve *ps, const wm_from *from,
                         const wm_msg *m);

/* Bytes of chunks sent to peers, and chunk requests answered BUSY (at the
 * upload limit). */
void wm_peerserve_stats(const wm_peerserve *ps, uint64_t *uploaded,
                        uint64_t *busy_replies);

/* Test builds only: serve corrupted chunks (the tests of bad peers). */
void wm_peerserve_set_fault(wm_peerserve *ps, int bad_chunks);

#endif
