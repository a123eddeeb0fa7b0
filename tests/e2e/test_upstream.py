"""The node as a caching proxy of PyPI-style upstream indexes.

The upstream is real: a static PEP 503 tree (upstream_index.StaticIndex)
served by Debian's nginx on loopback, whose access log tells what the node
really asked of it. The client is real pip in real virtual environments.

Each class runs its own nginx and node, so a test that stops the upstream
or tampers with it cannot disturb another. Virtual environments are slow to
make (several seconds each): the cold-install test makes two fresh ones,
every other install goes into one shared "scratch" venv, and each of those
tests installs projects of its own so what one installed cannot satisfy
another.
"""

import concurrent.futures
import hashlib
import json
import os
import re
import subprocess
import time
import unittest
import urllib.parse

import harness as h
from makewheel import make_wheel, read_metadata
from upstream_index import Nginx, StaticIndex, make_sdist

JSON_ACCEPT = {"Accept": h.JSON_TYPE}

# h.shared_venv: one venv shared by the tests that only need *a* pip
# (downloads) or install projects nobody else installs.
_SCRATCH = {}


def setUpModule():
    h.require_binary()


class UpstreamCase(unittest.TestCase):
    """Base: a StaticIndex, an nginx serving it, a node that uses it."""

    PAGE_TTL = 600
    NODE_LOG = True

    @classmethod
    def make_upstream(cls):
        cls.tmp = h.tmpdir(cls)
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)

    @classmethod
    def make_node(cls, indexes=None, ttl=None):
        indexes = indexes or [{"url": cls.nginx.url}]
        cls.node = h.start_node(cls, log=cls.NODE_LOG, config={
            "upstream": {"indexes": indexes,
                         "page_ttl_s": ttl if ttl is not None
                         else cls.PAGE_TTL,
                         "timeout_s": 5}})

    # -- diagnostics -----------------------------------------------------

    def msg(self, extra=""):
        out = "%s\n%s" % (extra, self.node.tail())
        for n in self.nginxes():
            out += "\n" + n.tail()
        return out

    def nginxes(self):
        return [self.nginx]

    def node_log(self):
        """Everything the node logged (log file and stderr)."""
        text = self.node.stderr_text(all_starts=True)
        if self.node.log_path and os.path.exists(self.node.log_path):
            with open(self.node.log_path, "rb") as f:
                text += f.read().decode("utf-8", "replace")
        return text

    # -- node helpers ----------------------------------------------------

    def get_ok(self, path, headers=None, timeout=30):
        status, hdrs, body = self.node.get(path, headers, timeout=timeout)
        self.assertEqual(status, 200, self.msg("GET %s -> %d %r"
                                               % (path, status, body[:300])))
        return hdrs, body

    def page_links(self, project):
        _, body = self.get_ok("/simple/%s/" % project)
        return {a["text"]: a for a in h.parse_links(body)}

    def stored(self):
        """{filename: sha256} of what the node holds."""
        files = self.node.files()
        return {f["filename"]: f["sha256"] for f in files}

    def wait_stored(self, want, timeout=30):
        """Waits until the node holds every {filename: sha256} of WANT (the
        store writes a wheel a step after its last byte went out); returns
        what it holds then."""
        deadline = time.monotonic() + timeout
        while True:
            stored = self.stored()
            if all(stored.get(fn) == sha for fn, sha in want.items()):
                return stored
            if time.monotonic() > deadline:
                return stored
            time.sleep(0.1)

    def metric(self, name, default=None):
        m = self.node.metrics()
        if name not in m and default is None:
            self.fail(self.msg("/metrics has no %s; it has: %s"
                               % (name, ", ".join(sorted(m)))))
        return m.get(name, default)

    def pip(self, venv, *args, timeout=180):
        proc = venv.run_pip(*args, timeout=timeout)
        return proc

    def pip_ok(self, venv, *args, timeout=180):
        proc = self.pip(venv, *args, timeout=timeout)
        self.assertEqual(proc.returncode, 0,
                         self.msg(h.describe(proc)))
        return proc

    def index_args(self):
        return ["--index-url", self.node.url + "/simple/",
                "--progress-bar", "off"]

    def file_requests(self, nginx, filename):
        """Requests nginx saw for exactly /packages/FILENAME."""
        return nginx.requests(exact="/packages/" + filename)


# --- 1 ----------------------------------------------------------------------


class ColdInstallTest(UpstreamCase):
    """alpha 2.0 -> beta -> gamma, all upstream; a cold install pulls each
    wheel from upstream once, a second install pulls none."""

    @classmethod
    def setUpClass(cls):
        cls.make_upstream()
        pk = cls.index.packages
        cls.alpha1 = cls.index.add(make_wheel(pk, "alpha", "1.0", size=2000,
                                              requires=["beta"]))
        cls.alpha2 = cls.index.add(make_wheel(pk, "alpha", "2.0", size=3000,
                                              requires=["beta"]))
        cls.beta = cls.index.add(make_wheel(pk, "beta", "1.0", size=1000,
                                            requires=["gamma"]))
        cls.gamma = cls.index.add(make_wheel(pk, "gamma", "1.0", size=500))
        cls.make_node()
        cls.venvs = [h.venv(os.path.join(cls.tmp, "venv%d" % i))
                     for i in (1, 2)]

    def test_cold_then_warm_install(self):
        wanted = [self.alpha2, self.beta, self.gamma]
        v1, v2 = self.venvs
        upstream_hits = self.node.status()["hits"]["upstream"]
        upstream_bytes = self.metric("wheelmesh_upstream_bytes_total", 0)
        upstream_metric = self.metric(
            'wheelmesh_hits_total{source="upstream"}', 0)
        self.pip_ok(v1, "install", *self.index_args(), "alpha")
        proc = v1.run_python("import alpha, beta, gamma; "
                             "print(alpha.__version__, beta.__version__, "
                             "gamma.__version__)")
        self.assertEqual(proc.stdout.split(), ["2.0", "1.0", "1.0"],
                         self.msg(h.describe(proc)))

        # Upstream served each wheel exactly once, and never alpha 1.0.
        for e in wanted:
            self.assertEqual(self.file_requests(self.nginx, e["filename"]), 1,
                             self.msg("upstream should have served %s once"
                                      % e["filename"]))
        self.assertEqual(
            self.file_requests(self.nginx, self.alpha1["filename"]), 0,
            self.msg("alpha 1.0 was never wanted"))

        # The node stored them, verified.
        stored = self.wait_stored({e["filename"]: e["sha256"]
                                   for e in wanted})
        for e in wanted:
            self.assertEqual(stored.get(e["filename"]), e["sha256"],
                             self.msg("/api/files: %s not stored (have %s)"
                                      % (e["filename"], stored)))
        st = self.node.status()
        self.assertGreaterEqual(st["hits"]["upstream"] - upstream_hits, 3,
                                self.msg("status after cold install: %s"
                                         % json.dumps(st)))
        total = sum(os.path.getsize(e["path"]) for e in wanted)
        self.assertGreaterEqual(
            self.metric("wheelmesh_upstream_bytes_total") - upstream_bytes,
            total, self.msg("upstream bytes of the install below the "
                            "wheels' total %d" % total))
        self.assertGreaterEqual(
            self.metric('wheelmesh_hits_total{source="upstream"}')
            - upstream_metric, 3, self.msg())
        local_before = st["hits"]["local"]
        packages_before = self.nginx.requests("/packages/")

        # Second install, fresh venv: no file from upstream.
        self.pip_ok(v2, "install", *self.index_args(), "alpha")
        proc = v2.run_python("import alpha, beta, gamma; "
                             "print(alpha.__version__)")
        self.assertEqual(proc.stdout.strip(), "2.0",
                         self.msg(h.describe(proc)))
        self.assertEqual(self.nginx.requests("/packages/"), packages_before,
                         self.msg("the warm install downloaded from upstream"))
        st = self.node.status()
        self.assertGreaterEqual(st["hits"]["local"] - local_before, 3,
                                self.msg("status after warm install: %s"
                                         % json.dumps(st)))


# --- 2 ----------------------------------------------------------------------


class UpstreamDownTest(UpstreamCase):
    """Upstream gone: what was cached still installs, the rest fails fast
    with a reason."""

    PAGE_TTL = 1

    @classmethod
    def setUpClass(cls):
        cls.make_upstream()
        pk = cls.index.packages
        cls.delta = cls.index.add(make_wheel(pk, "delta", "1.0", size=800,
                                             requires=["epsilon"]))
        cls.epsilon = cls.index.add(make_wheel(pk, "epsilon", "1.0"))
        cls.index.add(make_wheel(pk, "never-seen", "1.0"))
        cls.comeback = cls.index.add(make_wheel(pk, "comeback", "1.0"))
        cls.make_node()

    def test_cached_installs_while_upstream_down(self):
        venv = h.shared_venv(_SCRATCH)
        dl = os.path.join(self.tmp, "warm")
        # Warm the node through it (pip download does not install).
        self.pip_ok(venv, "download", *self.index_args(), "-d", dl, "delta")
        self.assertEqual(sorted(os.listdir(dl)),
                         sorted([self.delta["filename"],
                                 self.epsilon["filename"]]))
        self.nginx.stop()
        time.sleep(self.PAGE_TTL + 0.5)  # the pages are now stale

        status, _, body = self.node.get("/healthz", timeout=5)
        self.assertEqual(status, 200, self.msg("healthz with upstream down"))

        self.pip_ok(venv, "install", *self.index_args(), "delta",
                    timeout=120)
        proc = venv.run_python("import delta, epsilon; "
                               "print(delta.__version__)")
        self.assertEqual(proc.stdout.strip(), "1.0",
                         self.msg(h.describe(proc)))

        # A project never asked before: a 5xx naming upstream, fast.
        t0 = time.monotonic()
        try:
            status, _, body = self.node.get("/simple/never-seen/",
                                            timeout=h.limit(20))
        except OSError as e:
            self.fail(self.msg("GET /simple/never-seen/ with upstream down: "
                               "%r after %.1f s"
                               % (e, time.monotonic() - t0)))
        took = time.monotonic() - t0
        self.assertTrue(500 <= status < 600,
                        self.msg("GET /simple/never-seen/ -> %d %r (want 5xx)"
                                 % (status, body[:300])))
        self.assertIn("upstream", body.decode("utf-8", "replace").lower(),
                      self.msg("the reason should name upstream: %r"
                               % body[:300]))
        self.assertLess(took, h.limit(15), self.msg("took %.1f s" % took))

        t0 = time.monotonic()
        # -vv: pip reports a failed index page only at debug level.
        proc = self.pip(venv, "install", "-vv", *self.index_args(),
                        "never-seen", timeout=h.limit(90))
        self.assertNotEqual(proc.returncode, 0, self.msg(h.describe(proc)))
        out = proc.stdout + proc.stderr
        self.assertIn("never-seen", out, h.describe(proc))
        self.assertRegex(out, r"Could not fetch URL \S*never-seen\S*: 5\d\d",
                         self.msg("pip should show the node's 5xx\n"
                                  + h.describe(proc)))
        self.assertLess(time.monotonic() - t0, h.limit(60))

        status, _, _ = self.node.get("/healthz", timeout=5)
        self.assertEqual(status, 200, self.msg("healthz while down"))
        self.assertTrue(self.node.running(), self.msg())

        # Upstream back on the same port: a project not asked while it was
        # down is served at once.
        self.nginx.start()
        links = self.page_links("comeback")
        self.assertIn(self.comeback["filename"], links, self.msg())


# --- 3 ----------------------------------------------------------------------


class TamperTest(UpstreamCase):
    """Upstream bytes that do not match the page's hash are never stored
    and never handed out as a good download."""

    @classmethod
    def setUpClass(cls):
        cls.make_upstream()
        cls.wheel = cls.index.add(make_wheel(cls.index.packages, "tampered",
                                             "1.0", size=300000, seed=3))
        cls.make_node()

    def test_tampered_file(self):
        fn = self.wheel["filename"]
        mismatches = self.metric("wheelmesh_hash_mismatches_total", 0)
        bad_sha = self.index.tamper(fn)
        venv = h.shared_venv(_SCRATCH)
        dest = os.path.join(self.tmp, "bad")
        proc = self.pip(venv, "download", "--no-deps", *self.index_args(),
                        "-d", dest, "tampered", timeout=90)
        self.assertNotEqual(proc.returncode, 0,
                            self.msg("pip download of a tampered file "
                                     "succeeded\n" + h.describe(proc)))
        got = [f for f in os.listdir(dest)] if os.path.isdir(dest) else []
        self.assertEqual(got, [], "pip left %s" % got)

        # The same through a plain client: never a complete 200 with the
        # tampered bytes (a client without hash checking must notice).
        links = self.page_links("tampered")
        self.assertIn(fn, links, self.msg())
        href = links[fn]["href"]
        path = urllib.parse.urlsplit(href).path
        try:
            status, hdrs, sha, n = self.node.download(path)
        except Exception as e:  # a cut connection is the right answer
            status, sha, n = None, None, None
            cut = repr(e)
        else:
            cut = None
        if cut is None:
            self.assertFalse(status == 200 and sha == bad_sha,
                             self.msg("GET %s -> 200 with all %d tampered "
                                      "bytes (sha256 %s) as a complete "
                                      "response" % (path, n, sha)))

        self.assertNotIn(fn, self.stored(),
                         self.msg("/api/files lists the tampered file"))
        self.assertGreater(
            self.metric("wheelmesh_hash_mismatches_total"), mismatches,
            self.msg("no hash mismatch counted"))
        log = self.node_log()
        lines = [l for l in log.splitlines()
                 if self.wheel["sha256"] in l and bad_sha in l]
        self.assertTrue(lines, self.msg("no log line names both the page's "
                                        "hash %s and the actual %s"
                                        % (self.wheel["sha256"], bad_sha)))

        # Real bytes back: once the node stops remembering the failure
        # (it says when: "ask again in Ns"), the download works and is
        # stored.
        self.index.restore(fn)
        dest = os.path.join(self.tmp, "good")
        status, hdrs, body = h.http_request("127.0.0.1", self.node.port, "GET",
                                            path)
        self.assertEqual(status, 502, self.msg("a retry at once: %s" % body))
        m = re.search(rb"ask again in (\d+)s", body)
        self.assertTrue(m, self.msg("no retry-after in %r" % body))
        time.sleep(int(m.group(1)) + 1)
        self.pip_ok(venv, "download", "--no-deps", *self.index_args(),
                    "-d", dest, "tampered", timeout=90)
        self.assertEqual(h.sha256_file(os.path.join(dest, fn)),
                         self.wheel["sha256"])
        self.assertEqual(self.wait_stored({fn: self.wheel["sha256"]}).get(fn),
                         self.wheel["sha256"],
                         self.msg("not stored after the bytes were restored"))


# --- 4 ----------------------------------------------------------------------


class ConcurrentColdDownloadTest(UpstreamCase):
    """Six pips at once want the same big wheel from a cold node: one
    upstream download, six identical files."""

    SIZE = 120 * 1000 * 1000
    CLIENTS = 6

    @classmethod
    def setUpClass(cls):
        cls.make_upstream()
        cls.wheel = cls.index.add(make_wheel(cls.index.packages, "bigwheel",
                                             "1.0", size=cls.SIZE, seed=4))
        cls.make_node()

    def test_six_concurrent_downloads(self):
        venv = h.shared_venv(_SCRATCH)
        fn = self.wheel["filename"]

        def one(i):
            dest = os.path.join(self.tmp, "dl%d" % i)
            proc = venv.run_pip("download", "--no-deps", *self.index_args(),
                                "-d", dest, "bigwheel", timeout=110)
            return dest, proc

        try:
            with concurrent.futures.ThreadPoolExecutor(self.CLIENTS) as ex:
                results = list(ex.map(one, range(self.CLIENTS)))
        except subprocess.TimeoutExpired as e:
            self.fail(self.msg("a pip download hung: %s" % e))
        for dest, proc in results:
            self.assertEqual(proc.returncode, 0, self.msg(h.describe(proc)))
        shas = [h.sha256_file(os.path.join(dest, fn)) for dest, _ in results]
        self.assertEqual(shas, [self.wheel["sha256"]] * self.CLIENTS,
                         self.msg())
        self.assertEqual(self.file_requests(self.nginx, fn), 1,
                         self.msg("upstream should serve %s once" % fn))
        self.assertEqual(self.wait_stored({fn: self.wheel["sha256"]}).get(fn),
                         self.wheel["sha256"],
                         self.msg())


# --- 5 ----------------------------------------------------------------------


class RoutingTest(UpstreamCase):
    """A project pinned to the second index is asked only there; other
    projects never go to it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)
        cls.general = StaticIndex(os.path.join(cls.tmp, "general"))
        cls.special = StaticIndex(os.path.join(cls.tmp, "special"))
        # The general index has a *newer* torchlike: pip would take it if
        # the node ever asked there.
        cls.general.add(make_wheel(cls.general.packages, "torchlike", "9.0"))
        cls.general.add(make_wheel(cls.general.packages, "generalpkg", "1.0"))
        cls.special.add(make_wheel(cls.special.packages, "torchlike", "1.0",
                                   size=1000))
        # The special index also offers a general project: the node must
        # not ask for it there.
        cls.special.add(make_wheel(cls.special.packages, "onlyspecial",
                                   "1.0"))
        cls.special.add(make_wheel(cls.special.packages, "generalpkg", "5.0"))
        cls.nginx = Nginx(cls.general)
        cls.addClassCleanup(cls.nginx.cleanup)
        cls.nginx2 = Nginx(cls.special)
        cls.addClassCleanup(cls.nginx2.cleanup)
        cls.make_node(indexes=[{"url": cls.nginx.url},
                               {"url": cls.nginx2.url,
                                "projects": ["torchlike"]}])

    def nginxes(self):
        return [self.nginx, self.nginx2]

    def test_routing(self):
        venv = h.shared_venv(_SCRATCH)
        pinned_asked = self.nginx2.requests("/simple/torchlike/")
        general_asked = self.nginx.requests("/simple/onlyspecial/")
        self.pip_ok(venv, "install", *self.index_args(), "torchlike")
        proc = venv.run_python("import torchlike; "
                               "print(torchlike.__version__)")
        self.assertEqual(proc.stdout.strip(), "1.0",
                         self.msg(h.describe(proc)))
        self.assertEqual(self.nginx.requests("torchlike"), 0,
                         self.msg("the general index was asked for "
                                  "torchlike"))
        self.assertGreater(self.nginx2.requests("/simple/torchlike/"),
                           pinned_asked, self.msg("the pinned index was not "
                                                  "asked for torchlike"))

        self.pip_ok(venv, "install", *self.index_args(), "generalpkg")
        proc = venv.run_python("import generalpkg; "
                               "print(generalpkg.__version__)")
        self.assertEqual(proc.stdout.strip(), "1.0",
                         self.msg(h.describe(proc)))
        # A project the general index lacks is not looked for in the
        # pinned index either.
        status, _, body = self.node.get("/simple/onlyspecial/", timeout=20)
        self.assertEqual(status, 404,
                         self.msg("GET /simple/onlyspecial/ -> %d %r"
                                  % (status, body[:200])))
        self.assertGreater(self.nginx.requests("/simple/onlyspecial/"),
                           general_asked, self.msg("the general index was "
                                                   "not asked for "
                                                   "onlyspecial"))
        for p in ("generalpkg", "onlyspecial"):
            self.assertEqual(self.nginx2.requests(p), 0,
                             self.msg("the torchlike-only index was asked "
                                      "for %s" % p))


# --- 6 ----------------------------------------------------------------------


class BigPageTest(UpstreamCase):
    """5,000 files on one upstream page: every link rewritten, HTML and
    JSON, and a second request served from the prepared copy."""

    N = 5000

    @classmethod
    def setUpClass(cls):
        cls.make_upstream()
        for i in range(cls.N):
            cls.index.add_fake("big", "big-1.0.%d-py3-none-any.whl" % i,
                               write=False)
        cls.index.write("big")
        cls.make_node()

    def test_big_page(self):
        want = {fn: e["sha256"]
                for fn, e in self.index.projects["big"].items()}
        t0 = time.monotonic()
        hdrs, body = self.get_ok("/simple/big/")
        took = time.monotonic() - t0
        links = h.parse_links(body)
        self.assertEqual(len(links), self.N, self.msg())
        got = {}
        for a in links:
            path, sha, fn, frag = h.split_file_href(a["href"])
            full = urllib.parse.urljoin(self.node.url + "/simple/big/",
                                        a["href"])
            self.assertTrue(full.startswith(self.node.url + "/files/"),
                            "link not at the node's /files/: %r" % a["href"])
            self.assertIn("/files/%s/" % sha, path)
            self.assertEqual(sha, frag, a["href"])
            got[fn] = sha
        self.assertEqual(got, want)
        etag = hdrs.get("ETag")
        self.assertTrue(etag, "no ETag on the page")

        jh, jb = self.get_ok("/simple/big/", JSON_ACCEPT)
        self.assertIn(h.JSON_TYPE, jh.get("Content-Type", ""))
        files = json.loads(jb)["files"]
        self.assertEqual(len(files), self.N)
        self.assertEqual({f["filename"]: f["hashes"]["sha256"]
                          for f in files}, want)
        for f in files:
            self.assertIn("/files/%s/" % f["hashes"]["sha256"], f["url"])

        hdrs2, body2 = self.get_ok("/simple/big/")
        self.assertEqual(hdrs2.get("ETag"), etag)
        self.assertEqual(body2, body)
        status, _, _ = self.node.get("/simple/big/",
                                     {"If-None-Match": etag})
        self.assertEqual(status, 304, self.msg())
        self.assertEqual(self.nginx.requests(exact="/simple/big/"), 1,
                         self.msg("the page was fetched from upstream more "
                                  "than once within the TTL"))
        self.assertLess(took, h.limit(20), "first page took %.1f s" % took)


# --- 7 ----------------------------------------------------------------------


class SdistTest(UpstreamCase):
    """A project with only an sdist: pip builds it, getting setuptools and
    wheel for its isolated build environment through the node; the sdist
    link goes straight to upstream."""

    @classmethod
    def setUpClass(cls):
        cls.make_upstream()
        cls.sdist = cls.index.add(make_sdist(cls.index.packages, "tinysdist",
                                             "1.0"))
        for fn in ("setuptools-66.1.1-py3-none-any.whl",
                   "wheel-0.38.4-py3-none-any.whl"):
            cls.index.add(os.path.join(h.DEBIAN_WHEELS, fn))
        cls.make_node()

    def test_sdist_install(self):
        fn = self.sdist["filename"]
        links = self.page_links("tinysdist")
        self.assertIn(fn, links, self.msg())
        href = links[fn]["href"]
        url = urllib.parse.urlsplit(href)
        self.assertEqual("%s://%s%s" % (url.scheme, url.netloc, url.path),
                         self.nginx.base + "/packages/" + fn,
                         "the sdist link should point at upstream")
        self.assertEqual(url.fragment, "sha256=" + self.sdist["sha256"])
        _, jb = self.get_ok("/simple/tinysdist/", JSON_ACCEPT)
        jf = {f["filename"]: f for f in json.loads(jb)["files"]}
        self.assertIn(fn, jf, jb[:500])
        self.assertEqual(jf[fn]["url"].split("#")[0],
                         self.nginx.base + "/packages/" + fn)
        self.assertEqual(jf[fn]["hashes"].get("sha256"),
                         self.sdist["sha256"])

        venv = h.shared_venv(_SCRATCH)
        self.pip_ok(venv, "install", *self.index_args(), "tinysdist",
                    timeout=150)
        proc = venv.run_python("import tinysdist; "
                               "print(tinysdist.__version__, "
                               "tinysdist.FROM_SDIST)")
        self.assertEqual(proc.stdout.split(), ["1.0", "True"],
                         self.msg(h.describe(proc)))
        # The build requirements came through the node.
        self.assertEqual(self.file_requests(
            self.nginx, "setuptools-66.1.1-py3-none-any.whl"), 1, self.msg())
        deadline = time.monotonic() + 30
        while ("setuptools-66.1.1-py3-none-any.whl" not in self.stored()
               and time.monotonic() < deadline):
            time.sleep(0.1)
        self.assertIn("setuptools-66.1.1-py3-none-any.whl", self.stored())
        self.assertEqual(self.file_requests(self.nginx, fn), 1, self.msg())


# --- 8 ----------------------------------------------------------------------


class MetadataTest(UpstreamCase):
    """PEP 658: upstream advertises a wheel's .metadata with its hash; the
    node serves it without downloading the wheel."""

    @classmethod
    def setUpClass(cls):
        cls.make_upstream()
        cls.wheel = cls.index.add(make_wheel(cls.index.packages, "metaproj",
                                             "1.0", size=200000,
                                             requires=["beta>=1"]),
                                  metadata=True)
        cls.plain = cls.index.add(make_wheel(cls.index.packages, "metaproj",
                                             "0.9"))
        # Upstream advertises the right hash but serves other bytes.
        cls.badmeta = cls.index.add(make_wheel(cls.index.packages,
                                               "metaproj", "0.8"),
                                    metadata=True)
        with open(cls.badmeta["path"] + ".metadata", "wb") as f:
            f.write(b"Metadata-Version: 2.1\nName: metaproj\n"
                    b"Version: 6.6.6\n\n")
        cls.make_node()

    def test_metadata_before_wheel(self):
        fn = self.wheel["filename"]
        meta = read_metadata(self.wheel["path"])
        meta_sha = hashlib.sha256(meta).hexdigest()
        self.assertEqual(meta_sha, self.wheel["metadata_sha256"])

        links = self.page_links("metaproj")
        a = links.get(fn)
        self.assertIsNotNone(a, self.msg())
        self.assertEqual(a["attrs"].get("data-core-metadata"),
                         "sha256=" + meta_sha, self.msg(str(a)))
        self.assertEqual(a["attrs"].get("data-dist-info-metadata"),
                         "sha256=" + meta_sha, self.msg(str(a)))
        _, jb = self.get_ok("/simple/metaproj/", JSON_ACCEPT)
        jf = {f["filename"]: f for f in json.loads(jb)["files"]}
        self.assertEqual(jf[fn].get("core-metadata"), {"sha256": meta_sha},
                         json.dumps(jf[fn]))

        path = urllib.parse.urlsplit(a["href"]).path
        _, body = self.get_ok(path + ".metadata")
        self.assertEqual(body, meta)
        self.assertEqual(self.nginx.requests(exact="/packages/%s.metadata"
                                             % fn), 1, self.msg())
        self.assertEqual(self.file_requests(self.nginx, fn), 0,
                         self.msg("the wheel was downloaded for its "
                                  "metadata"))
        self.assertNotIn(fn, self.stored(), self.msg())

    def test_requires_python_passes_through(self):
        links = self.page_links("metaproj")
        a = links.get(self.plain["filename"])
        self.assertIsNotNone(a, self.msg())
        self.assertEqual(a["attrs"].get("data-requires-python"), ">=3.7",
                         str(a))
        _, jb = self.get_ok("/simple/metaproj/", JSON_ACCEPT)
        jf = {f["filename"]: f for f in json.loads(jb)["files"]}
        self.assertEqual(jf[self.plain["filename"]].get("requires-python"),
                         ">=3.7", json.dumps(jf[self.plain["filename"]]))

    def test_metadata_failing_its_hash(self):
        """Upstream's .metadata bytes do not match the advertised hash: the
        node must not hand them out (an error, or the wheel's true
        METADATA)."""
        fn = self.badmeta["filename"]
        good = read_metadata(self.badmeta["path"])
        links = self.page_links("metaproj")
        self.assertIn(fn, links, self.msg())
        path = urllib.parse.urlsplit(links[fn]["href"]).path
        status, _, body = self.node.get(path + ".metadata", timeout=30)
        if status == 200:
            self.assertEqual(body, good,
                             self.msg("GET %s.metadata -> 200 with bytes "
                                      "that fail the advertised hash: %r"
                                      % (path, body[:200])))
        else:
            self.assertTrue(500 <= status < 600,
                            self.msg("GET %s.metadata -> %d %r"
                                     % (path, status, body[:200])))
        self.assertTrue(self.node.running(), self.msg())


# --- 9 ----------------------------------------------------------------------


class RevalidationTest(UpstreamCase):
    """With a 1 s page TTL the node revalidates with a conditional request
    and picks up files added upstream."""

    PAGE_TTL = 1

    @classmethod
    def setUpClass(cls):
        cls.make_upstream()
        cls.first = cls.index.add(make_wheel(cls.index.packages, "reval",
                                             "1.0"))
        cls.make_node()

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.2)
        self.fail(self.msg("after %.0f s: %s" % (timeout, what)))

    def test_revalidate_and_pick_up_new_files(self):
        links = self.page_links("reval")
        self.assertEqual(set(links), {self.first["filename"]})
        self.assertEqual(self.nginx.requests(exact="/simple/reval/",
                                             status=200), 1, self.msg())
        time.sleep(self.PAGE_TTL + 0.5)

        # After the TTL a page request revalidates: nginx answers 304.
        self.page_links("reval")
        self.wait_for(lambda: self.nginx.requests(exact="/simple/reval/",
                                                  status=304, settle=0),
                      5, "no conditional page request (304) upstream")
        cond = [e for e in self.nginx.entries()
                if e["path"] == "/simple/reval/" and e["status"] == 304]
        self.assertTrue(cond[0]["inm"] or cond[0]["ims"], cond)

        # A file added upstream shows on the node's page after the TTL.
        second = self.index.add(make_wheel(self.index.packages, "reval",
                                           "2.0"))
        time.sleep(self.PAGE_TTL + 0.2)
        self.wait_for(lambda: second["filename"] in self.page_links("reval"),
                      8, "%s not on the node's page" % second["filename"])
        links = self.page_links("reval")
        path, sha, fn, frag = h.split_file_href(
            links[second["filename"]]["href"])
        self.assertEqual(sha, second["sha256"])
        self.assertTrue(path.startswith("/files/"), path)


if __name__ == "__main__":
    unittest.main()
