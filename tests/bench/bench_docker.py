#!/usr/bin/python3
"""The seed's Docker caching strategies, measured side by side on one
workload: BuildKit builds of a project whose requirements are one ~500 MB
wheel and 40 small ones, from an nginx upstream behind a 200 Mbit/s tbf
link.

Not part of the test suite. Run it as root with /usr/bin/python3 (network
namespaces, tc, private dockerds); see tests/bench/README.md.

Strategies (each a Dockerfile the bench writes into its project directory):
  none       `docker build --no-cache`, pip straight from upstream
  mount      RUN --mount=type=cache,target=/root/.cache/pip
  inline     inline cache: BUILDKIT_INLINE_CACHE=1, pushed to a local registry
             (Debian's docker-registry on loopback), --cache-from it
  base       a pre-built base image with the requirements installed, pushed
             to that registry; the app image is FROM it
  wheelmesh  pip through the agent's node (--network host, PIP_INDEX_URL)

Agents: each agent is a private dockerd (its own data root: its own image
store and BuildKit cache) started by the bench, and for wheelmesh a node on
the host's loopback; the two nodes form a cluster. Scenarios, per strategy,
with fresh agents:
  a1 cold    agent 1, nothing cached anywhere
  a1 warm    agent 1 again, the application's source changed
  a2 first   agent 2's first build of the same commit
  changed    agent 1, one small requirement bumped (the pip layer is invalid)
Each is timed from the start of the job's Docker commands to their end,
pushes and pulls included, and the bytes the upstream nginx sent are taken
from its access log. The reference, measured in the same invocation, is
`none` on agent 1 cold: every figure is also printed as a ratio to it.

Clean-up (also on Ctrl-C / SIGTERM): the private dockerds are stopped by
pid and their directories removed, the registry, nginx and nodes stopped,
the namespace deleted.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import MiB, BenchError, find_binary, log
import bench_upstream as bu   # the capped link and nginx in a namespace
import harness                # noqa: E402
import makewheel              # noqa: E402
import upstream_index         # noqa: E402
import dockerlib              # noqa: E402

# The link of bench_upstream, under names of its own (both may run at once).
bu.NS = "wmbench-dk"
bu.VETH_ROOT = "wmbench-dk0"
bu.VETH_NS = "wmbench-dk1"
bu.ADDR_ROOT = "10.97.0.1"
bu.ADDR_NS = "10.97.0.2"
bu.OWNER_FILE = "/run/wmbench-dk.owner"

DOCKERD = "/usr/sbin/dockerd"
REGISTRY = "/usr/bin/docker-registry"
STRATEGIES = ["none", "mount", "inline", "base", "wheelmesh"]
SCENARIOS = ["a1 cold", "a1 warm", "a2 first", "changed"]
BASE_IMAGE = "bench/python:3.11"   # the python image, loaded into each agent

DOCKERFILES = {
    # pip straight from upstream; built with --no-cache every time
    "none": """\
ARG BASE
FROM ${BASE}
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY app.py .
""",
    # BuildKit cache mount: pip's own cache survives on this agent
    "mount": """\
ARG BASE
FROM ${BASE}
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
WORKDIR /app
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt
COPY app.py .
""",
    # the base image's requirements were installed when it was built
    "base-image": """\
ARG BASE
FROM ${BASE}
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
""",
}
DOCKERFILES["inline"] = DOCKERFILES["none"]
DOCKERFILES["wheelmesh"] = DOCKERFILES["none"]
DOCKERFILES["base"] = DOCKERFILES["none"]   # FROM the pre-built base


class Terminated(BaseException):
    pass


def _terminated(signum, frame):
    raise Terminated()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    """A build agent: a private dockerd with its own image store and
    BuildKit cache, no bridge (builds use --network host)."""

    def __init__(self, name, workdir):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="%s-" % name, dir=workdir)
        self.sock = os.path.join(self.dir, "d.sock")
        self.log = open(os.path.join(self.dir, "dockerd.log"), "wb")
        self.proc = subprocess.Popen(
            [DOCKERD, "--data-root", os.path.join(self.dir, "root"),
             "--exec-root", os.path.join(self.dir, "x"),
             "--pidfile", os.path.join(self.dir, "d.pid"),
             "-H", "unix://" + self.sock, "--bridge=none",
             "--iptables=false", "--ip-masq=false"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while self.docker("info", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("dockerd for %s did not start; see %s"
                                 % (name, self.log.name))
            time.sleep(0.3)

    def docker(self, *args, check=True, timeout=1800):
        env = dict(os.environ, DOCKER_HOST="unix://" + self.sock,
                   DOCKER_BUILDKIT="1")
        p = subprocess.run([dockerlib.DOCKER] + list(args), env=env,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise BenchError("%s: docker %s failed (%d)\n%s" % (
                self.name, " ".join(args[:3]), p.returncode,
                (p.stderr or p.stdout)[-3000:]))
        return p

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # nothing is mounted under a stopped dockerd's root; be sure
        subprocess.run(["sh", "-c", "grep -o ' %s[^ ]*' /proc/mounts | "
                        "sort -r | xargs -r -n1 umount -l" % self.dir],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Registry:
    """Debian's docker-registry on 127.0.0.1 (pushes to loopback are
    allowed over plain HTTP)."""

    def __init__(self, workdir):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="registry-", dir=workdir)
        conf = os.path.join(self.dir, "config.yml")
        with open(conf, "w") as f:
            f.write("version: 0.1\nlog: {level: error}\n"
                    "storage: {filesystem: {rootdirectory: %s}}\n"
                    "http: {addr: 127.0.0.1:%d}\n"
                    % (os.path.join(self.dir, "data"), self.port))
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen([REGISTRY, "serve", conf],
                                     stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1):
                    break
            except OSError:
                if self.proc.poll() is not None or \
                        time.monotonic() > deadline:
                    raise BenchError("docker-registry did not start")
                time.sleep(0.1)

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_times():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def nginx_bytes(nginx):
    """(requests, bytes) nginx sent for wheels and pages so far."""
    n = b = 0
    for e in nginx.entries(settle=0.3):
        n += 1
        b += e["bytes"]
    return n, b


def make_workload(root, big_mb, small_count, small_mb):
    """The upstream tree: dkb-big 1.0, dkb-pkg-NN 1.0 and dkb-pkg-00 2.0
    (the bumped requirement). Returns (index, requirements v1, v2)."""
    index = upstream_index.StaticIndex(root=os.path.join(root, "index"))
    wheels = os.path.join(root, "wheels")
    os.mkdir(wheels)
    log("writing the wheels (%d MiB + %d x %g MiB)" % (big_mb, small_count,
                                                        small_mb))
    index.add(makewheel.make_wheel(wheels, "dkb-big", "1.0",
                                   size=big_mb * MiB, seed=1), write=False)
    reqs = ["dkb-big==1.0"]
    for i in range(small_count):
        name = "dkb-pkg-%02d" % i
        index.add(makewheel.make_wheel(wheels, name, "1.0",
                                       size=int(small_mb * MiB),
                                       seed=100 + i), write=False)
        reqs.append("%s==1.0" % name)
    index.add(makewheel.make_wheel(wheels, "dkb-pkg-00", "2.0",
                                   size=int(small_mb * MiB), seed=99),
              write=False)
    index.write()
    shutil.rmtree(wheels)
    v2 = ["dkb-pkg-00==2.0" if r == "dkb-pkg-00==1.0" else r for r in reqs]
    return index, reqs, v2


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.results = {}   # strategy -> scenario -> {"s", "up_bytes", ...}

    def project(self, strategy, reqs, app_version):
        d = os.path.join(self.workdir, "project-" + strategy)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "Dockerfile"), "w") as f:
            f.write(DOCKERFILES[strategy])
        with open(os.path.join(d, "base.Dockerfile"), "w") as f:
            f.write(DOCKERFILES["base-image"])
        with open(os.path.join(d, "requirements.txt"), "w") as f:
            f.write("\n".join(reqs) + "\n")
        with open(os.path.join(d, "app.py"), "w") as f:
            f.write("import dkb_big, dkb_pkg_00\nVERSION = %r\n"
                    "print(dkb_pkg_00.__version__)\n" % app_version)
        return d

    def build_args(self, index_url):
        host = index_url.split("/")[2].split(":")[0]
        trusted = "" if host in ("127.0.0.1", "localhost") else host
        return ["--build-arg", "BASE=" + BASE_IMAGE,
                "--build-arg", "PIP_INDEX_URL=" + index_url,
                "--build-arg", "PIP_TRUSTED_HOST=" + trusted]

    def job(self, strategy, agent, proj, index_url, reg, node=None):
        """The Docker commands of one CI job for STRATEGY on AGENT."""
        tag = "app:latest"
        common = ["build", "--network", "host", "-t", tag] \
            + self.build_args(index_url)
        if strategy == "none":
            agent.docker(*common, "--no-cache", proj)
        elif strategy in ("mount", "wheelmesh"):
            agent.docker(*common, proj)
        elif strategy == "inline":
            ref = "%s/app:cache" % reg.host
            agent.docker(*common, "--build-arg", "BUILDKIT_INLINE_CACHE=1",
                         "--cache-from", ref, "-t", ref, proj)
            agent.docker("push", ref)
        elif strategy == "base":
            ref = "%s/app-base:latest" % reg.host
            # the job pulls the team's base image (absent on a new agent)
            if agent.docker("image", "inspect", ref,
                            check=False).returncode != 0:
                agent.docker("pull", ref)
            args = list(common)
            args[args.index("BASE=" + BASE_IMAGE)] = "BASE=" + ref
            agent.docker(*args, proj)
        else:
            raise ValueError(strategy)

    def prebuild_base(self, agent, proj, index_url, reg):
        """The base-image strategy's own pipeline: build the base with the
        requirements installed and push it (timed as part of a1 cold)."""
        ref = "%s/app-base:latest" % reg.host
        agent.docker("build", "--network", "host", "-t", ref, "-f",
                     os.path.join(proj, "base.Dockerfile"),
                     *self.build_args(index_url), proj)
        agent.docker("push", ref)

    def measure(self, strategy, scenario, nginx, fn, nodes=()):
        n0, b0 = nginx_bytes(nginx)
        c0 = cpu_times()
        t0 = time.monotonic()
        fn()
        took = time.monotonic() - t0
        c1 = cpu_times()
        n1, b1 = nginx_bytes(nginx)
        # CPUs busy during the job, this job's work and everybody else's
        busy = (c1[0] - c0[0]) / max(1, c1[1] - c0[1]) * os.cpu_count()
        rec = {"s": took, "up_bytes": b1 - b0, "up_requests": n1 - n0,
               "cpus_busy": busy, "loadavg": os.getloadavg()[0]}
        self.results.setdefault(strategy, {}).setdefault(
            scenario, []).append(rec)
        # where each node's wheels came from (cumulative): with no holder,
        # one member (the designee) fetches from upstream for the cluster
        for i, n in enumerate(nodes):
            st = n.status()
            rec["node%d" % (i + 1)] = {"hits": st["hits"],
                                       "upstream_bytes":
                                       st["upstream"]["bytes"]}
        log("%-9s %-8s %7.1f s  upstream %7.1f MB in %d requests  "
            "(%.1f CPUs busy, load %.1f)"
            % (strategy, scenario, took, rec["up_bytes"] / 1e6,
               rec["up_requests"], busy, rec["loadavg"]))
        return rec

    def check_image(self, agent, want):
        p = agent.docker("run", "--rm", "--network", "host", "app:latest",
                         "python", "app.py")
        if p.stdout.strip() != want:
            raise BenchError("%s: the image says %r, not %r"
                             % (agent.name, p.stdout, want))

    def run_strategy(self, strategy, nginx, reg, base_tar, reqs, reqs2):
        a1 = Agent("a1", self.workdir)
        a2 = None
        nodes = []
        try:
            a2 = Agent("a2", self.workdir)
            for a in (a1, a2):
                a.docker("load", "-i", base_tar)
            upstream = nginx.url
            url1 = url2 = upstream
            if strategy == "wheelmesh":
                nodes = self.start_nodes(upstream)
                url1, url2 = (n.url + "/simple/" for n in nodes)
            proj = self.project(strategy, reqs, "1")

            def cold():
                if strategy == "base":
                    self.prebuild_base(a1, proj, upstream, reg)
                self.job(strategy, a1, proj, url1, reg)
            self.measure(strategy, "a1 cold", nginx, cold, nodes)
            self.check_image(a1, "1.0")
            proj = self.project(strategy, reqs, "2")
            self.measure(strategy, "a1 warm", nginx, lambda: self.job(
                strategy, a1, proj, url1, reg), nodes)
            if nodes:
                self.wait_index(nodes[1], len(reqs))
            self.measure(strategy, "a2 first", nginx, lambda: self.job(
                strategy, a2, proj, url2, reg), nodes)
            self.check_image(a2, "1.0")
            proj = self.project(strategy, reqs2, "2")
            self.measure(strategy, "changed", nginx, lambda: self.job(
                strategy, a1, proj, url1, reg), nodes)
            self.check_image(a1, "2.0")
        finally:
            for i, n in enumerate(nodes):
                if n.log_path and os.path.exists(n.log_path):
                    shutil.copy(n.log_path, os.path.join(
                        self.workdir, "node%d.log" % (i + 1)))
                n.cleanup()
            for a in (a1, a2):
                if a is not None:
                    a.stop()

    def start_nodes(self, upstream):
        import cluster_util as cu
        keydir = tempfile.mkdtemp(prefix="keys-", dir=self.workdir)
        keys = [cu.Key(os.path.join(keydir, "n%d.key" % i))
                for i in (1, 2)]
        trusted = cu.write_trusted(os.path.join(keydir, "trusted"), keys)
        extra = {"cluster": {"publishers": trusted},
                 "upstream": {"timeout_s": 60}}
        n1 = cu.ClusterNode(keys[0], trusted=trusted, upstream=upstream,
                            config=extra, label="agent1", log=True)
        n2 = cu.ClusterNode(keys[1], trusted=trusted, upstream=upstream,
                            seeds=[n1.cluster_addr], config=extra,
                            label="agent2", log=True)
        wait = cu.Waiter([n1, n2])
        wait(lambda: n2.member_state(n1.id) == "alive", "agent2 sees agent1",
             timeout=30)
        return [n1, n2]

    def wait_index(self, node, count, timeout=60):
        deadline = time.monotonic() + timeout
        while len(node.held()) < count:
            if time.monotonic() > deadline:
                raise BenchError("agent2's node knows %d of %d wheels"
                                 % (len(node.held()), count))
            time.sleep(0.2)


def med(recs, key):
    return statistics.median(r[key] for r in recs)


def report(res):
    ref = med(res["results"]["none"]["a1 cold"], "s") if "none" in \
        res["results"] else None
    print("wheelmesh Docker strategies, %s" % res["date"])
    print("workload: %s; upstream link %s (tbf)" % (res["workload"],
                                                     res["rate"]))
    print("medians of %d rounds; reference: none / a1 cold = %s"
          % (res["rounds"], "%.1f s" % ref if ref else "not run"))
    print("%-10s %s" % ("", "".join("%-26s" % s for s in SCENARIOS)))
    for strat, row in res["results"].items():
        cells = []
        for sc in SCENARIOS:
            recs = row.get(sc)
            if not recs:
                cells.append("%-26s" % "-")
                continue
            t = med(recs, "s")
            cell = "%6.1f s %5.0f MB" % (t, med(recs, "up_bytes") / 1e6)
            if ref:
                cell += " %5.2fx" % (t / ref)
            cells.append("%-26s" % cell)
        print("%-10s %s" % (strat, "".join(cells)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="the wheelmesh binary")
    ap.add_argument("--big-mb", type=int, default=500)
    ap.add_argument("--small-count", type=int, default=40)
    ap.add_argument("--small-mb", type=float, default=1.0)
    ap.add_argument("--rate", default="200mbit")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat everything; the table shows medians")
    ap.add_argument("--only", default=",".join(STRATEGIES),
                    help="comma-separated strategies")
    ap.add_argument("--workdir", help="parent of the temporary directory")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--quick", action="store_true",
                    help="--big-mb 50 --small-count 5 (checks the set-up)")
    args = ap.parse_args(argv)
    if args.quick:
        args.big_mb, args.small_count = 50, 5
    only = [s for s in args.only.split(",") if s]
    for s in only:
        if s not in STRATEGIES:
            ap.error("unknown strategy %r" % s)
    if os.geteuid() != 0:
        print("bench_docker: needs root (namespaces, tc, dockerd)",
              file=sys.stderr)
        return 1
    harness.BIN = find_binary(args.bin)
    os.environ["WHEELMESH_BIN"] = harness.BIN
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminated)

    eng = dockerlib.engine_up()      # for the python base image only
    workdir = tempfile.mkdtemp(prefix="wmbd-", dir=args.workdir or "/tmp")
    link = bu.Link(args.rate)
    nginx = reg = None
    try:
        dockerlib.build(dockerlib.PYTHON_IMAGE)
        dockerlib.docker("tag", dockerlib.PYTHON_IMAGE, BASE_IMAGE,
                         check=True)
        base_tar = os.path.join(workdir, "python.tar")
        dockerlib.docker("save", "-o", base_tar, BASE_IMAGE, check=True)
        dockerlib.docker("rmi", BASE_IMAGE)
        index, reqs, reqs2 = make_workload(workdir, args.big_mb,
                                           args.small_count, args.small_mb)
        link.setup()
        nginx = bu.NsNginx(index, bu.NS, bu.ADDR_NS)
        reg = Registry(workdir)
        bench = Bench(args, workdir)
        for r in range(args.rounds):
            # the order rotates from round to round
            order = only[r % len(only):] + only[:r % len(only)]
            for s in order:
                log("round %d, strategy %s" % (r + 1, s))
                bench.run_strategy(s, nginx, reg, base_tar, reqs, reqs2)
        res = {"date": datetime.date.today().isoformat(),
               "workload": "1 x %d MiB + %d x %g MiB wheels"
               % (args.big_mb, args.small_count, args.small_mb),
               "rate": args.rate, "rounds": args.rounds,
               "results": bench.results}
        report(res)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=2)
        return 0
    except (BenchError, dockerlib.DockerError) as e:
        print("bench_docker: %s" % e, file=sys.stderr)
        return 1
    finally:
        if reg is not None:
            reg.stop()
        if nginx is not None:
            nginx.cleanup()
        link.cleanup()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        if not dockerlib.keep_images():
            dockerlib.remove_test_images()
        dockerlib.stop_dockerd(eng.started)


if __name__ == "__main__":
    sys.exit(main())
