/*
 * The chunk table of one fetch from peers: where the wheel ends and how
 * long each chunk is, and for each chunk its state (swarm.h's enum) and
 * whom it was last asked of, when, and under which request number. A
 * value the fetch embeds, on the loop thread; pure (no I/O, no clock), so
 * that finding a designee's end, which shows only when its short or empty
 * chunk comes, is tested without a network. Which chunk to ask is
 * swarm.h's choice; what an answer means, peerfetch's.
 */
#ifndef WM_CHUNKS_H
#define WM_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "membership.h"

typedef struct wm_chunks {
    uint64_t size; /* WM_SIZE_UNKNOWN for a designee fetch, until its end */
    uint64_t cap;  /* no byte at or after this */
    uint32_t last; /* index of the last chunk once known, else UINT32_MAX */
    uint32_t end;  /* no chunk at or after this (an upper bound) */
    uint8_t *state;
    wm_member **asked_of;
    int64_t *asked_at;
    uint32_t *asked_seq; /* the request's number at its holder */
    size_t room;         /* entries of each array; WM_CS_TO_ASK past use */
} wm_chunks;

/* A table for a wheel of SIZE bytes (WM_SIZE_UNKNOWN: learned from the
 * chunks; nothing past CAP is asked for then), whose first DONE chunks
 * are there already. Returns 0, -EINVAL for an empty wheel or one over
 * CAP (or over 2^32 chunks), -ENOMEM; C is to be freed either way. */
int wm_chunks_init(wm_chunks *c, uint64_t size, uint64_t cap, uint32_t done);
void wm_chunks_free(wm_chunks *c);

/* Room for at least N chunks; the new ones are to ask. Returns 0, or -1
 * when out of memory (the table is as it was, or larger). */
int wm_chunks_grow(wm_chunks *c, size_t n);

/* The length of chunk IDX (a whole chunk while the size is unknown), and
 * the bytes of the first N chunks (no more than the size, once known). */
uint64_t wm_chunks_len(const wm_chunks *c, uint32_t idx);
uint64_t wm_chunks_bytes(const wm_chunks *c, uint32_t n);

/* The chunks asked of M and not answered are to ask again (M dropped). */
void wm_chunks_unask(wm_chunks *c, const wm_member *m);

/* A designee's chunk IDX of LEN bytes: its size shows only at the end.
 * A short chunk is the last one; an empty one says the wheel ends before
 * it (replies to later chunks may overtake the last one's). Once the size
 * is known, the chunks past the end still to ask are DONE (nothing to ask
 * there). Returns 1 when the chunk is data to keep, 0 when it only told
 * where the end is, -1 when it is bad, -2 when it goes past the cap. */
int wm_chunks_designee(wm_chunks *c, uint32_t idx, size_t len);

#endif
