"""A misbehaving cluster member for the end-to-end tests.

EvilPeer holds a trusted identity (an Ed25519 key the nodes list in their
trusted_keys file) and speaks the wire protocol by hand, through wire.py,
from one Python thread:

- it binds its own ROUTER as a CURVE server (with no ZAP handler: it admits
  anyone, which only matters to itself);
- join(node) connects a CURVE DEALER to the node's cluster socket and sends
  a PING whose membership update is its own signed ALIVE statement (its
  address and name, signed over wire.alive_signed_bytes with PyNaCl), so
  the node connects a DEALER back to it and treats it as a live member;
- it ACKs every probe, so it stays alive in the nodes' views, and refutes a
  SUSPECT or DEAD report about its incarnation by signing the next one, as
  a node does;
- publish() sends signed index ENTRIES (the origin's signature covers
  wire.entry_signed_bytes), so nodes list it as a holder. An entry names
  nothing by itself: by default it carries a claim naming the wheel,
  signed by the peer's own key (a publisher wherever cluster.publishers is
  the trusted keys file, cluster_util's default), or by another publisher
  key, or no claim (then only an upstream page can name the wheel);
- a node's HAVE with ASK ("I am fetching this wheel; what do you have?")
  is answered, for a wheel given to claim_chunks(), with a HAVE that
  claims every chunk: a member pretending to be part of a swarm;
- FETCH and MAP are answered by a Behaviour chosen per wheel sha256:
  Serve (real bytes, optionally stopping after some chunks, optionally with
  a chunk map of other bytes), Later (CHUNK LATER forever), Busy (CHUNK
  BUSY forever), Missing, Endless (1 MiB chunks without end, up to a
  safety cap).

Everything it received that did not decode is kept in .errors: a non-empty
list means wire.py and the node disagree on the format.

Needs python3-zmq and python3-nacl (Debian packages; see dev.sh).
"""

import collections
import hashlib
import queue
import re
import threading
import time

import harness as h
import wire

MiB = 1 << 20


# -- behaviours ---------------------------------------------------------------


class Behaviour:
    """How the peer answers FETCH and MAP for one wheel. on_fetch and
    on_map return (status, bulk bytes), or None to send nothing at all.
    They run on the peer's thread."""

    def on_fetch(self, peer, m):
        return wire.MISSING, b""

    def on_map(self, peer, m):
        return wire.MISSING, b""


class Missing(Behaviour):
    """'I do not have it' to everything."""


class Later(Behaviour):
    """CHUNK LATER to every FETCH, forever: 'being fetched, ask again'."""

    def on_fetch(self, peer, m):
        return wire.LATER, b""


class Busy(Behaviour):
    """CHUNK BUSY to every FETCH, forever: 'at my upload limit, ask another
    holder'."""

    def on_fetch(self, peer, m):
        return wire.BUSY, b""


class Silent(Behaviour):
    """No answer at all."""

    def on_fetch(self, peer, m):
        return None

    def on_map(self, peer, m):
        return None


class Serve(Behaviour):
    """Serves DATA in 1 MiB chunks (an empty OK chunk past its end, the end
    marker for a fetch of unknown size) and, for MAP, the chunk map of
    MAP_OF (default: DATA itself). From chunk STOP_AFTER on it answers
    THEN (a Behaviour; default Missing) instead: a holder that fails in
    the middle of a transfer."""

    def __init__(self, data, map_of=None, stop_after=None, then=None):
        self.data = data
        self.map = wire.chunk_map(map_of if map_of is not None else data)
        self.stop_after = stop_after
        self.then = then or Missing()
        self.served = 0

    def on_fetch(self, peer, m):
        if self.stop_after is not None and m.idx >= self.stop_after:
            return self.then.on_fetch(peer, m)
        off = m.idx * wire.CHUNK_SIZE
        piece = self.data[off:off + wire.CHUNK_SIZE]
        self.served += 1
        return wire.OK, piece

    def on_map(self, peer, m):
        return wire.OK, self.map


class Endless(Behaviour):
    """A full 1 MiB chunk for every FETCH, whatever its index: a wheel that
    never ends. After CAP bytes it answers LATER (a safety cap, so a node
    that has no cap of its own does not fill the disk during the test).
    MAP_OF: bytes whose chunk map MAP answers with (default: Missing)."""

    def __init__(self, cap=64 * MiB, map_of=None):
        self.cap = cap
        self.filler = bytes(range(256)) * (wire.CHUNK_SIZE // 256)
        self.map = wire.chunk_map(map_of) if map_of is not None else None
        self.sent = 0

    def on_fetch(self, peer, m):
        if self.sent >= self.cap:
            return wire.LATER, b""
        self.sent += len(self.filler)
        return wire.OK, self.filler

    def on_map(self, peer, m):
        if self.map is None:
            return wire.MISSING, b""
        return wire.OK, self.map


# -- the peer -----------------------------------------------------------------


def curve_keys(seed):
    """(ed25519 public key = node id, curve public, curve secret) of an
    Ed25519 SEED, as the node derives them (crypto_sign_ed25519_*_to_
    curve25519)."""
    import nacl.signing
    sk = nacl.signing.SigningKey(seed)
    return (bytes(sk.verify_key),
            bytes(sk.verify_key.to_curve25519_public_key()),
            bytes(sk.to_curve25519_private_key()))


class EvilPeer:
    """A trusted identity (KEY: a cluster_util.Key) that joins nodes by
    hand. .behaviours maps a wheel's raw sha256 to the Behaviour that
    answers for it; .default answers for every other wheel. Counters:
    .received[type name], .fetches[sha hex], .maps[sha hex],
    .bytes_sent; .errors lists frames that did not decode."""

    def __init__(self, key, label="evil"):
        import nacl.signing
        import zmq
        self.zmq = zmq
        self.key, self.label = key, label
        self.signer = nacl.signing.SigningKey(key.seed)
        self.id, self.curve_pub, self.curve_sec = curve_keys(key.seed)
        self.hex = self.id.hex()
        self.port = h.free_port()
        self.addr = "tcp://127.0.0.1:%d" % self.port
        self.incarnation = 1
        self.generation = int(time.time())
        self.next_seq = 1
        self.behaviours = {}
        self.default = Missing()
        self.silent = False  # True: drop everything (probes too)
        self.received = collections.Counter()
        self.fetches = collections.Counter()
        self.maps = collections.Counter()
        self.haves = []  # HAVE messages received (wire.Msg)
        self.claims = set()  # sha256s whose every chunk it says it has
        self.bytes_sent = 0
        self.router_pings = collections.Counter()  # by routing id
        self.errors = []
        self._seq = 0
        self._cmds = queue.Queue()
        self._stop = threading.Event()
        self.ctx = zmq.Context()
        r = self.ctx.socket(zmq.ROUTER)
        r.setsockopt(zmq.LINGER, 0)
        r.setsockopt(zmq.SNDTIMEO, 2000)
        r.setsockopt(zmq.SNDHWM, 10000)
        r.curve_server = True
        r.curve_secretkey = self.curve_sec
        r.curve_publickey = self.curve_pub
        r.bind(self.addr)
        self.router = r
        self.dealers = {}  # node id hex -> DEALER
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="evilpeer-" + label)
        self.thread.start()

    # -- what the tests call -------------------------------------------------

    def sign(self, data):
        """The peer's Ed25519 signature of DATA (64 bytes)."""
        return self.signer.sign(data).signature

    def self_update(self):
        """The peer's signed ALIVE statement about itself, at its current
        incarnation."""
        return wire.self_update(self.id, self.incarnation, self.addr,
                                self.sign, name="evilpeer-" + self.label)

    def behave(self, sha_hex, behaviour):
        """Answer FETCH / MAP for wheel SHA_HEX with BEHAVIOUR."""
        self.behaviours[bytes.fromhex(sha_hex)] = behaviour
        return behaviour

    def claim_chunks(self, sha_hex):
        """Answer a node's HAVE ASK for SHA_HEX with 'I have every chunk'
        (what FETCH then gets is the behaviour's)."""
        self.claims.add(bytes.fromhex(sha_hex))

    def join(self, node, timeout=15.0):
        """Connects to NODE (a cluster_util.ClusterNode), introduces itself
        with its address and waits until NODE lists it alive at that
        address and has connected back (a PING arrived on the peer's own
        socket). Raises AssertionError with NODE's log tail otherwise."""
        self._cmds.put(("connect", node.id, node.cluster_addr))
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self._cmds.put(("ping", node.id))
            try:
                last = node.member(self.hex)
            except (OSError, AssertionError, ValueError) as e:
                last = repr(e)
            if (isinstance(last, dict) and last.get("state") == "alive"
                    and last.get("address") == self.addr
                    and sum(self.router_pings.values()) > 0):
                return last
            time.sleep(0.2)
        raise AssertionError(
            "evil peer %s could not join node %s: its view of the peer: %r; "
            "pings on the peer's socket: %d; undecodable frames: %r\n%s"
            % (self.label, node.label, last, sum(self.router_pings.values()),
               self.errors[:3], node.tail()))

    def join_ping(self, node):
        """Sends NODE one PING carrying the peer's current statement (after
        a test changed its address or incarnation)."""
        self._cmds.put(("ping", node.id))

    def entry(self, filename, sha_hex, size, root, claim=True,
              publisher=None, requires_python="", consume=True):
        """A signed ADD entry of this peer's log (the next sequence
        number): 'I hold SHA_HEX, SIZE bytes, chunk map hashing to ROOT'.
        CLAIM true: it carries a claim 'that is FILENAME', signed by
        PUBLISHER (a cluster_util.Key; default: this peer's own key);
        false: no claim (FILENAME is then only for the caller). CONSUME
        false: the sequence number is not used up (for an entry meant to
        be refused: a node takes only the next number of a log, so a used
        number it refused would stop every later entry)."""
        pub = pub_sign = None
        if claim and publisher is not None:
            import nacl.signing
            signer = nacl.signing.SigningKey(publisher.seed)
            pub = bytes(signer.verify_key)
            pub_sign = lambda data: signer.sign(data).signature  # noqa: E731
        e = wire.holding(self.id, self.generation, self.next_seq, sha_hex,
                         size, root, self.sign,
                         filename=filename if claim else None,
                         requires_python=requires_python, publisher=pub,
                         publisher_sign=pub_sign)
        if consume:
            self.next_seq += 1
        return e

    def resign(self, e):
        """Signs entry E again with this peer's key (after a test changed
        a field of it, its claim included); returns E."""
        e.origin = self.id
        e.sig = self.sign(wire.entry_signed_bytes(e))
        return e

    def publish(self, entries, node):
        """Sends ENTRIES (signed wire.Entry objects) to NODE."""
        self._cmds.put(("send", node.id,
                        wire.frames(wire.entries(list(entries)))))

    def publish_until_listed(self, entries, node, filename, timeout=10.0):
        """publish() until NODE's /api/files lists FILENAME with this peer
        among its holders; returns NODE's entry for it. When a claim in
        ENTRIES names FILENAME, the flat /api/files must list it (the claim
        names it; NODE fetches no page for it); otherwise only an upstream
        page can name it, and the project's /api/files is asked (NODE
        fetches the page)."""
        claimed = any(e.claim is not None and e.claim.filename == filename
                      for e in entries)
        project = None if claimed else project_of(filename)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.publish(entries, node)
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                try:
                    last = node.held(project).get(filename)
                except (OSError, AssertionError, ValueError) as e:
                    last = repr(e)
                if isinstance(last, dict) and self.hex in last.get(
                        "holders", []):
                    return last
                time.sleep(0.1)
        raise AssertionError(
            "node %s never listed %s held by evil peer %s (last: %r; "
            "undecodable frames: %r)\n%s"
            % (node.label, filename, self.label, last, self.errors[:3],
               node.tail()))

    def send(self, node, frames):
        """Queues raw FRAMES for NODE on the peer's DEALER to it."""
        self._cmds.put(("send", node.id, list(frames)))

    def stop(self):
        """Ends the thread and closes every socket. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.thread.join(10)
        for s in list(self.dealers.values()) + [self.router]:
            s.close(0)
        self.ctx.term()

    # -- the peer's thread ----------------------------------------------------

    def _run(self):
        zmq = self.zmq
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        owner = {}
        while not self._stop.is_set():
            self._commands(poller, owner)
            try:
                events = dict(poller.poll(20))
            except zmq.ZMQError:
                break
            for sock in events:
                for _ in range(256):
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if sock is self.router:
                        self._on_router(parts)
                    else:
                        self._on_dealer(sock, parts)

    def _commands(self, poller, owner):
        zmq = self.zmq
        while True:
            try:
                cmd = self._cmds.get_nowait()
            except queue.Empty:
                return
            if cmd[0] == "connect":
                _, node_hex, endpoint = cmd
                if node_hex in self.dealers:
                    continue
                server = curve_keys_from_id(node_hex)
                d = self.ctx.socket(zmq.DEALER)
                d.setsockopt(zmq.LINGER, 0)
                d.setsockopt(zmq.SNDTIMEO, 2000)
                d.curve_secretkey = self.curve_sec
                d.curve_publickey = self.curve_pub
                d.curve_serverkey = server
                d.connect(endpoint)
                poller.register(d, zmq.POLLIN)
                self.dealers[node_hex] = d
            elif cmd[0] == "ping":
                d = self.dealers.get(cmd[1])
                if d is not None:
                    self._seq += 1
                    self._send(d, None, wire.frames(wire.ping(
                        self._seq, [self.self_update()])))
            elif cmd[0] == "send":
                d = self.dealers.get(cmd[1])
                if d is not None:
                    self._send(d, None, cmd[2])

    def _send(self, sock, rid, frames):
        try:
            sock.send_multipart(([rid] if rid is not None else []) + frames)
            self.bytes_sent += sum(len(f) for f in frames)
        except self.zmq.ZMQError:
            pass  # a full or vanished peer: like the node, just drop it

    def _decode(self, parts):
        try:
            return wire.decode_frames(parts)
        except wire.WireError as e:
            if len(self.errors) < 100:
                self.errors.append("%s: %r" % (e, [bytes(p[:64])
                                                   for p in parts]))
            return None, None

    def _on_router(self, parts):
        if len(parts) < 2:
            return
        rid = parts[0]
        m, _bulk = self._decode(parts[1:])
        if m is None or self.silent:
            return
        self.received[m.name] += 1
        self._about_me(m)

        def reply(frames):
            self._send(self.router, rid, frames)

        if m.type == wire.PING:
            self.router_pings[rid] += 1
            reply(wire.frames(wire.ack(m.seq, [self.self_update()])))
        elif m.type == wire.FETCH:
            self.fetches[m.sha256.hex()] += 1
            b = self.behaviours.get(m.sha256, self.default)
            out = b.on_fetch(self, m)
            if out is not None:
                status, bulk = out
                reply(wire.frames(wire.chunk(m.sha256, m.idx, status),
                                  bulk if status == wire.OK else b""))
        elif m.type == wire.HAVE:
            self.haves.append(m)
            if m.sha256 in self.claims and m.flags & wire.HAVE_ASK:
                reply(wire.frames(wire.have(m.sha256, m.nchunks,
                                            range(m.nchunks))))
        elif m.type == wire.MAP:
            self.maps[m.sha256.hex()] += 1
            b = self.behaviours.get(m.sha256, self.default)
            out = b.on_map(self, m)
            if out is not None:
                status, bulk = out
                reply(wire.frames(wire.mapdata(m.sha256, status),
                                  bulk if status == wire.OK else b""))
        # PING_REQ, DIGEST, ENTRIES: counted, not answered.

    def _on_dealer(self, sock, parts):
        m, _bulk = self._decode(parts)
        if m is not None:
            self.received[m.name] += 1
            if not self.silent:
                self._about_me(m)

    def _about_me(self, m):
        """A SUSPECT or DEAD report about this peer's current incarnation:
        refuted by signing the next one (membership.c's refute()); the
        next PING or ACK carries it."""
        for u in m.updates:
            if (u.id == self.id and u.state != wire.ALIVE
                    and u.incarnation == self.incarnation
                    and u.incarnation + 1 < wire.COUNTER_MAX):
                self.incarnation += 1


def curve_keys_from_id(node_hex):
    """The CURVE public key of the node whose id (Ed25519 public key) is
    NODE_HEX."""
    import nacl.signing
    return bytes(nacl.signing.VerifyKey(bytes.fromhex(node_hex))
                 .to_curve25519_public_key())


def project_of(filename):
    """The normalized project name (PEP 503) of wheel FILENAME."""
    return re.sub(r"[-_.]+", "-", filename.split("-", 1)[0]).lower()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()
