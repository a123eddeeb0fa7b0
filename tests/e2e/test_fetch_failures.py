"""A wheel the cluster must fetch from upstream through its designee (the
live member with the highest sha256(node id || wheel sha256)) when that
fails: every client gets a clear answer within upstream.timeout_s plus a
margin, upstream is not asked again and again, and no HTTP thread stays
behind.

UpstreamFailures: real nodes A and B over one nginx upstream (timeout_s 5);
A is the designee of every wheel here. Upstream answers 404 (listed on the
page, missing on disk), 503 (nginx `return 503` for that file), or the page
links the file on a port nothing listens on (connection refused). Clients
ask A and B at once, twice (a retry). Each must get 502 or 504 with a
one-line reason (A's first answer, as A asked upstream itself, must say
what upstream did) within timeout_s + 10 s. Upstream must see single-digit
requests for the file in the 15 s from the first client request, and at
most two once every client has had its answer (nobody is asking then).
Afterwards both nodes go back to the number of threads they had before.
pip through B must report the HTTP error, not a broken or timed-out
connection.

EvilDesignee: a real node B (timeout_s 5, cache.max_size 16 MiB) and an
evil peer E (evilpeer.py) that is the designee of the wheels here, which
upstream serves. E answers LATER forever, or streams 1 MiB chunks without
end. B's client must get the wheel (from upstream) or a clear error within
the same bound, never more bytes than max_size, never a complete body with
other bytes; B must not take more than max_size (plus one window) from E.

Requests are counted from nginx's access log; for the refused connection,
which nginx never sees, from the designee's log lines that name the URL.
"""

import os
import re
import time
import unittest

import harness as h
import cluster_util as cu
import evilpeer
import fault_util as fu
from upstream_index import Nginx, StaticIndex, location_for

TIMEOUT_S = 5              # upstream.timeout_s in these nodes' configs
BOUND = TIMEOUT_S + h.limit(10)  # a clear answer within this (seconds)
WINDOW = 15                # upstream requests are counted over this
MAX_REQUESTS = 9           # "single digits"
QUIET = 8                  # with no client asking, upstream is left alone
MAX_QUIET_REQUESTS = 2     # ... asked at most this often in QUIET s
MAX_SIZE = 16 << 20        # cache.max_size of EvilDesignee's B
ERROR_STATUSES = (502, 504)

_VENV = {}


def setUpModule():
    h.require_binary()


class Case(unittest.TestCase):
    nodes = ()
    nginx = None
    peer = None

    def msg(self, extra=""):
        out = "%s\n%s" % (extra, cu.tails(self.nodes))
        if self.nginx is not None:
            out += "\n" + self.nginx.tail()
        if self.peer is not None:
            out += "\nevil peer: received %s, fetches %s, undecodable %r" % (
                dict(self.peer.received), dict(self.peer.fetches),
                self.peer.errors[:3])
        return out

    @classmethod
    def take_baselines(cls):
        """Thread counts of every node once idle: the most seen over a
        second with no request of ours in flight."""
        time.sleep(0.5)
        cls.baseline = {n.label: 0 for n in cls.nodes}
        for _ in range(10):
            for n in cls.nodes:
                cls.baseline[n.label] = max(cls.baseline[n.label],
                                            fu.threads(n.proc.pid) or 0)
            time.sleep(0.1)

    def setUp(self):
        # This test's baseline: the idle count, or what an earlier test
        # left behind (it failed for that already).
        self.start_threads = {}
        for n in self.nodes:
            fu.wait_threads(n.proc.pid, self.baseline[n.label], timeout=2)
            self.start_threads[n.label] = max(self.baseline[n.label],
                                              fu.threads(n.proc.pid) or 0)

    def thread_problems(self):
        """The nodes whose thread count did not come back to what it was
        when the test began within 15 s."""
        out = []
        for n in self.nodes:
            want = self.start_threads[n.label]
            ok, last, waited = fu.wait_threads(n.proc.pid, want)
            if not ok:
                names = sorted(fu.thread_names(n.proc.pid).values())
                out.append("%s has %s threads %.0f s after its clients were "
                           "answered and gone, %d before (threads now: %s)"
                           % (n.label, last, waited, want, ", ".join(names)))
        return out

    def upstream_problems(self, what, count, t0, answered):
        """Waits until WINDOW s after T0 and at least QUIET s after
        ANSWERED (when the last client had its answer), then checks what
        COUNT() says upstream was asked: at most MAX_REQUESTS in all, at
        most MAX_QUIET_REQUESTS after the clients were answered."""
        at_answer = count()
        time.sleep(max(0.0, t0 + WINDOW - time.monotonic(),
                       answered + QUIET - time.monotonic()))
        n = count()
        span = time.monotonic() - t0
        out = []
        if n > MAX_REQUESTS:
            out.append("upstream was asked for %s %d times in the %.0f s "
                       "since the first client request (want at most %d)"
                       % (what, n, span, MAX_REQUESTS))
        if n - at_answer > MAX_QUIET_REQUESTS:
            out.append("upstream was asked for %s %d more times in the "
                       "%.0f s after every client had its answer (want at "
                       "most %d: nobody was asking)"
                       % (what, n - at_answer,
                          time.monotonic() - answered, MAX_QUIET_REQUESTS))
        return out

    def ask_all(self, path, nodes, max_body=None):
        """GETs PATH on every node of NODES at once; returns the
        answers in that order."""
        jobs = [fu.BoundedGet(n, path, BOUND + 5, max_body, n.label)
                for n in nodes]
        for j in jobs:
            j.start()
        for j in jobs:
            j.join(BOUND + 15)
        return [j.answer for j in jobs]

    def error_problem(self, a, want_words=None):
        """Why A is not a clear, honest failure answered in time (None when
        it is)."""
        if a is None:
            return "the client thread never finished"
        if a.status not in ERROR_STATUSES or not a.complete:
            return "want 502/504 with a complete body; got " + a.describe()
        if a.took > BOUND:
            return "answered only after %.1f s (bound %d s): %s" % (
                a.took, BOUND, a.describe())
        reason = fu.one_line_reason(a)
        if reason is None:
            return "no one-line reason in the body: " + a.describe()
        if want_words and not any(w in reason.lower() for w in want_words):
            return ("the reason %r does not say what upstream did (want one "
                    "of %s)" % (reason, "/".join(want_words)))
        return None


def pick_sha(ids, want):
    """A random sha256 (hex) whose designee among IDS is WANT."""
    while True:
        sha = os.urandom(32).hex()
        if cu.designee(ids, sha) == want:
            return sha


# --- upstream fails at the designee ------------------------------------------


class UpstreamFailures(Case):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "AB")
        ids = [keys["A"].pub, keys["B"].pub]
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        pk = cls.index.packages
        cls.warm = cls.index.add(cu.designated_wheel(
            pk, ids, keys["A"].pub, "ff-warm", 200000))
        cls.cases = {}
        dead = fu.free_dead_port()
        for case, project in (("404", "ff-missing"), ("503", "ff-unavail"),
                              ("refused", "ff-refused"), ("pip", "ff-pip")):
            fn = "%s-1.0-py3-none-any.whl" % project.replace("-", "_")
            url = ("http://127.0.0.1:%d/packages/%s" % (dead, fn)
                   if case == "refused" else None)
            sha = pick_sha(ids, keys["A"].pub)
            cls.index.add_fake(project, fn, sha, url=url)
            cls.cases[case] = {"filename": fn, "sha": sha, "url": url,
                               "project": project}
        cls.nginx = Nginx(cls.index, extra=location_for(
            cls.cases["503"]["filename"], "return 503;"))
        cls.addClassCleanup(cls.nginx.cleanup)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        config = {"upstream": {"timeout_s": TIMEOUT_S}}
        cls.A = cu.ClusterNode(keys["A"], trusted=trusted, label="A",
                               upstream=cls.nginx.url, config=config)
        cls.addClassCleanup(cls.A.cleanup)
        cls.B = cu.ClusterNode(keys["B"], trusted=trusted, label="B",
                               seeds=[cls.A.cluster_addr],
                               upstream=cls.nginx.url, config=config)
        cls.addClassCleanup(cls.B.cleanup)
        cls.nodes = [cls.A, cls.B]
        w = cu.Waiter(cls.nodes)
        for x, y in ((cls.A, cls.B), (cls.B, cls.A)):
            w(lambda x=x, y=y: x.member_state(y.id) == "alive",
              "%s to see %s alive" % (x.label, y.label), timeout=15)
        # Warm up both (pages, a wheel through the designee) so every
        # thread the nodes start lazily is there for the baseline.
        path = cu.file_path(cls.warm["sha256"], cls.warm["filename"])
        for n in (cls.B, cls.A):
            status, _, got, _ = n.download(path)
            if (status, got) != (200, cls.warm["sha256"]):
                raise AssertionError("warm-up GET on %s -> %d\n%s" % (
                    n.label, status, cu.tails(cls.nodes)))
        cls.take_baselines()

    def designee_fails(self, case, words, count):
        c = self.cases[case]
        path = cu.file_path(c["sha"], c["filename"])
        problems = []
        t0 = time.monotonic()
        # Round 2 is a client retrying; skipped when round 1 failed
        # already (it would only fail the same way, slowly).
        for rnd in (1, 2):
            if problems:
                break
            answers = self.ask_all(path, [self.A, self.B])
            for node, a in zip((self.A, self.B), answers):
                role = ("the designee, which asks upstream" if node is self.A
                        else "which asks the designee A")
                # A asked upstream itself: its first answer must say what
                # upstream did (a remembered failure needs only a reason).
                p = self.error_problem(
                    a, words if node is self.A and rnd == 1 else None)
                if p is not None:
                    problems.append("round %d, GET on %s (%s): %s"
                                    % (rnd, node.label, role, p))
        problems += self.upstream_problems(c["filename"],
                                           lambda: count(c), t0,
                                           time.monotonic())
        problems += self.thread_problems()
        self.assertEqual(problems, [], self.msg(
            "upstream %s for %s, designee A:\n  %s"
            % (case, c["filename"], "\n  ".join(problems))))

    def nginx_count(self, c):
        return self.nginx.requests(exact="/packages/" + c["filename"])

    def log_count(self, c):
        return sum(1 for line in self.A.log_text().splitlines()
                   if c["url"] in line and "fetching" in line)

    def test_404(self):
        self.designee_fails("404", ("404", "not found"), self.nginx_count)

    def test_503(self):
        self.designee_fails("503", ("503", "unavailable"), self.nginx_count)

    def test_connection_refused(self):
        self.designee_fails("refused", ("refused", "connect"),
                            self.log_count)

    def test_pip_through_b_shows_the_http_error(self):
        c = self.cases["pip"]
        d = os.path.join(self.tmp, "pip-out")
        t0 = time.monotonic()
        proc = h.shared_venv(_VENV).run_pip(
            "download", "--no-deps", "-d", d, "--index-url",
            self.B.url + "/simple/", "--progress-bar", "off",
            "--timeout", str(BOUND + 5), c["project"], timeout=120)
        took = time.monotonic() - t0
        out = proc.stdout + proc.stderr
        self.assertNotEqual(proc.returncode, 0, self.msg(h.describe(proc)))
        broken = re.search(r"IncompleteRead|Connection broken|ProtocolError|"
                           r"[Tt]imed? ?out|Connection reset", out)
        self.assertIsNone(broken, self.msg(
            "pip through B reports a broken connection (%r), not the "
            "node's error, after %.0f s:\n%s"
            % (broken and broken.group(0), took, h.describe(proc))))
        self.assertRegex(out, r"HTTP error 50[24]", self.msg(
            "pip should show the node's 502/504\n" + h.describe(proc)))
        self.assertEqual(self.thread_problems(), [], self.msg())


# --- an evil designee ------------------------------------------------------


class EvilDesignee(Case):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "BE")
        ids = [keys["B"].pub, keys["E"].pub]
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        pk = cls.index.packages
        cls.warm = cls.index.add(cu.designated_wheel(
            pk, ids, keys["B"].pub, "fe-warm", 100000))
        cls.later = cls.index.add(cu.designated_wheel(
            pk, ids, keys["E"].pub, "fe-later", 300000))
        cls.endless = cls.index.add(cu.designated_wheel(
            pk, ids, keys["E"].pub, "fe-endless", 1000))
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        cls.B = cu.ClusterNode(keys["B"], trusted=trusted, label="B",
                               upstream=cls.nginx.url, config={
                                   "upstream": {"timeout_s": TIMEOUT_S},
                                   "cache": {"max_size": "16MiB"}})
        cls.addClassCleanup(cls.B.cleanup)
        cls.nodes = [cls.B]
        cls.peer = evilpeer.EvilPeer(keys["E"], label="E")
        cls.addClassCleanup(cls.peer.stop)
        cls.peer.join(cls.B)
        status, _, got, _ = cls.B.download(cu.file_path(
            cls.warm["sha256"], cls.warm["filename"]))
        if (status, got) != (200, cls.warm["sha256"]):
            raise AssertionError("warm-up GET on B -> %d\n%s"
                                 % (status, cls.B.tail()))
        cls.take_baselines()

    def check_answer(self, a, e, max_body):
        """Problems with answer A for upstream entry E: the wheel itself,
        or a clear error, in time; never a complete body with other bytes,
        never more than MAX_BODY bytes."""
        size = os.path.getsize(e["path"])
        if a is None:
            return ["the client thread never finished"]
        if a.ok_with(e["sha256"], size):
            if a.took > BOUND:
                return ["the wheel came only after %.1f s (bound %d s)"
                        % (a.took, BOUND)]
            return []
        if a.status == 200 and a.complete:
            return ["a complete 200 with OTHER bytes: %s (the wheel is %d "
                    "bytes, sha256 %s)" % (a.describe(), size,
                                           e["sha256"][:16])]
        if a.length > max_body:
            return ["B passed on more than %d bytes for a wheel of %d: %s"
                    % (max_body, size, a.describe())]
        if a.status == 200 and a.cut and a.took <= BOUND:
            return []  # streamed, then ended with an error: honest
        p = self.error_problem(a)
        return [p] if p else []

    def test_later_forever(self):
        e = self.later
        self.peer.behave(e["sha256"], evilpeer.Later())
        path = cu.file_path(e["sha256"], e["filename"])
        problems = []
        t0 = time.monotonic()
        for rnd in (1, 2):
            if problems:
                break
            a = self.ask_all(path, [self.B])[0]
            problems += ["round %d, GET on B: %s" % (rnd, p)
                         for p in self.check_answer(a, e, MAX_SIZE)]
        if self.peer.fetches[e["sha256"]] == 0:
            problems.append("B never asked E: E was not the designee, so "
                            "this test tested nothing")
        problems += self.upstream_problems(
            e["filename"],
            lambda: self.nginx.requests(exact="/packages/" + e["filename"]),
            t0, time.monotonic())
        problems += self.thread_problems()
        self.assertEqual(problems, [], self.msg(
            "designee E answers LATER to every FETCH (%d so far):\n  %s"
            % (self.peer.fetches[e["sha256"]], "\n  ".join(problems))))

    def test_chunks_without_end(self):
        e = self.endless
        endless = self.peer.behave(e["sha256"],
                                   evilpeer.Endless(cap=4 * MAX_SIZE))
        path = cu.file_path(e["sha256"], e["filename"])
        before = self.B.member(self.peer.hex)["bytes_in"]
        a = self.ask_all(path, [self.B], max_body=MAX_SIZE + 8 * fu.MiB)[0]
        problems = ["GET on B: %s" % p
                    for p in self.check_answer(a, e, MAX_SIZE + fu.MiB)]
        time.sleep(2)
        took_in = self.B.member(self.peer.hex)["bytes_in"] - before
        if took_in > MAX_SIZE + 9 * fu.MiB:
            problems.append(
                "B took %d MiB from E for a wheel upstream lists at %d "
                "bytes (cache.max_size %d MiB; E sent %d MiB before its "
                "safety cap)" % (took_in >> 20, os.path.getsize(e["path"]),
                                 MAX_SIZE >> 20, endless.sent >> 20))
        if self.peer.fetches[e["sha256"]] == 0:
            problems.append("B never asked E: E was not the designee, so "
                            "this test tested nothing")
        problems += self.thread_problems()
        self.assertEqual(problems, [], self.msg(
            "designee E streams 1 MiB chunks without end:\n  %s"
            % "\n  ".join(problems)))


if __name__ == "__main__":
    unittest.main()
