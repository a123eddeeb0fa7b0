/*
 * Unit tests for node/swarm: the bitmaps HAVE carries, rarity, stripes,
 * and the picks. The property the swarm exists for is checked whole:
 * fetchers that started together ask a whole holder for disjoint sets of
 * chunks that together are the wheel, each chunk once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "swarm.h"

#define N 37 /* chunks: not a multiple of 8, nor of the fetchers below */

static void
test_bitmaps(void **state)
{
    uint8_t st[N] = {0}, bits[8] = {0}, has[8] = {0}, more[8] = {0};

    (void)state;
    assert_int_equal(wm_swarm_bitmap_len(1), 1);
    assert_int_equal(wm_swarm_bitmap_len(8), 1);
    assert_int_equal(wm_swarm_bitmap_len(N), 5);
    st[0] = st[9] = st[36] = WM_CS_DONE;
    st[1] = WM_CS_HELD; /* checked but not written: not yet given */
    st[2] = WM_CS_ASKED;
    wm_swarm_done(st, N, bits);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(wm_swarm_has(bits, i), i == 0 || i == 9 || i == 36);
    assert_true(wm_swarm_merge(has, bits, N));
    assert_false(wm_swarm_merge(has, bits, N)); /* nothing new */
    more[1] = 0x02;                              /* chunk 9 again */
    assert_false(wm_swarm_merge(has, more, N));
    more[0] = 0x80; /* chunk 7: new */
    assert_true(wm_swarm_merge(has, more, N));
    assert_true(wm_swarm_has(has, 7));
    wm_swarm_forget(has, 7);
    assert_false(wm_swarm_has(has, 7));
    assert_true(wm_swarm_has(has, 9));
}

static void
test_rarity_and_useful(void **state)
{
    uint8_t a[5] = {0x01}, b[5] = {0x03}, st[N] = {0}, rarity[N];
    const uint8_t *has[] = {a, b};

    (void)state;
    wm_swarm_rarity(rarity, N, has, 2);
    assert_int_equal(rarity[0], 2);
    assert_int_equal(rarity[1], 1);
    assert_int_equal(rarity[2], 0);
    /* a partial holder helps only with what is still needed */
    assert_true(wm_swarm_useful(st, 0, N, a));
    st[0] = WM_CS_DONE;
    assert_false(wm_swarm_useful(st, 0, N, a));
    st[1] = WM_CS_HELD;
    assert_false(wm_swarm_useful(st, 0, N, b));
    st[1] = WM_CS_ASKED; /* asked elsewhere: may still come from b */
    assert_true(wm_swarm_useful(st, 0, N, b));
    assert_false(wm_swarm_useful(st, 2, N, b)); /* past FROM only */
}

static void
test_rarity_saturates(void **state)
{
    static uint8_t all[300][1];
    const uint8_t *has[300];
    uint8_t rarity[1];

    (void)state;
    for (int i = 0; i < 300; i++) {
        all[i][0] = 1;
        has[i] = all[i];
    }
    wm_swarm_rarity(rarity, 1, has, 300);
    assert_int_equal(rarity[0], 255);
}

static void
test_pick_partial(void **state)
{
    uint8_t st[N] = {0}, rarity[N] = {0}, has[5] = {0};

    (void)state;
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 0, N, has, 0),
                     WM_NO_CHUNK);
    has[0] = 0x1c; /* chunks 2, 3, 4 */
    rarity[2] = 3, rarity[3] = 1, rarity[4] = 1;
    /* the rarest, the first of those from the fetch's start */
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 0, N, has, 0), 3);
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 0, N, has, 4), 4);
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 0, N, has, 5), 3);
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 2, N, has, 2 * N),
                     3);
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 0, N, has,
                                           UINT32_MAX), 3);
    st[3] = WM_CS_ASKED;
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 0, N, has, 0), 4);
    st[4] = WM_CS_DONE;
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 0, N, has, 0), 2);
    assert_int_equal(wm_swarm_pick_partial(st, rarity, 3, N, has, 7),
                     WM_NO_CHUNK);
}

static void
test_pick_whole(void **state)
{
    uint8_t st[N] = {0}, rarity[N] = {0};
    wm_stripe s = {2, 5, 0}; /* chunks 2, 7, 12, ... */

    (void)state;
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 0, 0), 2);
    /* from a prefix inside the stripe's period */
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 3, N, s, 0, 0), 7);
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 7, N, s, 0, 0), 7);
    /* from the stripe's scan point, then its chunks before it */
    s.scan = 8;
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 0, 0), 12);
    s.scan = 12;
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 0, 0), 12);
    s.scan = 36;
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 0, 0), 2);
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 3, N, s, 0, 0), 7);
    s.scan = UINT32_MAX;
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 0, 0) % 5, 2);
    s.scan = 0;
    /* a chunk a partial holder has is the swarm's to give */
    rarity[7] = 1;
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 3, N, s, 0, 0), 12);
    /* the stripe done: nothing, unless stalled */
    for (uint32_t c = 2; c < N; c += 5)
        st[c] = WM_CS_DONE;
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 0, 0),
                     WM_NO_CHUNK);
    /* stalled: the first chunk no partial holder has, from START */
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 30, 1), 30);
    memset(rarity, 2, sizeof(rarity));
    rarity[5] = 1;
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 30, 1), 5);
    memset(st, WM_CS_DONE, sizeof(st));
    assert_int_equal(wm_swarm_pick_whole(st, rarity, 0, N, s, 30, 1),
                     WM_NO_CHUNK);
}

/* Five fetchers, each knowing the four others, each from its own start:
 * their stripes are a partition of the wheel, so a whole holder sends
 * each chunk once. */
static void
test_stripes_partition_the_wheel(void **state)
{
    enum { F = 5 };
    uint8_t ids[F][32], asked[N] = {0}, rarity[N] = {0};
    uint32_t ranks = 0;

    (void)state;
    for (int i = 0; i < F; i++) {
        memset(ids[i], 0, 32);
        ids[i][0] = (uint8_t)(200 - 31 * i); /* not in rank order */
    }
    for (int i = 0; i < F; i++) {
        const uint8_t *others[F - 1];
        uint8_t st[N] = {0};
        uint32_t c;
        wm_stripe s;
        int n = 0;
        for (int j = 0; j < F; j++)
            if (j != i)
                others[n++] = ids[j];
        s = wm_swarm_stripe(ids[i], others, F - 1);
        assert_int_equal(s.k, F);
        ranks |= 1u << s.rank;
        s.scan = (uint32_t)(11 * i);
        while ((c = wm_swarm_pick_whole(st, rarity, 0, N, s, 0, 0)) !=
               WM_NO_CHUNK) {
            st[c] = WM_CS_ASKED;
            asked[c]++;
        }
    }
    assert_int_equal(ranks, (1u << F) - 1);
    for (uint32_t c = 0; c < N; c++)
        assert_int_equal(asked[c], 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bitmaps),
        cmocka_unit_test(test_rarity_and_useful),
        cmocka_unit_test(test_rarity_saturates),
        cmocka_unit_test(test_pick_partial),
        cmocka_unit_test(test_pick_whole),
        cmocka_unit_test(test_stripes_partition_the_wheel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
