/*
 * Accept and Range. Accept is read range by range: "type/subtype" and
 * parameters separated by ';', of which only q matters here (a number
 * from 0 to 1 with at most three decimals; anything else refuses the
 * range). Range takes exactly one range, as every client of an index
 * sends.
 */
#include "httpparse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPACES " \t"

/* Parses a q value: "0", "0.5", "1", "1.000". Returns the value times
 * 1000, or -1. */
static int
parse_q(const char *p, size_t n)
{
    int v = 0, digits = 0;

    if (n == 0 || (p[0] != '0' && p[0] != '1'))
        return -1;
    v = (p[0] - '0') * 1000;
    if (n == 1)
        return v;
    if (p[1] != '.' || n > 5)
        return -1;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        digits++;
        v += (p[i] - '0') * (digits == 1 ? 100 : digits == 2 ? 10 : 1);
    }
    return v > 1000 ? -1 : v;
}

/* How well the media range R (RLEN bytes) matches TYPE: 3 when it names
 * it, 2 by its subtype wildcard, 1 as the everything wildcard, 0 not at
 * all. */
static int
match(const char *r, size_t rlen, const char *type)
{
    const char *slash = memchr(r, '/', rlen);
    size_t main_len, tlen = strlen(type);
    const char *tslash = strchr(type, '/');

    if (slash == NULL || tslash == NULL)
        return 0;
    main_len = (size_t)(slash - r);
    if (rlen == 3 && memcmp(r, "*/*", 3) == 0)
        return 1;
    if (rlen == main_len + 2 && r[main_len + 1] == '*')
        return main_len == (size_t)(tslash - type) &&
                       strncasecmp(r, type, main_len) == 0
                   ? 2
                   : 0;
    return rlen == tlen && strncasecmp(r, type, tlen) == 0 ? 3 : 0;
}

int
wm_http_accept(const char *accept, const char *const *offered, size_t n)
{
    int q[16], spec[16], best = -1;

    if (n == 0 || n > 16)
        return -1;
    if (accept == NULL || accept[strspn(accept, SPACES)] == '\0')
        return 0;
    for (size_t i = 0; i < n; i++)
        q[i] = 0, spec[i] = 0;
    for (const char *p = accept; *p != '\0';) {
        size_t len = strcspn(p, ","), rlen;
        const char *end = p + len, *semi, *r;
        int rq = 1000;

        r = p + strspn(p, SPACES);
        if (r > end)
            r = end;
        semi = memchr(r, ';', (size_t)(end - r));
        rlen = (size_t)((semi != NULL ? semi : end) - r);
        while (rlen > 0 && strchr(SPACES, r[rlen - 1]) != NULL)
            rlen--;
        for (const char *a = semi; a != NULL && a < end;) {
            const char *next = memchr(a + 1, ';', (size_t)(end - a - 1));
            const char *v = a + 1 + strspn(a + 1, SPACES);
            size_t vlen = (size_t)((next != NULL ? next : end) - v);
            while (vlen > 0 && strchr(SPACES, v[vlen - 1]) != NULL)
                vlen--;
            if (vlen >= 2 && (v[0] == 'q' || v[0] == 'Q') && v[1] == '=')
                rq = parse_q(v + 2, vlen - 2);
            a = next;
        }
        for (size_t i = 0; i < n && rq >= 0; i++) {
            int m = match(r, rlen, offered[i]);
            if (m > spec[i]) { /* the most specific range decides */
                spec[i] = m;
                q[i] = rq;
            }
        }
        p = *end == ',' ? end + 1 : end;
    }
    for (size_t i = 0; i < n; i++)
        if (spec[i] > 0 && q[i] > 0 && (best < 0 || q[i] > q[best]))
            best = (int)i;
    return best;
}

/* A run of digits into *V. Returns the end, or NULL (none, or overflow). */
static const char *
digits(const char *p, unsigned long long *v)
{
    char *end;

    if (*p < '0' || *p > '9')
        return NULL;
    errno = 0;
    *v = strtoull(p, &end, 10);
    return errno != 0 ? NULL : end;
}

int
wm_http_range(const char *hdr, uint64_t size, uint64_t *first,
              uint64_t *last)
{
    unsigned long long a, b;
    const char *p;

    if (strncmp(hdr, "bytes=", 6) != 0 || size == 0)
        return -1;
    hdr += 6;
    if (*hdr == '-') { /* the last N bytes */
        p = digits(hdr + 1, &b);
        if (p == NULL || *p != '\0' || b == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 0;
    }
    p = digits(hdr, &a);
    if (p == NULL || *p != '-' || a >= size)
        return -1;
    if (p[1] == '\0') {
        b = size - 1;
    } else {
        p = digits(p + 1, &b);
        if (p == NULL || *p != '\0' || b < a)
            return -1;
        if (b >= size)
            b = size - 1;
    }
    *first = a;
    *last = b;
    return 0;
}
