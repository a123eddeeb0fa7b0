#!/usr/bin/python3
"""Upstream (pull-through) benchmark for a wheelmesh node: pip downloading a
wheel set straight from a PEP 503 upstream (nginx) versus through a node that
proxies and caches that upstream, over loopback and over a 200 Mbit/s link.

Not part of the test suite. Python 3 standard library only (plus the e2e
helpers next door: harness.py, upstream_index.py, makewheel.py, read and not
changed); run it as root with /usr/bin/python3. See README.md next to this
file.

One invocation:
  1. writes a wheel set: --small-count wheels of --small-mb MiB
     (upb-pkg-00, upb-pkg-01, ...: distinct projects) and one of --big-mb
     MiB (upb-big), in a StaticIndex (a static PEP 503 tree);
  2. loopback: nginx serves the tree on 127.0.0.1; each round times
       straight     pip download --index-url NGINX/simple/ <all>
       node cold    the same through a fresh node (empty data dir) whose
                    upstream is that nginx
     (order rotated from round to round);
  3. capped link: a network namespace "wmbench-up" joined to the root
     namespace by a veth pair (10.98.0.1 here, 10.98.0.2 there), a tbf of
     --rate on the egress of BOTH ends; nginx runs inside it on 10.98.0.2.
     One diagnostic curl measures what the link really carries; then each
     round times
       straight     pip download --index-url http://10.98.0.2:P/simple/
       node cold    through a fresh node whose upstream is 10.98.0.2
       node warm    the same node again, into a fresh directory (the node
                    holds everything: this must cost upstream nothing)
  4. prints medians and the ratios, each PASS or MISS:
       loopback  node cold / straight        <= 1.15
       capped    node warm / straight cold   <= 0.15
       capped    node cold / straight cold   <= 1.15  ("close to 1")
     --json prints everything as JSON instead.

Every pip run goes into a fresh empty directory and every file it brings is
compared (sha256) with the original. Diagnostics per run (not timed): the
requests and bytes nginx logged, the node's /metrics counters, the node's
and pip's CPU seconds.

Clean-up: nginx and nodes are stopped by their own handles, the namespace
and the veth pair are deleted, in `finally` (also on Ctrl-C and SIGTERM). A
namespace left by a run that was SIGKILLed (its owner pid, recorded in
/run/wmbench-up.owner, gone) is deleted at the next start.

Exit status: 0 when the run completed (MISSes included, unless --strict),
1 when something failed, 2 on a usage error.
"""

import argparse
import datetime
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

from benchlib import (CLK_TCK, MiB, BenchError, child_pids,
                      cpu_seconds, curl_timed, find_binary, log,
                      print_ratios, summarize, verify_dir)
import benchlib         # noqa: E402
import harness          # noqa: E402
import makewheel        # noqa: E402
import upstream_index   # noqa: E402

PYTHON = "/usr/bin/python3"
IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"
SETPRIV = shutil.which("setpriv")

NS = "wmbench-up"
VETH_ROOT = "wmbench-up0"       # stays in the root namespace
VETH_NS = "wmbench-up1"         # moved into NS
ADDR_ROOT = "10.98.0.1"
ADDR_NS = "10.98.0.2"
PREFIXLEN = 24
OWNER_FILE = "/run/wmbench-up.owner"

TARGET_LOOP_COLD = 1.15
TARGET_CAP_WARM = 0.15
TARGET_CAP_COLD = 1.15

class Terminated(BaseException):
    """SIGTERM / SIGHUP: unwinds like Ctrl-C, through every finally."""


def _run(args, check=True, timeout=30):
    p = subprocess.run([str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise BenchError("%s failed (%d): %s" % (
            " ".join(map(str, args)), p.returncode,
            (p.stderr or p.stdout).strip()))
    return p


# --------------------------------------------------------------------------
# the capped link


def _ns_exists():
    p = _run([IP, "netns", "list"], check=False)
    return any(line.split()[0] == NS for line in p.stdout.splitlines()
               if line.strip())


def _pid_alive(pid):
    return os.path.exists("/proc/%d" % pid)


class Link:
    """The namespace NS and a veth pair to it, tbf on both ends' egress."""

    def __init__(self, rate, burst="256kb", latency="50ms"):
        self.rate, self.burst, self.latency = rate, burst, latency
        self.made = False

    def _sweep_stale(self):
        if not _ns_exists():
            # A leftover root-side veth without its namespace cannot exist
            # (deleting one end deletes the pair), but be sure.
            _run([IP, "link", "del", VETH_ROOT], check=False)
            return
        owner = None
        try:
            with open(OWNER_FILE) as f:
                owner = int(f.read().strip())
        except (OSError, ValueError):
            pass
        if owner is None or (owner != os.getpid() and _pid_alive(owner)):
            raise BenchError(
                "network namespace %s exists and is not a leftover of a "
                "dead run (owner %s); another benchmark running? If not: "
                "ip netns del %s" % (NS, owner, NS))
        log("deleting namespace %s left by dead run %d" % (NS, owner))
        _run([IP, "netns", "del", NS], check=False)
        _run([IP, "link", "del", VETH_ROOT], check=False)

    def setup(self):
        if os.geteuid() != 0:
            raise BenchError("the capped-link phase needs root (network "
                             "namespaces, tc); use --skip-capped otherwise")
        self._sweep_stale()
        with open(OWNER_FILE, "w") as f:       # before anything is made
            f.write("%d\n" % os.getpid())
        self.made = True
        _run([IP, "netns", "add", NS])
        _run([IP, "-n", NS, "link", "set", "lo", "up"])
        _run([IP, "link", "add", VETH_ROOT, "type", "veth", "peer", "name",
              VETH_NS, "netns", NS])
        _run([IP, "addr", "add", "%s/%d" % (ADDR_ROOT, PREFIXLEN), "dev",
              VETH_ROOT])
        _run([IP, "-n", NS, "addr", "add", "%s/%d" % (ADDR_NS, PREFIXLEN),
              "dev", VETH_NS])
        _run([IP, "link", "set", VETH_ROOT, "up"])
        _run([IP, "-n", NS, "link", "set", VETH_NS, "up"])
        spec = ["root", "tbf", "rate", self.rate, "burst", self.burst,
                "latency", self.latency]
        _run([TC, "qdisc", "add", "dev", VETH_ROOT] + spec)
        _run([TC, "-n", NS, "qdisc", "add", "dev", VETH_NS] + spec)
        # wait for the link (veth carrier / DAD are instant for IPv4, but
        # the first connect may race the 'up')
        deadline = time.monotonic() + 5
        while True:
            p = _run(["ping", "-c", "1", "-W", "1", ADDR_NS], check=False) \
                if shutil.which("ping") else None
            if p is None or p.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError("no ping reply from %s over the veth"
                                 % ADDR_NS)
            time.sleep(0.1)

    def qdisc_stats(self):
        return {
            "root_side": _run([TC, "-s", "qdisc", "show", "dev", VETH_ROOT],
                              check=False).stdout.strip(),
            "upstream_side": _run([TC, "-s", "-n", NS, "qdisc", "show",
                                   "dev", VETH_NS],
                                  check=False).stdout.strip()}

    def cleanup(self):
        if not self.made:
            return
        self.made = False
        _run([IP, "netns", "del", NS], check=False)   # takes the pair along
        _run([IP, "link", "del", VETH_ROOT], check=False)
        try:
            os.unlink(OWNER_FILE)
        except OSError:
            pass


class NsNginx(upstream_index.Nginx):
    """upstream_index.Nginx run inside namespace NS, listening on ADDR (the
    same generated config and access log, only the listen address and the
    `ip netns exec` differ)."""

    def __init__(self, root, ns, addr):
        self.ns = ns
        self.addr = addr
        super().__init__(root, start=False)
        self.start()

    @property
    def base(self):
        return "http://%s:%d" % (self.addr, self.port)

    def _write_conf(self):
        super()._write_conf()
        with open(self.conf) as f:
            text = f.read()
        old = "listen 127.0.0.1:%d;" % self.port
        if old not in text:
            raise BenchError("unexpected nginx config from upstream_index")
        with open(self.conf, "w") as f:
            f.write(text.replace(old, "listen %s:%d;" % (self.addr,
                                                         self.port)))

    def start(self, timeout=10.0):
        if self.running():
            return self
        with open(self.stderr_path, "ab") as err:
            # `ip netns exec` execs nginx: self.proc is nginx's master
            self.proc = subprocess.Popen(
                [IP, "netns", "exec", self.ns, upstream_index.NGINX,
                 "-c", self.conf, "-p", self.dir + "/", "-e", self.error_log,
                 "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("nginx in %s exited with %s\n%s"
                                 % (self.ns, self.proc.returncode,
                                    self.tail()))
            try:
                with socket.create_connection((self.addr, self.port), 0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BenchError("nginx not listening on %s:%d after %.0f s\n%s"
                         % (self.addr, self.port, timeout, self.tail()))


# --------------------------------------------------------------------------
# nodes, pip, counters


def start_node(upstream_url):
    """A fresh node (empty data dir) whose only upstream is UPSTREAM_URL."""
    node = harness.Node(config={
        "node": {"name": "upbench"},
        "upstream": {"indexes": [{"url": upstream_url}]},
    }, start=False)
    try:
        node.start()
    except BaseException:
        node.kill()
        shutil.rmtree(node.dir, ignore_errors=True)
        raise
    return node


def stop_node(node):
    if node is None:
        return
    try:
        node.cleanup()
    except harness.NodeError as e:       # unclean exit: worth a line
        log("node did not stop cleanly: %s" % str(e).splitlines()[0])


def system_busy():
    """CPU seconds the whole machine has been busy (all CPUs), from
    /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        v = [int(x) for x in fields]
        # user nice system idle iowait irq softirq steal ...
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def process_tree_cpu(pid):
    """CPU seconds of PID and its children (nginx's master and workers)."""
    total = cpu_seconds(pid)
    if total is None:
        return None
    for child in child_pids(pid):
        total += cpu_seconds(child) or 0.0
    return total


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def metric_totals(node):
    try:
        return {k: v for k, v in node.metrics().items()
                if "_total" in k}
    except (OSError, harness.NodeError):
        return {}


def nginx_totals(nginx):
    """(requests, bytes, wheel requests) nginx has logged so far."""
    es = nginx.entries(settle=0.2)
    return (len(es), sum(e["bytes"] for e in es),
            sum(1 for e in es if e["path"].startswith("/packages/")))


def _pip_log_time(line):
    """The local time stamp pip --log puts first on a line, as epoch
    seconds, or None."""
    try:
        return datetime.datetime.strptime(
            line[:23], "%Y-%m-%dT%H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def pip_phases(logpath, t_start, t_end, big_name):
    """Where a pip run's time went, from its --log file: "start" (process
    start to pip's first log line), "small" (from there to the request for
    the big wheel: every page and the small wheels), "big" (the big wheel,
    until pip saves the first file), "save" (copying the downloads into -d,
    and exit). None when the log does not show these steps."""
    first = big = saved = None
    try:
        with open(logpath, encoding="utf-8", errors="replace") as f:
            for line in f:
                t = _pip_log_time(line)
                if t is None:
                    continue
                if first is None:
                    first = t
                if big is None and "GET " in line and big_name in line:
                    big = t
                if saved is None and " Saved " in line:
                    saved = t
    except OSError:
        return None
    if None in (first, big, saved):
        return None
    return {"start": first - t_start, "small": big - first,
            "big": saved - big, "save": t_end - saved}


def pip_download(python, index_url, projects, outdir, env, big_name,
                 timeout=1800):
    """pip download of PROJECTS into OUTDIR (created empty); returns
    (wall seconds, pip's CPU seconds, phases)."""
    os.makedirs(outdir)
    logpath = outdir + ".pip.log"
    cmd = [python, "-m", "pip", "--no-cache-dir",
           "--disable-pip-version-check", "download", "--no-deps",
           "--progress-bar", "off", "-q", "--log", logpath, "-d", outdir,
           "--index-url", index_url,
           # pip ignores a plain-http index other than localhost without it
           "--trusted-host", urllib.parse.urlsplit(index_url).hostname] \
        + list(projects)
    c0 = children_cpu()
    w0 = time.time()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=timeout)
    took = time.perf_counter() - t0
    w1 = time.time()
    cpu = children_cpu() - c0
    if p.returncode != 0:
        raise BenchError("pip failed (%d): %s\n%s%s" % (
            p.returncode, " ".join(cmd), p.stdout[-3000:], p.stderr[-3000:]))
    phases = pip_phases(logpath, w0, w1, big_name)
    try:
        os.unlink(logpath)
    except OSError:
        pass
    return took, cpu, phases


class Runner:
    """Times pip runs and gathers their diagnostics."""

    def __init__(self, python, env, projects, expected, wheel_bytes, dl,
                 big_name):
        self.big_name = big_name
        self.python, self.env = python, env
        self.projects, self.expected = projects, expected
        self.wheel_bytes = wheel_bytes
        self.dl = dl
        self.seq = 0

    def run(self, label, index_url, nginx, node=None):
        self.seq += 1
        out = os.path.join(self.dl, "%03d-%s" % (self.seq,
                                                 label.replace(" ", "-")))
        g0 = nginx_totals(nginx)
        m0 = metric_totals(node) if node else {}
        n0 = cpu_seconds(node.proc.pid) if node else None
        x0 = process_tree_cpu(nginx.proc.pid)
        s0 = system_busy()
        try:
            took, pip_cpu, phases = pip_download(
                self.python, index_url, self.projects, out, self.env,
                self.big_name)
        except BenchError as e:
            if node is None:
                raise
            raise BenchError("%s\n%s" % (e, node.tail(60)))
        s1 = system_busy()
        x1 = process_tree_cpu(nginx.proc.pid)
        n1 = cpu_seconds(node.proc.pid) if node else None
        # first, before anything else asks the node's loop (which is
        # busy while it commits the last wheel)
        stored_after = self.wait_stored(node) if node else None
        m1 = metric_totals(node) if node else {}
        g1 = nginx_totals(nginx)
        verify_dir(out, self.expected, "%s (run %d)" % (label, self.seq))
        shutil.rmtree(out)
        rec = {"s": took, "mb_s": self.wheel_bytes / 1e6 / took,
               "pip_cpu_s": pip_cpu,
               "upstream_requests": g1[0] - g0[0],
               "upstream_bytes": g1[1] - g0[1],
               "upstream_wheel_requests": g1[2] - g0[2],
               "nginx_cpu_s": (x1 - x0 if None not in (x0, x1) else None),
               "pip_phases_s": phases,
               "verified": True}
        if node:
            rec["node_cpu_s"] = (n1 - n0 if None not in (n0, n1) else None)
            rec["stored_after_s"] = stored_after
            # /metrics counts its own reads: subtract the one read between
            rec["node_metrics"] = {k: m1[k] - m0.get(k, 0) for k in m1
                                   if m1[k] - m0.get(k, 0)}
        # CPU the machine spent on anything but this run (other jobs on a
        # shared machine): a run with much of it is not comparable
        if None not in (s0, s1):
            ours = pip_cpu + (rec.get("node_cpu_s") or 0) \
                + (rec["nginx_cpu_s"] or 0)
            rec["other_cpu_s"] = max(0.0, (s1 - s0) - ours)
            rec["other_load"] = rec["other_cpu_s"] / took
        return rec

    def wait_stored(self, node, timeout=300.0):
        """Seconds after pip's exit until the node has committed every
        wheel to its store (pip gets the last byte once the hash is
        checked; the commit into LMDB follows). The next run starts only
        then, so a warm run measures a node that holds everything."""
        t0 = time.perf_counter()
        want = len(self.expected)
        while True:
            try:
                have = node.metrics().get("wheelmesh_cache_files", 0)
            except (OSError, harness.NodeError):
                have = 0
            if have >= want:
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise BenchError("node holds %d of %d wheels %.0f s after "
                                 "pip finished\n%s" % (have, want, timeout,
                                                       node.tail()))
            time.sleep(0.02)


def curl_link(curl, url, nbytes):
    """Raw link throughput: one curl of the first NBYTES of URL, MB/s."""
    secs = curl_timed(curl, url, nbytes, extra=["-r", "0-%d" % (nbytes - 1)],
                      codes=("200", "206"))
    return nbytes / 1e6 / secs, secs


# --------------------------------------------------------------------------


def summarize_runs(runs):
    return dict(summarize([r["s"] for r in runs]), runs=runs)


def ratio(res, name, num, den, target):
    res["ratios"].append(benchlib.ratio(
        name, num["median_s"] / den["median_s"],
        num["min_s"] / den["min_s"], target))


def run(args):
    binary = find_binary(args.bin, builds=("build-ub",))
    harness.BIN = binary
    for tool in (upstream_index.NGINX, args.curl):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            raise BenchError("not an executable: %s" % tool)

    res = {"config": {
        "rounds": args.rounds, "small_count": args.small_count,
        "small_mb": args.small_mb, "big_mb": args.big_mb, "binary": binary,
        "rate": args.rate, "quick": args.quick},
        "ratios": []}
    work = tempfile.mkdtemp(prefix="wm-upbench-", dir=args.workdir)
    if args.workdir:
        tempfile.tempdir = work     # the nodes' and nginx's own temp dirs
    index = nginx = capnginx = node = None
    link = Link(args.rate)
    try:
        # 1. the wheel set, in a PEP 503 tree
        index = upstream_index.StaticIndex(root=os.path.join(work, "index"))
        t0 = time.perf_counter()
        small = ["upb-pkg-%02d" % i for i in range(args.small_count)]
        paths = []
        for p in small:
            paths.append(makewheel.make_wheel(index.packages, p, "1.0",
                                              int(args.small_mb * MiB)))
        paths.append(makewheel.make_wheel(index.packages, "upb-big", "1.0",
                                          int(args.big_mb * MiB)))
        # no PEP 658 .metadata files: pip 23.0 (Debian 12) would download
        # every wheel twice from an HTML page that announces them
        # (pypa/pip#11847), which would only slow the straight runs down
        for p in paths:
            index.add(p, write=False)
        index.write()
        write_s = time.perf_counter() - t0
        expected = {os.path.basename(p): harness.sha256_file(p)
                    for p in paths}
        wheel_bytes = sum(os.path.getsize(p) for p in paths)
        projects = small + ["upb-big"]
        log("wrote %d wheels, %.1f MB, in %.1f s"
            % (len(paths), wheel_bytes / 1e6, write_s))
        res["wheels"] = {"count": len(paths), "bytes": wheel_bytes,
                         "big_bytes": os.path.getsize(paths[-1]),
                         "write_s": write_s}

        # 2. pip
        venv = harness.venv(os.path.join(work, "venv"))
        env = harness.pip_env()
        pv = subprocess.run([venv.python, "-m", "pip", "--version"],
                            capture_output=True, text=True, env=env)
        res["pip_version"] = (pv.stdout.split() or ["?", "?"])[1]
        dl = os.path.join(work, "dl")
        os.makedirs(dl)
        runner = Runner(venv.python, env, projects, expected, wheel_bytes,
                        dl, os.path.basename(paths[-1]))

        # 3. loopback
        if not args.skip_loopback:
            nginx = upstream_index.Nginx(index)
            # untimed warm-up: pip's start-up and the wheels in the page
            # cache, so round 1 is like the others
            runner.run("warm-up", nginx.url, nginx)
            runs = {"straight": [], "node_cold": []}
            for r in range(args.rounds):
                order = ["straight", "node_cold"]
                if r % 2:
                    order.reverse()
                for key in order:
                    if key == "straight":
                        rec = runner.run("loop-straight", nginx.url, nginx)
                    else:
                        node = start_node(nginx.url)
                        try:
                            rec = runner.run("loop-node-cold",
                                             node.url + "/simple/", nginx,
                                             node)
                        finally:
                            stop_node(node)
                            node = None
                    runs[key].append(rec)
                log("loopback round %d/%d: straight %.2fs  node cold %.2fs"
                    % (r + 1, args.rounds, runs["straight"][-1]["s"],
                       runs["node_cold"][-1]["s"]))
            nginx.cleanup()
            nginx = None
            res["loopback"] = {k: summarize_runs(v) for k, v in runs.items()}
            lo = res["loopback"]
            ratio(res, "loopback node cold / straight", lo["node_cold"],
                  lo["straight"], TARGET_LOOP_COLD)

        # 4. capped link
        if not args.skip_capped:
            link.setup()
            capnginx = NsNginx(index, NS, ADDR_NS)
            big = os.path.basename(paths[-1])
            nprobe = min(res["wheels"]["big_bytes"], 100 * MiB)
            mbs, secs = curl_link(args.curl, "%s/packages/%s"
                                  % (capnginx.base, big), nprobe)
            log("capped link (%s): curl %.0f MB in %.2f s = %.1f MB/s"
                % (args.rate, nprobe / 1e6, secs, mbs))
            res["link"] = {"rate": args.rate, "curl_bytes": nprobe,
                           "curl_mb_s": mbs,
                           "ideal_s": wheel_bytes / 1e6 / mbs}
            runs = {"straight": [], "node_cold": [], "node_warm": []}
            for r in range(args.rounds):
                order = ["straight", "node"]
                if r % 2:
                    order.reverse()
                for key in order:
                    if key == "straight":
                        runs["straight"].append(runner.run(
                            "cap-straight", capnginx.url, capnginx))
                        continue
                    node = start_node(capnginx.url)
                    try:
                        url = node.url + "/simple/"
                        runs["node_cold"].append(runner.run(
                            "cap-node-cold", url, capnginx, node))
                        w = runner.run("cap-node-warm", url, capnginx, node)
                        if w["upstream_wheel_requests"]:
                            raise BenchError(
                                "warm run fetched %d wheels from upstream"
                                % w["upstream_wheel_requests"])
                        runs["node_warm"].append(w)
                    finally:
                        stop_node(node)
                        node = None
                log("capped round %d/%d: straight %.2fs  node cold %.2fs  "
                    "node warm %.2fs" % (
                        r + 1, args.rounds, runs["straight"][-1]["s"],
                        runs["node_cold"][-1]["s"],
                        runs["node_warm"][-1]["s"]))
            res["link"]["qdisc"] = link.qdisc_stats()
            res["capped"] = {k: summarize_runs(v) for k, v in runs.items()}
            ca = res["capped"]
            ratio(res, "capped node warm / straight cold", ca["node_warm"],
                  ca["straight"], TARGET_CAP_WARM)
            ratio(res, "capped node cold / straight cold", ca["node_cold"],
                  ca["straight"], TARGET_CAP_COLD)
            if "loopback" in res:
                # what pip itself allows: the same download from nginx on
                # loopback, over the capped straight download
                lo = res["loopback"]["straight"]
                res["reference"] = {
                    "name": "floor: loopback / capped straight",
                    "value": lo["median_s"] / ca["straight"]["median_s"],
                    "best_of_rounds": lo["min_s"] / ca["straight"]["min_s"]}
        res["verified"] = True
        return res
    finally:
        stop_node(node)
        for n in (capnginx, nginx):
            if n is not None:
                n.cleanup()
        link.cleanup()
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(res):
    cfg = res["config"]
    w = res["wheels"]
    print("wheelmesh upstream (pull-through) benchmark")
    print("  binary  %s" % cfg["binary"])
    print("  wheels  %d x %g MiB + 1 x %g MiB = %d files, %.1f MB; "
          "pip %s; %d rounds" % (cfg["small_count"], cfg["small_mb"],
                                 cfg["big_mb"], w["count"], w["bytes"] / 1e6,
                                 res["pip_version"], cfg["rounds"]))
    print("  every run: pip download --no-deps --index-url ... of all %d "
          "projects into an empty dir" % w["count"])

    def med(v, f):
        xs = [f(r) for r in v["runs"]]
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    def fmt(x, spec="%.2f"):
        return "-" if x is None else spec % x

    def table(title, section, labels):
        print()
        print(title)
        print("  %-30s %7s %7s %7s  %s" % ("", "median", "min", "MB/s",
                                          "rounds (s)"))
        for key, label in labels:
            v = section[key]
            print("  %-30s %7.2f %7.2f %7.1f  %s" % (
                label, v["median_s"], v["min_s"],
                w["bytes"] / 1e6 / v["median_s"],
                " ".join("%.2f" % t for t in v["times_s"])))
        print("  where the time went (medians, s): pip phases from its "
              "--log; CPU s of each party; upstream traffic")
        print("  %-30s %5s %5s %5s %5s | %5s %5s %5s %5s | %7s %s" % (
            "", "start", "small", "big", "save", "pip", "node", "nginx",
            "other", "stored+", "upstream req/MB"))
        for key, label in labels:
            v = section[key]

            def ph(name):
                return med(v, lambda r: (r["pip_phases_s"] or {}).get(name))
            last = v["runs"][-1]
            print("  %-30s %5s %5s %5s %5s | %5s %5s %5s %5s | %7s %d/%.1f"
                  % (label, fmt(ph("start")), fmt(ph("small")),
                     fmt(ph("big")), fmt(ph("save")),
                     fmt(med(v, lambda r: r["pip_cpu_s"])),
                     fmt(med(v, lambda r: r.get("node_cpu_s"))),
                     fmt(med(v, lambda r: r.get("nginx_cpu_s"))),
                     fmt(med(v, lambda r: r.get("other_load"))),
                     fmt(med(v, lambda r: r.get("stored_after_s"))),
                     last["upstream_requests"],
                     last["upstream_bytes"] / 1e6))

    if "loopback" in res:
        table("loopback (nginx on 127.0.0.1), seconds", res["loopback"], [
            ("straight", "straight from nginx"),
            ("node_cold", "node, cold (fresh data dir)")])
    if "capped" in res:
        ln = res["link"]
        table("capped link (%s tbf both ways, nginx in netns %s), seconds; "
              "link carries %.1f MB/s (curl), so %.1f s is the floor"
              % (ln["rate"], NS, ln["curl_mb_s"], ln["ideal_s"]),
              res["capped"], [
                  ("straight", "straight from upstream, cold"),
                  ("node_cold", "node, cold (fresh data dir)"),
                  ("node_warm", "node, warm (holds everything)")])
    print()
    print_ratios(res["ratios"], 34)
    ref = res.get("reference")
    if ref:
        print("  %-34s %6.3f   (no target: the lowest warm/cold ratio pip "
              "itself allows; best %.3f)" % (ref["name"], ref["value"],
                                             ref["best_of_rounds"]))
    print()
    print("all downloads byte-identical to the originals (sha256, every run)")
    print("phases: start = interpreter and pip imports; small = every "
          "page and the small wheels; big = the big wheel; save = copying "
          "the downloads into -d, and exit. stored+ = seconds after pip's "
          "exit until the node had committed every wheel (the next run "
          "waits for it). other = mean number of CPUs busy with processes "
          "not in this run (other jobs on a shared machine): runs with a "
          "high value are slower and not comparable.")
    busy = [r["other_load"]
            for sec in ("loopback", "capped") if sec in res
            for v in res[sec].values() for r in v["runs"]
            if (r.get("other_load") or 0) > 0.5]
    if busy:
        print("warning: %d timed runs shared the machine with other work "
              "(> 0.5 CPU busy elsewhere, up to %.1f)"
              % (len(busy), max(busy)))


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Benchmark pip through a wheelmesh node against pip "
                    "straight from the upstream index, over loopback and "
                    "over a bandwidth-capped link.")
    ap.add_argument("--bin", help="the wheelmesh binary (default: "
                    "$WHEELMESH_BIN, else build/node/wheelmesh in the repo, "
                    "else ../build-bench, ../build-ub or ../build next to "
                    "it)")
    ap.add_argument("--rounds", type=int,
                    help="timed rounds per phase (default 3, --quick 2)")
    ap.add_argument("--small-count", type=int,
                    help="number of ~1 MiB wheels (default 40, --quick 10)")
    ap.add_argument("--small-mb", type=float, default=1.0,
                    help="payload MiB per small wheel (default 1)")
    ap.add_argument("--big-mb", type=float,
                    help="payload MiB of the big wheel (default 500, "
                    "--quick 50)")
    ap.add_argument("--rate", default="200mbit",
                    help="tbf rate of the capped link (default 200mbit)")
    ap.add_argument("--quick", action="store_true",
                    help="a fast check: 10 small wheels, a 50 MiB one, "
                    "2 rounds (explicit options still win)")
    ap.add_argument("--skip-loopback", action="store_true")
    ap.add_argument("--skip-capped", action="store_true",
                    help="no namespace, no tc (runs without root)")
    benchlib.add_output_args(ap)
    args = ap.parse_args(argv)
    q = args.quick
    if args.rounds is None:
        args.rounds = 2 if q else 3
    if args.small_count is None:
        args.small_count = 10 if q else 40
    if args.big_mb is None:
        args.big_mb = 50.0 if q else 500.0
    if args.rounds < 1 or args.small_count < 1 or args.big_mb <= 0 \
            or args.small_mb <= 0:
        ap.error("--rounds, --small-count, --small-mb and --big-mb must be "
                 "positive")
    if args.skip_loopback and args.skip_capped:
        ap.error("nothing to do with both --skip-loopback and --skip-capped")
    # SIGINT too: a shell starting us in the background leaves it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)
    try:
        res = run(args)
    except (BenchError, harness.NodeError, upstream_index.NginxError) as e:
        sys.stderr.write("bench: FAILED: %s\n" % e)
        return 1
    except (KeyboardInterrupt, Terminated):
        sys.stderr.write("bench: interrupted (cleaned up)\n")
        return 1
    return benchlib.finish(res, args, report)


if __name__ == "__main__":
    sys.exit(main())
