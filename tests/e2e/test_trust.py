"""Who may name a file (issue 8): the upstream index names the files of the
projects it serves, publishers name the rest, and holdings name nothing.

Real nodes on loopback, real nginx upstreams, real pip in a real venv.

Compromised: five nodes and two nginx upstreams.
- X, the compromised agent: no upstream configured, so its own node takes
  whatever it puts. Everybody but C trusts it; A and B also have it in
  their cluster.publishers, D does not.
- A, B: honest, with upstream; X is one of their publishers. A caches the
  genuine wheel before X attacks it; B has nothing cached.
- C: honest, with upstream, trusts only A (its trusted keys and its
  publishers list A alone).
- D: honest, with upstream, trusts everybody; its publishers are A and B.
- U, the general upstream; P, an index that tr-pin is pinned to. Every
  honest node has the same upstream set-up and owns "tr-corp-*"
  (cluster.projects).
Every test uses projects of its own and puts its own wheels, so each can
run alone.

Revocation: X, A, B; taking X out of the publishers (SIGHUP) hides what it
named at once, even a copy B holds itself; taking it out of the trusted
keys also hides what it holds.

PutRefusals: a node with upstream refuses (409) a PUT its own page would
not list: a filename upstream lists with other bytes, a version of an
upstream project that upstream lacks (without a local label), a project
pinned to an index; and takes the PUTs that fit.
"""

import json
import os
import re
import shutil
import signal
import tempfile
import time
import unittest
import urllib.parse

import harness as h
import cluster_util as cu
from makewheel import make_wheel
from upstream_index import Nginx, StaticIndex, make_sdist

_VENV = {}
SIZE = 60000  # payload bytes of every wheel: small, the rules do not care
GOSSIP_S = 10  # bound on a holding reaching a node that trusts its origin
MARGIN_S = 2  # more time for what must NOT arrive (C), once others have it
REVOKE_S = 5  # bound on a SIGHUP taking effect on every page
# The platform tag of a wheel built for the venv's interpreter (set by
# setUpModule from /usr/bin/python3, which the venv is made of).
PLATFORM = {}


def setUpModule():
    h.require_binary()
    proc = h.run([h.PYTHON, "-c",
                  "import sys, sysconfig; "
                  "print('cp%d%d' % sys.version_info[:2], "
                  "sysconfig.get_platform())"], timeout=30)
    if proc.returncode != 0:
        raise RuntimeError("cannot ask python its tags\n" + h.describe(proc))
    py, plat = proc.stdout.split()
    PLATFORM["tag"] = "%s-%s-%s" % (py, py, re.sub(r"[-.]", "_", plat))


def platform_tag():
    return PLATFORM["tag"]


class TrustCase(unittest.TestCase):
    nodes = ()
    nginxes = ()

    def msg(self, extra=""):
        out = "%s\n%s" % (extra, cu.tails(self.nodes))
        for n in self.nginxes:
            out += "\n" + n.tail()
        return out

    def wait(self, pred, what, timeout=GOSSIP_S, interval=0.1, extra=None):
        return cu.Waiter(self.nodes)(pred, what, timeout, interval, extra)

    # -- pip -----------------------------------------------------------------

    def pip(self, node, *args, timeout=180):
        return h.shared_venv(_VENV).run_pip(
            *args, "--index-url", node.url + "/simple/",
            "--progress-bar", "off", timeout=timeout)

    def pip_ok(self, node, *args, timeout=180):
        proc = self.pip(node, *args, timeout=timeout)
        self.assertEqual(proc.returncode, 0, self.msg(h.describe(proc)))
        return proc

    def pip_download(self, node, spec, *extra):
        """pip download SPEC (no deps) through NODE; returns (filename,
        sha256) of the one file it wrote."""
        d = tempfile.mkdtemp(prefix="wm-e2e-dl-")
        self.addCleanup(shutil.rmtree, d, True)
        self.pip_ok(node, "download", "--no-deps", "-d", d, *extra, spec)
        files = os.listdir(d)
        self.assertEqual(len(files), 1, self.msg("pip wrote %r" % files))
        return files[0], h.sha256_file(os.path.join(d, files[0]))

    def pip_download_fails(self, node, spec):
        d = tempfile.mkdtemp(prefix="wm-e2e-dl-")
        self.addCleanup(shutil.rmtree, d, True)
        proc = self.pip(node, "download", "--no-deps", "-d", d, spec)
        self.assertNotEqual(proc.returncode, 0, self.msg(
            "pip on %s got %s: %r\n%s" % (node.label, spec, os.listdir(d),
                                          h.describe(proc))))
        self.assertEqual(os.listdir(d), [])

    def installed(self, module, attr):
        out = h.shared_venv(_VENV).run_python(
            "import %s; print(getattr(%s, %r, None))" % (module, module, attr))
        self.assertEqual(out.returncode, 0, h.describe(out))
        return out.stdout.strip()

    # -- what a user sees ----------------------------------------------------

    def listed(self, node, project):
        """{filename: sha256} of NODE's /simple/PROJECT/, None on a 404.
        The HTML page and the JSON one (which pip 23 asks for) must
        agree."""
        path = "/simple/%s/" % project
        status, _, body = node.get(path, timeout=30)
        jstatus, _, jbody = node.get(path, {"Accept": h.JSON_TYPE},
                                     timeout=30)
        self.assertEqual(status, jstatus, self.msg(
            "%s on %s: HTML %d, JSON %d" % (path, node.label, status,
                                            jstatus)))
        if status == 404:
            return None
        self.assertEqual(status, 200, self.msg(
            "%s on %s: %d %r" % (path, node.label, status, body[:300])))
        html = {}
        for a in h.parse_links(body):
            frag = urllib.parse.urlsplit(a["href"]).fragment
            html[a["text"]] = (frag[len("sha256="):]
                               if frag.startswith("sha256=") else None)
        js = {f["filename"]: f.get("hashes", {}).get("sha256")
              for f in json.loads(jbody)["files"]}
        self.assertEqual(html, js, self.msg(
            "%s on %s: the HTML and JSON pages differ" % (path, node.label)))
        return html

    def assert_listed(self, node, project, want, why):
        got = self.listed(node, project)
        self.assertEqual(got, want, self.msg(
            "%s's /simple/%s/ (%s): got %s, want %s"
            % (node.label, project, why, cu.dump(got), cu.dump(want))))

    def links(self, node, project=None):
        """{(filename, sha256)} on NODE's /links/ (or /links/PROJECT/)."""
        path = "/links/%s/" % project if project else "/links/"
        status, _, body = node.get(path, timeout=10)
        if status == 404:
            return set()
        self.assertEqual(status, 200, self.msg("%s on %s: %d"
                                               % (path, node.label, status)))
        return {(a["text"], h.split_file_href(a["href"])[1])
                for a in h.parse_links(body)}

    def assert_nowhere(self, node, project, shas, why):
        """None of SHAS is on NODE's /links/, /links/PROJECT/ or
        /api/files (what wheelmesh ls shows), nor on its PROJECT page."""
        shas = set(shas)
        page = self.listed(node, project) or {}
        bad = {fn: s for fn, s in page.items() if s in shas}
        self.assertFalse(bad, self.msg("%s's /simple/%s/ lists %s (%s)"
                                       % (node.label, project, bad, why)))
        for p in (None, project):
            bad = {(fn, s) for fn, s in self.links(node, p) if s in shas}
            self.assertFalse(bad, self.msg("%s's /links/%s lists %s (%s)"
                                           % (node.label, p or "", bad, why)))
            bad = [f for f in node.files(p) if f["sha256"] in shas]
            self.assertFalse(bad, self.msg("%s's /api/files%s lists %s (%s)"
                                           % (node.label,
                                              "?project=" + p if p else "",
                                              cu.dump(bad), why)))

    def conflicts(self, node):
        n = node.status()["listing_conflicts"]
        m = node.metrics().get("wheelmesh_listing_conflicts_total")
        self.assertEqual(m, n, self.msg(
            "%s: /metrics says %r conflicts, /api/status %r"
            % (node.label, m, n)))
        return n

    def wait_conflict(self, node, project, before, filename, publisher):
        """Waits until building NODE's PROJECT page counts a conflict over
        BEFORE; checks it is logged once, naming FILENAME and PUBLISHER."""
        def counted():
            self.listed(node, project)
            return node.status()["listing_conflicts"] > before
        self.wait(counted, "%s to count a conflict over %s on /simple/%s/"
                  % (node.label, filename, project))
        self.assertGreater(self.conflicts(node), before)
        # Build the listing again (pages, /links/, /api/files): the
        # conflict is still logged once.
        self.listed(node, project)
        self.links(node, project)
        node.files(project)
        line = "not listing %s as named by %s" % (filename,
                                                  publisher.key.short)
        n = node.log_text().count(line)
        self.assertEqual(n, 1, self.msg(
            "%s logged %r %d times, want once" % (node.label, line, n)))

    # -- gossip ---------------------------------------------------------------

    def caught_up(self, observers, origin):
        """Waits until every node in OBSERVERS (all trusting ORIGIN) knows
        every wheel ORIGIN holds now."""
        want = origin.status()["cache"]["files"]
        for o in observers:
            self.wait(lambda o=o: (o.member(origin.id) or {})
                      .get("wheels", -1) >= want,
                      "%s to know the %d wheels %s holds"
                      % (o.label, want, origin.label))


def start(cls, key, label, trusted, publishers, seeds=(), config=None):
    node = cu.ClusterNode(key, trusted=trusted, publishers=publishers,
                          seeds=[s.cluster_addr for s in seeds],
                          config=config, label=label)
    cls.addClassCleanup(node.cleanup)
    return node


def wait_alive(cls, views):
    """VIEWS: {node: the nodes it must see alive}."""
    w = cu.Waiter(cls.nodes)
    for x, others in views.items():
        w(lambda x=x, others=others: all(
            x.member_state(y.id) == "alive" for y in others),
          "%s to see %s alive" % (x.label, [y.label for y in others]),
          timeout=15)


RELOADED = "trusted keys and publishers read again"


def sighup(nodes):
    """SIGHUP to NODES; waits until each says it read its keys again."""
    before = {n: n.log_text().count(RELOADED) for n in nodes}
    for n in nodes:
        os.kill(n.proc.pid, signal.SIGHUP)
    for n in nodes:
        cu.Waiter(nodes)(
            lambda n=n: n.log_text().count(RELOADED) > before[n],
            "%s to read its keys again after SIGHUP" % n.label,
            timeout=REVOKE_S)


# --- a compromised agent -----------------------------------------------------


class Compromised(TrustCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "XABCD")
        cls.K = keys
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        # U, the general upstream, and P, which tr-pin is pinned to.
        cls.U = StaticIndex(os.path.join(cls.tmp, "upstream"))
        cls.P = StaticIndex(os.path.join(cls.tmp, "pinned"))
        pk = cls.U.packages
        cls.up = {}
        for seed, project in enumerate(("tr-same", "tr-ver", "tr-local"), 1):
            cls.up[project] = cls.U.add(make_wheel(pk, project, "1.0",
                                                   size=SIZE, seed=seed))
        cls.up["tr-plat"] = cls.U.add(make_sdist(pk, "tr_plat", "1.0"))
        # A squatter of the pinned name on the general index.
        cls.U.add(make_wheel(pk, "tr-pin", "9.0", size=SIZE, seed=9))
        cls.up["tr-pin"] = cls.P.add(make_wheel(cls.P.packages, "tr-pin",
                                                "1.0", size=SIZE, seed=10))
        cls.nginx = Nginx(cls.U)
        cls.addClassCleanup(cls.nginx.cleanup)
        cls.nginx_p = Nginx(cls.P)
        cls.addClassCleanup(cls.nginx_p.cleanup)
        cls.nginxes = [cls.nginx, cls.nginx_p]

        def keyfile(name, who):
            return cu.write_trusted(os.path.join(cls.tmp, name),
                                    [keys[n] for n in who], name)
        honest = {"upstream": {"indexes": [
                      {"url": cls.nginx.url},
                      {"url": cls.nginx_p.url, "projects": ["tr-pin"]}],
                      "timeout_s": 10},
                  "cluster": {"projects": ["tr-corp-*"]}}
        # Only A trusts C (so nobody but A picks C to fetch for them).
        cls.A = start(cls, keys["A"], "A", keyfile("trusted-a", "XABCD"),
                      keyfile("publishers-ab", "XABD"), config=honest)
        cls.B = start(cls, keys["B"], "B", keyfile("trusted-xbd", "XABD"),
                      os.path.join(cls.tmp, "publishers-ab"), [cls.A],
                      config=honest)
        cls.C = start(cls, keys["C"], "C", keyfile("trusted-c", "A"),
                      keyfile("publishers-c", "A"), [cls.A], config=honest)
        cls.D = start(cls, keys["D"], "D",
                      os.path.join(cls.tmp, "trusted-xbd"),
                      keyfile("publishers-d", "AB"), [cls.A], config=honest)
        cls.X = start(cls, keys["X"], "X",
                      os.path.join(cls.tmp, "trusted-xbd"), None, [cls.A])
        cls.nodes = [cls.X, cls.A, cls.B, cls.C, cls.D]
        A, B, C, D, X = cls.A, cls.B, cls.C, cls.D, cls.X
        wait_alive(cls, {A: [B, C, D, X], B: [A, D, X], C: [A],
                         D: [A, B, X], X: [A, B, D]})

    def evil(self, project, version, seed, tag="py3-none-any"):
        """A wheel made by X (not upstream's): (path, filename, sha256)."""
        d = tempfile.mkdtemp(dir=self.wheels)
        path = make_wheel(d, project, version, size=SIZE, seed=seed, tag=tag)
        return path, os.path.basename(path), h.sha256_file(path)

    def put_on_x(self, *paths):
        """X puts PATHS; its own node lists each of them (the attack is
        live); then the nodes that trust X know them all."""
        for p in paths:
            sha = self.X.put_ok(p)
            name = os.path.basename(p)
            project = name.split("-")[0].replace("_", "-")
            got = (self.listed(self.X, project) or {}).get(name)
            self.assertEqual(got, sha, self.msg(
                "X's own node does not list its put %s" % name))
        self.caught_up([self.A, self.B, self.D], self.X)

    def test_1_same_name_other_bytes_is_never_listed(self):
        """X puts tr-same 1.0 under upstream's filename with other bytes:
        no honest node lists those bytes anywhere, A and B count and log
        the conflict, and pip gets upstream's bytes on A (which had cached
        the genuine wheel), on B (which had not) and on C (which trusts
        only A)."""
        A, B, C, D, X = self.A, self.B, self.C, self.D, self.X
        up = self.up["tr-same"]
        name, genuine = up["filename"], up["sha256"]
        got = self.pip_download(A, "tr-same==1.0")
        self.assertEqual(got, (name, genuine), self.msg("A, before X"))
        before = {n: self.conflicts(n) for n in (A, B)}
        path, evil_name, evil = self.evil("tr-same", "1.0", seed=101)
        self.assertEqual(evil_name, name)
        self.assertNotEqual(evil, genuine)
        self.put_on_x(path)
        for n in (A, B):
            self.wait_conflict(n, "tr-same", before[n], name, X)
        time.sleep(MARGIN_S)
        for n in (A, B, C, D):
            self.assert_listed(n, "tr-same", {name: genuine},
                               "X put other bytes under upstream's name")
            self.assert_nowhere(n, "tr-same", [evil], "X's bytes")
        for n in (A, B, C):
            got = self.pip_download(n, "tr-same==1.0")
            self.assertEqual(got, (name, genuine), self.msg(
                "pip on %s did not get upstream's bytes of %s (X's are %s)"
                % (n.label, name, evil)))

    def test_2_higher_unlabelled_version_is_never_listed(self):
        """X puts tr-ver 2.0 (upstream has 1.0 only): listed nowhere, A
        and B count the conflict, and pip on B picks upstream's 1.0."""
        A, B, C, D, X = self.A, self.B, self.C, self.D, self.X
        up = self.up["tr-ver"]
        before = {n: self.conflicts(n) for n in (A, B)}
        path, name, evil = self.evil("tr-ver", "2.0", seed=102)
        self.put_on_x(path)
        for n in (A, B):
            self.wait_conflict(n, "tr-ver", before[n], name, X)
        time.sleep(MARGIN_S)
        for n in (A, B, C, D):
            self.assert_listed(n, "tr-ver", {up["filename"]: up["sha256"]},
                               "X put version 2.0, which upstream lacks")
            self.assert_nowhere(n, "tr-ver", [evil], "X's 2.0")
        got = self.pip_download(B, "tr-ver")
        self.assertEqual(got, (up["filename"], up["sha256"]), self.msg(
            "pip on B did not get upstream's tr-ver 1.0"))

    def test_3_new_project_is_listed_only_where_x_publishes(self):
        """X puts tr-xnew, a project upstream does not have: A and B (X is
        their publisher) list it and pip on B installs it; D (trusts X, not
        its publisher) and C (does not trust X) do not, not even once B,
        one of D's publishers, holds a copy: the claim is X's."""
        A, B, C, D, X = self.A, self.B, self.C, self.D, self.X
        path, name, sha = self.evil("tr-xnew", "1.0", seed=103)
        self.put_on_x(path)
        for n in (A, B):
            self.wait(lambda n=n: self.listed(n, "tr-xnew") == {name: sha},
                      "%s to list %s, X's new project" % (n.label, name))
            self.assertIn((name, sha), self.links(n), self.msg(
                "%s's /links/ lacks %s" % (n.label, name)))
            self.assertIn(X.id, n.held("tr-xnew").get(name, {})
                          .get("holders", []), self.msg(
                "%s's /api/files does not show X holding %s"
                % (n.label, name)))
        time.sleep(MARGIN_S)
        for n in (C, D):
            self.assertIsNone(self.listed(n, "tr-xnew"), self.msg(
                "%s has a page for tr-xnew, named by X only" % n.label))
            self.assert_nowhere(n, "tr-xnew", [sha], "named by X only")
        self.pip_ok(B, "install", "--no-deps", "tr-xnew==1.0")
        self.assertEqual(self.installed("tr_xnew", "__version__"), "1.0")
        self.assertEqual(self.pip_download(B, "tr-xnew"), (name, sha))
        self.assertIn(B.id, B.held("tr-xnew").get(name, {})
                      .get("holders", []), self.msg("B holds no copy"))
        self.caught_up([A, D], B)
        for n in (C, D):
            self.assertIsNone(self.listed(n, "tr-xnew"), self.msg(
                "%s lists tr-xnew once B (a publisher of D's) holds X's "
                "wheel" % n.label))
            self.assert_nowhere(n, "tr-xnew", [sha], "B's copy of X's wheel")
        self.pip_download_fails(D, "tr-xnew")
        self.pip_download_fails(C, "tr-xnew")

    def test_4_platform_wheel_for_an_upstream_version_installs(self):
        """Upstream has tr-plat 1.0 as an sdist only; X puts the platform
        wheel built from it (listed and installed on B, where X is a
        publisher, not on C and D) and one for 2.0 (listed nowhere)."""
        A, B, C, D, X = self.A, self.B, self.C, self.D, self.X
        sdist = self.up["tr-plat"]
        plat, name, sha = self.evil("tr-plat", "1.0", seed=104,
                                    tag=platform_tag())
        plat2, name2, sha2 = self.evil("tr-plat", "2.0", seed=105,
                                       tag=platform_tag())
        before = {n: self.conflicts(n) for n in (A, B)}
        self.put_on_x(plat, plat2)
        with_x = {sdist["filename"]: sdist["sha256"], name: sha}
        for n in (A, B):
            self.wait(lambda n=n: self.listed(n, "tr-plat") == with_x,
                      "%s to list X's platform wheel %s next to upstream's "
                      "sdist" % (n.label, name))
            self.wait_conflict(n, "tr-plat", before[n], name2, X)
            self.assert_nowhere(n, "tr-plat", [sha2], "X's 2.0")
        time.sleep(MARGIN_S)
        for n in (C, D):
            self.assert_listed(n, "tr-plat",
                               {sdist["filename"]: sdist["sha256"]},
                               "X is not a publisher here")
            self.assert_nowhere(n, "tr-plat", [sha, sha2], "X's wheels")
        self.pip_ok(B, "install", "--no-deps", "--only-binary", ":all:",
                    "tr-plat==1.0")
        self.assertEqual(self.installed("tr_plat", "__version__"), "1.0")
        self.assertEqual(self.installed("tr_plat", "FROM_SDIST"), "None",
                         "pip installed the sdist, not X's wheel")
        self.assertEqual(self.pip_download(B, "tr-plat==1.0", "--only-binary",
                                           ":all:"), (name, sha))

    def test_5_local_version_installs(self):
        """X puts tr-local 1.0+corp1 next to upstream's 1.0: A and B list
        both and pip on B installs X's; C and D list upstream's alone and
        pip on D gets it."""
        A, B, C, D, X = self.A, self.B, self.C, self.D, self.X
        up = self.up["tr-local"]
        path, name, sha = self.evil("tr-local", "1.0+corp1", seed=106)
        self.put_on_x(path)
        upstream_only = {up["filename"]: up["sha256"]}
        with_x = dict(upstream_only, **{name: sha})
        for n in (A, B):
            self.wait(lambda n=n: self.listed(n, "tr-local") == with_x,
                      "%s to list %s next to upstream's" % (n.label, name))
        time.sleep(MARGIN_S)
        for n in (C, D):
            self.assert_listed(n, "tr-local", upstream_only,
                               "X is not a publisher here")
        self.pip_ok(B, "install", "--no-deps", "tr-local==1.0+corp1")
        self.assertEqual(self.installed("tr_local", "__version__"),
                         "1.0+corp1")
        self.assertEqual(self.pip_download(B, "tr-local==1.0+corp1"),
                         (name, sha))
        self.assertEqual(self.pip_download(D, "tr-local"),
                         (up["filename"], up["sha256"]))

    def test_6_pinned_project_takes_only_bytes_from_the_cluster(self):
        """tr-pin is pinned to P. X puts a platform wheel and a +local
        version of P's 1.0 (either would be listed for an unpinned
        project), and a copy of P's genuine wheel: every node lists P's
        file alone (not the general index's squatting 9.0 either), and pip
        on B gets P's bytes from X without P serving the file."""
        A, B, C, D, X = self.A, self.B, self.C, self.D, self.X
        up = self.up["tr-pin"]
        plat, _, plat_sha = self.evil("tr-pin", "1.0", seed=107,
                                      tag=platform_tag())
        local, _, local_sha = self.evil("tr-pin", "1.0+corp1", seed=108)
        copy = os.path.join(tempfile.mkdtemp(dir=self.wheels),
                            up["filename"])
        shutil.copyfile(up["path"], copy)
        self.put_on_x(plat, local, copy)
        time.sleep(MARGIN_S)
        only_p = {up["filename"]: up["sha256"]}
        for n in (A, B, C, D):
            self.assert_listed(n, "tr-pin", only_p, "pinned to P")
            self.assert_nowhere(n, "tr-pin", [plat_sha, local_sha],
                                "X's wheels of a pinned project")
        self.assertIn(X.id, B.held("tr-pin").get(up["filename"], {})
                      .get("holders", []), self.msg(
            "B's /api/files does not show X holding P's wheel"))
        peer_hits = B.status()["hits"]["peer"]
        self.assertEqual(self.pip_download(B, "tr-pin"),
                         (up["filename"], up["sha256"]))
        self.assertEqual(self.nginx_p.requests("/packages/"), 0, self.msg(
            "P served a file that X held"))
        self.assertGreater(B.status()["hits"]["peer"], peer_hits, self.msg(
            "B did not take P's wheel from the cluster"))
        self.assertEqual(self.nginx.requests("tr-pin"), 0, self.msg(
            "the general index was asked about the pinned tr-pin"))

    def test_7_cluster_project_squatted_upstream_keeps_its_wheels(self):
        """A (a publisher everywhere) puts tr-corp-tool 1.0, a project the
        cluster owns; then upstream gets a tr-corp-tool 99.0 and a 1.0
        with other bytes. Every honest node lists A's wheel alone, pip
        gets A's bytes, and upstream is never asked about the project."""
        A, B, C, D = self.A, self.B, self.C, self.D
        path = make_wheel(tempfile.mkdtemp(dir=self.wheels), "tr-corp-tool",
                          "1.0", size=SIZE, seed=109)
        name, sha = os.path.basename(path), A.put_ok(path)
        self.caught_up([B, C, D], A)
        squat = tempfile.mkdtemp(dir=self.wheels)
        self.U.add(make_wheel(squat, "tr-corp-tool", "99.0", size=SIZE,
                              seed=110))
        self.U.add(make_wheel(squat, "tr-corp-tool", "1.0", size=SIZE,
                              seed=111))
        for n in (A, B, C, D):
            self.assert_listed(n, "tr-corp-tool", {name: sha},
                               "owned by the cluster, squatted upstream")
        for n in (B, C):
            self.assertEqual(self.pip_download(n, "tr-corp-tool"),
                             (name, sha), self.msg("pip on %s" % n.label))
        for s in ("tr-corp-tool", "tr_corp_tool"):
            self.assertEqual(self.nginx.requests(s), 0, self.msg(
                "upstream was asked about tr-corp-tool"))


# --- revocation --------------------------------------------------------------


class Revocation(TrustCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "XAB")
        cls.K = keys
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        cls.U = StaticIndex(os.path.join(cls.tmp, "upstream"))
        pk = cls.U.packages
        cls.sdist = cls.U.add(make_sdist(pk, "tr_rv_plat", "1.0"))
        cls.local_up = cls.U.add(make_wheel(pk, "tr-rv-local", "1.0",
                                            size=SIZE, seed=1))
        cls.hold_up = cls.U.add(make_wheel(pk, "tr-rv-hold", "1.0",
                                           size=SIZE, seed=2))
        cls.nginx = Nginx(cls.U)
        cls.addClassCleanup(cls.nginx.cleanup)
        cls.nginxes = [cls.nginx]
        cls.trusted = os.path.join(cls.tmp, "trusted-ab")
        cls.publishers = os.path.join(cls.tmp, "publishers-ab")
        cls.write_keys("XAB", "XAB")
        upstream = {"upstream": {"indexes": [{"url": cls.nginx.url}],
                                 "timeout_s": 10}}
        cls.A = start(cls, keys["A"], "A", cls.trusted, cls.publishers,
                      config=upstream)
        cls.B = start(cls, keys["B"], "B", cls.trusted, cls.publishers,
                      [cls.A], config=upstream)
        x_trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted-x"),
                                     keys.values())
        cls.X = start(cls, keys["X"], "X", x_trusted, None, [cls.A])
        cls.nodes = [cls.X, cls.A, cls.B]
        wait_alive(cls, {cls.A: [cls.B, cls.X], cls.B: [cls.A, cls.X],
                         cls.X: [cls.A, cls.B]})

    @classmethod
    def write_keys(cls, trusted, publishers):
        """What A and B trust and whom they take names from (read at start
        and on SIGHUP)."""
        cu.write_trusted(cls.trusted, [cls.K[n] for n in trusted])
        cu.write_trusted(cls.publishers, [cls.K[n] for n in publishers],
                         "publishers")

    def wheel(self, project, version, seed, tag="py3-none-any"):
        d = tempfile.mkdtemp(dir=self.wheels)
        path = make_wheel(d, project, version, size=SIZE, seed=seed, tag=tag)
        return path, os.path.basename(path), h.sha256_file(path)

    def test_1_revoking_a_publisher_hides_its_wheels_everywhere(self):
        """X names a new project, a platform wheel and a +local version; B
        installs the new one (B now holds a copy). Once A and B read
        publishers without X (SIGHUP) none of the three is listed on
        either within seconds, pip on B cannot get it, and X's holding of
        an upstream wheel is still used (X is still trusted)."""
        A, B, X = self.A, self.B, self.X
        new, new_name, new_sha = self.wheel("tr-rv-new", "1.0", 201)
        plat, plat_name, plat_sha = self.wheel("tr-rv-plat", "1.0", 202,
                                               tag=platform_tag())
        local, local_name, local_sha = self.wheel("tr-rv-local", "1.0+corp1",
                                                  203)
        for p in (new, plat, local, self.hold_up["path"]):
            X.put_ok(p)
        self.caught_up([A, B], X)
        pages = {
            "tr-rv-new": ({new_name: new_sha}, None),
            "tr-rv-plat": ({self.sdist["filename"]: self.sdist["sha256"],
                            plat_name: plat_sha},
                           {self.sdist["filename"]: self.sdist["sha256"]}),
            "tr-rv-local": ({self.local_up["filename"]:
                             self.local_up["sha256"], local_name: local_sha},
                            {self.local_up["filename"]:
                             self.local_up["sha256"]}),
        }
        for n in (A, B):
            for project, (named, _) in pages.items():
                self.wait(lambda n=n, p=project, want=named:
                          self.listed(n, p) == want,
                          "%s to list X's wheels of %s" % (n.label, project))
        self.pip_ok(B, "install", "--no-deps", "tr-rv-new==1.0")
        self.caught_up([A], B)
        hold = self.hold_up["filename"]
        for n in (A, B):
            # The page first: /api/files lists a file only upstream names
            # once the node has the project's page.
            self.assert_listed(n, "tr-rv-hold", {hold: self.hold_up["sha256"]},
                               "upstream's")
            self.assertIn(X.id, n.held("tr-rv-hold").get(hold, {})
                          .get("holders", []), self.msg(
                "%s does not show X holding %s" % (n.label, hold)))

        self.write_keys("XAB", "AB")
        sighup([A, B])
        for n in (A, B):
            for project, (_, unnamed) in pages.items():
                self.wait(lambda n=n, p=project, want=unnamed:
                          self.listed(n, p) == want,
                          "%s to stop listing X's wheels of %s after "
                          "SIGHUP" % (n.label, project), timeout=REVOKE_S)
        for n in (A, B):
            for project in pages:
                self.assert_nowhere(n, project, [new_sha, plat_sha, local_sha],
                                    "X is no publisher any more")
            # Still trusted: its holding of upstream's wheel still counts.
            self.assertIn(X.id, n.held("tr-rv-hold").get(hold, {})
                          .get("holders", []), self.msg(
                "%s no longer shows X holding %s, though X is still "
                "trusted" % (n.label, hold)))
        self.pip_download_fails(B, "tr-rv-new")

    def test_2_revoking_trust_hides_holdings(self):
        """X holds upstream's tr-rv-hold (nobody else does). Once A and B
        no longer trust X (SIGHUP) they do not show X's holding, and pip on
        B gets the wheel from upstream."""
        A, B, X = self.A, self.B, self.X
        hold = self.hold_up["filename"]
        X.put_ok(self.hold_up["path"])
        self.caught_up([A, B], X)
        for n in (A, B):
            self.assert_listed(n, "tr-rv-hold", {hold: self.hold_up["sha256"]},
                               "upstream's")
            self.assertEqual(n.held("tr-rv-hold").get(hold, {})
                             .get("holders"), [X.id], self.msg(
                "%s: X should be the one holder of %s" % (n.label, hold)))
        self.write_keys("AB", "AB")
        sighup([A, B])
        for n in (A, B):
            self.wait(lambda n=n: hold not in n.held("tr-rv-hold")
                      and (hold, self.hold_up["sha256"]) not in self.links(n),
                      "%s to stop showing X's holding of %s" % (n.label, hold),
                      timeout=REVOKE_S)
            self.assert_listed(n, "tr-rv-hold",
                               {hold: self.hold_up["sha256"]},
                               "upstream still names it")
        served = self.nginx.requests("/packages/" + hold)
        self.assertEqual(self.pip_download(B, "tr-rv-hold"),
                         (hold, self.hold_up["sha256"]))
        self.assertEqual(self.nginx.requests("/packages/" + hold), served + 1,
                         self.msg("B did not take %s from upstream" % hold))


# --- PUT refusals ------------------------------------------------------------


class PutRefusals(TrustCase):
    """PUTs on a node with upstream (U, and P pinning tr-put-pin): one its
    pages would not list is refused with 409 and nothing is stored; one
    they would list is taken."""

    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "N")
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        cls.U = StaticIndex(os.path.join(cls.tmp, "upstream"))
        cls.P = StaticIndex(os.path.join(cls.tmp, "pinned"))
        pk = cls.U.packages
        cls.same = cls.U.add(make_wheel(pk, "tr-put-same", "1.0", size=SIZE,
                                        seed=1))
        cls.ver = cls.U.add(make_wheel(pk, "tr-put-ver", "1.0", size=SIZE,
                                       seed=2))
        cls.pin = cls.P.add(make_wheel(cls.P.packages, "tr-put-pin", "1.0",
                                       size=SIZE, seed=3))
        cls.nginx = Nginx(cls.U)
        cls.addClassCleanup(cls.nginx.cleanup)
        cls.nginx_p = Nginx(cls.P)
        cls.addClassCleanup(cls.nginx_p.cleanup)
        cls.nginxes = [cls.nginx, cls.nginx_p]
        cls.N = cu.ClusterNode(keys["N"], label="N", config={
            "upstream": {"indexes": [
                {"url": cls.nginx.url},
                {"url": cls.nginx_p.url, "projects": ["tr-put-pin"]}],
                "timeout_s": 10},
            "cluster": {"projects": ["tr-corp-*"]}})
        cls.addClassCleanup(cls.N.cleanup)
        cls.nodes = [cls.N]

    def wheel(self, project, version, seed, tag="py3-none-any"):
        d = tempfile.mkdtemp(dir=self.wheels)
        return make_wheel(d, project, version, size=SIZE, seed=seed, tag=tag)

    def put(self, path):
        status, _, body = self.N.put(path)
        return status, body.decode("utf-8", "replace").strip()

    def assert_refused(self, path, why):
        files = self.N.status()["cache"]["files"]
        status, body = self.put(path)
        self.assertEqual(status, 409, self.msg(
            "PUT %s (%s): %d %r, want 409"
            % (os.path.basename(path), why, status, body)))
        self.assertEqual(self.N.status()["cache"]["files"], files,
                         self.msg("a refused PUT was stored"))

    def test_1_filename_upstream_lists_with_other_bytes_is_refused(self):
        self.assert_refused(self.wheel("tr-put-same", "1.0", 101),
                            "upstream lists this filename with other bytes")
        self.assert_listed(self.N, "tr-put-same",
                           {self.same["filename"]: self.same["sha256"]},
                           "after a refused PUT")

    def test_2_version_upstream_lacks_is_refused(self):
        self.assert_refused(self.wheel("tr-put-ver", "2.0", 102),
                            "upstream has no 2.0")
        self.assert_listed(self.N, "tr-put-ver",
                           {self.ver["filename"]: self.ver["sha256"]},
                           "after a refused PUT")

    def test_3_pinned_project_is_refused(self):
        self.assert_refused(self.wheel("tr-put-pin", "1.0+corp1", 103),
                            "tr-put-pin is pinned to P")

    def test_4_puts_that_fit_upstream_are_taken(self):
        """Upstream's own bytes, a platform wheel of an upstream version,
        a +local version, and a project the cluster owns."""
        copy = os.path.join(tempfile.mkdtemp(dir=self.wheels),
                            self.same["filename"])
        shutil.copyfile(self.same["path"], copy)
        for path in (copy,
                     self.wheel("tr-put-ver", "1.0", 104, platform_tag()),
                     self.wheel("tr-put-ver", "1.0+corp1", 105),
                     self.wheel("tr-corp-put", "3.0", 106)):
            status, body = self.put(path)
            self.assertIn(status, (200, 201), self.msg(
                "PUT %s: %d %r" % (os.path.basename(path), status, body)))


if __name__ == "__main__":
    unittest.main()
