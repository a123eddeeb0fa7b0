/*
 * The decision table of the fetch coordinator (see fetchsm.h). Every
 * outcome is a step that leads either to a source not yet tried or to a
 * failure, so a fetch ends after at most three sources.
 */
#include "fetchsm.h"

static wm_fetch_step
fail(unsigned status, const char *why)
{
    wm_fetch_step s = {WM_FA_FAIL, status, why};

    return s;
}

static wm_fetch_step
go(enum wm_fetch_action a)
{
    wm_fetch_step s = {a, 0, 0};

    return s;
}

wm_fetch_step
wm_fetchsm_next(const wm_fetch_facts *f)
{
    if (f->holders > 0 && !(f->tried & WM_SRC_PEERS))
        return go(WM_FA_PEERS);
    if (f->upstream == WM_UP_PENDING)
        return go(WM_FA_WAIT_PAGE);
    if (f->upstream == WM_UP_ABSENT) {
        if (f->tried != 0)
            return fail(f->timed_out ? 504 : 502,
                        "no peer could serve it, and upstream does not "
                        "list it");
        return fail(404, "no such file here, on peers or upstream");
    }
    /* Listed upstream. A verified prefix goes on from upstream itself: a
     * designee would start from nothing. */
    if (f->designee_peer && !f->for_peer && f->prefix == 0 &&
        !(f->tried & (WM_SRC_DESIGNEE | WM_SRC_UPSTREAM)))
        return go(WM_FA_DESIGNEE);
    if (!(f->tried & WM_SRC_UPSTREAM))
        return go(WM_FA_UPSTREAM);
    return fail(f->timed_out ? 504 : 502, "upstream failed");
}

const char *
wm_fetchsm_action_name(enum wm_fetch_action a)
{
    switch (a) {
    case WM_FA_PEERS:
        return "peers";
    case WM_FA_DESIGNEE:
        return "designee";
    case WM_FA_UPSTREAM:
        return "upstream";
    case WM_FA_WAIT_PAGE:
        return "wait for the page";
    default:
        return "fail";
    }
}
