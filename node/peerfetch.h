/*
 * Pulling a wheel's bytes from peers, on the node loop: 1 MiB chunks
 * asked of up to eight holders with a window per holder, each chunk
 * checked against the chunk map whose hash its holders signed, the whole
 * file hashed in order as the readable prefix grows. A fetch succeeds
 * only when that hash is the sha256 it was asked for: the map binds
 * chunks, this binds the map to the name. Members fetching the same
 * wheel at the same time form a swarm: each also asks the others for
 * the chunks they have (HAVE messages), and serves its own.
 *
 * A designee fetch asks one member that is fetching the wheel from
 * upstream for everyone; its size is unknown until the end, its "later"
 * answers have a budget, and it may send no more than the cap.
 *
 * A fetch reports its end once through its completion function; it is a
 * source of bytes and decides nothing beyond its holders.
 */
#ifndef WM_PEERFETCH_H
#define WM_PEERFETCH_H

#include <stddef.h>
#include <stdint.h>

#include "download.h"
#include "membership.h"
#include "transport.h"

typedef struct wm_peerfetch wm_peerfetch;
typedef struct wm_pfetch wm_pfetch;

/* A holder to ask, with what its entry signed. */
typedef struct wm_pf_holder {
    wm_member *m;
    uint8_t root[32]; /* chunk map hash; ignored for a designee */
} wm_pf_holder;

/* How a fetch ended: 0 (complete; the download holds every byte, checked),
 * -ENOENT (no holder could serve it; the verified prefix stays), -EBADMSG
 * (the bytes fail the sha256: the chunk map lied), -EMSGSIZE (more than
 * the cap), -EIO (spool). WHY: one line. */
typedef void (*wm_pf_fn)(void *arg, wm_pfetch *f, int rc, const char *why);

/* Creates the fetcher: sends through T, tells the usable MEMBERS (NULL:
 * no swarm) of a swarm fetch, publishes progress on PUB, writes
 * holder fetches straight into STORE (NULL: the spool).
 * LATER_BUDGET_MS: how long a holder may answer "later" without sending a
 * chunk. NULL when out of memory. */
wm_peerfetch *wm_peerfetch_new(wm_transport *t, wm_members *members,
                               void *pub, wm_store *store,
                               int64_t later_budget_ms);

/* Asks FN(ARG, BYTES) before a holder fetch puts its chunks into the
 * store ahead of its record: BYTES is its size and what the fetches in the
 * store have still to put there. Refused, the fetch writes its spool. */
void wm_peerfetch_on_room(wm_peerfetch *pf,
                          int (*fn)(void *arg, uint64_t bytes), void *arg);

/* Ends every fetch without calling its completion; frees. */
void wm_peerfetch_destroy(wm_peerfetch **pf);

/* Starts pulling DL (its sha256 and filename) from the N holders (at most
 * 8 are used), of SIZE bytes (WM_SIZE_UNKNOWN for a designee, with
 * DESIGNEE set: it may fetch from upstream first) and at most CAP bytes.
 * DL's first RESUME bytes (whole chunks) are there already, hashed into
 * HASH, which is taken (NULL when RESUME is 0). A holder fetch from the
 * first byte puts DL in the store (wm_download_use_store); whoever goes on
 * from what it leaves, or fails it, takes it out. Returns the fetch, or NULL
 * when it cannot start (no usable holder, a size over the cap, a resume
 * point inside a chunk; HASH is freed then); the completion never runs
 * before this returns. */
wm_pfetch *wm_peerfetch_start(wm_peerfetch *pf, wm_download *dl,
                              const wm_pf_holder *holders, size_t n,
                              uint64_t size, uint64_t cap, int designee,
                              uint64_t resume, struct wm_sha256 *hash,
                              wm_pf_fn done, void *arg);

/* Ends F at once; its completion is not called. */
void wm_peerfetch_cancel(wm_peerfetch *pf, wm_pfetch *f);

/* For a completion: the bytes in order (hashed) so far, the hash of
 * them (taken; NULL when none), the chunk map the chunks were checked
 * against (NULL for a designee; valid until the completion returns), and
 * the chunk map hash used. */
uint64_t wm_pfetch_prefix(const wm_pfetch *f);
struct wm_sha256 *wm_pfetch_take_hash(wm_pfetch *f);
const void *wm_pfetch_map(const wm_pfetch *f);
const uint8_t *wm_pfetch_root(const wm_pfetch *f);

/* True when M sent F bytes that failed their hashes (or too many). */
int wm_pfetch_was_bad(const wm_pfetch *f, const wm_member *m);

/* Messages for fetches: CHUNK and MAPDATA answers. */
void wm_peerfetch_on_chunk(wm_peerfetch *pf, const wm_from *from,
                           const wm_msg *m, const void *bulk, size_t len);
void wm_peerfetch_on_mapdata(wm_peerfetch *pf, const wm_from *from,
                             const wm_msg *m, const void *bulk, size_t len);

/* A member's HAVE: it fetches SHA too, and has these chunks. */
void wm_peerfetch_on_have(wm_peerfetch *pf, const wm_from *from,
                          const wm_msg *m);

/* For serving a swarm: the length of chunk IDX of SHA when a fetch has it
 * checked against its chunk map and written (readable with
 * wm_download_pread), else 0. */
size_t wm_peerfetch_chunk_ready(const wm_peerfetch *pf, const uint8_t *sha,
                                uint32_t idx);

/* At the end of each loop turn that handled messages: the chunks that
 * arrived go into the store in one transaction, and each fetch's prefix
 * (and its readers' progress) moves on once. */
void wm_peerfetch_flush(wm_peerfetch *pf);

/* Timeouts and windows, due at NOW. */
void wm_peerfetch_tick(wm_peerfetch *pf, int64_t now);

/* True while a fetch runs (and so wants its ticks). */
int wm_peerfetch_active(const wm_peerfetch *pf);

/* Counters: fetches completed, and failed. */
void wm_peerfetch_counters(const wm_peerfetch *pf, uint64_t *done,
                           uint64_t *failed);

#endif
