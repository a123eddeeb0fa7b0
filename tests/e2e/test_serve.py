"""HTTP details not covered by test_pip: content negotiation (including
pip's own Accept header and q-values), HEAD, keep-alive, concurrent
downloads, the PUT answer, and the status / metrics counters moving with
what a client does.
"""

import concurrent.futures
import http.client
import json
import os
import re
import socket
import unittest

import harness as h
from makewheel import make_wheel, read_metadata

MAX_SIZE = 3 << 30


class ServeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = h.start_node(cls, config={"cache": {"max_size": "3GiB"}})
        cls.tmp = h.tmpdir(cls)
        cls.paths = [
            make_wheel(cls.tmp, "serveme", "1.0", size=5 << 20),
            make_wheel(cls.tmp, "serveme", "1.1", requires=["Other_Lib"]),
            make_wheel(cls.tmp, "Other_Lib", "0.5"),
        ]
        cls.sha = {}
        for p in cls.paths:
            cls.sha[os.path.basename(p)] = cls.node.put_ok(p)
        cls.big = cls.paths[0]
        cls.big_name = os.path.basename(cls.big)
        cls.big_path = "/files/%s/%s" % (cls.sha[cls.big_name],
                                         cls.big_name)
        with open(cls.big, "rb") as f:
            cls.big_bytes = f.read()

    def msg(self, extra=""):
        return "%s\n%s" % (extra, self.node.tail())

    def kind(self, hdrs):
        ctype = hdrs.get("Content-Type", "").split(";")[0].strip()
        if ctype == h.JSON_TYPE:
            return "json"
        if ctype in h.HTML_TYPES:
            return "html"
        return ctype

    # -- negotiation -----------------------------------------------------

    NEGOTIATION = [
        (None, "html"),
        ("text/html", "html"),
        ("application/vnd.pypi.simple.v1+html", "html"),
        ("application/vnd.pypi.simple.v1+json", "json"),
        ("application/vnd.pypi.simple.latest+json", "json"),
        (h.PIP_ACCEPT, "json"),
        ("text/html, application/vnd.pypi.simple.v1+json;q=0.5", "html"),
        ("application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.9",
         "html"),
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+json", "json"),
    ]

    def test_content_negotiation(self):
        for path in ("/simple/", "/simple/serveme/"):
            for accept, want in self.NEGOTIATION:
                with self.subTest(path=path, accept=accept):
                    hdrs = {"Accept": accept} if accept else None
                    status, rh, body = self.node.get(path, hdrs)
                    self.assertEqual(status, 200, self.msg())
                    self.assertEqual(self.kind(rh), want,
                                     "Content-Type %r" % rh.get(
                                         "Content-Type"))
                    self.assertIn("accept", rh.get("Vary", "").lower())
                    if want == "json":
                        doc = json.loads(body)
                        self.assertTrue(str(doc["meta"]["api-version"])
                                        .startswith("1."))
                    else:
                        self.assertIn(b"<a ", body)

    def test_json_root_lists_projects(self):
        doc = self.node.get_json("/simple/", {"Accept": h.JSON_TYPE})
        names = {h_["name"] for h_ in doc["projects"]}
        # PEP 691: the name may be the project's own spelling; compare
        # normalised
        norm = {re.sub(r"[-_.]+", "-", n).lower() for n in names}
        self.assertTrue({"serveme", "other-lib"} <= norm, doc)

    def test_representations_have_their_own_etags(self):
        path = "/simple/serveme/"
        _, html_h, _ = self.node.get(path, {"Accept": "text/html"})
        _, json_h, _ = self.node.get(path, {"Accept": h.JSON_TYPE})
        self.assertNotEqual(html_h["ETag"], json_h["ETag"],
                            "HTML and JSON share an ETag")
        status, rh, body = self.node.get(
            path, {"Accept": h.JSON_TYPE, "If-None-Match": html_h["ETag"]})
        self.assertEqual(status, 200,
                         "the HTML ETag gave %d for a JSON request" % status)
        self.assertEqual(self.kind(rh), "json")

    # -- HEAD ------------------------------------------------------------

    def raw(self, request):
        """Send one raw request with Connection: close and return
        (status line, headers dict lower-cased, body bytes)."""
        with socket.create_connection((self.node.host, self.node.port),
                                      timeout=30) as s:
            s.sendall(request)
            data = b""
            while True:
                more = s.recv(1 << 16)
                if not more:
                    break
                data += more
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return lines[0], hdrs, body

    def test_head_matches_get_without_body(self):
        fn = self.big_name
        cases = [
            ("/simple/", None), ("/simple/serveme/", None),
            ("/simple/serveme/", h.JSON_TYPE), ("/links/", None),
            (self.big_path, None), (self.big_path + ".metadata", None),
            ("/healthz", None), ("/simple/nothing-here/", None),
            ("/files/%s/%s" % ("0" * 64, fn), None),
        ]
        for path, accept in cases:
            with self.subTest(path=path, accept=accept):
                extra = ("Accept: %s\r\n" % accept) if accept else ""
                req = ("%%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
                       "Connection: close\r\n\r\n" % (path, extra))
                gline, gh, gbody = self.raw((req % "GET").encode())
                hline, hh, hbody = self.raw((req % "HEAD").encode())
                self.assertEqual(hline.split()[1], gline.split()[1])
                self.assertEqual(hbody, b"", "HEAD sent a body")
                for k in ("content-type", "content-length", "etag",
                          "vary", "accept-ranges"):
                    self.assertEqual(hh.get(k), gh.get(k), k)
                if "content-length" in gh:
                    self.assertEqual(int(gh["content-length"]), len(gbody))

    # -- connections -----------------------------------------------------

    def test_one_client_many_requests(self):
        # http.client reuses the connection when the node keeps it open
        # and reconnects when the node closes it; either way every answer
        # must be right
        conn = http.client.HTTPConnection(self.node.host, self.node.port,
                                          timeout=30)
        try:
            for _ in range(3):
                for path, check in (
                        ("/simple/serveme/", lambda b: b"serveme-1.0" in b),
                        (self.big_path, lambda b: b == self.big_bytes),
                        (self.big_path + ".metadata",
                         lambda b: b == read_metadata(self.big))):
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    body = resp.read()
                    self.assertEqual(resp.status, 200, path)
                    self.assertTrue(check(body), path)
        finally:
            conn.close()

    def test_concurrent_downloads(self):
        def fetch(i):
            if i % 2:
                rng = "bytes=%d-%d" % (i * 1000, i * 1000 + 300000)
                status, _, sha, n = self.node.download(self.big_path,
                                                       {"Range": rng})
                want = h.sha256_bytes(self.big_bytes[i * 1000:
                                                     i * 1000 + 300001])
                return status == 206 and sha == want
            status, _, sha, n = self.node.download(self.big_path)
            return status == 200 and sha == self.sha[self.big_name]

        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            results = list(ex.map(fetch, range(32)))
        self.assertTrue(all(results), "%d of 32 downloads wrong\n%s"
                        % (results.count(False), self.node.tail()))
        self.assertEqual(self.node.get("/healthz")[0], 200)

    def test_concurrent_puts(self):
        # parallel build steps publishing at once: the same new wheel from
        # 6 clients (exactly one 201, the rest 200, one stored copy), and 6
        # different wheels (all 201, all listed)
        same = make_wheel(self.tmp, "racer", "1.0", size=3 << 20)
        many = [make_wheel(self.tmp, "many%d" % i, "1.0", size=1 << 20)
                for i in range(6)]
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            same_res = list(ex.map(lambda _: self.node.put(same)[0],
                                   range(6)))
            many_res = list(ex.map(lambda p: self.node.put(p)[0], many))
        self.assertEqual(sorted(same_res), [200] * 5 + [201],
                         self.msg("same wheel from 6 clients"))
        self.assertEqual(many_res, [201] * 6, self.msg("6 wheels at once"))
        names = [f["filename"] for f in self.node.files()]
        self.assertEqual(names.count("racer-1.0-py3-none-any.whl"), 1)
        for p in [same] + many:
            fn = os.path.basename(p)
            self.assertIn(fn, names)
            status, _, sha, _ = self.node.download(
                "/files/%s/%s" % (h.sha256_file(p), fn))
            self.assertEqual((status, sha), (200, h.sha256_file(p)), fn)

    # -- PUT answer ------------------------------------------------------

    def test_put_answers(self):
        p = make_wheel(self.tmp, "putanswer", "1.0", size=1234)
        status, rh, body = self.node.put(p)
        self.assertEqual(status, 201, self.msg(body))
        doc = json.loads(body)
        self.assertEqual({k: doc.get(k) for k in ("filename", "sha256",
                                                  "size")},
                         {"filename": os.path.basename(p),
                          "sha256": h.sha256_file(p),
                          "size": os.path.getsize(p)})
        status, _, body = self.node.put(p)
        self.assertEqual(status, 200, self.msg(body))

    # -- status, files, metrics ------------------------------------------

    def test_status_document(self):
        st = self.node.status()
        self.assertEqual(st["node"]["name"], self.node.name)
        self.assertRegex(st["node"]["id"], r"^[0-9a-f]{64}$")
        self.assertEqual(st["node"]["version"], h.project_version())
        self.assertEqual(st["cache"]["max_size"], MAX_SIZE)
        files = self.node.files()
        self.assertEqual(st["cache"]["files"], len(files))
        self.assertEqual(st["cache"]["bytes"], sum(f["size"] for f in files))
        for k in ("local", "peer", "upstream"):
            self.assertIsInstance(st["hits"][k], int)
        self.assertIsInstance(st["misses"], int)

    def test_api_files(self):
        files = self.node.files()
        by_name = {f["filename"]: f for f in files}
        for p in self.paths:
            fn = os.path.basename(p)
            self.assertIn(fn, by_name)
            self.assertEqual(by_name[fn]["sha256"], h.sha256_file(p))
            self.assertEqual(by_name[fn]["size"], os.path.getsize(p))
            self.assertEqual(by_name[fn]["source"], "put")
        self.assertEqual(by_name["Other_Lib-0.5-py3-none-any.whl"]["project"],
                         "other-lib")
        only = self.node.files("serveme")
        self.assertEqual(sorted(f["filename"] for f in only),
                         ["serveme-1.0-py3-none-any.whl",
                          "serveme-1.1-py3-none-any.whl"])
        self.assertEqual(self.node.files("no-such-project"), [])

    def test_metrics_page(self):
        status, rh, body = self.node.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(rh.get("Content-Type", "").startswith("text/plain"),
                        rh.get("Content-Type"))
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(
                    line, r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? '
                    r'[-+0-9.eEInfNa]+( \d+)?$', "bad sample line")
        m = self.node.metrics()
        for name in ("wheelmesh_cache_files", "wheelmesh_cache_bytes",
                     'wheelmesh_hits_total{source="local"}',
                     "wheelmesh_puts_total", "wheelmesh_put_rejected_total"):
            self.assertIn(name, m, "missing from /metrics")

    def test_counters_move(self):
        node = self.node
        st0, m0 = node.status(), node.metrics()
        status, _, sha, _ = node.download(self.big_path)
        self.assertEqual(status, 200)
        st1, m1 = node.status(), node.metrics()
        self.assertEqual(st1["hits"]["local"], st0["hits"]["local"] + 1)
        key = 'wheelmesh_hits_total{source="local"}'
        self.assertEqual(m1[key], m0[key] + 1)

        p = make_wheel(self.tmp, "counted", "1.0", size=777)
        node.put_ok(p)
        st2, m2 = node.status(), node.metrics()
        self.assertEqual(m2["wheelmesh_puts_total"],
                         m1["wheelmesh_puts_total"] + 1)
        self.assertEqual(st2["cache"]["files"], st1["cache"]["files"] + 1)
        self.assertEqual(st2["cache"]["bytes"],
                         st1["cache"]["bytes"] + os.path.getsize(p))
        self.assertEqual(m2["wheelmesh_cache_files"], st2["cache"]["files"])
        self.assertEqual(m2["wheelmesh_cache_bytes"], st2["cache"]["bytes"])

        status, _, _ = node.put(None, "counted-2.0-py3-none-any.whl",
                                body=b"junk")
        self.assertEqual(status, 400)
        m3 = node.metrics()
        self.assertEqual(m3["wheelmesh_put_rejected_total"],
                         m2["wheelmesh_put_rejected_total"] + 1)
        self.assertEqual(m3["wheelmesh_puts_total"],
                         m2["wheelmesh_puts_total"])

        # a wheel nobody has (this node is offline) is a miss, not a hit
        status, _, _ = node.get("/files/%s/nothere-1.0-py3-none-any.whl"
                                % ("ab" * 32))
        self.assertEqual(status, 404)
        st4 = node.status()
        self.assertEqual(st4["misses"], st2["misses"] + 1)
        self.assertEqual(st4["hits"], st2["hits"])

    def test_healthz_and_unknown_paths(self):
        status, _, body = self.node.get("/healthz")
        self.assertEqual((status, body.strip()), (200, b"ok"))
        for path, codes in (("/nope", (404,)),
                            ("/simple/serveme/extra/", (404,)),
                            ("/api/nothing", (404,)),
                            ("/files/", (400, 404))):
            with self.subTest(path=path):
                status, _, _ = self.node.get(path)
                self.assertIn(status, codes, self.msg(path))


if __name__ == "__main__":
    unittest.main()
