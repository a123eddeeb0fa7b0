/*
 * Checks a wheel before the node stores or serves it: the zip must be
 * structurally sound, its one top-level .dist-info directory must name the
 * same distribution and version as the filename, and no entry may point
 * outside the directory it would be installed into. The wheel's METADATA
 * comes back so that it can be served as PEP 658 core metadata.
 *
 * Known limit: only METADATA's data is read, and so only its CRC is checked.
 * The other entries are checked through the central directory alone
 * (ZIP_CHECKCONS), because inflating every member of a 1 GB wheel on each put
 * costs seconds; a corrupt member elsewhere is still caught by pip, which
 * checks every file against RECORD's hashes when it installs.
 */
#include "wheelzip.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

/* Far above any real wheel (the largest hold tens of thousands of files);
 * it bounds our own loop, libzip's memory is already bounded by file size. */
#define MAX_ENTRIES 1000000

#define DIST_INFO ".dist-info"

static const struct {
    const char *name;
    const char *missing;
} required[] = {
    {"METADATA", "missing METADATA"},
    {"WHEEL", "missing WHEEL"},
    {"RECORD", "missing RECORD"},
};
#define N_REQUIRED (sizeof(required) / sizeof(required[0]))
enum { METADATA = 0 }; /* index into required[] */

/* Turns a libzip error code into our return value and a reason. Faults of
 * the file give -EINVAL; faults of this host (memory, I/O) keep their own
 * code so that the caller does not blame whoever sent the wheel. Only
 * METADATA's data is ever read, so the per-entry errors name it. */
static int
zip_fault(int code, const char **why)
{
    switch (code) {
    case ZIP_ER_NOZIP:
        *why = "not a zip file";
        return -EINVAL;
    case ZIP_ER_INCONS:
    case ZIP_ER_EOF:
        *why = "truncated or damaged zip";
        return -EINVAL;
    case ZIP_ER_EXISTS:
        *why = "zip holds two entries with the same name";
        return -EINVAL;
    case ZIP_ER_MULTIDISK:
        *why = "multi-disk zip";
        return -EINVAL;
    case ZIP_ER_CRC:
        *why = "METADATA fails its CRC check";
        return -EINVAL;
    case ZIP_ER_ZLIB:
    case ZIP_ER_COMPRESSED_DATA:
        *why = "METADATA has corrupt compressed data";
        return -EINVAL;
    case ZIP_ER_COMPNOTSUPP:
        *why = "METADATA uses an unsupported compression method";
        return -EINVAL;
    case ZIP_ER_ENCRNOTSUPP:
    case ZIP_ER_NOPASSWD:
    case ZIP_ER_WRONGPASSWD:
        *why = "METADATA is encrypted";
        return -EINVAL;
    case ZIP_ER_MEMORY:
        *why = "out of memory";
        return -ENOMEM;
    case ZIP_ER_OPEN:
    case ZIP_ER_READ:
    case ZIP_ER_SEEK:
    case ZIP_ER_TELL:
        *why = "cannot read the file";
        return -EIO;
    default:
        *why = "unreadable zip";
        return -EINVAL;
    }
}

/* Tells a zip cut short (it starts with a local file header but libzip found
 * no end of central directory) from a file that was never a zip. */
static const char *
nozip_reason(int fd)
{
    static const char local_header[4] = {'P', 'K', 3, 4};
    char head[sizeof(local_header)];

    if (pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
        memcmp(head, local_header, sizeof(head)) == 0)
        return "truncated or damaged zip";
    return "not a zip file";
}

/* Returns why an entry called NAME must be refused, or NULL. ".." matters
 * only as a whole path component ("a..b.py" is fine). A NUL inside a stored
 * name cannot reach here: libzip turns it into a space when it reads the
 * central directory. Other unzippers (Python's zipfile, so pip) cut the name
 * at the NUL instead, so a component counts as ".." when it is ".." up to
 * its first space: "..\0x" must not pass as the harmless ".. x". */
static const char *
bad_entry_name(const char *name)
{
    const char *p;

    if (name[0] == '\0')
        return "zip entry with an empty name";
    if (name[0] == '/' || (isalpha((unsigned char)name[0]) && name[1] == ':'))
        return "zip entry with an absolute path";
    for (p = name; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\')
            return "zip entry name holds a backslash";
        if (c < 0x20 || c == 0x7f)
            return "zip entry name holds a control character";
    }
    p = name;
    for (;;) {
        size_t n = strcspn(p, "/");
        size_t upto_space = strcspn(p, " /");
        if (upto_space == 2 && p[0] == '.' && p[1] == '.')
            return "zip entry name holds \"..\"";
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    return NULL;
}

/* True when the first LEN bytes of an entry name, the part before its first
 * "/", name a .dist-info directory. */
static int
is_dist_info(const char *dir, size_t len)
{
    size_t sl = strlen(DIST_INFO);

    return len > sl && memcmp(dir + len - sl, DIST_INFO, sl) == 0;
}

/* Compares a dist-info directory name "<dist>-<version>.dist-info" (LEN
 * bytes, not NUL-terminated) with the parsed filename. The version is split
 * off at the last "-": no version can hold one (the filename's was split on
 * "-" and the dist-info's went through the same escaping), while the name
 * from an old tool may not be escaped at all. Both versions were escaped the
 * same way, but tools disagree on case ("1.0RC1"), so case is ignored. */
static int
dist_info_matches(const char *dir, size_t len, const wm_wheelname *name)
{
    size_t stem = len - strlen(DIST_INFO);
    size_t dash = stem;
    char dist[WM_PROJECT_MAX + 1];
    char norm[WM_PROJECT_MAX + 1];
    const char *version;
    size_t version_len;

    while (dash > 0 && dir[dash - 1] != '-')
        dash--;
    if (dash < 2 || dash == stem)
        return 0;
    dash--; /* now the index of the "-" */
    if (dash >= sizeof(dist))
        return 0;
    memcpy(dist, dir, dash);
    dist[dash] = '\0';
    if (wm_project_normalize(dist, norm, sizeof(norm)) != 0)
        return 0;
    if (strcmp(norm, name->project) != 0)
        return 0;

    version = dir + dash + 1;
    version_len = stem - dash - 1;
    return strlen(name->version) == version_len &&
           strncasecmp(version, name->version, version_len) == 0;
}

/* Reads entry IDX (METADATA) whole into a malloc'd, NUL-terminated buffer.
 * The size in the central directory was written by whoever made the wheel,
 * so it only sizes the buffer: one byte more than it states is asked for, to
 * catch a longer stream, and reading goes on to the end of the entry because
 * that is where libzip checks the CRC. */
static int
read_metadata(zip_t *za, zip_uint64_t idx, char **out, size_t *out_len,
              const char **why)
{
    zip_stat_t st;
    zip_file_t *zf = NULL;
    char *buf = NULL;
    zip_uint64_t got = 0;
    int rc = -EINVAL;

    zip_stat_init(&st);
    if (zip_stat_index(za, idx, 0, &st) != 0 ||
        (st.valid & ZIP_STAT_SIZE) == 0) {
        rc = zip_fault(zip_error_code_zip(zip_get_error(za)), why);
        goto out;
    }
    if (st.size > WM_METADATA_MAX) {
        *why = "METADATA is too large";
        goto out;
    }
    if (st.size == 0) {
        *why = "METADATA is empty";
        goto out;
    }
    buf = malloc((size_t)st.size + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        *why = "out of memory";
        goto out;
    }
    zf = zip_fopen_index(za, idx, 0);
    if (zf == NULL) {
        rc = zip_fault(zip_error_code_zip(zip_get_error(za)), why);
        goto out;
    }
    for (;;) {
        zip_int64_t n = zip_fread(zf, buf + got, st.size + 1 - got);
        if (n < 0) {
            rc = zip_fault(zip_error_code_zip(zip_file_get_error(zf)), why);
            goto out;
        }
        if (n == 0)
            break;
        got += (zip_uint64_t)n;
        if (got > st.size) {
            *why = "METADATA is longer than its stated size";
            goto out;
        }
    }
    if (got != st.size) {
        *why = "METADATA is shorter than its stated size";
        goto out;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = (size_t)got;
    buf = NULL;
    rc = 0;
out:
    if (zf != NULL)
        zip_fclose(zf);
    free(buf);
    return rc;
}

/* The checks of wm_wheelzip_check on the open archive ZA. */
static int
check_archive(zip_t *za, const wm_wheelname *name, char **meta,
              size_t *meta_len, const char **reason)
{
    zip_int64_t n, i;
    zip_int64_t found[N_REQUIRED];
    const char *dir = NULL; /* the .dist-info name, owned by za */
    size_t dir_len = 0;
    size_t f;

    for (f = 0; f < N_REQUIRED; f++)
        found[f] = -1;
    n = zip_get_num_entries(za, 0);
    if (n <= 0) {
        *reason = "empty zip";
        return -EINVAL;
    }
    if (n > MAX_ENTRIES) {
        *reason = "zip has too many entries";
        return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        const char *ent = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        const char *slash;
        size_t len;

        if (ent == NULL)
            return zip_fault(zip_error_code_zip(zip_get_error(za)), reason);
        *reason = bad_entry_name(ent);
        if (*reason != NULL)
            return -EINVAL;
        slash = strchr(ent, '/');
        if (slash == NULL)
            continue;
        len = (size_t)(slash - ent);
        if (!is_dist_info(ent, len))
            continue;
        if (dir == NULL) {
            dir = ent;
            dir_len = len;
        } else if (len != dir_len || memcmp(ent, dir, len) != 0) {
            *reason = "more than one .dist-info directory";
            return -EINVAL;
        }
        for (f = 0; f < N_REQUIRED; f++) {
            if (strcmp(slash + 1, required[f].name) == 0)
                found[f] = i;
        }
    }

    if (dir == NULL) {
        *reason = "no .dist-info directory";
        return -EINVAL;
    }
    if (!dist_info_matches(dir, dir_len, name)) {
        *reason = "dist-info does not match the filename";
        return -EINVAL;
    }
    for (f = 0; f < N_REQUIRED; f++) {
        if (found[f] < 0) {
            *reason = required[f].missing;
            return -EINVAL;
        }
    }
    return read_metadata(za, (zip_uint64_t)found[METADATA], meta, meta_len,
                         reason);
}

int
wm_wheelzip_check(const char *path, const wm_wheelname *name, char **meta,
                  size_t *meta_len, const char **why)
{
    const char *reason = NULL;
    zip_t *za = NULL;
    int fd = -1;
    int zerr = 0;
    int rc = -EINVAL;
    struct stat sb;

    assert(path != NULL && name != NULL && meta != NULL && meta_len != NULL);
    *meta = NULL;
    *meta_len = 0;

    /* Opened here rather than by zip_open so that a FIFO or a directory is
     * refused before libzip blocks on it, and open errors keep their errno. */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        rc = -errno;
        reason = "cannot open the file";
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        reason = "not a regular file";
        goto out;
    }
    if (sb.st_size == 0) {
        reason = "empty file";
        goto out;
    }
    za = zip_fdopen(fd, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (za == NULL) {
        if (zerr == ZIP_ER_NOZIP)
            reason = nozip_reason(fd);
        else
            rc = zip_fault(zerr, &reason);
        goto out;
    }
    fd = -1; /* the archive owns it now */
    rc = check_archive(za, name, meta, meta_len, &reason);
out:
    if (za != NULL)
        zip_discard(za);
    if (fd >= 0)
        close(fd);
    if (rc != 0 && why != NULL)
        *why = reason;
    return rc;
}

/* nozip_reason for a wheel in parts. */
static const char *
parts_nozip_reason(const wm_wheelzip_part *parts, size_t n)
{
    char head[4];
    size_t got = 0;

    for (size_t i = 0; i < n && got < sizeof(head); i++) {
        size_t k = parts[i].len < sizeof(head) - got ? parts[i].len
                                                      : sizeof(head) - got;
        memcpy(head + got, parts[i].data, k);
        got += k;
    }
    if (got == sizeof(head) && memcmp(head, "PK\3\4", sizeof(head)) == 0)
        return "truncated or damaged zip";
    return "not a zip file";
}

int
wm_wheelzip_check_parts(const wm_wheelzip_part *parts, size_t n,
                        const wm_wheelname *name, char **meta,
                        size_t *meta_len, const char **why)
{
    zip_buffer_fragment_t *frags = NULL;
    const char *reason = "out of memory";
    zip_source_t *src = NULL;
    zip_error_t zerr;
    zip_t *za = NULL;
    uint64_t total = 0;
    int rc = -ENOMEM;

    assert(parts != NULL && name != NULL && meta != NULL && meta_len != NULL);
    *meta = NULL;
    *meta_len = 0;
    zip_error_init(&zerr);
    frags = calloc(n > 0 ? n : 1, sizeof(*frags));
    if (frags == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        frags[i].data = (zip_uint8_t *)parts[i].data;
        frags[i].length = parts[i].len;
        total += parts[i].len;
    }
    rc = -EINVAL;
    if (total == 0) {
        reason = "empty file";
        goto out;
    }
    /* The source neither copies nor frees the parts. */
    src = zip_source_buffer_fragment_create(frags, n, 0, &zerr);
    if (src == NULL) {
        rc = zip_fault(zip_error_code_zip(&zerr), &reason);
        goto out;
    }
    za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (za == NULL) {
        if (zip_error_code_zip(&zerr) == ZIP_ER_NOZIP)
            reason = parts_nozip_reason(parts, n);
        else
            rc = zip_fault(zip_error_code_zip(&zerr), &reason);
        zip_source_free(src); /* not taken by a failed open */
        goto out;
    }
    rc = check_archive(za, name, meta, meta_len, &reason);
out:
    if (za != NULL)
        zip_discard(za);
    zip_error_fini(&zerr);
    free(frags);
    if (rc != 0 && why != NULL)
        *why = reason;
    return rc;
}

int
wm_wheelzip_requires_python(const char *meta, size_t len, char *out,
                            size_t sz)
{
    static const char key[] = "requires-python:";
    const char *p = meta, *end = meta + len;

    out[0] = '\0';
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        size_t n = (size_t)(eol - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the body starts: no more headers */
        if (n >= sizeof(key) - 1 && strncasecmp(p, key, sizeof(key) - 1) == 0) {
            const char *v = p + sizeof(key) - 1;
            size_t vn = n - (sizeof(key) - 1);
            while (vn > 0 && (*v == ' ' || *v == '\t'))
                v++, vn--;
            while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                vn--;
            if (vn + 1 > sz)
                return -EINVAL;
            for (size_t i = 0; i < vn; i++)
                if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
                    return -EINVAL;
            memcpy(out, v, vn);
            out[vn] = '\0';
            return 0;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    return 0;
}
