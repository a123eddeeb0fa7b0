"""The cluster when peers misbehave: a holder that serves corrupted chunks
(the test-only WHEELMESH_TEST_FAULT_BAD_CHUNKS hook), a holder killed in the
middle of a transfer, a fetcher whose store fills up in the middle of one,
and hand-made wire messages from a trusted key (malformed, oversized) and
from an untrusted one.

Peers: X and W (good), Y (serves bad chunk bytes) hold wheels; Z fetches.
Wire: one node N, and a DEALER made here with a key N trusts (P) or does
not (U).
"""

import hashlib
import http.client
import os
import time
import unittest
import urllib.parse

import harness as h
import cluster_util as cu
from makewheel import make_wheel


SOCKET_CAP = 4 << 20  # ZMQ_MAXMSGSIZE of the cluster socket (MAX_MSG)


def setUpModule():
    h.require_binary()


class Case(unittest.TestCase):
    nodes = ()

    def msg(self, extra=""):
        return "%s\n%s" % (extra, cu.tails(self.nodes))

    def wait(self, pred, what, timeout=10.0, interval=0.1, extra=None):
        return cu.Waiter(self.nodes)(pred, what, timeout, interval, extra)


# --- 5 ------------------------------------------------------------------------


class BadPeers(Case):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "XYWZ")
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        nodes = cu.start_chain(
            cls, cls.tmp, keys,
            {"X": [], "Y": ["X"], "W": ["X"], "Z": ["Y"]},
            env={"Y": {"WHEELMESH_TEST_FAULT_BAD_CHUNKS": "1"}})
        cls.X, cls.Y, cls.W, cls.Z = (nodes[n] for n in "XYWZ")
        cls.nodes = [cls.X, cls.Y, cls.W, cls.Z]
        w = cu.Waiter(cls.nodes)
        for x in cls.nodes:
            w(lambda x=x: x.cluster_status().get("alive") == 3,
              "%s to see the three others alive" % x.label, timeout=15)

    def test_1_bad_chunks_from_one_holder_are_refused(self):
        path = make_wheel(self.wheels, "cl-badchunks", "1.0",
                          size=20 * 1000 * 1000)
        name = os.path.basename(path)
        sha = self.X.put_ok(path)
        self.assertEqual(self.Y.put_ok(path), sha)
        self.wait(lambda: {self.X.id, self.Y.id} <= set(
            self.Z.held().get(name, {}).get("holders", [])),
            "Z to list X and Y as holders of %s" % name, timeout=5)
        before = self.Z.member(self.Y.id)
        metric_before = self.Z.metrics().get(
            'wheelmesh_peer_bad_chunks_total{peer="%s"}' % self.Y.id[:16], 0)
        status, _, got, n = self.Z.download(cu.file_path(sha, name))
        self.assertEqual((status, got, n), (200, sha, os.path.getsize(path)),
                         self.msg("Z fetching %s held by X and the "
                                  "corrupting Y" % name))
        y = self.Z.member(self.Y.id)
        x = self.Z.member(self.X.id)
        self.assertGreaterEqual(y["bad_chunks"], before["bad_chunks"] + 1,
                                self.msg("Z counted no bad chunk from Y; "
                                         "Z's view of Y: %s, of X: %s"
                                         % (cu.dump(y), cu.dump(x))))
        self.assertEqual(x["bad_chunks"], 0, self.msg(
            "Z blames the good X: %s" % cu.dump(x)))
        key = 'wheelmesh_peer_bad_chunks_total{peer="%s"}' % self.Y.id[:16]
        m = self.Z.metrics()
        self.assertGreater(m.get(key, 0), metric_before, self.msg(
            "/metrics on Z: %s = %r, was %r before the download"
            % (key, m.get(key), metric_before)))
        # What Z stored and serves now is right, and it is a holder.
        status, _, got, _ = self.Z.download(cu.file_path(sha, name))
        self.assertEqual((status, got), (200, sha))
        self.assertEqual(self.Z.held()[name].get("source"), "peer")

    def test_2_holder_killed_mid_transfer(self):
        size = 300 * 1000 * 1000
        path = make_wheel(self.wheels, "cl-bigkill", "1.0", size=size)
        name = os.path.basename(path)
        sha = self.X.put_ok(path)
        self.assertEqual(self.W.put_ok(path), sha)
        size = os.path.getsize(path)
        self.wait(lambda: {self.X.id, self.W.id} <= set(
            self.Z.held().get(name, {}).get("holders", [])),
            "Z to list X and W as holders of %s" % name, timeout=5)
        base = self.Z.cluster_status()["bytes_in"]
        job = cu.Download(self.Z, sha, name)
        job.start()
        # Kill W once a few chunks have arrived.
        seen = self.wait(
            lambda: (self.Z.cluster_status()["bytes_in"] - base
                     >= 8 * (1 << 20)) or not job.is_alive(),
            "Z to receive the first chunks of %s" % name, timeout=20,
            interval=0.02)
        got_before_kill = self.Z.cluster_status()["bytes_in"] - base
        running_at_kill = job.is_alive()
        self.W.kill()
        self.assertTrue(running_at_kill and seen, self.msg(
            "the transfer was over before W could be killed (%d bytes in)"
            % got_before_kill))
        self.assertLess(got_before_kill, size * 0.9, self.msg(
            "W killed only after %d of %d bytes had arrived: too late to "
            "test anything" % (got_before_kill, size)))
        killed = time.monotonic()
        job.join(110)
        ended = time.monotonic() - killed
        self.assertFalse(job.is_alive(), self.msg(
            "Z's download still running 110 s after W was killed"))
        self.assertIsNone(job.error, self.msg(
            "Z fetching %s while holder W was killed (after %d bytes had "
            "come in): %s" % (name, got_before_kill, job.error)))
        status, _, got, n = job.result
        self.assertEqual((status, got, n), (200, sha, size), self.msg(
            "Z fetching %s while holder W was killed (after %d bytes had "
            "come in): the response ended %.1f s after the kill (%.1f s "
            "after it began) with %d of %d bytes%s\nZ's cluster status: %s"
            % (name, got_before_kill, ended, job.took, n, size,
               " (cut short)" if n < size else "",
               cu.dump(self.Z.cluster_status()))))
        z_w = self.Z.member(self.W.id)
        self.assertGreater(z_w["bytes_in"], 0, self.msg(
            "W was killed before it sent Z anything: %s" % cu.dump(z_w)))


class FullStore(Case):
    """A fetcher whose map fills up in the middle of a fetch from a peer
    (chunks go straight into the store): the client still gets every byte,
    the wheel is not kept, and the chunks that did fit are gone again."""

    MiB = 1 << 20

    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "XV")
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        cls.X = cu.ClusterNode(keys["X"], trusted=trusted, label="X")
        cls.addClassCleanup(cls.X.cleanup)
        small = {"cache": {"map_size": 8 * cls.MiB, "max_size": 8 * cls.MiB}}
        cls.V = cu.ClusterNode(keys["V"], trusted=trusted, label="V",
                               seeds=[cls.X.cluster_addr], config=small)
        cls.addClassCleanup(cls.V.cleanup)
        cls.nodes = [cls.X, cls.V]
        w = cu.Waiter(cls.nodes)
        for x in cls.nodes:
            w(lambda x=x: x.cluster_status().get("alive") == 1,
              "%s to see the other alive" % x.label, timeout=15)

    def test_map_full_mid_fetch(self):
        # Under cache.max_size, so V tries; over its map in LMDB's pages.
        big = make_wheel(self.wheels, "cl-fullmap", "1.0",
                         size=8 * self.MiB - 8000)
        small = make_wheel(self.wheels, "cl-fits", "1.0", size=300 * 1000)
        got = {}
        for path in (big, small):
            name = os.path.basename(path)
            sha = self.X.put_ok(path)
            self.wait(lambda: self.X.id in self.V.held().get(
                name, {}).get("holders", []),
                "V to list X as the holder of %s" % name, timeout=5)
            status, _, digest, n = self.V.download(cu.file_path(sha, name))
            self.assertEqual((status, digest, n),
                             (200, sha, os.path.getsize(path)),
                             self.msg("V fetching %s from X" % name))
            got[name] = sha
        self.assertIn("going on in a spool file", self.V.log_text(),
                      self.msg("V's map never filled up mid-fetch"))
        self.wait(lambda: self.V.status()["cache"]["not_kept_no_room"] >= 1,
                  "V to count the wheel it had no room for")
        bigname, smallname = (os.path.basename(p) for p in (big, small))
        self.wait(lambda: self.V.held().get(smallname, {}).get("local"),
                  "V to store the small wheel: the big one's chunks left")
        self.assertFalse(self.V.held().get(bigname, {}).get("local"),
                         self.msg("V says it stores a wheel over its map"))
        # Served from the peer again, whole, and nothing left to sweep.
        status, _, digest, _ = self.V.download(
            cu.file_path(got[bigname], bigname))
        self.assertEqual((status, digest), (200, got[bigname]))
        self.assertEqual(self.V.status()["cache"]["arriving_bytes"], 0,
                         self.msg("V counts chunks that are gone"))
        self.V.stop()
        before = len(self.V.log_text())
        self.V.start()
        self.assertNotIn("orphan chunks", self.V.log_text()[before:],
                         self.msg("chunks of the unkept wheel were left"))

    def test_no_room_in_cache(self):
        # A wheel held first, then one that would take the wheels and the
        # chunks in flight past cache.max_size: the collector's room check
        # says no before any chunk goes into the map, and the fetch writes
        # its spool instead; the client gets every byte all the same.
        first = make_wheel(self.wheels, "cl-room-first", "1.0",
                           size=200 * 1000)
        big = make_wheel(self.wheels, "cl-noroom", "1.0",
                         size=8 * self.MiB - 50 * 1000)
        for path in (first, big):
            name = os.path.basename(path)
            sha = self.X.put_ok(path)
            self.wait(lambda: self.X.id in self.V.held().get(
                name, {}).get("holders", []),
                "V to list X as the holder of %s" % name, timeout=5)
            before = len(self.V.log_text())
            status, _, digest, n = self.V.download(cu.file_path(sha, name))
            self.assertEqual((status, digest, n),
                             (200, sha, os.path.getsize(path)),
                             self.msg("V fetching %s from X" % name))
            if path == first:
                self.wait(lambda: self.V.held().get(name, {}).get("local"),
                          "V to store %s" % name)
        self.assertIn("no room in the cache", self.V.log_text()[before:],
                      self.msg("V put chunks of a wheel over its cap into "
                               "the map"))
        self.assertEqual(self.V.status()["cache"]["arriving_bytes"], 0,
                         self.msg("V counts chunks in flight after the fetch"))


class DroppedWhileRead(Case):
    """A client reading a wheel as it arrives from a peer (its chunks in
    the store, not a spool) while it is stored and then pruned: the reader
    keeps a read view, so it still gets every byte."""

    MiB = 1 << 20

    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "XV")
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        cls.X = cu.ClusterNode(keys["X"], trusted=trusted, label="X")
        cls.addClassCleanup(cls.X.cleanup)
        cls.V = cu.ClusterNode(keys["V"], trusted=trusted, label="V",
                               seeds=[cls.X.cluster_addr])
        cls.addClassCleanup(cls.V.cleanup)
        cls.nodes = [cls.X, cls.V]
        w = cu.Waiter(cls.nodes)
        for x in cls.nodes:
            w(lambda x=x: x.cluster_status().get("alive") == 1,
              "%s to see the other alive" % x.label, timeout=15)

    def test_pruned_while_read(self):
        path = make_wheel(self.wheels, "cl-dropread", "1.0",
                          size=48 * self.MiB)
        name, size = os.path.basename(path), os.path.getsize(path)
        sha = self.X.put_ok(path)
        self.wait(lambda: self.X.id in self.V.held().get(
            name, {}).get("holders", []),
            "V to list X as the holder of %s" % name, timeout=5)
        u = urllib.parse.urlsplit(self.V.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.addCleanup(conn.close)
        conn.request("GET", cu.file_path(sha, name))
        r = conn.getresponse()
        self.assertEqual(r.status, 200, self.msg("V's answer"))
        digest = hashlib.sha256()
        first = r.read(self.MiB)
        digest.update(first)
        self.wait(lambda: self.V.held().get(name, {}).get("local"),
                  "V to store %s" % name, timeout=60)
        self.assertNotIn("going on in a spool file", self.V.log_text(),
                         self.msg("the fetch left the store"))
        res = h.run([h.BIN, "prune", "--node", self.V.url, "--project",
                     "cl-dropread"])
        self.assertIn("pruned 1 wheels", res.stdout, self.msg(res.stderr))
        self.wait(lambda: not self.V.held().get(name, {}).get("local"),
                  "V to drop %s" % name)
        n = len(first)
        while True:
            block = r.read(256 << 10)
            if not block:
                break
            digest.update(block)
            n += len(block)
        self.assertEqual((n, digest.hexdigest()), (size, sha),
                         self.msg("the reader of the pruned wheel"))
        self.assertIn("while a client still reads it", self.V.log_text(),
                      self.msg("the reader did not read a download"))
        self.assertEqual(self.V.status()["cache"]["arriving_bytes"], 0,
                         self.msg("V counts chunks in flight"))


# --- 6 ------------------------------------------------------------------------


class WireMessages(Case):
    """Hand-made frames on N's cluster socket."""

    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "NPU")
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   [keys["N"], keys["P"]])
        cls.N = cu.ClusterNode(keys["N"], trusted=trusted, label="N")
        cls.addClassCleanup(cls.N.cleanup)
        cls.nodes = [cls.N]
        cls.P, cls.U = keys["P"], keys["U"]

    def peer(self, key=None):
        p = cu.WirePeer(self.N.id, self.N.cluster_addr, (key or self.P).seed)
        self.addCleanup(p.close)
        return p

    def rejected(self):
        return self.N.cluster_status()["rejected_messages"]

    def assert_answers(self, peer, after):
        ack = peer.ping(timeout=3)
        self.assertIsNotNone(ack, self.msg(
            "N sent no ACK to a trusted PING after %s" % after))
        self.assertTrue(self.N.running(), self.msg("N died after " + after))

    def assert_rejected(self, frames, what):
        peer = self.peer()
        self.assert_answers(peer, "nothing (connecting)")
        before = self.rejected()
        peer.send(*frames)
        self.wait(lambda: self.rejected() > before,
                  "cluster.rejected_messages to grow past %d after %s"
                  % (before, what), timeout=3)
        self.assert_answers(peer, what)
        m = self.N.metrics()
        self.assertGreaterEqual(
            m.get('wheelmesh_cluster_rejected_total{what="message"}', 0),
            before + 1, self.msg("/metrics does not count " + what))

    def test_ping_is_answered(self):
        peer = self.peer()
        ack = peer.ping(timeout=5)
        self.assertIsNotNone(ack, self.msg("no ACK to a trusted PING"))
        before = self.rejected()
        for _ in range(3):
            self.assertIsNotNone(peer.ping(timeout=3), self.msg("no ACK"))
        self.assertEqual(self.rejected(), before, self.msg(
            "valid PINGs counted as rejected"))

    def test_bad_magic(self):
        self.assert_rejected([b"X" + cu.ping_frame(7)[1:]], "a bad magic")

    def test_bad_version(self):
        f = bytearray(cu.ping_frame(7))
        f[1] = 1
        self.assert_rejected([bytes(f)], "version 1")

    def test_truncated(self):
        self.assert_rejected([cu.ping_frame(7)[:6]], "a truncated PING")

    def test_empty_frame(self):
        self.assert_rejected([b""], "an empty frame")

    def test_unknown_type(self):
        f = bytearray(cu.ping_frame(7))
        f[2] = 99
        self.assert_rejected([bytes(f)], "message type 99")

    def test_count_beyond_frame(self):
        self.assert_rejected([cu.ping_frame(7, nupdates=5)],
                             "a PING claiming 5 updates with none there")
        self.assert_rejected([cu.ping_frame(7, nupdates=255)],
                             "a PING claiming 255 updates")

    def test_trailing_bytes(self):
        self.assert_rejected([cu.ping_frame(7, extra=b"\0" * 3)],
                             "a PING with trailing bytes")

    def test_extra_frames(self):
        self.assert_rejected([cu.ping_frame(7), b"bulk", b"more"],
                             "a PING with three frames")

    def test_large_header_under_the_socket_cap(self):
        # These pass ZMQ_MAXMSGSIZE (4 MiB) but no header is that big: the
        # node reads them, rejects and counts them, and answers the peer.
        frame = cu.ping_frame(7, extra=os.urandom(3 << 19))
        self.assert_rejected([frame], "a 1.5 MiB header frame")
        frame = cu.ping_frame(8, extra=os.urandom(SOCKET_CAP - (64 << 10)))
        self.assert_rejected([frame], "a header frame just under 4 MiB")

    def monitor(self, peer):
        """A ZeroMQ monitor of PEER's socket: its disconnections and
        completed handshakes."""
        import zmq
        mon = peer.sock.get_monitor_socket(zmq.EVENT_DISCONNECTED
                                           | zmq.EVENT_HANDSHAKE_SUCCEEDED)

        def stop():
            peer.sock.disable_monitor()
            mon.close(0)
        self.addCleanup(stop)  # before peer.close, which ends the context
        return mon

    @staticmethod
    def wait_event(mon, event, timeout):
        """Reads MON's events until EVENT comes or TIMEOUT seconds pass;
        returns the names of the events read."""
        import zmq
        from zmq.utils.monitor import recv_monitor_message
        names = {zmq.EVENT_DISCONNECTED: "disconnected",
                 zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake"}
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not mon.poll(int((deadline - time.monotonic()) * 1000) + 1):
                break
            ev = recv_monitor_message(mon)["event"]
            seen.append(names.get(ev, str(ev)))
            if ev == event:
                break
        return seen

    def test_oversized_frame_drops_the_connection(self):
        """A frame over ZMQ_MAXMSGSIZE is dropped by ZeroMQ with its
        connection before the node reads it (README: Trust): the peer sees
        its connection closed, nothing answers or counts the frame, N
        lives, and the same peer, reconnected by ZeroMQ, is answered."""
        import zmq
        peer = self.peer()
        mon = self.monitor(peer)
        self.assert_answers(peer, "nothing (connecting)")
        self.wait_event(mon, zmq.EVENT_HANDSHAKE_SUCCEEDED, 1.0)
        before = self.rejected()
        self.assertTrue(peer.send(cu.ping_frame(
            7, extra=os.urandom(SOCKET_CAP + (64 << 10)))),
            "the frame over 4 MiB could not even be queued")
        seen = self.wait_event(mon, zmq.EVENT_DISCONNECTED, h.limit(5))
        self.assertIn("disconnected", seen, self.msg(
            "N kept the connection that sent a frame over 4 MiB "
            "(ZMQ_MAXMSGSIZE); events: %r" % seen))
        self.assertTrue(self.N.running(), self.msg("N died"))
        # The same socket reconnects by itself and is answered, as is a
        # new connection with the same key ...
        self.assert_answers(peer, "it sent a frame over 4 MiB (the same "
                            "peer, reconnected)")
        self.assert_answers(self.peer(), "its key sent a frame over 4 MiB "
                            "(a new connection)")
        seen = self.wait_event(mon, zmq.EVENT_HANDSHAKE_SUCCEEDED, 1.0)
        self.assertIn("handshake", seen, self.msg(
            "answered without a new handshake after the drop; events: %r"
            % seen))
        # ... and the frame itself was never answered nor read.
        replies = peer.recv_all(0.5)
        self.assertFalse(any((cu.parse_ack(r[0]) or (None,))[0] == 7
                             for r in replies),
                         "the oversized PING was answered: %r" % replies)
        self.assertEqual(self.rejected(), before, self.msg(
            "N read and rejected a frame over 4 MiB instead of ZeroMQ "
            "dropping it unread: ZMQ_MAXMSGSIZE is not in force"))

    def test_untrusted_key_gets_nothing(self):
        trusted = self.peer()
        self.assert_answers(trusted, "nothing (connecting)")
        before = self.rejected()
        outsider = self.peer(self.U)
        for seq in range(3):
            outsider.send(cu.ping_frame(100 + seq))
        got = outsider.recv_all(3.0)
        self.assertEqual(got, [], self.msg(
            "an untrusted key got answers: %r" % got[:3]))
        self.assertIsNone(outsider.ping(timeout=1.0))
        self.assertTrue(self.N.running(), self.msg("N died"))
        self.assert_answers(trusted, "an untrusted peer tried")
        st = self.N.status()
        ids = [m.get("id") for m in st.get("members", [])]
        self.assertNotIn(self.U.pub, ids, self.msg(
            "the untrusted key became a member: %s" % cu.dump(st)))
        # The ZAP handler refused and counted the key's handshakes.
        self.assertGreater(self.rejected(), before, self.msg(
            "an untrusted key's handshakes were not counted as rejected"))


if __name__ == "__main__":
    unittest.main()
