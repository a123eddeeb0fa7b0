/*
 * Unit tests for common/store on a real LMDB environment in a temporary
 * directory: wheels of edge sizes (one byte, exactly a chunk, a chunk and a
 * byte, more than one commit batch) written from files and read back
 * through views; the lookups and listings; refused puts that leave nothing
 * behind; signed records; durability across a reopen; METADATA and page
 * records; a writer killed in the middle of a put; snapshot views; and a
 * full map.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hash.h"
#include "identity.h"
#include "store.h"
#include "testutil.h"

#define GIB      (1ull << 30)
#define MIB      (1ull << 20)
#define BATCH    32 /* chunks per write transaction in store.c */
#define MAX_LIST 16

/* A wheel to put: its record, its bytes in memory and in an open file. */
typedef struct wheel {
    wm_file_info info;
    uint8_t *data;
    int fd;
    const char *meta; /* NULL: none */
} wheel;

static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
fill(uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t x = seed;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t v = splitmix64(&x);
        memcpy(p + i, &v, 8);
    }
    for (; i < len; i++)
        p[i] = (uint8_t)splitmix64(&x);
}

/* Builds a wheel of SIZE pseudo-random bytes (from SEED) in an unlinked
 * temporary file, with its record filled the way a put needs it. */
static void
wheel_make(wheel *w, const char *filename, const char *project, size_t size,
           uint64_t seed, const char *meta)
{
    char name[64];
    const char *path;
    size_t off = 0;

    memset(w, 0, sizeof(*w));
    w->data = malloc(size > 0 ? size : 1);
    assert_non_null(w->data);
    fill(w->data, size, seed);

    snprintf(name, sizeof(name), "wheel.%llu", (unsigned long long)seed);
    path = tu_tmp_path(name);
    w->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(w->fd >= 0);
    unlink(path);
    while (off < size) {
        ssize_t n = write(w->fd, w->data + off, size - off);
        assert_true(n > 0);
        off += (size_t)n;
    }

    assert_true(strlen(filename) <= WM_WHEELNAME_MAX);
    assert_true(strlen(project) <= WM_PROJECT_MAX);
    snprintf(w->info.filename, sizeof(w->info.filename), "%s", filename);
    snprintf(w->info.project, sizeof(w->info.project), "%s", project);
    wm_sha256_digest(w->data, size, w->info.sha256);
    w->info.size = size;
    w->info.added = 1700000000 + (int64_t)seed;
    w->info.last_used = 1700000100 + (int64_t)seed;
    w->info.source = WM_SOURCE_UPSTREAM;
    w->info.has_claim = seed % 2;
    fill(w->info.claim_publisher, sizeof(w->info.claim_publisher),
         seed + 1000);
    fill(w->info.claim_sig, sizeof(w->info.claim_sig), seed + 2000);
    snprintf(w->info.requires_python, sizeof(w->info.requires_python),
             ">=3.%d", (int)(seed % 13));
    w->meta = meta;
    if (meta != NULL) {
        wm_sha256_digest(meta, strlen(meta), w->info.meta_sha256);
        w->info.meta_size = (uint32_t)strlen(meta);
    }
}

static void
wheel_free(wheel *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->data);
    w->data = NULL;
    w->fd = -1;
}

static int
put(wm_store *s, const wheel *w)
{
    wm_file_info info = w->info; /* put_fd fills in chunks_root */

    return wm_store_put_fd(s, &info, w->fd, w->meta,
                           w->meta != NULL ? strlen(w->meta) : 0);
}

static wm_store *
open_store(const char *name, uint64_t map_size)
{
    wm_store *s = NULL;
    const char *why = NULL;
    int rc = wm_store_open(&s, tu_tmp_path(name), map_size, &why);

    if (rc != 0)
        fail_msg("wm_store_open %s: %d (%s)", name, rc, why);
    assert_non_null(s);
    return s;
}

static wm_store_view *
open_view(wm_store *s)
{
    wm_store_view *v = NULL;

    assert_int_equal(wm_store_view_open(s, &v), 0);
    assert_non_null(v);
    return v;
}

static uint32_t
chunk_count(uint64_t size)
{
    return (uint32_t)((size + WM_CHUNK_SIZE - 1) / WM_CHUNK_SIZE);
}

static void
assert_info_equal(const wm_file_info *got, const wm_file_info *want)
{
    assert_string_equal(got->filename, want->filename);
    assert_string_equal(got->project, want->project);
    assert_memory_equal(got->sha256, want->sha256, WM_SHA256_LEN);
    assert_int_equal(got->size, want->size);
    assert_int_equal(got->has_claim, want->has_claim);
    assert_memory_equal(got->claim_publisher, want->claim_publisher,
                        WM_PUBKEY_LEN);
    assert_memory_equal(got->claim_sig, want->claim_sig, WM_SIG_LEN);
    assert_string_equal(got->requires_python, want->requires_python);
    assert_int_equal(got->added, want->added);
    assert_int_equal(got->last_used, want->last_used);
    assert_int_equal(got->source, want->source);
    assert_memory_equal(got->meta_sha256, want->meta_sha256, WM_SHA256_LEN);
    assert_int_equal(got->meta_size, want->meta_size);
}

/* The record, every chunk, nothing past the last chunk, the name index and
 * the metadata of W are as put. */
static void
check_wheel(wm_store_view *v, const wheel *w)
{
    wm_file_info got;
    uint8_t sha[WM_SHA256_LEN];
    uint32_t n = chunk_count(w->info.size);
    uint64_t off = 0;
    const void *data;
    size_t len;

    memset(&got, 0xa5, sizeof(got));
    assert_int_equal(wm_store_get(v, w->info.sha256, &got), 0);
    assert_info_equal(&got, &w->info);

    for (uint32_t i = 0; i < n; i++) {
        size_t want = w->info.size - off < WM_CHUNK_SIZE
                          ? (size_t)(w->info.size - off)
                          : WM_CHUNK_SIZE;
        data = NULL;
        len = 0;
        assert_int_equal(wm_store_chunk(v, w->info.sha256, i, &data, &len), 0);
        assert_int_equal(len, want);
        if (memcmp(data, w->data + off, len) != 0)
            fail_msg("%s: chunk %u differs", w->info.filename, i);
        off += len;
    }
    assert_int_equal(off, w->info.size);
    assert_int_equal(wm_store_chunk(v, w->info.sha256, n, &data, &len),
                     -ENOENT);

    assert_int_equal(wm_store_find_name(v, w->info.filename, sha), 0);
    assert_memory_equal(sha, w->info.sha256, WM_SHA256_LEN);

    if (w->meta != NULL) {
        assert_int_equal(wm_store_metadata(v, w->info.sha256, &data, &len), 0);
        assert_int_equal(len, strlen(w->meta));
        assert_memory_equal(data, w->meta, len);
    } else {
        assert_int_equal(wm_store_metadata(v, w->info.sha256, &data, &len),
                         -ENOENT);
    }
}

/* Nothing of SHA / FILENAME is visible: no record, no chunk, no name. */
static void
check_absent(wm_store_view *v, const uint8_t sha[WM_SHA256_LEN],
             const char *filename, uint32_t nchunks)
{
    wm_file_info got;
    uint8_t found[WM_SHA256_LEN];
    const void *data;
    size_t len;

    assert_int_equal(wm_store_get(v, sha, &got), -ENOENT);
    for (uint32_t i = 0; i <= nchunks; i++)
        if (wm_store_chunk(v, sha, i, &data, &len) != -ENOENT)
            fail_msg("%s: chunk %u of %u left behind",
                     filename != NULL ? filename : "(unnamed)", i, nchunks);
    assert_int_equal(wm_store_metadata(v, sha, &data, &len), -ENOENT);
    if (filename != NULL)
        assert_int_equal(wm_store_find_name(v, filename, found), -ENOENT);
}

/* --- listing callbacks */

typedef struct list {
    char names[MAX_LIST][WM_PROJECT_MAX + 1 + WM_WHEELNAME_MAX + 1];
    int n;
    int stop_after; /* return 7 after this many calls; 0: never */
} list;

static int
collect_file(const wm_file_info *info, void *arg)
{
    list *l = arg;

    assert_true(l->n < MAX_LIST);
    snprintf(l->names[l->n], sizeof(l->names[0]), "%s/%s", info->project,
             info->filename);
    l->n++;
    return l->stop_after > 0 && l->n >= l->stop_after ? 7 : 0;
}

static int
collect_project(const char *project, void *arg)
{
    list *l = arg;

    assert_true(l->n < MAX_LIST);
    snprintf(l->names[l->n], sizeof(l->names[0]), "%s", project);
    l->n++;
    return l->stop_after > 0 && l->n >= l->stop_after ? 7 : 0;
}

static void
assert_list(const list *l, const char *const *want, int n)
{
    if (l->n != n)
        fail_msg("%d entries, want %d (first \"%s\")", l->n, n,
                 l->n > 0 ? l->names[0] : "");
    for (int i = 0; i < n; i++)
        assert_string_equal(l->names[i], want[i]);
}

/* --- setup */

static int
setup(void **state)
{
    (void)state;
    if (wm_identity_init() != 0)
        return -1;
    return tu_tmpdir_create("test_store");
}

static int
teardown(void **state)
{
    (void)state;
    return tu_tmpdir_remove();
}

/* --- the main round trip */

enum { W_ONE, W_CHUNK, W_CHUNK1, W_MANY, W_PREFIX, NWHEELS };

typedef struct wheel_spec {
    const char *filename;
    const char *project;
    size_t size;
    const char *meta;
} wheel_spec;

static const wheel_spec specs[NWHEELS] = {
    [W_ONE] = {"alpha-1.0-py3-none-any.whl", "alpha", 1,
               "Metadata-Version: 2.1\nName: alpha\nVersion: 1.0\n"},
    [W_CHUNK] = {"alpha-2.0-py3-none-any.whl", "alpha", WM_CHUNK_SIZE, NULL},
    [W_CHUNK1] = {"beta_pkg-0.1-py3-none-any.whl", "beta-pkg",
                  WM_CHUNK_SIZE + 1, "Name: beta_pkg\n"},
    /* More than one batch of chunks, the last one partial. */
    [W_MANY] = {"gamma-3.0-cp312-cp312-manylinux_2_17_x86_64.whl", "gamma",
                40 * (size_t)WM_CHUNK_SIZE - 12345, "Name: gamma\n"},
    /* A project whose name extends another's: "alpha" must not list it. */
    [W_PREFIX] = {"alpha_x-0.1-py3-none-any.whl", "alpha-x", 10, NULL},
};

static void
check_all(wm_store *s, const wheel *w)
{
    static const char *const all[] = {
        "alpha/alpha-1.0-py3-none-any.whl",
        "alpha/alpha-2.0-py3-none-any.whl",
        "alpha-x/alpha_x-0.1-py3-none-any.whl",
        "beta-pkg/beta_pkg-0.1-py3-none-any.whl",
        "gamma/gamma-3.0-cp312-cp312-manylinux_2_17_x86_64.whl",
    };
    static const char *const projects[] = {"alpha", "alpha-x", "beta-pkg",
                                           "gamma"};
    wm_store_view *v = open_view(s);
    uint8_t sha[WM_SHA256_LEN], unknown[WM_SHA256_LEN];
    uint64_t files = 0, bytes = 0, total = 0;
    wm_file_info got;
    list l;

    for (int i = 0; i < NWHEELS; i++) {
        check_wheel(v, &w[i]);
        total += w[i].info.size;
    }

    /* Unknown names and hashes. */
    assert_int_equal(wm_store_find_name(v, "nope-1.0-py3-none-any.whl", sha),
                     -ENOENT);
    assert_int_equal(wm_store_find_name(v, "", sha), -ENOENT);
    assert_int_equal(wm_store_find_name(v, "alpha-1.0-py3-none-any.wh", sha),
                     -ENOENT);
    memcpy(unknown, w[W_ONE].info.sha256, WM_SHA256_LEN);
    unknown[31] ^= 1;
    check_absent(v, unknown, NULL, 1);

    /* One project, in filename order; an extended name is not included. */
    memset(&l, 0, sizeof(l));
    assert_int_equal(wm_store_each_file(v, "alpha", collect_file, &l), 0);
    assert_list(&l, all, 2);
    memset(&l, 0, sizeof(l));
    assert_int_equal(wm_store_each_file(v, "gamma", collect_file, &l), 0);
    assert_list(&l, all + 4, 1);
    memset(&l, 0, sizeof(l));
    assert_int_equal(wm_store_each_file(v, "alph", collect_file, &l), 0);
    assert_list(&l, all, 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(wm_store_each_file(v, "zzz", collect_file, &l), 0);
    assert_list(&l, all, 0);

    /* Every file, project then filename order. */
    memset(&l, 0, sizeof(l));
    assert_int_equal(wm_store_each_file(v, NULL, collect_file, &l), 0);
    assert_list(&l, all, 5);

    /* A non-zero return stops the walk and is returned. */
    memset(&l, 0, sizeof(l));
    l.stop_after = 3;
    assert_int_equal(wm_store_each_file(v, NULL, collect_file, &l), 7);
    assert_list(&l, all, 3);

    memset(&l, 0, sizeof(l));
    assert_int_equal(wm_store_each_project(v, collect_project, &l), 0);
    assert_list(&l, projects, 4);
    memset(&l, 0, sizeof(l));
    l.stop_after = 2;
    assert_int_equal(wm_store_each_project(v, collect_project, &l), 7);
    assert_list(&l, projects, 2);

    assert_int_equal(wm_store_stats(v, &files, &bytes), 0);
    assert_int_equal(files, NWHEELS);
    assert_int_equal(bytes, total);

    /* A get of one record does not depend on the previous one. */
    assert_int_equal(wm_store_get(v, w[W_ONE].info.sha256, &got), 0);
    assert_int_equal(wm_store_get(v, w[W_PREFIX].info.sha256, &got), 0);
    assert_info_equal(&got, &w[W_PREFIX].info);

    wm_store_view_close(&v);
    assert_null(v);
    wm_store_view_close(&v); /* NULL is fine */
}

static void
test_put_read_reopen(void **state)
{
    wheel w[NWHEELS], same_sha, same_name;
    wm_store *s = open_store("basic", GIB);
    wm_store_view *v;
    uint64_t files, bytes;
    uint8_t sha[WM_SHA256_LEN];

    (void)state;
    {
        wm_store_view *empty = open_view(s);
        list l = {0};
        assert_int_equal(wm_store_stats(empty, &files, &bytes), 0);
        assert_int_equal(files, 0);
        assert_int_equal(bytes, 0);
        assert_int_equal(wm_store_each_project(empty, collect_project, &l), 0);
        assert_int_equal(l.n, 0);
        wm_store_view_close(&empty);
    }

    for (int i = 0; i < NWHEELS; i++) {
        wheel_make(&w[i], specs[i].filename, specs[i].project, specs[i].size,
                   (uint64_t)i + 1, specs[i].meta);
        assert_int_equal(put(s, &w[i]), 0);
    }
    check_all(s, w);

    /* The same bytes again, under the same or another name: -EEXIST. */
    for (int i = 0; i < NWHEELS; i++)
        assert_int_equal(put(s, &w[i]), -EEXIST);
    wheel_make(&same_sha, "delta-1.0-py3-none-any.whl", "delta",
               specs[W_CHUNK1].size, 3, NULL);
    assert_memory_equal(same_sha.info.sha256, w[W_CHUNK1].info.sha256,
                        WM_SHA256_LEN);
    assert_int_equal(put(s, &same_sha), -EEXIST);

    /* A stored filename with other bytes: -EBUSY. */
    wheel_make(&same_name, specs[W_ONE].filename, specs[W_ONE].project, 2, 99,
               NULL);
    assert_int_equal(put(s, &same_name), -EBUSY);

    /* Neither changed anything. */
    v = open_view(s);
    check_absent(v, same_name.info.sha256, NULL, 1);
    assert_int_equal(wm_store_find_name(v, same_sha.info.filename, sha),
                     -ENOENT);
    assert_int_equal(wm_store_find_name(v, specs[W_ONE].filename, sha), 0);
    assert_memory_equal(sha, w[W_ONE].info.sha256, WM_SHA256_LEN);
    wm_store_view_close(&v);
    check_all(s, w);

    /* Durability: everything is there after closing and reopening, and
     * the refusals still hold. */
    wm_store_destroy(&s);
    assert_null(s);
    wm_store_destroy(&s); /* NULL is fine */
    s = open_store("basic", GIB);
    check_all(s, w);
    assert_int_equal(put(s, &w[W_MANY]), -EEXIST);
    assert_int_equal(put(s, &same_name), -EBUSY);
    check_all(s, w);

    wm_store_destroy(&s);
    wheel_free(&same_sha);
    wheel_free(&same_name);
    for (int i = 0; i < NWHEELS; i++)
        wheel_free(&w[i]);
}

/* --- refused puts leave nothing */

typedef struct bad_put {
    size_t size;
    int flip_sha; /* claim another sha256 than the bytes have */
    int extra;    /* claim this many bytes more than the file holds */
} bad_put;

static void
test_bad_put_leaves_nothing(void **state)
{
    static const bad_put cases[] = {
        {1, 1, 0},
        {WM_CHUNK_SIZE, 1, 0},
        /* Mismatch found after a whole batch was committed. */
        {(BATCH + 1) * (size_t)WM_CHUNK_SIZE - 3, 1, 0},
        /* Short reads: by a byte, and by a whole chunk. */
        {100, 0, 1},
        {3 * (size_t)WM_CHUNK_SIZE, 0, WM_CHUNK_SIZE},
    };
    const size_t n = sizeof(cases) / sizeof(cases[0]);
    wheel w[sizeof(cases) / sizeof(cases[0])], good;
    wm_store *s = open_store("bad", GIB);
    wm_store_view *v;
    uint64_t files, bytes;

    (void)state;
    for (size_t i = 0; i < n; i++) {
        char name[64];

        snprintf(name, sizeof(name), "bad%zu-1.0-py3-none-any.whl", i);
        wheel_make(&w[i], name, "bad", cases[i].size, 100 + i, "Name: bad\n");
        if (cases[i].flip_sha)
            w[i].info.sha256[i % WM_SHA256_LEN] ^= 0x40;
        w[i].info.size += (uint64_t)cases[i].extra;
        if (put(s, &w[i]) != -EIO)
            fail_msg("case %zu: not -EIO", i);
    }

    v = open_view(s);
    for (size_t i = 0; i < n; i++)
        check_absent(v, w[i].info.sha256, w[i].info.filename,
                     chunk_count(w[i].info.size));
    assert_int_equal(wm_store_stats(v, &files, &bytes), 0);
    assert_int_equal(files, 0);
    wm_store_view_close(&v);

    /* The same after a reopen (and its sweep). */
    wm_store_destroy(&s);
    s = open_store("bad", GIB);
    v = open_view(s);
    for (size_t i = 0; i < n; i++)
        check_absent(v, w[i].info.sha256, w[i].info.filename,
                     chunk_count(w[i].info.size));
    wm_store_view_close(&v);

    /* A failed put does not block the name: the right bytes go in. */
    wheel_make(&good, w[2].info.filename, "bad", cases[2].size, 102, NULL);
    assert_int_equal(put(s, &good), 0);
    v = open_view(s);
    check_wheel(v, &good);
    assert_int_equal(wm_store_stats(v, &files, &bytes), 0);
    assert_int_equal(files, 1);
    assert_int_equal(bytes, cases[2].size);
    wm_store_view_close(&v);

    wm_store_destroy(&s);
    wheel_free(&good);
    for (size_t i = 0; i < n; i++)
        wheel_free(&w[i]);
}

/* --- signatures */

/* A publisher's claim and Requires-Python are kept with the record, as
 * they came, at their largest. */
static void
test_claim_kept(void **state)
{
    wm_store *s = open_store("claimed", GIB);
    wm_store_view *v;
    wm_file_info got;
    wheel w;

    (void)state;
    wheel_make(&w, "claimed-1.0-py3-none-any.whl", "claimed", 5000, 7, NULL);
    w.info.has_claim = 1;
    memset(w.info.requires_python, '3', WM_PYVER_MAX);
    w.info.requires_python[WM_PYVER_MAX] = '\0';
    assert_int_equal(put(s, &w), 0);
    v = open_view(s);
    assert_int_equal(wm_store_get(v, w.info.sha256, &got), 0);
    assert_info_equal(&got, &w.info);
    wm_store_view_close(&v);
    wm_store_destroy(&s);
    wheel_free(&w);
}

/* --- METADATA without a wheel, and upstream page records */

static void
test_meta_and_pages(void **state)
{
    static const char meta[] = "Metadata-Version: 2.1\nName: up\n";
    wm_store *s = open_store("pages", GIB);
    wm_store_view *v, *before;
    uint8_t sha[WM_SHA256_LEN];
    const void *data;
    size_t len;
    wm_file_info got;

    (void)state;
    wm_sha256_digest("not stored", 10, sha);
    before = open_view(s);
    assert_int_equal(wm_store_put_meta(s, sha, meta, strlen(meta)), 0);
    assert_int_equal(wm_store_put_page(s, "up", "page-1", 6), 0);
    assert_int_equal(wm_store_put_page(s, "up-two", "other", 5), 0);
    assert_int_equal(wm_store_put_page(s, "up", "page-two", 8), 0);
    assert_true(wm_store_put_page(s, "", "x", 1) < 0);

    /* An older view does not see them. */
    assert_int_equal(wm_store_metadata(before, sha, &data, &len), -ENOENT);
    assert_int_equal(wm_store_page(before, "up", &data, &len), -ENOENT);
    wm_store_view_close(&before);

    for (int round = 0; round < 2; round++) {
        v = open_view(s);
        assert_int_equal(wm_store_metadata(v, sha, &data, &len), 0);
        assert_int_equal(len, strlen(meta));
        assert_memory_equal(data, meta, len);
        /* Metadata alone is not a wheel. */
        assert_int_equal(wm_store_get(v, sha, &got), -ENOENT);

        /* The last record replaced the first. */
        assert_int_equal(wm_store_page(v, "up", &data, &len), 0);
        assert_int_equal(len, 8);
        assert_memory_equal(data, "page-two", 8);
        assert_int_equal(wm_store_page(v, "up-two", &data, &len), 0);
        assert_int_equal(len, 5);
        assert_memory_equal(data, "other", 5);
        assert_int_equal(wm_store_page(v, "u", &data, &len), -ENOENT);
        assert_int_equal(wm_store_page(v, "", &data, &len), -ENOENT);
        wm_store_view_close(&v);

        /* Again after a reopen. */
        wm_store_destroy(&s);
        s = open_store("pages", GIB);
    }
    wm_store_destroy(&s);
}

/* --- views are snapshots and stay valid across commits */

static void
test_view_survives_commit(void **state)
{
    wm_store *s = open_store("views", GIB);
    wm_store_view *old, *cur;
    wheel a, b, c;
    const void *p0, *plast;
    size_t len0, lenlast;
    uint64_t files, bytes;
    uint32_t last;

    (void)state;
    wheel_make(&a, "a-1.0-py3-none-any.whl", "a", 3 * WM_CHUNK_SIZE + 7, 21,
               "Name: a\n");
    wheel_make(&b, "b-1.0-py3-none-any.whl", "b", (BATCH + 1) * WM_CHUNK_SIZE,
               22, NULL);
    wheel_make(&c, "c-1.0-py3-none-any.whl", "a", 10, 23, NULL);
    assert_int_equal(put(s, &a), 0);

    old = open_view(s);
    last = chunk_count(a.info.size) - 1;
    assert_int_equal(wm_store_chunk(old, a.info.sha256, 0, &p0, &len0), 0);
    assert_int_equal(wm_store_chunk(old, a.info.sha256, last, &plast, &lenlast),
                     0);

    /* Commits (several, for B) while OLD is open. */
    assert_int_equal(put(s, &b), 0);
    assert_int_equal(put(s, &c), 0);

    /* OLD's pointers still hold A's bytes, and OLD sees its snapshot. */
    assert_int_equal(len0, WM_CHUNK_SIZE);
    assert_memory_equal(p0, a.data, len0);
    assert_int_equal(lenlast, 7);
    assert_memory_equal(plast, a.data + (size_t)last * WM_CHUNK_SIZE, 7);
    check_wheel(old, &a);
    check_absent(old, b.info.sha256, b.info.filename, 1);
    check_absent(old, c.info.sha256, c.info.filename, 1);
    assert_int_equal(wm_store_stats(old, &files, &bytes), 0);
    assert_int_equal(files, 1);
    assert_int_equal(bytes, a.info.size);

    /* A new view sees everything; two views at once are fine. */
    cur = open_view(s);
    check_wheel(cur, &a);
    check_wheel(cur, &b);
    check_wheel(cur, &c);
    assert_int_equal(wm_store_stats(cur, &files, &bytes), 0);
    assert_int_equal(files, 3);
    assert_int_equal(bytes, a.info.size + b.info.size + c.info.size);
    wm_store_view_close(&cur);

    assert_memory_equal(p0, a.data, len0);
    wm_store_view_close(&old);

    wm_store_destroy(&s);
    wheel_free(&a);
    wheel_free(&b);
    wheel_free(&c);
}

/* --- a full map */

typedef struct full_case {
    const char *dir;
    uint64_t map_size;
    size_t size;
} full_case;

static void
test_map_full(void **state)
{
    static const full_case cases[] = {
        {"full4", 4 * MIB, 8 * MIB},
        /* The first batch fits and is committed; the rest does not. */
        {"full33", 33 * MIB, (BATCH + 2) * MIB},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wm_store *s = open_store(cases[i].dir, cases[i].map_size);
        wm_store_view *v;
        wheel big, small;
        uint64_t files, bytes;

        wheel_make(&big, "big-1.0-py3-none-any.whl", "big", cases[i].size,
                   300 + i, "Name: big\n");
        wheel_make(&small, "small-1.0-py3-none-any.whl", "small", 1000, 400 + i,
                   NULL);
        if (put(s, &big) != -ENOSPC)
            fail_msg("%s: not -ENOSPC", cases[i].dir);

        v = open_view(s);
        check_absent(v, big.info.sha256, big.info.filename,
                     chunk_count(big.info.size));
        wm_store_view_close(&v);

        /* The store still works. */
        assert_int_equal(put(s, &small), 0);
        v = open_view(s);
        check_wheel(v, &small);
        assert_int_equal(wm_store_stats(v, &files, &bytes), 0);
        assert_int_equal(files, 1);
        wm_store_view_close(&v);

        wm_store_destroy(&s);
        s = open_store(cases[i].dir, cases[i].map_size);
        v = open_view(s);
        check_absent(v, big.info.sha256, big.info.filename,
                     chunk_count(big.info.size));
        check_wheel(v, &small);
        wm_store_view_close(&v);
        wm_store_destroy(&s);
        wheel_free(&big);
        wheel_free(&small);
    }
}

/* --- a writer killed in the middle of a put */

static off_t
file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : 0;
}

static void
test_killed_writer(void **state)
{
    const char *dir = "killed";
    char data_path[256];
    wheel w, small;
    wm_store *s;
    wm_store_view *v;
    int pipefd[2], status = 0;
    pid_t pid;
    char c;
    uint64_t files, bytes;
    int finished = 0;

    (void)state;
    wheel_make(&w, "killed-1.0-py3-none-any.whl", "killed",
               100 * (size_t)WM_CHUNK_SIZE - 99, 500, "Name: killed\n");
    /* Create the store before forking so that the child only writes. */
    s = open_store(dir, GIB);
    wm_store_destroy(&s);
    snprintf(data_path, sizeof(data_path), "%s/data.mdb", tu_tmp_path(dir));

    assert_int_equal(pipe(pipefd), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        wm_store *cs = NULL;
        const char *why;

        close(pipefd[0]);
        if (wm_store_open(&cs, tu_tmp_path(dir), GIB, &why) != 0)
            _exit(2);
        if (write(pipefd[1], "s", 1) != 1)
            _exit(3);
        _exit(put(cs, &w) == 0 ? 0 : 1);
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &c, 1), 1);
    close(pipefd[0]);

    /* Kill while the second batch is being written: the data file grows
     * only when a transaction commits, and batches commit one after the
     * other, so once it is well past one batch the first commit is done
     * and its chunks, with no record yet, are on disk. */
    for (int i = 0; i < 20000; i++) {
        if (file_size(data_path) > (off_t)((BATCH + 8) * WM_CHUNK_SIZE))
            break;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            finished = 1;
            break;
        }
        usleep(500);
    }
    if (!finished) {
        kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, &status, 0), pid);
    }

    s = open_store(dir, GIB);
    v = open_view(s);
    if (WIFEXITED(status)) {
        /* The put won the race: it must be complete. */
        assert_int_equal(WEXITSTATUS(status), 0);
        check_wheel(v, &w);
        print_message("note: the put completed before the kill\n");
    } else {
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        /* No record, and the orphan chunks were swept at open. */
        check_absent(v, w.info.sha256, w.info.filename,
                     chunk_count(w.info.size));
        assert_int_equal(wm_store_stats(v, &files, &bytes), 0);
        assert_int_equal(files, 0);
        wm_store_view_close(&v);

        /* The dead writer left the store writable. */
        wheel_make(&small, "after-1.0-py3-none-any.whl", "after", 3000, 501,
                   NULL);
        assert_int_equal(put(s, &small), 0);
        v = open_view(s);
        check_wheel(v, &small);
        check_absent(v, w.info.sha256, w.info.filename, 1);
        wheel_free(&small);
    }
    wm_store_view_close(&v);
    wm_store_destroy(&s);
    wheel_free(&w);
}

/* --- a wheel whose chunks arrive first (a peer fetch) */

/* Puts chunks FIRST..LAST-1 of W in one batch. */
static int
put_chunks(wm_store *s, const wheel *w, uint32_t first, uint32_t last)
{
    wm_store_batch *b = NULL;
    int rc = wm_store_batch_begin(s, &b);

    for (uint32_t i = first; rc == 0 && i < last; i++) {
        uint64_t off = (uint64_t)i * WM_CHUNK_SIZE;
        size_t len = w->info.size - off < WM_CHUNK_SIZE
                         ? (size_t)(w->info.size - off)
                         : WM_CHUNK_SIZE;
        rc = wm_store_batch_put_chunk(b, w->info.sha256, i, w->data + off,
                                      len);
    }
    if (rc != 0) {
        wm_store_batch_abort(&b);
        return rc;
    }
    return wm_store_batch_commit(&b);
}

static uint8_t *
chunkmap_of(const wheel *w)
{
    uint32_t n = chunk_count(w->info.size);
    uint8_t *map = malloc((size_t)n * WM_SHA256_LEN);

    assert_non_null(map);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = (uint64_t)i * WM_CHUNK_SIZE;
        size_t len = w->info.size - off < WM_CHUNK_SIZE
                         ? (size_t)(w->info.size - off)
                         : WM_CHUNK_SIZE;
        wm_sha256_digest(w->data + off, len, map + (size_t)i * WM_SHA256_LEN);
    }
    return map;
}

static int
adopt(wm_store *s, const wheel *w, const uint8_t *map)
{
    wm_store_writer *wr = NULL;
    int rc = wm_store_writer_adopt(s, &w->info, w->meta,
                                   w->meta != NULL ? strlen(w->meta) : 0, map,
                                   &wr);

    while (rc == 0 && (rc = wm_store_writer_step(wr)) == 1)
        rc = 0;
    wm_store_writer_destroy(&wr);
    return rc;
}

static void
test_chunks_first(void **state)
{
    wm_store *s = open_store("chunks", GIB);
    wheel w, other;
    wm_store_writer *wr = NULL;
    uint32_t n;
    uint8_t *map, buf[300];
    wm_store_view *v;
    size_t got = 0;

    (void)state;
    wheel_make(&w, "delta-1.0-py3-none-any.whl", "delta",
               3 * (size_t)WM_CHUNK_SIZE + 777, 77, "Name: delta\n");
    wheel_make(&other, "delta-2.0-py3-none-any.whl", "delta", 5000, 78, NULL);
    n = chunk_count(w.info.size);
    map = chunkmap_of(&w);

    /* Out of order, in two batches: readable by sha256 and chunk before
     * there is a record, from any offset, never past a chunk's end. */
    assert_int_equal(put_chunks(s, &w, 2, n), 0);
    assert_int_equal(put_chunks(s, &w, 0, 2), 0);
    v = open_view(s);
    assert_int_equal(wm_store_get(v, w.info.sha256, &w.info), -ENOENT);
    assert_int_equal(wm_store_read_chunk(v, w.info.sha256, 1, 1000, buf,
                                         sizeof(buf), &got),
                     0);
    assert_int_equal(got, sizeof(buf));
    assert_memory_equal(buf, w.data + WM_CHUNK_SIZE + 1000, got);
    assert_int_equal(wm_store_read_chunk(v, w.info.sha256, 3, 700, buf,
                                         sizeof(buf), &got),
                     0);
    assert_int_equal(got, 77);
    assert_memory_equal(buf, w.data + 3 * (size_t)WM_CHUNK_SIZE + 700, got);
    assert_int_equal(wm_store_read_chunk(v, w.info.sha256, 3, 777, buf,
                                         sizeof(buf), &got),
                     -ENOENT);
    assert_int_equal(wm_store_read_chunk(v, w.info.sha256, n, 0, buf,
                                         sizeof(buf), &got),
                     -ENOENT);
    wm_store_view_close(&v);

    /* A missing chunk fails the adoption, which leaves the rest. */
    assert_int_equal(put_chunks(s, &other, 0, 1), 0);
    assert_int_equal(wm_store_drop_chunks(s, other.info.sha256), 0);
    assert_int_equal(adopt(s, &other, map), -EIO);
    v = open_view(s);
    check_absent(v, other.info.sha256, other.info.filename, 1);
    wm_store_view_close(&v);

    /* Adopted: the wheel is stored with its chunk map; its chunks are the
     * record's now, and neither a drop nor a late chunk touches them. */
    assert_int_equal(wm_store_writer_adopt(s, &w.info, NULL, 0, NULL, &wr),
                     -EINVAL);
    assert_int_equal(adopt(s, &w, map), 0);
    assert_int_equal(wm_store_drop_chunks(s, w.info.sha256), 0);
    assert_int_equal(put_chunks(s, &w, 0, 1), -EEXIST);
    assert_int_equal(adopt(s, &w, map), -EEXIST);
    v = open_view(s);
    check_wheel(v, &w);
    {
        const void *data;
        size_t len;
        assert_int_equal(wm_store_chunkmap(v, w.info.sha256, &data, &len), 0);
        assert_int_equal(len, (size_t)n * WM_SHA256_LEN);
        assert_memory_equal(data, map, len);
    }
    wm_store_view_close(&v);
    free(map);

    /* Dropped before any record: nothing of them is left, and a restart
     * has nothing to sweep. */
    assert_int_equal(put_chunks(s, &other, 0, 1), 0);
    assert_int_equal(wm_store_drop_chunks(s, other.info.sha256), 0);
    v = open_view(s);
    check_absent(v, other.info.sha256, other.info.filename, 1);
    wm_store_view_close(&v);
    wm_store_destroy(&s);
    s = open_store("chunks", GIB);
    assert_int_equal(wm_store_swept(s), 0);
    v = open_view(s);
    check_wheel(v, &w);
    wm_store_view_close(&v);
    wm_store_destroy(&s);
    wheel_free(&w);
    wheel_free(&other);
}

/* The bytes of chunks no record names are counted apart from the wheels
 * held, and the count comes back down however they leave: adopted,
 * dropped, written over by a writer of the same wheel, swept at start. */
static void
test_orphan_count(void **state)
{
    wm_store *s = open_store("orphans", GIB);
    wheel a, b, c;
    uint64_t files = 0, bytes = 0;
    uint8_t *map;

    (void)state;
    wheel_make(&a, "eps-1.0-py3-none-any.whl", "eps",
               2 * (size_t)WM_CHUNK_SIZE + 99, 91, "Name: eps\n");
    wheel_make(&b, "eps-2.0-py3-none-any.whl", "eps",
               (size_t)WM_CHUNK_SIZE + 5, 92, NULL);
    wheel_make(&c, "eps-3.0-py3-none-any.whl", "eps",
               3 * (size_t)WM_CHUNK_SIZE, 93, NULL);
    assert_int_equal(wm_store_orphan_bytes(s), 0);

    /* Counted once, whatever the order or a chunk put again. */
    assert_int_equal(put_chunks(s, &a, 1, 3), 0);
    assert_int_equal(wm_store_orphan_bytes(s), a.info.size - WM_CHUNK_SIZE);
    assert_int_equal(put_chunks(s, &a, 0, 2), 0);
    assert_int_equal(wm_store_orphan_bytes(s), a.info.size);
    assert_int_equal(put_chunks(s, &b, 0, 2), 0);
    assert_int_equal(wm_store_orphan_bytes(s), a.info.size + b.info.size);
    wm_store_usage(s, &files, &bytes);
    assert_int_equal(files, 0);
    assert_int_equal(bytes, 0);

    /* Adopted: held, no longer orphans. */
    map = chunkmap_of(&a);
    assert_int_equal(adopt(s, &a, map), 0);
    free(map);
    assert_int_equal(wm_store_orphan_bytes(s), b.info.size);
    wm_store_usage(s, &files, &bytes);
    assert_int_equal(files, 1);
    assert_int_equal(bytes, a.info.size);

    /* Dropped. */
    assert_int_equal(wm_store_drop_chunks(s, b.info.sha256), 0);
    assert_int_equal(wm_store_orphan_bytes(s), 0);

    /* Written over by a writer of the same wheel (a put of it while a
     * peer fetch of it runs): the record's now. */
    assert_int_equal(put_chunks(s, &c, 0, 2), 0);
    assert_int_equal(wm_store_orphan_bytes(s), 2 * (uint64_t)WM_CHUNK_SIZE);
    assert_int_equal(put(s, &c), 0);
    assert_int_equal(wm_store_orphan_bytes(s), 0);
    assert_int_equal(wm_store_drop_chunks(s, c.info.sha256), 0);
    assert_int_equal(wm_store_orphan_bytes(s), 0);
    wm_store_usage(s, &files, &bytes);
    assert_int_equal(files, 2);
    assert_int_equal(bytes, a.info.size + c.info.size);

    /* Left behind by a stop: swept at the next start, counted nowhere. */
    assert_int_equal(put_chunks(s, &b, 0, 1), 0);
    assert_int_equal(wm_store_orphan_bytes(s), WM_CHUNK_SIZE);
    wm_store_destroy(&s);
    s = open_store("orphans", GIB);
    assert_int_equal(wm_store_swept(s), 1);
    assert_int_equal(wm_store_orphan_bytes(s), 0);
    wm_store_usage(s, &files, &bytes);
    assert_int_equal(files, 2);
    assert_int_equal(bytes, a.info.size + c.info.size);
    wm_store_destroy(&s);
    wheel_free(&a);
    wheel_free(&b);
    wheel_free(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_read_reopen),
        cmocka_unit_test(test_bad_put_leaves_nothing),
        cmocka_unit_test(test_claim_kept),
        cmocka_unit_test(test_meta_and_pages),
        cmocka_unit_test(test_view_survives_commit),
        cmocka_unit_test(test_map_full),
        cmocka_unit_test(test_killed_writer),
        cmocka_unit_test(test_chunks_first),
        cmocka_unit_test(test_orphan_count),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
