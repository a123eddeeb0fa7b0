"""A fleet's index at scale: 20 nodes, each of which holds 5,000 wheels
(synthetic holdings with the node's own claims, written into every data
directory by tests/synth_index before the nodes start, so that nothing has
to be gossiped first). Every node then knows 100,000 holdings. A project
page is answered right on every node, and no member is marked suspect
while the nodes answer pages: the loop that answers probes is never held
up by listings. How fast those pages are is measured by
tests/bench/bench_scale.py on the same fleet, not asserted here.
"""

import os
import shutil
import subprocess
import time
import unittest

import harness as h
import cluster_util as cu

N = 20
PER_NODE = 5000
PROJECTS = 100  # so a page lists 50 files of each node: 1,000 in all


def setUpModule():
    h.require_binary()


class Fleet(unittest.TestCase):
    nodes = ()

    def msg(self, extra=""):
        return "%s\n%s" % (extra, cu.tails(self.nodes[:3]))

    @classmethod
    def setUpClass(cls):
        synth = os.environ.get("WHEELMESH_SYNTH", "")
        if not os.access(synth, os.X_OK):
            raise RuntimeError("set WHEELMESH_SYNTH to tests/synth_index "
                               "(got %r)" % synth)
        names = ["S%02d" % i for i in range(N)]
        cls.tmp, keys = cu.make_keys(cls, names)
        trusted = cu.write_trusted(os.path.join(cls.tmp, "trusted"),
                                   keys.values())
        template = os.path.join(cls.tmp, "template")
        os.makedirs(template)
        t0 = time.monotonic()
        subprocess.run([synth, template, str(PER_NODE), str(PROJECTS)]
                       + [keys[n].path for n in names], check=True,
                       timeout=600)
        cls.synth_s = time.monotonic() - t0
        ports = [h.free_port() for _ in names]
        cls.nodes = []
        for i, n in enumerate(names):
            node = cu.ClusterNode(
                keys[n], trusted=trusted,
                seeds=[cu.addr(ports[i - 1])] if i else [],
                cluster_port=ports[i], label=n, start=False)
            cls.addClassCleanup(node.cleanup)
            shutil.copytree(template, node.data)
            node.start()
            cls.nodes.append(node)
        w = cu.Waiter(cls.nodes)
        for x in cls.nodes:
            w(lambda x=x: x.cluster_status().get("alive") == N - 1,
              "%s to see the %d others alive" % (x.label, N - 1),
              timeout=h.limit(60))

    def suspects(self):
        return {x.label: x.cluster_status().get("suspect", 0)
                for x in self.nodes
                if x.cluster_status().get("suspect", 0)}

    def test_pages_are_right_and_nobody_is_suspected(self):
        project = "synth-7"
        for x in self.nodes:
            # The first request renders the page; the rest are what pip
            # sees from then on.
            status, _, body = x.get("/simple/%s/" % project, timeout=30)
            self.assertEqual(status, 200, self.msg(
                "%s: /simple/%s/ -> %d" % (x.label, project, status)))
            links = h.parse_links(body)
            self.assertEqual(len(links), N * PER_NODE // PROJECTS,
                             self.msg("%s lists %d files of %s"
                                      % (x.label, len(links), project)))
            conn = x.connection(timeout=30)
            for _ in range(5):
                status, _, _ = h.request_on(conn, "GET",
                                            "/simple/%s/" % project)
                self.assertEqual(status, 200)
            conn.close()
        # Pages of every project on every node, while probes go on.
        for p in range(PROJECTS):
            x = self.nodes[p % N]
            status, _, _ = x.get("/simple/synth-%d/" % p, timeout=30)
            self.assertEqual(status, 200)
        self.assertEqual(self.suspects(), {}, self.msg(
            "members were marked suspect while nodes answered pages"))
        # The whole index is there on every node.
        st = self.nodes[0].status()
        held = {m["id"]: m["wheels"] for m in st["members"]}
        self.assertEqual(sorted(held.values()), [PER_NODE] * (N - 1),
                         self.msg("holdings per member: %r" % held))


if __name__ == "__main__":
    unittest.main()
