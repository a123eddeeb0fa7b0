/*
 * libzmq's CURVE asks libsodium for guarded memory (sodium_allocarray:
 * mmap, mprotect and mlock, then munmap) for the plaintext of every message
 * it encrypts or decrypts, a chunk of 1 MiB included, while the same bytes
 * live in ordinary ZeroMQ messages before and after: the guard protects
 * nothing there, and its system calls took over half the CPU of a 64-node
 * join on the build machine (perf: munmap, mprotect; the join took 14.6 s
 * with them, 4 s without). These definitions take the place of
 * libsodium's in the wheelmesh binary: the executable's symbols come first
 * in the dynamic linker's search, libzmq's calls included. The node's own
 * secret key does not use them (identity.c locks and wipes it itself).
 */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Each block starts with its size, so that sodium_free can wipe it. */
typedef union {
    size_t size;
    max_align_t align;
} header;

void *
sodium_malloc(const size_t size)
{
    header *h;

    if (size > SIZE_MAX - sizeof(*h))
        return NULL;
    h = malloc(sizeof(*h) + size);
    if (h == NULL)
        return NULL;
    h->size = size;
    return h + 1;
}

void *
sodium_allocarray(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    return sodium_malloc(count * size);
}

void
sodium_free(void *ptr)
{
    header *h;

    if (ptr == NULL)
        return;
    h = (header *)ptr - 1;
    sodium_memzero(ptr, h->size);
    free(h);
}
