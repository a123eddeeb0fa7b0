/*
 * The fetch coordinator's decisions, as a pure function: given what is
 * known about a wheel the node lacks, where should its bytes come from
 * next? Peers that hold it first; then upstream, through the member
 * designated to fetch it for the whole cluster unless this node is that
 * member (or asked as it); a failed peer fetch is taken over by upstream
 * from the bytes already verified. Each source is tried once per fetch.
 */
#ifndef WM_FETCHSM_H
#define WM_FETCHSM_H

#include <stdint.h>

/* Sources, as bits of wm_fetch_facts.tried. */
enum wm_fetch_source {
    WM_SRC_PEERS = 1,
    WM_SRC_DESIGNEE = 2,
    WM_SRC_UPSTREAM = 4,
};

/* What upstream says of the file. */
enum wm_fetch_upstream {
    WM_UP_ABSENT,  /* no index lists this filename with this sha256 */
    WM_UP_LISTED,  /* the project's page lists it */
    WM_UP_PENDING, /* the page is on its way */
};

typedef struct wm_fetch_facts {
    unsigned holders;  /* live peers that hold it (and are not suspected) */
    int upstream;      /* enum wm_fetch_upstream */
    int designee_peer; /* another member is the designee */
    int for_peer;      /* a peer asked this node, as its designee */
    unsigned tried;    /* sources that failed during this fetch */
    uint64_t prefix;   /* verified bytes already in the spool */
    int timed_out;     /* the last failure was a timeout */
} wm_fetch_facts;

enum wm_fetch_action {
    WM_FA_PEERS,     /* pull from the holders */
    WM_FA_DESIGNEE,  /* pull from the designee, which goes upstream */
    WM_FA_UPSTREAM,  /* from upstream (the rest, after PREFIX bytes) */
    WM_FA_WAIT_PAGE, /* wait for the project's page, then decide again */
    WM_FA_FAIL,      /* give up: STATUS, WHY */
};

typedef struct wm_fetch_step {
    enum wm_fetch_action action;
    unsigned status;  /* WM_FA_FAIL: 404, 502 or 504 */
    const char *why;  /* WM_FA_FAIL: the reason when no source gave one */
} wm_fetch_step;

wm_fetch_step wm_fetchsm_next(const wm_fetch_facts *f);

/* "peers", "designee", "upstream", "wait for the page", "fail". */
const char *wm_fetchsm_action_name(enum wm_fetch_action a);

#endif
