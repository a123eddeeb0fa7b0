/*
 * The cluster's index: one signed log of holdings per origin (this node's
 * and every trusted peer's), kept in LMDB, and the lookups built from the
 * logs: who holds the bytes of a sha256, and which sha256s publishers'
 * claims name in a project. Lookups cost O(answer), not O(index).
 *
 * The index stores what trusted origins signed; it does not decide what
 * a page lists (that is the catalog's job, with the trust of the moment).
 * Pure state plus LMDB: no sockets.
 */
#ifndef WM_INDEX_H
#define WM_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "identity.h"
#include "store.h"
#include "wire.h"

typedef struct wm_index wm_index;

/* One origin's current holding of a sha256. Pointers are valid until the
 * index next changes. */
typedef struct wm_holding {
    const uint8_t *origin;
    uint64_t size;
    const uint8_t *root;
    const wm_claim *claim; /* NULL: it names nothing */
} wm_holding;

/* TRUSTED(ARG, ID): may ID's entries be taken? */
typedef int (*wm_index_trust_fn)(void *arg, const uint8_t *id);

/* An index for node SELF on STORE (NULL: nothing is kept), its own log
 * at generation GEN. NULL when out of memory. */
wm_index *wm_index_new(wm_store *store, const wm_identity *self, uint64_t gen,
                       wm_index_trust_fn trusted, void *arg);
void wm_index_destroy(wm_index **ix);

/* Reads the logs kept in LMDB. */
void wm_index_load(wm_index *ix);

/* Takes E when it is the next entry of a trusted origin with good
 * signatures (its own, and its claim's), keeping it in LMDB when PERSIST.
 * Returns 1 when new, 0 when known or out of order, -1 when refused
 * (counted). */
int wm_index_accept(wm_index *ix, const wm_entry *e, int persist);

/* Appends to this node's own log: an add of INFO (with its claim, as
 * stored), or a remove of SHA, kept in LMDB on its own. Returns 1 and
 * fills OUT (to spread) when the log changed, 0 when it says so already,
 * -1 on failure. */
int wm_index_add_local(wm_index *ix, const wm_file_info *info, wm_entry *out);
int wm_index_remove_local(wm_index *ix, const uint8_t *sha, wm_entry *out);

/* The same in two steps, for a caller that keeps the entry in the same
 * LMDB transaction as the store change it reports: prepare the next entry
 * (an add of INFO, or a remove of SHA when INFO is NULL) into OUT, signed,
 * nothing taken yet (1; 0 when the log says so already; -1); write its
 * record (wm_index_record); then take it (0 or -1). Nothing else may
 * append to the log in between. */
int wm_index_prepare_local(wm_index *ix, const wm_file_info *info,
                           const uint8_t *sha, wm_entry *out);
int wm_index_take_local(wm_index *ix, const wm_entry *e);

/* The LMDB record of E in table WM_TABLE_LOG: its key, and its value
 * appended to VAL. Returns 0 or -1. */
#define WM_INDEX_KEY_LEN (WM_ID_LEN + 16)
int wm_index_record(wm_index *ix, const wm_entry *e,
                    uint8_t key[WM_INDEX_KEY_LEN], wm_buf *val);

/* True when this node's own log says it holds SHA. */
int wm_index_holds_local(const wm_index *ix, const uint8_t *sha);

/* Every origin but this node that holds SHA, into OUT (room for MAX).
 * Returns how many (it may be more than MAX: only MAX are written). */
size_t wm_index_holders(const wm_index *ix, const uint8_t *sha,
                        wm_holding *out, size_t max);

/* Calls FN for every holding (this node's included) whose claim names a
 * file of PROJECT. */
typedef void (*wm_holding_fn)(void *arg, const uint8_t *sha,
                              const wm_holding *h);
void wm_index_each_claimed(const wm_index *ix, const char *project,
                           wm_holding_fn fn, void *arg);

/* Calls FN for every project some claim names. */
void wm_index_each_project(const wm_index *ix,
                           void (*fn)(void *arg, const char *project),
                           void *arg);

/* The digest: one item per origin with entries, sorted by origin. Returns
 * how many (at most MAX). */
size_t wm_index_digest(wm_index *ix, wm_digest_item *items, size_t max);

/* Calls EMIT for every entry the peer whose digest is D lacks, each
 * origin's in order. Returns 1 when the peer has entries this node lacks
 * (of origins it trusts). */
int wm_index_compare(const wm_index *ix, const wm_digest_item *d, size_t nd,
                     void (*emit)(void *arg, const wm_entry *e), void *arg);

/* Holdings of ORIGIN: files and bytes. */
void wm_index_origin_stats(const wm_index *ix, const uint8_t *origin,
                           uint64_t *files, uint64_t *bytes);

/* Entries refused so far. */
uint64_t wm_index_rejected(const wm_index *ix);

#endif
