/*
 * The swarm's arithmetic (see swarm.h). Every scan is linear in the
 * wheel's chunks, at most WM_WIRE_MAX_CHUNKS.
 */
#include "swarm.h"

#include <string.h>

size_t
wm_swarm_bitmap_len(uint32_t n)
{
    return ((size_t)n + 7) / 8;
}

int
wm_swarm_has(const uint8_t *bits, uint32_t i)
{
    return bits[i / 8] >> (i % 8) & 1;
}

void
wm_swarm_forget(uint8_t *bits, uint32_t i)
{
    bits[i / 8] &= (uint8_t)~(1u << (i % 8));
}

void
wm_swarm_done(const uint8_t *state, uint32_t n, uint8_t *out)
{
    for (uint32_t i = 0; i < n; i++)
        if (state[i] == WM_CS_DONE)
            out[i / 8] |= (uint8_t)(1u << (i % 8));
}

int
wm_swarm_merge(uint8_t *has, const uint8_t *bits, uint32_t n)
{
    uint8_t news = 0;

    for (size_t i = 0; i < wm_swarm_bitmap_len(n); i++) {
        news |= bits[i] & ~has[i];
        has[i] |= bits[i];
    }
    return news != 0;
}

void
wm_swarm_rarity(uint8_t *rarity, uint32_t n, const uint8_t *const *has,
                size_t nhas)
{
    memset(rarity, 0, n);
    for (size_t h = 0; h < nhas; h++)
        for (uint32_t c = 0; c < n; c++)
            if (rarity[c] < UINT8_MAX)
                rarity[c] += (uint8_t)wm_swarm_has(has[h], c);
}

wm_stripe
wm_swarm_stripe(const uint8_t *self, const uint8_t *const *ids, size_t nids)
{
    wm_stripe s = {0, 1, 0};

    for (size_t i = 0; i < nids; i++) {
        s.k++;
        s.rank += memcmp(ids[i], self, 32) < 0;
    }
    return s;
}

int
wm_swarm_useful(const uint8_t *state, uint32_t from, uint32_t n,
                const uint8_t *has)
{
    for (uint32_t c = from; c < n; c++)
        if (state[c] != WM_CS_DONE && state[c] != WM_CS_HELD &&
            wm_swarm_has(has, c))
            return 1;
    return 0;
}

uint32_t
wm_swarm_pick_partial(const uint8_t *state, const uint8_t *rarity,
                      uint32_t from, uint32_t n, const uint8_t *has,
                      uint32_t start)
{
    uint32_t best = WM_NO_CHUNK;

    for (uint32_t k = from; k < n; k++) {
        uint32_t c =
            from + (uint32_t)(((uint64_t)start + k - from) % (n - from));
        if (state[c] == WM_CS_TO_ASK && wm_swarm_has(has, c) &&
            (best == WM_NO_CHUNK || rarity[c] < rarity[best]))
            best = c;
    }
    return best;
}

uint32_t
wm_swarm_pick_whole(const uint8_t *state, const uint8_t *rarity,
                    uint32_t from, uint32_t n, wm_stripe s, uint32_t start,
                    int stalled)
{
    uint32_t best = WM_NO_CHUNK,
             first = from + (s.rank + s.k - from % s.k) % s.k,
             count = first < n ? (n - first + s.k - 1) / s.k : 0;
    uint64_t skip =
        s.scan > first ? ((uint64_t)s.scan - first + s.k - 1) / s.k : 0;

    for (uint32_t j = 0; j < count; j++) {
        uint32_t c = first + (uint32_t)((skip + j) % count) * s.k;
        if (state[c] == WM_CS_TO_ASK && rarity[c] == 0)
            return c;
    }
    if (!stalled)
        return WM_NO_CHUNK;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t c = (start + k) % n;
        if (state[c] != WM_CS_TO_ASK)
            continue;
        if (best == WM_NO_CHUNK || rarity[c] < rarity[best])
            best = c;
        if (rarity[c] == 0)
            break;
    }
    return best;
}
