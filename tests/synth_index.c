/*
 * A test tool, not a test: fills the index of a data directory with
 * synthetic holdings, so the end-to-end test of a large fleet need not
 * gossip a hundred thousand entries before it can measure anything.
 *
 *   synth_index DATA_DIR PER_ORIGIN PROJECTS KEYFILE...
 *
 * For each node key, PER_ORIGIN signed holdings, each with the node's
 * own claim on "synth_<p>-<node>.<k>-py3-none-any.whl" (p = k % PROJECTS),
 * all in generation 1000, which becomes the data directory's own
 * generation too: the same files serve every node's data directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "identity.h"
#include "store.h"
#include "wire.h"

#define GENERATION 1000

static int
put_entry(wm_store_batch *b, const wm_entry *e, wm_msg *m)
{
    uint8_t key[WM_ID_LEN + 16];
    wm_buf buf;
    int rc;

    memcpy(key, e->origin, WM_ID_LEN);
    for (int i = 0; i < 8; i++) {
        key[WM_ID_LEN + i] = (uint8_t)(e->generation >> (56 - 8 * i));
        key[WM_ID_LEN + 8 + i] = (uint8_t)(e->seq >> (56 - 8 * i));
    }
    memset(m, 0, sizeof(*m));
    m->type = WM_MSG_ENTRIES;
    m->entries[0] = *e;
    m->nentries = 1;
    wm_buf_init(&buf, WM_WIRE_FRAME_MAX);
    rc = wm_msg_encode(m, &buf);
    if (rc == 0)
        rc = wm_store_batch_put_kv(b, WM_TABLE_LOG, key, sizeof(key), buf.data,
                                   buf.len);
    wm_buf_free(&buf);
    return rc;
}

int
main(int argc, char **argv)
{
    static wm_msg m;
    uint64_t gen = GENERATION;
    wm_store_batch *b = NULL;
    wm_store *s = NULL;
    const char *why = NULL;
    long per, projects;

    if (argc < 5) {
        fprintf(stderr,
                "usage: synth_index DATA_DIR PER_ORIGIN PROJECTS KEYFILE...\n");
        return 2;
    }
    per = strtol(argv[2], NULL, 10);
    projects = strtol(argv[3], NULL, 10);
    if (per <= 0 || projects <= 0 || wm_identity_init() != 0 ||
        wm_store_open(&s, argv[1], (uint64_t)64 << 30, &why) != 0) {
        fprintf(stderr, "synth_index: cannot open %s: %s\n", argv[1],
                why != NULL ? why : "bad arguments");
        return 1;
    }
    if (wm_store_batch_begin(s, &b) != 0 ||
        wm_store_batch_put_kv(b, WM_TABLE_STATE, "generation2", 11, &gen,
                              sizeof(gen)) != 0)
        goto fail;
    for (int i = 4; i < argc; i++) {
        wm_identity *id = wm_identity_load(argv[i], &why);
        if (id == NULL) {
            fprintf(stderr, "synth_index: %s: %s\n", argv[i], why);
            goto fail;
        }
        for (long k = 0; k < per; k++) {
            wm_entry e;
            memset(&e, 0, sizeof(e));
            e.generation = GENERATION;
            e.seq = (uint64_t)k + 1;
            e.op = WM_OP_ADD;
            wm_random_bytes(e.sha256, sizeof(e.sha256));
            wm_random_bytes(e.chunks_root, sizeof(e.chunks_root));
            e.size = 1000 + (uint64_t)k;
            e.has_claim = 1;
            snprintf(e.claim.filename, sizeof(e.claim.filename),
                     "synth_%ld-%d.%ld-py3-none-any.whl", k % projects, i, k);
            wm_claim_sign(id, &e);
            wm_entry_sign(id, &e);
            if (put_entry(b, &e, &m) != 0) {
                wm_identity_destroy(&id);
                goto fail;
            }
        }
        wm_identity_destroy(&id);
    }
    if (wm_store_batch_commit(&b) != 0)
        goto fail;
    wm_store_destroy(&s);
    return 0;
fail:
    fprintf(stderr, "synth_index: cannot write the index\n");
    wm_store_batch_abort(&b);
    wm_store_destroy(&s);
    return 1;
}
