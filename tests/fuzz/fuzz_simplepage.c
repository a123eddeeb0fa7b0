/*
 * libFuzzer target for common/simplepage: the input is parsed as a PEP 503
 * HTML page and as a PEP 691 JSON page against a fixed base URL, and once
 * more as HTML with its first line taken as the base URL (to reach the URL
 * resolution with odd bases). Every file of an accepted page must have a
 * name and an absolute http(s) URL, and is_wheel must agree with
 * wm_wheelname_parse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simplepage.h"
#include "wheelname.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE       "https://files.example.org/simple/pkg/"
#define JSON_CTYPE "application/vnd.pypi.simple.v1+json"

static void
die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_simplepage: %s: \"%s\"\n", what,
            detail != NULL ? detail : "(null)");
    abort();
}

static void
check_page(const wm_simplepage *page)
{
    wm_wheelname w;

    for (size_t i = 0; i < page->nfiles; i++) {
        const wm_upfile *f = &page->files[i];

        if (f->filename == NULL || f->url == NULL)
            die("file without a name or URL", f->url);
        if (strncmp(f->url, "http://", 7) != 0 &&
            strncmp(f->url, "https://", 8) != 0)
            die("URL not http(s)", f->url);
        if (strchr(f->url, '#') != NULL)
            die("URL keeps its fragment", f->url);
        if (f->is_wheel && wm_wheelname_parse(f->filename, &w, NULL) != 0)
            die("is_wheel but not a wheel name", f->filename);
    }
}

static void
parse(const char *body, size_t len, const char *ctype, const char *base)
{
    wm_simplepage page;
    const char *why = NULL;
    int rc;

    rc = wm_simplepage_parse(body, len, ctype, base, &page, &why);
    if (rc == 0)
        check_page(&page);
    else if (why == NULL)
        die("refused without a reason", ctype);
    else if (page.files != NULL || page.nfiles != 0)
        die("refused but left files", why);
    wm_simplepage_free(&page);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan sees any read past the end. */
    char *body = malloc(size ? size : 1);
    const char *nl;

    if (body == NULL)
        return 0;
    memcpy(body, data, size);
    parse(body, size, "text/html", BASE);
    parse(body, size, JSON_CTYPE, BASE);

    nl = memchr(body, '\n', size < 512 ? size : 512);
    if (nl != NULL) {
        size_t blen = (size_t)(nl - body);
        char *base = malloc(blen + 1);

        if (base != NULL) {
            memcpy(base, body, blen);
            base[blen] = '\0';
            parse(nl + 1, size - blen - 1, "text/html", base);
            free(base);
        }
    }
    free(body);
    return 0;
}
