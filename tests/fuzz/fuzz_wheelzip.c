/*
 * libFuzzer target for common/wheelzip: wm_wheelzip_check reads a path, so
 * the input is written to a memfd and checked through /proc/self/fd/N
 * (nothing touches the disk) as the wheel demo_pkg-1.0-py3-none-any.whl.
 * An accepted wheel gives its METADATA within the cap, whose
 * Requires-Python then comes out NUL-terminated and free of control
 * characters (or refused with ""); a refused one gives a reason and no
 * METADATA.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wheelname.h"
#include "wheelzip.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FILENAME "demo_pkg-1.0-py3-none-any.whl"

static int fd = -1;
static char path[64];
static wm_wheelname name;

static void
die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_wheelzip: %s: %s\n", what,
            detail != NULL ? detail : "(null)");
    abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (wm_wheelname_parse(FILENAME, &name, NULL) != 0)
        die("not a wheel name", FILENAME);
    fd = memfd_create("fuzz_wheelzip.whl", MFD_CLOEXEC);
    if (fd < 0)
        die("memfd_create failed", "");
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

static void
check_requires_python(const char *meta, size_t len)
{
    char out[64];

    memset(out, 'x', sizeof(out));
    if (wm_wheelzip_requires_python(meta, len, out, sizeof(out)) != 0) {
        if (out[0] != '\0')
            die("Requires-Python refused but not emptied", out);
        return;
    }
    if (memchr(out, '\0', sizeof(out)) == NULL)
        die("Requires-Python not NUL-terminated", "");
    for (const char *p = out; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            die("Requires-Python holds a control character", out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    char *meta = NULL;
    size_t meta_len = 99;
    int rc;

    if (ftruncate(fd, 0) != 0 ||
        (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        die("cannot write the memfd", path);

    rc = wm_wheelzip_check(path, &name, &meta, &meta_len, &why);
    if (rc == 0) {
        if (meta == NULL || meta_len > WM_METADATA_MAX)
            die("accepted without METADATA within the cap", why);
        check_requires_python(meta, meta_len);
        /* The header part alone, as a caller with a short buffer sees it. */
        check_requires_python(meta, meta_len / 2);
    } else {
        if (rc > 0)
            die("a positive error", why);
        if (why == NULL || why[0] == '\0')
            die("refused without a reason", why);
        if (meta != NULL || meta_len != 0)
            die("refused but returned METADATA", why);
    }
    free(meta);
    return 0;
}
