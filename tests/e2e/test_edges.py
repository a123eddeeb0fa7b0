"""Edges of behaviours the node already has, end to end: the real binary,
real nginx upstreams (their access logs tell what the node asked), real pip
in a real venv.

- YankedTest: `data-yanked` and `data-requires-python` survive caching.
  Upstream lists yankpkg 1.0, 2.0 (yanked, with a reason, and a
  Requires-Python pip's Python meets) and 3.0 (Requires-Python >=4). Once
  node A holds 2.0 and 3.0, its /simple/ page (HTML and PEP 691 JSON) and
  its /links/ page still carry upstream's attributes, and a plain
  `pip download yankpkg` gets 1.0. Its peer B, whose page lists 2.0 and
  3.0 as held by A, does the same. When upstream yanks 1.0 after both
  nodes have it cached (page_ttl_s 1), both show it yanked once the page
  is revalidated.
- PinAndOrderTest: a pin added while the node was down is obeyed by the
  page it kept (README: "an index with a `projects` list is the *only*
  source of those projects"; pagecache: a page is used only while its
  index is still the project's route): pinme, cached from U1, comes from
  U2 after the restart, U2's bytes and no request to U1. Reordering the
  general indexes must not attribute a kept page to the wrong index: the
  README promises a kept page is revalidated with a conditional request
  (with its ETag / Last-Modified), so such a request may only go to the
  index that issued them, and whatever the page lists, pip gets those
  bytes from the index that lists them. The two indexes' pages of orderme
  are given the same size and mtime, so nginx gives them the same ETag: a node that sent U1's validators to U2 would get a 304 and keep
  U1's page as U2's.
  test_pinned_wheel_is_kept_over_a_stale_namesake: after such a pin the
  node keeps U2's wheel though its store still holds U1's file of the same
  name, so a second download does not go upstream again.
- SecondNodeTest: a second `wheelmesh node` on a data dir in use exits 1
  within 2 s naming the first node's pid, while a 200 MB PUT to the first
  is half sent and again right after its last byte (while it commits);
  the PUT then ends 201 and the wheel reads back byte for byte, with no
  orphan sweep anywhere.
- HalfOpenTest: 600 connections that sent "GET /simple/ HT" and nothing
  more do not keep a new client's /healthz or project page past 1 s, and
  the node closes them within 15 s (its request-head deadline is 10 s).
"""

import html
import http.client
import json
import os
import resource
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness as h
import cluster_util as cu
from makewheel import make_wheel
from upstream_index import Nginx, StaticIndex

JSON_ACCEPT = {"Accept": h.JSON_TYPE}
_VENV = {}


def setUpModule():
    h.require_binary()


def page_with_yanked(index, project, yanked):
    """PROJECT's page as INDEX (a StaticIndex) renders it, with
    data-yanked="REASON" on each file of YANKED ({filename: reason})."""
    text = index.render(project)
    for fn, reason in yanked.items():
        a = StaticIndex.anchor(index.entry(fn))
        if a not in text:
            raise AssertionError("anchor of %s not on the page" % fn)
        text = text.replace(
            a, a.replace(">", ' data-yanked="%s">' % html.escape(reason), 1))
    return text


def wait_for(pred, timeout, what, diag=lambda: ""):
    """Polls PRED until it returns something true (returned) or
    limit(TIMEOUT) passes (a failure naming WHAT, PRED's last value and
    DIAG())."""
    deadline = time.monotonic() + h.limit(timeout)
    last = None
    while True:
        try:
            last = pred()
        except (OSError, ValueError, AssertionError,
                http.client.HTTPException) as e:
            last = "error: %s" % str(e).splitlines()[0][:300]
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError("after %.0f s: %s (last: %r)\n%s"
                                 % (h.limit(timeout), what, last, diag()))
        time.sleep(0.2)


class EdgeCase(unittest.TestCase):
    nodes = ()
    nginxes = ()

    def msg(self, extra=""):
        out = str(extra)
        for n in self.nodes:
            out += "\n" + n.tail()
        for n in self.nginxes:
            out += "\n" + n.tail()
        return out

    def pip_download(self, node, spec):
        """`pip download --no-deps SPEC` through NODE's /simple/; returns
        (filename, sha256, the CompletedProcess) of the one file it
        wrote."""
        d = tempfile.mkdtemp(prefix="wm-e2e-dl-")
        self.addCleanup(shutil.rmtree, d, True)
        proc = h.shared_venv(_VENV).run_pip(
            "download", "--no-deps", "-d", d, "--index-url",
            node.url + "/simple/", "--progress-bar", "off", spec)
        self.assertEqual(proc.returncode, 0, self.msg(h.describe(proc)))
        files = os.listdir(d)
        self.assertEqual(len(files), 1, self.msg("pip wrote %r\n%s"
                                                 % (files, h.describe(proc))))
        return files[0], h.sha256_file(os.path.join(d, files[0])), proc

    def html_links(self, node, path):
        status, _, body = node.get(path, timeout=30)
        self.assertEqual(status, 200, self.msg("GET %s -> %d %r"
                                               % (path, status, body[:300])))
        return {a["text"]: a for a in h.parse_links(body)}

    def json_files(self, node, path):
        status, hdrs, body = node.get(path, JSON_ACCEPT, timeout=30)
        self.assertEqual(status, 200, self.msg("GET %s (JSON) -> %d %r"
                                               % (path, status, body[:300])))
        self.assertIn(h.JSON_TYPE, hdrs.get("Content-Type", ""))
        return {f["filename"]: f for f in json.loads(body)["files"]}


# --- 1 ----------------------------------------------------------------------


class YankedTest(EdgeCase):
    """Upstream's yanked and Requires-Python attributes on held files, on
    a node and on its peer, and a yank made upstream after caching."""

    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "AB")
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        pk = cls.index.packages
        cls.v1 = cls.index.add(
            make_wheel(pk, "yankpkg", "1.0", size=2000, seed=1,
                       requires_python=">=3.7"),
            requires_python=">=3.7", write=False)
        # A, not B, is the member designated to fetch 2.0 and 3.0 from
        # upstream for the cluster: so B never holds them itself.
        ids = [keys["A"].pub, keys["B"].pub]
        cls.v2 = cls.index.add(cls.designated(
            ids, keys["A"].pub, "2.0", ">=3.8"), requires_python=">=3.8",
            write=False)
        cls.v3 = cls.index.add(cls.designated(
            ids, keys["A"].pub, "3.0", ">=4"), requires_python=">=4",
            write=False)
        cls.index.write()
        cls.reason = "broken build <see #12>"
        cls.index.write_raw_page("yankpkg", page_with_yanked(
            cls.index, "yankpkg", {cls.v2["filename"]: cls.reason}))
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)
        cls.nginxes = [cls.nginx]

        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        pa, pb = h.free_port(), h.free_port()
        conf = {"upstream": {"page_ttl_s": 1}}
        cls.A = cu.ClusterNode(keys["A"], trusted=trusted, cluster_port=pa,
                               upstream=cls.nginx.url, config=conf,
                               label="A")
        cls.addClassCleanup(cls.A.cleanup)
        cls.B = cu.ClusterNode(keys["B"], trusted=trusted, cluster_port=pb,
                               seeds=[cu.addr(pa)], upstream=cls.nginx.url,
                               config=conf, label="B")
        cls.addClassCleanup(cls.B.cleanup)
        cls.nodes = [cls.A, cls.B]
        w = cu.Waiter(cls.nodes)
        w(lambda: cls.A.member_state(cls.B.id) == "alive"
          and cls.B.member_state(cls.A.id) == "alive",
          "A and B to see each other alive", timeout=h.limit(15))
        # Expected attributes: filename -> (requires-python, yank reason
        # or None).
        cls.want = {cls.v1["filename"]: (">=3.7", None),
                    cls.v2["filename"]: (">=3.8", cls.reason),
                    cls.v3["filename"]: (">=4", None)}

    @classmethod
    def designated(cls, ids, want, version, requires_python):
        """A yankpkg VERSION wheel whose designee among IDS is WANT."""
        d = tempfile.mkdtemp(prefix="try-", dir=cls.tmp)
        for seed in range(200):
            path = make_wheel(d, "yankpkg", version, size=1000, seed=seed,
                              requires_python=requires_python)
            if cu.designee(ids, h.sha256_file(path)) == want:
                return path
            os.remove(path)
        raise RuntimeError("no seed makes %s the designee" % want[:16])

    # -- helpers -----------------------------------------------------------

    def file_path(self, e):
        return cu.file_path(e["sha256"], e["filename"])

    def hold_on_a(self, *entries):
        """Makes sure A holds ENTRIES (GET through A, then wait for the
        store) and B knows A holds them."""
        for e in entries:
            status, _, sha, _ = self.A.download(self.file_path(e))
            self.assertEqual((status, sha), (200, e["sha256"]),
                             self.msg("GET %s on A" % e["filename"]))
        for e in entries:
            wait_for(lambda e=e: self.A.held("yankpkg")
                     .get(e["filename"], {}).get("local"), 15,
                     "A to hold %s" % e["filename"], self.msg)
            wait_for(lambda e=e: self.A.id in self.B.held("yankpkg")
                     .get(e["filename"], {}).get("holders", []), 15,
                     "B to know A holds %s" % e["filename"], self.msg)

    def attrs_ok(self, node, want, links_too=()):
        """Checks NODE's HTML and JSON project pages against WANT
        ({filename: (requires-python, yank reason or None)}), and its
        /links/yankpkg/ for the files of LINKS_TOO. Returns a list of
        differences (empty: all as wanted)."""
        bad = []
        pages = [("/simple/yankpkg/ (HTML)",
                  self.html_links(node, "/simple/yankpkg/"), want)]
        links = self.html_links(node, "/links/yankpkg/")
        pages.append(("/links/yankpkg/", links,
                      {fn: want[fn] for fn in links_too}))
        for where, anchors, expect in pages:
            for fn, (rp, yank) in expect.items():
                a = anchors.get(fn)
                if a is None:
                    bad.append("%s: %s not listed (have %s)"
                               % (where, fn, sorted(anchors)))
                    continue
                attrs = a["attrs"]
                if attrs.get("data-requires-python") != rp:
                    bad.append("%s: %s data-requires-python=%r, want %r"
                               % (where, fn,
                                  attrs.get("data-requires-python"), rp))
                if yank is None and "data-yanked" in attrs:
                    bad.append("%s: %s has data-yanked=%r, want none"
                               % (where, fn, attrs["data-yanked"]))
                if yank is not None and (
                        "data-yanked" not in attrs
                        or (attrs["data-yanked"] or "") != yank):
                    bad.append("%s: %s data-yanked=%r, want %r"
                               % (where, fn, attrs.get("data-yanked"), yank))
        files = self.json_files(node, "/simple/yankpkg/")
        for fn, (rp, yank) in want.items():
            f = files.get(fn)
            if f is None:
                bad.append("JSON: %s not listed" % fn)
                continue
            if f.get("requires-python") != rp:
                bad.append("JSON: %s requires-python=%r, want %r"
                           % (fn, f.get("requires-python"), rp))
            got = f.get("yanked", False)
            exp = False if yank is None else (yank or True)
            if got != exp:
                bad.append("JSON: %s yanked=%r, want %r" % (fn, got, exp))
        return bad

    def assert_attrs(self, node, want, links_too=()):
        bad = self.attrs_ok(node, want, links_too)
        if bad:
            self.fail(self.msg("on node %s:\n  %s"
                               % (node.label, "\n  ".join(bad))))

    # -- the tests (in this order: test_3 yanks 1.0 upstream) ----------------

    def test_1_attributes_survive_caching(self):
        # Someone pins the yanked release: pip takes it (PEP 592) and says
        # it is yanked, from the node's page, before the node holds it.
        fn, sha, proc = self.pip_download(self.A, "yankpkg==2.0")
        self.assertEqual((fn, sha), (self.v2["filename"], self.v2["sha256"]),
                         self.msg(h.describe(proc)))
        self.assertIn("yanked", proc.stdout + proc.stderr,
                      self.msg("pip did not see 2.0 as yanked\n"
                               + h.describe(proc)))
        # A holds 2.0 (and 3.0, which pip's Python cannot install).
        self.hold_on_a(self.v2, self.v3)
        self.assert_attrs(self.A, self.want,
                          links_too=[self.v2["filename"],
                                     self.v3["filename"]])
        fn, sha, proc = self.pip_download(self.A, "yankpkg")
        self.assertEqual((fn, sha), (self.v1["filename"], self.v1["sha256"]),
                         self.msg("a plain pip download through A took %s, "
                                  "want %s\n%s" % (fn, self.v1["filename"],
                                                   h.describe(proc))))

    def test_2_attributes_survive_on_a_peer(self):
        self.hold_on_a(self.v2, self.v3)
        self.assertFalse(self.B.held("yankpkg")
                         .get(self.v2["filename"], {}).get("local"),
                         self.msg("B should not hold 2.0 itself"))
        self.assert_attrs(self.B, self.want,
                          links_too=[self.v2["filename"],
                                     self.v3["filename"]])
        fn, sha, proc = self.pip_download(self.B, "yankpkg")
        self.assertEqual((fn, sha), (self.v1["filename"], self.v1["sha256"]),
                         self.msg("a plain pip download through B took %s, "
                                  "want %s\n%s" % (fn, self.v1["filename"],
                                                   h.describe(proc))))
        self.assertEqual(
            self.nginx.requests(exact="/packages/" + self.v2["filename"]), 1,
            self.msg("2.0 went upstream more than once"))

    def test_3_yanked_upstream_after_caching(self):
        self.hold_on_a(self.v1, self.v2, self.v3)
        self.assert_attrs(self.A, self.want)
        self.assert_attrs(self.B, self.want)
        fetched = self.nginx.requests(exact="/simple/yankpkg/", status=200)
        # Upstream yanks 1.0 (no reason) once both nodes have the page and
        # A the file.
        self.index.write_raw_page("yankpkg", page_with_yanked(
            self.index, "yankpkg", {self.v1["filename"]: "",
                                    self.v2["filename"]: self.reason}))
        want = dict(self.want)
        want[self.v1["filename"]] = (">=3.7", "")
        held = [self.v1["filename"], self.v2["filename"],
                self.v3["filename"]]
        for node in (self.A, self.B):
            wait_for(lambda node=node: not self.attrs_ok(node, want, held),
                     10, "node %s to show 1.0 yanked after page_ttl_s 1"
                     % node.label,
                     lambda node=node: "differences: %s\n%s" % (
                         self.attrs_ok(node, want, held), self.msg()))
        # Each node really fetched the new page (a 200, not a 304).
        self.assertGreaterEqual(
            self.nginx.requests(exact="/simple/yankpkg/", status=200),
            fetched + 2, self.msg())


# --- 2 ----------------------------------------------------------------------


class PinAndOrderTest(EdgeCase):
    """Two general indexes, U1 and U2, both serving pinme-1.0 and
    orderme-1.0 with different bytes under the same filename."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)
        cls.u1 = StaticIndex(os.path.join(cls.tmp, "u1"))
        cls.u2 = StaticIndex(os.path.join(cls.tmp, "u2"))
        cls.files = {}
        for i, ix in ((1, cls.u1), (2, cls.u2)):
            for proj in ("pinme", "pinkeep", "orderme"):
                cls.files[proj, i] = ix.add(make_wheel(
                    ix.packages, proj, "1.0", size=1500, seed=10 * i))
        # orderme's two pages: same size, same mtime, so nginx gives them
        # the same ETag and Last-Modified.
        p1, p2 = cls.u1.page_path("orderme"), cls.u2.page_path("orderme")
        assert os.path.getsize(p1) == os.path.getsize(p2)
        for p in (p1, p2):
            os.utime(p, (1700000000, 1700000000))
        cls.n1, cls.n2 = Nginx(cls.u1), Nginx(cls.u2)
        cls.addClassCleanup(cls.n1.cleanup)
        cls.addClassCleanup(cls.n2.cleanup)
        cls.nginxes = [cls.n1, cls.n2]

    def make_node(self, indexes, ttl):
        node = h.Node(log=True, config={"upstream": {
            "indexes": indexes, "page_ttl_s": ttl, "timeout_s": 5}})
        self.addCleanup(node.cleanup)
        self.nodes = [node]
        return node

    @staticmethod
    def reconfigure(node, indexes):
        """Rewrites NODE's config (the node is stopped) with INDEXES."""
        node.config["upstream"]["indexes"] = indexes
        with open(node.config_path, "w") as f:
            json.dump(node.config, f, indent=2)

    def page_shas(self, node, project):
        """{filename: sha256} of the node's page, HTML and JSON agreeing."""
        links = self.html_links(node, "/simple/%s/" % project)
        out = {fn: h.split_file_href(a["href"])[3]
               for fn, a in links.items()}
        files = self.json_files(node, "/simple/%s/" % project)
        self.assertEqual(out, {fn: f["hashes"]["sha256"]
                               for fn, f in files.items()},
                         self.msg("HTML and JSON pages disagree"))
        return out

    def test_pin_added_after_restart(self):
        f1, f2 = self.files["pinme", 1], self.files["pinme", 2]
        fn = f1["filename"]
        node = self.make_node([{"url": self.n1.url}, {"url": self.n2.url}],
                              ttl=600)
        got = self.pip_download(node, "pinme")
        self.assertEqual(got[:2], (fn, f1["sha256"]), self.msg())
        self.assertEqual(self.page_shas(node, "pinme"), {fn: f1["sha256"]})
        wait_for(lambda: node.files("pinme"), 10,
                 "the node to hold U1's pinme", self.msg)
        self.assertEqual(self.n2.requests("pinme"), 0,
                         self.msg("U2 asked for pinme before the pin"))

        node.stop()
        self.reconfigure(node, [{"url": self.n1.url},
                                {"url": self.n2.url,
                                 "projects": ["pinme"]}])
        u1_before = self.n1.requests("pinme")
        node.start()
        self.assertEqual(self.page_shas(node, "pinme"), {fn: f2["sha256"]},
                         self.msg("after the pin to U2 the page of pinme "
                                  "should list U2's %s (%s) only"
                                  % (fn, f2["sha256"])))
        got = self.pip_download(node, "pinme")
        self.assertEqual(got[:2], (fn, f2["sha256"]),
                         self.msg("pip got other bytes than U2's"))
        self.assertGreaterEqual(self.n2.requests(exact="/simple/pinme/"), 1,
                                self.msg("U2 was not asked for pinme"))
        self.assertEqual(self.n2.requests(exact="/packages/" + fn), 1,
                         self.msg())
        self.assertEqual(self.n1.requests("pinme"), u1_before,
                         self.msg("U1 was asked for pinme after the pin:\n"
                                  + self.n1.log_text(10)))

    def test_pinned_wheel_is_kept_over_a_stale_namesake(self):
        # After the pin, U2's pinkeep-1.0 is fetched once and kept, though
        # the store still has U1's (no longer listed) file of that name
        # (README: "A wheel is fetched once ... and served again").
        f1, f2 = self.files["pinkeep", 1], self.files["pinkeep", 2]
        fn = f1["filename"]
        node = self.make_node([{"url": self.n1.url}, {"url": self.n2.url}],
                              ttl=600)
        self.assertEqual(self.pip_download(node, "pinkeep")[:2],
                         (fn, f1["sha256"]), self.msg())
        wait_for(lambda: node.files("pinkeep"), 10,
                 "the node to hold U1's pinkeep", self.msg)
        node.stop()
        self.reconfigure(node, [{"url": self.n1.url},
                                {"url": self.n2.url,
                                 "projects": ["pinkeep"]}])
        node.start()
        for _ in range(2):
            self.assertEqual(self.pip_download(node, "pinkeep")[:2],
                             (fn, f2["sha256"]), self.msg())
            time.sleep(0.5)  # the store writes a step after the last byte
        self.assertEqual(
            self.n2.requests(exact="/packages/" + fn), 1, self.msg(
                "U2's %s was fetched from upstream for each download: the "
                "node does not keep it (it holds U1's file of that name); "
                "/api/files?project=pinkeep: %s"
                % (fn, json.dumps(node.files("pinkeep")))))
        held = {f["sha256"]: f for f in node.files("pinkeep")}
        self.assertIn(f2["sha256"], held, self.msg())

    def test_reorder_keeps_pages_with_their_index(self):
        f1, f2 = self.files["orderme", 1], self.files["orderme", 2]
        fn = f1["filename"]
        node = self.make_node([{"url": self.n1.url}, {"url": self.n2.url}],
                              ttl=1)
        self.assertEqual(self.page_shas(node, "orderme"), {fn: f1["sha256"]},
                         self.msg("the first general index serves orderme"))
        self.assertEqual(self.n2.requests("orderme"), 0, self.msg())

        node.stop()
        self.reconfigure(node, [{"url": self.n2.url}, {"url": self.n1.url}])
        before = (self.n1.requests("/simple/orderme/"),
                  self.n2.requests("/simple/orderme/"))
        time.sleep(1.2)  # past page_ttl_s: the kept page is revalidated
        node.start()
        self.page_shas(node, "orderme")
        wait_for(lambda: (self.n1.requests("/simple/orderme/", settle=0),
                          self.n2.requests("/simple/orderme/", settle=0))
                 != before, 10,
                 "the node to ask an index for orderme's page after the "
                 "restart", self.msg)
        time.sleep(0.3)
        shas = self.page_shas(node, "orderme")
        self.assertEqual(set(shas), {fn}, self.msg())
        sha = shas[fn]
        self.assertIn(sha, (f1["sha256"], f2["sha256"]), self.msg())

        # U2 never issued a validator for orderme to this node: a
        # conditional request there carries U1's.
        cond = [e["line"] for e in self.n2.entries()
                if e["path"] == "/simple/orderme/" and (e["inm"] or e["ims"])]
        self.assertEqual(cond, [], self.msg(
            "the node revalidated U1's page of orderme at U2 (with U1's "
            "ETag / Last-Modified)"))
        # Any conditional request at U1 carries U1's own validators, and a
        # page taken from U1 is revalidated there.
        if sha == f1["sha256"]:
            self.assertGreater(
                len([e for e in self.n1.entries()
                     if e["path"] == "/simple/orderme/"
                     and (e["inm"] or e["ims"])]), 0,
                self.msg("U1's page is kept but was never revalidated"))

        # pip gets the bytes the page lists, from the index that lists them.
        src, other = ((self.n1, self.n2) if sha == f1["sha256"]
                      else (self.n2, self.n1))
        got = self.pip_download(node, "orderme")
        self.assertEqual(got[:2], (fn, sha), self.msg())
        self.assertEqual(src.requests(exact="/packages/" + fn), 1,
                         self.msg())
        self.assertEqual(other.requests(exact="/packages/" + fn), 0,
                         self.msg())


# --- 3 ----------------------------------------------------------------------


BIG_SIZE = 200 * 1000 * 1000


class SecondNodeTest(EdgeCase):
    """A second node on a data dir in use, during a 200 MB PUT."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)
        cls.big = make_wheel(cls.tmp, "bigput", "1.0", size=BIG_SIZE,
                             seed=7)
        cls.big_sha = h.sha256_file(cls.big)
        cls.big_size = os.path.getsize(cls.big)
        cls.node = h.start_node(cls, log=True)
        cls.nodes = [cls.node]

    def second_node(self, what):
        """Runs a second `wheelmesh node` on the first one's data dir (its
        own HTTP and cluster ports); asserts it exits 1 within 2 s naming
        the first node's pid."""
        conf = h.merge(self.node.config, {"cluster": {
            "listen": "tcp://127.0.0.1:%d" % h.free_port()}})
        path = os.path.join(self.tmp, "second.json")
        with open(path, "w") as f:
            json.dump(conf, f)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [h.BIN, "node", "--data", self.node.data,
             "--http", "127.0.0.1:%d" % h.free_port(), "-c", path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=h.limit(2.0))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail(self.msg("%s: a second node on %s was still running "
                               "after %.0f s\n--- its stderr\n%s"
                               % (what, self.node.data, h.limit(2.0),
                                  err[-3000:])))
        took = time.monotonic() - t0
        want = "in use by pid %d" % self.node.proc.pid
        self.assertEqual(proc.returncode, 1, self.msg(
            "%s: second node exited %d after %.1f s\n%s"
            % (what, proc.returncode, took, err)))
        self.assertIn(want, err, self.msg("%s: second node said %r" % (what,
                                                                      err)))
        self.assertNotIn("swept", err, self.msg(
            "%s: the second node swept chunks of the first one's write "
            "before it gave up:\n%s" % (what, err)))
        return err

    def test_second_node_during_a_200mb_put(self):
        half_sent, go_on, all_sent = (threading.Event(), threading.Event(),
                                      threading.Event())
        result = {}

        def put():
            conn = http.client.HTTPConnection(self.node.host, self.node.port,
                                              timeout=120)
            try:
                conn.putrequest("PUT", "/files/" + os.path.basename(self.big))
                conn.putheader("Content-Length", str(self.big_size))
                conn.putheader("Content-Type", "application/octet-stream")
                conn.endheaders()
                with open(self.big, "rb") as f:
                    sent = 0
                    for piece in iter(lambda: f.read(1 << 20), b""):
                        conn.sock.sendall(piece)
                        sent += len(piece)
                        if sent >= self.big_size // 2 and \
                                not half_sent.is_set():
                            half_sent.set()
                            go_on.wait(60)
                all_sent.set()
                resp = conn.getresponse()
                result["status"], result["body"] = resp.status, resp.read()
            except Exception as e:  # reported below
                result["error"] = repr(e)
            finally:
                half_sent.set()
                all_sent.set()
                conn.close()

        t = threading.Thread(target=put, daemon=True)
        t.start()
        try:
            self.assertTrue(half_sent.wait(60), self.msg("PUT never got "
                                                         "half way"))
            self.assertNotIn("error", result, self.msg(result))
            self.second_node("with the PUT half sent")
        finally:
            go_on.set()
        self.assertTrue(all_sent.wait(60), self.msg("PUT never finished "
                                                    "sending"))
        # Right after the last byte: the node verifies and commits.
        self.second_node("right after the PUT's last byte")
        t.join(120)
        self.assertFalse(t.is_alive(), self.msg("PUT got no answer"))
        self.assertEqual(result.get("status"), 201, self.msg(result))
        doc = json.loads(result["body"])
        self.assertEqual(doc.get("sha256"), self.big_sha, self.msg(doc))
        self.assertTrue(self.node.running(), self.msg())
        status, _, sha, n = self.node.download(
            cu.file_path(self.big_sha, os.path.basename(self.big)))
        self.assertEqual((status, n, sha),
                         (200, self.big_size, self.big_sha), self.msg())
        log = self.node.stderr_text(all_starts=True)
        with open(self.node.log_path, "rb") as f:
            log += f.read().decode("utf-8", "replace")
        self.assertNotIn("orphan", log, self.msg())
        self.assertNotIn("swept", log, self.msg())


# --- 4 ----------------------------------------------------------------------


HALF_OPEN = 600


class HalfOpenTest(EdgeCase):
    """600 connections with half a request line."""

    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 4 * HALF_OPEN + 1200
        if soft != resource.RLIM_INFINITY and soft < want:
            if hard != resource.RLIM_INFINITY and hard < want:
                h.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            cls.addClassCleanup(resource.setrlimit, resource.RLIMIT_NOFILE,
                                (soft, hard))
        # The node inherits the raised limit.
        cls.node = h.start_node(cls, log=True)
        cls.nodes = [cls.node]
        d = h.tmpdir(cls)
        cls.node.put_ok(make_wheel(d, "halfopen", "1.0", size=1000))

    def timed_get(self, path):
        t0 = time.monotonic()
        try:
            status, _, body = self.node.get(path, timeout=h.limit(1.0) + 4)
        except (OSError, http.client.HTTPException) as e:
            self.fail(self.msg("GET %s with %d half-open connections: no "
                               "answer after %.1f s (%r)"
                               % (path, HALF_OPEN, time.monotonic() - t0, e)))
        took = time.monotonic() - t0
        self.assertEqual(status, 200, self.msg("GET %s -> %d %r"
                                               % (path, status, body[:200])))
        self.assertLessEqual(took, h.limit(1.0), self.msg(
            "GET %s took %.2f s with %d half-open connections"
            % (path, took, HALF_OPEN)))
        return body

    def test_half_open_connections(self):
        socks = []
        sel = selectors.DefaultSelector()
        self.addCleanup(sel.close)
        t_open = time.monotonic()
        try:
            for _ in range(HALF_OPEN):
                s = socket.create_connection((self.node.host, self.node.port),
                                             timeout=10)
                socks.append(s)
                s.sendall(b"GET /simple/ HT")
        finally:
            for s in socks:
                self.addCleanup(s.close)
        opened = time.monotonic() - t_open
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)

        def closed_now():
            """Sockets the node closed by now: recv gives b"" or a reset
            (anything it sent first is read and dropped)."""
            n = 0
            for key, _ in sel.select(0):
                s = key.fileobj
                try:
                    while True:
                        data = s.recv(65536)
                        if not data:
                            break
                except BlockingIOError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    pass
                sel.unregister(s)
                n += 1
            return n

        # While they are all open, a new client is served at once.
        self.assertEqual(closed_now(), 0, self.msg(
            "the node closed half-open connections at once (opened in "
            "%.1f s)" % opened))
        self.assertEqual(self.timed_get("/healthz").strip(), b"ok")
        body = self.timed_get("/simple/halfopen/")
        self.assertIn(b"halfopen-1.0-py3-none-any.whl", body)
        self.assertEqual(closed_now(), 0, self.msg(
            "half-open connections were closed before the GETs were done "
            "(%.1f s after opening them)" % (time.monotonic() - t_open)))

        # Within 15 s of being opened, the node closes every one.
        closed = 0
        deadline = t_open + h.limit(15.0)
        while closed < HALF_OPEN and time.monotonic() < deadline:
            closed += closed_now()
            time.sleep(0.1)
        took = time.monotonic() - t_open
        self.assertEqual(closed, HALF_OPEN, self.msg(
            "%d of %d half-open connections still open %.1f s after they "
            "were opened" % (HALF_OPEN - closed, HALF_OPEN, took)))
        self.timed_get("/healthz")

    def test_connections_past_1024_are_served(self):
        """1,100 kept-alive connections that each asked for something: the
        node's sockets pass FD_SETSIZE, and every one is still answered
        (a select()-based server refuses those past 1024)."""
        socks = []
        try:
            for _ in range(1100):
                s = socket.create_connection((self.node.host, self.node.port),
                                             timeout=30)
                socks.append(s)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answered = 0
            for s in socks:
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except ConnectionResetError:
                    pass  # refused: counted as not answered
                answered += data.startswith(b"HTTP/1.1 200")
            self.assertEqual(answered, len(socks), self.msg(
                "%d of %d kept-alive connections answered"
                % (answered, len(socks))))
            self.assertEqual(self.timed_get("/healthz").strip(), b"ok")
        finally:
            for s in socks:
                s.close()


if __name__ == "__main__":
    unittest.main()
