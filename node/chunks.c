/*
 * One fetch's chunk table: its arrays grow by doubling as a designee's
 * chunks run on, and its end is found from the chunks themselves when the
 * size is not known up front.
 */
#include "chunks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "download.h"
#include "swarm.h"

int
wm_chunks_init(wm_chunks *c, uint64_t size, uint64_t cap, uint32_t done)
{
    memset(c, 0, sizeof(*c));
    c->size = size;
    c->cap = cap;
    c->last = c->end = UINT32_MAX;
    if (size != WM_SIZE_UNKNOWN) {
        uint64_t chunks = (size + WM_CHUNK_SIZE - 1) / WM_CHUNK_SIZE;
        if (size == 0 || size > cap || chunks > UINT32_MAX)
            return -EINVAL;
        c->last = (uint32_t)chunks - 1;
    } else {
        uint64_t chunks = (cap + WM_CHUNK_SIZE - 1) / WM_CHUNK_SIZE;
        /* Nothing past the cap is ever asked for. */
        c->end = chunks + 1 < UINT32_MAX ? (uint32_t)chunks + 1 : UINT32_MAX;
    }
    if (wm_chunks_grow(c,
                       c->last != UINT32_MAX ? c->last + 1 : (size_t)done + 64))
        return -ENOMEM;
    memset(c->state, WM_CS_DONE, done); /* readers have had them */
    return 0;
}

void
wm_chunks_free(wm_chunks *c)
{
    free(c->state);
    free(c->asked_of);
    free(c->asked_at);
    free(c->asked_seq);
    memset(c, 0, sizeof(*c));
}

int
wm_chunks_grow(wm_chunks *c, size_t n)
{
    size_t room = c->room;
    void *p;

    if (n <= room)
        return 0;
    while (room < n)
        room = room ? 2 * room : 64;
    if ((p = realloc(c->state, room)) == NULL)
        return -1;
    c->state = p;
    if ((p = realloc(c->asked_of, room * sizeof(*c->asked_of))) == NULL)
        return -1;
    c->asked_of = p;
    if ((p = realloc(c->asked_at, room * sizeof(*c->asked_at))) == NULL)
        return -1;
    c->asked_at = p;
    if ((p = realloc(c->asked_seq, room * sizeof(*c->asked_seq))) == NULL)
        return -1;
    c->asked_seq = p;
    memset(c->state + c->room, WM_CS_TO_ASK, room - c->room);
    c->room = room;
    return 0;
}

uint64_t
wm_chunks_len(const wm_chunks *c, uint32_t idx)
{
    uint64_t off = (uint64_t)idx * WM_CHUNK_SIZE;

    if (c->size == WM_SIZE_UNKNOWN)
        return WM_CHUNK_SIZE;
    return c->size - off < WM_CHUNK_SIZE ? c->size - off : WM_CHUNK_SIZE;
}

uint64_t
wm_chunks_bytes(const wm_chunks *c, uint32_t n)
{
    uint64_t bytes = (uint64_t)n * WM_CHUNK_SIZE;

    return c->size != WM_SIZE_UNKNOWN && bytes > c->size ? c->size : bytes;
}

void
wm_chunks_unask(wm_chunks *c, const wm_member *m)
{
    for (size_t i = 0; i < c->room; i++)
        if (c->state[i] == WM_CS_ASKED && c->asked_of[i] == m)
            c->state[i] = WM_CS_TO_ASK;
}

int
wm_chunks_designee(wm_chunks *c, uint32_t idx, size_t len)
{
    if (len > WM_CHUNK_SIZE || (len == 0 && idx == 0))
        return -1;
    if ((uint64_t)idx * WM_CHUNK_SIZE + len > c->cap)
        return -2;
    if (len == 0) {
        if (idx < c->end)
            c->end = idx;
        for (size_t i = idx; i < c->room; i++)
            if (c->state[i] == WM_CS_TO_ASK)
                c->state[i] = WM_CS_DONE; /* nothing to ask there */
        c->state[idx] = WM_CS_DONE;
        if (c->state[idx - 1] != WM_CS_DONE || c->end != idx)
            return 0;
        /* chunk idx-1 was full: the size is a whole number of chunks */
        c->size = (uint64_t)idx * WM_CHUNK_SIZE;
        c->last = idx - 1;
    } else if (len < WM_CHUNK_SIZE) {
        c->size = (uint64_t)idx * WM_CHUNK_SIZE + len;
        c->last = idx;
    } else if (c->end != UINT32_MAX && idx + 1 == c->end) {
        c->size = (uint64_t)c->end * WM_CHUNK_SIZE; /* full, and last */
        c->last = idx;
    }
    if (c->size != WM_SIZE_UNKNOWN)
        for (size_t i = (size_t)c->last + 1; i < c->room; i++)
            if (c->state[i] == WM_CS_TO_ASK)
                c->state[i] = WM_CS_DONE; /* past the end: nothing to ask */
    return len > 0;
}
