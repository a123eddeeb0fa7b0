"""Uploads that never starve the agent: cluster.max_upload_rate.

A holds two wheels and may send its peers 8 MiB/s; B holds one of them
too, without a cap; C fetches both. What C gets is checked byte for byte;
what A sent is read from its /metrics (wheelmesh_upload_bytes_total) and
held against its cap over the time C's fetch took. No upstream: the bytes
can only come from A and B.
"""

import os
import time
import unittest

import cluster_util as cu
import harness as h
from makewheel import make_wheel

MiB = 1 << 20
CAP = 8 * MiB


def setUpModule():
    h.require_binary()


class UploadCap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "ABC")
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        ports = {n: h.free_port() for n in "ABC"}
        seeds = {"A": [], "B": ["A"], "C": ["A"]}
        cls.nodes = {}
        for n in "ABC":
            cfg = {"cluster": {"max_upload_rate": CAP}} if n == "A" else {}
            node = cu.ClusterNode(
                keys[n], trusted=trusted, config=cfg,
                seeds=[cu.addr(ports[s]) for s in seeds[n]],
                cluster_port=ports[n], label=n)
            cls.addClassCleanup(node.cleanup)
            cls.nodes[n] = node
        cls.A, cls.B, cls.C = (cls.nodes[n] for n in "ABC")
        cu.wait_all_alive(cls.nodes.values())

    def uploaded(self, node):
        return node.metrics()["wheelmesh_upload_bytes_total"]

    def put_and_wait(self, wheel, holders):
        for n in holders:
            self.assertEqual(n.put(wheel)[0], 201)
        name = os.path.basename(wheel)
        cu.Waiter(self.nodes.values())(
            lambda: len(self.C.held().get(name, {}).get("holders", [])) ==
            len(holders), "C to see the holders of " + name, timeout=10)
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

if __name__ == "__main__":
    unittest.main()
