/*
 * libcurl's multi interface in the node loop's poll. Transfers live in one
 * list; a finished one is unlinked before its completion runs, so the
 * completion may start new transfers or cancel others.
 *
 * Every transfer is bounded: connecting and stalling by upstream.timeout_s,
 * bodies in memory by their cap and a total deadline, wheels by their cap
 * (the size the index stated, else cache.max_size).
 */
#include "upstream.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "simplepage.h"

#define MAX_SOCKETS   1024
#define PROGRESS_STEP (256u << 10)

struct wm_xfer {
    wm_xfer *next;
    wm_upstream *u;
    CURL *easy;
    struct curl_slist *headers;
    char url[WM_URL_MAX + 16];
    wm_xfer_fn done;
    void *arg;
    /* into memory */
    wm_buf body;
    /* into a download */
    wm_download *dl;
    wm_sha256 *hash;
    uint64_t cap, resume, skip, published;
    int started, too_big, write_failed;
};

struct wm_upstream {
    wm_node *node;
    void *pub;
    CURLM *multi;
    wm_xfer *xfers;
    struct {
        curl_socket_t fd;
        int what;
    } socks[MAX_SOCKETS];
    size_t nsocks;
    int64_t deadline_ms; /* libcurl's timer, monotonic; -1: none */
};

static void
xfer_free(wm_xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL) {
        curl_multi_remove_handle(x->u->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    wm_buf_free(&x->body);
    wm_sha256_destroy(&x->hash);
    wm_download_release(x->dl);
    free(x);
}

static void
xfer_unlink(wm_upstream *u, wm_xfer *x)
{
    for (wm_xfer **p = &u->xfers; *p != NULL; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            return;
        }
    }
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
    wm_xfer *x = arg;

    return wm_buf_add(&x->body, data, size * n) == 0 ? size * n : 0;
}

/* The first bytes of a wheel: the headers are in. Returns 0, or -1 to
 * stop (over the cap). */
static int
file_headers(wm_xfer *x)
{
    curl_off_t cl = -1;
    long code = 0;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    if (x->resume > 0 && code != 206)
        x->skip = x->resume; /* the whole file again: drop what we have */
    if (cl >= 0 && code == 206)
        cl += (curl_off_t)x->resume;
    if (cl > (curl_off_t)x->cap) {
        x->too_big = 1;
        return -1;
    }
    if (cl >= 0) {
        atomic_store(&x->dl->total, (uint64_t)cl);
        wm_progress_publish(x->u->pub, x->dl->sha256);
    }
    return 0;
}

static size_t
on_file_data(char *data, size_t size, size_t n, void *arg)
{
    wm_xfer *x = arg;
    wm_download *dl = x->dl;
    uint64_t got = atomic_load(&dl->received), len = size * n;
    const char *p = data;

    if (!x->started) {
        x->started = 1;
        if (file_headers(x) != 0)
            return 0;
    }
    if (x->skip > 0) {
        uint64_t k = len < x->skip ? len : x->skip;
        p += k;
        len -= k;
        x->skip -= k;
    }
    if (got + len > x->cap) {
        x->too_big = 1;
        return 0;
    }
    while (len > 0) {
        ssize_t w = pwrite(dl->fd, p, len, (off_t)got);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            x->write_failed = 1;
            return 0;
        }
        wm_sha256_update(x->hash, p, (size_t)w);
        p += w;
        got += (uint64_t)w;
        len -= (size_t)w;
    }
    atomic_store(&dl->received, got);
    atomic_fetch_add(&x->u->node->counters.upstream_bytes, size * n);
    if (got - x->published >= PROGRESS_STEP) {
        x->published = got;
        wm_progress_publish(x->u->pub, dl->sha256);
    }
    return size * n;
}

/* A transfer of URL with the options every upstream request shares. */
static wm_xfer *
xfer_new(wm_upstream *u, const char *url, wm_xfer_fn done, void *arg)
{
    const wm_config *cfg = u->node->cfg;
    wm_xfer *x = calloc(1, sizeof(*x));

    if (x == NULL)
        return NULL;
    x->u = u;
    x->done = done;
    x->arg = arg;
    snprintf(x->url, sizeof(x->url), "%s", url);
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        free(x);
        return NULL;
    }
    curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(x->easy, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "wheelmesh/" WM_VERSION);
    /* timeout_s bounds connecting and stalling, not a long download. */
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT, (long)cfg->timeout_s);
    curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(x->easy, CURLOPT_LOW_SPEED_TIME, (long)cfg->timeout_s);
    return x;
}

static wm_xfer *
xfer_start(wm_upstream *u, wm_xfer *x)
{
    if (x->headers != NULL)
        curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK) {
        xfer_free(x);
        return NULL;
    }
    x->next = u->xfers;
    u->xfers = x;
    return x;
}

wm_xfer *
wm_upstream_get(wm_upstream *u, const char *url, const char *const *headers,
                size_t cap, unsigned timeout_s, wm_xfer_fn done, void *arg)
{
    wm_xfer *x = xfer_new(u, url, done, arg);

    if (x == NULL)
        return NULL;
    wm_buf_init(&x->body, cap);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        struct curl_slist *h = curl_slist_append(x->headers, headers[i]);
        if (h == NULL) {
            xfer_free(x);
            return NULL;
        }
        x->headers = h;
    }
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_ACCEPT_ENCODING, "");
    if (timeout_s > 0)
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT, (long)timeout_s);
    return xfer_start(u, x);
}

wm_xfer *
wm_upstream_fetch(wm_upstream *u, const char *url, wm_download *dl,
                  uint64_t resume, wm_sha256 *hash, uint64_t cap,
                  wm_xfer_fn done, void *arg)
{
    wm_xfer *x = xfer_new(u, url, done, arg);

    if (x == NULL) {
        wm_sha256_destroy(&hash);
        return NULL;
    }
    x->dl = wm_download_ref(dl);
    x->hash = hash != NULL ? hash : wm_sha256_new();
    x->cap = cap;
    x->resume = resume;
    if (x->hash == NULL) {
        xfer_free(x);
        return NULL;
    }
    if (resume > 0) {
        /* A Range header of our own, not CURLOPT_RESUME_FROM: libcurl
         * fails a transfer whose server ignores the range, and the whole
         * file is just as good (its first RESUME bytes are skipped). */
        char range[64];
        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", resume);
        x->headers = curl_slist_append(NULL, range);
        if (x->headers == NULL) {
            xfer_free(x);
            return NULL;
        }
    }
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_file_data);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_FAILONERROR, 1L);
    wm_info("upstream: fetching %s from %s%s", dl->filename, url,
            resume > 0 ? " (the rest, with a Range request)" : "");
    return xfer_start(u, x);
}

void
wm_upstream_cancel(wm_upstream *u, wm_xfer *x)
{
    if (x == NULL)
        return;
    xfer_unlink(u, x);
    xfer_free(x);
}

static const char *
header_value(CURL *easy, const char *name)
{
    struct curl_header *h = NULL;

    if (curl_easy_header(easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return NULL;
    return h->value;
}

/* Fills R for X, which ended with RC. WHY is room for the reason. */
static void
result_of(wm_xfer *x, CURLcode rc, wm_xfer_result *r, char *why, size_t n)
{
    memset(r, 0, sizeof(*r));
    r->url = x->url;
    r->why = why;
    why[0] = '\0';
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (x->too_big || (x->dl == NULL && x->body.failed)) {
        r->rc = -EMSGSIZE;
        snprintf(why, n, "upstream %s: larger than expected", x->url);
    } else if (x->write_failed) {
        r->rc = -EIO;
        snprintf(why, n, "cannot write the spool file (disk full?)");
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        r->rc = -ETIMEDOUT;
        snprintf(why, n, "upstream %s: timed out", x->url);
    } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
        r->rc = -EIO;
        snprintf(why, n, "upstream %s: HTTP %ld", x->url, r->status);
    } else if (rc != CURLE_OK) {
        r->rc = -EIO;
        snprintf(why, n, "upstream %s: %s", x->url, curl_easy_strerror(rc));
    }
    if (r->rc != 0 || x->dl != NULL)
        return;
    r->body = x->body.data != NULL ? x->body.data : "";
    r->len = x->body.len;
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &r->content_type);
    curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &r->effective_url);
    r->etag = header_value(x->easy, "ETag");
    r->last_modified = header_value(x->easy, "Last-Modified");
}

/* A wheel's bytes ended: they must hash to the download's sha256. */
static void
check_hash(wm_xfer *x, wm_xfer_result *r, char *why, size_t n)
{
    uint8_t digest[WM_SHA256_LEN];
    char want[WM_SHA256_HEX], got[WM_SHA256_HEX];

    wm_sha256_final(x->hash, digest);
    if (memcmp(digest, x->dl->sha256, WM_SHA256_LEN) == 0)
        return;
    wm_hex_encode(x->dl->sha256, WM_SHA256_LEN, want);
    wm_hex_encode(digest, WM_SHA256_LEN, got);
    atomic_fetch_add(&x->u->node->counters.hash_mismatches, 1);
    wm_error("upstream: %s: sha256 mismatch: the index says %s, the bytes "
             "hash to %s; not stored",
             x->dl->filename, want, got);
    r->rc = -EBADMSG;
    snprintf(why, n, "upstream %s: the bytes fail their sha256", x->url);
}

static void
finish(wm_upstream *u, wm_xfer *x, CURLcode rc)
{
    wm_xfer_result r;
    char why[512];

    xfer_unlink(u, x);
    result_of(x, rc, &r, why, sizeof(why));
    if (r.rc == 0 && x->dl != NULL)
        check_hash(x, &r, why, sizeof(why));
    if (r.rc != 0 && r.rc != -EBADMSG) /* mismatches have their counter */
        atomic_fetch_add(&u->node->counters.upstream_errors, 1);
    x->done(x->arg, &r);
    xfer_free(x);
}

/* --- libcurl's sockets in the loop's poll */

static int
on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    wm_upstream *u = arg;
    size_t i;

    for (i = 0; i < u->nsocks; i++)
        if (u->socks[i].fd == fd)
            break;
    if (what == CURL_POLL_REMOVE) {
        if (i < u->nsocks)
            u->socks[i] = u->socks[--u->nsocks];
        return 0;
    }
    if (i == u->nsocks) {
        if (u->nsocks == MAX_SOCKETS)
            return -1;
        u->nsocks++;
    }
    u->socks[i].fd = fd;
    u->socks[i].what = what;
    return 0;
}

static int
on_timer(CURLM *multi, long timeout_ms, void *arg)
{
    wm_upstream *u = arg;

    u->deadline_ms = timeout_ms < 0 ? -1 : wm_now_ms() + timeout_ms;
    return 0;
}

size_t
wm_upstream_poll(void *arg, zmq_pollitem_t *items, size_t max,
                 long *timeout_ms)
{
    wm_upstream *u = arg;

    if (u->nsocks > max)
        return u->nsocks;
    for (size_t i = 0; i < u->nsocks; i++) {
        items[i].socket = NULL;
        items[i].fd = u->socks[i].fd;
        items[i].events =
            (short)(((u->socks[i].what & CURL_POLL_IN) ? ZMQ_POLLIN : 0) |
                    ((u->socks[i].what & CURL_POLL_OUT) ? ZMQ_POLLOUT : 0));
        items[i].revents = 0;
    }
    if (u->deadline_ms >= 0) {
        int64_t left = u->deadline_ms - wm_now_ms();
        if (left < 0)
            left = 0;
        if (left < *timeout_ms)
            *timeout_ms = (long)left;
    }
    return u->nsocks;
}

void
wm_upstream_dispatch(void *arg, const zmq_pollitem_t *items, size_t n)
{
    wm_upstream *u = arg;
    CURLMsg *msg;
    int running, left;

    for (size_t i = 0; i < n; i++) {
        int mask = 0;
        if (items[i].revents & ZMQ_POLLIN)
            mask |= CURL_CSELECT_IN;
        if (items[i].revents & ZMQ_POLLOUT)
            mask |= CURL_CSELECT_OUT;
        if (items[i].revents & ZMQ_POLLERR)
            mask |= CURL_CSELECT_ERR;
        if (mask != 0)
            curl_multi_socket_action(u->multi, items[i].fd, mask, &running);
    }
    if (u->deadline_ms >= 0 && wm_now_ms() >= u->deadline_ms) {
        u->deadline_ms = -1;
        curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        wm_xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL)
            finish(u, x, msg->data.result);
    }
}

/* --- life cycle */

int
wm_upstream_new(wm_upstream **out, wm_node *node, void *pub)
{
    wm_upstream *u = calloc(1, sizeof(*u));

    *out = NULL;
    if (u == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(u);
        return -ENOMEM;
    }
    u->node = node;
    u->pub = pub;
    u->deadline_ms = -1;
    u->multi = curl_multi_init();
    if (u->multi == NULL) {
        curl_global_cleanup();
        free(u);
        return -ENOMEM;
    }
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 64L);
    *out = u;
    return 0;
}

void
wm_upstream_destroy(wm_upstream **up)
{
    wm_upstream *u;

    if (up == NULL || *up == NULL)
        return;
    u = *up;
    while (u->xfers != NULL) {
        wm_xfer *x = u->xfers;
        u->xfers = x->next;
        xfer_free(x);
    }
    curl_multi_cleanup(u->multi);
    curl_global_cleanup();
    free(u);
    *up = NULL;
}
