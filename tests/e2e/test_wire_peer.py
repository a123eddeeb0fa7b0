"""wire.py and the evil peer agree with the real node: the check that makes
a change of the wire format fail loudly here, in one place, before the
tests that misbehave on purpose (test_fetch_failures, test_peer_trust,
test_takeover) start failing for reasons nobody meant.

- every frame of the C fuzz corpus (tests/fuzz/corpus/wire, frames the C
  encoder made) decodes in wire.py and re-encodes to the same bytes;
- a PING made by wire.py gets an ACK from a real node that wire.py decodes,
  carrying the node's id and cluster address;
- an EvilPeer in honest mode joins a node (the node connects back and lists
  it alive at its address), publishes a signed entry the node accepts, and
  serves the wheel through MAP/MAPDATA and FETCH/CHUNK: a client of the node
  gets it byte for byte (upstream's page names the wheel, but upstream has
  no file: the bytes can only come from the peer); an entry with a bad
  signature is refused and counted.
"""

import glob
import os
import unittest

import harness as h
import cluster_util as cu
import evilpeer
import wire
from makewheel import make_wheel
from upstream_index import Nginx, StaticIndex

CORPUS = os.path.join(h.HERE, "..", "fuzz", "corpus", "wire")


def setUpModule():
    h.require_binary()


class Corpus(unittest.TestCase):
    def test_corpus_round_trips(self):
        paths = sorted(glob.glob(os.path.join(CORPUS, "*")))
        self.assertTrue(paths, "no frames in %s" % CORPUS)
        for p in paths:
            frame = h.read_bytes(p)
            with self.subTest(frame=os.path.basename(p)):
                try:
                    m = wire.decode(frame)
                except wire.WireError as e:
                    self.fail("wire.py cannot decode %s (%s): wire.py no "
                              "longer follows common/wire.c" % (p, e))
                self.assertEqual(wire.encode(m), frame,
                                 "%s re-encodes to other bytes" % p)

    def test_refusals_match_the_node(self):
        good = wire.encode(wire.ping(7, 1, [wire.MemberUpdate(
            b"\1" * 32, wire.ALIVE, 3, "tcp://127.0.0.1:1")]))
        cases = {"empty frame": b"", "bad magic": b"X" + good[1:],
                 "bad version": good[:1] + b"\x09" + good[2:],
                 "unknown type": good[:2] + b"\x63" + good[3:],
                 "trailing bytes": good + b"\0",
                 "truncated": good[:9],
                 "count larger than the frame": wire.raw_ping(7, 1, 5)}
        for why, frame in cases.items():
            with self.subTest(why=why):
                with self.assertRaises(wire.WireError) as cm:
                    wire.decode(frame)
                self.assertEqual(str(cm.exception), why)


class AgainstANode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, ["N", "E", "P"])
        cls.P = keys["P"]
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        cls.honest = make_wheel(cls.wheels, "wp-honest", "1.0",
                                size=3 * wire.CHUNK_SIZE + 12345, seed=1)
        # Upstream names the wheel (the name's claim) but has no bytes for
        # it: they can only come from the evil peer.
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        cls.index.add_fake("wp-honest", os.path.basename(cls.honest),
                           h.sha256_file(cls.honest))
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        cls.N = cu.ClusterNode(keys["N"], trusted=trusted, label="N",
                               upstream=cls.nginx.url)
        cls.addClassCleanup(cls.N.cleanup)
        cls.E = evilpeer.EvilPeer(keys["E"], label="E")
        cls.addClassCleanup(cls.E.stop)

    def msg(self, extra=""):
        return "%s\nundecodable frames at the peer: %r\n%s" % (
            extra, self.E.errors[:3], self.N.tail())

    def test_1_ping_gets_an_ack_that_decodes(self):
        peer = cu.WirePeer(self.N.id, self.N.cluster_addr, self.P.seed)
        self.addCleanup(peer.close)
        self.assertTrue(peer.send(wire.encode(wire.ping(41, 1))))
        acks = []
        for frames in peer.recv_all(3.0):
            m, _ = wire.decode_frames(frames)
            if m.type == wire.ACK:
                acks.append(m)
        self.assertTrue(acks, self.msg("no ACK that wire.py decodes"))
        ack = acks[0]
        self.assertEqual(ack.seq, 41, self.msg(repr(ack)))
        self.assertTrue(ack.updates, self.msg("the ACK carries no update "
                                              "about the node itself"))
        me = ack.updates[0]
        self.assertEqual((me.id.hex(), me.state, me.addr),
                         (self.N.id, wire.ALIVE, self.N.cluster_addr),
                         self.msg(repr(ack)))

    def test_2_evil_peer_joins_publishes_and_serves(self):
        view = self.E.join(self.N)
        self.assertEqual(view["address"], self.E.addr)
        data = h.read_bytes(self.honest)
        name, sha = os.path.basename(self.honest), h.sha256_bytes(data)
        self.E.behave(sha, evilpeer.Serve(data))
        e = self.E.entry(name, sha, len(data), wire.chunks_root(data))
        held = self.E.publish_until_listed([e], self.N, name)
        self.assertEqual((held["sha256"], held["size"]), (sha, len(data)),
                         self.msg(cu.dump(held)))
        status, _, got, n = self.N.download(cu.file_path(sha, name))
        self.assertEqual((status, got, n), (200, sha, len(data)), self.msg(
            "GET %s on N, held only by the evil peer serving it honestly"
            % name))
        self.assertGreaterEqual(self.E.maps[sha], 1, self.msg("no MAP"))
        self.assertGreaterEqual(self.E.fetches[sha], 4, self.msg("FETCHes"))
        self.assertEqual(self.E.errors, [], self.msg())
        self.assertEqual(self.N.held()[name].get("source"), "peer")
        self.assertEqual(self.nginx.requests("/packages/"), 0, self.msg(
            "N went upstream for a wheel the evil peer served"))

    def test_3_bad_signature_is_refused(self):
        self.E.join(self.N)
        before = self.N.cluster_status()["rejected_entries"]
        e = self.E.entry("wp_forged-1.0-py3-none-any.whl", "ab" * 32, 10,
                         b"\0" * 32)
        e.sig = bytes(64)
        self.E.publish([e], self.N)
        cu.Waiter([self.N])(
            lambda: self.N.cluster_status()["rejected_entries"] > before,
            "N to count the forged entry as rejected", timeout=5)
        self.assertNotIn("wp_forged-1.0-py3-none-any.whl", self.N.held())


if __name__ == "__main__":
    unittest.main()
