"""A peer fetch that loses its last holder in the middle goes on from
upstream with a Range request for the rest, and the client, which has been
streaming the first part, gets the whole wheel byte for byte; the node
stores it.

Upstream is nginx; its access log records the status, the bytes sent and
the Range header of every request, so the test sees the take-over itself.
Node Z fetches; the holders:

- a real node X holding a 200 MB wheel, killed once Z has some MiB of it
  (as test_cluster_faults.test_2_holder_killed_mid_transfer): upstream
  serves the rest as 206 Partial Content;
- an evil peer E (evilpeer.py) serving the first chunks of a 24 MiB wheel
  and then saying it has no more: the same, deterministically; once after
  the client read the project page (Z has the page), once with a GET
  straight to the file (Z must first fetch the page to find upstream's
  URL);
- E again for a wheel whose upstream ignores Range (nginx `max_ranges 0`
  for that file: a 200 with the whole file): Z must still serve the wheel
  exactly (dropping the prefix it has from the answer, or asking once more
  without Range).
"""

import os
import time
import unittest

import harness as h
import cluster_util as cu
import evilpeer
import fault_util as fu
import wire
from makewheel import make_wheel
from upstream_index import Nginx, StaticIndex, location_for

SERVED_BY_E = 5  # chunks E serves before it says it has no more


def setUpModule():
    h.require_binary()


class TakeOver(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "XZE")
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        pk = cls.index.packages
        cls.big = cls.index.add(make_wheel(pk, "tk-killed", "1.0",
                                           size=200 * 1000 * 1000, seed=1))
        mid = 24 * wire.CHUNK_SIZE + 4321
        cls.ranged = cls.index.add(make_wheel(pk, "tk-range", "1.0",
                                              size=mid, seed=2))
        cls.direct = cls.index.add(make_wheel(pk, "tk-direct", "1.0",
                                              size=mid, seed=3))
        cls.norange = cls.index.add(make_wheel(pk, "tk-norange", "1.0",
                                               size=mid, seed=4))
        cls.nginx = Nginx(cls.index, extra=location_for(
            cls.norange["filename"], "max_ranges 0;"))
        cls.addClassCleanup(cls.nginx.cleanup)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        cls.X = cu.ClusterNode(keys["X"], trusted=trusted, label="X")
        cls.addClassCleanup(cls.X.cleanup)
        cls.Z = cu.ClusterNode(keys["Z"], trusted=trusted, label="Z",
                               seeds=[cls.X.cluster_addr],
                               upstream=cls.nginx.url)
        cls.addClassCleanup(cls.Z.cleanup)
        cls.nodes = [cls.X, cls.Z]
        cu.Waiter(cls.nodes)(
            lambda: cls.Z.member_state(cls.X.id) == "alive",
            "Z to see X alive", timeout=15)
        cls.E = evilpeer.EvilPeer(keys["E"], label="E")
        cls.addClassCleanup(cls.E.stop)
        cls.E.join(cls.Z)

    def msg(self, extra=""):
        return "%s\n%s\n%s\nevil peer: fetches %s, undecodable %r" % (
            extra, cu.tails(self.nodes), self.nginx.tail(),
            dict(self.E.fetches), self.E.errors[:3])

    def file_log(self, filename):
        return [e for e in self.nginx.entries()
                if e["path"] == "/packages/" + filename]

    def check_stored(self, e):
        """Z holds E's wheel now and serves it from its store."""
        sha, name = e["sha256"], e["filename"]
        held = cu.Waiter(self.nodes)(
            lambda: self.Z.id in self.Z.held().get(name, {}).get(
                "holders", []) and self.Z.held()[name],
            "Z to hold %s itself" % name, timeout=20)
        self.assertEqual(held["sha256"], sha, self.msg(cu.dump(held)))
        before = len(self.file_log(name))
        status, _, got, n = self.Z.download(cu.file_path(sha, name))
        self.assertEqual((status, got, n),
                         (200, sha, os.path.getsize(e["path"])),
                         self.msg("GET %s from Z's store" % name))
        self.assertEqual(len(self.file_log(name)), before, self.msg(
            "the second GET went upstream again"))

    def evil_takeover(self, e, page_first):
        """E serves the first SERVED_BY_E chunks of E's wheel, then says it
        has no more; returns nginx's log lines for the file once Z's client
        got the whole wheel."""
        sha, name = e["sha256"], e["filename"]
        size = os.path.getsize(e["path"])
        data = h.read_bytes(e["path"])
        self.E.behave(sha, evilpeer.Serve(data, stop_after=SERVED_BY_E))
        entry = self.E.entry(name, sha, size, wire.chunks_root(data))
        self.E.publish_until_listed([entry], self.Z, name)
        if page_first:
            project = name.split("-")[0].replace("_", "-")
            status, _, body = self.Z.get("/simple/%s/" % project)
            self.assertEqual(status, 200, self.msg("page: %r" % body[:200]))
        before = self.Z.member(self.E.hex)["bytes_in"]
        a = fu.bounded_get(self.Z.host, self.Z.port, cu.file_path(sha, name),
                           60)
        self.assertTrue(a.ok_with(sha, size), self.msg(
            "GET %s on Z (E served %d chunks, then had no more): %s"
            % (name, SERVED_BY_E, a.describe())))
        got_from_e = self.Z.member(self.E.hex)["bytes_in"] - before
        self.assertGreaterEqual(got_from_e, SERVED_BY_E * wire.CHUNK_SIZE,
                                self.msg("Z took only %d bytes from E: the "
                                         "take-over was not tested"
                                         % got_from_e))
        return self.file_log(name), size

    def test_1_holder_stops_then_range_request(self):
        log, size = self.evil_takeover(self.ranged, page_first=True)
        partial = [x for x in log if x["status"] == 206]
        self.assertTrue(partial, self.msg(
            "no 206 for %s in nginx's log: %r"
            % (self.ranged["filename"], [x["line"] for x in log])))
        self.assertTrue(all(0 < x["bytes"] < size for x in partial),
                        self.msg("206s: %r" % [x["line"] for x in partial]))
        self.assertFalse([x for x in log if x["status"] == 200], self.msg(
            "upstream sent the whole file as well: %r"
            % [x["line"] for x in log]))
        self.check_stored(self.ranged)

    def test_2_holder_stops_before_the_page_is_known(self):
        log, size = self.evil_takeover(self.direct, page_first=False)
        partial = [x for x in log if x["status"] == 206]
        self.assertTrue(partial and all(0 < x["bytes"] < size
                                        for x in partial),
                        self.msg("want a 206 for part of %s: %r"
                                 % (self.direct["filename"],
                                    [x["line"] for x in log])))
        self.check_stored(self.direct)

    def test_3_upstream_ignores_range(self):
        log, size = self.evil_takeover(self.norange, page_first=True)
        lines = [x["line"] for x in log]
        self.assertTrue([x for x in log if x["range"]], self.msg(
            "Z did not ask upstream with a Range header: %r" % lines))
        # nginx itself: max_ranges 0 means never a 206.
        self.assertTrue(all(x["status"] == 200 for x in log), self.msg(
            "nginx did not ignore Range: %r" % lines))
        # The node may skip what it has of the 200, or ask again without
        # Range; not more than that.
        self.assertLessEqual(len(log), 2, self.msg(
            "upstream was asked %d times: %r" % (len(log), lines)))
        self.check_stored(self.norange)

    def test_4_holder_killed_mid_transfer(self):
        e = self.big
        sha, name = e["sha256"], e["filename"]
        size = os.path.getsize(e["path"])
        self.assertEqual(self.X.put_ok(e["path"]), sha)
        cu.Waiter(self.nodes)(
            lambda: self.X.id in self.Z.held().get(name, {}).get(
                "holders", []),
            "Z to list X as a holder of %s" % name, timeout=10)
        base = self.Z.member(self.X.id)["bytes_in"]
        job = cu.Download(self.Z, sha, name)
        job.start()
        cu.Waiter(self.nodes)(
            lambda: (self.Z.member(self.X.id)["bytes_in"] - base
                     >= 4 * wire.CHUNK_SIZE) or not job.is_alive(),
            "Z to receive the first chunks of %s" % name, timeout=30,
            interval=0.02)
        got_before = self.Z.member(self.X.id)["bytes_in"] - base
        running = job.is_alive()
        self.X.kill()
        killed = time.monotonic()
        self.assertTrue(running and got_before < size * 0.9, self.msg(
            "the transfer was over (%d of %d bytes) before X could be "
            "killed" % (got_before, size)))
        job.join(150)
        self.assertFalse(job.is_alive(), self.msg(
            "Z's download still running 150 s after X was killed"))
        self.assertIsNone(job.error, self.msg(job.error))
        status, _, got, n = job.result
        self.assertEqual((status, got, n), (200, sha, size), self.msg(
            "GET %s on Z, X killed after %d bytes: ended %.1f s after the "
            "kill with %d bytes" % (name, got_before,
                                    time.monotonic() - killed, n)))
        log = self.file_log(name)
        partial = [x for x in log if x["status"] == 206 and
                   0 < x["bytes"] < size]
        self.assertTrue(partial, self.msg(
            "no 206 for the rest of %s in nginx's log: %r"
            % (name, [x["line"] for x in log])))
        self.check_stored(e)


if __name__ == "__main__":
    unittest.main()
