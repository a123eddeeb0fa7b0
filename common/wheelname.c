/*
 * Wheel filename parsing and PEP 503 project names. Every name that arrives
 * from pip, a peer, upstream or a PUT passes through here before it becomes
 * part of a path, a store key or a page, so the checks are deliberately
 * stricter than pip's own regular expression: a fixed character set per
 * component, no "..", no leading dot, nothing outside printable ASCII, and a
 * length cap checked before the string is walked any further.
 */
#include "wheelname.h"

#include <errno.h>
#include <string.h>

#define WHL_SUFFIX     ".whl"
#define WHL_SUFFIX_LEN 4

/* Wheel filenames hold at most 6 dash-separated components. */
#define WHL_MAX_PARTS 6

static int
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char
to_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* A component [S, S + LEN) of characters in [A-Za-z0-9_.] plus EXTRA, that
 * starts and ends with a letter or digit. */
static int
component_ok(const char *s, size_t len, const char *extra)
{
    size_t i;

    if (len == 0 || !is_alnum(s[0]) || !is_alnum(s[len - 1]))
        return 0;
    for (i = 0; i < len; i++) {
        if (is_alnum(s[i]) || s[i] == '_' || s[i] == '.')
            continue;
        if (extra != NULL && strchr(extra, s[i]) != NULL)
            continue;
        return 0;
    }
    return 1;
}

/* Counts occurrences of C in [S, S + LEN). */
static size_t
count_char(const char *s, size_t len, char c)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++)
        if (s[i] == c)
            n++;
    return n;
}

/* Copies [S, S + LEN) into OUT (size OUTSZ) as a string. The caller has
 * checked that it fits. S may be OUT itself (a caller re-parsing
 * w.filename into w). */
static void
copy_part(char *out, size_t outsz, const char *s, size_t len)
{
    if (len >= outsz)
        len = outsz - 1;
    memmove(out, s, len);
    out[len] = '\0';
}

/* Rejects any byte that cannot be in a wheel filename, naming the worst
 * offence first. Returns NULL when every byte is acceptable. */
static const char *
check_bytes(const char *s, size_t len)
{
    size_t i;
    unsigned char c;

    for (i = 0; i < len; i++) {
        c = (unsigned char)s[i];
        if (c == '/' || c == '\\')
            return "path separator in name";
    }
    if (strstr(s, "..") != NULL)
        return "\"..\" in name";
    for (i = 0; i < len; i++) {
        c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return "control character in name";
        if (c == ' ')
            return "space in name";
        if (c >= 0x80)
            return "non-ASCII byte in name";
        if (!is_alnum((char)c) && strchr("_.+!-", c) == NULL)
            return "invalid character in name";
    }
    if (s[0] == '.')
        return "leading dot in name";
    return NULL;
}

int
wm_wheelname_parse(const char *filename, wm_wheelname *out, const char **why)
{
    const char *reason = NULL;
    const char *part[WHL_MAX_PARTS];
    size_t plen[WHL_MAX_PARTS];
    const char *p, *stem_end, *dash;
    size_t len, nparts, i, tag0;
    int has_build;
    static const char *const empty_why[2][WHL_MAX_PARTS] = {
        {"empty distribution name", "empty version", "empty python tag",
         "empty abi tag", "empty platform tag", ""},
        {"empty distribution name", "empty version", "empty build tag",
         "empty python tag", "empty abi tag", "empty platform tag"},
    };

    if (filename == NULL) {
        reason = "no name";
        goto err;
    }
    len = strnlen(filename, WM_WHEELNAME_MAX + 1);
    if (len == 0) {
        reason = "empty name";
        goto err;
    }
    if (len > WM_WHEELNAME_MAX) {
        reason = "name too long";
        goto err;
    }
    reason = check_bytes(filename, len);
    if (reason != NULL)
        goto err;
    if (len <= WHL_SUFFIX_LEN || memcmp(filename + len - WHL_SUFFIX_LEN,
                                        WHL_SUFFIX, WHL_SUFFIX_LEN) != 0) {
        reason = "not a .whl file";
        goto err;
    }

    /* Split the stem on '-'. */
    stem_end = filename + len - WHL_SUFFIX_LEN;
    nparts = 0;
    p = filename;
    for (;;) {
        dash = memchr(p, '-', (size_t)(stem_end - p));
        if (nparts == WHL_MAX_PARTS) {
            reason = "too many components";
            goto err;
        }
        part[nparts] = p;
        plen[nparts] =
            dash != NULL ? (size_t)(dash - p) : (size_t)(stem_end - p);
        nparts++;
        if (dash == NULL)
            break;
        p = dash + 1;
    }
    switch (nparts) {
    case 1:
        reason = "missing version";
        goto err;
    case 2:
        reason = "missing python tag";
        goto err;
    case 3:
        reason = "missing abi tag";
        goto err;
    case 4:
        reason = "missing platform tag";
        goto err;
    default:
        break;
    }
    has_build = nparts == 6;
    for (i = 0; i < nparts; i++) {
        if (plen[i] == 0) {
            reason = empty_why[has_build][i];
            goto err;
        }
    }

    /* Distribution name: must normalise, and fit. */
    if (plen[0] > WM_PROJECT_MAX) {
        reason = "distribution name too long";
        goto err;
    }
    copy_part(out->dist, sizeof(out->dist), part[0], plen[0]);
    if (!component_ok(part[0], plen[0], NULL) ||
        wm_project_normalize(out->dist, out->project, sizeof(out->project)) <
            0) {
        reason = "invalid distribution name";
        goto err;
    }

    /* Version: PEP 440 normalised versions start with a digit (an epoch
     * too); at most one epoch mark and one local-version mark. */
    if (!is_digit(part[1][0]) || !component_ok(part[1], plen[1], "+!") ||
        count_char(part[1], plen[1], '!') > 1 ||
        count_char(part[1], plen[1], '+') > 1) {
        reason = "invalid version";
        goto err;
    }
    copy_part(out->version, sizeof(out->version), part[1], plen[1]);

    if (has_build) {
        if (!is_digit(part[2][0])) {
            reason = "build tag must start with a digit";
            goto err;
        }
        if (!component_ok(part[2], plen[2], NULL)) {
            reason = "invalid build tag";
            goto err;
        }
        copy_part(out->build, sizeof(out->build), part[2], plen[2]);
    } else {
        out->build[0] = '\0';
    }

    tag0 = has_build ? 3 : 2;
    if (!component_ok(part[tag0], plen[tag0], NULL)) {
        reason = "invalid python tag";
        goto err;
    }
    if (!component_ok(part[tag0 + 1], plen[tag0 + 1], NULL)) {
        reason = "invalid abi tag";
        goto err;
    }
    if (!component_ok(part[tag0 + 2], plen[tag0 + 2], NULL)) {
        reason = "invalid platform tag";
        goto err;
    }
    copy_part(out->python, sizeof(out->python), part[tag0], plen[tag0]);
    copy_part(out->abi, sizeof(out->abi), part[tag0 + 1], plen[tag0 + 1]);
    copy_part(out->platform, sizeof(out->platform), part[tag0 + 2],
              plen[tag0 + 2]);
    copy_part(out->filename, sizeof(out->filename), filename, len);
    if (why != NULL)
        *why = NULL;
    return 0;

err:
    memset(out, 0, sizeof(*out));
    if (why != NULL)
        *why = reason;
    return -EINVAL;
}

int
wm_project_normalize(const char *name, char *out, size_t outsz)
{
    size_t len, i, o = 0;
    char c;

    if (outsz == 0)
        return -EINVAL;
    out[0] = '\0';
    if (name == NULL)
        return -EINVAL;
    len = strnlen(name, WM_PROJECT_MAX + 1);
    if (len == 0 || len > WM_PROJECT_MAX)
        return -EINVAL;
    if (!is_alnum(name[0]) || !is_alnum(name[len - 1]))
        return -EINVAL;
    for (i = 0; i < len; i++) {
        c = name[i];
        if (c == '-' || c == '_' || c == '.') {
            /* A run of separators becomes one '-'. */
            if (out[o - 1] == '-') /* o > 0: name[0] is alphanumeric */
                continue;
            c = '-';
        } else if (is_alnum(c)) {
            c = to_lower(c);
        } else {
            goto err;
        }
        if (o + 1 >= outsz)
            goto err;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;

err:
    out[0] = '\0';
    return -EINVAL;
}

int
wm_project_is_normalized(const char *name)
{
    char norm[WM_PROJECT_MAX + 1];

    if (wm_project_normalize(name, norm, sizeof(norm)) < 0)
        return 0;
    return strcmp(norm, name) == 0;
}
