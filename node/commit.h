/*
 * The queue of wheels waiting to be written into the store, on the node
 * loop. The loop writes one wheel at a time, a batch of chunks per turn,
 * so probes and pages are answered while a large wheel goes in; a download
 * waiting for its turn is still served from its spool. Listeners hear of
 * every wheel stored, with the entry this node's holdings log took for it
 * in the same transaction.
 */
#ifndef WM_COMMIT_H
#define WM_COMMIT_H

#include "call.h"
#include "download.h"
#include "index.h"
#include "node.h"
#include "wire.h"

typedef struct wm_commit wm_commit;

/* Creates the queue for NODE, whose own log INDEX keeps. Returns 0 or
 * -ENOMEM. */
int wm_commit_new(wm_commit **out, wm_node *node, wm_index *index);

/* Ends what is queued (PUT calls are answered with -ESHUTDOWN), frees
 * (NULL is fine), clears the pointer. */
void wm_commit_destroy(wm_commit **c);

/* Calls FN(ARG, INFO, LOGGED) after every wheel stored; LOGGED is the add
 * entry of this node's log (to spread), or NULL when the log said so
 * already. Returns 0 or -ENOMEM. */
typedef void (*wm_stored_fn)(void *arg, const wm_file_info *info,
                             const wm_entry *logged);
int wm_commit_listen(wm_commit *c, wm_stored_fn fn, void *arg);

/* Calls FN(ARG) when a wheel could not be stored for want of room (it was
 * served from its spool all the same). */
void wm_commit_on_full(wm_commit *c, void (*fn)(void *arg), void *arg);

/* Queues the wheel of the PUT call CALL (its spool, METADATA, chunk map
 * and record, hashed by the HTTP thread), with this node's claim on it,
 * and answers CALL once it is stored or failed.
 * On an error returned here CALL has not been answered: -EEXIST (that
 * sha256 is stored), -EBUSY (the filename is stored with other bytes),
 * -EDQUOT (no room to keep it, see wm_commit_on_room), or another
 * negative error. */
int wm_commit_put(wm_commit *c, wm_call *call);

/* Asks FN(ARG, BYTES) whether BYTES of puts (this one and those queued)
 * may be kept; a put it refuses fails with -EDQUOT. */
void wm_commit_on_room(wm_commit *c, int (*fn)(void *arg, uint64_t bytes),
                       void *arg);

/* Calls FN(ARG, SHA) to drop the stored wheel SHA when a verified
 * download has its filename with other bytes; FN returns 0 once it is
 * gone. */
void wm_commit_on_namesake(wm_commit *c,
                           int (*fn)(void *arg, const uint8_t *sha),
                           void *arg);

/* Queues the verified download DL: checks the wheel in its spool
 * (filename, zip, METADATA) and writes it in steps. CHUNKMAP: the chunk
 * hashes every chunk was checked against, or NULL. CLAIMED: an entry whose
 * publisher's claim names this file, kept with it; or NULL. A stored wheel
 * with the same filename and other bytes is dropped first (see
 * wm_commit_on_namesake). Returns 0 (also when stored already) or a
 * negative error, logged. */
int wm_commit_download(wm_commit *c, wm_download *dl, const void *chunkmap,
                       const wm_entry *claimed);

/* The download of SHA waiting to be written (it can still be served from
 * its spool), or NULL. No reference is taken. */
wm_download *wm_commit_find(wm_commit *c, const uint8_t *sha);

/* True while something waits to be written: the loop should not sleep. */
int wm_commit_busy(const wm_commit *c);

/* Writes one batch of the first queued wheel. */
void wm_commit_step(wm_commit *c);

#endif
