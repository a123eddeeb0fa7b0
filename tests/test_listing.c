/*
 * Unit tests for node/listing: the trust rules of what a page lists, as a
 * table of upstream files x claims (who signed them, whether a publisher,
 * whether a live member holds the bytes) x pins -> the files listed, and
 * the conflicts reported. A sha256 is written as one letter (all 32 bytes
 * that letter); a claim as "filename=letter".
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

#include "listing.h"

#define MAXF 6

/* A claim in a case: file, bytes, signer flags. */
struct claim {
    const char *file; /* "name=X" */
    int publisher;    /* signed by a publisher (or our own put) */
    int held;         /* a live member (or this node) holds the bytes */
};

struct listing_case {
    const char *what;
    const char *upstream[MAXF]; /* "name=X"; NULL-ended; NULL page when
                                 * the first is "-" */
    int pinned;
    struct claim claims[MAXF];
    const char *want[MAXF + MAXF]; /* "name=X", in page order */
    int conflicts;
};

#define NOPAGE {"-"}
#define A "a-1.0-py3-none-any.whl"
#define A_LINUX "a-1.0-cp311-cp311-linux_x86_64.whl"
#define A2 "a-2.0-py3-none-any.whl"
#define A_LOCAL "a-1.0+corp1-py3-none-any.whl"
#define A_SDIST "a-1.0.tar.gz"
#define A3_SDIST "a-3.0.tar.gz"
#define A3_LINUX "a-3.0-cp311-cp311-linux_x86_64.whl"

static const struct listing_case cases[] = {
    {"upstream only", {A "=u", A_SDIST "=s"}, 0, {{0}}, {A "=u", A_SDIST "=s"},
     0},
    {"no page, a publisher's claim", NOPAGE, 0, {{A "=p", 1, 1}}, {A "=p"}, 0},
    {"no page, a claim nobody publishes", NOPAGE, 0, {{A "=p", 0, 1}}, {0},
     0},
    {"no page, a claim whose holder is gone", NOPAGE, 0, {{A "=p", 1, 0}},
     {0}, 0},
    {"other bytes under upstream's name", {A "=u"}, 0, {{A "=x", 1, 1}},
     {A "=u"}, 1},
    {"the same bytes under upstream's name", {A "=u"}, 0, {{A "=u", 1, 1}},
     {A "=u"}, 0},
    {"a higher version upstream lacks", {A "=u"}, 0, {{A2 "=x", 1, 1}},
     {A "=u"}, 1},
    {"a platform wheel of an upstream version", {A_SDIST "=s"}, 0,
     {{A_LINUX "=w", 1, 1}}, {A_SDIST "=s", A_LINUX "=w"}, 0},
    {"a platform wheel of an sdist-only version", {A "=u", A3_SDIST "=t"}, 0,
     {{A3_LINUX "=w", 1, 1}}, {A "=u", A3_SDIST "=t", A3_LINUX "=w"}, 0},
    {"a local label", {A "=u"}, 0, {{A_LOCAL "=l", 1, 1}},
     {A "=u", A_LOCAL "=l"}, 0},
    {"pinned: nothing but the index's", {A_SDIST "=s"}, 1,
     {{A_LINUX "=w", 1, 1}, {A_LOCAL "=l", 1, 1}}, {A_SDIST "=s"}, 0},
    {"pinned, the index lacks it", NOPAGE, 1, {{A "=p", 1, 1}}, {0}, 0},
    {"two claims, other bytes, no page", NOPAGE, 0,
     {{A "=p", 1, 1}, {A "=q", 1, 1}}, {0}, 2},
    {"two claims, same bytes", NOPAGE, 0, {{A "=p", 1, 1}, {A "=p", 1, 1}},
     {A "=p"}, 0},
    {"an unpublished claim does not conflict", NOPAGE, 0,
     {{A "=p", 1, 1}, {A "=q", 0, 1}}, {A "=p"}, 0},
    {"claims sorted after upstream's", {A_SDIST "=s"}, 0,
     {{A_LOCAL "=l", 1, 1}, {A_LINUX "=w", 1, 1}},
     {A_SDIST "=s", A_LOCAL "=l", A_LINUX "=w"}, 0},
};

/* Splits "name=X" into NAME and the sha256 of letter X. */
static void
parse(const char *spec, char *name, size_t sz, uint8_t sha[32])
{
    const char *eq = strchr(spec, '=');

    assert_non_null(eq);
    snprintf(name, sz, "%.*s", (int)(eq - spec), spec);
    memset(sha, eq[1], 32);
}

static int conflicts;

static void
on_conflict(void *arg, const char *filename, const uint8_t *publisher,
            enum wm_conflict why)
{
    conflicts++;
}

static void
test_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct listing_case *c = &cases[i];
        char upnames[MAXF][128], clnames[MAXF][128], name[128];
        uint8_t upshas[MAXF][32], clshas[MAXF][32], sha[32];
        wm_upfile files[MAXF];
        wm_simplepage page = {files, 0};
        wm_claimed claims[MAXF];
        size_t nclaims = 0, nwant = 0;
        wm_listing_in in;
        wm_listed *out;
        long n;

        memset(files, 0, sizeof(files));
        for (size_t k = 0; c->upstream[k] != NULL &&
                           strcmp(c->upstream[k], "-") != 0;
             k++) {
            parse(c->upstream[k], upnames[k], sizeof(upnames[k]), upshas[k]);
            files[k].filename = upnames[k];
            files[k].url = "https://up.example/f";
            files[k].has_sha256 = 1;
            memcpy(files[k].sha256, upshas[k], 32);
            files[k].is_wheel = strstr(upnames[k], ".whl") != NULL;
            page.nfiles++;
        }
        for (size_t k = 0; k < MAXF && c->claims[k].file != NULL; k++) {
            parse(c->claims[k].file, clnames[k], sizeof(clnames[k]),
                  clshas[k]);
            memset(&claims[k], 0, sizeof(claims[k]));
            claims[k].filename = clnames[k];
            claims[k].sha256 = clshas[k];
            claims[k].size = 100;
            claims[k].requires_python = "";
            claims[k].publisher = clshas[k];
            claims[k].by_publisher = c->claims[k].publisher;
            claims[k].held = c->claims[k].held;
            nclaims++;
        }
        memset(&in, 0, sizeof(in));
        in.upstream = c->upstream[0] != NULL && strcmp(c->upstream[0], "-") == 0
                          ? NULL
                          : &page;
        in.pinned = c->pinned;
        in.claims = claims;
        in.nclaims = nclaims;
        in.conflict = on_conflict;
        conflicts = 0;
        n = wm_listing_build(&in, &out);
        while (nwant < MAXF + MAXF && c->want[nwant] != NULL)
            nwant++;
        if (n != (long)nwant || conflicts != c->conflicts) {
            print_error("%s: %ld files (want %zu), %d conflicts (want %d)\n",
                        c->what, n, nwant, conflicts, c->conflicts);
            for (long k = 0; k < n; k++)
                print_error("  listed %s\n", out[k].filename);
            fail();
        }
        for (size_t k = 0; k < nwant; k++) {
            parse(c->want[k], name, sizeof(name), sha);
            if (strcmp(out[k].filename, name) != 0 ||
                memcmp(out[k].sha256, sha, 32) != 0) {
                print_error("%s: file %zu is %s, want %s\n", c->what, k,
                            out[k].filename, c->want[k]);
                fail();
            }
        }
        free(out);
    }
}

/* Upstream's attributes travel with its files wherever the bytes are:
 * yanked and Requires-Python stay when this node holds the file, and the
 * held copy's metadata is advertised. */
static void
test_upstream_attributes_stay(void **state)
{
    wm_upfile f;
    wm_simplepage page = {&f, 1};
    wm_file_info local;
    wm_listing_in in;
    wm_listed *out;

    memset(&f, 0, sizeof(f));
    f.filename = A;
    f.url = "https://up.example/" A;
    f.has_sha256 = 1;
    memset(f.sha256, 'u', 32);
    f.is_wheel = 1;
    f.requires_python = ">=3.8";
    f.yanked = "broken";
    memset(&local, 0, sizeof(local));
    snprintf(local.filename, sizeof(local.filename), "%s", A);
    memset(local.sha256, 'u', 32);
    local.size = 1234;
    local.meta_size = 10;
    memset(local.meta_sha256, 'm', 32);
    memset(&in, 0, sizeof(in));
    in.upstream = &page;
    in.local = &local;
    in.nlocal = 1;
    assert_int_equal(wm_listing_build(&in, &out), 1);
    assert_string_equal(out[0].requires_python, ">=3.8");
    assert_string_equal(out[0].yanked, "broken");
    assert_null(out[0].url); /* served by this node */
    assert_int_equal(out[0].size, 1234);
    assert_true(out[0].held);
    assert_non_null(out[0].meta_sha256);
    assert_int_equal(out[0].meta_sha256[0], 'm');
    free(out);
}

static void
test_versions(void **state)
{
    char v[64];

    assert_int_equal(wm_listing_version(A, v, sizeof(v)), 0);
    assert_string_equal(v, "1.0");
    assert_int_equal(wm_listing_version(A_LOCAL, v, sizeof(v)), 0);
    assert_string_equal(v, "1.0+corp1");
    assert_int_equal(wm_listing_version("foo_bar-2.1.tar.gz", v, sizeof(v)),
                     0);
    assert_string_equal(v, "2.1");
    assert_int_equal(wm_listing_version("x-3.zip", v, sizeof(v)), 0);
    assert_string_equal(v, "3");
    assert_int_equal(wm_listing_version("README.txt", v, sizeof(v)), -1);
    assert_int_equal(wm_listing_version("noversion.tar.gz", v, sizeof(v)),
                     -1);
    assert_int_equal(wm_listing_version("x-.tar.gz", v, sizeof(v)), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_upstream_attributes_stay),
        cmocka_unit_test(test_versions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
