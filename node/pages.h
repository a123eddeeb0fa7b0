/*
 * Rendering of what the HTTP front serves as text: the PEP 503 HTML and
 * PEP 691 JSON indexes, the flat --find-links page, /api/status, /api/files
 * and /metrics. Each returns a malloc'd body (caller frees) and its length,
 * or NULL when the page would pass its size cap or memory runs out.
 */
#ifndef WM_PAGES_H
#define WM_PAGES_H

#include <stddef.h>

#include "listing.h"
#include "node.h"
#include "store.h"

enum wm_page_format { WM_PAGE_HTML, WM_PAGE_JSON };

/* The project list (/simple/): the projects this node's store holds. */
char *wm_page_root(wm_store_view *v, enum wm_page_format fmt, size_t *len);

/* One project's files (/simple/<project>/), as listing.c decided. */
char *wm_page_project(const char *project, const wm_listed *files, size_t n,
                      enum wm_page_format fmt, size_t *len);

/* The flat page for --find-links (/links/). */
char *wm_page_links(const wm_listed *files, size_t n, size_t *len);

/* A file as /api/files shows it. */
typedef struct wm_api_file {
    const char *filename, *project;
    const uint8_t *sha256;
    uint64_t size;
    int source;                /* enum wm_source; 0: not held here */
    const uint8_t *named_by;   /* the publisher whose claim names it */
    const uint8_t (*holders)[32];
    size_t nholders;
} wm_api_file;

/* JSON list of files with their holders (/api/files). */
char *wm_page_files_json(const wm_api_file *files, size_t n, size_t *len);

/* JSON for `wheelmesh status` (/api/status); MORE adds the cluster's
 * sections. */
struct cJSON;
char *wm_page_status(wm_node *node,
                     void (*more)(void *arg, struct cJSON *root), void *arg,
                     size_t *len);

/* Prometheus text exposition (/metrics); MORE adds the cluster's lines. */
char *wm_page_metrics(wm_node *node,
                      void (*more)(void *arg, wm_buf *b), void *arg,
                      size_t *len);

/* The JSON answer to a successful PUT. */
char *wm_page_put_result(const wm_file_info *info, size_t *len);

#endif
