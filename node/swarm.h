/*
 * The swarm's choices for one fetch, as pure functions over its chunk
 * states: which chunks a partial holder has (a bitmap, as HAVE carries
 * it), how rare each chunk is among the partial holders, this node's
 * stripe, and which chunk to ask of a holder next. No I/O, no clock:
 * peerfetch keeps the state and acts on the answers.
 *
 * Whole holders (the scarce uplinks) are asked by each fetcher for its
 * own stripe of what no partial holder has: with K fetchers (this node
 * and its live partial holders), the chunks whose index modulo K is this
 * node's rank among them by id. Fetchers that started together so ask
 * them for different chunks, and each of a whole holder's chunks goes out
 * about once; the swarm spreads it.
 */
#ifndef WM_SWARM_H
#define WM_SWARM_H

#include <stddef.h>
#include <stdint.h>

/* A chunk's state in a fetch. */
enum wm_chunk_state {
    WM_CS_TO_ASK = 0,
    WM_CS_ASKED = 1, /* of one holder, not answered yet */
    WM_CS_HELD = 2,  /* checked, for the store at the end of the turn */
    WM_CS_DONE = 3,  /* checked and written */
};

#define WM_NO_CHUNK UINT32_MAX

/* Bytes of a bitmap of N chunks; whether it has chunk I; forgetting it. */
size_t wm_swarm_bitmap_len(uint32_t n);
int wm_swarm_has(const uint8_t *bits, uint32_t i);
void wm_swarm_forget(uint8_t *bits, uint32_t i);

/* Sets OUT's bit for every chunk of the N in STATE that is DONE. */
void wm_swarm_done(const uint8_t *state, uint32_t n, uint8_t *out);

/* Adds BITS to HAS (both of N chunks). Returns 1 when any was new. */
int wm_swarm_merge(uint8_t *has, const uint8_t *bits, uint32_t n);

/* RARITY[c], for each of N chunks: how many of the NHAS bitmaps have it
 * (at most 255 are counted). */
void wm_swarm_rarity(uint8_t *rarity, uint32_t n, const uint8_t *const *has,
                     size_t nhas);

/* Chunks RANK, RANK + K, RANK + 2K ...; a fetcher asks a whole holder
 * for them from chunk SCAN on (then those before it). */
typedef struct wm_stripe {
    uint32_t rank, k, scan;
} wm_stripe;

/* The stripe of node SELF among it and the NIDS partial holders IDS
 * (32-byte ids), scanned from the start. */
wm_stripe wm_swarm_stripe(const uint8_t *self, const uint8_t *const *ids,
                          size_t nids);

/* Does a partial holder that has HAS give a chunk from FROM on (of N)
 * that STATE still needs? */
int wm_swarm_useful(const uint8_t *state, uint32_t from, uint32_t n,
                    const uint8_t *has);

/* The chunk to ask next (WM_NO_CHUNK: none) among chunks FROM..N-1 still
 * to ask in STATE. Of a partial holder that has HAS: the rarest of its
 * chunks, the first of those from a point START sets (each fetch's own),
 * so that the fetchers of a swarm ask a holder of new chunks for
 * different ones, each soon a source, rather than all for the same one,
 * sent to all at once at a fraction of the rate each. Of a whole holder: the
 * first of stripe S (from its scan point) that no partial holder has;
 * other stripes are their fetchers' to bring in, and only while STALLED
 * is the rarest of any stripe asked, scanning from START. */
uint32_t wm_swarm_pick_partial(const uint8_t *state, const uint8_t *rarity,
                               uint32_t from, uint32_t n, const uint8_t *has,
                               uint32_t start);
uint32_t wm_swarm_pick_whole(const uint8_t *state, const uint8_t *rarity,
                             uint32_t from, uint32_t n, wm_stripe s,
                             uint32_t start, int stalled);

#endif
