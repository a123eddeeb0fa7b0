"""Helpers shared by the benchmarks in tests/bench.

Importing this module also puts tests/e2e on sys.path, so a benchmark can
import the end-to-end helpers (harness, makewheel, upstream_index) next to
it instead of copying them.
"""

import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
E2E = os.path.join(REPO, "tests", "e2e")
if E2E not in sys.path:
    sys.path.insert(0, E2E)

import harness  # noqa: E402

MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
CURL_FMT = "%{http_code} %{size_download} %{time_total}"


class BenchError(Exception):
    """A benchmark cannot go on (setup failed, a download was wrong)."""


def log(msg):
    """One progress line on stderr."""
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


def mark(ok):
    """The verdict word for a target met or missed."""
    return "PASS" if ok else "MISS"


def median(xs):
    """The median of XS; NaN for none."""
    return statistics.median(xs) if xs else float("nan")


def find_binary(arg, builds=()):
    """The wheelmesh binary: ARG when given, else $WHEELMESH_BIN, else
    build/node/wheelmesh in the repo, else ../build-bench, ../BUILDS... or
    ../build next to it."""
    parent = os.path.dirname(REPO)
    cands = [arg] if arg else (
        [os.environ.get("WHEELMESH_BIN", ""),
         os.path.join(REPO, "build", "node", "wheelmesh")]
        + [os.path.join(parent, b, "node", "wheelmesh")
           for b in ("build-bench",) + tuple(builds) + ("build",)])
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise BenchError("no wheelmesh binary (tried %s); pass --bin or set "
                     "WHEELMESH_BIN" % ", ".join(c for c in cands if c))


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name."""
    with open("/proc/%s/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    """User + system CPU seconds PID has used so far (all its threads);
    None when it cannot be read."""
    try:
        fields = _stat_fields(pid)
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


class ThreadCPU:
    """Per-thread CPU of a process over a stretch of time: sampled from
    /proc/PID/task/*/stat every INTERVAL seconds by a background thread,
    since a thread that exits (an HTTP connection's) takes its counters
    with it. stop() returns {group: seconds} by thread kind: "loop" (the
    main thread), "zmq-io" (ZeroMQ's I/O threads: TCP and CurveZMQ),
    "zmq-other", "other" (HTTP connection threads and the rest), "exited"
    (what the process total says and no live sample saw), and "total"."""

    def __init__(self, pid, interval=0.05):
        import threading
        self.pid = pid
        self.interval = interval
        self.base = self._sample()
        self.last = dict(self.base)
        self.total0 = cpu_seconds(pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _sample(self):
        out = {}
        try:
            tids = os.listdir("/proc/%d/task" % self.pid)
        except OSError:
            return out
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/stat" % (self.pid, tid)) as f:
                    raw = f.read()
                name = raw[raw.index("(") + 1:raw.rindex(")")]
                fields = raw.rsplit(")", 1)[1].split()
                out[int(tid)] = (name,
                                 (int(fields[11]) + int(fields[12]))
                                 / CLK_TCK)
            except (OSError, ValueError, IndexError):
                pass
        return out

    def _run(self):
        while not self._stop.wait(self.interval):
            self.last.update(self._sample())

    def group(self, tid, name):
        if tid == self.pid:
            return "loop"
        if name.startswith("ZMQbg/IO"):
            return "zmq-io"
        if name.startswith("ZMQbg"):
            return "zmq-other"
        return "other"

    def stop(self):
        self._stop.set()
        self._t.join()
        self.last.update(self._sample())
        out = {"loop": 0.0, "zmq-io": 0.0, "zmq-other": 0.0, "other": 0.0}
        for tid, (name, secs) in self.last.items():
            base = self.base.get(tid, (name, 0.0))[1]
            g = self.group(tid, name)
            out[g] = out.get(g, 0.0) + secs - base
        total1 = cpu_seconds(self.pid)
        if self.total0 is None or total1 is None:
            out["total"] = float("nan")
            out["exited"] = float("nan")
        else:
            out["total"] = total1 - self.total0
            out["exited"] = max(0.0, out["total"] - sum(
                out[k] for k in ("loop", "zmq-io", "zmq-other", "other")))
        return out


def uptime():
    """The load averages, as `uptime` prints them."""
    try:
        with open("/proc/loadavg") as f:
            return "load average: %s" % ", ".join(f.read().split()[:3])
    except OSError:
        return "load average: ?"


def child_pids(pid):
    """The children of PID (e.g. nginx's workers)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if int(_stat_fields(d)[1]) == pid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def verify_dir(outdir, expected, what):
    """Every file of EXPECTED (name: sha256) is in OUTDIR with that sha256,
    and nothing else is."""
    got = sorted(os.listdir(outdir))
    want = sorted(expected)
    if got != want:
        raise BenchError("%s: downloaded files differ from the originals:\n"
                         "  missing %s\n  extra %s" % (
                             what, sorted(set(want) - set(got)),
                             sorted(set(got) - set(want))))
    for name in got:
        h = harness.sha256_file(os.path.join(outdir, name))
        if h != expected[name]:
            raise BenchError("%s: %s has sha256 %s, original %s"
                             % (what, name, h, expected[name]))


def curl_timed(curl, url, size, out=os.devnull, extra=(), prefix=(),
               codes=("200",), timeout=600):
    """One curl GET of URL into OUT (EXTRA: more curl options; PREFIX: a
    command to run curl under, e.g. `ip netns exec NS`). Checks that the
    status is one of CODES and that SIZE bytes came; returns curl's own
    time_total in seconds."""
    p = subprocess.run(list(prefix) + [curl, "-s", "-o", out] + list(extra)
                       + ["-w", CURL_FMT, url],
                       capture_output=True, text=True, timeout=timeout)
    parts = p.stdout.split()
    if p.returncode != 0 or len(parts) != 3 or parts[0] not in codes \
            or int(parts[1]) != size:
        raise BenchError("curl %s: rc=%d out=%r err=%r (want %s, %d bytes)"
                         % (url, p.returncode, p.stdout, p.stderr[-300:],
                            "/".join(codes), size))
    return float(parts[2])


def summarize(times):
    """Median, minimum and all of TIMES (seconds)."""
    return {"median_s": statistics.median(times), "min_s": min(times),
            "times_s": times}


def ratio(name, value, best, target, at_most=True):
    """A ratio record: VALUE (of medians) against TARGET, which it must not
    exceed (AT_MOST) or must reach; BEST is the best-of-rounds ratio."""
    return {"name": name, "value": value, "best_of_rounds": best,
            "target": ("<= %.2f" if at_most else ">= %.2f") % target,
            "pass": value <= target if at_most else value >= target}


def print_ratios(ratios, width):
    """The ratios section of a report, names padded to WIDTH."""
    print("ratios (of medians; best-of-rounds for reference)")
    for r in ratios:
        print("  %-*s %6.3f   target %-7s %s   (best %.3f)" % (
            width, r["name"], r["value"], r["target"], mark(r["pass"]),
            r["best_of_rounds"]))


def add_output_args(ap):
    """The options serve and upstream share: --curl, --workdir, --keep,
    --json and --strict."""
    ap.add_argument("--curl", default="/usr/bin/curl")
    ap.add_argument("--workdir", help="parent of the temporary directory")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("--json", action="store_true",
                    help="print the results as JSON")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when a ratio misses its target")


def finish(res, args, report):
    """Print RES as JSON (--json) or with REPORT; returns the exit status:
    1 when --strict and a ratio missed its target."""
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        report(res)
    if args.strict and not all(r["pass"] for r in res["ratios"]):
        return 1
    return 0
