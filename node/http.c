/*
 * The HTTP front. libmicrohttpd runs a thread per connection; a handler
 * only reads LMDB through a store view and hands writes to the node loop.
 * Wheels are answered with an iovec response that points into the LMDB map,
 * so the bytes go from the page cache to the socket without a copy; the
 * view (a read transaction) stays open until MHD frees the response.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "hash.h"
#include "log.h"
#include "pages.h"
#include "wheelname.h"
#include "wheelzip.h"

#define CT_JSON  "application/vnd.pypi.simple.v1+json"
#define CT_HTML1 "application/vnd.pypi.simple.v1+html"
#define CT_TEXT  "text/plain; charset=utf-8"

struct wm_http {
    struct MHD_Daemon *daemon;
    wm_node *node;
};

/* The per-request state of everything but a PUT: "seen, answer now". */
static char request_seen;

/* What a PUT accumulates while its body arrives. */
struct put_state {
    wm_wheelname name;
    int fd; /* unlinked temp file in <data_dir>, -1 once closed */
    wm_sha256 *hash;
    uint64_t size;
    unsigned status; /* non-zero: refuse with this once the body ends */
    const char *why;
};

/* --- responses */

static enum MHD_Result
queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO;
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A one-line plain-text answer; errors always look like this. */
static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status,
                                  const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result
reply_text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
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
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_TEXT);
    return queue(c, status, r);
}

#define reply_error(c, status, ...) reply_text(c, status, "error: " __VA_ARGS__)

static enum MHD_Result
reply_redirect(struct MHD_Connection *c, const char *location)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    return queue(c, MHD_HTTP_MOVED_PERMANENTLY, r);
}

/* True when the request's If-None-Match names ETAG (or is "*"). */
static int
etag_matches(struct MHD_Connection *c, const char *etag)
{
    const char *inm = MHD_lookup_connection_value(
        c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);

    return inm != NULL && (strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL);
}

/* Sends a blob (a page, metadata) with its ETag, taking the caller's
 * reference; a 304 when the client has it already. */
static enum MHD_Result
reply_blob(struct MHD_Connection *c, unsigned status, wm_blob *blob,
           const char *content_type, int vary)
{
    struct MHD_Response *r;
    char etag[sizeof(blob->etag)];

    memcpy(etag, blob->etag, sizeof(etag));
    if (etag_matches(c, etag)) {
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
    return queue(c, status, r);
}

/* Sends a page rendered here (taking BODY, which may be NULL when the
 * rendering failed). */
static enum MHD_Result
reply_page(struct MHD_Connection *c, unsigned status, char *body, size_t len,
           const char *content_type, int vary)
{
    wm_blob *blob = body != NULL ? wm_blob_new(body, len) : NULL;

    free(body);
    if (blob == NULL)
        return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                           "cannot render the page");
    return reply_blob(c, status, blob, content_type, vary);
}

/* --- content negotiation (PEP 691) */

struct media {
    const char *type;
    enum wm_page_format fmt;
    const char *content_type;
};

static const struct media medias[] = {
    {"application/vnd.pypi.simple.v1+json", WM_PAGE_JSON, CT_JSON},
    {"application/vnd.pypi.simple.latest+json", WM_PAGE_JSON, CT_JSON},
    {"application/vnd.pypi.simple.v1+html", WM_PAGE_HTML, CT_HTML1},
    {"application/vnd.pypi.simple.latest+html", WM_PAGE_HTML, CT_HTML1},
    {"text/html", WM_PAGE_HTML, "text/html; charset=utf-8"},
    {"*/*", WM_PAGE_HTML, "text/html; charset=utf-8"},
};

/* Picks the served media type with the highest q in ACCEPT (NULL or empty:
 * HTML). Returns NULL when nothing offered is acceptable (406). */
static const struct media *
negotiate(const char *accept)
{
    const struct media *best = NULL;
    double best_q = 0;
    const char *p = accept;

    if (accept == NULL || accept[strspn(accept, " \t")] == '\0')
        return &medias[4];
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *end = p + len, *semi;
        size_t tlen;
        double q = 1.0;

        p += strspn(p, " \t");
        semi = memchr(p, ';', (size_t)(end - p));
        tlen = (size_t)((semi != NULL ? semi : end) - p);
        while (tlen > 0 && (p[tlen - 1] == ' ' || p[tlen - 1] == '\t'))
            tlen--;
        if (semi != NULL) {
            const char *qp = strstr(semi, "q=");
            if (qp != NULL && qp < end)
                q = strtod(qp + 2, NULL);
        }
        for (size_t i = 0; i < sizeof(medias) / sizeof(medias[0]); i++) {
            if (strlen(medias[i].type) == tlen &&
                strncasecmp(p, medias[i].type, tlen) == 0 && q > best_q) {
                best = &medias[i];
                best_q = q;
            }
        }
        p = *end == ',' ? end + 1 : end;
    }
    return best;
}

/* --- pages */

/* Splits "/PREFIX/<name>/" routes: returns the name part of PATH after
 * PREFIX (e.g. "/simple/") into OUT, or "" for the prefix itself. Returns
 * 0, or 1 when the trailing slash is missing, or -1 when PATH holds more
 * segments or the name is too long. */
static int
route_name(const char *path, const char *prefix, char *out, size_t outsz)
{
    const char *name = path + strlen(prefix);
    size_t len = strcspn(name, "/");

    if (len >= outsz)
        return -1;
    memcpy(out, name, len);
    out[len] = '\0';
    if (name[len] == '\0')
        return len == 0 ? 0 : 1;
    return name[len + 1] == '\0' ? 0 : -1;
}

/* Checks NAME and answers a redirect to its normalised form when it is
 * not. Returns 1 when the caller should go on, 0 when a reply was queued
 * (into *RET). */
static int
check_project(struct MHD_Connection *c, const char *prefix, const char *name,
              int missing_slash, enum MHD_Result *ret)
{
    char norm[WM_PROJECT_MAX + 1], location[WM_PROJECT_MAX + 16];

    if (wm_project_normalize(name, norm, sizeof(norm)) != 0) {
        *ret = reply_error(c, MHD_HTTP_BAD_REQUEST, "bad project name");
        return 0;
    }
    if (missing_slash || strcmp(norm, name) != 0) {
        snprintf(location, sizeof(location), "%s%s/", prefix, norm);
        *ret = reply_redirect(c, location);
        return 0;
    }
    return 1;
}

/* Answers a request the loop could not serve with its status and reason. */
static enum MHD_Result
reply_failed(struct MHD_Connection *c, const wm_request *req)
{
    return reply_error(c, req->status != 0 ? req->status : 500, "%s",
                       req->why[0] != '\0' ? req->why : "failed");
}

static enum MHD_Result
serve_simple(wm_http *h, struct MHD_Connection *c, const char *path)
{
    char project[WM_PROJECT_MAX + 1];
    const struct media *m;
    wm_store_view *v;
    wm_request req;
    enum MHD_Result ret;
    char *body;
    size_t len = 0;
    int rs;

    rs = route_name(path, "/simple/", project, sizeof(project));
    if (rs < 0)
        return reply_error(c, MHD_HTTP_NOT_FOUND, "no such page");
    if (project[0] != '\0' &&
        !check_project(c, "/simple/", project, rs == 1, &ret))
        return ret;
    m = negotiate(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_ACCEPT));
    if (m == NULL)
        return reply_error(c, MHD_HTTP_NOT_ACCEPTABLE,
                           "this index serves " CT_JSON ", " CT_HTML1
                           " and text/html");
    if (project[0] == '\0') { /* local projects only: upstream's list is
                               * huge and pip never reads it */
        if (wm_store_view_open(h->node->store, &v) != 0)
            return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "store busy");
        body = wm_page_root(v, m->fmt, &len);
        wm_store_view_close(&v);
        return reply_page(c, MHD_HTTP_OK, body, len, m->content_type, 1);
    }
    /* The loop keeps the project's prepared page, merged with upstream. */
    memset(&req, 0, sizeof(req));
    req.op = WM_OP_PAGE;
    req.json = m->fmt == WM_PAGE_JSON;
    snprintf(req.project, sizeof(req.project), "%s", project);
    if (wm_node_call(h->node, &req) != 0)
        return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "node is stopping");
    if (req.blob == NULL)
        return reply_failed(c, &req);
    return reply_blob(c, MHD_HTTP_OK, req.blob, m->content_type, 1);
}

/* Asks the loop for a page only it can render (it holds the cluster's
 * view) and sends it. */
static enum MHD_Result
serve_from_loop(wm_http *h, struct MHD_Connection *c, enum wm_op op,
                const char *project, const char *content_type)
{
    wm_request req;

    memset(&req, 0, sizeof(req));
    req.op = op;
    if (project != NULL)
        snprintf(req.project, sizeof(req.project), "%s", project);
    if (wm_node_call(h->node, &req) != 0)
        return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "node is stopping");
    if (req.blob == NULL)
        return reply_failed(c, &req);
    return reply_blob(c, MHD_HTTP_OK, req.blob, content_type, 0);
}

static enum MHD_Result
serve_links(wm_http *h, struct MHD_Connection *c, const char *path)
{
    char project[WM_PROJECT_MAX + 1];
    enum MHD_Result ret;
    int rs;

    rs = route_name(path, "/links/", project, sizeof(project));
    if (rs < 0)
        return reply_error(c, MHD_HTTP_NOT_FOUND, "no such page");
    if (project[0] != '\0' &&
        !check_project(c, "/links/", project, rs == 1, &ret))
        return ret;
    return serve_from_loop(h, c, WM_OP_LINKS, project,
                           "text/html; charset=utf-8");
}

/* --- wheels */

/* Parses a single "bytes=" range against SIZE into [*FIRST, *LAST].
 * Returns 0, or -1 when the header is malformed or unsatisfiable. */
static int
parse_range(const char *hdr, uint64_t size, uint64_t *first, uint64_t *last)
{
    char *end;
    unsigned long long a, b;

    if (strncmp(hdr, "bytes=", 6) != 0 || size == 0)
        return -1;
    hdr += 6;
    if (*hdr == '-') { /* the last N bytes */
        if (hdr[1] < '0' || hdr[1] > '9')
            return -1;
        errno = 0;
        b = strtoull(hdr + 1, &end, 10);
        if (errno != 0 || *end != '\0' || b == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 0;
    }
    if (*hdr < '0' || *hdr > '9')
        return -1;
    errno = 0;
    a = strtoull(hdr, &end, 10);
    if (errno != 0 || *end != '-' || a >= size)
        return -1;
    if (end[1] == '\0') {
        b = size - 1;
    } else {
        if (end[1] < '0' || end[1] > '9')
            return -1;
        b = strtoull(end + 1, &end, 10);
        if (errno != 0 || *end != '\0' || b < a)
            return -1;
        if (b >= size)
            b = size - 1;
    }
    *first = a;
    *last = b;
    return 0;
}

static void
close_view(void *cls)
{
    wm_store_view *v = cls;
    wm_store_view_close(&v);
}

/* Builds an iovec response over bytes [FIRST, LAST] of the stored wheel,
 * taking ownership of V (closed when MHD frees the response). Returns NULL
 * (V closed) on failure. */
static struct MHD_Response *
wheel_response(wm_store_view *v, const wm_file_info *f, uint64_t first,
               uint64_t last)
{
    uint32_t c0 = (uint32_t)(first / WM_CHUNK_SIZE);
    uint32_t c1 = (uint32_t)(last / WM_CHUNK_SIZE);
    struct MHD_IoVec *iov = calloc(c1 - c0 + 1, sizeof(*iov));
    struct MHD_Response *r = NULL;

    if (iov == NULL)
        goto out;
    for (uint32_t i = c0; i <= c1; i++) {
        uint64_t base = (uint64_t)i * WM_CHUNK_SIZE;
        uint64_t lo = first > base ? first - base : 0;
        uint64_t hi = last + 1 - base;
        const void *data;
        size_t len;

        if (wm_store_chunk(v, f->sha256, i, &data, &len) != 0)
            goto out;
        if (hi > len)
            hi = len;
        if (lo >= hi) /* a chunk shorter than the record says */
            goto out;
        iov[i - c0].iov_base = (const char *)data + lo;
        iov[i - c0].iov_len = (size_t)(hi - lo);
    }
    r = MHD_create_response_from_iovec(iov, c1 - c0 + 1, close_view, v);
out:
    free(iov);
    if (r == NULL)
        wm_store_view_close(&v);
    return r;
}

/* Sends the METADATA of local file F from the map; takes V. */
static enum MHD_Result
serve_local_meta(struct MHD_Connection *c, wm_store_view *v,
                 const wm_file_info *f)
{
    char hex[WM_SHA256_HEX], etag[72];
    struct MHD_Response *r;
    struct MHD_IoVec one;
    const void *meta;
    size_t mlen;

    if (wm_store_metadata(v, f->sha256, &meta, &mlen) != 0) {
        wm_store_view_close(&v);
        return reply_error(c, MHD_HTTP_NOT_FOUND, "no metadata stored");
    }
    one.iov_base = meta;
    one.iov_len = mlen;
    r = MHD_create_response_from_iovec(&one, 1, close_view, v);
    if (r == NULL) {
        wm_store_view_close(&v);
        return MHD_NO;
    }
    wm_hex_encode(f->meta_sha256, WM_SHA256_LEN, hex);
    snprintf(etag, sizeof(etag), "\"%s\"", hex);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_TEXT);
    return queue(c, MHD_HTTP_OK, r);
}

/* Sends local wheel F (or the range asked for) from the map; takes V. */
static enum MHD_Result
serve_local_wheel(wm_http *h, struct MHD_Connection *c, wm_store_view *v,
                  const wm_file_info *f)
{
    wm_counters *cnt = &h->node->counters;
    char hex[WM_SHA256_HEX], etag[72], cr[80];
    struct MHD_Response *r;
    uint64_t first = 0, last = f->size - 1;
    const char *range;

    wm_hex_encode(f->sha256, WM_SHA256_LEN, hex);
    snprintf(etag, sizeof(etag), "\"%s\"", hex);
    if (etag_matches(c, etag)) {
        wm_store_view_close(&v);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
        return queue(c, MHD_HTTP_NOT_MODIFIED, r);
    }
    range =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    if (range != NULL && parse_range(range, f->size, &first, &last) != 0) {
        static const char why[] =
            "error: bad or unsatisfiable Range (one range of bytes=FIRST-LAST, "
            "FIRST- or -SUFFIX within the file)\n";
        wm_store_view_close(&v);
        r = MHD_create_response_from_buffer(sizeof(why) - 1, (void *)why,
                                            MHD_RESPMEM_PERSISTENT);
        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, f->size);
        if (r != NULL) {
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CT_TEXT);
        }
        return queue(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
    }
    r = wheel_response(v, f, first, last);
    if (r == NULL)
        return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                           "stored file is damaged");
    atomic_fetch_add(&cnt->hits_local, 1);
    atomic_fetch_add(&cnt->bytes_served, last - first + 1);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
                            "public, max-age=31536000, immutable");
    if (range == NULL)
        return queue(c, MHD_HTTP_OK, r);
    snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first,
             last, f->size);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    return queue(c, MHD_HTTP_PARTIAL_CONTENT, r);
}

/* A client reading a download while it arrives. */
struct dl_stream {
    wm_download *dl;
    void *sub; /* progress notices for this sha256 */
};

static ssize_t
dl_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct dl_stream *st = cls;
    wm_download *dl = st->dl;

    for (;;) {
        int state = atomic_load(&dl->state);
        uint64_t avail = wm_download_available(dl);

        if (state == WM_DL_FAILED)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (pos < avail) {
            size_t n = avail - pos < max ? (size_t)(avail - pos) : max;
            ssize_t got = pread(dl->fd, buf, n, (off_t)pos);
            return got > 0 ? got : MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (state == WM_DL_VERIFIED)
            return MHD_CONTENT_READER_END_OF_STREAM;
        /* Blocking is fine: this connection has a thread of its own. */
        wm_node_progress_wait(st->sub, 200);
    }
}

static void
dl_free(void *cls)
{
    struct dl_stream *st = cls;

    if (st->sub != NULL)
        zmq_close(st->sub);
    wm_download_release(st->dl);
    free(st);
}

/* Streams a download the loop started (taking DL) once upstream answered. */
static enum MHD_Result
serve_download(wm_http *h, struct MHD_Connection *c, wm_download *dl)
{
    struct dl_stream *st = calloc(1, sizeof(*st));
    int64_t waited = 0, limit = (int64_t)h->node->cfg->timeout_s * 1000 + 1000;
    struct MHD_Response *r;
    uint64_t total;
    char etag[72], hex[WM_SHA256_HEX];

    if (st == NULL) {
        wm_download_release(dl);
        return MHD_NO;
    }
    st->dl = dl;
    st->sub = wm_node_progress_socket(h->node, dl->sha256);
    /* Wait for the size (upstream's headers), so the client gets a
     * Content-Length; a wheel whose size comes only with its last chunk
     * (pulled from a peer still downloading it) is sent chunked as soon
     * as bytes arrive. */
    while (atomic_load(&dl->total) == WM_SIZE_UNKNOWN &&
           atomic_load(&dl->received) == 0 &&
           atomic_load(&dl->state) == WM_DL_RUNNING && waited < limit) {
        wm_node_progress_wait(st->sub, 100);
        waited += 100;
    }
    if (atomic_load(&dl->state) == WM_DL_FAILED) {
        dl_free(st);
        atomic_fetch_add(&h->node->counters.misses, 1);
        return reply_error(c, MHD_HTTP_BAD_GATEWAY,
                           "the upstream download failed (see the node log)");
    }
    total = atomic_load(&dl->total);
    r = MHD_create_response_from_callback(
        total == WM_SIZE_UNKNOWN ? MHD_SIZE_UNKNOWN : total, 256 << 10, dl_read,
        st, dl_free);
    if (r == NULL) {
        dl_free(st);
        return MHD_NO;
    }
    atomic_fetch_add(dl->source == WM_SOURCE_PEER
                         ? &h->node->counters.hits_peer
                         : &h->node->counters.hits_upstream,
                     1);
    if (total != WM_SIZE_UNKNOWN)
        atomic_fetch_add(&h->node->counters.bytes_served, total);
    wm_hex_encode(dl->sha256, WM_SHA256_LEN, hex);
    snprintf(etag, sizeof(etag), "\"%s\"", hex);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/octet-stream");
    return queue(c, MHD_HTTP_OK, r);
}

/* Serves /files/<sha256>/<filename> and its ".metadata" companion: from
 * the store, else through the loop from upstream. */
static enum MHD_Result
serve_file(wm_http *h, struct MHD_Connection *c, const char *rest)
{
    char hex[WM_SHA256_HEX], filename[WM_WHEELNAME_MAX + 16];
    const char *slash = strchr(rest, '/');
    uint8_t sha[WM_SHA256_LEN];
    wm_request req;
    wm_store_view *v;
    wm_file_info f;
    size_t flen;
    int is_meta = 0, found;

    if (slash == NULL || slash - rest != 64)
        return reply_error(c, MHD_HTTP_BAD_REQUEST,
                           "bad sha256 in the URL (want 64 hex digits)");
    memcpy(hex, rest, 64);
    hex[64] = '\0';
    if (wm_hex_decode(hex, sha, sizeof(sha)) != 0)
        return reply_error(c, MHD_HTTP_BAD_REQUEST,
                           "bad sha256 in the URL (want 64 hex digits)");
    flen = strlen(slash + 1);
    if (flen >= sizeof(filename))
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "file name too long");
    memcpy(filename, slash + 1, flen + 1);
    if (flen > 9 && strcmp(filename + flen - 9, ".metadata") == 0) {
        filename[flen - 9] = '\0';
        is_meta = 1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (wm_store_view_open(h->node->store, &v) != 0)
            return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "store busy");
        found = wm_store_get(v, sha, &f) == 0;
        if (found && strcmp(f.filename, filename) == 0)
            return is_meta ? serve_local_meta(c, v, &f)
                           : serve_local_wheel(h, c, v, &f);
        wm_store_view_close(&v);
        if (found) {
            atomic_fetch_add(&h->node->counters.misses, 1);
            return reply_error(c, MHD_HTTP_NOT_FOUND, "no such file");
        }
        memset(&req, 0, sizeof(req));
        req.op = is_meta ? WM_OP_META : WM_OP_FETCH;
        memcpy(req.sha256, sha, WM_SHA256_LEN);
        snprintf(req.filename, sizeof(req.filename), "%s", filename);
        if (wm_node_call(h->node, &req) != 0)
            return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                               "node is stopping");
        if (req.result == -EEXIST)
            continue; /* stored meanwhile: serve it from the map */
        if (req.blob != NULL)
            return reply_blob(c, MHD_HTTP_OK, req.blob, CT_TEXT, 0);
        if (req.download != NULL)
            return serve_download(h, c, req.download);
        if (req.status == MHD_HTTP_NOT_FOUND)
            atomic_fetch_add(&h->node->counters.misses, 1);
        return reply_failed(c, &req);
    }
    return reply_error(c, MHD_HTTP_NOT_FOUND, "no such file");
}

/* --- PUT /files/<filename> */

static int
client_allowed(wm_http *h, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;
    const wm_config *cfg = h->node->cfg;
    const uint8_t *addr;
    int family;

    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        family = AF_INET;
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        family = AF_INET6;
        addr = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    } else {
        return 0;
    }
    for (size_t i = 0; i < cfg->nallow_put_from; i++)
        if (wm_cidr_match(&cfg->allow_put_from[i], family, addr))
            return 1;
    return 0;
}

static void
put_state_free(struct put_state *ps)
{
    if (ps == NULL)
        return;
    if (ps->fd >= 0)
        close(ps->fd);
    wm_sha256_destroy(&ps->hash);
    free(ps);
}

/* First call of a PUT: checks everything knowable from the headers. */
static enum MHD_Result
put_begin(wm_http *h, struct MHD_Connection *c, const char *filename,
          void **con_cls)
{
    const char *why = NULL, *clen;
    struct put_state *ps;
    unsigned long long declared;
    char *end;

    if (!client_allowed(h, c)) {
        atomic_fetch_add(&h->node->counters.put_rejected, 1);
        return reply_error(c, MHD_HTTP_FORBIDDEN,
                           "PUT is not allowed from this address "
                           "(http.allow_put_from)");
    }
    ps = calloc(1, sizeof(*ps));
    if (ps == NULL)
        return MHD_NO;
    ps->fd = -1;
    if (wm_wheelname_parse(filename, &ps->name, &why) != 0) {
        free(ps);
        atomic_fetch_add(&h->node->counters.put_rejected, 1);
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "bad wheel filename: %s",
                           why);
    }
    clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen != NULL) {
        errno = 0;
        declared = strtoull(clen, &end, 10);
        if (errno == 0 && *end == '\0' && declared > h->node->cfg->max_size) {
            free(ps);
            atomic_fetch_add(&h->node->counters.put_rejected, 1);
            return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                               "wheel is larger than cache.max_size");
        }
    }
    ps->hash = wm_sha256_new();
    ps->fd = wm_node_spool(h->node);
    if (ps->hash == NULL || ps->fd < 0) {
        wm_error("http: cannot open a spool file in %s",
                 h->node->cfg->data_dir);
        put_state_free(ps);
        return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                           "cannot spool the upload");
    }
    *con_cls = ps;
    return MHD_YES;
}

/* A piece of the body: spooled and hashed, or dropped once refused. */
static void
put_data(wm_http *h, struct put_state *ps, const char *data, size_t len)
{
    if (ps->status != 0)
        return;
    ps->size += len;
    if (ps->size > h->node->cfg->max_size) {
        ps->status = MHD_HTTP_CONTENT_TOO_LARGE;
        ps->why = "wheel is larger than cache.max_size";
        return;
    }
    wm_sha256_update(ps->hash, data, len);
    while (len > 0) {
        ssize_t n = write(ps->fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ps->status = MHD_HTTP_INSUFFICIENT_STORAGE;
            ps->why = "cannot spool the upload (disk full?)";
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

/* The body is complete: check the wheel, then have the loop store it. */
static enum MHD_Result
put_end(wm_http *h, struct MHD_Connection *c, struct put_state *ps)
{
    wm_counters *cnt = &h->node->counters;
    char fdpath[64], *meta = NULL, *body;
    const char *why = NULL;
    wm_request job;
    wm_store_view *v;
    uint8_t existing[WM_SHA256_LEN];
    size_t meta_len = 0, blen = 0;
    int found;

    if (ps->status != 0) {
        atomic_fetch_add(&cnt->put_rejected, 1);
        return reply_error(c, ps->status, "%s", ps->why);
    }
    memset(&job, 0, sizeof(job));
    job.op = WM_OP_PUT;
    snprintf(job.info.filename, sizeof(job.info.filename), "%s",
             ps->name.filename);
    snprintf(job.info.project, sizeof(job.info.project), "%s",
             ps->name.project);
    wm_sha256_final(ps->hash, job.info.sha256);
    job.info.size = ps->size;

    /* libzip wants a path; the spool file has none, but /proc gives one. */
    snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", ps->fd);
    if (wm_wheelzip_check(fdpath, &ps->name, &meta, &meta_len, &why) != 0) {
        atomic_fetch_add(&cnt->put_rejected, 1);
        wm_info("http: refused PUT of %s: %s", ps->name.filename, why);
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "%s: %s", ps->name.filename,
                           why);
    }

    /* Already there? Same bytes are fine; other bytes under the same name
     * are a conflict, as on any index. */
    if (wm_store_view_open(h->node->store, &v) != 0) {
        free(meta);
        return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "store busy");
    }
    found = wm_store_find_name(v, ps->name.filename, existing) == 0;
    wm_store_view_close(&v);
    if (found && memcmp(existing, job.info.sha256, WM_SHA256_LEN) != 0) {
        free(meta);
        atomic_fetch_add(&cnt->put_rejected, 1);
        return reply_error(c, MHD_HTTP_CONFLICT,
                           "a different wheel with this filename is stored");
    }
    if (!found) {
        job.fd = ps->fd;
        job.meta = meta;
        job.meta_len = meta_len;
        wm_sha256_digest(meta, meta_len, job.info.meta_sha256);
        job.info.meta_size = (uint32_t)meta_len;
        if (wm_node_call(h->node, &job) != 0) {
            free(meta);
            return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                               "node is stopping");
        }
    }
    free(meta);
    switch (found ? -EEXIST : job.result) {
    case 0:
        atomic_fetch_add(&cnt->puts, 1);
        wm_info("http: stored %s (%" PRIu64 " bytes)", job.info.filename,
                job.info.size);
        body = wm_page_put_result(&job.info, &blen);
        return reply_page(c, MHD_HTTP_CREATED, body, blen, "application/json",
                          0);
    case -EEXIST:
        body = wm_page_put_result(&job.info, &blen);
        return reply_page(c, MHD_HTTP_OK, body, blen, "application/json", 0);
    case -EBUSY:
        atomic_fetch_add(&cnt->put_rejected, 1);
        return reply_error(c, MHD_HTTP_CONFLICT,
                           "a different wheel with this filename is stored");
    case -ENOSPC:
        atomic_fetch_add(&cnt->put_rejected, 1);
        return reply_error(c, MHD_HTTP_INSUFFICIENT_STORAGE,
                           "the store is full (cache.map_size)");
    default:
        atomic_fetch_add(&cnt->put_rejected, 1);
        return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                           "cannot store the wheel");
    }
}

/* --- dispatch */

static enum MHD_Result
serve_api(wm_http *h, struct MHD_Connection *c, const char *path)
{
    const char *arg;
    char norm[WM_PROJECT_MAX + 1] = "";

    if (strcmp(path, "/api/status") == 0)
        return serve_from_loop(h, c, WM_OP_STATUS, NULL, "application/json");
    if (strcmp(path, "/metrics") == 0)
        return serve_from_loop(h, c, WM_OP_METRICS, NULL,
                               "text/plain; version=0.0.4; charset=utf-8");
    arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "project");
    if (arg != NULL && wm_project_normalize(arg, norm, sizeof(norm)) != 0)
        return reply_error(c, MHD_HTTP_BAD_REQUEST, "bad project name");
    return serve_from_loop(h, c, WM_OP_FILES, norm, "application/json");
}

static int
is_read(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
           strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

static enum MHD_Result
method_not_allowed(struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen("error: method not allowed\n"), "error: method not allowed\n",
        MHD_RESPMEM_PERSISTENT);

    if (r != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    return queue(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
    wm_http *h = cls;
    int is_put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;

    if (*con_cls == NULL) { /* the headers are in */
        atomic_fetch_add(&h->node->counters.requests, 1);
        wm_debug("http: %s %s", method, url);
        if (is_put && strncmp(url, "/files/", 7) == 0) {
            if (strchr(url + 7, '/') != NULL)
                return reply_error(c, MHD_HTTP_BAD_REQUEST,
                                   "bad wheel filename: path separator");
            return put_begin(h, c, url + 7, con_cls);
        }
        /* Answer on the next call: MHD 0.9.75 closes the connection of a
         * response queued on the first one, and pip then reconnects for
         * every request. */
        *con_cls = &request_seen;
        return MHD_YES;
    }
    if (*con_cls != &request_seen) { /* a PUT body in progress, or its end */
        struct put_state *ps = *con_cls;
        if (*upload_data_size > 0) {
            put_data(h, ps, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return MHD_YES;
        }
        return put_end(h, c, ps);
    }
    if (*upload_data_size > 0) { /* a body nobody asked for */
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (strncmp(url, "/files/", 7) == 0) {
        const char *rest = url + 7;
        if (!is_read(method))
            return method_not_allowed(c, "GET, HEAD, PUT");
        return serve_file(h, c, rest);
    }
    if (!is_read(method))
        return method_not_allowed(c, "GET, HEAD");
    if (strcmp(url, "/healthz") == 0)
        return reply_text(c, MHD_HTTP_OK, "ok");
    if (strcmp(url, "/") == 0)
        return reply_text(c, MHD_HTTP_OK,
                          "wheelmesh %s: pip --index-url %ssimple/ or "
                          "--find-links %slinks/; /api/status, /metrics",
                          WM_VERSION, h->node->url, h->node->url);
    if (strcmp(url, "/simple") == 0)
        return reply_redirect(c, "/simple/");
    if (strncmp(url, "/simple/", 8) == 0)
        return serve_simple(h, c, url);
    if (strcmp(url, "/links") == 0)
        return reply_redirect(c, "/links/");
    if (strncmp(url, "/links/", 7) == 0)
        return serve_links(h, c, url);
    if (strcmp(url, "/api/status") == 0 || strcmp(url, "/api/files") == 0 ||
        strcmp(url, "/metrics") == 0)
        return serve_api(h, c, url);
    return reply_error(c, MHD_HTTP_NOT_FOUND, "no such page");
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    if (*con_cls != &request_seen)
        put_state_free(*con_cls);
    *con_cls = NULL;
}

/* Decodes %XX in the path as MHD does, except that a path holding an
 * encoded NUL stays encoded: decoded, it would cut the string short and
 * "x.whl%00.txt" would pass for "x.whl". The '%' left in it then fails
 * every name check. */
static size_t
on_unescape(void *cls, struct MHD_Connection *c, char *uri)
{
    if (strstr(uri, "%00") != NULL)
        return strlen(uri);
    return MHD_http_unescape(uri);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];

    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    wm_warn("http: %s", line);
}

/* --- start and stop */

/* Resolves "HOST:PORT" or "[V6]:PORT" into SS. Returns 0 or -EINVAL. */
static int
resolve_listen(const char *listen, struct sockaddr_storage *ss,
               socklen_t *sslen)
{
    char host[256];
    const char *port;
    struct addrinfo hints, *res = NULL;
    size_t hlen;

    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        hlen = (size_t)(close - listen - 1);
        port = close + 2;
        listen++;
    } else {
        port = strrchr(listen, ':');
        if (port == NULL)
            return -EINVAL;
        hlen = (size_t)(port - listen);
        port++;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return -EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int
wm_http_start(wm_http **out, wm_node *node, const char **why)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    const union MHD_DaemonInfo *info;
    char host[INET6_ADDRSTRLEN];
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    wm_http *h;
    unsigned port;

    *out = NULL;
    if (resolve_listen(node->cfg->http_listen, &ss, &sslen) != 0) {
        *why = "cannot resolve http.listen";
        return -EINVAL;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    h->node = node;
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, h, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, h,
        MHD_OPTION_CONNECTION_LIMIT, 512u, MHD_OPTION_CONNECTION_TIMEOUT, 300u,
        MHD_OPTION_END);
    if (h->daemon == NULL) {
        *why = "cannot listen on http.listen (address in use?)";
        free(h);
        return -EADDRINUSE;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    port = info != NULL ? info->port : 0;
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host,
                  sizeof(host));
        snprintf(node->url, sizeof(node->url), "http://[%s]:%u/", host, port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
                  sizeof(host));
        snprintf(node->url, sizeof(node->url), "http://%s:%u/", host, port);
    }
    *out = h;
    return 0;
}

void
wm_http_stop(wm_http **h)
{
    if (h == NULL || *h == NULL)
        return;
    MHD_stop_daemon((*h)->daemon);
    free(*h);
    *h = NULL;
}
