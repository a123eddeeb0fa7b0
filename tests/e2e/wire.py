"""The cluster's wire messages in Python: every byte the end-to-end tests
put on (or read off) a node's cluster socket is encoded and decoded here,
and nowhere else.

This module MUST follow common/wire.h and common/wire.c exactly (today:
version 2). When the wire format changes, change this module with it; the
tests in test_wire_peer.py fail loudly when the two drift apart (the fuzz
corpus of real frames must round-trip and its signatures verify here, and a
real node must answer a PING with an ACK that decodes here).

Layout (wire.h): a message is one header frame and, for CHUNK and MAPDATA
only, a second frame of bulk bytes. The header frame is 'W', the version,
the type, then the type's fields: integers little-endian, strings as a u8
length and the bytes (no NUL). Counters (incarnation, generation, seq,
max_seq) are below 2^62.

    PING, ACK     seq u32, updates
    PING_REQ      seq u32, target id[32], updates
    SYNC          seq u32, flags u8 (ASK 1), updates: part of a view
      updates     n u8 (<= 16), then n x update
      update      id[32], state u8 (ALIVE 0, SUSPECT 1, DEAD 2),
                  incarnation u64; ALIVE only: addr str ("tcp://..." of at
                  most 128 printable bytes), name str (at most 64
                  printable, may be empty), sig[64] (the member's own
                  Ed25519 signature, see alive_signed_bytes)
    DIGEST        flags u8 (FULL 1, REPLY 2), digest_hash[32], n u16
                  (<= 1024, items only with FULL), n x (origin[32],
                  generation u64, max_seq u64)
    ENTRIES       n u8 (1..64), n x entry
      entry       origin[32], generation u64, seq u64 (>= 1), op u8 (1 add,
                  2 remove), sha256[32], size u64, chunks_root[32],
                  has_claim u8 (0/1; 1 with op add only), [claim],
                  sig[64] (the origin's, see entry_signed_bytes)
      claim       publisher[32], filename str (1..255 printable, no '/' or
                  '\\', not '.' or '..'), requires_python str (at most 128
                  printable, may be empty), sig[64] (the publisher's, see
                  claim_signed_bytes)
    FETCH         sha256[32], idx u32, flags u8 (UPSTREAM 1), filename str
                  (may be empty)
    CHUNK         sha256[32], idx u32, status u8 (OK 0, MISSING 1, LATER 2,
                  BUSY 3) + bulk frame (always; empty unless OK)
    MAP           sha256[32]
    MAPDATA       sha256[32], status u8 + bulk frame (the chunk hashes)
    HAVE          sha256[32], flags u8 (ASK 1), nchunks u32 (1..65536),
                  bitmap of (nchunks + 7) / 8 bytes: bit i (byte i // 8,
                  bit i % 8) is chunk i, the bits past nchunks zero

What is signed (wm_*_signed_bytes), each with its domain string and NUL:

    alive   "wheelmesh-alive-v2\\0", id[32], incarnation u64, addr str,
            name str
    claim   "wheelmesh-claim-v2\\0", publisher[32], sha256[32], size u64,
            chunks_root[32], filename str, requires_python str (the sha256,
            size and root of the entry it travels with)
    entry   "wheelmesh-holding-v2\\0", the entry as sent without its own
            sig (the claim with its sig included)

decode() applies the checks wm_msg_decode applies (lengths against the
frame, caps, enums, counters, printable strings, no trailing bytes) and
raises WireError with the same reasons; encode() refuses what decode()
would. Neither checks a signature (the node does, after decoding). Both
work on a Msg. self_update() and holding() are the only places the tests
build what a member signs (they take a signing function), so a change of
what is signed changes this module alone. Stdlib only (hashlib).
"""

import hashlib

VERSION = 2
MAGIC = b"W"
ID_LEN = 32
SIG_LEN = 64
ADDR_MAX = 128
NAME_MAX = 255
NODE_MAX = 64
PYVER_MAX = 128
MAX_UPDATES = 16
MAX_DIGEST = 1024
MAX_ENTRIES = 64
FRAME_MAX = 1 << 20
COUNTER_MAX = 1 << 62
# Not in wire.h but part of the protocol all the same (store.h): chunks are
# 1 MiB, the last one shorter, and a chunk map is their sha256s in order.
CHUNK_SIZE = 1 << 20

(PING, ACK, PING_REQ, DIGEST, ENTRIES, FETCH, CHUNK, MAP, MAPDATA,
 SYNC, HAVE) = range(1, 12)
TYPE_NAMES = {PING: "PING", ACK: "ACK", PING_REQ: "PING_REQ",
              DIGEST: "DIGEST", ENTRIES: "ENTRIES", FETCH: "FETCH",
              CHUNK: "CHUNK", MAP: "MAP", MAPDATA: "MAPDATA", SYNC: "SYNC",
              HAVE: "HAVE"}
SYNC_ASK = 1
HAVE_ASK = 1
MAX_CHUNKS = 65536
# The types whose message carries a second (bulk) frame.
BULK_TYPES = (CHUNK, MAPDATA)

ALIVE, SUSPECT, DEAD = 0, 1, 2
DIGEST_FULL, DIGEST_REPLY = 1, 2
FETCH_UPSTREAM = 1
OK, MISSING, LATER, BUSY = 0, 1, 2, 3
OP_ADD, OP_REMOVE = 1, 2

DOMAIN_ENTRY = b"wheelmesh-holding-v2\0"
DOMAIN_CLAIM = b"wheelmesh-claim-v2\0"
DOMAIN_ALIVE = b"wheelmesh-alive-v2\0"

_ADDR_PREFIX = b"tcp://"
_DIGEST_FLAGS = DIGEST_FULL | DIGEST_REPLY
_FETCH_FLAGS = FETCH_UPSTREAM
# The smallest encodings of the repeated items (wire.c's *_MIN).
_UPDATE_MIN = ID_LEN + 1 + 8
_DIGEST_ITEM_LEN = ID_LEN + 8 + 8
_ENTRY_MIN = ID_LEN + 8 + 8 + 1 + 32 + 8 + 32 + 1 + SIG_LEN
TRUNCATED = "truncated"
COUNT_PAST_END = "count larger than the frame"
_NO_SIG = b"\0" * SIG_LEN


class WireError(ValueError):
    """A frame that wm_msg_decode would refuse (or a Msg that
    wm_msg_encode would refuse); str() is the reason."""


class MemberUpdate:
    """What one member says about another (or itself). ALIVE carries the
    member's own signed statement (incarnation, addr, name, sig: see
    alive_signed_bytes); SUSPECT and DEAD are anyone's report about an
    incarnation, and their addr, name and sig are not sent."""

    def __init__(self, id, state=ALIVE, incarnation=1, addr="", name="",
                 sig=_NO_SIG):
        self.id, self.state = bytes(id), state
        self.incarnation, self.addr, self.name = incarnation, addr, name
        self.sig = bytes(sig)

    def __repr__(self):
        if self.state != ALIVE:
            return "MemberUpdate(%s.., state=%d, inc=%d)" % (
                self.id.hex()[:16], self.state, self.incarnation)
        return "MemberUpdate(%s.., alive, inc=%d, %s, %r)" % (
            self.id.hex()[:16], self.incarnation, self.addr, self.name)


class Claim:
    """A publisher's statement 'FILENAME is the file with the sha256, size
    and chunks_root of the entry I travel with'; sig covers
    claim_signed_bytes(entry)."""

    def __init__(self, publisher, filename, requires_python="", sig=_NO_SIG):
        self.publisher, self.filename = bytes(publisher), filename
        self.requires_python, self.sig = requires_python, bytes(sig)

    def __repr__(self):
        return "Claim(%s by %s..)" % (self.filename, self.publisher.hex()[:16])


class Entry:
    """One line of an origin's holdings log: 'ORIGIN holds (op add) or no
    longer holds (op remove) the bytes with SHA256'. It names nothing; a
    Claim (or None) may travel with an add. sig covers
    entry_signed_bytes(self)."""

    def __init__(self, origin, generation, seq, op=OP_ADD, sha256=b"\0" * 32,
                 size=0, chunks_root=b"\0" * 32, claim=None, sig=_NO_SIG):
        self.origin, self.generation, self.seq = bytes(origin), generation, seq
        self.op, self.sha256, self.size = op, bytes(sha256), size
        self.chunks_root, self.claim = bytes(chunks_root), claim
        self.sig = bytes(sig)

    def __repr__(self):
        return "Entry(%s.. gen %d seq %d op %d %s.. %d bytes%s)" % (
            self.origin.hex()[:16], self.generation, self.seq, self.op,
            self.sha256.hex()[:16], self.size,
            ", %r" % (self.claim,) if self.claim is not None else "")


class DigestItem:
    def __init__(self, origin, generation, max_seq):
        self.origin, self.generation, self.max_seq = (bytes(origin),
                                                      generation, max_seq)


class Msg:
    """A decoded header frame; only the fields of its type mean anything
    (the same shape as struct wm_msg)."""

    def __init__(self, type, seq=0, target=b"\0" * 32, updates=(), flags=0,
                 digest_hash=b"\0" * 32, digest=(), entries=(),
                 sha256=b"\0" * 32, idx=0, status=OK, filename="",
                 nchunks=0, chunks=()):
        self.type = type
        self.seq, self.target = seq, target
        self.updates = list(updates)
        self.flags, self.digest_hash = flags, digest_hash
        self.digest = list(digest)
        self.entries = list(entries)
        self.sha256, self.idx, self.status = sha256, idx, status
        self.filename = filename
        # HAVE: the chunk count and the set of chunk indexes held
        self.nchunks, self.chunks = nchunks, set(chunks)

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, "type %d" % self.type)

    def __repr__(self):
        t = self.type
        if t in (PING, ACK, PING_REQ, SYNC):
            return "%s(seq %d, %r)" % (self.name, self.seq, self.updates)
        if t in (FETCH, CHUNK, MAP, MAPDATA):
            return "%s(%s.., idx %d, flags %d, status %d, %r)" % (
                self.name, self.sha256.hex()[:16], self.idx, self.flags,
                self.status, self.filename)
        if t == ENTRIES:
            return "%s(%r)" % (self.name, self.entries)
        return "%s(...)" % self.name


# -- constructors -------------------------------------------------------------


def ping(seq, updates=()):
    return Msg(PING, seq=seq, updates=updates)


def ack(seq, updates=()):
    return Msg(ACK, seq=seq, updates=updates)


def ping_req(seq, target, updates=()):
    return Msg(PING_REQ, seq=seq, target=bytes(target), updates=updates)


def fetch(sha256, idx, flags=0, filename=""):
    return Msg(FETCH, sha256=sha256, idx=idx, flags=flags, filename=filename)


def chunk(sha256, idx, status=OK):
    return Msg(CHUNK, sha256=sha256, idx=idx, status=status)


def map_request(sha256):
    return Msg(MAP, sha256=sha256)


def mapdata(sha256, status=OK):
    return Msg(MAPDATA, sha256=sha256, status=status)


def have(sha256, nchunks, chunks, flags=0):
    """HAVE: this member fetches SHA256 (of NCHUNKS chunks) too and holds
    the chunk indexes CHUNKS."""
    return Msg(HAVE, sha256=sha256, flags=flags, nchunks=nchunks,
               chunks=chunks)


def entries(items):
    return Msg(ENTRIES, entries=items)


def digest(flags, digest_hash, items=()):
    return Msg(DIGEST, flags=flags, digest_hash=digest_hash, digest=items)


# What a member signs. SIGN is a function: bytes -> 64-byte Ed25519
# signature by the signer's key (evilpeer.py passes PyNaCl's). Tests build
# these things only through here, so a change of what is signed changes
# this module alone.


def self_update(member_id, incarnation, addr, sign, name=""):
    """The membership update a member sends about itself: alive at ADDR
    under NAME, its statement signed with SIGN (the member's own key; the
    node takes no other signature on it)."""
    u = MemberUpdate(member_id, ALIVE, incarnation, addr, name)
    u.sig = sign(alive_signed_bytes(u))
    return u


def holding(origin, generation, seq, sha256_hex, size, root, sign,
            filename=None, requires_python="", publisher=None,
            publisher_sign=None):
    """ORIGIN's signed ADD entry 'I hold SHA256_HEX, SIZE bytes, whose
    chunk map hashes to ROOT', number SEQ of its log GENERATION, signed
    with SIGN (ORIGIN's key). With FILENAME it carries a claim naming the
    bytes FILENAME (and REQUIRES_PYTHON), signed by PUBLISHER with
    PUBLISHER_SIGN (default: ORIGIN with SIGN): a node lists the file on
    it only when the signer is one of its publishers."""
    e = Entry(origin, generation, seq, OP_ADD, bytes.fromhex(sha256_hex),
              size, root)
    if filename is not None:
        if publisher is None:
            publisher, publisher_sign = origin, sign
        e.claim = Claim(publisher, filename, requires_python)
        e.claim.sig = publisher_sign(claim_signed_bytes(e))
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


def _name_ok(b):
    return len(b) <= NODE_MAX and _printable(b)


def _pyver_ok(b):
    return len(b) <= PYVER_MAX and _printable(b)


def _counter_ok(v):
    return 0 <= v < COUNTER_MAX


def _ascii(s):
    """The bytes of string field S (str or bytes); a str that is not ASCII
    could never be sent, so it is refused as a bad field."""
    if isinstance(s, str):
        try:
            return s.encode("ascii")
        except UnicodeEncodeError:
            return b"\0"  # fails every check: printable only
    return bytes(s)


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

    def string(self, maxlen):
        """rd_str: a u8 length and the bytes; 'string too long' past
        MAXLEN."""
        n = self.le(1)
        if n > maxlen:
            raise WireError("string too long")
        return self.take(n)

    def text(self, maxlen, ok, bad):
        """rd_text: a string checked with OK; BAD for anything but a
        truncation."""
        try:
            b = self.string(maxlen)
        except WireError as e:
            if str(e) == TRUNCATED:
                raise
            raise WireError(bad) from None
        if not ok(b):
            raise WireError(bad)
        return b.decode("ascii")


def _updates(r):
    n = r.le(1)
    if n > MAX_UPDATES:
        raise WireError("too many updates")
    if n * _UPDATE_MIN > r.left:
        raise WireError(COUNT_PAST_END)
    out = []
    for _ in range(n):
        u = MemberUpdate(r.take(ID_LEN), r.le(1), r.le(8))
        if u.state > DEAD:
            raise WireError("bad member state")
        if not _counter_ok(u.incarnation):
            raise WireError("incarnation out of range")
        if u.state == ALIVE:
            u.addr = r.text(ADDR_MAX, _addr_ok, "bad address")
            u.name = r.text(NODE_MAX, _name_ok, "bad node name")
            u.sig = r.take(SIG_LEN)
        out.append(u)
    return out


def _claim(r):
    c = Claim(r.take(ID_LEN), "")
    c.filename = r.text(NAME_MAX, _filename_ok, "bad filename")
    c.requires_python = r.text(PYVER_MAX, _pyver_ok, "bad requires-python")
    c.sig = r.take(SIG_LEN)
    return c


def _entry(r):
    e = Entry(r.take(ID_LEN), r.le(8), r.le(8), r.le(1))
    if e.seq == 0 or not _counter_ok(e.seq):
        raise WireError("bad seq")
    if not _counter_ok(e.generation):
        raise WireError("bad generation")
    if e.op not in (OP_ADD, OP_REMOVE):
        raise WireError("bad op")
    e.sha256, e.size, e.chunks_root = r.take(32), r.le(8), r.take(32)
    has_claim = r.le(1)
    if has_claim > 1 or (has_claim and e.op != OP_ADD):
        raise WireError("bad claim flag")
    if has_claim:
        e.claim = _claim(r)
    e.sig = r.take(SIG_LEN)
    return e


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
        m.seq = r.le(4)
        m.updates = _updates(r)
    elif t == PING_REQ:
        m.seq, m.target = r.le(4), r.take(ID_LEN)
        m.updates = _updates(r)
    elif t == SYNC:
        m.seq, m.flags = r.le(4), r.le(1)
        if m.flags & ~SYNC_ASK:
            raise WireError("bad flags")
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
        for _ in range(n):
            d = DigestItem(r.take(ID_LEN), r.le(8), r.le(8))
            if not _counter_ok(d.generation) or not _counter_ok(d.max_seq):
                raise WireError("digest counter out of range")
            m.digest.append(d)
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
        if m.status > BUSY:
            raise WireError("bad status")
    elif t == MAP:
        m.sha256 = r.take(32)
    elif t == MAPDATA:
        m.sha256, m.status = r.take(32), r.le(1)
        if m.status > BUSY:
            raise WireError("bad status")
    elif t == HAVE:
        m.sha256, m.flags, m.nchunks = r.take(32), r.le(1), r.le(4)
        if m.flags & ~HAVE_ASK:
            raise WireError("bad flags")
        if not 0 < m.nchunks <= MAX_CHUNKS:
            raise WireError("bad chunk count")
        bits = r.take((m.nchunks + 7) // 8)
        m.chunks = {i for i in range(len(bits) * 8)
                    if bits[i // 8] >> (i % 8) & 1}
        if any(i >= m.nchunks for i in m.chunks):
            raise WireError("bits past the last chunk")
    else:
        raise WireError("unknown type")
    if r.left:
        raise WireError("trailing bytes")
    return m


# -- encoding -----------------------------------------------------------------


def _le(v, n):
    return int(v).to_bytes(n, "little")


def _str(s, cap=255):
    """put_strn: a u8 length and the bytes, cut at CAP as the C arrays cut
    them (only ever an invalid field, which encode() refuses first)."""
    b = _ascii(s)[:cap]
    return _le(len(b), 1) + b


def _fixed(b, n, what):
    b = bytes(b)
    if len(b) != n:
        raise WireError("%s must be %d bytes, not %d" % (what, n, len(b)))
    return b


def _update_valid(u):
    if u.state not in (ALIVE, SUSPECT, DEAD) or not _counter_ok(
            u.incarnation):
        return False
    return u.state != ALIVE or (_addr_ok(_ascii(u.addr))
                                and _name_ok(_ascii(u.name)))


def _encode_updates(updates):
    if len(updates) > MAX_UPDATES:
        raise WireError("too many updates")
    out = _le(len(updates), 1)
    for u in updates:
        if not _update_valid(u):
            raise WireError("bad member update %r" % (u,))
        out += (_fixed(u.id, ID_LEN, "member id") + _le(u.state, 1)
                + _le(u.incarnation, 8))
        if u.state == ALIVE:
            out += (_str(u.addr) + _str(u.name)
                    + _fixed(u.sig, SIG_LEN, "alive sig"))
    return out


def _entry_body(e):
    """entry_body: the entry as sent, without its own signature."""
    c = e.claim
    out = (_fixed(e.origin, ID_LEN, "origin") + _le(e.generation, 8)
           + _le(e.seq, 8) + _le(e.op, 1) + _fixed(e.sha256, 32, "sha256")
           + _le(e.size, 8) + _fixed(e.chunks_root, 32, "chunks_root")
           + _le(1 if c is not None else 0, 1))
    if c is not None:
        out += (_fixed(c.publisher, ID_LEN, "publisher")
                + _str(c.filename, NAME_MAX)
                + _str(c.requires_python, PYVER_MAX)
                + _fixed(c.sig, SIG_LEN, "claim sig"))
    return out


def entry_signed_bytes(e):
    """The bytes an entry's signature covers (wm_entry_signed_bytes): the
    domain, then every field as sent but the entry's own sig (the claim,
    its sig included)."""
    return DOMAIN_ENTRY + _entry_body(e)


def claim_signed_bytes(e):
    """The bytes the signature of entry E's claim covers
    (wm_claim_signed_bytes): the domain, the publisher, E's sha256, size
    and chunks_root, the filename and requires_python."""
    c = e.claim
    return (DOMAIN_CLAIM + _fixed(c.publisher, ID_LEN, "publisher")
            + _fixed(e.sha256, 32, "sha256") + _le(e.size, 8)
            + _fixed(e.chunks_root, 32, "chunks_root")
            + _str(c.filename, NAME_MAX) + _str(c.requires_python, PYVER_MAX))


def alive_signed_bytes(u):
    """The bytes the signature of ALIVE update U covers
    (wm_alive_signed_bytes): the domain, the member's id, incarnation,
    address and name."""
    return (DOMAIN_ALIVE + _fixed(u.id, ID_LEN, "member id")
            + _le(u.incarnation, 8) + _str(u.addr, ADDR_MAX)
            + _str(u.name, NODE_MAX))


def _entry_valid(e):
    if (e.seq == 0 or not _counter_ok(e.seq)
            or not _counter_ok(e.generation)
            or e.op not in (OP_ADD, OP_REMOVE)):
        return False
    c = e.claim
    return c is None or (e.op == OP_ADD and _filename_ok(_ascii(c.filename))
                         and _pyver_ok(_ascii(c.requires_python)))


def encode(m):
    """The header frame of Msg M (bytes); raises WireError for what
    wm_msg_encode refuses."""
    head = MAGIC + bytes([VERSION, m.type])
    t = m.type
    if t in (PING, ACK):
        return head + _le(m.seq, 4) + _encode_updates(m.updates)
    if t == PING_REQ:
        return (head + _le(m.seq, 4) + _fixed(m.target, ID_LEN, "target")
                + _encode_updates(m.updates))
    if t == SYNC:
        if m.flags & ~SYNC_ASK:
            raise WireError("bad flags")
        return (head + _le(m.seq, 4) + _le(m.flags, 1)
                + _encode_updates(m.updates))
    if t == DIGEST:
        if m.flags & ~_DIGEST_FLAGS or len(m.digest) > MAX_DIGEST:
            raise WireError("bad digest")
        if m.digest and not m.flags & DIGEST_FULL:
            raise WireError("digest items without FULL flag")
        out = (head + _le(m.flags, 1) + _fixed(m.digest_hash, 32, "hash")
               + _le(len(m.digest), 2))
        for d in m.digest:
            if not _counter_ok(d.generation) or not _counter_ok(d.max_seq):
                raise WireError("digest counter out of range")
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
            out += _entry_body(e) + _fixed(e.sig, SIG_LEN, "entry sig")
        return out
    if t == FETCH:
        name = _ascii(m.filename)
        if m.flags & ~_FETCH_FLAGS or (name and not _filename_ok(name)):
            raise WireError("bad fetch")
        return (head + _fixed(m.sha256, 32, "sha256") + _le(m.idx, 4)
                + _le(m.flags, 1) + _str(name))
    if t == CHUNK:
        if not 0 <= m.status <= BUSY:
            raise WireError("bad status")
        return (head + _fixed(m.sha256, 32, "sha256") + _le(m.idx, 4)
                + _le(m.status, 1))
    if t == MAP:
        return head + _fixed(m.sha256, 32, "sha256")
    if t == MAPDATA:
        if not 0 <= m.status <= BUSY:
            raise WireError("bad status")
        return head + _fixed(m.sha256, 32, "sha256") + _le(m.status, 1)
    if t == HAVE:
        if m.flags & ~HAVE_ASK or not 0 < m.nchunks <= MAX_CHUNKS:
            raise WireError("bad have")
        bits = bytearray((m.nchunks + 7) // 8)
        for i in m.chunks:
            if not 0 <= i < m.nchunks:
                raise WireError("bits past the last chunk")
            bits[i // 8] |= 1 << (i % 8)
        return (head + _fixed(m.sha256, 32, "sha256") + _le(m.flags, 1)
                + _le(m.nchunks, 4) + bytes(bits))
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


# -- signatures ---------------------------------------------------------------


def verify(pub, data, sig):
    """True when SIG is PUB's Ed25519 signature of DATA (needs PyNaCl, as
    the evil peer does)."""
    import nacl.exceptions
    import nacl.signing
    try:
        nacl.signing.VerifyKey(bytes(pub)).verify(bytes(data), bytes(sig))
        return True
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False


def entry_valid(e):
    """wm_entry_valid: E's sig is its origin's."""
    return verify(e.origin, entry_signed_bytes(e), e.sig)


def claim_valid(e):
    """wm_claim_valid: E's claim's sig is its publisher's."""
    return verify(e.claim.publisher, claim_signed_bytes(e), e.claim.sig)


def alive_valid(u):
    """wm_alive_valid: ALIVE update U's sig is its member's."""
    return verify(u.id, alive_signed_bytes(u), u.sig)


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


def raw_ping(seq, nupdates=0, extra=b""):
    """A PING header frame with no updates whose update count byte says
    NUPDATES, followed by EXTRA: well formed only for nupdates=0 and no
    extra (test_cluster_faults sends the others to see them refused)."""
    frame = bytearray(encode(ping(seq)))
    frame[-1] = nupdates  # the count is the last byte of an empty PING
    return bytes(frame) + extra


def parse_ack(frame):
    """(seq, incarnation) of an ACK header frame, or None for anything
    else (including frames that do not decode). The incarnation is that
    of the first update, the sender's statement about itself (None when
    the ACK carries no update)."""
    try:
        m = decode(frame)
    except WireError:
        return None
    if m.type != ACK:
        return None
    return m.seq, (m.updates[0].incarnation if m.updates else None)


if __name__ == "__main__":
    import sys
    sys.exit("wire.py is a module for the tests")
