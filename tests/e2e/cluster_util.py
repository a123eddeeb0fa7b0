"""Helpers for the cluster end-to-end tests: identities, trusted-key files,
nodes that run with an extra environment, waiting for the cluster to
converge, and a CurveZMQ peer that speaks the wire protocol by hand.

Everything that waits says, when it gives up, what it waited for, what it
saw last and the last lines of every node involved.
"""

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.parse

import harness as h
import wire

# -- identities ----------------------------------------------------------------


class Key:
    """A node identity made by `wheelmesh keygen`: .path, .pub (64 hex, as
    keygen printed it) and .seed (the 32-byte Ed25519 seed in the file)."""

    def __init__(self, path):
        h.require_binary()
        proc = h.run([h.BIN, "keygen", "-o", path], timeout=30)
        if proc.returncode != 0:
            raise RuntimeError("keygen failed\n" + h.describe(proc))
        self.path = path
        self.pub = proc.stdout.strip()
        if len(self.pub) != 64 or not all(c in "0123456789abcdef"
                                          for c in self.pub):
            raise RuntimeError("keygen printed %r, not 64 hex digits"
                               % proc.stdout)
        mode = os.stat(path).st_mode & 0o777
        if mode != 0o600:
            raise RuntimeError("keygen wrote %s with mode %o, not 600"
                               % (path, mode))
        with open(path) as f:
            text = f.read().split()
        if len(text) != 2 or text[0] != "wheelmesh-ed25519":
            raise RuntimeError("unexpected key file %s: %r" % (path, text))
        self.seed = bytes.fromhex(text[1])

    @property
    def short(self):
        return self.pub[:16]


def write_trusted(path, keys, comment="trusted cluster keys"):
    with open(path, "w") as f:
        f.write("# %s\n" % comment)
        for k in keys:
            f.write("%s\n" % (k.pub if isinstance(k, Key) else k))
    return path


# -- nodes -------------------------------------------------------------------


def make_keys(cls, names):
    """A temporary directory for test class CLS (removed after it) and a
    Key in it for each of NAMES: (dir, {name: Key})."""
    d = h.tmpdir(cls)
    return d, {n: Key(os.path.join(d, n + ".key")) for n in names}


def start_chain(cls, tmp, keys, seeds, env=None):
    """Start a ClusterNode for each name in SEEDS ({name: the names it
    seeds from}), in that order, labelled with its name, trusting all of
    KEYS (the trusted file goes in TMP), with the extra environment
    ENV.get(name); test class CLS cleans them up. Returns {name: node}."""
    trusted = write_trusted(os.path.join(tmp, "trusted"), keys.values())
    ports = {n: h.free_port() for n in seeds}
    nodes = {}
    for n in seeds:
        nodes[n] = ClusterNode(
            keys[n], trusted=trusted,
            seeds=[addr(ports[s]) for s in seeds[n]],
            cluster_port=ports[n], env=(env or {}).get(n), label=n)
        cls.addClassCleanup(nodes[n].cleanup)
    return nodes


def addr(port):
    return "tcp://127.0.0.1:%d" % port


class NodeHTTPError(h.NodeError, OSError):
    """A failed connection to a node, with the node's log. Still an OSError,
    so whoever retries on OSError (wait_ready) keeps doing so."""


class ClusterNode(h.Node):
    """harness.Node with an identity, a cluster port chosen up front (so
    others can be seeded with it before it starts) and an optional extra
    environment (for the test-only fault hooks)."""

    def __init__(self, key, trusted=None, seeds=(), upstream=None,
                 env=None, config=None, cluster_port=None, label=None,
                 publishers="trusted", **kw):
        self.key = key
        self.env_extra = dict(env or {})
        self.cluster_port = cluster_port or h.free_port()
        self.label = label or key.short
        cluster = {"listen": addr(self.cluster_port),
                   "seeds": list(seeds)}
        if trusted:
            cluster["trusted_keys"] = trusted
        # By default a small fleet that trusts every agent to name wheels:
        # its publishers are its trusted keys. None: no publishers.
        if publishers == "trusted" and trusted:
            cluster["publishers"] = trusted
        elif publishers not in (None, "trusted"):
            cluster["publishers"] = publishers
        base = {"node": {"identity": key.path}, "cluster": cluster}
        if upstream:
            base["upstream"] = {"indexes": [{"url": upstream}],
                                "timeout_s": 10}
        kw.setdefault("log", True)
        super().__init__(config=h.merge(base, config), **kw)

    @property
    def id(self):
        return self.key.pub

    @property
    def cluster_addr(self):
        return addr(self.cluster_port)

    def env(self):
        env = dict(os.environ)
        env.update(self.env_extra)
        return env

    def tail(self, n=40):
        return ("===== node %s (%s, id %s) =====\n"
                % (self.label, self.url, self.key.short)
                + super().tail(n))

    def log_text(self):
        text = self.stderr_text(all_starts=True)
        if self.log_path and os.path.exists(self.log_path):
            with open(self.log_path, "rb") as f:
                text += f.read().decode("utf-8", "replace")
        return text

    # -- HTTP, with the node's log when the connection fails ---------------

    def _failed(self, what, e):
        return NodeHTTPError("%s on node %s: %s: %s\n%s"
                           % (what, self.label, type(e).__name__, e,
                              self.tail()))

    def request(self, method, path, body=None, headers=None, timeout=60):
        try:
            return super().request(method, path, body, headers, timeout)
        except (OSError, http.client.HTTPException) as e:
            raise self._failed("%s %s" % (method, path), e) from e

    def download(self, path, headers=None):
        try:
            return super().download(path, headers)
        except (OSError, http.client.HTTPException) as e:
            raise self._failed("GET %s (download)" % path, e) from e

    # -- what the node says ------------------------------------------------

    def held(self, project=None):
        """{filename: entry} of /api/files: the wheels held here or by live
        peers that this node can name. Files only upstream names are known
        where the node has the project's page: ask for their PROJECT."""
        return {f["filename"]: f for f in self.files(project)}

    def link_names(self, project=None):
        path = "/links/%s/" % project if project else "/links/"
        status, _, body = self.get(path, timeout=10)
        if status != 200:
            return set()
        return {a["text"] for a in h.parse_links(body)}

    def simple_names(self, project):
        status, _, body = self.get("/simple/%s/" % project, timeout=30)
        if status != 200:
            return set()
        return {a["text"] for a in h.parse_links(body)}

    def member(self, node_id):
        """This node's view of member NODE_ID (a dict) or None."""
        for m in self.status().get("members", []):
            if m.get("id") == node_id:
                return m
        return None

    def member_state(self, node_id):
        m = self.member(node_id)
        return m.get("state") if m else None

    def cluster_status(self):
        return self.status().get("cluster", {})


def tails(nodes, n=40):
    return "\n".join(x.tail(n) for x in nodes)


class Waiter:
    """wait(pred, what) polls PRED until it returns something true and
    returns it; on timeout it fails with WHAT, the last value PRED gave
    and the tails of NODES."""

    def __init__(self, nodes=()):
        self.nodes = list(nodes)

    def __call__(self, pred, what, timeout=10.0, interval=0.1, extra=None):
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        last = None
        while True:
            try:
                last = pred()
            except (OSError, ValueError, AssertionError) as e:
                last = "error: %s" % str(e).splitlines()[0][:300]
            else:
                if last:
                    return last
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        raise AssertionError(
            "timed out after %.1f s waiting for %s (last: %r)%s\n%s"
            % (time.monotonic() - t0, what, last,
               ("\n" + extra()) if extra else "", tails(self.nodes)))


def wait_all_alive(nodes, timeout=15):
    """Waits until every one of NODES sees every other alive."""
    nodes = list(nodes)
    w = Waiter(nodes)
    for x in nodes:
        others = [y for y in nodes if y is not x]
        w(lambda x=x, others=others: all(
            x.member_state(y.id) == "alive" for y in others),
          "%s to see the %d others alive" % (x.label, len(others)),
          timeout=timeout)


def designee(node_ids, sha):
    """The member the design designates to fetch wheel SHA from upstream
    for the cluster: the highest sha256(node id || wheel sha), both raw."""
    sha = bytes.fromhex(sha)
    return max(node_ids,
               key=lambda i: hashlib.sha256(bytes.fromhex(i) + sha).digest())


def designated_wheel(d, ids, want, project, size, version="1.0"):
    """Writes wheels of PROJECT VERSION (SIZE payload bytes, seeds 0, 1,
    ...) into D until one's designee among IDS is WANT; returns its path
    (the others are removed)."""
    from makewheel import make_wheel
    for seed in range(500):
        path = make_wheel(d, project, version, size=size, seed=seed)
        if designee(ids, h.sha256_file(path)) == want:
            return path
        os.remove(path)
    raise RuntimeError("no seed makes %s the designee of %s" % (want[:16],
                                                                 project))


def file_path(sha, filename):
    return "/files/%s/%s" % (sha, urllib.parse.quote(filename))


class Download(threading.Thread):
    """GET /files/<sha>/<name> on NODE in a thread; .result is harness
    Node.download's (status, headers, sha256, length), or .error."""

    def __init__(self, node, sha=None, filename=None, start_at=None,
                 path=None):
        super().__init__(daemon=True)
        self.node, self.path = node, path or file_path(sha, filename)
        self.start_at = start_at
        self.result = self.error = None
        self.took = None

    def run(self):
        if self.start_at is not None:
            self.start_at.wait()
        t0 = time.monotonic()
        try:
            self.result = self.node.download(self.path)
        except Exception as e:  # reported by the test (tails come apart)
            self.error = str(e).splitlines()[0] if str(e) else repr(e)
        self.took = time.monotonic() - t0


class StateWatch(threading.Thread):
    """Polls OBSERVER's view of member NODE_ID every 0.1 s from when it is
    started, and records when it first saw each state: .first[state] is
    seconds since start. stop() ends it."""

    def __init__(self, observer, node_id):
        super().__init__(daemon=True)
        self.observer, self.node_id = observer, node_id
        self.first = {}
        self.seen = []
        self._stop_ev = threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self._stop_ev.is_set():
            try:
                st = self.observer.member_state(self.node_id)
            except (OSError, ValueError, AssertionError):
                st = "error"
            t = time.monotonic() - self.t0
            if st not in self.first:
                self.first[st] = t
                self.seen.append((round(t, 1), st))
            self._stop_ev.wait(0.1)

    def stop(self):
        self._stop_ev.set()
        self.join(5)


# -- the wire protocol, for a hand-made peer --------------------------------
# Every byte layout lives in wire.py (it follows common/wire.h); these names
# stay for the tests that use them.

MAGIC = wire.MAGIC
VERSION = wire.VERSION
PING, ACK = wire.PING, wire.ACK


def ping_frame(seq, nupdates=0, extra=b""):
    """A PING header frame with no updates (whose count byte says NUPDATES)
    followed by EXTRA: see wire.raw_ping."""
    return wire.raw_ping(seq, nupdates, extra)


def parse_ack(frame):
    """(seq, incarnation) of an ACK header frame, or None: see
    wire.parse_ack (the incarnation is that of the sender's statement about
    itself; the ACK has no field of its own for it)."""
    return wire.parse_ack(frame)


class WirePeer:
    """A ZMQ DEALER that talks CURVE to a node's cluster socket with the
    keys of KEY_SEED (an Ed25519 seed, e.g. Key.seed), as a peer holding that
    identity would."""

    def __init__(self, server_pub_hex, endpoint, seed):
        import zmq
        import nacl.signing
        self.zmq = zmq
        sk = nacl.signing.SigningKey(seed)
        server = nacl.signing.VerifyKey(bytes.fromhex(server_pub_hex))
        self.ctx = zmq.Context()
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDTIMEO, 2000)
        s.curve_secretkey = bytes(sk.to_curve25519_private_key())
        s.curve_publickey = bytes(sk.verify_key.to_curve25519_public_key())
        s.curve_serverkey = bytes(server.to_curve25519_public_key())
        s.connect(endpoint)
        self.sock = s
        self.seq = 1000

    def send(self, *frames):
        """Queues FRAMES as one message; False when even that could not
        be done within 2 s."""
        try:
            self.sock.send_multipart(list(frames), copy=True)
            return True
        except self.zmq.Again:
            return False

    def recv_all(self, timeout=0.5):
        """Every message that arrives within TIMEOUT seconds."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            if self.sock.poll(int(left * 1000) + 1):
                out.append(self.sock.recv_multipart())

    def ping(self, timeout=3.0):
        """Sends a PING with no updates (this peer states nothing about
        itself, so the node learns no address from it); returns the
        matching ACK's (seq, incarnation) or None when none came within
        TIMEOUT. Anything else is ignored."""
        self.seq += 1
        seq = self.seq
        if not self.send(ping_frame(seq)):
            return None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.sock.poll(int(left * 1000) + 1):
                frames = self.sock.recv_multipart()
                ack = parse_ack(frames[0]) if frames else None
                if ack and ack[0] == seq:
                    return ack

    def close(self):
        self.sock.close(0)
        self.ctx.term()


def sha256_of(data):
    return hashlib.sha256(data).hexdigest()


def dump(obj):
    return json.dumps(obj, indent=1, sort_keys=True)
