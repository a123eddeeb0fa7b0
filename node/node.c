/*
 * `wheelmesh node`: start-up, the node loop, and a clean stop.
 *
 * The main thread is the node loop. It owns every ZeroMQ socket and is the
 * only LMDB writer; HTTP threads hand it work over the inproc socket
 * LOOP_ENDPOINT (a REQ per call, the loop's ROUTER answers). Signal
 * handlers only set flags, which the loop reads between polls.
 */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "cluster.h"
#include "hash.h"
#include "http.h"
#include "log.h"
#include "pages.h"
#include "upstream.h"
#include "wheelzip.h"

#define LOOP_ENDPOINT     "inproc://wm-loop"
#define PROGRESS_ENDPOINT "inproc://wm-progress"
#define POLL_MS           100 /* how often flags are read: stop within a second */

static volatile sig_atomic_t quit_signal;
static volatile sig_atomic_t hup_signal;

static void
on_signal(int sig)
{
    if (sig == SIGHUP)
        hup_signal = 1;
    else
        quit_signal = sig;
}

/* --- shared objects */

wm_blob *
wm_blob_new(const void *data, size_t len)
{
    wm_blob *b = malloc(sizeof(*b) + len);
    uint8_t digest[WM_SHA256_LEN];
    char hex[33];

    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->data, data, len);
    wm_sha256_digest(data, len, digest);
    wm_hex_encode(digest, 16, hex);
    snprintf(b->etag, sizeof(b->etag), "\"%s\"", hex);
    return b;
}

wm_blob *
wm_blob_ref(wm_blob *b)
{
    if (b != NULL)
        atomic_fetch_add(&b->refs, 1);
    return b;
}

void
wm_blob_release(wm_blob *b)
{
    if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

int
wm_node_spool(const wm_node *node)
{
    char path[PATH_MAX];
    int fd;

    if (snprintf(path, sizeof(path), "%s/spool-XXXXXX", node->cfg->data_dir) >=
        (int)sizeof(path))
        return -ENAMETOOLONG;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

wm_download *
wm_download_new(const wm_node *node, const uint8_t *sha, const char *filename,
                uint64_t total, int source)
{
    wm_download *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    d->fd = wm_node_spool(node);
    if (d->fd < 0) {
        free(d);
        return NULL;
    }
    atomic_init(&d->refs, 1);
    atomic_init(&d->received, 0);
    atomic_init(&d->total, total);
    atomic_init(&d->state, WM_DL_RUNNING);
    d->source = source;
    memcpy(d->sha256, sha, WM_SHA256_LEN);
    snprintf(d->filename, sizeof(d->filename), "%s", filename);
    return d;
}

wm_download *
wm_download_ref(wm_download *d)
{
    if (d != NULL)
        atomic_fetch_add(&d->refs, 1);
    return d;
}

void
wm_download_release(wm_download *d)
{
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    if (d->fd >= 0)
        close(d->fd);
    free(d);
}

uint64_t
wm_download_available(wm_download *d)
{
    uint64_t got = atomic_load(&d->received);

    if (atomic_load(&d->state) == WM_DL_VERIFIED)
        return got;
    return got > 0 ? got - 1 : 0;
}

void *
wm_node_progress_socket(wm_node *node, const uint8_t *sha)
{
    void *sub = zmq_socket(node->zmq, ZMQ_SUB);
    int linger = 0;

    if (sub == NULL)
        return NULL;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_setsockopt(sub, ZMQ_SUBSCRIBE, sha, WM_SHA256_LEN) != 0 ||
        zmq_connect(sub, PROGRESS_ENDPOINT) != 0) {
        zmq_close(sub);
        return NULL;
    }
    return sub;
}

void
wm_node_progress_wait(void *sub, int timeout_ms)
{
    zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
    char drain[WM_SHA256_LEN];

    if (sub == NULL) {
        usleep((useconds_t)timeout_ms * 1000);
        return;
    }
    if (zmq_poll(&item, 1, timeout_ms) > 0)
        while (zmq_recv(sub, drain, sizeof(drain), ZMQ_DONTWAIT) >= 0)
            ; /* any message means "look again"; take them all */
}

/* --- calls into the loop */

int
wm_node_call(wm_node *node, wm_request *req)
{
    void *sock = zmq_socket(node->zmq, ZMQ_REQ);
    int linger = 0, rc = -ESHUTDOWN;

    if (sock == NULL)
        return -ESHUTDOWN; /* the context is shutting down */
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(sock, LOOP_ENDPOINT) == 0 &&
        zmq_send(sock, &req, sizeof(req), 0) == sizeof(req)) {
        char ack;
        if (zmq_recv(sock, &ack, 1, 0) == 1)
            rc = 0;
    }
    zmq_close(sock);
    return rc;
}

void
wm_loop_answer(void *router, wm_waiter *w)
{
    zmq_send(router, w->id, w->idlen, ZMQ_SNDMORE);
    zmq_send(router, "", 0, ZMQ_SNDMORE);
    zmq_send(router, "", 1, 0);
    free(w);
}

/* A wheel waiting to be written into the store. The loop writes one at a
 * time, a batch of chunks per turn, so probes and pages are answered
 * while a large wheel goes in. */
struct wm_commit {
    struct wm_commit *next;
    wm_store_writer *w;
    wm_download *dl;   /* a download: served from its spool meanwhile */
    wm_waiter *waiter; /* a PUT: answered when it is done */
};

/* Signs INFO and queues the wheel in FD for the store. Returns 0, or the
 * error of wm_store_writer_new (-EEXIST: stored already). */
static int
commit_queue(wm_node *node, wm_file_info *info, int fd, const void *meta,
             size_t meta_len, const void *chunkmap, wm_download *dl,
             wm_waiter *waiter)
{
    struct wm_commit *c, **tail;
    wm_store_writer *w;
    int rc;

    info->added = info->last_used = time(NULL);
    wm_store_sign(info, node->id);
    rc = wm_store_writer_new(node->store, info, fd, meta, meta_len, chunkmap, 0,
                             &w);
    if (rc != 0)
        return rc;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        wm_store_writer_destroy(&w);
        return -ENOMEM;
    }
    c->w = w;
    c->dl = wm_download_ref(dl);
    c->waiter = waiter;
    for (tail = &node->commits; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = c;
    return 0;
}

static void
commit_done(wm_node *node, struct wm_commit *c, int rc)
{
    const wm_file_info *info = wm_store_writer_info(c->w);
    char sha[WM_SHA256_HEX];

    if (rc == 0) {
        wm_info("store: stored %s (%" PRIu64 " bytes, %s)", info->filename,
                info->size,
                info->source == WM_SOURCE_PEER       ? "from a peer"
                : info->source == WM_SOURCE_UPSTREAM ? "from upstream"
                                                     : "put");
        if (node->on_stored != NULL)
            node->on_stored(node->on_stored_arg, info);
    } else if (rc != -ESHUTDOWN && rc != -EEXIST) {
        wm_hex_encode(info->sha256, WM_SHA256_LEN, sha);
        wm_error("store: cannot store %s (sha256 %s): %s", info->filename, sha,
                 strerror(-rc));
    }
    if (c->waiter != NULL) {
        c->waiter->req->result = rc;
        if (rc == 0) /* the record as stored, with its chunks_root */
            c->waiter->req->info = *info;
        wm_loop_answer(node->router, c->waiter);
    }
    wm_store_writer_destroy(&c->w);
    wm_download_release(c->dl);
    free(c);
}

/* Writes one batch of the first queued wheel. */
static void
commit_step(wm_node *node)
{
    struct wm_commit *c = node->commits;
    int rc;

    if (c == NULL)
        return;
    rc = wm_store_writer_step(c->w);
    if (rc == 1)
        return;
    node->commits = c->next;
    commit_done(node, c, rc);
}

static void
commits_abort(wm_node *node)
{
    while (node->commits != NULL) {
        struct wm_commit *c = node->commits;
        node->commits = c->next;
        commit_done(node, c, -ESHUTDOWN);
    }
}

wm_download *
wm_node_committing(wm_node *node, const uint8_t *sha)
{
    for (struct wm_commit *c = node->commits; c != NULL; c = c->next)
        if (c->dl != NULL && memcmp(c->dl->sha256, sha, WM_SHA256_LEN) == 0)
            return c->dl;
    return NULL;
}

int
wm_node_commit(wm_node *node, wm_download *dl, const void *chunkmap)
{
    char fdpath[64], *meta = NULL;
    const char *why = NULL;
    size_t meta_len = 0;
    wm_wheelname wn;
    wm_file_info info;
    int rc;

    snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", dl->fd);
    if (wm_wheelname_parse(dl->filename, &wn, &why) != 0 ||
        wm_wheelzip_check(fdpath, &wn, &meta, &meta_len, &why) != 0) {
        /* The bytes match the hash the client asked for, so it has them;
         * the node just does not keep a file it cannot vouch for. */
        wm_warn("store: %s matches its hash but is not kept: %s", dl->filename,
                why);
        return -EINVAL;
    }
    memset(&info, 0, sizeof(info));
    snprintf(info.filename, sizeof(info.filename), "%s", wn.filename);
    snprintf(info.project, sizeof(info.project), "%s", wn.project);
    memcpy(info.sha256, dl->sha256, WM_SHA256_LEN);
    info.size = atomic_load(&dl->received);
    info.source = (uint8_t)dl->source;
    wm_sha256_digest(meta, meta_len, info.meta_sha256);
    info.meta_size = (uint32_t)meta_len;
    rc = commit_queue(node, &info, dl->fd, meta, meta_len, chunkmap, dl, NULL);
    free(meta);
    return rc == -EEXIST ? 0 : rc;
}

/* The loop's state that request handlers need. */
struct loop {
    wm_node *node;
    void *router;
    wm_upstream *up;
    wm_cluster *cluster;
};

static void
on_stored(void *arg, const wm_file_info *info)
{
    struct loop *l = arg;

    wm_upstream_store_changed(l->up);
    if (l->cluster != NULL)
        wm_cluster_stored(l->cluster, info);
}

/* Renders a page that needs the cluster's view (links, files, status,
 * metrics) into REQ->blob. */
static void
loop_render(struct loop *l, wm_request *req)
{
    const char *project = req->project[0] != '\0' ? req->project : NULL;
    wm_remote_file *remote = NULL;
    size_t nremote = 0, len = 0;
    wm_store_view *v;
    char *body = NULL;

    if (wm_store_view_open(l->node->store, &v) != 0) {
        req->status = 503;
        snprintf(req->why, sizeof(req->why), "store busy");
        return;
    }
    if (req->op == WM_OP_LINKS || req->op == WM_OP_FILES)
        remote = wm_cluster_remote(l->cluster, project, &nremote);
    switch (req->op) {
    case WM_OP_LINKS:
        body = wm_page_links(v, project, remote, nremote, &len);
        break;
    case WM_OP_FILES:
        body = wm_page_files_json(l->node, v, project, remote, nremote, &len);
        break;
    case WM_OP_STATUS:
        body = wm_page_status(l->node, v, l->cluster, &len);
        break;
    default:
        body = wm_page_metrics(l->node, v, l->cluster, &len);
        break;
    }
    wm_store_view_close(&v);
    free(remote);
    req->blob = body != NULL ? wm_blob_new(body, len) : NULL;
    free(body);
    req->status = req->blob != NULL ? 200 : 500;
    if (req->blob == NULL)
        snprintf(req->why, sizeof(req->why), "cannot render the page");
}

/* Reads one request from the loop's ROUTER: [peer id][empty][request*].
 * PUTs are done at once; the rest may wait on upstream. */
static void
loop_serve(struct loop *l)
{
    void *router = l->router;
    wm_waiter *w = calloc(1, sizeof(*w));
    wm_request *req;
    char empty[8];
    int n, more = 0;
    size_t more_len = sizeof(more);

    if (w == NULL)
        return; /* the requester stays blocked until shutdown */
    n = zmq_recv(router, w->id, sizeof(w->id), ZMQ_DONTWAIT);
    if (n < 0 || (size_t)n > sizeof(w->id) ||
        zmq_recv(router, empty, sizeof(empty), 0) != 0 ||
        zmq_recv(router, &req, sizeof(req), 0) != sizeof(req)) {
        /* inproc peers are our own threads; drain whatever this was */
        while (zmq_getsockopt(router, ZMQ_RCVMORE, &more, &more_len) == 0 &&
               more)
            zmq_recv(router, empty, sizeof(empty), 0);
        free(w);
        return;
    }
    w->idlen = (size_t)n;
    w->req = req;
    switch (req->op) {
    case WM_OP_PUT:
        req->info.source = WM_SOURCE_PUT;
        /* The HTTP thread hashed the body as it arrived. */
        req->result = commit_queue(l->node, &req->info, req->fd, req->meta,
                                   req->meta_len, NULL, NULL, w);
        if (req->result != 0) /* else answered once it is stored */
            wm_loop_answer(router, w);
        break;
    case WM_OP_PAGE:
    case WM_OP_FETCH:
    case WM_OP_META:
        wm_upstream_request(l->up, w);
        break;
    default:
        loop_render(l, req);
        wm_loop_answer(router, w);
        break;
    }
}

#define MAX_POLLITEMS 1024

static int
node_loop(struct loop *l)
{
    static zmq_pollitem_t items[MAX_POLLITEMS];
    void *router = l->router;

    while (quit_signal == 0) {
        long timeout = POLL_MS;
        size_t ncurl, ncluster;
        int n;

        if (l->node->commits != NULL)
            timeout = 0; /* a wheel is being written: keep writing */
        items[0] = (zmq_pollitem_t){router, 0, ZMQ_POLLIN, 0};
        ncurl = wm_upstream_pollitems(l->up, items + 1, MAX_POLLITEMS / 2,
                                      &timeout);
        ncluster = wm_cluster_pollitems(l->cluster, items + 1 + ncurl,
                                        MAX_POLLITEMS - 1 - ncurl, &timeout);
        n = zmq_poll(items, (int)(1 + ncurl + ncluster), timeout);
        if (n < 0 && errno != EINTR) {
            wm_error("loop: poll failed: %s", zmq_strerror(errno));
            return -1;
        }
        if (hup_signal) {
            hup_signal = 0;
            if (wm_log_reopen() != 0)
                wm_warn("log: cannot reopen the log file");
            wm_info("node: SIGHUP: log reopened");
            wm_cluster_reload(l->cluster);
        }
        if (n > 0 && (items[0].revents & ZMQ_POLLIN)) {
            /* Serve what is queued, but let curl run in between. */
            for (int i = 0; i < 64; i++) {
                zmq_pollitem_t one = {router, 0, ZMQ_POLLIN, 0};
                if (zmq_poll(&one, 1, 0) <= 0)
                    break;
                loop_serve(l);
            }
        }
        wm_upstream_dispatch(l->up, items + 1, n > 0 ? ncurl : 0);
        wm_cluster_dispatch(l->cluster, items + 1 + ncurl,
                            n > 0 ? ncluster : 0);
        commit_step(l->node);
    }
    commits_abort(l->node);
    wm_info("node: %s received, stopping", strsignal(quit_signal));
    return 0;
}

/* --- start-up */

static void
node_usage(FILE *out)
{
    fprintf(
        out,
        "usage: wheelmesh node [-c FILE] [--data DIR] [--http HOST:PORT]\n"
        "                      [--daemon --pidfile FILE] [--log FILE]\n"
        "       wheelmesh node --check -c FILE\n"
        "\n"
        "Runs a wheelmesh node: a wheel cache that pip uses as its index.\n"
        "With no config it serves http://127.0.0.1:7390/ from\n"
        "$XDG_CACHE_HOME/wheelmesh (else ~/.cache/wheelmesh).\n"
        "\n"
        "  -c, --config FILE   JSON config (every key optional)\n"
        "      --check         validate the config and exit\n"
        "      --data DIR      data directory (overrides node.data_dir)\n"
        "      --http H:P      HTTP address (overrides http.listen)\n"
        "      --daemon        detach once ready (needs --pidfile)\n"
        "      --pidfile FILE  write the node's pid to FILE\n"
        "      --log FILE      log to FILE instead of stderr\n"
        "  -v, --verbose       log debug lines\n"
        "  -h, --help          show this help\n"
        "\n"
        "Then: pip install --index-url http://127.0.0.1:7390/simple/ PKG\n");
}

/* mkdir -p with mode 0700 for what it creates. */
static int
make_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Replaces *FIELD with a copy of VALUE. */
static int
set_string(char **field, const char *value)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return -ENOMEM;
    free(*field);
    *field = copy;
    return 0;
}

/* Forks; the parent waits until the child reports ready (exit 0) or
 * fails (exit 1, pointing at LOG where the child said why). In the child,
 * returns the pipe to report on. */
static int
daemonize(const char *log)
{
    int fds[2];
    pid_t pid;
    char status = 1;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(fds[1]);
        if (read(fds[0], &status, 1) != 1)
            status = 1;
        if (status != 0)
            fprintf(stderr, "wheelmesh node: failed to start; see %s\n", log);
        _exit(status == 0 ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    return fds[1];
}

static int
write_pidfile(const char *path)
{
    FILE *f = fopen(path, "we");

    if (f == NULL)
        return -errno;
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f) == 0 ? 0 : -EIO;
}

struct node_opts {
    const char *config, *data, *http, *pidfile, *log;
    int check, daemon, verbose;
};

/* Parses the node's options. Returns 0, 1 for --help, or 2 on a usage
 * error (already reported). */
static int
parse_opts(int argc, char **argv, struct node_opts *o)
{
    enum {
        OPT_DATA = 256,
        OPT_HTTP,
        OPT_DAEMON,
        OPT_PIDFILE,
        OPT_LOG,
        OPT_CHECK
    };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"data", required_argument, NULL, OPT_DATA},
        {"http", required_argument, NULL, OPT_HTTP},
        {"daemon", no_argument, NULL, OPT_DAEMON},
        {"pidfile", required_argument, NULL, OPT_PIDFILE},
        {"log", required_argument, NULL, OPT_LOG},
        {"check", no_argument, NULL, OPT_CHECK},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    memset(o, 0, sizeof(*o));
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case OPT_DATA:
            o->data = optarg;
            break;
        case OPT_HTTP:
            o->http = optarg;
            break;
        case OPT_DAEMON:
            o->daemon = 1;
            break;
        case OPT_PIDFILE:
            o->pidfile = optarg;
            break;
        case OPT_LOG:
            o->log = optarg;
            break;
        case OPT_CHECK:
            o->check = 1;
            break;
        case 'v':
            o->verbose = 1;
            break;
        case 'h':
            node_usage(stdout);
            return 1;
        default:
            node_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "wheelmesh node: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (o->check && o->config == NULL) {
        fprintf(stderr, "wheelmesh node: --check needs -c FILE\n");
        return 2;
    }
    if (o->daemon && o->pidfile == NULL) {
        fprintf(stderr, "wheelmesh node: --daemon needs --pidfile FILE\n");
        return 2;
    }
    return 0;
}

/* Loads the config and applies the command line over it. Returns 0, or
 * 1 after printing what is wrong. */
static int
load_config(wm_config *cfg, const struct node_opts *o)
{
    wm_buf errors;
    char old_key[PATH_MAX];
    int rc;

    wm_buf_init(&errors, 64 << 10);
    rc = o->config != NULL ? wm_config_load(cfg, o->config, &errors)
                           : wm_config_defaults(cfg);
    if (rc != 0) {
        if (errors.len > 0 && !errors.failed)
            fprintf(stderr, "%s", errors.data);
        else
            fprintf(stderr, "wheelmesh node: cannot load %s: %s\n",
                    o->config != NULL ? o->config : "the defaults",
                    strerror(-rc));
        wm_buf_free(&errors);
        return 1;
    }
    wm_buf_free(&errors);
    if (o->data != NULL) {
        /* The identity follows the data directory unless set on its own. */
        snprintf(old_key, sizeof(old_key), "%s/node.key", cfg->data_dir);
        int follow = strcmp(old_key, cfg->identity) == 0;
        char key[PATH_MAX];
        snprintf(key, sizeof(key), "%s/node.key", o->data);
        if (set_string(&cfg->data_dir, o->data) != 0 ||
            (follow && set_string(&cfg->identity, key) != 0))
            return 1;
    }
    if (o->http != NULL && set_string(&cfg->http_listen, o->http) != 0)
        return 1;
    return 0;
}

int
wm_node_main(int argc, char **argv)
{
    struct node_opts o;
    wm_config cfg;
    wm_node node;
    wm_http *http = NULL;
    wm_upstream *up = NULL;
    wm_cluster *cluster = NULL;
    struct loop loop;
    void *router = NULL, *pub = NULL;
    const char *why = NULL;
    char logpath[PATH_MAX];
    int rc, ready_fd = -1, exit_code = 1;
    struct sigaction sa;

    rc = parse_opts(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    memset(&cfg, 0, sizeof(cfg));
    if (load_config(&cfg, &o) != 0)
        return 1;
    if (o.check) {
        printf("%s: ok\n", o.config);
        wm_config_free(&cfg);
        return 0;
    }
    memset(&node, 0, sizeof(node));
    node.cfg = &cfg;
    node.started = time(NULL);
    if (o.verbose)
        wm_log_set_level(WM_LOG_DEBUG);

    rc = make_dirs(cfg.data_dir);
    if (rc != 0) {
        fprintf(stderr, "wheelmesh node: cannot create %s: %s\n", cfg.data_dir,
                strerror(-rc));
        goto out;
    }
    if (o.daemon) {
        if (o.log == NULL) { /* a daemon's stderr goes nowhere */
            snprintf(logpath, sizeof(logpath), "%s/node.log", cfg.data_dir);
            o.log = logpath;
        }
        ready_fd = daemonize(o.log);
        if (ready_fd < 0) {
            fprintf(stderr, "wheelmesh node: cannot detach: %s\n",
                    strerror(-ready_fd));
            goto out;
        }
    }
    if (o.log != NULL && (rc = wm_log_open(o.log)) != 0) {
        fprintf(stderr, "wheelmesh node: cannot open log %s: %s\n", o.log,
                strerror(-rc));
        goto out;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (wm_identity_init() != 0) {
        wm_error("node: libsodium failed to initialise");
        goto out;
    }
    node.id = wm_identity_load_or_create(cfg.identity, &why);
    if (node.id == NULL) {
        wm_error("node: identity %s: %s", cfg.identity, why);
        goto out;
    }
    wm_identity_pubkey_hex(node.id, node.id_hex);
    rc = wm_store_open(&node.store, cfg.data_dir, cfg.map_size, &why);
    if (rc != 0) {
        wm_error("node: store in %s: %s (%s)", cfg.data_dir, why,
                 strerror(-rc));
        goto out;
    }
    node.zmq = zmq_ctx_new();
    router = node.zmq != NULL ? zmq_socket(node.zmq, ZMQ_ROUTER) : NULL;
    pub = router != NULL ? zmq_socket(node.zmq, ZMQ_PUB) : NULL;
    if (pub == NULL || zmq_bind(router, LOOP_ENDPOINT) != 0 ||
        zmq_bind(pub, PROGRESS_ENDPOINT) != 0) {
        wm_error("node: cannot set up the node loop: %s", zmq_strerror(errno));
        goto out;
    }
    if (wm_upstream_new(&up, &node, router, pub) != 0) {
        wm_error("node: cannot set up the upstream client");
        goto out;
    }
    loop = (struct loop){&node, router, up, NULL};
    node.router = router;
    node.on_stored = on_stored;
    node.on_stored_arg = &loop;
    rc = wm_cluster_new(&cluster, &node, up, &why);
    if (rc != 0) {
        wm_error("node: cluster: %s", why);
        goto out;
    }
    loop.cluster = cluster;
    wm_upstream_set_cluster(up, cluster);
    rc = wm_http_start(&http, &node, &why);
    if (rc != 0) {
        wm_error("node: %s %s", why, cfg.http_listen);
        goto out;
    }
    if (o.pidfile != NULL && (rc = write_pidfile(o.pidfile)) != 0) {
        wm_error("node: cannot write pid file %s: %s", o.pidfile,
                 strerror(-rc));
        goto out;
    }
    fprintf(stderr, "wheelmesh: node %s ready on %s (id %s)\n", cfg.name,
            node.url, node.id_hex);
    wm_info("node: %s ready on %s, data in %s", cfg.name, node.url,
            cfg.data_dir);
    if (ready_fd >= 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDERR_FILENO);
            close(null);
        }
        char ok = 0;
        if (write(ready_fd, &ok, 1) != 1)
            wm_warn("node: cannot tell the parent we are ready");
        close(ready_fd);
        ready_fd = -1;
    }

    exit_code = node_loop(&loop) == 0 ? 0 : 1;

out:
    /* Answer what waits on upstream, then unblock every HTTP thread still
     * talking to the loop before waiting for them to end. */
    wm_cluster_destroy(&cluster);
    wm_upstream_destroy(&up);
    if (node.zmq != NULL)
        zmq_ctx_shutdown(node.zmq);
    wm_http_stop(&http);
    for (int i = 0; i < 2; i++) {
        void *sock = i == 0 ? router : pub;
        int linger = 0;
        if (sock == NULL)
            continue;
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
        zmq_close(sock);
    }
    if (node.zmq != NULL)
        zmq_ctx_term(node.zmq);
    wm_store_destroy(&node.store);
    wm_identity_destroy(&node.id);
    if (o.pidfile != NULL && exit_code == 0)
        unlink(o.pidfile);
    if (ready_fd >= 0) {
        char fail = 1;
        if (write(ready_fd, &fail, 1) != 1)
            ready_fd = -1;
    }
    wm_config_free(&cfg);
    return exit_code;
}
