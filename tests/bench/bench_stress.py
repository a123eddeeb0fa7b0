#!/usr/bin/python3
"""Streaming stress for wheelmesh: many cold wheels, each read at once by
several clients of which one is slow, from upstream and from a peer. The
heavier variant of tests/e2e/test_stream_stress.py (not run by ctest).

Two nodes on loopback, P and Q, one nginx upstream; every client reads
from Q. Per wheel: a fast Python client (http.client), a fast curl and a
curl held to --slow-rate, started together (--readers 2 drops the fast
curl). Phases:

  upstream  --count wheels of --mb MB on nginx, half of them fetched by Q
            itself and half through P (their designee)
  peer      --count wheels of --mb MB put on P, pulled by Q in chunks

Each reader's body is hashed as it arrives (nothing is written to disk).
A body that ends normally (curl exit 0; Python: the last chunk or all of
Content-Length) must be the wheel byte for byte; the others must end with
an error, not hang (a reader still going after --limit-s has hung).

Prints, per phase: readers that got the wheel, ended with an error, hung,
and WRONG (a body presented as complete that is not the wheel), the wall
time, the bytes delivered and the rate. Exit status: 0 when every reader of
every wheel got it, 1 otherwise (or when something failed to start), 2 on
a usage error. --json also prints every reader's result as JSON.

  /usr/bin/python3 tests/bench/bench_stress.py              # 20 x 200 MB
  /usr/bin/python3 tests/bench/bench_stress.py --quick      # 4 x 50 MB
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import MiB, BenchError, find_binary, log
import harness  # noqa: E402
import cluster_util as cu  # noqa: E402
import fault_util as fu  # noqa: E402
import makewheel  # noqa: E402
from upstream_index import Nginx, StaticIndex  # noqa: E402


class Reader(threading.Thread):
    """One client: 'python', 'curl' or 'curl-slow'. After join():
    .status 'ok' | 'error' | 'hung' | 'WRONG', .bytes, .took, .detail."""

    def __init__(self, kind, url, host, port, path, sha, size, args, go):
        super().__init__(daemon=True)
        self.kind, self.url, self.host, self.port = kind, url, host, port
        self.path, self.sha, self.size, self.args = path, sha, size, args
        self.go = go
        self.status, self.bytes, self.took, self.detail = None, 0, None, ""

    def run(self):
        self.go.wait()
        t0 = time.monotonic()
        try:
            normal, got_sha, n, hung, self.detail = (
                self._python() if self.kind == "python" else self._curl())
        except Exception as e:  # a client failure is a result too
            normal, got_sha, n, hung = False, None, 0, False
            self.detail = "client error: %r" % (e,)
        self.took = time.monotonic() - t0
        self.bytes = n
        if hung:
            self.status = "hung"
        elif normal:
            self.status = ("ok" if (got_sha, n) == (self.sha, self.size)
                           else "WRONG")
        else:
            self.status = "error"

    def _python(self):
        a = fu.bounded_get(self.host, self.port, self.path,
                           self.args.limit_s)
        return (a.status == 200 and a.complete, a.sha256, a.length,
                a.gave_up, a.describe())

    def _curl(self):
        cmd = [self.args.curl, "-sS", "-o", "-", "--max-time",
               str(int(self.args.limit_s))]
        if self.kind == "curl-slow":
            cmd += ["--limit-rate", self.args.slow_rate]
        proc = subprocess.Popen(cmd + [self.url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        h, n = hashlib.sha256(), 0
        for piece in iter(lambda: proc.stdout.read(MiB), b""):
            h.update(piece)
            n += len(piece)
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        rc = proc.wait()
        return (rc == 0, h.hexdigest(), n, rc == 28,
                "curl exit %d, %d bytes %s" % (rc, n, err[:200]))


def run_phase(name, wheels, node, args):
    """Reads every (filename, sha, size) of WHEELS from NODE with the
    readers; returns the phase's result dict."""
    kinds = (["python", "curl", "curl-slow"] if args.readers == 3
             else ["python", "curl-slow"])
    go = threading.Event()
    readers = []
    for fn, sha, size in wheels:
        path = cu.file_path(sha, fn)
        for k in kinds:
            r = Reader(k, node.url + path, node.host, node.port, path, sha,
                       size, args, go)
            r.fn = fn
            r.start()
            readers.append(r)
    t0 = time.monotonic()
    go.set()
    for r in readers:
        r.join(args.limit_s + 120)
    wall = time.monotonic() - t0
    counts = {s: 0 for s in ("ok", "error", "hung", "WRONG")}
    for r in readers:
        counts[r.status or "hung"] += 1
    delivered = sum(r.bytes for r in readers)
    return {"phase": name, "wheels": len(wheels), "readers": len(readers),
            "counts": counts, "wall_s": wall, "bytes": delivered,
            "rate_mb_s": delivered / wall / 1e6 if wall else 0.0,
            "slowest_s": max((r.took or 0) for r in readers),
            "results": [{"wheel": r.fn, "kind": r.kind, "status": r.status,
                         "bytes": r.bytes, "took_s": r.took,
                         "detail": r.detail} for r in readers]}


def report(results):
    print("%-9s %6s %7s %5s %6s %5s %6s %8s %9s %9s" % (
        "phase", "wheels", "readers", "ok", "error", "hung", "WRONG",
        "wall s", "MB/s", "slowest s"))
    for res in results:
        c = res["counts"]
        print("%-9s %6d %7d %5d %6d %5d %6d %8.1f %9.1f %9.1f" % (
            res["phase"], res["wheels"], res["readers"], c["ok"], c["error"],
            c["hung"], c["WRONG"], res["wall_s"], res["rate_mb_s"],
            res["slowest_s"]))
    for res in results:
        for r in res["results"]:
            if r["status"] != "ok":
                print("  %s %s %s: %s (%s)" % (res["phase"], r["wheel"],
                                               r["kind"], r["status"],
                                               r["detail"]))


def setup(args, work):
    """Keys, wheels, nginx and the nodes P and Q; returns (P, Q, nginx,
    upstream wheels, peer wheel paths)."""
    keys = {n: cu.Key(os.path.join(work, n + ".key")) for n in "PQ"}
    ids = [keys["P"].pub, keys["Q"].pub]
    size = args.mb * 1000 * 1000
    index = StaticIndex(os.path.join(work, "upstream"))
    up = []
    log("writing %d upstream wheels of %d MB" % (args.count, args.mb))
    for i in range(args.count):
        who = "QP"[i % 2]
        up.append(index.add(cu.designated_wheel(
            index.packages, ids, keys[who].pub, "bs-up%02d" % i, size)))
    peer_dir = os.path.join(work, "peer")
    os.makedirs(peer_dir)
    log("writing %d peer wheels of %d MB" % (args.count, args.mb))
    peer = [makewheel.make_wheel(peer_dir, "bs-peer%02d" % i, "1.0",
                                 size=size, seed=1000 + i)
            for i in range(args.count)]
    nginx = Nginx(index)
    trusted = cu.write_trusted(os.path.join(work, "trusted"), keys.values())
    config = {"cluster": {"publishers": cu.write_trusted(
        os.path.join(work, "publishers"), [keys["P"]], "publishers")}}
    P = cu.ClusterNode(keys["P"], trusted=trusted, label="P",
                       upstream=nginx.url, config=config)
    Q = cu.ClusterNode(keys["Q"], trusted=trusted, label="Q",
                       seeds=[P.cluster_addr], upstream=nginx.url,
                       config=config)
    cu.Waiter([P, Q])(lambda: Q.member_state(P.id) == "alive"
                      and P.member_state(Q.id) == "alive",
                      "P and Q to see each other alive", timeout=20)
    return P, Q, nginx, up, peer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin")
    ap.add_argument("--quick", action="store_true",
                    help="short run: --count 4 --mb 50")
    ap.add_argument("--count", type=int, help="wheels per phase (20)")
    ap.add_argument("--mb", type=int, help="size of each wheel (200)")
    ap.add_argument("--readers", type=int, default=3, choices=(2, 3),
                    help="readers per wheel: 3 (python, curl, slow curl) "
                    "or 2 (python, slow curl)")
    ap.add_argument("--slow-rate", default="8M",
                    help="curl --limit-rate of the slow reader (8M)")
    ap.add_argument("--limit-s", type=float,
                    help="a reader still going after this has hung "
                    "(default: 3 x what the slow reader needs, >= 120)")
    ap.add_argument("--phases", default="upstream,peer")
    ap.add_argument("--curl", default=shutil.which("curl") or "/usr/bin/curl")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--workdir")
    args = ap.parse_args(argv)
    args.count = args.count or (4 if args.quick else 20)
    args.mb = args.mb or (50 if args.quick else 200)
    phases = args.phases.split(",")
    if args.count < 1 or args.mb < 1 or not set(phases) <= {"upstream",
                                                           "peer"}:
        ap.error("--count and --mb >= 1; --phases from upstream,peer")
    rate = float(args.slow_rate.rstrip("MmKk")) * (
        1e6 if args.slow_rate[-1] in "Mm" else 1e3)
    args.limit_s = args.limit_s or max(120.0, 3 * args.mb * 1e6 / rate)
    try:
        harness.BIN = find_binary(args.bin)
    except BenchError as e:
        log(str(e))
        return 1
    work = tempfile.mkdtemp(prefix="wm-bench-stress-", dir=args.workdir)
    nodes, nginx, results = [], None, []
    try:
        P, Q, nginx, up, peer = setup(args, work)
        nodes = [P, Q]
        if "upstream" in phases:
            log("upstream phase: %d wheels x %d readers" % (args.count,
                                                            args.readers))
            results.append(run_phase(
                "upstream", [(e["filename"], e["sha256"],
                              os.path.getsize(e["path"])) for e in up],
                Q, args))
        if "peer" in phases:
            wheels = []
            for p in peer:
                wheels.append((os.path.basename(p), P.put_ok(p),
                               os.path.getsize(p)))
            cu.Waiter(nodes)(lambda: all(w[0] in Q.held() for w in wheels),
                             "Q to list the wheels put on P", timeout=30)
            log("peer phase: %d wheels x %d readers" % (args.count,
                                                        args.readers))
            results.append(run_phase("peer", wheels, Q, args))
    except (BenchError, AssertionError, OSError) as e:
        log("failed: %s" % e)
        return 1
    finally:
        for n in nodes:
            try:
                n.cleanup()
            except AssertionError as e:
                log("node %s: %s" % (n.label, str(e).splitlines()[0]))
        if nginx is not None:
            nginx.cleanup()
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        report(results)
    bad = sum(r["readers"] - r["counts"]["ok"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
