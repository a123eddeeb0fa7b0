/*
 * The shapes the HTTP front's answers take: one-line text (every error
 * looks like this), redirects, blobs with their ETag (a 304 when the
 * client has it), pages rendered on the spot, and the media type a
 * /simple/ request gets under PEP 691's negotiation.
 */
#ifndef WM_REPLY_H
#define WM_REPLY_H

#include <microhttpd.h>
#include <stddef.h>

#include "download.h"
#include "pages.h"

#define WM_CT_JSON  "application/vnd.pypi.simple.v1+json"
#define WM_CT_HTML1 "application/vnd.pypi.simple.v1+html"
#define WM_CT_TEXT  "text/plain; charset=utf-8"

/* Queues R (NULL: out of memory) as C's answer with STATUS and drops the
 * caller's reference. */
enum MHD_Result wm_reply_queue(struct MHD_Connection *c, unsigned status,
                               struct MHD_Response *r);

/* A one-line plain-text answer; wm_reply_error prefixes "error: ". */
enum MHD_Result wm_reply_text(struct MHD_Connection *c, unsigned status,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define wm_reply_error(c, status, ...)                                         \
    wm_reply_text(c, status, "error: " __VA_ARGS__)

enum MHD_Result wm_reply_redirect(struct MHD_Connection *c,
                                  const char *location);

/* 405 with the methods the resource allows. */
enum MHD_Result wm_reply_method_not_allowed(struct MHD_Connection *c,
                                            const char *allow);

/* True when the request's If-None-Match names ETAG (or is "*"). */
int wm_reply_etag_matches(struct MHD_Connection *c, const char *etag);

/* Sends BLOB (a page, metadata) with its ETag, taking the caller's
 * reference; a 304 when the client has it already. VARY: the answer
 * depends on Accept. */
enum MHD_Result wm_reply_blob(struct MHD_Connection *c, unsigned status,
                              wm_blob *blob, const char *content_type,
                              int vary);

/* Sends a page rendered here, taking BODY (NULL when the rendering
 * failed: a 500). */
enum MHD_Result wm_reply_page(struct MHD_Connection *c, unsigned status,
                              char *body, size_t len, const char *content_type,
                              int vary);

/* A media type /simple/ serves, and the page format behind it. */
typedef struct wm_media {
    enum wm_page_format fmt;
    const char *content_type;
} wm_media;

/* The media type ACCEPT ranks highest, or NULL: then answer with
 * wm_reply_not_acceptable (406, saying what the client could have had). */
const wm_media *wm_reply_negotiate(const char *accept);
enum MHD_Result wm_reply_not_acceptable(struct MHD_Connection *c);

#endif
