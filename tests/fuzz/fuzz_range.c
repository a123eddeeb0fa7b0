/*
 * libFuzzer target for wm_http_range (common/httpparse): the first 8 bytes
 * of the input are the body size (little endian; fewer bytes are zero
 * padded), the rest is the Range header as a C string. The answer must
 * agree with a plain reference parser of the grammar the header comment
 * promises, and an accepted range must lie within the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, const char *hdr, uint64_t body)
{
    fprintf(stderr, "fuzz_range: %s: \"%s\" on %llu bytes\n", what, hdr,
            (unsigned long long)body);
    abort();
}

/* A run of decimal digits at *P into *V, advancing *P. Returns 0, or -1
 * when there is none or it overflows 64 bits. */
static int
ref_digits(const char **p, uint64_t *v)
{
    const char *s = *p;

    *v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');

        if (*v > (UINT64_MAX - d) / 10)
            return -1;
        *v = *v * 10 + d;
    }
    *p = s;
    return 0;
}

/* The reference: "bytes=" then "-N" (N > 0), "A-" or "A-B" (B >= A), and
 * nothing else; A within the body; B and the suffix clamped to it. */
static int
ref_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
    uint64_t a, b;

    if (strncmp(h, "bytes=", 6) != 0 || size == 0)
        return -1;
    h += 6;
    if (*h == '-') {
        h++;
        if (ref_digits(&h, &b) != 0 || *h != '\0' || b == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 0;
    }
    if (ref_digits(&h, &a) != 0 || *h != '-' || a >= size)
        return -1;
    h++;
    if (*h == '\0') {
        b = size - 1;
    } else {
        if (ref_digits(&h, &b) != 0 || *h != '\0' || b < a)
            return -1;
        if (b >= size)
            b = size - 1;
    }
    *first = a;
    *last = b;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t body = 0, first = 0, last = 0, rfirst = 0, rlast = 0;
    size_t n = size < 8 ? size : 8;
    char *hdr;
    int rc, ref;

    for (size_t i = 0; i < n; i++)
        body |= (uint64_t)data[i] << (8 * i);
    /* An exact-size heap copy, so ASan sees any read past the end. */
    hdr = malloc(size - n + 1);
    if (hdr == NULL)
        return 0;
    memcpy(hdr, data + n, size - n);
    hdr[size - n] = '\0';

    rc = wm_http_range(hdr, body, &first, &last);
    ref = ref_range(hdr, body, &rfirst, &rlast);
    if (rc != 0 && rc != -1)
        die("neither 0 nor -1", hdr, body);
    if (rc != ref)
        die(rc == 0 ? "accepted what the grammar refuses"
                    : "refused what the grammar accepts",
            hdr, body);
    if (rc == 0) {
        if (first > last || last >= body)
            die("range outside the body", hdr, body);
        if (first != rfirst || last != rlast)
            die("range differs from the reference", hdr, body);
    }
    free(hdr);
    return 0;
}
