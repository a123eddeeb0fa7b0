/*
 * A growable byte buffer with a hard cap, in the manner of curl's dynbuf.
 * Storage doubles as it grows and never passes max + 1 bytes (room for the
 * terminating NUL). The first append that fails frees the data and marks the
 * buffer failed; every later append is refused, so a caller builds a whole
 * page or message and checks once, at wm_buf_steal.
 */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WM_BUF_MIN_ALLOC 64

void
wm_buf_init(wm_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->failed = 0;
}

void
wm_buf_free(wm_buf *b)
{
    free(b->data);
    wm_buf_init(b, b->max);
}

/* Frees what is held and marks the buffer failed. Always returns -ENOMEM. */
static int
buf_fail(wm_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 1;
    return -ENOMEM;
}

/* Makes room for ADD more bytes plus the NUL, within the cap. */
static int
buf_reserve(wm_buf *b, size_t add)
{
    size_t need, limit, newcap;
    char *p;

    if (b->failed)
        return -ENOMEM;
    if (add > b->max - b->len)
        return buf_fail(b);
    need = b->len + add + 1; /* len + add <= max, so this only wraps ... */
    if (need == 0)           /* ... when max is SIZE_MAX */
        return buf_fail(b);
    if (need <= b->cap)
        return 0;

    limit = b->max < SIZE_MAX ? b->max + 1 : SIZE_MAX;
    newcap = b->cap ? b->cap : WM_BUF_MIN_ALLOC;
    while (newcap < need && newcap <= SIZE_MAX / 2)
        newcap *= 2;
    if (newcap < need)
        newcap = need;
    if (newcap > limit)
        newcap = limit;

    p = realloc(b->data, newcap);
    if (p == NULL)
        return buf_fail(b);
    b->data = p;
    b->cap = newcap;
    return 0;
}

int
wm_buf_add(wm_buf *b, const void *data, size_t len)
{
    int rc;

    rc = buf_reserve(b, len);
    if (rc < 0)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int
wm_buf_adds(wm_buf *b, const char *s)
{
    return wm_buf_add(b, s, strlen(s));
}

int
wm_buf_vprintf(wm_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    int n;
    int rc;

    if (b->failed)
        return -ENOMEM;
    /* Measure, make room, then format: simple, at the cost of formatting
     * twice. */
    va_copy(again, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0) {
        va_end(again);
        return buf_fail(b);
    }
    rc = buf_reserve(b, (size_t)n);
    if (rc == 0) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
    return rc < 0 ? rc : 0;
}

int
wm_buf_printf(wm_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = wm_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int
wm_buf_add_html(wm_buf *b, const char *s)
{
    const char *run = s;
    const char *esc;
    int rc;

    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&':
            esc = "&amp;";
            break;
        case '<':
            esc = "&lt;";
            break;
        case '>':
            esc = "&gt;";
            break;
        case '"':
            esc = "&quot;";
            break;
        case '\'':
            esc = "&#39;";
            break;
        default:
            continue;
        }
        rc = wm_buf_add(b, run, (size_t)(s - run));
        if (rc < 0)
            return rc;
        rc = wm_buf_adds(b, esc);
        if (rc < 0)
            return rc;
        run = s + 1;
    }
    return wm_buf_add(b, run, (size_t)(s - run));
}

char *
wm_buf_steal(wm_buf *b, size_t *len)
{
    char *p;

    if (b->failed) {
        wm_buf_free(b);
        if (len != NULL)
            *len = 0;
        return NULL;
    }
    p = b->data;
    if (p == NULL) {
        p = calloc(1, 1); /* nothing appended yet: hand back "" */
        if (p == NULL) {
            if (len != NULL)
                *len = 0;
            return NULL;
        }
    }
    if (len != NULL)
        *len = b->len;
    wm_buf_init(b, b->max);
    return p;
}
