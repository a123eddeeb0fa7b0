/*
 * Unit tests for common/filerecord: a record survives encode and decode
 * field by field; every cut-short, over-long or unknown record is refused
 * without reading past its end (the v2 record whose lengths were read
 * before its size was checked, found by the fuzzer, is one of them).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "filerecord.h"

static const uint8_t SHA[WM_SHA256_LEN] = {1, 2, 3};

static wm_file_info
sample(void)
{
    wm_file_info f;

    memset(&f, 0, sizeof(f));
    strcpy(f.filename, "demo_pkg-1.0-py3-none-any.whl");
    strcpy(f.project, "demo-pkg");
    memcpy(f.sha256, SHA, sizeof(SHA));
    f.size = 123456789;
    f.added = 1700000000;
    f.last_used = 1700000123;
    f.source = WM_SOURCE_PEER;
    f.meta_sha256[0] = 0xaa;
    f.meta_size = 4242;
    f.chunks_root[31] = 0x55;
    strcpy(f.requires_python, ">=3.8");
    f.has_claim = 1;
    f.claim_publisher[0] = 7;
    f.claim_sig[63] = 9;
    return f;
}

static void
test_round_trip(void **state)
{
    wm_file_info f = sample(), g;
    uint8_t rec[WM_FILE_RECORD_MAX];
    size_t n = wm_file_record_encode(&f, rec);

    (void)state;
    assert_int_equal(wm_file_record_decode(SHA, rec, n, &g), 0);
    assert_memory_equal(&f, &g, sizeof(f));
}

static void
test_every_shorter_record_is_refused(void **state)
{
    wm_file_info f = sample(), g;
    uint8_t rec[WM_FILE_RECORD_MAX];
    size_t n = wm_file_record_encode(&f, rec);

    (void)state;
    for (size_t len = 0; len < n; len++) {
        /* A heap copy of exactly LEN bytes: ASan sees any read past it. */
        uint8_t *cut = malloc(len + 1);
        assert_non_null(cut);
        memcpy(cut, rec, len);
        assert_int_equal(wm_file_record_decode(SHA, cut, len, &g), -EBADMSG);
        free(cut);
    }
}

static void
test_bad_records(void **state)
{
    static const uint8_t v2_short[] = {2, 0, 0, 0};
    wm_file_info f = sample(), g;
    uint8_t rec[WM_FILE_RECORD_MAX + 1];
    size_t n = wm_file_record_encode(&f, rec);
    uint8_t *copy = malloc(sizeof(v2_short));

    (void)state;
    memcpy(copy, v2_short, sizeof(v2_short));
    assert_int_equal(wm_file_record_decode(SHA, copy, sizeof(v2_short), &g),
                     -EBADMSG);
    free(copy);
    rec[n] = 0; /* one byte too many */
    assert_int_equal(wm_file_record_decode(SHA, rec, n + 1, &g), -EBADMSG);
    rec[0] = 4; /* a version this build does not know */
    assert_int_equal(wm_file_record_decode(SHA, rec, n, &g), -EBADMSG);
    rec[0] = 3;
    rec[2] = 0xff, rec[3] = 0xff; /* a filename longer than any */
    assert_int_equal(wm_file_record_decode(SHA, rec, n, &g), -EBADMSG);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_shorter_record_is_refused),
        cmocka_unit_test(test_bad_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
