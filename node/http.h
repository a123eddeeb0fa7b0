/*
 * The pip-facing HTTP front on libmicrohttpd: PEP 503/691 pages, flat
 * links, wheels straight from the LMDB map, PUT of new wheels, status.
 */
#ifndef WM_HTTP_H
#define WM_HTTP_H

#include "node.h"

/* Connections served at once, and how long one may take to send its
 * request line and headers. */
#define WM_HTTP_MAX_CONNECTIONS 2048
#define WM_HTTP_HEAD_DEADLINE_S 10

typedef struct wm_http wm_http;

/* Starts serving NODE on NODE->cfg->http_listen (port 0 picks one). On
 * success returns 0, sets *OUT and writes the URL into NODE->url. On
 * failure returns a negative error with *WHY set. */
int wm_http_start(wm_http **out, wm_node *node, const char **why);

/* Stops accepting, ends every connection, frees (NULL is fine), clears
 * the pointer. */
void wm_http_stop(wm_http **h);

#endif
