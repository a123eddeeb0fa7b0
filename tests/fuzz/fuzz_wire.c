/*
 * libFuzzer target for common/wire: any bytes go to wm_msg_decode. A frame
 * that decodes must re-encode to exactly the same bytes (decoding keeps
 * every field as sent and encoding checks what decoding checks), and its
 * entries and digest items must feed the signing and hashing helpers
 * without trouble.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_wire: %s (input of %zu bytes)\n", what, size);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wm_msg m; /* large: not on the stack */
    uint8_t signed_bytes[WM_ENTRY_SIGNED_MAX], hash[32];
    const char *why = "unset";
    wm_buf out;
    int rc;

    rc = wm_msg_decode(data, size, &m, &why);
    if (rc != 0) {
        if (why == NULL)
            die("refused without a reason", size);
        return 0;
    }
    if (why != NULL)
        die("accepted with a reason", size);

    wm_buf_init(&out, WM_WIRE_FRAME_MAX);
    rc = wm_msg_encode(&m, &out);
    if (rc != 0)
        die("a decoded message does not encode", size);
    if (out.len != size || memcmp(out.data, data, size) != 0)
        die("re-encoding differs from the input", size);
    wm_buf_free(&out);

    for (size_t i = 0; i < m.nentries; i++) {
        size_t n = wm_entry_signed_bytes(&m.entries[i], signed_bytes);

        if (n > WM_ENTRY_SIGNED_MAX)
            die("signed bytes overflow", size);
    }
    if (m.ndigest > 0)
        wm_digest_hash(m.digest, m.ndigest, hash);
    return 0;
}
