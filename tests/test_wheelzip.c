/*
 * Tests for wheelzip: wheels are built in a temporary directory with
 * libzip's writing API, some then damaged byte by byte, and checked; the
 * wheels Debian ships in /usr/share/python-wheels must pass as they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <cmocka.h>

#include "wheelname.h"
#include "wheelzip.h"
#include "testutil.h"

static const char good_meta[] = "Metadata-Version: 2.1\nName: foo\n"
                                "Version: 1.0\n\nA description.\n";

/* One zip entry; DATA NULL means a small placeholder. */
typedef struct entry {
    const char *name;
    const char *data;
} entry;

#define MAX_ENTRIES 8

/* Writes a zip at PATH holding the first N entries of ENTS (N may be less
 * than the array when a case uses fewer). STORE leaves the data
 * uncompressed so that tests can find and damage it. */
static void
write_zip_n(const char *path, const entry *ents, size_t n, int store)
{
    int err = 0;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);

    assert_non_null(za);
    for (size_t i = 0; i < n && ents[i].name != NULL; i++) {
        const char *data = ents[i].data != NULL ? ents[i].data : "x\n";
        zip_source_t *src = zip_source_buffer(za, data, strlen(data), 0);
        zip_int64_t idx;

        assert_non_null(src);
        idx = zip_file_add(za, ents[i].name, src, ZIP_FL_ENC_UTF_8);
        if (idx < 0)
            zip_source_free(src);
        assert_true(idx >= 0);
        if (store)
            assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)idx,
                                                      ZIP_CM_STORE, 0),
                             0);
    }
    assert_int_equal(zip_close(za), 0);
}

static void
write_zip(const char *path, const entry *ents)
{
    write_zip_n(path, ents, MAX_ENTRIES, 0);
}

/* Replaces every FROM in the file at PATH by TO (same length LEN). */
static void
patch_file(const char *path, const char *from, const char *to, size_t len)
{
    size_t size;
    char *buf = tu_read_file(path, &size);
    int hits = 0;

    assert_true(size > 0);
    for (size_t i = 0; i + len <= size; i++) {
        if (memcmp(buf + i, from, len) == 0) {
            memcpy(buf + i, to, len);
            hits++;
        }
    }
    assert_true(hits > 0);
    tu_write_file(path, buf, size, 0644);
    free(buf);
}

/* Fills NAME by hand as wm_wheelname_parse would for
 * "<dist>-<version>[-<build>]-py3-none-any.whl". */
static void
fill_name(wm_wheelname *name, const char *dist, const char *version,
          const char *build)
{
    memset(name, 0, sizeof(*name));
    assert_int_equal(
        wm_project_normalize(dist, name->project, sizeof(name->project)), 0);
    snprintf(name->dist, sizeof(name->dist), "%s", dist);
    snprintf(name->version, sizeof(name->version), "%s", version);
    snprintf(name->build, sizeof(name->build), "%s", build);
    snprintf(name->python, sizeof(name->python), "py3");
    snprintf(name->abi, sizeof(name->abi), "none");
    snprintf(name->platform, sizeof(name->platform), "any");
    if (build[0] != '\0')
        snprintf(name->filename, sizeof(name->filename),
                 "%s-%s-%s-py3-none-any.whl", dist, version, build);
    else
        snprintf(name->filename, sizeof(name->filename),
                 "%s-%s-py3-none-any.whl", dist, version);
}

/* The same check on the bytes of the regular file PATH held in memory as
 * pieces of 1, 7 and 4096 bytes in turn (a wheel's chunks): it must say
 * what the check of the file said. */
static void
check_parts_agree(const char *path, const wm_wheelname *name, int want_rc,
                  const char *want_why, const char *want_meta,
                  size_t want_len)
{
    static const size_t sizes[] = {1, 7, 4096};
    wm_wheelzip_part *parts;
    struct stat sb;
    char *bytes, *meta = NULL;
    size_t len = 0, n = 0, size;
    const char *why = NULL;
    int fd = open(path, O_RDONLY), rc;

    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        return;
    }
    size = (size_t)sb.st_size;
    bytes = malloc(size + 1);
    parts = calloc(size + 1, sizeof(*parts));
    assert_non_null(bytes);
    assert_non_null(parts);
    assert_int_equal(read(fd, bytes, size), (ssize_t)size);
    close(fd);
    for (size_t off = 0, i = 0; off < size; i++) {
        size_t piece = sizes[i % 3] < size - off ? sizes[i % 3] : size - off;
        parts[n].data = bytes + off;
        parts[n++].len = piece;
        off += piece;
    }
    rc = wm_wheelzip_check_parts(parts, n, name, &meta, &len, &why);
    assert_int_equal(rc, want_rc);
    if (rc == 0) {
        assert_int_equal(len, want_len);
        assert_memory_equal(meta, want_meta, len);
    } else {
        assert_null(meta);
        assert_string_equal(why, want_why);
    }
    free(meta);
    free(parts);
    free(bytes);
}

/* Runs the check and, on failure, makes sure nothing was handed out. */
static int
check(const char *path, const wm_wheelname *name, char **meta, size_t *len,
      const char **why)
{
    int rc;

    *meta = (char *)"stale";
    *len = 99;
    *why = NULL;
    rc = wm_wheelzip_check(path, name, meta, len, why);
    if (rc != 0) {
        assert_null(*meta);
        assert_int_equal(*len, 0);
        assert_non_null(*why);
    }
    check_parts_agree(path, name, rc, *why, *meta, *len);
    return rc;
}

static void
expect_fail(const char *path, const wm_wheelname *name, int want_rc,
            const char *want_why)
{
    char *meta;
    size_t len;
    const char *why;
    int rc = check(path, name, &meta, &len, &why);

    if (rc != want_rc || strcmp(why, want_why) != 0)
        fail_msg("%s: got %d \"%s\", want %d \"%s\"", path, rc,
                 why != NULL ? why : "(null)", want_rc, want_why);
}

typedef struct zcase {
    const char *label;
    const char *dist; /* as in the filename */
    const char *version;
    const char *build;
    const char *why; /* NULL: must pass */
    entry ents[MAX_ENTRIES];
} zcase;

/* A complete .dist-info directory called DI. */
#define GOOD_DI(di)                                                            \
    {di "/METADATA", good_meta}, {di "/WHEEL", NULL},                          \
    {                                                                          \
        di "/RECORD", NULL                                                     \
    }

#define NO_MATCH "dist-info does not match the filename"
#define DOTDOT   "zip entry name holds \"..\""
#define ABSOLUTE "zip entry with an absolute path"

/* Kept out of clang-format, which would put every field on its own line. */
/* clang-format off */
static const zcase cases[] = {
    {"good", "foo", "1.0", "", NULL,
     {{"foo/__init__.py", NULL}, GOOD_DI("foo-1.0.dist-info")}},
    {"build tag", "foo", "1.0", "1", NULL, {GOOD_DI("foo-1.0.dist-info")}},
    {"dir entries", "foo", "1.0", "", NULL,
     {{"foo/", ""}, {"foo-1.0.dist-info/", ""},
      GOOD_DI("foo-1.0.dist-info")}},
    {"underscore dist", "Foo_Bar", "1.0", "", NULL,
     {GOOD_DI("foo_bar-1.0.dist-info")}},
    {"dotted dist", "Foo_Bar", "1.0", "", NULL,
     {GOOD_DI("foo.bar-1.0.dist-info")}},
    {"same case", "Foo_Bar", "1.0", "", NULL,
     {GOOD_DI("Foo_Bar-1.0.dist-info")}},
    {"unescaped dist", "foo_bar", "1.0", "", NULL,
     {GOOD_DI("foo-bar-1.0.dist-info")}},
    {"version case", "foo", "1.0rc1", "", NULL,
     {GOOD_DI("foo-1.0RC1.dist-info")}},
    {"local version", "torch", "2.1.0+cpu", "", NULL,
     {GOOD_DI("torch-2.1.0+cpu.dist-info")}},
    {"dots in a name", "foo", "1.0", "", NULL,
     {{"foo/a..b.py", NULL}, {"foo/...", NULL},
      GOOD_DI("foo-1.0.dist-info")}},
    {"nested dist-info", "foo", "1.0", "", NULL,
     {{"foo/_vendor/bar-2.0.dist-info/METADATA", NULL},
      GOOD_DI("foo-1.0.dist-info")}},

    {"dist mismatch", "foo", "1.0", "", NO_MATCH,
     {GOOD_DI("bar-1.0.dist-info")}},
    {"version mismatch", "foo", "1.0", "", NO_MATCH,
     {GOOD_DI("foo-1.1.dist-info")}},
    {"version prefix", "foo", "1.0", "", NO_MATCH,
     {GOOD_DI("foo-1.0.1.dist-info")}},
    {"no version", "foo", "1.0", "", NO_MATCH, {GOOD_DI("foo.dist-info")}},
    {"empty version", "foo", "1.0", "", NO_MATCH, {GOOD_DI("foo-.dist-info")}},
    {"empty dist", "foo", "1.0", "", NO_MATCH, {GOOD_DI("-1.0.dist-info")}},
    {"two dist-info", "foo", "1.0", "", "more than one .dist-info directory",
     {GOOD_DI("foo-1.0.dist-info"), {"bar-1.0.dist-info/METADATA", NULL}}},
    {"no dist-info", "foo", "1.0", "", "no .dist-info directory",
     {{"foo/__init__.py", NULL}}},
    {"only nested dist-info", "foo", "1.0", "", "no .dist-info directory",
     {{"foo/foo-1.0.dist-info/METADATA", NULL}}},

    {"missing METADATA", "foo", "1.0", "", "missing METADATA",
     {{"foo-1.0.dist-info/WHEEL", NULL}, {"foo-1.0.dist-info/RECORD", NULL}}},
    {"missing WHEEL", "foo", "1.0", "", "missing WHEEL",
     {{"foo-1.0.dist-info/METADATA", good_meta},
      {"foo-1.0.dist-info/RECORD", NULL}}},
    {"missing RECORD", "foo", "1.0", "", "missing RECORD",
     {{"foo-1.0.dist-info/METADATA", good_meta},
      {"foo-1.0.dist-info/WHEEL", NULL}}},
    {"METADATA too deep", "foo", "1.0", "", "missing METADATA",
     {{"foo-1.0.dist-info/x/METADATA", good_meta},
      {"foo-1.0.dist-info/WHEEL", NULL}, {"foo-1.0.dist-info/RECORD", NULL}}},
    {"empty METADATA", "foo", "1.0", "", "METADATA is empty",
     {{"foo-1.0.dist-info/METADATA", ""}, {"foo-1.0.dist-info/WHEEL", NULL},
      {"foo-1.0.dist-info/RECORD", NULL}}},

    {"dotdot first", "foo", "1.0", "", DOTDOT,
     {GOOD_DI("foo-1.0.dist-info"), {"../evil", NULL}}},
    {"dotdot inside", "foo", "1.0", "", DOTDOT,
     {GOOD_DI("foo-1.0.dist-info"), {"foo/../../evil", NULL}}},
    {"dotdot last", "foo", "1.0", "", DOTDOT,
     {GOOD_DI("foo-1.0.dist-info"), {"foo/..", NULL}}},
    {"absolute", "foo", "1.0", "", ABSOLUTE,
     {GOOD_DI("foo-1.0.dist-info"), {"/etc/evil", NULL}}},
    {"drive letter", "foo", "1.0", "", ABSOLUTE,
     {GOOD_DI("foo-1.0.dist-info"), {"C:/evil", NULL}}},
    {"backslash", "foo", "1.0", "", "zip entry name holds a backslash",
     {GOOD_DI("foo-1.0.dist-info"), {"foo\\..\\evil", NULL}}},
    {"control char", "foo", "1.0", "",
     "zip entry name holds a control character",
     {GOOD_DI("foo-1.0.dist-info"), {"foo/a\nb", NULL}}},
};
/* clang-format on */

static void
test_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const zcase *c = &cases[i];
        const char *path = tu_tmp_path("case.whl");
        wm_wheelname name;
        char *meta;
        size_t len;
        const char *why;
        int rc;

        fill_name(&name, c->dist, c->version, c->build);
        write_zip(path, c->ents);
        rc = check(path, &name, &meta, &len, &why);
        if (c->why == NULL) {
            if (rc != 0)
                fail_msg("%s: got %d \"%s\", want success", c->label, rc, why);
            assert_int_equal(len, strlen(good_meta));
            assert_memory_equal(meta, good_meta, len);
            free(meta);
        } else if (rc != -EINVAL || strcmp(why, c->why) != 0) {
            fail_msg("%s: got %d \"%s\", want \"%s\"", c->label, rc,
                     rc == 0 ? "" : why, c->why);
        }
        unlink(path);
    }
}

static void
test_not_a_zip(void **state)
{
    const char *path = tu_tmp_path("text.whl");
    static const char text[] = "this is not a zip file, not even close\n";
    wm_wheelname name;

    fill_name(&name, "foo", "1.0", "");
    tu_write_file(path, text, sizeof(text) - 1, 0644);
    expect_fail(path, &name, -EINVAL, "not a zip file");
    unlink(path);
}

static void
test_empty_file(void **state)
{
    const char *path = tu_tmp_path("empty.whl");
    wm_wheelname name;

    fill_name(&name, "foo", "1.0", "");
    tu_write_file(path, "", 0, 0644);
    expect_fail(path, &name, -EINVAL, "empty file");
    unlink(path);
}

static void
test_truncated(void **state)
{
    const char *path = tu_tmp_path("truncated.whl");
    char big[64 * 1024];
    entry ents[] = {GOOD_DI("foo-1.0.dist-info"), {"foo/big.bin", big}};
    wm_wheelname name;
    struct stat sb;

    /* Data that does not compress, so that half the file is a real cut. */
    srand(7);
    for (size_t i = 0; i + 1 < sizeof(big); i++)
        big[i] = (char)('a' + rand() % 26);
    big[sizeof(big) - 1] = '\0';
    fill_name(&name, "foo", "1.0", "");
    write_zip_n(path, ents, sizeof(ents) / sizeof(ents[0]), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    expect_fail(path, &name, -EINVAL, "truncated or damaged zip");
    unlink(path);
}

static void
test_missing_and_not_regular(void **state)
{
    wm_wheelname name;

    fill_name(&name, "foo", "1.0", "");
    expect_fail(tu_tmp_path("no-such.whl"), &name, -ENOENT,
                "cannot open the file");
    expect_fail(tu_tmpdir(), &name, -EINVAL, "not a regular file");
}

static void
test_metadata_exact(void **state)
{
    const char *path = tu_tmp_path("meta.whl");
    size_t big_len = 200 * 1024;
    char *big = malloc(big_len + 1);
    entry ents[] = {{"foo-1.0.dist-info/METADATA", big},
                    {"foo-1.0.dist-info/WHEEL", NULL},
                    {"foo-1.0.dist-info/RECORD", NULL}};
    wm_wheelname name;
    char *meta;
    size_t len;
    const char *why;

    /* Large enough to take several reads, compressible so that it is
     * deflated, and with bytes that are not plain text. */
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i % 251 + 1);
    memcpy(big, "Metadata-Version: 2.1\n", 22);
    big[big_len] = '\0';
    fill_name(&name, "foo", "1.0", "");
    write_zip_n(path, ents, 3, 0);
    assert_int_equal(check(path, &name, &meta, &len, &why), 0);
    assert_int_equal(len, big_len);
    assert_memory_equal(meta, big, big_len);
    assert_int_equal(meta[len], '\0');
    free(meta);
    free(big);
    unlink(path);
}

static void
test_metadata_too_large(void **state)
{
    const char *path = tu_tmp_path("huge.whl");
    size_t big_len = WM_METADATA_MAX + 1;
    char *big = malloc(big_len + 1);
    entry ents[] = {{"foo-1.0.dist-info/METADATA", big},
                    {"foo-1.0.dist-info/WHEEL", NULL},
                    {"foo-1.0.dist-info/RECORD", NULL}};
    wm_wheelname name;

    assert_non_null(big);
    memset(big, 'M', big_len);
    big[big_len] = '\0';
    fill_name(&name, "foo", "1.0", "");
    write_zip_n(path, ents, 3, 0);
    expect_fail(path, &name, -EINVAL, "METADATA is too large");
    free(big);
    unlink(path);
}

static void
test_metadata_bad_crc(void **state)
{
    const char *path = tu_tmp_path("crc.whl");
    entry ents[] = {{"foo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\n"
                                                   "Name: foo\nCRCMARK\n"},
                    {"foo-1.0.dist-info/WHEEL", NULL},
                    {"foo-1.0.dist-info/RECORD", NULL}};
    wm_wheelname name;

    fill_name(&name, "foo", "1.0", "");
    write_zip_n(path, ents, 3, 1);
    patch_file(path, "CRCMARK", "CRCMARX", 7);
    expect_fail(path, &name, -EINVAL, "METADATA fails its CRC check");
    unlink(path);
}

/* The sizes in the headers are the uploader's word: METADATA is written
 * 54321 bytes long (0xD431, which deflated data is unlikely to hold), then
 * its stated size in both headers is changed to DELTA bytes more. */
static void
size_lie(int delta, const char *want_why)
{
    const char *path = tu_tmp_path("size.whl");
    static char big[54321 + 1];
    size_t big_len = sizeof(big) - 1;
    entry ents[] = {{"foo-1.0.dist-info/METADATA", big},
                    {"foo-1.0.dist-info/WHEEL", NULL},
                    {"foo-1.0.dist-info/RECORD", NULL}};
    const unsigned char from[4] = {0x31, 0xd4, 0, 0};
    unsigned char to[4] = {(unsigned char)(0x31 + delta), 0xd4, 0, 0};
    wm_wheelname name;

    memset(big, 'M', big_len);
    fill_name(&name, "foo", "1.0", "");
    write_zip_n(path, ents, 3, 0);
    patch_file(path, (const char *)from, (const char *)to, sizeof(from));
    expect_fail(path, &name, -EINVAL, want_why);
    unlink(path);
}

static void
test_metadata_size_lie(void **state)
{
    size_lie(-1, "METADATA is longer than its stated size");
    size_lie(1, "METADATA is shorter than its stated size");
}

/* libzip reads a NUL in a name as a space, but pip's zipfile cuts the name
 * there: "..\0MARK" is ".." to pip and must be refused. */
static void
test_nul_in_name(void **state)
{
    const char *path = tu_tmp_path("nul.whl");
    entry ents[] = {GOOD_DI("foo-1.0.dist-info"), {"..XMARK", NULL}};
    wm_wheelname name;

    fill_name(&name, "foo", "1.0", "");
    write_zip_n(path, ents, sizeof(ents) / sizeof(ents[0]), 0);
    patch_file(path, "..XMARK", "..\0MARK", 7);
    expect_fail(path, &name, -EINVAL, "zip entry name holds \"..\"");
    unlink(path);
}

static void
test_duplicate_names(void **state)
{
    const char *path = tu_tmp_path("dup.whl");
    entry ents[] = {GOOD_DI("foo-1.0.dist-info"),
                    {"foo-1.0.dist-info/METADATX", good_meta}};
    wm_wheelname name;

    fill_name(&name, "foo", "1.0", "");
    write_zip_n(path, ents, sizeof(ents) / sizeof(ents[0]), 0);
    patch_file(path, "METADATX", "METADATA", 8);
    expect_fail(path, &name, -EINVAL,
                "zip holds two entries with the same name");
    unlink(path);
}

/* Debian's own wheels are real ones, built by real tools. */
static void
test_debian_wheels(void **state)
{
    glob_t g;

    if (glob("/usr/share/python-wheels/*.whl", 0, NULL, &g) != 0) {
        skip();
        return;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        wm_wheelname name;
        char *meta;
        size_t len;
        const char *why = NULL;

        if (wm_wheelname_parse(strrchr(path, '/') + 1, &name, &why) != 0)
            fail_msg("%s: bad name: %s", path, why);
        if (check(path, &name, &meta, &len, &why) != 0)
            fail_msg("%s: %s", path, why);
        assert_true(len > 18);
        assert_memory_equal(meta, "Metadata-Version: ", 18);
        free(meta);
    }
    globfree(&g);
}

static int
setup(void **state)
{
    return tu_tmpdir_create("test_wheelzip");
}

/* Also removes what a failed test left behind. */
static int
teardown(void **state)
{
    return tu_tmpdir_remove();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_not_a_zip),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_missing_and_not_regular),
        cmocka_unit_test(test_metadata_exact),
        cmocka_unit_test(test_metadata_too_large),
        cmocka_unit_test(test_metadata_bad_crc),
        cmocka_unit_test(test_metadata_size_lie),
        cmocka_unit_test(test_nul_in_name),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_debian_wheels),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
