#!/usr/bin/python3
"""Page latency at fleet scale: the fleet of tests/e2e/test_scale.py (20
nodes, each holding 5,000 synthetic wheels, so every node's index has
100,000 holdings) and how long one project's page (1,000 files) takes on
each node. Listing one project should cost what the project has, not what
the index has. Not run by ctest: the suite checks that the pages are right
(test_scale), this measures how fast they are.

  /usr/bin/python3 tests/bench/bench_scale.py [--bin B] [--synth S]

Prints, per node, the median and the slowest of --requests GETs of
/simple/synth-7/ on one keep-alive connection (after one untimed GET that
renders the page), then the median over the nodes and the slowest node's
median against --target-ms (10 ms; PASS or MISS). Exit status: 0 when the
run completed (a MISS included unless --strict), 1 when something failed.
"""

import argparse
import http.client
import os
import statistics
import sys
import time

from benchlib import BenchError, find_binary, log, mark
import harness  # noqa: E402
import test_scale  # noqa: E402

PROJECT = "synth-7"


def page_ms(node, requests):
    """REQUESTS timed GETs of PROJECT's page on NODE (one connection, after
    an untimed one); returns the times in milliseconds."""
    path = "/simple/%s/" % PROJECT
    conn = http.client.HTTPConnection(node.host, node.port, timeout=30)
    took = []
    try:
        for i in range(requests + 1):
            t0 = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise BenchError("%s: GET %s -> %d"
                                 % (node.label, path, resp.status))
            if i > 0:
                took.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    return took


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin")
    ap.add_argument("--synth", help="tests/synth_index (default: "
                    "$WHEELMESH_SYNTH, else next to the binary's build)")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--target-ms", type=float, default=10.0)
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when the target is missed")
    args = ap.parse_args(argv)
    try:
        harness.BIN = find_binary(args.bin)
    except BenchError as e:
        log(str(e))
        return 1
    synth = (args.synth or os.environ.get("WHEELMESH_SYNTH")
             or os.path.join(os.path.dirname(os.path.dirname(harness.BIN)),
                             "tests", "synth_index"))
    os.environ["WHEELMESH_SYNTH"] = synth
    fleet = test_scale.Fleet
    rows = []
    try:
        log("building the fleet (%d nodes x %d wheels) with %s"
            % (test_scale.N, test_scale.PER_NODE, synth))
        fleet.setUpClass()
        for x in fleet.nodes:
            took = page_ms(x, args.requests)
            rows.append((statistics.median(took), max(took), x.label))
    except (BenchError, harness.NodeError, RuntimeError, OSError) as e:
        log("FAILED: %s" % e)
        return 1
    finally:
        fleet.doClassCleanups()
    files = test_scale.N * test_scale.PER_NODE // test_scale.PROJECTS
    print("page of %d files (%s), index of %d holdings per node, %d GETs "
          "per node" % (files, PROJECT, test_scale.N * test_scale.PER_NODE,
                        args.requests))
    print("  %-6s %10s %10s" % ("node", "median ms", "max ms"))
    for med, worst, label in rows:
        print("  %-6s %10.2f %10.2f" % (label, med, worst))
    slowest = max(rows)
    ok = slowest[0] < args.target_ms
    print("median over the nodes %.2f ms; slowest node %s %.2f ms; "
          "target < %.1f ms: %s" % (statistics.median(r[0] for r in rows),
                                    slowest[2], slowest[0], args.target_ms,
                                    mark(ok)))
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
