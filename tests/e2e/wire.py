"""The cluster's wire messages in Python: every byte the end-to-end tests
put on (or read off) a node's cluster socket is encoded and decoded here,
and nowhere else.

This module MUST follow common/wire.h and common/wire.c exactly (today:
version 1). When the wire format changes, change this module with it; the
tests in test_wire_peer.py fail loudly when the two drift apart (the fuzz
corpus of real frames must round-trip, and a real node must answer a PING
with an ACK that decodes here).

Layout (wire.h): a message is one header frame and, for CHUNK and MAPDATA
only, a second frame of bulk bytes. The header frame is 'W', the version,
the type, then the type's fields: integers little-endian, strings as a u8
length and the bytes (no NUL).

    PING, ACK     seq u32, incarnation u64, updates
    PING_REQ      seq u32, target id[32], updates
      updates     n u8 (<= 16), then n x (id[32], state u8, incarnation u64,
                  addr str: "tcp://..." of at most 128 printable bytes)
    DIGEST        flags u8 (FULL 1, REPLY 2), digest_hash[32], n u16
                  (<= 1024, items only with FULL), n x (origin[32],
                  generation u64, max_seq u64)
    ENTRIES       n u8 (1..64), n x entry
      entry       origin[32], generation u64, seq u64 (>= 1), op u8 (1 add,
                  2 remove), size u64, sha256[32], chunks_root[32], source
                  u8 (1 put, 2 peer, 3 upstream), filename str (1..255
                  printable, no '/' or '\\', not '.' or '..'), sig[64]
                  (Ed25519 over every field before it, see
                  entry_signed_bytes)
    FETCH         sha256[32], idx u32, flags u8 (UPSTREAM 1), filename str
                  (may be empty)
    CHUNK         sha256[32], idx u32, status u8 (OK 0, MISSING 1, LATER 2)
                  + bulk frame (always; empty unless OK)
    MAP           sha256[32]
    MAPDATA       sha256[32], status u8 + bulk frame (the chunk hashes)

decode() applies the checks wm_msg_decode applies (lengths against the
frame, caps, enums, printable strings, no trailing bytes) and raises
WireError with the same reasons; encode() refuses what decode() would.
Both work on a Msg. self_update() and holding() are the only places the
tests build what a member signs (they take a signing function), so a
format that signs member updates or drops filenames from holdings changes
this module alone. Stdlib only (hashlib).
"""

import hashlib

VERSION = 1
MAGIC = b"W"
ID_LEN = 32
ADDR_MAX = 128
NAME_MAX = 255
MAX_UPDATES = 16
MAX_DIGEST = 1024
MAX_ENTRIES = 64
FRAME_MAX = 1 << 20
# Not in wire.h but part of the protocol all the same (store.h): chunks are
# 1 MiB, the last one shorter, and a chunk map is their sha256s in order.
CHUNK_SIZE = 1 << 20

PING, ACK, PING_REQ, DIGEST, ENTRIES, FETCH, CHUNK, MAP, MAPDATA = range(1, 10)
TYPE_NAMES = {PING: "PING", ACK: "ACK", PING_REQ: "PING_REQ",
              DIGEST: "DIGEST", ENTRIES: "ENTRIES", FETCH: "FETCH",
              CHUNK: "CHUNK", MAP: "MAP", MAPDATA: "MAPDATA"}
# The types whose message carries a second (bulk) frame.
BULK_TYPES = (CHUNK, MAPDATA)

ALIVE, SUSPECT, DEAD = 0, 1, 2
DIGEST_FULL, DIGEST_REPLY = 1, 2
FETCH_UPSTREAM = 1
OK, MISSING, LATER = 0, 1, 2
OP_ADD, OP_REMOVE = 1, 2
SOURCE_PUT, SOURCE_PEER, SOURCE_UPSTREAM = 1, 2, 3

_ADDR_PREFIX = b"tcp://"
_DIGEST_FLAGS = DIGEST_FULL | DIGEST_REPLY
_FETCH_FLAGS = FETCH_UPSTREAM
_UPDATE_MIN = ID_LEN + 1 + 8 + 1 + len(_ADDR_PREFIX) + 1
_DIGEST_ITEM_LEN = ID_LEN + 8 + 8
_ENTRY_MIN = ID_LEN + 8 + 8 + 1 + 8 + 32 + 32 + 1 + 1 + 1 + 64
TRUNCATED = "truncated"
COUNT_PAST_END = "count larger than the frame"


class WireError(ValueError):
    """A frame that wm_msg_decode would refuse (or a Msg that
    wm_msg_encode would refuse); str() is the reason."""


class MemberUpdate:
    """What one member says about another (or itself)."""

    def __init__(self, id, state=ALIVE, incarnation=1, addr=""):
        self.id, self.state = bytes(id), state
        self.incarnation, self.addr = incarnation, addr

    def __repr__(self):
        return "MemberUpdate(%s.., state=%d, inc=%d, %s)" % (
            self.id.hex()[:16], self.state, self.incarnation, self.addr)


class Entry:
    """One line of an origin's holdings log; sig covers
    entry_signed_bytes(self)."""

    def __init__(self, origin, generation, seq, op=OP_ADD, size=0,
                 sha256=b"\0" * 32, chunks_root=b"\0" * 32,
                 source=SOURCE_PUT, filename="", sig=b"\0" * 64):
        self.origin, self.generation, self.seq = bytes(origin), generation, seq
        self.op, self.size = op, size
        self.sha256, self.chunks_root = bytes(sha256), bytes(chunks_root)
        self.source, self.filename, self.sig = source, filename, bytes(sig)

    def __repr__(self):
        return "Entry(%s.. gen %d seq %d op %d %s %s.. %d bytes)" % (
            self.origin.hex()[:16], self.generation, self.seq, self.op,
            self.filename, self.sha256.hex()[:16], self.size)


class DigestItem:
    def __init__(self, origin, generation, max_seq):
        self.origin, self.generation, self.max_seq = (bytes(origin),
                                                      generation, max_seq)


class Msg:
    """A decoded header frame; only the fields of its type mean anything
    (the same shape as struct wm_msg)."""

    def __init__(self, type, seq=0, incarnation=0, target=b"\0" * 32,
                 updates=(), flags=0, digest_hash=b"\0" * 32, digest=(),
                 entries=(), sha256=b"\0" * 32, idx=0, status=OK,
                 filename=""):
        self.type = type
        self.seq, self.incarnation, self.target = seq, incarnation, target
        self.updates = list(updates)
        self.flags, self.digest_hash = flags, digest_hash
        self.digest = list(digest)
        self.entries = list(entries)
        self.sha256, self.idx, self.status = sha256, idx, status
        self.filename = filename

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, "type %d" % self.type)

    def __repr__(self):
        t = self.type
        if t in (PING, ACK):
            return "%s(seq %d, inc %d, %r)" % (self.name, self.seq,
                                               self.incarnation, self.updates)
        if t in (FETCH, CHUNK, MAP, MAPDATA):
            return "%s(%s.., idx %d, flags %d, status %d, %r)" % (
                self.name, self.sha256.hex()[:16], self.idx, self.flags,
                self.status, self.filename)
        return "%s(...)" % self.name


# -- constructors -------------------------------------------------------------


def ping(seq, incarnation=1, updates=()):
    return Msg(PING, seq=seq, incarnation=incarnation, updates=updates)


def ack(seq, incarnation=1, updates=()):
    return Msg(ACK, seq=seq, incarnation=incarnation, updates=updates)


def fetch(sha256, idx, flags=0, filename=""):
    return Msg(FETCH, sha256=sha256, idx=idx, flags=flags, filename=filename)


def chunk(sha256, idx, status=OK):
    return Msg(CHUNK, sha256=sha256, idx=idx, status=status)


def map_request(sha256):
    return Msg(MAP, sha256=sha256)


def mapdata(sha256, status=OK):
    return Msg(MAPDATA, sha256=sha256, status=status)


def entries(items):
    return Msg(ENTRIES, entries=items)


def digest(flags, digest_hash, items=()):
    return Msg(DIGEST, flags=flags, digest_hash=digest_hash, digest=items)


# What a member signs. SIGN is a function: bytes -> 64-byte Ed25519
# signature by the member's key (evilpeer.py passes PyNaCl's). Tests build
# these two things only through here, so a format that signs more (member
# updates) or names less (holdings without filenames) changes this module
# alone.


def self_update(member_id, incarnation, addr, sign=None):
    """The membership update a member sends about itself: alive at ADDR.
    Version 1 does not sign updates (SIGN is unused)."""
    return MemberUpdate(member_id, ALIVE, incarnation, addr)


def holding(origin, generation, seq, filename, sha256_hex, size, root,
            sign, source=SOURCE_PEER):
    """ORIGIN's signed index entry 'I hold SHA256_HEX (FILENAME), SIZE
    bytes, whose chunk map hashes to ROOT', number SEQ of its log
    GENERATION."""
    e = Entry(origin, generation, seq, OP_ADD, size, bytes.fromhex(sha256_hex),
              root, source, filename)
    e.sig = sign(entry_signed_bytes(e))
    return e


# -- field checks (shared by encode and decode, as in wire.c) ---------------


def _printable(b):
    return all(0x20 <= c <= 0x7E for c in b)


def _addr_ok(b):
    return (len(_ADDR_PREFIX) < len(b) <= ADDR_MAX
            and b.startswith(_ADDR_PREFIX) and _printable(b))


def _filename_ok(b):
    if not 0 < len(b) <= NAME_MAX or not _printable(b):
        return False
    if b"/" in b or b"\\" in b:
        return False
    return b not in (b".", b"..")


# -- decoding -----------------------------------------------------------------


class _Reader:
    def __init__(self, data):
        self.data, self.pos = bytes(data), 0

    @property
    def left(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n > self.left:
            raise WireError(TRUNCATED)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def le(self, n):
        return int.from_bytes(self.take(n), "little")

    def string(self, maxlen, too_long="string too long"):
        n = self.le(1)
        if n > maxlen:
            raise WireError(too_long)
        return self.take(n)


def _updates(r):
    n = r.le(1)
    if n > MAX_UPDATES:
        raise WireError("too many updates")
    if n * _UPDATE_MIN > r.left:
        raise WireError(COUNT_PAST_END)
    out = []
    for _ in range(n):
        uid, state, inc = r.take(ID_LEN), r.le(1), r.le(8)
        if state > DEAD:
            raise WireError("bad member state")
        addr = r.string(ADDR_MAX, "bad address")
        if not _addr_ok(addr):
            raise WireError("bad address")
        out.append(MemberUpdate(uid, state, inc, addr.decode("ascii")))
    return out


def _entry(r):
    origin, gen, seq, op = r.take(ID_LEN), r.le(8), r.le(8), r.le(1)
    if seq == 0:
        raise WireError("bad seq")
    if op not in (OP_ADD, OP_REMOVE):
        raise WireError("bad op")
    size, sha, root, source = r.le(8), r.take(32), r.take(32), r.le(1)
    if not SOURCE_PUT <= source <= SOURCE_UPSTREAM:
        raise WireError("bad source")
    name = r.string(NAME_MAX)
    if not _filename_ok(name):
        raise WireError("bad filename")
    sig = r.take(64)
    return Entry(origin, gen, seq, op, size, sha, root, source,
                 name.decode("ascii"), sig)


def decode(frame):
    """The Msg in header FRAME (bytes); raises WireError with the reason
    wm_msg_decode gives."""
    frame = bytes(frame)
    if not frame:
        raise WireError("empty frame")
    if len(frame) > FRAME_MAX:
        raise WireError("frame too large")
    r = _Reader(frame)
    if r.take(1) != MAGIC:
        raise WireError("bad magic")
    if r.le(1) != VERSION:
        raise WireError("bad version")
    m = Msg(r.le(1))
    t = m.type
    if t in (PING, ACK):
        m.seq, m.incarnation = r.le(4), r.le(8)
        m.updates = _updates(r)
    elif t == PING_REQ:
        m.seq, m.target = r.le(4), r.take(ID_LEN)
        m.updates = _updates(r)
    elif t == DIGEST:
        m.flags = r.le(1)
        if m.flags & ~_DIGEST_FLAGS:
            raise WireError("bad flags")
        m.digest_hash, n = r.take(32), r.le(2)
        if n > 0 and not m.flags & DIGEST_FULL:
            raise WireError("digest items without FULL flag")
        if n > MAX_DIGEST:
            raise WireError("too many digest items")
        if n * _DIGEST_ITEM_LEN > r.left:
            raise WireError(COUNT_PAST_END)
        m.digest = [DigestItem(r.take(ID_LEN), r.le(8), r.le(8))
                    for _ in range(n)]
    elif t == ENTRIES:
        n = r.le(1)
        if n == 0:
            raise WireError("no entries")
        if n > MAX_ENTRIES:
            raise WireError("too many entries")
        if n * _ENTRY_MIN > r.left:
            raise WireError(COUNT_PAST_END)
        m.entries = [_entry(r) for _ in range(n)]
    elif t == FETCH:
        m.sha256, m.idx, m.flags = r.take(32), r.le(4), r.le(1)
        if m.flags & ~_FETCH_FLAGS:
            raise WireError("bad flags")
        name = r.string(NAME_MAX)
        if name and not _filename_ok(name):
            raise WireError("bad filename")
        m.filename = name.decode("ascii")
    elif t == CHUNK:
        m.sha256, m.idx, m.status = r.take(32), r.le(4), r.le(1)
        if m.status > LATER:
            raise WireError("bad status")
    elif t == MAP:
        m.sha256 = r.take(32)
    elif t == MAPDATA:
        m.sha256, m.status = r.take(32), r.le(1)
        if m.status > LATER:
            raise WireError("bad status")
    else:
        raise WireError("unknown type")
    if r.left:
        raise WireError("trailing bytes")
    return m


# -- encoding -----------------------------------------------------------------


def _le(v, n):
    return int(v).to_bytes(n, "little")


def _str(s):
    b = s.encode("ascii") if isinstance(s, str) else bytes(s)
    return _le(len(b), 1) + b


def _fixed(b, n, what):
    b = bytes(b)
    if len(b) != n:
        raise WireError("%s must be %d bytes, not %d" % (what, n, len(b)))
    return b


def _encode_updates(updates):
    if len(updates) > MAX_UPDATES:
        raise WireError("too many updates")
    out = _le(len(updates), 1)
    for u in updates:
        addr = u.addr.encode("ascii")
        if u.state > DEAD or not _addr_ok(addr):
            raise WireError("bad member update %r" % (u,))
        out += (_fixed(u.id, ID_LEN, "member id") + _le(u.state, 1)
                + _le(u.incarnation, 8) + _str(addr))
    return out


def entry_signed_bytes(e):
    """The bytes an entry's signature covers: every field but sig, in wire
    order (wm_entry_signed_bytes)."""
    name = e.filename.encode("ascii")[:NAME_MAX]
    return (_fixed(e.origin, ID_LEN, "origin") + _le(e.generation, 8)
            + _le(e.seq, 8) + _le(e.op, 1) + _le(e.size, 8)
            + _fixed(e.sha256, 32, "sha256")
            + _fixed(e.chunks_root, 32, "chunks_root") + _le(e.source, 1)
            + _le(len(name), 1) + name)


def _entry_valid(e):
    name = e.filename.encode("ascii")
    return (e.seq != 0 and e.op in (OP_ADD, OP_REMOVE)
            and SOURCE_PUT <= e.source <= SOURCE_UPSTREAM
            and _filename_ok(name) and len(e.sig) == 64)


def encode(m):
    """The header frame of Msg M (bytes); raises WireError for what
    wm_msg_encode refuses."""
    head = MAGIC + bytes([VERSION, m.type])
    t = m.type
    if t in (PING, ACK):
        return (head + _le(m.seq, 4) + _le(m.incarnation, 8)
                + _encode_updates(m.updates))
    if t == PING_REQ:
        return (head + _le(m.seq, 4) + _fixed(m.target, ID_LEN, "target")
                + _encode_updates(m.updates))
    if t == DIGEST:
        if m.flags & ~_DIGEST_FLAGS or len(m.digest) > MAX_DIGEST:
            raise WireError("bad digest")
        if m.digest and not m.flags & DIGEST_FULL:
            raise WireError("digest items without FULL flag")
        out = (head + _le(m.flags, 1) + _fixed(m.digest_hash, 32, "hash")
               + _le(len(m.digest), 2))
        for d in m.digest:
            out += (_fixed(d.origin, ID_LEN, "origin") + _le(d.generation, 8)
                    + _le(d.max_seq, 8))
        return out
    if t == ENTRIES:
        if not 0 < len(m.entries) <= MAX_ENTRIES:
            raise WireError("bad entry count %d" % len(m.entries))
        out = head + _le(len(m.entries), 1)
        for e in m.entries:
            if not _entry_valid(e):
                raise WireError("bad entry %r" % (e,))
            out += entry_signed_bytes(e) + e.sig
        return out
    if t == FETCH:
        name = m.filename.encode("ascii")
        if m.flags & ~_FETCH_FLAGS or (name and not _filename_ok(name)):
            raise WireError("bad fetch")
        return (head + _fixed(m.sha256, 32, "sha256") + _le(m.idx, 4)
                + _le(m.flags, 1) + _str(name))
    if t == CHUNK:
        if m.status > LATER:
            raise WireError("bad status")
        return (head + _fixed(m.sha256, 32, "sha256") + _le(m.idx, 4)
                + _le(m.status, 1))
    if t == MAP:
        return head + _fixed(m.sha256, 32, "sha256")
    if t == MAPDATA:
        if m.status > LATER:
            raise WireError("bad status")
        return head + _fixed(m.sha256, 32, "sha256") + _le(m.status, 1)
    raise WireError("unknown type")


def frames(m, bulk=b""):
    """The frames of message M as sent: the header, and the bulk frame for
    CHUNK and MAPDATA (empty unless given)."""
    out = [encode(m)]
    if m.type in BULK_TYPES:
        out.append(bytes(bulk))
    return out


def decode_frames(parts):
    """(Msg, bulk or None) of a received message (header [, bulk]); raises
    WireError for a wrong frame count, as the node does."""
    if not parts:
        raise WireError("no frames")
    m = decode(parts[0])
    want = 2 if m.type in BULK_TYPES else 1
    if len(parts) != want:
        raise WireError("wrong frame count")
    return m, (bytes(parts[1]) if want == 2 else None)


# -- hashes the protocol relies on ------------------------------------------


def digest_hash(items):
    """sha256 over the digest items in the order given
    (wm_digest_hash)."""
    h = hashlib.sha256()
    for d in items:
        h.update(_fixed(d.origin, ID_LEN, "origin") + _le(d.generation, 8)
                 + _le(d.max_seq, 8))
    return h.digest()


def chunk_map(data):
    """The chunk map of DATA: the sha256 of each CHUNK_SIZE piece, in
    order (what MAPDATA carries)."""
    return b"".join(hashlib.sha256(data[i:i + CHUNK_SIZE]).digest()
                    for i in range(0, max(len(data), 1), CHUNK_SIZE))


def chunks_root(data):
    """The chunks_root an entry for DATA signs: sha256 of its chunk
    map."""
    return hashlib.sha256(chunk_map(data)).digest()


# -- raw frames for the malformed-message tests -----------------------------


def raw_ping(seq, incarnation=1, nupdates=0, extra=b""):
    """A PING header frame with no updates whose update count byte says
    NUPDATES, followed by EXTRA: well formed only for nupdates=0 and no
    extra (test_cluster_faults sends the others to see them refused)."""
    frame = bytearray(encode(ping(seq, incarnation)))
    frame[-1] = nupdates  # v1: the count is the last byte of an empty PING
    return bytes(frame) + extra


def parse_ack(frame):
    """(seq, incarnation) of an ACK header frame, or None for anything
    else (including frames that do not decode)."""
    try:
        m = decode(frame)
    except WireError:
        return None
    return (m.seq, m.incarnation) if m.type == ACK else None


if __name__ == "__main__":
    import sys
    sys.exit("wire.py is a module for the tests")
