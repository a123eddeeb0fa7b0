/*
 * libFuzzer target for wm_identity_load_trusted (common/identity), which
 * reads a trusted_keys file from a path: the input is written to a memfd
 * and read through /proc/self/fd/N (nothing touches the disk). An accepted
 * file gives exactly its key lines, each a valid key written in the input;
 * a refused one gives no keys and a reason that names the file.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hash.h"
#include "identity.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

static void
die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_trusted_keys: %s: %s\n", what, detail);
    abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (wm_identity_init() != 0)
        die("cannot initialise libsodium", "");
    fd = memfd_create("fuzz_trusted_keys", MFD_CLOEXEC);
    if (fd < 0)
        die("memfd_create failed", "");
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

/* Whether the hex of KEY is written in DATA (any case). */
static int
written(const uint8_t *data, size_t size, const uint8_t key[WM_PUBKEY_LEN])
{
    char hex[2 * WM_PUBKEY_LEN + 1];
    size_t n = 2 * WM_PUBKEY_LEN;

    wm_hex_encode(key, WM_PUBKEY_LEN, hex);
    for (size_t i = 0; i + n <= size; i++)
        if (strncasecmp((const char *)data + i, hex, n) == 0)
            return 1;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t(*keys)[WM_PUBKEY_LEN] = NULL;
    uint8_t curve[32];
    size_t n = 99, lines = 0;
    char why[512] = "";
    int rc;

    if (ftruncate(fd, 0) != 0 ||
        (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        die("cannot write the memfd", path);
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';

    rc = wm_identity_load_trusted(path, &keys, &n, why, sizeof(why));
    if (rc == 0) {
        if (why[0] != '\0')
            die("accepted with a reason", why);
        if ((n == 0) != (keys == NULL))
            die("key count and array disagree", "");
        if (n > lines + 1)
            die("more keys than lines", "");
        for (size_t i = 0; i < n; i++) {
            if (wm_identity_curve_pub(keys[i], curve) != 0)
                die("accepted an invalid key", "");
            if (!written(data, size, keys[i]))
                die("a key that is not in the file", "");
        }
    } else {
        if (keys != NULL || n != 0)
            die("refused but returned keys", why);
        if (strncmp(why, path, strlen(path)) != 0 &&
            strcmp(why, "out of memory") != 0)
            die("a reason that does not name the file", why);
    }
    free(keys);
    return 0;
}
