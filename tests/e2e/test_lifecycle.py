"""The cache's life cycle: a size cap, least recently used first, expiry,
prune, never the last copy, and a full map that is not the end.

The upstream is a real nginx serving generated wheels; wheels reach the
node the way pip's do (GET /files/<sha256>/<name>, which fetches them from
upstream on a miss). What a test asserts is what a user sees: /api/status,
/api/files, /metrics, the data directory's size on disk, pip.
"""

import hashlib
import os
import threading
import time
import unittest

import cluster_util as cu
import harness as h
from makewheel import make_wheel
from upstream_index import Nginx, StaticIndex

MiB = 1 << 20
DAY = 86400


def setUpModule():
    h.require_binary()


def disk_usage(path):
    """Bytes really allocated under PATH (LMDB's map is a sparse file)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for fn in files:
            try:
                total += os.lstat(os.path.join(dirpath, fn)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class Upstream:
    """Generated wheels of SIZE bytes on a StaticIndex behind nginx."""

    def __init__(self, tmp, extra=""):
        self.index = StaticIndex(os.path.join(tmp, "upstream"))
        self.wheels = os.path.join(tmp, "wheels")
        os.makedirs(self.wheels, exist_ok=True)
        self.nginx = Nginx(self.index, extra=extra)
        self.files = {}  # project -> (filename, sha256, size)

    def add(self, project, size, version="1.0"):
        path = make_wheel(self.wheels, project, version, size=size)
        self.index.add(path)
        name = os.path.basename(path)
        self.files[project] = (name, h.sha256_file(path),
                               os.path.getsize(path))
        return self.files[project]

    def cleanup(self):
        self.nginx.cleanup()


class ClockNode(h.Node):
    """A node whose collector's clock runs OFFSET seconds ahead (the
    test-only WHEELMESH_TEST_CLOCK_OFFSET_S)."""

    def __init__(self, offset=0, **kw):
        self.offset = offset
        super().__init__(**kw)

    def env(self):
        if not self.offset:
            return None
        env = dict(os.environ)
        env["WHEELMESH_TEST_CLOCK_OFFSET_S"] = str(self.offset)
        return env


class LifecycleCase(unittest.TestCase):
    MAX_SIZE = 16 * MiB
    EXTRA = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)
        cls.up = Upstream(cls.tmp)
        cls.addClassCleanup(cls.up.cleanup)
        cls.node = cls.make_node()

    @classmethod
    def make_node(cls, offset=0):
        config = h.merge({"upstream": {"indexes": [{"url": cls.up.nginx.url}],
                                       "timeout_s": 10},
                          "cache": {"max_size": cls.MAX_SIZE}}, cls.EXTRA)
        node = ClockNode(offset=offset, config=config, log=True)
        cls.addClassCleanup(node.cleanup)
        return node

    def log(self):
        with open(self.node.log_path, errors="replace") as f:
            return f.read()

    def msg(self, extra=""):
        return "%s\n%s\n%s" % (extra, self.node.tail(), self.up.nginx.tail())

    def fetch(self, project, node=None):
        """GETs PROJECT's wheel through the node, as pip does, and checks
        the bytes."""
        node = node or self.node
        name, sha, size = self.up.files[project]
        status, _, got, n = node.download(cu.file_path(sha, name))
        self.assertEqual((status, got, n), (200, sha, size),
                         self.msg("GET %s" % name))
        return sha

    def held(self, node=None):
        """{project: sha256} of the wheels the node's own store holds."""
        return {f["project"]: f["sha256"] for f in (node or self.node).files()
                if f["local"]}

    def cache(self, node=None):
        return (node or self.node).status()["cache"]

    def collector(self, node=None):
        return (node or self.node).status()["collector"]

    def wait(self, pred, what, timeout=10.0):
        deadline = time.monotonic() + h.limit(timeout)
        while not pred():
            if time.monotonic() > deadline:
                self.fail(self.msg("timed out waiting for " + what))
            time.sleep(0.1)

    def wait_settled(self, node=None):
        """Until the store holds what it wrote and the collector is done:
        two status reads a little apart agree."""
        node = node or self.node
        last = None
        for _ in range(100):
            now = (self.cache(node)["bytes"],
                   self.collector(node)["bytes_freed"])
            if now == last:
                return now[0]
            last = now
            time.sleep(0.2)
        return last[0]


class SizeCap(LifecycleCase):
    """cache.max_size 16 MiB; 1 MB wheels pulled through the node."""

    WHEEL = 1000 * 1000

    def test_lru_under_the_cap(self):
        """Fill to three times the cap: held bytes stay within the cap plus
        one wheel, and a wheel read all along survives while wheels read
        once go, oldest first."""
        hot = self.up.add("lc-hot", self.WHEEL)
        self.fetch("lc-hot")
        n = 3 * self.MAX_SIZE // self.WHEEL
        for i in range(n):
            self.up.add("lc-fill%03d" % i, self.WHEEL)
        worst = 0
        for i in range(n):
            self.fetch("lc-fill%03d" % i)
            self.fetch("lc-hot")  # a local hit: it was used just now
            worst = max(worst, self.wait_settled())
            self.assertLessEqual(worst, self.MAX_SIZE + hot[2], self.msg(
                "held %d bytes after %d wheels (cap %d)"
                % (worst, i + 1, self.MAX_SIZE)))
        held = self.held()
        self.assertIn("lc-hot", held, self.msg("the wheel read all along "
                                               "was evicted"))
        self.assertNotIn("lc-fill000", held, self.msg("LRU keeps the oldest"))
        self.assertIn("lc-fill%03d" % (n - 1), held, self.msg())
        c = self.collector()
        self.assertGreater(c["evicted_size"], 0, self.msg())
        m = self.node.metrics()
        self.assertEqual(m['wheelmesh_evictions_total{reason="size"}'],
                         c["evicted_size"])
        self.assertLessEqual(self.cache()["fill_percent"], 100.0)
        # An evicted wheel is fetched again from upstream, byte for byte.
        before = self.up.nginx.requests("/packages/lc_fill000-")
        self.fetch("lc-fill000")
        self.assertEqual(self.up.nginx.requests("/packages/lc_fill000-"),
                         before + 1)

    def test_disk_stays_near_the_cap(self):
        """Ten fills past the cap with new wheels: the data directory stays
        within 1.5 times the cap (freed pages are used again)."""
        per_cycle = self.MAX_SIZE // self.WHEEL
        sizes = []
        for cycle in range(10):
            for i in range(per_cycle):
                p = "lc-disk%02d-%02d" % (cycle, i)
                self.up.add(p, self.WHEEL)
                self.fetch(p)
            self.wait_settled()
            sizes.append(disk_usage(self.node.data))
        self.assertLessEqual(max(sizes), 1.5 * self.MAX_SIZE, self.msg(
            "data dir sizes per cycle: %s" % sizes))
        self.assertLessEqual(self.cache()["bytes"], self.MAX_SIZE)


class Expiry(LifecycleCase):
    """cache.expire_after_days 7, and a node whose clock runs 8 days ahead
    (a test-only hook)."""

    EXTRA = {"cache": {"expire_after_days": 7}}

    def test_unused_wheels_expire(self):
        for p in ("lc-old-a", "lc-old-b", "lc-old-c"):
            self.up.add(p, 100 * 1000)
            self.fetch(p)
        self.wait(lambda: len(self.held()) == 3, "three wheels stored")
        self.node.stop()
        self.node.offset = 8 * DAY
        self.node.start()
        self.fetch("lc-old-a")  # used "today": it stays
        self.wait(lambda: set(self.held()) == {"lc-old-a"},
                  "the wheels unused for 8 days to expire", timeout=15)
        self.assertEqual(self.collector()["evicted_expiry"], 2)
        self.assertIn("WHEELMESH_TEST_CLOCK_OFFSET_S", self.log())


class Prune(LifecycleCase):
    MAX_SIZE = 1 << 30
    EXTRA = {"http": {"allow_put_from": ["127.0.0.0/8"]}}

    def prune(self, *args, node=None):
        node = node or self.node
        return h.run([h.BIN, "prune", "--node", node.url] + list(args))

    def test_forms(self):
        self.prune("--all")  # what other tests of the class left
        before = self.collector()["evicted_prune"]
        for p in ("lc-pa", "lc-pb", "lc-pc", "lc-pd"):
            self.up.add(p, 300 * 1000)
            self.fetch(p)
        self.wait(lambda: len(self.held()) == 4, "four wheels stored")
        put = make_wheel(self.tmp, "lc-mine", "1.0", size=1000)
        self.node.put_ok(put)

        r = self.prune("--project", "LC_PA")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pruned 1 wheels", r.stdout)
        self.assertNotIn("lc-pa", self.held())

        r = self.prune("--older-than", "1")  # everything was used today
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pruned 0 wheels", r.stdout)

        r = self.prune("--to", "400KiB")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLessEqual(self.cache()["bytes"], 400 * 1024)
        self.assertIn("lc-mine", self.held())

        r = self.prune("--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 kept as the last copy", r.stdout)
        self.assertEqual(set(self.held()), {"lc-mine"},
                         "a put nobody else holds is the last copy")
        self.assertEqual(self.collector()["evicted_prune"] - before, 4)
        self.fetch("lc-pb")  # gone from the store, not from the index

    def test_bad_requests(self):
        for args in ([], ["--all", "--project", "x"], ["--to"],
                     ["--bogus"]):
            r = self.prune(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        for args, why in ((["--to", "lots"], "to: expected a size"),
                          (["--older-than", "0"], "older_than"),
                          (["--project", "-bad-"], "bad project name")):
            r = self.prune(*args)
            self.assertEqual(r.returncode, 1, (args, r.stdout))
            self.assertIn(why, r.stderr)
        for path in ("/api/cache", "/api/cache?all=1&project=a",
                     "/api/cache?all=yes"):
            status, _, body = self.node.request("DELETE", path)
            self.assertEqual(status, 400, (path, body))
        status, hdrs, _ = self.node.get("/api/cache")
        self.assertEqual(status, 405)
        self.assertEqual(hdrs.get("Allow"), "DELETE")
        far = h.Node(config={"http": {"allow_put_from": ["10.9.9.0/24"]}})
        self.addCleanup(far.cleanup)
        r = self.prune("--all", node=far)
        self.assertEqual(r.returncode, 1)
        self.assertIn("403", r.stderr)
        self.assertIn("http.allow_put_from", r.stderr)

    def test_during_a_download_and_a_fetch(self):
        """A prune of the wheel a client is reading from the store, and of
        one the node is fetching: both clients get every byte."""
        self.up.add("lc-read", 24 * MiB)
        self.fetch("lc-read")
        self.wait(lambda: "lc-read" in self.held(), "the wheel stored")
        name, sha, size = self.up.files["lc-read"]
        conn = self.node.connection()
        conn.request("GET", cu.file_path(sha, name))
        resp = conn.getresponse()
        first = resp.read(1 << 20)  # the client then stalls
        r = self.prune("--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("lc-read", self.held())
        time.sleep(2.5)  # past the reader's view renewal
        rest = resp.read()
        conn.close()
        self.assertEqual(hashlib.sha256(first + rest).hexdigest(), sha)

        self.up.add("lc-slow", 8 * MiB)
        name, sha, size = self.up.files["lc-slow"]
        got = {}

        def client():
            got["r"] = self.node.download(cu.file_path(sha, name))

        t = threading.Thread(target=client)
        t.start()
        self.wait(lambda: self.up.nginx.requests("/packages/lc_slow-") > 0,
                  "the fetch to start")
        r = self.prune("--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        t.join(60)
        self.assertEqual(got["r"][0], 200)
        self.assertEqual(got["r"][2:], (sha, size))


class FullMap(LifecycleCase):
    """A map too small for the wheels: puts get 507, pulls are streamed
    uncommitted, the node stays up and restarts clean. The wheels are just
    under cache.max_size (so the node tries) and, in LMDB's 4 KiB pages,
    just over the map."""

    MAX_SIZE = 8 * MiB
    EXTRA = {"cache": {"map_size": 8 * MiB},
             "http": {"allow_put_from": ["127.0.0.0/8"]}}

    def test_full_map(self):
        big = make_wheel(self.tmp, "lc-toobig", "1.0", size=8 * MiB - 8000)
        status, _, body = self.node.put(big)
        self.assertEqual(status, 507, body)
        self.up.add("lc-huge", 8 * MiB - 8000)
        for _ in range(2):  # served each time, kept never
            self.fetch("lc-huge")
        self.wait(lambda: self.cache()["not_kept_no_room"] >= 1,
                  "the failed commit to be counted")
        self.assertNotIn("lc-huge", self.held())
        self.assertIn("no room for", self.log())
        small = self.up.add("lc-small", 200 * 1000)
        self.fetch("lc-small")
        self.wait(lambda: "lc-small" in self.held(), "a small wheel stored")
        v = h.venv(os.path.join(self.tmp, "venv"))
        r = v.run_pip("install", "--no-deps", "--index-url",
                      self.node.url + "/simple/", "lc-huge")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.node.stop()
        self.node.start()
        self.assertEqual(set(self.held()), {"lc-small"})
        st = self.node.status()
        self.assertEqual(st["cache"]["files"], 1)
        self.assertEqual(st["cache"]["bytes"], small[2])


class ThreeNodes(unittest.TestCase):
    """A, B and C in one cluster on one upstream; A's cap is small."""

    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "ABC")
        cls.up = Upstream(cls.tmp)
        cls.addClassCleanup(cls.up.cleanup)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        ports = {n: h.free_port() for n in "ABC"}
        seeds = {"A": [], "B": ["A"], "C": ["A"]}
        cls.nodes = {}
        for n in "ABC":
            cfg = {"http": {"allow_put_from": ["127.0.0.0/8"]}}
            if n == "A":
                cfg["cache"] = {"max_size": 4 * MiB}
            node = cu.ClusterNode(
                keys[n], trusted=trusted, config=cfg,
                seeds=[cu.addr(ports[s]) for s in seeds[n]],
                cluster_port=ports[n], upstream=cls.up.nginx.url, label=n)
            cls.addClassCleanup(node.cleanup)
            cls.nodes[n] = node
        cls.A, cls.B, cls.C = (cls.nodes[n] for n in "ABC")
        cu.wait_all_alive(cls.nodes.values())

    def holders(self, node, project):
        """The ids NODE says hold PROJECT's wheel (itself included)."""
        for f in node.files(project):
            if f["project"] == project:
                return set(f["holders"]) | ({node.id} if f["local"] else set())
        return set()

    def fetch(self, node, project):
        name, sha, size = self.up.files[project]
        got = node.download(cu.file_path(sha, name))
        self.assertEqual(got[0::2], (200, sha), cu.tails(self.nodes.values()))

    def test_evicted_holder_leaves_the_index(self):
        """A drops a wheel B also holds: C stops naming A as its holder
        within 5 s, and pip on C still installs it."""
        self.up.add("lc-shared", 1 * MiB)
        for n in (self.A, self.B):
            self.fetch(n, "lc-shared")
        w = cu.Waiter(self.nodes.values())
        # (The member the cluster designates fetches it from upstream and
        # may hold it too.)
        w(lambda: {self.A.id, self.B.id} <= self.holders(self.C, "lc-shared"),
          "C to see A and B hold it")
        # Past its cap A evicts: more wheels through A.
        for i in range(6):
            self.up.add("lc-push%d" % i, 1 * MiB)
            self.fetch(self.A, "lc-push%d" % i)
        w(lambda: self.A.id not in self.holders(self.C, "lc-shared"),
          "C to drop A as a holder of the evicted wheel", timeout=h.limit(5))
        # At most the cap plus the wheel the collector has not seen yet.
        self.assertLessEqual(self.A.status()["cache"]["bytes"], 5 * MiB)
        v = h.venv(os.path.join(self.tmp, "venv"))
        r = v.run_pip("download", "--no-deps", "-d",
                      os.path.join(self.tmp, "dl"), "--index-url",
                      self.C.url + "/simple/", "lc-shared")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_last_copy_is_kept(self):
        """A wheel put on A, at its cap, that nobody else holds stays on A
        and is counted; peers still name A as its holder."""
        put = make_wheel(self.tmp, "lc-only-a", "1.0", size=300 * 1000)
        self.assertEqual(self.A.put(put)[0], 201)
        r = h.run([h.BIN, "prune", "--node", self.A.url, "--all"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"[1-9]\d* kept as the last copy")
        self.assertIn("lc-only-a", {f["project"] for f in self.A.files()
                                    if f["local"]})
        self.assertGreaterEqual(self.A.status()["collector"]["last_copies"],
                                1)
        w = cu.Waiter(self.nodes.values())
        w(lambda: self.A.id in self.holders(self.C, "lc-only-a"),
          "C to name A as the holder of A's put")


class Attacks(unittest.TestCase):
    """What a hostile local client or a compromised peer tries against the
    cap and the last-copy rule."""

    def test_concurrent_puts_stay_within_the_cap(self):
        """Twenty 3 MiB puts at once on a 16 MiB cap: each is checked with
        the puts queued before it, so what is kept stays within the cap;
        the rest get 507."""
        cap = 16 * MiB
        node = h.Node(config={"cache": {"max_size": cap}}, log=True)
        self.addCleanup(node.cleanup)
        wheels = [make_wheel(node.dir, "race%02d" % i, "1.0", size=3 * MiB)
                  for i in range(20)]
        got = {}

        def put(w):
            got[w] = node.put(w)[0]

        threads = [threading.Thread(target=put, args=(w,)) for w in wheels]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stored = sum(1 for s in got.values() if s == 201)
        self.assertEqual(sorted(set(got.values())), [201, 507], got)
        deadline = time.monotonic() + h.limit(10)
        while node.status()["cache"]["files"] < stored:
            self.assertLess(time.monotonic(), deadline, node.tail())
            time.sleep(0.1)
        self.assertLessEqual(node.status()["cache"]["bytes"], cap)

    def test_a_peer_saying_it_holds_puts_does_not_get_them_dropped(self):
        """A trusted peer (not a publisher) signs holdings of the wheels
        this node's users put, and never serves them. The node, at its cap,
        keeps every one, also through prune --all."""
        import evilpeer
        import wire
        tmp, keys = cu.make_keys(type(self), "ZE")
        trusted = cu.write_trusted(os.path.join(tmp, "trusted"),
                                   keys.values())
        z = cu.ClusterNode(keys["Z"], trusted=trusted, label="Z",
                           publishers=None,
                           config={"cache": {"max_size": 4 * MiB}})
        self.addCleanup(z.cleanup)
        e = evilpeer.EvilPeer(keys["E"], label="E")
        self.addCleanup(e.stop)
        e.join(z)
        puts = [make_wheel(tmp, "internal-lib%d" % i, "1.0",
                           size=MiB - 20000, seed=i) for i in range(3)]
        for p in puts:
            self.assertEqual(z.put(p)[0], 201)
        entries = []
        for p in puts:
            data = h.read_bytes(p)
            entries.append(e.entry(os.path.basename(p), h.sha256_bytes(data),
                                   len(data), wire.chunks_root(data),
                                   claim=False))
        e.publish(entries, z)
        cu.Waiter([z])(lambda: all(len(f["holders"]) == 1 for f in z.files()
                                   if f["local"]),
                       "Z to list E as a holder of the puts")
        extra = make_wheel(tmp, "internal-extra", "1.0", size=MiB - 20000,
                           seed=99)
        self.assertEqual(z.put(extra)[0], 201)  # past 95 %: a pass
        r = h.run([h.BIN, "prune", "--node", z.url, "--all"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pruned 0 wheels", r.stdout)
        held = {f["filename"] for f in z.files() if f["local"]}
        self.assertEqual(held, {os.path.basename(p) for p in puts + [extra]})
        self.assertEqual(z.status()["collector"]["evicted_size"], 0)
