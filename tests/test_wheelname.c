/*
 * Unit tests for common/wheelname: real wheel filenames that must parse,
 * hostile and malformed names that must be refused with the right reason,
 * PEP 503 normalisation, and a random-input sweep whose accepted names must
 * round-trip through their parsed fields.
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

#include "wheelname.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const struct good_case {
    const char *name;
    const char *project, *dist, *version, *build, *python, *abi, *platform;
} good_cases[] = {
    {"pip-23.0.1-py3-none-any.whl", "pip", "pip", "23.0.1", "", "py3", "none",
     "any"},
    {"setuptools-66.1.1-py3-none-any.whl", "setuptools", "setuptools", "66.1.1",
     "", "py3", "none", "any"},
    {"wheel-0.38.4-py3-none-any.whl", "wheel", "wheel", "0.38.4", "", "py3",
     "none", "any"},
    {"torch-2.1.0+cpu-cp311-cp311-linux_x86_64.whl", "torch", "torch",
     "2.1.0+cpu", "", "cp311", "cp311", "linux_x86_64"},
    {"numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
     "numpy", "numpy", "1.26.4", "", "cp311", "cp311",
     "manylinux_2_17_x86_64.manylinux2014_x86_64"},
    {"Foo_Bar-1.0-1-py2.py3-none-any.whl", "foo-bar", "Foo_Bar", "1.0", "1",
     "py2.py3", "none", "any"},
    {"zope.interface-6.0-cp311-cp311-linux_x86_64.whl", "zope-interface",
     "zope.interface", "6.0", "", "cp311", "cp311", "linux_x86_64"},
    {"cryptography-41.0.7-cp37-abi3-manylinux_2_28_aarch64.whl", "cryptography",
     "cryptography", "41.0.7", "", "cp37", "abi3", "manylinux_2_28_aarch64"},
    {"pywin32-306-cp311-cp311-win_amd64.whl", "pywin32", "pywin32", "306", "",
     "cp311", "cp311", "win_amd64"},
    {"Pillow-10.1.0-cp312-cp312-macosx_10_10_x86_64.whl", "pillow", "Pillow",
     "10.1.0", "", "cp312", "cp312", "macosx_10_10_x86_64"},
    {"pkg-2!1.0.post1+local.7-20240101_build-cp39.cp310-cp39m-any.whl", "pkg",
     "pkg", "2!1.0.post1+local.7", "20240101_build", "cp39.cp310", "cp39m",
     "any"},
    {"a-0-py3-none-any.whl", "a", "a", "0", "", "py3", "none", "any"},
    {"A__B.c-1.0rc1.dev2-py3-none-any.whl", "a-b-c", "A__B.c", "1.0rc1.dev2",
     "", "py3", "none", "any"},
};

static void
check_good(const struct good_case *c)
{
    wm_wheelname w;
    const char *why = "unset";
    int rc;

    rc = wm_wheelname_parse(c->name, &w, &why);
    if (rc != 0)
        fail_msg("%s: refused: %s", c->name, why);
    assert_null(why);
    assert_string_equal(w.filename, c->name);
    assert_string_equal(w.project, c->project);
    assert_string_equal(w.dist, c->dist);
    assert_string_equal(w.version, c->version);
    assert_string_equal(w.build, c->build);
    assert_string_equal(w.python, c->python);
    assert_string_equal(w.abi, c->abi);
    assert_string_equal(w.platform, c->platform);
}

static void
test_good_names(void **state)
{
    size_t i;

    for (i = 0; i < N_ELEMS(good_cases); i++)
        check_good(&good_cases[i]);
}

static const struct bad_case {
    const char *name;
    const char *why;
} bad_cases[] = {
    /* Paths and traversal. */
    {"../x-1.0-py3-none-any.whl", "path separator in name"},
    {"a/b-1.0-py3-none-any.whl", "path separator in name"},
    {"a\\b-1.0-py3-none-any.whl", "path separator in name"},
    {"..\\x-1.0-py3-none-any.whl", "path separator in name"},
    {"/etc/passwd", "path separator in name"},
    {"x-1.0-py3-none-any.whl/", "path separator in name"},
    {"..x-1.0-py3-none-any.whl", "\"..\" in name"},
    {"x-1.0..1-py3-none-any.whl", "\"..\" in name"},
    {"x-1.0-py2..py3-none-any.whl", "\"..\" in name"},
    {"..", "\"..\" in name"},
    {".x-1.0-py3-none-any.whl", "leading dot in name"},
    {".whl", "leading dot in name"},
    /* Bytes that have no place in a name. */
    {"x-1.0-py3-none-any.whl\n", "control character in name"},
    {"x-1.0-py3-none-any\r.whl", "control character in name"},
    {"x-1.0-py3-none-any.whl\x1b[2J", "control character in name"},
    {"x\t-1.0-py3-none-any.whl", "control character in name"},
    {"x-1.0-py3-none-any.whl\x7f", "control character in name"},
    {"x y-1.0-py3-none-any.whl", "space in name"},
    {"x-1.0-py3-none-any.whl ", "space in name"},
    {" x-1.0-py3-none-any.whl", "space in name"},
    {"caf\xc3\xa9-1.0-py3-none-any.whl", "non-ASCII byte in name"},
    {"x-1.0-py3-none-any\xef\xbc\x8ewhl", "non-ASCII byte in name"},
    {"\xff", "non-ASCII byte in name"},
    {"x-1.0-py3-none-any.whl;rm", "invalid character in name"},
    {"x-1.0-py3-none-any.whl?a=b", "invalid character in name"},
    {"%2e%2e-1.0-py3-none-any.whl", "invalid character in name"},
    {"x-1.0-py3-none-any.whl#sha256=00", "invalid character in name"},
    {"x:y-1.0-py3-none-any.whl", "invalid character in name"},
    {"x*-1.0-py3-none-any.whl", "invalid character in name"},
    {"<x>-1.0-py3-none-any.whl", "invalid character in name"},
    {"x~-1.0-py3-none-any.whl", "invalid character in name"},
    /* Not a wheel. */
    {"", "empty name"},
    {"x-1.0-py3-none-any.zip", "not a .whl file"},
    {"x-1.0-py3-none-any.WHL", "not a .whl file"},
    {"x-1.0-py3-none-any", "not a .whl file"},
    {"x-1.0.tar.gz", "not a .whl file"},
    {"whl", "not a .whl file"},
    {"x-1.0-py3-none-any.whl.part", "not a .whl file"},
    /* Wrong shape. */
    {"x.whl", "missing version"},
    {"x-1.0.whl", "missing python tag"},
    {"x-1.0-py3.whl", "missing abi tag"},
    {"x-1.0-py3-none.whl", "missing platform tag"},
    {"x-1.0-1-py3-none-any-more.whl", "too many components"},
    {"foo-bar-baz-1.0-py3-none-any.whl", "too many components"},
    {"x-------.whl", "too many components"},
    {"-1.0-py3-none-any.whl", "empty distribution name"},
    {"x--py3-none-any.whl", "empty version"},
    {"x-1.0--py3-none-any.whl", "empty build tag"},
    {"x-1.0-1--none-any.whl", "empty python tag"},
    {"x-1.0-py3--any.whl", "empty abi tag"},
    {"x-1.0-py3-none-.whl", "empty platform tag"},
    {"x-1.0-1-py3-none-.whl", "empty platform tag"},
    {"-----.whl", "empty distribution name"},
    /* Components that break their own rules. */
    {"x-1.0-abc-py3-none-any.whl", "build tag must start with a digit"},
    {"x-1.0-_1-py3-none-any.whl", "build tag must start with a digit"},
    {"x-1.0-1+a-py3-none-any.whl", "invalid build tag"},
    {"x-1.0-1_-py3-none-any.whl", "invalid build tag"},
    {"foo-bar-1.0-py3-none-any.whl", "invalid version"},
    {"x_-1.0-py3-none-any.whl", "invalid distribution name"},
    {"_x-1.0-py3-none-any.whl", "invalid distribution name"},
    {"x+y-1.0-py3-none-any.whl", "invalid distribution name"},
    {"x!-1.0-py3-none-any.whl", "invalid distribution name"},
    {"x-v1.0-py3-none-any.whl", "invalid version"},
    {"x-1.0.-py3-none-any.whl", "invalid version"},
    {"x-1!2!3-py3-none-any.whl", "invalid version"},
    {"x-1.0+a+b-py3-none-any.whl", "invalid version"},
    {"x-.1-py3-none-any.whl", "invalid version"},
    {"x-1.0-py3+-none-any.whl", "invalid python tag"},
    {"x-1.0-.py3-none-any.whl", "invalid python tag"},
    {"x-1.0-py3-no!ne-any.whl", "invalid abi tag"},
    {"x-1.0-py3-none_-any.whl", "invalid abi tag"},
    {"x-1.0-py3-none-any_.whl", "invalid platform tag"},
    {"x-1.0-py3-none-.any.whl", "invalid platform tag"},
    {"x-1.0-py3-none-any..whl", "\"..\" in name"},
};

static void
check_bad(const char *name, const char *expect_why)
{
    wm_wheelname w;
    const char *why = NULL;
    int rc;

    memset(&w, 'z', sizeof(w));
    rc = wm_wheelname_parse(name, &w, &why);
    if (rc != -EINVAL)
        fail_msg("\"%s\": expected -EINVAL (%s), got %d", name, expect_why, rc);
    assert_non_null(why);
    if (strcmp(why, expect_why) != 0)
        fail_msg("\"%s\": expected \"%s\", got \"%s\"", name, expect_why, why);
    /* Nothing half-parsed is left behind. */
    assert_string_equal(w.filename, "");
    assert_string_equal(w.project, "");
    assert_string_equal(w.dist, "");
    /* A NULL why is allowed. */
    assert_int_equal(wm_wheelname_parse(name, &w, NULL), -EINVAL);
}

static void
test_bad_names(void **state)
{
    size_t i;

    for (i = 0; i < N_ELEMS(bad_cases); i++)
        check_bad(bad_cases[i].name, bad_cases[i].why);
}

/* Parsing into a struct that held an earlier parse leaves nothing behind,
 * and re-parsing a struct's own filename into it works. */
static void
test_reuse(void **state)
{
    wm_wheelname w;

    assert_int_equal(
        wm_wheelname_parse("Foo_Bar-1.0-1-py2.py3-none-any.whl", &w, NULL), 0);
    assert_string_equal(w.build, "1");
    assert_int_equal(
        wm_wheelname_parse("pip-23.0.1-py3-none-any.whl", &w, NULL), 0);
    assert_string_equal(w.build, "");
    assert_string_equal(w.project, "pip");
    assert_int_equal(wm_wheelname_parse(w.filename, &w, NULL), 0);
    assert_string_equal(w.filename, "pip-23.0.1-py3-none-any.whl");
    assert_string_equal(w.version, "23.0.1");
}

static void
test_null_name(void **state)
{
    wm_wheelname w;
    const char *why = NULL;

    assert_int_equal(wm_wheelname_parse(NULL, &w, &why), -EINVAL);
    assert_string_equal(why, "no name");
}

/* Fills BUF with N copies of C, NUL-terminated. */
static char *
fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void
test_lengths(void **state)
{
    char name[1024];
    char part[512];
    const char *why;
    wm_wheelname w;
    size_t tail;

    /* 300-character name. */
    snprintf(name, sizeof(name), "%s-1.0-py3-none-any.whl",
             fill(part, 'a', 300 - 21));
    assert_int_equal(strlen(name), 300);
    check_bad(name, "name too long");

    /* A very long name is refused without being walked to its end. */
    fill(name, 'a', sizeof(name) - 1);
    check_bad(name, "name too long");

    /* Exactly WM_WHEELNAME_MAX parses; one more does not. The length goes
     * into the platform tag, since the name has its own, smaller cap. */
    tail = WM_WHEELNAME_MAX - strlen("x-1.0-py3-none-.whl");
    snprintf(name, sizeof(name), "x-1.0-py3-none-%s.whl",
             fill(part, 'p', tail));
    assert_int_equal(strlen(name), WM_WHEELNAME_MAX);
    why = "unset";
    assert_int_equal(wm_wheelname_parse(name, &w, &why), 0);
    assert_null(why);
    assert_string_equal(w.filename, name);
    assert_string_equal(w.platform, part);

    snprintf(name, sizeof(name), "x-1.0-py3-none-%s.whl",
             fill(part, 'p', tail + 1));
    check_bad(name, "name too long");

    /* Distribution name: WM_PROJECT_MAX fits, one more does not. */
    snprintf(name, sizeof(name), "%s-1.0-py3-none-any.whl",
             fill(part, 'd', WM_PROJECT_MAX));
    assert_int_equal(wm_wheelname_parse(name, &w, &why), 0);
    assert_string_equal(w.dist, part);
    assert_string_equal(w.project, part);

    snprintf(name, sizeof(name), "%s-1.0-py3-none-any.whl",
             fill(part, 'd', WM_PROJECT_MAX + 1));
    check_bad(name, "distribution name too long");
}

/* Every byte value, one at a time, inside the distribution name of a good
 * wheel name: only [A-Za-z0-9_.] may pass. */
static void
test_every_bad_byte(void **state)
{
    char name[64];
    wm_wheelname w;
    const char *why;
    int c;

    for (c = 1; c < 256; c++) {
        snprintf(name, sizeof(name), "x%cy-1.0-py3-none-any.whl", c);
        why = NULL;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '_' || c == '.') {
            assert_int_equal(wm_wheelname_parse(name, &w, &why), 0);
            continue;
        }
        assert_int_equal(wm_wheelname_parse(name, &w, &why), -EINVAL);
        assert_non_null(why);
    }
}

static int
in_set(char c, const char *extra)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           (c != '\0' && strchr(extra, c) != NULL);
}

static int
all_in_set(const char *s, const char *extra)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!in_set(*s, extra))
            return 0;
    return 1;
}

/* Random names over an alphabet biased towards the interesting bytes: the
 * parser must never crash (ASan), and whatever it accepts must be made only
 * of allowed bytes and rebuild to exactly the input. */
static void
test_random_sweep(void **state)
{
    static const char alphabet[] = "ab1_.-+!/\\ \n\xc3"
                                   "whl";
    static const char *const stems[] = {"", "x-1.0-", "x-1.0-py3-",
                                        "x-1.0-1-py3-none-"};
    char name[64];
    char again[2048]; /* room for every field at its largest */
    wm_wheelname w;
    const char *why;
    unsigned int seed = 12345;
    size_t i, j, n, off, accepted = 0;

    for (i = 0; i < 200000; i++) {
        seed = seed * 1103515245u + 12345u;
        off = (size_t)snprintf(name, sizeof(name), "%s",
                               stems[(seed >> 8) % N_ELEMS(stems)]);
        n = (seed >> 16) % 24;
        for (j = 0; j < n && off + 1 < sizeof(name); j++) {
            seed = seed * 1103515245u + 12345u;
            name[off++] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        name[off] = '\0';
        if ((seed >> 28) & 1)
            snprintf(name + off, sizeof(name) - off, ".whl");

        why = NULL;
        if (wm_wheelname_parse(name, &w, &why) != 0) {
            assert_non_null(why);
            assert_true(strlen(why) > 0 && strlen(why) < 64);
            continue;
        }
        accepted++;
        assert_null(strstr(name, ".."));
        assert_true(all_in_set(w.dist, ""));
        assert_true(all_in_set(w.version, "+!"));
        assert_true(w.build[0] == '\0' || all_in_set(w.build, ""));
        assert_true(all_in_set(w.python, ""));
        assert_true(all_in_set(w.abi, ""));
        assert_true(all_in_set(w.platform, ""));
        if (w.build[0] != '\0')
            snprintf(again, sizeof(again), "%s-%s-%s-%s-%s-%s.whl", w.dist,
                     w.version, w.build, w.python, w.abi, w.platform);
        else
            snprintf(again, sizeof(again), "%s-%s-%s-%s-%s.whl", w.dist,
                     w.version, w.python, w.abi, w.platform);
        assert_string_equal(again, name);
    }
    /* The sweep is only worth something if some names get through. */
    assert_true(accepted > 100);
}

static const struct norm_case {
    const char *in;
    const char *out; /* NULL: refused */
} norm_cases[] = {
    {"Foo.Bar_baz", "foo-bar-baz"},
    {"A__B", "a-b"},
    {"zope.interface", "zope-interface"},
    {"a-_.-b", "a-b"},
    {"Django", "django"},
    {"typing_extensions", "typing-extensions"},
    {"ruamel.yaml.clib", "ruamel-yaml-clib"},
    {"PyYAML", "pyyaml"},
    {"x", "x"},
    {"X1", "x1"},
    {"0", "0"},
    {"already-normal", "already-normal"},
    {"", NULL},
    {"-x", NULL},
    {"x-", NULL},
    {"_x", NULL},
    {"x.", NULL},
    {".", NULL},
    {"-", NULL},
    {"a b", NULL},
    {" a", NULL},
    {"a/b", NULL},
    {"a\\b", NULL},
    {"..", NULL},
    {"a+b", NULL},
    {"a!b", NULL},
    {"a\nb", NULL},
    {"caf\xc3\xa9", NULL},
};

static void
test_normalize_table(void **state)
{
    char out[WM_PROJECT_MAX + 1];
    size_t i;
    int rc;

    for (i = 0; i < N_ELEMS(norm_cases); i++) {
        memset(out, 'z', sizeof(out));
        rc = wm_project_normalize(norm_cases[i].in, out, sizeof(out));
        if (norm_cases[i].out == NULL) {
            if (rc != -EINVAL)
                fail_msg("\"%s\": expected -EINVAL, got %d (\"%s\")",
                         norm_cases[i].in, rc, out);
            assert_string_equal(out, "");
        } else {
            if (rc != 0)
                fail_msg("\"%s\": refused (%d)", norm_cases[i].in, rc);
            assert_string_equal(out, norm_cases[i].out);
            /* The normal form is its own normal form. */
            assert_true(wm_project_is_normalized(out));
        }
    }
}

static void
test_normalize_limits(void **state)
{
    char name[WM_PROJECT_MAX + 2];
    char out[WM_PROJECT_MAX + 1];
    char small[4];

    assert_int_equal(wm_project_normalize(NULL, out, sizeof(out)), -EINVAL);

    fill(name, 'A', WM_PROJECT_MAX);
    assert_int_equal(wm_project_normalize(name, out, sizeof(out)), 0);
    assert_int_equal(strlen(out), WM_PROJECT_MAX);
    assert_int_equal(out[0], 'a');

    fill(name, 'a', WM_PROJECT_MAX + 1);
    assert_int_equal(wm_project_normalize(name, out, sizeof(out)), -EINVAL);
    assert_string_equal(out, "");

    /* An output buffer too small is refused, never overrun. */
    assert_int_equal(wm_project_normalize("abcd", small, sizeof(small)),
                     -EINVAL);
    assert_string_equal(small, "");
    assert_int_equal(wm_project_normalize("a__b", small, sizeof(small)), 0);
    assert_string_equal(small, "a-b");
    assert_int_equal(wm_project_normalize("abc", small, 0), -EINVAL);
}

static const struct isnorm_case {
    const char *name;
    int expect;
} isnorm_cases[] = {
    {"foo", 1},      {"foo-bar", 1}, {"a-b-c", 1},   {"x1", 1},
    {"0", 1},        {"Foo", 0},     {"foo_bar", 0}, {"foo.bar", 0},
    {"foo--bar", 0}, {"-foo", 0},    {"foo-", 0},    {"", 0},
    {"foo bar", 0},  {"foo/bar", 0}, {"FOO", 0},     {"caf\xc3\xa9", 0},
};

static void
test_is_normalized(void **state)
{
    char name[WM_PROJECT_MAX + 2];
    size_t i;

    for (i = 0; i < N_ELEMS(isnorm_cases); i++) {
        if (wm_project_is_normalized(isnorm_cases[i].name) !=
            isnorm_cases[i].expect)
            fail_msg("\"%s\": expected %d", isnorm_cases[i].name,
                     isnorm_cases[i].expect);
    }
    assert_false(wm_project_is_normalized(NULL));
    assert_true(wm_project_is_normalized(fill(name, 'a', WM_PROJECT_MAX)));
    assert_false(wm_project_is_normalized(fill(name, 'a', WM_PROJECT_MAX + 1)));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_names),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_null_name),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_every_bad_byte),
        cmocka_unit_test(test_random_sweep),
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test(test_normalize_limits),
        cmocka_unit_test(test_is_normalized),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
