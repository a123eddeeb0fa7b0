"""What survives a stop, a restart and a crash.

- A clean restart (SIGTERM, start again on the same data dir) serves every
  wheel with the same bytes, the same pages and the same node identity.
- A wheel whose PUT was acknowledged survives kill -9.
- kill -9 in the middle of a 200 MB upload, or right after its last byte
  was sent while the node is committing, leaves no partial wheel: after the
  restart the file is either absent everywhere (listings, status, download)
  or complete and byte-identical; the same PUT then succeeds. A kill once
  the commit has written batches of chunks, but not the record, is made
  sure of (the test watches the store grow), and the restarted node must
  say it swept those orphan chunks.
- A client that hangs up mid-upload leaves nothing behind either.

The 200 MB wheel is generated once for the module.
"""

import http.client
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest

import harness as h
from makewheel import make_wheel, read_metadata

BIG_SIZE = 200 * 1000 * 1000
BIG = {}
# The store commits 8 chunks (8 MiB) a transaction and writes the pages of
# one only after the last is committed: 16 MiB more on disk is the first
# batch committed and the second being written.
COMMITTED = 16 << 20
SWEPT = re.compile(r"store: swept (\d+) orphan chunks")


def setUpModule():
    BIG["dir"] = tempfile.mkdtemp(prefix="wm-e2e-big-")
    BIG["path"] = make_wheel(BIG["dir"], "bigwheel", "1.0", size=BIG_SIZE)
    BIG["name"] = os.path.basename(BIG["path"])
    BIG["sha"] = h.sha256_file(BIG["path"])
    BIG["size"] = os.path.getsize(BIG["path"])


def tearDownModule():
    shutil.rmtree(BIG["dir"], ignore_errors=True)


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


def snapshot(node):
    """What a user can see of the node's holdings: the file list, each
    file's bytes (hashed) and metadata, and the JSON project pages."""
    files = sorted(node.files(), key=lambda f: f["filename"])
    out = {"files": files, "bytes": {}, "meta": {}, "pages": {}}
    for f in files:
        path = "/files/%s/%s" % (f["sha256"], f["filename"])
        status, _, sha, n = node.download(path)
        out["bytes"][f["filename"]] = (status, sha, n)
        status, _, body = node.get(path + ".metadata")
        out["meta"][f["filename"]] = (status, body)
    for project in sorted({f["project"] for f in files}):
        doc = node.get_json("/simple/%s/" % project,
                            {"Accept": h.JSON_TYPE})
        out["pages"][project] = sorted(
            (x["filename"], x["hashes"]["sha256"], x["size"])
            for x in doc["files"])
    return out


class RestartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)
        cls.paths = [
            make_wheel(cls.tmp, "keep", "1.0", size=10),
            make_wheel(cls.tmp, "keep", "1.1", size=3 * (1 << 20) + 17),
            make_wheel(cls.tmp, "Other.Thing", "0.1", requires=["keep"]),
        ] + [os.path.join(h.DEBIAN_WHEELS, f) for f in h.DEBIAN_WHEEL_FILES]
        cls.node = h.start_node(cls)
        for p in cls.paths:
            cls.node.put_ok(p)

    def test_clean_restart_keeps_everything(self):
        node = self.node
        before = snapshot(node)
        status_before = node.status()
        node.stop()
        node.start()
        after = snapshot(node)
        for p in self.paths:
            fn = os.path.basename(p)
            self.assertEqual(after["bytes"].get(fn),
                             (200, h.sha256_file(p), os.path.getsize(p)),
                             "%s after restart\n%s" % (fn, node.tail()))
            self.assertEqual(after["meta"][fn], (200, read_metadata(p)))
        self.assertEqual(before, after, node.tail())
        status_after = node.status()
        self.assertEqual(status_after["node"]["id"],
                         status_before["node"]["id"],
                         "the node's identity changed across a restart")
        self.assertEqual(status_after["cache"]["files"],
                         status_before["cache"]["files"])
        self.assertEqual(status_after["cache"]["bytes"],
                         status_before["cache"]["bytes"])

    def test_acknowledged_put_survives_kill_9(self):
        p = make_wheel(self.tmp, "acked", "1.0", size=2 * (1 << 20) + 3)
        status, _, body = self.node.put(p)
        self.assertEqual(status, 201, body)
        self.node.kill()
        self.node.start()
        status, _, sha, n = self.node.download(
            "/files/%s/%s" % (h.sha256_file(p), os.path.basename(p)))
        self.assertEqual((status, sha, n),
                         (200, h.sha256_file(p), os.path.getsize(p)),
                         self.node.tail())
        names = [f["filename"] for f in self.node.files()]
        self.assertIn(os.path.basename(p), names)


class CrashDuringPutTest(unittest.TestCase):
    """Each test gets its own node so the crashes do not interact."""

    def setUp(self):
        self.node = h.Node(config={"cache": {"max_size": "1GiB"}})
        self.addCleanup(self.node.cleanup)
        self.small = make_wheel(self.node.dir, "small", "1.0", size=1000)
        self.node.put_ok(self.small)
        self.file_path = "/files/%s/%s" % (BIG["sha"], BIG["name"])

    def start_put(self):
        conn = http.client.HTTPConnection(self.node.host, self.node.port,
                                          timeout=60)
        conn.putrequest("PUT", "/files/" + BIG["name"])
        conn.putheader("Content-Length", str(BIG["size"]))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        return conn

    def send_part(self, conn, nbytes):
        with open(BIG["path"], "rb") as f:
            left = nbytes
            while left > 0:
                piece = f.read(min(1 << 20, left))
                conn.sock.sendall(piece)
                left -= len(piece)

    def assert_big_absent(self):
        node = self.node
        files = node.files()
        self.assertEqual([f["filename"] for f in files],
                         [os.path.basename(self.small)],
                         "after the crash /api/files lists %s\n%s"
                         % (files, node.tail()))
        st = node.status()
        self.assertEqual(st["cache"]["files"], 1, st)
        self.assertEqual(st["cache"]["bytes"], os.path.getsize(self.small),
                         st)
        status, _, body = node.get("/links/")
        self.assertEqual(status, 200)
        self.assertNotIn(BIG["name"].encode(), body)
        self.assertNotIn(b"bigwheel", body)
        status, _, body = node.get("/simple/bigwheel/")
        self.assertEqual(status, 404, body[:300])
        status, _, body = node.get("/simple/")
        self.assertNotIn(b"bigwheel", body)
        status, _, _, n = node.download(self.file_path)
        self.assertEqual(status, 404, "partial wheel served (%d bytes)" % n)
        status, _, _ = node.get(self.file_path + ".metadata")
        self.assertEqual(status, 404)

    def assert_big_complete(self):
        node = self.node
        names = [f["filename"] for f in node.files()]
        self.assertIn(BIG["name"], names)
        status, hdrs, sha, n = node.download(self.file_path)
        self.assertEqual((status, n, sha), (200, BIG["size"], BIG["sha"]),
                         node.tail())
        st = node.status()
        self.assertEqual(st["cache"]["files"], 2, st)
        self.assertEqual(st["cache"]["bytes"],
                         os.path.getsize(self.small) + BIG["size"], st)

    def put_big_again(self, want):
        status, _, body = self.node.put(BIG["path"])
        self.assertIn(status, want, "%r\n%s" % (body[:300], self.node.tail()))
        if status == 201:
            doc = json.loads(body)
            self.assertEqual(doc["sha256"], BIG["sha"])
            self.assertEqual(doc["size"], BIG["size"])
            self.assertEqual(doc["filename"], BIG["name"])
        self.assert_big_complete()
        small = os.path.basename(self.small)
        status, _, sha, _ = self.node.download(
            "/files/%s/%s" % (h.sha256_file(self.small), small))
        self.assertEqual((status, sha), (200, h.sha256_file(self.small)))

    def test_kill_9_in_the_middle_of_the_body(self):
        used_before = disk_usage(self.node.data)
        conn = self.start_put()
        try:
            self.send_part(conn, BIG["size"] // 2)
            time.sleep(0.5)  # let the node take in what was sent
            self.node.kill()
        finally:
            conn.close()
        self.node.start()
        self.assert_big_absent()
        # the 100 MB received before the crash do not stay on disk
        grown = disk_usage(self.node.data) - used_before
        self.assertLess(grown, 30 << 20, "data dir grew by %d MB after a "
                        "crashed upload" % (grown >> 20))
        self.put_big_again((201,))

    def swept(self):
        """The orphan chunks the node said it swept when it last started
        (0 when it said nothing)."""
        m = SWEPT.search(self.node.stderr_text())
        return int(m.group(1)) if m else 0

    def test_kill_9_right_after_the_last_byte(self):
        conn = self.start_put()
        try:
            self.send_part(conn, BIG["size"])
            self.node.kill()  # while the node verifies and commits
        finally:
            conn.close()
        self.node.start()
        names = [f["filename"] for f in self.node.files()]
        if BIG["name"] in names:
            # the commit won the race: it must then be whole
            sys.stderr.write("(committed before the kill) ")
            self.assert_big_complete()
            self.put_big_again((200,))
        else:
            sys.stderr.write("(killed before the commit, %d orphan chunks "
                             "swept) " % self.swept())
            self.assert_big_absent()
            self.put_big_again((201,))

    def test_kill_9_while_committing(self):
        """Killed once the commit has stored its first batch of chunks
        (the store grew by COMMITTED) and long before its last, which holds
        the record: the restart sweeps the orphan chunks and says so."""
        base = disk_usage(self.node.data)
        grown = 0
        conn = self.start_put()
        try:
            self.send_part(conn, BIG["size"])
            deadline = time.monotonic() + h.limit(30)
            while grown < COMMITTED and time.monotonic() < deadline:
                time.sleep(0.005)
                grown = disk_usage(self.node.data) - base
            self.node.kill()
        finally:
            conn.close()
        self.assertGreaterEqual(grown, COMMITTED, "the store grew by only %d "
                                "KiB in %.0f s after the last byte: no commit "
                                "to interrupt\n%s" % (grown >> 10, h.limit(30),
                                                      self.node.tail()))
        self.node.start()
        names = [f["filename"] for f in self.node.files()]
        self.assertNotIn(BIG["name"], names, "the 200 MB commit finished "
                         "between the store growing by %d MiB and the kill: "
                         "the crash did not land mid-commit" % (grown >> 20))
        swept = self.swept()
        sys.stderr.write("(killed %d MiB into the commit, %d orphan chunks "
                         "swept) " % (grown >> 20, swept))
        # at least the first batch of 8
        self.assertGreaterEqual(swept, 8, self.node.tail()
                                + "\nthe store had grown by %d MiB of chunks "
                                "when the node was killed mid-commit; after "
                                "the restart it reports %d orphan chunks "
                                "swept" % (grown >> 20, swept))
        self.assert_big_absent()
        self.put_big_again((201,))

    def test_client_hangs_up_mid_body(self):
        conn = self.start_put()
        self.send_part(conn, 30 * (1 << 20))
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        time.sleep(0.5)
        self.assertTrue(self.node.running(), self.node.tail())
        status, _, _ = self.node.get("/healthz")
        self.assertEqual(status, 200)
        self.assert_big_absent()
        self.put_big_again((201,))


if __name__ == "__main__":
    unittest.main()
