/*
 * The page cache. Project entries live in a map with a recency order and
 * a cap, so requests for random names cost bounded memory: the least
 * recently used entry without a fetch in flight goes first (its page stays
 * in LMDB). A page is kept with the URL of the index it came from and is
 * used only while that index is still the project's route.
 */
#include "pagecache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "map.h"
#include "route.h"

#define MAX_ENTRIES   4096
#define MAX_LISTENERS 4
#define PAGE_BODY_MAX (64u << 20)
#define ABSENT_TTL_S  60 /* a project upstream lacks: how long to believe it */
#define RETRY_AFTER_S 10 /* after an upstream failure */
#define RECORD_MAGIC  "P2"
#define PAGE_ACCEPT                                                            \
    "Accept: application/vnd.pypi.simple.v1+json, "                            \
    "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"

struct entry {
    char name[WM_PROJECT_MAX + 1];
    wm_simplepage page;
    int has_page;
    char *index_url; /* where the page came from */
    time_t fetched_at, retry_at, absent_until;
    char *etag, *last_modified;
    int warned;
    char error[200]; /* the last failure, for clients with nothing cached */
    wm_pagecache *pc;
    wm_xfer *fetch;
    size_t order[16]; /* the route being tried, and where in it */
    size_t norder, at;
};

struct wm_pagecache {
    wm_node *node;
    wm_upstream *up;
    wm_map *entries;
    struct {
        wm_page_fn fn;
        void *arg;
    } listeners[MAX_LISTENERS];
    size_t nlisteners;
};

static void page_fetch(struct entry *e, size_t ix, int conditional);

static void
set_str(char **field, const char *value)
{
    free(*field);
    *field = value != NULL ? strdup(value) : NULL;
}

static void
entry_free(void *arg)
{
    struct entry *e = arg;

    if (e == NULL)
        return;
    wm_upstream_cancel(e->pc->up, e->fetch);
    wm_simplepage_free(&e->page);
    free(e->index_url);
    free(e->etag);
    free(e->last_modified);
    free(e);
}

static void
drop_page(struct entry *e)
{
    wm_simplepage_free(&e->page);
    e->has_page = 0;
    set_str(&e->index_url, NULL);
    set_str(&e->etag, NULL);
    set_str(&e->last_modified, NULL);
}

/* --- the record kept in LMDB: magic, fetched_at, five length-prefixed
 * strings (index URL, content type, base URL, ETag, Last-Modified), then
 * the raw body. Records of other versions are not read: the page is
 * fetched again. */

static void
persist(wm_pagecache *pc, const struct entry *e, const wm_page_record *r)
{
    wm_buf b;
    char *data;
    size_t len;

    wm_buf_init(&b, PAGE_BODY_MAX + 16384);
    wm_buf_add(&b, RECORD_MAGIC, 2);
    wm_buf_add(&b, &r->fetched_at, sizeof(r->fetched_at));
    for (int i = 0; i < 5; i++) {
        uint16_t n = (uint16_t)(r->strs[i] != NULL
                                    ? strnlen(r->strs[i], WM_URL_MAX + 16)
                                    : 0);
        wm_buf_add(&b, &n, sizeof(n));
        wm_buf_add(&b, r->strs[i] != NULL ? r->strs[i] : "", n);
    }
    wm_buf_add(&b, r->body, r->body_len);
    data = wm_buf_steal(&b, &len);
    if (data == NULL ||
        wm_store_put_page(pc->node->store, e->name, data, len) != 0)
        wm_warn("upstream: cannot keep the page of %s", e->name);
    free(data);
}

int
wm_pagecache_record_decode(const void *data, size_t len, wm_page_record *r,
                           char bufs[5][WM_PAGE_RECORD_STR])
{
    const uint8_t *p = data;
    size_t off = 2 + sizeof(r->fetched_at);

    if (len < off || memcmp(p, RECORD_MAGIC, 2) != 0)
        return -EBADMSG;
    memcpy(&r->fetched_at, p + 2, sizeof(r->fetched_at));
    for (int i = 0; i < 5; i++) {
        uint16_t n;
        if (len - off < sizeof(n))
            return -EBADMSG;
        memcpy(&n, p + off, sizeof(n));
        off += sizeof(n);
        if (n > WM_URL_MAX + 16 || len - off < n)
            return -EBADMSG;
        memcpy(bufs[i], p + off, n);
        bufs[i][n] = '\0';
        r->strs[i] = bufs[i][0] != '\0' ? bufs[i] : NULL;
        off += n;
    }
    r->body = (const char *)p + off;
    r->body_len = len - off;
    return 0;
}

/* Takes the page a previous run kept, when its index is still the
 * project's route: a restarted node serves it even when upstream is down,
 * and a pin added since is obeyed. */
static void
load(wm_pagecache *pc, struct entry *e)
{
    static char bufs[5][WM_PAGE_RECORD_STR]; /* loop thread only */
    const wm_config *cfg = pc->node->cfg;
    wm_page_record r;
    wm_store_view *v;
    const void *data;
    const char *why;
    size_t len;

    if (wm_store_view_open(pc->node->store, &v) != 0)
        return;
    if (wm_store_page(v, e->name, &data, &len) == 0 &&
        wm_pagecache_record_decode(data, len, &r, bufs) == 0 &&
        r.strs[0] != NULL && r.strs[2] != NULL &&
        wm_route_allows(cfg, e->name, r.strs[0]) &&
        wm_simplepage_parse(r.body, r.body_len,
                            r.strs[1] != NULL ? r.strs[1] : "", r.strs[2],
                            &e->page, &why) == 0) {
        e->has_page = 1;
        e->fetched_at = r.fetched_at;
        set_str(&e->index_url, r.strs[0]);
        set_str(&e->etag, r.strs[3]);
        set_str(&e->last_modified, r.strs[4]);
    }
    wm_store_view_close(&v);
}

/* Makes room under the cap: the least recently used entry goes (its page
 * stays in LMDB), unless a fetch is on its way for it; then the map stays
 * over the cap for a while, by at most the fetches in flight. */
static void
trim(wm_pagecache *pc)
{
    const void *key;
    size_t klen;
    struct entry *e;

    if (wm_map_count(pc->entries) < MAX_ENTRIES)
        return;
    e = wm_map_oldest(pc->entries, &key, &klen);
    if (e != NULL && e->fetch == NULL) {
        wm_map_remove(pc->entries, key, klen);
        entry_free(e);
    }
}

static struct entry *
entry_get(wm_pagecache *pc, const char *name)
{
    size_t len = strlen(name);
    struct entry *e = wm_map_touch(pc->entries, name, len);

    if (e != NULL)
        return e;
    trim(pc);
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->pc = pc;
    snprintf(e->name, sizeof(e->name), "%s", name);
    load(pc, e);
    if (wm_map_put(pc->entries, name, len, e) != 0) {
        entry_free(e);
        return NULL;
    }
    return e;
}

/* --- fetching */

static void
notify(wm_pagecache *pc, const char *project, int changed)
{
    char name[WM_PROJECT_MAX + 1];

    /* A listener may make the cache drop this entry: pass a copy. */
    snprintf(name, sizeof(name), "%s", project);
    for (size_t i = 0; i < pc->nlisteners; i++)
        pc->listeners[i].fn(pc->listeners[i].arg, name, changed);
}

static int
needs_fetch(const wm_pagecache *pc, const struct entry *e, time_t now)
{
    const wm_config *cfg = pc->node->cfg;

    if (cfg->nindexes == 0 || e->fetch != NULL || now < e->retry_at ||
        now < e->absent_until)
        return 0;
    return !e->has_page || now - e->fetched_at >= (time_t)cfg->page_ttl_s;
}

/* Starts the fetch that E needs: a revalidation of its page at the index
 * it came from, or the first index of its route. */
static void
fetch_start(wm_pagecache *pc, struct entry *e)
{
    const wm_config *cfg = pc->node->cfg;
    int pinned;

    e->norder = wm_route(cfg, e->name, e->order, &pinned);
    if (e->norder > sizeof(e->order) / sizeof(e->order[0]))
        e->norder = sizeof(e->order) / sizeof(e->order[0]);
    e->at = 0;
    if (e->has_page) {
        for (size_t i = 0; i < e->norder; i++) {
            if (strcmp(cfg->indexes[e->order[i]].url, e->index_url) == 0) {
                e->at = i;
                page_fetch(e, e->order[i], 1);
                return;
            }
        }
        drop_page(e); /* its index is no longer the route */
    }
    if (e->norder == 0) {
        e->absent_until = time(NULL) + ABSENT_TTL_S;
        return;
    }
    page_fetch(e, e->order[0], 0);
}

static void page_done(void *arg, const wm_xfer_result *r);

/* Starts fetching E's page from index IX; CONDITIONAL revalidates the page
 * E holds from it. */
static void
page_fetch(struct entry *e, size_t ix, int conditional)
{
    wm_pagecache *pc = e->pc;
    const wm_config *cfg = pc->node->cfg;
    char url[WM_URL_MAX + WM_PROJECT_MAX + 8];
    char inm[512], ims[512];
    const char *headers[4] = {PAGE_ACCEPT, NULL, NULL, NULL};
    size_t n = 1;

    snprintf(url, sizeof(url), "%s%s/", cfg->indexes[ix].url, e->name);
    if (conditional && e->etag != NULL) {
        snprintf(inm, sizeof(inm), "If-None-Match: %s", e->etag);
        headers[n++] = inm;
    }
    if (conditional && e->last_modified != NULL) {
        snprintf(ims, sizeof(ims), "If-Modified-Since: %s", e->last_modified);
        headers[n++] = ims;
    }
    e->fetch = wm_upstream_get(pc->up, url, headers, PAGE_BODY_MAX,
                               cfg->timeout_s, page_done, e);
    if (e->fetch == NULL) {
        snprintf(e->error, sizeof(e->error), "cannot start an upstream request");
        e->retry_at = time(NULL) + RETRY_AFTER_S;
        return;
    }
    atomic_fetch_add(&pc->node->counters.upstream_pages, 1);
}

/* A 200: keep the page when it parses. Returns 0, or -1 when it is no
 * simple page (an upstream error), with *WHY set. */
static int
take_page(struct entry *e, const wm_xfer_result *r, time_t now,
          const char **why)
{
    const char *base = r->effective_url != NULL ? r->effective_url : r->url;
    const char *index_url = e->pc->node->cfg->indexes[e->order[e->at]].url;
    wm_simplepage page;

    if (wm_simplepage_parse(r->body, r->len,
                            r->content_type != NULL ? r->content_type : "",
                            base, &page, why) != 0)
        return -1;
    wm_page_record rec = {
        now,
        {index_url, r->content_type, base, r->etag, r->last_modified},
        r->body,
        r->len};
    drop_page(e);
    e->page = page;
    e->has_page = 1;
    e->fetched_at = now;
    e->warned = 0;
    e->error[0] = '\0';
    set_str(&e->index_url, index_url);
    set_str(&e->etag, r->etag);
    set_str(&e->last_modified, r->last_modified);
    persist(e->pc, e, &rec);
    wm_debug("upstream: %s: %zu files from %s", e->name, e->page.nfiles,
             r->url);
    return 0;
}

/* Down, slow or broken: serve what we have (stale-if-error). */
static void
page_failed(struct entry *e, const wm_xfer_result *r, const char *why,
            time_t now)
{
    /* Transfer failures are counted where they happen; HTTP errors here. */
    atomic_fetch_add(&e->pc->node->counters.upstream_errors, r->rc == 0);
    e->retry_at = now + RETRY_AFTER_S;
    if (why != NULL)
        snprintf(e->error, sizeof(e->error), "upstream %s: %s", r->url, why);
    else if (r->rc != 0)
        snprintf(e->error, sizeof(e->error), "%s", r->why);
    else
        snprintf(e->error, sizeof(e->error), "upstream %s: HTTP %ld", r->url,
                 r->status);
    if (e->has_page && !e->warned) {
        wm_warn("%s; serving the page fetched %lds ago", e->error,
                (long)(now - e->fetched_at));
        e->warned = 1;
    } else if (!e->has_page) {
        wm_warn("%s", e->error);
    }
}

static void
page_done(void *arg, const wm_xfer_result *r)
{
    struct entry *e = arg;
    time_t now = time(NULL);
    const char *why = NULL;
    int changed = 0, pinned;

    e->fetch = NULL;
    if (r->rc == 0 && r->status == 200) {
        if (take_page(e, r, now, &why) == 0) {
            notify(e->pc, e->name, 1);
            return;
        }
    } else if (r->rc == 0 && r->status == 304) {
        e->fetched_at = now;
        e->warned = 0;
        notify(e->pc, e->name, 0);
        return;
    } else if (r->rc == 0 && (r->status == 404 || r->status == 410)) {
        wm_route(e->pc->node->cfg, e->name, e->order, &pinned);
        if (!pinned && !e->has_page && e->at + 1 < e->norder) {
            e->at++;
            page_fetch(e, e->order[e->at], 0);
            if (e->fetch != NULL)
                return; /* the waiters wait on */
        }
        changed = e->has_page; /* gone upstream: stop offering its files */
        drop_page(e);
        e->error[0] = '\0';
        e->absent_until = now + ABSENT_TTL_S;
        notify(e->pc, e->name, changed);
        return;
    }
    page_failed(e, r, why, now);
    notify(e->pc, e->name, 0);
}

/* --- lookups */

static void
lookup(wm_pagecache *pc, const char *project, wm_pageinfo *info, int fetch)
{
    struct entry *e = entry_get(pc, project);

    memset(info, 0, sizeof(*info));
    info->owned = wm_route_cluster_owned(pc->node->cfg, project);
    if (e == NULL) {
        info->error = "out of memory";
        return;
    }
    if (fetch && needs_fetch(pc, e, time(NULL)))
        fetch_start(pc, e);
    info->page = e->has_page ? &e->page : NULL;
    info->pending = !e->has_page && e->fetch != NULL;
    if (!e->has_page && e->fetch == NULL && e->error[0] != '\0')
        info->error = e->error;
}

void
wm_pagecache_get(wm_pagecache *pc, const char *project, wm_pageinfo *info)
{
    lookup(pc, project, info, 1);
}

void
wm_pagecache_peek(wm_pagecache *pc, const char *project, wm_pageinfo *info)
{
    lookup(pc, project, info, 0);
}

const wm_upfile *
wm_pagecache_named(wm_pagecache *pc, const char *project, const char *filename)
{
    struct entry *e = wm_map_get(pc->entries, project, strlen(project));

    for (size_t i = 0; e != NULL && e->has_page && i < e->page.nfiles; i++)
        if (strcmp(e->page.files[i].filename, filename) == 0)
            return &e->page.files[i];
    return NULL;
}

const wm_upfile *
wm_pagecache_file(wm_pagecache *pc, const char *project, const uint8_t *sha,
                  const char *filename)
{
    const wm_upfile *f = wm_pagecache_named(pc, project, filename);

    if (f == NULL || !f->has_sha256 ||
        memcmp(f->sha256, sha, WM_SHA256_LEN) != 0)
        return NULL;
    return f;
}

/* --- life cycle */

int
wm_pagecache_new(wm_pagecache **out, wm_node *node, wm_upstream *up)
{
    wm_pagecache *pc = calloc(1, sizeof(*pc));

    *out = NULL;
    if (pc == NULL || (pc->entries = wm_map_new()) == NULL) {
        free(pc);
        return -ENOMEM;
    }
    pc->node = node;
    pc->up = up;
    *out = pc;
    return 0;
}

int
wm_pagecache_listen(wm_pagecache *pc, wm_page_fn fn, void *arg)
{
    if (pc->nlisteners == MAX_LISTENERS)
        return -ENOMEM;
    pc->listeners[pc->nlisteners].fn = fn;
    pc->listeners[pc->nlisteners++].arg = arg;
    return 0;
}

void
wm_pagecache_destroy(wm_pagecache **pcp)
{
    if (pcp == NULL || *pcp == NULL)
        return;
    wm_map_destroy(&(*pcp)->entries, entry_free);
    free(*pcp);
    *pcp = NULL;
}
