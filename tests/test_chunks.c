/*
 * Unit tests for node/chunks: a fetch's chunk table sized from the
 * wheel's size (or its cap while the size is unknown), chunk lengths and
 * prefix bytes that stop at the size, growth that keeps every state, and
 * a designee's end found from a short chunk, an empty one, or a full one
 * just before an end already seen.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chunks.h"
#include "download.h"
#include "swarm.h"

#define CS ((uint64_t)WM_CHUNK_SIZE)

static void
test_init(void **state)
{
    static const struct {
        uint64_t size, cap;
        int rc;
        uint32_t last, end;
    } cases[] = {
        {1, 10 * CS, 0, 0, UINT32_MAX},
        {CS, 10 * CS, 0, 0, UINT32_MAX},
        {CS + 1, 10 * CS, 0, 1, UINT32_MAX},
        {3 * CS, 3 * CS, 0, 2, UINT32_MAX},
        {WM_SIZE_UNKNOWN, 5 * CS, 0, UINT32_MAX, 6},
        {WM_SIZE_UNKNOWN, 5 * CS + 1, 0, UINT32_MAX, 7},
        {0, 10 * CS, -EINVAL, 0, 0},
        {3 * CS + 1, 3 * CS, -EINVAL, 0, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wm_chunks c;
        int rc = wm_chunks_init(&c, cases[i].size, cases[i].cap, 0);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_int_equal(c.last, cases[i].last);
            assert_int_equal(c.end, cases[i].end);
            assert_true(c.room >= 64);
            for (size_t j = 0; j < c.room; j++)
                assert_int_equal(c.state[j], WM_CS_TO_ASK);
        }
        wm_chunks_free(&c);
    }
}

static void
test_resumed(void **state)
{
    wm_chunks c;

    (void)state;
    /* Resumed after 70 chunks of a designee's wheel: room past them. */
    assert_int_equal(wm_chunks_init(&c, WM_SIZE_UNKNOWN, 200 * CS, 70), 0);
    assert_true(c.room >= 70 + 64);
    for (size_t j = 0; j < c.room; j++)
        assert_int_equal(c.state[j], j < 70 ? WM_CS_DONE : WM_CS_TO_ASK);
    wm_chunks_free(&c);
}

static void
test_len_and_bytes(void **state)
{
    wm_chunks c;

    (void)state;
    assert_int_equal(wm_chunks_init(&c, 2 * CS + 10, 10 * CS, 0), 0);
    assert_int_equal(wm_chunks_len(&c, 0), CS);
    assert_int_equal(wm_chunks_len(&c, 1), CS);
    assert_int_equal(wm_chunks_len(&c, 2), 10);
    assert_int_equal(wm_chunks_bytes(&c, 0), 0);
    assert_int_equal(wm_chunks_bytes(&c, 2), 2 * CS);
    assert_int_equal(wm_chunks_bytes(&c, 3), 2 * CS + 10);
    assert_int_equal(wm_chunks_bytes(&c, 9), 2 * CS + 10);
    wm_chunks_free(&c);

    assert_int_equal(wm_chunks_init(&c, WM_SIZE_UNKNOWN, 10 * CS, 0), 0);
    assert_int_equal(wm_chunks_len(&c, 7), CS);
    assert_int_equal(wm_chunks_bytes(&c, 9), 9 * CS);
    wm_chunks_free(&c);
}

static void
test_grow_and_unask(void **state)
{
    static wm_member a, b;
    wm_chunks c;

    (void)state;
    assert_int_equal(wm_chunks_init(&c, WM_SIZE_UNKNOWN, 1000 * CS, 0), 0);
    c.state[3] = WM_CS_ASKED;
    c.asked_of[3] = &a;
    c.state[63] = WM_CS_ASKED;
    c.asked_of[63] = &b;
    c.state[5] = WM_CS_DONE;
    assert_int_equal(wm_chunks_grow(&c, 10), 0); /* room enough already */
    assert_int_equal(c.room, 64);
    assert_int_equal(wm_chunks_grow(&c, 200), 0);
    assert_int_equal(c.room, 256);
    assert_int_equal(c.state[3], WM_CS_ASKED);
    assert_ptr_equal(c.asked_of[63], &b);
    assert_int_equal(c.state[5], WM_CS_DONE);
    for (size_t j = 64; j < c.room; j++)
        assert_int_equal(c.state[j], WM_CS_TO_ASK);
    wm_chunks_unask(&c, &a);
    assert_int_equal(c.state[3], WM_CS_TO_ASK);
    assert_int_equal(c.state[63], WM_CS_ASKED); /* B's stays B's */
    assert_int_equal(c.state[5], WM_CS_DONE);
    wm_chunks_free(&c);
}

static void
test_designee_short_chunk(void **state)
{
    wm_chunks c;

    (void)state;
    assert_int_equal(wm_chunks_init(&c, WM_SIZE_UNKNOWN, 10 * CS, 0), 0);
    c.state[2] = WM_CS_ASKED;
    assert_int_equal(wm_chunks_designee(&c, 0, CS), 1); /* size unknown */
    assert_int_equal(c.size, WM_SIZE_UNKNOWN);
    assert_int_equal(wm_chunks_designee(&c, 3, 100), 1);
    assert_int_equal(c.size, 3 * CS + 100);
    assert_int_equal(c.last, 3);
    assert_int_equal(c.state[2], WM_CS_ASKED); /* before the end: kept */
    for (size_t j = 4; j < c.room; j++)        /* past it: nothing to ask */
        assert_int_equal(c.state[j], WM_CS_DONE);
    wm_chunks_free(&c);
}

static void
test_designee_empty_chunk(void **state)
{
    wm_chunks c;

    (void)state;
    /* Chunk 1 came in full: an empty chunk 2 says the size is 2 chunks. */
    assert_int_equal(wm_chunks_init(&c, WM_SIZE_UNKNOWN, 10 * CS, 0), 0);
    c.state[0] = c.state[1] = WM_CS_DONE;
    assert_int_equal(wm_chunks_designee(&c, 2, 0), 0);
    assert_int_equal(c.end, 2);
    assert_int_equal(c.size, 2 * CS);
    assert_int_equal(c.last, 1);
    wm_chunks_free(&c);

    /* The empty chunk overtook chunk 1: the end is known, the size when
     * a full chunk 1 comes. A later empty chunk does not move the end. */
    assert_int_equal(wm_chunks_init(&c, WM_SIZE_UNKNOWN, 10 * CS, 0), 0);
    c.state[0] = WM_CS_DONE;
    c.state[1] = WM_CS_ASKED;
    assert_int_equal(wm_chunks_designee(&c, 2, 0), 0);
    assert_int_equal(c.end, 2);
    assert_int_equal(c.size, WM_SIZE_UNKNOWN);
    assert_int_equal(c.state[1], WM_CS_ASKED);
    for (size_t j = 2; j < c.room; j++)
        assert_int_equal(c.state[j], WM_CS_DONE);
    assert_int_equal(wm_chunks_designee(&c, 5, 0), 0);
    assert_int_equal(c.end, 2);
    assert_int_equal(wm_chunks_designee(&c, 1, CS), 1);
    assert_int_equal(c.size, 2 * CS);
    assert_int_equal(c.last, 1);
    wm_chunks_free(&c);
}

static void
test_designee_bad(void **state)
{
    wm_chunks c;

    (void)state;
    assert_int_equal(wm_chunks_init(&c, WM_SIZE_UNKNOWN, CS + 5, 0), 0);
    assert_int_equal(wm_chunks_designee(&c, 0, CS + 1), -1); /* too long */
    assert_int_equal(wm_chunks_designee(&c, 0, 0), -1);      /* empty wheel */
    assert_int_equal(wm_chunks_designee(&c, 1, 6), -2);      /* past the cap */
    assert_int_equal(c.size, WM_SIZE_UNKNOWN);
    assert_int_equal(wm_chunks_designee(&c, 1, 5), 1); /* up to it: fine */
    assert_int_equal(c.size, CS + 5);
    wm_chunks_free(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_resumed),
        cmocka_unit_test(test_len_and_bytes),
        cmocka_unit_test(test_grow_and_unask),
        cmocka_unit_test(test_designee_short_chunk),
        cmocka_unit_test(test_designee_empty_chunk),
        cmocka_unit_test(test_designee_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
