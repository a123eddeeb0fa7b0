/*
 * A wheel arriving in a PUT, on its HTTP thread: spooled to an unlinked
 * file and hashed as it arrives, whole and chunk by chunk, so the loop
 * hashes nothing of it; checked (zip, dist-info, size cap) before the loop
 * is asked to store it. No HTTP here: the front feeds it bytes.
 */
#ifndef WM_UPLOAD_H
#define WM_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "call.h"
#include "store.h"

typedef struct wm_upload wm_upload;

/* Begins receiving FILENAME into a spool in DIR, at most MAX bytes.
 * Returns NULL with an HTTP *STATUS and a one-line *WHY when the name is
 * no wheel name (400) or the spool cannot be made (500). */
wm_upload *wm_upload_begin(const char *filename, const char *dir, uint64_t max,
                           unsigned *status, const char **why);

/* Takes LEN more bytes. Returns 0, or an HTTP status once the upload is
 * refused (413 past the cap, 507 when the spool cannot be written); later
 * bytes are then dropped. */
unsigned wm_upload_data(wm_upload *u, const void *data, size_t len);

/* The body ended: checks the wheel and makes the PUT call that stores it
 * (its spool, METADATA, chunk map and record move into the call). STORE
 * tells whether it is held already: then the call's result is -EEXIST
 * and it need not run. Returns the call, or NULL with *STATUS and WHY (room
 * for WHYSZ). */
wm_call *wm_upload_finish(wm_upload *u, wm_store *store, unsigned *status,
                          char *why, size_t whysz);

/* Frees U (NULL is fine) and clears the pointer. */
void wm_upload_destroy(wm_upload **u);

#endif
