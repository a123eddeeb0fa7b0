/*
 * Unit tests for common/identity: key files (round trip, no overwrite, mode
 * 0600 on write and on read, damaged files refused), first-start creation,
 * and detached signatures that fail for any changed bit.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hash.h"
#include "identity.h"
#include "testutil.h"

/* Writes TEXT to NAME in the temp dir with MODE (exactly, despite umask). */
static const char *
write_file(const char *name, const char *text, mode_t mode)
{
    const char *path = tu_tmp_path(name);

    tu_write_file(path, text, strlen(text), mode);
    return path;
}

static int
setup(void **state)
{
    (void)state;
    if (wm_identity_init() != 0)
        return -1;
    return tu_tmpdir_create("test_identity");
}

static int
teardown(void **state)
{
    (void)state;
    return tu_tmpdir_remove();
}

static void
test_generate_distinct(void **state)
{
    wm_identity *a = wm_identity_generate(), *b = wm_identity_generate();
    char hex[WM_PUBKEY_HEX];
    uint8_t pk[WM_PUBKEY_LEN];

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_not_equal(wm_identity_pubkey(a), wm_identity_pubkey(b),
                            WM_PUBKEY_LEN);
    wm_identity_pubkey_hex(a, hex);
    assert_int_equal(strlen(hex), 2 * WM_PUBKEY_LEN);
    assert_int_equal(wm_hex_decode(hex, pk, sizeof(pk)), 0);
    assert_memory_equal(pk, wm_identity_pubkey(a), WM_PUBKEY_LEN);
    wm_identity_destroy(&a);
    wm_identity_destroy(&b);
    assert_null(a);
    assert_null(b);
    wm_identity_destroy(&a); /* NULL is fine */
    wm_identity_destroy(NULL);
}

static void
test_save_load_round_trip(void **state)
{
    const char *path = tu_tmp_path("roundtrip.key");
    wm_identity *id = wm_identity_generate(), *back;
    const char *why = NULL;
    struct stat st;
    char text[256];
    FILE *f;
    uint8_t sig[WM_SIG_LEN];

    (void)state;
    assert_non_null(id);
    assert_int_equal(wm_identity_save(id, path), 0);

    /* Mode 0600 whatever the umask, one line in the documented form. */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(text, sizeof(text), f));
    fclose(f);
    assert_int_equal(strncmp(text, "wheelmesh-ed25519 ", 18), 0);
    assert_int_equal(strlen(text), 18 + 64 + 1);
    assert_int_equal(text[18 + 64], '\n');

    back = wm_identity_load(path, &why);
    assert_non_null(back);
    assert_memory_equal(wm_identity_pubkey(back), wm_identity_pubkey(id),
                        WM_PUBKEY_LEN);

    /* The loaded key signs as the original. */
    wm_identity_sign(back, "msg", 3, sig);
    assert_int_equal(wm_identity_verify(wm_identity_pubkey(id), "msg", 3, sig),
                     0);

    wm_identity_destroy(&back);
    wm_identity_destroy(&id);
}

static void
test_save_refuses_overwrite(void **state)
{
    const char *path = tu_tmp_path("exists.key");
    wm_identity *a = wm_identity_generate(), *b = wm_identity_generate();
    wm_identity *back;
    const char *why = NULL;

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(wm_identity_save(a, path), 0);
    assert_int_equal(wm_identity_save(b, path), -EEXIST);
    assert_int_equal(wm_identity_save(a, path), -EEXIST);

    /* The file still holds A. */
    back = wm_identity_load(path, &why);
    assert_non_null(back);
    assert_memory_equal(wm_identity_pubkey(back), wm_identity_pubkey(a),
                        WM_PUBKEY_LEN);
    wm_identity_destroy(&back);

    /* Another error is negative too. */
    assert_true(wm_identity_save(a, tu_tmp_path("no/such/dir.key")) < 0);

    wm_identity_destroy(&a);
    wm_identity_destroy(&b);
}

/* A valid key line, with the seed of a fresh key. */
static void
key_line(char out[128])
{
    wm_identity *id = wm_identity_generate();
    const char *path = tu_tmp_path("line.key");
    FILE *f;

    assert_non_null(id);
    unlink(path);
    assert_int_equal(wm_identity_save(id, path), 0);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, 128, f));
    fclose(f);
    unlink(path);
    wm_identity_destroy(&id);
}

typedef struct bad_file {
    const char *name;
    const char *text;
    mode_t mode;
} bad_file;

static void
test_load_refuses(void **state)
{
    char good[128], truncated[128], nonhex[128], longer[160];
    const char *why;

    (void)state;
    key_line(good);
    /* The seed cut short by one digit. */
    memcpy(truncated, good, sizeof(truncated));
    truncated[18 + 63] = '\n';
    truncated[18 + 64] = '\0';
    /* A non-hex digit in the middle of the seed. */
    memcpy(nonhex, good, sizeof(nonhex));
    nonhex[18 + 20] = 'x';
    /* Two extra digits after the seed. */
    snprintf(longer, sizeof(longer), "%.*s00\n", 18 + 64, good);

    const bad_file cases[] = {
        {"mode0644.key", good, 0644},
        {"mode0640.key", good, 0640},
        {"mode0604.key", good, 0604},
        {"garbage.key", "this is not a key at all\n", 0600},
        {"empty.key", "", 0600},
        {"prefix.key", "wheelmesh-ed25519 \n", 0600},
        {"other.key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n", 0600},
        {"truncated.key", truncated, 0600},
        {"nonhex.key", nonhex, 0600},
        {"longer.key", longer, 0600},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path =
            write_file(cases[i].name, cases[i].text, cases[i].mode);
        wm_identity *id;

        why = NULL;
        id = wm_identity_load(path, &why);
        if (id != NULL)
            fail_msg("%s: loaded", cases[i].name);
        assert_non_null(why);
    }

    /* The same line with mode 0600 is accepted: the cases above fail for
     * the reason they test. */
    why = NULL;
    {
        wm_identity *id =
            wm_identity_load(write_file("good.key", good, 0600), &why);
        assert_non_null(id);
        wm_identity_destroy(&id);
    }

    /* A missing file and a directory. */
    why = NULL;
    assert_null(wm_identity_load(tu_tmp_path("missing.key"), &why));
    assert_non_null(why);
    why = NULL;
    assert_null(wm_identity_load(tu_tmpdir(), &why));
    assert_non_null(why);
}

static void
test_load_or_create(void **state)
{
    const char *p = tu_tmp_path("node.key");
    char path[256];
    const char *why = NULL;
    wm_identity *first, *again;
    struct stat st;

    (void)state;
    snprintf(path, sizeof(path), "%s", p);
    assert_int_equal(access(path, F_OK), -1);
    first = wm_identity_load_or_create(path, &why);
    assert_non_null(first);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    again = wm_identity_load_or_create(path, &why);
    assert_non_null(again);
    assert_memory_equal(wm_identity_pubkey(first), wm_identity_pubkey(again),
                        WM_PUBKEY_LEN);
    wm_identity_destroy(&again);

    /* An existing file that is not a key is an error, not replaced. */
    write_file("bad-node.key", "garbage\n", 0600);
    why = NULL;
    assert_null(wm_identity_load_or_create(tu_tmp_path("bad-node.key"), &why));
    assert_non_null(why);

    /* A path that cannot be created. */
    why = NULL;
    assert_null(wm_identity_load_or_create(tu_tmp_path("no/dir/node.key"), &why));
    assert_non_null(why);

    wm_identity_destroy(&first);
}

static void
test_sign_verify(void **state)
{
    wm_identity *id = wm_identity_generate(), *other = wm_identity_generate();
    const uint8_t *pk;
    uint8_t msg[100], sig[WM_SIG_LEN], pk2[WM_PUBKEY_LEN];

    (void)state;
    assert_non_null(id);
    assert_non_null(other);
    pk = wm_identity_pubkey(id);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7);
    wm_identity_sign(id, msg, sizeof(msg), sig);
    assert_int_equal(wm_identity_verify(pk, msg, sizeof(msg), sig), 0);

    /* Every flipped bit of the message fails. */
    for (size_t bit = 0; bit < 8 * sizeof(msg); bit++) {
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(wm_identity_verify(pk, msg, sizeof(msg), sig),
                         -EBADMSG);
        msg[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* Every flipped bit of the signature fails. */
    for (size_t bit = 0; bit < 8 * WM_SIG_LEN; bit++) {
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(wm_identity_verify(pk, msg, sizeof(msg), sig),
                         -EBADMSG);
        sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* A shorter message (a prefix) fails. */
    assert_int_equal(wm_identity_verify(pk, msg, sizeof(msg) - 1, sig),
                     -EBADMSG);
    /* A different key fails; so does a flipped bit in the key. */
    assert_int_equal(
        wm_identity_verify(wm_identity_pubkey(other), msg, sizeof(msg), sig),
        -EBADMSG);
    memcpy(pk2, pk, sizeof(pk2));
    pk2[5] ^= 0x10;
    assert_int_equal(wm_identity_verify(pk2, msg, sizeof(msg), sig), -EBADMSG);
    /* Still fine after all that. */
    assert_int_equal(wm_identity_verify(pk, msg, sizeof(msg), sig), 0);

    /* Empty message. */
    wm_identity_sign(id, "", 0, sig);
    assert_int_equal(wm_identity_verify(pk, "", 0, sig), 0);
    assert_int_equal(wm_identity_verify(pk, "x", 1, sig), -EBADMSG);

    wm_identity_destroy(&id);
    wm_identity_destroy(&other);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_distinct),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_save_refuses_overwrite),
        cmocka_unit_test(test_load_refuses),
        cmocka_unit_test(test_load_or_create),
        cmocka_unit_test(test_sign_verify),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
