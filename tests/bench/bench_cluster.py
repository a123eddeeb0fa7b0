#!/usr/bin/python3
"""Cluster benchmark for wheelmesh: peer fetch throughput, fetch from several
holders over capped links, index convergence and idle gossip cost.

Not part of the test suite. Python 3 standard library, pip (Debian's
`python3 -m venv`), nginx and curl; part (b) needs root and `ip netns`.
See README.md next to this file ("Cluster benchmark").

  (a) peer fetch: a --big-mb wheel put on node A of a loopback cluster of
      two; for each of `curl -o /dev/null`, `pip download --no-deps` and a
      slow curl (--limit-rate --slow-rate) a fresh node B (new data, new
      identity) pulls the wheel from A while it streams it to the client;
      compared with curl and pip of the same file from nginx on loopback,
      in the same round. B's CPU per GiB is sampled per thread
      (/proc/PID/task) until the wheel is in B's store. Targets: curl via
      B <= 1.5 x curl from nginx; B's CPU <= 1.5 s per GiB, also with the
      slow reader; pip via B <= 1.15 x pip from nginx.
  (b) several holders: five hosts in network namespaces, every host's
      upload capped by tbf at --rate; a --share-mb wheel held by h1-h3 and
      another held by h4 only; h5 fetches each (curl of /files/... from its
      own node). Target: 3 holders >= 2.5 x faster than 1.
  (c) convergence: N nodes on loopback (--sizes), all trusted, all seeded
      with node 0; once all see each other alive, a wheel is put on one node
      and every node's /links/ is polled every 20 ms until all list it.
      Then nothing happens for --idle-s seconds and cluster.bytes_out is
      read before and after. Targets: full convergence < 2 s at 32 nodes,
      idle gossip < 1 KB/s per node.
  (d) a swarm: 1 + --swarm-n hosts in network namespaces, every host's
      link capped by tbf at --swarm-rate each way; a --swarm-mb wheel put
      on h1, then every other host's curl asks its own node for it at the
      same moment. Reported: each fetcher's rate as a share of its link
      (min, median, max), what h1 and the swarm sent, how busy h1's link
      was, and the peer fetches that failed (each one would have gone to
      upstream). The nodes' data is in --swarm-dir (memory). Target:
      every fetcher >= 80 % of its link, no failed peer fetch. Needs
      root; not in the default --only.
  (e) an upload cap: seven hosts in network namespaces, every link capped
      by tbf at --rate each way; a --cap-mb wheel held by h1, whose
      cluster.max_upload_rate is --cap-rate, and by h2 and h3 (no cap);
      h4-h7 ask their own nodes for it at the same moment. h1's uploads
      (/metrics wheelmesh_upload_bytes_total) are read every 0.25 s.
      Target: h1 at most 10 % over its cap, over its whole send and over
      any 2 s of it (less its bucket's burst); every fetch served by
      peers (none failed). Needs root; not in the default --only.

Every part reports the median over --rounds rounds. --quick: a short run.
--only PARTS runs some of them (e.g. --only ac); --json FILE also writes
every number, per round, as JSON.
Exit status 0 when the run completed (MISSes included unless --strict), 1
on a failure, 2 on a usage error.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import (MiB, BenchError, curl_timed, find_binary, log,
                      median)
from benchlib import mark as verdict
import benchlib  # noqa: E402
import harness  # noqa: E402
import makewheel  # noqa: E402
from upstream_index import Nginx, StaticIndex  # noqa: E402

TARGET_A_CURL = 1.5  # curl via B / curl from nginx <=
TARGET_A_CPU = 1.5   # B's CPU seconds per GiB received <= (fast and slow)
TARGET_A_PIP = 1.15  # pip via B / pip from nginx <=
TARGET_B = 2.5      # 1-holder time / 3-holder time >=
TARGET_C_S = 2.0    # convergence at the largest size (32) <
TARGET_IDLE = 1000  # idle gossip bytes/s per node <
TARGET_D = 0.80     # every swarm fetcher's rate / its link's >=
TARGET_E = 1.10     # the capped holder's upload rate / its cap <=


def keygen(path):
    p = harness.wm("keygen", "-o", path)
    if p.returncode != 0:
        raise BenchError("keygen failed\n" + harness.describe(p))
    return p.stdout.strip().split()[-1]


def curl_time(argv_prefix, curl, url, expect_size):
    """curl URL to /dev/null (ARGV_PREFIX e.g. `ip netns exec NS`); returns
    curl's time_total after checking the status and the size."""
    return curl_timed(curl, url, expect_size, prefix=argv_prefix,
                      timeout=900)


def cpu_seconds(pid):
    """benchlib.cpu_seconds, NaN when it cannot be read."""
    secs = benchlib.cpu_seconds(pid)
    return float("nan") if secs is None else secs


def wire_bytes_by_pid():
    """{pid: (bytes_sent, bytes_received)} over the TCP sockets each
    process has open, from `ss -tinp` (ZMTP + CURVE included, TCP/IP
    headers not)."""
    p = subprocess.run(["ss", "-H", "-tinp"], capture_output=True,
                       text=True, timeout=30)
    out = {}
    pid = None
    for line in p.stdout.splitlines():
        m = re.search(r"pid=(\d+)", line)
        if m:
            pid = int(m.group(1))
            continue
        if pid is None:
            continue
        s = re.search(r"bytes_sent:(\d+)", line)
        r = re.search(r"bytes_received:(\d+)", line)
        tot = out.setdefault(pid, [0, 0])
        tot[0] += int(s.group(1)) if s else 0
        tot[1] += int(r.group(1)) if r else 0
        pid = None
    return out


# --------------------------------------------------------------------------
# loopback clusters


class LoopCluster:
    """Nodes on loopback with generated identities, all trusted."""

    def __init__(self, workdir, nkeys, tag):
        self.dir = os.path.join(workdir, tag)
        os.makedirs(self.dir)
        self.keys = []
        for i in range(nkeys):
            path = os.path.join(self.dir, "k%d.key" % i)
            self.keys.append((path, keygen(path)))
        self.trusted = os.path.join(self.dir, "trusted_keys")
        with open(self.trusted, "w") as f:
            for _, pub in self.keys:
                f.write(pub + "\n")
        self.nodes = []

    def node(self, i, seeds=(), wait=True):
        port = harness.free_port()
        ep = "tcp://127.0.0.1:%d" % port
        conf = {"node": {"name": "n%d" % i, "identity": self.keys[i][0]},
                "cluster": {"listen": ep, "advertise": ep,
                            "seeds": list(seeds),
                            "trusted_keys": self.trusted,
                            # every node's puts are listed everywhere
                            "publishers": self.trusted},
                "upstream": {"indexes": []}}
        n = harness.Node(config=conf, log=True, start=False,
                         name="n%d" % i)
        n.endpoint = ep
        n.pubkey = self.keys[i][1]
        self.nodes.append(n)
        n.start(wait=wait)
        return n

    def stop(self, n):
        try:
            n.cleanup()
        except harness.NodeError as e:
            log("node %s did not stop cleanly: %s" % (n.name, e))
        if n in self.nodes:
            self.nodes.remove(n)

    def cleanup(self):
        for n in list(self.nodes):
            self.stop(n)


def alive_view(node):
    st = node.status()
    return {m["address"]: m["state"] for m in st.get("members", [])}


def wait_until(what, pred, timeout, interval=0.1):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            last = pred()
            if last:
                return time.monotonic() - t0
        except (OSError, harness.NodeError, ValueError) as e:
            last = e
        time.sleep(interval)
    raise BenchError("%s: not within %.0f s (last %r)" % (what, timeout,
                                                          last))


def wait_all_alive(nodes, timeout):
    """Until every one of NODES sees all the others alive."""
    wait_until("%d nodes to see each other alive" % len(nodes), lambda: all(
        list(alive_view(x).values()).count("alive") == len(nodes) - 1
        for x in nodes), timeout, interval=0.25)


def holders_of(node, sha):
    for f in node.files():
        if f.get("sha256") == sha:
            return f.get("holders", [])
    return []


# --------------------------------------------------------------------------
# (a) peer fetch vs nginx


A_VARIANTS = ("b_curl", "b_pip", "b_slow", "nginx_curl", "nginx_pip")


def bench_a(args, work, res):
    log("(a) writing a %d MiB wheel" % args.big_mb)
    index = StaticIndex(root=os.path.join(work, "a-index"))
    path = makewheel.make_wheel(index.packages, "bench-cluster-big", "1.0",
                                size=args.big_mb * MiB)
    index.add(path)
    size = os.path.getsize(path)
    sha = harness.sha256_file(path)
    fname = os.path.basename(path)
    nginx = Nginx(index)
    nfresh = 3 * args.rounds + 2
    cl = LoopCluster(work, nfresh, "a-cluster")
    dl = os.path.join(work, "a-dl")
    os.makedirs(dl)
    try:
        node_a = cl.node(0)
        t0 = time.monotonic()
        p = harness.wm("put", "--node", node_a.url, path, timeout=600)
        if p.returncode != 0:
            raise BenchError("put failed\n" + harness.describe(p))
        log("(a) put on A: %.1f s" % (time.monotonic() - t0))
        venv = harness.venv(os.path.join(work, "a-venv"))
        env = harness.pip_env()

        def pip_dl(index_url, out):
            cmd = [venv.python, "-m", "pip", "--no-cache-dir",
                   "--disable-pip-version-check", "download", "--no-deps",
                   "--progress-bar", "off", "-q", "--index-url", index_url,
                   "-d", out, "bench-cluster-big"]
            t = time.perf_counter()
            pr = subprocess.run(cmd, capture_output=True, text=True,
                                env=env, timeout=900)
            took = time.perf_counter() - t
            got = os.path.join(out, fname)
            if pr.returncode != 0 or not os.path.exists(got):
                raise BenchError("pip download from %s failed\n%s"
                                 % (index_url, harness.describe(pr)))
            if os.path.getsize(got) != size:
                raise BenchError("pip got %d bytes, want %d"
                                 % (os.path.getsize(got), size))
            return took, got

        # untimed warm-up: pip's own start-up, nginx's page cache
        _, got = pip_dl(nginx.url, os.path.join(dl, "warm"))
        if harness.sha256_file(got) != sha:
            raise BenchError("warm-up pip download from nginx: bad sha256")
        shutil.rmtree(os.path.join(dl, "warm"))
        curl_time([], args.curl, "%s/packages/%s" % (nginx.base, fname),
                  size)

        rounds = []
        state = {"prev": None, "next_key": 1}

        def fresh_b():
            """A new node B (new data, new identity) seeded with A, once A
            alone holds the wheel as far as the live cluster knows."""
            prev = state["prev"]
            if prev is not None:
                # The previous B holds the wheel too, and its holdings stay
                # in the index: stop it and wait until A has it dead, so
                # the new B fetches from A alone.
                ep = prev.endpoint
                cl.stop(prev)
                wait_until("A sees the previous B dead",
                           lambda: alive_view(node_a).get(ep) == "dead", 30)
            b = cl.node(state["next_key"], seeds=[node_a.endpoint])
            state["next_key"] += 1
            state["prev"] = b

            def a_alone():
                live = {m["id"] for m in b.status()["members"]
                        if m["state"] == "alive"}
                hold = [h for h in holders_of(b, sha)
                        if h in live or h == node_a.pubkey]
                return (alive_view(b).get(node_a.endpoint) == "alive"
                        and hold == [node_a.pubkey])

            # A new B may take the previous one for alive until it has
            # probed it itself.
            wait_until("B sees A alive and the only live holder", a_alone,
                       30, interval=0.05)
            return b

        def through_b(what, r, row):
            b = fresh_b()
            cpu_a0 = cpu_seconds(node_a.proc.pid)
            threads = benchlib.ThreadCPU(b.proc.pid)
            url = "%s/files/%s/%s" % (b.url, sha, fname)
            if what == "b_pip":
                out = os.path.join(dl, "r%d" % r)
                row[what + "_s"], got = pip_dl(b.url + "/simple/", out)
                if harness.sha256_file(got) != sha:
                    raise BenchError("round %d: pip got a wheel with the "
                                     "wrong sha256 from B" % (r + 1))
                shutil.rmtree(out)
            elif what == "b_slow":
                row[what + "_s"] = curl_timed(
                    args.curl, url, size,
                    extra=["--limit-rate", args.slow_rate], timeout=900)
            else:
                row[what + "_s"] = curl_time([], args.curl, url, size)
            # The commit into B's store comes after the client's last byte:
            # its CPU counts too.
            wait_until("B stores the wheel",
                       lambda: b.status()["cache"]["files"] >= 1, 120,
                       interval=0.05)
            cpu = threads.stop()
            row[what + "_cpu_b"] = cpu
            row[what + "_cpu_a_s"] = cpu_seconds(node_a.proc.pid) - cpu_a0
            row[what + "_peer_fetches"] = \
                b.status()["cluster"].get("peer_fetches")

        for r in range(args.rounds):
            row = {"uptime_before": benchlib.uptime()}
            order = list(A_VARIANTS[r % len(A_VARIANTS):]
                         + A_VARIANTS[:r % len(A_VARIANTS)])
            for what in order:
                if what.startswith("b_"):
                    through_b(what, r, row)
                elif what == "nginx_curl":
                    row[what + "_s"] = curl_time(
                        [], args.curl, "%s/packages/%s" % (nginx.base, fname),
                        size)
                else:
                    out = os.path.join(dl, "r%d" % r)
                    row[what + "_s"], _ = pip_dl(nginx.url, out)
                    shutil.rmtree(out)
            # B now holds the wheel: the same curl, served locally
            row["b_local_curl_s"] = curl_time(
                [], args.curl, "%s/files/%s/%s" % (state["prev"].url, sha,
                                                   fname), size)
            row["uptime_after"] = benchlib.uptime()
            rounds.append(row)
            gib = size / float(1 << 30)
            log("(a) round %d/%d: curl via B %.2fs / nginx %.2fs = %.2f; "
                "pip via B %.2fs / nginx %.2fs = %.2f; B cpu/GiB: curl %.2f "
                "slow %.2f pip %.2f; B local curl %.2fs; %s"
                % (r + 1, args.rounds, row["b_curl_s"], row["nginx_curl_s"],
                   row["b_curl_s"] / row["nginx_curl_s"], row["b_pip_s"],
                   row["nginx_pip_s"], row["b_pip_s"] / row["nginx_pip_s"],
                   row["b_curl_cpu_b"]["total"] / gib,
                   row["b_slow_cpu_b"]["total"] / gib,
                   row["b_pip_cpu_b"]["total"] / gib,
                   row["b_local_curl_s"], row["uptime_after"]))
        gib = size / float(1 << 30)
        keys = [v + "_s" for v in A_VARIANTS] + ["b_local_curl_s"]
        med = {k: median([r[k] for r in rounds]) for k in keys}
        cpu = {}
        for v in ("b_curl", "b_pip", "b_slow"):
            groups = rounds[0][v + "_cpu_b"].keys()
            cpu[v] = {g: median([r[v + "_cpu_b"][g] for r in rounds]) / gib
                      for g in groups}
            cpu[v]["a_total"] = median([r[v + "_cpu_a_s"]
                                        for r in rounds]) / gib
        res["a"] = {
            "size_bytes": size, "slow_rate": args.slow_rate,
            "rounds": rounds, "median": med, "cpu_per_gib": cpu,
            "ratio_curl": med["b_curl_s"] / med["nginx_curl_s"],
            "ratio_pip": med["b_pip_s"] / med["nginx_pip_s"],
            "ratio_pip_vs_curl": med["b_pip_s"] / med["nginx_curl_s"],
            "best_curl": min(r["b_curl_s"] / r["nginx_curl_s"]
                             for r in rounds),
            "best_pip": min(r["b_pip_s"] / r["nginx_pip_s"]
                            for r in rounds)}
    finally:
        cl.cleanup()
        nginx.cleanup()
        shutil.rmtree(os.path.join(work, "a-index"), ignore_errors=True)


# --------------------------------------------------------------------------
# (b) three holders vs one over capped links


def ns_put(node, path):
    """`wheelmesh put` of PATH on NODE, from inside its namespace."""
    p = harness.run(node.lab_host.exec_argv(
        [harness.BIN, "put", "--node", node.url, path]), timeout=600)
    if p.returncode != 0:
        raise BenchError("put on %s failed\n%s"
                         % (node.name, harness.describe(p)))


@contextlib.contextmanager
def ns_lab(part, res):
    """A netns_util.Lab for bench part PART and the list its nodes go in,
    both cleaned up after; None, with PART recorded as skipped, where
    namespaces cannot be made."""
    import netns_util as nu
    try:
        lab = nu.Lab()
    except nu.Skip as e:
        log("(%s) skipped: %s" % (part, e))
        res[part] = {"skipped": str(e)}
        yield None
        return
    nodes = []
    try:
        yield lab, nodes
    finally:
        for x in nodes:
            try:
                x.cleanup()
            except harness.NodeError as e:
                log("node %s: %s" % (x.name, e))
        lab.cleanup()


def bench_b(args, work, res):
    import netns_util as nu
    wdir = os.path.join(work, "b-wheels")
    os.makedirs(wdir)
    with ns_lab("b", res) as got:
        if got is None:
            return
        lab, nodes = got
        hosts = [lab.add_host() for _ in range(5)]
        for h in hosts[:4]:
            lab.cap(h, args.rate, up=True, down=False)
        nodes += nu.start_cluster(lab, hosts)
        fetcher = nodes[4]
        wait_all_alive(nodes, 30)

        rounds = []
        for r in range(args.rounds):
            w3 = makewheel.make_wheel(wdir, "bench-share3-r%d" % r, "1.0",
                                      size=args.share_mb * MiB)
            w1 = makewheel.make_wheel(wdir, "bench-share1-r%d" % r, "1.0",
                                      size=args.share_mb * MiB)
            size = os.path.getsize(w3)
            s3, s1 = harness.sha256_file(w3), harness.sha256_file(w1)
            for n in nodes[:3]:
                ns_put(n, w3)
            ns_put(nodes[3], w1)
            want3 = {n.pubkey for n in nodes[:3]}
            wait_until("h5 sees 3 holders and 1 holder",
                       lambda: set(holders_of(fetcher, s3)) >= want3
                       and holders_of(fetcher, s1) == [nodes[3].pubkey], 30,
                       interval=0.05)
            row = {}
            order = [("three", w3, s3), ("one", w1, s1)]
            if r % 2:
                order.reverse()
            for key, w, s in order:
                url = "http://127.0.0.1:%d/files/%s/%s" % (
                    fetcher.port, s, os.path.basename(w))
                before = {n.name: n.status()["cluster"]["bytes_out"]
                          for n in nodes[:4]}
                row[key + "_s"] = curl_time(
                    fetcher.lab_host.exec_argv([]), args.curl, url, size)
                row[key + "_sent_mb"] = {
                    n.name: round((n.status()["cluster"]["bytes_out"]
                                   - before[n.name]) / 1e6, 1)
                    for n in nodes[:4]}
                st, _, got, n_ = fetcher.download("/files/%s/%s"
                                                  % (s, os.path.basename(w)))
                if (st, got, n_) != (200, s, size):
                    raise BenchError("h5 served %s wrong: %r"
                                     % (key, (st, got, n_)))
            rounds.append(row)
            log("(b) round %d/%d: 3 holders %.2fs (sent MB %s)  1 holder %.2fs"
                "  -> %.2fx" % (r + 1, args.rounds, row["three_s"],
                               row["three_sent_mb"], row["one_s"],
                               row["one_s"] / row["three_s"]))
            for w in (w3, w1):
                os.unlink(w)
        med3 = median([r["three_s"] for r in rounds])
        med1 = median([r["one_s"] for r in rounds])
        rate_bps = _rate_bits(args.rate)
        res["b"] = {"size_bytes": size, "rate": args.rate, "rounds": rounds,
                    "median": {"three_s": med3, "one_s": med1},
                    "ideal_one_s": size * 8 / rate_bps,
                    "ratio": med1 / med3,
                    "qdisc_h1": lab.qdisc_stats(hosts[0]).strip()}


def _rate_bits(rate):
    m = re.match(r"^([0-9.]+)\s*([kmg]?)bit$", rate.lower())
    if not m:
        return float("nan")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6,
                                "g": 1e9}[m.group(2)]


def curl_all_at_once(args, fetchers, sha, filename, size, sample, period,
                     tail_of):
    """Every one of FETCHERS curls /files/SHA/FILENAME from its own node at
    the same moment (a thread each, released together); SAMPLE(seconds
    since then) is called every PERIOD seconds while they run and once
    after. Returns ({node name: seconds}, [what SAMPLE returned]); a
    failed fetch raises BenchError with the log tails of TAIL_OF."""
    took, errors = {}, []
    go = threading.Event()

    def fetch(f):
        url = "http://127.0.0.1:%d/files/%s/%s" % (f.port, sha, filename)
        go.wait()
        try:
            took[f.name] = curl_time(f.lab_host.exec_argv([]), args.curl,
                                     url, size)
        except Exception as e:  # reported below
            errors.append("%s: %s" % (f.name, e))
    threads = [threading.Thread(target=fetch, args=(f,)) for f in fetchers]
    for t in threads:
        t.start()
    samples, t_go = [], time.monotonic()
    go.set()
    while any(t.is_alive() for t in threads):
        samples.append(sample(time.monotonic() - t_go))
        time.sleep(period)
    for t in threads:
        t.join()
    samples.append(sample(time.monotonic() - t_go))
    if errors:
        raise BenchError("fetches failed: %s\n%s" % (
            errors, "\n".join("--- %s\n%s" % (x.name, x.tail(30))
                              for x in tail_of)))
    return took, samples


# --------------------------------------------------------------------------
# (d) a swarm


@contextlib.contextmanager
def tempdir_in(path):
    """Temporary directories made meanwhile (the nodes') go under PATH
    (None or missing: where they would)."""
    saved = tempfile.tempdir
    if path and os.path.isdir(path):
        tempfile.tempdir = path
    try:
        yield
    finally:
        tempfile.tempdir = saved


def bench_d(args, work, res):
    import netns_util as nu
    wdir = os.path.join(work, "d-wheels")
    os.makedirs(wdir)
    n = args.swarm_n + 1
    with ns_lab("d", res) as got:
        if got is None:
            return
        lab, nodes = got
        hosts = [lab.add_host() for _ in range(n)]
        for h in hosts:
            lab.cap(h, args.swarm_rate, up=True, down=True)
        # Each agent of a fleet writes its own disk; here 17 nodes would
        # share one, and their syncs (4 GiB in under a minute) would stall
        # their loops: the nodes' data goes to memory when it can.
        with tempdir_in(args.swarm_dir):
            nodes += nu.start_cluster(lab, hosts)
        seed, fetchers = nodes[0], nodes[1:]
        wait_all_alive(nodes, 60)
        rounds = []
        for r in range(args.rounds):
            w = makewheel.make_wheel(wdir, "bench-swarm-r%d" % r, "1.0",
                                     size=args.swarm_mb * MiB)
            size, sha = os.path.getsize(w), harness.sha256_file(w)
            ns_put(seed, w)
            os.unlink(w)
            wait_until("every fetcher sees h1 hold it", lambda: all(
                holders_of(f, sha) == [seed.pubkey] for f in fetchers), 30,
                interval=0.1)

            def cluster(x):
                return x.status()["cluster"]
            before = {x.name: cluster(x) for x in nodes}

            def wire_h1():
                m = re.search(r"Sent (\d+) bytes", lab.qdisc_stats(hosts[0]))
                return int(m.group(1)) if m else 0

            # what h1 and the fetchers handed to ZeroMQ, and what left h1
            # on the wire, each second: where the swarm spends its time
            took, timeline = curl_all_at_once(
                args, fetchers, sha, os.path.basename(w), size,
                lambda t: (t, [cluster(x)["bytes_out"] for x in nodes],
                           wire_h1()),
                1.0, nodes[:3])
            after = {x.name: cluster(x) for x in nodes}
            for x in fetchers[:3]:  # how each got its chunks
                for line in x.tail(60).splitlines():
                    if os.path.basename(w) in line and "from peers:" in line:
                        log("(d) %s: %s" % (x.name, line.split(": ", 3)[-1]))
            sent = {x.name: after[x.name]["bytes_out"]
                    - before[x.name]["bytes_out"] for x in nodes}
            failed = sum(after[f.name]["peer_fetch_failures"]
                         - before[f.name]["peer_fetch_failures"]
                         for f in fetchers)
            link = _rate_bits(args.swarm_rate) / 8
            share = sorted(size / t / link for t in took.values())
            rate_mb = []
            for (t0_, a, wa), (t1_, b, wb) in zip(timeline, timeline[1:]):
                rate_mb.append((t1_, round((b[0] - a[0]) / (t1_ - t0_) / 1e6,
                                           1),
                                round(sum(b[1:]) - sum(a[1:]))
                                / (t1_ - t0_) / 1e6,
                                (wb - wa) / (t1_ - t0_) / 1e6))
            log("(d) MB/s each second (t, h1 to ZeroMQ, h1 on the wire, all "
                "fetchers to ZeroMQ): %s" % (
                    " ".join("%.0f:%.1f/%.1f/%.0f" % (t_, h, w_, a_)
                             for t_, h, a_, w_ in rate_mb)))
            busy = [w_ for _, _, _, w_ in rate_mb]
            h1_busy = (sum(busy) / len(busy) / (link / 1e6)) if busy else 0
            row = {"seconds": took, "share_of_link": share,
                   "sent_mb_per_s": rate_mb,
                   "seed_sent_copies": sent[seed.name] / size,
                   "swarm_sent_copies": sum(sent[f.name] for f in fetchers)
                   / size, "failed_peer_fetches": failed,
                   "h1_wire_busy": h1_busy}
            rounds.append(row)
            log("(d) round %d/%d: %d fetchers, share of link min %.2f "
                "median %.2f max %.2f; h1 sent %.2f copies, the swarm %.2f; "
                "%d failed peer fetches; h1's link busy %.2f" % (
                    r + 1, args.rounds, len(fetchers), share[0],
                    median(share), share[-1], row["seed_sent_copies"],
                    row["swarm_sent_copies"], failed, h1_busy))
        res["d"] = {"size_bytes": size, "rate": args.swarm_rate,
                    "fetchers": len(fetchers), "rounds": rounds,
                    "ideal_s": size / (_rate_bits(args.swarm_rate) / 8)}


# --------------------------------------------------------------------------
# (e) an upload cap


def uploaded(node):
    return node.metrics().get("wheelmesh_upload_bytes_total", 0.0)


def max_window_rate(samples, window, burst):
    """The highest rate over any WINDOW seconds of SAMPLES [(t, bytes)],
    less BURST bytes (what a token bucket may send at once)."""
    best = 0.0
    for i, (t0, b0) in enumerate(samples):
        for t1, b1 in samples[i + 1:]:
            if t1 - t0 >= window:
                best = max(best, (b1 - b0 - burst) / (t1 - t0))
                break
    return best


def bench_e(args, work, res):
    import netns_util as nu
    wdir = os.path.join(work, "e-wheels")
    os.makedirs(wdir)
    cap = int(_rate_bits(args.cap_rate) / 8)
    with ns_lab("e", res) as got:
        if got is None:
            return
        lab, nodes = got
        hosts = [lab.add_host() for _ in range(7)]
        for h in hosts:
            lab.cap(h, args.rate, up=True, down=True)
        nodes += nu.start_cluster(lab, hosts, host_config={
            hosts[0]: {"cluster": {"max_upload_rate": cap}}})
        holders, fetchers = nodes[:3], nodes[3:]
        capped = holders[0]
        wait_all_alive(nodes, 60)
        rounds = []
        for r in range(args.rounds):
            w = makewheel.make_wheel(wdir, "bench-cap-r%d" % r, "1.0",
                                     size=args.cap_mb * MiB)
            size, sha = os.path.getsize(w), harness.sha256_file(w)
            for x in holders:
                ns_put(x, w)
            os.unlink(w)
            want = {x.pubkey for x in holders}
            wait_until("every fetcher sees the three holders", lambda: all(
                set(holders_of(f, sha)) == want for f in fetchers), 30,
                interval=0.1)
            before = {x.name: x.status()["cluster"] for x in nodes}
            busy0 = capped.metrics().get("wheelmesh_upload_busy_total", 0)
            took, samples = curl_all_at_once(
                args, fetchers, sha, os.path.basename(w), size,
                lambda t: (t, uploaded(capped)), 0.25, nodes[:4])
            after = {x.name: x.status()["cluster"] for x in nodes}
            sent = {x.name: after[x.name]["bytes_out"]
                    - before[x.name]["bytes_out"] for x in nodes}
            failed = sum(after[f.name]["peer_fetch_failures"]
                         - before[f.name]["peer_fetch_failures"]
                         for f in fetchers)
            # h1's rate while it sent: from the start to its last byte
            base = samples[0][1]
            total = samples[-1][1] - base
            last = next(t for t, b in samples if b - base >= total)
            whole = total / last if last > 0 else 0.0
            # peerserve.c's node bucket: a quarter second, at least a chunk
            peak = max_window_rate(samples, 2.0, max(cap / 4, MiB))
            row = {"seconds": took, "capped_sent": total,
                   "capped_rate": whole, "capped_peak_2s": peak,
                   "capped_busy": capped.metrics().get(
                       "wheelmesh_upload_busy_total", 0) - busy0,
                   "sent_mb": {k: round(v / 1e6, 1) for k, v in sent.items()},
                   "failed_peer_fetches": failed}
            rounds.append(row)
            log("(e) round %d/%d: fetchers %s s; h1 sent %.1f MB at %.2f "
                "MB/s (cap %.2f), %.2f at most over 2 s less its bucket, %d "
                "busy answers; "
                "MB sent: %s; %d failed peer fetches" % (
                    r + 1, args.rounds,
                    "/".join("%.1f" % took[f.name] for f in fetchers),
                    total / 1e6, whole / 1e6, cap / 1e6, peak / 1e6,
                    row["capped_busy"], row["sent_mb"], failed))
        res["e"] = {"size_bytes": size, "rate": args.rate,
                    "cap_rate": args.cap_rate, "cap_bytes_per_s": cap,
                    "rounds": rounds}


# --------------------------------------------------------------------------
# (c) convergence and idle cost


def bench_c(args, work, res):
    res["c"] = {}
    wdir = os.path.join(work, "c-wheels")
    os.makedirs(wdir)
    for n_nodes in args.sizes:
        cl = LoopCluster(work, n_nodes, "c-%d" % n_nodes)
        try:
            t0 = time.monotonic()
            seed = cl.node(0)
            for i in range(1, n_nodes):
                cl.node(i, seeds=[seed.endpoint], wait=False)
            for n in cl.nodes:
                n.wait_ready(30)
            nodes = list(cl.nodes)
            t_join = wait_until(
                "%d nodes all alive" % n_nodes,
                lambda: all(list(alive_view(n).values()).count("alive")
                            == n_nodes - 1 for n in nodes),
                120, interval=0.25)
            t_join = time.monotonic() - t0
            log("(c) %d nodes: all alive %.1f s after the first start"
                % (n_nodes, t_join))
            conv = []
            for r in range(args.rounds):
                w = makewheel.make_wheel(wdir, "bench-conv-%d-r%d"
                                         % (n_nodes, r), "1.0", size=4096)
                origin = nodes[(r * 7 + n_nodes - 1) % n_nodes]
                conv.append(converge_once(nodes, origin, w))
                log("(c) %d nodes round %d/%d: put %.3fs, all %d list it "
                    "after %.3fs (from the put's start; p50 node %.3fs)"
                    % (n_nodes, r + 1, args.rounds, conv[-1]["put_s"],
                       n_nodes, conv[-1]["all_s"], conv[-1]["p50_s"]))
                time.sleep(1.0)
            idle = idle_cost(nodes, args.idle_s)
            log("(c) %d nodes idle: %.0f B/s per node out (median), max "
                "%.0f; wire %.0f B/s; cpu %.2f%%" % (
                    n_nodes, idle["bytes_out_per_s_median"],
                    idle["bytes_out_per_s_max"],
                    idle["wire_sent_per_s_median"],
                    idle["cpu_pct_median"]))
            res["c"][str(n_nodes)] = {
                "join_s": t_join, "rounds": conv,
                "median_all_s": median([c["all_s"] for c in conv]),
                "idle": idle}
        finally:
            cl.cleanup()


def converge_once(nodes, origin, wheel):
    fname = os.path.basename(wheel)
    seen = {}
    stop = threading.Event()
    t0 = time.monotonic()

    def poll(n):
        while not stop.is_set():
            try:
                st, _, body = n.get("/links/", timeout=5)
                if st == 200 and fname.encode() in body:
                    seen[n.name] = time.monotonic() - t0
                    return
            except OSError:
                pass
            stop.wait(0.02)

    threads = [threading.Thread(target=poll, args=(n,), daemon=True)
               for n in nodes]
    for t in threads:
        t.start()
    origin.put_ok(wheel)
    put_s = time.monotonic() - t0
    deadline = t0 + 30
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    missing = [n.name for n in nodes if n.name not in seen]
    if missing:
        raise BenchError("after 30 s %d nodes still do not list %s: %s"
                         % (len(missing), fname, missing[:8]))
    times = sorted(seen.values())
    return {"origin": origin.name, "put_s": put_s, "all_s": times[-1],
            "p50_s": times[len(times) // 2],
            "after_put_s": times[-1] - put_s}


def idle_cost(nodes, seconds):
    time.sleep(2.0)  # let the last put's pushes and anti-entropy settle
    s0 = {n.name: n.status()["cluster"] for n in nodes}
    w0 = wire_bytes_by_pid()
    c0 = {n.name: cpu_seconds(n.proc.pid) for n in nodes}
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    w1 = wire_bytes_by_pid()
    c1 = {n.name: cpu_seconds(n.proc.pid) for n in nodes}
    s1 = {n.name: n.status()["cluster"] for n in nodes}
    out_rate = [(s1[k]["bytes_out"] - s0[k]["bytes_out"]) / dt for k in s0]
    in_rate = [(s1[k]["bytes_in"] - s0[k]["bytes_in"]) / dt for k in s0]
    rounds = [(s1[k]["gossip_rounds"] - s0[k]["gossip_rounds"]) / dt
              for k in s0]
    wire = []
    for n in nodes:
        a, b = w0.get(n.proc.pid), w1.get(n.proc.pid)
        if a and b:
            wire.append((b[0] - a[0]) / dt)
    cpu = [100.0 * (c1[k] - c0[k]) / dt for k in c0]
    return {"seconds": dt,
            "bytes_out_per_s_median": median(out_rate),
            "bytes_out_per_s_max": max(out_rate),
            "bytes_in_per_s_median": median(in_rate),
            "gossip_rounds_per_s_median": median(rounds),
            "wire_sent_per_s_median": median(wire),
            "wire_sent_per_s_max": max(wire) if wire else float("nan"),
            "cpu_pct_median": median(cpu)}


# --------------------------------------------------------------------------
# report


def ran(res, part, add):
    """PART's results, after a blank line; None when it did not run, or
    was skipped (then ADD says so)."""
    if part not in res:
        return None
    add("")
    if "skipped" in res[part]:
        add("(%s) skipped: %s" % (part, res[part]["skipped"]))
        return None
    return res[part]


def report(res, args):
    lines = []
    add = lines.append
    add("")
    add("wheelmesh cluster benchmark (%s; medians of %d rounds)"
        % ("quick" if args.quick else "full", args.rounds))
    misses = 0
    if "a" in res:
        a = res["a"]
        m = a["median"]
        add("")
        add("(a) peer fetch of a %.0f MiB wheel, loopback, 2 nodes; %s"
            " (before the first round) .. %s (after the last)"
            % (a["size_bytes"] / MiB, a["rounds"][0]["uptime_before"],
               a["rounds"][-1]["uptime_after"]))
        add("    %-44s %8s %9s" % ("", "seconds", "MB/s"))
        for k, label in [("b_curl_s", "curl via B (B pulls from A)"),
                         ("nginx_curl_s", "curl from nginx"),
                         ("b_pip_s", "pip download via B (B pulls from A)"),
                         ("nginx_pip_s", "pip download from nginx"),
                         ("b_slow_s", "curl --limit-rate %s via B"
                          % a["slow_rate"]),
                         ("b_local_curl_s",
                          "curl from B, wheel local (reference)")]:
            add("    %-44s %8.2f %9.0f" % (label, m[k],
                                            a["size_bytes"] / 1e6 / m[k]))
        add("    CPU seconds per GiB received (B by thread; A total):")
        add("    %-10s %6s %6s %7s %6s %6s %6s %7s" % (
            "", "loop", "zmq-io", "zmq-oth", "other", "exited", "B", "A"))
        for v in ("b_curl", "b_slow", "b_pip"):
            c = a["cpu_per_gib"][v]
            add("    %-10s %6.2f %6.2f %7.2f %6.2f %6.2f %6.2f %7.2f" % (
                v[2:], c["loop"], c["zmq-io"], c["zmq-other"], c["other"],
                c["exited"], c["total"], c["a_total"]))
        cpu = a["cpu_per_gib"]
        checks = [
            ("curl via B / curl from nginx", a["ratio_curl"], TARGET_A_CURL,
             "best %.2f" % a["best_curl"]),
            ("B CPU s/GiB, curl", cpu["b_curl"]["total"], TARGET_A_CPU, ""),
            ("B CPU s/GiB, slow reader", cpu["b_slow"]["total"],
             TARGET_A_CPU, "slow/fast %.2f" % (
                 cpu["b_slow"]["total"] / cpu["b_curl"]["total"])),
            ("pip via B / pip from nginx", a["ratio_pip"], TARGET_A_PIP,
             "best %.2f" % a["best_pip"]),
        ]
        for label, val, target, note in checks:
            ok = val <= target
            misses += not ok
            add("    %-34s %6.2f (target <= %.2f) %s  %s"
                % (label, val, target, verdict(ok), note))
        add("    (pip via B / curl from nginx = %.2f, the old target)"
            % a["ratio_pip_vs_curl"])
    b = ran(res, "b", add)
    if b is not None:
        add("(b) %.0f MiB wheel to h5, holders' uploads capped at %s "
            "(1 holder ideal %.1f s)" % (b["size_bytes"] / MiB, b["rate"],
                                         b["ideal_one_s"]))
        for k, label in [("three_s", "held by h1, h2, h3"),
                         ("one_s", "held by h4 only")]:
            add("    %-40s %8.2f s %7.0f MB/s" % (
                label, b["median"][k],
                b["size_bytes"] / 1e6 / b["median"][k]))
        for r, row in enumerate(b["rounds"]):
            add("    round %d: 3 holders sent MB %s" % (
                r + 1, row["three_sent_mb"]))
        ok = b["ratio"] >= TARGET_B
        misses += not ok
        add("    speed-up 3 holders / 1 = %.2fx (target >= %.1f) %s"
            % (b["ratio"], TARGET_B, verdict(ok)))
    if "c" in res:
        add("")
        add("(c) convergence and idle cost, loopback, one seed")
        add("    %5s %7s %10s %10s %10s %10s %10s %6s" % (
            "nodes", "join s", "converge s", "after put", "idle B/s",
            "max B/s", "wire B/s", "cpu %"))
        for k in sorted(res["c"], key=int):
            c = res["c"][k]
            i = c["idle"]
            add("    %5s %7.1f %10.3f %10.3f %10.0f %10.0f %10.0f %6.2f" % (
                k, c["join_s"], c["median_all_s"],
                median([r["after_put_s"] for r in c["rounds"]]),
                i["bytes_out_per_s_median"], i["bytes_out_per_s_max"],
                i["wire_sent_per_s_median"], i["cpu_pct_median"]))
        big = max(res["c"], key=int)
        c = res["c"][big]
        ok = c["median_all_s"] < TARGET_C_S
        misses += not ok
        add("    convergence at %s nodes %.3f s (target < %.1f s at 32) %s"
            % (big, c["median_all_s"], TARGET_C_S, verdict(ok)))
        worst = max(res["c"][k]["idle"]["bytes_out_per_s_median"]
                    for k in res["c"])
        ok = worst < TARGET_IDLE
        misses += not ok
        add("    idle gossip, worst size: %.0f B/s per node (target < %d) %s"
            % (worst, TARGET_IDLE, verdict(ok)))
    d = ran(res, "d", add)
    if d is not None:
        add("(d) a swarm: %d hosts fetch a %.0f MiB wheel held by h1 at "
            "once, every link %s each way (ideal %.1f s)"
            % (d["fetchers"], d["size_bytes"] / MiB, d["rate"],
               d["ideal_s"]))
        for i, r in enumerate(d["rounds"]):
            sh = r["share_of_link"]
            ok = sh[0] >= TARGET_D and r["failed_peer_fetches"] == 0
            misses += not ok
            add("    round %d: share of link min %.2f median %.2f max "
                "%.2f (target every one >= %.2f); h1 sent %.2f copies, "
                "the swarm %.2f; failed peer fetches %d %s"
                % (i + 1, sh[0], median(sh), sh[-1], TARGET_D,
                   r["seed_sent_copies"], r["swarm_sent_copies"],
                   r["failed_peer_fetches"], verdict(ok)))
    e = ran(res, "e", add)
    if e is not None:
        add("(e) an upload cap: h1 capped at %s (cluster.max_upload_rate"
            " %d B/s) and h2, h3 hold a %.0f MiB wheel; 4 hosts fetch it "
            "at once, every link %s each way"
            % (e["cap_rate"], e["cap_bytes_per_s"],
               e["size_bytes"] / MiB, e["rate"]))
        for i, r in enumerate(e["rounds"]):
            whole = r["capped_rate"] / e["cap_bytes_per_s"]
            peak = r["capped_peak_2s"] / e["cap_bytes_per_s"]
            ok = (whole <= TARGET_E and peak <= TARGET_E
                  and r["failed_peer_fetches"] == 0)
            misses += not ok
            add("    round %d: h1's rate / its cap %.2f, over 2 s (less "
                "its bucket) at most %.2f (target <= %.2f); fetchers %s "
                "s; failed peer fetches %d %s"
                % (i + 1, whole, peak, TARGET_E,
                   "/".join("%.1f" % t for t in
                            sorted(r["seconds"].values())),
                   r["failed_peer_fetches"], verdict(ok)))
    add("")
    print("\n".join(lines))
    return misses


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin")
    ap.add_argument("--quick", action="store_true",
                    help="short run: --big-mb 256 --share-mb 64 "
                    "--sizes 4,8,16 --rounds 1 --idle-s 5")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--big-mb", type=int)
    ap.add_argument("--share-mb", type=int)
    ap.add_argument("--rate", default="200mbit")
    ap.add_argument("--slow-rate", default="50M",
                    help="(a) the slow reader's curl --limit-rate")
    ap.add_argument("--sizes")
    ap.add_argument("--idle-s", type=float)
    ap.add_argument("--only", default="abc",
                    help="parts to run, e.g. 'ac' (default abc; d, the "
                    "swarm, and e, the upload cap, only when named)")
    ap.add_argument("--swarm-n", type=int, default=16,
                    help="(d) fetchers")
    ap.add_argument("--swarm-mb", type=int, default=256)
    ap.add_argument("--swarm-rate", default="50mbit")
    ap.add_argument("--swarm-dir", default="/dev/shm",
                    help="(d) where the nodes' data goes (default /dev/shm, "
                    "memory: one disk shared by 17 nodes is not a fleet's)")
    ap.add_argument("--cap-mb", type=int, default=128,
                    help="(e) the wheel's size")
    ap.add_argument("--cap-rate", default="50mbit",
                    help="(e) h1's cluster.max_upload_rate")
    ap.add_argument("--curl", default=shutil.which("curl") or "/usr/bin/curl")
    ap.add_argument("--json", metavar="FILE",
                    help="also write every number as JSON to FILE")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--workdir")
    args = ap.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (1 if q else 3)
    args.big_mb = args.big_mb or (256 if q else 1024)
    args.share_mb = args.share_mb or (64 if q else 200)
    args.idle_s = args.idle_s or (5.0 if q else 10.0)
    try:
        args.sizes = [int(x) for x in (args.sizes or
                                       ("4,8,16" if q else "4,8,16,32")
                                       ).split(",")]
    except ValueError:
        ap.error("--sizes: a comma-separated list of node counts")
    if args.rounds < 1 or any(s < 2 for s in args.sizes):
        ap.error("--rounds >= 1, sizes >= 2")
    try:
        harness.BIN = find_binary(args.bin, builds=("build-ns",))
    except BenchError as e:
        log(str(e))
        return 1
    work = args.workdir or tempfile.mkdtemp(prefix="wm-bench-cluster-")
    os.makedirs(work, exist_ok=True)
    res = {}
    t0 = time.monotonic()
    try:
        if "c" in args.only:
            bench_c(args, work, res)
        if "b" in args.only:
            bench_b(args, work, res)
        if "a" in args.only:
            bench_a(args, work, res)
        if "d" in args.only:
            bench_d(args, work, res)
        if "e" in args.only:
            bench_e(args, work, res)
    except (BenchError, harness.NodeError, AssertionError) as e:
        log("FAILED: %s" % e)
        if res:
            log("partial results: %s" % json.dumps(res, default=str))
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("kept %s" % work)
    log("done in %.0f s" % (time.monotonic() - t0))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, default=str)
    misses = report(res, args)
    return 1 if (args.strict and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
