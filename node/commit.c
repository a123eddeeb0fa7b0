/*
 * The commit queue: store writers run a batch per loop turn, first come
 * first served. A PUT's call is held (the loop's reference) until its
 * wheel is stored; a download is held for readers of its spool. The add
 * entry of this node's holdings log goes into the transaction of the
 * record, so the log never says more or less than the store.
 */
#include "commit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "wire.h"
#include "wheelzip.h"

#define MAX_LISTENERS 4

struct entry {
    struct entry *next;
    wm_store_writer *w;
    wm_download *dl; /* a download: served from its spool meanwhile */
    wm_call *call;   /* a PUT: answered when it is done */
};

struct wm_commit {
    wm_node *node;
    wm_index *index;
    struct entry *head;
    /* The log entry of the wheel being finished, and its LMDB record. */
    wm_entry entry;
    int logged;
    uint8_t key[WM_INDEX_KEY_LEN];
    wm_buf val;
    struct {
        wm_stored_fn fn;
        void *arg;
    } listeners[MAX_LISTENERS];
    size_t nlisteners;
    void (*full)(void *arg); /* the store had no room */
    void *full_arg;
    int (*drop)(void *arg, const uint8_t *sha); /* a stale namesake */
    void *drop_arg;
    int (*room)(void *arg, uint64_t bytes); /* for puts to keep */
    void *room_arg;
};

int
wm_commit_new(wm_commit **out, wm_node *node, wm_index *index)
{
    wm_commit *c = calloc(1, sizeof(*c));

    *out = c;
    if (c == NULL)
        return -ENOMEM;
    c->node = node;
    c->index = index;
    wm_buf_init(&c->val, WM_WIRE_FRAME_MAX);
    return 0;
}

/* The store's journal: the add entry, prepared but not yet taken. */
static int
journal(void *arg, const wm_file_info *info, wm_store_kv *out)
{
    wm_commit *c = arg;
    int rc = wm_index_prepare_local(c->index, info, NULL, &c->entry);

    c->logged = 0;
    if (rc != 1)
        return rc < 0 ? -EIO : 0;
    wm_buf_free(&c->val);
    if (wm_index_record(c->index, &c->entry, c->key, &c->val) != 0)
        return -EIO;
    *out = (wm_store_kv){WM_TABLE_LOG, c->key, sizeof(c->key), c->val.data,
                         c->val.len};
    c->logged = 1;
    return 1;
}

void
wm_commit_on_full(wm_commit *c, void (*fn)(void *arg), void *arg)
{
    c->full = fn;
    c->full_arg = arg;
}

void
wm_commit_on_room(wm_commit *c, int (*fn)(void *arg, uint64_t bytes),
                  void *arg)
{
    c->room = fn;
    c->room_arg = arg;
}

void
wm_commit_on_namesake(wm_commit *c, int (*fn)(void *arg, const uint8_t *sha),
                      void *arg)
{
    c->drop = fn;
    c->drop_arg = arg;
}

int
wm_commit_listen(wm_commit *c, wm_stored_fn fn, void *arg)
{
    if (c->nlisteners == MAX_LISTENERS)
        return -ENOMEM;
    c->listeners[c->nlisteners].fn = fn;
    c->listeners[c->nlisteners++].arg = arg;
    return 0;
}

/* Bytes of the puts waiting to be written. */
static uint64_t
queued_puts(const wm_commit *c)
{
    uint64_t n = 0;

    for (const struct entry *e = c->head; e != NULL; e = e->next)
        if (e->call != NULL)
            n += wm_store_writer_info(e->w)->size;
    return n;
}

/* Queues the wheel in FD under INFO. Returns 0, the error of
 * wm_store_writer_new (-EEXIST: stored already), or -EDQUOT: a put the
 * room check refused. */
static int
enqueue(wm_commit *c, wm_file_info *info, int fd, const void *meta,
        size_t meta_len, const void *chunkmap, wm_download *dl, wm_call *call)
{
    struct entry *e, **tail;
    wm_store_writer *w;
    int rc;

    info->added = info->last_used = wm_usage_now();
    if (dl != NULL && atomic_load(&dl->in_store))
        rc = wm_store_writer_adopt(c->node->store, info, meta, meta_len,
                                   chunkmap, &w);
    else
        rc = wm_store_writer_new(c->node->store, info, fd, meta, meta_len,
                                 chunkmap, 0, &w);
    if (rc != 0)
        return rc;
    /* A put is kept until an operator prunes it: the puts queued count
     * as kept already. */
    if (call != NULL && c->room != NULL &&
        !c->room(c->room_arg, queued_puts(c) + info->size)) {
        wm_store_writer_destroy(&w);
        return -EDQUOT;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        wm_store_writer_destroy(&w);
        return -ENOMEM;
    }
    wm_store_writer_journal(w, journal, c);
    e->w = w;
    e->dl = wm_download_ref(dl);
    e->call = call;
    for (tail = &c->head; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = e;
    return 0;
}

static void
finish(wm_commit *c, struct entry *e, int rc)
{
    const wm_file_info *info = wm_store_writer_info(e->w);
    const wm_entry *logged = NULL;
    char sha[WM_SHA256_HEX];

    if (rc == 0 && c->logged && wm_index_take_local(c->index, &c->entry) == 0)
        logged = &c->entry;
    c->logged = 0;
    if (rc == 0) {
        wm_info("store: stored %s (%" PRIu64 " bytes, %s)", info->filename,
                info->size,
                info->source == WM_SOURCE_PEER       ? "from a peer"
                : info->source == WM_SOURCE_UPSTREAM ? "from upstream"
                                                     : "put");
        for (size_t i = 0; i < c->nlisteners; i++)
            c->listeners[i].fn(c->listeners[i].arg, info, logged);
    } else if (rc == -ENOSPC) {
        atomic_fetch_add(&c->node->counters.store_full, 1);
        wm_warn("store: no room for %s (%" PRIu64 " bytes): served, not "
                "kept; the collector makes room",
                info->filename, info->size);
        if (c->full != NULL)
            c->full(c->full_arg);
    } else if (rc != -ESHUTDOWN && rc != -EEXIST) {
        wm_hex_encode(info->sha256, WM_SHA256_LEN, sha);
        wm_error("store: cannot store %s (sha256 %s): %s", info->filename, sha,
                 strerror(-rc));
    }
    if (rc != 0 && rc != -EEXIST && e->dl != NULL) {
        /* Not kept: its readers go on from the spool (unless the node is
         * stopping, which ends them anyway). */
        if (rc == -ESHUTDOWN)
            wm_download_drop_store(e->dl);
        else
            wm_download_leave_store(e->dl);
    }
    if (e->call != NULL) {
        e->call->result = rc;
        if (rc == 0) /* the record as stored, with its chunks_root */
            e->call->info = *info;
        wm_call_answer(e->call);
    }
    wm_store_writer_destroy(&e->w);
    wm_download_release(e->dl);
    free(e);
}

void
wm_commit_destroy(wm_commit **cp)
{
    wm_commit *c;

    if (cp == NULL || *cp == NULL)
        return;
    c = *cp;
    while (c->head != NULL) {
        struct entry *e = c->head;
        c->head = e->next;
        finish(c, e, -ESHUTDOWN);
    }
    wm_buf_free(&c->val);
    free(c);
    *cp = NULL;
}

/* Signs this node's claim on its own put: INFO names its bytes. */
static void
claim_own(wm_commit *c, wm_file_info *info, const void *chunkmap, size_t len)
{
    wm_entry e;

    memset(&e, 0, sizeof(e));
    memcpy(e.sha256, info->sha256, WM_SHA256_LEN);
    e.size = info->size;
    wm_sha256_digest(chunkmap, len, e.chunks_root);
    snprintf(e.claim.filename, sizeof(e.claim.filename), "%s",
             info->filename);
    snprintf(e.claim.requires_python, sizeof(e.claim.requires_python), "%s",
             info->requires_python);
    wm_claim_sign(c->node->id, &e);
    info->has_claim = 1;
    memcpy(info->claim_publisher, e.claim.publisher, WM_PUBKEY_LEN);
    memcpy(info->claim_sig, e.claim.sig, WM_SIG_LEN);
}

int
wm_commit_put(wm_commit *c, wm_call *call)
{
    size_t chunks = (size_t)((call->info.size + WM_CHUNK_SIZE - 1) /
                             WM_CHUNK_SIZE);

    if (chunks == 0)
        chunks = 1;
    if (call->chunkmap == NULL || call->chunkmap_len != chunks * 32)
        return -EINVAL;
    call->info.source = WM_SOURCE_PUT;
    claim_own(c, &call->info, call->chunkmap, call->chunkmap_len);
    /* The HTTP thread hashed the body and its chunks as they arrived. */
    return enqueue(c, &call->info, call->fd, call->meta, call->meta_len,
                   call->chunkmap, NULL, call);
}

/* The filename of INFO is stored with other bytes: the ones fetched were
 * named by the authority of the moment (a pin moved the project, or
 * upstream replaced the file), so the stale namesake goes. Returns 0 once
 * it is gone. */
static int
drop_namesake(wm_commit *c, const wm_file_info *info)
{
    uint8_t old[WM_SHA256_LEN];
    char hex[WM_SHA256_HEX];
    wm_store_view *v;
    int rc;

    if (c->drop == NULL || wm_store_view_open(c->node->store, &v) != 0)
        return -ENOENT;
    rc = wm_store_find_name(v, info->filename, old);
    wm_store_view_close(&v);
    if (rc != 0 || (rc = c->drop(c->drop_arg, old)) != 0)
        return rc;
    wm_hex_encode(old, WM_SHA256_LEN, hex);
    wm_info("store: %s with sha256 %.16s… replaced: the page names other "
            "bytes now",
            info->filename, hex);
    return 0;
}

/* wm_wheelzip_check of DL, from its spool or its chunks in the store. */
static int
check_wheel(wm_commit *c, wm_download *dl, const wm_wheelname *wn,
            char **meta, size_t *meta_len, const char **why)
{
    uint64_t size = atomic_load(&dl->received);
    size_t n = (size_t)((size + WM_CHUNK_SIZE - 1) / WM_CHUNK_SIZE);
    wm_wheelzip_part *parts;
    wm_store_view *v;
    char fdpath[64];
    int rc = 0;

    if (!atomic_load(&dl->in_store)) {
        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", dl->fd);
        return wm_wheelzip_check(fdpath, wn, meta, meta_len, why);
    }
    parts = calloc(n > 0 ? n : 1, sizeof(*parts));
    if (parts == NULL || wm_store_view_open(c->node->store, &v) != 0) {
        free(parts);
        *why = "out of memory";
        return -ENOMEM;
    }
    /* libzip reads only what it needs of the map: the central directory,
     * the local headers and METADATA. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = wm_store_chunk(v, dl->sha256, (uint32_t)i, &parts[i].data,
                            &parts[i].len);
    if (rc == 0)
        rc = wm_wheelzip_check_parts(parts, n, wn, meta, meta_len, why);
    else
        *why = "a chunk is missing from the store";
    wm_store_view_close(&v);
    free(parts);
    return rc;
}

int
wm_commit_download(wm_commit *c, wm_download *dl, const void *chunkmap,
                   const wm_entry *claimed)
{
    char *meta = NULL;
    const char *why = NULL;
    size_t meta_len = 0;
    wm_wheelname wn;
    wm_file_info info;
    int rc;

    if (wm_wheelname_parse(dl->filename, &wn, &why) != 0 ||
        check_wheel(c, dl, &wn, &meta, &meta_len, &why) != 0) {
        /* The bytes match the hash the client asked for, so it has them;
         * the node just does not keep a file it cannot vouch for. */
        wm_warn("store: %s matches its hash but is not kept: %s", dl->filename,
                why);
        wm_download_leave_store(dl);
        return -EINVAL;
    }
    memset(&info, 0, sizeof(info));
    snprintf(info.filename, sizeof(info.filename), "%s", wn.filename);
    snprintf(info.project, sizeof(info.project), "%s", wn.project);
    memcpy(info.sha256, dl->sha256, WM_SHA256_LEN);
    info.size = atomic_load(&dl->received);
    info.source = (uint8_t)atomic_load(&dl->source);
    wm_sha256_digest(meta, meta_len, info.meta_sha256);
    info.meta_size = (uint32_t)meta_len;
    wm_wheelzip_requires_python(meta, meta_len, info.requires_python,
                                sizeof(info.requires_python));
    if (claimed != NULL && claimed->has_claim &&
        strcmp(claimed->claim.filename, info.filename) == 0) {
        /* Kept as it came: this node never names a wheel it got. */
        info.has_claim = 1;
        memcpy(info.claim_publisher, claimed->claim.publisher, WM_PUBKEY_LEN);
        memcpy(info.claim_sig, claimed->claim.sig, WM_SIG_LEN);
        snprintf(info.requires_python, sizeof(info.requires_python), "%s",
                 claimed->claim.requires_python);
    }
    rc = enqueue(c, &info, dl->fd, meta, meta_len, chunkmap, dl, NULL);
    if (rc == -EBUSY && drop_namesake(c, &info) == 0)
        rc = enqueue(c, &info, dl->fd, meta, meta_len, chunkmap, dl, NULL);
    if (rc != 0 && rc != -EEXIST)
        wm_warn("store: %s is served and not kept: %s", info.filename,
                strerror(-rc));
    free(meta);
    if (rc != 0 && rc != -EEXIST)
        wm_download_leave_store(dl);
    return rc == -EEXIST ? 0 : rc;
}

wm_download *
wm_commit_find(wm_commit *c, const uint8_t *sha)
{
    for (struct entry *e = c->head; e != NULL; e = e->next)
        if (e->dl != NULL && memcmp(e->dl->sha256, sha, WM_SHA256_LEN) == 0)
            return e->dl;
    return NULL;
}

int
wm_commit_busy(const wm_commit *c)
{
    return c->head != NULL;
}

void
wm_commit_step(wm_commit *c)
{
    struct entry *e = c->head;
    int rc;

    if (e == NULL)
        return;
    rc = wm_store_writer_step(e->w);
    if (rc == 1)
        return;
    c->head = e->next;
    finish(c, e, rc);
}
