/*
 * Unit tests for common/buf: growth, the hard cap and the sticky failed
 * state, printf, HTML escaping, and handing the data over with steal.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void
test_empty_steal(void **state)
{
    wm_buf b;
    size_t len = 99;
    char *s;

    wm_buf_init(&b, 16);
    assert_null(b.data);
    s = wm_buf_steal(&b, &len);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);
    free(s);
    wm_buf_free(&b);
}

static void
test_add_and_steal(void **state)
{
    wm_buf b;
    size_t len;
    char *s;

    wm_buf_init(&b, 1024);
    assert_int_equal(wm_buf_add(&b, "abc", 3), 0);
    assert_int_equal(wm_buf_adds(&b, "def"), 0);
    assert_int_equal(wm_buf_add(&b, NULL, 0), 0);
    assert_int_equal(wm_buf_printf(&b, "-%d-%s", 42, "x"), 0);
    assert_int_equal(b.len, 11);
    assert_string_equal(b.data, "abcdef-42-x");

    s = wm_buf_steal(&b, &len);
    assert_string_equal(s, "abcdef-42-x");
    assert_int_equal(len, 11);
    free(s);

    /* The buffer is reset and usable after steal. */
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 1024);
    assert_int_equal(wm_buf_adds(&b, "again"), 0);
    assert_string_equal(b.data, "again");
    wm_buf_free(&b);
}

static void
test_binary_data(void **state)
{
    wm_buf b;
    const char bytes[] = {'a', '\0', 'b', '\0'};

    wm_buf_init(&b, 64);
    assert_int_equal(wm_buf_add(&b, bytes, sizeof(bytes)), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, bytes, 4);
    assert_int_equal(b.data[4], '\0');
    wm_buf_free(&b);
}

static void
test_growth(void **state)
{
    wm_buf b;
    size_t i;
    char *s;
    size_t len;

    wm_buf_init(&b, 1 << 20);
    for (i = 0; i < 10000; i++)
        assert_int_equal(wm_buf_add(&b, &"0123456789"[i % 10], 1), 0);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    assert_true(b.cap <= b.max + 1);
    for (i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], '0' + (int)(i % 10));
    assert_int_equal(b.data[10000], '\0');
    s = wm_buf_steal(&b, &len);
    assert_int_equal(len, 10000);
    assert_int_equal(strlen(s), 10000);
    free(s);
}

static void
test_cap_exact_then_fail_sticks(void **state)
{
    wm_buf b;
    size_t len = 99;

    wm_buf_init(&b, 10);
    assert_int_equal(wm_buf_adds(&b, "0123456789"), 0);
    assert_int_equal(b.len, 10);
    assert_true(b.cap <= 11);
    assert_string_equal(b.data, "0123456789");
    assert_false(b.failed);

    assert_int_equal(wm_buf_adds(&b, "x"), -ENOMEM);
    assert_true(b.failed);
    /* Failed sticks: even empty appends are refused. */
    assert_int_equal(wm_buf_add(&b, "", 0), -ENOMEM);
    assert_int_equal(wm_buf_printf(&b, "%s", ""), -ENOMEM);
    assert_int_equal(wm_buf_add_html(&b, ""), -ENOMEM);
    assert_true(b.failed);

    assert_null(wm_buf_steal(&b, &len));
    assert_int_equal(len, 0);
    /* Steal reset the buffer; it is usable again. */
    assert_false(b.failed);
    assert_int_equal(wm_buf_adds(&b, "ok"), 0);
    assert_string_equal(b.data, "ok");
    wm_buf_free(&b);
}

static void
test_fail_in_one_big_add(void **state)
{
    wm_buf b;
    char big[100];

    memset(big, 'z', sizeof(big));
    wm_buf_init(&b, 50);
    assert_int_equal(wm_buf_adds(&b, "head"), 0);
    assert_int_equal(wm_buf_add(&b, big, sizeof(big)), -ENOMEM);
    assert_true(b.failed);
    assert_int_equal(wm_buf_adds(&b, "tail"), -ENOMEM);
    assert_null(wm_buf_steal(&b, NULL));
    wm_buf_free(&b);
}

static void
test_huge_len_does_not_wrap(void **state)
{
    wm_buf b;

    wm_buf_init(&b, SIZE_MAX);
    assert_int_equal(wm_buf_adds(&b, "abc"), 0);
    assert_int_equal(wm_buf_add(&b, "x", SIZE_MAX), -ENOMEM);
    assert_true(b.failed);
    wm_buf_free(&b);

    /* len + add == SIZE_MAX is within the cap, but the NUL is not. */
    wm_buf_init(&b, SIZE_MAX);
    assert_int_equal(wm_buf_adds(&b, "abc"), 0);
    assert_int_equal(wm_buf_add(&b, "x", SIZE_MAX - 3), -ENOMEM);
    assert_true(b.failed);
    wm_buf_free(&b);

    wm_buf_init(&b, 100);
    assert_int_equal(wm_buf_adds(&b, "abc"), 0);
    assert_int_equal(wm_buf_add(&b, "x", SIZE_MAX - 1), -ENOMEM);
    assert_true(b.failed);
    wm_buf_free(&b);
}

static void
test_zero_cap(void **state)
{
    wm_buf b;
    char *s;

    wm_buf_init(&b, 0);
    assert_int_equal(wm_buf_add(&b, "", 0), 0);
    s = wm_buf_steal(&b, NULL);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(wm_buf_adds(&b, "a"), -ENOMEM);
    wm_buf_free(&b);
}

static void
test_free_resets_failed(void **state)
{
    wm_buf b;

    wm_buf_init(&b, 4);
    assert_int_equal(wm_buf_adds(&b, "toolong"), -ENOMEM);
    assert_true(b.failed);
    wm_buf_free(&b);
    assert_false(b.failed);
    assert_null(b.data);
    assert_int_equal(b.max, 4);
    assert_int_equal(wm_buf_adds(&b, "four"), 0);
    assert_string_equal(b.data, "four");
    wm_buf_free(&b);
    wm_buf_free(&b); /* twice is harmless */
}

static void
test_printf_growth_and_cap(void **state)
{
    wm_buf b;
    char expect[301];

    memset(expect, 'q', 300);
    expect[300] = '\0';

    wm_buf_init(&b, 1000);
    assert_int_equal(wm_buf_adds(&b, "<"), 0);
    assert_int_equal(wm_buf_printf(&b, "%s", expect), 0);
    assert_int_equal(wm_buf_printf(&b, "%c%05u", '>', 7u), 0);
    assert_int_equal(b.len, 1 + 300 + 6);
    assert_memory_equal(b.data + 1, expect, 300);
    assert_string_equal(b.data + 301, ">00007");
    wm_buf_free(&b);

    /* Exactly at the cap succeeds; one past fails. */
    wm_buf_init(&b, 8);
    assert_int_equal(wm_buf_printf(&b, "%08d", 1), 0);
    assert_string_equal(b.data, "00000001");
    wm_buf_free(&b);
    wm_buf_init(&b, 8);
    assert_int_equal(wm_buf_printf(&b, "%09d", 1), -ENOMEM);
    assert_true(b.failed);
    assert_null(wm_buf_steal(&b, NULL));
}

static const struct html_case {
    const char *in;
    const char *out;
} html_cases[] = {
    {"", ""},
    {"plain text", "plain text"},
    {"&", "&amp;"},
    {"<", "&lt;"},
    {">", "&gt;"},
    {"\"", "&quot;"},
    {"'", "&#39;"},
    {"a<b>c", "a&lt;b&gt;c"},
    {"<script>alert('x')</script>",
     "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"},
    {"\"onmouseover=\"x", "&quot;onmouseover=&quot;x"},
    {"&amp;", "&amp;amp;"},
    {"&&&", "&amp;&amp;&amp;"},
    {"torch-2.1.0+cpu-cp311-cp311-linux_x86_64.whl#sha256=ab",
     "torch-2.1.0+cpu-cp311-cp311-linux_x86_64.whl#sha256=ab"},
    {">=3.8", "&gt;=3.8"},
    {"caf\xc3\xa9", "caf\xc3\xa9"},
};

static void
test_html_table(void **state)
{
    size_t i;
    wm_buf b;

    for (i = 0; i < sizeof(html_cases) / sizeof(html_cases[0]); i++) {
        wm_buf_init(&b, 4096);
        assert_int_equal(wm_buf_adds(&b, "["), 0);
        assert_int_equal(wm_buf_add_html(&b, html_cases[i].in), 0);
        assert_int_equal(wm_buf_adds(&b, "]"), 0);
        assert_int_equal(b.len, strlen(html_cases[i].out) + 2);
        assert_memory_equal(b.data + 1, html_cases[i].out,
                            strlen(html_cases[i].out));
        wm_buf_free(&b);
    }
}

static void
test_html_over_cap(void **state)
{
    wm_buf b;

    /* "a&b" escapes to 7 bytes. */
    wm_buf_init(&b, 7);
    assert_int_equal(wm_buf_add_html(&b, "a&b"), 0);
    assert_string_equal(b.data, "a&amp;b");
    wm_buf_free(&b);

    wm_buf_init(&b, 6);
    assert_int_equal(wm_buf_add_html(&b, "a&b"), -ENOMEM);
    assert_true(b.failed);
    wm_buf_free(&b);

    /* Failing inside an escape sequence. */
    wm_buf_init(&b, 3);
    assert_int_equal(wm_buf_add_html(&b, "<"), -ENOMEM);
    assert_true(b.failed);
    assert_null(wm_buf_steal(&b, NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_steal),
        cmocka_unit_test(test_add_and_steal),
        cmocka_unit_test(test_binary_data),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_cap_exact_then_fail_sticks),
        cmocka_unit_test(test_fail_in_one_big_add),
        cmocka_unit_test(test_huge_len_does_not_wrap),
        cmocka_unit_test(test_zero_cap),
        cmocka_unit_test(test_free_resets_failed),
        cmocka_unit_test(test_printf_growth_and_cap),
        cmocka_unit_test(test_html_table),
        cmocka_unit_test(test_html_over_cap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
