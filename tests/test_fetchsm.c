/*
 * Unit tests for node/fetchsm: the coordinator's decision table, case by
 * case (facts -> next step), and whole fetches driven through it with
 * every source failing in turn: each ends in at most three sources, never
 * asks one twice, and fails with the status a client should see.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fetchsm.h"

#define P WM_SRC_PEERS
#define D WM_SRC_DESIGNEE
#define U WM_SRC_UPSTREAM

struct step_case {
    const char *what;
    wm_fetch_facts facts;
    enum wm_fetch_action want;
    unsigned status; /* WM_FA_FAIL only */
};

/* facts: holders, upstream, designee_peer, for_peer, tried, prefix,
 * timed_out */
static const struct step_case cases[] = {
    /* peers first, whatever upstream says */
    {"holders, nothing tried", {2, WM_UP_LISTED, 1, 0, 0, 0, 0}, WM_FA_PEERS, 0},
    {"holders, page pending", {1, WM_UP_PENDING, 0, 0, 0, 0, 0}, WM_FA_PEERS, 0},
    {"holders, not listed", {1, WM_UP_ABSENT, 0, 0, 0, 0, 0}, WM_FA_PEERS, 0},
    {"holders, for a peer", {1, WM_UP_LISTED, 0, 1, 0, 0, 0}, WM_FA_PEERS, 0},
    /* the page decides the rest */
    {"no holders, page pending", {0, WM_UP_PENDING, 1, 0, 0, 0, 0},
     WM_FA_WAIT_PAGE, 0},
    {"peers failed, page pending", {2, WM_UP_PENDING, 0, 0, P, 0, 0},
     WM_FA_WAIT_PAGE, 0},
    {"nothing names it", {0, WM_UP_ABSENT, 1, 0, 0, 0, 0}, WM_FA_FAIL, 404},
    {"peers failed, upstream lacks it", {1, WM_UP_ABSENT, 0, 0, P, 4096, 0},
     WM_FA_FAIL, 502},
    {"peers timed out, upstream lacks it", {1, WM_UP_ABSENT, 0, 0, P, 0, 1},
     WM_FA_FAIL, 504},
    /* listed upstream: the designee fetches it for everyone */
    {"listed, designee elsewhere", {0, WM_UP_LISTED, 1, 0, 0, 0, 0},
     WM_FA_DESIGNEE, 0},
    {"listed, this node is the designee", {0, WM_UP_LISTED, 0, 0, 0, 0, 0},
     WM_FA_UPSTREAM, 0},
    {"listed, asked as designee", {0, WM_UP_LISTED, 1, 1, 0, 0, 0},
     WM_FA_UPSTREAM, 0},
    {"designee failed", {0, WM_UP_LISTED, 1, 0, D, 0, 0}, WM_FA_UPSTREAM, 0},
    {"designee failed with bytes in hand", {0, WM_UP_LISTED, 1, 0, D, 1 << 20,
                                            0},
     WM_FA_UPSTREAM, 0},
    /* a verified prefix goes on from upstream, not from a designee */
    {"peers failed mid-way", {1, WM_UP_LISTED, 1, 0, P, 3 << 20, 0},
     WM_FA_UPSTREAM, 0},
    {"peers failed at once", {1, WM_UP_LISTED, 1, 0, P, 0, 0},
     WM_FA_DESIGNEE, 0},
    /* everything failed */
    {"upstream failed", {0, WM_UP_LISTED, 0, 0, U, 0, 0}, WM_FA_FAIL, 502},
    {"upstream timed out", {0, WM_UP_LISTED, 0, 0, U, 0, 1}, WM_FA_FAIL, 504},
    {"all three failed", {3, WM_UP_LISTED, 1, 0, P | D | U, 5, 0}, WM_FA_FAIL,
     502},
    {"designee and upstream failed", {0, WM_UP_LISTED, 1, 0, D | U, 0, 1},
     WM_FA_FAIL, 504},
    /* upstream tried before a designee could be: no designee after it */
    {"upstream failed, designee now", {0, WM_UP_LISTED, 1, 0, U, 0, 0},
     WM_FA_FAIL, 502},
};

static void
test_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct step_case *c = &cases[i];
        wm_fetch_step s = wm_fetchsm_next(&c->facts);
        if (s.action != c->want ||
            (c->want == WM_FA_FAIL && s.status != c->status)) {
            print_error("%s: got %s %u, want %s %u\n", c->what,
                        wm_fetchsm_action_name(s.action), s.status,
                        wm_fetchsm_action_name(c->want), c->status);
            fail();
        }
        if (s.action == WM_FA_FAIL)
            assert_non_null(s.why);
    }
}

static unsigned
bit_of(enum wm_fetch_action a)
{
    return a == WM_FA_PEERS ? P : a == WM_FA_DESIGNEE ? D : U;
}

/* Drives a fetch where every source fails, for every combination of the
 * facts that do not change while it runs: it ends, in at most three
 * sources, each tried once. */
static void
test_every_fetch_ends(void **state)
{
    static const int ups[] = {WM_UP_ABSENT, WM_UP_LISTED};

    for (unsigned holders = 0; holders <= 1; holders++)
        for (size_t u = 0; u < 2; u++)
            for (int designee = 0; designee <= 1; designee++)
                for (int for_peer = 0; for_peer <= 1; for_peer++)
                    for (int progress = 0; progress <= 1; progress++) {
                        wm_fetch_facts f = {holders, ups[u], designee,
                                            for_peer, 0, 0, 0};
                        int steps = 0;
                        for (;;) {
                            wm_fetch_step s = wm_fetchsm_next(&f);
                            if (s.action == WM_FA_FAIL) {
                                assert_true(s.status == 404 ||
                                            s.status == 502 ||
                                            s.status == 504);
                                /* nothing tried: nothing names it */
                                assert_true((s.status == 404) ==
                                            (f.tried == 0));
                                break;
                            }
                            assert_int_not_equal(s.action, WM_FA_WAIT_PAGE);
                            assert_false(f.tried & bit_of(s.action));
                            f.tried |= bit_of(s.action);
                            if (progress)
                                f.prefix += 1 << 20;
                            assert_true(++steps <= 3);
                        }
                    }
}

/* While the page is on its way, a fetch without peers waits; a page that
 * then lists the file lets it go on. */
static void
test_wait_for_the_page(void **state)
{
    wm_fetch_facts f = {0, WM_UP_PENDING, 1, 0, 0, 0, 0};

    assert_int_equal(wm_fetchsm_next(&f).action, WM_FA_WAIT_PAGE);
    f.upstream = WM_UP_LISTED;
    assert_int_equal(wm_fetchsm_next(&f).action, WM_FA_DESIGNEE);
    f.upstream = WM_UP_ABSENT;
    assert_int_equal(wm_fetchsm_next(&f).status, 404);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_every_fetch_ends),
        cmocka_unit_test(test_wait_for_the_page),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
