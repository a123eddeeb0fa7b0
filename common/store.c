/*
 * The wheel store on LMDB: chunks, file records, a per-project index, a
 * filename index and the extracted METADATA, each in its own named
 * database. Only the node loop writes; views are plain read transactions
 * opened with MDB_NOTLS so an HTTP response can hold one until its last
 * byte is sent, from whatever thread sends it.
 */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RECORD_VERSION 3
#define CHUNKS_PER_TXN 8 /* 8 MiB per commit: the loop stays responsive */

struct wm_store {
    MDB_env *env;
    MDB_dbi chunks;    /* sha256 || be32 index -> bytes */
    MDB_dbi files;     /* sha256 -> record */
    MDB_dbi projects;  /* project NUL filename -> sha256 */
    MDB_dbi names;     /* filename -> sha256 */
    MDB_dbi meta;      /* sha256 -> METADATA */
    MDB_dbi chunkmap;  /* sha256 -> sha256 of each chunk */
    MDB_dbi tables[3]; /* enum wm_table */
};

struct wm_store_view {
    wm_store *s;
    MDB_txn *txn;
};

static int
mdb_to_errno(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return -ENOENT;
    case MDB_MAP_FULL:
        return -ENOSPC;
    case MDB_KEYEXIST:
        return -EEXIST;
    default:
        return rc > 0 ? -rc : -EIO;
    }
}

/* --- record encoding: fixed little-endian layout, every length checked */

static uint8_t *
put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint64_t
get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Version 3: the claim and Requires-Python. Version 2 records (a node
 * signature where the claim is now) are read as records without a claim. */
#define RECORD_V2_FIXED                                                        \
    (1 + 1 + 2 + 2 + 8 + 8 + 8 + WM_PUBKEY_LEN + WM_SIG_LEN + WM_SHA256_LEN +  \
     4 + WM_SHA256_LEN)
#define RECORD_FIXED                                                           \
    (1 + 1 + 2 + 2 + 1 + 8 + 8 + 8 + 1 + WM_PUBKEY_LEN + WM_SIG_LEN +          \
     WM_SHA256_LEN + 4 + WM_SHA256_LEN)
#define RECORD_MAX                                                             \
    (RECORD_FIXED + WM_WHEELNAME_MAX + WM_PROJECT_MAX + WM_PYVER_MAX)

static size_t
record_encode(const wm_file_info *f, uint8_t out[RECORD_MAX])
{
    size_t flen = strlen(f->filename), plen = strlen(f->project);
    size_t rlen = strnlen(f->requires_python, WM_PYVER_MAX);
    uint8_t *p = out;

    *p++ = RECORD_VERSION;
    *p++ = f->source;
    p = put_le(p, flen, 2);
    p = put_le(p, plen, 2);
    p = put_le(p, rlen, 1);
    p = put_le(p, f->size, 8);
    p = put_le(p, (uint64_t)f->added, 8);
    p = put_le(p, (uint64_t)f->last_used, 8);
    *p++ = f->has_claim ? 1 : 0;
    memcpy(p, f->claim_publisher, WM_PUBKEY_LEN), p += WM_PUBKEY_LEN;
    memcpy(p, f->claim_sig, WM_SIG_LEN), p += WM_SIG_LEN;
    memcpy(p, f->meta_sha256, WM_SHA256_LEN), p += WM_SHA256_LEN;
    p = put_le(p, f->meta_size, 4);
    memcpy(p, f->chunks_root, WM_SHA256_LEN), p += WM_SHA256_LEN;
    memcpy(p, f->filename, flen), p += flen;
    memcpy(p, f->project, plen), p += plen;
    memcpy(p, f->requires_python, rlen), p += rlen;
    return (size_t)(p - out);
}

static int
record_decode_v2(const uint8_t *p, size_t size, wm_file_info *f)
{
    size_t flen = get_le(p + 2, 2), plen = get_le(p + 4, 2);

    if (size < RECORD_V2_FIXED || flen > WM_WHEELNAME_MAX ||
        plen > WM_PROJECT_MAX || size != RECORD_V2_FIXED + flen + plen)
        return -EBADMSG;
    f->source = p[1];
    p += 6;
    f->size = get_le(p, 8), p += 8;
    f->added = (int64_t)get_le(p, 8), p += 8;
    f->last_used = (int64_t)get_le(p, 8), p += 8;
    p += WM_PUBKEY_LEN + WM_SIG_LEN; /* the old node signature */
    memcpy(f->meta_sha256, p, WM_SHA256_LEN), p += WM_SHA256_LEN;
    f->meta_size = (uint32_t)get_le(p, 4), p += 4;
    memcpy(f->chunks_root, p, WM_SHA256_LEN), p += WM_SHA256_LEN;
    memcpy(f->filename, p, flen), p += flen;
    memcpy(f->project, p, plen);
    return 0;
}

static int
record_decode(const uint8_t sha[WM_SHA256_LEN], const MDB_val *v,
              wm_file_info *f)
{
    const uint8_t *p = v->mv_data;
    size_t flen, plen, rlen;

    memset(f, 0, sizeof(*f));
    memcpy(f->sha256, sha, WM_SHA256_LEN);
    if (v->mv_size >= 1 && p[0] == 2)
        return record_decode_v2(p, v->mv_size, f);
    if (v->mv_size < RECORD_FIXED || p[0] != RECORD_VERSION)
        return -EBADMSG;
    flen = get_le(p + 2, 2);
    plen = get_le(p + 4, 2);
    rlen = p[6];
    if (flen > WM_WHEELNAME_MAX || plen > WM_PROJECT_MAX ||
        rlen > WM_PYVER_MAX || p[31] > 1 ||
        v->mv_size != RECORD_FIXED + flen + plen + rlen)
        return -EBADMSG;
    f->source = p[1];
    p += 7;
    f->size = get_le(p, 8), p += 8;
    f->added = (int64_t)get_le(p, 8), p += 8;
    f->last_used = (int64_t)get_le(p, 8), p += 8;
    f->has_claim = *p++;
    memcpy(f->claim_publisher, p, WM_PUBKEY_LEN), p += WM_PUBKEY_LEN;
    memcpy(f->claim_sig, p, WM_SIG_LEN), p += WM_SIG_LEN;
    memcpy(f->meta_sha256, p, WM_SHA256_LEN), p += WM_SHA256_LEN;
    f->meta_size = (uint32_t)get_le(p, 4), p += 4;
    memcpy(f->chunks_root, p, WM_SHA256_LEN), p += WM_SHA256_LEN;
    memcpy(f->filename, p, flen), p += flen;
    memcpy(f->project, p, plen), p += plen;
    memcpy(f->requires_python, p, rlen);
    return 0;
}

/* --- open, sweep, close */

static void
chunk_key(uint8_t key[WM_SHA256_LEN + 4], const uint8_t *sha, uint32_t idx)
{
    memcpy(key, sha, WM_SHA256_LEN);
    key[WM_SHA256_LEN] = (uint8_t)(idx >> 24);
    key[WM_SHA256_LEN + 1] = (uint8_t)(idx >> 16);
    key[WM_SHA256_LEN + 2] = (uint8_t)(idx >> 8);
    key[WM_SHA256_LEN + 3] = (uint8_t)idx;
}

/* Deletes every chunk whose sha256 has no file record: what an interrupted
 * write leaves behind. Returns the number of chunks deleted, or < 0. */
static int
sweep_orphans(wm_store *s)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, swept = 0;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return mdb_to_errno(rc);
    rc = mdb_cursor_open(txn, s->chunks, &cur);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return mdb_to_errno(rc);
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        MDB_val fk = {WM_SHA256_LEN, k.mv_data}, fv;
        if (k.mv_size != WM_SHA256_LEN + 4 ||
            mdb_get(txn, s->files, &fk, &fv) == MDB_NOTFOUND) {
            rc = mdb_cursor_del(cur, 0);
            if (rc != 0)
                break;
            swept++;
        }
        /* After a delete LMDB leaves the cursor on the next key and
         * MDB_NEXT does not skip it. */
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return mdb_to_errno(rc);
    }
    rc = mdb_txn_commit(txn);
    return rc != 0 ? mdb_to_errno(rc) : swept;
}

int
wm_store_open(wm_store **out, const char *dir, uint64_t map_size,
              const char **why)
{
    wm_store *s;
    MDB_txn *txn = NULL;
    int rc;

    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        *why = "cannot create the data directory";
        return -errno;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    *why = "cannot open the LMDB environment";
    rc = mdb_env_create(&s->env);
    if (rc != 0)
        goto err;
    mdb_env_set_maxdbs(s->env, 16);
    mdb_env_set_maxreaders(s->env, 1024);
    rc = mdb_env_set_mapsize(s->env, (size_t)map_size);
    if (rc != 0) {
        *why = "cannot set the LMDB map size (cache.map_size)";
        goto err;
    }
    rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
    if (rc != 0)
        goto err;
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        goto err;
    *why = "cannot open the store's databases";
    if ((rc = mdb_dbi_open(txn, "chunks", MDB_CREATE, &s->chunks)) != 0 ||
        (rc = mdb_dbi_open(txn, "files", MDB_CREATE, &s->files)) != 0 ||
        (rc = mdb_dbi_open(txn, "projects", MDB_CREATE, &s->projects)) != 0 ||
        (rc = mdb_dbi_open(txn, "names", MDB_CREATE, &s->names)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "chunkmap", MDB_CREATE, &s->chunkmap)) != 0 ||
        (rc = mdb_dbi_open(txn, "pages", MDB_CREATE,
                           &s->tables[WM_TABLE_PAGES])) != 0 ||
        (rc = mdb_dbi_open(txn, "log", MDB_CREATE, &s->tables[WM_TABLE_LOG])) !=
            0 ||
        (rc = mdb_dbi_open(txn, "state", MDB_CREATE,
                           &s->tables[WM_TABLE_STATE])) != 0)
        goto err;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto err;
    rc = sweep_orphans(s);
    if (rc < 0) {
        *why = "cannot sweep orphan chunks";
        mdb_env_close(s->env);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
err:
    if (txn != NULL)
        mdb_txn_abort(txn);
    if (s->env != NULL)
        mdb_env_close(s->env);
    free(s);
    return mdb_to_errno(rc);
}

void
wm_store_destroy(wm_store **s)
{
    if (s == NULL || *s == NULL)
        return;
    mdb_env_close((*s)->env);
    free(*s);
    *s = NULL;
}

/* --- writing */

/* Deletes chunks 0..COUNT-1 of SHA: undoes the committed batches of a
 * write that failed later. */
static void
drop_chunks(wm_store *s, const uint8_t *sha, uint32_t count)
{
    MDB_txn *txn;
    uint8_t key[WM_SHA256_LEN + 4];

    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
        return; /* the sweep at the next start gets them */
    for (uint32_t i = 0; i < count; i++) {
        MDB_val k = {sizeof(key), key};
        chunk_key(key, sha, i);
        mdb_del(txn, s->chunks, &k, NULL);
    }
    mdb_txn_commit(txn);
}

/* Adds the record, project and name entries and METADATA in TXN. */
static int
put_record(wm_store *s, MDB_txn *txn, const wm_file_info *info,
           const void *meta, size_t meta_len)
{
    uint8_t rec[RECORD_MAX], pkey[WM_PROJECT_MAX + 1 + WM_WHEELNAME_MAX];
    size_t plen = strlen(info->project), flen = strlen(info->filename);
    MDB_val sk = {WM_SHA256_LEN, (void *)info->sha256};
    MDB_val rv = {record_encode(info, rec), rec};
    MDB_val pk = {plen + 1 + flen, pkey};
    MDB_val nk = {flen, (void *)info->filename};
    MDB_val mv = {meta_len, (void *)meta};
    int rc;

    memcpy(pkey, info->project, plen + 1);
    memcpy(pkey + plen + 1, info->filename, flen);
    if ((rc = mdb_put(txn, s->files, &sk, &rv, MDB_NOOVERWRITE)) != 0 ||
        (rc = mdb_put(txn, s->projects, &pk, &sk, 0)) != 0 ||
        (rc = mdb_put(txn, s->names, &nk, &sk, MDB_NOOVERWRITE)) != 0)
        return rc == MDB_KEYEXIST ? -EBUSY : mdb_to_errno(rc);
    if (meta_len > 0 && (rc = mdb_put(txn, s->meta, &sk, &mv, 0)) != 0)
        return mdb_to_errno(rc);
    return 0;
}

/* Fails with -EEXIST when SHA is stored, -EBUSY when FILENAME is stored
 * under another sha256. */
static int
check_absent(wm_store *s, MDB_txn *txn, const wm_file_info *info)
{
    MDB_val sk = {WM_SHA256_LEN, (void *)info->sha256}, v;
    MDB_val nk = {strlen(info->filename), (void *)info->filename};

    if (mdb_get(txn, s->files, &sk, &v) == 0)
        return -EEXIST;
    if (mdb_get(txn, s->names, &nk, &v) == 0)
        return -EBUSY;
    return 0;
}

struct wm_store_writer {
    wm_store *s;
    wm_file_info info;
    int fd;
    void *meta;
    size_t meta_len;
    uint8_t (*map)[WM_SHA256_LEN]; /* the sha256 of every chunk */
    int map_given;                 /* from a verified peer fetch */
    wm_sha256 *hash;               /* NULL: the caller verified the bytes */
    uint32_t nchunks, next;        /* chunks in all, next to write */
    int done;
};

int
wm_store_writer_new(wm_store *s, const wm_file_info *info, int fd,
                    const void *meta, size_t meta_len, const void *chunkmap,
                    int verify, wm_store_writer **out)
{
    wm_store_writer *w = calloc(1, sizeof(*w));
    uint64_t n = (info->size + WM_CHUNK_SIZE - 1) / WM_CHUNK_SIZE;
    wm_store_view *v = NULL;
    int rc = -ENOMEM;

    *out = NULL;
    if (w == NULL)
        return -ENOMEM;
    if (n == 0 || n > UINT32_MAX) {
        rc = -EINVAL;
        goto fail;
    }
    w->s = s;
    w->info = *info;
    w->fd = fd;
    w->nchunks = (uint32_t)n;
    w->map = calloc(n, WM_SHA256_LEN);
    w->meta = malloc(meta_len + 1);
    if (w->map == NULL || w->meta == NULL)
        goto fail;
    if (meta_len > 0)
        memcpy(w->meta, meta, meta_len);
    w->meta_len = meta_len;
    if (chunkmap != NULL) {
        memcpy(w->map, chunkmap, n * WM_SHA256_LEN);
        w->map_given = 1;
    }
    if (verify && (w->hash = wm_sha256_new()) == NULL)
        goto fail;
    /* Nothing is written for a wheel that is there already. */
    rc = wm_store_view_open(s, &v);
    if (rc == 0) {
        rc = check_absent(s, v->txn, info);
        wm_store_view_close(&v);
    }
    if (rc != 0)
        goto fail;
    *out = w;
    return 0;
fail:
    wm_store_writer_destroy(&w);
    return rc;
}

const wm_file_info *
wm_store_writer_info(const wm_store_writer *w)
{
    return &w->info;
}

/* The last batch: the chunk map and the record, in the same transaction
 * as the last chunk. */
static int
writer_finish(wm_store_writer *w, MDB_txn *txn)
{
    wm_file_info *info = &w->info;
    MDB_val k = {WM_SHA256_LEN, info->sha256};
    MDB_val v = {(size_t)w->nchunks * WM_SHA256_LEN, w->map};
    uint8_t digest[WM_SHA256_LEN];
    int rc;

    if (w->hash != NULL) {
        wm_sha256_final(w->hash, digest);
        if (memcmp(digest, info->sha256, WM_SHA256_LEN) != 0)
            return -EIO;
    }
    wm_sha256_digest(w->map, v.mv_size, info->chunks_root);
    rc = mdb_to_errno(mdb_put(txn, w->s->chunkmap, &k, &v, 0));
    if (rc == 0)
        rc = put_record(w->s, txn, info, w->meta, w->meta_len);
    return rc;
}

int
wm_store_writer_step(wm_store_writer *w)
{
    uint8_t key[WM_SHA256_LEN + 4];
    uint32_t end = w->next + CHUNKS_PER_TXN;
    MDB_txn *txn;
    int rc;

    if (w->done)
        return 0;
    if (end > w->nchunks)
        end = w->nchunks;
    rc = mdb_to_errno(mdb_txn_begin(w->s->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    /* Another writer may have stored it since this one was made. */
    if (w->next == 0)
        rc = check_absent(w->s, txn, &w->info);
    for (uint32_t i = w->next; rc == 0 && i < end; i++) {
        uint64_t off = (uint64_t)i * WM_CHUNK_SIZE;
        size_t len = w->info.size - off < WM_CHUNK_SIZE
                         ? (size_t)(w->info.size - off)
                         : WM_CHUNK_SIZE;
        MDB_val k = {sizeof(key), key}, v = {len, NULL};

        chunk_key(key, w->info.sha256, i);
        /* MDB_RESERVE: read the file straight into the map, no copy. */
        rc = mdb_to_errno(mdb_put(txn, w->s->chunks, &k, &v, MDB_RESERVE));
        if (rc != 0)
            break;
        if (pread(w->fd, v.mv_data, len, (off_t)off) != (ssize_t)len) {
            rc = -EIO;
            break;
        }
        if (w->hash != NULL)
            wm_sha256_update(w->hash, v.mv_data, len);
        if (!w->map_given)
            wm_sha256_digest(v.mv_data, len, w->map[i]);
    }
    if (rc == 0 && end == w->nchunks)
        rc = writer_finish(w, txn);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_to_errno(mdb_txn_commit(txn));
    if (rc != 0)
        return rc;
    w->next = end;
    w->done = end == w->nchunks;
    return w->done ? 0 : 1;
}

void
wm_store_writer_destroy(wm_store_writer **wp)
{
    wm_store_writer *w;

    if (wp == NULL || *wp == NULL)
        return;
    w = *wp;
    /* An unfinished wheel leaves no chunk behind. Its chunks are its own:
     * a writer never starts for a sha256 already stored, and the loop
     * runs one writer at a time. */
    if (!w->done && w->next > 0)
        drop_chunks(w->s, w->info.sha256, w->next);
    wm_sha256_destroy(&w->hash);
    free(w->map);
    free(w->meta);
    free(w);
    *wp = NULL;
}

int
wm_store_put_fd(wm_store *s, wm_file_info *info, int fd, const void *meta,
                size_t meta_len)
{
    wm_store_writer *w;
    int rc = wm_store_writer_new(s, info, fd, meta, meta_len, NULL, 1, &w);

    while (rc == 0 && (rc = wm_store_writer_step(w)) == 1)
        rc = 0;
    if (rc == 0)
        memcpy(info->chunks_root, w->info.chunks_root, WM_SHA256_LEN);
    wm_store_writer_destroy(&w);
    return rc;
}

/* Puts one key/value in DBI in its own transaction. */
static int
put_one(wm_store *s, MDB_dbi dbi, const void *key, size_t klen,
        const void *data, size_t len)
{
    MDB_val k = {klen, (void *)key}, v = {len, (void *)data};
    MDB_txn *txn;
    int rc;

    if (klen == 0 || klen > 511) /* LMDB's default key limit */
        return -EINVAL;
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return mdb_to_errno(rc);
    rc = mdb_put(txn, dbi, &k, &v, 0);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return mdb_to_errno(rc);
    }
    return mdb_to_errno(mdb_txn_commit(txn));
}

int
wm_store_put_meta(wm_store *s, const uint8_t sha[WM_SHA256_LEN],
                  const void *meta, size_t len)
{
    return put_one(s, s->meta, sha, WM_SHA256_LEN, meta, len);
}

int
wm_store_put_kv(wm_store *s, enum wm_table t, const void *key, size_t klen,
                const void *val, size_t vlen)
{
    return put_one(s, s->tables[t], key, klen, val, vlen);
}

struct wm_store_batch {
    wm_store *s;
    MDB_txn *txn;
};

int
wm_store_batch_begin(wm_store *s, wm_store_batch **out)
{
    wm_store_batch *b = calloc(1, sizeof(*b));
    int rc;

    *out = NULL;
    if (b == NULL)
        return -ENOMEM;
    b->s = s;
    rc = mdb_txn_begin(s->env, NULL, 0, &b->txn);
    if (rc != 0) {
        free(b);
        return mdb_to_errno(rc);
    }
    *out = b;
    return 0;
}

int
wm_store_batch_put_kv(wm_store_batch *b, enum wm_table t, const void *key,
                      size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};

    if (klen == 0 || klen > 511)
        return -EINVAL;
    return mdb_to_errno(mdb_put(b->txn, b->s->tables[t], &k, &v, 0));
}

int
wm_store_batch_commit(wm_store_batch **bp)
{
    int rc = mdb_to_errno(mdb_txn_commit((*bp)->txn));

    free(*bp);
    *bp = NULL;
    return rc;
}

void
wm_store_batch_abort(wm_store_batch **bp)
{
    if (bp == NULL || *bp == NULL)
        return;
    mdb_txn_abort((*bp)->txn);
    free(*bp);
    *bp = NULL;
}

int
wm_store_put_page(wm_store *s, const char *project, const void *data,
                  size_t len)
{
    return wm_store_put_kv(s, WM_TABLE_PAGES, project, strlen(project), data,
                           len);
}

/* --- reading */

int
wm_store_get_kv(wm_store_view *v, enum wm_table t, const void *key, size_t klen,
                const void **val, size_t *vlen)
{
    MDB_val k = {klen, (void *)key}, d;
    int rc;

    if (klen == 0 || klen > 511)
        return -ENOENT;
    rc = mdb_get(v->txn, v->s->tables[t], &k, &d);
    if (rc != 0)
        return mdb_to_errno(rc);
    *val = d.mv_data;
    *vlen = d.mv_size;
    return 0;
}

int
wm_store_page(wm_store_view *v, const char *project, const void **data,
              size_t *len)
{
    return wm_store_get_kv(v, WM_TABLE_PAGES, project, strlen(project), data,
                           len);
}

int
wm_store_each_kv(wm_store_view *v, enum wm_table t, wm_store_kv_fn fn,
                 void *arg)
{
    MDB_cursor *cur;
    MDB_val k, d;
    int rc, ret = 0;

    rc = mdb_cursor_open(v->txn, v->s->tables[t], &cur);
    if (rc != 0)
        return mdb_to_errno(rc);
    rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
    while (rc == 0 && ret == 0) {
        ret = fn(k.mv_data, k.mv_size, d.mv_data, d.mv_size, arg);
        rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return ret;
}

int
wm_store_chunkmap(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
                  const void **data, size_t *len)
{
    MDB_val k = {WM_SHA256_LEN, (void *)sha}, d;
    int rc = mdb_get(v->txn, v->s->chunkmap, &k, &d);

    if (rc != 0)
        return mdb_to_errno(rc);
    *data = d.mv_data;
    *len = d.mv_size;
    return 0;
}

int
wm_store_view_open(wm_store *s, wm_store_view **out)
{
    wm_store_view *v = malloc(sizeof(*v));
    int rc;

    *out = NULL;
    if (v == NULL)
        return -ENOMEM;
    v->s = s;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &v->txn);
    if (rc != 0) {
        free(v);
        return mdb_to_errno(rc);
    }
    *out = v;
    return 0;
}

void
wm_store_view_close(wm_store_view **v)
{
    if (v == NULL || *v == NULL)
        return;
    mdb_txn_abort((*v)->txn);
    free(*v);
    *v = NULL;
}

int
wm_store_get(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
             wm_file_info *info)
{
    MDB_val k = {WM_SHA256_LEN, (void *)sha}, d;
    int rc = mdb_get(v->txn, v->s->files, &k, &d);

    if (rc != 0)
        return mdb_to_errno(rc);
    return record_decode(sha, &d, info);
}

int
wm_store_find_name(wm_store_view *v, const char *filename,
                   uint8_t sha[WM_SHA256_LEN])
{
    MDB_val k = {strlen(filename), (void *)filename}, d;
    int rc;

    if (k.mv_size == 0 || k.mv_size > WM_WHEELNAME_MAX)
        return -ENOENT;
    rc = mdb_get(v->txn, v->s->names, &k, &d);
    if (rc != 0)
        return mdb_to_errno(rc);
    if (d.mv_size != WM_SHA256_LEN)
        return -EBADMSG;
    memcpy(sha, d.mv_data, WM_SHA256_LEN);
    return 0;
}

int
wm_store_chunk(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN], uint32_t idx,
               const void **data, size_t *len)
{
    uint8_t key[WM_SHA256_LEN + 4];
    MDB_val k = {sizeof(key), key}, d;
    int rc;

    chunk_key(key, sha, idx);
    rc = mdb_get(v->txn, v->s->chunks, &k, &d);
    if (rc != 0)
        return mdb_to_errno(rc);
    *data = d.mv_data;
    *len = d.mv_size;
    return 0;
}

int
wm_store_metadata(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
                  const void **data, size_t *len)
{
    MDB_val k = {WM_SHA256_LEN, (void *)sha}, d;
    int rc = mdb_get(v->txn, v->s->meta, &k, &d);

    if (rc != 0)
        return mdb_to_errno(rc);
    *data = d.mv_data;
    *len = d.mv_size;
    return 0;
}

int
wm_store_each_file(wm_store_view *v, const char *project, wm_store_file_fn fn,
                   void *arg)
{
    char prefix[WM_PROJECT_MAX + 2];
    size_t plen = 0;
    MDB_cursor *cur;
    MDB_val k, d;
    wm_file_info info;
    int rc, ret = 0;

    if (project != NULL) {
        plen = strlen(project) + 1; /* with the NUL separator */
        if (plen > sizeof(prefix))
            return 0;
        memcpy(prefix, project, plen);
    }
    rc = mdb_cursor_open(v->txn, v->s->projects, &cur);
    if (rc != 0)
        return mdb_to_errno(rc);
    k.mv_size = plen;
    k.mv_data = prefix;
    rc = mdb_cursor_get(cur, &k, &d, plen > 0 ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0 && ret == 0) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (d.mv_size == WM_SHA256_LEN &&
            wm_store_get(v, d.mv_data, &info) == 0)
            ret = fn(&info, arg);
        rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return ret;
}

int
wm_store_each_project(wm_store_view *v, wm_store_project_fn fn, void *arg)
{
    char last[WM_PROJECT_MAX + 1] = "";
    MDB_cursor *cur;
    MDB_val k, d;
    int rc, ret = 0;

    rc = mdb_cursor_open(v->txn, v->s->projects, &cur);
    if (rc != 0)
        return mdb_to_errno(rc);
    rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
    while (rc == 0 && ret == 0) {
        const char *nul = memchr(k.mv_data, '\0', k.mv_size);
        size_t len = nul != NULL ? (size_t)(nul - (char *)k.mv_data) : 0;
        if (len > 0 && len <= WM_PROJECT_MAX &&
            (strlen(last) != len || memcmp(last, k.mv_data, len) != 0)) {
            memcpy(last, k.mv_data, len);
            last[len] = '\0';
            ret = fn(last, arg);
        }
        rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return ret;
}

static int
add_stats(const wm_file_info *info, void *arg)
{
    uint64_t *acc = arg;

    acc[0]++;
    acc[1] += info->size;
    return 0;
}

/* Note this is O(files); fine for status pages, not for a hot path. */
int
wm_store_stats(wm_store_view *v, uint64_t *files, uint64_t *bytes)
{
    uint64_t acc[2] = {0, 0};
    int rc = wm_store_each_file(v, NULL, add_stats, acc);

    *files = acc[0];
    *bytes = acc[1];
    return rc;
}
