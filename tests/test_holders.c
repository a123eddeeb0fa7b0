/*
 * Unit tests for node/holders: room for whole and partial holders, the
 * reuse of a dropped partial holder's slot (never a bad one's), the
 * chunks in flight kept in step with their sum, and windows and timeouts
 * that follow a holder's delay within their bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "holders.h"

static wm_member members[40];

static void
test_room(void **state)
{
    wm_holders hs;

    (void)state;
    wm_holders_init(&hs, 20);
    for (int i = 0; i < WM_HOLDERS_WHOLE; i++)
        assert_non_null(wm_holders_add_whole(&hs, &members[i], 0));
    assert_null(wm_holders_add_whole(&hs, &members[30], 0));
    for (int i = 0; i < WM_HOLDERS_PARTIAL; i++) {
        wm_holder *h = wm_holders_add_partial(&hs, &members[8 + i], 0);
        assert_non_null(h);
        assert_non_null(h->has);
    }
    assert_null(wm_holders_add_partial(&hs, &members[30], 0));
    assert_int_equal(wm_holders_whole_left(&hs), WM_HOLDERS_WHOLE);
    assert_ptr_equal(wm_holders_of(&hs, &members[9])->m, &members[9]);
    assert_null(wm_holders_of(&hs, &members[31]));
    /* a partial holder dropped for a bad chunk keeps its slot; another
     * dropped one gives it up, with its bitmap cleared */
    wm_holders_of(&hs, &members[8])->bad = 1;
    wm_holders_drop(&hs, wm_holders_of(&hs, &members[8]));
    assert_null(wm_holders_add_partial(&hs, &members[30], 0));
    wm_holders_of(&hs, &members[9])->has[0] = 0xff;
    wm_holders_drop(&hs, wm_holders_of(&hs, &members[9]));
    {
        wm_holder *h = wm_holders_add_partial(&hs, &members[30], 5);
        assert_non_null(h);
        assert_ptr_equal(h->m, &members[30]);
        assert_int_equal(h->has[0], 0);
        assert_false(h->dropped);
        assert_null(wm_holders_of(&hs, &members[9]));
        assert_non_null(wm_holders_of(&hs, &members[8])); /* remembered */
    }
    wm_holders_free(&hs);
}

static void
test_no_partials_while_size_unknown(void **state)
{
    wm_holders hs;

    (void)state;
    wm_holders_init(&hs, 0);
    assert_null(wm_holders_add_partial(&hs, &members[0], 0));
    wm_holders_free(&hs);
}

static void
test_inflight_and_useful(void **state)
{
    wm_holders hs;
    wm_holder *a, *b, *p;
    uint8_t st[10] = {0};
    const uint8_t *has[WM_HOLDERS_PARTIAL], *ids[WM_HOLDERS_PARTIAL];

    (void)state;
    memset(members[0].id, 1, sizeof(members[0].id));
    memset(members[2].id, 2, sizeof(members[2].id));
    wm_holders_init(&hs, 10);
    a = wm_holders_add_whole(&hs, &members[0], 0);
    b = wm_holders_add_whole(&hs, &members[1], 0);
    p = wm_holders_add_partial(&hs, &members[2], 0);
    wm_holders_asked(&hs, a);
    wm_holders_asked(&hs, a);
    wm_holders_asked(&hs, b);
    wm_holders_asked(&hs, p);
    assert_int_equal(hs.inflight, 4);
    wm_holders_answered(&hs, a);
    assert_int_equal(a->inflight, 1);
    wm_holders_drop(&hs, a);
    assert_int_equal(hs.inflight, 2);
    wm_holders_answered(&hs, a); /* nothing in flight: no change */
    assert_int_equal(hs.inflight, 2);
    assert_int_equal(wm_holders_whole_left(&hs), 1);
    /* a partial holder helps with what it has and the fetch needs */
    assert_false(wm_holders_useful(&hs, st, 0));
    p->has[1] = 0x01; /* chunk 8 */
    assert_true(wm_holders_useful(&hs, st, 0));
    st[8] = 3; /* done */
    assert_false(wm_holders_useful(&hs, st, 0));
    assert_int_equal(wm_holders_partials(&hs, has, ids), 1);
    assert_ptr_equal(has[0], p->has);
    assert_memory_equal(ids[0], members[2].id, 32);
    wm_holders_free(&hs);
}

static void
test_window_and_timeout(void **state)
{
    wm_holder h = {.window = 2};

    (void)state;
    assert_int_equal(wm_holder_timeout(&h), 5000);
    for (int i = 0; i < 20; i++)
        wm_holder_took(&h, 10);
    assert_int_equal(h.window, WM_HOLDER_WINDOW);
    assert_int_equal(wm_holder_timeout(&h), 5000);
    wm_holder_took(&h, 800); /* between: the window stays */
    assert_int_equal(h.window, WM_HOLDER_WINDOW);
    for (int i = 0; i < 20; i++)
        wm_holder_took(&h, 4000);
    assert_int_equal(h.window, 1);
    assert_true(wm_holder_timeout(&h) > 5000);
    for (int i = 0; i < 50; i++)
        wm_holder_took(&h, 60000); /* a holder slowing itself down */
    assert_int_equal(wm_holder_timeout(&h), 20000);
}

/* A holder answers in order: a request numbered below one answered is
 * lost; the ones after it are only queued. */
static void
test_lost_in_order(void **state)
{
    wm_holders hs;
    wm_holder *a, *b;
    uint32_t s1, s2, s3, t1;

    (void)state;
    wm_holders_init(&hs, 0);
    a = wm_holders_add_whole(&hs, &members[0], 0);
    b = wm_holders_add_whole(&hs, &members[1], 0);
    s1 = wm_holders_asked(&hs, a);
    s2 = wm_holders_asked(&hs, a);
    s3 = wm_holders_asked(&hs, a);
    t1 = wm_holders_asked(&hs, b); /* numbered per holder */
    assert_true(s1 < s2 && s2 < s3);
    assert_false(wm_holder_lost(a, s1)); /* nothing answered yet */
    wm_holder_answered_seq(a, s2);
    assert_true(wm_holder_lost(a, s1));
    assert_false(wm_holder_lost(a, s2));
    assert_false(wm_holder_lost(a, s3));
    assert_false(wm_holder_lost(b, t1)); /* A's answers say nothing of B */
    wm_holder_answered_seq(a, s1); /* a late answer does not go back */
    assert_false(wm_holder_lost(a, s3));
    assert_true(wm_holder_lost(a, s1));
    wm_holders_free(&hs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room),
        cmocka_unit_test(test_no_partials_while_size_unknown),
        cmocka_unit_test(test_inflight_and_useful),
        cmocka_unit_test(test_window_and_timeout),
        cmocka_unit_test(test_lost_in_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
