/*
 * Calls from HTTP threads into the node loop. A call is a heap object with
 * two references: the caller's and the loop's. The caller fills in the
 * request, hands the call to the loop over an inproc socket and waits for
 * a one-byte reply; the loop writes the results into the call and then
 * replies. Either side may give up first (the node stops, the client
 * leaves): whoever drops the last reference frees the call and what its
 * results hold. The loop never touches the caller's memory.
 */
#ifndef WM_CALL_H
#define WM_CALL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "download.h"
#include "store.h"

#define WM_CALL_ENDPOINT "inproc://wm-loop"

enum wm_op {
    WM_OP_PUT,     /* store the wheel in FD under INFO */
    WM_OP_PAGE,    /* the prepared /simple/<project>/ page */
    WM_OP_FETCH,   /* a download of a wheel this node lacks */
    WM_OP_META,    /* the core metadata of a wheel this node lacks */
    WM_OP_LINKS,   /* the flat --find-links page (project may be "") */
    WM_OP_FILES,   /* /api/files JSON (project may be "") */
    WM_OP_STATUS,  /* /api/status JSON */
    WM_OP_METRICS, /* /metrics text */
    WM_OP_PRUNE,   /* drop wheels by PRUNE (and PROJECT) */
    WM_OP_COUNT
};

typedef struct wm_call wm_call;

struct wm_call {
    atomic_int refs;
    enum wm_op op;
    /* --- the request, written by the caller before wm_call_run */
    wm_file_info info; /* PUT: filename, project, sha256, size, meta_* */
    int fd;            /* PUT: the spool (the call owns it; -1: none) */
    void *meta;        /* PUT: METADATA bytes (owned) */
    size_t meta_len;
    void *chunkmap; /* PUT: the sha256 of each chunk (owned) */
    size_t chunkmap_len;
    char project[WM_PROJECT_MAX + 1]; /* PAGE, LINKS, FILES, PRUNE */
    int json;                         /* PAGE: 0 HTML, 1 JSON */
    uint8_t sha256[WM_SHA256_LEN];    /* FETCH, META */
    char filename[WM_WHEELNAME_MAX + 1];
    struct {
        int all;
        uint32_t older_than_days; /* 0: any age */
        uint64_t to_size;         /* 0: no size target */
    } prune;
    /* --- the results, written by the loop before it replies: 0 or a
     * negative error (PUT: as wm_store_put_fd; FETCH/META: -EEXIST when
     * the store has it now), an HTTP status and reason for failures, and
     * references the call owns */
    int result;
    unsigned status;
    char why[200];
    wm_blob *blob;
    wm_download *download;
    /* --- the loop's: how to reply, and its waiting lists */
    wm_call *next;
    void (*reply_fn)(void *ctx, wm_call *c);
    void *reply_ctx;
    unsigned char rid[64];
    size_t ridlen;
};

/* A new call for OP with one reference (the caller's); NULL when out of
 * memory. */
wm_call *wm_call_new(enum wm_op op);

wm_call *wm_call_ref(wm_call *c);

/* Drops a reference (NULL is fine); the last one closes FD and releases
 * META, BLOB and DOWNLOAD. */
void wm_call_release(wm_call *c);

/* Caller side: hands C to the loop (which takes its own reference) and
 * waits for the reply. Returns 0 (see C's results) or -ESHUTDOWN when the
 * node is stopping. Any thread but the loop's. */
int wm_call_run(void *zmq, wm_call *c);

/* Loop side: reads one call from the loop's ROUTER (non-blocking) and
 * readies its reply; the reference that came with it is now the
 * receiver's. NULL when nothing (usable) was there. */
wm_call *wm_call_receive(void *router);

/* Loop side, at shutdown: releases every call still queued on ROUTER. */
void wm_call_drain(void *router);

/* Loop side: sends C's reply, then drops the loop's reference. */
void wm_call_answer(wm_call *c);

/* Loop side: sets STATUS and the reason (and RESULT to -ECANCELED unless
 * it holds an error already), then answers. */
void wm_call_fail(wm_call *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
