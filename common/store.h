/*
 * The wheel store on LMDB.
 *
 * A wheel is kept as fixed-size chunks (key: sha256 || chunk number, big
 * endian) plus one file record (key: sha256) and one project index entry
 * (key: project NUL filename). The record is written in the same
 * transaction as the last chunk, so a crash leaves at worst orphan chunks,
 * which wm_store_open sweeps; never a partial wheel.
 *
 * One thread writes (the node loop); any thread reads through a view, a
 * read-only transaction whose pointers stay valid until the view is closed,
 * so wheels are served straight from the map without a copy.
 */
#ifndef WM_STORE_H
#define WM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "filerecord.h"

#define WM_CHUNK_SIZE (1u << 20)

typedef struct wm_store wm_store;
typedef struct wm_store_view wm_store_view;

/* Opens (creating when needed) the store in directory DIR with the given
 * LMDB map size, and deletes orphan chunks left by an interrupted write.
 * Returns 0 and *OUT, or a negative error with *WHY set to a static
 * reason. */
int wm_store_open(wm_store **out, const char *dir, uint64_t map_size,
                  const char **why);

/* How many orphan chunks wm_store_open deleted: what a write interrupted
 * by a crash had left (0 after a clean stop). */
uint64_t wm_store_swept(const wm_store *s);

/* Closes the store (NULL is fine) and clears the pointer. Every view must
 * be closed first. */
void wm_store_destroy(wm_store **s);

/* Stores a complete wheel from the open file FD (read from offset 0,
 * INFO->size bytes, whose sha256 must equal INFO->sha256) with its
 * METADATA bytes, and the sha256 of every chunk (the chunk map peers
 * verify chunks against); sets INFO->chunks_root. Chunks are committed in
 * batches; the record last. Returns 0, -EEXIST when that sha256 is already
 * stored (nothing changes), -EBUSY when the filename is stored with other
 * bytes, -EIO on a short read or a hash mismatch, -ENOSPC when the map is
 * full, or another negative error. Writer thread only. */
int wm_store_put_fd(wm_store *s, wm_file_info *info, int fd, const void *meta,
                    size_t meta_len);

/* A wheel being written in steps, so the writer thread stays responsive:
 * each step commits a batch of chunks in its own transaction, the last
 * one the record. Only one writer may run at a time (a store has one
 * writer thread, and it finishes one wheel before the next). */
typedef struct wm_store_writer wm_store_writer;

/* Begins storing the wheel of INFO (filename, project, sha256, size, ...)
 * from FD, which must stay open until the writer is destroyed. CHUNKMAP:
 * the sha256 of every chunk when the caller checked every chunk against it
 * (taken as given), else NULL to compute them. VERIFY: hash the whole
 * file and refuse it unless it matches INFO->sha256 (callers that hashed
 * the bytes as they arrived pass 0). META is copied. Returns 0 and *OUT,
 * -EEXIST (that sha256 is stored), -EBUSY (the filename is stored with
 * other bytes), or another negative error; nothing is written then. */
int wm_store_writer_new(wm_store *s, const wm_file_info *info, int fd,
                        const void *meta, size_t meta_len, const void *chunkmap,
                        int verify, wm_store_writer **out);

/* Writes the next batch. Returns 1 while there is more to write, 0 once
 * the wheel is stored (see wm_store_writer_info for its chunks_root), or a
 * negative error (-EIO: the bytes do not match; -ENOSPC: the map is full);
 * then destroy the writer, which removes what it wrote. */
int wm_store_writer_step(wm_store_writer *w);

/* Begins storing the wheel of INFO whose chunks are in the store already
 * (put with wm_store_batch_put_chunk, each checked by the caller against
 * CHUNKMAP, the whole file against INFO->sha256): its one step checks
 * that every chunk is there and writes the chunk map and the record.
 * Errors as wm_store_writer_new, and -EINVAL without a chunk map; a
 * missing chunk fails the step with -EIO. Destroying it never removes a
 * chunk: they are the caller's until the record is written. */
int wm_store_writer_adopt(wm_store *s, const wm_file_info *info,
                          const void *meta, size_t meta_len,
                          const void *chunkmap, wm_store_writer **out);

/* The record as stored (chunks_root set once done). */
const wm_file_info *wm_store_writer_info(const wm_store_writer *w);

/* Frees W (NULL is fine) and clears the pointer; a wheel not completely
 * stored leaves no chunk behind. */
void wm_store_writer_destroy(wm_store_writer **w);

/* Points *DATA at the chunk map of SHA: one sha256 per chunk, in order.
 * Returns 0 or -ENOENT. */
int wm_store_chunkmap(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
                      const void **data, size_t *len);

/* Small tables of opaque records for the node's other state. */
enum wm_table {
    WM_TABLE_PAGES, /* project -> upstream page record */
    WM_TABLE_LOG,   /* origin || generation || seq -> index entry */
    WM_TABLE_STATE, /* name -> value (generation, incarnation, ...) */
};

/* A record of a small table, written in the same transaction as the
 * store change it reports (this node's holdings log entry). */
typedef struct wm_store_kv {
    enum wm_table table;
    const void *key;
    size_t klen; /* 1..511 */
    const void *val;
    size_t vlen;
} wm_store_kv;

/* FN(ARG, INFO, OUT) runs as W writes its last batch, with the record as
 * stored (chunks_root set): it fills *OUT, to write in the same
 * transaction as the record, and returns 1; or returns 0 (nothing to
 * write) or a negative error (the batch fails). */
typedef int (*wm_store_journal_fn)(void *arg, const wm_file_info *info,
                                   wm_store_kv *out);
void wm_store_writer_journal(wm_store_writer *w, wm_store_journal_fn fn,
                             void *arg);

/* Deletes the wheel SHA (record, chunks, chunk map, METADATA, project and
 * name entries) and puts ALSO (NULL: nothing), in one transaction. Views
 * opened before keep reading the wheel until they close. Writer thread
 * only. Returns 0, -ENOENT, or another negative error (nothing changed). */
int wm_store_remove(wm_store *s, const uint8_t sha[WM_SHA256_LEN],
                    const wm_store_kv *also);

/* Sets the last use of wheels, each named by the first 8 bytes of its
 * sha256 (PREFIXES, big-endian), to WHENS (later times only), in one
 * transaction. Writer thread only. Returns 0 or a negative error. */
int wm_store_touch(wm_store *s, const uint64_t *prefixes, const int64_t *whens,
                   size_t n);

/* The files stored and their total size, kept as writes commit: O(1),
 * any thread. */
void wm_store_usage(wm_store *s, uint64_t *files, uint64_t *bytes);

/* Bytes of chunks in the map that no record names yet (a peer fetch in
 * progress or waiting for its commit; see wm_store_batch_put_chunk), kept
 * as writes commit: never part of wm_store_usage, back down when they are
 * dropped (wm_store_drop_chunks) or become a record's (adopted, or
 * written over by a writer of the same wheel); zero after the sweep at
 * open. O(1), any thread. */
uint64_t wm_store_orphan_bytes(wm_store *s);

/* Puts KEY -> VAL into table T, replacing what was there. Writer thread
 * only. Returns 0, -EINVAL for an empty or over-long (> 511) key, or
 * another negative error. */
int wm_store_put_kv(wm_store *s, enum wm_table t, const void *key, size_t klen,
                    const void *val, size_t vlen);

/* Several records of the small tables in one transaction: begin, put any
 * number, then commit (or abort; either frees the batch and clears the
 * pointer). Writer thread only; while a batch is open the writer must not
 * start another write. Each returns 0 or a negative error (-ENOSPC: the
 * map is full). */
typedef struct wm_store_batch wm_store_batch;
int wm_store_batch_begin(wm_store *s, wm_store_batch **out);
int wm_store_batch_put_kv(wm_store_batch *b, enum wm_table t, const void *key,
                          size_t klen, const void *val, size_t vlen);
int wm_store_batch_commit(wm_store_batch **b);

/* Puts chunk IDX of the wheel SHA (LEN bytes, 1..WM_CHUNK_SIZE) in batch
 * B: a wheel arriving from peers goes into the store chunk by chunk, with
 * no copy in between; its record comes later (wm_store_writer_adopt).
 * Until then the chunks are orphans: swept at start, seen only by whoever
 * knows the sha256, removed by wm_store_drop_chunks. Returns 0, -EEXIST
 * when SHA is stored (nothing is written: its chunks are its record's),
 * -ENOSPC when the map is full, or another negative error. */
int wm_store_batch_put_chunk(wm_store_batch *b, const uint8_t sha[WM_SHA256_LEN],
                             uint32_t idx, const void *data, size_t len);

/* Deletes every chunk of SHA, unless SHA is stored (then they are its
 * record's and stay). Writer thread only. Returns 0 or a negative error. */
int wm_store_drop_chunks(wm_store *s, const uint8_t sha[WM_SHA256_LEN]);
void wm_store_batch_abort(wm_store_batch **b);

/* Points *VAL at the value of KEY in table T. Returns 0 or -ENOENT. */
int wm_store_get_kv(wm_store_view *v, enum wm_table t, const void *key,
                    size_t klen, const void **val, size_t *vlen);

/* Calls FN for every record of table T in key order; stops at FN's first
 * non-zero return and returns it. */
typedef int (*wm_store_kv_fn)(const void *key, size_t klen, const void *val,
                              size_t vlen, void *arg);
int wm_store_each_kv(wm_store_view *v, enum wm_table t, wm_store_kv_fn fn,
                     void *arg);

/* Stores METADATA bytes for the wheel SHA (which need not be stored
 * itself: upstream's PEP 658 file, verified by the caller). Writer thread
 * only. Returns 0 or a negative error. */
int wm_store_put_meta(wm_store *s, const uint8_t sha[WM_SHA256_LEN],
                      const void *meta, size_t len);

/* Keeps an opaque upstream page record for PROJECT, replacing the last.
 * Writer thread only. Returns 0 or a negative error. */
int wm_store_put_page(wm_store *s, const char *project, const void *data,
                      size_t len);

/* Points *DATA at PROJECT's page record (valid until the view closes).
 * Returns 0 or -ENOENT. */
int wm_store_page(wm_store_view *v, const char *project, const void **data,
                  size_t *len);

/* Looks up the stored sha256 of FILENAME (any project). Returns 0 and
 * fills SHA, or -ENOENT. */
int wm_store_find_name(wm_store_view *v, const char *filename,
                       uint8_t sha[WM_SHA256_LEN]);

/* Opens a read-only view. Returns 0 or a negative error. A view may be
 * closed from another thread than the one that opened it. */
int wm_store_view_open(wm_store *s, wm_store_view **out);
void wm_store_view_close(wm_store_view **v);

/* Reads the record of SHA into INFO. Returns 0 or -ENOENT. */
int wm_store_get(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
                 wm_file_info *info);


/* Points *DATA at chunk IDX of SHA inside the map (valid until the view
 * closes) and sets *LEN. Returns 0 or -ENOENT. */
int wm_store_chunk(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
                   uint32_t idx, const void **data, size_t *len);

/* Copies up to LEN bytes of chunk IDX of SHA, from byte OFF of it, into
 * BUF and sets *GOT. It reads the map's file rather than the map: a page
 * of the map costs a fault the first time a process touches it, which on
 * a virtual machine can cost more than the copy. Returns 0, -ENOENT (no
 * such chunk in V, or OFF at or past its end) or -EIO. */
int wm_store_read_chunk(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
                        uint32_t idx, size_t off, void *buf, size_t len,
                        size_t *got);

/* Points *DATA at the stored METADATA of SHA. Returns 0 or -ENOENT. */
int wm_store_metadata(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
                      const void **data, size_t *len);

/* Calls FN for every file of PROJECT (normalised), or of every project when
 * PROJECT is NULL, in project then filename order. Stops and returns FN's
 * value when it is non-zero. */
typedef int (*wm_store_file_fn)(const wm_file_info *info, void *arg);
int wm_store_each_file(wm_store_view *v, const char *project,
                       wm_store_file_fn fn, void *arg);

/* Calls FN for up to MAX file records in sha256 order, from the first
 * after FROM (all zeros: from the start), and leaves FROM at the last one
 * read, so a long scan can go on in another view later. Returns 1 at the
 * end of the records, 0 when there are more, or a negative error (FN's
 * non-zero return included, as -ECANCELED when positive). */
int wm_store_scan(wm_store_view *v, uint8_t from[WM_SHA256_LEN], size_t max,
                  wm_store_file_fn fn, void *arg);

/* Calls FN once per project that holds at least one file, in order. */
typedef int (*wm_store_project_fn)(const char *project, void *arg);
int wm_store_each_project(wm_store_view *v, wm_store_project_fn fn, void *arg);

/* Number of files and their total size. */
int wm_store_stats(wm_store_view *v, uint64_t *files, uint64_t *bytes);

#endif
