"""The cluster: nodes that trust each other's keys learn what the others
hold by gossip and fetch it from them before going upstream; a node whose
key they do not trust is not part of it; a killed node is noticed, the
others keep serving, and when it comes back it catches up.

Real processes on loopback, real pip in a real venv, real nginx as the
upstream (its access log tells what the cluster asked of it).

ThreeNodes: A, B, C (B seeded with A, C seeded with B only) and an outsider
D whose key none of them trusts; one nginx upstream for all four.
NodeFailure: its own A, B, C, because it kills and restarts A.
EightNodes: eight nodes seeded in a chain miss one upstream wheel at once.

Which member fetches a wheel from upstream for the cluster is deterministic
(the highest sha256(node id || wheel sha)); cluster_util.designee computes
it, so a test can pick a wheel whose designee is, or is not, the node pip
talks to.
"""

import os
import shutil
import tempfile
import threading
import time
import unittest

import harness as h
import cluster_util as cu
from makewheel import make_wheel
from upstream_index import Nginx, StaticIndex

# h.shared_venv: one venv for the module (making one takes seconds); every
# test installs projects of its own.
_VENV = {}


def setUpModule():
    h.require_binary()


class ClusterCase(unittest.TestCase):
    nodes = ()
    nginx = None

    def msg(self, extra=""):
        out = "%s\n%s" % (extra, cu.tails(self.nodes))
        if self.nginx is not None:
            out += "\n" + self.nginx.tail()
        return out

    def wait(self, pred, what, timeout=10.0, interval=0.1, extra=None):
        return cu.Waiter(self.nodes)(pred, what, timeout, interval, extra)

    def pip(self, node, *args, timeout=180):
        return h.shared_venv(_VENV).run_pip(
            *args, "--index-url", node.url + "/simple/",
            "--progress-bar", "off", timeout=timeout)

    def pip_ok(self, node, *args, timeout=180):
        proc = self.pip(node, *args, timeout=timeout)
        self.assertEqual(proc.returncode, 0, self.msg(h.describe(proc)))
        return proc

    def pip_download(self, node, spec):
        """pip download SPEC (no deps) through NODE; returns the bytes of
        the one file it wrote."""
        d = tempfile.mkdtemp(prefix="wm-e2e-dl-")
        self.addCleanup(shutil.rmtree, d, True)
        self.pip_ok(node, "download", "--no-deps", "-d", d, spec)
        files = os.listdir(d)
        self.assertEqual(len(files), 1, self.msg("pip wrote %r" % files))
        return files[0], h.read_bytes(os.path.join(d, files[0]))

    def get_file(self, node, sha, filename):
        """GET /files/<sha>/<name> on NODE; asserts 200 and the right
        bytes."""
        status, _, got, n = node.download(cu.file_path(sha, filename))
        self.assertEqual(status, 200, self.msg(
            "GET %s on %s -> %d" % (filename, node.label, status)))
        self.assertEqual(got, sha, self.msg(
            "GET %s on %s: %d bytes with sha256 %s, want %s"
            % (filename, node.label, n, got, sha)))

    def file_requests(self, filename):
        return self.nginx.requests(substring=filename)


# --- 1, 2, 3 ------------------------------------------------------------------


class ThreeNodes(ClusterCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "ABCD")
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        # Upstream has these (test 3): one that A is designated to fetch
        # for the cluster, one that C is.
        ids = [keys[n].pub for n in "ABC"]
        cls.upwheel = cls.wheel_designated(ids, keys["A"].pub, "cl-upstream")
        cls.upwheel_c = cls.wheel_designated(ids, keys["C"].pub, "cl-viac")
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)

        ring = cu.write_trusted(os.path.join(cls.tmp, "trusted-abc"),
                                [keys[n] for n in "ABC"])
        everyone = cu.write_trusted(os.path.join(cls.tmp, "trusted-abcd"),
                                    keys.values())
        ports = {n: h.free_port() for n in "ABCD"}
        seeds = {"A": [], "B": ["A"], "C": ["B"], "D": ["A", "B"]}
        # C names its seed's key (KEY@tcp://...): one handshake.
        named = {"C"}
        cls.by_name = {}
        for n in "ABCD":
            node = cu.ClusterNode(
                keys[n], trusted=everyone if n == "D" else ring,
                seeds=[("%s@" % keys[s].pub if n in named else "") +
                       cu.addr(ports[s]) for s in seeds[n]],
                cluster_port=ports[n], upstream=cls.nginx.url, label=n)
            cls.addClassCleanup(node.cleanup)
            cls.by_name[n] = node
        cls.A, cls.B, cls.C, cls.D = (cls.by_name[n] for n in "ABCD")
        cls.nodes = [cls.A, cls.B, cls.C, cls.D]
        # Everyone in the ring knows everyone else alive (C learns A only
        # through B's gossip).
        w = cu.Waiter(cls.nodes)
        for x in (cls.A, cls.B, cls.C):
            others = [y for y in (cls.A, cls.B, cls.C) if y is not x]
            w(lambda x=x, others=others: all(
                x.member_state(y.id) == "alive" for y in others),
              "%s to see the two others alive" % x.label, timeout=15)
        assert "seed %s is %s" % (cu.addr(ports["B"]), keys["B"].pub[:16]) \
            in cls.C.log_text(), cls.C.log_text()

    @classmethod
    def wheel_designated(cls, ids, want, project):
        """A wheel of PROJECT 1.0 on upstream whose designee among IDS is
        WANT."""
        d = os.path.join(cls.tmp, "try-" + project)
        os.makedirs(d)
        for seed in range(200):
            path = make_wheel(d, project, "1.0", size=300000, seed=seed)
            if cu.designee(ids, h.sha256_file(path)) == want:
                cls.index.add(path)
                return path
        raise RuntimeError("no seed makes %s the designee" % want)

    def test_1_wheel_put_on_a_is_installed_on_c_from_peers(self):
        """Put on A, listed on B and C, installed by pip on C with the
        same bytes, from the cluster and never from upstream."""
        path = make_wheel(self.wheels, "cl-gossip", "1.0", size=1500000)
        name = os.path.basename(path)
        sha = self.A.put_ok(path)
        t0 = time.monotonic()
        b_entry = self.wait(lambda: self.B.held().get(name),
                            "B to list %s put on A" % name, timeout=5)
        took_b = time.monotonic() - t0
        self.assertEqual(b_entry["sha256"], sha, cu.dump(b_entry))
        self.assertIn(self.A.id, b_entry.get("holders", []),
                      self.msg("B lists %s without A as a holder: %s"
                               % (name, cu.dump(b_entry))))
        c_entry = self.wait(lambda: self.C.held().get(name),
                            "C (seeded with B only) to list %s" % name,
                            timeout=5)
        self.assertEqual(c_entry["sha256"], sha, cu.dump(c_entry))
        self.assertIn(name, self.B.link_names(),
                      self.msg("B's /links/ lacks %s" % name))
        self.assertIn(name, self.C.link_names("cl-gossip"),
                      self.msg("C's /links/cl-gossip/ lacks %s" % name))
        self.assertIn(name, self.C.simple_names("cl-gossip"),
                      self.msg("C's /simple/cl-gossip/ lacks %s" % name))
        self.assertLess(took_b, h.limit(3.0),
                        "B listed it only after %.1f s" % took_b)

        peer_hits = self.C.status()["hits"]["peer"]
        peer_metric = self.C.metrics().get(
            'wheelmesh_hits_total{source="peer"}', 0)
        self.pip_ok(self.C, "install", "--no-deps", "cl-gossip==1.0")
        out = h.shared_venv(_VENV).run_python(
            "import cl_gossip; print(cl_gossip.__version__)")
        self.assertEqual(out.stdout.strip(), "1.0", h.describe(out))
        got_name, data = self.pip_download(self.C, "cl-gossip==1.0")
        self.assertEqual(got_name, name)
        self.assertEqual(h.sha256_bytes(data), sha,
                         self.msg("pip on C got other bytes than were put "
                                  "on A"))
        self.assertEqual(data, h.read_bytes(path))
        self.assertEqual(self.file_requests(name), 0, self.msg(
            "the cluster asked upstream for %s, which A held" % name))
        hits = self.C.status()["hits"]
        self.assertGreaterEqual(hits["peer"], peer_hits + 1, self.msg(
            "C reports no peer hit after installing from A: %r" % hits))
        self.assertGreater(
            self.C.metrics().get('wheelmesh_hits_total{source="peer"}', 0),
            peer_metric, self.msg("/metrics on C: no new peer hit"))
        # C now holds it itself, and the others learn that.
        c_local = self.C.held()[name]
        self.assertIn(self.C.id, c_local.get("holders", []),
                      self.msg("C does not list itself as a holder: %s"
                               % cu.dump(c_local)))
        self.wait(lambda: self.C.id in self.B.held()
                  .get(name, {}).get("holders", []),
                  "B to list C as a holder of %s" % name, timeout=5)

    def test_2_untrusted_node_is_not_part_of_the_cluster(self):
        """D trusts everyone, nobody trusts D: it never sees A's wheels,
        cannot fetch them, and what is put on D stays on D."""
        on_a = make_wheel(self.wheels, "cl-secret", "1.0", size=200000)
        on_a_name = os.path.basename(on_a)
        sha_a = self.A.put_ok(on_a)
        on_d = make_wheel(self.wheels, "cl-intruder", "1.0", size=200000)
        on_d_name = os.path.basename(on_d)
        self.D.put_ok(on_d)
        # The ring has long converged on the first: then wait more.
        for x in (self.B, self.C):
            self.wait(lambda x=x: on_a_name in x.held(),
                      "%s to list %s" % (x.label, on_a_name), timeout=5)
        time.sleep(4)
        self.assertNotIn(on_a_name, self.D.held(), self.msg(
            "the untrusted D lists a wheel put on A"))
        self.assertNotIn(on_a_name, self.D.link_names(), self.msg(
            "the untrusted D's /links/ has a wheel put on A"))
        for x in (self.A, self.B, self.C):
            self.assertNotIn(on_d_name, x.held(), self.msg(
                "%s lists %s, put on the untrusted D" % (x.label, on_d_name)))
            self.assertNotIn(on_d_name, x.link_names(), self.msg(
                "%s's /links/ has %s, put on the untrusted D"
                % (x.label, on_d_name)))
            m = x.member(self.D.id)
            self.assertTrue(m is None or m.get("state") != "alive",
                            self.msg("%s has the untrusted D as a member: %s"
                                     % (x.label, cu.dump(m))))
        status, _, _, _ = self.D.download(cu.file_path(sha_a, on_a_name))
        self.assertEqual(status, 404, self.msg(
            "GET of A's wheel on the untrusted D -> %d, want 404" % status))
        d = tempfile.mkdtemp(prefix="wm-e2e-dl-")
        self.addCleanup(shutil.rmtree, d, True)
        proc = self.pip(self.D, "download", "--no-deps", "-d", d,
                        "cl-secret==1.0")
        self.assertNotEqual(proc.returncode, 0, self.msg(
            "pip on the untrusted D got cl-secret from the cluster\n"
            + h.describe(proc)))
        st = self.D.status()
        self.assertEqual(st["hits"]["peer"], 0, self.msg(
            "D reports peer hits: %r" % st["hits"]))

    def check_upstream_once(self, wheel, project, via):
        """pip installs PROJECT through A, then pip on B gets it: upstream
        serves the file once in all. VIA: who fetches it upstream."""
        name = os.path.basename(wheel)
        sha = h.sha256_file(wheel)
        self.pip_ok(self.A, "install", "--no-deps", project + "==1.0")
        self.assertEqual(self.file_requests(name), 1, self.msg(
            "installing through A (%s designated to fetch it for the "
            "cluster): upstream should have served %s once"
            % (via.label, name)))
        self.wait(lambda: self.A.id in self.B.held(project)
                  .get(name, {}).get("holders", []),
                  "B to list A as a holder of %s" % name, timeout=5)
        peer_hits = self.B.status()["hits"]["peer"]
        got_name, data = self.pip_download(self.B, project + "==1.0")
        self.assertEqual(h.sha256_bytes(data), sha, self.msg(
            "pip on B got other bytes than upstream has"))
        self.assertEqual(self.file_requests(name), 1, self.msg(
            "B went upstream for %s although A held it" % name))
        self.assertGreaterEqual(self.B.status()["hits"]["peer"],
                                peer_hits + 1,
                                self.msg("B reports no peer hit"))
        entry = self.B.held(project)[name]
        self.assertEqual(entry.get("source"), "peer", self.msg(
            "B stored %s with source %r, want peer"
            % (name, entry.get("source"))))

    def test_3a_wheel_from_upstream_via_a_is_installed_on_b_from_a(self):
        """A (the designee) pulls a wheel from upstream for a pip install;
        pip on B then gets it from A: upstream served it once."""
        self.check_upstream_once(self.upwheel, "cl-upstream", self.A)

    def test_3b_wheel_designated_to_c_costs_upstream_one_download(self):
        """The same when C is the designee: A asks C, C fetches upstream
        for the cluster and A pulls from C while it arrives."""
        a_from_c = self.A.member(self.C.id)["bytes_in"]
        self.check_upstream_once(self.upwheel_c, "cl-viac", self.C)
        got = self.A.member(self.C.id)["bytes_in"] - a_from_c
        self.assertGreaterEqual(got, os.path.getsize(self.upwheel_c),
                                self.msg("A got only %d bytes from C, the "
                                         "designee, for %s"
                                         % (got, self.upwheel_c)))


# --- 4 ------------------------------------------------------------------------


class NodeFailure(ClusterCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "ABC")
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        nodes = cu.start_chain(cls, cls.tmp, keys,
                               {"A": [], "B": ["A"], "C": ["B"]})
        cls.A, cls.B, cls.C = nodes["A"], nodes["B"], nodes["C"]
        cls.nodes = [cls.A, cls.B, cls.C]
        cu.wait_all_alive(cls.nodes)

    def test_killed_node_is_noticed_and_catches_up_after_restart(self):
        A, B, C = self.A, self.B, self.C
        w0 = make_wheel(self.wheels, "cl-everyone", "1.0", size=2500000)
        w1 = make_wheel(self.wheels, "cl-two", "1.0", size=3500000)
        n0, n1 = os.path.basename(w0), os.path.basename(w1)
        s0, s1 = A.put_ok(w0), A.put_ok(w1)
        for x in (B, C):
            self.wait(lambda x=x: n0 in x.held() and n1 in x.held(),
                      "%s to list both wheels put on A" % x.label, timeout=5)
        self.get_file(B, s0, n0)
        self.get_file(C, s0, n0)
        self.get_file(B, s1, n1)
        self.wait(lambda: B.id in C.held().get(n1, {}).get("holders", []),
                  "C to list B as a holder of %s" % n1, timeout=5)
        c_from_b = C.member(B.id)["bytes_in"]

        A.kill()
        watch = cu.StateWatch(B, A.id)
        watch.start()
        self.addCleanup(watch.stop)
        # B and C keep serving what they hold.
        self.get_file(B, s0, n0)
        self.get_file(C, s0, n0)
        # C fetches from B what only A (gone) and B held.
        self.get_file(C, s1, n1)
        c_from_b_after = C.member(B.id)["bytes_in"]
        self.assertGreaterEqual(c_from_b_after - c_from_b,
                                os.path.getsize(w1), self.msg(
            "C got %s while A was dead, but only %d bytes came from B"
            % (n1, c_from_b_after - c_from_b)))
        # B notices: suspect (or dead) within 10 s, dead soon after.
        self.wait(lambda: "dead" in watch.first,
                  "B to report the killed A dead", timeout=20,
                  extra=lambda: "B's view of A since the kill: %r"
                  % watch.seen)
        watch.stop()
        noticed = min(watch.first.get("suspect", 99), watch.first["dead"])
        self.assertLessEqual(noticed, h.limit(10.0), self.msg(
            "B took %.1f s to report the killed A suspect or dead; B's view "
            "of A since the kill: %r" % (noticed, watch.seen)))
        self.wait(lambda: C.member_state(A.id) == "dead",
                  "C to report the killed A dead", timeout=10)
        self.assertEqual(B.cluster_status().get("dead"), 1, self.msg(
            "B's cluster.dead: %r" % B.cluster_status()))

        # While A is down, B gets a new wheel.
        w2 = make_wheel(self.wheels, "cl-while-down", "1.0", size=800000)
        n2 = os.path.basename(w2)
        s2 = B.put_ok(w2)
        self.wait(lambda: n2 in C.held(), "C to list %s put on B" % n2,
                  timeout=5)
        A.start()
        restarted = time.monotonic()
        self.wait(lambda: n2 in A.held(),
                  "the restarted A to list %s, put on B while A was down"
                  % n2, timeout=8)
        self.wait(lambda: B.member_state(A.id) == "alive",
                  "B to report A alive again", timeout=10)
        self.wait(lambda: C.member_state(A.id) == "alive",
                  "C to report A alive again", timeout=10)
        self.assertLess(time.monotonic() - restarted, h.limit(12))
        # A kept its own wheels and gets the new one from B.
        self.assertIn(n0, A.link_names(), self.msg("A lost %s" % n0))
        self.get_file(A, s2, n2)
        self.assertEqual(A.held()[n2].get("source"), "peer")


# --- 7 ------------------------------------------------------------------------


class EightNodes(ClusterCase):
    """Eight nodes seeded in a chain; all miss the same upstream wheel at
    the same moment: upstream serves it about once, not eight times."""

    N = 8
    SIZE = 60 * 1000 * 1000

    @classmethod
    def setUpClass(cls):
        names = ["N%d" % i for i in range(cls.N)]
        cls.tmp, keys = cu.make_keys(cls, names)
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        cls.big = make_wheel(cls.index.packages, "cl-stampede", "1.0",
                             size=cls.SIZE)
        cls.index.add(cls.big)
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        ports = [h.free_port() for _ in names]
        cls.nodes = []
        for i, n in enumerate(names):
            node = cu.ClusterNode(
                keys[n], trusted=trusted,
                seeds=[cu.addr(ports[i - 1])] if i else [],
                cluster_port=ports[i], upstream=cls.nginx.url, label=n)
            cls.addClassCleanup(node.cleanup)
            cls.nodes.append(node)
        w = cu.Waiter(cls.nodes)
        t0 = time.monotonic()
        for x in cls.nodes:
            w(lambda x=x: x.cluster_status().get("alive") == cls.N - 1,
              "%s to see the %d others alive" % (x.label, cls.N - 1),
              timeout=20)
        cls.converged_s = time.monotonic() - t0

    def test_simultaneous_miss_costs_upstream_one_download(self):
        name = os.path.basename(self.big)
        sha = h.sha256_file(self.big)
        paths = []
        for x in self.nodes:
            status, _, body = x.get("/simple/cl-stampede/")
            self.assertEqual(status, 200, self.msg(
                "%s: /simple/cl-stampede/ -> %d %r"
                % (x.label, status, body[:200])))
            links = {a["text"]: a for a in h.parse_links(body)}
            self.assertIn(name, links, self.msg(
                "%s's page lacks %s: %r" % (x.label, name, body[:500])))
            path, in_path, fname, frag = h.split_file_href(
                links[name]["href"])
            self.assertEqual((in_path, fname, frag), (sha, name, sha))
            paths.append(path)
        self.assertEqual(self.nginx.requests(substring=name), 0)
        go = threading.Event()
        jobs = [cu.Download(x, start_at=go, path=p)
                for x, p in zip(self.nodes, paths)]
        for j in jobs:
            j.start()
        go.set()
        for j in jobs:
            j.join(150)
        size = os.path.getsize(self.big)
        report, bad = [], []
        for x, j in zip(self.nodes, jobs):
            if j.is_alive():
                line = "still running after 150 s"
            elif j.error is not None:
                line = "failed: %s" % (j.error,)
            else:
                status, _, got, n = j.result
                line = "%d, %d bytes, sha256 %s, %.1f s" % (
                    status, n, got[:16], j.took)
                if (status, got, n) == (200, sha, size):
                    line = "ok: " + line
            report.append("%s: %s" % (x.label, line))
            if not line.startswith("ok: "):
                bad.append(x.label)
        served = self.nginx.requests(substring=name)
        chosen = cu.designee([x.id for x in self.nodes], sha)
        report.append("designee: %s; upstream served the file %d times"
                      % ([x.label for x in self.nodes if x.id == chosen][0],
                         served))
        report = "\n".join(report)
        self.assertEqual(bad, [], self.msg(
            "GET %s on eight nodes at once (want 200, %d bytes, sha256 "
            "%s):\n%s" % (name, size, sha[:16], report)))
        self.assertLessEqual(served, 2, self.msg(
            "8 nodes missing %s at once: upstream served it %d times\n%s"
            % (name, served, report)))
        self.assertGreaterEqual(served, 1, self.msg("upstream never asked"))


if __name__ == "__main__":
    unittest.main()
