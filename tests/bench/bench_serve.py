#!/usr/bin/python3
"""Serving benchmark for a wheelmesh node: pip and curl against the node,
against a plain directory, and against nginx serving the same directory.

Not part of the test suite. Python 3 standard library only; run it with
/usr/bin/python3. See README.md next to this file.

One invocation:
  1. writes a wheel set into a temporary directory: --small-count wheels of
     --small-mb MiB each (bench-pkg-00, bench-pkg-01, ...) and one wheel of
     --big-mb MiB (bench-big), random incompressible payload, ZIP_STORED,
     valid METADATA / WHEEL / RECORD;
  2. starts a fresh offline node and `wheelmesh put`s every wheel into it;
  3. starts nginx (foreground, own config, autoindex, sendfile) on the
     wheel directory;
  4. times, for --rounds rounds (variants interleaved within a round):
       a   pip download --no-index --find-links DIR            (the limit)
       b1  pip download --no-index --find-links NODE/links/
       b2  pip download --index-url NODE/simple/
       c   pip download --no-index --find-links NGINX/
       d   curl of the big wheel from the node and from nginx (MB/s)
     every pip download goes into a fresh empty directory and every file it
     brings is compared (sha256) with the original; the big wheel is fetched
     once from each server into a file and checked the same way;
  5. prints medians, the ratios b/a (target <= 1.10), b/c (<= 1.0) and
     node/nginx curl throughput (>= 0.9), each PASS or MISS; --json prints
     everything as JSON instead.

Exit status: 0 when the run completed (MISSes included, unless --strict),
1 when something failed (a server did not start, a transfer was wrong), 2 on
a usage error.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib  # noqa: F401  (zipfile's CRC; imported so a missing zlib fails early)

from benchlib import (MiB, BenchError, child_pids, cpu_seconds,
                      curl_timed, find_binary, log, print_ratios, ratio,
                      summarize, verify_dir)
import benchlib  # noqa: E402
import harness  # noqa: E402
import makewheel  # noqa: E402

PYTHON = "/usr/bin/python3"

TARGET_B_OVER_A = 1.10
TARGET_B_OVER_C = 1.00
TARGET_CURL = 0.90


# --------------------------------------------------------------------------
# wheels


def _payload_blocks(size, base):
    """SIZE bytes in blocks of len(BASE): block i is BASE rotated by a
    different offset (an odd stride, so no two blocks of one file are equal
    for files under 1 TiB). As incompressible as BASE, at memcpy speed."""
    n = len(base)
    i = 0
    left = size
    while left > 0:
        k = (i * 4099) % n
        block = base[k:] + base[:k]
        if left < n:
            block = block[:left]
        yield block
        left -= len(block)
        i += 1


def _fast_payload(size):
    """Payload blocks for makewheel: one random block per wheel, rotated."""
    return _payload_blocks(size, os.urandom(MiB))


def write_wheel(outdir, project, version, size):
    """Write a valid py3-none-any wheel for PROJECT with SIZE bytes of
    payload; returns its path."""
    return makewheel.make_wheel(outdir, project, version, size,
                                payload=_fast_payload)


# --------------------------------------------------------------------------
# processes


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no %s)" % path


def http_status(port, path, timeout=2.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def wait_http(proc, port, path, what, logpath, timeout=15.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError("%s exited with %s before it was ready\n%s"
                             % (what, proc.returncode, tail(logpath)))
        try:
            st = http_status(port, path)
            if st == 200:
                return
            last = "status %d" % st
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    raise BenchError("%s not ready after %.0f s (%s)\n%s"
                     % (what, timeout, last, tail(logpath)))


def stop_proc(proc, sig=signal.SIGTERM, timeout=10.0):
    """Stop a process this script started (by its own handle only)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


def start_node(binary, workdir):
    d = os.path.join(workdir, "node")
    os.makedirs(d)
    port = harness.free_port()
    cfg = {
        "node": {"name": "bench"},
        "upstream": {"indexes": []},
        # A port of its own, so the benchmark never collides with a node
        # already running on this machine (default tcp://0.0.0.0:7391).
        "cluster": {"listen": "tcp://127.0.0.1:%d" % harness.free_port()},
    }
    cfg_path = os.path.join(d, "node.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    errlog = os.path.join(d, "stderr.txt")
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(
            [binary, "node", "--data", os.path.join(d, "data"),
             "--http", "127.0.0.1:%d" % port, "-c", cfg_path],
            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_http(proc, port, "/healthz", "wheelmesh node", errlog)
    except BaseException:
        stop_proc(proc)
        raise
    return proc, port, errlog


NGINX_CONF = """\
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            autoindex on;
        }}
    }}
}}
"""


def start_nginx(nginx, workdir, root):
    prefix = os.path.join(workdir, "nginx")
    os.makedirs(os.path.join(prefix, "tmp"))
    port = harness.free_port()
    user = ""
    if os.geteuid() == 0:
        # As root nginx would drop its worker to "nobody", which cannot
        # read a 0700 temporary directory.
        user = "user root;\n"
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(user=user, prefix=prefix, port=port,
                                  root=root))
    errlog = os.path.join(prefix, "error.log")
    out = os.path.join(prefix, "stderr.txt")
    with open(out, "wb") as o:
        proc = subprocess.Popen(
            [nginx, "-c", conf, "-p", prefix, "-e", errlog,
             "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=o, stderr=o)
    try:
        wait_http(proc, port, "/", "nginx", out)
    except BaseException:
        stop_proc(proc)
        sys.stderr.write(tail(errlog) + "\n")
        raise
    return proc, port


# --------------------------------------------------------------------------
# pip and curl


def pip_env():
    """harness.pip_env(), but pip may write its .pyc files (the warm-up
    round is there for that)."""
    env = harness.pip_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def make_venv(path):
    p = subprocess.run([PYTHON, "-m", "venv", path], capture_output=True,
                       text=True, env=pip_env(), timeout=300)
    if p.returncode != 0:
        raise BenchError("venv failed:\n%s%s" % (p.stdout, p.stderr))
    return os.path.join(path, "bin", "python")


def pip_download(python, source_args, projects, outdir, env):
    """Run pip download into OUTDIR (created empty); returns seconds."""
    os.makedirs(outdir)
    cmd = [python, "-m", "pip", "--no-cache-dir",
           "--disable-pip-version-check", "download", "--no-deps",
           "--progress-bar", "off", "-q", "-d", outdir] + source_args \
        + list(projects)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=600)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        raise BenchError("pip failed (%d): %s\n%s%s" % (
            p.returncode, " ".join(cmd), p.stdout[-3000:], p.stderr[-3000:]))
    return took


def curl_get(curl, url, out, size):
    """One curl GET to OUT; returns seconds (curl's own time_total)."""
    return curl_timed(curl, url, size, out)


# --------------------------------------------------------------------------
# traffic counters (diagnostic only, read outside the timed region)


def node_counters(port):
    """(requests, file bytes served) from the node's /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
    finally:
        conn.close()
    vals = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            try:
                vals[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return (vals.get("wheelmesh_http_requests_total"),
            vals.get("wheelmesh_served_bytes_total"))


def nginx_counters(access_log):
    """(requests, body bytes sent) so far, from nginx's access log
    (combined format: status and size follow the quoted request)."""
    reqs = sent = 0
    try:
        with open(access_log, "rb") as f:
            for line in f:
                reqs += 1
                try:
                    after = line.split(b'"', 2)[2].split()
                    sent += int(after[1])
                except (IndexError, ValueError):
                    pass
    except OSError:
        return None, None
    return reqs, sent


def cpu_seconds_of(pids):
    """User + system CPU seconds used so far by PIDS (each a whole
    process); None when one cannot be read."""
    secs = [cpu_seconds(pid) for pid in pids]
    return None if None in secs else sum(secs)


class Traffic:
    """Requests and bytes one pip run cost a server."""

    def __init__(self, read, pids, overhead=0):
        self.read = read
        self.pids = pids
        self.overhead = overhead    # requests the reading itself adds
        self.before = self.cpu0 = None

    def start(self):
        self.before = self.read()
        self.cpu0 = cpu_seconds_of(self.pids)

    def stop(self):
        cpu1 = cpu_seconds_of(self.pids)
        after = self.read()
        if None in self.before or None in after:
            return None
        return {"requests": int(after[0] - self.before[0] - self.overhead),
                "bytes": int(after[1] - self.before[1]),
                "server_cpu_s": (cpu1 - self.cpu0
                                 if None not in (cpu1, self.cpu0) else None)}


# --------------------------------------------------------------------------
# page latency (diagnostic only)


def page_latency(port, path, n, headers=None):
    """Mean milliseconds of N GETs of PATH on one keep-alive connection,
    and the body size."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    size = 0
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise BenchError("GET %s: %d" % (path, resp.status))
            size = len(body)
        return (time.perf_counter() - t0) * 1000.0 / n, size
    finally:
        conn.close()


# --------------------------------------------------------------------------


def run(args):
    binary = find_binary(args.bin)
    for tool in (args.nginx, args.curl):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            raise BenchError("not an executable: %s" % tool)

    res = {"config": {
        "rounds": args.rounds, "small_count": args.small_count,
        "small_mb": args.small_mb, "big_mb": args.big_mb, "binary": binary,
        "nginx": args.nginx, "pip_includes_big": args.pip_include_big}}
    work = tempfile.mkdtemp(prefix="wm-bench-", dir=args.workdir)
    node = nginx = None
    try:
        wheels = os.path.join(work, "wheels")
        os.makedirs(wheels)

        # 1. the wheel set
        t0 = time.perf_counter()
        small = ["bench-pkg-%02d" % i for i in range(args.small_count)]
        paths = [write_wheel(wheels, p, "1.0", int(args.small_mb * MiB))
                 for p in small]
        big_path = write_wheel(wheels, "bench-big", "1.0",
                               int(args.big_mb * MiB))
        paths.append(big_path)
        write_s = time.perf_counter() - t0
        sums = {os.path.basename(p): harness.sha256_file(p) for p in paths}
        big_name = os.path.basename(big_path)
        big_size = os.path.getsize(big_path)
        total = sum(os.path.getsize(p) for p in paths)
        log("wrote %d wheels, %.1f MB, in %.2f s (big: %s, %.1f MB)"
            % (len(paths), total / 1e6, write_s, big_name, big_size / 1e6))
        res["wheels"] = {"count": len(paths), "bytes": total,
                         "write_s": write_s, "big": big_name,
                         "big_bytes": big_size}

        projects = list(small)
        if args.pip_include_big:
            projects.append("bench-big")
        expected = {os.path.basename(p): sums[os.path.basename(p)]
                    for p in paths[:len(small)]}
        if args.pip_include_big:
            expected[big_name] = sums[big_name]
        pip_bytes = sum(os.path.getsize(os.path.join(wheels, n))
                        for n in expected)

        # 2. a fresh node with every wheel in it
        node, nport, node_log = start_node(binary, work)
        nurl = "http://127.0.0.1:%d" % nport
        t0 = time.perf_counter()
        p = subprocess.run([binary, "put", "--node", nurl] + paths,
                           capture_output=True, text=True, timeout=900)
        put_s = time.perf_counter() - t0
        if p.returncode != 0:
            raise BenchError("wheelmesh put failed (%d):\n%s%s\n%s" % (
                p.returncode, p.stdout[-2000:], p.stderr[-2000:],
                tail(node_log)))
        log("put %d wheels in %.2f s (%.0f MB/s)"
            % (len(paths), put_s, total / 1e6 / put_s))
        res["put_s"] = put_s

        nginx, gport = start_nginx(args.nginx, work, wheels)
        gurl = "http://127.0.0.1:%d" % gport

        # 3. pip
        python = make_venv(os.path.join(work, "venv"))
        env = pip_env()
        pv = subprocess.run([python, "-m", "pip", "--version"],
                            capture_output=True, text=True, env=env)
        res["pip_version"] = (pv.stdout.split() or ["?", "?"])[1]
        # /metrics counts the request that reads it (or the one before):
        # measure what two back-to-back reads add and subtract it
        a0 = node_counters(nport)
        a1 = node_counters(nport)
        node_overhead = (a1[0] - a0[0]) if None not in a0 + a1 else 0
        npids = [node.pid]
        gpids = child_pids(nginx.pid) or [nginx.pid]
        traffic_of = {
            "b_links": Traffic(lambda: node_counters(nport), npids,
                               node_overhead),
            "b_simple": Traffic(lambda: node_counters(nport), npids,
                                node_overhead),
            "c": Traffic(lambda: nginx_counters(
                os.path.join(work, "nginx", "access.log")), gpids),
        }
        traffic = {}
        variants = [
            ("a", "dir  --find-links DIR",
             ["--no-index", "--find-links", wheels]),
            ("b_links", "node --find-links /links/",
             ["--no-index", "--find-links", nurl + "/links/"]),
            ("b_simple", "node --index-url /simple/",
             ["--index-url", nurl + "/simple/"]),
            ("c", "nginx --find-links / (autoindex)",
             ["--no-index", "--find-links", gurl + "/"]),
        ]
        # one untimed warm-up per variant: pip's own start-up (imports,
        # .pyc) and the servers' first touches should not land in round 1
        dl = os.path.join(work, "dl")
        os.makedirs(dl)
        seq = 0
        for key, _, src in variants:
            seq += 1
            out = os.path.join(dl, "%03d-warm-%s" % (seq, key))
            pip_download(python, src, projects, out, env)
            verify_dir(out, expected, "warm-up " + key)
            shutil.rmtree(out)
        times = {key: [] for key, _, _ in variants}
        for r in range(args.rounds):
            # rotate the order so that no variant always runs first / last
            k = r % len(variants)
            for key, _, src in variants[k:] + variants[:k]:
                seq += 1
                out = os.path.join(dl, "%03d-r%d-%s" % (seq, r, key))
                tr = traffic_of.get(key)
                if tr:
                    tr.start()
                times[key].append(pip_download(python, src, projects, out,
                                               env))
                if tr:
                    traffic[key] = tr.stop()
                verify_dir(out, expected, "round %d %s" % (r + 1, key))
                shutil.rmtree(out)
            log("pip round %d/%d: %s" % (r + 1, args.rounds, "  ".join(
                "%s %.2fs" % (k, times[k][-1]) for k, _, _ in variants)))
        res["pip"] = {key: dict(summarize(times[key]), label=label,
                                traffic=traffic.get(key))
                      for key, label, _ in variants}
        res["pip_files"] = len(expected)
        res["pip_bytes"] = pip_bytes

        # 4. curl of the big wheel
        big_path_url = "/files/%s/%s" % (sums[big_name], big_name)
        curl_srcs = [("node", nurl + big_path_url), ("nginx",
                                                     gurl + "/" + big_name)]
        for key, url in curl_srcs:     # verified, untimed
            out = os.path.join(dl, "big-" + key)
            curl_get(args.curl, url, out, big_size)
            h = harness.sha256_file(out)
            if h != sums[big_name]:
                raise BenchError("curl %s: sha256 %s, original %s"
                                 % (url, h, sums[big_name]))
            os.unlink(out)
        ctimes = {key: [] for key, _ in curl_srcs}
        ccpu = {key: [] for key, _ in curl_srcs}
        cpids = {"node": npids, "nginx": gpids}
        for r in range(args.curl_rounds):
            order = curl_srcs if r % 2 == 0 else curl_srcs[::-1]
            for key, url in order:
                c0 = cpu_seconds_of(cpids[key])
                ctimes[key].append(curl_get(args.curl, url, os.devnull,
                                            big_size))
                c1 = cpu_seconds_of(cpids[key])
                if None not in (c0, c1):
                    ccpu[key].append(c1 - c0)
            log("curl round %d/%d: %s" % (r + 1, args.curl_rounds, "  ".join(
                "%s %.0f MB/s" % (k, big_size / 1e6 / ctimes[k][-1])
                for k, _ in curl_srcs)))
        res["curl"] = {}
        for key, _ in curl_srcs:
            mbps = [big_size / 1e6 / t for t in ctimes[key]]
            res["curl"][key] = {
                "times_s": ctimes[key], "mb_s": mbps,
                "median_mb_s": statistics.median(mbps),
                "max_mb_s": max(mbps),
                "server_cpu_s": (statistics.median(ccpu[key])
                                 if ccpu[key] else None)}

        # 5. page latency (diagnostic)
        n = args.page_requests
        pages = [
            ("node /links/", nport, "/links/", None),
            ("node /links/bench-pkg-00/", nport, "/links/bench-pkg-00/",
             None),
            ("node /simple/", nport, "/simple/", None),
            ("node /simple/bench-pkg-00/ html", nport,
             "/simple/bench-pkg-00/", None),
            ("node /simple/bench-pkg-00/ json", nport,
             "/simple/bench-pkg-00/",
             {"Accept": "application/vnd.pypi.simple.v1+json"}),
            ("nginx / (autoindex)", gport, "/", None),
        ]
        res["pages"] = {}
        for label, port, path, hdrs in pages:
            ms, size = page_latency(port, path, n, hdrs)
            res["pages"][label] = {"mean_ms": ms, "bytes": size}

        # ratios
        pipr = res["pip"]
        ratios = []
        for key in ("b_links", "b_simple"):
            for ref, target in (("a", TARGET_B_OVER_A),
                                ("c", TARGET_B_OVER_C)):
                ratios.append(ratio(
                    "%s/%s" % (key, ref),
                    pipr[key]["median_s"] / pipr[ref]["median_s"],
                    pipr[key]["min_s"] / pipr[ref]["min_s"], target))
        cu = res["curl"]
        ratios.append(ratio(
            "curl node/nginx",
            cu["node"]["median_mb_s"] / cu["nginx"]["median_mb_s"],
            cu["node"]["max_mb_s"] / cu["nginx"]["max_mb_s"], TARGET_CURL,
            at_most=False))
        res["ratios"] = ratios
        res["verified"] = True
        return res
    finally:
        stop_proc(nginx, signal.SIGQUIT)
        stop_proc(node)
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(res):
    cfg = res["config"]
    w = res["wheels"]
    print("wheelmesh serving benchmark")
    print("  binary  %s" % cfg["binary"])
    print("  wheels  %d small x %g MiB + 1 big (%s, %.1f MB); %d rounds"
          % (cfg["small_count"], cfg["small_mb"], w["big"],
             w["big_bytes"] / 1e6, cfg["rounds"]))
    print("  put     %.2f s for %.1f MB" % (res["put_s"], w["bytes"] / 1e6))
    print()
    print("pip %s: download of %d wheels (%.1f MB), seconds" % (
        res["pip_version"], res["pip_files"], res["pip_bytes"] / 1e6))
    print("  %-9s %-33s %7s %7s  %-20s %s" % (
        "", "source", "median", "min", "rounds",
        "server side, last round"))
    notes = []
    for key, v in res["pip"].items():
        t = v["traffic"]
        per = ""
        if t:
            per = "%d req, %.1f MB" % (t["requests"], t["bytes"] / 1e6)
            if t["server_cpu_s"] is not None:
                per += ", %.2f s CPU" % t["server_cpu_s"]
        print("  %-9s %-33s %7.3f %7.3f  %-20s %s" % (
            key, v["label"], v["median_s"], v["min_s"],
            " ".join("%.3f" % x for x in v["times_s"]), per))
        if t and t["bytes"] > 1.5 * res["pip_bytes"]:
            notes.append("%s: pip fetched %.1fx the wheel bytes (pip < 23.2 "
                         "downloads a wheel twice when the page has PEP 658 "
                         "data-dist-info-metadata: pypa/pip#11847)"
                         % (key, t["bytes"] / res["pip_bytes"]))
    for n in notes:
        print("  note: " + n)
    print()
    print("curl of the big wheel, MB/s (10^6 bytes)")
    print("  %-9s %7s %7s  %-36s %s" % ("", "median", "max", "rounds",
                                        "server CPU s/transfer"))
    for key, v in res["curl"].items():
        print("  %-9s %7.0f %7.0f  %-36s %s" % (
            key, v["median_mb_s"], v["max_mb_s"],
            " ".join("%.0f" % x for x in v["mb_s"]),
            "%.2f" % v["server_cpu_s"] if v["server_cpu_s"] is not None
            else "-"))
    print()
    print("page latency (diagnostic, one keep-alive connection)")
    for label, v in res["pages"].items():
        print("  %-36s %8.3f ms  %7d bytes" % (label, v["mean_ms"],
                                               v["bytes"]))
    print()
    print_ratios(res["ratios"], 18)
    print()
    print("all downloads byte-identical to the originals (sha256)")


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Benchmark a wheelmesh node's serving against a local "
                    "directory and nginx.")
    ap.add_argument("--bin", help="the wheelmesh binary (default: "
                    "$WHEELMESH_BIN, else build/node/wheelmesh or "
                    "../build-bench/node/wheelmesh next to the repo)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="timed pip rounds (default 3); the order of the "
                    "variants rotates from round to round")
    ap.add_argument("--curl-rounds", type=int,
                    help="timed curl rounds (default: 2 x --rounds)")
    ap.add_argument("--small-count", type=int, default=50,
                    help="number of small wheels (default 50)")
    ap.add_argument("--small-mb", type=float, default=1.0,
                    help="payload MiB per small wheel (default 1)")
    ap.add_argument("--big-mb", type=float, default=500.0,
                    help="payload MiB of the big wheel (default 500)")
    ap.add_argument("--pip-include-big", action="store_true",
                    help="also pip-download the big wheel (default: pip "
                    "gets the small wheels, curl the big one)")
    ap.add_argument("--page-requests", type=int, default=200,
                    help="GETs per page for the latency table (default 200)")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    benchlib.add_output_args(ap)
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.small_count < 1 or args.big_mb <= 0 \
            or args.small_mb <= 0 or args.page_requests < 1:
        ap.error("--rounds, --small-count, --small-mb, --big-mb and "
                 "--page-requests must be positive")
    if args.curl_rounds is None:
        args.curl_rounds = 2 * args.rounds
    if args.curl_rounds < 1:
        ap.error("--curl-rounds must be positive")
    try:
        res = run(args)
    except BenchError as e:
        sys.stderr.write("bench: FAILED: %s\n" % e)
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("bench: interrupted\n")
        return 1
    return benchlib.finish(res, args, report)


if __name__ == "__main__":
    sys.exit(main())
