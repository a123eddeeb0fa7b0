"""Wheels streamed while they arrive, to several clients at once, some of
them slow: every body that ends normally is the wheel byte for byte, and
every other one ends with an error. Never a short or wrong body presented
as complete.

Nodes P and Q (one nginx upstream); Q is read from. Each wheel is read cold
by three clients that start together: a fast Python client, a fast curl and
a curl held to 8 MB/s (--limit-rate), so the node serves one wheel to
readers at very different offsets while it is still arriving.

The peer phase runs first, so that a designee still busy with the
tampered wheel (retrying it) cannot slow it down and blur what it shows.

- from a peer: four ~48 MB wheels put on P, pulled by Q in chunks;
- from upstream: four ~48 MB wheels, two fetched by Q itself and two
  through P (their designee), and a 12 MB wheel, also through P, whose
  bytes upstream changed after its page was written (the page's sha256 no
  longer matches: every reader must end with an error, none may look
  complete, none may be left waiting).

Clients: a curl that exits 0 or a Python read that ends on the last chunk
or at Content-Length counts as 'ended normally'; a body still unfinished
after 90 s has hung, which is a failure too. The heavier variant
(twenty ~200 MB wheels) is tests/bench/bench_stress.py.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import harness as h
import cluster_util as cu
import fault_util as fu
from makewheel import make_wheel
from upstream_index import Nginx, StaticIndex

SIZE = 48 * 1000 * 1000
CURL = "/usr/bin/curl"
SLOW_RATE = "8M"
READ_LIMIT_S = 90  # a reader still going after this has hung


def setUpModule():
    h.require_binary()


class Reader(threading.Thread):
    """One client of URL: 'python' (http.client, as fast as it can),
    'curl' or 'curl-slow' (--limit-rate). After join(): .ended_normally
    (the body ended as HTTP says a body ends), .hung (the client gave up
    after READ_LIMIT_S: the body never ended), .sha256, .length,
    .detail."""

    def __init__(self, kind, node, path, start_at, outdir):
        super().__init__(daemon=True)
        self.kind, self.node, self.path = kind, node, path
        self.start_at, self.outdir = start_at, outdir
        self.ended_normally = self.hung = False
        self.sha256 = self.detail = None
        self.length = 0
        self.took = None

    def run(self):
        self.start_at.wait()
        t0 = time.monotonic()
        try:
            if self.kind == "python":
                self._python()
            else:
                self._curl()
        except Exception as e:  # reported by the test
            self.detail = "client error: %r" % (e,)
        self.took = time.monotonic() - t0

    def _python(self):
        a = fu.bounded_get(self.node.host, self.node.port, self.path,
                           READ_LIMIT_S)
        self.ended_normally = a.status == 200 and a.complete
        self.hung = a.gave_up
        self.sha256, self.length = a.sha256, a.length
        self.detail = a.describe()

    def _curl(self):
        fd, out = tempfile.mkstemp(dir=self.outdir)
        os.close(fd)
        try:
            args = [CURL, "-sS", "-o", out, "--max-time", str(READ_LIMIT_S),
                    "-w", "%{http_code} %{size_download}"]
            if self.kind == "curl-slow":
                args += ["--limit-rate", SLOW_RATE]
            proc = subprocess.run(args + [self.node.url + self.path],
                                  capture_output=True, text=True,
                                  timeout=READ_LIMIT_S + 30)
            code = proc.stdout.split()[0] if proc.stdout else "-"
            self.ended_normally = proc.returncode == 0 and code == "200"
            self.hung = proc.returncode == 28  # --max-time
            self.sha256 = h.sha256_file(out)
            self.length = os.path.getsize(out)
            self.detail = "curl exit %d, HTTP %s, %d bytes %s" % (
                proc.returncode, code, self.length, proc.stderr.strip()[:200])
        finally:
            os.remove(out)


class Stress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(CURL, os.X_OK):
            h.skip("no %s" % CURL)
        cls.tmp, keys = cu.make_keys(cls, "PQ")
        ids = [keys["P"].pub, keys["Q"].pub]
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        pk = cls.index.packages
        cls.upstream = []
        for i, who in enumerate("QQPP"):
            cls.upstream.append(cls.index.add(cu.designated_wheel(
                pk, ids, keys[who].pub, "st-up%d" % i, SIZE)))
        cls.bad = cls.index.add(cu.designated_wheel(
            pk, ids, keys["P"].pub, "st-tampered", 12 * 1000 * 1000))
        cls.index.tamper(cls.bad["filename"])
        cls.peer_dir = os.path.join(cls.tmp, "peer")
        os.makedirs(cls.peer_dir)
        cls.peer = [make_wheel(cls.peer_dir, "st-peer%d" % i, "1.0",
                               size=SIZE, seed=100 + i) for i in range(4)]
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        # P may name the wheels put on it cluster-wide (the peer phase).
        config = {"cluster": {"publishers": cu.write_trusted(
            os.path.join(cls.tmp, "publishers"), [keys["P"]],
            "publishers")}}
        cls.P = cu.ClusterNode(keys["P"], trusted=trusted, label="P",
                               upstream=cls.nginx.url, config=config)
        cls.addClassCleanup(cls.P.cleanup)
        cls.Q = cu.ClusterNode(keys["Q"], trusted=trusted, label="Q",
                               seeds=[cls.P.cluster_addr],
                               upstream=cls.nginx.url, config=config)
        cls.addClassCleanup(cls.Q.cleanup)
        cls.nodes = [cls.P, cls.Q]
        cu.Waiter(cls.nodes)(
            lambda: cls.Q.member_state(cls.P.id) == "alive"
            and cls.P.member_state(cls.Q.id) == "alive",
            "P and Q to see each other alive", timeout=15)

    def msg(self, extra=""):
        return "%s\n%s\n%s" % (extra, cu.tails(self.nodes), self.nginx.tail())

    def read_all(self, wheels):
        """Three readers per (filename, sha256) of WHEELS on Q, all started
        at once; returns [(filename, sha, reader)]."""
        out = tempfile.mkdtemp(prefix="wm-e2e-stress-")
        self.addCleanup(shutil.rmtree, out, True)
        go = threading.Event()
        jobs = []
        for fn, sha in wheels:
            for kind in ("python", "curl", "curl-slow"):
                r = Reader(kind, self.Q, cu.file_path(sha, fn), go, out)
                r.start()
                jobs.append((fn, sha, r))
        go.set()
        for _, _, r in jobs:
            r.join(READ_LIMIT_S + 60)
        return jobs

    def judge(self, jobs, sizes, bad=()):
        """Problems: a body that ended normally with other bytes than the
        wheel's (or any for a wheel in BAD); a body that never ended; a
        good wheel a reader did not get."""
        lies, missed = [], []
        for fn, sha, r in jobs:
            line = "%s %s (%.1f s): %s" % (fn, r.kind, r.took or -1,
                                           r.detail)
            if r.is_alive() or r.hung:
                missed.append("NEVER ENDED (the client gave up): " + line)
            elif r.ended_normally and (fn in bad or r.sha256 != sha
                                       or r.length != sizes[fn]):
                lies.append("ENDED NORMALLY WITH A WRONG BODY: " + line)
            elif not r.ended_normally and fn not in bad:
                missed.append("ended with an error: " + line)
        return lies, missed

    def check(self, what, jobs, sizes, bad=()):
        lies, missed = self.judge(jobs, sizes, bad)
        report = "\n  ".join("%s %s (%.1f s): %s" % (fn, r.kind, r.took or -1,
                                                    r.detail)
                             for fn, sha, r in jobs)
        if lies:
            self.fail(self.msg(
                "%s: a short or wrong body presented as complete:\n  %s\n"
                "all readers:\n  %s" % (what, "\n  ".join(lies), report)))
        if missed:
            self.fail(self.msg(
                "%s: bodies that never ended, or good wheels a reader did "
                "not get:\n  %s\nall readers:\n  %s"
                % (what, "\n  ".join(missed), report)))

    def test_2_cold_from_upstream(self):
        wheels = [(e["filename"], e["sha256"]) for e in self.upstream]
        wheels.append((self.bad["filename"], self.bad["sha256"]))
        sizes = {e["filename"]: os.path.getsize(e["path"])
                 for e in self.upstream + [self.bad]}
        jobs = self.read_all(wheels)
        self.check("cold from upstream", jobs, sizes,
                   bad=(self.bad["filename"],))
        # Stored once the store has written them (a step behind the last
        # byte a reader got).
        cu.Waiter(self.nodes)(
            lambda: all(self.Q.held().get(e["filename"], {}).get("sha256")
                        == e["sha256"] for e in self.upstream),
            "Q to hold every good wheel it streamed", timeout=20)
        held = self.Q.held()
        self.assertNotIn(self.Q.id, held.get(self.bad["filename"], {}).get(
            "holders", []), self.msg("Q stored the tampered wheel"))

    def test_1_cold_from_a_peer(self):
        wheels = []
        for p in self.peer:
            wheels.append((os.path.basename(p), self.P.put_ok(p)))
        cu.Waiter(self.nodes)(
            lambda: all(fn in self.Q.held() for fn, _ in wheels),
            "Q to list the wheels put on P", timeout=10)
        sizes = {os.path.basename(p): os.path.getsize(p) for p in self.peer}
        jobs = self.read_all(wheels)
        self.check("cold from peer P", jobs, sizes)
        self.assertEqual(self.nginx.requests("/packages/st_peer"), 0,
                         self.msg("Q went upstream for a wheel P holds"))


if __name__ == "__main__":
    unittest.main()
