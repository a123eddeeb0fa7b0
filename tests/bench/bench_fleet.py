#!/usr/bin/python3
"""Fleet benchmark: 64 and 128 real wheelmesh nodes on loopback (issue 11,
"128 nodes on this machine").

Not part of the test suite. Python 3 standard library and the wheelmesh
binary; the nodes are the e2e helpers' ClusterNode (tests/e2e), each with
its own key, all trusting all keys and naming them publishers, seeded from
node 0 (--seeding one) or each from the one before (--seeding chain).

  /usr/bin/python3 tests/bench/bench_fleet.py [--bin B] [--sizes 64,128]

For each size, one after the other:
  join     every node is started at once (not waiting for any); the time
           from the last node's start until every node sees every other
           alive (/metrics wheelmesh_members{state="alive"} = N - 1 on all
           nodes). Target < 5 s, from the last node ready (serving); the
           time from the last process spawned is printed too.
  listing  a wheel put on one node (--rounds times, a different node
           each); the time from the start of the PUT until every node's
           /links/ lists it. Target < 2 s (median).
  idle     after --settle-s seconds (60: a join's news rides on probes
           for about a minute), nothing happens for --idle-s seconds;
           each node's wheelmesh_cluster_bytes_total{dir="out"} before
           and after.
           Target < 1000 B/s per node (median; the largest is printed too).
  starve   one node (not the seed) is stopped and continued in 300 ms
           bursts (SIGSTOP / SIGCONT, --burst-ms) for --starve-s seconds
           (300); every "is dead" verdict any node logs meanwhile is false,
           since no node stops for good. Target 0. "is suspect" lines are
           counted too.

The direct probes' round trips (every node's wheelmesh_probe_rtt_seconds
histogram, summed) are printed for the join and for the idle part: a
probe that has to open its connection pays a handshake.

The machine's load average (`uptime`) is recorded with every result: other
work on it changes the figures. Exit status 0 when the run completed
(MISSes included unless --strict), 1 on a failure, 2 on a usage error.
"""

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import BenchError, cpu_seconds, find_binary, log, mark, median
import cluster_util as cu  # noqa: E402
import harness  # noqa: E402
import makewheel  # noqa: E402

TARGET_JOIN_S = 5.0
TARGET_LIST_S = 2.0
TARGET_IDLE_BPS = 1000.0
TARGET_FALSE_DEAD = 0

ALIVE_RE = re.compile(rb'wheelmesh_members\{state="alive"\} (\d+)')
BYTES_OUT_RE = re.compile(
    rb'wheelmesh_cluster_bytes_total\{dir="out"\} (\d+)')
VERDICT_RE = re.compile(r"cluster: ([0-9a-f]{16}) \(([^)]*)\) at \S+ is "
                        r"(suspect|dead)")


def uptime():
    """The load averages, as `uptime` prints them."""
    p = subprocess.run(["uptime"], capture_output=True, text=True)
    out = p.stdout.strip()
    return out[out.find("load average"):] if "load average" in out else out


def raise_fd_limit(want):
    """Raises this process's open-file soft limit (the nodes inherit it)
    towards WANT; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


# --------------------------------------------------------------------------
# the fleet


class Fleet:
    """N ClusterNodes on loopback, every key trusted and a publisher."""

    def __init__(self, work, n, seeding):
        self.dir = os.path.join(work, "fleet-%d" % n)
        os.makedirs(self.dir)
        log("%d nodes: %d keys" % (n, n))
        self.keys = [cu.Key(os.path.join(self.dir, "k%d.key" % i))
                     for i in range(n)]
        self.trusted = cu.write_trusted(os.path.join(self.dir, "trusted"),
                                        self.keys)
        ports = [harness.free_port() for _ in range(n)]
        self.nodes = []
        for i in range(n):
            seed = None if i == 0 else i - 1 if seeding == "chain" else 0
            # Seeds are named with their key (KEY@tcp://...): one
            # handshake each, where an address alone costs one per
            # trusted key.
            seeds = [] if seed is None else [
                "%s@%s" % (self.keys[seed].pub, cu.addr(ports[seed]))]
            node = cu.ClusterNode(self.keys[i], trusted=self.trusted,
                                  seeds=seeds, cluster_port=ports[i],
                                  label="n%d" % i, name="n%d" % i,
                                  start=False)
            node.log_offset = 0
            self.nodes.append(node)

    def start_all(self):
        """Starts every node without waiting; returns (time the last
        process was spawned, time the last node was ready)."""
        for node in self.nodes:
            node.start(wait=False)
        spawned = time.monotonic()
        for node in self.nodes:
            node.wait_ready(60)
        return spawned, time.monotonic()

    def cleanup(self):
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                try:
                    node.proc.send_signal(signal.SIGCONT)
                except OSError:
                    pass
            try:
                node.cleanup()
            except harness.NodeError as e:
                log("node %s did not stop cleanly: %s"
                    % (node.label, str(e).splitlines()[0]))
        shutil.rmtree(self.dir, ignore_errors=True)


class Poller:
    """Polls PATH on every node with a few threads, each keeping one
    connection per node, until DONE(node, body) has been true once for
    every node; .seen[label] is the time (since start()) it first was."""

    def __init__(self, nodes, path, done, threads=4):
        self.nodes, self.path, self.done = nodes, path, done
        self.seen = {}
        self.errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run,
                                          args=(nodes[i::threads],),
                                          daemon=True)
                         for i in range(threads)]

    def start(self):
        self.t0 = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def _get(self, conns, node):
        conn = conns.get(node.label)
        if conn is None:
            conn = conns[node.label] = node.connection(timeout=10)
        try:
            conn.request("GET", self.path)
            resp = conn.getresponse()
            body = resp.read()
            return body if resp.status == 200 else None
        except (OSError, http.client.HTTPException):
            conn.close()
            conns.pop(node.label, None)
            with self._lock:
                self.errors += 1
            return None

    def _run(self, mine):
        conns = {}
        left = list(mine)
        while left and not self._stop.is_set():
            for node in list(left):
                body = self._get(conns, node)
                if body is not None and self.done(node, body):
                    with self._lock:
                        self.seen[node.label] = time.monotonic() - self.t0
                    left.remove(node)
            if left:
                self._stop.wait(0.02)
        for conn in conns.values():
            conn.close()

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        for t in self._threads:
            t.join(5)
        return len(self.seen) == len(self.nodes)

    def missing(self):
        return [n.label for n in self.nodes if n.label not in self.seen]


def metric(body, regex):
    m = regex.search(body)
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------
# the four measurements


def measure_join(fleet, n, limit_s):
    """Starts the fleet; the seconds until every node has seen all others
    alive (None past LIMIT_S after the last node was ready)."""
    want = n - 1
    poller = Poller(fleet.nodes, "/metrics",
                    lambda node, body: metric(body, ALIVE_RE) == want)
    t_start = time.monotonic()
    spawned, ready = fleet.start_all()
    poller.start()
    res = {"spawn_s": spawned - t_start,
           "ready_after_spawn_s": ready - spawned,
           "all_alive_after_ready_s": None, "all_alive_after_spawn_s": None,
           "nodes_there": None, "load": uptime()}
    if poller.wait(limit_s):
        t_all = poller.t0 + max(poller.seen.values())
        res["all_alive_after_ready_s"] = t_all - ready
        res["all_alive_after_spawn_s"] = t_all - spawned
        res["probe_rtt"] = rtt_summary(({}, 0.0),
                                       probe_rtt(metrics_pages(fleet)))
    else:
        res["nodes_there"] = len(poller.seen)
        log("%d nodes: %.0f s after the last was ready, %d of them see all "
            "%d others alive" % (n, limit_s, len(poller.seen), want))
        if not poller.seen:
            raise BenchError("%d nodes: no node sees all others alive "
                             "after %.0f s" % (n, limit_s))
    return res


def measure_listing(fleet, work, rounds):
    out = []
    wdir = os.path.join(work, "wheels")
    os.makedirs(wdir, exist_ok=True)
    n = len(fleet.nodes)
    for r in range(rounds):
        w = makewheel.make_wheel(wdir, "bench-fleet-%d-r%d" % (n, r), "1.0",
                                 size=4096)
        fname = os.path.basename(w).encode()
        origin = fleet.nodes[(r * 37 + n - 1) % n]
        poller = Poller(fleet.nodes, "/links/",
                        lambda node, body: fname in body)
        poller.start()
        origin.put_ok(w)
        put_s = time.monotonic() - poller.t0
        if not poller.wait(30):
            raise BenchError("after 30 s %d of %d nodes still do not list "
                             "%s: %s" % (len(poller.missing()), n,
                                         fname.decode(),
                                         poller.missing()[:8]))
        times = sorted(poller.seen.values())
        out.append({"origin": origin.label, "put_s": put_s,
                    "all_s": times[-1], "p50_s": times[len(times) // 2],
                    "load": uptime()})
        log("  listing round %d: put %.3f s, all %d list it after %.3f s"
            % (r + 1, put_s, n, times[-1]))
        time.sleep(1.0)
    return out


def metrics_pages(fleet):
    """{label: /metrics body} of every node."""
    out = {}
    for node in fleet.nodes:
        status, _, body = node.get("/metrics", timeout=30)
        if status != 200:
            raise BenchError("GET /metrics on %s: %d" % (node.label, status))
        out[node.label] = body
    return out


def bytes_out(pages):
    """{label: cluster bytes out} from every node's /metrics PAGES."""
    return {k: metric(body, BYTES_OUT_RE) or 0 for k, body in pages.items()}


RTT_BUCKET_RE = re.compile(
    rb'wheelmesh_probe_rtt_seconds_bucket\{le="([^"]+)"\} (\d+)')
RTT_SUM_RE = re.compile(rb'wheelmesh_probe_rtt_seconds_sum (\S+)')


def probe_rtt(pages):
    """The fleet's direct probes so far: ({le: answered within it}, sum of
    their round trips in seconds), summed over every node's histogram in
    its /metrics PAGES."""
    within, total = {}, 0.0
    for body in pages.values():
        for le, n in RTT_BUCKET_RE.findall(body):
            within[le.decode()] = within.get(le.decode(), 0) + int(n)
        m = RTT_SUM_RE.search(body)
        total += float(m.group(1)) if m else 0.0
    return within, total


def rtt_summary(before, after):
    """Of the probes answered between BEFORE and AFTER (probe_rtt results):
    how many, the share within 5, 25 and 100 ms, the mean in ms."""
    (w0, s0), (w1, s1) = before, after
    n = w1.get("+Inf", 0) - w0.get("+Inf", 0)
    share = {le: ((w1.get(le, 0) - w0.get(le, 0)) / n if n else None)
             for le in ("0.005", "0.025", "0.1")}
    return {"probes": n, "within": share,
            "mean_ms": 1000.0 * (s1 - s0) / n if n else None}


def fleet_cpu(fleet):
    """{label: CPU seconds so far} of every node."""
    return {n.label: cpu_seconds(n.proc.pid) or 0.0 for n in fleet.nodes}


def measure_idle(fleet, seconds, settle_s):
    time.sleep(settle_s)  # the last put's pushes and anti-entropy settle
    p0, c0, t0 = metrics_pages(fleet), fleet_cpu(fleet), time.monotonic()
    time.sleep(seconds)
    p1, c1, dt = metrics_pages(fleet), fleet_cpu(fleet), time.monotonic() - t0
    b0, b1 = bytes_out(p0), bytes_out(p1)
    rates = sorted((b1[k] - b0[k]) / dt for k in b0)
    cpu = sorted(100.0 * (c1[k] - c0[k]) / dt for k in c0)
    return {"seconds": dt, "median_bps": median(rates),
            "max_bps": rates[-1], "cpu_pct_median": median(cpu),
            "cpu_cores_fleet": sum(cpu) / 100.0,
            "probe_rtt": rtt_summary(probe_rtt(p0), probe_rtt(p1)),
            "load": uptime()}


def log_tail(node):
    """The lines NODE logged since the last call."""
    path = node.log_path
    if not path or not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        f.seek(node.log_offset)
        data = f.read()
    node.log_offset += len(data)
    return data.decode("utf-8", "replace").splitlines()


def verdicts(fleet):
    """[(observer, subject name, "suspect"|"dead")] logged by every node
    since the last call."""
    out = []
    for node in fleet.nodes:
        for line in log_tail(node):
            m = VERDICT_RE.search(line)
            if m:
                out.append((node.label, m.group(2), m.group(3)))
    return out


def measure_starve(fleet, seconds, burst_ms):
    victim = fleet.nodes[len(fleet.nodes) // 2]
    verdicts(fleet)  # from here on
    stop = threading.Event()
    cycles = [0]

    def stutter():
        pid = victim.proc.pid
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            stop.wait(burst_ms / 1000.0)
            os.kill(pid, signal.SIGCONT)
            cycles[0] += 1
            stop.wait(burst_ms / 1000.0)

    t = threading.Thread(target=stutter, daemon=True)
    log("  %s stopped and continued every %d ms for %d s"
        % (victim.label, burst_ms, seconds))
    load0 = uptime()
    t.start()
    try:
        time.sleep(seconds)
    finally:
        stop.set()
        t.join(5)
        os.kill(victim.proc.pid, signal.SIGCONT)
    time.sleep(2.0)  # what was logged up to the end
    seen = verdicts(fleet)
    dead = [v for v in seen if v[2] == "dead"]
    suspect = [v for v in seen if v[2] == "suspect"]
    return {"victim": victim.label, "seconds": seconds,
            "burst_ms": burst_ms, "cycles": cycles[0],
            "false_dead": len(dead), "false_suspect": len(suspect),
            "dead_subjects": sorted({v[1] for v in dead}),
            "dead_about_victim": sum(v[1] == victim.label for v in dead),
            "dead_by_victim": sum(v[0] == victim.label for v in dead),
            "suspect_about_victim": sum(v[1] == victim.label
                                        for v in suspect),
            "load_before": load0, "load": uptime()}


def run_size(args, work, n):
    fleet = Fleet(work, n, args.seeding)
    res = {"nodes": n, "seeding": args.seeding,
           "join_limit_s": args.join_limit_s}
    try:
        log("%d nodes: starting them all at once (%s)" % (n, uptime()))
        res["join"] = measure_join(fleet, n, args.join_limit_s)
        j = res["join"]
        if j["all_alive_after_ready_s"] is not None:
            log("%d nodes: all ready %.1f s after the last spawn; all see "
                "all alive %.2f s after the last ready"
                % (n, j["ready_after_spawn_s"], j["all_alive_after_ready_s"]))
        else:
            log("%d nodes: waiting %.0f s more for the rest to converge"
                % (n, args.join_limit_s))
            time.sleep(args.join_limit_s)
        res["listing"] = measure_listing(fleet, work, args.rounds)
        res["idle"] = measure_idle(fleet, args.idle_s, args.settle_s)
        log("%d nodes idle: %.0f B/s per node (median), max %.0f; CPU "
            "%.2f %% per node, %.2f cores for the fleet"
            % (n, res["idle"]["median_bps"], res["idle"]["max_bps"],
               res["idle"]["cpu_pct_median"], res["idle"]["cpu_cores_fleet"]))
        if args.starve_s > 0:
            res["starve"] = measure_starve(fleet, args.starve_s,
                                           args.burst_ms)
            s = res["starve"]
            log("%d nodes starved: %d false dead, %d suspect verdicts"
                % (n, s["false_dead"], s["false_suspect"]))
    finally:
        fleet.cleanup()
    return res


# --------------------------------------------------------------------------
# report


def rtt_line(r):
    if not r["probes"]:
        return "no probe answered"
    w = r["within"]
    return ("%d answered: %.0f / %.0f / %.0f %% within 5 / 25 / 100 ms, "
            "mean %.1f ms" % (r["probes"], 100 * w["0.005"], 100 * w["0.025"],
                              100 * w["0.1"], r["mean_ms"]))


def report(results):
    lines = ["", "wheelmesh fleet benchmark (loopback, one machine)"]
    if not results:
        return 0
    misses = 0
    for r in results:
        n = r["nodes"]
        j, i = r["join"], r["idle"]
        lst = median([x["all_s"] for x in r["listing"]])
        lines.append("")
        lines.append("%d nodes, seeded %s" % (
            n, "from node 0" if r["seeding"] == "one" else "in a chain"))
        if j["all_alive_after_ready_s"] is None:
            misses += 1
            lines.append("  all see all alive   not within %.0f s of the "
                         "last ready (%d of %d nodes did)   target < %.0f s"
                         "  MISS" % (r["join_limit_s"], j["nodes_there"], n,
                                     TARGET_JOIN_S))
        else:
            ok = j["all_alive_after_ready_s"] < TARGET_JOIN_S
            misses += not ok
            lines.append("  all see all alive   %6.2f s after the last "
                         "ready (%.2f s after the last spawn)   target < "
                         "%.0f s  %s" % (j["all_alive_after_ready_s"],
                                         j["all_alive_after_spawn_s"],
                                         TARGET_JOIN_S, mark(ok)))
        lines.append("                      [%s]" % j["load"])
        if "probe_rtt" in j:
            lines.append("  probe round trips   %s (the join)"
                         % rtt_line(j["probe_rtt"]))
        ok = lst < TARGET_LIST_S
        misses += not ok
        lines.append("  new wheel listed    %6.3f s by all (median of %d; "
                     "worst %.3f)   target < %.0f s  %s"
                     % (lst, len(r["listing"]),
                        max(x["all_s"] for x in r["listing"]),
                        TARGET_LIST_S, mark(ok)))
        lines.append("                      [%s]" % r["listing"][-1]["load"])
        ok = i["median_bps"] < TARGET_IDLE_BPS
        misses += not ok
        lines.append("  idle traffic        %6.0f B/s per node (median; max "
                     "%.0f)   target < %.0f  %s"
                     % (i["median_bps"], i["max_bps"], TARGET_IDLE_BPS,
                        mark(ok)))
        lines.append("                      (idle CPU %.2f %% per node, %.2f "
                     "cores for the fleet) [%s]"
                     % (i["cpu_pct_median"], i["cpu_cores_fleet"], i["load"]))
        lines.append("  probe round trips   %s (idle)"
                     % rtt_line(i["probe_rtt"]))
        if "starve" in r:
            s = r["starve"]
            ok = s["false_dead"] <= TARGET_FALSE_DEAD
            misses += not ok
            lines.append("  false dead verdicts %6d in %d s, %s stopped "
                         "and continued every %d ms   target %d  %s"
                         % (s["false_dead"], s["seconds"], s["victim"],
                            s["burst_ms"], TARGET_FALSE_DEAD, mark(ok)))
            lines.append("                      (%d about it, %d by it; "
                         "%d suspect verdicts, %d about it)"
                         % (s["dead_about_victim"], s["dead_by_victim"],
                            s["false_suspect"], s["suspect_about_victim"]))
            lines.append("                      [%s]" % s["load"])
    lines.append("")
    print("\n".join(lines))
    return misses


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin")
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--seeding", choices=("one", "chain"), default="one")
    ap.add_argument("--join-limit-s", type=float, default=120.0,
                    help="give up waiting for the join after this (120)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="wheels put, one after the other (5)")
    ap.add_argument("--idle-s", type=float, default=30.0)
    ap.add_argument("--settle-s", type=float, default=60.0,
                    help="wait before the idle part (60): a join's news is "
                    "still piggybacked on probes for about a minute")
    ap.add_argument("--starve-s", type=int, default=300,
                    help="0: no starvation part")
    ap.add_argument("--burst-ms", type=int, default=300)
    ap.add_argument("--json", metavar="FILE",
                    help="also write every number as JSON to FILE")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when a target is missed")
    ap.add_argument("--workdir")
    args = ap.parse_args(argv)
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
    except ValueError:
        ap.error("--sizes: a comma-separated list of node counts")
    if any(s < 2 for s in sizes) or args.rounds < 1:
        ap.error("sizes >= 2, --rounds >= 1")
    try:
        harness.BIN = find_binary(args.bin)
    except BenchError as e:
        log(str(e))
        return 1
    log("open files: %d" % raise_fd_limit(1 << 16))
    work = args.workdir or tempfile.mkdtemp(prefix="wm-bench-fleet-")
    os.makedirs(work, exist_ok=True)
    results = []
    t0 = time.monotonic()
    try:
        for n in sizes:
            results.append(run_size(args, work, n))
    except (BenchError, harness.NodeError, AssertionError) as e:
        log("FAILED: %s" % e)
        if results:
            log("partial results: %s" % json.dumps(results, default=str))
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    misses = report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    log("done in %.0f s" % (time.monotonic() - t0))
    return 1 if args.strict and misses else 0


if __name__ == "__main__":
    sys.exit(main())
