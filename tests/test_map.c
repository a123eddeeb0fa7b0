/*
 * Unit tests for common/map: put, get, replace and remove against a plain
 * model over many keys (so the buckets double several times), the recency
 * order that bounded caches evict by, walks that remove as they go, and
 * key length limits.
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

#include "identity.h"
#include "map.h"

#define N 5000

static void
key_of(int i, char *out, size_t *len)
{
    *len = (size_t)snprintf(out, 32, "project-%d", i);
}

static void
test_against_a_model(void **state)
{
    static int values[N];
    static int present[N];
    wm_map *m = wm_map_new();
    char key[32];
    size_t klen;

    assert_non_null(m);
    for (int i = 0; i < N; i++) {
        values[i] = i;
        key_of(i, key, &klen);
        assert_int_equal(wm_map_put(m, key, klen, &values[i]), 0);
        present[i] = 1;
    }
    assert_int_equal(wm_map_count(m), N);
    /* Remove every third, replace every fifth. */
    for (int i = 0; i < N; i += 3) {
        key_of(i, key, &klen);
        assert_ptr_equal(wm_map_remove(m, key, klen), &values[i]);
        assert_null(wm_map_remove(m, key, klen));
        present[i] = 0;
    }
    for (int i = 0; i < N; i += 5) {
        key_of(i, key, &klen);
        assert_int_equal(wm_map_put(m, key, klen, &values[(i + 1) % N]), 0);
        present[i] = 2;
    }
    size_t want = 0;
    for (int i = 0; i < N; i++) {
        key_of(i, key, &klen);
        void *v = wm_map_get(m, key, klen);
        if (present[i] == 0)
            assert_null(v);
        else if (present[i] == 1)
            assert_ptr_equal(v, &values[i]);
        else
            assert_ptr_equal(v, &values[(i + 1) % N]);
        want += present[i] != 0;
    }
    assert_int_equal(wm_map_count(m), want);
    assert_null(wm_map_get(m, "nope", 4));
    wm_map_destroy(&m, NULL);
    assert_null(m);
}

static void
test_recency_order(void **state)
{
    wm_map *m = wm_map_new();
    int a = 1, b = 2, c = 3;
    const void *key;
    size_t klen;

    assert_null(wm_map_oldest(m, &key, &klen));
    wm_map_put(m, "a", 1, &a);
    wm_map_put(m, "b", 1, &b);
    wm_map_put(m, "c", 1, &c);
    assert_ptr_equal(wm_map_oldest(m, &key, &klen), &a);
    assert_int_equal(klen, 1);
    assert_memory_equal(key, "a", 1);
    /* Touching makes an entry the newest; get does not. */
    assert_ptr_equal(wm_map_touch(m, "a", 1), &a);
    assert_ptr_equal(wm_map_get(m, "b", 1), &b);
    assert_ptr_equal(wm_map_oldest(m, NULL, NULL), &b);
    /* Replacing counts as a use. */
    wm_map_put(m, "b", 1, &b);
    assert_ptr_equal(wm_map_oldest(m, NULL, NULL), &c);
    assert_null(wm_map_touch(m, "zz", 2));
    /* A walk goes newest first: b, a, c. */
    void *cur = NULL;
    assert_ptr_equal(wm_map_next(m, &cur, NULL, NULL), &b);
    assert_ptr_equal(wm_map_next(m, &cur, NULL, NULL), &a);
    assert_ptr_equal(wm_map_next(m, &cur, &key, &klen), &c);
    assert_memory_equal(key, "c", 1);
    assert_null(wm_map_next(m, &cur, NULL, NULL));
    assert_null(wm_map_next(m, &cur, NULL, NULL));
    wm_map_destroy(&m, NULL);
}

static int freed;

static void
count_free(void *v)
{
    freed++;
    free(v);
}

static void
test_walk_removing_and_destroy_frees(void **state)
{
    wm_map *m = wm_map_new();
    char key[32];
    size_t klen;
    void *cur = NULL, *v;
    const void *k;
    int seen = 0;

    for (int i = 0; i < 100; i++) {
        key_of(i, key, &klen);
        assert_int_equal(wm_map_put(m, key, klen, malloc(8)), 0);
    }
    /* Remove every entry as the walk returns it. */
    while ((v = wm_map_next(m, &cur, &k, &klen)) != NULL) {
        memcpy(key, k, klen);
        assert_ptr_equal(wm_map_remove(m, key, klen), v);
        free(v);
        seen++;
    }
    assert_int_equal(seen, 100);
    assert_int_equal(wm_map_count(m), 0);
    for (int i = 0; i < 10; i++) {
        key_of(i, key, &klen);
        wm_map_put(m, key, klen, malloc(8));
    }
    freed = 0;
    wm_map_destroy(&m, count_free);
    assert_int_equal(freed, 10);
    wm_map_destroy(&m, count_free); /* NULL is fine */
}

static void
test_key_limits(void **state)
{
    wm_map *m = wm_map_new();
    uint8_t big[WM_MAP_KEY_MAX + 1];
    int v = 7;

    memset(big, 'x', sizeof(big));
    assert_int_equal(wm_map_put(m, big, sizeof(big), &v), -EINVAL);
    assert_null(wm_map_get(m, big, sizeof(big)));
    assert_int_equal(wm_map_put(m, big, WM_MAP_KEY_MAX, &v), 0);
    assert_ptr_equal(wm_map_get(m, big, WM_MAP_KEY_MAX), &v);
    /* Binary keys: a sha256 with NUL bytes, and the empty key. */
    uint8_t sha[32] = {0};
    sha[31] = 1;
    assert_int_equal(wm_map_put(m, sha, sizeof(sha), &v), 0);
    sha[31] = 2;
    assert_null(wm_map_get(m, sha, sizeof(sha)));
    assert_int_equal(wm_map_put(m, "", 0, &v), 0);
    assert_ptr_equal(wm_map_get(m, "", 0), &v);
    wm_map_destroy(&m, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_a_model),
        cmocka_unit_test(test_recency_order),
        cmocka_unit_test(test_walk_removing_and_destroy_frees),
        cmocka_unit_test(test_key_limits),
    };

    if (wm_identity_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
