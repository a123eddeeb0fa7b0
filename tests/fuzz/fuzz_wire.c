/*
 * libFuzzer target for common/wire (format version 2): any bytes go to
 * wm_msg_decode. A frame that decodes must re-encode to exactly the same
 * bytes (decoding keeps every field as sent and encoding checks what
 * decoding checks). Its entries, their claims and its members' alive
 * statements must feed the signed-bytes helpers within WM_SIGNED_MAX, and
 * the signature checks must take whatever keys and signatures a peer sends;
 * its digest items must feed the digest hash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_wire: %s (input of %zu bytes)\n", what, size);
    abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (wm_identity_init() != 0)
        die("cannot initialise libsodium", 0);
    return 0;
}

/* The signed bytes of everything signed in M fit their buffer; the first
 * entry, claim and alive statement go through the signature checks (one
 * of each: a check costs more than a decode). */
static void
check_signed(const wm_msg *m, size_t size)
{
    uint8_t sb[WM_SIGNED_MAX];
    int entry = 0, claim = 0, alive = 0;

    for (size_t i = 0; i < m->nentries; i++) {
        const wm_entry *e = &m->entries[i];

        if (wm_entry_signed_bytes(e, sb) > WM_SIGNED_MAX)
            die("entry signed bytes overflow", size);
        if (!entry++ && (unsigned)wm_entry_valid(e) > 1)
            die("wm_entry_valid is not 0 or 1", size);
        if (!e->has_claim)
            continue;
        if (wm_claim_signed_bytes(e, sb) > WM_SIGNED_MAX)
            die("claim signed bytes overflow", size);
        if (!claim++ && (unsigned)wm_claim_valid(e) > 1)
            die("wm_claim_valid is not 0 or 1", size);
    }
    for (size_t i = 0; i < m->nupdates; i++) {
        const wm_member_update *u = &m->updates[i];

        if (u->state != WM_ALIVE)
            continue;
        if (u->alive.incarnation != u->incarnation)
            die("statement and update name different incarnations", size);
        if (wm_alive_signed_bytes(u->id, &u->alive, sb) > WM_SIGNED_MAX)
            die("alive signed bytes overflow", size);
        if (!alive++ && (unsigned)wm_alive_valid(u->id, &u->alive) > 1)
            die("wm_alive_valid is not 0 or 1", size);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static wm_msg m; /* large: not on the stack */
    uint8_t hash[32];
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

    check_signed(&m, size);
    if (m.ndigest > 0)
        wm_digest_hash(m.digest, m.ndigest, hash);
    return 0;
}
