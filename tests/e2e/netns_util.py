"""Hosts in network namespaces for the cluster tests and the cluster bench.

A Lab is a little LAN on one machine: a "switch" namespace holding a bridge,
and hosts h1..hN, each its own namespace with its loopback up and one veth
link ("eth0" on 10.99.0.N/24) whose other end ("vhN") is a port of the
bridge. Nothing is created in the root namespace: every veth and address
lives in a namespace the Lab made, so no traffic can leave for a real
network, and deleting the switch namespace takes every link with it.

    with Lab() as lab:                      # raises Skip when it cannot work
        h1, h2 = lab.add_host(), lab.add_host()
        lab.link_down(h1); lab.link_up(h1)  # cut / heal h1's link
        lab.cap(h1, "200mbit")              # tbf on h1's upload

NsNode is harness.Node running inside a host's namespace (`ip netns exec`),
with its HTTP on that namespace's own 127.0.0.1; the test process reaches it
through sockets created in the namespace (setns(2) on one thread for the
socket() call only), so no helper process is needed per request.
start_cluster() gives every host a node with its own identity, all keys
trusted, cluster.listen/advertise on the host's address.

Clean-up: Lab.cleanup() (also run at exit, and by `with`) stops nothing it
did not start and deletes only its own namespaces (wmns<pid>-<n>*). Nodes run
under `setpriv --pdeathsig KILL`, so they die with the test process even
when it is killed; namespaces left by a killed run (their pid gone) are
deleted when the next Lab is made.
"""

import atexit
import ctypes
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import harness

PREFIX = "wmns"
SUBNET = "10.99.0"
CLONE_NEWNET = 0x40000000
IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"
SETPRIV = shutil.which("setpriv")

_libc = ctypes.CDLL(None, use_errno=True)
_labs = 0


class Skip(Exception):
    """Namespaces cannot be used here (not root, no `ip netns`, ...)."""


class LabError(AssertionError):
    pass


def _run(args, check=True, timeout=30):
    p = subprocess.run([str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise LabError("%s failed (%d): %s" % (" ".join(map(str, args)),
                                               p.returncode,
                                               (p.stderr or p.stdout).strip()))
    return p


def _ns_list():
    p = _run([IP, "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def sweep_stale():
    """Delete namespaces left by runs whose process is gone."""
    for ns in _ns_list():
        m = re.match(r"^%s(\d+)-" % PREFIX, ns)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists("/proc/%d" % pid):
            continue
        _run([IP, "netns", "del", ns], check=False)


def check_usable():
    """Raise Skip with a readable reason when namespaces cannot be made."""
    if os.geteuid() != 0:
        raise Skip("network namespace tests need root (euid %d)"
                   % os.geteuid())
    if not os.access(IP, os.X_OK):
        raise Skip("no `ip` command (iproute2) at %s" % IP)
    probe = "%s%d-probe" % (PREFIX, os.getpid())
    p = _run([IP, "netns", "add", probe], check=False)
    if p.returncode != 0:
        raise Skip("`ip netns add` failed: %s" % (p.stderr.strip()
                                                   or p.returncode))
    try:
        p = _run([IP, "-n", probe, "link", "add", "vprobe", "type", "veth",
                  "peer", "name", "vprobe1"], check=False)
        if p.returncode != 0:
            raise Skip("cannot create a veth pair: %s" % p.stderr.strip())
    finally:
        _run([IP, "netns", "del", probe], check=False)


# -- sockets inside a namespace ---------------------------------------------

def socket_in_ns(ns, family=socket.AF_INET, type=socket.SOCK_STREAM):
    """A socket that belongs to network namespace NS. The calling thread
    enters NS just for the socket() call and returns at once (setns(2) on a
    network namespace is per thread)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open("/run/netns/" + ns, os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns(%s): %s" % (ns, os.strerror(e)))
            try:
                return socket.socket(family, type)
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    # The thread would stay in NS: nothing after this is
                    # trustworthy.
                    os._exit(70)
        finally:
            os.close(target)
    finally:
        os.close(own)


class NsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, ns, host, port, timeout=60):
        super().__init__(host, port, timeout=timeout)
        self.ns = ns

    def connect(self):
        s = socket_in_ns(self.ns)
        try:
            s.settimeout(self.timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.connect((self.host, self.port))
        except BaseException:
            s.close()
            raise
        self.sock = s


def ns_http_request(ns, host, port, method, path, body=None, headers=None,
                    timeout=60):
    """harness.http_request, from inside namespace NS."""
    return harness.request_on(NsHTTPConnection(ns, host, port,
                                               timeout=timeout),
                              method, path, body, headers)


# -- the lab ------------------------------------------------------------------

class Host:
    def __init__(self, lab, index):
        self.lab = lab
        self.index = index
        self.ns = "%sh%d" % (lab.prefix, index)
        self.addr = "%s.%d" % (SUBNET, index)
        self.dev = "eth0"               # in the host's namespace
        self.port = "vh%d" % index      # the switch's end, in the switch ns
        self.node = None

    def exec_argv(self, argv):
        return [IP, "netns", "exec", self.ns] + [str(a) for a in argv]

    def run(self, argv, check=True, timeout=60):
        return _run(self.exec_argv(argv), check=check, timeout=timeout)

    def __repr__(self):
        return "<Host h%d %s ns=%s>" % (self.index, self.addr, self.ns)


class Lab:
    def __init__(self):
        check_usable()
        sweep_stale()
        global _labs
        _labs += 1
        self.prefix = "%s%d-%d" % (PREFIX, os.getpid(), _labs)
        self.switch = self.prefix + "sw"
        self.hosts = []
        self.namespaces = []
        self.dir = tempfile.mkdtemp(prefix="wm-netns-")
        self._closed = False
        atexit.register(self.cleanup)
        try:
            self._add_ns(self.switch)
            self._ip(self.switch, "link", "add", "br0", "type", "bridge")
            self._ip(self.switch, "link", "set", "br0", "up")
        except BaseException:
            self.cleanup()
            raise

    def _ip(self, ns, *args):
        return _run([IP, "-n", ns] + list(args))

    def _add_ns(self, ns):
        _run([IP, "netns", "add", ns])
        self.namespaces.append(ns)
        self._ip(ns, "link", "set", "lo", "up")

    def add_host(self):
        h = Host(self, len(self.hosts) + 1)
        if h.index > 250:
            raise LabError("too many hosts")
        self._add_ns(h.ns)
        self.hosts.append(h)
        self._ip(self.switch, "link", "add", h.port, "type", "veth",
                 "peer", "name", h.dev, "netns", h.ns)
        self._ip(self.switch, "link", "set", h.port, "master", "br0")
        self._ip(self.switch, "link", "set", h.port, "up")
        self._ip(h.ns, "addr", "add", h.addr + "/24", "dev", h.dev)
        self._ip(h.ns, "link", "set", h.dev, "up")
        return h

    # -- faults and caps

    def link_down(self, host):
        """Cut HOST off the switch (its port goes down, so eth0 loses
        carrier too)."""
        self._ip(self.switch, "link", "set", host.port, "down")

    def link_up(self, host):
        self._ip(self.switch, "link", "set", host.port, "up")

    def cap(self, host, rate="200mbit", up=True, down=False,
            burst="256kb", latency="50ms"):
        """A tbf bandwidth cap on HOST's link: UP caps what the host sends
        (root qdisc of its eth0), DOWN what it receives (the switch port)."""
        spec = ["root", "tbf", "rate", rate, "burst", burst,
                "latency", latency]
        if up:
            _run([TC, "-n", host.ns, "qdisc", "replace", "dev", host.dev]
                 + spec)
        if down:
            _run([TC, "-n", self.switch, "qdisc", "replace", "dev",
                  host.port] + spec)

    def uncap(self, host):
        _run([TC, "-n", host.ns, "qdisc", "del", "dev", host.dev, "root"],
             check=False)
        _run([TC, "-n", self.switch, "qdisc", "del", "dev", host.port,
              "root"], check=False)

    def qdisc_stats(self, host):
        return _run([TC, "-s", "-n", host.ns, "qdisc", "show", "dev",
                     host.dev], check=False).stdout

    # -- clean-up

    def cleanup(self):
        if self._closed:
            return
        self._closed = True
        for h in self.hosts:
            if h.node is not None:
                try:
                    h.node.kill()
                except Exception:
                    pass
        # The switch goes first: deleting it removes every veth pair.
        for ns in reversed(self.namespaces):
            _run([IP, "netns", "del", ns], check=False)
        self.namespaces = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self):
        """Namespaces of this Lab that still exist (for tests of cleanup)."""
        return [ns for ns in _ns_list() if ns.startswith(self.prefix)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


# -- nodes in namespaces ------------------------------------------------------

class NsNode(harness.Node):
    """A harness.Node run inside HOST's namespace; HTTP on that namespace's
    127.0.0.1, cluster on the host's address."""

    CLUSTER_PORT = 7391

    def __init__(self, host, config=None, **kw):
        self.ns = host.ns
        self.lab_host = host
        kw.setdefault("log", True)
        kw.setdefault("name", "h%d" % host.index)
        super().__init__(config=config, **kw)

    def argv(self):
        pre = []
        if SETPRIV:
            pre = [SETPRIV, "--pdeathsig", "KILL", "--"]
        return [IP, "netns", "exec", self.ns] + pre + super().argv()

    def connection(self, timeout=60):
        return NsHTTPConnection(self.ns, self.host, self.port,
                                timeout=timeout)

    def links(self):
        """Filenames on this node's /links/ page."""
        status, _, body = self.get("/links/", timeout=10)
        if status != 200:
            raise harness.NodeError("GET /links/: %d\n%s"
                                    % (status, self.tail()))
        return sorted(a["text"] for a in harness.parse_links(body))

    def member_states(self):
        """{member address: state} as this node sees it."""
        st = self.status()
        return {m.get("address"): m.get("state")
                for m in st.get("members", [])}

    def __repr__(self):
        return "<NsNode %s in %s>" % (self.name, self.ns)


def keygen(path):
    p = harness.wm("keygen", "-o", path)
    if p.returncode != 0:
        raise LabError("keygen failed\n" + harness.describe(p))
    return p.stdout.strip().split()[-1]


def start_cluster(lab, hosts, seeds=None, extra_config=None, port=7391,
                  host_config=None):
    """Start an NsNode on every host in HOSTS: identities in the lab dir, a
    trusted_keys file with all of them, cluster on HOST.addr:PORT, seeds =
    SEEDS (hosts; default the first host) except itself; EXTRA_CONFIG
    merged into every node's configuration, HOST_CONFIG[host] into that
    host's. Waits for /healthz only; returns the nodes (also set as
    host.node)."""
    harness.require_binary()
    trusted = os.path.join(lab.dir, "trusted_keys")
    keys = {}
    for h in hosts:
        keyfile = os.path.join(lab.dir, "h%d.key" % h.index)
        keys[h] = keygen(keyfile)
    with open(trusted, "w") as f:
        for h in hosts:
            f.write("# h%d %s\n%s\n" % (h.index, h.addr, keys[h]))
    seed_hosts = seeds if seeds is not None else hosts[:1]
    nodes = []
    for h in hosts:
        ep = "tcp://%s:%d" % (h.addr, port)
        conf = {
            "node": {"name": "h%d" % h.index,
                     "identity": os.path.join(lab.dir, "h%d.key" % h.index)},
            "cluster": {"listen": ep, "advertise": ep,
                        "seeds": ["tcp://%s:%d" % (s.addr, port)
                                  for s in seed_hosts if s is not h],
                        "trusted_keys": trusted, "publishers": trusted},
            "upstream": {"indexes": []},
        }
        conf = harness.merge(conf, extra_config)
        conf = harness.merge(conf, (host_config or {}).get(h))
        node = NsNode(h, config=conf)
        node.pubkey = keys[h]
        node.endpoint = ep
        h.node = node
        nodes.append(node)
    return nodes


def wait_for(what, pred, timeout, interval=0.1):
    """Poll PRED until it returns a true value; returns (value, seconds).
    Raises LabError naming WHAT (and PRED's last value) on timeout."""
    t0 = time.monotonic()
    last = None
    while True:
        try:
            last = pred()
        except (OSError, harness.NodeError, ValueError) as e:
            last = e
            ok = False
        else:
            ok = bool(last)
        if ok:
            return last, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise LabError("%s: not after %.1f s (last: %r)"
                           % (what, timeout, last))
        time.sleep(interval)


def dump(nodes, n=25):
    """Every node's view and log tail, for a failure message."""
    out = []
    for node in nodes:
        try:
            st = node.status()
            view = json.dumps({"members": [(m["address"], m["state"])
                                           for m in st.get("members", [])],
                               "cluster": st.get("cluster")})
        except Exception as e:  # noqa: BLE001 - only for the message
            view = "status failed: %r" % e
        out.append("=== %s: %s\n%s" % (node.name, view, node.tail(n)))
    return "\n".join(out)


if __name__ == "__main__":
    import sys
    sys.exit("netns_util.py is a module for the tests")
