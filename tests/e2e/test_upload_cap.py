"""Uploads that never starve the agent: cluster.max_upload_rate.

A holds the wheels and may send its peers 8 MiB/s; B holds some of them
too, without a cap; C fetches alone, then C, D, E and F fetch one wheel at
once. What they get is checked byte for byte; what A sent is read from its
/metrics (wheelmesh_upload_bytes_total) and held against its cap: over the
time a fetch took, and, with four fetchers, over every stretch of the
fetch (each peer's share may run a chunk into debt; the node's own bucket
holds their sum to the cap). No upstream: the bytes can only come from A
and B.
"""

import os
import threading
import time
import unittest

import cluster_util as cu
import harness as h
import wire
from makewheel import make_wheel

MiB = 1 << 20
CAP = 8 * MiB


def setUpModule():
    h.require_binary()


class UploadCap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # P is trusted but runs no node: a peer speaking the wire by hand.
        cls.tmp, keys = cu.make_keys(cls, "ABCDEFP")
        cls.P = keys.pop("P")
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   list(keys.values()) + [cls.P])
        ports = {n: h.free_port() for n in keys}
        seeds = {n: ["A"] if n != "A" else [] for n in keys}
        cls.nodes = {}
        for n in "ABCDEF":
            cfg = {"cluster": {"max_upload_rate": CAP}} if n == "A" else {}
            node = cu.ClusterNode(
                keys[n], trusted=trusted, config=cfg,
                seeds=[cu.addr(ports[s]) for s in seeds[n]],
                cluster_port=ports[n], label=n)
            cls.addClassCleanup(node.cleanup)
            cls.nodes[n] = node
        cls.A, cls.B, cls.C = (cls.nodes[n] for n in "ABC")
        cls.fetchers = [cls.nodes[n] for n in "CDEF"]
        cu.wait_all_alive(cls.nodes.values(), timeout=h.limit(15))

    def uploaded(self, node):
        return node.metrics()["wheelmesh_upload_bytes_total"]

    def put_and_wait(self, wheel, holders):
        for n in holders:
            self.assertEqual(n.put(wheel)[0], 201)
        name = os.path.basename(wheel)
        cu.Waiter(self.nodes.values())(
            lambda: all(len(f.held().get(name, {}).get("holders", [])) ==
                        len(holders) for f in self.fetchers),
            "the fetchers to see the holders of " + name,
            timeout=h.limit(10))
        return name, h.sha256_file(wheel), os.path.getsize(wheel)

    def fetch_timed(self, name, sha, size):
        before = self.uploaded(self.A)
        t0 = time.monotonic()
        got = self.C.download(cu.file_path(sha, name))
        took = time.monotonic() - t0
        self.assertEqual(got[0::2], (200, sha),
                         cu.tails(self.nodes.values()))
        self.assertEqual(got[3], size)
        return self.uploaded(self.A) - before, took

    def test_a_lone_capped_holder_keeps_to_its_cap(self):
        wheel = make_wheel(self.tmp, "up-lone", "1.0", size=24 * MiB)
        name, sha, size = self.put_and_wait(wheel, [self.A])
        sent, took = self.fetch_timed(name, sha, size)
        self.assertGreaterEqual(sent, size)
        # The bucket starts full (a quarter second) and may owe a chunk.
        allowed = 1.10 * CAP * took + CAP / 4 + MiB
        self.assertLessEqual(sent, allowed, "A sent %d bytes in %.2f s: "
                             "%.1f MiB/s against a cap of %d MiB/s"
                             % (sent, took, sent / took / MiB, CAP // MiB))
        self.assertGreater(self.A.metrics()["wheelmesh_upload_busy_total"],
                           0, "a capped holder asked faster than its cap "
                              "answers busy")

    def test_fetchers_go_to_the_uncapped_holder(self):
        wheel = make_wheel(self.tmp, "up-two", "1.0", size=32 * MiB)
        name, sha, size = self.put_and_wait(wheel, [self.A, self.B])
        before_b = self.uploaded(self.B)
        sent, took = self.fetch_timed(name, sha, size)
        from_b = self.uploaded(self.B) - before_b
        self.assertLessEqual(sent, 1.10 * CAP * took + CAP / 4 + MiB)
        self.assertGreaterEqual(sent + from_b, size)
        self.assertGreater(from_b, 0, "the uncapped holder sent nothing")
        # How much each sent depends on how fast B is (a sanitizer build
        # on a busy machine is slow); that A kept to its cap is the point.

    def test_four_fetchers_at_once_stay_under_the_cap(self):
        wheel = make_wheel(self.tmp, "up-four", "1.0", size=40 * MiB)
        name, sha, size = self.put_and_wait(wheel, [self.A, self.B])
        go = threading.Event()
        fetches = [cu.Download(f, sha, name, start_at=go)
                   for f in self.fetchers]
        for d in fetches:
            d.start()
        samples = []  # (asked at, answered at, A's upload count)

        def sample():
            t0 = time.monotonic()
            n = self.uploaded(self.A)
            samples.append((t0, time.monotonic(), n))
        sample()  # before the first byte, so the first burst is counted
        go.set()
        while any(d.is_alive() for d in fetches):
            sample()
            time.sleep(0.05)
        for d in fetches:
            d.join()
        sample()
        for d in fetches:
            self.assertIsNone(d.error, cu.tails(self.nodes.values()))
            self.assertEqual(d.result[0::2], (200, sha), d.node.label)
            self.assertEqual(d.result[3], size, d.node.label)
        # What A counted between two readings was sent between the first
        # one's question and the second one's answer: at most the node's
        # bucket (a quarter second of the cap, at least a chunk) plus the
        # cap over that time.
        bucket = max(CAP / 4, MiB)
        worst = None
        for i, (asked, _, n0) in enumerate(samples):
            for _, answered, n1 in samples[i + 1:]:
                over = (n1 - n0) - (bucket + CAP * (answered - asked))
                if worst is None or over > worst[0]:
                    worst = (over, n1 - n0, answered - asked)
        self.assertLessEqual(worst[0], 0, "A sent %.1f MiB in %.2f s, over "
                             "its cap of %d MiB/s and bucket of %.1f MiB"
                             % (worst[1] / MiB, worst[2], CAP // MiB,
                                bucket / MiB))
        self.assertGreater(samples[-1][2] - samples[0][2], 0,
                           "A sent nothing: the test proves nothing")

    def test_busy_only_where_bytes_would_go(self):
        wheel = make_wheel(self.tmp, "up-busy", "1.0", size=6 * MiB)
        name, sha, size = self.put_and_wait(wheel, [self.A])
        last = size // wire.CHUNK_SIZE
        peer = cu.WirePeer(self.A.id, self.A.cluster_addr, self.P.seed)
        self.addCleanup(peer.close)
        raw = bytes.fromhex(sha)
        # Back to back: more chunks than the buckets hold, then two
        # answers that carry no bytes: the end marker past the last
        # chunk, and a wheel A does not have.
        asks = [(raw, i) for i in range(last + 1)]
        asks += [(raw, last + 5), (bytes(32), 0)]
        for sha_, i in asks:
            self.assertTrue(peer.send(*wire.frames(wire.fetch(sha_, i))))
        got = {}
        deadline = time.monotonic() + h.limit(10)
        while len(got) < len(asks) and time.monotonic() < deadline:
            for frames in peer.recv_all(0.5):
                m, bulk = wire.decode_frames(frames)
                if m.type == wire.CHUNK:
                    got[(m.sha256, m.idx)] = (m.status, len(bulk))
        self.assertEqual(len(got), len(asks), "answers: %r" % got)
        statuses = [got[(raw, i)][0] for i in range(last + 1)]
        self.assertIn(wire.BUSY, statuses, "the buckets never refused")
        self.assertEqual(got[(raw, last + 5)], (wire.OK, 0),
                         "the end marker carries no bytes: never busy")
        self.assertEqual(got[(bytes(32), 0)][0], wire.MISSING)


if __name__ == "__main__":
    unittest.main()
