"""Shared helpers for the end-to-end tests: run real wheelmesh nodes, talk
HTTP to them without any client-side rewriting, and drive real pip in real
virtual environments.

Everything a test needs to explain a failure is at hand: Node.tail() gives
the last lines of the node's stderr (or log file), and every helper that
fails says what it ran and what came back.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
from html.parser import HTMLParser

from makewheel import sha256_file

BIN = os.environ.get("WHEELMESH_BIN", "")
PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN_WHEELS = "/usr/share/python-wheels"
DEBIAN_WHEEL_FILES = [
    "pip-23.0.1-py3-none-any.whl",
    "setuptools-66.1.1-py3-none-any.whl",
    "wheel-0.38.4-py3-none-any.whl",
]
PIP_ACCEPT = ("application/vnd.pypi.simple.v1+json, "
              "application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01")
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPES = ("text/html", "application/vnd.pypi.simple.v1+html")


# -- time limits and skips ---------------------------------------------------
#
# Every absolute time a test asserts is a limit the product promises ("starts
# within 1 s", "stops within 1 s", "a clear answer within upstream.timeout_s
# + 10 s"), never a measurement: how fast things go is for tests/bench.
# Under AddressSanitizer on two busy cores everything takes a few times
# longer, so every such limit goes through limit(), which multiplies it by
# WM_TIME_SCALE (default 1; .ci/run sets 3 for its ASan+UBSan pass).

def _time_scale():
    raw = os.environ.get("WM_TIME_SCALE", "") or "1"
    try:
        scale = float(raw)
    except ValueError:
        scale = 0.0
    if not scale >= 1.0:
        raise RuntimeError("WM_TIME_SCALE must be a number >= 1 (got %r)"
                           % raw)
    return scale


TIME_SCALE = _time_scale()


def limit(seconds):
    """SECONDS, a time limit a test asserts, scaled by WM_TIME_SCALE."""
    return seconds * TIME_SCALE


def skip(reason):
    """Skip the calling test (or, from setUpClass, its class) because of
    REASON. Every skip in the e2e suite goes through here: when the
    environment variable CI is set (.ci/run sets CI=1) it is a failure
    instead, since CI runs as root with every tool installed, and a test
    that cannot run there is coverage lost without anybody seeing it."""
    if os.environ.get("CI"):
        raise AssertionError("this test would be skipped (%s), and CI=%s is "
                             "set: in CI every test must run"
                             % (reason, os.environ["CI"]))
    raise unittest.SkipTest(reason)


def require_binary():
    """Raise a readable error when WHEELMESH_BIN does not name a program."""
    if not BIN or not os.access(BIN, os.X_OK):
        raise RuntimeError("set WHEELMESH_BIN to the wheelmesh binary "
                           "(got %r)" % BIN)


def project_version():
    """The version CMake gives the binary (project(... VERSION x.y.z))."""
    top = os.path.join(HERE, "..", "..", "CMakeLists.txt")
    with open(top) as f:
        m = re.search(r"project\(\s*wheelmesh\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else None


_PORTS_LOW, _PORTS_HIGH = 20000, 32000  # below the kernel's ephemeral range
_ports_given = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now and that
    this process has not handed out before. Ports come from below the
    kernel's ephemeral range, so no outgoing connection takes one before
    the node binds it, and the search starts at a place chosen by the pid,
    so test processes running side by side do not pick the same ones."""
    span = _PORTS_HIGH - _PORTS_LOW
    start = (os.getpid() * 97) % span
    for i in range(span):
        port = _PORTS_LOW + (start + i) % span
        if port in _ports_given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free TCP port on 127.0.0.1")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def merge(base, over):
    """Deep-merge dict OVER into a copy of BASE (over wins)."""
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def run(args, timeout=60, env=None, input=None):
    """Run ARGS, capture text output; returns the CompletedProcess."""
    return subprocess.run(args, capture_output=True, text=True,
                          timeout=timeout, env=env, input=input)


def wm(*args, timeout=30):
    """Run the wheelmesh binary with ARGS."""
    require_binary()
    return run([BIN] + [str(a) for a in args], timeout=timeout)


def describe(proc):
    """A readable account of a finished command, for assertion messages."""
    return ("command: %s\nexit: %s\n--- stdout\n%s\n--- stderr\n%s"
            % (" ".join(map(str, proc.args)), proc.returncode,
               (proc.stdout or "")[-4000:], (proc.stderr or "")[-4000:]))


def http_request(host, port, method, path, body=None, headers=None,
                 timeout=60):
    """One request on a fresh connection; PATH is sent byte for byte.
    Returns (status, headers, body); redirects are not followed."""
    return request_on(http.client.HTTPConnection(host, port, timeout=timeout),
                      method, path, body, headers)


def request_on(conn, method, path, body=None, headers=None):
    """http_request on the fresh connection CONN, which it closes."""
    try:
        conn.putrequest(method, path, skip_host=False,
                        skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None and "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body is not None:
            conn.send(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data
    finally:
        conn.close()


class NodeError(AssertionError):
    pass


class Node:
    """A wheelmesh node in its own temporary directory.

    The node gets a data dir, a config file (offline by default: no
    upstream index; its own cluster port so several nodes can run at once),
    and stderr captured to a file. The constructor starts it and waits for
    /healthz; cleanup() stops it (asserting a clean exit) and removes the
    directory.
    """

    def __init__(self, config=None, log=False, start=True, port=None,
                 name=None):
        require_binary()
        self.dir = tempfile.mkdtemp(prefix="wm-e2e-")
        self.data = os.path.join(self.dir, "data")
        self.config_path = os.path.join(self.dir, "node.json")
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        self.stdout_path = os.path.join(self.dir, "stdout.txt")
        self.log_path = os.path.join(self.dir, "node.log") if log else None
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.name = name or "e2e-%d" % self.port
        base = {
            "node": {"name": self.name},
            "upstream": {"indexes": []},
            "cluster": {"listen": "tcp://127.0.0.1:%d" % free_port()},
        }
        self.config = merge(base, config)
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)
        self.proc = None
        self.starts = 0
        if start:
            self.start()

    # -- process control -------------------------------------------------

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def argv(self):
        args = [BIN, "node", "--data", self.data,
                "--http", "%s:%d" % (self.host, self.port),
                "-c", self.config_path]
        if self.log_path:
            args += ["--log", self.log_path]
        return args

    def env(self):
        """The node's environment; None: this process's own."""
        return None

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        with open(self.stderr_path, "ab") as err, \
                open(self.stdout_path, "ab") as out:
            err.write(b"=== start %d\n" % self.starts)
            err.flush()
            self._err_offset = err.tell()
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL,
                                         env=self.env())
        self.started_at = time.monotonic()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        """Wait up to limit(TIMEOUT) for /healthz; sets .ready_after."""
        deadline = time.monotonic() + limit(timeout)
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise NodeError("node exited with %s before it was ready\n%s"
                                % (rc, self.tail()))
            try:
                status, _, body = self.get("/healthz", timeout=2)
                if status == 200:
                    self.ready_after = time.monotonic() - self.started_at
                    return
                last = "healthz %d %r" % (status, body[:200])
            except OSError as e:
                last = repr(e)
            time.sleep(0.05)
        raise NodeError("node not ready after %.0f s (last: %s)\n%s"
                        % (limit(timeout), last, self.tail()))

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Signal the node and wait up to limit(TIMEOUT); asserts a clean
        exit (status 0). Returns the seconds it took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(limit(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise NodeError("node did not exit within %.0f s of %s\n%s"
                            % (limit(timeout), sig.name, self.tail()))
        took = time.monotonic() - t0
        if rc != 0:
            raise NodeError("node exited with %d after %s (want 0)\n%s"
                            % (rc, sig.name, self.tail()))
        return took

    def kill(self):
        """SIGKILL, no questions asked."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self):
        self.stop()
        self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        """Stop the node the way a service manager does (SIGTERM) and
        insist on a clean exit, so every test also checks that the node
        shuts down cleanly after what it went through (a sanitizer build
        reports leaks and errors through the exit status); then remove its
        directory."""
        try:
            if self.running():
                self.stop()
        finally:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)

    def stderr_text(self, all_starts=False):
        try:
            with open(self.stderr_path, "rb") as f:
                if not all_starts:
                    f.seek(self._err_offset)
                return f.read().decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""

    def tail(self, n=40):
        """The last N lines the node wrote (stderr, then its log file)."""
        text = self.stderr_text(all_starts=True)
        out = "--- node stderr (last %d lines) ---\n" % n
        out += "\n".join(text.splitlines()[-n:])
        if self.log_path and os.path.exists(self.log_path):
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            out += "\n--- node log (last %d lines) ---\n" % n
            out += "\n".join(lines[-n:])
        alive = "running" if self.running() else (
            "exited %s" % (self.proc.returncode if self.proc else "-"))
        return out + "\n--- node %s ---" % alive

    # -- HTTP ------------------------------------------------------------

    def connection(self, timeout=60):
        """A fresh (not yet connected) HTTP connection to the node."""
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        return request_on(self.connection(timeout), method, path, body,
                          headers)

    def get(self, path, headers=None, timeout=60):
        return self.request("GET", path, headers=headers, timeout=timeout)

    def head(self, path, headers=None):
        return self.request("HEAD", path, headers=headers)

    def get_json(self, path, headers=None):
        status, hdrs, body = self.get(path, headers)
        if status != 200:
            raise NodeError("GET %s: %d %r\n%s"
                            % (path, status, body[:300], self.tail()))
        try:
            return json.loads(body)
        except ValueError as e:
            raise NodeError("GET %s: not JSON (%s): %r"
                            % (path, e, body[:300]))

    def put(self, wheel, filename=None, body=None, headers=None):
        """PUT a wheel file (or raw BODY) at /files/<FILENAME>.
        Returns (status, headers, body)."""
        if body is None:
            with open(wheel, "rb") as f:
                body = f.read()
        name = filename or os.path.basename(wheel)
        return self.request("PUT", "/files/" + urllib.parse.quote(name),
                            body=body, headers=headers)

    def put_ok(self, wheel):
        """PUT WHEEL and insist it is stored (201, or 200 when it already
        was). Returns the sha256 hex."""
        status, _, body = self.put(wheel)
        if status not in (200, 201):
            raise NodeError("PUT %s: %d %r\n%s" % (os.path.basename(wheel),
                                                   status, body[:300],
                                                   self.tail()))
        return sha256_file(wheel)

    def download(self, path, headers=None):
        """GET PATH streaming; returns (status, headers, sha256 hex of the
        body, body length) without holding the body in memory."""
        conn = self.connection(120)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            hsh = hashlib.sha256()
            n = 0
            for piece in iter(lambda: resp.read(1 << 20), b""):
                hsh.update(piece)
                n += len(piece)
            return resp.status, resp.headers, hsh.hexdigest(), n
        finally:
            conn.close()

    def status(self):
        return self.get_json("/api/status")

    def files(self, project=None):
        path = "/api/files"
        if project:
            path += "?project=" + urllib.parse.quote(project)
        return self.get_json(path)

    def metrics(self):
        """The /metrics page as {sample name with labels: float}."""
        status, _, body = self.get("/metrics")
        if status != 200:
            raise NodeError("GET /metrics: %d\n%s" % (status, self.tail()))
        out = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^(\S+?(?:\{[^}]*\})?)\s+(\S+)", line)
            if m:
                key = re.sub(r"\s+", "", m.group(1))
                out[key] = float(m.group(2))
        return out

    def __repr__(self):
        return "<Node %s data=%s>" % (self.url, self.data)


def start_node(testcase_cls, **kw):
    """Start a node for a test class and register its cleanup."""
    node = Node(**kw)
    testcase_cls.addClassCleanup(node.cleanup)
    return node


def tmpdir(testcase_cls):
    d = tempfile.mkdtemp(prefix="wm-e2e-")
    testcase_cls.addClassCleanup(shutil.rmtree, d, True)
    return d


# -- pip in a venv -----------------------------------------------------------


def pip_env():
    """An environment in which pip sees no configuration of this machine:
    no PIP_* variables, no config files, no proxies."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("PIP_")
           and "proxy" not in k.lower()}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_NO_INPUT"] = "1"
    env["NO_PROXY"] = "*"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class Venv:
    def __init__(self, path):
        self.path = path
        self.python = os.path.join(path, "bin", "python")
        self.pip = os.path.join(path, "bin", "pip")

    def run_pip(self, *args, timeout=180):
        cmd = [self.python, "-m", "pip", "--no-cache-dir",
               "--disable-pip-version-check", "--retries", "0",
               "--timeout", "20"] + list(args)
        return run(cmd, timeout=timeout, env=pip_env())

    def run_python(self, code, timeout=60):
        return run([self.python, "-c", code], timeout=timeout, env=pip_env())


def venv(path):
    """Create a virtual environment at PATH with Debian's python (its pip is
    bootstrapped offline). Returns a Venv with .pip and .python."""
    proc = run([PYTHON, "-m", "venv", path], timeout=120, env=pip_env())
    if proc.returncode != 0:
        raise RuntimeError("venv failed\n" + describe(proc))
    return Venv(path)


def shared_venv(cache):
    """One venv for a test module (making one takes seconds), kept in the
    module's dict CACHE and removed after the module's tests."""
    if "venv" not in cache:
        d = tempfile.mkdtemp(prefix="wm-e2e-venv-")
        unittest.addModuleCleanup(shutil.rmtree, d, True)
        cache["venv"] = venv(os.path.join(d, "venv"))
    return cache["venv"]


# -- pages -------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []
        self._cur = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._cur = {"attrs": dict(attrs), "text": ""}
            self.links.append(self._cur)

    def handle_data(self, data):
        if self._cur is not None:
            self._cur["text"] += data

    def handle_endtag(self, tag):
        if tag == "a":
            self._cur = None


def parse_links(html):
    """The <a> elements of an HTML page: a list of
    {"href", "text", "attrs"} with the text stripped."""
    p = _Links()
    p.feed(html.decode("utf-8") if isinstance(html, bytes) else html)
    out = []
    for a in p.links:
        out.append({"href": a["attrs"].get("href"), "text": a["text"].strip(),
                    "attrs": a["attrs"]})
    return out


def split_file_href(href):
    """'/files/<sha>/<name>#sha256=<h>' -> (path, sha_in_path, filename,
    fragment hash or None). The path may be absolute or relative."""
    url = urllib.parse.urlsplit(href)
    frag = None
    if url.fragment.startswith("sha256="):
        frag = url.fragment[len("sha256="):]
    parts = url.path.rstrip("/").split("/")
    return url.path, parts[-2], urllib.parse.unquote(parts[-1]), frag


if __name__ == "__main__":
    sys.exit("harness.py is a module for the tests")
