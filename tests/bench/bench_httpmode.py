#!/usr/bin/python3
"""libmicrohttpd threading modes, side by side: the same workload on a
reference binary (--bin) and a variant (--alt) in one invocation, rounds
alternating, and the variant's figures as ratios of the reference's.
Not run by ctest.

  /usr/bin/python3 tests/bench/bench_httpmode.py --bin REF --alt ALT
  /usr/bin/python3 tests/bench/bench_httpmode.py --bin REF --alt ALT --quick

The variants are builds of the same tree with other MHD flags in
node/http.c (a thread per connection, the current mode; epoll with a
thread pool of N). Parts (--only 12345):

  1. load: closed-loop keep-alive clients (a small C client, compiled
     into the work dir: a Python client would be the bottleneck) GET
     2-KB local wheels, then /simple/<project>/ pages (pip's Accept; the
     page comes from the node loop over ZeroMQ), with 8, 64 and 512
     connections: requests/s, p50 and p99, node CPU per request;
  2. half-open: --half-open connections send a partial request line
     and wait; meanwhile new clients GET /healthz, each on a new
     connection: how long that takes;
  3. big: curl of a --big-mb local wheel (MB/s);
  4. idle: RSS and threads of a fresh node holding --idle keep-alive
     connections that have each had one answer (and how many of them
     got one);
  5. blocking: a node behind a slow upstream (a Python server in the
     work dir: pages answered after --page-delay s, wheels trickled at
     --slow-rate MB/s). While --blockers clients ask for pages of
     projects the node has never seen (each call waits on the loop for
     the upstream page) and --slow-count clients stream wheels the node
     does not hold (each a download that fills as it arrives), 8
     keep-alive clients GET local wheels and a prober opens a new
     connection for /healthz every 50 ms. The same 8 clients also run
     alone first (quiet). A pool thread blocked in a handler stalls
     every connection it serves: this is the part that shows it.

Every figure is the median over --rounds; ratios are variant/reference
(for requests/s and MB/s higher is better, for times and memory lower).
There are no targets: this is a measurement to choose a mode with.
Exit status 0 when every run completed, 1 when something failed, 2 on a
usage error.
"""

import argparse
import hashlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import BenchError, cpu_seconds, curl_timed, find_binary, log
import harness  # noqa: E402
from makewheel import make_wheel  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20
PROJECTS = 20  # the small wheels: PROJECTS projects, versions 1.0, 1.1 ...


# The load client of parts 1 and 5 (C: one thread, epoll, closed loop).
LOADGEN_C = r'''/* Closed-loop HTTP/1.1 keep-alive load generator (one thread, epoll).
 * usage: loadgen HOST PORT CONNS SECONDS WARMUP_S PATHS_FILE [HEADER]
 * Each connection sends a GET, reads the whole response (Content-Length),
 * records the latency, sends the next; paths are taken round robin, each
 * connection starting at its own offset. Prints one JSON line. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF 65536

struct conn {
    int fd, connecting, hdr_done, close_after;
    size_t reqlen, sent, have;
    long long body_left;
    unsigned next;
    uint64_t t0;
    char req[1024];
    char buf[RBUF];
};

static struct sockaddr_in addr;
static char **paths;
static size_t npaths;
static const char *header;
static int ep;
static uint32_t *lat;
static size_t nlat, caplat;
static unsigned long long requests, errors, non2xx, reconnects, bytes;
static int measuring;

static uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
build_req(struct conn *c)
{
    const char *p = paths[c->next++ % npaths];
    int n = snprintf(c->req, sizeof(c->req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s"
                     "\r\n",
                     p, header ? header : "", header ? "\r\n" : "");
    c->reqlen = (size_t)n;
    c->sent = 0;
    c->have = 0;
    c->hdr_done = 0;
    c->close_after = 0;
    c->body_left = 0;
}

static void
open_conn(struct conn *c)
{
    struct epoll_event ev;
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("socket");
        exit(1);
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->connecting = 1;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    build_req(c);
    c->t0 = now_us();
    ev.events = EPOLLOUT;
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void
reopen(struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (measuring)
        reconnects++;
    open_conn(c);
}

static void
want(struct conn *c, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
record(uint64_t us)
{
    if (!measuring)
        return;
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 65536;
        lat = realloc(lat, caplat * sizeof(*lat));
        if (lat == NULL)
            exit(1);
    }
    lat[nlat++] = us > 0xffffffffu ? 0xffffffffu : (uint32_t)us;
}

static void
done(struct conn *c, int status)
{
    uint64_t t = now_us();
    if (measuring) {
        requests++;
        if (status < 200 || status > 299)
            non2xx++;
    }
    record(t - c->t0);
    if (c->close_after) {
        reopen(c);
        return;
    }
    build_req(c);
    c->t0 = now_us();
    want(c, EPOLLOUT);
}

static void
fail(struct conn *c)
{
    if (measuring)
        errors++;
    reopen(c);
}

/* Parses the head in c->buf[0..end); returns the status. */
static int
parse_head(struct conn *c, size_t end)
{
    int status = 0;
    char *line, *save;

    c->buf[end - 1] = '\0';
    line = strtok_r(c->buf, "\r\n", &save);
    if (line == NULL || sscanf(line, "HTTP/1.%*d %d", &status) != 1)
        return -1;
    c->body_left = -1;
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            c->body_left = atoll(line + 15);
        else if (strncasecmp(line, "Connection:", 11) == 0 &&
                 strcasestr(line + 11, "close") != NULL)
            c->close_after = 1;
    }
    if (c->body_left < 0)
        return -1; /* not for this tool */
    return status;
}

static void
on_event(struct conn *c)
{
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            fail(c);
            return;
        }
        c->connecting = 0;
    }
    if (c->sent < c->reqlen) {
        ssize_t n = send(c->fd, c->req + c->sent, c->reqlen - c->sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN)
                fail(c);
            return;
        }
        c->sent += (size_t)n;
        if (c->sent == c->reqlen)
            want(c, EPOLLIN);
        return;
    }
    for (;;) {
        ssize_t n;
        if (!c->hdr_done) {
            n = recv(c->fd, c->buf + c->have, RBUF - 1 - c->have, 0);
        } else {
            static char sink[RBUF];
            size_t m = c->body_left < RBUF ? (size_t)c->body_left : RBUF;
            if (m == 0)
                m = 1;
            n = recv(c->fd, sink, m, 0);
        }
        if (n < 0) {
            if (errno != EAGAIN)
                fail(c);
            return;
        }
        if (n == 0) {
            fail(c);
            return;
        }
        if (measuring)
            bytes += (unsigned long long)n;
        if (!c->hdr_done) {
            char *end;
            c->have += (size_t)n;
            c->buf[c->have] = '\0';
            end = memmem(c->buf, c->have, "\r\n\r\n", 4);
            if (end == NULL) {
                if (c->have >= RBUF - 1) {
                    fail(c);
                    return;
                }
                continue;
            }
            size_t hlen = (size_t)(end - c->buf) + 4;
            size_t extra = c->have - hlen;
            int status = parse_head(c, hlen);
            if (status < 0) {
                fail(c);
                return;
            }
            c->hdr_done = status;
            c->body_left -= (long long)extra;
            if (c->body_left <= 0) {
                done(c, status);
                return;
            }
        } else {
            c->body_left -= n;
            if (c->body_left <= 0) {
                done(c, c->hdr_done);
                return;
            }
        }
    }
}

static int
cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t
pct(double p)
{
    size_t i;
    if (nlat == 0)
        return 0;
    i = (size_t)(p * (double)(nlat - 1) + 0.5);
    return lat[i];
}

int
main(int argc, char **argv)
{
    struct rlimit rl;
    struct conn *conns;
    struct epoll_event evs[256];
    int nconns;
    double secs, warm;
    FILE *f;
    char line[2048];
    uint64_t start, mstart, end;

    if (argc < 7) {
        fprintf(stderr, "usage: loadgen HOST PORT CONNS SECONDS WARMUP_S "
                        "PATHS_FILE [HEADER]\n");
        return 2;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    nconns = atoi(argv[3]);
    secs = atof(argv[4]);
    warm = atof(argv[5]);
    header = argc > 7 ? argv[7] : NULL;
    f = fopen(argv[6], "r");
    if (f == NULL) {
        perror(argv[6]);
        return 2;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        paths = realloc(paths, (npaths + 1) * sizeof(*paths));
        paths[npaths++] = strdup(line);
    }
    fclose(f);
    if (npaths == 0)
        return 2;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    conns = calloc((size_t)nconns, sizeof(*conns));
    for (int i = 0; i < nconns; i++) {
        conns[i].next = (unsigned)((size_t)i * 7919u % npaths);
        open_conn(&conns[i]);
    }
    start = now_us();
    mstart = start + (uint64_t)(warm * 1e6);
    end = mstart + (uint64_t)(secs * 1e6);
    for (;;) {
        uint64_t t = now_us();
        if (!measuring && t >= mstart) {
            measuring = 1;
            mstart = t;
        }
        if (t >= end)
            break;
        int n = epoll_wait(ep, evs, 256, 20);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr);
    }
    end = now_us();
    /* A request still unanswered at the end waited at least this long. */
    uint64_t oldest = 0;
    for (int i = 0; i < nconns; i++)
        if (end - conns[i].t0 > oldest)
            oldest = end - conns[i].t0;
    qsort(lat, nlat, sizeof(*lat), cmp);
    printf("{\"conns\": %d, \"requests\": %llu, \"errors\": %llu, "
           "\"non2xx\": %llu, \"reconnects\": %llu, \"bytes\": %llu, "
           "\"secs\": %.3f, \"rps\": %.1f, \"p50_us\": %u, \"p90_us\": %u, "
           "\"p99_us\": %u, \"max_us\": %u, \"oldest_inflight_us\": %llu}\n",
           nconns, requests, errors, non2xx, reconnects, bytes,
           (double)(end - mstart) / 1e6,
           (double)requests * 1e6 / (double)(end - mstart), pct(0.5),
           pct(0.9), pct(0.99), nlat ? lat[nlat - 1] : 0,
           (unsigned long long)oldest);
    return 0;
}
'''

# The slow upstream of part 5, run as its own process (python3 FILE PORT
# MANIFEST DELAY_S RATE_MBPS): /simple/blk-*/ is a page with one made-up
# wheel, /simple/<name>/ of the manifest a page with its wheels, each
# after DELAY_S; /packages/<file> is trickled at RATE_MBPS; the rest 404.
UPSTREAM_PY = r'''
import hashlib, http.server, json, os, socketserver, sys, time

PORT = int(sys.argv[1])
with open(sys.argv[2]) as f:
    MANIFEST = json.load(f)  # project -> [{filename, sha256, path}]
DELAY = float(sys.argv[3])
RATE = float(sys.argv[4]) * 1e6
PATHS = {w["filename"]: w["path"] for ws in MANIFEST.values() for w in ws}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "simple" and parts[3] == "":
            name = parts[2]
            if name.startswith("blk-"):
                files = [{"filename": name.replace("-", "_")
                          + "-1.0-py3-none-any.whl",
                          "sha256": hashlib.sha256(name.encode()).hexdigest()}]
            elif name in MANIFEST:
                files = MANIFEST[name]
            else:
                return self.reply(404, b"no such project\n")
            time.sleep(DELAY)
            body = "<!DOCTYPE html><html><body>\n" + "".join(
                '<a href="http://127.0.0.1:%d/packages/%s#sha256=%s">%s</a>'
                "<br/>\n" % (PORT, w["filename"], w["sha256"], w["filename"])
                for w in files) + "</body></html>\n"
            return self.reply(200, body.encode(), "text/html")
        if path.startswith("/packages/") and path[10:] in PATHS:
            fpath = PATHS[path[10:]]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(os.path.getsize(fpath)))
            self.end_headers()
            t0, sent = time.monotonic(), 0
            with open(fpath, "rb") as f:
                for block in iter(lambda: f.read(64 << 10), b""):
                    self.wfile.write(block)
                    sent += len(block)
                    ahead = sent / RATE - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            return
        return self.reply(404, b"not found\n")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 256


Server(("127.0.0.1", PORT), Handler).serve_forever()
'''


def build_loadgen(workdir, cc):
    """Compiles LOADGEN_C into WORKDIR; returns the program's path."""
    src = os.path.join(workdir, "loadgen.c")
    out = os.path.join(workdir, "loadgen")
    with open(src, "w") as f:
        f.write(LOADGEN_C)
    p = subprocess.run([cc, "-O2", "-o", out, src], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise BenchError("cannot compile the load client with %s:\n%s"
                         % (cc, p.stderr[-2000:]))
    return out


def rss_threads(pid):
    """(VmRSS in MiB, threads) of PID."""
    rss = threads = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def raise_nofile(n):
    """Lets this process hold N sockets (soft limit up to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def read_response(sock, deadline_s=30.0):
    """Reads one HTTP response with a Content-Length from SOCK; returns
    the status, or None when the connection ended first."""
    sock.settimeout(deadline_s)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            more = sock.recv(65536)
        except OSError:
            return None
        if not more:
            return None
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        try:
            more = sock.recv(65536)
        except OSError:
            return None
        if not more:
            return None
        body += more
    return status


def healthz_once(node, timeout=30.0):
    """Seconds for a new connection's GET /healthz (None: no answer)."""
    t0 = time.perf_counter()
    try:
        s = socket.create_connection((node.host, node.port), timeout=timeout)
    except OSError:
        return None
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Connection: close\r\n\r\n")
        status = read_response(s, timeout)
    finally:
        s.close()
    return time.perf_counter() - t0 if status == 200 else None


class BenchNode(harness.Node):
    """A harness node running a binary of its own, on a copy of a
    prepared data directory."""

    def __init__(self, binary, label, data_from, config=None):
        self.binary = binary
        self.label = label
        super().__init__(config=config, start=False, name="hm-" + label)
        shutil.copytree(data_from, self.data)

    def argv(self):
        args = super().argv()
        args[0] = self.binary
        return args

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        return super().stop(sig, timeout)


# --- the parts ---------------------------------------------------------

def run_loadgen(lg, node, conns, seconds, warmup, paths_file, header=None):
    """One loadgen run against NODE; its JSON plus node CPU per request."""
    pid = node.proc.pid
    cpu0 = cpu_seconds(pid)
    args = [lg, node.host, str(node.port), str(conns), str(seconds),
            str(warmup), paths_file] + ([header] if header else [])
    p = subprocess.run(args, capture_output=True, text=True,
                       timeout=seconds + warmup + 120)
    cpu1 = cpu_seconds(pid)
    if p.returncode != 0:
        raise BenchError("loadgen failed: %s %s" % (p.stdout, p.stderr))
    r = json.loads(p.stdout)
    if r["requests"] == 0:  # no latency to speak of: nothing came back
        for k in ("p50_us", "p90_us", "p99_us", "max_us"):
            r[k] = None
    # The longest wait: an answer, or a request still open at the end.
    r["worst_us"] = max(r["max_us"] or 0, r["oldest_inflight_us"])
    r["node_cpu_s"] = (cpu1 - cpu0) if None not in (cpu0, cpu1) else None
    # The CPU covers the warm-up too: per request of the whole run.
    total = r["requests"] * (seconds + warmup) / seconds
    r["cpu_us_per_req"] = (r["node_cpu_s"] * 1e6 / total
                           if r["node_cpu_s"] and total else None)
    if not node.running():
        raise BenchError("%s died under load\n%s" % (node.label, node.tail()))
    return r


def part_load(args, lg, node, files_txt, pages_txt):
    out = {}
    for conns in args.conc:
        out["files@%d" % conns] = run_loadgen(
            lg, node, conns, args.duration, args.warmup, files_txt)
        out["pages@%d" % conns] = run_loadgen(
            lg, node, conns, args.duration, args.warmup, pages_txt,
            "Accept: " + harness.PIP_ACCEPT)
    return out


def part_half_open(args, node):
    """New clients' /healthz while ARGS.half_open connections hold a
    partial request line."""
    socks = []
    t0 = time.perf_counter()
    try:
        for _ in range(args.half_open):
            s = socket.create_connection((node.host, node.port), timeout=10)
            s.sendall(b"GET /heal")
            socks.append(s)
        opened = time.perf_counter() - t0
        time.sleep(0.3)
        times, failed = [], 0
        for _ in range(args.probes):
            t = healthz_once(node, timeout=30)
            if t is None:
                failed += 1
            else:
                times.append(t)
        # Still held by the node (not cut, not refused)?
        alive = 0
        for s in socks:
            s.setblocking(False)
            try:
                alive += s.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
    return {"open_s": opened, "healthz_median_ms": 1000 * statistics.median(
        times) if times else None,
        "healthz_max_ms": 1000 * max(times) if times else None,
        "healthz_failed": failed, "half_open_alive": alive}


def part_big(args, node, big):
    url = "%s/files/%s/%s" % (node.url, big["sha256"], big["filename"])
    curl_timed(args.curl, url, big["size"])  # warm, untimed
    mbs = []
    for _ in range(args.curl_rounds):
        t = curl_timed(args.curl, url, big["size"])
        mbs.append(big["size"] / 1e6 / t)
    return {"mb_s": statistics.median(mbs), "all_mb_s": mbs}


def part_idle(args, node):
    """RSS and threads of a fresh node, then with ARGS.idle keep-alive
    connections that have each had one /healthz answered."""
    pid = node.proc.pid
    time.sleep(0.5)
    rss0, thr0 = rss_threads(pid)
    socks, served = [], 0
    try:
        for _ in range(args.idle):
            try:
                s = socket.create_connection((node.host, node.port),
                                             timeout=10)
            except OSError:
                continue
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            except OSError:
                s.close()
                continue
            socks.append(s)
        for s in socks:
            served += read_response(s, 10) == 200
        time.sleep(1.0)
        rss1, thr1 = rss_threads(pid)
        # Are they still open? A refused connection reads as EOF.
        alive = 0
        for s in socks:
            s.setblocking(False)
            try:
                alive += s.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
    return {"rss_fresh_mib": rss0, "threads_fresh": thr0,
            "rss_idle_mib": rss1, "threads_idle": thr1,
            "rss_delta_mib": rss1 - rss0, "served": served,
            "still_open": alive}


def part_blocking(args, lg, node, files_txt, tag, slow_wheels):
    """Local GETs while handlers block on the loop and on downloads."""
    quiet = run_loadgen(lg, node, 8, args.duration, args.warmup, files_txt)
    stop = threading.Event()
    lock = threading.Lock()
    blk_lat, blk_bad, hz, hz_failed, slow = [], [], [], [0], []

    def blocker(i):
        n = 0
        conn = http.client.HTTPConnection(node.host, node.port, timeout=120)
        while not stop.is_set():
            name = "blk-%s-%d-%d" % (tag, i, n)
            n += 1
            t0 = time.perf_counter()
            try:
                conn.request("GET", "/simple/%s/" % name,
                             headers={"Accept": "text/html"})
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                status = repr(e)
                conn.close()
                conn = http.client.HTTPConnection(node.host, node.port,
                                                  timeout=120)
            with lock:
                blk_lat.append(time.perf_counter() - t0)
                if status != 200:
                    blk_bad.append(status)
        conn.close()

    def slow_reader(w):
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(node.host, node.port,
                                              timeout=120)
            conn.request("GET", "/simple/%s/" % w["project"],
                         headers={"Accept": "text/html"})
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise BenchError("page %s: %d" % (w["project"], r.status))
            conn.request("GET", "/files/%s/%s" % (w["sha256"],
                                                   w["filename"]))
            r = conn.getresponse()
            h, n = hashlib.sha256(), 0
            for piece in iter(lambda: r.read(256 << 10), b""):
                h.update(piece)
                n += len(piece)
            conn.close()
            ok = r.status == 200 and h.hexdigest() == w["sha256"]
            res = {"ok": ok, "status": r.status, "bytes": n,
                   "s": time.perf_counter() - t0}
        except (OSError, http.client.HTTPException, BenchError) as e:
            res = {"ok": False, "error": repr(e),
                   "s": time.perf_counter() - t0}
        with lock:
            slow.append(res)

    def prober():
        while not stop.is_set():
            t = healthz_once(node, timeout=30)
            with lock:
                if t is None:
                    hz_failed[0] += 1
                else:
                    hz.append(t)
            stop.wait(0.05)

    threads = ([threading.Thread(target=blocker, args=(i,))
                for i in range(args.blockers)]
               + [threading.Thread(target=slow_reader, args=(w,))
                  for w in slow_wheels]
               + [threading.Thread(target=prober)])
    for t in threads:
        t.daemon = True
        t.start()
    time.sleep(args.page_delay + 0.2)
    try:
        loaded = run_loadgen(lg, node, 8, args.duration, args.warmup,
                             files_txt)
    finally:
        stop.set()
        for t in threads:
            t.join(180)
    if any(t.is_alive() for t in threads):
        raise BenchError("%s: a part-5 client is still waiting after 180 s"
                         % node.label)
    bad_slow = [s for s in slow if not s["ok"]]
    if bad_slow:
        raise BenchError("%s: slow downloads failed: %r\n%s"
                         % (node.label, bad_slow, node.tail()))
    return {
        "quiet": quiet, "loaded": loaded,
        "healthz_median_ms": 1000 * statistics.median(hz) if hz else None,
        "healthz_p99_ms": 1000 * pct(hz, 0.99) if hz else None,
        "healthz_max_ms": 1000 * max(hz) if hz else None,
        "healthz_n": len(hz), "healthz_failed": hz_failed[0],
        "blocked_pages": len(blk_lat),
        "blocked_page_median_ms": 1000 * statistics.median(blk_lat)
        if blk_lat else None,
        "blocked_page_bad": blk_bad[:5], "blocked_page_bad_n": len(blk_bad),
        "slow_mb_s": statistics.median(
            [s["bytes"] / 1e6 / s["s"] for s in slow]) if slow else None,
    }


def http_warnings(node):
    """The HTTP warnings of NODE's last run: how many, and the first
    distinct messages (e.g. libmicrohttpd refusing a socket past
    FD_SETSIZE)."""
    lines = [line.split("http: ", 1)[1] for line in
             node.stderr_text().splitlines() if " warn  http: " in line]
    kinds = []
    for line in lines:
        line = line.split("`")[0].split(" for the request")[0]
        k = "".join("N" if ch.isdigit() else ch for ch in line)[:100]
        if k not in kinds:
            kinds.append(k)
    return {"count": len(lines), "kinds": kinds[:5]}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


# --- set-up ------------------------------------------------------------

def put_file(node, path):
    """PUTs the wheel at PATH (streamed); returns its sha256 hex."""
    conn = node.connection(600)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        conn.request("PUT", "/files/" + os.path.basename(path), body=f,
                     headers={"Content-Length": str(size)})
        r = conn.getresponse()
        body = r.read()
    conn.close()
    if r.status not in (200, 201):
        raise BenchError("PUT %s: %d %r\n%s" % (path, r.status, body[:300],
                                                 node.tail()))
    return harness.sha256_file(path)


def prepare(args, work):
    """The wheels and two data templates (small wheels; small + big),
    plus the paths files for the load client."""
    wheels = os.path.join(work, "wheels")
    os.makedirs(wheels)
    small = []
    for i in range(args.small_count):
        path = make_wheel(wheels, "hm-pkg-%02d" % (i % PROJECTS),
                          "1.%d" % (i // PROJECTS), size=args.small_kb * KiB,
                          seed=i)
        small.append(path)
    node = harness.Node(config={}, start=True, name="hm-prep")
    try:
        files = []
        for path in small:
            sha = put_file(node, path)
            files.append("/files/%s/%s" % (sha, os.path.basename(path)))
        node.stop()
        tmpl_small = os.path.join(work, "tmpl-small")
        shutil.copytree(node.data, tmpl_small)
        big = None
        if "3" in args.only:
            node.start()
            log("writing and storing the %d MiB wheel" % args.big_mb)
            path = make_wheel(wheels, "hm-big", "1.0", size=args.big_mb * MiB,
                              seed=12345)
            sha = put_file(node, path)
            big = {"filename": os.path.basename(path), "sha256": sha,
                   "size": os.path.getsize(path)}
            os.unlink(path)
            node.stop()
        tmpl_full = os.path.join(work, "tmpl-full")
        shutil.copytree(node.data, tmpl_full)
    finally:
        node.cleanup()
    files_txt = os.path.join(work, "files.txt")
    pages_txt = os.path.join(work, "pages.txt")
    with open(files_txt, "w") as f:
        f.write("".join(p + "\n" for p in files))
    with open(pages_txt, "w") as f:
        f.write("".join("/simple/hm-pkg-%02d/\n" % i
                        for i in range(min(PROJECTS, args.small_count))))
    return tmpl_small, tmpl_full, big, files_txt, pages_txt


def make_slow_wheels(args, work, labels):
    """ARGS.slow_count wheels per label and round for part 5."""
    d = os.path.join(work, "slow")
    os.makedirs(d)
    out = {}
    for label in labels:
        for r in range(args.rounds):
            ws = []
            for i in range(args.slow_count):
                project = "slow-%s-%d-%d" % (label, r, i)
                path = make_wheel(d, project, "1.0",
                                  size=int(args.slow_mb * MiB),
                                  seed=100000 + len(out) * 1000 + i)
                ws.append({"project": project,
                           "filename": os.path.basename(path),
                           "sha256": harness.sha256_file(path),
                           "path": path})
            out[(label, r)] = ws
    return out


class Upstream:
    """The slow upstream of part 5, in a process of its own."""

    def __init__(self, work, slow, delay, rate):
        self.port = harness.free_port()
        script = os.path.join(work, "slow_upstream.py")
        with open(script, "w") as f:
            f.write(UPSTREAM_PY)
        manifest = os.path.join(work, "slow_manifest.json")
        with open(manifest, "w") as f:
            json.dump({w["project"]: [w] for ws in slow.values()
                       for w in ws}, f)
        self.proc = subprocess.Popen(
            [sys.executable, script, str(self.port), manifest, str(delay),
             str(rate)], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise BenchError("the slow upstream did not start")
                time.sleep(0.05)
        self.url = "http://127.0.0.1:%d/simple/" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


# --- the report ----------------------------------------------------------

def med(rounds, *keys):
    """The median over ROUNDS of the value at KEYS (None when missing)."""
    vals = []
    for r in rounds:
        v = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def values(rounds, keys):
    vals = []
    for r in rounds:
        v = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None:
            vals.append(v)
    return vals


def most(rounds, *keys):
    vals = values(rounds, keys)
    return max(vals) if vals else None


def least(rounds, *keys):
    vals = values(rounds, keys)
    return min(vals) if vals else None


def rows(args, res):
    """(part, metric, ref, alt, better) rows from the per-round results;
    better: 'hi' or 'lo' (which way is better), '' for counts."""
    ref, alt = res["ref"], res["alt"]
    out = []

    def add(part, name, keys, better, scale=1.0, agg=med):
        a, b = agg(ref, *keys), agg(alt, *keys)
        out.append((part, name, None if a is None else a * scale,
                    None if b is None else b * scale, better))

    if "1" in args.only:
        for conns in args.conc:
            for kind in ("files", "pages"):
                k = "%s@%d" % (kind, conns)
                add("1 load", "%s req/s" % k, ("load", k, "rps"), "hi")
                add("1 load", "%s p50 ms" % k, ("load", k, "p50_us"), "lo",
                    1e-3)
                add("1 load", "%s p99 ms" % k, ("load", k, "p99_us"), "lo",
                    1e-3)
                add("1 load", "%s node CPU us/req" % k,
                    ("load", k, "cpu_us_per_req"), "lo")
                add("1 load", "%s errors (max)" % k, ("load", k, "errors"),
                    "", agg=most)
    add("all", "node HTTP warnings, parts 1-4 (max)",
        ("http_warnings", "count"), "", agg=most)
    if "2" in args.only:
        add("2 half-open", "healthz median ms", ("half", "healthz_median_ms"),
            "lo")
        add("2 half-open", "healthz max ms", ("half", "healthz_max_ms"), "lo")
        add("2 half-open", "healthz failed (max)",
            ("half", "healthz_failed"), "", agg=most)
        add("2 half-open", "half-open still held (min)",
            ("half", "half_open_alive"), "", agg=least)
    if "3" in args.only:
        add("3 big", "%d MiB curl MB/s" % args.big_mb, ("big", "mb_s"), "hi")
    if "4" in args.only:
        add("4 idle", "RSS fresh MiB", ("idle", "rss_fresh_mib"), "lo")
        add("4 idle", "RSS with %d idle MiB" % args.idle,
            ("idle", "rss_idle_mib"), "lo")
        add("4 idle", "threads with idle", ("idle", "threads_idle"), "lo")
        add("4 idle", "idle conns answered (min)", ("idle", "served"), "hi",
            agg=least)
        add("4 idle", "idle conns still open (min)",
            ("idle", "still_open"), "hi", agg=least)
    if "5" in args.only:
        add("5 blocking", "quiet files@8 req/s",
            ("block", "quiet", "rps"), "hi")
        add("5 blocking", "quiet files@8 p99 ms",
            ("block", "quiet", "p99_us"), "lo", 1e-3)
        add("5 blocking", "loaded files@8 req/s",
            ("block", "loaded", "rps"), "hi")
        add("5 blocking", "loaded files@8 p50 ms",
            ("block", "loaded", "p50_us"), "lo", 1e-3)
        add("5 blocking", "loaded files@8 p99 ms",
            ("block", "loaded", "p99_us"), "lo", 1e-3)
        add("5 blocking", "loaded files@8 longest wait ms",
            ("block", "loaded", "worst_us"), "lo", 1e-3)
        add("5 blocking", "healthz median ms",
            ("block", "healthz_median_ms"), "lo")
        add("5 blocking", "healthz p99 ms", ("block", "healthz_p99_ms"), "lo")
        add("5 blocking", "healthz max ms", ("block", "healthz_max_ms"), "lo")
        add("5 blocking", "healthz probes answered",
            ("block", "healthz_n"), "hi")
        add("5 blocking", "blocked pages served", ("block", "blocked_pages"),
            "hi")
        add("5 blocking", "blocked page median ms (delay %.0f)"
            % (1000 * args.page_delay),
            ("block", "blocked_page_median_ms"), "lo")
        add("5 blocking", "slow download MB/s (cap %.1f)" % args.slow_rate,
            ("block", "slow_mb_s"), "hi")
    return out


def report(args, res):
    print("reference: %s" % res["bin"])
    print("variant:   %s" % res["alt_bin"])
    print("rounds %d, %g s per load run (+%g s warm-up); load average %s "
          "before, %s after" % (args.rounds, args.duration, args.warmup,
                                res["load_before"], res["load_after"]))
    print()
    print("%-12s %-44s %12s %12s %8s" % ("part", "metric (median of rounds)",
                                         "reference", "variant", "var/ref"))
    for part, name, a, b, better in res["rows"]:
        def f(x):
            if x is None:
                return "-"
            return "%.0f" % x if abs(x) >= 100 else "%.3g" % x
        ratio = ("%.2f" % (b / a) if a not in (None, 0) and b is not None
                 else "-")
        hint = {"hi": " (hi)", "lo": " (lo)"}.get(better, "")
        print("%-12s %-44s %12s %12s %8s" % (part, name + hint, f(a), f(b),
                                            ratio))
    for label in ("ref", "alt"):
        kinds = []
        for r in res[label]:
            for key in ("http_warnings", "http_warnings_up"):
                for k in r.get(key, {}).get("kinds", []):
                    if k not in kinds:
                        kinds.append(k)
        for k in kinds:
            print("%s warned: %s" % (label, k))
    print()
    print("(hi)/(lo): which way is better. var/ref > 1 is the variant "
          "higher.")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="the reference binary")
    ap.add_argument("--alt", required=True, help="the variant binary")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--duration", type=float, help="seconds per load run")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--conc", default="8,64,512",
                    help="client counts for part 1")
    ap.add_argument("--small-count", type=int, default=100)
    ap.add_argument("--small-kb", type=int, default=1,
                    help="payload per small wheel (KiB; the file is ~2 KB)")
    ap.add_argument("--big-mb", type=int)
    ap.add_argument("--curl-rounds", type=int, default=2)
    ap.add_argument("--half-open", type=int, default=600)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--page-delay", type=float, default=0.3)
    ap.add_argument("--blockers", type=int, default=16)
    ap.add_argument("--slow-count", type=int, default=4)
    ap.add_argument("--slow-mb", type=float, default=8)
    ap.add_argument("--slow-rate", type=float, default=2.0,
                    help="MB/s of the slow upstream's wheels")
    ap.add_argument("--only", default="12345")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 1.5 s runs, 50 MiB big wheel")
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    ap.add_argument("--curl", default="/usr/bin/curl")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", help="also write every number to FILE")
    args = ap.parse_args()
    q = args.quick
    args.rounds = args.rounds or (1 if q else 3)
    args.duration = args.duration or (1.5 if q else 3.0)
    args.big_mb = args.big_mb or (50 if q else 500)
    args.conc = [int(x) for x in args.conc.split(",")]
    try:
        ref_bin = find_binary(args.bin)
        alt_bin = find_binary(args.alt)
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 2
    harness.BIN = ref_bin
    raise_nofile(4 * max([args.idle, args.half_open] + args.conc) + 256)
    work = tempfile.mkdtemp(prefix="wmbench-httpmode-", dir=args.workdir)
    tempfile.tempdir = work  # the nodes' directories go there too
    nodes, ups, upstream = {}, {}, None
    res = {"bin": ref_bin, "alt_bin": alt_bin, "load_before": loadavg(),
           "args": {k: v for k, v in vars(args).items()},
           "ref": [], "alt": []}
    try:
        lg = build_loadgen(work, args.cc)
        log("preparing wheels and data in %s" % work)
        tmpl_small, tmpl_full, big, files_txt, pages_txt = prepare(args, work)
        bins = {"ref": ref_bin, "alt": alt_bin}
        for label in ("ref", "alt"):
            nodes[label] = BenchNode(bins[label], label, tmpl_full)
        if "5" in args.only:
            slow = make_slow_wheels(args, work, ("ref", "alt"))
            upstream = Upstream(work, slow, args.page_delay, args.slow_rate)
            for label in ("ref", "alt"):
                ups[label] = BenchNode(
                    bins[label], label + "-up", tmpl_small,
                    config={"upstream": {"indexes": [{"url": upstream.url}],
                                         "timeout_s": 60}})
        for r in range(args.rounds):
            for label in (("ref", "alt") if r % 2 == 0 else ("alt", "ref")):
                out = {}
                node = nodes[label]
                log("round %d/%d: %s (load %s)" % (r + 1, args.rounds, label,
                                                   loadavg()))
                node.start()
                if "4" in args.only:
                    out["idle"] = part_idle(args, node)
                if "2" in args.only:
                    out["half"] = part_half_open(args, node)
                if "1" in args.only:
                    out["load"] = part_load(args, lg, node, files_txt,
                                            pages_txt)
                if "3" in args.only:
                    out["big"] = part_big(args, node, big)
                node.stop()
                out["http_warnings"] = http_warnings(node)
                if "5" in args.only:
                    up = ups[label]
                    up.start()
                    out["block"] = part_blocking(
                        args, lg, up, files_txt, "%s%d" % (label, r),
                        slow[(label, r)])
                    up.stop()
                    out["http_warnings_up"] = http_warnings(up)
                out["loadavg"] = loadavg()
                res[label].append(out)
        res["load_after"] = loadavg()
        res["rows"] = rows(args, res)
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 1
    finally:
        for n in list(nodes.values()) + list(ups.values()):
            try:
                if args.keep:  # the node's directory and stderr stay
                    n.stop()
                else:
                    n.cleanup()
            except Exception as e:  # report, go on cleaning
                log("cleanup %s: %s" % (n.label, e))
            finally:
                n.kill()
        if upstream is not None:
            upstream.stop()
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(args, res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
