/*
 * Blobs, downloads and progress notices: the objects the loop hands to
 * HTTP threads. Every field a reader uses is either immutable after
 * creation or atomic; a failure's status and reason are written before the
 * state turns FAILED (a release store), so a reader that sees FAILED (an
 * acquire load) sees them too. Likewise the store is set before in_store
 * turns on, and a download leaves the store only after its spool holds
 * every byte a reader may ask for: a reader that finds no chunk looks at
 * in_store again and reads the spool.
 */
#include "download.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"

wm_blob *
wm_blob_new(const void *data, size_t len)
{
    wm_blob *b = malloc(sizeof(*b) + len);
    uint8_t digest[WM_SHA256_LEN];
    char hex[33];

    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->data, data, len);
    wm_sha256_digest(data, len, digest);
    wm_hex_encode(digest, 16, hex);
    snprintf(b->etag, sizeof(b->etag), "\"%s\"", hex);
    return b;
}

wm_blob *
wm_blob_ref(wm_blob *b)
{
    if (b != NULL)
        atomic_fetch_add(&b->refs, 1);
    return b;
}

void
wm_blob_release(wm_blob *b)
{
    if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

int
wm_spool_open(const char *dir)
{
    char path[PATH_MAX];
    int fd;

    if (snprintf(path, sizeof(path), "%s/spool-XXXXXX", dir) >=
        (int)sizeof(path))
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

wm_download *
wm_download_new(const char *dir, const uint8_t *sha, const char *filename,
                uint64_t total, int source)
{
    wm_download *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    d->fd = wm_spool_open(dir);
    if (d->fd < 0) {
        free(d);
        return NULL;
    }
    atomic_init(&d->refs, 1);
    atomic_init(&d->received, 0);
    atomic_init(&d->total, total);
    atomic_init(&d->state, WM_DL_RUNNING);
    atomic_init(&d->source, source);
    memcpy(d->sha256, sha, WM_SHA256_LEN);
    snprintf(d->filename, sizeof(d->filename), "%s", filename);
    return d;
}

/* The downloads whose bytes are in the store (use_store), until they
 * leave it or are freed: what wm_download_unstore looks through. */
static pthread_mutex_t listed_lock = PTHREAD_MUTEX_INITIALIZER;
static wm_download *listed;

static void
unlist(wm_download *d)
{
    pthread_mutex_lock(&listed_lock);
    if (d->listed) {
        wm_download **p = &listed;
        while (*p != d)
            p = &(*p)->next_in_store;
        *p = d->next_in_store;
        d->listed = 0;
    }
    pthread_mutex_unlock(&listed_lock);
}

/* A reference to D unless its last one is gone (it is being freed). */
static int
ref_if_alive(wm_download *d)
{
    int refs = atomic_load(&d->refs);

    while (refs > 0 &&
           !atomic_compare_exchange_weak(&d->refs, &refs, refs + 1))
        ;
    return refs > 0;
}

void
wm_download_unstore(const uint8_t sha[WM_SHA256_LEN])
{
    for (;;) {
        wm_download *d = NULL;

        pthread_mutex_lock(&listed_lock);
        for (wm_download *x = listed; x != NULL; x = x->next_in_store)
            if (memcmp(x->sha256, sha, WM_SHA256_LEN) == 0 &&
                ref_if_alive(x)) {
                d = x;
                break;
            }
        pthread_mutex_unlock(&listed_lock);
        if (d == NULL)
            return;
        wm_info("store: %s leaves the store while a client still reads it "
                "as a download: it moves to its spool file",
                d->filename);
        wm_download_leave_store(d); /* on failure, its readers stop */
        unlist(d);
        wm_download_release(d);
    }
}

wm_download *
wm_download_ref(wm_download *d)
{
    if (d != NULL)
        atomic_fetch_add(&d->refs, 1);
    return d;
}

void
wm_download_release(wm_download *d)
{
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    if (d->store != NULL)
        unlist(d);
    if (d->fd >= 0)
        close(d->fd);
    free(d);
}

uint64_t
wm_download_available(wm_download *d)
{
    uint64_t got = atomic_load(&d->received), total = atomic_load(&d->total);

    if (atomic_load(&d->state) == WM_DL_VERIFIED)
        return got;
    /* The last byte of what is stated, too: a source may send more than
     * it said, and a client must never get a whole body unverified. */
    if (total != WM_SIZE_UNKNOWN && total < got)
        got = total;
    return got > 0 ? got - 1 : 0;
}

/* N bytes at POS from D's chunks in the store. Returns 0 or -1. */
static int
read_store(wm_download *d, char *buf, size_t n, uint64_t pos)
{
    wm_store_view *v;
    int rc = 0;

    if (wm_store_view_open(d->store, &v) != 0)
        return -1;
    while (rc == 0 && n > 0) {
        size_t got = 0;
        rc = wm_store_read_chunk(v, d->sha256, (uint32_t)(pos / WM_CHUNK_SIZE),
                                 pos % WM_CHUNK_SIZE, buf, n, &got);
        buf += got;
        pos += got;
        n -= got;
    }
    wm_store_view_close(&v);
    return rc == 0 ? 0 : -1;
}

ssize_t
wm_download_pread(wm_download *d, void *buf, size_t n, uint64_t pos)
{
    size_t done = 0;

    if (atomic_load(&d->in_store) && read_store(d, buf, n, pos) == 0)
        return (ssize_t)n;
    /* In the spool, or it has just moved there from the store. */
    while (done < n) {
        ssize_t got = pread(d->fd, (char *)buf + done, n - done,
                            (off_t)(pos + done));
        if (got <= 0)
            return -1;
        done += (size_t)got;
    }
    return (ssize_t)n;
}

void
wm_download_use_store(wm_download *d, wm_store *store)
{
    d->store = store;
    pthread_mutex_lock(&listed_lock);
    if (!d->listed) {
        d->next_in_store = listed;
        listed = d;
        d->listed = 1;
    }
    pthread_mutex_unlock(&listed_lock);
    atomic_store(&d->in_store, 1);
}

int
wm_download_leave_store(wm_download *d)
{
    static char buf[WM_CHUNK_SIZE]; /* loop thread only */
    uint64_t got = atomic_load(&d->received);
    int rc = 0;

    if (!atomic_load(&d->in_store))
        return 0;
    for (uint64_t pos = 0; rc == 0 && pos < got; pos += WM_CHUNK_SIZE) {
        size_t n = got - pos < WM_CHUNK_SIZE ? (size_t)(got - pos)
                                             : WM_CHUNK_SIZE;
        if (read_store(d, buf, n, pos) != 0 ||
            pwrite(d->fd, buf, n, (off_t)pos) != (ssize_t)n)
            rc = -EIO;
    }
    if (rc != 0) {
        wm_download_fail(d, 500, "%s: cannot move the download to its spool "
                                 "file (disk full?)",
                         d->filename);
        return rc;
    }
    atomic_store(&d->in_store, 0);
    unlist(d);
    wm_download_drop_store(d);
    return 0;
}

void
wm_download_drop_store(wm_download *d)
{
    if (d->store != NULL && wm_store_drop_chunks(d->store, d->sha256) != 0)
        wm_warn("store: cannot remove the chunks of %s now; the next start "
                "sweeps them",
                d->filename);
}

ssize_t
wm_download_read(wm_download *d, void *sub, uint64_t promised, uint64_t pos,
                 char *buf, size_t max)
{
    for (;;) {
        int state = atomic_load(&d->state);
        uint64_t avail = wm_download_available(d);

        /* A size was promised (Content-Length) and the download now says
         * another: the promise cannot be kept. */
        if (state == WM_DL_FAILED ||
            (promised != WM_SIZE_UNKNOWN &&
             atomic_load(&d->total) != promised))
            return -1;
        if (pos < avail) {
            size_t n = avail - pos < max ? (size_t)(avail - pos) : max;
            return wm_download_pread(d, buf, n, pos);
        }
        if (state == WM_DL_VERIFIED)
            return 0;
        wm_progress_wait(sub, 200);
    }
}

int
wm_download_wait_start(wm_download *d, void *sub, int64_t limit_ms)
{
    for (int64_t waited = 0; waited < limit_ms; waited += 100) {
        int state = atomic_load(&d->state);
        if (state == WM_DL_FAILED)
            return 0;
        if (state == WM_DL_VERIFIED || wm_download_available(d) > 0)
            return 1;
        wm_progress_wait(sub, 100);
    }
    return 0;
}

void
wm_download_fail(wm_download *d, unsigned status, const char *fmt, ...)
{
    va_list ap;

    if (atomic_load(&d->state) != WM_DL_RUNNING)
        return;
    d->status = status;
    va_start(ap, fmt);
    vsnprintf(d->why, sizeof(d->why), fmt, ap);
    va_end(ap);
    atomic_store(&d->state, WM_DL_FAILED);
}

void
wm_progress_publish(void *pub, const uint8_t *sha)
{
    zmq_send(pub, sha, WM_SHA256_LEN, ZMQ_DONTWAIT);
}

void *
wm_progress_subscribe(void *zmq, const uint8_t *sha)
{
    void *sub = zmq_socket(zmq, ZMQ_SUB);
    int linger = 0;

    if (sub == NULL)
        return NULL;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_setsockopt(sub, ZMQ_SUBSCRIBE, sha, WM_SHA256_LEN) != 0 ||
        zmq_connect(sub, WM_PROGRESS_ENDPOINT) != 0) {
        zmq_close(sub);
        return NULL;
    }
    return sub;
}

void
wm_progress_wait(void *sub, int timeout_ms)
{
    zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
    char drain[WM_SHA256_LEN];

    if (sub == NULL) {
        usleep((useconds_t)timeout_ms * 1000);
        return;
    }
    if (zmq_poll(&item, 1, timeout_ms) > 0)
        while (zmq_recv(sub, drain, sizeof(drain), ZMQ_DONTWAIT) >= 0)
            ; /* any notice means "look again"; take them all */
}

void
wm_progress_close(void *sub)
{
    if (sub != NULL)
        zmq_close(sub);
}
