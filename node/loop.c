/*
 * The node loop. Every round it asks each part for its poll items and
 * next timer, polls them together with the call ROUTER and the signalfd,
 * serves queued calls (a bounded number per round, so transfers keep
 * moving), then lets each part dispatch. Signals arrive as reads on the
 * signalfd, never as handlers interrupting a thread.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"

#define POLL_MS        1000 /* the longest sleep when no part has a timer */
#define CALLS_PER_TURN 64
#define MAX_PARTS      8

struct part {
    wm_poll_fn poll;
    wm_dispatch_fn dispatch;
    void *arg;
    size_t first, n; /* its slice of the items this round */
};

struct wm_loop {
    void *router, *pub;
    int sigfd;
    struct part parts[MAX_PARTS];
    size_t nparts;
    struct {
        wm_call_fn fn;
        void *arg;
    } handlers[WM_OP_COUNT];
    wm_hup_fn hup;
    void *hup_arg;
    zmq_pollitem_t *items;
    size_t cap;
};

void
wm_loop_signals(sigset_t *mask)
{
    sigemptyset(mask);
    sigaddset(mask, SIGTERM);
    sigaddset(mask, SIGINT);
    sigaddset(mask, SIGHUP);
}

int
wm_loop_new(wm_loop **out, void *zmq, const char **why)
{
    wm_loop *l = calloc(1, sizeof(*l));
    sigset_t mask;

    *out = NULL;
    if (l == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    wm_loop_signals(&mask);
    l->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    l->router = zmq_socket(zmq, ZMQ_ROUTER);
    l->pub = zmq_socket(zmq, ZMQ_PUB);
    if (l->sigfd < 0 || l->router == NULL || l->pub == NULL ||
        zmq_bind(l->router, WM_CALL_ENDPOINT) != 0 ||
        zmq_bind(l->pub, WM_PROGRESS_ENDPOINT) != 0) {
        *why = "cannot set up the node loop";
        wm_loop_destroy(&l);
        return -EIO;
    }
    *out = l;
    return 0;
}

void *
wm_loop_pub(wm_loop *l)
{
    return l->pub;
}

int
wm_loop_add(wm_loop *l, wm_poll_fn poll, wm_dispatch_fn dispatch, void *arg)
{
    if (l->nparts == MAX_PARTS)
        return -ENOMEM;
    l->parts[l->nparts++] = (struct part){poll, dispatch, arg, 0, 0};
    return 0;
}

void
wm_loop_handle(wm_loop *l, enum wm_op op, wm_call_fn fn, void *arg)
{
    l->handlers[op].fn = fn;
    l->handlers[op].arg = arg;
}

void
wm_loop_on_hup(wm_loop *l, wm_hup_fn fn, void *arg)
{
    l->hup = fn;
    l->hup_arg = arg;
}

/* Makes room for N items. Returns 0 or -ENOMEM. */
static int
grow(wm_loop *l, size_t n)
{
    zmq_pollitem_t *items;
    size_t cap = l->cap ? l->cap : 64;

    if (n <= l->cap)
        return 0;
    while (cap < n)
        cap *= 2;
    items = realloc(l->items, cap * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    l->items = items;
    l->cap = cap;
    return 0;
}

/* Fills the item array: the signalfd, the ROUTER, then each part's. */
static size_t
gather(wm_loop *l, long *timeout)
{
    size_t n = 2;

    l->items[0] = (zmq_pollitem_t){NULL, l->sigfd, ZMQ_POLLIN, 0};
    l->items[1] = (zmq_pollitem_t){l->router, 0, ZMQ_POLLIN, 0};
    for (size_t i = 0; i < l->nparts; i++) {
        struct part *p = &l->parts[i];
        size_t want = p->poll(p->arg, l->items + n, l->cap - n, timeout);
        if (want > l->cap - n) {
            if (grow(l, n + want) == 0)
                want = p->poll(p->arg, l->items + n, l->cap - n, timeout);
            if (want > l->cap - n) {
                wm_error("loop: no room for %zu poll items", want);
                want = l->cap - n;
            }
        }
        p->first = n;
        p->n = want;
        n += want;
    }
    return n;
}

static void
serve_calls(wm_loop *l)
{
    for (int i = 0; i < CALLS_PER_TURN; i++) {
        zmq_pollitem_t one = {l->router, 0, ZMQ_POLLIN, 0};
        wm_call *c;
        if (zmq_poll(&one, 1, 0) <= 0)
            return;
        c = wm_call_receive(l->router);
        if (c == NULL)
            continue;
        if ((unsigned)c->op >= WM_OP_COUNT || l->handlers[c->op].fn == NULL)
            wm_call_fail(c, 500, "unknown request");
        else
            l->handlers[c->op].fn(l->handlers[c->op].arg, c);
    }
}

/* Reads the pending signals: sets *HUP for SIGHUP, and returns the
 * stopping one, or 0. */
static int
read_signals(wm_loop *l, int *hup)
{
    struct signalfd_siginfo si;
    int stop = 0;

    while (read(l->sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP)
            *hup = 1;
        else
            stop = (int)si.ssi_signo;
    }
    return stop;
}

int
wm_loop_run(wm_loop *l)
{
    int stop = 0, hup = 0;

    if (grow(l, 64) != 0)
        return -1;
    while (stop == 0) {
        long timeout = POLL_MS;
        size_t n = gather(l, &timeout);
        int rc = zmq_poll(l->items, (int)n, timeout);

        if (rc < 0 && errno != EINTR) {
            wm_error("loop: poll failed: %s", zmq_strerror(errno));
            return -1;
        }
        if (rc > 0 && (l->items[0].revents & ZMQ_POLLIN))
            stop = read_signals(l, &hup);
        if (rc > 0 && (l->items[1].revents & ZMQ_POLLIN))
            serve_calls(l);
        for (size_t i = 0; i < l->nparts; i++) {
            struct part *p = &l->parts[i];
            p->dispatch(p->arg, l->items + p->first, rc > 0 ? p->n : 0);
        }
        /* Only now: a reload may replace sockets this round's items name. */
        if (hup && l->hup != NULL)
            l->hup(l->hup_arg);
        hup = 0;
    }
    wm_info("node: %s received, stopping", strsignal(stop));
    return 0;
}

void
wm_loop_close_calls(wm_loop *l)
{
    if (l == NULL || l->router == NULL)
        return;
    zmq_unbind(l->router, WM_CALL_ENDPOINT);
    wm_call_drain(l->router);
}

void
wm_loop_destroy(wm_loop **lp)
{
    wm_loop *l;
    int linger = 0;

    if (lp == NULL || *lp == NULL)
        return;
    l = *lp;
    if (l->router != NULL) {
        wm_call_drain(l->router);
        zmq_setsockopt(l->router, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(l->router);
    }
    if (l->pub != NULL) {
        zmq_setsockopt(l->pub, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(l->pub);
    }
    if (l->sigfd >= 0)
        close(l->sigfd);
    free(l->items);
    free(l);
    *lp = NULL;
}
