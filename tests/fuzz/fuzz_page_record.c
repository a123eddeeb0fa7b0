/*
 * libFuzzer target for the page cache's record decoder
 * (wm_pagecache_record_decode, node/pagecache), then what the cache does
 * with a decoded record when a project is first asked for: parse its body
 * as a page of its content type against its base URL. An accepted record
 * starts with its magic, its strings are NUL-terminated in their buffers
 * (NULL when empty) and its body is the input's tail; a refused page has
 * a reason.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagecache.h"
#include "simplepage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HEAD (2 + 8 + 5 * 2) /* magic, fetched_at, five string lengths */

static void
die(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_page_record: %s (input of %zu bytes)\n", what,
            size);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char bufs[5][WM_PAGE_RECORD_STR];
    wm_page_record r;
    wm_simplepage page;
    const char *why = NULL;
    int rc;

    rc = wm_pagecache_record_decode(data, size, &r, bufs);
    if (rc != 0 && rc != -EBADMSG)
        die("neither 0 nor -EBADMSG", size);
    if (rc != 0)
        return 0;
    if (size < HEAD || memcmp(data, "P2", 2) != 0)
        die("accepted without the magic or the head", size);
    if (r.body_len > size - HEAD ||
        r.body != (const char *)data + (size - r.body_len))
        die("the body is not the input's tail", size);
    for (int i = 0; i < 5; i++) {
        if (memchr(bufs[i], '\0', WM_PAGE_RECORD_STR) == NULL)
            die("a string not NUL-terminated", size);
        if (r.strs[i] != (bufs[i][0] != '\0' ? bufs[i] : NULL))
            die("a string neither its buffer nor NULL when empty", size);
    }

    /* What load() in node/pagecache.c does next (the route check aside). */
    if (r.strs[0] == NULL || r.strs[2] == NULL)
        return 0;
    rc = wm_simplepage_parse(r.body, r.body_len,
                             r.strs[1] != NULL ? r.strs[1] : "", r.strs[2],
                             &page, &why);
    if (rc != 0 && why == NULL)
        die("a page refused without a reason", size);
    wm_simplepage_free(&page);
    return 0;
}
