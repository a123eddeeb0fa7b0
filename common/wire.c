/*
 * The cluster's header frames, encoded and decoded by hand: a small reader
 * that refuses to step past the end of the frame, one decoder per message
 * shape, and field checks that encoding and decoding share, so a node never
 * sends what a peer (or itself) would reject. Decoding then re-encoding an
 * accepted frame gives back the same bytes: every field is kept as sent.
 */
#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "hash.h"
#include "identity.h"

#define WIRE_MAGIC      'W'
#define ADDR_PREFIX     "tcp://"
#define ADDR_PREFIX_LEN (sizeof(ADDR_PREFIX) - 1)
#define DIGEST_FLAGS    (WM_DIGEST_FULL | WM_DIGEST_REPLY)
#define FETCH_FLAGS     WM_FETCH_UPSTREAM
#define SYNC_FLAGS      WM_SYNC_ASK
#define HAVE_FLAGS      WM_HAVE_ASK

/* The smallest encodings of the repeated items, used to check a count
 * against the bytes left before anything is read for it. */
#define UPDATE_MIN      (WM_ID_LEN + 1 + 8)
#define DIGEST_ITEM_LEN (WM_ID_LEN + 8 + 8)
#define ENTRY_MIN       (WM_ID_LEN + 8 + 8 + 1 + 32 + 8 + 32 + 1 + WM_SIG_BYTES)

/* Domain strings: a signature made for one kind of statement is never
 * valid for another. */
static const char DOMAIN_ENTRY[] = "wheelmesh-holding-v2";
static const char DOMAIN_CLAIM[] = "wheelmesh-claim-v2";
static const char DOMAIN_ALIVE[] = "wheelmesh-alive-v2";

static const char TRUNCATED[] = "truncated";
static const char COUNT_PAST_END[] = "count larger than the frame";

/* ---- field checks (shared by encode and decode) ---- */

/* True when every byte of S[0..LEN) is printable ASCII (0x20..0x7e); this
 * also refuses NUL, so the bytes survive as a C string. */
static bool
printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c > 0x7e)
            return false;
    }
    return true;
}

/* "tcp://" followed by at least one byte, at most WM_WIRE_ADDR_MAX in all,
 * printable only. */
static bool
addr_ok(const char *s, size_t len)
{
    if (len <= ADDR_PREFIX_LEN || len > WM_WIRE_ADDR_MAX)
        return false;
    if (memcmp(s, ADDR_PREFIX, ADDR_PREFIX_LEN) != 0)
        return false;
    return printable(s, len);
}

/* A bare file name of 1..WM_WIRE_NAME_MAX printable bytes: no separator,
 * and not "." or "..". Whether it is a wheel name is the caller's check. */
static bool
filename_ok(const char *s, size_t len)
{
    if (len == 0 || len > WM_WIRE_NAME_MAX || !printable(s, len))
        return false;
    if (memchr(s, '/', len) != NULL || memchr(s, '\\', len) != NULL)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    return true;
}

static bool
state_ok(uint8_t v)
{
    return v <= WM_DEAD;
}

static bool
status_ok(uint8_t v)
{
    return v <= WM_CHUNK_BUSY;
}

static bool
op_ok(uint8_t v)
{
    return v == WM_OP_ADD || v == WM_OP_REMOVE;
}

static bool
counter_ok(uint64_t v)
{
    return v < WM_WIRE_COUNTER_MAX;
}

/* Printable text of at most MAX bytes (may be empty). */
static bool
text_ok(const char *s, size_t len, size_t max)
{
    return len <= max && printable(s, len);
}

/* ---- reading ---- */

/* A cursor over the frame. Every read checks the bytes left first and
 * returns false, having consumed nothing, when they are not there. */
typedef struct rd {
    const uint8_t *p;
    size_t left;
} rd;

static bool
rd_bytes(rd *r, void *dst, size_t n)
{
    if (n > r->left)
        return false;
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

/* Reads an N-byte little-endian unsigned integer. */
static bool
rd_le(rd *r, size_t n, uint64_t *v)
{
    uint64_t x = 0;

    if (n > r->left)
        return false;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    r->left -= n;
    *v = x;
    return true;
}

static bool
rd_u8(rd *r, uint8_t *v)
{
    uint64_t x;

    if (!rd_le(r, 1, &x))
        return false;
    *v = (uint8_t)x;
    return true;
}

static bool
rd_u16(rd *r, uint16_t *v)
{
    uint64_t x;

    if (!rd_le(r, 2, &x))
        return false;
    *v = (uint16_t)x;
    return true;
}

static bool
rd_u32(rd *r, uint32_t *v)
{
    uint64_t x;

    if (!rd_le(r, 4, &x))
        return false;
    *v = (uint32_t)x;
    return true;
}

static bool
rd_u64(rd *r, uint64_t *v)
{
    return rd_le(r, 8, v);
}

/* Reads a u8 length and that many bytes into DST (room for MAX + 1) as a
 * C string, and their count into *LENP. Returns NULL, TRUNCATED, or "string
 * too long" past MAX. The caller checks the bytes themselves (a NUL among
 * them would cut the C string short) before anything trusts them. */
static const char *
rd_str(rd *r, char *dst, size_t max, size_t *lenp)
{
    uint8_t len;

    if (!rd_u8(r, &len))
        return TRUNCATED;
    if (len > max)
        return "string too long";
    if (!rd_bytes(r, dst, len))
        return TRUNCATED;
    dst[len] = '\0';
    *lenp = len;
    return NULL;
}

/* ---- decoding, one function per shape; each returns NULL or a reason ---- */

/* Reads a string field and checks it with OK (LEN, MAX). */
static const char *
rd_text(rd *r, char *dst, size_t max, bool (*ok)(const char *, size_t),
        const char *bad)
{
    size_t len;
    const char *why = rd_str(r, dst, max, &len);

    if (why != NULL)
        return why == TRUNCATED ? why : bad;
    return ok(dst, len) ? NULL : bad;
}

static bool
name_ok(const char *s, size_t len)
{
    return text_ok(s, len, WM_WIRE_NODE_MAX);
}

static bool
pyver_ok(const char *s, size_t len)
{
    return text_ok(s, len, WM_WIRE_PYVER_MAX);
}

static const char *
decode_updates(rd *r, wm_msg *m)
{
    uint8_t n;

    if (!rd_u8(r, &n))
        return TRUNCATED;
    if (n > WM_WIRE_MAX_UPDATES)
        return "too many updates";
    if ((size_t)n * UPDATE_MIN > r->left)
        return COUNT_PAST_END;
    for (size_t i = 0; i < n; i++) {
        wm_member_update *u = &m->updates[i];
        const char *why;

        if (!rd_bytes(r, u->id, WM_ID_LEN) || !rd_u8(r, &u->state) ||
            !rd_u64(r, &u->incarnation))
            return TRUNCATED;
        if (!state_ok(u->state))
            return "bad member state";
        if (!counter_ok(u->incarnation))
            return "incarnation out of range";
        if (u->state != WM_ALIVE)
            continue;
        u->alive.incarnation = u->incarnation;
        why = rd_text(r, u->alive.addr, WM_WIRE_ADDR_MAX, addr_ok,
                      "bad address");
        if (why == NULL)
            why = rd_text(r, u->alive.name, WM_WIRE_NODE_MAX, name_ok,
                          "bad node name");
        if (why != NULL)
            return why;
        if (!rd_bytes(r, u->alive.sig, WM_SIG_BYTES))
            return TRUNCATED;
    }
    m->nupdates = n;
    return NULL;
}

static const char *
decode_ping(rd *r, wm_msg *m)
{
    if (!rd_u32(r, &m->seq))
        return TRUNCATED;
    return decode_updates(r, m);
}

static const char *
decode_sync(rd *r, wm_msg *m)
{
    if (!rd_u32(r, &m->seq) || !rd_u8(r, &m->flags))
        return TRUNCATED;
    if (m->flags & ~SYNC_FLAGS)
        return "bad flags";
    return decode_updates(r, m);
}

static const char *
decode_ping_req(rd *r, wm_msg *m)
{
    if (!rd_u32(r, &m->seq) || !rd_bytes(r, m->target, WM_ID_LEN))
        return TRUNCATED;
    return decode_updates(r, m);
}

static const char *
decode_digest(rd *r, wm_msg *m)
{
    uint16_t n;

    if (!rd_u8(r, &m->flags))
        return TRUNCATED;
    if (m->flags & ~DIGEST_FLAGS)
        return "bad flags";
    if (!rd_bytes(r, m->digest_hash, 32) || !rd_u16(r, &n))
        return TRUNCATED;
    if (n > 0 && !(m->flags & WM_DIGEST_FULL))
        return "digest items without FULL flag";
    if (n > WM_WIRE_MAX_DIGEST)
        return "too many digest items";
    if ((size_t)n * DIGEST_ITEM_LEN > r->left)
        return COUNT_PAST_END;
    for (size_t i = 0; i < n; i++) {
        wm_digest_item *d = &m->digest[i];

        if (!rd_bytes(r, d->origin, WM_ID_LEN) || !rd_u64(r, &d->generation) ||
            !rd_u64(r, &d->max_seq))
            return TRUNCATED;
        if (!counter_ok(d->generation) || !counter_ok(d->max_seq))
            return "digest counter out of range";
    }
    m->ndigest = n;
    return NULL;
}

static const char *
decode_claim(rd *r, wm_claim *c)
{
    const char *why;

    if (!rd_bytes(r, c->publisher, WM_ID_LEN))
        return TRUNCATED;
    why = rd_text(r, c->filename, WM_WIRE_NAME_MAX, filename_ok,
                  "bad filename");
    if (why == NULL)
        why = rd_text(r, c->requires_python, WM_WIRE_PYVER_MAX, pyver_ok,
                      "bad requires-python");
    if (why != NULL)
        return why;
    return rd_bytes(r, c->sig, WM_SIG_BYTES) ? NULL : TRUNCATED;
}

static const char *
decode_entry(rd *r, wm_entry *e)
{
    const char *why;

    if (!rd_bytes(r, e->origin, WM_ID_LEN) || !rd_u64(r, &e->generation) ||
        !rd_u64(r, &e->seq) || !rd_u8(r, &e->op))
        return TRUNCATED;
    if (e->seq == 0 || !counter_ok(e->seq))
        return "bad seq";
    if (!counter_ok(e->generation))
        return "bad generation";
    if (!op_ok(e->op))
        return "bad op";
    if (!rd_bytes(r, e->sha256, 32) || !rd_u64(r, &e->size) ||
        !rd_bytes(r, e->chunks_root, 32) || !rd_u8(r, &e->has_claim))
        return TRUNCATED;
    if (e->has_claim > 1 || (e->has_claim && e->op != WM_OP_ADD))
        return "bad claim flag";
    if (e->has_claim) {
        why = decode_claim(r, &e->claim);
        if (why != NULL)
            return why;
    }
    if (!rd_bytes(r, e->sig, sizeof(e->sig)))
        return TRUNCATED;
    return NULL;
}

static const char *
decode_entries(rd *r, wm_msg *m)
{
    uint8_t n;

    if (!rd_u8(r, &n))
        return TRUNCATED;
    if (n == 0)
        return "no entries";
    if (n > WM_WIRE_MAX_ENTRIES)
        return "too many entries";
    if ((size_t)n * ENTRY_MIN > r->left)
        return COUNT_PAST_END;
    for (size_t i = 0; i < n; i++) {
        const char *why = decode_entry(r, &m->entries[i]);

        if (why != NULL)
            return why;
    }
    m->nentries = n;
    return NULL;
}

static const char *
decode_fetch(rd *r, wm_msg *m)
{
    const char *why;
    size_t len;

    if (!rd_bytes(r, m->sha256, 32) || !rd_u32(r, &m->idx) ||
        !rd_u8(r, &m->flags))
        return TRUNCATED;
    if (m->flags & ~FETCH_FLAGS)
        return "bad flags";
    why = rd_str(r, m->filename, WM_WIRE_NAME_MAX, &len);
    if (why != NULL)
        return why;
    if (len > 0 && !filename_ok(m->filename, len))
        return "bad filename";
    return NULL;
}

static const char *
decode_chunk(rd *r, wm_msg *m)
{
    if (!rd_bytes(r, m->sha256, 32) || !rd_u32(r, &m->idx) ||
        !rd_u8(r, &m->status))
        return TRUNCATED;
    return status_ok(m->status) ? NULL : "bad status";
}

static const char *
decode_map(rd *r, wm_msg *m)
{
    return rd_bytes(r, m->sha256, 32) ? NULL : TRUNCATED;
}

static const char *
decode_mapdata(rd *r, wm_msg *m)
{
    if (!rd_bytes(r, m->sha256, 32) || !rd_u8(r, &m->status))
        return TRUNCATED;
    return status_ok(m->status) ? NULL : "bad status";
}

/* A bitmap of NCHUNKS bits in BITMAP's first bytes: 1..WM_WIRE_MAX_CHUNKS
 * of them, none set past the last (so one set of chunks has one
 * encoding). */
static bool
bitmap_ok(uint32_t nchunks, const uint8_t *bitmap)
{
    if (nchunks == 0 || nchunks > WM_WIRE_MAX_CHUNKS)
        return false;
    return nchunks % 8 == 0 ||
           (bitmap[nchunks / 8] & (uint8_t)(0xff << (nchunks % 8))) == 0;
}

static const char *
decode_have(rd *r, wm_msg *m)
{
    if (!rd_bytes(r, m->sha256, 32) || !rd_u8(r, &m->flags) ||
        !rd_u32(r, &m->nchunks))
        return TRUNCATED;
    if (m->flags & ~HAVE_FLAGS)
        return "bad flags";
    if (m->nchunks == 0 || m->nchunks > WM_WIRE_MAX_CHUNKS)
        return "bad chunk count";
    if (!rd_bytes(r, m->bitmap, (m->nchunks + 7) / 8))
        return TRUNCATED;
    return bitmap_ok(m->nchunks, m->bitmap) ? NULL : "bits past the last chunk";
}

/* OUT is zeroed first (some 80 KiB; cheap next to a network round trip),
 * so no field of an earlier message shows through. */
int
wm_msg_decode(const void *frame, size_t len, wm_msg *out, const char **why)
{
    rd r = {.p = frame, .left = len};
    uint8_t magic, version;
    const char *err;

    memset(out, 0, sizeof(*out));
    if (len == 0) {
        err = "empty frame";
        goto bad;
    }
    if (len > WM_WIRE_FRAME_MAX) {
        err = "frame too large";
        goto bad;
    }
    if (!rd_u8(&r, &magic) || magic != WIRE_MAGIC) {
        err = "bad magic";
        goto bad;
    }
    if (!rd_u8(&r, &version)) {
        err = TRUNCATED;
        goto bad;
    }
    if (version != WM_WIRE_VERSION) {
        err = "bad version";
        goto bad;
    }
    if (!rd_u8(&r, &out->type)) {
        err = TRUNCATED;
        goto bad;
    }
    switch (out->type) {
    case WM_MSG_PING:
    case WM_MSG_ACK:
        err = decode_ping(&r, out);
        break;
    case WM_MSG_PING_REQ:
        err = decode_ping_req(&r, out);
        break;
    case WM_MSG_SYNC:
        err = decode_sync(&r, out);
        break;
    case WM_MSG_DIGEST:
        err = decode_digest(&r, out);
        break;
    case WM_MSG_ENTRIES:
        err = decode_entries(&r, out);
        break;
    case WM_MSG_FETCH:
        err = decode_fetch(&r, out);
        break;
    case WM_MSG_CHUNK:
        err = decode_chunk(&r, out);
        break;
    case WM_MSG_MAP:
        err = decode_map(&r, out);
        break;
    case WM_MSG_MAPDATA:
        err = decode_mapdata(&r, out);
        break;
    case WM_MSG_HAVE:
        err = decode_have(&r, out);
        break;
    default:
        err = "unknown type";
        break;
    }
    if (err == NULL && r.left != 0)
        err = "trailing bytes";
    if (err != NULL)
        goto bad;
    if (why != NULL)
        *why = NULL;
    return 0;

bad:
    /* Nothing half-decoded is left for a careless caller to use. */
    out->type = 0;
    out->nupdates = 0;
    out->ndigest = 0;
    out->nentries = 0;
    if (why != NULL)
        *why = err;
    return -EBADMSG;
}

/* ---- encoding ---- */

static bool
str_valid(const char *s, size_t cap, bool (*ok)(const char *, size_t))
{
    size_t len = strnlen(s, cap);

    return len < cap && ok(s, len);
}

static bool
update_valid(const wm_member_update *u)
{
    if (!state_ok(u->state) || !counter_ok(u->incarnation))
        return false;
    if (u->state != WM_ALIVE)
        return true;
    return u->alive.incarnation == u->incarnation &&
           str_valid(u->alive.addr, sizeof(u->alive.addr), addr_ok) &&
           str_valid(u->alive.name, sizeof(u->alive.name), name_ok);
}

static bool
entry_valid(const wm_entry *e)
{
    if (e->seq == 0 || !counter_ok(e->seq) || !counter_ok(e->generation) ||
        !op_ok(e->op) || e->has_claim > 1 ||
        (e->has_claim && e->op != WM_OP_ADD))
        return false;
    return !e->has_claim ||
           (str_valid(e->claim.filename, sizeof(e->claim.filename),
                      filename_ok) &&
            str_valid(e->claim.requires_python,
                      sizeof(e->claim.requires_python), pyver_ok));
}

/* True when M would decode: the same checks as decoding, on the struct. */
static bool
msg_valid(const wm_msg *m)
{
    switch (m->type) {
    case WM_MSG_PING:
    case WM_MSG_ACK:
    case WM_MSG_PING_REQ:
    case WM_MSG_SYNC:
        if (m->type == WM_MSG_SYNC && (m->flags & ~SYNC_FLAGS))
            return false;
        if (m->nupdates > WM_WIRE_MAX_UPDATES)
            return false;
        for (size_t i = 0; i < m->nupdates; i++)
            if (!update_valid(&m->updates[i]))
                return false;
        return true;
    case WM_MSG_DIGEST:
        if ((m->flags & ~DIGEST_FLAGS) || m->ndigest > WM_WIRE_MAX_DIGEST)
            return false;
        for (size_t i = 0; i < m->ndigest; i++)
            if (!counter_ok(m->digest[i].generation) ||
                !counter_ok(m->digest[i].max_seq))
                return false;
        return m->ndigest == 0 || (m->flags & WM_DIGEST_FULL);
    case WM_MSG_ENTRIES:
        if (m->nentries == 0 || m->nentries > WM_WIRE_MAX_ENTRIES)
            return false;
        for (size_t i = 0; i < m->nentries; i++)
            if (!entry_valid(&m->entries[i]))
                return false;
        return true;
    case WM_MSG_FETCH:
        if (m->flags & ~FETCH_FLAGS)
            return false;
        return m->filename[0] == '\0' ||
               str_valid(m->filename, sizeof(m->filename), filename_ok);
    case WM_MSG_CHUNK:
    case WM_MSG_MAPDATA:
        return status_ok(m->status);
    case WM_MSG_MAP:
        return true;
    case WM_MSG_HAVE:
        return !(m->flags & ~HAVE_FLAGS) && bitmap_ok(m->nchunks, m->bitmap);
    default:
        return false;
    }
}

/* Writes V as N little-endian bytes at P; returns P + N. */
static uint8_t *
put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + n;
}

static uint8_t *
put_bytes(uint8_t *p, const void *src, size_t n)
{
    memcpy(p, src, n);
    return p + n;
}

/* Appends V as N little-endian bytes; a failure sticks in B. */
static void
add_le(wm_buf *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];

    put_le(tmp, v, n);
    wm_buf_add(b, tmp, n);
}

/* Appends a u8 length and the bytes of S (already checked to fit). */
static void
add_str(wm_buf *b, const char *s)
{
    size_t len = strlen(s);

    add_le(b, len, 1);
    wm_buf_add(b, s, len);
}

static void
add_updates(wm_buf *b, const wm_msg *m)
{
    add_le(b, m->nupdates, 1);
    for (size_t i = 0; i < m->nupdates; i++) {
        const wm_member_update *u = &m->updates[i];

        wm_buf_add(b, u->id, WM_ID_LEN);
        add_le(b, u->state, 1);
        add_le(b, u->incarnation, 8);
        if (u->state != WM_ALIVE)
            continue;
        add_str(b, u->alive.addr);
        add_str(b, u->alive.name);
        wm_buf_add(b, u->alive.sig, WM_SIG_BYTES);
    }
}

/* Writes a u8 length and the string in the array S of CAP bytes (at most
 * CAP - 1 of them, and never more than 255) at P; returns the end. */
#define put_str(p, s) put_strn(p, s, sizeof(s))

static uint8_t *
put_strn(uint8_t *p, const char *s, size_t cap)
{
    size_t len = strnlen(s, cap - 1 < 255 ? cap - 1 : 255);

    *p++ = (uint8_t)len;
    return put_bytes(p, s, len);
}

/* The entry as sent, without its own signature. */
static size_t
entry_body(const wm_entry *e, uint8_t *out)
{
    uint8_t *p = out;

    p = put_bytes(p, e->origin, WM_ID_LEN);
    p = put_le(p, e->generation, 8);
    p = put_le(p, e->seq, 8);
    p = put_le(p, e->op, 1);
    p = put_bytes(p, e->sha256, 32);
    p = put_le(p, e->size, 8);
    p = put_bytes(p, e->chunks_root, 32);
    p = put_le(p, e->has_claim ? 1 : 0, 1);
    if (e->has_claim) {
        p = put_bytes(p, e->claim.publisher, WM_ID_LEN);
        p = put_str(p, e->claim.filename);
        p = put_str(p, e->claim.requires_python);
        p = put_bytes(p, e->claim.sig, WM_SIG_BYTES);
    }
    return (size_t)(p - out);
}

int
wm_msg_encode(const wm_msg *m, wm_buf *out)
{
    uint8_t head[3] = {WIRE_MAGIC, WM_WIRE_VERSION, m->type};
    uint8_t tmp[WM_SIGNED_MAX];

    if (!msg_valid(m))
        return -EINVAL;
    wm_buf_add(out, head, sizeof(head));
    switch (m->type) {
    case WM_MSG_PING:
    case WM_MSG_ACK:
        add_le(out, m->seq, 4);
        add_updates(out, m);
        break;
    case WM_MSG_PING_REQ:
        add_le(out, m->seq, 4);
        wm_buf_add(out, m->target, WM_ID_LEN);
        add_updates(out, m);
        break;
    case WM_MSG_SYNC:
        add_le(out, m->seq, 4);
        add_le(out, m->flags, 1);
        add_updates(out, m);
        break;
    case WM_MSG_DIGEST:
        add_le(out, m->flags, 1);
        wm_buf_add(out, m->digest_hash, 32);
        add_le(out, m->ndigest, 2);
        for (size_t i = 0; i < m->ndigest; i++) {
            wm_buf_add(out, m->digest[i].origin, WM_ID_LEN);
            add_le(out, m->digest[i].generation, 8);
            add_le(out, m->digest[i].max_seq, 8);
        }
        break;
    case WM_MSG_ENTRIES:
        add_le(out, m->nentries, 1);
        for (size_t i = 0; i < m->nentries; i++) {
            size_t n = entry_body(&m->entries[i], tmp);

            wm_buf_add(out, tmp, n);
            wm_buf_add(out, m->entries[i].sig, sizeof(m->entries[i].sig));
        }
        break;
    case WM_MSG_FETCH:
        wm_buf_add(out, m->sha256, 32);
        add_le(out, m->idx, 4);
        add_le(out, m->flags, 1);
        add_str(out, m->filename);
        break;
    case WM_MSG_CHUNK:
        wm_buf_add(out, m->sha256, 32);
        add_le(out, m->idx, 4);
        add_le(out, m->status, 1);
        break;
    case WM_MSG_MAP:
        wm_buf_add(out, m->sha256, 32);
        break;
    case WM_MSG_MAPDATA:
        wm_buf_add(out, m->sha256, 32);
        add_le(out, m->status, 1);
        break;
    case WM_MSG_HAVE:
        wm_buf_add(out, m->sha256, 32);
        add_le(out, m->flags, 1);
        add_le(out, m->nchunks, 4);
        wm_buf_add(out, m->bitmap, (m->nchunks + 7) / 8);
        break;
    }
    return out->failed ? -ENOMEM : 0;
}

size_t
wm_entry_signed_bytes(const wm_entry *e, uint8_t *out)
{
    memcpy(out, DOMAIN_ENTRY, sizeof(DOMAIN_ENTRY));
    return sizeof(DOMAIN_ENTRY) + entry_body(e, out + sizeof(DOMAIN_ENTRY));
}

size_t
wm_claim_signed_bytes(const wm_entry *e, uint8_t *out)
{
    uint8_t *p = out;

    p = put_bytes(p, DOMAIN_CLAIM, sizeof(DOMAIN_CLAIM));
    p = put_bytes(p, e->claim.publisher, WM_ID_LEN);
    p = put_bytes(p, e->sha256, 32);
    p = put_le(p, e->size, 8);
    p = put_bytes(p, e->chunks_root, 32);
    p = put_str(p, e->claim.filename);
    p = put_str(p, e->claim.requires_python);
    return (size_t)(p - out);
}

size_t
wm_alive_signed_bytes(const uint8_t id[WM_ID_LEN], const wm_alive *a,
                      uint8_t *out)
{
    uint8_t *p = out;

    p = put_bytes(p, DOMAIN_ALIVE, sizeof(DOMAIN_ALIVE));
    p = put_bytes(p, id, WM_ID_LEN);
    p = put_le(p, a->incarnation, 8);
    p = put_str(p, a->addr);
    p = put_str(p, a->name);
    return (size_t)(p - out);
}

void
wm_digest_hash(const wm_digest_item *items, size_t n, uint8_t out[32])
{
    wm_sha256 *ctx = wm_sha256_new();
    uint8_t tmp[DIGEST_ITEM_LEN];

    if (ctx == NULL) {
        /* Out of memory: a hash no real item list gives in practice, so
         * the peers merely exchange full digests this round. */
        memset(out, 0, 32);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = tmp;

        p = put_bytes(p, items[i].origin, WM_ID_LEN);
        p = put_le(p, items[i].generation, 8);
        put_le(p, items[i].max_seq, 8);
        wm_sha256_update(ctx, tmp, sizeof(tmp));
    }
    wm_sha256_final(ctx, out);
    wm_sha256_destroy(&ctx);
}

void
wm_entry_sign(const wm_identity *id, wm_entry *e)
{
    uint8_t msg[WM_SIGNED_MAX];

    memcpy(e->origin, wm_identity_pubkey(id), WM_ID_LEN);
    wm_identity_sign(id, msg, wm_entry_signed_bytes(e, msg), e->sig);
}

int
wm_entry_valid(const wm_entry *e)
{
    uint8_t msg[WM_SIGNED_MAX];

    return wm_identity_verify(e->origin, msg, wm_entry_signed_bytes(e, msg),
                              e->sig) == 0;
}

void
wm_claim_sign(const wm_identity *id, wm_entry *e)
{
    uint8_t msg[WM_SIGNED_MAX];

    memcpy(e->claim.publisher, wm_identity_pubkey(id), WM_ID_LEN);
    wm_identity_sign(id, msg, wm_claim_signed_bytes(e, msg), e->claim.sig);
}

int
wm_claim_valid(const wm_entry *e)
{
    uint8_t msg[WM_SIGNED_MAX];

    return wm_identity_verify(e->claim.publisher, msg,
                              wm_claim_signed_bytes(e, msg),
                              e->claim.sig) == 0;
}

void
wm_alive_sign(const wm_identity *id, wm_alive *a)
{
    uint8_t msg[WM_SIGNED_MAX];
    size_t len = wm_alive_signed_bytes(wm_identity_pubkey(id), a, msg);

    wm_identity_sign(id, msg, len, a->sig);
}

int
wm_alive_valid(const uint8_t id[WM_ID_LEN], const wm_alive *a)
{
    uint8_t msg[WM_SIGNED_MAX];

    return wm_identity_verify(id, msg, wm_alive_signed_bytes(id, a, msg),
                              a->sig) == 0;
}
