/*
 * The catalog. A listing is built from scratch when asked (O(the
 * project's files)); /simple/ pages are kept rendered per project and
 * dropped when the project changes: its upstream page, its files in the
 * store, a claim naming it. Members coming or going and trust reloads
 * drop them all.
 */
#include "catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listing.h"
#include "log.h"
#include "map.h"
#include "pages.h"
#include "route.h"
#include "wheelname.h"

#define MAX_PREPARED 1024
#define MAX_LOGGED   4096
#define MAX_HOLDERS  64

struct prepared {
    wm_blob *page[2]; /* HTML, JSON */
};

/* Calls waiting for a project's upstream page. */
struct parked {
    wm_call *calls;
};

/* One listing and what it points into. */
struct gathered {
    wm_file_info *local;
    size_t nlocal, cap_local;
    wm_claimed *claims;
    size_t nclaims, cap_claims;
    wm_listed *files;
    long nfiles;
    const char *error; /* no page because upstream failed */
};

struct wm_catalog {
    wm_catalog_parts p;
    wm_map *prepared, *parked, *logged;
};

static void
prepared_free(void *arg)
{
    struct prepared *pr = arg;

    wm_blob_release(pr->page[0]);
    wm_blob_release(pr->page[1]);
    free(pr);
}

void
wm_catalog_changed(void *arg, const char *project)
{
    wm_catalog *cat = arg;

    struct prepared *pr;
    void *cur = NULL;
    const void *key;
    size_t klen;

    if (project != NULL) {
        pr = wm_map_remove(cat->prepared, project, strlen(project));
        if (pr != NULL)
            prepared_free(pr);
        return;
    }
    while ((pr = wm_map_next(cat->prepared, &cur, &key, &klen)) != NULL) {
        wm_map_remove(cat->prepared, key, klen);
        prepared_free(pr);
    }
}

void
wm_catalog_stored(void *arg, const wm_file_info *info, const wm_entry *logged)
{
    (void)logged;
    wm_catalog_changed(arg, info->project);
}

/* --- gathering */

static int
collect_local(const wm_file_info *f, void *arg)
{
    struct gathered *g = arg;

    if (g->nlocal == g->cap_local) {
        size_t cap = g->cap_local ? 2 * g->cap_local : 16;
        wm_file_info *more = realloc(g->local, cap * sizeof(*more));
        if (more == NULL)
            return -1;
        g->local = more;
        g->cap_local = cap;
    }
    g->local[g->nlocal++] = *f;
    return 0;
}

static int
add_claim(struct gathered *g, const wm_claimed *c)
{
    if (g->nclaims == g->cap_claims) {
        size_t cap = g->cap_claims ? 2 * g->cap_claims : 16;
        wm_claimed *more = realloc(g->claims, cap * sizeof(*more));
        if (more == NULL)
            return -1;
        g->claims = more;
        g->cap_claims = cap;
    }
    g->claims[g->nclaims++] = *c;
    return 0;
}

/* True when ID is this node or a member that may be asked for bytes. */
static int
live(const wm_catalog *cat, const uint8_t *id)
{
    if (memcmp(id, wm_identity_pubkey(cat->p.node->id), WM_PUBKEY_LEN) == 0)
        return 1;
    return cat->p.members != NULL &&
           wm_member_usable(wm_members_get(cat->p.members, id));
}

struct claim_walk {
    wm_catalog *cat;
    struct gathered *g;
};

static void
remote_claim(void *arg, const uint8_t *sha, const wm_holding *h)
{
    struct claim_walk *w = arg;
    wm_claimed c;

    memset(&c, 0, sizeof(c));
    c.filename = h->claim->filename;
    c.sha256 = sha;
    c.size = h->size;
    c.requires_python = h->claim->requires_python;
    c.publisher = h->claim->publisher;
    c.by_publisher =
        wm_trust_is_publisher(w->cat->p.trust, h->claim->publisher);
    c.held = live(w->cat, h->origin);
    add_claim(w->g, &c);
}

static int
peers_hold(void *arg, const uint8_t *sha)
{
    wm_catalog *cat = arg;
    wm_holding hs[MAX_HOLDERS];
    size_t n = wm_index_holders(cat->p.index, sha, hs, MAX_HOLDERS);

    for (size_t i = 0; i < n && i < MAX_HOLDERS; i++)
        if (live(cat, hs[i].origin))
            return 1;
    return 0;
}

/* Logs once per key KEY (KLEN bytes) in the bounded set of lines logged;
 * returns 1 when it is new. */
static int
first_time(wm_catalog *cat, const void *key, size_t klen)
{
    if (wm_map_get(cat->logged, key, klen) != NULL)
        return 0;
    while (wm_map_count(cat->logged) >= MAX_LOGGED) {
        const void *k;
        size_t kl;
        wm_map_oldest(cat->logged, &k, &kl);
        wm_map_remove(cat->logged, k, kl);
    }
    wm_map_put(cat->logged, key, klen, cat);
    return 1;
}

static void
conflict(void *arg, const char *filename, const uint8_t *publisher,
         enum wm_conflict why)
{
    wm_catalog *cat = arg;
    uint8_t key[WM_WHEELNAME_MAX + WM_PUBKEY_LEN];
    size_t flen = strnlen(filename, WM_WHEELNAME_MAX);
    char hex[WM_PUBKEY_HEX];
    wm_wheelname wn;

    atomic_fetch_add(&cat->p.node->counters.listing_conflicts, 1);
    memcpy(key, filename, flen);
    memcpy(key + flen, publisher, WM_PUBKEY_LEN);
    if (!first_time(cat, key, flen + WM_PUBKEY_LEN))
        return;
    wm_hex_encode(publisher, WM_PUBKEY_LEN, hex);
    wm_warn("catalog: not listing %s as named by %.16s: %s", filename, hex,
            wm_conflict_reason(why));
    /* A project the cluster published that now appears upstream. */
    if (why == WM_CONFLICT_VERSION &&
        wm_wheelname_parse(filename, &wn, NULL) == 0 &&
        first_time(cat, wn.project, strlen(wn.project)))
        wm_warn("catalog: %s now appears upstream, so its versions that "
                "upstream lacks are hidden; if the cluster owns %s, add it "
                "to cluster.projects",
                wn.project, wn.project);
}

/* Gathers and builds PROJECT's listing into G, with the upstream page of
 * INFO. Returns 0 or -ENOMEM. */
static int
gather(wm_catalog *cat, const char *project, const wm_pageinfo *info,
       struct gathered *g)
{
    const uint8_t *self = wm_identity_pubkey(cat->p.node->id);
    struct claim_walk w = {cat, g};
    size_t order[8];
    wm_store_view *v;
    wm_listing_in in;
    int pinned;

    memset(g, 0, sizeof(*g));
    if (wm_store_view_open(cat->p.node->store, &v) != 0)
        return -EIO;
    wm_store_each_file(v, project, collect_local, g);
    wm_store_view_close(&v);
    /* Claims of this node's store: its own puts, and wheels it keeps with
     * a publisher's claim. */
    for (size_t i = 0; i < g->nlocal; i++) {
        const wm_file_info *f = &g->local[i];
        wm_claimed c;
        int own = f->source == WM_SOURCE_PUT;
        if (!own && !f->has_claim)
            continue;
        memset(&c, 0, sizeof(c));
        c.filename = f->filename;
        c.sha256 = f->sha256;
        c.size = f->size;
        c.requires_python = f->requires_python;
        c.publisher = own ? self : f->claim_publisher;
        c.by_publisher = own || wm_trust_is_publisher(cat->p.trust,
                                                      f->claim_publisher);
        c.local = f;
        c.held = 1;
        if (add_claim(g, &c) != 0)
            return -ENOMEM;
    }
    wm_index_each_claimed(cat->p.index, project, remote_claim, &w);
    wm_route(cat->p.node->cfg, project, order, &pinned);
    memset(&in, 0, sizeof(in));
    in.upstream = info->owned ? NULL : info->page;
    in.pinned = pinned;
    in.local = g->local;
    in.nlocal = g->nlocal;
    in.claims = g->claims;
    in.nclaims = g->nclaims;
    in.peers_hold = peers_hold;
    in.arg = cat;
    in.conflict = conflict;
    g->error = info->error;
    g->nfiles = wm_listing_build(&in, &g->files);
    return g->nfiles < 0 ? -ENOMEM : 0;
}

static void
gathered_free(struct gathered *g)
{
    free(g->local);
    free(g->claims);
    free(g->files);
}

/* --- /simple/<project>/ */

static void
park(wm_catalog *cat, const char *project, wm_call *c)
{
    size_t len = strlen(project);
    struct parked *p = wm_map_get(cat->parked, project, len);

    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL || wm_map_put(cat->parked, project, len, p) != 0) {
            free(p);
            wm_call_fail(c, 503, "out of memory");
            return;
        }
    }
    c->next = p->calls;
    p->calls = c;
}

void
wm_catalog_page_call(void *arg, wm_call *c)
{
    wm_catalog *cat = arg;
    int fmt = c->json ? 1 : 0;
    size_t plen = strlen(c->project), len = 0;
    struct prepared *pr = wm_map_touch(cat->prepared, c->project, plen);
    struct gathered g;
    wm_pageinfo info;
    char *body;

    /* Ask the page cache even with a page prepared: a stale page gets
     * revalidated (and answered meanwhile). */
    wm_pagecache_get(cat->p.pages, c->project, &info);
    if (pr != NULL && pr->page[fmt] != NULL) {
        c->blob = wm_blob_ref(pr->page[fmt]);
        wm_call_answer(c);
        return;
    }
    if (info.pending) {
        park(cat, c->project, c);
        return;
    }
    if (gather(cat, c->project, &info, &g) != 0) {
        gathered_free(&g);
        wm_call_fail(c, 503, "cannot read the store");
        return;
    }
    if (g.nfiles == 0) {
        if (g.error != NULL)
            wm_call_fail(c, 502, "%s", g.error);
        else
            wm_call_fail(c, 404, "no such project");
        gathered_free(&g);
        return;
    }
    body = wm_page_project(c->project, g.files, (size_t)g.nfiles,
                           fmt ? WM_PAGE_JSON : WM_PAGE_HTML, &len);
    gathered_free(&g);
    c->blob = body != NULL ? wm_blob_new(body, len) : NULL;
    free(body);
    if (c->blob == NULL) {
        wm_call_fail(c, 500, "cannot render the page");
        return;
    }
    if (pr == NULL) {
        while (wm_map_count(cat->prepared) >= MAX_PREPARED) {
            const void *k;
            size_t kl;
            struct prepared *old = wm_map_oldest(cat->prepared, &k, &kl);
            wm_map_remove(cat->prepared, k, kl);
            prepared_free(old);
        }
        pr = calloc(1, sizeof(*pr));
        if (pr != NULL &&
            wm_map_put(cat->prepared, c->project, plen, pr) != 0) {
            free(pr);
            pr = NULL;
        }
    }
    if (pr != NULL)
        pr->page[fmt] = wm_blob_ref(c->blob);
    wm_call_answer(c);
}

/* Why upstream's page INFO of PROJECT would keep a put of the wheel in
 * C off it, into WHY; 0 when it would list it. */
static int
put_refused(wm_catalog *cat, const wm_call *c, const wm_pageinfo *info,
            char *why, size_t whysz)
{
    const wm_config *cfg = cat->p.node->cfg;
    const wm_file_info *f = &c->info;
    const wm_upfile *u;
    char version[WM_WHEELNAME_MAX + 1], v[WM_WHEELNAME_MAX + 1], sha[65];
    size_t order[8];
    int pinned, found = 0;

    wm_route(cfg, f->project, order, &pinned);
    if (pinned) {
        snprintf(why, whysz,
                 "%s is pinned to %s (upstream.indexes): only that index's "
                 "files are listed",
                 f->project, cfg->indexes[order[0]].url);
        return 1;
    }
    if (info->owned || info->page == NULL)
        return 0;
    u = wm_pagecache_named(cat->p.pages, f->project, f->filename);
    if (u != NULL) {
        if (u->has_sha256 && memcmp(u->sha256, f->sha256, WM_SHA256_LEN) == 0)
            return 0;
        wm_hex_encode(u->sha256, WM_SHA256_LEN, sha);
        snprintf(why, whysz,
                 "upstream lists %s with other bytes (sha256 %s); a wheel "
                 "of yours needs another name",
                 f->filename, u->has_sha256 ? sha : "unknown");
        return 1;
    }
    if (wm_listing_version(f->filename, version, sizeof(version)) != 0)
        return 0;
    if (strchr(version, '+') != NULL)
        return 0; /* a local version: the cluster's own */
    for (size_t i = 0; i < info->page->nfiles && !found; i++)
        found = wm_listing_version(info->page->files[i].filename, v,
                                   sizeof(v)) == 0 &&
                strcmp(v, version) == 0;
    if (found)
        return 0;
    snprintf(why, whysz,
             "upstream has %s but not version %s: publish it as %s+LABEL "
             "(a local version), or add %s to cluster.projects if the "
             "cluster owns it",
             f->project, version, version, f->project);
    return 1;
}

void
wm_catalog_put_call(void *arg, wm_call *c)
{
    wm_catalog *cat = arg;
    wm_pageinfo info;
    char why[300];
    int rc;

    wm_pagecache_get(cat->p.pages, c->info.project, &info);
    if (info.pending) {
        park(cat, c->info.project, c);
        return;
    }
    if (put_refused(cat, c, &info, why, sizeof(why))) {
        c->result = -EPERM;
        wm_call_fail(c, 409, "%s", why);
        return;
    }
    rc = wm_commit_put(cat->p.commit, c);
    if (rc != 0) { /* else answered once it is stored */
        c->result = rc;
        wm_call_answer(c);
    }
}

void
wm_catalog_page_done(void *arg, const char *project, int changed)
{
    wm_catalog *cat = arg;
    size_t len = strlen(project);
    struct parked *p;
    wm_call *c;

    if (changed)
        wm_catalog_changed(cat, project);
    p = wm_map_remove(cat->parked, project, len);
    while (p != NULL && p->calls != NULL) {
        c = p->calls;
        p->calls = c->next;
        c->next = NULL;
        if (c->op == WM_OP_PUT)
            wm_catalog_put_call(cat, c);
        else
            wm_catalog_page_call(cat, c);
    }
    free(p);
}

/* --- /links/ and /api/files: what is held, here or on live members */

struct projects {
    char (*v)[WM_PROJECT_MAX + 1];
    size_t n, cap;
};

static void
add_project(void *arg, const char *project)
{
    struct projects *ps = arg;

    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->v[i], project) == 0)
            return;
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 16;
        void *more = realloc(ps->v, cap * sizeof(*ps->v));
        if (more == NULL)
            return;
        ps->v = more;
        ps->cap = cap;
    }
    snprintf(ps->v[ps->n++], sizeof(ps->v[0]), "%s", project);
}

static int
store_project(const char *project, void *arg)
{
    add_project(arg, project);
    return 0;
}

/* The projects to list: PROJECT alone, or every one the store holds or a
 * claim names. */
static void
projects_of(wm_catalog *cat, const char *project, struct projects *ps)
{
    wm_store_view *v;

    memset(ps, 0, sizeof(*ps));
    if (project[0] != '\0') {
        add_project(ps, project);
        return;
    }
    if (wm_store_view_open(cat->p.node->store, &v) == 0) {
        wm_store_each_project(v, store_project, ps);
        wm_store_view_close(&v);
    }
    wm_index_each_project(cat->p.index, add_project, ps);
}

/* Calls FN for each held file of each project CALL asks for; the pages
 * come from the cache as they are (nothing is fetched for a flat page). */
typedef int (*held_fn)(void *arg, const char *project, const wm_listed *l,
                       const struct gathered *g);

static int
each_held(wm_catalog *cat, const char *project, held_fn fn, void *arg)
{
    struct projects ps;
    int rc = 0;

    projects_of(cat, project, &ps);
    for (size_t i = 0; i < ps.n && rc == 0; i++) {
        struct gathered g;
        wm_pageinfo info;
        /* One project: its page as fresh as a page request gets it. All
         * of them: the pages as they are, or a flat page would send a
         * request upstream per project. */
        if (project[0] != '\0')
            wm_pagecache_get(cat->p.pages, ps.v[i], &info);
        else
            wm_pagecache_peek(cat->p.pages, ps.v[i], &info);
        rc = gather(cat, ps.v[i], &info, &g);
        for (long k = 0; rc == 0 && k < g.nfiles; k++)
            if (g.files[k].held && g.files[k].sha256 != NULL)
                rc = fn(arg, ps.v[i], &g.files[k], &g);
        gathered_free(&g);
    }
    free(ps.v);
    return rc;
}

/* Held files for /links/, copied out of each project's listing. */
struct link {
    char *filename, *requires_python, *yanked;
    uint8_t sha[WM_SHA256_LEN];
};

struct links {
    struct link *v;
    size_t n, cap;
};

static char *
dup_or_null(const char *s, int *failed)
{
    char *d = s != NULL ? strdup(s) : NULL;

    *failed |= s != NULL && d == NULL;
    return d;
}

static int
add_link(void *arg, const char *project, const wm_listed *l,
         const struct gathered *g)
{
    struct links *ls = arg;
    struct link *k;
    int failed = 0;

    if (ls->n == ls->cap) {
        size_t cap = ls->cap ? 2 * ls->cap : 64;
        struct link *more = realloc(ls->v, cap * sizeof(*more));
        if (more == NULL)
            return -ENOMEM;
        ls->v = more;
        ls->cap = cap;
    }
    k = &ls->v[ls->n++];
    memcpy(k->sha, l->sha256, WM_SHA256_LEN);
    k->filename = dup_or_null(l->filename, &failed);
    k->requires_python = dup_or_null(l->requires_python, &failed);
    k->yanked = dup_or_null(l->yanked, &failed);
    return failed ? -ENOMEM : 0;
}

static void
links_free(struct links *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        free(ls->v[i].filename);
        free(ls->v[i].requires_python);
        free(ls->v[i].yanked);
    }
    free(ls->v);
}

void
wm_catalog_links_call(void *arg, wm_call *c)
{
    wm_catalog *cat = arg;
    struct links ls = {0};
    wm_listed *files = NULL;
    size_t len = 0;
    char *body = NULL;

    if (each_held(cat, c->project, add_link, &ls) == 0 &&
        (files = calloc(ls.n + 1, sizeof(*files))) != NULL) {
        for (size_t i = 0; i < ls.n; i++) {
            files[i].filename = ls.v[i].filename;
            files[i].sha256 = ls.v[i].sha;
            files[i].requires_python = ls.v[i].requires_python;
            files[i].yanked = ls.v[i].yanked;
        }
        body = wm_page_links(files, ls.n, &len);
    }
    free(files);
    links_free(&ls);
    c->blob = body != NULL ? wm_blob_new(body, len) : NULL;
    free(body);
    if (c->blob == NULL)
        wm_call_fail(c, 500, "cannot render the page");
    else
        wm_call_answer(c);
}

/* /api/files: every held file with its holders. */
struct api {
    wm_catalog *cat;
    wm_api_file *v;
    size_t n, cap;
    char **strs;
    uint8_t (**holders)[32];
};

static int
add_api(void *arg, const char *project, const wm_listed *l,
        const struct gathered *g)
{
    struct api *a = arg;
    const uint8_t *self = wm_identity_pubkey(a->cat->p.node->id);
    wm_holding hs[MAX_HOLDERS];
    size_t n = wm_index_holders(a->cat->p.index, l->sha256, hs, MAX_HOLDERS);
    wm_api_file *f;
    uint8_t(*ids)[32];
    size_t k = 0;

    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void *v = realloc(a->v, cap * sizeof(*a->v));
        void *s = realloc(a->strs, cap * 3 * sizeof(*a->strs));
        void *h = realloc(a->holders, cap * sizeof(*a->holders));
        if (v != NULL)
            a->v = v;
        if (s != NULL)
            a->strs = s;
        if (h != NULL)
            a->holders = h;
        if (v == NULL || s == NULL || h == NULL)
            return -ENOMEM;
        a->cap = cap;
    }
    f = &a->v[a->n];
    memset(f, 0, sizeof(*f));
    ids = calloc(n + 1, sizeof(*ids));
    a->strs[3 * a->n] = strdup(l->filename);
    a->strs[3 * a->n + 1] = strdup(project);
    a->strs[3 * a->n + 2] = malloc(WM_SHA256_LEN);
    a->holders[a->n] = ids;
    a->n++;
    if (ids == NULL || a->strs[3 * a->n - 3] == NULL ||
        a->strs[3 * a->n - 2] == NULL || a->strs[3 * a->n - 1] == NULL)
        return -ENOMEM;
    memcpy(a->strs[3 * a->n - 1], l->sha256, WM_SHA256_LEN);
    f->filename = a->strs[3 * a->n - 3];
    f->project = a->strs[3 * a->n - 2];
    f->sha256 = (const uint8_t *)a->strs[3 * a->n - 1];
    f->size = l->size;
    for (size_t i = 0; i < g->nlocal; i++) {
        if (memcmp(g->local[i].sha256, l->sha256, WM_SHA256_LEN) == 0) {
            f->source = g->local[i].source;
            f->size = g->local[i].size;
            memcpy(ids[k++], self, 32);
        }
    }
    for (size_t i = 0; i < n && i < MAX_HOLDERS; i++)
        if (live(a->cat, hs[i].origin))
            memcpy(ids[k++], hs[i].origin, 32);
    f->holders = (const uint8_t(*)[32])ids;
    f->nholders = k;
    return 0;
}

void
wm_catalog_files_call(void *arg, wm_call *c)
{
    wm_catalog *cat = arg;
    struct api a = {cat, NULL, 0, 0, NULL, NULL};
    size_t len = 0;
    char *body = NULL;

    if (each_held(cat, c->project, add_api, &a) == 0)
        body = wm_page_files_json(a.v, a.n, &len);
    for (size_t i = 0; i < a.n; i++) {
        free(a.strs[3 * i]);
        free(a.strs[3 * i + 1]);
        free(a.strs[3 * i + 2]);
        free(a.holders[i]);
    }
    free(a.strs);
    free(a.holders);
    free(a.v);
    c->blob = body != NULL ? wm_blob_new(body, len) : NULL;
    free(body);
    if (c->blob == NULL)
        wm_call_fail(c, 500, "cannot render the page");
    else
        wm_call_answer(c);
}

/* --- life cycle */

int
wm_catalog_new(wm_catalog **out, const wm_catalog_parts *parts)
{
    wm_catalog *cat = calloc(1, sizeof(*cat));

    *out = NULL;
    if (cat == NULL)
        return -ENOMEM;
    cat->p = *parts;
    cat->prepared = wm_map_new();
    cat->parked = wm_map_new();
    cat->logged = wm_map_new();
    if (cat->prepared == NULL || cat->parked == NULL || cat->logged == NULL) {
        wm_catalog_destroy(&cat);
        return -ENOMEM;
    }
    *out = cat;
    return 0;
}

static void
parked_free(void *arg)
{
    struct parked *p = arg;

    while (p->calls != NULL) {
        wm_call *c = p->calls;
        p->calls = c->next;
        wm_call_fail(c, 503, "node is stopping");
    }
    free(p);
}

void
wm_catalog_destroy(wm_catalog **catp)
{
    wm_catalog *cat;

    if (catp == NULL || *catp == NULL)
        return;
    cat = *catp;
    wm_map_destroy(&cat->prepared, prepared_free);
    wm_map_destroy(&cat->parked, parked_free);
    wm_map_destroy(&cat->logged, NULL);
    free(cat);
    *catp = NULL;
}
