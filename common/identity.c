/*
 * Node identity on libsodium: an Ed25519 key kept as its 32-byte seed in a
 * one-line text file with mode 0600. The secret half lives in sodium's
 * guarded memory and is wiped on destroy.
 */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"

#define KEY_PREFIX "wheelmesh-ed25519 "

struct wm_identity {
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

int
wm_identity_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

/* The key gets pages of its own, locked (not swapped, where the memlock
 * limit allows) and left out of core dumps, and is wiped when freed. Not
 * sodium_malloc: the wheelmesh binary replaces it (node/curveheap.c). */
static size_t
page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);

    return page > 0 ? (size_t)page : 4096;
}

/* The identity's size, rounded up to whole pages. */
static size_t
identity_pages(void)
{
    size_t p = page_size();

    return (sizeof(wm_identity) + p - 1) / p * p;
}

static wm_identity *
identity_alloc(void)
{
    size_t size = identity_pages();
    void *mem = NULL;

    if (posix_memalign(&mem, page_size(), size) != 0)
        return NULL;
    memset(mem, 0, size);
    (void)sodium_mlock(mem, size); /* also MADV_DONTDUMP */
    return mem;
}

wm_identity *
wm_identity_generate(void)
{
    wm_identity *id = identity_alloc();

    if (id != NULL)
        crypto_sign_keypair(id->pk, id->sk);
    return id;
}

wm_identity *
wm_identity_load(const char *path, const char **why)
{
    char line[128];
    uint8_t seed[crypto_sign_SEEDBYTES];
    struct stat st;
    wm_identity *id = NULL;
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = "cannot read the key file";
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *why = "the key is not a regular file";
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        *why = "the key file is readable by others (chmod 600 it)";
        goto out;
    }
    n = read(fd, line, sizeof(line) - 1);
    if (n < 0) {
        *why = "cannot read the key file";
        goto out;
    }
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncmp(line, KEY_PREFIX, strlen(KEY_PREFIX)) != 0 ||
        wm_hex_decode(line + strlen(KEY_PREFIX), seed, sizeof(seed)) != 0) {
        *why = "not a wheelmesh key file";
        goto out;
    }
    id = identity_alloc();
    if (id == NULL) {
        *why = "out of memory";
        goto out;
    }
    crypto_sign_seed_keypair(id->pk, id->sk, seed);
out:
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(line, sizeof(line));
    close(fd);
    return id;
}

int
wm_identity_save(const wm_identity *id, const char *path)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    char hex[2 * sizeof(seed) + 1];
    int fd, rc = 0;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    crypto_sign_ed25519_sk_to_seed(seed, id->sk);
    wm_hex_encode(seed, sizeof(seed), hex);
    if (dprintf(fd, KEY_PREFIX "%s\n", hex) < 0 || fsync(fd) != 0)
        rc = -EIO;
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(hex, sizeof(hex));
    close(fd);
    if (rc != 0)
        unlink(path);
    return rc;
}

wm_identity *
wm_identity_load_or_create(const char *path, const char **why)
{
    wm_identity *id;

    if (access(path, F_OK) == 0)
        return wm_identity_load(path, why);
    id = wm_identity_generate();
    if (id == NULL) {
        *why = "out of memory";
        return NULL;
    }
    if (wm_identity_save(id, path) != 0) {
        *why = "cannot write the key file";
        wm_identity_destroy(&id);
    }
    return id;
}

void
wm_identity_destroy(wm_identity **id)
{
    if (id == NULL || *id == NULL)
        return;
    sodium_munlock(*id, identity_pages()); /* wipes, then unlocks */
    free(*id);
    *id = NULL;
}

const uint8_t *
wm_identity_pubkey(const wm_identity *id)
{
    return id->pk;
}

void
wm_identity_pubkey_hex(const wm_identity *id, char out[WM_PUBKEY_HEX])
{
    wm_hex_encode(id->pk, sizeof(id->pk), out);
}

void
wm_identity_sign(const wm_identity *id, const void *msg, size_t len,
                 uint8_t sig[WM_SIG_LEN])
{
    crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

int
wm_identity_verify(const uint8_t pubkey[WM_PUBKEY_LEN], const void *msg,
                   size_t len, const uint8_t sig[WM_SIG_LEN])
{
    return crypto_sign_verify_detached(sig, msg, len, pubkey) == 0 ? 0
                                                                   : -EBADMSG;
}

void
wm_identity_curve(const wm_identity *id, uint8_t pk[32], uint8_t sk[32])
{
    /* Our own key was made by libsodium: conversion cannot fail. */
    if (crypto_sign_ed25519_pk_to_curve25519(pk, id->pk) != 0)
        memset(pk, 0, 32);
    crypto_sign_ed25519_sk_to_curve25519(sk, id->sk);
}

int
wm_identity_curve_pub(const uint8_t ed_pk[WM_PUBKEY_LEN], uint8_t out[32])
{
    return crypto_sign_ed25519_pk_to_curve25519(out, ed_pk) == 0 ? 0 : -EINVAL;
}

int
wm_identity_load_trusted(const char *path, uint8_t (**keys)[WM_PUBKEY_LEN],
                         size_t *n, char *why, size_t whysz)
{
    uint8_t(*list)[WM_PUBKEY_LEN] = NULL;
    size_t count = 0, cap = 0, lineno = 0;
    char line[1024];
    FILE *f = fopen(path, "re");
    int rc = 0;

    *keys = NULL;
    *n = 0;
    if (f == NULL) {
        snprintf(why, whysz, "%s: %s", path, strerror(errno));
        return -errno;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line + strspn(line, " \t");
        size_t len = strcspn(p, " \t\r\n#");
        uint8_t key[WM_PUBKEY_LEN], curve[32];

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(why, whysz, "%s:%zu: line too long", path, lineno);
            rc = -EINVAL;
            break;
        }
        if (len == 0) /* blank or comment */
            continue;
        if (len != 2 * WM_PUBKEY_LEN) {
            snprintf(why, whysz, "%s:%zu: expected a 64-hex-digit key", path,
                     lineno);
            rc = -EINVAL;
            break;
        }
        p[len] = '\0';
        if (wm_hex_decode(p, key, sizeof(key)) != 0 ||
            wm_identity_curve_pub(key, curve) != 0) {
            snprintf(why, whysz, "%s:%zu: not a valid public key", path,
                     lineno);
            rc = -EINVAL;
            break;
        }
        if (count == cap) {
            size_t more = cap ? 2 * cap : 16;
            void *grown = realloc(list, more * sizeof(*list));
            if (grown == NULL) {
                rc = -ENOMEM;
                snprintf(why, whysz, "out of memory");
                break;
            }
            list = grown;
            cap = more;
        }
        memcpy(list[count++], key, WM_PUBKEY_LEN);
    }
    fclose(f);
    if (rc != 0) {
        free(list);
        return rc;
    }
    *keys = list;
    *n = count;
    return 0;
}

void
wm_random_bytes(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

uint64_t
wm_keyed_hash64(const uint8_t key[16], const void *data, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    uint64_t h = 0;

    crypto_shorthash(out, data, len, key);
    for (size_t i = 0; i < sizeof(h); i++)
        h |= (uint64_t)out[i] << (8 * i);
    return h;
}
