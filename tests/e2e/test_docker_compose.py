"""docker/compose.yml on a real Docker engine: three nodes and an nginx
upstream on a bridge network. The nodes make their keys at first start and
share the trusted keys (also the publishers) through a volume; a wheel put
on node1 is installed by pip in a container on the network through node2;
with node1 stopped, node3 still serves it (from node2); a BuildKit build on
Docker's default bridge installs through a node published on the bridge's
gateway (the "node reached over the bridge" variant of
docker/build-step.Dockerfile) without asking upstream; `down -v` leaves
nothing behind.

Needs a Docker engine (see dockerlib.py)."""

import json
import os
import shutil
import tempfile
import time
import unittest

import dockerlib as dl
import harness as h
import upstream_index
from makewheel import make_wheel

COMPOSE_FILE = os.path.join(dl.REPO, "docker", "compose.yml")


def setUpModule():
    dl.module_engine()
    for tag in (dl.NODE_IMAGE, dl.UPSTREAM_IMAGE, dl.PYTHON_IMAGE):
        dl.build(tag)


class ComposeClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wm-compose-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        os.chmod(cls.tmp, 0o755)
        # upstream: one project only upstream has
        cls.index = upstream_index.StaticIndex(
            root=os.path.join(cls.tmp, "index"))
        cls.index.add(make_wheel(cls.tmp, "updep", "1.0", size=50000))
        for root, dirs, files in os.walk(cls.index.root):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        cls.project = dl.unique("wmcompose").replace("-", "")
        cls.gateway = dl.bridge_gateway()
        cls.ports = [h.free_port() for _ in range(3)]
        cls.env = {
            "WHEELMESH_IMAGE": dl.NODE_IMAGE,
            "WHEELMESH_UPSTREAM_IMAGE": dl.UPSTREAM_IMAGE,
            "WHEELMESH_UPSTREAM_DIR": cls.index.root,
            # published on the default bridge's gateway: reachable from
            # build steps on that bridge, not from the LAN
            "WHEELMESH_HTTP_BIND": cls.gateway,
            "WHEELMESH_PORT1": str(cls.ports[0]),
            "WHEELMESH_PORT2": str(cls.ports[1]),
            "WHEELMESH_PORT3": str(cls.ports[2]),
        }
        cls.addClassCleanup(cls.down)
        p = cls.compose("up", "-d", "--no-build", timeout=300)
        if p.returncode != 0:
            raise dl.DockerError(dl.describe(p) + cls.logs())
        cls.network = cls.project + "_mesh"
        for n in ("node1", "node2", "node3"):
            dl.wait_healthy(cls.container(n), timeout=90)

    @classmethod
    def compose(cls, *args, timeout=180):
        return dl.run([dl.COMPOSE, "-p", cls.project, "-f", COMPOSE_FILE]
                      + list(args), env=cls.env, timeout=timeout)

    @classmethod
    def down(cls):
        p = cls.compose("down", "-v", "--remove-orphans", "-t", "10")
        if p.returncode != 0:
            raise dl.DockerError(dl.describe(p))

    @classmethod
    def container(cls, service):
        return "%s_%s_1" % (cls.project, service)

    @classmethod
    def logs(cls):
        p = cls.compose("logs", "--no-color", "--tail", "40")
        return "\n--- compose logs ---\n" + p.stdout + p.stderr

    def exec(self, service, *args, check=True):
        p = dl.docker("exec", self.container(service), *args)
        if check and p.returncode != 0:
            self.fail(dl.describe(p) + self.logs())
        return p

    def status(self, service):
        return json.loads(self.exec(service, "wheelmesh", "status",
                                    "--json").stdout)

    def wait(self, what, pred, timeout=30):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = pred()
            if last:
                return last
            time.sleep(0.5)
        self.fail("timed out waiting for %s (last: %r)%s"
                  % (what, last, self.logs()))

    def upstream_requests(self, substring):
        p = dl.docker("logs", self.container("upstream"))
        return sum(1 for ln in p.stdout.splitlines()
                   if ln.startswith("200 GET") and substring in ln)

    def pip(self, node, *reqs, network=None):
        """pip install REQS in a fresh container on the cluster's network
        through NODE's index."""
        return dl.docker(
            "run", "--rm", "--label", dl.LABEL, "--network",
            network or self.network, dl.PYTHON_IMAGE, "pip", "install",
            "--no-cache-dir", "--retries", "0", "--timeout", "30",
            "--index-url", "http://%s:7390/simple/" % node,
            "--trusted-host", node, *reqs, timeout=300)

    def test_cluster(self):
        # keys made at first start, shared through the volume
        keys = self.exec("node1", "sh", "-c",
                         "grep -v '^#' /cluster/trusted_keys").stdout.split()
        self.assertEqual(len(set(keys)), 3, keys)
        ids = {}
        for n in ("node1", "node2", "node3"):
            st = self.status(n)
            ids[n] = st["node"]["id"]
            self.assertEqual(st["node"]["name"], n)
        self.assertEqual(sorted(ids.values()), sorted(keys))
        self.wait("every node to see two others alive", lambda: all(
            self.status(n)["cluster"]["alive"] == 2
            for n in ("node1", "node2", "node3")))

        # a wheel put on node1 ...
        w = make_wheel(self.tmp, "meshdep", "1.0", size=2 << 20)
        dl.docker("cp", w, self.container("node1") + ":/tmp/", check=True)
        p = self.exec("node1", "wheelmesh", "put",
                      "/tmp/" + os.path.basename(w))
        self.assertIn("stored", p.stdout)
        self.wait("node2 to list meshdep", lambda: "meshdep-1.0" in self.exec(
            "node2", "curl", "-fsS", "http://127.0.0.1:7390/simple/meshdep/",
            check=False).stdout)

        # ... is installed through node2 by pip in a container on the
        # network, with a project only upstream has
        p = self.pip("node2", "meshdep==1.0", "updep==1.0")
        self.assertEqual(p.returncode, 0, dl.describe(p) + self.logs())
        self.assertIn("Successfully installed", p.stdout)
        st = self.status("node2")
        self.assertGreaterEqual(st["hits"]["peer"], 1, st)
        self.assertEqual(self.upstream_requests("/packages/updep-1.0-"), 1)
        self.assertEqual(self.upstream_requests("meshdep"), 0,
                         "upstream asked for a wheel a node holds")

        # node1 stops; the others still serve its wheel (node2 has it)
        p = self.compose("stop", "-t", "10", "node1")
        self.assertEqual(p.returncode, 0, dl.describe(p))
        self.wait("node3 to see node1 gone", lambda: any(
            m["id"] == ids["node1"] and m["state"] in ("suspect", "dead")
            for m in self.status("node3")["members"]), timeout=20)
        p = self.pip("node3", "meshdep==1.0")
        self.assertEqual(p.returncode, 0, dl.describe(p) + self.logs())
        for n in ("node2", "node3"):
            self.assertEqual(self.exec(n, "curl", "-fsS",
                                       "http://127.0.0.1:7390/healthz")
                             .stdout.strip(), "ok")

        # BuildKit on the default bridge, through node3 published on the
        # bridge's gateway: the project Dockerfile as an agent builds it
        proj = os.path.join(self.tmp, "project")
        os.mkdir(proj)
        with open(os.path.join(proj, "requirements.txt"), "w") as f:
            f.write("meshdep==1.0\nupdep==1.0\n")
        with open(os.path.join(proj, "app.py"), "w") as f:
            f.write("import meshdep, updep\nprint(meshdep.__version__)\n")
        tag = "wheelmesh-test/app-bridge:latest"
        dl.build(tag, "docker/build-step.Dockerfile", os.path.relpath(
            proj, dl.REPO), build_args={
                "BASE": dl.PYTHON_IMAGE,
                "PIP_INDEX_URL": "http://%s:%d/simple/"
                % (self.gateway, self.ports[2]),
                "PIP_TRUSTED_HOST": self.gateway}, extra=["--no-cache"])
        p = dl.docker("run", "--rm", tag, "python", "app.py")
        self.assertEqual(p.stdout.strip(), "1.0", dl.describe(p))
        self.assertEqual(self.upstream_requests("/packages/updep-1.0-"), 1,
                         "the bridge build went upstream")
        self.assertEqual(self.upstream_requests("meshdep"), 0)


class ComposeLeavesNothingTest(unittest.TestCase):
    def test_down_removes_everything(self):
        """`down -v` removes the project's containers, volumes and network
        (its own small project: upstream and node1)."""
        env = {"WHEELMESH_IMAGE": dl.NODE_IMAGE,
               "WHEELMESH_UPSTREAM_IMAGE": dl.UPSTREAM_IMAGE,
               "WHEELMESH_UPSTREAM_DIR": tempfile.mkdtemp(prefix="wm-up-"),
               "WHEELMESH_PORT1": str(h.free_port()),
               "WHEELMESH_PORT2": str(h.free_port()),
               "WHEELMESH_PORT3": str(h.free_port())}
        self.addCleanup(shutil.rmtree, env["WHEELMESH_UPSTREAM_DIR"], True)
        project = dl.unique("wmcompose").replace("-", "")
        base = [dl.COMPOSE, "-p", project, "-f", COMPOSE_FILE]
        self.addCleanup(dl.run, base + ["down", "-v", "-t", "5"], env=env)
        p = dl.run(base + ["up", "-d", "--no-build", "upstream", "node1"],
                   env=env, timeout=300)
        self.assertEqual(p.returncode, 0, dl.describe(p))
        p = dl.run(base + ["down", "-v", "-t", "10"], env=env, timeout=120)
        self.assertEqual(p.returncode, 0, dl.describe(p))
        label = "label=com.docker.compose.project=" + project
        for what in (["ps", "-a", "-q"], ["volume", "ls", "-q"],
                     ["network", "ls", "-q"]):
            p = dl.docker(*what, "--filter", label, check=True)
            self.assertEqual(p.stdout.strip(), "", "left by down -v: %s"
                             % " ".join(what))


if __name__ == "__main__":
    unittest.main()
