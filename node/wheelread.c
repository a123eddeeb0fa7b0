/*
 * The wheel reader: an MHD content callback that copies from the chunk
 * the position falls in, and renews its view when the last one is a
 * second old and the wheel is still there.
 */
#include "clock.h"
#include "wheelread.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RENEW_MS 1000
#define BLOCK    (256u << 10)

struct reader {
    wm_store *store;
    wm_store_view *v;
    uint8_t sha[WM_SHA256_LEN];
    uint64_t first, last; /* the bytes sent, inclusive */
    int64_t opened_ms;
};

/* Moves to a fresh view unless the wheel left the store: then the old
 * view, which still holds it, serves to the end. */
static void
renew(struct reader *rd)
{
    wm_store_view *fresh;
    wm_file_info f;

    rd->opened_ms = wm_now_ms();
    if (wm_store_view_open(rd->store, &fresh) != 0)
        return;
    if (wm_store_get(fresh, rd->sha, &f) != 0) {
        wm_store_view_close(&fresh);
        return;
    }
    wm_store_view_close(&rd->v);
    rd->v = fresh;
}

static ssize_t
read_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct reader *rd = cls;
    uint64_t at = rd->first + pos, base, end;
    const void *data;
    size_t len, n;

    if (at > rd->last)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (wm_now_ms() - rd->opened_ms >= RENEW_MS)
        renew(rd);
    if (wm_store_chunk(rd->v, rd->sha, (uint32_t)(at / WM_CHUNK_SIZE), &data,
                       &len) != 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    base = at / WM_CHUNK_SIZE * WM_CHUNK_SIZE;
    end = base + len;
    if (end > rd->last + 1)
        end = rd->last + 1;
    if (at >= end) /* a chunk shorter than the record says */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    n = end - at < max ? (size_t)(end - at) : max;
    memcpy(buf, (const char *)data + (at - base), n);
    return (ssize_t)n;
}

static void
free_cb(void *cls)
{
    struct reader *rd = cls;

    wm_store_view_close(&rd->v);
    free(rd);
}

struct MHD_Response *
wm_wheel_response(wm_store *store, wm_store_view *v, const wm_file_info *f,
                  uint64_t first, uint64_t last)
{
    struct reader *rd = calloc(1, sizeof(*rd));
    struct MHD_Response *r;
    const void *data;
    size_t len;

    /* Every chunk is there before the status line goes out. */
    for (uint64_t i = first / WM_CHUNK_SIZE; rd != NULL && i <= last /
                                                           WM_CHUNK_SIZE;
         i++)
        if (wm_store_chunk(v, f->sha256, (uint32_t)i, &data, &len) != 0) {
            free(rd);
            rd = NULL;
        }
    if (rd == NULL) {
        wm_store_view_close(&v);
        return NULL;
    }
    rd->store = store;
    rd->v = v;
    memcpy(rd->sha, f->sha256, WM_SHA256_LEN);
    rd->first = first;
    rd->last = last;
    rd->opened_ms = wm_now_ms();
    r = MHD_create_response_from_callback(last - first + 1, BLOCK, read_cb,
                                          rd, free_cb);
    if (r == NULL)
        free_cb(rd);
    return r;
}
