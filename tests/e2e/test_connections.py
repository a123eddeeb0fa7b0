"""Connections between members are opened by the first message to a member
and closed after a while without traffic (a minute; here 700 ms through
the test hook WHEELMESH_TEST_IDLE_MS, so that they close between two
contacts, yet stay open longer than a probe waits for its answer: 500
ms). A fleet started at once then does not shake hands N * N times at
the same moment (tests/bench/bench_fleet.py measures that). What a user
relies on is that closing them costs nothing: members stay alive, nobody
is suspected, and a wheel still travels from peer to peer.

Three real nodes on loopback: A, B seeded with A, C seeded with B.
"""

import os
import time
import unittest

import harness as h
import cluster_util as cu
from makewheel import make_wheel

IDLE_MS = 700


def setUpModule():
    h.require_binary()


class IdleConnections(unittest.TestCase):
    nodes = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "ABC")
        env = {"WHEELMESH_TEST_IDLE_MS": str(IDLE_MS)}
        nodes = cu.start_chain(cls, cls.tmp, keys,
                               {"A": [], "B": ["A"], "C": ["B"]},
                               env={n: env for n in "ABC"})
        cls.A, cls.B, cls.C = (nodes[n] for n in "ABC")
        cls.nodes = [cls.A, cls.B, cls.C]
        cu.wait_all_alive(cls.nodes, timeout=h.limit(15))

    def msg(self, extra=""):
        return "%s\n%s" % (extra, cu.tails(self.nodes))

    def opened(self, node):
        return node.metrics()["wheelmesh_cluster_connections_opened_total"]

    def test_closed_when_idle_and_opened_again_costing_nothing(self):
        before = {x.label: self.opened(x) for x in self.nodes}
        time.sleep(8)
        for x in self.nodes:
            # Probes and digests reach each of the two others about once a
            # second, often less: after 8 s with 700 ms of idle allowed,
            # their connections have been closed and opened again.
            reopened = self.opened(x) - before[x.label]
            self.assertGreaterEqual(reopened, 3, self.msg(
                "%s opened %d connections in 8 s" % (x.label, reopened)))
            metrics = x.metrics()
            # Its probes were answered (and timed) over those connections.
            self.assertGreaterEqual(
                metrics['wheelmesh_probe_rtt_seconds_bucket{le="+Inf"}'], 4,
                self.msg("%s's probes answered" % x.label))
            connections = metrics["wheelmesh_cluster_connections"]
            self.assertLessEqual(connections, 2, self.msg(
                "%s has %d connections to 2 members" % (x.label,
                                                        connections)))
            for y in self.nodes:
                if y is not x:
                    self.assertEqual(x.member_state(y.id), "alive",
                                     self.msg("%s sees %s" % (x.label,
                                                              y.label)))
            text = x.log_text()
            self.assertNotIn("is suspect", text, self.msg(x.label))
            self.assertNotIn("is dead", text, self.msg(x.label))

        # A wheel put on A travels to C, which holds no connection to A at
        # first and has to open one.
        wheel = make_wheel(self.tmp, "idleconn", "1.0",
                           size=3 << 20, seed=7)
        self.A.put_ok(wheel)
        sha = h.sha256_file(wheel)
        name = os.path.basename(wheel)
        cu.Waiter(self.nodes)(lambda: name in self.C.link_names(),
                              "C to list %s" % name, timeout=h.limit(10))
        status, _, got, n = self.C.download(cu.file_path(sha, name))
        self.assertEqual((status, got), (200, sha), self.msg(
            "GET %s on C: %d, %d bytes" % (name, status, n)))
        self.assertGreater(self.C.member(self.A.id)["bytes_in"], 3 << 20,
                           self.msg("C's bytes from A"))


if __name__ == "__main__":
    unittest.main()
