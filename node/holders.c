/*
 * A fetch's holders (see holders.h): a fixed array, whole holders first
 * as the fetch adds them, partial ones as their HAVEs arrive.
 */
#include "holders.h"

#include <stdlib.h>
#include <string.h>

#include "swarm.h"

#define WINDOW_START   2    /* then one more per quick chunk */
#define FAST_MS        250  /* a chunk back this soon: the window grows */
#define SLOW_MS        1500 /* a chunk back this late: it shrinks */
#define TIMEOUT_MIN_MS 5000
#define TIMEOUT_MAX_MS 20000

void
wm_holders_init(wm_holders *hs, uint32_t nchunks)
{
    memset(hs, 0, sizeof(*hs));
    hs->nchunks = nchunks;
}

void
wm_holders_free(wm_holders *hs)
{
    for (size_t i = 0; i < hs->n; i++)
        free(hs->h[i].has);
    hs->n = hs->npartial = 0;
}

static void
fresh(wm_holder *h, wm_member *m, uint8_t *has, int64_t now)
{
    *h = (wm_holder){.m = m, .has = has, .window = WINDOW_START,
                     .last_reply = now};
}

wm_holder *
wm_holders_add_whole(wm_holders *hs, wm_member *m, int64_t now)
{
    size_t whole = hs->n - hs->npartial;

    if (whole >= WM_HOLDERS_WHOLE)
        return NULL;
    fresh(&hs->h[hs->n], m, NULL, now);
    return &hs->h[hs->n++];
}

wm_holder *
wm_holders_add_partial(wm_holders *hs, wm_member *m, int64_t now)
{
    size_t len = wm_swarm_bitmap_len(hs->nchunks);
    uint8_t *has;

    if (hs->nchunks == 0)
        return NULL;
    if (hs->npartial < WM_HOLDERS_PARTIAL) {
        if ((has = calloc(1, len)) == NULL)
            return NULL;
        hs->npartial++;
        fresh(&hs->h[hs->n], m, has, now);
        return &hs->h[hs->n++];
    }
    for (size_t i = 0; i < hs->n; i++) {
        wm_holder *h = &hs->h[i];
        if (h->has == NULL || !h->dropped || h->bad)
            continue;
        memset(h->has, 0, len);
        fresh(h, m, h->has, now);
        return h;
    }
    return NULL;
}

wm_holder *
wm_holders_of(wm_holders *hs, const wm_member *m)
{
    for (size_t i = 0; i < hs->n; i++)
        if (hs->h[i].m == m)
            return &hs->h[i];
    return NULL;
}

size_t
wm_holders_whole_left(const wm_holders *hs)
{
    size_t n = 0;

    for (size_t i = 0; i < hs->n; i++)
        n += !hs->h[i].dropped && hs->h[i].has == NULL;
    return n;
}

size_t
wm_holders_partials(const wm_holders *hs, const uint8_t **has,
                    const uint8_t **ids)
{
    size_t n = 0;

    for (size_t i = 0; i < hs->n; i++) {
        const wm_holder *h = &hs->h[i];
        if (h->has == NULL || h->dropped)
            continue;
        has[n] = h->has;
        ids[n++] = h->m->id;
    }
    return n;
}

int
wm_holders_useful(const wm_holders *hs, const uint8_t *state, uint32_t from)
{
    for (size_t i = 0; i < hs->n; i++) {
        const wm_holder *h = &hs->h[i];
        if (h->has != NULL && !h->dropped &&
            wm_swarm_useful(state, from, hs->nchunks, h->has))
            return 1;
    }
    return 0;
}

uint32_t
wm_holders_asked(wm_holders *hs, wm_holder *h)
{
    h->inflight++;
    hs->inflight++;
    return ++h->sent;
}

void
wm_holders_answered(wm_holders *hs, wm_holder *h)
{
    if (h->inflight > 0) {
        h->inflight--;
        hs->inflight--;
    }
}

void
wm_holders_drop(wm_holders *hs, wm_holder *h)
{
    h->dropped = 1;
    hs->inflight -= h->inflight;
    h->inflight = 0;
}

void
wm_holder_took(wm_holder *h, int64_t took)
{
    h->srtt = h->srtt == 0 ? took : (7 * h->srtt + took) / 8;
    if (took < FAST_MS && h->window < WM_HOLDER_WINDOW)
        h->window++;
    else if (took > SLOW_MS && h->window > 1)
        h->window--;
}

void
wm_holder_answered_seq(wm_holder *h, uint32_t seq)
{
    if (seq > h->answered)
        h->answered = seq;
}

int
wm_holder_lost(const wm_holder *h, uint32_t seq)
{
    return seq < h->answered;
}

int64_t
wm_holder_timeout(const wm_holder *h)
{
    int64_t limit = 3 * h->srtt;

    if (limit < TIMEOUT_MIN_MS)
        limit = TIMEOUT_MIN_MS;
    return limit > TIMEOUT_MAX_MS ? TIMEOUT_MAX_MS : limit;
}
