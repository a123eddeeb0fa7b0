"""wire.py and the evil peer agree with the real node: the check that makes
a change of the wire format fail loudly here, in one place, before the
tests that misbehave on purpose (test_fetch_failures, test_peer_trust,
test_takeover) start failing for reasons nobody meant.

- every frame of the C fuzz corpus (tests/fuzz/corpus/wire, frames the C
  encoder made and signed with real keys) decodes in wire.py, re-encodes to
  the same bytes, and every signature in it verifies over the bytes wire.py
  says are signed;
- malformed frames are refused with wm_msg_decode's reasons, and encode()
  refuses to make them;
- a PING made by wire.py gets an ACK from a real node that wire.py decodes,
  carrying the node's id, its cluster address and its own signature over
  that statement;
- an EvilPeer in honest mode joins a node (the node checks its signed
  statement, connects back and lists it alive at its address), publishes a
  signed entry with its own claim (its key is a publisher: the node's
  publishers are its trusted keys) that the node accepts, and serves the
  wheel through MAP/MAPDATA and FETCH/CHUNK: a client of the node gets it
  byte for byte (upstream's page names the wheel too, but upstream has no
  file: the bytes can only come from the peer);
- an entry with a bad signature, or with a claim whose signature is bad, is
  refused and counted; an ALIVE statement about the peer signed by another
  member is refused and counted, and moves nothing; a SUSPECT report at
  the peer's incarnation is taken, and the peer refutes it by signing the
  next one;
- holdings name nothing: an entry without a claim, or with a claim by a key
  that is not a publisher, is taken (the peer's count of wheels grows) but
  the wheel is not listed;
- a wheel held only by the peer leaves the node's pages when the peer signs
  an address that libzmq refuses: the node cannot reach it any more.
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


def _signer(key):
    """SIGN for wire.py (bytes -> Ed25519 signature) with KEY's seed."""
    import nacl.signing
    sk = nacl.signing.SigningKey(key.seed)
    return lambda data: sk.sign(data).signature


class Corpus(unittest.TestCase):
    def frames(self):
        paths = sorted(glob.glob(os.path.join(CORPUS, "*")))
        self.assertTrue(paths, "no frames in %s" % CORPUS)
        return [(p, h.read_bytes(p)) for p in paths]

    def test_corpus_round_trips(self):
        for p, frame in self.frames():
            with self.subTest(frame=os.path.basename(p)):
                try:
                    m = wire.decode(frame)
                except wire.WireError as e:
                    self.fail("wire.py cannot decode %s (%s): wire.py no "
                              "longer follows common/wire.c" % (p, e))
                self.assertEqual(wire.encode(m), frame,
                                 "%s re-encodes to other bytes" % p)

    def test_corpus_signatures_verify(self):
        """The corpus frames are signed with real keys: every signature in
        them must verify over what wire.py says is signed (domain strings,
        field order), or the nodes would refuse what the tests sign."""
        seen = set()
        for p, frame in self.frames():
            m = wire.decode(frame)
            for u in m.updates:
                if u.state == wire.ALIVE:
                    seen.add("alive")
                    self.assertTrue(wire.alive_valid(u), "%s: %r: the "
                                    "signature does not cover "
                                    "wire.alive_signed_bytes" % (p, u))
            for e in m.entries:
                seen.add("entry")
                self.assertTrue(wire.entry_valid(e), "%s: %r: the signature "
                                "does not cover wire.entry_signed_bytes"
                                % (p, e))
                if e.claim is not None:
                    seen.add("claim")
                    self.assertTrue(wire.claim_valid(e), "%s: %r: the claim "
                                    "signature does not cover "
                                    "wire.claim_signed_bytes" % (p, e))
        self.assertEqual(seen, {"alive", "entry", "claim"},
                         "the corpus lacks some signed statement")

    def test_refusals_match_the_node(self):
        good = wire.encode(wire.ping(7, [wire.MemberUpdate(
            b"\1" * 32, wire.ALIVE, 3, "tcp://127.0.0.1:1", "n1",
            b"\2" * 64)]))
        inc_at = 3 + 4 + 1 + 32 + 1  # head, seq, count, id, state
        wrap = (1 << 62).to_bytes(8, "little")
        suspect = wire.encode(wire.ping(7, [wire.MemberUpdate(
            b"\1" * 32, wire.SUSPECT, 3)]))
        sha, root = b"\5" * 32, b"\6" * 32
        claim = wire.Claim(b"\4" * 32, "x-1.0-py3-none-any.whl", ">=3.8",
                           b"\7" * 64)
        ent = wire.encode(wire.entries([wire.Entry(
            b"\3" * 32, 5, 1, wire.OP_ADD, sha, 10, root, claim,
            b"\x08" * 64)]))
        gen_at, seq_at, op_at = 4 + 32, 4 + 32 + 8, 4 + 32 + 16
        flag_at = op_at + 1 + 32 + 8 + 32
        dig = wire.encode(wire.digest(wire.DIGEST_FULL, b"\0" * 32,
                                      [wire.DigestItem(b"\3" * 32, 1, 1)]))
        dig_gen_at = 3 + 1 + 32 + 2 + 32  # head, flags, hash, count, origin

        def patched(frame, at, new):
            f = bytearray(frame)
            f[at:at + len(new)] = new
            return bytes(f)

        cases = {
            "empty frame": [b""], "bad magic": [b"X" + good[1:]],
            "bad version": [good[:1] + b"\x01" + good[2:]],
            "unknown type": [good[:2] + b"\x63" + good[3:]],
            "trailing bytes": [good + b"\0", ent + b"\0"],
            "truncated": [good[:60], good[:-1], ent[:-1], b"W\x02"],
            "count larger than the frame": [wire.raw_ping(7, 5),
                                            patched(ent, 3, b"\2")],
            "too many updates": [wire.raw_ping(7, 17)],
            "bad member state": [patched(good, inc_at - 1, b"\3")],
            "incarnation out of range": [patched(good, inc_at, wrap),
                                         patched(suspect, inc_at, wrap)],
            "bad address": [good.replace(b"tcp://", b"udp://"),
                            patched(good, inc_at + 8, b"\xc8")],
            "bad node name": [good.replace(b"\x02n1", b"\x02n\x01"),
                              good.replace(b"\x02n1", b"\x41n1")],
            "no entries": [b"W\x02\x05\x00"],
            "bad seq": [patched(ent, seq_at, bytes(8)),
                        patched(ent, seq_at, wrap)],
            "bad generation": [patched(ent, gen_at, wrap)],
            "bad op": [patched(ent, op_at, b"\3")],
            "bad claim flag": [patched(ent, op_at, bytes([wire.OP_REMOVE])),
                               patched(ent, flag_at, b"\2")],
            "bad filename": [ent.replace(b"x-1.0-", b"x/1.0-")],
            "bad requires-python": [ent.replace(b">=3.8", b">=3\x008")],
            "digest counter out of range": [
                patched(dig, dig_gen_at, wrap),
                patched(dig, dig_gen_at + 8, wrap)],
            "bad status": [wire.encode(wire.chunk(sha, 0, wire.BUSY))[:-1]
                           + b"\4",
                           wire.encode(wire.mapdata(sha, wire.BUSY))[:-1]
                           + b"\4"],
        }
        for why, frames in cases.items():
            for i, frame in enumerate(frames):
                with self.subTest(why=why, case=i):
                    with self.assertRaises(wire.WireError) as cm:
                        wire.decode(frame)
                    self.assertEqual(str(cm.exception), why)
        for frame in (good, suspect, ent, dig):
            wire.decode(frame)  # the unpatched frames are fine

    def test_encode_refuses_what_decode_refuses(self):
        sha = b"\5" * 32
        bad = {
            "wrapped incarnation": wire.ping(1, [wire.MemberUpdate(
                b"\1" * 32, wire.SUSPECT, 1 << 62)]),
            "address without tcp://": wire.ack(1, [wire.MemberUpdate(
                b"\1" * 32, wire.ALIVE, 1, "udp://x")]),
            "node name of 65 bytes": wire.ack(1, [wire.MemberUpdate(
                b"\1" * 32, wire.ALIVE, 1, "tcp://x", "n" * 65)]),
            "claim on a remove": wire.entries([wire.Entry(
                b"\3" * 32, 1, 1, wire.OP_REMOVE, sha, claim=wire.Claim(
                    b"\4" * 32, "x-1.0-py3-none-any.whl"))]),
            "seq 0": wire.entries([wire.Entry(b"\3" * 32, 1, 0)]),
            "status 4": wire.chunk(sha, 0, 4),
        }
        for what, m in bad.items():
            with self.subTest(what=what):
                with self.assertRaises(wire.WireError):
                    wire.encode(m)


class AgainstANode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Q is no member and no publisher: only its claims are used.
        cls.tmp, keys = cu.make_keys(cls, ["N", "E", "P", "Q"])
        cls.P, cls.Q = keys["P"], keys["Q"]
        cls.wheels = os.path.join(cls.tmp, "wheels")
        os.makedirs(cls.wheels)
        cls.honest = make_wheel(cls.wheels, "wp-honest", "1.0",
                                size=3 * wire.CHUNK_SIZE + 12345, seed=1)
        # Upstream names the wheel but has no bytes for it: they can only
        # come from the evil peer.
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        cls.index.add_fake("wp-honest", os.path.basename(cls.honest),
                           h.sha256_file(cls.honest))
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)
        # The trusted keys are also the publishers (ClusterNode's default).
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   [keys[k] for k in "NEP"])
        cls.N = cu.ClusterNode(keys["N"], trusted=trusted, label="N",
                               upstream=cls.nginx.url)
        cls.addClassCleanup(cls.N.cleanup)
        cls.E = evilpeer.EvilPeer(keys["E"], label="E")
        cls.addClassCleanup(cls.E.stop)

    def msg(self, extra=""):
        return "%s\nundecodable frames at the peer: %r\n%s" % (
            extra, self.E.errors[:3], self.N.tail())

    def wheels_of_e(self):
        return (self.N.member(self.E.hex) or {}).get("wheels", 0)

    def test_1_ping_gets_an_ack_that_decodes(self):
        peer = cu.WirePeer(self.N.id, self.N.cluster_addr, self.P.seed)
        self.addCleanup(peer.close)
        self.assertTrue(peer.send(wire.encode(wire.ping(41))))
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
        self.assertTrue(wire.alive_valid(me), self.msg(
            "the node's statement about itself does not verify over "
            "wire.alive_signed_bytes: %r" % (me,)))

    def test_2_evil_peer_joins_publishes_and_serves(self):
        view = self.E.join(self.N)
        self.assertEqual((view["address"], view["name"]),
                         (self.E.addr, "evilpeer-E"), self.msg(repr(view)))
        data = h.read_bytes(self.honest)
        name, sha = os.path.basename(self.honest), h.sha256_bytes(data)
        self.E.behave(sha, evilpeer.Serve(data))
        maps, fetches = self.E.maps[sha], self.E.fetches[sha]
        e = self.E.entry(name, sha, len(data), wire.chunks_root(data))
        held = self.E.publish_until_listed([e], self.N, name)
        self.assertEqual((held["sha256"], held["size"]), (sha, len(data)),
                         self.msg(cu.dump(held)))
        status, _, got, n = self.N.download(cu.file_path(sha, name))
        self.assertEqual((status, got, n), (200, sha, len(data)), self.msg(
            "GET %s on N, held only by the evil peer serving it honestly"
            % name))
        self.assertGreaterEqual(self.E.maps[sha] - maps, 1,
                                self.msg("no MAP"))
        self.assertGreaterEqual(self.E.fetches[sha] - fetches, 4,
                                self.msg("FETCHes"))
        self.assertEqual(self.E.errors, [], self.msg())
        self.assertEqual(self.N.held()[name].get("source"), "peer")
        self.assertEqual(self.nginx.requests("/packages/"), 0, self.msg(
            "N went upstream for a wheel the evil peer served"))

    def assert_refused(self, e, what):
        before = self.N.cluster_status()["rejected_entries"]
        self.E.publish([e], self.N)
        cu.Waiter([self.N])(
            lambda: self.N.cluster_status()["rejected_entries"] > before,
            "N to count %s as rejected" % what, timeout=5)

    def test_3_bad_signatures_are_refused(self):
        self.E.join(self.N)
        # Not using up sequence numbers: N takes only the next one of E's
        # log, so a refused number would stop E's later entries.
        forged = "wp_forged-1.0-py3-none-any.whl"
        e = self.E.entry(forged, "ab" * 32, 10, b"\0" * 32, consume=False)
        e.sig = bytes(64)
        self.assert_refused(e, "an entry with a bad signature")
        e = self.E.entry(forged, "ab" * 32, 10, b"\0" * 32, consume=False)
        e.claim.sig = bytes(64)
        self.assert_refused(self.E.resign(e), "an entry whose claim has a "
                            "bad signature")
        # The claim's signature binds the size: another size, re-signed by
        # the origin only, is refused.
        e = self.E.entry(forged, "ab" * 32, 10, b"\0" * 32, consume=False)
        e.size = 11
        self.assert_refused(self.E.resign(e), "an entry whose claim was "
                            "signed for another size")
        self.assertNotIn(forged, self.N.held())
        self.assertEqual(self.E.errors, [], self.msg())

    def test_4_forged_alive_statement_is_refused(self):
        self.E.join(self.N)
        peer = cu.WirePeer(self.N.id, self.N.cluster_addr, self.P.seed)
        self.addCleanup(peer.close)
        before = self.N.cluster_status()["rejected_updates"]
        # P (a trusted member) says E is alive elsewhere, signing it with
        # its own key: only E may sign E's statement.
        forged = wire.self_update(self.E.id, self.E.incarnation + 5,
                                  "tcp://127.0.0.1:1", _signer(self.P))
        self.assertTrue(peer.send(wire.encode(wire.ping(77, [forged]))))
        cu.Waiter([self.N])(
            lambda: self.N.cluster_status()["rejected_updates"] > before,
            "N to count the forged ALIVE statement about E as rejected",
            timeout=5)
        view = self.N.member(self.E.hex)
        self.assertEqual((view["state"], view["address"]),
                         ("alive", self.E.addr), self.msg(repr(view)))
        # A report (anyone's) at E's incarnation counts; E refutes it by
        # signing the next incarnation, which N takes.
        inc = view["incarnation"]
        self.assertTrue(peer.send(wire.encode(wire.ping(79, [
            wire.MemberUpdate(self.E.id, wire.SUSPECT, inc)]))))
        view = cu.Waiter([self.N])(
            lambda: (lambda v: v if v["incarnation"] > inc
                     and v["state"] == "alive" else None)(
                         self.N.member(self.E.hex)),
            "E to refute the SUSPECT report at incarnation %d" % inc,
            timeout=10)
        self.assertEqual((view["address"], self.E.incarnation),
                         (self.E.addr, inc + 1), self.msg(repr(view)))
        # Q's own statement is valid, but Q is not trusted: ignored.
        q = wire.self_update(bytes.fromhex(self.Q.pub), 1,
                             "tcp://127.0.0.1:2", _signer(self.Q))
        self.assertTrue(peer.send(wire.encode(wire.ping(78, [q]))))
        self.assertIsNotNone(peer.ping(timeout=3), self.msg("no ACK"))
        self.assertIsNone(self.N.member(self.Q.pub), self.msg(
            "an untrusted key became a member"))

    def assert_taken_not_listed(self, e, name, what):
        before = self.wheels_of_e()
        self.E.publish([e], self.N)
        cu.Waiter([self.N])(lambda: self.wheels_of_e() > before,
                            "N to take %s (E's wheels past %d)"
                            % (what, before), timeout=5)
        project = evilpeer.project_of(name)
        self.assertNotIn(name, self.N.held(), self.msg(
            "N lists %s, %s" % (name, what)))
        self.assertNotIn(name, self.N.held(project), self.msg(
            "N lists %s on its project, %s" % (name, what)))

    def test_5_holdings_name_nothing(self):
        self.E.join(self.N)
        name = "wp_unnamed-1.0-py3-none-any.whl"
        e = self.E.entry(name, h.sha256_bytes(b"unnamed"), 7, b"\0" * 32,
                         claim=False)
        self.assert_taken_not_listed(e, name, "a holding without a claim "
                                     "that no upstream page names")
        name = "wp_byq-1.0-py3-none-any.whl"
        e = self.E.entry(name, h.sha256_bytes(b"by q"), 8, b"\0" * 32,
                         publisher=self.Q)
        self.assertTrue(wire.claim_valid(e))
        self.assert_taken_not_listed(e, name, "a holding whose claim is "
                                     "by a key that is not a publisher")
        self.assertEqual(self.E.errors, [], self.msg())

    def test_6_refused_address_leaves_the_pages(self):
        self.E.join(self.N)
        name = "wp_refused-1.0-py3-none-any.whl"
        e = self.E.entry(name, h.sha256_bytes(b"refused"), 8, b"\0" * 32)
        self.E.publish_until_listed([e], self.N, name)
        wait = cu.Waiter([self.N])
        project = evilpeer.project_of(name)
        wait(lambda: name in self.N.simple_names(project),
             "N's /simple/%s/ to list %s, held by E" % (project, name),
             timeout=h.limit(5))
        # E signs an address libzmq refuses (no port): the statement is
        # well-formed, so N takes it, and finds out on its next message to
        # E that it cannot reach E there. (E signs its real address again
        # after the test, so that later tests can join.)
        good = self.E.addr
        self.addCleanup(lambda: (setattr(self.E, "incarnation",
                                         self.E.incarnation + 1),
                                 setattr(self.E, "addr", good)))
        self.E.incarnation += 1
        self.E.addr = "tcp://nohost"
        self.E.join_ping(self.N)
        wait(lambda: (self.N.member(self.E.hex) or {}).get("incarnation")
             == self.E.incarnation,
             "N to take E's statement at incarnation %d"
             % self.E.incarnation, timeout=h.limit(5))
        wait(lambda: "cannot connect to tcp://nohost" in self.N.log_text(),
             "N to find E's new address refused", timeout=h.limit(10))
        # At once, not once N's probes of E fail and E is suspected.
        wait(lambda: name not in self.N.simple_names(project) and
             self.N.member_state(self.E.hex) == "alive",
             "N's /simple/%s/ to drop %s while E is still alive: its only "
             "holder cannot be reached" % (project, name),
             timeout=h.limit(5), interval=0.05)
        self.assertEqual(self.E.errors, [], self.msg())


if __name__ == "__main__":
    unittest.main()
