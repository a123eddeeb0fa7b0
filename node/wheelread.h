/*
 * A stored wheel as an HTTP response body, read from the LMDB map.
 *
 * LMDB reuses a freed page only once no read transaction can still see
 * it, so a response that kept one view until a slow client read its last
 * byte would pin every page freed meanwhile and let data.mdb grow past the
 * cache's cap. The reader moves to a fresh view every second instead; a
 * wheel evicted while it is being sent is finished from the view that
 * still holds it.
 */
#ifndef WM_WHEELREAD_H
#define WM_WHEELREAD_H

#include <stdint.h>

#include "store.h"

struct MHD_Response;

/* A response over bytes [FIRST, LAST] of the wheel F of STORE, starting
 * from the view V that found it (taken: closed when MHD frees the
 * response). Returns NULL (V closed) when a chunk is missing or memory
 * is short. */
struct MHD_Response *wm_wheel_response(wm_store *store, wm_store_view *v,
                                       const wm_file_info *f, uint64_t first,
                                       uint64_t last);

#endif
