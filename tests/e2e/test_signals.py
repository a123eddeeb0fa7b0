"""Signals land on whatever thread they like; the node must not care.

A node with a slow upstream (a Python index that answers every project page
after a second, so HTTP threads wait on the loop) gets, while PUTs and page
requests are in flight, SIGHUP (the signal it handles: reopen the log) and
signals it should ignore or never see (SIGWINCH, SIGCHLD, SIGURG), sent
with tgkill to every one of its threads, every 10 ms. SIGTERM and SIGINT
are not sent: they stop the node.

Every request must get its real answer: each PUT 201, each page 200 with
the file upstream lists (upstream is slow but up, so nothing else is
right: a 503 'node is stopping' from a node that is not stopping is the
bug). The node must still be up and serve, its stderr must hold no
sanitizer report, and it must stop cleanly afterwards (exit 0). The node
runs with ASAN_OPTIONS=detect_stack_use_after_return=1, so under
AddressSanitizer a loop writing into a request its HTTP thread has given
up on is reported; a plain build ignores the variable.
"""

import concurrent.futures
import http.client
import os
import signal
import time
import unittest

import harness as h
import fault_util as fu
from makewheel import make_wheel

PAGE_DELAY = 1.0
STORM_S = 8.0
MAX_PAGES = 30  # per worker: a node answering at once must not spin us
SIGNALS = (signal.SIGHUP, signal.SIGWINCH, signal.SIGCHLD, signal.SIGURG)


def setUpModule():
    h.require_binary()


class SanitizedNode(h.Node):
    """A node whose environment asks ASan to catch stack use after
    return."""

    def env(self):
        return fu.sanitizer_env()


def fake_sha(project):
    return h.sha256_bytes(project.encode())


def page_for(path):
    """The slow upstream: /simple/<p>/ lists p-1.0-py3-none-any.whl, but
    for the projects the test puts (it has none of those, so the node
    admits the puts, after it asked)."""
    parts = path.strip("/").split("/")
    if len(parts) != 2 or parts[0] != "simple" or parts[1].startswith(
            "sig-put-"):
        return None
    proj = parts[1]
    fn = "%s-1.0-py3-none-any.whl" % proj.replace("-", "_")
    body = ('<!DOCTYPE html><html><body><a href="/packages/%s#sha256=%s">'
            '%s</a></body></html>' % (fn, fake_sha(proj), fn))
    return 200, {"Content-Type": "text/html"}, body.encode()


class Storm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)
        cls.up = fu.PyUpstream(page_for, delay=lambda p: PAGE_DELAY)
        cls.addClassCleanup(cls.up.stop)
        cls.node = SanitizedNode(log=True, config={"upstream": {
            "indexes": [{"url": cls.up.base + "/simple/"}],
            "timeout_s": 10}})
        cls.addClassCleanup(cls.node.cleanup)
        cls.wheels = [make_wheel(cls.tmp, "sig-put-%02d" % i, "1.0",
                                 size=(2 + 3 * (i % 6)) << 20, seed=i)
                      for i in range(18)]

    def msg(self, extra=""):
        """EXTRA, then the node's stderr and the last lines of its log
        that are not the SIGHUP storm's own 'log reopened'."""
        lines = [line for line in self.node_log().splitlines()
                 if "SIGHUP" not in line]
        rc = self.node.proc.poll()
        return "%s\n--- node log without SIGHUP lines (last 40) ---\n%s\n" \
               "--- node stderr (last 40) ---\n%s\n--- node %s ---" % (
                   extra, "\n".join(lines[-40:]),
                   "\n".join(self.node.stderr_text(True).splitlines()[-40:]),
                   "running" if rc is None else "exited with %s" % rc)

    def node_log(self):
        try:
            with open(self.node.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def put(self, path):
        try:
            status, _, body = self.node.put(path)
            return status, body[:200]
        except (OSError, http.client.HTTPException) as e:
            return None, repr(e)

    def page(self, project):
        try:
            status, _, body = self.node.get("/simple/%s/" % project,
                                            timeout=30)
        except (OSError, http.client.HTTPException) as e:
            return None, repr(e)
        fn = "%s-1.0-py3-none-any.whl" % project.replace("-", "_")
        names = {a["text"] for a in h.parse_links(body)} if status == 200 \
            else set()
        return status, ("lists " + fn if fn in names else body[:200])

    def test_signals_to_every_thread(self):
        pid = self.node.proc.pid
        storm = fu.SignalStorm(pid, SIGNALS, interval=0.01)
        results = []
        t_end = time.monotonic() + STORM_S

        def pages(worker):
            out, i = [], 0
            while (time.monotonic() < t_end or i < 4) and i < MAX_PAGES:
                p = "sig-page-%d-%03d" % (worker, i)
                out.append(("GET /simple/%s/" % p, self.page(p)))
                i += 1
            return out

        storm.start()
        with concurrent.futures.ThreadPoolExecutor(3) as puts, \
                concurrent.futures.ThreadPoolExecutor(4) as gets:
            put_jobs = [("PUT " + os.path.basename(w), puts.submit(self.put,
                                                                   w))
                        for w in self.wheels]
            page_jobs = [gets.submit(pages, k) for k in range(4)]
            for what, f in put_jobs:
                results.append((what, f.result(120)))
            for f in page_jobs:
                results += f.result(120)
        storm.stop()
        problems = []
        for what, (status, detail) in results:
            if what.startswith("PUT") and status not in (200, 201):
                problems.append("%s -> %s %r" % (what, status, detail))
            elif what.startswith("GET") and (
                    status != 200 or not str(detail).startswith("lists")):
                problems.append("%s -> %s %r" % (what, status, detail))
        if not self.node.running():
            problems.append("the node died (exit %s)"
                            % self.node.proc.returncode)
        else:
            status, _, _ = self.node.get("/healthz", timeout=10)
            if status != 200:
                problems.append("/healthz -> %d after the storm" % status)
            stored = {f["sha256"] for f in self.node.files()}
            missing = [os.path.basename(w) for w in self.wheels
                       if h.sha256_file(w) not in stored]
            if missing:
                problems.append("not stored: %s" % ", ".join(missing))
        report = fu.sanitizer_report(self.node.stderr_text(all_starts=True))
        self.assertGreater(storm.sent, 100, "the storm sent only %d signals"
                           % storm.sent)
        kinds = {}
        for p in problems:
            key = p.split(" -> ")[-1][:60] if " -> " in p else p[:60]
            kinds[key] = kinds.get(key, 0) + 1
        if problems or report:
            self.fail(self.msg(
                "%d requests under %d signals (%s) to up to %d threads in "
                "%d rounds; %d went wrong:\n  %s\nfirst ones:\n  %s%s"
                % (len(results), storm.sent,
                   "/".join(fu.signal_name(s) for s in SIGNALS),
                   storm.max_threads, storm.rounds, len(problems),
                   "\n  ".join("%d x %s" % (n, k) for k, n in
                               sorted(kinds.items(), key=lambda kv: -kv[1])),
                   "\n  ".join(problems[:12]),
                   "\n--- SANITIZER REPORT on the node's stderr ---\n%s"
                   % "\n".join(report.splitlines()[:40]) if report else "")))

if __name__ == "__main__":
    unittest.main()
