/*
 * Rendering of what the HTTP front serves as text: the PEP 503 HTML and
 * PEP 691 JSON indexes, the flat --find-links page, /api/status, /api/files
 * and /metrics. Each returns a malloc'd body (caller frees) and its length,
 * or NULL when the page would pass its size cap or memory runs out.
 */
#ifndef WM_PAGES_H
#define WM_PAGES_H

#include <stddef.h>

#include "cluster.h"
#include "node.h"
#include "simplepage.h"

enum wm_page_format { WM_PAGE_HTML, WM_PAGE_JSON };

/* The project list (/simple/). */
char *wm_page_root(wm_store_view *v, enum wm_page_format fmt, size_t *len);

/* One project's files (/simple/<project>/): the local ones, those that
 * live peers hold (REMOTE, sorted by filename), then those of the upstream
 * page UP (may be NULL) that neither holds. Sets *FOUND to 0 and returns
 * NULL when none has a file of PROJECT. */
char *wm_page_project(wm_store_view *v, const char *project,
                      const wm_remote_file *remote, size_t nremote,
                      const wm_simplepage *up, enum wm_page_format fmt,
                      int *found, size_t *len);

/* The flat page of every wheel held locally or by live peers, or of
 * PROJECT's when not NULL (/links/). */
char *wm_page_links(wm_store_view *v, const char *project,
                    const wm_remote_file *remote, size_t nremote, size_t *len);

/* JSON list of files with their holders, optionally of one project
 * (/api/files). */
char *wm_page_files_json(wm_node *node, wm_store_view *v, const char *project,
                         const wm_remote_file *remote, size_t nremote,
                         size_t *len);

/* JSON for `wheelmesh status` (/api/status). */
char *wm_page_status(wm_node *node, wm_store_view *v, wm_cluster *cluster,
                     size_t *len);

/* Prometheus text exposition (/metrics). */
char *wm_page_metrics(wm_node *node, wm_store_view *v, wm_cluster *cluster,
                      size_t *len);

/* The JSON answer to a successful PUT. */
char *wm_page_put_result(const wm_file_info *info, size_t *len);

#endif
