/*
 * Upstream project pages, on the node loop: the last good page of each
 * project (parsed in memory for the projects in use, raw in LMDB so a
 * restart keeps them), fetched from the index that routing picks today,
 * revalidated after upstream.page_ttl_s with a conditional request, and
 * served stale when upstream fails. Whoever waits for a page listens for
 * the end of its fetch.
 */
#ifndef WM_PAGECACHE_H
#define WM_PAGECACHE_H

#include "node.h"
#include "simplepage.h"
#include "upstream.h"

typedef struct wm_pagecache wm_pagecache;

/* What the cache can say of a project now. Valid until the loop next
 * dispatches (a fetch ending may change it). */
typedef struct wm_pageinfo {
    const wm_simplepage *page; /* NULL: none (absent, offline, failed) */
    const char *error;         /* no page because upstream failed: why */
    int pending; /* a fetch is on its way and there is no page yet */
    int owned;   /* the project belongs to the cluster (cluster.projects) */
} wm_pageinfo;

/* Called when a fetch of PROJECT's page ended; CHANGED when what the
 * cache holds for it changed (a new page, or the page is gone). */
typedef void (*wm_page_fn)(void *arg, const char *project, int changed);

/* Creates the cache on NODE's store, fetching through UP. Returns 0 or
 * -ENOMEM. */
int wm_pagecache_new(wm_pagecache **out, wm_node *node, wm_upstream *up);

/* Cancels fetches, frees (NULL is fine), clears the pointer. */
void wm_pagecache_destroy(wm_pagecache **pc);

/* Adds a listener. Returns 0 or -ENOMEM. */
int wm_pagecache_listen(wm_pagecache *pc, wm_page_fn fn, void *arg);

/* What the cache knows of PROJECT (normalised), starting a fetch when it
 * has no page or its page is stale. */
void wm_pagecache_get(wm_pagecache *pc, const char *project,
                      wm_pageinfo *info);

/* What the cache knows of PROJECT, fetching nothing. */
void wm_pagecache_peek(wm_pagecache *pc, const char *project,
                       wm_pageinfo *info);

/* The file FILENAME with SHA on PROJECT's page, fetching nothing; NULL
 * when the page is not here or does not list it. */
const wm_upfile *wm_pagecache_file(wm_pagecache *pc, const char *project,
                                   const uint8_t *sha, const char *filename);

/* The file named FILENAME on PROJECT's page (any hash), or NULL. */
const wm_upfile *wm_pagecache_named(wm_pagecache *pc, const char *project,
                                    const char *filename);

/* A page as the cache keeps it in LMDB (WM_TABLE_PAGES, key: the project):
 * when it was fetched, five strings (index URL, content type, base URL,
 * ETag, Last-Modified; NULL when empty) and the raw body. */
typedef struct wm_page_record {
    int64_t fetched_at;
    const char *strs[5]; /* index, ctype, base, etag, lm */
    const char *body;
    size_t body_len;
} wm_page_record;

#define WM_PAGE_RECORD_STR (WM_URL_MAX + 17) /* room for each string */

/* Decodes DATA (LEN bytes), a page record the cache kept, into *R: its
 * strings are copied, NUL-terminated, into BUFS (one each) and its body
 * points into DATA, so *R is valid while both are. Reads nothing outside
 * DATA. Returns 0, or -EBADMSG when the record is malformed or of another
 * version. For tests and fuzzing; no cache is needed. */
int wm_pagecache_record_decode(const void *data, size_t len, wm_page_record *r,
                               char bufs[5][WM_PAGE_RECORD_STR]);

#endif
