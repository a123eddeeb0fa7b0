"""What a Jenkins admin installs beside the binary, checked as far as this
machine allows: the systemd unit (systemd-analyze verify where that tool is
installed, and its ExecStart / ExecReload run for real: ready when the
command returns, SIGHUP reopens the log after logrotate moved it), the
logrotate snippet (a real rotation), the Jenkinsfile's "Build Stats" script
(run against a real node's status before and after a pip install), and the
Kubernetes DaemonSet (parsed; its node config accepted by
`wheelmesh node --check`)."""

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import time
import unittest

import harness as h
import upstream_index
from makewheel import make_wheel

REPO = os.path.normpath(os.path.join(h.HERE, "..", ".."))
UNIT = os.path.join(REPO, "configs", "wheelmesh.service")
LOGROTATE = os.path.join(REPO, "configs", "wheelmesh.logrotate")
JENKINSFILE = os.path.join(REPO, "configs", "Jenkinsfile")
DAEMONSET = os.path.join(REPO, "docker", "daemonset.yaml")


def unit_directives(path):
    """{(section, key): [values]} of a systemd unit file."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            m = re.match(r"^\[(\w+)\]$", line)
            if m:
                section = m.group(1)
                continue
            key, _, value = line.partition("=")
            out.setdefault((section, key.strip()), []).append(value.strip())
    return out


class SystemdUnitTest(unittest.TestCase):
    def setUp(self):
        self.d = unit_directives(UNIT)
        self.tmp = h.tmpdir(type(self))

    def one(self, key, section="Service"):
        values = self.d.get((section, key), [])
        self.assertEqual(len(values), 1, "%s= in [%s]: %r"
                         % (key, section, values))
        return values[0]

    def test_hardening_and_restart(self):
        self.assertEqual(self.one("User"), "wheelmesh")
        self.assertEqual(self.one("ProtectSystem"), "strict")
        self.assertEqual(self.one("NoNewPrivileges"), "yes")
        self.assertEqual(self.one("Restart"), "on-failure")
        self.assertEqual(self.one("Type"), "forking")
        self.assertEqual(self.one("PIDFile"), "/run/wheelmesh/node.pid")
        self.assertEqual(self.one("WantedBy", "Install"), "multi-user.target")
        argv = shlex.split(self.one("ExecStart"))
        self.assertIn("--daemon", argv)
        self.assertEqual(argv[argv.index("--pidfile") + 1],
                         self.one("PIDFile"))
        # everything the node writes is in a directory systemd makes for it
        # (ProtectSystem=strict makes the rest read-only)
        log = argv[argv.index("--log") + 1]
        self.assertTrue(log.startswith("/var/log/%s/"
                                       % self.one("LogsDirectory")))
        self.assertTrue(self.one("PIDFile").startswith(
            "/run/%s/" % self.one("RuntimeDirectory")))

    def test_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if tool is None:
            self.skipTest("systemd-analyze is not installed here")
        h.require_binary()
        # the unit as installed, with the binary where this build put it
        # (verify checks that ExecStart's program exists)
        with open(UNIT) as f:
            text = f.read().replace("/usr/local/bin/wheelmesh", h.BIN)
        path = os.path.join(self.tmp, "wheelmesh.service")
        with open(path, "w") as f:
            f.write(text)
        p = h.run([tool, "verify", path], timeout=60)
        self.assertEqual(p.returncode, 0, h.describe(p))
        self.assertEqual(p.stderr.strip(), "", h.describe(p))

    def test_execstart_is_ready_when_it_returns_and_logrotate_works(self):
        """ExecStart and ExecReload as systemd runs them (paths moved into
        a temporary directory), and the logrotate snippet rotating the
        node's log for real."""
        h.require_binary()
        port = h.free_port()
        conf = os.path.join(self.tmp, "node.json")
        with open(conf, "w") as f:
            json.dump({"node": {"data_dir": os.path.join(self.tmp, "data")},
                       "http": {"listen": "127.0.0.1:%d" % port},
                       "cluster": {"listen": "tcp://127.0.0.1:%d"
                                   % h.free_port()},
                       "upstream": {"indexes": []}}, f)
        moves = {"/etc/wheelmesh/node.json": conf,
                 "/run/wheelmesh": os.path.join(self.tmp, "run"),
                 "/var/log/wheelmesh": os.path.join(self.tmp, "log"),
                 "/usr/local/bin/wheelmesh": h.BIN}
        for d in ("run", "log"):
            os.mkdir(os.path.join(self.tmp, d))

        def moved(s):
            for a, b in moves.items():
                s = s.replace(a, b)
            return s
        argv = shlex.split(moved(self.one("ExecStart")))
        pidfile = moved(self.one("PIDFile"))
        log = argv[argv.index("--log") + 1]
        p = h.run(argv, timeout=30)
        self.assertEqual(p.returncode, 0, h.describe(p))
        with open(pidfile) as f:
            pid = int(f.read())
        self.addCleanup(kill_quietly, pid)
        # Type=forking: ready the moment ExecStart returned
        status, _, body = h.http_request("127.0.0.1", port, "GET",
                                         "/healthz", timeout=5)
        self.assertEqual((status, body.strip()), (200, b"ok"))
        self.assertTrue(os.path.getsize(log) > 0)

        if shutil.which("logrotate") is None:
            self.skipTest("logrotate is not installed here")
        with open(LOGROTATE) as f:
            snippet = f.read()
        me = pwd.getpwuid(os.getuid()).pw_name
        snippet = moved(snippet).replace("wheelmesh wheelmesh",
                                         "%s %s" % (me, me))
        reload_cmd = moved(self.one("ExecReload")).replace("$MAINPID",
                                                           str(pid))
        snippet = re.sub(r"(postrotate\n).*?(\n\s*endscript)",
                         r"\g<1>        %s\g<2>" % reload_cmd, snippet,
                         flags=re.S)
        rot = os.path.join(self.tmp, "logrotate.conf")
        with open(rot, "w") as f:
            f.write(snippet)
        os.chmod(os.path.join(self.tmp, "log"), 0o750)
        p = h.run(["logrotate", "-f", "-s",
                   os.path.join(self.tmp, "logrotate.state"), rot],
                  timeout=60)
        self.assertEqual(p.returncode, 0, h.describe(p))
        self.assertTrue(os.path.exists(log + ".1"), os.listdir(
            os.path.dirname(log)))
        # the node writes into the new file once it has reopened it
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            h.http_request("127.0.0.1", port, "PUT",
                           "/files/x-1.0-py3-none-any.whl", body=b"no")
            if os.path.exists(log) and os.path.getsize(log) > 0:
                break
            time.sleep(0.1)
        self.assertTrue(os.path.exists(log) and os.path.getsize(log) > 0,
                        "nothing logged into the new file after the "
                        "rotation")
        os.kill(pid, signal.SIGTERM)


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class JenkinsfileTest(unittest.TestCase):
    def test_points_pip_at_the_node_and_puts_wheels_back(self):
        with open(JENKINSFILE) as f:
            text = f.read()
        self.assertIn("PIP_INDEX_URL = 'http://127.0.0.1:7390/simple/'",
                      text)
        self.assertIn("--network host", text)
        self.assertIn("wheelmesh put", text)
        stages = re.findall(r"stage\('([^']+)'\)", text)
        self.assertEqual(stages[-1], "Build Stats", stages)

    def test_build_stats(self):
        """The Build Stats stage's script on a real node's figures, before
        and after a pip install that took 2 wheels from upstream."""
        with open(JENKINSFILE) as f:
            text = f.read()
        m = re.search(r"<<'PY'\n(.*?)\nPY\n", text, re.S)
        self.assertTrue(m, "no Build Stats script in the Jenkinsfile")
        script = m.group(1)
        tmp = h.tmpdir(type(self))
        index = upstream_index.StaticIndex(root=os.path.join(tmp, "index"))
        self.addCleanup(index.cleanup)
        index.add(make_wheel(tmp, "statsa", "1.0", size=3 << 20))
        index.add(make_wheel(tmp, "statsb", "1.0"))
        nginx = upstream_index.Nginx(index)
        self.addCleanup(nginx.cleanup)
        node = h.Node(config={"upstream": {"indexes": [{"url": nginx.url}]},
                              "node": {"name": "stats-agent"}})
        self.addCleanup(node.cleanup)
        before = os.path.join(tmp, "before.json")
        after = os.path.join(tmp, "after.json")
        with open(before, "w") as f:
            f.write(h.wm("status", "--node", node.url, "--json").stdout)
        env = h.venv(os.path.join(tmp, "venv"))
        p = env.run_pip("install", "--index-url", node.url + "/simple/",
                        "statsa", "statsb")
        self.assertEqual(p.returncode, 0, h.describe(p))
        with open(after, "w") as f:
            f.write(h.wm("status", "--node", node.url, "--json").stdout)
        p = h.run([h.PYTHON, "-", before, after], input=script)
        self.assertEqual(p.returncode, 0, h.describe(p))
        out = p.stdout
        self.assertIn("Build Stats (wheelmesh node stats-agent)", out)
        self.assertRegex(out, r"wheels from upstream:\s+2\n")
        self.assertRegex(out, r"wheels from peers:\s+0\n")
        self.assertRegex(out, r"bytes from upstream:\s+3\.0 MiB\n")


class DaemonSetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import yaml
        except ImportError:
            raise unittest.SkipTest("python3-yaml is not installed "
                                    "(./dev.sh installs it)")
        with open(DAEMONSET) as f:
            cls.docs = [d for d in yaml.safe_load_all(f) if d]
        cls.by_kind = {d["kind"]: d for d in cls.docs}

    def test_one_node_per_host_on_the_host_network(self):
        ds = self.by_kind["DaemonSet"]
        spec = ds["spec"]["template"]["spec"]
        self.assertTrue(spec["hostNetwork"])
        self.assertEqual(spec["dnsPolicy"], "ClusterFirstWithHostNet")
        self.assertTrue(spec["securityContext"]["runAsNonRoot"])
        self.assertEqual(spec["securityContext"]["runAsUser"], 7390)
        (c,) = spec["containers"]
        for probe in ("readinessProbe", "livenessProbe"):
            get = c[probe]["httpGet"]
            self.assertEqual((get["path"], get["port"]), ("/healthz", 7390))
        vols = {v["name"]: v for v in spec["volumes"]}
        self.assertEqual(vols["data"]["hostPath"]["path"],
                         "/var/lib/wheelmesh")
        self.assertEqual(vols["keys"]["secret"]["secretName"],
                         "wheelmesh-keys")
        self.assertEqual(vols["keys"]["secret"]["defaultMode"], 0o400)
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        self.assertEqual(mounts["data"], "/data")
        self.assertNotIn("keys", mounts, "the Secret itself reaches the "
                         "node only through the init container's copy")
        # the selector matches the pods and the Service
        labels = ds["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(ds["spec"]["selector"]["matchLabels"], labels)
        svc = self.by_kind["Service"]
        self.assertEqual(svc["spec"]["selector"], labels)
        self.assertEqual(svc["spec"]["clusterIP"], "None")

    def test_config_is_valid_and_trusts_publishers(self):
        h.require_binary()
        cm = self.by_kind["ConfigMap"]
        text = cm["data"]["node.json"].replace("@HOST_IP@", "10.0.0.5")
        cfg = json.loads(text)
        cl = cfg["cluster"]
        self.assertEqual(cl["publishers"], cl["trusted_keys"],
                         "a fleet that trusts every agent names the "
                         "trusted keys as publishers")
        ds = self.by_kind["DaemonSet"]["spec"]["template"]["spec"]
        (c,) = ds["containers"]
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        self.assertIn(os.path.dirname(cl["trusted_keys"]), mounts)
        self.assertIn(os.path.dirname(cfg["node"]["identity"]), mounts)
        self.assertEqual(cfg["http"]["listen"], "127.0.0.1:7390")
        tmp = h.tmpdir(type(self))
        path = os.path.join(tmp, "node.json")
        with open(path, "w") as f:
            f.write(text)
        p = h.wm("node", "--check", "-c", path)
        self.assertEqual(p.returncode, 0, h.describe(p))
        # the init container writes the config the node reads
        init = ds["initContainers"][0]
        script = init["command"][-1]
        env = {e["name"]: e["value"] for e in c.get("env", [])}
        self.assertIn(env["WHEELMESH_CONFIG"], script)
        self.assertIn("--check", script)


if __name__ == "__main__":
    unittest.main()
