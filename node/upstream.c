/*
 * Upstream indexes, driven from the node loop through one libcurl multi
 * handle whose sockets join the loop's zmq_poll.
 *
 * Per project the loop keeps an entry: the last good upstream page (parsed,
 * and its raw body in LMDB so it survives a restart), its validators, the
 * prepared merged pages, and the requests waiting for a fetch. Wheels are
 * spooled to an unlinked file while HTTP threads stream from it; they are
 * hashed as they arrive and committed only when the sha256 matches the page.
 */
#include "upstream.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cluster.h"
#include "hash.h"
#include "log.h"
#include "pages.h"
#include "simplepage.h"
#include "wheelzip.h"

#define NBUCKETS      1024
#define MAX_SOCKETS   256
#define PAGE_BODY_MAX (64u << 20)
#define ABSENT_TTL_S  60 /* a project upstream lacks: how long to believe it */
#define RETRY_AFTER_S 10 /* after an upstream failure */
#define PROGRESS_STEP (256u << 10)
#define PAGE_ACCEPT                                                            \
    "Accept: application/vnd.pypi.simple.v1+json, "                            \
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"

enum kind { T_PAGE, T_FILE, T_META };

struct entry;

struct transfer {
    struct transfer *next; /* in u->files or u->metas */
    enum kind kind;
    wm_upstream *u;
    CURL *easy;
    struct curl_slist *headers;
    char url[WM_URL_MAX + 16];
    wm_buf body; /* T_PAGE, T_META */
    /* T_PAGE */
    struct entry *entry;
    size_t index;
    /* T_FILE, T_META */
    uint8_t sha[WM_SHA256_LEN];    /* the wheel's */
    uint8_t expect[WM_SHA256_LEN]; /* what these bytes must hash to */
    wm_sha256 *hash;
    char filename[WM_WHEELNAME_MAX + 1];
    char project[WM_PROJECT_MAX + 1];
    wm_download *dl; /* T_FILE */
    uint64_t published;
    uint64_t resume; /* bytes already in the spool (a peer fetch's prefix) */
    uint64_t skip;   /* of the body, when the server ignored our Range */
    int started;
    int write_failed;
    wm_waiter *waiters; /* T_META */
};

struct entry {
    struct entry *next;
    char name[WM_PROJECT_MAX + 1];
    wm_simplepage page;
    int has_page;
    size_t page_index; /* which index the page came from */
    time_t fetched_at;
    time_t retry_at;
    time_t absent_until;
    char *etag, *last_modified;
    struct transfer *fetch;
    wm_waiter *waiters;
    wm_blob *prepared[2]; /* HTML, JSON */
    uint64_t prepared_gen;
    int warned;
    char error[200]; /* the last failure, for clients with nothing cached */
    struct takeover *takeovers; /* downloads waiting for this page */
};

/* A download no peer can finish, waiting for its project's page to go on
 * from upstream. */
struct takeover {
    struct takeover *next;
    wm_download *dl;
};

struct wm_upstream {
    wm_node *node;
    struct wm_cluster *cluster;
    void *router, *pub;
    CURLM *multi;
    struct entry *buckets[NBUCKETS];
    struct transfer *files, *metas;
    uint64_t gen; /* bumped on every store commit */
    struct {
        curl_socket_t fd;
        int what;
    } socks[MAX_SOCKETS];
    size_t nsocks;
    int64_t deadline_ms; /* libcurl's timer, monotonic; -1: none */
};

static void request(wm_upstream *u, wm_waiter *w);
static void takeovers_resume(wm_upstream *u, struct entry *e);

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- answering */

static void answer(wm_upstream *u, wm_waiter *w, unsigned status,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
answer(wm_upstream *u, wm_waiter *w, unsigned status, const char *fmt, ...)
{
    va_list ap;

    w->req->status = status;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(w->req->why, sizeof(w->req->why), fmt, ap);
        va_end(ap);
    }
    wm_loop_answer(u->router, w);
}

static void
answer_all(wm_upstream *u, wm_waiter **list, unsigned status, const char *why)
{
    while (*list != NULL) {
        wm_waiter *w = *list;
        *list = w->next;
        answer(u, w, status, "%s", why);
    }
}

/* Runs every waiter of LIST through request() again: what it waited for
 * (a page) has arrived or failed, and entry state now says which. */
static void
redispatch(wm_upstream *u, wm_waiter **list)
{
    wm_waiter *w = *list;

    *list = NULL;
    while (w != NULL) {
        wm_waiter *next = w->next;
        w->next = NULL;
        request(u, w);
        w = next;
    }
}

static void
publish(wm_upstream *u, const uint8_t *sha)
{
    zmq_send(u->pub, sha, WM_SHA256_LEN, ZMQ_DONTWAIT);
}

void
wm_upstream_publish(wm_upstream *u, const uint8_t *sha)
{
    publish(u, sha);
}

void
wm_upstream_set_cluster(wm_upstream *u, struct wm_cluster *c)
{
    u->cluster = c;
}

/* --- project entries */

static size_t
bucket_of(const char *name)
{
    size_t h = 5381;

    for (const char *p = name; *p != '\0'; p++)
        h = h * 33 + (unsigned char)*p;
    return h % NBUCKETS;
}

static void
entry_unprepare(struct entry *e)
{
    for (int i = 0; i < 2; i++) {
        wm_blob_release(e->prepared[i]);
        e->prepared[i] = NULL;
    }
}

static void
set_str(char **field, const char *value)
{
    free(*field);
    *field = value != NULL ? strdup(value) : NULL;
}

/* The persisted page record: fetched_at, index, then four
 * length-prefixed strings (content type, base URL, ETag, Last-Modified)
 * and the raw body. */
struct page_record {
    int64_t fetched_at;
    uint16_t index;
    const char *ctype, *base, *etag, *lm;
    const char *body;
    size_t body_len;
};

static void
persist_page(wm_upstream *u, struct entry *e, const struct page_record *r)
{
    const char *strs[4] = {r->ctype, r->base, r->etag, r->lm};
    wm_buf b;
    char *data;
    size_t len;

    wm_buf_init(&b, PAGE_BODY_MAX + 8192);
    wm_buf_add(&b, &r->fetched_at, sizeof(r->fetched_at));
    wm_buf_add(&b, &r->index, sizeof(r->index));
    for (int i = 0; i < 4; i++) {
        uint16_t n = (uint16_t)(strs[i] != NULL ? strnlen(strs[i], 4095) : 0);
        wm_buf_add(&b, &n, sizeof(n));
        wm_buf_add(&b, strs[i] != NULL ? strs[i] : "", n);
    }
    wm_buf_add(&b, r->body, r->body_len);
    data = wm_buf_steal(&b, &len);
    if (data == NULL ||
        wm_store_put_page(u->node->store, e->name, data, len) != 0)
        wm_warn("upstream: cannot keep the page of %s", e->name);
    free(data);
}

/* Reads a persisted record; strings are copied into BUF (NUL-terminated).
 * Returns 0 or -EBADMSG. */
static int
decode_page(const uint8_t *p, size_t len, struct page_record *r,
            char bufs[4][4096])
{
    const char **strs[4] = {&r->ctype, &r->base, &r->etag, &r->lm};
    size_t off = sizeof(r->fetched_at) + sizeof(r->index);

    if (len < off)
        return -EBADMSG;
    memcpy(&r->fetched_at, p, sizeof(r->fetched_at));
    memcpy(&r->index, p + sizeof(r->fetched_at), sizeof(r->index));
    for (int i = 0; i < 4; i++) {
        uint16_t n;
        if (len - off < sizeof(n))
            return -EBADMSG;
        memcpy(&n, p + off, sizeof(n));
        off += sizeof(n);
        if (n >= 4096 || len - off < n)
            return -EBADMSG;
        memcpy(bufs[i], p + off, n);
        bufs[i][n] = '\0';
        *strs[i] = bufs[i][0] != '\0' ? bufs[i] : NULL;
        off += n;
    }
    r->body = (const char *)p + off;
    r->body_len = len - off;
    return 0;
}

/* Takes the page a previous run kept, so a restarted node serves it even
 * when upstream is down. */
static void
entry_load(wm_upstream *u, struct entry *e)
{
    static char bufs[4][4096]; /* loop thread only */
    struct page_record r;
    wm_store_view *v;
    const void *data;
    const char *why;
    size_t len;

    if (wm_store_view_open(u->node->store, &v) != 0)
        return;
    if (wm_store_page(v, e->name, &data, &len) == 0 &&
        decode_page(data, len, &r, bufs) == 0 && r.base != NULL &&
        r.index < u->node->cfg->nindexes &&
        wm_simplepage_parse(r.body, r.body_len, r.ctype, r.base, &e->page,
                            &why) == 0) {
        e->has_page = 1;
        e->page_index = r.index;
        e->fetched_at = r.fetched_at;
        set_str(&e->etag, r.etag);
        set_str(&e->last_modified, r.lm);
    }
    wm_store_view_close(&v);
}

static struct entry *
entry_get(wm_upstream *u, const char *name)
{
    size_t b = bucket_of(name);
    struct entry *e;

    for (e = u->buckets[b]; e != NULL; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->prepared_gen = UINT64_MAX;
    entry_load(u, e);
    e->next = u->buckets[b];
    u->buckets[b] = e;
    return e;
}

/* --- routing */

static int
index_pins(const wm_index *ix, const char *project)
{
    for (size_t i = 0; i < ix->nprojects; i++)
        if (strcmp(ix->projects[i], project) == 0)
            return 1;
    return 0;
}

/* The index to ask first for PROJECT: the one that pins it, else the first
 * general index. Sets *PINNED. Returns -1 when no index may serve it. */
static long
route_first(const wm_config *cfg, const char *project, int *pinned)
{
    *pinned = 0;
    for (size_t i = 0; i < cfg->nindexes; i++) {
        if (index_pins(&cfg->indexes[i], project)) {
            *pinned = 1;
            return (long)i;
        }
    }
    for (size_t i = 0; i < cfg->nindexes; i++)
        if (cfg->indexes[i].nprojects == 0)
            return (long)i;
    return -1;
}

/* The next general index after AFTER, or -1. */
static long
route_next(const wm_config *cfg, size_t after)
{
    for (size_t i = after + 1; i < cfg->nindexes; i++)
        if (cfg->indexes[i].nprojects == 0)
            return (long)i;
    return -1;
}

/* --- transfers */

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;

    return wm_buf_add(&t->body, data, size * n) == 0 ? size * n : 0;
}

static size_t
on_file_data(char *data, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    wm_download *dl = t->dl;
    wm_counters *c = &t->u->node->counters;
    uint64_t got = atomic_load(&dl->received), len = size * n;
    const char *p = data;

    if (!t->started) { /* the first bytes: the headers are in */
        curl_off_t cl = -1;
        long code = 0;
        t->started = 1;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        if (t->resume > 0 && code != 206)
            t->skip = t->resume; /* the whole file: drop what we have */
        if (cl >= 0 && code == 206)
            cl += (curl_off_t)t->resume;
        if (cl > (curl_off_t)t->u->node->cfg->max_size)
            return 0;
        if (cl >= 0) {
            atomic_store(&dl->total, (uint64_t)cl);
            publish(t->u, t->sha);
        }
    }
    if (t->skip > 0) {
        uint64_t k = len < t->skip ? len : t->skip;
        p += k;
        len -= k;
        t->skip -= k;
    }
    if (got + len > t->u->node->cfg->max_size)
        return 0;
    while (len > 0) {
        ssize_t w = pwrite(dl->fd, p, len, (off_t)got);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            t->write_failed = 1;
            return 0;
        }
        wm_sha256_update(t->hash, p, (size_t)w);
        p += w;
        got += (uint64_t)w;
        len -= (size_t)w;
    }
    atomic_store(&dl->received, got);
    atomic_fetch_add(&c->upstream_bytes, size * n);
    if (got - t->published >= PROGRESS_STEP) {
        t->published = got;
        publish(t->u, t->sha);
    }
    return size * n;
}

static void
transfer_free(struct transfer *t)
{
    if (t == NULL)
        return;
    if (t->easy != NULL) {
        curl_multi_remove_handle(t->u->multi, t->easy);
        curl_easy_cleanup(t->easy);
    }
    curl_slist_free_all(t->headers);
    wm_buf_free(&t->body);
    wm_sha256_destroy(&t->hash);
    wm_download_release(t->dl);
    free(t);
}

/* Creates a transfer of URL with the options every upstream request
 * shares. Returns NULL when out of memory or libcurl refuses. */
static struct transfer *
transfer_new(wm_upstream *u, enum kind kind, const char *url, size_t cap)
{
    const wm_config *cfg = u->node->cfg;
    struct transfer *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->u = u;
    t->kind = kind;
    wm_buf_init(&t->body, cap);
    snprintf(t->url, sizeof(t->url), "%s", url);
    t->easy = curl_easy_init();
    if (t->easy == NULL) {
        free(t);
        return NULL;
    }
    curl_easy_setopt(t->easy, CURLOPT_URL, t->url);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(t->easy, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "wheelmesh/" WM_VERSION);
    /* timeout_s bounds connecting and stalling, not a long download. */
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT, (long)cfg->timeout_s);
    curl_easy_setopt(t->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(t->easy, CURLOPT_LOW_SPEED_TIME, (long)cfg->timeout_s);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    return t;
}

static int
transfer_start(struct transfer *t)
{
    if (t->headers != NULL)
        curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    if (curl_multi_add_handle(t->u->multi, t->easy) != CURLM_OK)
        return -EIO;
    return 0;
}

/* --- pages */

static int
needs_fetch(wm_upstream *u, const struct entry *e, time_t now)
{
    const wm_config *cfg = u->node->cfg;

    if (cfg->nindexes == 0 || e->fetch != NULL || now < e->retry_at ||
        now < e->absent_until)
        return 0;
    return !e->has_page || now - e->fetched_at >= (time_t)cfg->page_ttl_s;
}

/* Starts fetching E's page from index IX: a conditional request when it
 * revalidates the page it has from that index. */
static void
page_fetch(wm_upstream *u, struct entry *e, size_t ix)
{
    const wm_index *index = &u->node->cfg->indexes[ix];
    char url[WM_URL_MAX + WM_PROJECT_MAX + 8], hdr[512];
    struct transfer *t;

    snprintf(url, sizeof(url), "%s%s/", index->url, e->name);
    t = transfer_new(u, T_PAGE, url, PAGE_BODY_MAX);
    if (t == NULL)
        goto fail;
    t->entry = e;
    t->index = ix;
    t->headers = curl_slist_append(NULL, PAGE_ACCEPT);
    if (e->has_page && e->page_index == ix) {
        if (e->etag != NULL) {
            snprintf(hdr, sizeof(hdr), "If-None-Match: %s", e->etag);
            t->headers = curl_slist_append(t->headers, hdr);
        }
        if (e->last_modified != NULL) {
            snprintf(hdr, sizeof(hdr), "If-Modified-Since: %s",
                     e->last_modified);
            t->headers = curl_slist_append(t->headers, hdr);
        }
    }
    curl_easy_setopt(t->easy, CURLOPT_ACCEPT_ENCODING, "");
    if (t->headers == NULL || transfer_start(t) != 0)
        goto fail;
    e->fetch = t;
    atomic_fetch_add(&u->node->counters.upstream_pages, 1);
    return;
fail:
    transfer_free(t);
    snprintf(e->error, sizeof(e->error), "cannot start an upstream request");
    e->retry_at = time(NULL) + RETRY_AFTER_S;
}

static void
page_start(wm_upstream *u, struct entry *e)
{
    int pinned;
    long ix = e->has_page ? (long)e->page_index
                          : route_first(u->node->cfg, e->name, &pinned);

    if (ix < 0) {
        e->absent_until = time(NULL) + ABSENT_TTL_S;
        return;
    }
    page_fetch(u, e, (size_t)ix);
}

static const char *
header_value(CURL *easy, const char *name)
{
    struct curl_header *h = NULL;

    if (curl_easy_header(easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
        return NULL;
    return h->value;
}

/* A page transfer ended: keep what it brought, or keep what we had. */
static void
page_done(wm_upstream *u, struct transfer *t, CURLcode rc)
{
    struct entry *e = t->entry;
    const wm_config *cfg = u->node->cfg;
    time_t now = time(NULL);
    long status = 0;
    const char *why = NULL;

    e->fetch = NULL;
    if (rc == CURLE_OK)
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200 && !t->body.failed) {
        char *ctype = NULL, *base = NULL;
        wm_simplepage page;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ctype);
        curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &base);
        if (wm_simplepage_parse(t->body.data != NULL ? t->body.data : "",
                                t->body.len, ctype != NULL ? ctype : "",
                                base != NULL ? base : t->url, &page,
                                &why) == 0) {
            struct page_record r = {now,
                                    (uint16_t)t->index,
                                    ctype,
                                    base != NULL ? base : t->url,
                                    header_value(t->easy, "ETag"),
                                    header_value(t->easy, "Last-Modified"),
                                    t->body.data,
                                    t->body.len};
            wm_simplepage_free(&e->page);
            e->page = page;
            e->has_page = 1;
            e->page_index = t->index;
            e->fetched_at = now;
            e->warned = 0;
            e->error[0] = '\0';
            set_str(&e->etag, r.etag);
            set_str(&e->last_modified, r.lm);
            entry_unprepare(e);
            persist_page(u, e, &r);
            wm_debug("upstream: %s: %zu files from %s", e->name, e->page.nfiles,
                     t->url);
            goto out;
        }
        status = -1; /* a 200 that is not a simple page: an upstream error */
    }
    if (status == 304) {
        e->fetched_at = now;
        e->warned = 0;
        goto out;
    }
    if (status == 404 || status == 410) {
        int pinned;
        long next = -1;
        route_first(cfg, e->name, &pinned);
        if (!pinned && !e->has_page)
            next = route_next(cfg, t->index);
        if (next >= 0) {
            page_fetch(u, e, (size_t)next);
            if (e->fetch != NULL) {
                transfer_free(t);
                return; /* the waiters wait on */
            }
        }
        if (e->has_page) /* gone upstream: stop offering its files */
            wm_simplepage_free(&e->page);
        e->has_page = 0;
        e->error[0] = '\0';
        entry_unprepare(e);
        e->absent_until = now + ABSENT_TTL_S;
        goto out;
    }
    /* Down, slow or broken: serve what we have (stale-if-error). */
    atomic_fetch_add(&u->node->counters.upstream_errors, 1);
    e->retry_at = now + RETRY_AFTER_S;
    if (why != NULL)
        snprintf(e->error, sizeof(e->error), "upstream %s: %s", t->url, why);
    else if (rc != CURLE_OK)
        snprintf(e->error, sizeof(e->error), "upstream %s: %s", t->url,
                 curl_easy_strerror(rc));
    else
        snprintf(e->error, sizeof(e->error), "upstream %s: HTTP %ld", t->url,
                 status);
    if (e->has_page && !e->warned) {
        wm_warn("%s; serving the page fetched %lds ago", e->error,
                (long)(now - e->fetched_at));
        e->warned = 1;
    } else if (!e->has_page) {
        wm_warn("%s", e->error);
    }
out:
    transfer_free(t);
    takeovers_resume(u, e);
    redispatch(u, &e->waiters);
}

/* Answers a page request from E: the prepared copy, rendered again only
 * when the store or the upstream page changed. */
static void
page_answer(wm_upstream *u, struct entry *e, wm_waiter *w)
{
    int fmt = w->req->json ? 1 : 0, found = 0;
    wm_store_view *v;
    char *body = NULL;
    size_t len = 0;

    if (e->prepared_gen != u->gen)
        entry_unprepare(e);
    if (e->prepared[fmt] == NULL) {
        if (wm_store_view_open(u->node->store, &v) != 0) {
            answer(u, w, 503, "store busy");
            return;
        }
        size_t nremote = 0;
        wm_remote_file *remote =
            u->cluster != NULL
                ? wm_cluster_remote(u->cluster, e->name, &nremote)
                : NULL;
        body = wm_page_project(v, e->name, remote, nremote,
                               e->has_page ? &e->page : NULL,
                               fmt ? WM_PAGE_JSON : WM_PAGE_HTML, &found, &len);
        wm_store_view_close(&v);
        free(remote);
        if (!found) {
            if (e->error[0] != '\0')
                answer(u, w, 502, "%s", e->error);
            else
                answer(u, w, 404, "no such project");
            return;
        }
        e->prepared[fmt] = body != NULL ? wm_blob_new(body, len) : NULL;
        free(body);
        e->prepared_gen = u->gen;
        if (e->prepared[fmt] == NULL) {
            answer(u, w, 500, "cannot render the page");
            return;
        }
    }
    w->req->blob = wm_blob_ref(e->prepared[fmt]);
    answer(u, w, 200, NULL);
}

/* Finds the entry for W's project and makes sure it has a page, fetching
 * one when needed. Returns the entry, or NULL when W now waits (or was
 * answered). */
static struct entry *
entry_ready(wm_upstream *u, wm_waiter *w, const char *project, int wait)
{
    struct entry *e = entry_get(u, project);
    time_t now = time(NULL);

    if (e == NULL) {
        answer(u, w, 503, "out of memory");
        return NULL;
    }
    if (needs_fetch(u, e, now))
        page_start(u, e);
    /* Wait only when there is nothing to answer with; a stale page is
     * answered at once while it is revalidated. */
    if (wait && e->fetch != NULL && !e->has_page) {
        w->next = e->waiters;
        e->waiters = w;
        return NULL;
    }
    return e;
}

/* The file W asks for on E's upstream page, or NULL. */
static const wm_upfile *
find_upfile(const struct entry *e, const wm_request *req)
{
    for (size_t i = 0; e->has_page && i < e->page.nfiles; i++) {
        const wm_upfile *f = &e->page.files[i];
        if (f->has_sha256 &&
            memcmp(f->sha256, req->sha256, WM_SHA256_LEN) == 0 &&
            strcmp(f->filename, req->filename) == 0)
            return f;
    }
    return NULL;
}

/* --- wheels */

static struct transfer *
find_transfer(struct transfer *list, const uint8_t *sha)
{
    for (; list != NULL; list = list->next)
        if (memcmp(list->sha, sha, WM_SHA256_LEN) == 0)
            return list;
    return NULL;
}

static void
unlink_transfer(struct transfer **list, struct transfer *t)
{
    for (; *list != NULL; list = &(*list)->next) {
        if (*list == t) {
            *list = t->next;
            return;
        }
    }
}

/* Hashes the first LEN bytes of the spool FD into HASH. */
static int
hash_prefix(int fd, uint64_t len, wm_sha256 *hash)
{
    static uint8_t buf[1 << 20]; /* loop thread only */

    for (uint64_t off = 0; off < len;) {
        size_t want =
            len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got <= 0)
            return -EIO;
        wm_sha256_update(hash, buf, (size_t)got);
        off += (uint64_t)got;
    }
    return 0;
}

/* Starts downloading URL into DL, or into a new download when DL is NULL
 * (then the transfer holds the only reference). DL's first RESUME bytes
 * are in its spool already: only the rest is asked for. */
static struct transfer *
file_start(wm_upstream *u, const char *url, const uint8_t *sha,
           const char *filename, wm_download *dl, uint64_t resume)
{
    struct transfer *t = transfer_new(u, T_FILE, url, 0);

    if (t == NULL)
        return NULL;
    if (dl == NULL)
        dl = wm_download_new(u->node, sha, filename, WM_SIZE_UNKNOWN,
                             WM_SOURCE_UPSTREAM);
    else
        wm_download_ref(dl)->source = WM_SOURCE_UPSTREAM;
    t->dl = dl;
    if (dl == NULL)
        goto fail;
    memcpy(t->sha, sha, WM_SHA256_LEN);
    memcpy(t->expect, sha, WM_SHA256_LEN);
    snprintf(t->filename, sizeof(t->filename), "%s", filename);
    t->hash = wm_sha256_new();
    if (t->hash == NULL)
        goto fail;
    t->resume = resume;
    if (resume > 0) {
        if (hash_prefix(dl->fd, resume, t->hash) != 0)
            goto fail;
        curl_easy_setopt(t->easy, CURLOPT_RESUME_FROM_LARGE,
                         (curl_off_t)resume);
    }
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_file_data);
    curl_easy_setopt(t->easy, CURLOPT_FAILONERROR, 1L);
    if (transfer_start(t) != 0)
        goto fail;
    t->next = u->files;
    u->files = t;
    wm_info("upstream: fetching %s from %s", t->filename, t->url);
    return t;
fail:
    transfer_free(t);
    return NULL;
}

static void
file_done(wm_upstream *u, struct transfer *t, CURLcode rc)
{
    wm_download *dl = t->dl;
    uint8_t digest[WM_SHA256_LEN];
    char want[WM_SHA256_HEX], got[WM_SHA256_HEX];

    unlink_transfer(&u->files, t);
    if (rc == CURLE_OK && !t->write_failed) {
        wm_sha256_final(t->hash, digest);
        if (memcmp(digest, t->expect, WM_SHA256_LEN) == 0) {
            atomic_store(&dl->total, atomic_load(&dl->received));
            atomic_store(&dl->state, WM_DL_VERIFIED);
            publish(u, t->sha);
            wm_node_commit(u->node, dl, NULL);
            goto out;
        }
        wm_hex_encode(t->expect, WM_SHA256_LEN, want);
        wm_hex_encode(digest, WM_SHA256_LEN, got);
        atomic_fetch_add(&u->node->counters.hash_mismatches, 1);
        wm_error("upstream: %s: sha256 mismatch: the index says %s, the "
                 "bytes hash to %s; not stored",
                 t->filename, want, got);
    } else {
        atomic_fetch_add(&u->node->counters.upstream_errors, 1);
        wm_warn("upstream: %s: %s", t->url,
                t->write_failed ? "cannot write the spool file"
                                : curl_easy_strerror(rc));
    }
    atomic_store(&dl->state, WM_DL_FAILED);
    publish(u, t->sha);
out:
    transfer_free(t);
}

static int
stored(wm_upstream *u, const uint8_t *sha)
{
    wm_store_view *v;
    wm_file_info info;
    int found = 0;

    if (wm_store_view_open(u->node->store, &v) == 0) {
        found = wm_store_get(v, sha, &info) == 0;
        wm_store_view_close(&v);
    }
    return found;
}

/* A wheel the node lacks: from a download in progress, from peers that
 * hold it, else from upstream (through the cluster's designated member,
 * so the fleet downloads it once). */
static void
fetch_request(wm_upstream *u, wm_waiter *w)
{
    wm_request *req = w->req;
    struct transfer *t = find_transfer(u->files, req->sha256);
    const wm_upfile *f;
    struct entry *e;
    wm_wheelname wn;

    wm_download *dl =
        t != NULL ? t->dl : wm_node_committing(u->node, req->sha256);

    if (dl != NULL) {
        req->download = wm_download_ref(dl);
        answer(u, w, 200, NULL);
        return;
    }
    if (stored(u, req->sha256)) {
        req->result = -EEXIST;
        answer(u, w, 200, NULL);
        return;
    }
    if (wm_wheelname_parse(req->filename, &wn, NULL) != 0) {
        answer(u, w, 400, "bad wheel filename");
        return;
    }
    if (u->cluster != NULL) {
        req->download =
            wm_cluster_fetch(u->cluster, req->sha256, req->filename, 0);
        if (req->download != NULL) {
            answer(u, w, 200, NULL);
            return;
        }
    }
    if (u->node->cfg->nindexes == 0) {
        answer(u, w, 404, "no such file in the cluster");
        return;
    }
    e = entry_ready(u, w, wn.project, 1);
    if (e == NULL)
        return;
    f = find_upfile(e, req);
    if (f == NULL) {
        if (!e->has_page && e->error[0] != '\0')
            answer(u, w, 502, "%s", e->error);
        else
            answer(u, w, 404, "no such file here or upstream");
        return;
    }
    if (u->cluster != NULL) {
        req->download =
            wm_cluster_fetch(u->cluster, req->sha256, req->filename, 1);
        if (req->download != NULL) {
            answer(u, w, 200, NULL);
            return;
        }
    }
    t = file_start(u, f->url, req->sha256, req->filename, NULL, 0);
    if (t == NULL) {
        answer(u, w, 503, "cannot start the upstream download");
        return;
    }
    req->download = wm_download_ref(t->dl);
    answer(u, w, 200, NULL);
}

wm_download *
wm_upstream_download(wm_upstream *u, const uint8_t *sha)
{
    struct transfer *t = find_transfer(u->files, sha);

    return t != NULL ? t->dl : wm_node_committing(u->node, sha);
}

/* The upstream file SHA/FILENAME on its project's page; starts fetching
 * the page when it is missing or stale. -EAGAIN while it is on its way. */
static int
upfile_for(wm_upstream *u, const uint8_t *sha, const char *filename,
           const wm_upfile **out, struct entry **entry)
{
    wm_request req;
    wm_wheelname wn;
    struct entry *e;

    if (u->node->cfg->nindexes == 0 ||
        wm_wheelname_parse(filename, &wn, NULL) != 0)
        return -ENOENT;
    e = entry_get(u, wn.project);
    if (e == NULL)
        return -ENOMEM;
    if (entry != NULL)
        *entry = e;
    if (needs_fetch(u, e, time(NULL)))
        page_start(u, e);
    if (!e->has_page)
        return e->fetch != NULL ? -EAGAIN : -ENOENT;
    memset(&req, 0, sizeof(req));
    memcpy(req.sha256, sha, WM_SHA256_LEN);
    snprintf(req.filename, sizeof(req.filename), "%s", filename);
    *out = find_upfile(e, &req);
    return *out != NULL ? 0 : -ENOENT;
}

int
wm_upstream_prefetch(wm_upstream *u, const uint8_t *sha, const char *filename)
{
    const wm_upfile *f;
    int rc;

    if (find_transfer(u->files, sha) != NULL ||
        wm_node_committing(u->node, sha) != NULL)
        return 0;
    if (stored(u, sha))
        return -EEXIST;
    rc = upfile_for(u, sha, filename, &f, NULL);
    if (rc != 0)
        return rc;
    return file_start(u, f->url, sha, filename, NULL, 0) != NULL ? 0 : -ENOMEM;
}

int
wm_upstream_take_over(wm_upstream *u, wm_download *dl, const uint8_t *sha,
                      const char *filename)
{
    const wm_upfile *f = NULL;
    struct entry *e = NULL;
    struct takeover *to;
    int rc;

    if (find_transfer(u->files, sha) != NULL)
        return -ENOENT;
    rc = upfile_for(u, sha, filename, &f, &e);
    if (rc == -EAGAIN) { /* its page is on its way: go on when it is in */
        to = calloc(1, sizeof(*to));
        if (to == NULL)
            return -ENOMEM;
        to->dl = wm_download_ref(dl);
        to->next = e->takeovers;
        e->takeovers = to;
        return 0;
    }
    if (rc != 0)
        return -ENOENT;
    /* Readers have had the verified prefix; upstream sends the rest. */
    return file_start(u, f->url, sha, filename, dl,
                      atomic_load(&dl->received)) != NULL
               ? 0
               : -ENOMEM;
}

/* E's page arrived (or failed): the downloads waiting for it go on from
 * upstream, or fail. */
static void
takeovers_resume(wm_upstream *u, struct entry *e)
{
    while (e->takeovers != NULL) {
        struct takeover *to = e->takeovers;
        wm_download *dl = to->dl;
        const wm_upfile *f = NULL;
        e->takeovers = to->next;
        if (upfile_for(u, dl->sha256, dl->filename, &f, NULL) != 0 ||
            find_transfer(u->files, dl->sha256) != NULL ||
            file_start(u, f->url, dl->sha256, dl->filename, dl,
                       atomic_load(&dl->received)) == NULL) {
            atomic_store(&dl->state, WM_DL_FAILED);
            publish(u, dl->sha256);
        }
        wm_download_release(dl);
        free(to);
    }
}

/* --- metadata */

static void
meta_done(wm_upstream *u, struct transfer *t, CURLcode rc)
{
    uint8_t digest[WM_SHA256_LEN];
    char want[WM_SHA256_HEX], got[WM_SHA256_HEX];
    long status = 0;
    wm_blob *blob;

    unlink_transfer(&u->metas, t);
    if (rc == CURLE_OK)
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 || t->body.failed) {
        atomic_fetch_add(&u->node->counters.upstream_errors, 1);
        answer_all(u, &t->waiters, 502, "upstream has no usable metadata");
        goto out;
    }
    wm_sha256_digest(t->body.data, t->body.len, digest);
    if (memcmp(digest, t->expect, WM_SHA256_LEN) != 0) {
        wm_hex_encode(t->expect, WM_SHA256_LEN, want);
        wm_hex_encode(digest, WM_SHA256_LEN, got);
        atomic_fetch_add(&u->node->counters.hash_mismatches, 1);
        wm_error("upstream: %s: sha256 mismatch: the index says %s, the "
                 "bytes hash to %s; not stored",
                 t->url, want, got);
        answer_all(u, &t->waiters, 502, "upstream metadata fails its hash");
        goto out;
    }
    if (wm_store_put_meta(u->node->store, t->sha, t->body.data, t->body.len) !=
        0)
        wm_warn("upstream: cannot keep the metadata of %s", t->filename);
    blob = wm_blob_new(t->body.data, t->body.len);
    while (t->waiters != NULL) {
        wm_waiter *w = t->waiters;
        t->waiters = w->next;
        w->req->blob = wm_blob_ref(blob);
        answer(u, w, blob != NULL ? 200 : 503, blob != NULL ? NULL : "oom");
    }
    wm_blob_release(blob);
out:
    transfer_free(t);
}

static void
meta_request(wm_upstream *u, wm_waiter *w)
{
    wm_request *req = w->req;
    struct transfer *t = find_transfer(u->metas, req->sha256);
    char url[WM_URL_MAX + 16];
    const wm_upfile *f;
    wm_store_view *v;
    const void *data;
    struct entry *e;
    wm_wheelname wn;
    size_t len;

    if (t == NULL && wm_store_view_open(u->node->store, &v) == 0) {
        if (wm_store_metadata(v, req->sha256, &data, &len) == 0)
            req->blob = wm_blob_new(data, len);
        wm_store_view_close(&v);
        if (req->blob != NULL) {
            answer(u, w, 200, NULL);
            return;
        }
    }
    if (t != NULL) {
        w->next = t->waiters;
        t->waiters = w;
        return;
    }
    if (wm_wheelname_parse(req->filename, &wn, NULL) != 0) {
        answer(u, w, 400, "bad wheel filename");
        return;
    }
    e = entry_ready(u, w, wn.project, 1);
    if (e == NULL)
        return;
    f = find_upfile(e, req);
    if (f == NULL || !f->metadata_sha256_known) {
        answer(u, w, 404, "no metadata for this file");
        return;
    }
    snprintf(url, sizeof(url), "%s.metadata", f->url);
    t = transfer_new(u, T_META, url, WM_METADATA_MAX);
    if (t == NULL) {
        answer(u, w, 503, "out of memory");
        return;
    }
    memcpy(t->sha, req->sha256, WM_SHA256_LEN);
    memcpy(t->expect, f->metadata_sha256, WM_SHA256_LEN);
    snprintf(t->filename, sizeof(t->filename), "%s", req->filename);
    if (transfer_start(t) != 0) {
        transfer_free(t);
        answer(u, w, 503, "cannot start the upstream request");
        return;
    }
    t->waiters = w;
    w->next = NULL;
    t->next = u->metas;
    u->metas = t;
}

/* --- requests from HTTP threads */

static void
request(wm_upstream *u, wm_waiter *w)
{
    struct entry *e;

    switch (w->req->op) {
    case WM_OP_PAGE:
        e = entry_ready(u, w, w->req->project, 1);
        if (e != NULL)
            page_answer(u, e, w);
        break;
    case WM_OP_FETCH:
        fetch_request(u, w);
        break;
    case WM_OP_META:
        meta_request(u, w);
        break;
    default:
        answer(u, w, 500, "unknown request");
    }
}

void
wm_upstream_request(wm_upstream *u, wm_waiter *w)
{
    w->next = NULL;
    request(u, w);
}

void
wm_upstream_store_changed(wm_upstream *u)
{
    u->gen++;
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

    u->deadline_ms = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    return 0;
}

size_t
wm_upstream_pollitems(wm_upstream *u, zmq_pollitem_t *items, size_t max,
                      long *timeout_ms)
{
    size_t n = 0;

    for (size_t i = 0; i < u->nsocks && n < max; i++, n++) {
        items[n].socket = NULL;
        items[n].fd = u->socks[i].fd;
        items[n].events =
            (short)(((u->socks[i].what & CURL_POLL_IN) ? ZMQ_POLLIN : 0) |
                    ((u->socks[i].what & CURL_POLL_OUT) ? ZMQ_POLLOUT : 0));
        items[n].revents = 0;
    }
    if (u->deadline_ms >= 0) {
        int64_t left = u->deadline_ms - now_ms();
        if (left < 0)
            left = 0;
        if (left < *timeout_ms)
            *timeout_ms = (long)left;
    }
    return n;
}

void
wm_upstream_dispatch(wm_upstream *u, const zmq_pollitem_t *items, size_t n)
{
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
    if (u->deadline_ms >= 0 && now_ms() >= u->deadline_ms) {
        u->deadline_ms = -1;
        curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        struct transfer *t = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        if (t == NULL)
            continue;
        switch (t->kind) {
        case T_PAGE:
            page_done(u, t, msg->data.result);
            break;
        case T_FILE:
            file_done(u, t, msg->data.result);
            break;
        case T_META:
            meta_done(u, t, msg->data.result);
            break;
        }
    }
}

/* --- life cycle */

int
wm_upstream_new(wm_upstream **out, wm_node *node, void *router, void *pub)
{
    wm_upstream *u = calloc(1, sizeof(*u));

    *out = NULL;
    if (u == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(u);
        return -ENOMEM;
    }
    u->node = node;
    u->router = router;
    u->pub = pub;
    u->deadline_ms = -1;
    u->multi = curl_multi_init();
    if (u->multi == NULL) {
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
    while (u->files != NULL) {
        struct transfer *t = u->files;
        u->files = t->next;
        atomic_store(&t->dl->state, WM_DL_FAILED);
        publish(u, t->sha);
        transfer_free(t);
    }
    while (u->metas != NULL) {
        struct transfer *t = u->metas;
        u->metas = t->next;
        answer_all(u, &t->waiters, 503, "node is stopping");
        transfer_free(t);
    }
    for (size_t b = 0; b < NBUCKETS; b++) {
        while (u->buckets[b] != NULL) {
            struct entry *e = u->buckets[b];
            u->buckets[b] = e->next;
            transfer_free(e->fetch);
            answer_all(u, &e->waiters, 503, "node is stopping");
            while (e->takeovers != NULL) {
                struct takeover *to = e->takeovers;
                e->takeovers = to->next;
                atomic_store(&to->dl->state, WM_DL_FAILED);
                publish(u, to->dl->sha256);
                wm_download_release(to->dl);
                free(to);
            }
            wm_simplepage_free(&e->page);
            entry_unprepare(e);
            free(e->etag);
            free(e->last_modified);
            free(e);
        }
    }
    curl_multi_cleanup(u->multi);
    curl_global_cleanup();
    free(u);
    *up = NULL;
}
