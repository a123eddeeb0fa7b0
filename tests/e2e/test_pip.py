"""pip against a node: the simple index (PEP 503 HTML and PEP 691 JSON),
the flat --find-links page, PEP 658 metadata, byte-identical downloads,
ranges, redirects of non-normalised names, ETags, and real installs into a
real virtual environment.

One node and one venv serve the whole module; every test reads what
setUpClass stored, and the tests that add wheels use projects of their own.
"""

import json
import os
import shutil
import unittest
import urllib.parse

import harness as h
from makewheel import make_wheel, read_metadata


class PipTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)
        wd = os.path.join(cls.tmp, "wheels")
        os.mkdir(wd)
        made = [
            make_wheel(wd, "alpha", "1.0", size=3000, requires=["beta>=1"]),
            make_wheel(wd, "alpha", "2.0", size=5000, requires=["beta>=1"]),
            make_wheel(wd, "beta", "1.0", size=100),
            make_wheel(wd, "gamma", "1.0"),
            make_wheel(wd, "gamma", "1.0", build="1"),
            make_wheel(wd, "Foo_Bar", "1.0", size=10),
        ]
        debian = [os.path.join(h.DEBIAN_WHEELS, f)
                  for f in h.DEBIAN_WHEEL_FILES]
        cls.wheels = {}  # filename -> {"path", "sha", "size", "project"}
        projects = {"alpha": "alpha", "beta": "beta", "gamma": "gamma",
                    "Foo_Bar": "foo-bar", "pip": "pip",
                    "setuptools": "setuptools", "wheel": "wheel"}
        for p in made + debian:
            fn = os.path.basename(p)
            dist = fn.split("-")[0]
            cls.wheels[fn] = {"path": p, "sha": h.sha256_file(p),
                              "size": os.path.getsize(p),
                              "project": projects[dist]}
        cls.node = h.start_node(cls)
        for w in cls.wheels.values():
            cls.node.put_ok(w["path"])
        cls.venv = h.venv(os.path.join(cls.tmp, "venv"))

    # -- helpers ---------------------------------------------------------

    def msg(self, extra=""):
        return "%s\n%s" % (extra, self.node.tail())

    def add(self, path):
        """Store one more wheel; later checks of whole listings expect it."""
        sha = self.node.put_ok(path)
        fn = os.path.basename(path)
        self.wheels[fn] = {"path": path, "sha": sha,
                           "size": os.path.getsize(path),
                           "project": fn.split("-")[0].lower()}

    def project_files(self, project):
        return {fn: w for fn, w in self.wheels.items()
                if w["project"] == project}

    def get_ok(self, path, headers=None):
        status, hdrs, body = self.node.get(path, headers)
        self.assertEqual(status, 200, self.msg("GET %s -> %d %r"
                                               % (path, status, body[:300])))
        return hdrs, body

    def check_file_links(self, page_path, links, expected):
        """LINKS (parsed <a>) must be exactly the EXPECTED wheels, each
        pointing at /files/<sha>/<filename>#sha256=<sha> with the right
        hash."""
        seen = {}
        for a in links:
            path, sha, fn, frag = h.split_file_href(a["href"])
            full = urllib.parse.urljoin(page_path, path)
            self.assertEqual(full, "/files/%s/%s" % (sha, fn),
                             "href %r on %s" % (a["href"], page_path))
            self.assertIn(fn, expected, "unexpected link %r on %s"
                          % (a["href"], page_path))
            self.assertEqual(sha, expected[fn]["sha"], a["href"])
            self.assertEqual(frag, expected[fn]["sha"],
                             "#sha256= fragment of %r" % a["href"])
            self.assertEqual(a["text"], fn)
            self.assertNotIn(fn, seen, "%s listed twice on %s"
                             % (fn, page_path))
            seen[fn] = a
        self.assertEqual(sorted(seen), sorted(expected),
                         "files listed on %s" % page_path)
        return seen

    # -- index pages -----------------------------------------------------

    def test_simple_root_lists_every_project(self):
        hdrs, body = self.get_ok("/simple/")
        self.assertTrue(hdrs.get("Content-Type", "").startswith(h.HTML_TYPES),
                        hdrs.get("Content-Type"))
        # PEP 503: one anchor per project, linking to its page (the text
        # is the project's name, which need not be the normalised one)
        hrefs = [urllib.parse.urljoin("/simple/", a["href"])
                 for a in h.parse_links(body)]
        self.assertEqual(len(hrefs), len(set(hrefs)), "duplicate links")
        want = {"/simple/%s/" % w["project"] for w in self.wheels.values()}
        self.assertTrue(want <= set(hrefs), "missing on /simple/: %s"
                        % sorted(want - set(hrefs)))

    def test_simple_project_html(self):
        for project in ("alpha", "foo-bar", "gamma", "pip"):
            with self.subTest(project=project):
                path = "/simple/%s/" % project
                hdrs, body = self.get_ok(path)
                ctype = hdrs.get("Content-Type", "")
                self.assertTrue(ctype.startswith(h.HTML_TYPES), ctype)
                self.assertIn("accept", hdrs.get("Vary", "").lower())
                self.assertTrue(hdrs.get("ETag"), "no ETag on " + path)
                expected = self.project_files(project)
                seen = self.check_file_links(path, h.parse_links(body),
                                             expected)
                for fn, a in seen.items():
                    meta_sha = h.sha256_bytes(
                        read_metadata(expected[fn]["path"]))
                    for attr in ("data-dist-info-metadata",
                                 "data-core-metadata"):
                        self.assertEqual(a["attrs"].get(attr),
                                         "sha256=" + meta_sha,
                                         "%s of %s" % (attr, fn))

    def test_simple_project_json(self):
        for project in ("alpha", "beta", "foo-bar", "gamma", "pip",
                        "setuptools", "wheel"):
            with self.subTest(project=project):
                path = "/simple/%s/" % project
                hdrs, body = self.get_ok(path, {"Accept": h.JSON_TYPE})
                self.assertEqual(hdrs.get("Content-Type", "").split(";")[0]
                                 .strip(), h.JSON_TYPE)
                self.assertIn("accept", hdrs.get("Vary", "").lower())
                self.assertTrue(hdrs.get("ETag"))
                doc = json.loads(body)
                api = str(doc["meta"]["api-version"])
                self.assertTrue(api.startswith("1."), doc["meta"])
                if api != "1.0":
                    # PEP 700 (1.1): "versions" lists every version
                    want = {fn.split("-")[1] for fn in
                            self.project_files(project)}
                    self.assertEqual(set(doc["versions"]), want)
                    self.assertEqual(len(doc["versions"]), len(want))
                self.assertEqual(doc["name"], project)
                expected = self.project_files(project)
                got = {f["filename"]: f for f in doc["files"]}
                self.assertEqual(sorted(got), sorted(expected))
                self.assertEqual(len(doc["files"]), len(expected),
                                 "duplicate entries")
                for fn, f in got.items():
                    w = expected[fn]
                    self.assertEqual(f["hashes"]["sha256"], w["sha"], fn)
                    self.assertEqual(f["size"], w["size"], fn)
                    url = urllib.parse.urljoin(self.node.url + path,
                                               f["url"])
                    self.assertEqual(urllib.parse.urlsplit(url).path,
                                     "/files/%s/%s" % (w["sha"], fn))
                    meta_sha = h.sha256_bytes(read_metadata(w["path"]))
                    self.assertEqual(f["core-metadata"],
                                     {"sha256": meta_sha}, fn)
                    # PEP 714: the old JSON key must not be a dict; pip
                    # 22.3-23.0 (Debian's 23.0.1) dies on it with
                    # "TypeError: unhashable type: 'dict'"
                    self.assertNotIsInstance(f.get("dist-info-metadata"),
                                             dict, fn)

    def test_links_pages(self):
        _, body = self.get_ok("/links/")
        self.check_file_links("/links/", h.parse_links(body), self.wheels)
        _, body = self.get_ok("/links/alpha/")
        self.check_file_links("/links/alpha/", h.parse_links(body),
                              self.project_files("alpha"))

    def test_non_normalised_name_redirects(self):
        cases = {"/simple/Foo_Bar/": "/simple/foo-bar/",
                 "/simple/foo.bar/": "/simple/foo-bar/",
                 "/simple/FOO--BAR/": "/simple/foo-bar/",
                 "/simple/Alpha/": "/simple/alpha/"}
        for path, target in cases.items():
            with self.subTest(path=path):
                status, hdrs, _ = self.node.get(path)
                self.assertEqual(status, 301, self.msg(path))
                loc = urllib.parse.urljoin(self.node.url + path,
                                           hdrs.get("Location", ""))
                self.assertEqual(urllib.parse.urlsplit(loc).path, target)
        # the redirect target is the real page
        self.get_ok("/simple/foo-bar/")

    def test_unknown_project_is_404(self):
        for accept in (None, h.JSON_TYPE):
            status, _, _ = self.node.get("/simple/no-such-project/",
                                         {"Accept": accept} if accept
                                         else None)
            self.assertEqual(status, 404, self.msg(accept or "html"))

    def test_etag_gives_304_and_changes_with_content(self):
        d = os.path.join(self.tmp, "etag")
        os.mkdir(d)
        self.add(make_wheel(d, "etagproj", "1.0"))
        path = "/simple/etagproj/"
        for accept in ("text/html", h.JSON_TYPE):
            with self.subTest(accept=accept):
                hdrs, body = self.get_ok(path, {"Accept": accept})
                etag = hdrs["ETag"]
                status, hdrs2, body2 = self.node.get(
                    path, {"Accept": accept, "If-None-Match": etag})
                self.assertEqual(status, 304, self.msg())
                self.assertEqual(body2, b"")
                # RFC 9110 15.4.5: a 304 carries the ETag and Vary the 200
                # would have had
                self.assertEqual(hdrs2.get("ETag"), etag, "ETag on the 304")
                self.assertIn("accept", hdrs2.get("Vary", "").lower(),
                              "Vary on the 304")
                status, _, _ = self.node.get(
                    path, {"Accept": accept, "If-None-Match": '"nope"'})
                self.assertEqual(status, 200)
        html_etag = self.node.get(path, {"Accept": "text/html"})[1]["ETag"]
        json_etag = self.node.get(path, {"Accept": h.JSON_TYPE})[1]["ETag"]
        self.add(make_wheel(d, "etagproj", "2.0"))
        for accept, old in (("text/html", html_etag),
                            (h.JSON_TYPE, json_etag)):
            status, hdrs, body = self.node.get(
                path, {"Accept": accept, "If-None-Match": old})
            self.assertEqual(status, 200,
                             "stale ETag %s still matched after a new "
                             "file was added (%s)" % (old, accept))
            self.assertIn(b"etagproj-2.0-py3-none-any.whl", body)

    # -- files -----------------------------------------------------------

    def test_files_are_byte_identical(self):
        for fn, w in self.wheels.items():
            with self.subTest(file=fn):
                hdrs, body = self.get_ok("/files/%s/%s" % (w["sha"], fn))
                with open(w["path"], "rb") as f:
                    orig = f.read()
                self.assertEqual(len(body), len(orig))
                self.assertTrue(body == orig, "bytes differ")
                self.assertEqual(hdrs.get("Content-Length"), str(len(orig)))
                self.assertEqual(hdrs.get("ETag"), '"%s"' % w["sha"])
                self.assertEqual(hdrs.get("Accept-Ranges"), "bytes")

    def test_metadata_matches_zip(self):
        for fn, w in self.wheels.items():
            with self.subTest(file=fn):
                _, body = self.get_ok("/files/%s/%s.metadata"
                                      % (w["sha"], fn))
                self.assertEqual(body, read_metadata(w["path"]))

    def test_range_requests(self):
        fn = "pip-23.0.1-py3-none-any.whl"
        w = self.wheels[fn]
        with open(w["path"], "rb") as f:
            orig = f.read()
        path = "/files/%s/%s" % (w["sha"], fn)
        size = len(orig)
        # first byte, a span across a 1 MiB chunk boundary, the last byte
        for a, b in ((0, 0), (10, 99), ((1 << 20) - 5, (1 << 20) + 5),
                     (size - 1, size - 1), (100, size + 1000)):
            with self.subTest(range=(a, b)):
                status, hdrs, body = self.node.get(
                    path, {"Range": "bytes=%d-%d" % (a, b)})
                self.assertEqual(status, 206, self.msg())
                end = min(b, size - 1)
                self.assertEqual(hdrs.get("Content-Range"),
                                 "bytes %d-%d/%d" % (a, end, size))
                self.assertEqual(hdrs.get("Content-Length"),
                                 str(end - a + 1))
                self.assertTrue(body == orig[a:end + 1], "wrong bytes")
        for bad in ("bytes=%d-%d" % (size, size + 10),
                    "bytes=%d-" % (size + 5)):
            with self.subTest(range=bad):
                status, _, _ = self.node.get(path, {"Range": bad})
                self.assertEqual(status, 416, self.msg(bad))

    def test_wrong_sha_or_filename_is_404(self):
        fn_a = "alpha-2.0-py3-none-any.whl"
        fn_b = "beta-1.0-py3-none-any.whl"
        sha_a, sha_b = self.wheels[fn_a]["sha"], self.wheels[fn_b]["sha"]
        cases = [
            "/files/%s/%s" % (sha_b, fn_a),             # sha of another file
            "/files/%s/%s" % (sha_a, "alpha-9.9-py3-none-any.whl"),
            "/files/%s/%s" % ("0" * 64, fn_a),          # sha nobody has
            "/files/%s/%s.metadata" % (sha_b, fn_a),
        ]
        for path in cases:
            with self.subTest(path=path):
                status, _, body = self.node.get(path)
                self.assertEqual(status, 404, self.msg(path))
                self.assertNotEqual(body[:2], b"PK")

    # -- real pip --------------------------------------------------------

    def pip(self, *args):
        proc = self.venv.run_pip(*args)
        self.assertEqual(proc.returncode, 0, h.describe(proc) + self.msg())
        return proc

    def local_hits(self):
        return self.node.status()["hits"]["local"]

    def test_pip_install_from_index_resolves_dependency(self):
        hits = self.local_hits()
        self.pip("install", "--index-url", self.node.url + "/simple/",
                 "alpha")
        # two wheels, each fetched once (metadata that makes pip < 23.2
        # fetch a wheel twice would show here)
        self.assertEqual(self.local_hits() - hits, 2,
                         "wheel downloads for alpha + beta")
        proc = self.pip("show", "alpha", "beta")
        self.assertRegex(proc.stdout, r"(?m)^Name: alpha\nVersion: 2\.0$")
        self.assertRegex(proc.stdout, r"(?m)^Name: beta\nVersion: 1\.0$")
        out = self.venv.run_python(
            "import alpha, beta; print(alpha.__version__, beta.__version__)")
        self.assertEqual(out.stdout.strip(), "2.0 1.0", h.describe(out))

    def test_pip_install_from_find_links(self):
        hits = self.local_hits()
        self.pip("install", "--no-index", "--find-links",
                 self.node.url + "/links/", "Foo_Bar", "gamma")
        self.assertEqual(self.local_hits() - hits, 2,
                         "wheel downloads for Foo_Bar + gamma")
        out = self.venv.run_python(
            "import foo_bar, gamma; print(foo_bar.__version__, gamma.BUILD)")
        # pip prefers the wheel with a build tag over the one without
        self.assertEqual(out.stdout.strip(), "1.0 1", h.describe(out))

    def test_pip_download_gives_original_bytes(self):
        dest = os.path.join(self.tmp, "download")
        shutil.rmtree(dest, ignore_errors=True)
        self.pip("download", "--no-deps", "-d", dest, "--index-url",
                 self.node.url + "/simple/", "pip==23.0.1",
                 "setuptools==66.1.1", "wheel==0.38.4")
        self.assertEqual(sorted(os.listdir(dest)),
                         sorted(h.DEBIAN_WHEEL_FILES))
        for fn in h.DEBIAN_WHEEL_FILES:
            self.assertEqual(h.sha256_file(os.path.join(dest, fn)),
                             self.wheels[fn]["sha"], fn)


if __name__ == "__main__":
    unittest.main()
