/*
 * Unit tests for common/hash: SHA-256 against the FIPS 180-2 example
 * vectors, one-shot against streaming in odd pieces, the context reset by
 * final, and the strict hex decoder.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

typedef struct vector {
    const char *msg;
    const char *hex;
} vector;

static const vector vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    /* The 448-bit NIST message: two blocks after padding. */
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    /* The 896-bit message. */
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmn"
     "opjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

#define NVECTORS (sizeof(vectors) / sizeof(vectors[0]))

static const char million_a_hex[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

static void
digest_hex(const uint8_t d[WM_SHA256_LEN], char out[WM_SHA256_HEX])
{
    wm_hex_encode(d, WM_SHA256_LEN, out);
}

static void
test_vectors_oneshot(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVECTORS; i++) {
        uint8_t d[WM_SHA256_LEN];
        char hex[WM_SHA256_HEX];

        wm_sha256_digest(vectors[i].msg, strlen(vectors[i].msg), d);
        digest_hex(d, hex);
        assert_string_equal(hex, vectors[i].hex);
    }
}

static void
test_vectors_streaming(void **state)
{
    wm_sha256 *ctx = wm_sha256_new();

    (void)state;
    assert_non_null(ctx);
    for (size_t i = 0; i < NVECTORS; i++) {
        const char *msg = vectors[i].msg;
        size_t len = strlen(msg);
        uint8_t d[WM_SHA256_LEN];
        char hex[WM_SHA256_HEX];

        /* One byte at a time, with an empty update in between. */
        for (size_t j = 0; j < len; j++) {
            wm_sha256_update(ctx, msg + j, 1);
            wm_sha256_update(ctx, msg, 0);
        }
        wm_sha256_final(ctx, d);
        digest_hex(d, hex);
        assert_string_equal(hex, vectors[i].hex);
    }
    wm_sha256_destroy(&ctx);
    assert_null(ctx);
}

static void
test_million_a(void **state)
{
    static const size_t pieces[] = {1, 3, 7, 63, 64, 65, 127, 1000, 4093};
    const size_t total = 1000000;
    char *buf = malloc(total);
    wm_sha256 *ctx = wm_sha256_new();
    uint8_t d[WM_SHA256_LEN], d1[WM_SHA256_LEN];
    char hex[WM_SHA256_HEX];
    size_t off = 0, k = 0;

    (void)state;
    assert_non_null(buf);
    assert_non_null(ctx);
    memset(buf, 'a', total);
    while (off < total) {
        size_t n = pieces[k++ % (sizeof(pieces) / sizeof(pieces[0]))];
        if (n > total - off)
            n = total - off;
        wm_sha256_update(ctx, buf + off, n);
        off += n;
    }
    wm_sha256_final(ctx, d);
    digest_hex(d, hex);
    assert_string_equal(hex, million_a_hex);

    wm_sha256_digest(buf, total, d1);
    assert_memory_equal(d, d1, WM_SHA256_LEN);

    wm_sha256_destroy(&ctx);
    free(buf);
}

/* Streaming in pieces of any size gives the one-shot digest, for lengths
 * around the 64-byte block boundary. */
static void
test_oneshot_equals_streaming(void **state)
{
    uint8_t data[300];
    wm_sha256 *ctx = wm_sha256_new();

    (void)state;
    assert_non_null(ctx);
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 131 + 7);
    for (size_t len = 0; len <= sizeof(data); len += 11) {
        for (size_t piece = 1; piece <= 70; piece += 23) {
            uint8_t a[WM_SHA256_LEN], b[WM_SHA256_LEN];
            size_t off = 0;

            wm_sha256_digest(data, len, a);
            while (off < len) {
                size_t n = len - off < piece ? len - off : piece;
                wm_sha256_update(ctx, data + off, n);
                off += n;
            }
            wm_sha256_final(ctx, b);
            assert_memory_equal(a, b, WM_SHA256_LEN);
        }
    }
    wm_sha256_destroy(&ctx);
}

/* After final the context hashes from scratch: the next digest does not
 * depend on what came before. */
static void
test_final_resets(void **state)
{
    wm_sha256 *ctx = wm_sha256_new();
    uint8_t first[WM_SHA256_LEN], second[WM_SHA256_LEN];
    uint8_t empty[WM_SHA256_LEN];
    char hex[WM_SHA256_HEX];

    (void)state;
    assert_non_null(ctx);
    wm_sha256_update(ctx, "something else", 14);
    wm_sha256_final(ctx, first);

    wm_sha256_update(ctx, "abc", 3);
    wm_sha256_final(ctx, second);
    digest_hex(second, hex);
    assert_string_equal(hex, vectors[1].hex);

    /* Final with no update after a final is the empty digest. */
    wm_sha256_final(ctx, empty);
    digest_hex(empty, hex);
    assert_string_equal(hex, vectors[0].hex);

    wm_sha256_destroy(&ctx);
    wm_sha256_destroy(&ctx); /* NULL is fine */
    wm_sha256_destroy(NULL);
}

static void
test_hex_round_trip(void **state)
{
    uint8_t in[256], out[256];
    char hex[2 * sizeof(in) + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    wm_hex_encode(in, sizeof(in), hex);
    assert_int_equal(strlen(hex), 2 * sizeof(in));
    assert_memory_equal(hex, "000102030405060708090a0b0c0d0e0f10", 34);
    assert_string_equal(hex + 2 * 250, "fafbfcfdfeff");
    memset(out, 0, sizeof(out));
    assert_int_equal(wm_hex_decode(hex, out, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));

    /* Zero bytes: empty string. */
    wm_hex_encode(in, 0, hex);
    assert_string_equal(hex, "");
    assert_int_equal(wm_hex_decode("", out, 0), 0);
}

typedef struct decode_case {
    const char *hex;
    size_t len;
    int rc;
    uint8_t want[4];
} decode_case;

static void
test_hex_decode_table(void **state)
{
    static const decode_case cases[] = {
        {"00ff7f80", 4, 0, {0x00, 0xff, 0x7f, 0x80}},
        {"DEADbeef", 4, 0, {0xde, 0xad, 0xbe, 0xef}},
        {"aBcD", 2, 0, {0xab, 0xcd}},
        {"", 0, 0, {0}},
        /* wrong length */
        {"abc", 2, -EINVAL, {0}},
        {"ab", 2, -EINVAL, {0}},
        {"abcdef", 2, -EINVAL, {0}},
        {"a", 1, -EINVAL, {0}},
        {"ab", 0, -EINVAL, {0}},
        /* not hex */
        {"zz", 1, -EINVAL, {0}},
        {"0g", 1, -EINVAL, {0}},
        {"g0", 1, -EINVAL, {0}},
        {"0x12", 2, -EINVAL, {0}},
        {" 1234", 2, -EINVAL, {0}},
        {"12 34", 2, -EINVAL, {0}},
        {"-1", 1, -EINVAL, {0}},
        {"@@", 1, -EINVAL, {0}},
        {"GG", 1, -EINVAL, {0}},
        {"`a", 1, -EINVAL, {0}},
        {"/0", 1, -EINVAL, {0}},
        {":0", 1, -EINVAL, {0}},
        /* trailing characters */
        {"1234\n", 2, -EINVAL, {0}},
        {"1234 ", 2, -EINVAL, {0}},
        {"12340", 2, -EINVAL, {0}},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t out[4] = {0};
        int rc = wm_hex_decode(cases[i].hex, out, cases[i].len);

        if (rc != cases[i].rc)
            fail_msg("case %zu \"%s\": rc %d, want %d", i, cases[i].hex, rc,
                     cases[i].rc);
        if (rc == 0)
            assert_memory_equal(out, cases[i].want, cases[i].len);
    }
}

/* A NUL before the end stops the decoder; it must not read on past it. */
static void
test_hex_decode_early_nul(void **state)
{
    /* "12\0" followed by valid-looking digits in the same buffer. */
    static const char buf[] = {'1', '2', '\0', '3', '4', '5', '6', '\0'};
    static const char half[] = {'1', '2', '3', '\0', '4', '\0'};
    uint8_t out[3];

    (void)state;
    assert_int_equal(wm_hex_decode(buf, out, 3), -EINVAL);
    assert_int_equal(wm_hex_decode(buf, out, 2), -EINVAL);
    assert_int_equal(wm_hex_decode(half, out, 2), -EINVAL);
    /* The NUL where the terminator belongs is fine. */
    assert_int_equal(wm_hex_decode(buf, out, 1), 0);
    assert_int_equal(out[0], 0x12);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_oneshot),
        cmocka_unit_test(test_vectors_streaming),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_oneshot_equals_streaming),
        cmocka_unit_test(test_final_resets),
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_hex_decode_table),
        cmocka_unit_test(test_hex_decode_early_nul),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
