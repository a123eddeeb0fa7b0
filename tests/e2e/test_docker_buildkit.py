"""BuildKit builds through the agent's node, on a real Docker engine, the
way docker/build-step.Dockerfile says: `docker build --network host
--build-arg PIP_INDEX_URL=http://127.0.0.1:PORT/simple/`. Agent 1's build
fills its node from the upstream (nginx on loopback); agent 2 (another node
of the cluster, and an empty BuildKit cache: --no-cache) then builds the
same project and installs everything from its peer: upstream serves no
wheel a second time. (The variant on the default bridge is in
test_docker_compose.py.)

Needs a Docker engine (see dockerlib.py)."""

import os
import shutil
import tempfile
import unittest

import cluster_util as cu
import dockerlib as dl
import harness as h
import upstream_index
from makewheel import make_wheel

APP = "wheelmesh-test/app-host:latest"


def setUpModule():
    dl.module_engine()
    dl.build(dl.PYTHON_IMAGE)


class HostNetworkBuildTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = h.tmpdir(cls)
        cls.index = upstream_index.StaticIndex(
            root=os.path.join(cls.tmp, "index"))
        cls.reqs = []
        for i in range(4):
            name = "bkdep%d" % i
            cls.index.add(make_wheel(cls.tmp, name, "1.0",
                                     size=(8 << 20) if i == 0 else 20000))
            cls.reqs.append("%s==1.0" % name)
        cls.nginx = upstream_index.Nginx(cls.index)
        cls.addClassCleanup(cls.nginx.cleanup)
        _, keys = cu.make_keys(cls, ["agent1", "agent2"])
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        # a small fleet that trusts every agent: the trusted keys are also
        # the publishers
        extra = {"cluster": {"publishers": trusted}}
        cls.a1 = cu.ClusterNode(keys["agent1"], trusted=trusted,
                                upstream=cls.nginx.url, config=extra,
                                label="agent1")
        cls.addClassCleanup(cls.a1.cleanup)
        cls.a2 = cu.ClusterNode(keys["agent2"], trusted=trusted,
                                seeds=[cls.a1.cluster_addr],
                                upstream=cls.nginx.url, config=extra,
                                label="agent2")
        cls.addClassCleanup(cls.a2.cleanup)
        cls.wait = cu.Waiter([cls.a1, cls.a2])
        cls.wait(lambda: cls.a2.member_state(cls.a1.id) == "alive",
                 "agent2 to see agent1 alive", timeout=20)
        cls.project = tempfile.mkdtemp(prefix="wm-bk-project-")
        cls.addClassCleanup(shutil.rmtree, cls.project, True)
        with open(os.path.join(cls.project, "requirements.txt"), "w") as f:
            f.write("\n".join(cls.reqs) + "\n")
        with open(os.path.join(cls.project, "app.py"), "w") as f:
            f.write("import bkdep0, bkdep3\nprint(bkdep0.__version__)\n")

    def build(self, node, no_cache=False):
        return dl.build(APP, "docker/build-step.Dockerfile",
                        os.path.relpath(self.project, dl.REPO),
                        network="host", build_args={
                            "BASE": dl.PYTHON_IMAGE,
                            "PIP_INDEX_URL": node.url + "/simple/"},
                        extra=["--no-cache"] if no_cache else [])

    def wheel_requests(self):
        return self.nginx.requests("/packages/", status=200)

    def test_second_agent_builds_from_its_peer(self):
        self.build(self.a1)
        p = dl.docker("run", "--rm", APP, "python", "app.py")
        self.assertEqual(p.stdout.strip(), "1.0", dl.describe(p))
        self.assertEqual(self.wheel_requests(), 4, self.nginx.tail())
        # one member fetches each wheel from upstream for the cluster (the
        # designee), so agent 1 got some of them through agent 2
        hits = self.a1.status()["hits"]
        self.assertEqual(hits["upstream"] + hits["peer"], 4, hits)

        # agent 2: its own node, nothing in BuildKit's cache
        dl.docker("rmi", APP, check=True)
        # a node names a wheel only from the project's upstream page (a
        # peer's holding names nothing), so ask per project as pip will
        self.wait(lambda: all("bkdep%d-1.0-py3-none-any.whl" % i
                              in self.a2.held("bkdep%d" % i)
                              for i in range(4)),
                  "agent2 to know where every wheel is", timeout=20)
        self.build(self.a2, no_cache=True)
        p = dl.docker("run", "--rm", APP, "python", "app.py")
        self.assertEqual(p.stdout.strip(), "1.0", dl.describe(p))
        self.assertEqual(self.wheel_requests(), 4,
                         "agent 2's build went upstream\n" + self.nginx.tail())
        hits = self.a2.status()["hits"]
        self.assertEqual(hits["upstream"], 0, hits)
        self.assertEqual(hits["peer"] + hits["local"], 4, hits)


if __name__ == "__main__":
    unittest.main()
