"""The wheelmesh command line as a user and a service manager see it:
put / ls / keygen / status, --help and --version everywhere, exit codes
(0 ok, 1 failure with one line on stderr, 2 usage error), the readiness
line, SIGTERM/SIGINT handling, --daemon --pidfile and --log.
"""

import json
import os
import signal
import socket
import stat
import subprocess
import time
import unittest

import harness as h
from makewheel import make_wheel

COMMANDS = ["node", "put", "ls", "keygen", "status"]


def one_line(text):
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return len(lines) == 1


class CliWithNodeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = h.start_node(cls)
        cls.tmp = h.tmpdir(cls)
        cls.a1 = make_wheel(cls.tmp, "clia", "1.0", size=1000)
        cls.a2 = make_wheel(cls.tmp, "clia", "2.0", size=2000)
        cls.b1 = make_wheel(cls.tmp, "Cli_B", "1.0")
        proc = h.wm("put", "--node", cls.node.url, cls.a1, cls.a2, cls.b1)
        cls.first_put = proc

    def put(self, *files):
        return h.wm("put", "--node", self.node.url, *files)

    def test_put_prints_filename_and_sha(self):
        proc = self.first_put
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 3, h.describe(proc))
        for path, line in zip((self.a1, self.a2, self.b1), lines):
            self.assertIn(os.path.basename(path), line)
            self.assertIn(h.sha256_file(path), line)
        names = sorted(f["filename"] for f in self.node.files())
        self.assertEqual(names, sorted(os.path.basename(p) for p in
                                       (self.a1, self.a2, self.b1)))

    def test_put_same_file_twice_is_fine(self):
        for _ in range(2):
            proc = self.put(self.a1)
            self.assertEqual(proc.returncode, 0, h.describe(proc))
            self.assertIn(h.sha256_file(self.a1), proc.stdout)
        count = sum(1 for f in self.node.files()
                    if f["filename"] == os.path.basename(self.a1))
        self.assertEqual(count, 1)

    def test_put_same_name_other_bytes_fails(self):
        d = os.path.join(self.tmp, "other")
        os.makedirs(d, exist_ok=True)
        other = make_wheel(d, "clia", "1.0", size=1001)
        proc = self.put(other)
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertTrue(one_line(proc.stderr), h.describe(proc))
        status, _, body = self.node.get("/files/%s/%s" % (
            h.sha256_file(self.a1), os.path.basename(self.a1)))
        self.assertEqual(status, 200)
        self.assertEqual(h.sha256_bytes(body), h.sha256_file(self.a1))

    def test_put_bad_file_fails_with_one_line(self):
        bad = os.path.join(self.tmp, "broken-1.0-py3-none-any.whl")
        with open(bad, "wb") as f:
            f.write(b"not a zip\n" * 50)
        notwheel = os.path.join(self.tmp, "README.txt")
        with open(notwheel, "w") as f:
            f.write("hello\n")
        missing = os.path.join(self.tmp, "missing-1.0-py3-none-any.whl")
        for path in (bad, notwheel, missing):
            with self.subTest(file=os.path.basename(path)):
                proc = self.put(path)
                self.assertEqual(proc.returncode, 1, h.describe(proc))
                self.assertTrue(one_line(proc.stderr), h.describe(proc))
                self.assertIn(os.path.basename(path), proc.stderr,
                              h.describe(proc))
        names = [f["filename"] for f in self.node.files()]
        self.assertNotIn("broken-1.0-py3-none-any.whl", names)

    def test_put_without_files_is_a_usage_error(self):
        proc = self.put()
        self.assertEqual(proc.returncode, 2, h.describe(proc))

    def test_put_to_a_node_that_is_down(self):
        proc = h.wm("put", "--node", "http://127.0.0.1:%d" % h.free_port(),
                    self.a1)
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertTrue(one_line(proc.stderr), h.describe(proc))

    def ls_lines(self, *args):
        proc = h.wm("ls", "--node", self.node.url, *args)
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        rows = {}
        for line in proc.stdout.splitlines():
            parts = line.split()
            if parts and parts[0].endswith(".whl"):
                rows[parts[0]] = parts
        return rows, proc

    def test_ls_lists_filename_size_sha(self):
        rows, proc = self.ls_lines()
        for path in (self.a1, self.a2, self.b1):
            fn = os.path.basename(path)
            self.assertIn(fn, rows, h.describe(proc))
            self.assertEqual(rows[fn][1], str(os.path.getsize(path)))
            self.assertEqual(rows[fn][2], h.sha256_file(path))

    def test_ls_one_project(self):
        rows, proc = self.ls_lines("clia")
        self.assertEqual(sorted(rows), sorted(
            os.path.basename(p) for p in (self.a1, self.a2)),
            h.describe(proc))
        rows, proc = self.ls_lines("cli-b")
        self.assertEqual(sorted(rows), [os.path.basename(self.b1)],
                         h.describe(proc))

    def test_status(self):
        proc = h.wm("status", "--node", self.node.url)
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        self.assertIn(self.node.name, proc.stdout, h.describe(proc))
        proc = h.wm("status", "--node", self.node.url, "--json")
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        doc = json.loads(proc.stdout)
        self.assertEqual(doc["node"]["name"], self.node.name)
        self.assertEqual(doc["cache"]["files"], len(self.node.files()))

    def test_status_of_a_node_that_is_down(self):
        proc = h.wm("status", "--node", "http://127.0.0.1:%d"
                    % h.free_port())
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertTrue(one_line(proc.stderr), h.describe(proc))


class CliUsageTest(unittest.TestCase):
    def test_help(self):
        for cmd in [None] + COMMANDS:
            with self.subTest(cmd=cmd):
                args = ([cmd] if cmd else []) + ["--help"]
                proc = h.wm(*args)
                self.assertEqual(proc.returncode, 0, h.describe(proc))
                self.assertTrue(proc.stdout.strip(), h.describe(proc))
                self.assertIn(cmd or "wheelmesh", proc.stdout)

    def test_version(self):
        version = h.project_version()
        self.assertTrue(version)
        for cmd in [None] + COMMANDS:
            with self.subTest(cmd=cmd):
                args = ([cmd] if cmd else []) + ["--version"]
                proc = h.wm(*args)
                self.assertEqual(proc.returncode, 0, h.describe(proc))
                self.assertIn(version, proc.stdout, h.describe(proc))

    def test_unknown_option_is_exit_2(self):
        for cmd in [None] + COMMANDS:
            with self.subTest(cmd=cmd):
                args = ([cmd] if cmd else []) + ["--no-such-option"]
                proc = h.wm(*args)
                self.assertEqual(proc.returncode, 2, h.describe(proc))
                self.assertTrue(proc.stderr.strip(), h.describe(proc))

    def test_unknown_or_missing_command_is_exit_2(self):
        for args in (["frobnicate"], []):
            with self.subTest(args=args):
                proc = h.wm(*args)
                self.assertEqual(proc.returncode, 2, h.describe(proc))
                self.assertTrue(proc.stderr.strip(), h.describe(proc))

    def test_keygen(self):
        tmp = h.tmpdir(type(self))
        path = os.path.join(tmp, "node.key")
        proc = h.wm("keygen", "-o", path)
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        pub = proc.stdout.strip()
        self.assertRegex(pub, r"^[0-9a-f]{64}$", h.describe(proc))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, "rb") as f:
            content = f.read()
        self.assertNotIn(pub.encode(), content.lower(),
                         "the key file should hold the secret, "
                         "not the public key")
        # refuses to overwrite, leaves the file alone
        proc = h.wm("keygen", "-o", path)
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertTrue(one_line(proc.stderr), h.describe(proc))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), content)
        # a second key is a different key
        proc = h.wm("keygen", "-o", os.path.join(tmp, "other.key"))
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        self.assertNotEqual(proc.stdout.strip(), pub)

    def test_node_uses_the_keygen_identity(self):
        tmp = h.tmpdir(type(self))
        path = os.path.join(tmp, "id.key")
        proc = h.wm("keygen", "-o", path)
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        node = h.Node(config={"node": {"identity": path}})
        self.addCleanup(node.cleanup)
        self.assertEqual(node.status()["node"]["id"], proc.stdout.strip())


class NodeProcessTest(unittest.TestCase):
    def test_readiness_line(self):
        node = h.Node()
        self.addCleanup(node.cleanup)
        url = "http://127.0.0.1:%d/" % node.port
        # The node answers HTTP a moment before it prints the line (the
        # harness saw it ready by asking): wait for the line a little.
        deadline = time.monotonic() + h.limit(5)
        while True:
            lines = [ln for ln in node.stderr_text().splitlines()
                     if "ready" in ln and url in ln]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(lines, node.tail())

    def test_starts_within_1s(self):
        """DESIGN.md's start-up promise. The machine running the suite also
        runs other tests: the fastest of three starts is the measure (a
        start that is slow every time still fails)."""
        node = h.Node()
        self.addCleanup(node.cleanup)
        firsts = [node.ready_after]
        for _ in range(2):
            fresh = h.Node()  # a new identity and a new store each time
            firsts.append(fresh.ready_after)
            fresh.cleanup()
        self.assertLess(min(firsts), h.limit(1.0), "first start (new "
                        "identity, new store): %s\n%s" % (firsts, node.tail()))
        tmp = h.tmpdir(type(self))
        for i in range(5):
            node.put_ok(make_wheel(tmp, "startup%d" % i, "1.0",
                                   size=2 << 20))
        restarts = []
        for _ in range(3):
            node.restart()
            restarts.append(node.ready_after)
        self.assertLess(min(restarts), h.limit(1.0), "restart with data: "
                        "%s\n%s" % (restarts, node.tail()))

    def test_daemon_without_pidfile_is_a_usage_error(self):
        node = h.Node(start=False)
        self.addCleanup(node.cleanup)
        proc = h.run(node.argv() + ["--daemon"], timeout=10)
        self.assertEqual(proc.returncode, 2, h.describe(proc))
        self.assertTrue(proc.stderr.strip(), h.describe(proc))
        with self.assertRaises(OSError):
            node.get("/healthz", timeout=2)

    def test_sigterm_and_sigint_exit_0_within_1s(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig.name):
                node = h.Node()
                self.addCleanup(node.cleanup)
                took = node.stop(sig)
                self.assertLess(took, h.limit(1.0), node.tail())

    def test_sigterm_with_clients_connected(self):
        node = h.Node()
        self.addCleanup(node.cleanup)
        tmp = h.tmpdir(type(self))
        w = make_wheel(tmp, "conn", "1.0", size=4 << 20)
        sha = node.put_ok(w)
        # an idle keep-alive connection, and one reading a file slowly
        idle = socket.create_connection((node.host, node.port))
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.recv(4096)
        slow = socket.create_connection((node.host, node.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"GET /files/%s/%s HTTP/1.1\r\nHost: x\r\n\r\n"
                     % (sha.encode(), os.path.basename(w).encode()))
        slow.recv(1024)
        try:
            took = node.stop()
            self.assertLess(took, h.limit(1.0), node.tail())
        finally:
            idle.close()
            slow.close()

    def test_restart_on_the_same_port_right_away(self):
        node = h.Node()
        self.addCleanup(node.cleanup)
        node.get("/simple/")
        node.restart()
        self.assertEqual(node.get("/healthz")[0], 200)

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            node = h.Node(start=False, port=port)
            self.addCleanup(node.cleanup)
            proc = subprocess.run(node.argv(), capture_output=True,
                                  text=True, timeout=10)
        self.assertEqual(proc.returncode, 1, h.describe(proc))
        self.assertIn(str(port), proc.stderr, h.describe(proc))

    def test_log_file(self):
        node = h.Node(log=True)
        self.addCleanup(node.cleanup)
        node.get("/simple/")
        node.stop()
        with open(node.log_path) as f:
            text = f.read()
        self.assertTrue(text.strip(), "log file is empty")

    def test_sighup_reopens_the_log_file(self):
        # what logrotate does: move the file away, then SIGHUP
        node = h.Node(log=True)
        self.addCleanup(node.cleanup)
        rotated = node.log_path + ".1"
        os.rename(node.log_path, rotated)
        node.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not os.path.exists(
                node.log_path):
            node.put(None, "nothing-1.0-py3-none-any.whl", body=b"x")
            time.sleep(0.05)
        self.assertTrue(node.running(), node.tail())
        self.assertTrue(os.path.exists(node.log_path),
                        "no new log file after SIGHUP")
        # the new file gets the lines logged from now on
        tmp = h.tmpdir(type(self))
        node.put_ok(make_wheel(tmp, "afterhup", "1.0"))
        node.stop()
        with open(node.log_path) as f:
            self.assertTrue(f.read().strip(), "new log file stays empty")

    def test_default_data_dir_follows_xdg_cache_home(self):
        tmp = h.tmpdir(type(self))
        port = h.free_port()
        cfg = os.path.join(tmp, "node.json")
        with open(cfg, "w") as f:
            json.dump({"upstream": {"indexes": []},
                       "cluster": {"listen": "tcp://127.0.0.1:%d"
                                   % h.free_port()}}, f)
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "xdg"),
                   HOME=os.path.join(tmp, "home"))
        err = open(os.path.join(tmp, "stderr"), "w+")
        self.addCleanup(err.close)
        proc = subprocess.Popen([h.BIN, "node", "-c", cfg, "--http",
                                 "127.0.0.1:%d" % port], env=env,
                                stdout=err, stderr=err)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    if h.http_request("127.0.0.1", port, "GET",
                                      "/healthz")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.05)
            w = make_wheel(tmp, "xdgtest", "1.0")
            status, _, body = h.http_request(
                "127.0.0.1", port, "PUT", "/files/" + os.path.basename(w),
                body=h.read_bytes(w))
            self.assertEqual(status, 201, body)
        finally:
            proc.terminate()
            rc = proc.wait(5)
        err.seek(0)
        self.assertEqual(rc, 0, err.read())
        xdg = os.path.join(tmp, "xdg", "wheelmesh")
        self.assertTrue(os.path.isdir(xdg) and os.listdir(xdg),
                        "nothing in $XDG_CACHE_HOME/wheelmesh")
        self.assertFalse(os.path.exists(os.path.join(tmp, "home", ".cache")))

    def test_daemon_with_pidfile(self):
        node = h.Node(start=False, log=True)
        self.addCleanup(node.cleanup)
        pidfile = os.path.join(node.dir, "node.pid")
        out = open(os.path.join(node.dir, "daemon.out"), "w+")
        self.addCleanup(out.close)
        t0 = time.monotonic()
        proc = subprocess.Popen(node.argv() + ["--daemon", "--pidfile",
                                               pidfile],
                                stdout=out, stderr=out,
                                stdin=subprocess.DEVNULL)
        try:
            rc = proc.wait(h.limit(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.fail("--daemon did not return within %.0f s\n%s"
                      % (h.limit(10), node.tail()))
        out.seek(0)
        self.assertEqual(rc, 0, out.read() + node.tail())
        self.assertLess(time.monotonic() - t0, h.limit(5))
        with open(pidfile) as f:
            pid = int(f.read().strip())

        def kill_daemon():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.addCleanup(kill_daemon)
        self.assertNotEqual(pid, proc.pid)
        self.assertTrue(os.path.exists("/proc/%d" % pid))
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            self.assertIn(b"node", f.read())
        # ready as soon as the command returned
        status, _, body = node.get("/healthz")
        self.assertEqual((status, body.strip()), (200, b"ok"))
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        while time.monotonic() - t0 < h.limit(5) and alive(pid):
            time.sleep(0.02)
        took = time.monotonic() - t0
        self.assertFalse(alive(pid), "daemon still alive %.0f s after SIGTERM"
                         % h.limit(5))
        self.assertLess(took, h.limit(1.0))
        with self.assertRaises(OSError):
            node.get("/healthz", timeout=2)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


if __name__ == "__main__":
    unittest.main()
