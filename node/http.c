/*
 * The HTTP front. libmicrohttpd runs a thread per connection; a handler
 * only reads LMDB through a store view and hands writes to the node loop.
 * Wheels are read from the LMDB map by a reader that holds no read
 * transaction longer than a second (see wheelread.h).
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
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "call.h"
#include "download.h"
#include "guard.h"
#include "hash.h"
#include "httpparse.h"
#include "log.h"
#include "pages.h"
#include "reply.h"
#include "upload.h"
#include "wheelname.h"
#include "wheelread.h"

#define IDLE_S       60 /* a connection without progress is closed */
#define KEEPALIVE_S  30 /* between a keep-alive connection's requests */
#define STACK_SIZE   (512u << 10)

struct wm_http {
    struct MHD_Daemon *daemon;
    wm_node *node;
    wm_guard *guard;
};

/* The per-request state of everything but a PUT: "seen, answer now". */
static char request_seen;

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
        *ret = wm_reply_error(c, MHD_HTTP_BAD_REQUEST, "bad project name");
        return 0;
    }
    if (missing_slash || strcmp(norm, name) != 0) {
        snprintf(location, sizeof(location), "%s%s/", prefix, norm);
        *ret = wm_reply_redirect(c, location);
        return 0;
    }
    return 1;
}

/* Answers a call the loop could not serve with its status and reason. */
static enum MHD_Result
reply_failed(struct MHD_Connection *c, const wm_call *call)
{
    return wm_reply_error(c, call->status != 0 ? call->status : 500, "%s",
                          call->why[0] != '\0' ? call->why : "failed");
}

/* Runs CALL (taking it) and answers with its blob, or its failure. */
static enum MHD_Result
reply_call(wm_http *h, struct MHD_Connection *c, wm_call *call,
           const char *content_type, int vary)
{
    enum MHD_Result ret;

    if (wm_call_run(h->node->zmq, call) != 0)
        ret =
            wm_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "node is stopping");
    else if (call->blob == NULL)
        ret = reply_failed(c, call);
    else
        ret = wm_reply_blob(c, MHD_HTTP_OK, wm_blob_ref(call->blob),
                            content_type, vary);
    wm_call_release(call);
    return ret;
}

static enum MHD_Result
serve_simple(wm_http *h, struct MHD_Connection *c, const char *path)
{
    char project[WM_PROJECT_MAX + 1];
    const wm_media *m;
    wm_store_view *v;
    wm_call *call;
    enum MHD_Result ret;
    char *body;
    size_t len = 0;
    int rs;

    rs = route_name(path, "/simple/", project, sizeof(project));
    if (rs < 0)
        return wm_reply_error(c, MHD_HTTP_NOT_FOUND, "no such page");
    if (project[0] != '\0' &&
        !check_project(c, "/simple/", project, rs == 1, &ret))
        return ret;
    m = wm_reply_negotiate(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_ACCEPT));
    if (m == NULL)
        return wm_reply_not_acceptable(c);
    if (project[0] == '\0') { /* local projects only: upstream's list is
                               * huge and pip never reads it */
        if (wm_store_view_open(h->node->store, &v) != 0)
            return wm_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "store busy");
        body = wm_page_root(v, m->fmt, &len);
        wm_store_view_close(&v);
        return wm_reply_page(c, MHD_HTTP_OK, body, len, m->content_type, 1);
    }
    /* The loop keeps the project's prepared page. */
    call = wm_call_new(WM_OP_PAGE);
    if (call == NULL)
        return MHD_NO;
    call->json = m->fmt == WM_PAGE_JSON;
    snprintf(call->project, sizeof(call->project), "%s", project);
    return reply_call(h, c, call, m->content_type, 1);
}

/* Asks the loop for a page only it can render (it holds the cluster's
 * view) and sends it. */
static enum MHD_Result
serve_from_loop(wm_http *h, struct MHD_Connection *c, enum wm_op op,
                const char *project, const char *content_type)
{
    wm_call *call = wm_call_new(op);

    if (call == NULL)
        return MHD_NO;
    if (project != NULL)
        snprintf(call->project, sizeof(call->project), "%s", project);
    return reply_call(h, c, call, content_type, 0);
}

static enum MHD_Result
serve_links(wm_http *h, struct MHD_Connection *c, const char *path)
{
    char project[WM_PROJECT_MAX + 1];
    enum MHD_Result ret;
    int rs;

    rs = route_name(path, "/links/", project, sizeof(project));
    if (rs < 0)
        return wm_reply_error(c, MHD_HTTP_NOT_FOUND, "no such page");
    if (project[0] != '\0' &&
        !check_project(c, "/links/", project, rs == 1, &ret))
        return ret;
    return serve_from_loop(h, c, WM_OP_LINKS, project,
                           "text/html; charset=utf-8");
}

/* --- wheels */

/* Sends the METADATA of local file F from the map; takes V. */
static enum MHD_Result
serve_local_meta(struct MHD_Connection *c, wm_store_view *v,
                 const wm_file_info *f)
{
    char hex[WM_SHA256_HEX], etag[72];
    struct MHD_Response *r;
    const void *meta;
    size_t mlen;

    if (wm_store_metadata(v, f->sha256, &meta, &mlen) != 0) {
        wm_store_view_close(&v);
        return wm_reply_error(c, MHD_HTTP_NOT_FOUND, "no metadata stored");
    }
    /* A copy: a slow client holds no read transaction. */
    r = MHD_create_response_from_buffer(mlen, (void *)meta,
                                        MHD_RESPMEM_MUST_COPY);
    wm_store_view_close(&v);
    if (r == NULL)
        return MHD_NO;
    wm_hex_encode(f->meta_sha256, WM_SHA256_LEN, hex);
    snprintf(etag, sizeof(etag), "\"%s\"", hex);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, WM_CT_TEXT);
    return wm_reply_queue(c, MHD_HTTP_OK, r);
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
    if (wm_reply_etag_matches(c, etag)) {
        wm_store_view_close(&v);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (r != NULL)
            MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
        return wm_reply_queue(c, MHD_HTTP_NOT_MODIFIED, r);
    }
    range =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    if (range != NULL && wm_http_range(range, f->size, &first, &last) != 0) {
        static const char why[] =
            "error: bad or unsatisfiable Range (one range of bytes=FIRST-LAST, "
            "FIRST- or -SUFFIX within the file)\n";
        wm_store_view_close(&v);
        r = MHD_create_response_from_buffer(sizeof(why) - 1, (void *)why,
                                            MHD_RESPMEM_PERSISTENT);
        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, f->size);
        if (r != NULL) {
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    WM_CT_TEXT);
        }
        return wm_reply_queue(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
    }
    wm_usage_note(h->node->usage, f->sha256);
    r = wm_wheel_response(h->node->store, v, f, first, last);
    if (r == NULL)
        return wm_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
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
        return wm_reply_queue(c, MHD_HTTP_OK, r);
    snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first,
             last, f->size);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
    return wm_reply_queue(c, MHD_HTTP_PARTIAL_CONTENT, r);
}

/* A client reading a download while it arrives. */
struct dl_stream {
    wm_download *dl;
    void *sub;         /* progress notices for this sha256 */
    uint64_t promised; /* the Content-Length sent, or WM_SIZE_UNKNOWN */
};

static ssize_t
dl_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct dl_stream *st = cls;
    /* Blocking is fine: this connection has a thread of its own, and
     * every source of the download has deadlines of its own. */
    ssize_t n = wm_download_read(st->dl, st->sub, st->promised, pos, buf, max);

    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n > 0 ? n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void
dl_free(void *cls)
{
    struct dl_stream *st = cls;

    wm_progress_close(st->sub);
    wm_download_release(st->dl);
    free(st);
}

/* Streams a download the loop started (taking DL). Headers go out with
 * the first byte or with the failure, so a fetch that fails before it
 * sent anything is an HTTP error with its reason, not a broken body. */
static enum MHD_Result
serve_download(wm_http *h, struct MHD_Connection *c, wm_download *dl)
{
    struct dl_stream *st = calloc(1, sizeof(*st));
    /* Every source has its own deadlines; this only backs them up. */
    int64_t limit = (int64_t)h->node->cfg->timeout_s * 3000 + 5000;
    struct MHD_Response *r;
    uint64_t total;
    char etag[72], hex[WM_SHA256_HEX];

    if (st == NULL) {
        wm_download_release(dl);
        return MHD_NO;
    }
    st->dl = dl;
    st->sub = wm_progress_subscribe(h->node->zmq, dl->sha256);
    if (!wm_download_wait_start(dl, st->sub, limit)) {
        enum MHD_Result ret;
        atomic_fetch_add(&h->node->counters.misses, 1);
        if (atomic_load(&dl->state) == WM_DL_FAILED)
            ret = wm_reply_error(c, dl->status != 0 ? dl->status : 502, "%s",
                                 dl->why[0] != '\0' ? dl->why
                                                    : "the download failed");
        else
            ret = wm_reply_error(c, MHD_HTTP_GATEWAY_TIMEOUT,
                                 "%s: no byte arrived in time", dl->filename);
        dl_free(st);
        return ret;
    }
    total = atomic_load(&dl->total);
    st->promised = total;
    r = MHD_create_response_from_callback(
        total == WM_SIZE_UNKNOWN ? MHD_SIZE_UNKNOWN : total, 256 << 10, dl_read,
        st, dl_free);
    if (r == NULL) {
        dl_free(st);
        return MHD_NO;
    }
    atomic_fetch_add(atomic_load(&dl->source) == WM_SOURCE_PEER
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
    return wm_reply_queue(c, MHD_HTTP_OK, r);
}

/* Serves /files/<sha256>/<filename> and its ".metadata" companion: from
 * the store, else through the loop's fetch coordinator. */
static enum MHD_Result
serve_file(wm_http *h, struct MHD_Connection *c, const char *rest)
{
    char hex[WM_SHA256_HEX], filename[WM_WHEELNAME_MAX + 16];
    const char *slash = strchr(rest, '/');
    uint8_t sha[WM_SHA256_LEN];
    enum MHD_Result ret;
    wm_store_view *v;
    wm_file_info f;
    wm_call *call;
    size_t flen;
    int is_meta = 0, found;

    if (slash == NULL || slash - rest != 64)
        return wm_reply_error(c, MHD_HTTP_BAD_REQUEST,
                              "bad sha256 in the URL (want 64 hex digits)");
    memcpy(hex, rest, 64);
    hex[64] = '\0';
    if (wm_hex_decode(hex, sha, sizeof(sha)) != 0)
        return wm_reply_error(c, MHD_HTTP_BAD_REQUEST,
                              "bad sha256 in the URL (want 64 hex digits)");
    flen = strlen(slash + 1);
    if (flen >= sizeof(filename))
        return wm_reply_error(c, MHD_HTTP_BAD_REQUEST, "file name too long");
    memcpy(filename, slash + 1, flen + 1);
    if (flen > 9 && strcmp(filename + flen - 9, ".metadata") == 0) {
        filename[flen - 9] = '\0';
        is_meta = 1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (wm_store_view_open(h->node->store, &v) != 0)
            return wm_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "store busy");
        found = wm_store_get(v, sha, &f) == 0;
        if (found && strcmp(f.filename, filename) == 0)
            return is_meta ? serve_local_meta(c, v, &f)
                           : serve_local_wheel(h, c, v, &f);
        wm_store_view_close(&v);
        if (found) {
            atomic_fetch_add(&h->node->counters.misses, 1);
            return wm_reply_error(c, MHD_HTTP_NOT_FOUND, "no such file");
        }
        call = wm_call_new(is_meta ? WM_OP_META : WM_OP_FETCH);
        if (call == NULL)
            return MHD_NO;
        memcpy(call->sha256, sha, WM_SHA256_LEN);
        snprintf(call->filename, sizeof(call->filename), "%s", filename);
        if (wm_call_run(h->node->zmq, call) != 0) {
            wm_call_release(call);
            return wm_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "node is stopping");
        }
        if (call->result == -EEXIST) {
            wm_call_release(call);
            continue; /* stored meanwhile: serve it from the map */
        }
        if (call->blob != NULL)
            ret = wm_reply_blob(c, MHD_HTTP_OK, wm_blob_ref(call->blob),
                                WM_CT_TEXT, 0);
        else if (call->download != NULL)
            ret = serve_download(h, c, wm_download_ref(call->download));
        else {
            if (call->status == MHD_HTTP_NOT_FOUND)
                atomic_fetch_add(&h->node->counters.misses, 1);
            ret = reply_failed(c, call);
        }
        wm_call_release(call);
        return ret;
    }
    return wm_reply_error(c, MHD_HTTP_NOT_FOUND, "no such file");
}

/* --- PUT /files/<filename> */

static int
client_allowed(wm_http *h, struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const wm_config *cfg = h->node->cfg;

    return ci != NULL && ci->client_addr != NULL &&
           wm_cidr_list_match(cfg->allow_put_from, cfg->nallow_put_from,
                              ci->client_addr);
}

/* First call of a PUT: checks everything knowable from the headers. */
static enum MHD_Result
put_begin(wm_http *h, struct MHD_Connection *c, const char *filename,
          void **con_cls)
{
    const char *why = NULL, *clen;
    unsigned long long declared;
    unsigned status;
    wm_upload *u;
    char *end;

    if (!client_allowed(h, c)) {
        atomic_fetch_add(&h->node->counters.put_rejected, 1);
        return wm_reply_error(c, MHD_HTTP_FORBIDDEN,
                              "PUT is not allowed from this address "
                              "(http.allow_put_from)");
    }
    clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (clen != NULL) {
        errno = 0;
        declared = strtoull(clen, &end, 10);
        if (errno == 0 && *end == '\0' && declared > h->node->cfg->max_size) {
            atomic_fetch_add(&h->node->counters.put_rejected, 1);
            return wm_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
                                  "wheel is larger than cache.max_size");
        }
    }
    u = wm_upload_begin(filename, h->node->cfg->data_dir,
                        h->node->cfg->max_size, &status, &why);
    if (u == NULL) {
        atomic_fetch_add(&h->node->counters.put_rejected, 1);
        return status == MHD_HTTP_BAD_REQUEST
                   ? wm_reply_error(c, status, "bad wheel filename: %s", why)
                   : wm_reply_error(c, status, "%s", why);
    }
    *con_cls = u;
    return MHD_YES;
}

/* A piece of the body. A refusal is answered at once: a client sending
 * more than the cap is not read to its end. */
static enum MHD_Result
put_data(wm_http *h, struct MHD_Connection *c, wm_upload *u, const char *data,
         size_t len)
{
    unsigned status = wm_upload_data(u, data, len);

    if (status == 0)
        return MHD_YES;
    atomic_fetch_add(&h->node->counters.put_rejected, 1);
    return status == MHD_HTTP_CONTENT_TOO_LARGE
               ? wm_reply_error(c, status,
                                "wheel is larger than cache.max_size")
               : wm_reply_error(c, status,
                                "cannot spool the upload (disk full?)");
}

/* The body is complete: check the wheel, then have the loop store it. */
static enum MHD_Result
put_end(wm_http *h, struct MHD_Connection *c, wm_upload *u)
{
    wm_counters *cnt = &h->node->counters;
    char why[300], *body;
    unsigned status;
    size_t blen = 0;
    enum MHD_Result ret;
    wm_call *call = wm_upload_finish(u, h->node->store, &status, why,
                                     sizeof(why));
    int rc;

    if (call == NULL) {
        atomic_fetch_add(&cnt->put_rejected, 1);
        return wm_reply_error(c, status, "%s", why);
    }
    rc = call->result;
    if (rc == 0) {
        if (wm_call_run(h->node->zmq, call) != 0) {
            wm_call_release(call);
            return wm_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                  "node is stopping");
        }
        rc = call->result;
    }
    switch (rc) {
    case 0:
        atomic_fetch_add(&cnt->puts, 1);
        wm_info("http: stored %s (%" PRIu64 " bytes)", call->info.filename,
                call->info.size);
        body = wm_page_put_result(&call->info, &blen);
        ret = wm_reply_page(c, MHD_HTTP_CREATED, body, blen, "application/json",
                            0);
        break;
    case -EEXIST:
        body = wm_page_put_result(&call->info, &blen);
        ret = wm_reply_page(c, MHD_HTTP_OK, body, blen, "application/json", 0);
        break;
    case -EBUSY:
        atomic_fetch_add(&cnt->put_rejected, 1);
        ret = wm_reply_error(c, MHD_HTTP_CONFLICT,
                             "a different wheel with this filename is stored");
        break;
    case -ENOSPC:
        atomic_fetch_add(&cnt->put_rejected, 1);
        ret = wm_reply_error(c, MHD_HTTP_INSUFFICIENT_STORAGE,
                             "the store is full (cache.map_size)");
        break;
    case -EDQUOT:
        atomic_fetch_add(&cnt->put_rejected, 1);
        ret = wm_reply_error(c, MHD_HTTP_INSUFFICIENT_STORAGE,
                             "the cache (cache.max_size) is full of wheels no "
                             "upstream page lists: prune a project or raise "
                             "the cap");
        break;
    default:
        atomic_fetch_add(&cnt->put_rejected, 1);
        ret = call->status != 0
                  ? reply_failed(c, call)
                  : wm_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                   "cannot store the wheel");
        break;
    }
    wm_call_release(call);
    return ret;
}

/* --- DELETE /api/cache */

/* Reads the one filter of a prune: all=1, project=P, older_than=DAYS or
 * to=SIZE. Returns NULL, or why the query is bad. */
static const char *
prune_filter(struct MHD_Connection *c, wm_call *call)
{
    const char *all = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                  "all");
    const char *project = MHD_lookup_connection_value(
        c, MHD_GET_ARGUMENT_KIND, "project");
    const char *days = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                   "older_than");
    const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                 "to");
    unsigned long d;
    char *end;

    if ((all != NULL) + (project != NULL) + (days != NULL) + (to != NULL) !=
        1)
        return "give one of all=1, project=NAME, older_than=DAYS, to=SIZE";
    if (all != NULL) {
        if (strcmp(all, "1") != 0)
            return "all: expected 1";
        call->prune.all = 1;
    } else if (project != NULL) {
        if (wm_project_normalize(project, call->project,
                                 sizeof(call->project)) != 0)
            return "bad project name";
    } else if (days != NULL) {
        errno = 0;
        d = strtoul(days, &end, 10);
        if (errno != 0 || end == days || *end != '\0' || d == 0 || d > 36500)
            return "older_than: expected a number of days from 1 to 36500";
        call->prune.older_than_days = (uint32_t)d;
    } else if (wm_config_parse_size(to, &call->prune.to_size) != 0 ||
               call->prune.to_size == 0) {
        return "to: expected a size such as 10GiB (more than 0)";
    }
    return NULL;
}

static enum MHD_Result
serve_prune(wm_http *h, struct MHD_Connection *c)
{
    wm_call *call;
    const char *why;

    if (!client_allowed(h, c))
        return wm_reply_error(c, MHD_HTTP_FORBIDDEN,
                              "prune is not allowed from this address "
                              "(http.allow_put_from)");
    call = wm_call_new(WM_OP_PRUNE);
    if (call == NULL)
        return MHD_NO;
    why = prune_filter(c, call);
    if (why != NULL) {
        wm_call_release(call);
        return wm_reply_error(c, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    return reply_call(h, c, call, "application/json", 0);
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
        return wm_reply_error(c, MHD_HTTP_BAD_REQUEST, "bad project name");
    return serve_from_loop(h, c, WM_OP_FILES, norm, "application/json");
}

static int
is_read(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
           strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* The connection's slot in the head guard, or -1. */
static int
guard_slot(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? (int)(intptr_t)ci->socket_context - 1 : -1;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
           const char *method, const char *version, const char *upload_data,
           size_t *upload_data_size, void **con_cls)
{
    wm_http *h = cls;
    int is_put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;

    if (*con_cls == NULL) { /* the headers are in */
        wm_guard_head(h->guard, guard_slot(c));
        atomic_fetch_add(&h->node->counters.requests, 1);
        wm_debug("http: %s %s", method, url);
        if (is_put && strncmp(url, "/files/", 7) == 0) {
            if (strchr(url + 7, '/') != NULL)
                return wm_reply_error(c, MHD_HTTP_BAD_REQUEST,
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
        wm_upload *u = *con_cls;
        if (*upload_data_size > 0) {
            size_t n = *upload_data_size;
            *upload_data_size = 0;
            return put_data(h, c, u, upload_data, n);
        }
        return put_end(h, c, u);
    }
    if (*upload_data_size > 0) { /* a body nobody asked for */
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (strncmp(url, "/files/", 7) == 0) {
        const char *rest = url + 7;
        if (!is_read(method))
            return wm_reply_method_not_allowed(c, "GET, HEAD, PUT");
        return serve_file(h, c, rest);
    }
    if (strcmp(url, "/api/cache") == 0) {
        if (strcmp(method, MHD_HTTP_METHOD_DELETE) != 0)
            return wm_reply_method_not_allowed(c, "DELETE");
        return serve_prune(h, c);
    }
    if (!is_read(method))
        return wm_reply_method_not_allowed(c, "GET, HEAD");
    if (strcmp(url, "/healthz") == 0)
        return wm_reply_text(c, MHD_HTTP_OK, "ok");
    if (strcmp(url, "/") == 0)
        return wm_reply_text(c, MHD_HTTP_OK,
                             "wheelmesh %s: pip --index-url %ssimple/ or "
                             "--find-links %slinks/; /api/status, /metrics",
                             WM_VERSION, h->node->url, h->node->url);
    if (strcmp(url, "/simple") == 0)
        return wm_reply_redirect(c, "/simple/");
    if (strncmp(url, "/simple/", 8) == 0)
        return serve_simple(h, c, url);
    if (strcmp(url, "/links") == 0)
        return wm_reply_redirect(c, "/links/");
    if (strncmp(url, "/links/", 7) == 0)
        return serve_links(h, c, url);
    if (strcmp(url, "/api/status") == 0 || strcmp(url, "/api/files") == 0 ||
        strcmp(url, "/metrics") == 0)
        return serve_api(h, c, url);
    return wm_reply_error(c, MHD_HTTP_NOT_FOUND, "no such page");
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    wm_http *h = cls;

    if (*con_cls != &request_seen) {
        wm_upload *u = *con_cls;
        wm_upload_destroy(&u);
    }
    *con_cls = NULL;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        wm_guard_next(h->guard, guard_slot(c), KEEPALIVE_S);
}

/* Connections open and close: the head guard hears of both. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    wm_http *h = cls;
    const union MHD_ConnectionInfo *ci;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context =
            (void *)(intptr_t)(ci != NULL
                                   ? wm_guard_enter(h->guard, ci->connect_fd) +
                                         1
                                   : 0);
    } else {
        wm_guard_leave(h->guard, (int)(intptr_t)*socket_context - 1);
    }
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

int
wm_http_start(wm_http **out, wm_node *node, const char **why)
{
    struct sockaddr_storage ss;
    unsigned sslen;
    const union MHD_DaemonInfo *info;
    char host[INET6_ADDRSTRLEN];
    /* poll(), not select(): a socket numbered past FD_SETSIZE (1024) is
     * served, not refused (page calls hold ZeroMQ sockets too). */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    wm_http *h;
    unsigned port;

    *out = NULL;
    if (wm_config_resolve(node->cfg->http_listen, &ss, &sslen) != 0) {
        *why = "cannot resolve http.listen";
        return -EINVAL;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        /* "[::]" takes IPv4 clients too, as a wildcard should. */
        flags |= IN6_IS_ADDR_UNSPECIFIED(a) ? MHD_USE_DUAL_STACK
                                            : MHD_USE_IPv6;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL ||
        (h->guard = wm_guard_new(WM_HTTP_HEAD_DEADLINE_S,
                                 WM_HTTP_MAX_CONNECTIONS)) == NULL) {
        free(h);
        *why = "out of memory";
        return -ENOMEM;
    }
    h->node = node;
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, h, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, h,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)WM_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_S,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)STACK_SIZE, MHD_OPTION_END);
    if (h->daemon == NULL) {
        *why = "cannot listen on http.listen (address in use?)";
        wm_guard_destroy(&h->guard);
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
    wm_guard_destroy(&(*h)->guard);
    free(*h);
    *h = NULL;
}
