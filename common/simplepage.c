/*
 * An upstream index's project page, read into a list of files. PEP 691 JSON
 * goes through cJSON; PEP 503 HTML goes through a small tag scanner that
 * knows only what a simple page needs: start tags and their attributes
 * (quoted or not, names in any case), comments, end tags, the raw-text
 * elements whose content holds no tags, and the handful of character
 * references an index uses. Both paths end in add_file(), which resolves
 * the link against the page's URL (RFC 3986 section 5.2), takes the
 * filename from the link's last path segment, checks it and the hashes, and
 * copies the result into the page.
 *
 * The scanner works on the caller's bytes with an explicit end and never
 * looks past it; a tag cut off by the end of the body is dropped, as an
 * HTML parser does. Everything is one pass over the body (plus one copy of
 * each attribute value that is used), so a page of several megabytes with
 * thousands of files costs milliseconds. <base href> is not honoured: no
 * index in use emits it.
 */
#include "simplepage.h"
#include "wheelname.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CTYPE   "application/vnd.pypi.simple.v1+json"
#define NAME_MAX_LEN 255
#define VALUE_MAX    4096 /* requires-python, a yank reason */

typedef struct span {
    const char *p;
    size_t n;
    int set;
} span;

/* What add_file() needs to know about one file, in either format. The
 * strings are borrowed and NUL-terminated. */
typedef struct entry {
    const char *ref;             /* the link as written */
    const char *sha256_hex;      /* hashes.sha256 (JSON); NULL when none */
    const char *requires_python; /* NULL when absent */
    const char *yanked;          /* NULL when not yanked */
    int has_metadata;
    const char *metadata_sha256_hex; /* NULL when not given */
    uint64_t size;                   /* 0: not given */
} entry;

typedef struct parser {
    const char *base; /* the page's URL */
    wm_simplepage *page;
    size_t cap; /* allocated entries in page->files */
} parser;

/* A URL reference split as in RFC 3986 appendix B; absent parts have p ==
 * NULL, present but empty ones n == 0. */
typedef struct url_parts {
    span scheme, auth, path, query;
} url_parts;

typedef struct out_buf {
    char d[WM_URL_MAX + 1];
    size_t n;
    int over;
} out_buf;

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static int
lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int
is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
span_ieq(const char *p, size_t n, const char *lit)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (lit[i] == '\0' || lower((unsigned char)p[i]) != lit[i])
            return 0;
    }
    return lit[i] == '\0';
}

static int
hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes exactly 64 hex digits in HEX (NUL-terminated) into OUT, which is
 * left alone on failure. Returns 1 when it decoded. */
static int
sha256_from_hex(const char *hex, uint8_t out[WM_SHA256_LEN])
{
    uint8_t tmp[WM_SHA256_LEN];

    if (hex == NULL || wm_hex_decode(hex, tmp, sizeof(tmp)) != 0)
        return 0;
    memcpy(out, tmp, sizeof(tmp));
    return 1;
}

/* True when the version string S (N bytes) has major version 1, as PEP 629
 * and PEP 691 ask a client to check. */
static int
major_is_1(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && s[i] == '0')
        i++;
    if (i == n || s[i] != '1')
        return 0;
    i++;
    return i == n || s[i] == '.';
}

/* ---- URLs ---- */

static void
url_split(const char *s, size_t n, url_parts *u)
{
    size_t i = 0, start;

    memset(u, 0, sizeof(*u));
    while (i < n && s[i] != ':' && s[i] != '/' && s[i] != '?' && s[i] != '#')
        i++;
    if (i > 0 && i < n && s[i] == ':') {
        u->scheme = (span){s, i, 1};
        i++;
    } else {
        i = 0;
    }
    if (n - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
        i += 2;
        start = i;
        while (i < n && s[i] != '/' && s[i] != '?' && s[i] != '#')
            i++;
        u->auth = (span){s + start, i - start, 1};
    }
    start = i;
    while (i < n && s[i] != '?' && s[i] != '#')
        i++;
    u->path = (span){s + start, i - start, 1};
    if (i < n && s[i] == '?') {
        start = ++i;
        while (i < n && s[i] != '#')
            i++;
        u->query = (span){s + start, i - start, 1};
    }
}

static void
out_add(out_buf *o, const char *p, size_t n)
{
    if (o->over || n > WM_URL_MAX - o->n) {
        o->over = 1;
        return;
    }
    memcpy(o->d + o->n, p, n);
    o->n += n;
    o->d[o->n] = '\0';
}

/* Drops the last segment of the path written so far, from its '/' on,
 * stopping at the path's start MIN. */
static void
out_pop_segment(out_buf *o, size_t min)
{
    while (o->n > min && o->d[o->n - 1] != '/')
        o->n--;
    if (o->n > min)
        o->n--;
    o->d[o->n] = '\0';
}

static int
has_prefix(const char *p, size_t n, const char *lit)
{
    size_t k = strlen(lit);

    return n >= k && memcmp(p, lit, k) == 0;
}

static int
is_exactly(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* RFC 3986 section 5.2.4: appends path P (N bytes) to O with "." and ".."
 * segments removed. Linear: a pop only walks back over what one earlier
 * step wrote. */
static void
remove_dot_segments(out_buf *o, const char *p, size_t n)
{
    size_t min = o->n;

    while (n > 0) {
        if (has_prefix(p, n, "../")) {
            p += 3, n -= 3;
        } else if (has_prefix(p, n, "./") || has_prefix(p, n, "/./")) {
            p += 2, n -= 2;
        } else if (is_exactly(p, n, "/.")) {
            out_add(o, "/", 1);
            return;
        } else if (has_prefix(p, n, "/../")) {
            p += 3, n -= 3;
            out_pop_segment(o, min);
        } else if (is_exactly(p, n, "/..")) {
            out_pop_segment(o, min);
            out_add(o, "/", 1);
            return;
        } else if (is_exactly(p, n, ".") || is_exactly(p, n, "..")) {
            return;
        } else {
            size_t k = 1;
            while (k < n && p[k] != '/')
                k++;
            out_add(o, p, k);
            p += k, n -= k;
        }
    }
}

/* A link must be plain printable ASCII: spaces, controls and other bytes
 * belong percent-encoded, and a backslash is a path separator to some
 * clients. */
static int
url_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\')
            return 0;
    }
    return 1;
}

static int
is_http(const span *scheme)
{
    return scheme->p != NULL && (span_ieq(scheme->p, scheme->n, "http") ||
                                 span_ieq(scheme->p, scheme->n, "https"));
}

/* Resolves REF (N bytes, fragment allowed) against BASE, an absolute
 * http(s) URL, into O without the fragment; *PATH_START is where the path
 * begins in O. Returns 0, or -EINVAL when the result is not an http(s) URL
 * with a host or is over WM_URL_MAX. */
static int
url_resolve(const char *base, const char *ref, size_t n, out_buf *o,
            size_t *path_start)
{
    url_parts b, r;
    const span *scheme, *auth, *query;
    size_t i;

    url_split(base, strlen(base), &b);
    url_split(ref, n, &r);
    o->n = 0;
    o->over = 0;
    o->d[0] = '\0';
    if (r.scheme.p != NULL) {
        scheme = &r.scheme;
        auth = &r.auth;
        query = &r.query;
    } else {
        scheme = &b.scheme;
        auth = r.auth.p != NULL ? &r.auth : &b.auth;
        query = &r.query;
        if (r.auth.p == NULL && r.path.n == 0 && r.query.p == NULL)
            query = &b.query;
    }
    if (!is_http(scheme) || auth->p == NULL || auth->n == 0)
        return -EINVAL;
    for (i = 0; i < scheme->n; i++) {
        char c = (char)lower((unsigned char)scheme->p[i]);
        out_add(o, &c, 1);
    }
    out_add(o, "://", 3);
    out_add(o, auth->p, auth->n);
    *path_start = o->n;
    if (r.scheme.p != NULL || r.auth.p != NULL ||
        (r.path.n > 0 && r.path.p[0] == '/')) {
        remove_dot_segments(o, r.path.p, r.path.n);
    } else if (r.path.n == 0) {
        remove_dot_segments(o, b.path.p, b.path.n);
    } else {
        /* Merge: the base path up to its last '/', then the reference. */
        char merged[2 * WM_URL_MAX + 2];
        size_t k = b.path.n;

        while (k > 0 && b.path.p[k - 1] != '/')
            k--;
        if (b.path.n == 0) {
            merged[0] = '/';
            k = 1;
        } else {
            memcpy(merged, b.path.p, k);
        }
        if (r.path.n > sizeof(merged) - k)
            return -EINVAL;
        memcpy(merged + k, r.path.p, r.path.n);
        remove_dot_segments(o, merged, k + r.path.n);
    }
    if (query->p != NULL) {
        out_add(o, "?", 1);
        out_add(o, query->p, query->n);
    }
    return o->over ? -EINVAL : 0;
}

/* The base URL must itself be absolute http(s), with a host and no odd
 * bytes, or nothing relative can be resolved against it. */
static int
base_ok(const char *base)
{
    url_parts u;
    size_t n;

    if (base == NULL)
        return 0;
    n = strlen(base);
    if (n == 0 || n > WM_URL_MAX || !url_chars_ok(base, n))
        return 0;
    url_split(base, n, &u);
    return is_http(&u.scheme) && u.auth.p != NULL && u.auth.n > 0;
}

/* Percent-decodes S (N bytes) into OUT (N + 1 bytes); a '%' not followed
 * by two hex digits stays as it is. Returns the decoded length. */
static size_t
percent_decode(const char *s, size_t n, char *out)
{
    size_t i = 0, k = 0;

    while (i < n) {
        if (s[i] == '%' && n - i >= 3 &&
            hex_digit((unsigned char)s[i + 1]) >= 0 &&
            hex_digit((unsigned char)s[i + 2]) >= 0) {
            out[k++] = (char)(hex_digit((unsigned char)s[i + 1]) << 4 |
                              hex_digit((unsigned char)s[i + 2]));
            i += 3;
        } else {
            out[k++] = s[i++];
        }
    }
    out[k] = '\0';
    return k;
}

static int
filename_ok(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN || is_exactly(s, n, ".") ||
        is_exactly(s, n, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
            return 0;
    }
    return 1;
}

/* ---- the page ---- */

static void
upfile_free(wm_upfile *f)
{
    free(f->filename);
    free(f->url);
    free(f->requires_python);
    free(f->yanked);
}

void
wm_simplepage_free(wm_simplepage *page)
{
    if (page == NULL)
        return;
    for (size_t i = 0; i < page->nfiles; i++)
        upfile_free(&page->files[i]);
    free(page->files);
    page->files = NULL;
    page->nfiles = 0;
}

static char *
dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* The sha256 in a link's "#sha256=HEX" fragment, if it has one. REF is
 * N bytes. */
static int
fragment_sha256(const char *ref, size_t n, uint8_t out[WM_SHA256_LEN])
{
    const char *frag = memchr(ref, '#', n);
    char hex[WM_SHA256_HEX];
    size_t k;

    if (frag == NULL)
        return 0;
    frag++;
    k = n - (size_t)(frag - ref);
    if (k != 7 + 2 * WM_SHA256_LEN || memcmp(frag, "sha256=", 7) != 0)
        return 0;
    memcpy(hex, frag + 7, 2 * WM_SHA256_LEN);
    hex[2 * WM_SHA256_LEN] = '\0';
    return sha256_from_hex(hex, out);
}

/* Checks E and appends it to the page. A file that cannot be used (bad
 * link, bad name, over-long value) is skipped. Returns 0, -ENOMEM, or
 * -EINVAL when the page would hold more than WM_SIMPLEPAGE_MAX_FILES. */
static int
add_file(parser *ps, const entry *e)
{
    out_buf url;
    const char *ref = e->ref, *seg, *stop;
    size_t n = strlen(ref), path_start, fn_len;
    char fname[NAME_MAX_LEN * 3 + 1];
    wm_upfile f;
    wm_wheelname wn;

    while (n > 0 && is_space(ref[0]))
        ref++, n--;
    while (n > 0 && is_space(ref[n - 1]))
        n--;
    if (n > WM_URL_MAX || !url_chars_ok(ref, n))
        return 0;
    if (e->requires_python != NULL && strlen(e->requires_python) > VALUE_MAX)
        return 0;
    if (e->yanked != NULL && strlen(e->yanked) > VALUE_MAX)
        return 0;
    if (url_resolve(ps->base, ref, n, &url, &path_start) != 0)
        return 0;

    /* The filename is the last segment of the path, before any query. */
    stop = memchr(url.d + path_start, '?', url.n - path_start);
    if (stop == NULL)
        stop = url.d + url.n;
    seg = memrchr(url.d + path_start, '/', (size_t)(stop - url.d) - path_start);
    if (seg == NULL)
        return 0;
    seg++;
    if ((size_t)(stop - seg) > sizeof(fname) - 1)
        return 0;
    fn_len = percent_decode(seg, (size_t)(stop - seg), fname);
    if (!filename_ok(fname, fn_len))
        return 0;

    memset(&f, 0, sizeof(f));
    f.has_sha256 = sha256_from_hex(e->sha256_hex, f.sha256);
    if (!f.has_sha256)
        f.has_sha256 = fragment_sha256(ref, n, f.sha256);
    f.has_metadata = e->has_metadata != 0;
    if (f.has_metadata)
        f.metadata_sha256_known =
            sha256_from_hex(e->metadata_sha256_hex, f.metadata_sha256);
    f.is_wheel = wm_wheelname_parse(fname, &wn, NULL) == 0;
    f.size = e->size;

    if (ps->page->nfiles == WM_SIMPLEPAGE_MAX_FILES)
        return -EINVAL;
    if (ps->page->nfiles == ps->cap) {
        size_t cap = ps->cap == 0 ? 64 : ps->cap * 2;
        wm_upfile *files = reallocarray(ps->page->files, cap, sizeof(*files));
        if (files == NULL)
            return -ENOMEM;
        ps->page->files = files;
        ps->cap = cap;
    }
    f.filename = dup_n(fname, fn_len);
    f.url = dup_n(url.d, url.n);
    if (f.filename == NULL || f.url == NULL)
        goto nomem;
    if (e->requires_python != NULL) {
        f.requires_python = strdup(e->requires_python);
        if (f.requires_python == NULL)
            goto nomem;
    }
    if (e->yanked != NULL) {
        f.yanked = strdup(e->yanked);
        if (f.yanked == NULL)
            goto nomem;
    }
    ps->page->files[ps->page->nfiles++] = f;
    return 0;
nomem:
    upfile_free(&f);
    return -ENOMEM;
}

/* ---- PEP 691 JSON ---- */

/* Reads a core-metadata / dist-info-metadata value into E. Returns 1 when
 * it was usable, 0 when absent or null, -1 when of the wrong type. */
static int
json_metadata(const cJSON *v, entry *e)
{
    const cJSON *h;

    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsBool(v)) {
        e->has_metadata = cJSON_IsTrue(v);
        return 1;
    }
    if (!cJSON_IsObject(v))
        return -1;
    e->has_metadata = 1;
    h = cJSON_GetObjectItemCaseSensitive(v, "sha256");
    if (cJSON_IsString(h))
        e->metadata_sha256_hex = h->valuestring;
    return 1;
}

/* Fills E from one member of "files". Returns 0, or -1 when a key the
 * spec defines has the wrong type (the file is then skipped). */
static int
json_entry(const cJSON *file, entry *e)
{
    const cJSON *name, *url, *hashes, *rp, *yanked, *h;
    int md;

    memset(e, 0, sizeof(*e));
    if (!cJSON_IsObject(file))
        return -1;
    name = cJSON_GetObjectItemCaseSensitive(file, "filename");
    url = cJSON_GetObjectItemCaseSensitive(file, "url");
    if (!cJSON_IsString(name) || !cJSON_IsString(url))
        return -1;
    e->ref = url->valuestring;

    hashes = cJSON_GetObjectItemCaseSensitive(file, "hashes");
    if (hashes != NULL) {
        if (!cJSON_IsObject(hashes))
            return -1;
        h = cJSON_GetObjectItemCaseSensitive(hashes, "sha256");
        if (h != NULL && !cJSON_IsString(h))
            return -1;
        if (h != NULL)
            e->sha256_hex = h->valuestring;
    }

    rp = cJSON_GetObjectItemCaseSensitive(file, "requires-python");
    if (cJSON_IsString(rp))
        e->requires_python = rp->valuestring;
    else if (rp != NULL && !cJSON_IsNull(rp))
        return -1;

    yanked = cJSON_GetObjectItemCaseSensitive(file, "yanked");
    if (cJSON_IsString(yanked))
        e->yanked = yanked->valuestring;
    else if (cJSON_IsTrue(yanked))
        e->yanked = "";
    else if (yanked != NULL && !cJSON_IsFalse(yanked))
        return -1;

    /* PEP 700: the size in bytes, a whole number; anything else leaves it
     * unknown (it only caps the download). */
    h = cJSON_GetObjectItemCaseSensitive(file, "size");
    if (cJSON_IsNumber(h) && h->valuedouble >= 1 &&
        h->valuedouble <= 9007199254740992.0 &&
        (double)(uint64_t)h->valuedouble == h->valuedouble)
        e->size = (uint64_t)h->valuedouble;

    md = json_metadata(cJSON_GetObjectItemCaseSensitive(file, "core-metadata"),
                       e);
    if (md == 0)
        md = json_metadata(
            cJSON_GetObjectItemCaseSensitive(file, "dist-info-metadata"), e);
    return md < 0 ? -1 : 0;
}

static int
parse_json(parser *ps, const char *body, size_t len, const char **why)
{
    cJSON *root;
    const cJSON *meta, *ver, *files, *file;
    entry e;
    int rc = 0;

    root = cJSON_ParseWithLength(body, len);
    if (root == NULL) {
        *why = "not valid JSON";
        return -EINVAL;
    }
    if (!cJSON_IsObject(root)) {
        *why = "JSON page is not an object";
        rc = -EINVAL;
        goto out;
    }
    meta = cJSON_GetObjectItemCaseSensitive(root, "meta");
    ver = cJSON_GetObjectItemCaseSensitive(meta, "api-version");
    if (meta != NULL &&
        (!cJSON_IsObject(meta) || !cJSON_IsString(ver) ||
         !major_is_1(ver->valuestring, strlen(ver->valuestring)))) {
        *why = "unsupported meta.api-version";
        rc = -EINVAL;
        goto out;
    }
    files = cJSON_GetObjectItemCaseSensitive(root, "files");
    if (!cJSON_IsArray(files)) {
        *why = "JSON page has no \"files\" list";
        rc = -EINVAL;
        goto out;
    }
    cJSON_ArrayForEach(file, files)
    {
        if (json_entry(file, &e) != 0)
            continue;
        rc = add_file(ps, &e);
        if (rc != 0)
            break;
    }
    if (rc == -EINVAL)
        *why = "too many files";
out:
    cJSON_Delete(root);
    return rc;
}

/* ---- PEP 503 HTML ---- */

/* The attributes of one start tag that matter; the first of a name wins. */
typedef struct tag {
    span name;
    span href, requires_python, yanked, core_md, dist_md;
    span meta_name, content;
} tag;

static void
put_utf8(char *out, size_t *k, unsigned long cp)
{
    if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        cp = 0xfffd;
    if (cp < 0x80) {
        out[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*k)++] = (char)(0xc0 | cp >> 6);
        out[(*k)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*k)++] = (char)(0xe0 | cp >> 12);
        out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*k)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*k)++] = (char)(0xf0 | cp >> 18);
        out[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*k)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* Parses a numeric character reference at S ("&#...;", N bytes available).
 * Returns its length, or 0 when it is not one. */
static size_t
numeric_ref(const char *s, size_t n, unsigned long *cp)
{
    size_t i = 2;
    int base = 10, d, digits = 0;
    unsigned long v = 0;

    if (i < n && (s[i] == 'x' || s[i] == 'X')) {
        base = 16;
        i++;
    }
    while (i < n) {
        d = hex_digit((unsigned char)s[i]);
        if (d < 0 || d >= base)
            break;
        if (v <= 0x10ffff)
            v = v * (unsigned long)base + (unsigned long)d;
        digits++;
        i++;
    }
    if (digits == 0 || i == n || s[i] != ';')
        return 0;
    *cp = v;
    return i + 1;
}

/* Decodes character references in S (N bytes) into OUT, which has room for
 * N + 1 bytes: no reference decodes longer than it is written. Unknown or
 * malformed references stay as written. Returns the length, or -1 when S
 * holds a NUL byte. */
static long
entity_decode(const char *s, size_t n, char *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"&amp;", '&'},
                 {"&lt;", '<'},
                 {"&gt;", '>'},
                 {"&quot;", '"'},
                 {"&apos;", '\''}};
    size_t i = 0, k = 0, j, len;
    unsigned long cp;

    while (i < n) {
        if (s[i] == '\0')
            return -1;
        if (s[i] != '&') {
            out[k++] = s[i++];
            continue;
        }
        if (n - i >= 3 && s[i + 1] == '#') {
            len = numeric_ref(s + i, n - i, &cp);
            if (len > 0) {
                put_utf8(out, &k, cp);
                i += len;
                continue;
            }
        }
        for (j = 0; j < sizeof(named) / sizeof(named[0]); j++) {
            if (has_prefix(s + i, n - i, named[j].name))
                break;
        }
        if (j < sizeof(named) / sizeof(named[0])) {
            out[k++] = named[j].c;
            i += strlen(named[j].name);
        } else {
            out[k++] = s[i++];
        }
    }
    out[k] = '\0';
    return (long)k;
}

static void
keep_attr(tag *t, const char *name, size_t nlen, const char *v, size_t vlen)
{
    static const struct {
        const char *name;
        size_t off;
    } wanted[] = {
        {"href", offsetof(tag, href)},
        {"data-requires-python", offsetof(tag, requires_python)},
        {"data-yanked", offsetof(tag, yanked)},
        {"data-core-metadata", offsetof(tag, core_md)},
        {"data-dist-info-metadata", offsetof(tag, dist_md)},
        {"name", offsetof(tag, meta_name)},
        {"content", offsetof(tag, content)},
    };

    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        span *sp = (span *)((char *)t + wanted[i].off);
        if (span_ieq(name, nlen, wanted[i].name)) {
            if (!sp->set)
                *sp = (span){v, vlen, 1};
            return;
        }
    }
}

/* Reads the start tag whose name begins at P (just after '<') up to its
 * '>' into T. Returns the position after the '>', or NULL when the body
 * ends first. */
static const char *
scan_start_tag(const char *p, const char *end, tag *t)
{
    const char *name, *v;
    size_t nlen, vlen;

    memset(t, 0, sizeof(*t));
    name = p;
    while (p < end && !is_space(*p) && *p != '/' && *p != '>')
        p++;
    t->name = (span){name, (size_t)(p - name), 1};
    for (;;) {
        while (p < end && (is_space(*p) || *p == '/'))
            p++;
        if (p == end)
            return NULL;
        if (*p == '>')
            return p + 1;
        name = p++;
        while (p < end && !is_space(*p) && *p != '/' && *p != '>' && *p != '=')
            p++;
        nlen = (size_t)(p - name);
        while (p < end && is_space(*p))
            p++;
        v = p;
        vlen = 0;
        if (p < end && *p == '=') {
            p++;
            while (p < end && is_space(*p))
                p++;
            if (p == end)
                return NULL;
            if (*p == '"' || *p == '\'') {
                const char *close = memchr(p + 1, *p, (size_t)(end - p - 1));
                if (close == NULL)
                    return NULL;
                v = p + 1;
                vlen = (size_t)(close - v);
                p = close + 1;
            } else {
                v = p;
                while (p < end && !is_space(*p) && *p != '>')
                    p++;
                vlen = (size_t)(p - v);
            }
        }
        keep_attr(t, name, nlen, v, vlen);
    }
}

/* Finds "</NAME" (any case) followed by a space, '/' or '>' at or after P.
 * Returns its '<', or END. */
static const char *
find_end_tag(const char *p, const char *end, const span *name)
{
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        const char *q;

        if (lt == NULL)
            return end;
        q = lt + 2 + name->n;
        if (q < end && lt[1] == '/' &&
            (is_space(*q) || *q == '/' || *q == '>')) {
            size_t i;
            for (i = 0; i < name->n; i++) {
                if (lower((unsigned char)lt[2 + i]) !=
                    lower((unsigned char)name->p[i]))
                    break;
            }
            if (i == name->n)
                return lt;
        }
        p = lt + 1;
    }
    return end;
}

static int
is_raw_text(const span *name)
{
    return span_ieq(name->p, name->n, "script") ||
           span_ieq(name->p, name->n, "style") ||
           span_ieq(name->p, name->n, "title") ||
           span_ieq(name->p, name->n, "textarea");
}

/* Decodes attribute value V into the scratch space at *S, advancing it.
 * Returns the string, or NULL when V is absent or holds a NUL (in which
 * case *BAD is set). */
static const char *
decode_attr(const span *v, char **s, int *bad)
{
    char *out = *s;
    long k;

    if (!v->set)
        return NULL;
    k = entity_decode(v->p, v->n, out);
    if (k < 0) {
        *bad = 1;
        return NULL;
    }
    *s += k + 1;
    return out;
}

/* Turns one <a> into an entry, using SCRATCH (room for the tag's length
 * plus a few bytes) for the decoded values. */
static int
html_anchor(parser *ps, const tag *t, char *scratch)
{
    entry e;
    const char *md;
    int bad = 0;

    memset(&e, 0, sizeof(e));
    if (!t->href.set)
        return 0;
    e.ref = decode_attr(&t->href, &scratch, &bad);
    e.requires_python = decode_attr(&t->requires_python, &scratch, &bad);
    e.yanked = decode_attr(&t->yanked, &scratch, &bad);
    md =
        decode_attr(t->core_md.set ? &t->core_md : &t->dist_md, &scratch, &bad);
    if (bad)
        return 0;
    if (md != NULL) {
        e.has_metadata = 1;
        if (strncmp(md, "sha256=", 7) == 0)
            e.metadata_sha256_hex = md + 7;
    }
    return add_file(ps, &e);
}

static int
parse_html(parser *ps, const char *body, size_t len, const char **why)
{
    const char *p = body, *end = body + len, *next;
    char *scratch;
    tag t;
    int rc = 0;

    /* The decoded values of one tag never outgrow the tag itself. */
    scratch = malloc(len + 8);
    if (scratch == NULL)
        return -ENOMEM;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        size_t left;

        if (lt == NULL)
            break;
        left = (size_t)(end - lt);
        if (left >= 4 && memcmp(lt, "<!--", 4) == 0) {
            next = memmem(lt + 2, left - 2, "-->", 3);
            p = next != NULL ? next + 3 : end;
        } else if (left >= 2 &&
                   (lt[1] == '!' || lt[1] == '?' || lt[1] == '/')) {
            next = memchr(lt, '>', left);
            p = next != NULL ? next + 1 : end;
        } else if (left >= 2 && is_alpha(lt[1])) {
            next = scan_start_tag(lt + 1, end, &t);
            if (next == NULL)
                break;
            p = next;
            if (span_ieq(t.name.p, t.name.n, "a")) {
                rc = html_anchor(ps, &t, scratch);
                if (rc != 0)
                    break;
            } else if (span_ieq(t.name.p, t.name.n, "meta") &&
                       t.meta_name.set && t.content.set &&
                       span_ieq(t.meta_name.p, t.meta_name.n,
                                "pypi:repository-version") &&
                       !major_is_1(t.content.p, t.content.n)) {
                *why = "unsupported pypi:repository-version";
                rc = -EINVAL;
                goto out;
            } else if (is_raw_text(&t.name)) {
                p = find_end_tag(p, end, &t.name);
            }
        } else {
            p = lt + 1;
        }
    }
    if (rc == -EINVAL)
        *why = "too many files";
out:
    free(scratch);
    return rc;
}

/* ---- entry ---- */

static int
is_json_ctype(const char *ctype)
{
    size_t n;

    if (ctype == NULL)
        return 0;
    while (is_space(*ctype))
        ctype++;
    n = strcspn(ctype, ";");
    while (n > 0 && is_space(ctype[n - 1]))
        n--;
    return span_ieq(ctype, n, JSON_CTYPE);
}

int
wm_simplepage_parse(const char *body, size_t len, const char *ctype,
                    const char *base_url, wm_simplepage *page, const char **why)
{
    parser ps = {.base = base_url, .page = page, .cap = 0};
    const char *reason = NULL;
    int rc;

    memset(page, 0, sizeof(*page));
    if (!base_ok(base_url)) {
        reason = "base URL is not an absolute http(s) URL";
        rc = -EINVAL;
    } else if (body == NULL && len > 0) {
        reason = "no body";
        rc = -EINVAL;
    } else if (is_json_ctype(ctype)) {
        rc = parse_json(&ps, body != NULL ? body : "", len, &reason);
    } else {
        rc = parse_html(&ps, body != NULL ? body : "", len, &reason);
    }
    if (rc != 0) {
        wm_simplepage_free(page);
        if (rc == -ENOMEM)
            reason = "out of memory";
    }
    if (why != NULL)
        *why = reason;
    return rc;
}
