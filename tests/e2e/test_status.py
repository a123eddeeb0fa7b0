"""`wheelmesh status` as an operator reads it: sizes in human units, the
JSON unchanged, and --watch refreshing (in place on a terminal, as repeated
blocks into a pipe) until Ctrl-C."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
import unittest

import harness as h
from makewheel import make_wheel

RAW_NUMBER = re.compile(r"\b\d{7,}\b")  # a byte count nobody wants to read


def read_until(fd, proc, deadline, want):
    """Reads FD until WANT(text so far) or DEADLINE; returns the text."""
    out = b""
    while time.monotonic() < deadline and not want(out.decode("utf-8",
                                                              "replace")):
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                piece = os.read(fd, 65536)
            except OSError:  # the pty's other side closed
                break
            if not piece:
                break
            out += piece
        elif proc.poll() is not None:
            break
    return out.decode("utf-8", "replace")


class StatusTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = h.start_node(cls, config={"cache": {"max_size": "3GiB"}})
        cls.tmp = h.tmpdir(cls)
        cls.node.put_ok(make_wheel(cls.tmp, "statusa", "1.0",
                                   size=3 << 19))  # 1.5 MiB of payload

    def status(self, *args, timeout=30):
        return h.wm("status", "--node", self.node.url, *args,
                    timeout=timeout)

    def test_sizes_in_human_units(self):
        proc = self.status()
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        out = proc.stdout
        cache = [ln for ln in out.splitlines() if ln.startswith("cache")]
        self.assertEqual(len(cache), 1, out)
        # 1.5 MiB of payload plus the zip's few hundred bytes
        self.assertRegex(cache[0], r"1 wheels?, 1\.5 MiB of 3\.0 GiB", out)
        self.assertNotRegex(out, RAW_NUMBER, "a raw byte count:\n" + out)
        for word in ("hits", "local", "peer", "upstream", "members"):
            self.assertIn(word, out)

    def test_json_is_the_nodes_document(self):
        proc = self.status("--json")
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        doc = json.loads(proc.stdout)
        ref = self.node.status()
        self.assertEqual(sorted(doc), sorted(ref))
        self.assertEqual(doc["cache"]["max_size"], 3 << 30)
        self.assertEqual(doc["cache"]["files"], ref["cache"]["files"])

    def test_help_explains_the_fields_and_watch(self):
        proc = h.wm("status", "--help")
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        for word in ("--watch", "--json", "hits", "local", "peer",
                     "upstream", "MiB"):
            self.assertIn(word, proc.stdout)

    def test_watch_bad_interval_is_a_usage_error(self):
        for arg in (["--watch", "soon"], ["--watch=0"], ["--watch", "-1"]):
            with self.subTest(arg=arg):
                proc = self.status(*arg)
                self.assertEqual(proc.returncode, 2, h.describe(proc))
                self.assertIn("--watch", proc.stderr)

    def test_watch_into_a_pipe_repeats_blocks_and_sees_changes(self):
        proc = subprocess.Popen([h.BIN, "status", "--node", self.node.url,
                                 "--watch", "0.3"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            def blocks(text):
                return text.count("\ncache ")
            fd = proc.stdout.fileno()
            text = read_until(fd, proc, time.monotonic() + 10,
                              lambda t: blocks(t) >= 2)
            self.assertGreaterEqual(blocks(text), 2, text)
            w = make_wheel(self.tmp, "statusb", "1.0")
            self.node.put_ok(w)
            text += read_until(fd, proc, time.monotonic() + 10,
                               lambda t: "2 wheels" in t)
            self.assertIn("2 wheels", text, text)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            err = proc.stderr.read().decode()
            proc.stderr.close()
        self.assertEqual(rc, 0, "exit after Ctrl-C\n" + err)
        self.assertNotIn("\033[", text, "escape codes into a pipe")
        self.assertNotRegex(text, RAW_NUMBER, text)

    def test_watch_json_prints_documents_only(self):
        proc = subprocess.Popen([h.BIN, "status", "--node", self.node.url,
                                 "--json", "--watch=0.2"],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            text = read_until(proc.stdout.fileno(), proc,
                              time.monotonic() + 10,
                              lambda t: t.count('"cache"') >= 3)
            proc.send_signal(signal.SIGINT)
            self.assertEqual(proc.wait(5), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        dec, pos, docs = json.JSONDecoder(), 0, []
        while pos < len(text):
            try:
                doc, pos = dec.raw_decode(text, pos)
            except ValueError:
                break  # the last document, cut short by the kill
            docs.append(doc)
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.assertGreaterEqual(len(docs), 2, text)
        self.assertNotIn("every ", text, "a header between JSON documents")
        self.assertTrue(all(d["node"]["name"] == self.node.name
                            for d in docs))

    def test_watch_on_a_terminal_redraws_in_place(self):
        master, slave = pty.openpty()
        proc = subprocess.Popen([h.BIN, "status", "--node", self.node.url,
                                 "--watch", "0.2"], stdout=slave,
                                stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        try:
            text = read_until(master, proc, time.monotonic() + 10,
                              lambda t: t.count("\033[H\033[2J") >= 3)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        self.assertGreaterEqual(text.count("\033[H\033[2J"), 3, repr(text))
        # every redraw is one whole report
        for frame in text.split("\033[H\033[2J")[1:-1]:
            self.assertIn("cache ", frame)
            self.assertIn("hits ", frame)
        self.assertEqual(rc, 0, text)

    def test_watch_keeps_going_while_the_node_is_away(self):
        port = h.free_port()
        proc = subprocess.Popen([h.BIN, "status", "--node",
                                 "http://127.0.0.1:%d" % port, "--watch",
                                 "0.2"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)
            self.assertIsNone(proc.poll(), "watch gave up on a node that "
                              "is not up yet")
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(5)
            err = proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        self.assertEqual(rc, 0)
        self.assertIn("cannot reach", err)


if __name__ == "__main__":
    unittest.main()
