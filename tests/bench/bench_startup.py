#!/usr/bin/python3
"""Start-up time of `wheelmesh node`: from exec until /healthz answers,
on an empty data directory and on one holding --wheels stored wheels,
for a reference binary (--bin) and a variant (--alt; default: the same
binary), runs alternating. Not run by ctest.

  /usr/bin/python3 tests/bench/bench_startup.py --bin build/node/wheelmesh
  /usr/bin/python3 tests/bench/bench_startup.py --bin OLD --alt NEW --runs 21

Scenarios (--scenarios, default all):
  empty          offline node, cluster off (no trusted_keys), new data dir
  empty+cluster  the same with the cluster on (another key trusted)
  full           the data dir of --wheels wheels (filled once by --bin
                 through PUT, or --data-from DIR), cluster off
  full+cluster   the same with the cluster on
  daemon         `node --daemon --pidfile F` on a new data dir: the time
                 until that command returns (it returns once it serves)

Per run, measured from outside (the binaries are not changed):
  ready    wall time from just before exec until GET /healthz is 200
           (a new connection tried every ms);
  cpu      CPU the node's threads used until then (/proc/PID/task/*/
           schedstat, nanoseconds);
  waitq    time the node's threads were runnable but had no CPU (the
           machine's other load);
  other    ready - cpu(main thread) - waitq(main thread): time the main
           thread slept or waited for the disk (fsync), plus the exec;
  stop     SIGTERM until the process is gone (not part of ready).
The floor, measured the same way in the same invocation, is
`wheelmesh --version` (exec, dynamic loading, exit): what every start
pays before main().

Prints the medians per binary and scenario and the ratios variant /
reference, full / empty, and ready / floor. No targets; exit status 0
when every run completed, 1 when one failed, 2 on a usage error.
"""

import argparse
import http.client
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

from benchlib import BenchError, find_binary, log
import harness  # noqa: E402
from makewheel import make_wheel  # noqa: E402

SCENARIOS = ("empty", "empty+cluster", "full", "full+cluster", "daemon")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def schedstat(pid):
    """{tid: (run_ns, wait_ns)} of PID's threads; the main thread is
    PID itself."""
    out = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                run, wait, _ = f.read().split()
            out[int(tid)] = (int(run), int(wait))
        except (OSError, ValueError):
            pass
    return out


def gone(pid):
    """True when PID has exited (a zombie waiting for init counts)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def healthz(port):
    """True when GET /healthz on a new connection is a 200."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return False
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Connection: close\r\n\r\n")
        return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        s.close()


def write_config(path, cluster_port, trusted=None):
    cfg = {"node": {"name": "bench-startup"}, "upstream": {"indexes": []},
           "cluster": {"listen": "tcp://127.0.0.1:%d" % cluster_port}}
    if trusted:
        cfg["cluster"]["trusted_keys"] = trusted
    with open(path, "w") as f:
        json.dump(cfg, f)


class Runner:
    def __init__(self, work, timeout):
        self.work = work
        self.timeout = timeout
        self.port = harness.free_port()
        self.cport = harness.free_port()
        self.cfg = os.path.join(work, "offline.json")
        write_config(self.cfg, self.cport)

    def cluster_config(self, binary):
        """A config with the cluster on: trusted_keys holds one other
        node's key (made once with keygen), so the node opens its
        transport and keeps an index of members."""
        path = os.path.join(self.work, "cluster.json")
        if not os.path.exists(path):
            trusted = os.path.join(self.work, "trusted_keys")
            p = subprocess.run([binary, "keygen", "-o",
                                os.path.join(self.work, "peer.key")],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise BenchError("keygen: %s" % (p.stderr or p.stdout))
            with open(trusted, "w") as f:
                f.write(p.stdout)
            write_config(path, self.cport, trusted)
        return path

    def floor(self, binary):
        t0 = time.monotonic()
        subprocess.run([binary, "--version"], stdout=subprocess.DEVNULL,
                       check=True)
        return {"ready": time.monotonic() - t0}

    def foreground(self, binary, data, cfg):
        """One start to /healthz; the figures of one run."""
        err = open(os.path.join(self.work, "node.err"), "w")
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [binary, "node", "--data", data, "--http",
             "127.0.0.1:%d" % self.port, "-c", cfg],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        try:
            while not healthz(self.port):
                if proc.poll() is not None:
                    raise BenchError("node exited with %d before ready:\n%s"
                                     % (proc.returncode, open(err.name).read()
                                        [-2000:]))
                if time.monotonic() - t0 > self.timeout:
                    raise BenchError("node not ready in %g s" % self.timeout)
                time.sleep(0.001)
            ready = time.monotonic() - t0
            st = schedstat(proc.pid)
        finally:
            t1 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = "killed"
            stop = time.monotonic() - t1
            err.close()
        if rc != 0:
            raise BenchError("node exited with %s after SIGTERM" % rc)
        main_run, main_wait = st.get(proc.pid, (0, 0))
        return {"ready": ready,
                "cpu": sum(r for r, _ in st.values()) / 1e9,
                "waitq": sum(w for _, w in st.values()) / 1e9,
                "other": ready - (main_run + main_wait) / 1e9,
                "threads": len(st), "stop": stop}

    def daemon(self, binary, data):
        pidfile = os.path.join(self.work, "node.pid")
        t0 = time.monotonic()
        p = subprocess.run(
            [binary, "node", "--data", data, "--http",
             "127.0.0.1:%d" % self.port, "-c", self.cfg, "--daemon",
             "--pidfile", pidfile], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, timeout=self.timeout)
        ready = time.monotonic() - t0
        if p.returncode != 0:
            raise BenchError("node --daemon: %d %s" % (p.returncode,
                                                        p.stderr[-2000:]))
        with open(pidfile) as f:
            pid = int(f.read())
        ok = healthz(self.port)
        t1 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        while not gone(pid):
            if time.monotonic() - t1 > 60:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.002)
        if not ok:
            raise BenchError("node --daemon returned but /healthz failed")
        return {"ready": ready, "stop": time.monotonic() - t1}

    def run(self, binary, scenario, full_dir):
        if scenario in ("empty", "empty+cluster", "daemon"):
            data = os.path.join(self.work, "data-empty")
            shutil.rmtree(data, ignore_errors=True)
        else:
            data = full_dir
        if scenario == "daemon":
            return self.daemon(binary, data)
        cfg = (self.cluster_config(binary)
               if scenario.endswith("+cluster") else self.cfg)
        return self.foreground(binary, data, cfg)


def fill(binary, data, n, work):
    """Stores N small wheels (5 versions per project) in DATA through a
    node's PUT."""
    wheels = os.path.join(work, "wheels")
    os.makedirs(wheels, exist_ok=True)
    harness.BIN = binary
    node = harness.Node(config={}, start=True, name="bench-startup-fill")
    try:
        conn = node.connection(120)
        t = time.monotonic()
        for i in range(n):
            path = make_wheel(wheels, "su-pkg-%04d" % (i // 5),
                              "1.%d" % (i % 5), size=1024, seed=i)
            with open(path, "rb") as f:
                body = f.read()
            os.unlink(path)
            conn.request("PUT", "/files/" + os.path.basename(path), body=body)
            r = conn.getresponse()
            r.read()
            if r.status not in (200, 201):
                raise BenchError("PUT %s: %d" % (path, r.status))
            if i % 1000 == 999:
                log("stored %d wheels (%.0f s)" % (i + 1,
                                                   time.monotonic() - t))
        conn.close()
        node.stop()
        shutil.copytree(node.data, data)
        lock = os.path.join(data, "lock")
        if os.path.exists(lock):
            os.unlink(lock)
    finally:
        node.cleanup()


def summarize(runs):
    keys = sorted({k for r in runs for k in r})
    return {k: statistics.median([r[k] for r in runs if k in r])
            for k in keys}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="the reference binary")
    ap.add_argument("--alt", help="the variant (default: --bin again)")
    ap.add_argument("--runs", type=int, default=15,
                    help="timed runs per binary and scenario")
    ap.add_argument("--wheels", type=int, default=5000)
    ap.add_argument("--data-from",
                    help="a data dir holding the wheels (else made once)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", help="also write every run to FILE")
    args = ap.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if any(s not in SCENARIOS for s in scenarios):
        print("bench: scenarios are %s" % ", ".join(SCENARIOS),
              file=sys.stderr)
        return 2
    try:
        ref = find_binary(args.bin)
        alt = find_binary(args.alt) if args.alt else ref
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 2
    bins = [("ref", ref), ("alt", alt)]
    work = tempfile.mkdtemp(prefix="wmbench-startup-", dir=args.workdir)
    tempfile.tempdir = work
    res = {"bin": ref, "alt": alt, "load_before": loadavg(), "runs": {}}
    try:
        runner = Runner(work, args.timeout)
        full = os.path.join(work, "data-full")
        if any(s.startswith("full") for s in scenarios):
            if args.data_from:
                shutil.copytree(args.data_from, full)
                lock = os.path.join(full, "lock")
                if os.path.exists(lock):
                    os.unlink(lock)
            else:
                log("storing %d wheels with %s (once)" % (args.wheels, ref))
                fill(ref, full, args.wheels, work)
        for s in scenarios:
            log("%s (load %s)" % (s, loadavg()))
            for label, b in bins:  # one untimed start each
                runner.run(b, s, full)
            for i in range(args.runs):
                for label, b in (bins if i % 2 == 0 else bins[::-1]):
                    res["runs"].setdefault((label, s), []).append(
                        runner.run(b, s, full))
                    res["runs"].setdefault((label, "floor"), []).append(
                        runner.floor(b))
        res["load_after"] = loadavg()
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    med = {k: summarize(v) for k, v in res["runs"].items()}
    print("reference: %s" % ref)
    print("variant:   %s" % (alt if alt != ref else "(the same binary)"))
    print("%d runs each, alternating; load average %s before, %s after"
          % (args.runs, res["load_before"], res["load_after"]))
    print()
    print("%-5s %-14s %9s %9s %9s %9s %8s %9s" % (
        "bin", "scenario", "ready ms", "cpu ms", "waitq ms", "other ms",
        "threads", "stop ms"))
    for s in ["floor"] + scenarios:
        for label, _ in bins:
            m = med.get((label, s))
            if not m:
                continue

            def f(k, scale=1000.0):
                return "%9.1f" % (m[k] * scale) if k in m else "%9s" % "-"
            print("%-5s %-14s %s %s %s %s %8s %s" % (
                label, s, f("ready"), f("cpu"), f("waitq"), f("other"),
                "%d" % m["threads"] if "threads" in m else "-", f("stop")))
    print()
    print("ratios of medians (ready):")
    for s in scenarios:
        a, b = med.get(("ref", s)), med.get(("alt", s))
        if a and b and alt != ref:
            print("  %-14s variant / reference     %6.2f   (cpu %.2f)" % (
                s, b["ready"] / a["ready"],
                b["cpu"] / a["cpu"] if "cpu" in a and a["cpu"] else
                float("nan")))
    for label, _ in bins:
        fl = med.get((label, "floor"))
        for s in scenarios:
            m = med.get((label, s))
            if m and fl:
                print("  %-5s %-14s / floor (--version)   %6.2f" % (
                    label, s, m["ready"] / fl["ready"]))
        e, f_ = med.get((label, "empty")), med.get((label, "full"))
        if e and f_:
            print("  %-5s full / empty          %6.2f   (cpu %.2f)" % (
                label, f_["ready"] / e["ready"], f_["cpu"] / e["cpu"]))
        if alt == ref:
            break
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bin": ref, "alt": alt,
                       "load_before": res["load_before"],
                       "load_after": res["load_after"],
                       "runs": {"%s/%s" % k: v
                                for k, v in res["runs"].items()}},
                      f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
