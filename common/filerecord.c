/*
 * The file record of a stored wheel, byte by byte: a fixed little-endian
 * layout, every length checked. Version 3 carries the publisher's claim
 * and Requires-Python; version 2 records (a node signature where the claim
 * is now) are read as records without a claim. Pure: no LMDB.
 */
#include "filerecord.h"

#include <errno.h>
#include <string.h>

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
size_t
wm_file_record_encode(const wm_file_info *f,
                      uint8_t out[WM_FILE_RECORD_MAX])
{
    size_t flen = strlen(f->filename), plen = strlen(f->project);
    size_t rlen = strnlen(f->requires_python, WM_PYVER_MAX);
    uint8_t *p = out;

    *p++ = 3;
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
    size_t flen, plen;

    if (size < RECORD_V2_FIXED)
        return -EBADMSG;
    flen = get_le(p + 2, 2);
    plen = get_le(p + 4, 2);
    if (flen > WM_WHEELNAME_MAX || plen > WM_PROJECT_MAX ||
        size != RECORD_V2_FIXED + flen + plen)
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

int
wm_file_record_decode(const uint8_t sha[WM_SHA256_LEN], const void *data,
                      size_t len, wm_file_info *f)
{
    const uint8_t *p = data;
    size_t flen, plen, rlen;

    memset(f, 0, sizeof(*f));
    memcpy(f->sha256, sha, WM_SHA256_LEN);
    if (len >= 1 && p[0] == 2)
        return record_decode_v2(p, len, f);
    if (len < RECORD_FIXED || p[0] != 3)
        return -EBADMSG;
    flen = get_le(p + 2, 2);
    plen = get_le(p + 4, 2);
    rlen = p[6];
    if (flen > WM_WHEELNAME_MAX || plen > WM_PROJECT_MAX ||
        rlen > WM_PYVER_MAX || p[31] > 1 ||
        len != RECORD_FIXED + flen + plen + rlen)
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
