/*
 * Helpers shared by the unit tests: a per-program temporary directory, paths
 * inside it, and whole-file writes and reads. Failures are cmocka assertions.
 */
#ifndef WM_TESTUTIL_H
#define WM_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Creates the directory /tmp/NAME.XXXXXX for this program; 0 or -1. */
int tu_tmpdir_create(const char *name);

/* The directory made by tu_tmpdir_create. */
const char *tu_tmpdir(void);

/* Removes the temporary directory and everything below it; 0 or -1. */
int tu_tmpdir_remove(void);

/* BASE inside the temporary directory. The result lives in one of four
 * static buffers, so up to four paths may be held at once. */
const char *tu_tmp_path(const char *base);

/* Replaces the file at PATH by LEN bytes of DATA with exactly MODE (despite
 * umask). */
void tu_write_file(const char *path, const void *data, size_t len,
                   mode_t mode);

/* Reads the whole file at PATH into a NUL-terminated buffer the caller
 * frees; *LEN (if not NULL) gets its size. A missing file reads as "". */
char *tu_read_file(const char *path, size_t *len);

#endif
