/*
 * Reading wheels (libzip): checks that a file is a well-formed zip whose
 * .dist-info matches its filename, and extracts the core metadata (PEP 658).
 */
#ifndef WM_WHEELZIP_H
#define WM_WHEELZIP_H

#include <stddef.h>

#include "wheelname.h"

#define WM_METADATA_MAX (16u << 20) /* a METADATA bigger than this is hostile  \
                                     */

/* Opens the wheel at PATH, whose filename parsed as NAME, and checks that:
 * it is a zip whose central directory is consistent; it holds exactly one
 * "<dist>-<version>.dist-info/" directory whose name matches NAME (the
 * distribution compared after normalising "-", "_", "." and case, the version
 * compared after the same escaping the filename uses); that directory holds
 * METADATA, WHEEL and RECORD; no entry name is absolute or holds "..".
 * On success returns 0 and the METADATA bytes in *META (malloc'd, caller
 * frees) and *META_LEN. On failure returns -EINVAL with a static one-line
 * reason in *WHY, e.g. "not a zip file", "truncated zip", "dist-info
 * foo-1.0.dist-info does not match the filename", "missing METADATA". */
int wm_wheelzip_check(const char *path, const wm_wheelname *name, char **meta,
                      size_t *meta_len, const char **why);

/* One piece of a wheel in memory. */
typedef struct wm_wheelzip_part {
    const void *data;
    size_t len;
} wm_wheelzip_part;

/* wm_wheelzip_check on a wheel held in memory as the N PARTS in order
 * (a stored wheel's chunks, say), which must stay valid until it returns;
 * they are neither copied nor changed. */
int wm_wheelzip_check_parts(const wm_wheelzip_part *parts, size_t n,
                            const wm_wheelname *name, char **meta,
                            size_t *meta_len, const char **why);

/* The Requires-Python field of the METADATA bytes META (LEN bytes), into
 * OUT (room for SZ, NUL-terminated; "" when absent). Returns 0, or -EINVAL
 * when the value does not fit or holds control characters (OUT is then
 * ""). Only the header part (up to the first empty line) is read. */
int wm_wheelzip_requires_python(const char *meta, size_t len, char *out,
                                size_t sz);

#endif
