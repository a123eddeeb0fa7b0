/*
 * Reading an upstream index's project page: PEP 691 JSON or PEP 503 HTML,
 * into a list of files. Everything in the page is hostile until checked:
 * sizes are capped, names and hashes validated, URLs resolved against the
 * page's own URL and limited to http(s).
 */
#ifndef WM_SIMPLEPAGE_H
#define WM_SIMPLEPAGE_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

#define WM_SIMPLEPAGE_MAX_FILES 100000
#define WM_URL_MAX              2048

typedef struct wm_upfile {
    char *filename; /* the last path segment of the URL, unescaped */
    char *url;      /* absolute, without the #fragment */
    int has_sha256; /* the page gave a sha256 (fragment or hashes) */
    uint8_t sha256[WM_SHA256_LEN];
    char *requires_python; /* NULL when absent; the raw, unescaped value */
    char *yanked;          /* NULL: not yanked; "" yanked without reason */
    int has_metadata;      /* core-metadata / data-core-metadata present */
    int metadata_sha256_known;
    uint8_t metadata_sha256[WM_SHA256_LEN];
    int is_wheel; /* filename ends in .whl and parses as a wheel name */
    uint64_t size; /* PEP 700 size (JSON pages only); 0: not given */
} wm_upfile;

typedef struct wm_simplepage {
    wm_upfile *files;
    size_t nfiles;
} wm_simplepage;

/* Parses BODY (LEN bytes, not NUL-terminated) of content type CTYPE (the
 * Content-Type header; "application/vnd.pypi.simple.v1+json" selects JSON,
 * anything else HTML), fetched from BASE_URL (used to resolve relative
 * links). Files with an unusable name or URL are skipped, not fatal.
 * Returns 0 and fills PAGE (free with wm_simplepage_free), or -EINVAL with
 * a static reason in *WHY when the page is not a simple page at all, or
 * -ENOMEM. */
int wm_simplepage_parse(const char *body, size_t len, const char *ctype,
                        const char *base_url, wm_simplepage *page,
                        const char **why);

/* Frees every file and zeroes PAGE. NULL-safe. */
void wm_simplepage_free(wm_simplepage *page);

#endif
