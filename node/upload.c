/*
 * Uploads: the body is written to the spool as it comes; its sha256 and
 * the sha256 of each 1 MiB chunk (the chunk map the store keeps and peers
 * check against) are computed on the way, once.
 */
#include "upload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "hash.h"
#include "log.h"
#include "wheelname.h"
#include "wheelzip.h"

struct wm_upload {
    wm_wheelname name;
    int fd; /* unlinked spool file, -1 once handed on */
    wm_sha256 *hash;
    wm_sha256 *chunk; /* the current chunk's */
    wm_buf chunkmap;  /* the sha256 of each whole chunk so far */
    uint64_t size, max;
    unsigned status; /* non-zero: refused */
};

wm_upload *
wm_upload_begin(const char *filename, const char *dir, uint64_t max,
                unsigned *status, const char **why)
{
    wm_upload *u = calloc(1, sizeof(*u));

    if (u == NULL) {
        *status = 500;
        *why = "out of memory";
        return NULL;
    }
    u->fd = -1;
    u->max = max;
    if (wm_wheelname_parse(filename, &u->name, why) != 0) {
        *status = 400;
        wm_upload_destroy(&u);
        return NULL;
    }
    u->hash = wm_sha256_new();
    u->chunk = wm_sha256_new();
    wm_buf_init(&u->chunkmap, (max / WM_CHUNK_SIZE + 2) * WM_SHA256_LEN);
    u->fd = wm_spool_open(dir);
    if (u->hash == NULL || u->chunk == NULL || u->fd < 0) {
        wm_error("http: cannot open a spool file in %s", dir);
        *status = 500;
        *why = "cannot spool the upload";
        wm_upload_destroy(&u);
        return NULL;
    }
    return u;
}

/* Hashes the chunks of the body as they pass; DATA follows the first
 * SIZE - LEN bytes. */
static void
chunk_hash(wm_upload *u, const char *data, size_t len)
{
    uint64_t before = u->size - len;
    uint8_t digest[WM_SHA256_LEN];

    while (len > 0) {
        size_t room = WM_CHUNK_SIZE - (size_t)(before % WM_CHUNK_SIZE);
        size_t n = len < room ? len : room;
        wm_sha256_update(u->chunk, data, n);
        data += n;
        len -= n;
        before += n;
        if (before % WM_CHUNK_SIZE == 0) {
            wm_sha256_final(u->chunk, digest);
            wm_buf_add(&u->chunkmap, digest, sizeof(digest));
        }
    }
}

unsigned
wm_upload_data(wm_upload *u, const void *data, size_t len)
{
    const char *p = data;

    if (u->status != 0)
        return u->status;
    u->size += len;
    if (u->size > u->max)
        return u->status = 413;
    wm_sha256_update(u->hash, p, len);
    chunk_hash(u, p, len);
    while (len > 0) {
        ssize_t n = write(u->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return u->status = 507;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

wm_call *
wm_upload_finish(wm_upload *u, wm_store *store, unsigned *status, char *why,
                 size_t whysz)
{
    uint8_t digest[WM_SHA256_LEN], existing[WM_SHA256_LEN];
    char fdpath[64], *meta = NULL;
    const char *reason = NULL;
    size_t meta_len = 0;
    wm_store_view *v;
    wm_file_info held_as;
    wm_call *call;
    int found, held;

    *status = 500;
    snprintf(why, whysz, "out of memory");
    call = wm_call_new(WM_OP_PUT);
    if (call == NULL)
        return NULL;
    snprintf(call->info.filename, sizeof(call->info.filename), "%s",
             u->name.filename);
    snprintf(call->info.project, sizeof(call->info.project), "%s",
             u->name.project);
    wm_sha256_final(u->hash, call->info.sha256);
    call->info.size = u->size;
    if (u->size % WM_CHUNK_SIZE != 0 || u->size == 0) {
        wm_sha256_final(u->chunk, digest); /* the last, short chunk */
        wm_buf_add(&u->chunkmap, digest, sizeof(digest));
    }
    /* libzip wants a path; the spool file has none, but /proc gives one. */
    snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", u->fd);
    if (wm_wheelzip_check(fdpath, &u->name, &meta, &meta_len, &reason) != 0) {
        wm_info("http: refused PUT of %s: %s", u->name.filename, reason);
        *status = 400;
        snprintf(why, whysz, "%s: %s", u->name.filename, reason);
        goto fail;
    }
    /* Already there? Same bytes are fine; other bytes under the same name
     * are a conflict, as on any index. */
    if (wm_store_view_open(store, &v) != 0) {
        *status = 503;
        snprintf(why, whysz, "store busy");
        goto fail;
    }
    found = wm_store_find_name(v, u->name.filename, existing) == 0;
    held = wm_store_get(v, call->info.sha256, &held_as) == 0;
    wm_store_view_close(&v);
    if (found && memcmp(existing, call->info.sha256, WM_SHA256_LEN) != 0) {
        *status = 409;
        snprintf(why, whysz, "a different wheel with this filename is stored");
        goto fail;
    }
    /* Bytes have one name here: the same bytes under a second name would
     * be "held" and yet never served under it. */
    if (!found && held) {
        *status = 409;
        snprintf(why, whysz, "these bytes are stored as %s", held_as.filename);
        goto fail;
    }
    if (found) {
        call->result = -EEXIST;
        free(meta);
        return call;
    }
    /* The call owns the spool and the bytes from here on. */
    call->fd = u->fd;
    u->fd = -1;
    call->meta = meta;
    call->meta_len = meta_len;
    call->chunkmap = wm_buf_steal(&u->chunkmap, &call->chunkmap_len);
    if (call->chunkmap == NULL)
        goto fail;
    wm_sha256_digest(meta, meta_len, call->info.meta_sha256);
    call->info.meta_size = (uint32_t)meta_len;
    if (wm_wheelzip_requires_python(meta, meta_len,
                                    call->info.requires_python,
                                    sizeof(call->info.requires_python)) != 0)
        wm_warn("http: %s: its Requires-Python is not usable; ignored",
                u->name.filename);
    return call;
fail:
    if (call->meta != meta)
        free(meta);
    wm_call_release(call);
    return NULL;
}

void
wm_upload_destroy(wm_upload **up)
{
    wm_upload *u;

    if (up == NULL || *up == NULL)
        return;
    u = *up;
    if (u->fd >= 0)
        close(u->fd);
    wm_sha256_destroy(&u->hash);
    wm_sha256_destroy(&u->chunk);
    wm_buf_free(&u->chunkmap);
    free(u);
    *up = NULL;
}
