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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    /* What the file records add up to, kept as writes commit; any thread
     * may read them. */
    _Atomic uint64_t held_files, held_bytes;
    /* Bytes of chunks no record names (a peer fetch still arriving, or
     * one waiting for its commit), kept as writes commit: zero after the
     * sweep at open. */
    _Atomic uint64_t orphan_bytes;
    uint64_t swept; /* orphan chunks deleted at open */
    int fd;                  /* the map's file, for wm_store_read_chunk */
    _Atomic uintptr_t map;   /* where it is mapped; 0: not known yet */
    _Atomic int map_unknown; /* cannot tell: read through the map */
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

/* --- open, sweep, close */

/* Sums the file records into the running totals. */
static int
count_held(wm_store *s)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur;
    MDB_val k, v;
    wm_file_info info;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0 && (rc = mdb_cursor_open(txn, s->files, &cur)) == 0) {
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != WM_SHA256_LEN ||
                wm_file_record_decode(k.mv_data, v.mv_data, v.mv_size,
                                      &info) != 0)
                continue;
            s->held_files++;
            s->held_bytes += info.size;
        }
        mdb_cursor_close(cur);
    }
    if (txn != NULL)
        mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? 0 : mdb_to_errno(rc);
}

/* Takes N bytes off the orphan count, never below zero. */
static void
orphans_sub(wm_store *s, uint64_t n)
{
    uint64_t cur = atomic_load(&s->orphan_bytes);

    while (n > 0 &&
           !atomic_compare_exchange_weak(&s->orphan_bytes, &cur,
                                         cur > n ? cur - n : 0))
        ;
}

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
    /* A reader per HTTP connection (2048), two while one renews its
     * view, and the loop's. */
    mdb_env_set_maxreaders(s->env, 4200);
    rc = mdb_env_set_mapsize(s->env, (size_t)map_size);
    if (rc != 0) {
        *why = "cannot set the LMDB map size (cache.map_size)";
        goto err;
    }
    rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
    if (rc != 0)
        goto err;
    if ((rc = mdb_env_get_fd(s->env, &s->fd)) != 0)
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
    *why = "cannot sweep orphan chunks";
    if (rc >= 0) {
        s->swept = (uint64_t)rc;
        rc = count_held(s);
        *why = "cannot read the store's file records";
    }
    if (rc < 0) {
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

uint64_t
wm_store_swept(const wm_store *s)
{
    return s->swept;
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

/* Puts KV in TXN. */
static int
put_kv_in(wm_store *s, MDB_txn *txn, const wm_store_kv *kv)
{
    MDB_val k = {kv->klen, (void *)kv->key}, v = {kv->vlen, (void *)kv->val};

    if (kv->klen == 0 || kv->klen > 511)
        return -EINVAL;
    return mdb_to_errno(mdb_put(txn, s->tables[kv->table], &k, &v, 0));
}

/* Adds the record, project and name entries and METADATA in TXN. */
static int
put_record(wm_store *s, MDB_txn *txn, const wm_file_info *info,
           const void *meta, size_t meta_len)
{
    uint8_t rec[WM_FILE_RECORD_MAX], pkey[WM_PROJECT_MAX + 1 + WM_WHEELNAME_MAX];
    size_t plen = strlen(info->project), flen = strlen(info->filename);
    MDB_val sk = {WM_SHA256_LEN, (void *)info->sha256};
    MDB_val rv = {wm_file_record_encode(info, rec), rec};
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
    int adopted;                   /* the chunks are in the store already */
    uint32_t nchunks, next;        /* chunks in all, next to write */
    int done;
    wm_store_journal_fn journal; /* a record for the last transaction */
    void *journal_arg;
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

int
wm_store_writer_adopt(wm_store *s, const wm_file_info *info, const void *meta,
                      size_t meta_len, const void *chunkmap,
                      wm_store_writer **out)
{
    int rc;

    if (chunkmap == NULL)
        return -EINVAL;
    rc = wm_store_writer_new(s, info, -1, meta, meta_len, chunkmap, 0, out);
    if (rc == 0)
        (*out)->adopted = 1;
    return rc;
}

/* Checks in TXN that chunks 0..W->nchunks-1 are there with their sizes:
 * a record never names a chunk that is not. */
static int
chunks_present(wm_store_writer *w, MDB_txn *txn)
{
    uint8_t key[WM_SHA256_LEN + 4];

    for (uint32_t i = 0; i < w->nchunks; i++) {
        uint64_t off = (uint64_t)i * WM_CHUNK_SIZE;
        size_t len = w->info.size - off < WM_CHUNK_SIZE
                         ? (size_t)(w->info.size - off)
                         : WM_CHUNK_SIZE;
        MDB_val k = {sizeof(key), key}, v;
        int rc;

        chunk_key(key, w->info.sha256, i);
        rc = mdb_get(txn, w->s->chunks, &k, &v);
        if (rc != 0)
            return rc == MDB_NOTFOUND ? -EIO : mdb_to_errno(rc);
        if (v.mv_size != len)
            return -EIO;
    }
    return 0;
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
    if (rc == 0 && w->journal != NULL) {
        wm_store_kv kv;
        int j = w->journal(w->journal_arg, info, &kv);
        rc = j == 1 ? put_kv_in(w->s, txn, &kv) : j;
    }
    return rc;
}

void
wm_store_writer_journal(wm_store_writer *w, wm_store_journal_fn fn, void *arg)
{
    w->journal = fn;
    w->journal_arg = arg;
}

int
wm_store_writer_step(wm_store_writer *w)
{
    uint8_t key[WM_SHA256_LEN + 4];
    uint32_t end = w->next + CHUNKS_PER_TXN;
    uint64_t adopted = 0; /* orphan bytes this step makes the record's */
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
    if (rc == 0 && w->adopted) {
        rc = chunks_present(w, txn);
        end = w->nchunks;
        adopted = w->info.size;
    }
    for (uint32_t i = w->next; rc == 0 && !w->adopted && i < end; i++) {
        uint64_t off = (uint64_t)i * WM_CHUNK_SIZE;
        size_t len = w->info.size - off < WM_CHUNK_SIZE
                         ? (size_t)(w->info.size - off)
                         : WM_CHUNK_SIZE;
        MDB_val k = {sizeof(key), key}, v = {len, NULL}, old;

        chunk_key(key, w->info.sha256, i);
        /* An orphan of this sha256 (a peer fetch of the same wheel) is
         * written over: its bytes are the record's from now on. */
        if (mdb_get(txn, w->s->chunks, &k, &old) == 0)
            adopted += old.mv_size;
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
    orphans_sub(w->s, adopted);
    w->next = end;
    w->done = end == w->nchunks;
    if (!w->done)
        return 1;
    w->s->held_files++;
    w->s->held_bytes += w->info.size;
    return 0;
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
     * runs one writer at a time. Adopted chunks are their writer's. */
    if (!w->done && w->next > 0 && !w->adopted)
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
    int records; /* holds more than chunks of wheels still arriving */
    uint64_t orphans; /* orphan bytes it adds, once committed */
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
    wm_store_kv kv = {t, key, klen, val, vlen};

    b->records = 1;
    return put_kv_in(b->s, b->txn, &kv);
}

int
wm_store_batch_put_chunk(wm_store_batch *b, const uint8_t sha[WM_SHA256_LEN],
                         uint32_t idx, const void *data, size_t len)
{
    uint8_t key[WM_SHA256_LEN + 4];
    MDB_val sk = {WM_SHA256_LEN, (void *)sha}, d;
    MDB_val k = {sizeof(key), key}, v = {len, NULL};
    int rc;

    if (len == 0 || len > WM_CHUNK_SIZE)
        return -EINVAL;
    /* A stored wheel's chunks are its record's: never written over. */
    rc = mdb_get(b->txn, b->s->files, &sk, &d);
    if (rc != MDB_NOTFOUND)
        return rc == 0 ? -EEXIST : mdb_to_errno(rc);
    chunk_key(key, sha, idx);
    /* Counted once: a chunk put again replaces its bytes (modulo 2^64,
     * the batch's sum comes out right). */
    if (mdb_get(b->txn, b->s->chunks, &k, &d) == 0)
        b->orphans -= d.mv_size;
    /* MDB_RESERVE: one copy, from the message into the map's page. */
    rc = mdb_put(b->txn, b->s->chunks, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return mdb_to_errno(rc);
    memcpy(v.mv_data, data, len);
    b->orphans += len;
    return 0;
}

int
wm_store_drop_chunks(wm_store *s, const uint8_t sha[WM_SHA256_LEN])
{
    uint8_t key[WM_SHA256_LEN + 4];
    MDB_val sk = {WM_SHA256_LEN, (void *)sha}, k = {sizeof(key), key}, d;
    uint64_t freed = 0;
    MDB_cursor *cur;
    MDB_txn *txn;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return mdb_to_errno(rc);
    rc = mdb_get(txn, s->files, &sk, &d);
    if (rc != MDB_NOTFOUND) { /* stored: the chunks are the record's */
        mdb_txn_abort(txn);
        return rc == 0 ? 0 : mdb_to_errno(rc);
    }
    rc = mdb_cursor_open(txn, s->chunks, &cur);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return mdb_to_errno(rc);
    }
    chunk_key(key, sha, 0);
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == sizeof(key) &&
           memcmp(k.mv_data, sha, WM_SHA256_LEN) == 0) {
        freed += d.mv_size;
        rc = mdb_cursor_del(cur, 0);
        if (rc == 0) /* as in sweep_orphans: MDB_NEXT gives the next */
            rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return mdb_to_errno(rc);
    }
    rc = mdb_to_errno(mdb_txn_commit(txn));
    if (rc == 0)
        orphans_sub(s, freed);
    return rc;
}

int
wm_store_batch_commit(wm_store_batch **bp)
{
    MDB_env *env = (*bp)->s->env;
    int lazy = !(*bp)->records, rc;

    /* Chunks that no record names yet need no durability: their meta page
     * is written without waiting for the disk (LMDB stays consistent; a
     * crash may undo the commit, which the sweep at start would undo
     * anyway), and the next commit with a record syncs it. The data pages
     * are still synced before it, as LMDB's integrity needs. */
    if (lazy)
        mdb_env_set_flags(env, MDB_NOMETASYNC, 1);
    rc = mdb_to_errno(mdb_txn_commit((*bp)->txn));
    if (lazy)
        mdb_env_set_flags(env, MDB_NOMETASYNC, 0);
    if (rc == 0)
        atomic_fetch_add(&(*bp)->s->orphan_bytes, (*bp)->orphans);

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
    return wm_file_record_decode(sha, d.mv_data, d.mv_size, info);
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

/* The address the map of S starts at, found from ADDR, an address inside
 * it: LMDB maps the whole file once, from offset 0, and does not say
 * where (its envinfo's address is the one asked for, usually none).
 * Returns 0 when it cannot tell. */
static uintptr_t
map_base(wm_store *s, const void *addr)
{
    uintptr_t base = atomic_load(&s->map), at = (uintptr_t)addr;
    unsigned long long lo, hi, off;
    char line[512];
    FILE *f;

    if (base != 0 || atomic_load(&s->map_unknown))
        return base;
    f = fopen("/proc/self/maps", "re");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%llx-%llx %*s %llx", &lo, &hi, &off) == 3 &&
            lo <= at && at < hi && off == 0) {
            base = (uintptr_t)lo;
            break;
        }
    }
    if (f != NULL)
        fclose(f);
    if (base == 0)
        atomic_store(&s->map_unknown, 1);
    else
        atomic_store(&s->map, base);
    return base;
}

int
wm_store_read_chunk(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
                    uint32_t idx, size_t off, void *buf, size_t len,
                    size_t *got)
{
    const void *data;
    size_t clen, n;
    uintptr_t base;
    ssize_t r;
    int rc = wm_store_chunk(v, sha, idx, &data, &clen);

    if (rc != 0)
        return rc;
    if (off >= clen)
        return -ENOENT;
    n = clen - off < len ? clen - off : len;
    base = map_base(v->s, data);
    if (base == 0) {
        memcpy(buf, (const char *)data + off, n);
    } else {
        /* The same bytes are at that offset of the file, and the view
         * keeps them there. */
        r = pread(v->s->fd, buf, n,
                  (off_t)((uintptr_t)data - base) + (off_t)off);
        if (r != (ssize_t)n)
            return -EIO;
    }
    *got = n;
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

int
wm_store_scan(wm_store_view *v, uint8_t from[WM_SHA256_LEN], size_t max,
              wm_store_file_fn fn, void *arg)
{
    MDB_cursor *cur;
    MDB_val k = {WM_SHA256_LEN, from}, d;
    wm_file_info info;
    size_t n = 0;
    int rc, ret = 0;

    rc = mdb_cursor_open(v->txn, v->s->files, &cur);
    if (rc != 0)
        return mdb_to_errno(rc);
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    /* FROM itself was the last record of the previous slice. */
    if (rc == 0 && k.mv_size == WM_SHA256_LEN &&
        memcmp(k.mv_data, from, WM_SHA256_LEN) == 0)
        rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    for (; rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != WM_SHA256_LEN ||
            wm_file_record_decode(k.mv_data, d.mv_data, d.mv_size, &info) !=
                0)
            continue;
        memcpy(from, k.mv_data, WM_SHA256_LEN);
        n++;
        if ((ret = fn(&info, arg)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (ret != 0)
        return ret < 0 ? ret : -ECANCELED;
    if (rc == MDB_NOTFOUND)
        return 1;
    return rc == 0 ? 0 : mdb_to_errno(rc);
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

void
wm_store_usage(wm_store *s, uint64_t *files, uint64_t *bytes)
{
    *files = s->held_files;
    *bytes = s->held_bytes;
}

uint64_t
wm_store_orphan_bytes(wm_store *s)
{
    return atomic_load(&s->orphan_bytes);
}

/* --- what leaves the store */

/* Deletes every trace of the wheel of INFO in TXN. */
static int
delete_wheel(wm_store *s, MDB_txn *txn, const wm_file_info *info)
{
    uint8_t key[WM_SHA256_LEN + 4], pkey[WM_PROJECT_MAX + 1 + WM_WHEELNAME_MAX];
    size_t plen = strlen(info->project), flen = strlen(info->filename);
    uint64_t n = (info->size + WM_CHUNK_SIZE - 1) / WM_CHUNK_SIZE;
    MDB_val sk = {WM_SHA256_LEN, (void *)info->sha256};
    MDB_val pk = {plen + 1 + flen, pkey};
    MDB_val nk = {flen, (void *)info->filename};
    MDB_dbi by_sha[] = {s->files, s->meta, s->chunkmap};
    int rc;

    memcpy(pkey, info->project, plen + 1);
    memcpy(pkey + plen + 1, info->filename, flen);
    for (size_t i = 0; i < sizeof(by_sha) / sizeof(by_sha[0]); i++) {
        rc = mdb_del(txn, by_sha[i], &sk, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return mdb_to_errno(rc);
    }
    if (((rc = mdb_del(txn, s->projects, &pk, NULL)) != 0 &&
         rc != MDB_NOTFOUND) ||
        ((rc = mdb_del(txn, s->names, &nk, NULL)) != 0 && rc != MDB_NOTFOUND))
        return mdb_to_errno(rc);
    for (uint64_t i = 0; i < n; i++) {
        MDB_val k = {sizeof(key), key};
        chunk_key(key, info->sha256, (uint32_t)i);
        rc = mdb_del(txn, s->chunks, &k, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return mdb_to_errno(rc);
    }
    return 0;
}

int
wm_store_remove(wm_store *s, const uint8_t sha[WM_SHA256_LEN],
                const wm_store_kv *also)
{
    MDB_val sk = {WM_SHA256_LEN, (void *)sha}, d;
    wm_file_info info;
    MDB_txn *txn;
    int rc;

    rc = mdb_to_errno(mdb_txn_begin(s->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    rc = mdb_to_errno(mdb_get(txn, s->files, &sk, &d));
    if (rc == 0)
        rc = wm_file_record_decode(sha, d.mv_data, d.mv_size, &info);
    if (rc == 0)
        rc = delete_wheel(s, txn, &info);
    if (rc == 0 && also != NULL)
        rc = put_kv_in(s, txn, also);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_to_errno(mdb_txn_commit(txn));
    if (rc != 0)
        return rc;
    s->held_files--;
    s->held_bytes -= info.size;
    return 0;
}

/* Sets the last use of the wheel whose sha256 starts with PREFIX (8 bytes,
 * big-endian) to WHEN, if later. A prefix shared by two wheels touches
 * the first: use times are approximate anyway. */
static int
touch_one(wm_store *s, MDB_cursor *cur, uint64_t prefix, int64_t when)
{
    uint8_t want[8], rec[WM_FILE_RECORD_MAX];
    MDB_val k = {sizeof(want), want}, d;
    wm_file_info info;
    int rc;

    for (int i = 0; i < 8; i++)
        want[i] = (uint8_t)(prefix >> (56 - 8 * i));
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    if (rc != 0 || k.mv_size != WM_SHA256_LEN || memcmp(k.mv_data, want, 8))
        return 0; /* gone since */
    if (wm_file_record_decode(k.mv_data, d.mv_data, d.mv_size, &info) != 0 ||
        info.last_used >= when)
        return 0;
    info.last_used = when;
    d.mv_size = wm_file_record_encode(&info, rec);
    d.mv_data = rec;
    return mdb_to_errno(mdb_cursor_put(cur, &k, &d, MDB_CURRENT));
}

int
wm_store_touch(wm_store *s, const uint64_t *prefixes, const int64_t *whens,
               size_t n)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc;

    rc = mdb_to_errno(mdb_txn_begin(s->env, NULL, 0, &txn));
    if (rc != 0)
        return rc;
    rc = mdb_to_errno(mdb_cursor_open(txn, s->files, &cur));
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = touch_one(s, cur, prefixes[i], whens[i]);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_to_errno(mdb_txn_commit(txn));
}
