"""A swarm, not a queue: agents that fetch the same new wheel at once
serve each other the chunks they already have.

S holds the wheels and may send its peers 6 MiB/s (cluster.max_upload_rate,
so S's uplink is the scarce thing, as a real holder's link is); F1..F4
fetch one wheel at the same moment. Each must get the right bytes; S must
send far less than four copies (with a queue it sends four) and the
fetchers must have sent each other the rest. What each sent is read from
its /metrics (wheelmesh_upload_bytes_total). No upstream: the bytes can
only come from S and the swarm.

A member that lies about its chunks (an evil peer, a trusted key, that
answers a fetcher's HAVE with "I have them all") cannot spoil a fetch: its
bad chunks fail the chunk map and it is dropped; one that only ever says
"later" is asked once per chunk and then left alone; one that claims them
all and sends nothing does not hold the fetch until it is dropped.
"""

import os
import threading
import time
import unittest

import cluster_util as cu
import evilpeer
import harness as h
import wire
from makewheel import make_wheel

MiB = 1 << 20
CAP = 6 * MiB
FETCHERS = ["F1", "F2", "F3", "F4"]


def setUpModule():
    h.require_binary()


class Swarm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        names = ["S"] + FETCHERS
        cls.tmp, keys = cu.make_keys(cls, names + ["E"])
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        seed_port = h.free_port()
        cls.nodes = {}
        for n in names:
            # The fetchers give a holder that says "later" (or nothing)
            # 60 s before they drop it, well apart from how long a fetch
            # that does not wait for that takes.
            cfg = ({"cluster": {"max_upload_rate": CAP}} if n == "S"
                   else {"upstream": {"timeout_s": 60}})
            node = cu.ClusterNode(
                keys[n], trusted=trusted, config=cfg, label=n,
                seeds=[] if n == "S" else [cu.addr(seed_port)],
                cluster_port=seed_port if n == "S" else None)
            cls.addClassCleanup(node.cleanup)
            cls.nodes[n] = node
        cls.S = cls.nodes["S"]
        cls.E = evilpeer.EvilPeer(keys["E"], label="E")
        cls.addClassCleanup(cls.E.stop)
        cls.E.join(cls.nodes["F1"])
        cu.wait_all_alive(cls.nodes.values(), timeout=20)

    def uploaded(self, node):
        return node.metrics()["wheelmesh_upload_bytes_total"]

    def put_on_seed(self, stem, size, fetchers):
        wheel = make_wheel(self.tmp, stem, "1.0", size=size)
        self.assertEqual(self.S.put(wheel)[0], 201)
        name = os.path.basename(wheel)
        cu.Waiter(self.nodes.values())(
            lambda: all(name in f.held() for f in fetchers),
            "the fetchers to list " + name, timeout=10)
        return name, h.sha256_file(wheel), os.path.getsize(wheel)

    def check(self, downloads, sha, size):
        for d in downloads:
            self.assertIsNone(d.error, "%s: %s\n%s" % (
                d.node.label, d.error, cu.tails(self.nodes.values())))
            self.assertEqual(d.result[0::2], (200, sha),
                             "%s\n%s" % (d.node.label,
                                         cu.tails(self.nodes.values())))
            self.assertEqual(d.result[3], size)

    def test_fetchers_serve_each_other(self):
        fetchers = [self.nodes[n] for n in FETCHERS]
        name, sha, size = self.put_on_seed("sw-spread", 40 * MiB, fetchers)
        before = {n: self.uploaded(x) for n, x in self.nodes.items()}
        go = threading.Event()
        downloads = [cu.Download(f, sha, name, start_at=go)
                     for f in fetchers]
        for d in downloads:
            d.start()
        go.set()
        for d in downloads:
            d.join(h.limit(120))
        self.check(downloads, sha, size)
        sent = {n: self.uploaded(x) - before[n]
                for n, x in self.nodes.items()}
        report = ", ".join("%s %.1f MiB" % (n, v / MiB)
                           for n, v in sent.items())
        # A queue: S sends all four copies. A swarm: S sends about one
        # (a chunk two fetchers asked for before either heard the other
        # has it goes twice) and the fetchers the other three.
        self.assertLess(sent["S"], 2.5 * size,
                        "S sent most copies itself: " + report)
        swarm = sum(sent[n] for n in FETCHERS)
        self.assertGreaterEqual(swarm + sent["S"], 4 * size, report)
        self.assertGreater(swarm, 1.5 * size,
                           "the fetchers hardly served each other: "
                           + report)

    def fetch_alone(self, stem, behaviour):
        F1 = self.nodes["F1"]
        name, sha, size = self.put_on_seed(stem, 12 * MiB, [F1])
        self.E.claim_chunks(sha)
        self.E.behave(sha, behaviour)
        before = self.E.fetches[sha]
        d = cu.Download(F1, sha, name)
        d.start()
        d.join(h.limit(60))
        self.assertFalse(d.is_alive(), "F1's fetch did not end in time\n"
                         + self.nodes["F1"].tail(80))
        self.check([d], sha, size)
        self.chunks = -(-size // wire.CHUNK_SIZE)
        self.assertEqual(self.E.errors, [])
        asked = [m for m in self.E.haves if m.sha256.hex() == sha]
        self.assertTrue(asked and asked[0].flags & wire.HAVE_ASK,
                        "F1 never told E it fetches the wheel")
        return self.E.fetches[sha] - before

    def test_a_member_that_lies_about_its_chunks_is_dropped(self):
        junk = os.urandom(12 * MiB)
        asked = self.fetch_alone("sw-liar", evilpeer.Serve(junk))
        self.assertGreater(asked, 0, "F1 never asked E for a chunk")
        log = self.nodes["F1"].log_text()
        self.assertIn("sent a bad chunk", log)
        bad = self.nodes["F1"].member(self.E.hex)
        self.assertGreater(bad.get("bad_chunks", 0), 0, bad)

    def test_a_member_that_only_says_later_is_left_alone(self):
        t0 = time.monotonic()
        asked = self.fetch_alone("sw-later", evilpeer.Later())
        # Each chunk is asked of it at most once: a "later" from a partial
        # holder takes that chunk off what it is said to have.
        self.assertLessEqual(asked, self.chunks, self.nodes["F1"].tail(60))
        self.assertLess(time.monotonic() - t0, h.limit(30))

    def test_a_member_that_claims_every_chunk_and_sends_none_does_not_hold_it(
            self):
        # Every chunk claimed, the whole holder's stripes are the swarm's
        # to give; E, silent, is dropped only after the whole later budget
        # (upstream.timeout_s: 60 s here), and a fetch that waited for that
        # failed this test. One that got nothing for a while asks the
        # whole holder for any chunk, first chunk or not (10-30 s here).
        t0 = time.monotonic()
        self.fetch_alone("sw-silent", evilpeer.Silent())
        self.assertLess(time.monotonic() - t0, h.limit(45),
                        self.nodes["F1"].tail(60))


if __name__ == "__main__":
    unittest.main()
