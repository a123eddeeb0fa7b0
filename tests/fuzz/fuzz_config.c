/*
 * libFuzzer target for common/config: wm_config_load reads only from a
 * path, so the input is written to a memfd and loaded through
 * /proc/self/fd/N (nothing touches the disk). An accepted config must keep
 * the invariants the header promises; a refused one must say why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
die(const char *what)
{
    fprintf(stderr, "fuzz_config: %s\n", what);
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    wm_config cfg;
    wm_buf errors;
    int rc;

    if (fd < 0) {
        fd = memfd_create("fuzz_config.json", MFD_CLOEXEC);
        if (fd < 0)
            die("memfd_create failed");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 ||
        (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        die("cannot write the memfd");

    wm_buf_init(&errors, 1 << 16);
    rc = wm_config_load(&cfg, path, &errors);
    if (rc == 0) {
        if (errors.len != 0)
            die("accepted with errors");
        if (cfg.map_size < cfg.max_size)
            die("map_size below max_size");
        for (size_t i = 0; i < cfg.nindexes; i++) {
            size_t n = strlen(cfg.indexes[i].url);

            if (n == 0 || cfg.indexes[i].url[n - 1] != '/')
                die("index URL without a trailing /");
        }
        wm_config_free(&cfg);
    } else if (errors.len == 0 && !errors.failed) {
        die("refused without an error line");
    }
    wm_buf_free(&errors);
    return 0;
}
