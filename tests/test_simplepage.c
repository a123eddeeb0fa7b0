/*
 * Unit tests for common/simplepage: PEP 691 JSON and PEP 503 HTML pages as
 * PyPI and its mirrors write them, link resolution against the page's URL,
 * hostile names, links and types that must be skipped, pages that are not
 * simple pages at all, every truncation of a sample page, and a large page
 * that must parse quickly.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "buf.h"
#include "simplepage.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

#define JSON "application/vnd.pypi.simple.v1+json"
#define HTML "text/html"
#define BASE "https://pypi.org/simple/pip/"

#define H1 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H1_UPPER                                                               \
    "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
#define H2 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define BADHEX                                                                 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg"

#define WHL   "pip-23.0.1-py3-none-any.whl"
#define SDIST "pip-23.0.1.tar.gz"
#define FILES "https://files.pythonhosted.org/packages/ab/cd/"

typedef struct want_file {
    const char *filename;
    const char *url;
    const char *sha256; /* hex, NULL for none */
    const char *requires_python;
    const char *yanked;
    int has_metadata;
    const char *metadata_sha256; /* hex, NULL when unknown */
    int is_wheel;
} want_file;

typedef struct page_case {
    const char *label;
    const char *ctype;
    const char *body;
    int rc;
    size_t nfiles;
    want_file files[4];
} page_case;

static void
want_str(const char *label, const char *field, const char *got,
         const char *want)
{
    if (want == NULL && got == NULL)
        return;
    if (want == NULL || got == NULL || strcmp(got, want) != 0)
        fail_msg("%s: %s is \"%s\", want \"%s\"", label, field,
                 got ? got : "(null)", want ? want : "(null)");
}

static void
want_int(const char *label, const char *field, int got, int want)
{
    if (got != want)
        fail_msg("%s: %s is %d, want %d", label, field, got, want);
}

static void
check_page(const page_case *c, const wm_simplepage *page)
{
    char hex[WM_SHA256_HEX];

    if (page->nfiles != c->nfiles)
        fail_msg("%s: %zu files, want %zu", c->label, page->nfiles, c->nfiles);
    for (size_t i = 0; i < c->nfiles; i++) {
        const want_file *w = &c->files[i];
        const wm_upfile *f = &page->files[i];

        want_str(c->label, "filename", f->filename, w->filename);
        want_str(c->label, "url", f->url, w->url);
        want_int(c->label, "has_sha256", f->has_sha256, w->sha256 != NULL);
        if (w->sha256 != NULL) {
            wm_hex_encode(f->sha256, WM_SHA256_LEN, hex);
            want_str(c->label, "sha256", hex, w->sha256);
        }
        want_str(c->label, "requires_python", f->requires_python,
                 w->requires_python);
        want_str(c->label, "yanked", f->yanked, w->yanked);
        want_int(c->label, "has_metadata", f->has_metadata, w->has_metadata);
        want_int(c->label, "metadata_sha256_known", f->metadata_sha256_known,
                 w->metadata_sha256 != NULL);
        if (w->metadata_sha256 != NULL) {
            wm_hex_encode(f->metadata_sha256, WM_SHA256_LEN, hex);
            want_str(c->label, "metadata_sha256", hex, w->metadata_sha256);
        }
        want_int(c->label, "is_wheel", f->is_wheel, w->is_wheel);
    }
}

static void
run_cases(const page_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const page_case *c = &cases[i];
        wm_simplepage page;
        const char *why = "unset";
        size_t len = strlen(c->body);
        /* An exact-size copy, so ASan sees any read past the end. */
        char *body = malloc(len > 0 ? len : 1);
        int rc;

        assert_non_null(body);
        memcpy(body, c->body, len);
        rc = wm_simplepage_parse(body, len, c->ctype, BASE, &page, &why);
        if (rc != c->rc)
            fail_msg("%s: rc %d (%s), want %d", c->label, rc, why ? why : "-",
                     c->rc);
        if (rc == 0) {
            assert_null(why);
            check_page(c, &page);
        } else {
            assert_non_null(why);
            assert_null(page.files);
            assert_int_equal(page.nfiles, 0);
        }
        wm_simplepage_free(&page);
        free(body);
    }
}

/* ---- JSON ---- */

static const page_case json_cases[] = {
    {"pypi page",
     JSON,
     "{\"meta\":{\"api-version\":\"1.1\",\"_last-serial\":1},\"name\":\"pip\","
     "\"files\":[{\"filename\":\"" WHL "\",\"url\":\"" FILES WHL "\","
     "\"hashes\":{\"sha256\":\"" H1 "\",\"md5\":\"00\"},"
     "\"requires-python\":\">=3.7\",\"yanked\":false,"
     "\"core-metadata\":{\"sha256\":\"" H2 "\"},"
     "\"dist-info-metadata\":{\"sha256\":\"" H2 "\"},\"size\":2055563,"
     "\"upload-time\":\"2023-02-17T18:31:51.123Z\",\"data-dist-info\":[1]},"
     "{\"filename\":\"" SDIST "\",\"url\":\"" FILES SDIST "\","
     "\"hashes\":{\"sha256\":\"" H2 "\"},\"requires-python\":null,"
     "\"yanked\":true,\"size\":1}],\"versions\":[\"23.0.1\"]}",
     0,
     2,
     {{WHL, FILES WHL, H1, ">=3.7", NULL, 1, H2, 1},
      {SDIST, FILES SDIST, H2, NULL, "", 0, NULL, 0}}},
    {"no hashes, no meta, metadata bool",
     JSON "; charset=utf-8",
     "{\"files\":[{\"filename\":\"" WHL "\",\"url\":\"" FILES WHL
     "\",\"core-metadata\":true,\"yanked\":\"broken wheel\"},"
     "{\"filename\":\"" WHL "\",\"url\":\"" FILES WHL
     "\",\"hashes\":{},\"core-metadata\":false}]}",
     0,
     2,
     {{WHL, FILES WHL, NULL, NULL, "broken wheel", 1, NULL, 1},
      {WHL, FILES WHL, NULL, NULL, NULL, 0, NULL, 1}}},
    {"dist-info-metadata fallback and preference",
     "Application/VND.PyPI.Simple.V1+JSON",
     "{\"meta\":{\"api-version\":\"1.0\"},\"files\":["
     "{\"filename\":\"a\",\"url\":\"a-1.0-py3-none-any.whl\","
     "\"dist-info-metadata\":{\"sha256\":\"" H1 "\"}},"
     "{\"filename\":\"b\",\"url\":\"b-1.0-py3-none-any.whl\","
     "\"dist-info-metadata\":true},"
     "{\"filename\":\"c\",\"url\":\"c-1.0-py3-none-any.whl\","
     "\"core-metadata\":false,\"dist-info-metadata\":true},"
     "{\"filename\":\"d\",\"url\":\"d-1.0-py3-none-any.whl\","
     "\"core-metadata\":null,\"dist-info-metadata\":{\"sha256\":\"" BADHEX
     "\"}}]}",
     0,
     4,
     {{"a-1.0-py3-none-any.whl", BASE "a-1.0-py3-none-any.whl", NULL, NULL,
       NULL, 1, H1, 1},
      {"b-1.0-py3-none-any.whl", BASE "b-1.0-py3-none-any.whl", NULL, NULL,
       NULL, 1, NULL, 1},
      {"c-1.0-py3-none-any.whl", BASE "c-1.0-py3-none-any.whl", NULL, NULL,
       NULL, 0, NULL, 1},
      {"d-1.0-py3-none-any.whl", BASE "d-1.0-py3-none-any.whl", NULL, NULL,
       NULL, 1, NULL, 1}}},
    {"relative urls",
     JSON,
     "{\"files\":["
     "{\"filename\":\"x\",\"url\":\"../../packages/ab/cd/" WHL "\"},"
     "{\"filename\":\"x\",\"url\":\"/packages/" SDIST "\"},"
     "{\"filename\":\"x\",\"url\":\"//mirror.example.com:8080/p/" WHL "\"},"
     "{\"filename\":\"x\",\"url\":\"http://h.example/" WHL "\"}]}",
     0,
     4,
     {{WHL, "https://pypi.org/packages/ab/cd/" WHL, NULL, NULL, NULL, 0, NULL,
       1},
      {SDIST, "https://pypi.org/packages/" SDIST, NULL, NULL, NULL, 0, NULL, 0},
      {WHL, "https://mirror.example.com:8080/p/" WHL, NULL, NULL, NULL, 0, NULL,
       1},
      {WHL, "http://h.example/" WHL, NULL, NULL, NULL, 0, NULL, 1}}},
    {"hashes against fragment",
     JSON,
     "{\"files\":["
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "#sha256=" H1 "\","
     "\"hashes\":{\"sha256\":\"" H2 "\"}},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "#sha256=" H1 "\","
     "\"hashes\":{}},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "\","
     "\"hashes\":{\"sha256\":\"" BADHEX "\"}},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "\","
     "\"hashes\":{\"sha256\":\"" H1_UPPER "\"}}]}",
     0,
     4,
     {{WHL, FILES WHL, H2, NULL, NULL, 0, NULL, 1},
      {WHL, FILES WHL, H1, NULL, NULL, 0, NULL, 1},
      {WHL, FILES WHL, NULL, NULL, NULL, 0, NULL, 1},
      {WHL, FILES WHL, H1, NULL, NULL, 0, NULL, 1}}},
    {"wrong types skip the file",
     JSON,
     "{\"files\":[\"" WHL "\",7,null,"
     "{\"url\":\"" FILES WHL "\"},"
     "{\"filename\":1,\"url\":\"" FILES WHL "\"},"
     "{\"filename\":\"x\",\"url\":[\"" FILES WHL "\"]},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "\",\"hashes\":[]},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "\",\"hashes\":{\"sha256\":1}},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "\",\"requires-python\":3},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "\",\"yanked\":1},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "\",\"core-metadata\":\"y\"},"
     "{\"filename\":\"x\",\"url\":\"" FILES WHL "\","
     "\"dist-info-metadata\":[]},"
     "{\"filename\":\"x\",\"url\":\"" FILES SDIST "\",\"size\":\"big\"}]}",
     0,
     1,
     {{SDIST, FILES SDIST, NULL, NULL, NULL, 0, NULL, 0}}},
    {"unusable links and names",
     JSON,
     "{\"files\":["
     "{\"filename\":\"x\",\"url\":\"ftp://h.example/" WHL "\"},"
     "{\"filename\":\"x\",\"url\":\"file:///etc/passwd\"},"
     "{\"filename\":\"x\",\"url\":\"javascript:alert(1)\"},"
     "{\"filename\":\"x\",\"url\":\"https:///" WHL "\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/dir/\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/a%2Fb.whl\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/a%5Cb.whl\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/a%00b.whl\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/a%0Ab.whl\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/%2e%2e\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/a b.whl\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/a\\\\b.whl\"},"
     "{\"filename\":\"x\",\"url\":\"https://h.example/a\\nb.whl\"},"
     "{\"filename\":\"x\",\"url\":\"\"},"
     "{\"filename\":\"x\",\"url\":\"  https://h.example/%2Bok.zip  \"}]}",
     0,
     1,
     {{"+ok.zip", "https://h.example/%2Bok.zip", NULL, NULL, NULL, 0, NULL,
       0}}},
    {"torch-style escaped local version, query kept",
     JSON,
     "{\"files\":[{\"filename\":\"torch-2.1.0+cpu-cp311-cp311-linux_x86_64."
     "whl\",\"url\":\"/whl/cpu/torch-2.1.0%2Bcpu-cp311-cp311-linux_x86_64.whl"
     "?token=a/b#sha256=" H1 "\"}]}",
     0,
     1,
     {{"torch-2.1.0+cpu-cp311-cp311-linux_x86_64.whl",
       "https://pypi.org/whl/cpu/torch-2.1.0%2Bcpu-cp311-cp311-linux_x86_64."
       "whl?token=a/b",
       H1, NULL, NULL, 0, NULL, 1}}},
    {"empty files",
     JSON,
     "{\"meta\":{\"api-version\":\"1.3\"},\"files\":[]}",
     0,
     0,
     {{0}}},
    {"garbage", JSON, "<html>not json</html>", -EINVAL, 0, {{0}}},
    {"empty body", JSON, "", -EINVAL, 0, {{0}}},
    {"truncated", JSON, "{\"files\":[{\"filename\":\"x\"", -EINVAL, 0, {{0}}},
    {"array", JSON, "[{\"files\":[]}]", -EINVAL, 0, {{0}}},
    {"string", JSON, "\"files\"", -EINVAL, 0, {{0}}},
    {"no files",
     JSON,
     "{\"meta\":{\"api-version\":\"1.0\"},\"name\":\"x\"}",
     -EINVAL,
     0,
     {{0}}},
    {"files not a list", JSON, "{\"files\":{\"a\":1}}", -EINVAL, 0, {{0}}},
    {"api-version 2",
     JSON,
     "{\"meta\":{\"api-version\":\"2.0\"},\"files\":[]}",
     -EINVAL,
     0,
     {{0}}},
    {"api-version 10",
     JSON,
     "{\"meta\":{\"api-version\":\"10.0\"},\"files\":[]}",
     -EINVAL,
     0,
     {{0}}},
    {"api-version not a string",
     JSON,
     "{\"meta\":{\"api-version\":1},\"files\":[]}",
     -EINVAL,
     0,
     {{0}}},
};

static void
test_json(void **state)
{
    (void)state;
    run_cases(json_cases, N_ELEMS(json_cases));
}

/* ---- HTML ---- */

#define PYPI_PAGE                                                              \
    "<!DOCTYPE html>\n<html>\n  <head>\n"                                      \
    "    <meta name=\"pypi:repository-version\" content=\"1.1\">\n"            \
    "    <title>Links for pip</title>\n  </head>\n  <body>\n"                  \
    "    <h1>Links for pip</h1>\n"                                             \
    "    <a href=\"" FILES WHL "#sha256=" H1 "\" "                             \
    "data-requires-python=\"&gt;=3.7\" "                                       \
    "data-dist-info-metadata=\"sha256=" H2 "\" "                               \
    "data-core-metadata=\"sha256=" H2 "\">" WHL "</a><br />\n"                 \
    "    <a href=\"" FILES SDIST "#sha256=" H2 "\" "                           \
    "data-requires-python=\"&gt;=3.7,&lt;4\" data-yanked=\"\">" SDIST          \
    "</a><br />\n"                                                             \
    "    <a href=\"../../packages/ab/cd/pip-22.0-py3-none-any.whl#sha256=" H1  \
    "\">pip-22.0-py3-none-any.whl</a><br />\n"                                 \
    "  </body>\n</html>\n<!--SERIAL 16888888-->\n"

static const page_case html_cases[] = {
    {"pypi page",
     HTML,
     PYPI_PAGE,
     0,
     3,
     {{WHL, FILES WHL, H1, ">=3.7", NULL, 1, H2, 1},
      {SDIST, FILES SDIST, H2, ">=3.7,<4", "", 0, NULL, 0},
      {"pip-22.0-py3-none-any.whl",
       "https://pypi.org/packages/ab/cd/pip-22.0-py3-none-any.whl", H1, NULL,
       NULL, 0, NULL, 1}}},
    {"quoting and case",
     "application/vnd.pypi.simple.v1+html",
     "<HTML><BODY>"
     "<A HREF='a-1.0-py3-none-any.whl#sha256=" H1 "' DATA-YANKED='it&#39;s "
     "&quot;bad&quot;'>a</A>"
     "<a\thref=b-1.0-py3-none-any.whl data-requires-python=&gt;=3.8 "
     "data-core-metadata=true>b</a>"
     "<a data-requires-python = \"&#62;=3.9\" href = \"c-1.0.zip\" "
     "data-yanked data-dist-info-metadata=\"md5=00\">c</a>"
     "</BODY></HTML>",
     0,
     3,
     {{"a-1.0-py3-none-any.whl", BASE "a-1.0-py3-none-any.whl", H1, NULL,
       "it's \"bad\"", 0, NULL, 1},
      {"b-1.0-py3-none-any.whl", BASE "b-1.0-py3-none-any.whl", NULL, ">=3.8",
       NULL, 1, NULL, 1},
      {"c-1.0.zip", BASE "c-1.0.zip", NULL, ">=3.9", "", 1, NULL, 0}}},
    {"comments, raw text, tags without href",
     HTML,
     "<!-- <a href=\"hidden-1.whl\">x</a> -->"
     "<!--><a href=\"a.zip\">a</a>"
     "<title><a href=\"title.zip\"></title>"
     "<script>if (a<b) document.write('<a href=\"s.zip\">')</script >"
     "<style>a > b {}</style>"
     "<a name=\"top\">anchor</a><a>no href</a><abbr href=\"abbr.zip\">"
     "<!DOCTYPE x><?xml x?></a junk>< a href=\"space.zip\">"
     "<a href=\"b.zip\" href=\"second.zip\">b</a>"
     "<!-- unterminated <a href=\"c.zip\">",
     0,
     2,
     {{"a.zip", BASE "a.zip", NULL, NULL, NULL, 0, NULL, 0},
      {"b.zip", BASE "b.zip", NULL, NULL, NULL, 0, NULL, 0}}},
    {"fragments and metadata forms",
     HTML,
     "<a href=\"a.zip#sha256=" BADHEX "\" data-core-metadata=\"sha256=" BADHEX
     "\">a</a>"
     "<a href=\"b.zip#md5=0123\" data-dist-info-metadata=\"true\" "
     "data-core-metadata=\"sha256=" H1 "\">b</a>"
     "<a href=\"c.zip#sha256=" H1 "x\" data-core-metadata=\"\">c</a>"
     "<a href=\"d.zip#sha256=" H1_UPPER
     "\" data-dist-info-metadata=\"sha256=" H2 "\">d</a>",
     0,
     4,
     {{"a.zip", BASE "a.zip", NULL, NULL, NULL, 1, NULL, 0},
      {"b.zip", BASE "b.zip", NULL, NULL, NULL, 1, H1, 0},
      {"c.zip", BASE "c.zip", NULL, NULL, NULL, 1, NULL, 0},
      {"d.zip", BASE "d.zip", H1, NULL, NULL, 1, H2, 0}}},
    {"entities in href, text differs from url",
     HTML,
     "<a href=\"https://h.example/dl/x-1.0-py3-none-any.whl?a=1&amp;b=2\">"
     "y-2.0.tar.gz</a>"
     "<a href=\"&#x2F;p&#47;z-1.0%2B1-py3-none-any.whl&#35;sha256=" H1 "\">"
     "z</a>"
     "<a href=\"q.zip&unknown;&amp\">q</a>",
     0,
     3,
     {{"x-1.0-py3-none-any.whl",
       "https://h.example/dl/x-1.0-py3-none-any.whl?a=1&b=2", NULL, NULL, NULL,
       0, NULL, 1},
      {"z-1.0+1-py3-none-any.whl",
       "https://pypi.org/p/z-1.0%2B1-py3-none-any.whl", H1, NULL, NULL, 0, NULL,
       1},
      {"q.zip&unknown;&amp", BASE "q.zip&unknown;&amp", NULL, NULL, NULL, 0,
       NULL, 0}}},
    {"hostile links skipped",
     HTML,
     "<a href=\"javascript:alert(1)\">x</a>"
     "<a href=\"data:text/plain,x.whl\">x</a>"
     "<a href=\"file:///etc/passwd\">x</a>"
     "<a href=\"https://h.example/a%2F..%2Fb.whl\">x</a>"
     "<a href=\"https://h.example/..%2f\">x</a>"
     "<a href=\"a&#10;b.whl\">x</a>"
     "<a href=\"a&#0;b.whl\">x</a>"
     "<a href=\"dir/\">x</a>"
     "<a href=\"\">x</a>"
     "<a href=\"#sha256=" H1 "\">x</a>"
     "<a href=\"?x=1\">x</a>"
     "<a href=\"caf\xc3\xa9.zip\">x</a>"
     "<a href=\"caf%C3%A9.zip\">y</a>",
     0,
     1,
     {{"caf\xc3\xa9.zip", BASE "caf%C3%A9.zip", NULL, NULL, NULL, 0, NULL, 0}}},
    {"not a page at all",
     HTML,
     "Just some text & stuff < > <<< &#;",
     0,
     0,
     {{0}}},
    {"json served as html",
     "text/html; charset=utf-8",
     "{\"files\":[]}",
     0,
     0,
     {{0}}},
    {"empty", HTML, "", 0, 0, {{0}}},
    {"repository-version 2",
     HTML,
     "<meta name=\"pypi:repository-version\" content=\"2.0\">"
     "<a href=\"a.zip\">a</a>",
     -EINVAL,
     0,
     {{0}}},
};

static void
test_html(void **state)
{
    (void)state;
    run_cases(html_cases, N_ELEMS(html_cases));
}

/* ---- resolution ---- */

typedef struct url_case {
    const char *base;
    const char *href;
    const char *url; /* NULL: skipped */
} url_case;

static const url_case url_cases[] = {
    {BASE, "x.whl", BASE "x.whl"},
    {BASE, "./x.whl", BASE "x.whl"},
    {BASE, "a/./b/../x.whl", BASE "a/x.whl"},
    {BASE, "../x.whl", "https://pypi.org/simple/x.whl"},
    {BASE, "../../../../../x.whl", "https://pypi.org/x.whl"},
    {BASE, "/x.whl", "https://pypi.org/x.whl"},
    {BASE, "/a/../../x.whl", "https://pypi.org/x.whl"},
    {BASE, "//other.example/x.whl", "https://other.example/x.whl"},
    {BASE, "HTTP://Other.example/x.whl", "http://Other.example/x.whl"},
    {BASE, "https://h.example/a/./b/../x.whl", "https://h.example/a/x.whl"},
    {BASE, "x.whl?v=1#frag", BASE "x.whl?v=1"},
    {"https://pypi.org/simple/pip", "x.whl", "https://pypi.org/simple/x.whl"},
    {"https://pypi.org/simple/pip/?q=1", "x.whl", BASE "x.whl"},
    {"https://pypi.org", "x.whl", "https://pypi.org/x.whl"},
    {"http://127.0.0.1:8080/root/pypi/+simple/pip/",
     "../../+f/abc/def/x.whl#sha256=" H1,
     "http://127.0.0.1:8080/root/pypi/+f/abc/def/x.whl"},
    {BASE, "ftp://h.example/x.whl", NULL},
    {BASE, "mailto:x@y.whl", NULL},
    {BASE, "https:x.whl", NULL},
    {BASE, "//", NULL},
    {BASE, "https://h.example/a\\x.whl", NULL},
};

static void
test_resolution(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(url_cases); i++) {
        const url_case *c = &url_cases[i];
        wm_simplepage page;
        wm_buf b;
        int rc;

        wm_buf_init(&b, 1 << 16);
        wm_buf_printf(&b, "<a href=\"%s\">x</a>", c->href);
        assert_false(b.failed);
        rc = wm_simplepage_parse(b.data, b.len, HTML, c->base, &page, NULL);
        assert_int_equal(rc, 0);
        if (c->url == NULL) {
            if (page.nfiles != 0)
                fail_msg("%s: resolved to %s", c->href, page.files[0].url);
        } else {
            if (page.nfiles != 1)
                fail_msg("%s against %s: skipped", c->href, c->base);
            assert_string_equal(page.files[0].url, c->url);
        }
        wm_simplepage_free(&page);
        wm_buf_free(&b);
    }
}

static void
test_bad_base(void **state)
{
    static const char *bases[] = {NULL,
                                  "",
                                  "/simple/pip/",
                                  "ftp://pypi.org/simple/",
                                  "https:///simple/",
                                  "https://pypi.org/sim ple/"};
    (void)state;
    for (size_t i = 0; i < N_ELEMS(bases); i++) {
        wm_simplepage page;
        const char *why = NULL;

        assert_int_equal(
            wm_simplepage_parse("", 0, HTML, bases[i], &page, &why), -EINVAL);
        assert_non_null(why);
    }
}

static void
test_long_values(void **state)
{
    wm_buf b;
    wm_simplepage page;
    (void)state;

    wm_buf_init(&b, 1 << 20);
    /* A URL of exactly WM_URL_MAX bytes is kept; one more is not. */
    wm_buf_adds(&b, "<a href=\"https://h.example/");
    for (size_t i = strlen("https://h.example/"); i < WM_URL_MAX - 4; i++)
        wm_buf_adds(&b, "d");
    wm_buf_adds(&b, "/x.z\">a</a><a href=\"https://h.example/");
    for (size_t i = strlen("https://h.example/"); i < WM_URL_MAX - 3; i++)
        wm_buf_adds(&b, "d");
    wm_buf_adds(&b, "/x.z\">b</a>");
    /* A 255-byte filename is kept; 256 is not. */
    wm_buf_adds(&b, "<a href=\"");
    for (int i = 0; i < 255; i++)
        wm_buf_adds(&b, "f");
    wm_buf_adds(&b, "\">c</a><a href=\"");
    for (int i = 0; i < 256; i++)
        wm_buf_adds(&b, "g");
    wm_buf_adds(&b, "\">d</a>");
    /* A link over the cap is skipped even if its dot segments would
     * shrink it below. */
    wm_buf_adds(&b, "<a href=\"");
    for (int i = 0; i < 1000; i++)
        wm_buf_adds(&b, "../");
    wm_buf_adds(&b, "e.zip\">e</a>");
    assert_false(b.failed);

    assert_int_equal(
        wm_simplepage_parse(b.data, b.len, HTML, BASE, &page, NULL), 0);
    assert_int_equal(page.nfiles, 2);
    assert_int_equal(strlen(page.files[0].url), WM_URL_MAX);
    assert_string_equal(page.files[0].filename, "x.z");
    assert_int_equal(strlen(page.files[1].filename), 255);
    wm_simplepage_free(&page);
    wm_buf_free(&b);
}

static void
test_nul_bytes(void **state)
{
    static const char body[] = "<a href=\"a\0b.zip\">x</a><a href=\"c.zip\">c"
                               "\0</a>";
    static const char json[] = "{\"files\":[{\"filename\":\"x\",\"url\":"
                               "\"a\\u0000/b.zip\"}]}";
    wm_simplepage page;
    int rc;
    (void)state;

    assert_int_equal(
        wm_simplepage_parse(body, sizeof(body) - 1, HTML, BASE, &page, NULL),
        0);
    assert_int_equal(page.nfiles, 1);
    assert_string_equal(page.files[0].filename, "c.zip");
    wm_simplepage_free(&page);

    /* Whatever cJSON makes of an escaped NUL, no name holds a '/'. */
    rc = wm_simplepage_parse(json, sizeof(json) - 1, JSON, BASE, &page, NULL);
    assert_true(rc == 0 || rc == -EINVAL);
    for (size_t i = 0; i < page.nfiles; i++)
        assert_null(strchr(page.files[i].filename, '/'));
    wm_simplepage_free(&page);
}

/* Every prefix of a page, in an exact-size buffer: no crash, no read past
 * the end, never more files than the whole page. */
static void
sweep_prefixes(const char *full, const char *ctype, size_t whole_files)
{
    size_t len = strlen(full);

    for (size_t n = 0; n <= len; n++) {
        char *body = malloc(n > 0 ? n : 1);
        wm_simplepage page;
        const char *why = NULL;
        int rc;

        assert_non_null(body);
        memcpy(body, full, n);
        rc = wm_simplepage_parse(body, n, ctype, BASE, &page, &why);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == 0)
            assert_true(page.nfiles <= whole_files);
        else
            assert_int_equal(page.nfiles, 0);
        wm_simplepage_free(&page);
        free(body);
    }
}

static void
test_truncation(void **state)
{
    (void)state;
    sweep_prefixes(PYPI_PAGE, HTML, 3);
    sweep_prefixes(html_cases[1].body, HTML, 3);
    sweep_prefixes(html_cases[2].body, HTML, 2);
    sweep_prefixes(html_cases[4].body, HTML, 3);
    sweep_prefixes(json_cases[0].body, JSON, 2);
}

/* A page of N anchors, torch-sized per file. */
static void
big_page(wm_buf *b, size_t n)
{
    wm_buf_init(b, (size_t)1 << 30);
    wm_buf_adds(b, "<!DOCTYPE html><html><body><h1>Links for torch</h1>\n");
    for (size_t i = 0; i < n; i++)
        wm_buf_printf(
            b,
            "<a href=\"/whl/cpu/torch-2.%zu.0%%2Bcpu-cp311-cp311-"
            "linux_x86_64.whl#sha256=" H1
            "\" data-requires-python=\"&gt;=3.8.0\">"
            "torch-2.%zu.0+cpu-cp311-cp311-linux_x86_64.whl</a><br/>\n",
            i, i);
    wm_buf_adds(b, "</body></html>\n");
    assert_false(b->failed);
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_big_page(void **state)
{
    wm_buf b;
    wm_simplepage page;
    double t0, dt;
    (void)state;

    big_page(&b, 5000);
    t0 = now_s();
    assert_int_equal(wm_simplepage_parse(b.data, b.len, HTML,
                                         "https://download.pytorch.org/whl/"
                                         "cpu/torch/",
                                         &page, NULL),
                     0);
    dt = now_s() - t0;
    if (dt > 0.5)
        fail_msg("5000 anchors took %.3f s", dt);
    assert_int_equal(page.nfiles, 5000);
    assert_string_equal(page.files[4999].filename,
                        "torch-2.4999.0+cpu-cp311-cp311-linux_x86_64.whl");
    assert_string_equal(page.files[4999].url,
                        "https://download.pytorch.org/whl/cpu/"
                        "torch-2.4999.0%2Bcpu-cp311-cp311-linux_x86_64.whl");
    assert_string_equal(page.files[4999].requires_python, ">=3.8.0");
    assert_true(page.files[4999].is_wheel);
    assert_true(page.files[4999].has_sha256);
    wm_simplepage_free(&page);
    wm_buf_free(&b);
}

static void
test_too_many(void **state)
{
    wm_buf b;
    wm_simplepage page;
    const char *why = NULL;
    (void)state;

    big_page(&b, WM_SIMPLEPAGE_MAX_FILES);
    assert_int_equal(
        wm_simplepage_parse(b.data, b.len, HTML, BASE, &page, &why), 0);
    assert_int_equal(page.nfiles, WM_SIMPLEPAGE_MAX_FILES);
    wm_simplepage_free(&page);
    assert_null(page.files);
    assert_int_equal(page.nfiles, 0);
    wm_buf_free(&b);

    big_page(&b, WM_SIMPLEPAGE_MAX_FILES + 1);
    assert_int_equal(
        wm_simplepage_parse(b.data, b.len, HTML, BASE, &page, &why), -EINVAL);
    assert_string_equal(why, "too many files");
    assert_null(page.files);
    assert_int_equal(page.nfiles, 0);
    wm_buf_free(&b);
}

static void
test_page_free(void **state)
{
    wm_simplepage page = {0};
    (void)state;

    wm_simplepage_free(NULL);
    wm_simplepage_free(&page);
    wm_simplepage_free(&page);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),        cmocka_unit_test(test_html),
        cmocka_unit_test(test_resolution),  cmocka_unit_test(test_bad_base),
        cmocka_unit_test(test_long_values), cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_truncation),  cmocka_unit_test(test_big_page),
        cmocka_unit_test(test_too_many),    cmocka_unit_test(test_page_free),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
