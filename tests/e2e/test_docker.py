"""The docker/ files, checked without a Docker engine: the image's runtime
packages exist in Debian 12 (they are what the -dev packages pull in), its
entrypoint starts a working node, and the build step's pip command installs
through that node."""

import json
import os
import re
import subprocess
import unittest

import harness
import makewheel

DOCKER = os.path.join(harness.HERE, "..", "..", "docker")


def dockerfile(name):
    with open(os.path.join(DOCKER, name)) as f:
        # Join continuation lines so each instruction is one line.
        return re.sub(r"\\\n\s*", " ", f.read())


class DockerSteps(unittest.TestCase):
    def test_runtime_packages_are_real(self):
        text = dockerfile("Dockerfile")
        runtime = text.split("FROM debian:12-slim", 1)[1]
        line = re.search(r"apt-get install -y --no-install-recommends ([^&]+)",
                         runtime).group(1)
        for pkg in line.split():
            if pkg == "ca-certificates":
                continue
            proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                                  capture_output=True, text=True)
            self.assertIn("ok installed", proc.stdout,
                          "runtime package %s of docker/Dockerfile is not "
                          "what the build's -dev packages installed" % pkg)

    def test_entrypoint_and_build_step(self):
        text = dockerfile("Dockerfile")
        entry = json.loads(re.search(r"ENTRYPOINT (\[.*\])", text).group(1))
        self.assertEqual(entry[:2], ["wheelmesh", "node"])
        node = harness.Node(start=False)
        self.addCleanup(node.cleanup)
        # The image's arguments, with /data mapped to the test's data dir.
        args = [harness.BIN] + entry[1:]
        args = [node.data if a == "/data" else a for a in args]
        args += ["--http", "127.0.0.1:%d" % node.port, "-c",
                 node.config_path]
        node.argv = lambda: args
        node.start()

        wheels = os.path.join(node.dir, "wheels")
        os.mkdir(wheels)
        path = makewheel.make_wheel(wheels, "dockerdep", "1.0")
        self.assertEqual(node.put(path)[0], 201)

        step = dockerfile("build-step.Dockerfile")
        run = re.search(r"RUN --network=host (pip install .*)", step).group(1)
        argv = run.split()
        self.assertIn("--index-url", argv)
        argv[argv.index("--index-url") + 1] = node.url + "/simple/"
        reqs = os.path.join(node.dir, "requirements.txt")
        with open(reqs, "w") as f:
            f.write("dockerdep==1.0\n")
        argv[argv.index("-r") + 1] = reqs
        env = harness.venv(os.path.join(node.dir, "venv"))
        proc = env.run_pip(*argv[1:])  # argv[0] is "pip"
        self.assertEqual(proc.returncode, 0, harness.describe(proc))
        proc = env.run_python("import importlib.metadata as m;"
                              "print(m.version('dockerdep'))")
        self.assertEqual(proc.stdout.strip(), "1.0", harness.describe(proc))


if __name__ == "__main__":
    unittest.main()
