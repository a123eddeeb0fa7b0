/*
 * HTTP answers (see reply.h). Every body is either a blob shared with the
 * loop (released by libmicrohttpd when sent), a buffer made here, or a
 * constant.
 */
#include "reply.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "httpparse.h"

enum MHD_Result
wm_reply_queue(struct MHD_Connection *c, unsigned status,
               struct MHD_Response *r)
{
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO;
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result
wm_reply_text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
    struct MHD_Response *r;
    va_list ap;
    wm_buf b;
    char *text;
    size_t len = 0;

    wm_buf_init(&b, 1024);
    va_start(ap, fmt);
    wm_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    wm_buf_adds(&b, "\n");
    text = wm_buf_steal(&b, &len);
    if (text == NULL)
        return MHD_NO;
    r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, WM_CT_TEXT);
    return wm_reply_queue(c, status, r);
}

enum MHD_Result
wm_reply_redirect(struct MHD_Connection *c, const char *location)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    return wm_reply_queue(c, MHD_HTTP_MOVED_PERMANENTLY, r);
}

int
wm_reply_etag_matches(struct MHD_Connection *c, const char *etag)
{
    const char *inm = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);

    return inm != NULL && (strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL);
}

/* Sends a blob (a page, metadata) with its ETag, taking the caller's
 * reference; a 304 when the client has it already. */
enum MHD_Result
wm_reply_blob(struct MHD_Connection *c, unsigned status, wm_blob *blob,
              const char *content_type, int vary)
{
    struct MHD_Response *r;
    char etag[sizeof(blob->etag)];

    memcpy(etag, blob->etag, sizeof(etag));
    if (wm_reply_etag_matches(c, etag)) {
        status = MHD_HTTP_NOT_MODIFIED;
        wm_blob_release(blob);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    } else {
        r = MHD_create_response_from_buffer_with_free_callback_cls(
            blob->len, blob->data,
            (MHD_ContentReaderFreeCallback)wm_blob_release, blob);
        if (r == NULL)
            wm_blob_release(blob);
    }
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (vary)
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept");
    return wm_reply_queue(c, status, r);
}

/* Sends a page rendered here (taking BODY, which may be NULL when the
 * rendering failed). */
enum MHD_Result
wm_reply_page(struct MHD_Connection *c, unsigned status, char *body, size_t len,
              const char *content_type, int vary)
{
    wm_blob *blob = body != NULL ? wm_blob_new(body, len) : NULL;

    free(body);
    if (blob == NULL)
        return wm_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                              "cannot render the page");
    return wm_reply_blob(c, status, blob, content_type, vary);
}

/* What /simple/ serves, in the order that breaks ties: HTML first, as
 * PEP 691 recommends for clients that accept anything. */
static const char *const offered[] = {
    "text/html",
    "application/vnd.pypi.simple.v1+html",
    "application/vnd.pypi.simple.latest+html",
    WM_CT_JSON,
    "application/vnd.pypi.simple.latest+json",
};

static const wm_media medias[] = {
    {WM_PAGE_HTML, "text/html; charset=utf-8"},
    {WM_PAGE_HTML, WM_CT_HTML1},
    {WM_PAGE_HTML, WM_CT_HTML1},
    {WM_PAGE_JSON, WM_CT_JSON},
    {WM_PAGE_JSON, WM_CT_JSON},
};

/* A 406 says what the client could have had; like every answer that
 * depends on Accept, it varies on it. */
enum MHD_Result
wm_reply_not_acceptable(struct MHD_Connection *c)
{
    static const char why[] = "error: this index serves " WM_CT_JSON
                              ", " WM_CT_HTML1 " and text/html\n";
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof(why) - 1, (void *)why, MHD_RESPMEM_PERSISTENT);

    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, WM_CT_TEXT);
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept");
    }
    return wm_reply_queue(c, MHD_HTTP_NOT_ACCEPTABLE, r);
}

/* The media type ACCEPT ranks highest, or NULL (406). */
const wm_media *
wm_reply_negotiate(const char *accept)
{
    int i =
        wm_http_accept(accept, offered, sizeof(offered) / sizeof(offered[0]));

    return i >= 0 ? &medias[i] : NULL;
}

enum MHD_Result
wm_reply_method_not_allowed(struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen("error: method not allowed\n"), "error: method not allowed\n",
        MHD_RESPMEM_PERSISTENT);

    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    return wm_reply_queue(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
}
