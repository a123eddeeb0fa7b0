"""Bad input from outside: every bad PUT, path, header or config gets a
clear 4xx (or exit 1) with a reason, nothing gets stored, and the node keeps
serving.

Each HTTP case checks the same three things a user would see:
  1. the status code and a non-empty, one-line reason in the body;
  2. nothing new in /api/status, /api/files, /links/ or /simple/;
  3. /healthz is 200 and the wheel stored at the start still downloads.
"""

import io
import json
import os
import re
import socket
import time
import unittest
import zipfile

import harness as h
from makewheel import make_wheel

CAP = 8 << 20  # cache.max_size of the node under test


class BadPutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = h.start_node(cls, config={"cache": {"max_size": "8MiB"}})
        cls.tmp = h.tmpdir(cls)
        cls.good = make_wheel(cls.tmp, "good", "1.0", size=5000)
        cls.good_sha = cls.node.put_ok(cls.good)
        with open(cls.good, "rb") as f:
            cls.good_bytes = f.read()

    def setUp(self):
        self.before = self.state()

    def state(self):
        node = self.node
        st = node.status()
        return {
            "files": st["cache"]["files"],
            "bytes": st["cache"]["bytes"],
            "list": sorted((f["filename"], f["sha256"])
                           for f in node.files()),
            "links": node.get("/links/")[2],
            "simple": node.get("/simple/")[2],
        }

    def assert_nothing_changed_and_serving(self, what):
        node = self.node
        self.assertTrue(node.running(), "node died after %s\n%s"
                        % (what, node.tail()))
        status, _, body = node.get("/healthz")
        self.assertEqual(status, 200, "healthz after %s\n%s"
                         % (what, node.tail()))
        self.assertEqual(self.state(), self.before,
                         "something was stored after %s" % what)
        status, _, body = node.get("/files/%s/%s" % (
            self.good_sha, os.path.basename(self.good)))
        self.assertEqual(status, 200, what)
        self.assertTrue(body == self.good_bytes,
                        "good wheel bytes changed after %s" % what)

    def assert_reason(self, status, body, codes, what):
        self.assertIn(status, codes, "%s: got %d %r\n%s"
                      % (what, status, body[:300], self.node.tail()))
        text = body.decode("utf-8", "replace").strip()
        self.assertTrue(text, "%s: %d with an empty body" % (what, status))
        return text

    def assert_rejected(self, status, body, codes, what, one_line=True,
                        mentions=None):
        text = self.assert_reason(status, body, codes, what)
        if mentions:
            self.assertRegex(text.lower(), mentions,
                             "%s: the reason does not say why" % what)
        if one_line:
            self.assertEqual(len(text.splitlines()), 1,
                             "%s: reason is not one line: %r" % (what, text))
        self.assert_nothing_changed_and_serving(what)
        return text

    def put_raw(self, raw_path, body):
        return self.node.request("PUT", raw_path, body=body)

    # -- bodies that are not good wheels ---------------------------------

    def test_not_a_zip(self):
        status, _, body = self.node.put(
            None, "notzip-1.0-py3-none-any.whl",
            body=b"this is not a zip file\n" * 200)
        self.assert_rejected(status, body, (400,), "PUT of a non-zip",
                             mentions="zip")

    def test_empty_body(self):
        status, _, body = self.node.put(None, "empty-1.0-py3-none-any.whl",
                                        body=b"")
        self.assert_rejected(status, body, (400,), "PUT of an empty body")

    def test_truncated_zip(self):
        data = h.read_bytes(make_wheel(self.tmp, "trunc", "1.0", size=20000))
        for cut, label in ((len(data) // 2, "half"), (len(data) - 10,
                                                      "last 10 bytes")):
            with self.subTest(cut=label):
                self.before = self.state()
                status, _, body = self.node.put(
                    None, "trunc-1.0-py3-none-any.whl", body=data[:cut])
                self.assert_rejected(status, body, (400,),
                                     "PUT of a zip without its %s" % label)

    def test_dist_info_does_not_match_filename(self):
        cases = [
            make_wheel(self.tmp, "named", "1.0", metadata_name="other"),
            make_wheel(self.tmp, "versioned", "1.0", metadata_version="9.9"),
        ]
        for path in cases:
            with self.subTest(wheel=os.path.basename(path)):
                self.before = self.state()
                status, _, body = self.node.put(path)
                self.assert_rejected(status, body, (400,),
                                     "PUT of %s with a dist-info for "
                                     "another wheel" % os.path.basename(path),
                                     mentions="dist-info|match")

    def zip_variant(self, name, drop=(), add=()):
        """A copy of a valid wheel NAME-1.0 with some entries dropped and
        some (arcname, bytes) added."""
        src = make_wheel(self.tmp, name, "1.0")
        out = io.BytesIO()
        with zipfile.ZipFile(src) as zin, \
                zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
            for item in zin.infolist():
                if not any(item.filename.endswith(d) for d in drop):
                    zout.writestr(item, zin.read(item))
            for arc, data in add:
                zout.writestr(zipfile.ZipInfo(arc), data)
        return "%s-1.0-py3-none-any.whl" % name, out.getvalue()

    def test_hostile_or_incomplete_zip_contents(self):
        cases = {
            "entry with ..": self.zip_variant(
                "slip", add=[("../../evil.py", b"print('x')\n")]),
            "absolute entry": self.zip_variant(
                "absolute", add=[("/tmp/evil.py", b"print('x')\n")]),
            "no METADATA": self.zip_variant("nometa", drop=["/METADATA"]),
            "no WHEEL": self.zip_variant("nowheel", drop=["/WHEEL"]),
            "no RECORD": self.zip_variant("norecord", drop=["/RECORD"]),
        }
        mentions = {"entry with ..": r"\.\.|path|entry",
                    "absolute entry": "absolute|path|entry",
                    "no METADATA": "metadata", "no WHEEL": "wheel",
                    "no RECORD": "record"}
        for label, (fn, data) in cases.items():
            mention = mentions[label]
            with self.subTest(case=label):
                self.before = self.state()
                status, _, body = self.node.put(None, fn, body=data)
                self.assert_rejected(status, body, (400,),
                                     "PUT of a wheel with %s" % label,
                                     mentions=mention)

    # -- names -----------------------------------------------------------

    def test_bad_wheel_filenames(self):
        names = [
            "notawheel.zip",
            "foo-1.0.whl",                       # no tags
            "foo-1.0-py3-none.whl",              # no platform tag
            "foo-1.0-py3-none-any.tar.gz",
            "-1.0-py3-none-any.whl",             # empty name
            "foo-1.0-x1-py3-none-any.whl",       # build tag not a digit
            "foo bar-1.0-py3-none-any.whl",      # space
            "foo-1.0-py3-none-any-extra-x.whl",  # too many parts
            ".whl",
        ]
        # the body is a valid foo-1.0 wheel, so only the name is at fault
        foo = h.read_bytes(make_wheel(self.tmp, "foo", "1.0"))
        for name in names:
            with self.subTest(name=name):
                self.before = self.state()
                status, _, body = self.node.put(None, name, body=foo)
                self.assert_rejected(status, body, (400,),
                                     "PUT /files/%s" % name)

    def test_path_traversal(self):
        # Sent byte for byte: http.client does not normalise the path.
        # Each case names its own project (trav<i>) and sends a valid wheel
        # of that name, so only the path is at fault and one case that
        # gets through does not hide the others.
        paths = [
            "/files/..%2F..%2F{}-1.0-py3-none-any.whl",
            "/files/%2E%2E%2F%2E%2E%2F{}-1.0-py3-none-any.whl",
            "/files/..%5C..%5C{}-1.0-py3-none-any.whl",
            "/files/sub%2F{}-1.0-py3-none-any.whl",
            "/files/{}-1.0-py3-none-any.whl%00.txt",
            "/files/%2Fetc%2F{}-1.0-py3-none-any.whl",
            "/files/../../{}-1.0-py3-none-any.whl",
            "/files/./{}-1.0-py3-none-any.whl",
            "/files//{}-1.0-py3-none-any.whl",
        ]
        for i, template in enumerate(paths):
            name = "trav%d" % i
            path = template.format(name)
            with self.subTest(path=path):
                self.before = self.state()
                body = h.read_bytes(make_wheel(self.tmp, name, "1.0"))
                status, _, body = self.put_raw(path, body)
                # 404 is fair for a path that is not /files/<one segment>
                self.assert_rejected(status, body, (400, 403, 404),
                                     "PUT %s" % path)
        # nothing named trav<i>-1.0-... appeared near the node's files
        parent = os.path.dirname(self.node.dir)
        for root in (self.node.dir, parent):
            for dirpath, _, files in os.walk(root):
                for fn in files:
                    self.assertFalse(re.match(r"trav\d-1\.0", fn),
                                     os.path.join(dirpath, fn))
                if root == parent:
                    break

    def test_same_name_other_bytes_is_409(self):
        other = make_wheel(self.tmp, "good", "1.0", size=6000,
                           filename="good-1.0-py3-none-any.whl.tmp")
        status, _, body = self.node.put(other,
                                        filename=os.path.basename(self.good))
        self.assert_rejected(status, body, (409,),
                             "PUT of good-1.0 with other bytes")

    # -- size cap --------------------------------------------------------

    def raw_exchange(self, head, body_pieces, expect_continue):
        """Send HEAD (bytes), then the body pieces, the way a careful
        client does: with Expect: 100-continue it waits up to 2 s for the
        go-ahead and stops if a final answer comes first. Returns the
        response bytes (possibly empty when the node closed the
        connection)."""
        sock = socket.create_connection((self.node.host, self.node.port),
                                        timeout=30)
        resp = b""
        try:
            try:
                sock.sendall(head)
            except (BrokenPipeError, ConnectionResetError):
                body_pieces, expect_continue = [], False
            if expect_continue:
                sock.settimeout(2)
                try:
                    resp = sock.recv(65536)
                except socket.timeout:
                    resp = b""
                sock.settimeout(30)
                if resp.startswith(b"HTTP/1.1 100"):
                    resp = resp.split(b"\r\n\r\n", 1)[1]
                elif resp:
                    return resp  # a final answer before the body
            try:
                for piece in body_pieces:
                    sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass
            while True:
                try:
                    more = sock.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    break
                if not more:
                    break
                resp += more
                if b"\r\n\r\n" in resp:
                    head_end = resp.index(b"\r\n\r\n") + 4
                    m = re.search(rb"(?i)content-length:\s*(\d+)",
                                  resp[:head_end])
                    if m and len(resp) >= head_end + int(m.group(1)):
                        break
            return resp
        finally:
            sock.close()

    @staticmethod
    def parse_response(resp):
        head, _, body = resp.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        return (int(m.group(1)) if m else None), body

    def test_body_over_the_cap_is_413(self):
        big = make_wheel(self.tmp, "toobig", "1.0", size=CAP + (1 << 20))
        data = h.read_bytes(big)
        head = ("PUT /files/toobig-1.0-py3-none-any.whl HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nContent-Length: %d\r\n"
                "Expect: 100-continue\r\n\r\n" % len(data)).encode()
        pieces = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        resp = self.raw_exchange(head, pieces, expect_continue=True)
        status, body = self.parse_response(resp)
        self.assertIsNotNone(status, "no HTTP answer to an over-cap PUT: %r"
                             "\n%s" % (resp[:300], self.node.tail()))
        self.assert_rejected(status, body, (413,), "PUT over the cap")

    def test_body_over_the_cap_plain_put(self):
        # http.client sends the whole body first; the node must not store
        # it. The answer may be lost if the node hangs up early, so only a
        # wrong answer fails here (nothing stored is checked either way).
        big = make_wheel(self.tmp, "toobig2", "1.0", size=CAP + (1 << 20))
        try:
            status, _, body = self.node.put(big)
        except (BrokenPipeError, ConnectionResetError):
            status, body = None, b""
        if status is not None:
            self.assert_reason(status, body, (413,), "plain PUT over cap")
        self.assert_nothing_changed_and_serving("plain PUT over the cap")

    def test_chunked_body_over_the_cap(self):
        big = make_wheel(self.tmp, "chunky", "1.0", size=CAP + (1 << 20))
        data = h.read_bytes(big)
        head = ("PUT /files/chunky-1.0-py3-none-any.whl HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                "\r\n").encode()
        pieces = [b"%x\r\n%s\r\n" % (len(data[i:i + 65536]),
                                     data[i:i + 65536])
                  for i in range(0, len(data), 65536)] + [b"0\r\n\r\n"]
        resp = self.raw_exchange(head, pieces, expect_continue=False)
        status, body = self.parse_response(resp)
        if status is not None:  # 411 (length required) is fair too
            self.assert_reason(status, body, (411, 413), "chunked over cap")
        self.assert_nothing_changed_and_serving("chunked PUT over the cap")

    # -- bad requests for reading ----------------------------------------

    def test_garbage_range(self):
        path = "/files/%s/%s" % (self.good_sha, os.path.basename(self.good))
        for rng in ("bytes=abc-def", "bytes=", "bytes=5-2", "bytes=-",
                    "bytes=1-2-3", "bytes=99999999999999999999999-"):
            with self.subTest(range=rng):
                self.before = self.state()
                status, _, body = self.node.get(path, {"Range": rng})
                self.assert_rejected(status, body, (400, 416),
                                     "Range: %s" % rng, one_line=False)

    def test_garbage_sha(self):
        fn = os.path.basename(self.good)
        for sha in ("xyz", "0" * 63, "g" * 64, self.good_sha + "0",
                    self.good_sha.upper() + "Z", "%00" * 32, ".."):
            with self.subTest(sha=sha):
                self.before = self.state()
                status, _, body = self.node.get("/files/%s/%s" % (sha, fn))
                self.assert_rejected(status, body, (400, 404),
                                     "GET /files/%s/..." % sha,
                                     one_line=False)

    def test_long_url(self):
        # long enough to be absurd, short enough that the node reads it all
        for path in ("/simple/" + "a" * 8000 + "/",
                     "/links/" + "a" * 8000 + "/",
                     "/files/%s/%s" % (self.good_sha, "b" * 8000 + ".whl")):
            with self.subTest(path=path[:20]):
                self.before = self.state()
                status, _, body = self.node.get(path)
                self.assert_rejected(status, body, (400, 404, 414),
                                     "GET of an 8 KB path", one_line=False)

    def test_huge_url_and_header(self):
        # a megabyte of URL or of header: any 4xx or a closed connection
        # is fine, as long as the node lives and nothing changes
        for label, req in (
                ("url", b"GET /simple/" + b"a" * (1 << 20) +
                 b"/ HTTP/1.1\r\nHost: x\r\n\r\n"),
                ("header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: " +
                 b"j" * (1 << 20) + b"\r\n\r\n")):
            with self.subTest(what=label):
                self.before = self.state()
                resp = self.raw_exchange(req, [], expect_continue=False)
                status, _ = self.parse_response(resp)
                if status is not None:
                    self.assertTrue(400 <= status < 500,
                                    "huge %s: %r" % (label, resp[:200]))
                self.assert_nothing_changed_and_serving("a huge " + label)


class PutNotAllowedTest(unittest.TestCase):
    """http.allow_put_from that leaves loopback out: PUT from 127.0.0.1 is
    refused with 403, reads still work."""

    @classmethod
    def setUpClass(cls):
        cls.node = h.start_node(
            cls, config={"http": {"allow_put_from": ["10.0.0.0/8"]}})
        cls.tmp = h.tmpdir(cls)

    def test_put_from_outside_allow_list_is_403(self):
        w = make_wheel(self.tmp, "denied", "1.0")
        status, _, body = self.node.put(w)
        self.assertEqual(status, 403, "%r\n%s" % (body, self.node.tail()))
        self.assertTrue(body.strip(), "403 without a reason")
        self.assertEqual(self.node.files(), [])
        self.assertEqual(self.node.status()["cache"]["files"], 0)
        status, _, _ = self.node.get("/simple/denied/")
        self.assertEqual(status, 404)
        self.assertEqual(self.node.get("/simple/")[0], 200)

    def test_cli_put_is_refused_too(self):
        w = make_wheel(self.tmp, "denied2", "1.0")
        proc = h.wm("put", "--node", self.node.url, w)
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertTrue(proc.stderr.strip(), h.describe(proc))
        self.assertEqual(self.node.files(), [])


class ConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, path):
        return h.wm("node", "--check", "-c", path)

    def assert_bad(self, name, text, must_name, line=None):
        path = self.write(name, text)
        proc = self.check(path)
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertIn(must_name, proc.stderr, h.describe(proc))
        if line is not None:
            self.assertRegex(proc.stderr, r"(:|line )%d\b" % line,
                             "no line number\n" + h.describe(proc))
        # the node itself refuses to start with it
        port = h.free_port()
        data = os.path.join(self.tmp, name + ".data")
        t0 = time.monotonic()
        proc = h.wm("node", "-c", path, "--data", data,
                    "--http", "127.0.0.1:%d" % port, timeout=h.limit(15))
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertIn(must_name, proc.stderr, h.describe(proc))
        self.assertLess(time.monotonic() - t0, h.limit(10))
        return proc

    def test_valid_config_passes(self):
        cfg = {
            "node": {"name": "agent-1"},
            "http": {"listen": "127.0.0.1:7390",
                     "allow_put_from": ["127.0.0.1/32", "::1/128"]},
            "cluster": {"listen": "tcp://127.0.0.1:7391",
                        "seeds": ["tcp://10.0.0.6:7391"]},
            "upstream": {"indexes": [{"url": "https://pypi.org/simple/"}],
                         "page_ttl_s": 600, "timeout_s": 30},
            "cache": {"max_size": "20GiB", "expire_after_days": 7,
                      "map_size": "256GiB"},
        }
        path = self.write("good.json", json.dumps(cfg, indent=2))
        proc = self.check(path)
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        path = self.write("empty.json", "{}")
        proc = self.check(path)
        self.assertEqual(proc.returncode, 0, h.describe(proc))

    def test_invalid_json_names_the_line(self):
        text = '{\n  "cache": {\n    "max_size": "1GiB",\n    oops\n  }\n}\n'
        self.assert_bad("syntax.json", text, "syntax.json", line=4)

    def test_unknown_key(self):
        text = '{\n  "cache": {\n    "max_sise": "1GiB"\n  }\n}\n'
        self.assert_bad("unknown.json", text, "cache.max_sise")

    def test_unknown_section(self):
        self.assert_bad("section.json", '{"caches": {}}\n', "caches")

    def test_bad_size(self):
        for i, bad in enumerate(('"lots"', '"12 parsecs"', '"-1GiB"',
                                 '"99999999999999999999GiB"', "true")):
            with self.subTest(value=bad):
                text = '{\n  "cache": {\n    "max_size": %s\n  }\n}\n' % bad
                self.assert_bad("size%d.json" % i, text, "cache.max_size")

    def test_wrong_type(self):
        self.assert_bad("type.json", '{"http": {"listen": 7390}}',
                        "http.listen")

    def test_impossible_listen_address(self):
        self.assert_bad("listen.json",
                        '{"http": {"listen": "127.0.0.1:99999"}}',
                        "http.listen")

    def test_missing_config_file(self):
        path = os.path.join(self.tmp, "does-not-exist.json")
        proc = self.check(path)
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertIn("does-not-exist.json", proc.stderr, h.describe(proc))


if __name__ == "__main__":
    unittest.main()
