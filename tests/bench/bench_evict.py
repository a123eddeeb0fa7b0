#!/usr/bin/python3
"""The collector at work: a node holding --wheels small upstream wheels is
restarted with a cap far below what it holds, and evicts them while a
client keeps asking for pages and files, as pip would. Not run by ctest
(tests/e2e/test_lifecycle.py checks what is evicted; this measures how it
feels meanwhile).

  /usr/bin/python3 tests/bench/bench_evict.py [--bin B] [--wheels 10000]

One invocation:
  1. writes --wheels wheels of 2 KB (100 projects) on a StaticIndex
     behind nginx, and pulls every one through a node with a large cap
     (four clients at once);
  2. reference: with nothing to collect, times --requests GETs of a
     project page (JSON) and of a stored wheel, alternating, on one
     keep-alive connection;
  3. the node restarts with cache.max_size 1 MiB: the same client runs
     while the collector evicts, until /api/status says the store is
     under its cap;
  4. prints p50/p99 of both runs, their ratios, the time to get back under
     the cap and the evictions per second; PASS or MISS for page p99
     during collection under --target-ms (50 ms).

Exit status: 0 when the run completed (a MISS included unless --strict),
1 when something failed.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

from benchlib import BenchError, find_binary, log, mark
import harness  # noqa: E402
from makewheel import make_wheel  # noqa: E402
from upstream_index import Nginx, StaticIndex  # noqa: E402

PROJECTS = 100


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def fill(node, wheels):
    """Pulls every (project, filename, sha) of WHEELS through NODE."""
    def worker(part):
        conn = http.client.HTTPConnection(node.host, node.port, timeout=60)
        seen = set()
        for project, name, sha in part:
            if project not in seen:
                conn.request("GET", "/simple/%s/" % project)
                conn.getresponse().read()
                seen.add(project)
            conn.request("GET", "/files/%s/%s" % (sha, name))
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise BenchError("GET %s: %d" % (name, r.status))
        conn.close()

    parts = [wheels[i::4] for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(worker, parts))


def harness_wait_stored(node, n, timeout=120):
    """Until the node's store holds N wheels (it writes them a step after
    serving them)."""
    deadline = time.monotonic() + timeout
    while node.status()["cache"]["files"] < n:
        if time.monotonic() > deadline:
            raise BenchError("the node stored %d of %d wheels"
                             % (node.status()["cache"]["files"], n))
        time.sleep(0.2)


class Client(threading.Thread):
    """Alternates a page GET and a wheel GET until told to stop (or N
    pairs); keeps the latency of each."""

    def __init__(self, node, project, wheel, n=None):
        super().__init__(daemon=True)
        self.node, self.project, self.wheel, self.n = node, project, wheel, n
        self.pages, self.files = [], []
        self.stop = threading.Event()
        self.error = None

    def get(self, conn, path):
        t = time.perf_counter()
        conn.request("GET", path, headers={
            "Accept": "application/vnd.pypi.simple.v1+json"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise BenchError("GET %s: %d" % (path, r.status))
        return (time.perf_counter() - t) * 1000.0

    def run(self):
        try:
            conn = http.client.HTTPConnection(self.node.host, self.node.port,
                                              timeout=60)
            while not self.stop.is_set() and (self.n is None or
                                              len(self.pages) < self.n):
                self.pages.append(self.get(conn, "/simple/%s/" % self.project))
                self.files.append(self.get(conn, self.wheel))
            conn.close()
        except Exception as e:  # reported by the main thread
            self.error = e


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin")
    ap.add_argument("--wheels", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--target-ms", type=float, default=50.0)
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    harness.BIN = find_binary(args.bin)
    tmp = tempfile.mkdtemp(prefix="wmbench-evict-")
    nginx = node = None
    try:
        index = StaticIndex(os.path.join(tmp, "upstream"))
        src = os.path.join(tmp, "wheels")
        os.makedirs(src)
        wheels = []
        log("writing %d wheels" % args.wheels)
        for i in range(args.wheels):
            project = "ev-p%03d" % (i % PROJECTS)
            path = make_wheel(src, project, "1.%d" % (i // PROJECTS),
                              size=2000)
            index.add(path, write=False)
            wheels.append((project, os.path.basename(path),
                           harness.sha256_file(path)))
        index.write()
        nginx = Nginx(index)
        node = harness.Node(config={
            "upstream": {"indexes": [{"url": nginx.url}],
                         "page_ttl_s": 86400},
            "cache": {"max_size": "1GiB"}}, log=True)
        t = time.monotonic()
        fill(node, wheels)
        log("pulled %d wheels through the node in %.1f s"
            % (len(wheels), time.monotonic() - t))
        project, name, sha = wheels[-1]
        wheel = "/files/%s/%s" % (sha, name)

        ref = Client(node, project, wheel, n=args.requests)
        ref.run()
        if ref.error:
            raise ref.error

        harness_wait_stored(node, len(wheels))
        held = node.status()["cache"]["bytes"]
        node.stop()
        node.config["cache"]["max_size"] = "1MiB"
        with open(node.config_path, "w") as f:
            json.dump(node.config, f)
        node.start()
        during = Client(node, project, wheel)
        t0 = time.monotonic()
        during.start()
        while node.status()["cache"]["bytes"] > 1 << 20:
            if time.monotonic() - t0 > 600:
                raise BenchError("still over the cap after 600 s")
            time.sleep(0.05)
        took = time.monotonic() - t0
        during.stop.set()
        during.join(60)
        if during.error:
            raise during.error
        st = node.status()
        evicted = st["collector"]["evicted_size"]
        left = st["cache"]["files"]
        res = {
            "wheels": len(wheels), "held_before": held, "evicted": evicted,
            "under_cap_s": took, "evictions_per_s": evicted / took,
            "idle": {"page_p50": statistics.median(ref.pages),
                     "page_p99": percentile(ref.pages, 99),
                     "file_p50": statistics.median(ref.files),
                     "file_p99": percentile(ref.files, 99)},
            "collecting": {"requests": len(during.pages),
                           "page_p50": statistics.median(during.pages),
                           "page_p99": percentile(during.pages, 99),
                           "file_p50": statistics.median(during.files),
                           "file_p99": percentile(during.files, 99)},
        }
        ok = res["collecting"]["page_p99"] < args.target_ms
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            i, c = res["idle"], res["collecting"]
            print("evicted %d of %d wheels (%d left); under the cap in "
                  "%.1f s (%.0f evictions/s)"
                  % (evicted, len(wheels), left, took,
                     res["evictions_per_s"]))
            print("%-12s %10s %10s %10s %10s" % ("", "page p50", "page p99",
                                                 "file p50", "file p99"))
            for label, r in (("idle", i), ("collecting", c)):
                print("%-12s %8.2f ms %7.2f ms %7.2f ms %7.2f ms"
                      % (label, r["page_p50"], r["page_p99"],
                         r["file_p50"], r["file_p99"]))
            print("ratio        %9.2fx %9.2fx %9.2fx %9.2fx"
                  % (c["page_p50"] / i["page_p50"],
                     c["page_p99"] / i["page_p99"],
                     c["file_p50"] / i["file_p50"],
                     c["file_p99"] / i["file_p99"]))
            print("page p99 while collecting < %.0f ms: %s"
                  % (args.target_ms, mark(ok)))
        return 0 if ok or not args.strict else 1
    except BenchError as e:
        print("bench_evict: %s" % e, file=sys.stderr)
        if node is not None:
            print(node.tail(), file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.cleanup()
        if nginx is not None:
            nginx.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
