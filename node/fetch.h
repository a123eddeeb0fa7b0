/*
 * The fetch coordinator, on the node loop: the one place that decides
 * where the bytes of a wheel this node lacks come from — a download
 * already running or being committed, peers that hold it, the member
 * designated to fetch it from upstream for the cluster, upstream itself,
 * and upstream taking over a peer fetch that lost its holders. Decisions
 * come from fetchsm; sources (peerfetch, upstream) only produce bytes into
 * the download and report how they ended.
 *
 * A failure is remembered per sha256 for a while (a negative cache), so a
 * missing or broken file costs upstream a bounded number of requests
 * however often clients and peers ask.
 */
#ifndef WM_FETCH_H
#define WM_FETCH_H

#include "call.h"
#include "commit.h"
#include "index.h"
#include "membership.h"
#include "node.h"
#include "pagecache.h"
#include "peerfetch.h"
#include "upstream.h"

typedef struct wm_fetch wm_fetch;

/* What the coordinator works with. The cluster parts are NULL when the
 * node runs alone. */
typedef struct wm_fetch_parts {
    wm_node *node;
    wm_commit *commit;
    wm_upstream *up;
    wm_pagecache *pages;
    void *pub; /* progress notices */
    wm_peerfetch *peers;
    wm_index *index;
    wm_members *members;
} wm_fetch_parts;

/* Returns 0 or -ENOMEM. */
int wm_fetch_new(wm_fetch **out, const wm_fetch_parts *parts);

/* Fails what is running (readers wake and end with an error), answers
 * waiting calls, frees (NULL is fine), clears the pointer. */
void wm_fetch_destroy(wm_fetch **f);

/* Call handlers: WM_OP_FETCH (answered at once with a download, -EEXIST
 * when stored, or a failure) and WM_OP_META. */
void wm_fetch_call(void *f, wm_call *c);
void wm_fetch_meta_call(void *f, wm_call *c);

/* The download of SHA running or being committed, or NULL. No reference
 * is taken. */
wm_download *wm_fetch_running(wm_fetch *f, const uint8_t *sha);

/* A peer that chose this node as the designee asks for SHA (FILENAME):
 * starts fetching it from upstream when this node's own page lists it.
 * Returns 0 when it is (now) running, -EAGAIN while the page is on its
 * way, -ENOENT when this node cannot (not listed, or failed recently). */
int wm_fetch_for_peer(wm_fetch *f, const uint8_t *sha, const char *filename);

/* The page cache's listener: fetches waiting for PROJECT's page go on. */
void wm_fetch_page_done(void *f, const char *project, int changed);

#endif
