/*
 * Request headers that the HTTP front has to understand itself, parsed
 * strictly: Accept (content negotiation, RFC 9110 12.5.1) and Range
 * (single byte ranges, RFC 9110 14.2). Pure functions on strings that
 * come from clients: every number is checked, nothing is trusted.
 */
#ifndef WM_HTTPPARSE_H
#define WM_HTTPPARSE_H

#include <stddef.h>
#include <stdint.h>

/* Picks from OFFERED (N media types such as "text/html", in the server's
 * order of preference for ties) the one ACCEPT ranks highest. A type's q
 * comes from the most specific range that matches it: the type itself,
 * then its subtype wildcard, then the everything wildcard; q=0 refuses.
 * A NULL or empty ACCEPT takes the first.
 * Returns its index, or -1 when ACCEPT accepts none of them. */
int wm_http_accept(const char *accept, const char *const *offered, size_t n);

/* Parses one "bytes=FIRST-LAST", "bytes=FIRST-" or "bytes=-SUFFIX" range
 * against a body of SIZE bytes into [*FIRST, *LAST] (LAST clamped to the
 * end). Returns 0, or -1 when the header is malformed, holds several
 * ranges, or none of it lies within the body. */
int wm_http_range(const char *hdr, uint64_t size, uint64_t *first,
                  uint64_t *last);

#endif
