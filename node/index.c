/*
 * The holdings logs and the maps built from them:
 *   origins:    id -> the origin's log (compact entries, in seq order) and
 *               a map of what it holds now (sha256 -> log position);
 *   by_sha:     sha256 -> the origins holding it;
 *   by_project: project -> the sha256s that some claim names there.
 * An entry is taken only in sequence (scuttlebutt), signed by its origin,
 * with a claim signed by its publisher. A new generation of an origin
 * (its data wiped) replaces its whole log.
 */
#include "index.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "map.h"
#include "wheelname.h"

struct logent {
    uint64_t seq;
    uint8_t op;
    uint8_t sha[32];
    uint64_t size;
    uint8_t root[32];
    uint8_t sig[WM_SIG_BYTES];
    wm_claim *claim; /* NULL: none */
};

struct origin {
    uint8_t id[WM_ID_LEN];
    uint64_t gen, max_seq;
    struct logent *log;
    size_t n, cap;
    wm_map *held; /* sha -> (log position + 1) */
    uint64_t files, bytes;
};

struct holders {
    struct origin **v;
    size_t n, cap;
};

struct named {
    uint8_t sha[32];
    uint32_t claims; /* holdings whose claim names this project */
};

struct project {
    struct named *v;
    size_t n, cap;
};

struct wm_index {
    wm_store *store;
    const wm_identity *self;
    uint8_t self_id[WM_ID_LEN];
    uint64_t gen;
    wm_index_trust_fn trusted;
    void *arg;
    wm_map *origins, *by_sha, *by_project;
    wm_msg *scratch;
    uint64_t rejected;
};

static int
grow(void **v, size_t *cap, size_t n, size_t size)
{
    size_t c = *cap ? *cap : 4;
    void *g;

    if (n < *cap)
        return 0;
    while (c <= n)
        c *= 2;
    g = realloc(*v, c * size);
    if (g == NULL)
        return -1;
    *v = g;
    *cap = c;
    return 0;
}

/* --- by_sha and by_project */

static void
holders_add(wm_index *ix, const uint8_t *sha, struct origin *o)
{
    struct holders *h = wm_map_get(ix->by_sha, sha, 32);

    if (h == NULL) {
        h = calloc(1, sizeof(*h));
        if (h == NULL || wm_map_put(ix->by_sha, sha, 32, h) != 0) {
            free(h);
            return;
        }
    }
    if (grow((void **)&h->v, &h->cap, h->n, sizeof(*h->v)) == 0)
        h->v[h->n++] = o;
}

static void
holders_remove(wm_index *ix, const uint8_t *sha, struct origin *o)
{
    struct holders *h = wm_map_get(ix->by_sha, sha, 32);

    for (size_t i = 0; h != NULL && i < h->n; i++) {
        if (h->v[i] == o) {
            h->v[i] = h->v[--h->n];
            break;
        }
    }
    if (h != NULL && h->n == 0) {
        wm_map_remove(ix->by_sha, sha, 32);
        free(h->v);
        free(h);
    }
}

/* The project a claim names, or NULL when its filename is no wheel. */
static const char *
claim_project(const wm_claim *c, wm_wheelname *wn)
{
    return wm_wheelname_parse(c->filename, wn, NULL) == 0 ? wn->project
                                                          : NULL;
}

static void
named_change(wm_index *ix, const wm_claim *c, const uint8_t *sha, int delta)
{
    wm_wheelname wn;
    const char *name = claim_project(c, &wn);
    size_t len;
    struct project *p;

    if (name == NULL)
        return;
    len = strlen(name);
    p = wm_map_get(ix->by_project, name, len);
    if (p == NULL && delta > 0) {
        p = calloc(1, sizeof(*p));
        if (p == NULL || wm_map_put(ix->by_project, name, len, p) != 0) {
            free(p);
            return;
        }
    }
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        if (memcmp(p->v[i].sha, sha, 32) != 0)
            continue;
        p->v[i].claims += (uint32_t)delta;
        if (p->v[i].claims == 0)
            p->v[i] = p->v[--p->n];
        goto out;
    }
    if (delta > 0 && grow((void **)&p->v, &p->cap, p->n, sizeof(*p->v)) == 0) {
        memcpy(p->v[p->n].sha, sha, 32);
        p->v[p->n++].claims = 1;
    }
out:
    if (p->n == 0) {
        wm_map_remove(ix->by_project, name, len);
        free(p->v);
        free(p);
    }
}

/* --- origins */

static void
origin_clear(wm_index *ix, struct origin *o)
{
    void *cur = NULL;
    const void *sha;
    uintptr_t pos;

    while ((pos = (uintptr_t)wm_map_next(o->held, &cur, &sha, NULL)) != 0) {
        const struct logent *l = &o->log[pos - 1];
        holders_remove(ix, sha, o);
        if (l->claim != NULL)
            named_change(ix, l->claim, sha, -1);
    }
    wm_map_destroy(&o->held, NULL);
    o->held = wm_map_new();
    for (size_t i = 0; i < o->n; i++)
        free(o->log[i].claim);
    o->n = 0;
    o->max_seq = 0;
    o->files = o->bytes = 0;
}

static struct origin *
origin_get(wm_index *ix, const uint8_t *id)
{
    struct origin *o = wm_map_get(ix->origins, id, WM_ID_LEN);

    if (o != NULL)
        return o;
    o = calloc(1, sizeof(*o));
    if (o == NULL || (o->held = wm_map_new()) == NULL ||
        wm_map_put(ix->origins, id, WM_ID_LEN, o) != 0) {
        if (o != NULL)
            wm_map_destroy(&o->held, NULL);
        free(o);
        return NULL;
    }
    memcpy(o->id, id, WM_ID_LEN);
    return o;
}

static void
origin_free(void *arg)
{
    struct origin *o = arg;

    for (size_t i = 0; i < o->n; i++)
        free(o->log[i].claim);
    free(o->log);
    wm_map_destroy(&o->held, NULL);
    free(o);
}

/* Applies log entry L (just appended at POS) to the maps. */
static void
apply(wm_index *ix, struct origin *o, size_t pos)
{
    const struct logent *l = &o->log[pos];
    uintptr_t old = (uintptr_t)wm_map_get(o->held, l->sha, 32);

    if (old != 0) { /* what it held under this sha256 before */
        const struct logent *p = &o->log[old - 1];
        if (p->claim != NULL)
            named_change(ix, p->claim, l->sha, -1);
        wm_map_remove(o->held, l->sha, 32);
        holders_remove(ix, l->sha, o);
        o->files--;
        o->bytes -= p->size;
    }
    if (l->op != WM_OP_ADD)
        return;
    if (wm_map_put(o->held, l->sha, 32, (void *)(uintptr_t)(pos + 1)) != 0)
        return;
    holders_add(ix, l->sha, o);
    if (l->claim != NULL)
        named_change(ix, l->claim, l->sha, +1);
    o->files++;
    o->bytes += l->size;
}

static void
to_entry(const struct origin *o, const struct logent *l, wm_entry *e)
{
    memset(e, 0, sizeof(*e));
    memcpy(e->origin, o->id, WM_ID_LEN);
    e->generation = o->gen;
    e->seq = l->seq;
    e->op = l->op;
    memcpy(e->sha256, l->sha, 32);
    e->size = l->size;
    memcpy(e->chunks_root, l->root, 32);
    memcpy(e->sig, l->sig, WM_SIG_BYTES);
    if (l->claim != NULL) {
        e->has_claim = 1;
        e->claim = *l->claim;
    }
}

int
wm_index_record(wm_index *ix, const wm_entry *e, uint8_t key[WM_INDEX_KEY_LEN],
                wm_buf *val)
{
    memcpy(key, e->origin, WM_ID_LEN);
    for (int i = 0; i < 8; i++) {
        key[WM_ID_LEN + i] = (uint8_t)(e->generation >> (56 - 8 * i));
        key[WM_ID_LEN + 8 + i] = (uint8_t)(e->seq >> (56 - 8 * i));
    }
    memset(ix->scratch, 0, offsetof(wm_msg, entries));
    ix->scratch->type = WM_MSG_ENTRIES;
    ix->scratch->entries[0] = *e;
    ix->scratch->nentries = 1;
    return wm_msg_encode(ix->scratch, val) == 0 && !val->failed ? 0 : -1;
}

static void
persist(wm_index *ix, const wm_entry *e)
{
    uint8_t key[WM_INDEX_KEY_LEN];
    wm_buf b;

    if (ix->store == NULL)
        return;
    wm_buf_init(&b, WM_WIRE_FRAME_MAX);
    if (wm_index_record(ix, e, key, &b) != 0 ||
        wm_store_put_kv(ix->store, WM_TABLE_LOG, key, sizeof(key), b.data,
                        b.len) != 0)
        wm_warn("cluster: cannot keep an index entry");
    wm_buf_free(&b);
}

/* Takes E; VERIFY: check its signatures (not for the log this node kept:
 * what is in it was checked when it came). */
static int
take(wm_index *ix, const wm_entry *e, int persisted, int verify)
{
    int own = memcmp(e->origin, ix->self_id, WM_ID_LEN) == 0;
    struct origin *o;
    struct logent *l;

    if ((!own && !ix->trusted(ix->arg, e->origin)) ||
        (verify && (!wm_entry_valid(e) ||
                    (e->has_claim && !wm_claim_valid(e))))) {
        ix->rejected++;
        return -1;
    }
    o = origin_get(ix, e->origin);
    if (o == NULL || e->generation < o->gen)
        return 0;
    if (e->generation > o->gen) { /* that node started a new log */
        origin_clear(ix, o);
        o->gen = e->generation;
    }
    if (e->seq != o->max_seq + 1 ||
        grow((void **)&o->log, &o->cap, o->n, sizeof(*o->log)) != 0)
        return 0;
    l = &o->log[o->n];
    memset(l, 0, sizeof(*l));
    l->seq = e->seq;
    l->op = e->op;
    memcpy(l->sha, e->sha256, 32);
    l->size = e->size;
    memcpy(l->root, e->chunks_root, 32);
    memcpy(l->sig, e->sig, WM_SIG_BYTES);
    if (e->has_claim) {
        l->claim = malloc(sizeof(*l->claim));
        if (l->claim == NULL)
            return 0;
        *l->claim = e->claim;
    }
    o->n++;
    o->max_seq = e->seq;
    apply(ix, o, o->n - 1);
    if (persisted)
        persist(ix, e);
    return 1;
}

int
wm_index_accept(wm_index *ix, const wm_entry *e, int persist)
{
    return take(ix, e, persist, 1);
}

/* --- this node's own log */

int
wm_index_prepare_local(wm_index *ix, const wm_file_info *info,
                       const uint8_t *sha, wm_entry *out)
{
    struct origin *o = origin_get(ix, ix->self_id);
    const uint8_t *which = info != NULL ? info->sha256 : sha;
    int held;

    if (o == NULL)
        return -1;
    if (o->gen != ix->gen) {
        origin_clear(ix, o);
        o->gen = ix->gen;
    }
    held = wm_map_get(o->held, which, 32) != NULL;
    if ((info != NULL) == held)
        return 0; /* it says so already */
    memset(out, 0, sizeof(*out));
    out->op = info != NULL ? WM_OP_ADD : WM_OP_REMOVE;
    memcpy(out->sha256, which, 32);
    if (info != NULL) {
        out->size = info->size;
        memcpy(out->chunks_root, info->chunks_root, 32);
        if (info->has_claim) {
            out->has_claim = 1;
            memcpy(out->claim.publisher, info->claim_publisher, WM_ID_LEN);
            snprintf(out->claim.filename, sizeof(out->claim.filename), "%s",
                     info->filename);
            snprintf(out->claim.requires_python,
                     sizeof(out->claim.requires_python), "%s",
                     info->requires_python);
            memcpy(out->claim.sig, info->claim_sig, WM_SIG_BYTES);
            if (!wm_claim_valid(out)) {
                /* a kept claim that does not fit: hold, unnamed */
                out->has_claim = 0;
                memset(&out->claim, 0, sizeof(out->claim));
            }
        }
    }
    out->generation = ix->gen;
    out->seq = o->max_seq + 1;
    wm_entry_sign(ix->self, out);
    return 1;
}

int
wm_index_take_local(wm_index *ix, const wm_entry *e)
{
    return take(ix, e, 0, 0) == 1 ? 0 : -1;
}

/* Prepares, keeps on its own, takes. */
static int
append_local(wm_index *ix, const wm_file_info *info, const uint8_t *sha,
             wm_entry *out)
{
    int rc = wm_index_prepare_local(ix, info, sha, out);

    if (rc != 1)
        return rc;
    persist(ix, out);
    return wm_index_take_local(ix, out) == 0 ? 1 : -1;
}

int
wm_index_add_local(wm_index *ix, const wm_file_info *info, wm_entry *out)
{
    return append_local(ix, info, NULL, out);
}

int
wm_index_remove_local(wm_index *ix, const uint8_t *sha, wm_entry *out)
{
    return append_local(ix, NULL, sha, out);
}

int
wm_index_holds_local(const wm_index *ix, const uint8_t *sha)
{
    const struct origin *o = wm_map_get(ix->origins, ix->self_id, WM_ID_LEN);

    return o != NULL && o->gen == ix->gen &&
           wm_map_get(o->held, sha, 32) != NULL;
}

/* --- lookups */

static void
holding_of(const struct origin *o, const uint8_t *sha, wm_holding *h)
{
    uintptr_t pos = (uintptr_t)wm_map_get(o->held, sha, 32);
    const struct logent *l = &o->log[pos - 1];

    h->origin = o->id;
    h->size = l->size;
    h->root = l->root;
    h->claim = l->claim;
}

size_t
wm_index_holders(const wm_index *ix, const uint8_t *sha, wm_holding *out,
                 size_t max)
{
    const struct holders *h = wm_map_get(ix->by_sha, sha, 32);
    size_t n = 0;

    for (size_t i = 0; h != NULL && i < h->n; i++) {
        if (memcmp(h->v[i]->id, ix->self_id, WM_ID_LEN) == 0)
            continue;
        if (n < max)
            holding_of(h->v[i], sha, &out[n]);
        n++;
    }
    return n;
}

void
wm_index_each_claimed(const wm_index *ix, const char *project,
                      wm_holding_fn fn, void *arg)
{
    const struct project *p = wm_map_get(ix->by_project, project,
                                         strlen(project));

    for (size_t i = 0; p != NULL && i < p->n; i++) {
        const struct holders *h = wm_map_get(ix->by_sha, p->v[i].sha, 32);
        for (size_t k = 0; h != NULL && k < h->n; k++) {
            wm_holding hold;
            wm_wheelname wn;
            holding_of(h->v[k], p->v[i].sha, &hold);
            /* Another holder's claim may name another project. */
            if (hold.claim != NULL && claim_project(hold.claim, &wn) != NULL &&
                strcmp(wn.project, project) == 0)
                fn(arg, p->v[i].sha, &hold);
        }
    }
}

void
wm_index_each_project(const wm_index *ix,
                      void (*fn)(void *arg, const char *project), void *arg)
{
    void *cur = NULL;
    const void *key;
    size_t klen;
    char name[WM_PROJECT_MAX + 1];

    while (wm_map_next(ix->by_project, &cur, &key, &klen) != NULL) {
        if (klen > WM_PROJECT_MAX)
            continue;
        memcpy(name, key, klen);
        name[klen] = '\0';
        fn(arg, name);
    }
}

void
wm_index_origin_stats(const wm_index *ix, const uint8_t *origin,
                      uint64_t *files, uint64_t *bytes)
{
    const struct origin *o = wm_map_get(ix->origins, origin, WM_ID_LEN);

    *files = o != NULL ? o->files : 0;
    *bytes = o != NULL ? o->bytes : 0;
}

uint64_t
wm_index_rejected(const wm_index *ix)
{
    return ix->rejected;
}

/* --- anti-entropy */

static int
cmp_item(const void *a, const void *b)
{
    return memcmp(((const wm_digest_item *)a)->origin,
                  ((const wm_digest_item *)b)->origin, WM_ID_LEN);
}

size_t
wm_index_digest(wm_index *ix, wm_digest_item *items, size_t max)
{
    void *cur = NULL;
    struct origin *o;
    size_t n = 0;

    while ((o = wm_map_next(ix->origins, &cur, NULL, NULL)) != NULL &&
           n < max) {
        if (o->max_seq == 0)
            continue;
        memcpy(items[n].origin, o->id, WM_ID_LEN);
        items[n].generation = o->gen;
        items[n].max_seq = o->max_seq;
        n++;
    }
    if (n > 1)
        qsort(items, n, sizeof(*items), cmp_item);
    return n;
}

int
wm_index_compare(const wm_index *ix, const wm_digest_item *d, size_t nd,
                 void (*emit)(void *arg, const wm_entry *e), void *arg)
{
    void *cur = NULL;
    struct origin *o;
    wm_entry e;
    int lacking = 0;

    while ((o = wm_map_next(ix->origins, &cur, NULL, NULL)) != NULL) {
        uint64_t have = 0; /* their highest seq of our generation */
        for (size_t j = 0; j < nd; j++) {
            if (memcmp(d[j].origin, o->id, WM_ID_LEN) != 0)
                continue;
            if (d[j].generation == o->gen)
                have = d[j].max_seq;
            else if (d[j].generation > o->gen)
                have = UINT64_MAX; /* theirs is newer */
        }
        for (size_t k = 0; k < o->n && have != UINT64_MAX; k++) {
            if (o->log[k].seq <= have)
                continue;
            to_entry(o, &o->log[k], &e);
            emit(arg, &e);
        }
    }
    for (size_t j = 0; j < nd; j++) {
        const struct origin *mine =
            wm_map_get(ix->origins, d[j].origin, WM_ID_LEN);
        /* An origin we do not trust: its entries would only be dropped. */
        if (memcmp(d[j].origin, ix->self_id, WM_ID_LEN) != 0 &&
            !ix->trusted(ix->arg, d[j].origin))
            continue;
        if (mine == NULL || d[j].generation > mine->gen ||
            (d[j].generation == mine->gen && d[j].max_seq > mine->max_seq))
            lacking = 1;
    }
    return lacking;
}

/* --- life cycle */

wm_index *
wm_index_new(wm_store *store, const wm_identity *self, uint64_t gen,
             wm_index_trust_fn trusted, void *arg)
{
    wm_index *ix = calloc(1, sizeof(*ix));

    if (ix == NULL)
        return NULL;
    ix->store = store;
    ix->self = self;
    memcpy(ix->self_id, wm_identity_pubkey(self), WM_ID_LEN);
    ix->gen = gen;
    ix->trusted = trusted;
    ix->arg = arg;
    ix->origins = wm_map_new();
    ix->by_sha = wm_map_new();
    ix->by_project = wm_map_new();
    ix->scratch = malloc(sizeof(wm_msg));
    if (ix->origins == NULL || ix->by_sha == NULL || ix->by_project == NULL ||
        ix->scratch == NULL)
        wm_index_destroy(&ix);
    return ix;
}

static void
holders_free(void *arg)
{
    struct holders *h = arg;

    free(h->v);
    free(h);
}

static void
project_free(void *arg)
{
    struct project *p = arg;

    free(p->v);
    free(p);
}

void
wm_index_destroy(wm_index **ixp)
{
    wm_index *ix;

    if (ixp == NULL || *ixp == NULL)
        return;
    ix = *ixp;
    wm_map_destroy(&ix->origins, origin_free);
    wm_map_destroy(&ix->by_sha, holders_free);
    wm_map_destroy(&ix->by_project, project_free);
    free(ix->scratch);
    free(ix);
    *ixp = NULL;
}

static int
load_entry(const void *key, size_t klen, const void *val, size_t vlen,
           void *arg)
{
    wm_index *ix = arg;

    if (wm_msg_decode(val, vlen, ix->scratch, NULL) == 0 &&
        ix->scratch->type == WM_MSG_ENTRIES && ix->scratch->nentries == 1) {
        wm_entry e = ix->scratch->entries[0];
        take(ix, &e, 0, 0);
    }
    return 0;
}

void
wm_index_load(wm_index *ix)
{
    wm_store_view *v;

    if (ix->store == NULL || wm_store_view_open(ix->store, &v) != 0)
        return;
    wm_store_each_kv(v, WM_TABLE_LOG, load_entry, ix);
    wm_store_view_close(&v);
}
