/*
 * CurveZMQ sockets for the cluster. The ZAP handler is bound before the
 * ROUTER: a CURVE server with no handler admits anyone who knows its key.
 * Sockets replaced during a dispatch are closed only after it, since the
 * poll items of the round may still name them.
 */
#include "transport.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "hash.h"
#include "log.h"
#include "map.h"

#define ZAP_ENDPOINT  "inproc://zeromq.zap.01"
#define ZAP_DOMAIN    "wheelmesh"
#define MAX_MSG       ((int64_t)4 << 20) /* ZeroMQ drops bigger ones unread */
#define SEED_RETRY_MS 2000
#define READS_PER_TURN 256
/* A member's DEALER is opened by the first message to it and closed after
 * this long without traffic: a fleet started at once would otherwise make
 * every node shake hands with every other at the same moment (N * N CURVE
 * handshakes), while SWIM talks to a few members a second. Longer than
 * any answer is waited for (a chunk: twice holders.c's 20 s at most), as
 * the answers come back on this socket. */
#define IDLE_MS 60000

/* A member's DEALER, opened on demand. */
struct peer {
    wm_member *m;
    void *dealer;
    char addr[WM_WIRE_ADDR_MAX + 1]; /* empty: not reachable */
    int64_t last_used;
};

/* A seed address tried with one trusted key until someone answers. */
struct seed {
    char addr[WM_WIRE_ADDR_MAX + 1];
    uint8_t key[WM_ID_LEN];
    void *sock;
};

/* What a poll item belongs to. */
struct owner {
    struct peer *peer;
    struct seed *seed;
};

struct wm_transport {
    wm_node *node;
    const wm_trust *trust;
    wm_members *ms;
    wm_transport_io io;
    void *zap, *router;
    uint8_t curve_pk[32], curve_sk[32];
    char advertise[WM_WIRE_ADDR_MAX + 1];
    wm_map *peers; /* id -> struct peer */
    struct seed *seeds;
    size_t nseeds;
    void **retired;
    size_t nretired, retired_cap;
    struct owner *owners;
    size_t nowners, owners_cap;
    int64_t next_seed, next_idle_check;
    wm_msg *in, *seed_ping;
    zmq_msg_t *bulk; /* the bulk frame of the message being handled */
    uint64_t rejected, bytes_in, bytes_out, opened;
    int64_t idle_ms; /* IDLE_MS, shorter in the tests of it */
};

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
set_sockopts(void *sock)
{
    /* TCP_MAXRT: a connection whose data goes unacknowledged for 5 s is
     * closed and made anew. Kept, its retransmissions back off to many
     * seconds apart across a partition, and after the heal its queued
     * messages would wait for the next one while the members already
     * hear each other again on fresh connections. */
    int linger = 0, hwm = 1000, ivl = 100, ivl_max = 2000, maxrt = 5000;
    int64_t max = MAX_MSG;

    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max, sizeof(max));
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
    zmq_setsockopt(sock, ZMQ_TCP_MAXRT, &maxrt, sizeof(maxrt));
}

/* A CURVE client socket to the server whose key is SERVER, connected to
 * ADDR, that retries a lost connection after RETRY_MS at first (0: the
 * socket default); NULL on failure, with *REFUSED (when not NULL) set
 * when it was ADDR that libzmq refused rather than a socket it could not
 * make now (out of descriptors, say). */
static void *
client_socket(wm_transport *t, const uint8_t *server, const char *addr,
              int retry_ms, int *refused)
{
    void *s = zmq_socket(t->node->zmq, ZMQ_DEALER);

    if (refused != NULL)
        *refused = 0;
    if (s == NULL) {
        wm_warn("cluster: cannot open a socket for %s: %s", addr,
                zmq_strerror(errno));
        return NULL;
    }
    set_sockopts(s);
    if (retry_ms > 0)
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &retry_ms, sizeof(retry_ms));
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, t->curve_pk, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, t->curve_sk, 32);
    if (zmq_connect(s, addr) != 0) {
        wm_warn("cluster: cannot connect to %s: %s", addr,
                zmq_strerror(errno));
        zmq_close(s);
        if (refused != NULL)
            *refused = 1;
        return NULL;
    }
    return s;
}

static void
retire(wm_transport *t, void *sock)
{
    if (sock == NULL)
        return;
    if (t->nretired == t->retired_cap) {
        size_t cap = t->retired_cap ? 2 * t->retired_cap : 16;
        void **grown = realloc(t->retired, cap * sizeof(*grown));
        if (grown == NULL) {
            zmq_close(sock); /* rare; the round skips unknown sockets */
            return;
        }
        t->retired = grown;
        t->retired_cap = cap;
    }
    t->retired[t->nretired++] = sock;
}

/* --- sending */

static int
send_frames(wm_transport *t, void *sock, const uint8_t *rid, size_t ridlen,
            const wm_msg *m, const void *bulk, size_t blen)
{
    wm_buf b;
    int rc = -1;

    wm_buf_init(&b, WM_WIRE_FRAME_MAX);
    if (wm_msg_encode(m, &b) != 0 || b.failed)
        goto out;
    if (rid != NULL &&
        zmq_send(sock, rid, ridlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        goto out;
    if (zmq_send(sock, b.data, b.len,
                 ZMQ_DONTWAIT | (bulk != NULL ? ZMQ_SNDMORE : 0)) < 0)
        goto out;
    if (bulk != NULL && zmq_send(sock, bulk, blen, ZMQ_DONTWAIT) < 0)
        goto out;
    t->bytes_out += b.len + blen;
    rc = 0;
out:
    wm_buf_free(&b);
    return rc;
}

/* P's DEALER, opened now if it has none; NULL when it cannot be. */
static void *
peer_dealer(wm_transport *t, struct peer *p)
{
    const uint8_t *curve;
    int refused;

    if (p->dealer == NULL && p->addr[0] != '\0' &&
        (curve = wm_trust_curve(t->trust, p->m->id)) != NULL) {
        p->dealer = client_socket(t, curve, p->addr, 0, &refused);
        if (p->dealer != NULL) {
            t->opened++;
        } else if (refused) { /* not again until it signs another */
            p->addr[0] = '\0';
            p->m->reachable = 0;
            t->io.unreachable(t->io.arg, p->m);
        }
    }
    p->last_used = now_ms();
    return p->dealer;
}

int
wm_transport_send(wm_transport *t, wm_member *to, const wm_msg *m,
                  const void *bulk, size_t blen)
{
    struct peer *p = wm_map_get(t->peers, to->id, WM_ID_LEN);

    if (p == NULL || peer_dealer(t, p) == NULL)
        return -1;
    to->bytes_out += blen;
    return send_frames(t, p->dealer, NULL, 0, m, bulk, blen);
}

int
wm_transport_reply(wm_transport *t, const wm_from *f, const wm_msg *m,
                   const void *bulk, size_t blen)
{
    if (f->m != NULL)
        f->m->bytes_out += blen;
    return send_frames(t, f->sock, f->ridlen > 0 ? f->rid : NULL, f->ridlen,
                       m, bulk, blen);
}

int
wm_transport_take_bulk(wm_transport *t, zmq_msg_t *out)
{
    if (t->bulk == NULL || zmq_msg_init(out) != 0)
        return -1;
    return zmq_msg_move(out, t->bulk) == 0 ? 0 : -1;
}

/* --- members and seeds */

void
wm_transport_connect(wm_transport *t, wm_member *m, const char *addr)
{
    struct peer *p = wm_map_get(t->peers, m->id, WM_ID_LEN);
    const uint8_t *curve = wm_trust_curve(t->trust, m->id);

    if (addr == NULL)
        addr = m->has_alive ? m->alive.addr : "";
    if (addr[0] == '\0' || curve == NULL)
        return;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        if (p == NULL || wm_map_put(t->peers, m->id, WM_ID_LEN, p) != 0) {
            free(p);
            return;
        }
        p->m = m;
    }
    if (strcmp(p->addr, addr) != 0) {
        retire(t, p->dealer);
        p->dealer = NULL;
        snprintf(p->addr, sizeof(p->addr), "%s", addr);
    }
    m->reachable = 1;
}

void
wm_transport_disconnect(wm_transport *t, wm_member *m)
{
    struct peer *p = wm_map_get(t->peers, m->id, WM_ID_LEN);

    if (p != NULL) {
        retire(t, p->dealer);
        p->dealer = NULL;
        p->addr[0] = '\0';
    }
    m->reachable = 0;
}

static void
seeds_close(wm_transport *t, const char *addr)
{
    for (size_t i = 0; i < t->nseeds; i++) {
        if (t->seeds[i].sock != NULL &&
            (addr == NULL || strcmp(t->seeds[i].addr, addr) == 0)) {
            retire(t, t->seeds[i].sock);
            t->seeds[i].sock = NULL;
        }
    }
}

/* Opens a socket to seed address ADDR expecting key ID. */
static void
seed_open(wm_transport *t, const char *addr, const uint8_t *id)
{
    struct seed *s = &t->seeds[t->nseeds];

    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    memcpy(s->key, id, WM_ID_LEN);
    /* A seed named without its key is tried with every trusted key: all
     * but one fail their handshake and retry. At the default 100 ms, N
     * joiners of a fleet of N keys would make the seed refuse N * N
     * handshakes 5 times in the first 2 s and be too busy to answer the
     * one that counts. */
    s->sock = client_socket(t, wm_trust_curve(t->trust, id), s->addr,
                            SEED_RETRY_MS, NULL);
    if (s->sock != NULL)
        t->nseeds++;
}

void
wm_transport_seeds(wm_transport *t)
{
    const wm_config *cfg = t->node->cfg;
    size_t nkeys = wm_trust_count(t->trust);

    seeds_close(t, NULL);
    free(t->seeds);
    t->seeds = NULL;
    t->nseeds = 0;
    if (cfg->nseeds == 0 || nkeys == 0)
        return;
    t->seeds = calloc(cfg->nseeds * nkeys, sizeof(*t->seeds));
    if (t->seeds == NULL)
        return;
    for (size_t i = 0; i < cfg->nseeds; i++) {
        const wm_seed *seed = &cfg->seeds[i];
        /* This node itself: the same seed list goes to every agent. */
        if (strcmp(seed->addr, t->advertise) == 0 ||
            (seed->has_key && memcmp(seed->key, wm_identity_pubkey(t->node->id),
                                     WM_ID_LEN) == 0))
            continue;
        if (!seed->has_key) {
            for (size_t k = 0; k < nkeys; k++)
                seed_open(t, seed->addr, wm_trust_at(t->trust, k));
        } else if (wm_trust_is_trusted(t->trust, seed->key)) {
            seed_open(t, seed->addr, seed->key);
        } else {
            char hex[WM_PUBKEY_HEX];
            wm_hex_encode(seed->key, sizeof(seed->key), hex);
            wm_warn("cluster: seed %s: its key %.16s is not in trusted_keys; "
                    "not tried", seed->addr, hex);
        }
    }
    t->next_seed = now_ms();
}

/* An answer on a seed socket names the member there: its key is the one
 * the socket was made with. */
static wm_member *
seed_identified(wm_transport *t, struct seed *s)
{
    wm_member *m = wm_members_add(t->ms, s->key, now_ms());
    char addr[WM_WIRE_ADDR_MAX + 1];

    if (m == NULL)
        return NULL;
    snprintf(addr, sizeof(addr), "%s", s->addr);
    if (!m->reachable) {
        wm_transport_connect(t, m, addr);
        wm_members_sync(t->ms, m, 1);
    }
    wm_info("cluster: seed %s is %.16s", addr, m->hex);
    seeds_close(t, addr);
    return m;
}

/* --- receiving */

static void
handle(wm_transport *t, const wm_from *f, const void *hdr, size_t hlen,
       const void *bulk, size_t blen, int has_bulk)
{
    const char *why = NULL;
    int want_bulk;

    t->bytes_in += hlen + blen;
    if (f->m != NULL)
        f->m->bytes_in += blen;
    if (blen > WM_CHUNK_SIZE) {
        why = "bulk frame over 1 MiB";
        goto reject;
    }
    if (wm_msg_decode(hdr, hlen, t->in, &why) != 0)
        goto reject;
    want_bulk = t->in->type == WM_MSG_CHUNK || t->in->type == WM_MSG_MAPDATA;
    if (want_bulk != has_bulk) {
        why = "wrong frame count";
        goto reject;
    }
    t->io.recv(t->io.arg, f, t->in, has_bulk ? bulk : NULL, blen);
    return;
reject:
    t->rejected++;
    wm_warn("cluster: rejected a message from %.16s: %s",
            f->m != NULL ? f->m->hex : "?", why != NULL ? why : "malformed");
}

static int
rcvmore(void *sock)
{
    int more = 0;
    size_t len = sizeof(more);

    return zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) == 0 && more;
}

/* Reads the rest of a multipart message; returns how many frames. */
static int
drain(void *sock)
{
    int extra = 0;
    zmq_msg_t msg;

    while (rcvmore(sock)) {
        zmq_msg_init(&msg);
        zmq_msg_recv(&msg, sock, 0);
        zmq_msg_close(&msg);
        extra++;
    }
    return extra;
}

/* [header] [bulk]? after the routing id (ROUTER) or alone (DEALER). */
static void
read_body(wm_transport *t, void *sock, const wm_from *f, zmq_msg_t *hdr)
{
    zmq_msg_t bulk;
    int has_bulk = 0;

    zmq_msg_init(&bulk);
    if (rcvmore(sock)) {
        zmq_msg_recv(&bulk, sock, 0);
        has_bulk = 1;
        if (drain(sock) > 0) {
            t->rejected++;
            zmq_msg_close(&bulk);
            return;
        }
    }
    t->bulk = has_bulk ? &bulk : NULL;
    handle(t, f, zmq_msg_data(hdr), zmq_msg_size(hdr), zmq_msg_data(&bulk),
           zmq_msg_size(&bulk), has_bulk);
    t->bulk = NULL;
    zmq_msg_close(&bulk); /* empty if the handler took it */
}

static void
read_router(wm_transport *t)
{
    for (int i = 0; i < READS_PER_TURN; i++) {
        zmq_msg_t rid, hdr;
        wm_from f;
        const char *user;
        uint8_t id[WM_ID_LEN];

        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, t->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            return;
        }
        memset(&f, 0, sizeof(f));
        zmq_msg_init(&hdr);
        if (!rcvmore(t->router) || zmq_msg_recv(&hdr, t->router, 0) < 0 ||
            zmq_msg_size(&rid) > sizeof(f.rid)) {
            drain(t->router);
            goto next;
        }
        /* Who sent it is what the ZAP handler said, nothing else. */
        user = zmq_msg_gets(&hdr, "User-Id");
        if (user == NULL || wm_hex_decode(user, id, sizeof(id)) != 0 ||
            (f.m = wm_members_add(t->ms, id, now_ms())) == NULL) {
            drain(t->router);
            goto next;
        }
        f.sock = t->router;
        f.ridlen = zmq_msg_size(&rid);
        memcpy(f.rid, zmq_msg_data(&rid), f.ridlen);
        read_body(t, t->router, &f, &hdr);
    next:
        zmq_msg_close(&hdr);
        zmq_msg_close(&rid);
    }
}

static void
read_dealer(wm_transport *t, void *sock, wm_member *m, int max)
{
    for (int i = 0; i < max; i++) {
        zmq_msg_t hdr;
        wm_from f;

        zmq_msg_init(&hdr);
        if (zmq_msg_recv(&hdr, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&hdr);
            return;
        }
        memset(&f, 0, sizeof(f));
        f.m = m;
        f.sock = sock;
        read_body(t, sock, &f, &hdr);
        zmq_msg_close(&hdr);
    }
}

static void
read_seed(wm_transport *t, struct seed *s)
{
    void *sock = s->sock;
    wm_member *m = seed_identified(t, s);

    /* The seed's socket is retired (closed after this round): read the
     * answer that identified it. */
    if (m == NULL)
        drain(sock);
    else
        read_dealer(t, sock, m, 1);
}

/* ZAP (RFC 27): admits CURVE clients whose key is trusted; the User-Id is
 * the node id in hex. */
static void
read_zap(wm_transport *t)
{
    char frames[7][256];
    size_t lens[7];
    int n = 0;
    const uint8_t *who = NULL;
    char user[WM_PUBKEY_HEX] = "";

    for (;;) {
        int got = zmq_recv(t->zap, frames[n < 7 ? n : 6], 256, ZMQ_DONTWAIT);
        if (got < 0)
            return;
        if (n < 7)
            lens[n] = (size_t)(got > 256 ? 256 : got);
        n++;
        if (!rcvmore(t->zap))
            break;
    }
    if (n >= 7 && lens[5] == 5 && memcmp(frames[5], "CURVE", 5) == 0 &&
        lens[6] == 32)
        who = wm_trust_by_curve(t->trust, (const uint8_t *)frames[6]);
    if (who != NULL)
        wm_hex_encode(who, WM_ID_LEN, user);
    else
        t->rejected++;
    zmq_send(t->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(t->zap, frames[1], n > 1 ? lens[1] : 0, ZMQ_SNDMORE);
    zmq_send(t->zap, who != NULL ? "200" : "400", 3, ZMQ_SNDMORE);
    zmq_send(t->zap, who != NULL ? "OK" : "untrusted key", who ? 2 : 13,
             ZMQ_SNDMORE);
    zmq_send(t->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(t->zap, "", 0, 0);
}

/* --- the loop's part */

static int
add_owner(wm_transport *t, struct peer *p, struct seed *s)
{
    if (t->nowners == t->owners_cap) {
        size_t cap = t->owners_cap ? 2 * t->owners_cap : 64;
        struct owner *grown = realloc(t->owners, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        t->owners = grown;
        t->owners_cap = cap;
    }
    t->owners[t->nowners].peer = p;
    t->owners[t->nowners++].seed = s;
    return 0;
}

size_t
wm_transport_poll(void *arg, zmq_pollitem_t *items, size_t max,
                  long *timeout_ms)
{
    wm_transport *t = arg;
    size_t want = 2 + wm_map_count(t->peers) + t->nseeds, n = 0;
    void *cur = NULL;
    struct peer *p;
    int64_t left;
    int seeding = 0;

    if (want > max)
        return want;
    t->nowners = 0;
    items[n++] = (zmq_pollitem_t){t->zap, 0, ZMQ_POLLIN, 0};
    items[n++] = (zmq_pollitem_t){t->router, 0, ZMQ_POLLIN, 0};
    while ((p = wm_map_next(t->peers, &cur, NULL, NULL)) != NULL) {
        if (p->dealer == NULL || add_owner(t, p, NULL) != 0)
            continue;
        items[n++] = (zmq_pollitem_t){p->dealer, 0, ZMQ_POLLIN, 0};
    }
    for (size_t i = 0; i < t->nseeds; i++) {
        if (t->seeds[i].sock == NULL || add_owner(t, NULL, &t->seeds[i]) != 0)
            continue;
        items[n++] = (zmq_pollitem_t){t->seeds[i].sock, 0, ZMQ_POLLIN, 0};
        seeding = 1;
    }
    if (seeding) { /* once every seed answered, no more wake-ups for them */
        left = t->next_seed - now_ms();
        if (left < 0)
            left = 0;
        if (left < *timeout_ms)
            *timeout_ms = (long)left;
    }
    return n;
}

static void
close_idle(wm_transport *t, int64_t now)
{
    void *cur = NULL;
    struct peer *p;

    if (now < t->next_idle_check)
        return;
    t->next_idle_check = now + t->idle_ms / 10;
    while ((p = wm_map_next(t->peers, &cur, NULL, NULL)) != NULL) {
        if (p->dealer != NULL && now - p->last_used > t->idle_ms) {
            retire(t, p->dealer);
            p->dealer = NULL;
        }
    }
}

void
wm_transport_dispatch(void *arg, const zmq_pollitem_t *items, size_t n)
{
    wm_transport *t = arg;
    int64_t now = now_ms();

    if (n >= 2 && (items[0].revents & ZMQ_POLLIN))
        read_zap(t);
    if (n >= 2 && (items[1].revents & ZMQ_POLLIN))
        read_router(t);
    for (size_t i = 2; i < n && i - 2 < t->nowners; i++) {
        struct owner *o = &t->owners[i - 2];
        if (!(items[i].revents & ZMQ_POLLIN))
            continue;
        /* The socket may have been replaced earlier in this round. */
        if (o->seed != NULL && o->seed->sock == items[i].socket)
            read_seed(t, o->seed);
        else if (o->peer != NULL && o->peer->dealer == items[i].socket) {
            o->peer->last_used = now;
            read_dealer(t, o->peer->dealer, o->peer->m, READS_PER_TURN);
        }
    }
    close_idle(t, now);
    if (t->nseeds > 0 && now >= t->next_seed) {
        t->next_seed = now + SEED_RETRY_MS;
        for (size_t i = 0; i < t->nseeds; i++) {
            if (t->seeds[i].sock == NULL)
                continue;
            wm_members_ping(t->ms, t->seed_ping);
            send_frames(t, t->seeds[i].sock, NULL, 0, t->seed_ping, NULL, 0);
        }
    }
    for (size_t i = 0; i < t->nretired; i++)
        zmq_close(t->retired[i]);
    t->nretired = 0;
}

/* --- life cycle */

void
wm_transport_derive_advertise(const wm_config *cfg, char *out, size_t outsz)
{
    const char *listen = cfg->cluster_listen, *port = strrchr(listen, ':');
    char host[256];
    struct addrinfo hints, *res = NULL;

    if (cfg->cluster_advertise != NULL) {
        snprintf(out, outsz, "%s", cfg->cluster_advertise);
        return;
    }
    snprintf(out, outsz, "%s", listen);
    if (port == NULL || (strncmp(listen, "tcp://0.0.0.0:", 14) != 0 &&
                         strncmp(listen, "tcp://*:", 8) != 0))
        return;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    if (gethostname(host, sizeof(host)) == 0 &&
        getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL) {
        char ip[64];
        if (getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof(ip), NULL, 0,
                        NI_NUMERICHOST) == 0)
            snprintf(out, outsz, "tcp://%s%s", ip, port);
    }
    if (res != NULL)
        freeaddrinfo(res);
}

int
wm_transport_new(wm_transport **out, wm_node *node, const wm_trust *trust,
                 wm_members *ms, const wm_transport_io *io, const char **why)
{
    wm_transport *t = calloc(1, sizeof(*t));
    int one = 1, backlog = 4096;

    *out = NULL;
    if (t == NULL || (t->in = malloc(sizeof(wm_msg))) == NULL ||
        (t->seed_ping = calloc(1, sizeof(wm_msg))) == NULL ||
        (t->peers = wm_map_new()) == NULL) {
        *why = "out of memory";
        wm_transport_destroy(&t);
        return -ENOMEM;
    }
    t->node = node;
    t->trust = trust;
    t->ms = ms;
    t->idle_ms = IDLE_MS;
#ifdef WM_TEST_HOOKS
    /* The tests of the idle close, in test builds only. */
    const char *idle = getenv("WHEELMESH_TEST_IDLE_MS");
    if (idle != NULL && strtoll(idle, NULL, 10) > 0)
        t->idle_ms = strtoll(idle, NULL, 10);
#endif
    t->io = *io;
    wm_identity_curve(node->id, t->curve_pk, t->curve_sk);
    wm_transport_derive_advertise(node->cfg, t->advertise,
                                  sizeof(t->advertise));
    t->zap = zmq_socket(node->zmq, ZMQ_REP);
    if (t->zap == NULL || zmq_bind(t->zap, ZAP_ENDPOINT) != 0) {
        *why = "cannot bind the ZAP handler";
        wm_transport_destroy(&t);
        return -EIO;
    }
    t->router = zmq_socket(node->zmq, ZMQ_ROUTER);
    if (t->router == NULL) {
        *why = "cannot create the cluster socket";
        wm_transport_destroy(&t);
        return -EIO;
    }
    set_sockopts(t->router);
    /* Joiners try the seed once per trusted key, so a fleet started at
     * once connects N * N times within a second; past the default backlog
     * of 100 the kernel drops the SYNs and the one connection that counts
     * waits out TCP's retries (1, 3, 7 s...). The kernel caps it. */
    zmq_setsockopt(t->router, ZMQ_BACKLOG, &backlog, sizeof(backlog));
    zmq_setsockopt(t->router, ZMQ_CURVE_SERVER, &one, sizeof(one));
    zmq_setsockopt(t->router, ZMQ_CURVE_SECRETKEY, t->curve_sk, 32);
    zmq_setsockopt(t->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN));
    if (zmq_bind(t->router, node->cfg->cluster_listen) != 0) {
        *why = "cannot listen on cluster.listen (address in use?)";
        wm_transport_destroy(&t);
        return -EADDRINUSE;
    }
    *out = t;
    return 0;
}

static void
peer_free(void *arg)
{
    struct peer *p = arg;

    if (p->dealer != NULL)
        zmq_close(p->dealer);
    free(p);
}

void
wm_transport_destroy(wm_transport **tp)
{
    wm_transport *t;

    if (tp == NULL || *tp == NULL)
        return;
    t = *tp;
    wm_map_destroy(&t->peers, peer_free);
    seeds_close(t, NULL);
    for (size_t i = 0; i < t->nretired; i++)
        zmq_close(t->retired[i]);
    if (t->router != NULL)
        zmq_close(t->router);
    if (t->zap != NULL)
        zmq_close(t->zap);
    free(t->seeds);
    free(t->retired);
    free(t->owners);
    free(t->in);
    free(t->seed_ping);
    free(t);
    *tp = NULL;
}

const char *
wm_transport_advertise(const wm_transport *t)
{
    return t->advertise;
}

void
wm_transport_stats_get(const wm_transport *t, wm_transport_stats *out)
{
    void *cur = NULL;
    struct peer *p;

    out->rejected = t->rejected;
    out->bytes_in = t->bytes_in;
    out->bytes_out = t->bytes_out;
    out->opened = t->opened;
    out->open = 0;
    while ((p = wm_map_next(t->peers, &cur, NULL, NULL)) != NULL)
        out->open += p->dealer != NULL;
}
