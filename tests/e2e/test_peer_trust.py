"""Bytes from a peer are taken only when they are the bytes asked for, and a
peer fetch that fails says so.

A real node Z (upstream: nginx, timeout_s 5) and an evil peer E
(evilpeer.py, a trusted key) that publishes signed index entries and
answers MAP / FETCH its own way:

- the map does not lead to the name: E's entry says "I hold sha256 S" and
  signs a chunk map with chunks that match it, but the map and chunks are
  those of OTHER bytes (a valid wheel with the same filename and size). Z
  must commit nothing under S that does not hash to S, count E as bad, and
  get the wheel from upstream; no client may ever receive the other bytes
  as a complete body;
- a chunk past the size E's own entry states (a full 1 MiB chunk for a
  1 KB wheel): refused, E counted bad, the wheel from upstream;
- a wheel only E holds and E does not serve, which upstream lists but
  cannot serve (404): the client gets 502 or 504 with a one-line reason,
  not a 200 with a Content-Length and a closed connection; pip shows an
  HTTP error, not a broken connection.
"""

import os
import re
import shutil
import unittest

import harness as h
import cluster_util as cu
import evilpeer
import fault_util as fu
import wire
from makewheel import make_wheel
from upstream_index import Nginx, StaticIndex

TIMEOUT_S = 5
BOUND = TIMEOUT_S + h.limit(10)

_VENV = {}


def setUpModule():
    h.require_binary()


class EvilHolder(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, keys = cu.make_keys(cls, "ZE")
        cls.index = StaticIndex(os.path.join(cls.tmp, "upstream"))
        pk = cls.index.packages
        cls.other = os.path.join(cls.tmp, "other")
        os.makedirs(cls.other)
        # The real wheel upstream, and other bytes under the same name.
        cls.real = cls.index.add(make_wheel(pk, "pt-badmap", "1.0",
                                            size=2 * wire.CHUNK_SIZE + 777,
                                            seed=1))
        cls.fake_bytes = h.read_bytes(make_wheel(
            cls.other, "pt-badmap", "1.0", size=2 * wire.CHUNK_SIZE + 777,
            seed=2))
        cls.small = cls.index.add(make_wheel(pk, "pt-oversize", "1.0",
                                             size=1000, seed=3))
        cls.nowhere = make_wheel(cls.other, "pt-nowhere", "1.0", size=5000,
                                 seed=4)
        # Upstream names it (so the name has its claim) but has no file.
        cls.index.add_fake("pt-nowhere", os.path.basename(cls.nowhere),
                           h.sha256_file(cls.nowhere))
        cls.nginx = Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        cls.Z = cu.ClusterNode(keys["Z"], trusted=trusted, label="Z",
                               upstream=cls.nginx.url,
                               config={"upstream": {"timeout_s": TIMEOUT_S}})
        cls.addClassCleanup(cls.Z.cleanup)
        cls.E = evilpeer.EvilPeer(keys["E"], label="E")
        cls.addClassCleanup(cls.E.stop)
        cls.E.join(cls.Z)

    def msg(self, extra=""):
        return ("%s\nevil peer: received %s, fetches %s, maps %s, "
                "undecodable %r\n%s\n%s"
                % (extra, dict(self.E.received), dict(self.E.fetches),
                   dict(self.E.maps), self.E.errors[:3], self.Z.tail(),
                   self.nginx.tail()))

    def badness(self):
        """Z's counters of E's misdeeds: every member field whose name
        starts with 'bad'."""
        m = self.Z.member(self.E.hex) or {}
        return {k: v for k, v in m.items() if k.startswith("bad")}

    def counted_bad(self, before):
        after = self.badness()
        return any(after.get(k, 0) > v for k, v in before.items()) or any(
            k not in before and v > 0 for k, v in after.items())

    def test_map_of_other_bytes_is_not_committed(self):
        e, fake = self.real, self.fake_bytes
        sha, name, size = e["sha256"], e["filename"], os.path.getsize(
            e["path"])
        self.assertEqual(len(fake), size)
        self.assertNotEqual(h.sha256_bytes(fake), sha)
        self.E.behave(sha, evilpeer.Serve(fake))
        entry = self.E.entry(name, sha, size, wire.chunks_root(fake))
        self.E.publish_until_listed([entry], self.Z, name)
        before = self.badness()
        path = cu.file_path(sha, name)
        problems = []
        first = fu.bounded_get(self.Z.host, self.Z.port, path, BOUND + 15)
        if first.status == 200 and first.complete and first.sha256 != sha:
            problems.append(
                "the first GET got E's other bytes (sha256 %s) as a complete "
                "200: %s" % (h.sha256_bytes(fake)[:16], first.describe()))
        elif not (first.ok_with(sha, size) or first.cut
                  or first.status in (502, 504)):
            problems.append("the first GET: %s" % first.describe())
        if self.E.maps[sha] + self.E.fetches[sha] == 0:
            problems.append("Z never asked E: this test tested nothing")
        # Whatever the first client saw, the wheel now comes right.
        second = fu.bounded_get(self.Z.host, self.Z.port, path, BOUND + 15)
        if not second.ok_with(sha, size):
            what = ("E's other bytes" if second.sha256 == h.sha256_bytes(fake)
                    else "not the wheel")
            problems.append("the second GET (%s): %s" % (what,
                                                          second.describe()))
        held = self.Z.held().get(name)
        if held is not None and held.get("sha256") == sha and self.Z.id in \
                held.get("holders", []):
            status, _, got, _ = self.Z.download(path)
            if got != sha:
                problems.append("Z stored %s under sha256 %s, but the bytes "
                                "it serves hash to %s" % (name, sha[:16],
                                                          got[:16]))
        if not self.counted_bad(before):
            problems.append("Z did not count E as bad: E's counters before "
                            "%s, after %s" % (before, self.badness()))
        self.assertEqual(problems, [], self.msg(
            "E holds 'sha256 %s' with a signed map of other bytes:\n  %s"
            % (sha[:16], "\n  ".join(problems))))

    def test_chunk_past_the_stated_size(self):
        e = self.small
        sha, name, size = e["sha256"], e["filename"], os.path.getsize(
            e["path"])
        data = h.read_bytes(e["path"])
        self.E.behave(sha, evilpeer.Endless(map_of=data))
        entry = self.E.entry(name, sha, size, wire.chunks_root(data))
        self.E.publish_until_listed([entry], self.Z, name)
        before = self.badness()
        a = fu.bounded_get(self.Z.host, self.Z.port, cu.file_path(sha, name),
                           BOUND + 15, max_body=size + wire.CHUNK_SIZE)
        problems = []
        if not a.ok_with(sha, size):
            problems.append("GET: %s (want the %d-byte wheel, from "
                            "upstream)" % (a.describe(), size))
        elif a.took > BOUND:
            problems.append("the wheel came after %.1f s" % a.took)
        if not self.counted_bad(before):
            problems.append("Z did not count E as bad: %s -> %s"
                            % (before, self.badness()))
        self.assertEqual(problems, [], self.msg(
            "E states %d bytes and sends a 1 MiB chunk:\n  %s"
            % (size, "\n  ".join(problems))))

    def test_failed_peer_fetch_is_an_honest_error(self):
        data = h.read_bytes(self.nowhere)
        name, sha = os.path.basename(self.nowhere), h.sha256_bytes(data)
        self.E.behave(sha, evilpeer.Missing())
        entry = self.E.entry(name, sha, len(data), wire.chunks_root(data))
        self.E.publish_until_listed([entry], self.Z, name)
        a = fu.bounded_get(self.Z.host, self.Z.port, cu.file_path(sha, name),
                           BOUND + 5)
        problems = []
        if a.status not in (502, 504) or not a.complete:
            problems.append("want 502/504 with a reason; got " + a.describe())
        elif fu.one_line_reason(a) is None:
            problems.append("no one-line reason: " + a.describe())
        elif a.took > BOUND:
            problems.append("answered after %.1f s" % a.took)
        d = os.path.join(self.tmp, "pip-nowhere")
        self.addCleanup(shutil.rmtree, d, True)
        proc = h.shared_venv(_VENV).run_pip(
            "download", "--no-deps", "-d", d, "--index-url",
            self.Z.url + "/simple/", "--progress-bar", "off",
            "--timeout", str(BOUND + 5), "pt-nowhere", timeout=120)
        out = proc.stdout + proc.stderr
        broken = re.search(r"IncompleteRead|Connection broken|ProtocolError|"
                           r"[Tt]imed? ?out|Connection reset", out)
        if proc.returncode == 0:
            problems.append("pip succeeded\n" + h.describe(proc))
        elif broken or not re.search(r"HTTP error 50[24]", out):
            said = [line.strip() for line in out.splitlines()
                    if "ERROR" in line or "Got" in line]
            problems.append("pip should show the node's 502/504; it said: "
                            "%s\n%s" % (" / ".join(said[:3]) or "nothing",
                                        h.describe(proc)))
        self.assertEqual(problems, [], self.msg(
            "%s, held only by E, which does not serve it; upstream lists it "
            "but answers 404:\n  %s" % (name, "\n  ".join(problems))))


if __name__ == "__main__":
    unittest.main()
