/*
 * libFuzzer target for common/wheelname: the input, as a C string, goes to
 * wm_wheelname_parse and wm_project_normalize. Whatever is accepted must
 * hold up: the filename is kept verbatim, the project is in normal form,
 * and normalising is idempotent.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wheelname.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what, const char *s)
{
    fprintf(stderr, "fuzz_wheelname: %s: \"%s\"\n", what, s);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    char norm[WM_PROJECT_MAX + 1], again[WM_PROJECT_MAX + 1];
    const char *why = "unset";
    wm_wheelname w;

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0'; /* an embedded NUL just ends the string early */

    if (wm_wheelname_parse(s, &w, &why) == 0) {
        if (why != NULL)
            die("accepted with a reason", s);
        if (strcmp(w.filename, s) != 0)
            die("filename not kept verbatim", s);
        if (strchr(s, '/') != NULL || strchr(s, '\\') != NULL)
            die("accepted a path separator", s);
        if (!wm_project_is_normalized(w.project))
            die("project not normalised", s);
    } else if (why == NULL) {
        die("refused without a reason", s);
    }

    if (wm_project_normalize(s, norm, sizeof(norm)) == 0) {
        if (!wm_project_is_normalized(norm))
            die("normalised name not in normal form", s);
        if (wm_project_normalize(norm, again, sizeof(again)) != 0 ||
            strcmp(norm, again) != 0)
            die("normalising is not idempotent", s);
    }
    free(s);
    return 0;
}
