/*
 * The call boundary. The caller sends the call's address over a REQ socket
 * connected to the loop's ROUTER, and with it a reference that the loop
 * owns from then on; the loop replies with one byte. A caller that stops
 * waiting only drops its own reference. Calls still queued when the loop
 * stops are released by wm_call_drain.
 */
#include "call.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

wm_call *
wm_call_new(enum wm_op op)
{
    wm_call *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    c->op = op;
    c->fd = -1;
    return c;
}

wm_call *
wm_call_ref(wm_call *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void
wm_call_release(wm_call *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->meta);
    free(c->chunkmap);
    wm_blob_release(c->blob);
    wm_download_release(c->download);
    free(c);
}

/* zmq_recv/zmq_send, again after a signal; -1 with errno otherwise. */
static int
recv_retry(void *sock, void *buf, size_t len)
{
    int n;

    do
        n = zmq_recv(sock, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

static int
send_retry(void *sock, const void *buf, size_t len)
{
    int n;

    do
        n = zmq_send(sock, buf, len, 0);
    while (n < 0 && errno == EINTR);
    return n;
}

int
wm_call_run(void *zmq, wm_call *c)
{
    void *sock = zmq_socket(zmq, ZMQ_REQ);
    int linger = 0, rc = -ESHUTDOWN;
    char ack;

    if (sock == NULL)
        return -ESHUTDOWN; /* the context is shutting down */
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(sock, WM_CALL_ENDPOINT) == 0) {
        wm_call_ref(c); /* the loop's, sent with the pointer */
        if (send_retry(sock, &c, sizeof(c)) != sizeof(c))
            wm_call_release(c);
        else if (recv_retry(sock, &ack, 1) == 1)
            rc = 0;
    }
    zmq_close(sock);
    return rc;
}

void
wm_call_answer(wm_call *c)
{
    if (c->reply_fn != NULL)
        c->reply_fn(c->reply_ctx, c);
    wm_call_release(c);
}

void
wm_call_fail(wm_call *c, unsigned status, const char *fmt, ...)
{
    va_list ap;

    c->status = status;
    if (c->result == 0) /* a failed call never reads as done */
        c->result = -ECANCELED;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    wm_call_answer(c);
}

/* The reply: [routing id][empty][one byte] on the loop's ROUTER. */
static void
send_reply(void *router, wm_call *c)
{
    zmq_send(router, c->rid, c->ridlen, ZMQ_SNDMORE);
    zmq_send(router, "", 0, ZMQ_SNDMORE);
    zmq_send(router, "", 1, 0);
}

wm_call *
wm_call_receive(void *router)
{
    unsigned char rid[sizeof(((wm_call *)0)->rid)];
    char empty[8];
    wm_call *c = NULL;
    int n, more = 0;
    size_t more_len = sizeof(more);

    n = zmq_recv(router, rid, sizeof(rid), ZMQ_DONTWAIT);
    if (n < 0)
        return NULL;
    if ((size_t)n <= sizeof(rid) &&
        zmq_recv(router, empty, sizeof(empty), 0) == 0 &&
        zmq_recv(router, &c, sizeof(c), 0) == sizeof(c)) {
        memcpy(c->rid, rid, (size_t)n);
        c->ridlen = (size_t)n;
        c->reply_fn = send_reply;
        c->reply_ctx = router;
        return c;
    }
    /* Our own threads send only calls; drain whatever this was. */
    while (zmq_getsockopt(router, ZMQ_RCVMORE, &more, &more_len) == 0 &&
           more)
        zmq_recv(router, empty, sizeof(empty), 0);
    return NULL;
}

void
wm_call_drain(void *router)
{
    zmq_pollitem_t item = {router, 0, ZMQ_POLLIN, 0};

    while (zmq_poll(&item, 1, 0) > 0) {
        wm_call *c = wm_call_receive(router);
        if (c == NULL)
            break;
        wm_call_release(c);
    }
}
