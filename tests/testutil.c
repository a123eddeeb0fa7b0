/* Helpers shared by the unit tests; see testutil.h. */
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

static char tmpdir[256];

int
tu_tmpdir_create(const char *name)
{
    int n = snprintf(tmpdir, sizeof(tmpdir), "/tmp/%s.XXXXXX", name);

    if (n < 0 || (size_t)n >= sizeof(tmpdir))
        return -1;
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

const char *
tu_tmpdir(void)
{
    return tmpdir;
}

/* nftw callback: removes one entry, children before their directory. */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int
tu_tmpdir_remove(void)
{
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
tu_tmp_path(const char *base)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    int n = snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, base);

    assert_true(n > 0 && (size_t)n < sizeof(path[0]));
    return p;
}

void
tu_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(close(fd), 0);
}

char *
tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long size;

    if (f == NULL) {
        buf = calloc(1, 1);
        assert_non_null(buf);
        if (len != NULL)
            *len = 0;
        return buf;
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size >= 0);
    rewind(f);
    buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    if (len != NULL)
        *len = (size_t)size;
    return buf;
}
