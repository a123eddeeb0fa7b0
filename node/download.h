/*
 * What the node loop shares with HTTP threads: immutable blobs (prepared
 * pages, metadata) and downloads (a wheel on its way, in a spool file, with
 * atomic progress). Both are reference counted; whoever drops the last
 * reference frees them. The loop is the only writer of a download; readers
 * look at it only through the accessors below.
 */
#ifndef WM_DOWNLOAD_H
#define WM_DOWNLOAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hash.h"
#include "store.h"
#include "wheelname.h"

/* An immutable byte string: a prepared page, fetched metadata. */
typedef struct wm_blob {
    atomic_int refs;
    size_t len;
    char etag[40]; /* quoted, ready for the header */
    char data[];
} wm_blob;

/* A copy of DATA with one reference and an ETag from its hash; NULL when
 * out of memory. */
wm_blob *wm_blob_new(const void *data, size_t len);
wm_blob *wm_blob_ref(wm_blob *b);
void wm_blob_release(wm_blob *b); /* NULL-safe */

enum wm_download_state { WM_DL_RUNNING, WM_DL_VERIFIED, WM_DL_FAILED };
#define WM_SIZE_UNKNOWN UINT64_MAX

/* A wheel on its way, from upstream or peers. The loop writes its bytes
 * and publishes progress; readers stream what has arrived. The bytes are
 * in the spool file, or (a fetch from peers) chunks written straight into
 * the store, which become the stored wheel's once it is verified and
 * recorded. The last byte is held back until the whole file is verified,
 * so no client ever gets a complete body with the wrong hash. A failed
 * download carries an HTTP status and a one-line reason for readers that
 * have sent nothing yet. */
typedef struct wm_download {
    atomic_int refs;
    uint8_t sha256[WM_SHA256_LEN];
    char filename[WM_WHEELNAME_MAX + 1];
    int fd; /* unlinked spool file */
    wm_store *store;   /* set with in_store */
    atomic_int in_store; /* 1: the bytes are chunks of sha256 in STORE */
    struct wm_download *next_in_store; /* the list wm_download_unstore reads */
    int listed;                        /* on it (both under its lock) */
    atomic_int source; /* enum wm_source: where the bytes come from now */
    atomic_uint_fast64_t received;
    atomic_uint_fast64_t total; /* WM_SIZE_UNKNOWN until known */
    atomic_int state;           /* enum wm_download_state */
    unsigned status;            /* set before state turns FAILED */
    char why[200];
} wm_download;

/* A new download of SHA (FILENAME) with one reference, a new unlinked spool
 * file in DIR and TOTAL bytes expected (WM_SIZE_UNKNOWN: not yet known).
 * NULL when out of memory or the spool cannot be made. */
wm_download *wm_download_new(const char *dir, const uint8_t *sha,
                             const char *filename, uint64_t total, int source);
wm_download *wm_download_ref(wm_download *d);
void wm_download_release(wm_download *d); /* NULL-safe; closes the spool */

/* Bytes a reader may send now: all of them once verified, else all but the
 * last one (of what arrived, and of the size stated). */
uint64_t wm_download_available(wm_download *d);

/* Copies N bytes of D at POS into BUF, from the spool or the store,
 * without waiting: the caller has checked they are there. Any thread.
 * Returns N, or -1 when they cannot be read. */
ssize_t wm_download_pread(wm_download *d, void *buf, size_t n, uint64_t pos);

/* Loop side, before any byte of D arrived: its bytes go into STORE's
 * chunks from now on (wm_store_batch_put_chunk), and readers read them
 * there once committed. */
void wm_download_use_store(wm_download *d, wm_store *store);

/* Loop side: moves D's first RECEIVED bytes from the store into the
 * spool and readers with them, then removes its chunks from the store
 * (unless the wheel is stored). For a download that goes on from a source
 * that writes the spool, or that the store will not keep while readers
 * still read it. Returns 0, or -EIO (the download is failed then). */
int wm_download_leave_store(wm_download *d);

/* Loop side: removes D's chunks from the store (unless the wheel is
 * stored), for a download that failed: its readers stop at the failure. */
void wm_download_drop_store(wm_download *d);

/* Loop side, before the stored wheel SHA leaves the store (the collector,
 * a prune, a replaced namesake): every download still alive whose bytes
 * are its chunks (a peer fetch stored from them, with readers still
 * reading) moves to its spool first (wm_download_leave_store), so those
 * readers get every byte. Downloads of SHA are few: usually none. */
void wm_download_unstore(const uint8_t sha[WM_SHA256_LEN]);

/* Reader side: up to MAX bytes of D from POS into BUF, waiting for them
 * (woken by SUB's notices). PROMISED: the size the reader told its client
 * (WM_SIZE_UNKNOWN: none). Returns how many, 0 at the end of a verified
 * download, -1 when it failed, its spool cannot be read, or its size is no
 * longer the one promised. */
ssize_t wm_download_read(wm_download *d, void *sub, uint64_t promised,
                         uint64_t pos, char *buf, size_t max);

/* Reader side: waits up to LIMIT_MS until D has a byte to send, is
 * complete, or failed. Returns 1 when there is something to send. */
int wm_download_wait_start(wm_download *d, void *sub, int64_t limit_ms);

/* Loop side: marks D failed with STATUS and a reason (the first failure
 * wins); readers learn it on their next look. */
void wm_download_fail(wm_download *d, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Opens an unlinked temporary file in DIR (the store's file system, and
 * nothing to clean up after a crash). Returns the fd or -errno. */
int wm_spool_open(const char *dir);

/* Progress notices: the loop publishes the sha256 of a download after
 * each step; a reader subscribed to that sha256 wakes up and looks again.
 * The endpoint is bound by the loop's PUB socket. */
#define WM_PROGRESS_ENDPOINT "inproc://wm-progress"

/* Loop side: one notice for SHA on PUB (never blocks). */
void wm_progress_publish(void *pub, const uint8_t *sha);

/* Reader side: a SUB socket on context ZMQ for SHA's notices, or NULL. */
void *wm_progress_subscribe(void *zmq, const uint8_t *sha);

/* Waits up to TIMEOUT_MS for a notice on SUB (NULL: just sleeps). */
void wm_progress_wait(void *sub, int timeout_ms);

/* Closes SUB (NULL is fine). */
void wm_progress_close(void *sub);

#endif
