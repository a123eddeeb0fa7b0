/*
 * `wheelmesh node`: options, the config, start-up and a clean stop.
 *
 * Start-up blocks the signals the loop reads before any thread exists (so
 * every thread inherits the mask), then creates the parts and joins them:
 * listeners (a stored wheel, a page fetched, a listing changed), the
 * loop's parts (libcurl, the cluster, the commit queue) and call handlers
 * (HTTP threads' requests). The parts never include each other in a
 * circle; this file is the one place that knows them all.
 */
#include "start.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "catalog.h"
#include "cluster.h"
#include "collector.h"
#include "commit.h"
#include "fetch.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "pagecache.h"
#include "pages.h"
#include "trust.h"
#include "upstream.h"


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

/* --- the running node */

#define USAGE_SLOTS (1u << 16) /* wheels whose use a minute can note */

struct parts {
    wm_node node;
    wm_config cfg;
    wm_trust *trust;
    wm_loop *loop;
    wm_upstream *up;
    wm_pagecache *pages;
    wm_commit *commit;
    wm_cluster *cluster;
    wm_fetch *fetch;
    wm_catalog *catalog;
    wm_collector *collector;
    wm_http *http;
};

/* The commit queue as a loop part: while something waits to be written,
 * the loop does not sleep, and writes a batch each turn. */
static size_t
commit_poll(void *arg, zmq_pollitem_t *items, size_t max, long *timeout_ms)
{
    if (wm_commit_busy(arg))
        *timeout_ms = 0;
    return 0;
}

static void
commit_dispatch(void *arg, const zmq_pollitem_t *items, size_t n)
{
    wm_commit_step(arg);
}

static void
status_more(void *arg, cJSON *root)
{
    struct parts *p = arg;

    wm_collector_status(p->collector, root);
    wm_cluster_status(p->cluster, root);
}

static void
metrics_more(void *arg, wm_buf *b)
{
    struct parts *p = arg;

    wm_collector_metrics(p->collector, b);
    wm_cluster_metrics(p->cluster, b);
}

/* /api/status and /metrics. */
static void
on_report(void *arg, wm_call *c)
{
    struct parts *p = arg;
    char *body;
    size_t len = 0;

    body = c->op == WM_OP_STATUS
               ? wm_page_status(&p->node, status_more, p, &len)
               : wm_page_metrics(&p->node, metrics_more, p, &len);
    c->blob = body != NULL ? wm_blob_new(body, len) : NULL;
    free(body);
    if (c->blob == NULL)
        wm_call_fail(c, 500, "cannot render the page");
    else
        wm_call_answer(c);
}

static void
on_hup(void *arg)
{
    struct parts *p = arg;
    char why[512];

    if (wm_log_reopen() != 0)
        wm_warn("log: cannot reopen the log file");
    wm_info("node: SIGHUP: log reopened");
    if (wm_trust_reload(p->trust, &p->cfg, why, sizeof(why)) != 0) {
        wm_warn("node: keeping the old trusted keys and publishers: %s", why);
        return;
    }
    wm_info("node: trusted keys and publishers read again");
    wm_cluster_reload(p->cluster);
    wm_catalog_changed(p->catalog, NULL);
}

/* Sizes ZeroMQ's socket table and the open-files limit for the fleet the
 * config describes. Returns 0, or -1 after saying why. */
static int
size_limits(void *zmq, const wm_config *cfg, size_t ntrusted)
{
    /* HTTP threads: a call socket and a progress socket each; the cluster:
     * a DEALER per member, seed sockets, the ROUTER and ZAP; the loop. */
    size_t sockets = 2 * WM_HTTP_MAX_CONNECTIONS + 2 * ntrusted +
                     cfg->nseeds * ntrusted + 64;
    size_t files = WM_HTTP_MAX_CONNECTIONS + 3 * ntrusted +
                   cfg->nseeds * ntrusted + 256;
    struct rlimit rl;

    if (zmq_ctx_set(zmq, ZMQ_MAX_SOCKETS, (int)sockets) != 0) {
        wm_error("node: cannot allow %zu ZeroMQ sockets: %s", sockets,
                 zmq_strerror(errno));
        return -1;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= files)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < files) {
        wm_error("node: %zu trusted keys and %zu seeds need up to %zu open "
                 "files, and the hard limit is %llu: raise it (ulimit -Hn, "
                 "LimitNOFILE=)",
                 ntrusted, cfg->nseeds, files,
                 (unsigned long long)rl.rlim_max);
        return -1;
    }
    rl.rlim_cur = files;
    setrlimit(RLIMIT_NOFILE, &rl);
    return 0;
}

/* Keeps freed megabyte buffers in the heap for the next ones. A peer fetch
 * allocates and frees one per chunk, many times over (ZeroMQ's message and
 * CurveZMQ's plaintext, LMDB's pages of a chunk being written); glibc would
 * map each one afresh and unmap it when freed, so every chunk's memory
 * was faulted in page by page. Measured on the 2-core build VM, where
 * touching a fresh page is dear: a receiving node's ZeroMQ thread used
 * 1.5 s per 512 MiB fetched with the defaults, 0.85 s with these. The
 * price: up to TRIM bytes of freed heap stay with the process. */
static void
tune_malloc(void)
{
    enum { MMAP_MIN = 32 << 20, TRIM = 64 << 20 };

    mallopt(M_MMAP_THRESHOLD, MMAP_MIN);
    mallopt(M_TRIM_THRESHOLD, TRIM);
}

/* Creates every part and joins them. Returns 0, or -1 after logging. */
static int
start(struct parts *p, void **pub)
{
    wm_node *node = &p->node;
    const char *why = NULL;
    char reason[512];
    int rc;

    if (wm_trust_load(&p->trust, &p->cfg, wm_identity_pubkey(node->id), reason,
                      sizeof(reason)) != 0) {
        wm_error("node: %s", reason);
        return -1;
    }
    node->zmq = zmq_ctx_new();
    if (node->zmq == NULL ||
        size_limits(node->zmq, &p->cfg, wm_trust_count(p->trust)) != 0)
        return -1;
    if (wm_loop_new(&p->loop, node->zmq, &why) != 0) {
        wm_error("node: %s", why);
        return -1;
    }
    *pub = wm_loop_pub(p->loop);
    node->usage = wm_usage_new(USAGE_SLOTS);
    if (wm_usage_clock_init() != 0)
        wm_warn("node: WHEELMESH_TEST_CLOCK_OFFSET_S moves this node's "
                "clock by %lld s (a test build)",
                (long long)wm_usage_clock_offset());
    if (node->usage == NULL || wm_upstream_new(&p->up, node, *pub) != 0 ||
        wm_pagecache_new(&p->pages, node, p->up) != 0) {
        wm_error("node: out of memory");
        return -1;
    }
    rc = wm_cluster_new(&p->cluster, node, p->trust, *pub, &why);
    if (rc != 0) {
        wm_error("node: cluster: %s", why);
        return -1;
    }
    if (wm_commit_new(&p->commit, node, wm_cluster_index(p->cluster)) != 0) {
        wm_error("node: out of memory");
        return -1;
    }
    wm_fetch_parts fp = {node,
                         p->commit,
                         p->up,
                         p->pages,
                         *pub,
                         wm_cluster_peerfetch(p->cluster),
                         wm_cluster_index(p->cluster),
                         wm_cluster_members(p->cluster)};
    wm_catalog_parts cp = {node, p->commit, p->pages, p->trust,
                           wm_cluster_index(p->cluster),
                           wm_cluster_members(p->cluster)};
    wm_collector_parts gp = {node,
                             p->pages,
                             wm_cluster_index(p->cluster),
                             wm_cluster_members(p->cluster),
                             wm_cluster_removed,
                             p->cluster};
    if (wm_fetch_new(&p->fetch, &fp) != 0 ||
        wm_catalog_new(&p->catalog, &cp) != 0 ||
        wm_collector_new(&p->collector, &gp) != 0 ||
        wm_cluster_serve(p->cluster, p->fetch) != 0) {
        wm_error("node: out of memory");
        return -1;
    }
    wm_cluster_listen(p->cluster, wm_catalog_changed, p->catalog);
    if (wm_commit_listen(p->commit, wm_catalog_stored, p->catalog) != 0 ||
        wm_commit_listen(p->commit, wm_cluster_stored, p->cluster) != 0 ||
        wm_commit_listen(p->commit, wm_collector_stored, p->collector) != 0 ||
        wm_pagecache_listen(p->pages, wm_fetch_page_done, p->fetch) != 0 ||
        wm_pagecache_listen(p->pages, wm_catalog_page_done, p->catalog) != 0 ||
        wm_loop_add(p->loop, wm_upstream_poll, wm_upstream_dispatch, p->up) !=
            0 ||
        wm_loop_add(p->loop, wm_cluster_poll, wm_cluster_dispatch,
                    p->cluster) != 0 ||
        wm_loop_add(p->loop, commit_poll, commit_dispatch, p->commit) != 0 ||
        wm_loop_add(p->loop, wm_collector_poll, wm_collector_dispatch,
                    p->collector) != 0) {
        wm_error("node: out of memory");
        return -1;
    }
    wm_loop_handle(p->loop, WM_OP_PUT, wm_catalog_put_call, p->catalog);
    wm_loop_handle(p->loop, WM_OP_PAGE, wm_catalog_page_call, p->catalog);
    wm_loop_handle(p->loop, WM_OP_LINKS, wm_catalog_links_call, p->catalog);
    wm_loop_handle(p->loop, WM_OP_FILES, wm_catalog_files_call, p->catalog);
    wm_loop_handle(p->loop, WM_OP_FETCH, wm_fetch_call, p->fetch);
    wm_loop_handle(p->loop, WM_OP_META, wm_fetch_meta_call, p->fetch);
    wm_commit_on_full(p->commit, wm_collector_full, p->collector);
    wm_commit_on_namesake(p->commit, wm_collector_drop, p->collector);
    wm_commit_on_room(p->commit, wm_collector_room, p->collector);
    if (wm_cluster_peerfetch(p->cluster) != NULL)
        wm_peerfetch_on_room(wm_cluster_peerfetch(p->cluster),
                             wm_collector_room_chunks, p->collector);
    wm_loop_handle(p->loop, WM_OP_PRUNE, wm_collector_prune_call,
                   p->collector);
    wm_loop_handle(p->loop, WM_OP_STATUS, on_report, p);
    wm_loop_handle(p->loop, WM_OP_METRICS, on_report, p);
    wm_loop_on_hup(p->loop, on_hup, p);
    rc = wm_http_start(&p->http, node, &why);
    if (rc != 0) {
        wm_error("node: %s %s", why, p->cfg.http_listen);
        return -1;
    }
    return 0;
}

/* Stops in the order that lets every waiting thread go: what the loop
 * holds is answered or failed, queued calls are released, the context's
 * shutdown wakes callers still waiting, then HTTP threads end and the
 * sockets close. */
static void
stop(struct parts *p)
{
    wm_fetch_destroy(&p->fetch);
    wm_catalog_destroy(&p->catalog);
    if (p->cluster != NULL && wm_cluster_peerfetch(p->cluster) != NULL)
        wm_peerfetch_on_room(wm_cluster_peerfetch(p->cluster), NULL, NULL);
    wm_collector_destroy(&p->collector);
    wm_commit_destroy(&p->commit);
    wm_loop_close_calls(p->loop);
    if (p->node.zmq != NULL)
        zmq_ctx_shutdown(p->node.zmq);
    wm_http_stop(&p->http);
    wm_cluster_destroy(&p->cluster);
    wm_pagecache_destroy(&p->pages);
    wm_upstream_destroy(&p->up);
    wm_loop_destroy(&p->loop);
    if (p->node.zmq != NULL)
        zmq_ctx_term(p->node.zmq);
    wm_trust_destroy(&p->trust);
    wm_store_destroy(&p->node.store);
    wm_usage_destroy(&p->node.usage);
    wm_identity_destroy(&p->node.id);
}

/* Takes the data directory DIR for this process: an exclusive lock on
 * DIR/lock, which holds our pid, so a second node on the same data
 * touches nothing (its store's start-up sweep would delete chunks the
 * first is writing). Returns the lock's fd, or -1 after saying why. */
static int
lock_data_dir(const char *dir)
{
    char path[PATH_MAX], pid[32] = "";
    int fd, n;

    snprintf(path, sizeof(path), "%s/lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        wm_error("node: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        n = (int)pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        wm_error("node: data dir %s in use by pid %s", dir,
                 pid[0] != '\0' ? pid : "?");
        close(fd);
        return -1;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        wm_warn("node: cannot write our pid into %s", path);
    return fd;
}

/* Tells a --daemon parent that the node is up, and stops writing to the
 * terminal it left. */
static void
report_ready(int *ready_fd)
{
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    char ok = 0;

    if (null >= 0) {
        dup2(null, STDERR_FILENO);
        close(null);
    }
    if (write(*ready_fd, &ok, 1) != 1)
        wm_warn("node: cannot tell the parent we are ready");
    close(*ready_fd);
    *ready_fd = -1;
}

int
wm_node_main(int argc, char **argv)
{
    static struct parts parts; /* one node per process */
    struct parts *p = &parts;
    wm_node *node = &p->node;
    struct node_opts o;
    sigset_t mask;
    const char *why = NULL;
    char logpath[PATH_MAX];
    void *pub = NULL;
    int rc, ready_fd = -1, lock_fd = -1, exit_code = 1;

    rc = parse_opts(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    memset(p, 0, sizeof(*p));
    if (load_config(&p->cfg, &o) != 0)
        return 1;
    if (o.check) {
        printf("%s: ok\n", o.config);
        wm_config_free(&p->cfg);
        return 0;
    }
    node->cfg = &p->cfg;
    node->started = time(NULL);
    if (o.verbose)
        wm_log_set_level(WM_LOG_DEBUG);

    rc = make_dirs(p->cfg.data_dir);
    if (rc != 0) {
        fprintf(stderr, "wheelmesh node: cannot create %s: %s\n",
                p->cfg.data_dir, strerror(-rc));
        goto out;
    }
    if (o.daemon) {
        if (o.log == NULL) { /* a daemon's stderr goes nowhere */
            snprintf(logpath, sizeof(logpath), "%s/node.log", p->cfg.data_dir);
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
    /* Before any thread: every thread inherits the mask, and the signals
     * reach the loop through its signalfd only. */
    tune_malloc();
    wm_loop_signals(&mask);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    lock_fd = lock_data_dir(p->cfg.data_dir);
    if (lock_fd < 0)
        goto out;
    if (wm_identity_init() != 0) {
        wm_error("node: libsodium failed to initialise");
        goto out;
    }
    node->id = wm_identity_load_or_create(p->cfg.identity, &why);
    if (node->id == NULL) {
        wm_error("node: identity %s: %s", p->cfg.identity, why);
        goto out;
    }
    wm_identity_pubkey_hex(node->id, node->id_hex);
    rc = wm_store_open(&node->store, p->cfg.data_dir, p->cfg.map_size, &why);
    if (rc != 0) {
        wm_error("node: store in %s: %s (%s)", p->cfg.data_dir, why,
                 strerror(-rc));
        goto out;
    }
    if (wm_store_swept(node->store) > 0)
        wm_info("store: swept %" PRIu64 " orphan chunks of an interrupted "
                "write", wm_store_swept(node->store));
    if (start(p, &pub) != 0)
        goto out;
    if (o.pidfile != NULL && (rc = write_pidfile(o.pidfile)) != 0) {
        wm_error("node: cannot write pid file %s: %s", o.pidfile,
                 strerror(-rc));
        goto out;
    }
    fprintf(stderr, "wheelmesh: node %s ready on %s (id %s)\n", p->cfg.name,
            node->url, node->id_hex);
    wm_info("node: %s ready on %s, data in %s", p->cfg.name, node->url,
            p->cfg.data_dir);
    if (ready_fd >= 0)
        report_ready(&ready_fd);

    exit_code = wm_loop_run(p->loop) == 0 ? 0 : 1;

out:
    stop(p);
    if (o.pidfile != NULL && exit_code == 0)
        unlink(o.pidfile);
    if (ready_fd >= 0) {
        char fail = 1;
        if (write(ready_fd, &fail, 1) != 1)
            ready_fd = -1;
    }
    if (lock_fd >= 0)
        close(lock_fd);
    wm_config_free(&p->cfg);
    return exit_code;
}
