"""A real Docker engine for the tests of docker/: bring it up, build the
project's images, run containers and compose projects, and take away
everything a test made.

Engine: `engine_up()` runs tests/docker/setup-docker.sh (installs Debian's
docker.io, docker-compose and debootstrap when missing, starts dockerd when
it is not running, makes the debian:12 base image with debootstrap once).
A module that started dockerd stops it, by its pid, when it is done
(`engine_down`). Under ctest the fixture tests e2e_docker_engine_up /
e2e_docker_engine_down do that once for all Docker tests
(`python3 dockerlib.py up|down STATEFILE`).

When no engine can be had (not root and Docker missing), the tests are
skipped -- except when the environment variable CI is set: there a missing
engine is a failure, so CI cannot pass without running them.

Images the tests build carry the label org.wheelmesh.test=1 and are removed
at the end (by the module, or by the fixture's clean-up under ctest, which
sets WHEELMESH_DOCKER_KEEP_IMAGES=1 for the modules in between so that each
image is built once). BuildKit's build cache is kept: building again is then
a matter of seconds (`docker builder prune` empties it).
"""

import json
import os
import signal
import subprocess
import sys
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
SETUP = os.path.join(REPO, "tests", "docker", "setup-docker.sh")
DOCKER = "/usr/bin/docker"      # Debian's CLI: BuildKit with DOCKER_BUILDKIT=1
COMPOSE = "/usr/bin/docker-compose"
LABEL = "org.wheelmesh.test=1"
SKIP_CODE = 77

# The project's images, as the tests tag them: tag -> (dockerfile, context).
IMAGES = {
    "wheelmesh-test/node:latest": ("docker/Dockerfile", "."),
    "wheelmesh-test/upstream:latest": ("docker/upstream.Dockerfile",
                                       "docker"),
    "wheelmesh-test/python:latest": ("tests/docker/python.Dockerfile",
                                     "tests/docker"),
}
NODE_IMAGE = "wheelmesh-test/node:latest"
UPSTREAM_IMAGE = "wheelmesh-test/upstream:latest"
PYTHON_IMAGE = "wheelmesh-test/python:latest"


class DockerError(AssertionError):
    pass


def in_ci():
    return bool(os.environ.get("CI"))


def run(args, timeout=600, env=None, input=None, check=False):
    """Runs ARGS (strings), capturing text; CHECK raises DockerError with
    the output when it fails."""
    full_env = dict(os.environ)
    full_env["DOCKER_BUILDKIT"] = "1"
    full_env.update(env or {})
    p = subprocess.run([str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout, env=full_env, input=input)
    if check and p.returncode != 0:
        raise DockerError(describe(p))
    return p


def describe(p):
    return ("command: %s\nexit: %s\n--- stdout\n%s\n--- stderr\n%s"
            % (" ".join(map(str, p.args)), p.returncode,
               (p.stdout or "")[-3000:], (p.stderr or "")[-5000:]))


def docker(*args, **kw):
    return run([DOCKER] + list(args), **kw)


# -- the engine ---------------------------------------------------------------


class Engine:
    """What engine_up() found: .started is the pid of the dockerd this
    process started (0: it was running already)."""

    def __init__(self, started):
        self.started = started


def engine_up():
    """Makes sure an engine answers. Returns an Engine; raises SkipTest
    when none can be had here (a failure under CI), DockerError when the
    set-up fails."""
    if not os.path.exists(SETUP):
        raise DockerError("missing " + SETUP)
    p = subprocess.run(["bash", SETUP], capture_output=True, text=True,
                       timeout=1200)
    if p.returncode == SKIP_CODE:
        why = (p.stderr.strip().splitlines() or ["no engine"])[-1]
        if in_ci():
            raise DockerError("CI is set and no Docker engine can be had "
                              "here: " + why)
        raise unittest.SkipTest(why)
    if p.returncode != 0:
        raise DockerError("setup-docker.sh failed\n" + describe(p))
    words = p.stdout.split()
    if len(words) != 2 or words[0] not in ("started", "running"):
        raise DockerError("setup-docker.sh said %r" % p.stdout)
    return Engine(int(words[1]) if words[0] == "started" else 0)


def stop_dockerd(pid, timeout=60):
    """SIGTERM to the dockerd with PID (only if it is a dockerd), then wait
    for it to exit."""
    if not pid:
        return
    try:
        with open("/proc/%d/comm" % pid) as f:
            if f.read().strip() != "dockerd":
                return
    except OSError:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
        time.sleep(0.2)
    if os.path.exists("/proc/%d" % pid):
        os.kill(pid, signal.SIGKILL)


def remove_test_images():
    """Removes every image labelled org.wheelmesh.test=1."""
    p = docker("images", "-q", "--filter", "label=" + LABEL)
    ids = sorted(set(p.stdout.split()))
    if ids:
        docker("rmi", "-f", *ids)


def keep_images():
    return os.environ.get("WHEELMESH_DOCKER_KEEP_IMAGES") == "1"


def module_engine():
    """engine_up() for a test module, with its clean-up registered: the
    images it built are removed (unless the ctest fixture keeps them), and a
    dockerd it started is stopped."""
    eng = engine_up()

    def down():
        if not keep_images():
            remove_test_images()
        stop_dockerd(eng.started)
    unittest.addModuleCleanup(down)
    return eng


# -- images -------------------------------------------------------------------


def build(tag, dockerfile=None, context=None, build_args=None, network=None,
          extra=(), timeout=1200):
    """docker build (BuildKit) of one of IMAGES (or DOCKERFILE in
    CONTEXT, both relative to the repository), labelled as a test image.
    Returns the CompletedProcess; raises DockerError when it fails."""
    if dockerfile is None:
        dockerfile, context = IMAGES[tag]
    args = ["build", "--label", LABEL, "-t", tag,
            "-f", os.path.join(REPO, dockerfile)]
    if network:
        args += ["--network", network]
    for k, v in (build_args or {}).items():
        args += ["--build-arg", "%s=%s" % (k, v)]
    args += list(extra) + [os.path.join(REPO, context)]
    p = docker(*args, timeout=timeout)
    if p.returncode != 0:
        raise DockerError("docker build of %s failed\n%s" % (tag,
                                                               describe(p)))
    return p


def build_all():
    """Builds every one of IMAGES at once (their apt steps and the
    compile overlap; BuildKit runs the builds side by side). Returns
    {tag: error text} for those that failed."""
    procs = {}
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    for tag, (dockerfile, context) in IMAGES.items():
        procs[tag] = subprocess.Popen(
            [DOCKER, "build", "--label", LABEL, "-t", tag, "-f",
             os.path.join(REPO, dockerfile), os.path.join(REPO, context)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env)
    failed = {}
    for tag, p in procs.items():
        out, _ = p.communicate(timeout=1800)
        if p.returncode != 0:
            failed[tag] = out[-3000:]
    return failed


def image_config(tag):
    p = docker("image", "inspect", tag, check=True)
    return json.loads(p.stdout)[0]["Config"]


def bridge_gateway():
    """The address of the host on Docker's default bridge (docker0)."""
    p = docker("network", "inspect", "bridge", check=True)
    net = json.loads(p.stdout)[0]
    for c in net["IPAM"]["Config"] or []:
        if c.get("Gateway"):
            return c["Gateway"]
    # dockerd leaves Gateway out when it took the bridge's address as it
    # found it: read it off the interface
    dev = net["Options"].get("com.docker.network.bridge.name", "docker0")
    p = run(["ip", "-4", "-o", "addr", "show", "dev", dev], check=True)
    return p.stdout.split()[3].split("/")[0]


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


class Containers:
    """Containers, networks and volumes a test made, removed by cleanup()
    (registered with addCleanup by the test)."""

    def __init__(self):
        self.containers, self.networks, self.volumes = [], [], []

    def run(self, image, *args, name=None, detach=True, options=(),
            timeout=300, check=True):
        name = name or unique("wm-test")
        self.containers.append(name)
        cmd = ["run", "--name", name, "--label", LABEL,
               # the image checks every 10 s; tests need not wait that long
               "--health-interval", "1s"]
        if detach:
            cmd.append("-d")
        cmd += list(options) + [image] + list(args)
        p = docker(*cmd, timeout=timeout)
        if check and p.returncode != 0:
            raise DockerError(describe(p) + "\n" + self.logs(name))
        return name if detach else p

    def network(self, name=None):
        name = name or unique("wm-test-net")
        docker("network", "create", "--label", LABEL, name, check=True)
        self.networks.append(name)
        return name

    def volume(self, name=None):
        name = name or unique("wm-test-vol")
        docker("volume", "create", "--label", LABEL, name, check=True)
        self.volumes.append(name)
        return name

    @staticmethod
    def logs(name, tail=60):
        p = docker("logs", "--tail", str(tail), name, timeout=30)
        return "--- docker logs %s ---\n%s%s" % (name, p.stdout, p.stderr)

    def cleanup(self):
        if self.containers:
            docker("rm", "-f", "-v", *self.containers, timeout=120)
        for n in self.networks:
            docker("network", "rm", n, timeout=60)
        if self.volumes:
            docker("volume", "rm", "-f", *self.volumes, timeout=60)
        self.containers, self.networks, self.volumes = [], [], []


def wait_healthy(name, timeout=60):
    """Waits until container NAME's HEALTHCHECK says healthy; returns the
    health record. Raises DockerError with the log otherwise."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        p = docker("inspect", "--format", "{{json .State}}", name)
        if p.returncode == 0:
            state = json.loads(p.stdout)
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return state["Health"]
            if not state.get("Running"):
                break
        time.sleep(0.5)
    raise DockerError("container %s not healthy after %.0f s (state %s)\n%s"
                      % (name, timeout, json.dumps(state)[:1500],
                         Containers.logs(name)))


# -- ctest fixture --------------------------------------------------------------


def main(argv):
    """python3 dockerlib.py up|down STATEFILE -- the ctest fixture."""
    if len(argv) != 3 or argv[1] not in ("up", "down"):
        sys.stderr.write("usage: dockerlib.py up|down STATEFILE\n")
        return 2
    state = argv[2]
    if argv[1] == "up":
        try:
            eng = engine_up()
        except unittest.SkipTest as e:
            print("no Docker engine: %s (the Docker tests will skip)" % e)
            return 0
        with open(state, "w") as f:
            json.dump({"started": eng.started}, f)
        # the images the tests use, built side by side once; a failure
        # here shows again, with its log, in the test that needs the image
        t0 = time.monotonic()
        failed = build_all()
        for tag, out in failed.items():
            print("building %s failed:\n%s" % (tag, out))
        print("images built in %.0f s" % (time.monotonic() - t0))
        print("Docker engine ready%s" % (" (dockerd %d started here)"
                                          % eng.started if eng.started
                                          else ""))
        return 0
    try:
        with open(state) as f:
            started = json.load(f).get("started", 0)
    except (OSError, ValueError):
        return 0
    os.unlink(state)
    if os.path.exists(DOCKER):
        remove_test_images()
    if started:
        stop_dockerd(started)
        print("stopped dockerd %d" % started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
