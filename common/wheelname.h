/*
 * Wheel filenames and project names, checked before they go anywhere near a
 * path, a key or a page.
 *
 * A wheel filename is {name}-{version}(-{build})?-{python}-{abi}-{platform}.whl
 * (PEP 427 / the binary distribution format spec). Every component is
 * non-empty, starts and ends with a letter or digit and is made of
 * [A-Za-z0-9_.] (the version may also hold '+' and '!'; the version and the
 * build tag start with a digit); the whole name is at most WM_WHEELNAME_MAX
 * bytes. Separators, "..", NUL, control characters and anything outside
 * those sets are rejected.
 */
#ifndef WM_WHEELNAME_H
#define WM_WHEELNAME_H

#include <stddef.h>

#define WM_WHEELNAME_MAX 255
#define WM_PROJECT_MAX   128

typedef struct wm_wheelname {
    char filename[WM_WHEELNAME_MAX + 1];
    char project[WM_PROJECT_MAX + 1]; /* PEP 503-normalised name */
    char dist[WM_PROJECT_MAX + 1];    /* name exactly as in the filename */
    char version[WM_WHEELNAME_MAX + 1];
    char build[WM_WHEELNAME_MAX + 1];  /* "" when absent */
    char python[WM_WHEELNAME_MAX + 1]; /* e.g. "py3" or "cp311.cp312" */
    char abi[WM_WHEELNAME_MAX + 1];
    char platform[WM_WHEELNAME_MAX + 1];
} wm_wheelname;

/* Parses and validates FILENAME (a bare name, no directory) into OUT.
 * Returns 0, or -EINVAL with a static, human-readable reason in *WHY
 * (may be NULL) such as "missing platform tag". */
int wm_wheelname_parse(const char *filename, wm_wheelname *out,
                       const char **why);

/* Writes the PEP 503 normalised form of NAME (lowercase, runs of "-", "_"
 * and "." become one "-") into OUT (size OUTSZ). Returns 0, or -EINVAL when
 * NAME is empty, too long, or holds anything but [A-Za-z0-9._-], or does not
 * start and end with a letter or digit. */
int wm_project_normalize(const char *name, char *out, size_t outsz);

/* True when NAME is already in normalised form (so no redirect is needed). */
int wm_project_is_normalized(const char *name);

#endif
