/*
 * Unit tests for node/index without a store: entries taken in sequence
 * from trusted origins only, with good signatures (their own and their
 * claim's); the lookups (holders of a sha256, claims of a project) as adds
 * and removes come and go; a new generation replacing an origin's log;
 * and anti-entropy (the digest, and exactly the entries a peer lacks).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "index.h"
#include "log.h"

static wm_identity *self, *peer, *stranger, *publisher;

static int
trusted(void *arg, const uint8_t *id)
{
    return memcmp(id, wm_identity_pubkey(peer), 32) == 0 ||
           memcmp(id, wm_identity_pubkey(publisher), 32) == 0;
}

/* An entry of ORIGIN: op on the bytes of letter X, with a claim by
 * CLAIMER on FILENAME when not NULL. */
static wm_entry
entry(wm_identity *origin, uint64_t gen, uint64_t seq, int op, char x,
      wm_identity *claimer, const char *filename)
{
    wm_entry e;

    memset(&e, 0, sizeof(e));
    e.generation = gen;
    e.seq = seq;
    e.op = (uint8_t)op;
    memset(e.sha256, x, 32);
    e.size = 1000 + (uint64_t)x;
    memset(e.chunks_root, x + 1, 32);
    if (claimer != NULL) {
        e.has_claim = 1;
        snprintf(e.claim.filename, sizeof(e.claim.filename), "%s", filename);
        snprintf(e.claim.requires_python, sizeof(e.claim.requires_python),
                 ">=3.8");
        wm_claim_sign(claimer, &e);
    }
    wm_entry_sign(origin, &e);
    return e;
}

static size_t
holders(wm_index *ix, char x)
{
    uint8_t sha[32];
    wm_holding h[4];

    memset(sha, x, 32);
    return wm_index_holders(ix, sha, h, 4);
}

static void
count_claim(void *arg, const uint8_t *sha, const wm_holding *h)
{
    (*(int *)arg)++;
}

static int
claims(wm_index *ix, const char *project)
{
    int n = 0;

    wm_index_each_claimed(ix, project, count_claim, &n);
    return n;
}

static void
test_accept(void **state)
{
    wm_index *ix = wm_index_new(NULL, self, 1, trusted, NULL);
    wm_entry e;

    /* In order only, from trusted origins, with valid signatures. */
    e = entry(peer, 5, 2, WM_OP_ADD, 'a', NULL, NULL);
    assert_int_equal(wm_index_accept(ix, &e, 0), 0); /* seq 1 missing */
    e = entry(peer, 5, 1, WM_OP_ADD, 'a', NULL, NULL);
    assert_int_equal(wm_index_accept(ix, &e, 0), 1);
    assert_int_equal(wm_index_accept(ix, &e, 0), 0); /* known */
    e = entry(stranger, 5, 1, WM_OP_ADD, 'b', NULL, NULL);
    assert_int_equal(wm_index_accept(ix, &e, 0), -1);
    e = entry(peer, 5, 2, WM_OP_ADD, 'b', NULL, NULL);
    e.size++; /* not what was signed */
    assert_int_equal(wm_index_accept(ix, &e, 0), -1);
    /* A claim signed by someone else than its stated publisher. */
    e = entry(peer, 5, 2, WM_OP_ADD, 'b', publisher, "b-1.0-py3-none-any.whl");
    memcpy(e.claim.publisher, wm_identity_pubkey(peer), 32);
    wm_entry_sign(peer, &e);
    assert_int_equal(wm_index_accept(ix, &e, 0), -1);
    assert_int_equal(wm_index_rejected(ix), 3);
    /* A relayed entry whose claim was swapped breaks the origin's sig. */
    e = entry(peer, 5, 2, WM_OP_ADD, 'b', publisher, "b-1.0-py3-none-any.whl");
    snprintf(e.claim.filename, sizeof(e.claim.filename),
             "b-9.0-py3-none-any.whl");
    assert_int_equal(wm_index_accept(ix, &e, 0), -1);
    e = entry(peer, 5, 2, WM_OP_ADD, 'b', publisher, "b-1.0-py3-none-any.whl");
    assert_int_equal(wm_index_accept(ix, &e, 0), 1);
    assert_int_equal(holders(ix, 'a'), 1);
    assert_int_equal(holders(ix, 'b'), 1);
    assert_int_equal(claims(ix, "b"), 1);
    wm_index_destroy(&ix);
}

static void
test_lookups_follow_the_log(void **state)
{
    wm_index *ix = wm_index_new(NULL, self, 1, trusted, NULL);
    wm_file_info info;
    wm_entry e, out;
    uint64_t files, bytes;

    e = entry(peer, 1, 1, WM_OP_ADD, 'a', publisher, "a-1.0-py3-none-any.whl");
    wm_index_accept(ix, &e, 0);
    e = entry(publisher, 1, 1, WM_OP_ADD, 'a', publisher,
              "a-1.0-py3-none-any.whl");
    wm_index_accept(ix, &e, 0);
    assert_int_equal(holders(ix, 'a'), 2);
    assert_int_equal(claims(ix, "a"), 2);
    /* This node's own holding is not among the holders others ask. */
    memset(&info, 0, sizeof(info));
    memset(info.sha256, 'a', 32);
    info.size = 1000 + 'a';
    memset(info.chunks_root, 'a' + 1, 32);
    snprintf(info.filename, sizeof(info.filename), "a-1.0-py3-none-any.whl");
    assert_int_equal(wm_index_add_local(ix, &info, &out), 1);
    assert_int_equal(wm_index_add_local(ix, &info, &out), 0);
    assert_int_equal(holders(ix, 'a'), 2);
    /* A remove takes the peer out, and its claim with it. */
    e = entry(peer, 1, 2, WM_OP_REMOVE, 'a', NULL, NULL);
    assert_int_equal(wm_index_accept(ix, &e, 0), 1);
    assert_int_equal(holders(ix, 'a'), 1);
    assert_int_equal(claims(ix, "a"), 1);
    wm_index_origin_stats(ix, wm_identity_pubkey(peer), &files, &bytes);
    assert_int_equal(files, 0);
    wm_index_origin_stats(ix, wm_identity_pubkey(publisher), &files, &bytes);
    assert_int_equal(files, 1);
    assert_int_equal(bytes, 1000 + 'a');
    /* A new generation of the publisher's log replaces the old one. */
    e = entry(publisher, 2, 1, WM_OP_ADD, 'c', NULL, NULL);
    assert_int_equal(wm_index_accept(ix, &e, 0), 1);
    assert_int_equal(holders(ix, 'a'), 0);
    assert_int_equal(holders(ix, 'c'), 1);
    assert_int_equal(claims(ix, "a"), 0);
    /* An older generation is ignored from then on. */
    e = entry(publisher, 1, 2, WM_OP_ADD, 'd', NULL, NULL);
    assert_int_equal(wm_index_accept(ix, &e, 0), 0);
    assert_int_equal(wm_index_remove_local(ix, info.sha256, &out), 1);
    assert_int_equal(out.op, WM_OP_REMOVE);
    wm_index_destroy(&ix);
}

struct emitted {
    uint64_t seqs[16];
    size_t n;
};

static void
emit(void *arg, const wm_entry *e)
{
    struct emitted *em = arg;

    assert_true(wm_entry_valid(e));
    em->seqs[em->n++] = e->seq;
}

static void
test_anti_entropy(void **state)
{
    wm_index *ix = wm_index_new(NULL, self, 1, trusted, NULL);
    wm_digest_item items[4], theirs[2];
    struct emitted em = {{0}, 0};
    wm_entry e;
    size_t n;

    for (uint64_t s = 1; s <= 4; s++) {
        e = entry(peer, 3, s, WM_OP_ADD, (char)('a' + s), NULL, NULL);
        assert_int_equal(wm_index_accept(ix, &e, 0), 1);
    }
    n = wm_index_digest(ix, items, 4);
    assert_int_equal(n, 1);
    assert_int_equal(items[0].generation, 3);
    assert_int_equal(items[0].max_seq, 4);
    /* A peer at seq 2 of that log gets 3 and 4, in order. */
    memcpy(theirs[0].origin, wm_identity_pubkey(peer), 32);
    theirs[0].generation = 3;
    theirs[0].max_seq = 2;
    assert_int_equal(wm_index_compare(ix, theirs, 1, emit, &em), 0);
    assert_int_equal(em.n, 2);
    assert_int_equal(em.seqs[0], 3);
    assert_int_equal(em.seqs[1], 4);
    /* One with a newer generation gets nothing, and has what we lack. */
    em.n = 0;
    theirs[0].generation = 4;
    assert_int_equal(wm_index_compare(ix, theirs, 1, emit, &em), 1);
    assert_int_equal(em.n, 0);
    /* Entries of origins we do not trust are not "lacking". */
    memcpy(theirs[1].origin, wm_identity_pubkey(stranger), 32);
    theirs[1].generation = 1;
    theirs[1].max_seq = 9;
    theirs[0].generation = 3;
    theirs[0].max_seq = 4;
    assert_int_equal(wm_index_compare(ix, theirs, 2, emit, &em), 0);
    wm_index_destroy(&ix);
}

static int
setup(void **state)
{
    if (wm_identity_init() != 0)
        return -1;
    wm_log_set_level(WM_LOG_ERROR);
    self = wm_identity_generate();
    peer = wm_identity_generate();
    stranger = wm_identity_generate();
    publisher = wm_identity_generate();
    return self && peer && stranger && publisher ? 0 : -1;
}

static int
teardown(void **state)
{
    wm_identity_destroy(&self);
    wm_identity_destroy(&peer);
    wm_identity_destroy(&stranger);
    wm_identity_destroy(&publisher);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_lookups_follow_the_log),
        cmocka_unit_test(test_anti_entropy),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
