/*
 * The holders one fetch from peers asks, and what it knows of each: whole
 * holders (every chunk) and partial ones (a swarm's fetchers, with the
 * bitmap of the chunks they said they have); the chunks in flight to each
 * and to all; each one's window, which follows how long its chunks take
 * to come back, and so its timeout. A value the fetch embeds, on the loop
 * thread. Which chunk to ask is swarm.h's choice; what a holder's silence
 * or bad bytes mean for the fetch, peerfetch's.
 */
#ifndef WM_HOLDERS_H
#define WM_HOLDERS_H

#include <stddef.h>
#include <stdint.h>

#include "membership.h"

#define WM_HOLDERS_WHOLE   8  /* whole holders used */
#define WM_HOLDERS_PARTIAL 16 /* partial holders used */
#define WM_HOLDER_WINDOW   8  /* chunks in flight to one, at most */

typedef struct wm_holder {
    wm_member *m;
    uint8_t *has; /* a partial holder's chunks (a bitmap); NULL: all */
    int dropped;
    int bad; /* sent bytes that fail their hashes */
    int inflight;
    int window;
    int64_t srtt;        /* smoothed time a chunk takes to come back */
    int64_t last_reply;  /* a busy holder answers, late; a gone one not */
    int64_t not_before;  /* after a LATER or a BUSY */
    int64_t later_since; /* first LATER since its last chunk; 0: none */
    uint32_t sent, answered; /* request numbers: the last, the highest
                                answered */
} wm_holder;

typedef struct wm_holders {
    wm_holder h[WM_HOLDERS_WHOLE + WM_HOLDERS_PARTIAL];
    size_t n, npartial; /* slots used; of them, ever partial */
    int inflight;       /* the sum of every holder's */
    uint32_t nchunks;   /* what a partial holder's bitmap covers */
} wm_holders;

/* Empty, for a wheel of NCHUNKS chunks (0 while unknown: no partial
 * holders then). Cannot fail. */
void wm_holders_init(wm_holders *hs, uint32_t nchunks);
void wm_holders_free(wm_holders *hs);

/* M as a whole holder, or as a partial one (no chunk known yet; the slot
 * of one dropped for anything but bad bytes is reused), heard of NOW.
 * NULL when there is no room (or no memory for the bitmap). */
wm_holder *wm_holders_add_whole(wm_holders *hs, wm_member *m, int64_t now);
wm_holder *wm_holders_add_partial(wm_holders *hs, wm_member *m, int64_t now);

/* M's holder, or NULL. */
wm_holder *wm_holders_of(wm_holders *hs, const wm_member *m);

/* Whole holders not dropped. */
size_t wm_holders_whole_left(const wm_holders *hs);

/* The live partial holders' bitmaps into HAS and ids into IDS (room for
 * WM_HOLDERS_PARTIAL each). Returns how many. */
size_t wm_holders_partials(const wm_holders *hs, const uint8_t **has,
                           const uint8_t **ids);

/* Can a live partial holder give a chunk, from FROM on, that STATE (the
 * fetch's chunk states) still needs? */
int wm_holders_useful(const wm_holders *hs, const uint8_t *state,
                      uint32_t from);

/* One chunk more in flight to H (returns the request's number at H);
 * one less (an answer, or a chunk asked again elsewhere); none any more
 * (H dropped). They keep HS's sum. */
uint32_t wm_holders_asked(wm_holders *hs, wm_holder *h);
void wm_holders_answered(wm_holders *hs, wm_holder *h);
void wm_holders_drop(wm_holders *hs, wm_holder *h);

/* A chunk came back from H TOOK ms after it was asked: delay, not loss,
 * says H is contended, so its window shrinks rather than its chunks time
 * out (made for a LAN: a path whose round trip alone is over 250 ms
 * keeps a window of 2). */
void wm_holder_took(wm_holder *h, int64_t took);

/* H answered its request number SEQ. A holder answers in the order it
 * is asked (one connection, one loop), so a request still unanswered
 * with a lower number than one answered was lost: wm_holder_lost. */
void wm_holder_answered_seq(wm_holder *h, uint32_t seq);
int wm_holder_lost(const wm_holder *h, uint32_t seq);

/* How long a chunk asked of H may take before H counts as slow: three
 * times its usual delay, at least 5 s and at most 20 s (peerfetch waits
 * twice that for one queued behind others while H answers them). */
int64_t wm_holder_timeout(const wm_holder *h);

#endif
