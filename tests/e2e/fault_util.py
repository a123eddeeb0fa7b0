"""Helpers for the tests of failures: a client that tells a complete body
from a cut one and never waits past a deadline, a node's threads and spool
files as /proc shows them, tgkill, sanitizer reports in a node's output,
and a small threaded HTTP upstream that is slow or counts what it serves.

Stdlib only; importable next to harness.py.
"""

import ctypes
import hashlib
import http.client
import http.server
import os
import re
import signal
import socket
import socketserver
import threading
import time

import harness as h

MiB = 1 << 20

# -- a client with a deadline ------------------------------------------------


class Answer:
    """What a client saw of one GET.

    status      HTTP status, or None when none came before the deadline
    length      body bytes read
    sha256      hex digest of those bytes
    complete    the body ended the way HTTP says a body ends: all of
                Content-Length, or the last chunk of a chunked body
    error       why it did not (None when complete), e.g. 'connection
                closed after 0 of 1234 bytes', 'no bytes for 15.0 s'
    text        the body as text when it is short (error answers)
    took        seconds until the answer ended (complete, cut or given up)
    t_status    seconds until the status line
    clen        Content-Length (None: chunked or absent)
    gave_up     the client stopped it (deadline or MAX_BODY), not the
                server: an answer that had not ended
    """

    def __init__(self):
        self.status = self.sha256 = self.error = self.text = None
        self.clen = self.t_status = self.headers = None
        self.length = 0
        self.complete = False
        self.gave_up = False
        self.took = 0.0

    @property
    def cut(self):
        """The server ended the body with an error (closed short, a broken
        chunked stream, a reset): an honest failure after bytes went out,
        as long as it came in time."""
        return (self.status is not None and not self.complete
                and not self.gave_up)

    def ok_with(self, sha, size):
        """True when this is a complete 200 of SIZE bytes hashing to SHA."""
        return (self.status == 200 and self.complete and self.length == size
                and self.sha256 == sha)

    def describe(self):
        if self.status is None:
            return "no status line after %.1f s (%s)" % (self.took, self.error)
        out = "%d after %.1f s" % (self.status, self.t_status)
        if self.text is not None and self.status != 200:
            out += " %r" % self.text[:300]
        out += ", %d body bytes" % self.length
        if self.clen is not None:
            out += " of Content-Length %d" % self.clen
        else:
            out += " (no Content-Length)"
        out += ", sha256 %s" % (self.sha256 or "-")[:16]
        out += (", complete" if self.complete
                else ", NOT complete: %s" % self.error)
        return out + ", ended after %.1f s" % self.took


def bounded_get(host, port, path, deadline, max_body=None, headers=None):
    """GET PATH and read the whole answer, giving up DEADLINE seconds after
    the start (the connection is closed then). MAX_BODY: stop reading after
    that many body bytes (the answer is then not complete: 'more than
    MAX_BODY bytes'). Returns an Answer; never raises for what the server
    did."""
    a = Answer()
    t0 = time.monotonic()
    hsh, small, resp = hashlib.sha256(), b"", None

    def left():
        return max(0.05, deadline - (time.monotonic() - t0))

    conn = http.client.HTTPConnection(host, port, timeout=left())
    try:
        conn.request("GET", path, headers=headers or {})
        sock = conn.sock  # getresponse() may hand it to the response
        resp = conn.getresponse()
        a.t_status = time.monotonic() - t0
        a.status = resp.status
        a.headers = resp.headers
        cl = resp.getheader("Content-Length")
        a.clen = int(cl) if cl is not None else None
        while True:
            if time.monotonic() - t0 >= deadline:
                a.error = "gave up at the %.0f s deadline" % deadline
                a.gave_up = True
                break
            if not resp.isclosed():
                sock.settimeout(left())
            try:
                piece = resp.read1(MiB)
            except http.client.IncompleteRead as e:
                piece = e.partial
                a.error = "chunked body cut short"
            hsh.update(piece)
            if len(small) < 4096:
                small += piece[:4096 - len(small)]
            a.length += len(piece)
            if a.error is not None:
                break
            if max_body is not None and a.length > max_body:
                a.error = "more than %d bytes" % max_body
                a.gave_up = True
                break
            if not piece:
                if a.clen is not None and a.length < a.clen:
                    a.error = "connection closed after %d of %d bytes" % (
                        a.length, a.clen)
                else:
                    a.complete = True
                break
    except (socket.timeout, TimeoutError):
        a.error = "nothing more after %.1f s (gave up at the %.0f s " \
                  "deadline)" % (time.monotonic() - t0, deadline)
        a.gave_up = True
    except (OSError, http.client.HTTPException) as e:
        a.error = "%s: %s" % (type(e).__name__, e)
    finally:
        a.sha256 = hsh.hexdigest()
        a.text = small.decode("utf-8", "replace")
        conn.close()
        if resp is not None:
            resp.close()
    a.took = time.monotonic() - t0
    return a


class BoundedGet(threading.Thread):
    """bounded_get in a thread; .answer once joined."""

    def __init__(self, node, path, deadline, max_body=None, label=""):
        super().__init__(daemon=True)
        self.node, self.path, self.deadline = node, path, deadline
        self.max_body, self.label = max_body, label
        self.answer = None

    def run(self):
        self.answer = bounded_get(self.node.host, self.node.port, self.path,
                                  self.deadline, self.max_body)


def one_line_reason(answer):
    """The body of an error answer when it is one non-empty line of text
    (a trailing newline allowed), else None."""
    text = (answer.text or "").strip()
    if not text or "\n" in text or len(text) > 500:
        return None
    return text


# -- a node's process ------------------------------------------------------


def threads(pid):
    """How many threads PID has (/proc/PID/status Threads:), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def thread_names(pid):
    """{tid: comm} of PID's threads."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out[int(tid)] = f.read().strip()
        except OSError:
            pass
    return out


def wait_threads(pid, at_most, timeout=15.0):
    """Waits until PID has at most AT_MOST threads. Returns (ok, the last
    count, seconds waited)."""
    t0 = time.monotonic()
    n = threads(pid)
    while n is not None and n > at_most and time.monotonic() - t0 < timeout:
        time.sleep(0.1)
        n = threads(pid)
    return (n is not None and n <= at_most), n, time.monotonic() - t0


def spool_bytes(pid):
    """Bytes in the deleted files PID holds open (the node's spool files:
    unlinked temporary files in its data directory)."""
    total = 0
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return 0
    for fd in fds:
        p = "/proc/%d/fd/%s" % (pid, fd)
        try:
            if os.readlink(p).endswith(" (deleted)"):
                total += os.stat(p).st_size
        except OSError:
            pass
    return total


_libc = ctypes.CDLL(None, use_errno=True)
SYS_tgkill = 234  # x86-64


def tgkill(tgid, tid, sig):
    """Sends SIG to thread TID of process TGID; False when the thread is
    gone."""
    return _libc.syscall(SYS_tgkill, ctypes.c_int(tgid), ctypes.c_int(tid),
                         ctypes.c_int(int(sig))) == 0


class SignalStorm(threading.Thread):
    """Sends each of SIGNALS to every thread of PID (as listed in
    /proc/PID/task at that moment), every INTERVAL seconds, until stop().
    .sent counts the deliveries."""

    def __init__(self, pid, signals, interval=0.01):
        super().__init__(daemon=True)
        self.pid, self.signals, self.interval = pid, list(signals), interval
        self.sent = 0
        self.rounds = 0
        self.max_threads = 0
        self._stop_ev = threading.Event()

    def run(self):
        while not self._stop_ev.is_set():
            try:
                tids = [int(t) for t in os.listdir("/proc/%d/task" % self.pid)]
            except OSError:
                return  # the process is gone
            self.max_threads = max(self.max_threads, len(tids))
            for tid in tids:
                for sig in self.signals:
                    if tgkill(self.pid, tid, sig):
                        self.sent += 1
            self.rounds += 1
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join(10)


SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread|Memory|Undefined)"
                          r"Sanitizer|runtime error:|AddressSanitizer:|"
                          r"==\d+==ERROR")


def sanitizer_report(text):
    """The first lines of a sanitizer report in TEXT, or None."""
    m = SANITIZER_RE.search(text or "")
    if m is None:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    return text[start:start + 3000]


def sanitizer_env(extra="detect_stack_use_after_return=1"):
    """os.environ with EXTRA added to ASAN_OPTIONS (a plain build ignores
    it)."""
    env = dict(os.environ)
    old = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (old + ":" if old else "") + extra
    return env


# -- a small upstream of our own ---------------------------------------------


class PyUpstream:
    """A threaded HTTP server on 127.0.0.1 standing in for an index when
    nginx cannot play the part: HANDLER(path) returns (status, headers
    dict, body bytes) or None (404), after DELAY(path) seconds. .counts
    counts the requests per path. Use .base for URLs."""

    def __init__(self, handler, delay=None):
        self.handler = handler
        self.delay = delay or (lambda path: 0)
        self.counts = {}
        self.lock = threading.Lock()
        outer = self

        class Req(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with outer.lock:
                    outer.counts[self.path] = outer.counts.get(self.path,
                                                               0) + 1
                time.sleep(outer.delay(self.path))
                got = outer.handler(self.path)
                status, hdrs, body = got if got else (404, {}, b"not found")
                try:
                    self.send_response(status)
                    for k, v in hdrs.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass  # a client that went away (a node that died) is news
                # for the test's own assertions, not for stderr

        self.port = h.free_port()
        self.server = Server(("127.0.0.1", self.port), Req)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def count(self, substring):
        with self.lock:
            return sum(n for p, n in self.counts.items() if substring in p)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def free_dead_port():
    """A loopback port nothing listens on (connections are refused)."""
    port = h.free_port()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


def signal_name(sig):
    return signal.Signals(sig).name
