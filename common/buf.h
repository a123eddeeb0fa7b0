/*
 * A growable byte buffer with a hard size cap, for pages and messages.
 * Init cannot fail; appends fail cleanly once the cap would be passed, and
 * the buffer then stays failed (wm_buf_failed) so callers check once at the
 * end instead of after every append.
 */
#ifndef WM_BUF_H
#define WM_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct wm_buf {
    char *data; /* NUL-terminated while not failed; owned */
    size_t len;
    size_t cap; /* allocated */
    size_t max; /* hard cap on len */
    int failed;
} wm_buf;

/* Sets up an empty buffer that may grow to MAX bytes. Allocates nothing. */
void wm_buf_init(wm_buf *b, size_t max);

/* Frees the data; the buffer is empty and usable again afterwards. */
void wm_buf_free(wm_buf *b);

/* Appends LEN bytes. Returns 0, or -ENOMEM (over the cap or out of memory),
 * after which the buffer is failed and ignores further appends. */
int wm_buf_add(wm_buf *b, const void *data, size_t len);
int wm_buf_adds(wm_buf *b, const char *s);
int wm_buf_printf(wm_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int wm_buf_vprintf(wm_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Appends S with &, <, >, " and ' escaped for HTML text and attributes. */
int wm_buf_add_html(wm_buf *b, const char *s);

/* Hands the data to the caller (free() it) and resets the buffer.
 * Returns NULL when the buffer failed. */
char *wm_buf_steal(wm_buf *b, size_t *len);

#endif
