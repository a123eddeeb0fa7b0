"""docker/Dockerfile on a real Docker engine: the image builds (the binary
alone, no Python in the build), runs as a non-root user owning /data,
reports healthy through its HEALTHCHECK on /healthz, takes its config and
key from a volume, serves pip, and stops cleanly on `docker stop`.

Needs a Docker engine (see dockerlib.py): skipped where none can be had,
failed when CI is set and none can be had."""

import json
import os
import shutil
import stat
import tempfile
import time
import unittest

import cluster_util as cu
import dockerlib as dl
import harness as h
from makewheel import make_wheel

UID = 7390  # the image's wheelmesh user (docker/Dockerfile)


def setUpModule():
    dl.module_engine()
    dl.build(dl.NODE_IMAGE)


class ImageTest(unittest.TestCase):
    def setUp(self):
        self.c = dl.Containers()
        self.addCleanup(self.c.cleanup)
        self.tmp = tempfile.mkdtemp(prefix="wm-docker-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_image_metadata(self):
        cfg = dl.image_config(dl.NODE_IMAGE)
        self.assertEqual(cfg["User"], "wheelmesh:wheelmesh")
        self.assertIn("/data", cfg["Volumes"])
        self.assertEqual(cfg["Entrypoint"], ["wheelmesh-entrypoint"])
        health = " ".join(cfg["Healthcheck"]["Test"])
        self.assertIn("WHEELMESH_HEALTH_URL", health)
        env = dict(e.split("=", 1) for e in cfg["Env"])
        self.assertTrue(env["WHEELMESH_HEALTH_URL"].endswith("/healthz"))
        # slim: the runtime has no compiler, no headers, no Python
        p = dl.docker("run", "--rm", "--entrypoint", "sh", dl.NODE_IMAGE,
                      "-c", "command -v gcc cmake python3 || echo none",
                      check=True)
        self.assertEqual(p.stdout.strip(), "none", dl.describe(p))
        p = dl.docker("run", "--rm", dl.NODE_IMAGE, "--version", check=True)
        self.assertIn(h.project_version(), p.stdout)

    def test_config_and_key_from_a_volume(self):
        """The agent's set-up: host network, /etc/wheelmesh from the host
        (config + key, read-only), data in a named volume."""
        etc = os.path.join(self.tmp, "etc")
        os.mkdir(etc)
        key = cu.Key(os.path.join(etc, "node.key"))
        os.chown(key.path, UID, UID)  # mode 0600: the node's user alone
        port = h.free_port()
        config = {
            "node": {"name": "docker-agent", "identity":
                     "/etc/wheelmesh/node.key"},
            "http": {"listen": "127.0.0.1:%d" % port},
            "cluster": {"listen": "tcp://127.0.0.1:%d" % h.free_port()},
            "upstream": {"indexes": []},
        }
        with open(os.path.join(etc, "node.json"), "w") as f:
            json.dump(config, f)
        os.chmod(etc, 0o755)
        os.chmod(os.path.join(etc, "node.json"), 0o644)
        data = self.c.volume()
        name = self.c.run(
            dl.NODE_IMAGE, options=[
                "--network", "host", "-v", "%s:/data" % data,
                "-v", "%s:/etc/wheelmesh:ro" % etc,
                "-e", "WHEELMESH_HEALTH_URL=http://127.0.0.1:%d/healthz"
                % port])
        dl.wait_healthy(name, timeout=60)

        node = h.Node(start=False, port=port)
        self.addCleanup(shutil.rmtree, node.dir, True)
        st = node.status()
        self.assertEqual(st["node"]["name"], "docker-agent")
        self.assertEqual(st["node"]["id"], key.pub,
                         "the node did not use the key from the volume")
        # runs as the image's user, which owns /data
        p = dl.docker("exec", name, "sh", "-c", "id -u; stat -c %u /data; "
                      "ls /data", check=True)
        lines = p.stdout.split()
        self.assertEqual(lines[:2], [str(UID), str(UID)], p.stdout)
        self.assertNotIn("node.key", lines[2:], "made a key of its own")

        # publish a wheel the way an agent's build does, then pip on the
        # host installs it through the container
        w = make_wheel(self.tmp, "dockerdep", "1.0", size=200000)
        dl.docker("cp", w, name + ":/tmp/", check=True)
        url = "http://127.0.0.1:%d" % port
        p = dl.docker("exec", name, "wheelmesh", "put", "--node", url,
                      "/tmp/" + os.path.basename(w))
        self.assertEqual(p.returncode, 0, dl.describe(p))
        self.assertIn("stored", p.stdout)
        env = h.venv(os.path.join(self.tmp, "venv"))
        proc = env.run_pip("install", "--index-url",
                           "http://127.0.0.1:%d/simple/" % port, "dockerdep")
        self.assertEqual(proc.returncode, 0, h.describe(proc))
        p = dl.docker("exec", name, "wheelmesh", "status", "--node", url,
                      check=True)
        self.assertRegex(p.stdout, r"cache\s+1 wheels?, 19\d\.\d KiB")

        # docker stop: SIGTERM, a clean exit well within the grace period
        t0 = time.monotonic()
        dl.docker("stop", "-t", "10", name, check=True)
        took = time.monotonic() - t0
        p = dl.docker("inspect", "--format", "{{.State.ExitCode}}", name,
                      check=True)
        self.assertEqual(p.stdout.strip(), "0", dl.Containers.logs(name))
        self.assertLess(took, 5, "docker stop took %.1f s" % took)

        # the volume keeps the cache: a new container serves it at once
        name2 = self.c.run(
            dl.NODE_IMAGE, options=[
                "--network", "host", "-v", "%s:/data" % data,
                "-v", "%s:/etc/wheelmesh:ro" % etc,
                "-e", "WHEELMESH_HEALTH_URL=http://127.0.0.1:%d/healthz"
                % port])
        dl.wait_healthy(name2, timeout=60)
        self.assertEqual(node.status()["cache"]["files"], 1)

    def test_without_config_it_runs_alone(self):
        """No config in the volume: defaults, the key made in /data, a
        healthy node on the container's own loopback."""
        name = self.c.run(dl.NODE_IMAGE)
        dl.wait_healthy(name, timeout=60)
        p = dl.docker("exec", name, "wheelmesh", "status")
        self.assertEqual(p.returncode, 0, dl.describe(p))
        self.assertIn("members   none", p.stdout)
        p = dl.docker("exec", name, "stat", "-c", "%u %a", "/data/node.key",
                      check=True)
        self.assertEqual(p.stdout.split(), [str(UID), "600"])

    def test_bad_config_fails_and_says_why(self):
        etc = os.path.join(self.tmp, "bad")
        os.mkdir(etc)
        with open(os.path.join(etc, "node.json"), "w") as f:
            f.write('{"http": {"listen": "nowhere"}}\n')
        os.chmod(etc, 0o755)
        os.chmod(os.path.join(etc, "node.json"),
                 stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        p = self.c.run(dl.NODE_IMAGE, detach=False, check=False,
                       options=["-v", "%s:/etc/wheelmesh:ro" % etc])
        self.assertNotEqual(p.returncode, 0, dl.describe(p))
        self.assertIn("http.listen", p.stderr, dl.describe(p))


if __name__ == "__main__":
    unittest.main()
