/*
 * A main() for the fuzz targets in the ordinary build, where there is no
 * libFuzzer: it feeds every file named on the command line, or every
 * regular file of every directory named (in name order, dot files
 * skipped), to the target's LLVMFuzzerTestOneInput, after calling its
 * LLVMFuzzerInitialize when it has one. ctest runs it over each committed
 * corpus (fuzz_replay_<target>), so a seed that makes a target abort, or
 * a sanitizer complain in the ASan+UBSan pass, fails the suite.
 *
 * Each input is an exact-size heap copy, so a read past its end is caught
 * by AddressSanitizer as libFuzzer's would be. Naming nothing, or
 * directories with no file in them, is a failure: a corpus that went
 * missing must not pass as an empty one.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Reads PATH into a malloc'd buffer of exactly its size (1 byte for an
 * empty file, with *LEN 0). Returns NULL with errno set on failure. */
static uint8_t *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rbe");
    uint8_t *data = NULL;
    struct stat sb;

    if (f == NULL)
        return NULL;
    if (fstat(fileno(f), &sb) != 0)
        goto out;
    *len = (size_t)sb.st_size;
    data = malloc(*len > 0 ? *len : 1);
    if (data == NULL)
        goto out;
    if (*len > 0 && fread(data, 1, *len, f) != *len) {
        free(data);
        data = NULL;
        errno = EIO;
    }
out:
    fclose(f);
    return data;
}

/* Runs the target on the file PATH. Returns 0, or -1 when it cannot be
 * read. */
static int
run_file(const char *path)
{
    size_t len = 0;
    uint8_t *data = read_file(path, &len);

    if (data == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

static int
skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Runs the target on every regular file of DIR. Returns how many, or -1
 * on an error. */
static int
run_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, skip_dot, alphasort), ran = 0;

    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat sb;
        int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);

        free(names[i]);
        if (ran < 0 || len >= (int)sizeof(path) || stat(path, &sb) != 0 ||
            !S_ISREG(sb.st_mode))
            continue;
        if (run_file(path) != 0)
            ran = -1;
        else
            ran++;
    }
    free(names);
    return ran;
}

int
main(int argc, char **argv)
{
    int total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        int n;

        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        n = S_ISDIR(sb.st_mode) ? run_dir(argv[i])
                                : (run_file(argv[i]) == 0 ? 1 : -1);
        if (n < 0)
            return 1;
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    printf("replay: %d inputs, no failure\n", total);
    return 0;
}
