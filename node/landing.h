/*
 * Where one fetch's checked chunks land, and the in-order prefix they
 * make. A holder fetch from the first byte writes its chunks straight into
 * the store: a chunk that passed its hash is kept as ZeroMQ received it
 * (no copy) until the end of the loop's turn, when one transaction puts
 * every fetch's chunks of the turn (the only copy, into the map). A
 * designee fetch, a resumed one, and one whose store is full write the
 * spool as the chunks arrive. Chunks that now follow the prefix are
 * hashed into the whole-file hash (from the bytes in hand when they are,
 * else read back) and made readable. A value the fetch embeds, on the
 * loop thread; whether a chunk is good, and what a failure ends, are
 * peerfetch's.
 */
#ifndef WM_LANDING_H
#define WM_LANDING_H

#include <stddef.h>
#include <stdint.h>

#include "chunks.h"
#include "download.h"
#include "hash.h"
#include "store.h"
#include "transport.h"

typedef struct wm_landing {
    wm_download *dl;      /* the fetch's; not a reference of its own */
    void *pub;            /* where progress is published */
    wm_sha256 *hash;      /* of the prefix; owned */
    uint32_t prefix;      /* chunks hashed in order */
    struct wm_held *held; /* chunks for the store at the end of the turn */
    size_t nheld, held_cap;
    uint64_t stored; /* bytes of chunks put into the store */
} wm_landing;

/* Lands DL's chunks, of which the first PREFIX are there already and
 * hashed into HASH (taken). Progress goes out on PUB. Cannot fail. */
void wm_landing_init(wm_landing *l, wm_download *dl, void *pub, wm_sha256 *hash,
                     uint32_t prefix);

/* Lets go of the chunks held, frees the hash (if not taken). */
void wm_landing_free(wm_landing *l);

/* Keeps the bulk frame of the message T is handling, chunk IDX (checked),
 * for the store: HELD in C. Returns 0, or -1 when out of memory. */
int wm_landing_hold(wm_landing *l, wm_chunks *c, wm_transport *t, uint32_t idx);

/* Writes chunk IDX (checked; LEN bytes at BULK) into the spool: DONE in
 * C. Returns 0, or -1 when the write fails. */
int wm_landing_write(wm_landing *l, wm_chunks *c, uint32_t idx,
                     const void *bulk, size_t len);

/* The chunks held into the open batch B (one already stored is as good:
 * the very bytes). Returns 0, or the store's negative error. */
int wm_landing_put(const wm_landing *l, wm_store_batch *b);

/* The batch with the chunks held committed: they are DONE in C, and
 * count as stored. */
void wm_landing_stored(wm_landing *l, wm_chunks *c);

/* The store could not take the chunks held (WHY): the fetch goes on in
 * the spool, from the prefix the store has (what followed it left the
 * store with it and is to ask again in C), with the chunks in hand
 * written there. Returns 0, or -1 when the spool cannot be written. */
int wm_landing_to_spool(wm_landing *l, wm_chunks *c, const char *why);

/* Moves the prefix over the chunks DONE in C that now follow it, hashing
 * them (from the bytes in hand, else read back: CHUNK is the bytes of
 * chunk IDX just written, or NULL), and lets readers have them. Returns 1
 * when the wheel is complete, 0 when not yet, -1 on a read error. */
int wm_landing_advance(wm_landing *l, const wm_chunks *c, uint32_t idx,
                       const void *chunk);

/* Lets go of the chunks held, once they are stored or written. */
void wm_landing_release(wm_landing *l);

#endif
