/*
 * The catalog, on the node loop: what the pages list, and the prepared
 * /simple/<project>/ pages. It gathers the three inputs of listing.c — the
 * store's files, the upstream page, the claims of trusted publishers held
 * by live members — with the trust of the moment, and keeps each project's
 * rendered pages until something of that project changes.
 */
#ifndef WM_CATALOG_H
#define WM_CATALOG_H

#include "call.h"
#include "commit.h"
#include "index.h"
#include "membership.h"
#include "node.h"
#include "pagecache.h"
#include "trust.h"

typedef struct wm_catalog wm_catalog;

typedef struct wm_catalog_parts {
    wm_node *node;
    wm_commit *commit; /* where admitted PUTs go */
    wm_pagecache *pages;
    const wm_trust *trust;
    wm_index *index;
    wm_members *members; /* NULL when the node runs alone */
} wm_catalog_parts;

/* Returns 0 or -ENOMEM. */
int wm_catalog_new(wm_catalog **out, const wm_catalog_parts *parts);

/* Answers waiting calls (503), frees (NULL is fine), clears the pointer. */
void wm_catalog_destroy(wm_catalog **cat);

/* WM_OP_PUT: a wheel is admitted when its project's page would list it:
 * not under a filename upstream lists with other bytes, not a version of
 * an upstream project that upstream lacks unless it has a local label,
 * not in a project pinned to an index (409 with the reason). Admitted
 * wheels go to the commit queue, which answers. */
void wm_catalog_put_call(void *cat, wm_call *c);

/* Call handlers: WM_OP_PAGE, WM_OP_LINKS and WM_OP_FILES. */
void wm_catalog_page_call(void *cat, wm_call *c);
void wm_catalog_links_call(void *cat, wm_call *c);
void wm_catalog_files_call(void *cat, wm_call *c);

/* What PROJECT lists may have changed (NULL: every project's). */
void wm_catalog_changed(void *cat, const char *project);

/* Listeners: the page cache's (a page fetch ended) and the commit
 * queue's (a wheel was stored). */
void wm_catalog_page_done(void *cat, const char *project, int changed);
void wm_catalog_stored(void *cat, const wm_file_info *info,
                       const wm_entry *logged);

#endif
