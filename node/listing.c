/*
 * The listing rules (listing.h). Pages hold at most a few thousand files,
 * so lookups between the three inputs are linear scans per file made
 * once per rendering of a prepared page.
 */
#include "listing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wheelname.h"

struct list {
    wm_listed *v;
    size_t n, cap;
};

static int
add(struct list *l, const wm_listed *item)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        wm_listed *g = realloc(l->v, cap * sizeof(*g));
        if (g == NULL)
            return -ENOMEM;
        l->v = g;
        l->cap = cap;
    }
    l->v[l->n++] = *item;
    return 0;
}

int
wm_listing_version(const char *filename, char *out, size_t sz)
{
    static const char *const exts[] = {".tar.gz", ".zip", ".tar.bz2",
                                       ".tgz"};
    wm_wheelname wn;
    const char *dash, *end = NULL;
    size_t n;

    if (wm_wheelname_parse(filename, &wn, NULL) == 0) {
        snprintf(out, sz, "%s", wn.version);
        return 0;
    }
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]) && end == NULL;
         i++) {
        size_t fl = strlen(filename), el = strlen(exts[i]);
        if (fl > el && strcmp(filename + fl - el, exts[i]) == 0)
            end = filename + fl - el;
    }
    /* An sdist: the version follows the last '-' (names normalise '-'
     * to '_' in sdist file names under PEP 625; older ones vary). */
    if (end == NULL)
        return -1;
    dash = NULL;
    for (const char *p = filename; p < end; p++)
        if (*p == '-')
            dash = p;
    if (dash == NULL || dash + 1 >= end)
        return -1;
    n = (size_t)(end - dash - 1);
    if (n + 1 > sz)
        return -1;
    memcpy(out, dash + 1, n);
    out[n] = '\0';
    return 0;
}

/* True when VERSION carries a PEP 440 local label. */
static int
has_local_label(const char *version)
{
    return strchr(version, '+') != NULL;
}

/* Upstream lists a file of VERSION. */
static int
upstream_has_version(const wm_simplepage *up, const char *version)
{
    char v[WM_WHEELNAME_MAX + 1];

    for (size_t i = 0; i < up->nfiles; i++)
        if (wm_listing_version(up->files[i].filename, v, sizeof(v)) == 0 &&
            strcmp(v, version) == 0)
            return 1;
    return 0;
}

static const wm_upfile *
upstream_named(const wm_simplepage *up, const char *filename)
{
    for (size_t i = 0; up != NULL && i < up->nfiles; i++)
        if (strcmp(up->files[i].filename, filename) == 0)
            return &up->files[i];
    return NULL;
}

static const wm_file_info *
local_by_sha(const wm_listing_in *in, const uint8_t *sha)
{
    for (size_t i = 0; i < in->nlocal; i++)
        if (memcmp(in->local[i].sha256, sha, WM_SHA256_LEN) == 0)
            return &in->local[i];
    return NULL;
}

static int
held(const wm_listing_in *in, const uint8_t *sha)
{
    return local_by_sha(in, sha) != NULL ||
           (in->peers_hold != NULL && in->peers_hold(in->arg, sha));
}

const char *
wm_conflict_reason(enum wm_conflict why)
{
    switch (why) {
    case WM_CONFLICT_NAME:
        return "upstream lists this filename with other bytes";
    case WM_CONFLICT_VERSION:
        return "a version of an upstream project that upstream does not "
               "have, without a local label";
    default:
        return "another claim names this filename with other bytes";
    }
}

static void
report(const wm_listing_in *in, const wm_claimed *c, enum wm_conflict why)
{
    if (in->conflict != NULL)
        in->conflict(in->arg, c->filename, c->publisher, why);
}

/* An upstream file as the page shows it. Wheels with a known sha256 are
 * fetched through this node; sdists and unhashed links go to upstream. */
static void
from_upstream(const wm_listing_in *in, const wm_upfile *u, wm_listed *l)
{
    const wm_file_info *mine =
        u->has_sha256 ? local_by_sha(in, u->sha256) : NULL;

    memset(l, 0, sizeof(*l));
    l->filename = u->filename;
    l->sha256 = u->has_sha256 ? u->sha256 : NULL;
    l->url = u->is_wheel && u->has_sha256 ? NULL : u->url;
    l->requires_python = u->requires_python;
    l->yanked = u->yanked;
    l->size = u->size;
    if (u->has_metadata && u->metadata_sha256_known)
        l->meta_sha256 = u->metadata_sha256;
    if (mine != NULL && strcmp(mine->filename, u->filename) == 0) {
        l->size = mine->size;
        if (mine->meta_size > 0)
            l->meta_sha256 = mine->meta_sha256; /* served from here */
    }
    l->held = l->sha256 != NULL && held(in, l->sha256);
}

static void
from_claim(const wm_listing_in *in, const wm_claimed *c, wm_listed *l)
{
    memset(l, 0, sizeof(*l));
    l->filename = c->filename;
    l->sha256 = c->sha256;
    l->size = c->size;
    l->requires_python = c->requires_python[0] ? c->requires_python : NULL;
    if (c->local != NULL && c->local->meta_size > 0)
        l->meta_sha256 = c->local->meta_sha256;
    l->held = 1;
}

/* A claim that names a file: signed by a publisher, bytes reachable. */
static int
counts(const wm_claimed *c)
{
    return c->by_publisher && c->held;
}

/* True when another counting claim names C's filename with other bytes. */
static int
claims_disagree(const wm_listing_in *in, const wm_claimed *c)
{
    for (size_t i = 0; i < in->nclaims; i++)
        if (counts(&in->claims[i]) &&
            strcmp(in->claims[i].filename, c->filename) == 0 &&
            memcmp(in->claims[i].sha256, c->sha256, WM_SHA256_LEN) != 0)
            return 1;
    return 0;
}

/* True when an earlier counting claim names the same file already. */
static int
listed_before(const wm_listing_in *in, size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (counts(&in->claims[i]) &&
            strcmp(in->claims[i].filename, in->claims[k].filename) == 0 &&
            memcmp(in->claims[i].sha256, in->claims[k].sha256,
                   WM_SHA256_LEN) == 0)
            return 1;
    return 0;
}

static int
cmp_listed(const void *a, const void *b)
{
    return strcmp(((const wm_listed *)a)->filename,
                  ((const wm_listed *)b)->filename);
}

long
wm_listing_build(const wm_listing_in *in, wm_listed **out)
{
    const wm_simplepage *up = in->upstream;
    struct list l = {NULL, 0, 0};
    size_t nup = 0;
    wm_listed item;
    char version[WM_WHEELNAME_MAX + 1];

    *out = NULL;
    for (size_t i = 0; up != NULL && i < up->nfiles; i++) {
        from_upstream(in, &up->files[i], &item);
        if (add(&l, &item) != 0)
            goto oom;
        nup++;
    }
    for (size_t i = 0; i < in->nclaims && !in->pinned; i++) {
        const wm_claimed *c = &in->claims[i];
        const wm_upfile *u = upstream_named(up, c->filename);
        if (!counts(c) || listed_before(in, i))
            continue;
        if (u != NULL) {
            if (!u->has_sha256 ||
                memcmp(u->sha256, c->sha256, WM_SHA256_LEN) != 0)
                report(in, c, WM_CONFLICT_NAME);
            continue; /* listed as upstream's, or not at all */
        }
        if (claims_disagree(in, c)) {
            report(in, c, WM_CONFLICT_CLAIMS);
            continue;
        }
        if (up != NULL &&
            (wm_listing_version(c->filename, version, sizeof(version)) != 0 ||
             (!has_local_label(version) &&
              !upstream_has_version(up, version)))) {
            report(in, c, WM_CONFLICT_VERSION);
            continue;
        }
        from_claim(in, c, &item);
        if (add(&l, &item) != 0)
            goto oom;
    }
    if (l.n > nup + 1)
        qsort(l.v + nup, l.n - nup, sizeof(*l.v), cmp_listed);
    *out = l.v;
    return (long)l.n;
oom:
    free(l.v);
    return -ENOMEM;
}
