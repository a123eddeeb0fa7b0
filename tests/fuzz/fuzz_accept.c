/*
 * libFuzzer target for wm_http_accept (common/httpparse): the input, as a
 * C string, is the Accept header, negotiated against the node's own offer
 * (node/http.c) and two shorter lists. The answer must index the offer or
 * be -1; a header of nothing but spaces takes the first offer; and adding
 * the everything wildcard with q=0 as a last range must change nothing (it
 * is the least specific range, so it decides no type another range
 * matched, and with q=0 it picks none).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const node_offer[] = {
    "text/html",
    "application/vnd.pypi.simple.v1+html",
    "application/vnd.pypi.simple.latest+html",
    "application/vnd.pypi.simple.v1+json",
    "application/vnd.pypi.simple.latest+json",
};
static const char *const json_first[] = {
    "application/vnd.pypi.simple.v1+json",
    "text/html",
};
static const char *const one[] = {"text/plain"};

static void
die(const char *what, const char *accept)
{
    fprintf(stderr, "fuzz_accept: %s: \"%s\"\n", what, accept);
    abort();
}

static void
check(const char *accept, const char *with_none, const char *const *offer,
      size_t n)
{
    int i = wm_http_accept(accept, offer, n);

    if (i < -1 || i >= (int)n)
        die("index outside the offer", accept);
    if (accept[strspn(accept, " \t")] == '\0') {
        if (i != 0)
            die("an empty header does not take the first offer", accept);
        return;
    }
    if (wm_http_accept(with_none, offer, n) != i)
        die("a trailing */*;q=0 changed the answer", accept);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char none[] = ",*/*;q=0";
    /* Exact-size heap copies, so ASan sees any read past the end. */
    char *accept = malloc(size + 1);
    char *with_none = malloc(size + sizeof(none));
    size_t len;

    if (accept == NULL || with_none == NULL) {
        free(accept);
        free(with_none);
        return 0;
    }
    memcpy(accept, data, size);
    accept[size] = '\0'; /* an embedded NUL just ends the header early */
    len = strlen(accept);
    memcpy(with_none, accept, len);
    memcpy(with_none + len, none, sizeof(none));

    check(accept, with_none, node_offer,
          sizeof(node_offer) / sizeof(node_offer[0]));
    check(accept, with_none, json_first,
          sizeof(json_first) / sizeof(json_first[0]));
    check(accept, with_none, one, 1);
    if (wm_http_accept(NULL, one, 1) != 0)
        die("a NULL header does not take the first offer", "(null)");
    free(accept);
    free(with_none);
    return 0;
}
