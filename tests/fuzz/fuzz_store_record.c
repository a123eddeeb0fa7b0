/*
 * libFuzzer target for the store's file record decoder
 * (wm_file_record_decode, common/filerecord): any bytes as the value found
 * under a fixed sha256. An accepted record is of version 2 or 3, at least
 * as long as its fixed part and its strings, with every string
 * NUL-terminated inside its field and the sha256 it was found under;
 * decoding is deterministic, and a version 3 record whose strings hold no
 * NUL encodes back to exactly the input bytes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filerecord.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixed part of a version 2 record (common/filerecord.c). */
#define FIXED_V2                                                               \
    (1 + 1 + 2 + 2 + 8 + 8 + 8 + WM_PUBKEY_LEN + WM_SIG_LEN + WM_SHA256_LEN +  \
     4 + WM_SHA256_LEN)

static void
die(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_store_record: %s (input of %zu bytes)\n", what,
            size);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t sha[WM_SHA256_LEN] = {0xde, 0xad, 0xbe, 0xef};
    static wm_file_info f, again;
    static uint8_t out[WM_FILE_RECORD_MAX];
    size_t strs, n;
    int rc;

    rc = wm_file_record_decode(sha, data, size, &f);
    if (rc != 0 && rc != -EBADMSG)
        die("neither 0 nor -EBADMSG", size);
    if (rc != 0)
        return 0;
    if (size == 0 || (data[0] != 2 && data[0] != 3))
        die("accepted a record of an unknown version", size);
    if (memcmp(f.sha256, sha, WM_SHA256_LEN) != 0)
        die("the sha256 is not the key's", size);
    if (f.filename[WM_WHEELNAME_MAX] != '\0' ||
        f.project[WM_PROJECT_MAX] != '\0' ||
        f.requires_python[WM_PYVER_MAX] != '\0')
        die("a string not NUL-terminated in its field", size);
    if (f.has_claim > 1)
        die("has_claim neither 0 nor 1", size);
    if (data[0] == 2 && (f.has_claim || f.requires_python[0] != '\0'))
        die("a version 2 record with a claim or Requires-Python", size);
    strs = strlen(f.filename) + strlen(f.project) + strlen(f.requires_python);
    if (size < (data[0] == 2 ? FIXED_V2 : WM_FILE_RECORD_FIXED) + strs)
        die("accepted a record shorter than its parts", size);

    if (wm_file_record_decode(sha, data, size, &again) != 0 ||
        memcmp(&f, &again, sizeof(f)) != 0)
        die("decoding twice gives two answers", size);

    /* Strings cut short by a NUL, or a version 2 record, encode to
     * something else; every other record is its own encoding. */
    if (data[0] == 3 && size == WM_FILE_RECORD_FIXED + strs) {
        n = wm_file_record_encode(&f, out);
        if (n != size || memcmp(out, data, size) != 0)
            die("a record does not encode back to its bytes", size);
        if (wm_file_record_decode(sha, out, n, &again) != 0 ||
            memcmp(&f, &again, sizeof(f)) != 0)
            die("an encoded record decodes to another", size);
    }
    return 0;
}
