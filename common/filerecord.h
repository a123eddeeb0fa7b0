/*
 * The record the store keeps for each wheel, and its byte layout: fixed
 * little-endian fields, then the filename, project and Requires-Python.
 * Pure: no LMDB, so tests and fuzzers decode records without a store.
 */
#ifndef WM_FILERECORD_H
#define WM_FILERECORD_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"
#include "identity.h"
#include "wheelname.h"

enum wm_source {
    WM_SOURCE_PUT = 1,
    WM_SOURCE_PEER = 2,
    WM_SOURCE_UPSTREAM = 3
};

#define WM_PYVER_MAX 128 /* Requires-Python */

typedef struct wm_file_info {
    char filename[WM_WHEELNAME_MAX + 1];
    char project[WM_PROJECT_MAX + 1];
    uint8_t sha256[WM_SHA256_LEN];
    uint64_t size;
    int64_t added; /* unix seconds */
    int64_t last_used;
    uint8_t source; /* enum wm_source */
    uint8_t meta_sha256[WM_SHA256_LEN];
    uint32_t meta_size;                 /* 0: no metadata stored */
    uint8_t chunks_root[WM_SHA256_LEN]; /* sha256 of the chunk hash list */
    char requires_python[WM_PYVER_MAX + 1]; /* "" when none is known */
    /* A publisher's claim that names this file, kept as it came: the
     * publisher's key and its signature (see wm_claim_signed_bytes). */
    uint8_t has_claim;
    uint8_t claim_publisher[WM_PUBKEY_LEN];
    uint8_t claim_sig[WM_SIG_LEN];
} wm_file_info;

#define WM_FILE_RECORD_FIXED                                                   \
    (1 + 1 + 2 + 2 + 1 + 8 + 8 + 8 + 1 + WM_PUBKEY_LEN + WM_SIG_LEN +          \
     WM_SHA256_LEN + 4 + WM_SHA256_LEN)
#define WM_FILE_RECORD_MAX                                                     \
    (WM_FILE_RECORD_FIXED + WM_WHEELNAME_MAX + WM_PROJECT_MAX + WM_PYVER_MAX)

/* Encodes F into OUT. Returns the record's length. */
size_t wm_file_record_encode(const wm_file_info *f,
                             uint8_t out[WM_FILE_RECORD_MAX]);

/* Decodes DATA (LEN bytes), a record kept under the key SHA, into *OUT
 * (SHA becomes its sha256). Reads nothing outside DATA; the strings of
 * *OUT are NUL-terminated copies. Returns 0, or -EBADMSG when the record
 * is malformed or of an unknown version (*OUT is then partly filled). */
int wm_file_record_decode(const uint8_t sha[WM_SHA256_LEN], const void *data,
                          size_t len, wm_file_info *out);

#endif
