/*
 * Unit tests for common/wire: every message type round-trips (also at its
 * caps), the byte layout is pinned by golden frames, a table of malformed
 * frames is refused with the right reason, every truncation of every valid
 * frame is refused, encoding refuses what decoding would refuse, and a
 * mutation sweep checks that whatever decodes re-encodes to the same bytes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"
#include "wire.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- valid messages to start from ---- */

enum base {
    /* Small messages: one item each, fields at the offsets below. */
    B_PING,
    B_ACK,
    B_PING_REQ,
    B_DIGEST,  /* FULL, one item */
    B_DIGEST0, /* no flags, no items */
    B_ENTRIES, /* one entry */
    B_FETCH,   /* with a filename */
    B_FETCH0,  /* without */
    B_CHUNK,
    B_MAP,
    B_MAPDATA,
    /* Every count and string at its cap. */
    M_PING,
    M_ACK,
    M_PING_REQ,
    M_DIGEST,
    M_ENTRIES,
    M_FETCH,
    N_BASES
};

#define ADDR     "tcp://10.0.0.1:7391"
#define ADDR_LEN 19
#define NAME     "x-1.0-py3-none-any.whl"
#define NAME_LEN 22

/* Byte offsets in the small messages (pinned by test_layout). */
#define P_SEQ     3
#define P_INC     7
#define P_NUPD    15
#define P_STATE   (P_NUPD + 1 + 32)
#define P_ALEN    (P_STATE + 1 + 8)
#define P_ADDR    (P_ALEN + 1)
#define P_LEN     (P_ADDR + ADDR_LEN)
#define R_NUPD    (3 + 4 + 32)
#define R_STATE   (R_NUPD + 1 + 32)
#define R_ALEN    (R_STATE + 1 + 8)
#define R_ADDR    (R_ALEN + 1)
#define D_FLAGS   3
#define D_N       (D_FLAGS + 1 + 32)
#define D_LEN     (D_N + 2 + 48)
#define E_N       3
#define E_SEQ     (E_N + 1 + 32 + 8)
#define E_OP      (E_SEQ + 8)
#define E_SOURCE  (E_OP + 1 + 8 + 32 + 32)
#define E_FNLEN   (E_SOURCE + 1)
#define E_FN      (E_FNLEN + 1)
#define E_LEN     (E_FN + NAME_LEN + 64)
#define F_IDX     (3 + 32)
#define F_FLAGS   (F_IDX + 4)
#define F_FNLEN   (F_FLAGS + 1)
#define F_FN      (F_FNLEN + 1)
#define F_LEN     (F_FN + NAME_LEN)
#define C_STATUS  (3 + 32 + 4)
#define MD_STATUS (3 + 32)

/* Fills N bytes with a pattern that differs per SEED, so a field swapped
 * with another shows. */
static void
fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

/* A string of exactly LEN printable bytes after PREFIX, walking through
 * every printable byte the field allows (all but '/' and '\\'). */
static void
fill_str(char *dst, const char *prefix, size_t len)
{
    size_t i = strlen(prefix);
    int c = 0x20;

    memcpy(dst, prefix, i);
    for (; i < len; i++) {
        while (c == '/' || c == '\\')
            c++;
        dst[i] = (char)c;
        c = c >= 0x7e ? 0x20 : c + 1;
    }
    dst[len] = '\0';
}

static void
set_str(char *dst, const char *s)
{
    memcpy(dst, s, strlen(s) + 1);
}

static void
make_update(wm_member_update *u, unsigned i, int max)
{
    fill(u->id, sizeof(u->id), 100 + i);
    u->state = (uint8_t)(i % 3);
    u->incarnation = 0x0102030405060708ull * (i + 1);
    if (max)
        fill_str(u->addr, "tcp://", WM_WIRE_ADDR_MAX);
    else
        set_str(u->addr, ADDR);
}

static void
make_entry(wm_entry *e, unsigned i, int max)
{
    fill(e->origin, sizeof(e->origin), 200 + i);
    e->generation = 0x1112131415161718ull + i;
    e->seq = i + 1;
    e->op = (uint8_t)(i % 2 ? WM_OP_REMOVE : WM_OP_ADD);
    e->size = UINT64_MAX - i;
    fill(e->sha256, 32, 300 + i);
    fill(e->chunks_root, 32, 400 + i);
    e->source = (uint8_t)(1 + i % 3);
    if (max)
        fill_str(e->filename, "", WM_WIRE_NAME_MAX);
    else
        set_str(e->filename, NAME);
    fill(e->sig, 64, 500 + i);
}

/* Builds base B into M (zeroed first). */
static void
build(int b, wm_msg *m)
{
    int max = b >= M_PING;
    size_t i;

    memset(m, 0, sizeof(*m));
    switch (b) {
    case B_PING:
    case B_ACK:
    case M_PING:
    case M_ACK:
        m->type = (b == B_PING || b == M_PING) ? WM_MSG_PING : WM_MSG_ACK;
        m->seq = 0xa1a2a3a4;
        m->incarnation = 0xb1b2b3b4b5b6b7b8ull;
        m->nupdates = max ? WM_WIRE_MAX_UPDATES : 1;
        for (i = 0; i < m->nupdates; i++)
            make_update(&m->updates[i], (unsigned)i, max);
        break;
    case B_PING_REQ:
    case M_PING_REQ:
        m->type = WM_MSG_PING_REQ;
        m->seq = UINT32_MAX;
        fill(m->target, sizeof(m->target), 7);
        m->nupdates = max ? WM_WIRE_MAX_UPDATES : 1;
        for (i = 0; i < m->nupdates; i++)
            make_update(&m->updates[i], (unsigned)i, max);
        break;
    case B_DIGEST:
    case M_DIGEST:
        m->type = WM_MSG_DIGEST;
        m->flags = max ? WM_DIGEST_FULL | WM_DIGEST_REPLY : WM_DIGEST_FULL;
        m->ndigest = max ? WM_WIRE_MAX_DIGEST : 1;
        for (i = 0; i < m->ndigest; i++) {
            fill(m->digest[i].origin, WM_ID_LEN, (unsigned)i);
            m->digest[i].generation = 0x2122232425262728ull + i;
            m->digest[i].max_seq = 0x3132333435363738ull - i;
        }
        wm_digest_hash(m->digest, m->ndigest, m->digest_hash);
        break;
    case B_DIGEST0:
        m->type = WM_MSG_DIGEST;
        fill(m->digest_hash, 32, 9);
        break;
    case B_ENTRIES:
    case M_ENTRIES:
        m->type = WM_MSG_ENTRIES;
        m->nentries = max ? WM_WIRE_MAX_ENTRIES : 1;
        for (i = 0; i < m->nentries; i++)
            make_entry(&m->entries[i], (unsigned)i, max);
        break;
    case B_FETCH:
    case B_FETCH0:
    case M_FETCH:
        m->type = WM_MSG_FETCH;
        fill(m->sha256, 32, 11);
        m->idx = 0xc1c2c3c4;
        m->flags = WM_FETCH_UPSTREAM;
        if (b == B_FETCH)
            set_str(m->filename, NAME);
        else if (b == M_FETCH)
            fill_str(m->filename, "", WM_WIRE_NAME_MAX);
        break;
    case B_CHUNK:
        m->type = WM_MSG_CHUNK;
        fill(m->sha256, 32, 12);
        m->idx = 0x01020304;
        m->status = WM_CHUNK_LATER;
        break;
    case B_MAP:
        m->type = WM_MSG_MAP;
        fill(m->sha256, 32, 13);
        break;
    case B_MAPDATA:
        m->type = WM_MSG_MAPDATA;
        fill(m->sha256, 32, 14);
        m->status = WM_CHUNK_MISSING;
        break;
    default:
        fail_msg("no base %d", b);
    }
}

static wm_msg *
msg_alloc(void)
{
    wm_msg *m = calloc(1, sizeof(*m));

    assert_non_null(m);
    return m;
}

/* Encodes base B; the caller frees the returned bytes. */
static uint8_t *
encode_base(int b, size_t *len)
{
    wm_msg *m = msg_alloc();
    wm_buf out;
    char *data;

    build(b, m);
    wm_buf_init(&out, WM_WIRE_FRAME_MAX);
    assert_int_equal(wm_msg_encode(m, &out), 0);
    data = wm_buf_steal(&out, len);
    assert_non_null(data);
    free(m);
    return (uint8_t *)data;
}

/* ---- round trip ---- */

static void
assert_update_equal(const wm_member_update *a, const wm_member_update *b)
{
    assert_memory_equal(a->id, b->id, WM_ID_LEN);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->incarnation, b->incarnation);
    assert_string_equal(a->addr, b->addr);
}

static void
assert_entry_equal(const wm_entry *a, const wm_entry *b)
{
    assert_memory_equal(a->origin, b->origin, WM_ID_LEN);
    assert_int_equal(a->generation, b->generation);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->op, b->op);
    assert_int_equal(a->size, b->size);
    assert_memory_equal(a->sha256, b->sha256, 32);
    assert_memory_equal(a->chunks_root, b->chunks_root, 32);
    assert_int_equal(a->source, b->source);
    assert_string_equal(a->filename, b->filename);
    assert_memory_equal(a->sig, b->sig, 64);
}

/* Checks that the fields of A's type are equal in B. */
static void
assert_msg_equal(const wm_msg *a, const wm_msg *b)
{
    size_t i;

    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case WM_MSG_PING:
    case WM_MSG_ACK:
    case WM_MSG_PING_REQ:
        assert_int_equal(a->seq, b->seq);
        if (a->type == WM_MSG_PING_REQ)
            assert_memory_equal(a->target, b->target, WM_ID_LEN);
        else
            assert_int_equal(a->incarnation, b->incarnation);
        assert_int_equal(a->nupdates, b->nupdates);
        for (i = 0; i < a->nupdates; i++)
            assert_update_equal(&a->updates[i], &b->updates[i]);
        break;
    case WM_MSG_DIGEST:
        assert_int_equal(a->flags, b->flags);
        assert_memory_equal(a->digest_hash, b->digest_hash, 32);
        assert_int_equal(a->ndigest, b->ndigest);
        for (i = 0; i < a->ndigest; i++) {
            assert_memory_equal(a->digest[i].origin, b->digest[i].origin,
                                WM_ID_LEN);
            assert_int_equal(a->digest[i].generation, b->digest[i].generation);
            assert_int_equal(a->digest[i].max_seq, b->digest[i].max_seq);
        }
        break;
    case WM_MSG_ENTRIES:
        assert_int_equal(a->nentries, b->nentries);
        for (i = 0; i < a->nentries; i++)
            assert_entry_equal(&a->entries[i], &b->entries[i]);
        break;
    case WM_MSG_FETCH:
        assert_int_equal(a->flags, b->flags);
        assert_string_equal(a->filename, b->filename);
        /* fall through */
    case WM_MSG_CHUNK:
    case WM_MSG_MAPDATA:
    case WM_MSG_MAP:
        assert_memory_equal(a->sha256, b->sha256, 32);
        if (a->type == WM_MSG_FETCH || a->type == WM_MSG_CHUNK)
            assert_int_equal(a->idx, b->idx);
        if (a->type == WM_MSG_CHUNK || a->type == WM_MSG_MAPDATA)
            assert_int_equal(a->status, b->status);
        break;
    default:
        fail_msg("unexpected type %d", a->type);
    }
}

static void
test_round_trip(void **state)
{
    wm_msg *m = msg_alloc(), *d = msg_alloc();

    for (int b = 0; b < N_BASES; b++) {
        const char *why = "unset";
        uint8_t *frame;
        size_t len;
        wm_buf again;

        build(b, m);
        frame = encode_base(b, &len);
        assert_true(len <= WM_WIRE_FRAME_MAX);
        if (wm_msg_decode(frame, len, d, &why) != 0)
            fail_msg("base %d: refused: %s", b, why);
        assert_null(why);
        assert_msg_equal(m, d);
        /* Decoding then encoding gives back the very same bytes. */
        wm_buf_init(&again, WM_WIRE_FRAME_MAX);
        assert_int_equal(wm_msg_encode(d, &again), 0);
        assert_int_equal(again.len, len);
        assert_memory_equal(again.data, frame, len);
        wm_buf_free(&again);
        free(frame);
    }
    free(m);
    free(d);
}

/* The exact bytes, so the layout cannot drift without a test noticing. */
static void
test_layout(void **state)
{
    static const struct {
        int base;
        size_t len;
    } lens[] = {
        {B_PING, P_LEN},
        {B_PING_REQ, R_ADDR + ADDR_LEN},
        {B_DIGEST, D_LEN},
        {B_DIGEST0, D_N + 2},
        {B_ENTRIES, E_LEN},
        {B_FETCH, F_LEN},
        {B_FETCH0, F_FN},
        {B_CHUNK, C_STATUS + 1},
        {B_MAP, 3 + 32},
        {B_MAPDATA, MD_STATUS + 1},
        {M_PING, 3 + 4 + 8 + 1 +
                     WM_WIRE_MAX_UPDATES * (32 + 1 + 8 + 1 + WM_WIRE_ADDR_MAX)},
        {M_DIGEST, 3 + 1 + 32 + 2 + WM_WIRE_MAX_DIGEST * 48},
        {M_ENTRIES, 3 + 1 +
                        WM_WIRE_MAX_ENTRIES * (32 + 8 + 8 + 1 + 8 + 32 + 32 +
                                               1 + 1 + WM_WIRE_NAME_MAX + 64)},
    };
    static const uint8_t ping_head[] = {
        'W',  1,    WM_MSG_PING, 0xa4, 0xa3, 0xa2, 0xa1,       /* seq */
        0xb8, 0xb7, 0xb6,        0xb5, 0xb4, 0xb3, 0xb2, 0xb1, /* inc */
        1,                                                     /* nupdates */
    };
    static const uint8_t upd_tail[] = {
        WM_ALIVE, 8, 7, 6, 5, 4, 3, 2, 1, ADDR_LEN, /* state, inc, addrlen */
    };
    static const uint8_t chunk_tail[] = {4, 3, 2, 1, WM_CHUNK_LATER};
    uint8_t *f;
    size_t len;

    for (size_t i = 0; i < N_ELEMS(lens); i++) {
        f = encode_base(lens[i].base, &len);
        if (len != lens[i].len)
            fail_msg("base %d: %zu bytes, expected %zu", lens[i].base, len,
                     lens[i].len);
        free(f);
    }

    f = encode_base(B_PING, &len);
    assert_memory_equal(f, ping_head, sizeof(ping_head));
    assert_memory_equal(f + P_STATE, upd_tail, sizeof(upd_tail));
    assert_memory_equal(f + P_ADDR, ADDR, ADDR_LEN);
    free(f);

    f = encode_base(B_CHUNK, &len);
    assert_memory_equal(f, "W\001\007", 3);
    assert_memory_equal(f + C_STATUS - 4, chunk_tail, sizeof(chunk_tail));
    free(f);

    f = encode_base(B_DIGEST, &len);
    assert_int_equal(f[D_FLAGS], WM_DIGEST_FULL);
    assert_int_equal(f[D_N], 1);
    assert_int_equal(f[D_N + 1], 0);
    free(f);

    f = encode_base(B_ENTRIES, &len);
    assert_int_equal(f[E_N], 1);
    assert_int_equal(f[E_SEQ], 1);
    assert_int_equal(f[E_OP], WM_OP_ADD);
    assert_int_equal(f[E_SOURCE], 1);
    assert_int_equal(f[E_FNLEN], NAME_LEN);
    assert_memory_equal(f + E_FN, NAME, NAME_LEN);
    free(f);

    f = encode_base(B_FETCH, &len);
    assert_int_equal(f[F_FLAGS], WM_FETCH_UPSTREAM);
    assert_int_equal(f[F_FNLEN], NAME_LEN);
    free(f);
}

/* ---- malformed frames ---- */

enum edit_kind { X_END, X_SET, X_CUT, X_ADD };

struct edit {
    enum edit_kind kind;
    size_t off; /* X_SET: where; X_CUT: the new length */
    uint8_t val;
};

/* clang-format off */
#define SET(off, val) {X_SET, (off), (val)}
#define CUT(len)      {X_CUT, (len), 0}
#define ADD(val)      {X_ADD, 0, (val)}
/* clang-format on */

static const struct bad_case {
    const char *name;
    int base;
    struct edit edits[4];
    const char *why;
} bad_cases[] = {
    /* Framing. */
    {"empty", B_PING, {CUT(0)}, "empty frame"},
    {"one byte", B_PING, {CUT(1)}, "truncated"},
    {"two bytes", B_PING, {CUT(2)}, "truncated"},
    {"bad magic", B_PING, {SET(0, 'w')}, "bad magic"},
    {"bad magic alone", B_PING, {CUT(1), SET(0, 0)}, "bad magic"},
    {"version 0", B_PING, {SET(1, 0)}, "bad version"},
    {"version 2", B_PING, {SET(1, 2)}, "bad version"},
    {"version 255", B_MAP, {SET(1, 255)}, "bad version"},
    {"type 0", B_PING, {SET(2, 0)}, "unknown type"},
    {"type 10", B_MAP, {SET(2, 10)}, "unknown type"},
    {"type 255", B_MAP, {SET(2, 255)}, "unknown type"},
    {"header only", B_MAP, {CUT(3)}, "truncated"},
    /* Trailing bytes, for every type. */
    {"trailing PING", B_PING, {ADD(0)}, "trailing bytes"},
    {"trailing ACK", B_ACK, {ADD(1)}, "trailing bytes"},
    {"trailing PING_REQ", B_PING_REQ, {ADD('a')}, "trailing bytes"},
    {"trailing DIGEST", B_DIGEST, {ADD(0)}, "trailing bytes"},
    {"trailing DIGEST0", B_DIGEST0, {ADD(0)}, "trailing bytes"},
    {"trailing ENTRIES", B_ENTRIES, {ADD(0)}, "trailing bytes"},
    {"trailing FETCH", B_FETCH, {ADD('l')}, "trailing bytes"},
    {"trailing FETCH0", B_FETCH0, {ADD(0)}, "trailing bytes"},
    {"trailing CHUNK", B_CHUNK, {ADD(0)}, "trailing bytes"},
    {"trailing MAP", B_MAP, {ADD(0)}, "trailing bytes"},
    {"trailing MAPDATA", B_MAPDATA, {ADD(0)}, "trailing bytes"},
    /* Counts. */
    {"updates > data", B_PING, {SET(P_NUPD, 2)}, "count larger than the frame"},
    {"updates 17", B_PING, {SET(P_NUPD, 17)}, "too many updates"},
    {"updates 255", B_ACK, {SET(P_NUPD, 255)}, "too many updates"},
    {"req updates 17", B_PING_REQ, {SET(R_NUPD, 17)}, "too many updates"},
    {"updates 0 + data", B_PING, {SET(P_NUPD, 0)}, "trailing bytes"},
    {"digest n > data", B_DIGEST, {SET(D_N, 2)}, "count larger than the frame"},
    {"digest n 1025",
     B_DIGEST,
     {SET(D_N, 0x01), SET(D_N + 1, 0x04)},
     "too many digest items"},
    {"digest n 65535",
     B_DIGEST,
     {SET(D_N, 0xff), SET(D_N + 1, 0xff)},
     "too many digest items"},
    {"digest n high byte",
     B_DIGEST,
     {SET(D_N + 1, 0x01)},
     "count larger than the frame"},
    {"entries 0", B_ENTRIES, {SET(E_N, 0)}, "no entries"},
    {"entries > data", B_ENTRIES, {SET(E_N, 2)}, "count larger than the frame"},
    {"entries 65", B_ENTRIES, {SET(E_N, 65)}, "too many entries"},
    {"entries 255", B_ENTRIES, {SET(E_N, 255)}, "too many entries"},
    {"addrlen > data", B_PING, {SET(P_ALEN, 100)}, "truncated"},
    {"fnlen > data", B_ENTRIES, {SET(E_FNLEN, 255)}, "truncated"},
    {"fetch fnlen > data", B_FETCH, {SET(F_FNLEN, 23)}, "truncated"},
    {"fetch fnlen short", B_FETCH, {SET(F_FNLEN, 21)}, "trailing bytes"},
    /* Enums and flags. */
    {"state 3", B_PING, {SET(P_STATE, 3)}, "bad member state"},
    {"state 255", B_PING_REQ, {SET(R_STATE, 255)}, "bad member state"},
    {"op 0", B_ENTRIES, {SET(E_OP, 0)}, "bad op"},
    {"op 3", B_ENTRIES, {SET(E_OP, 3)}, "bad op"},
    {"seq 0", B_ENTRIES, {SET(E_SEQ, 0)}, "bad seq"},
    {"source 0", B_ENTRIES, {SET(E_SOURCE, 0)}, "bad source"},
    {"source 4", B_ENTRIES, {SET(E_SOURCE, 4)}, "bad source"},
    {"digest flags 5", B_DIGEST, {SET(D_FLAGS, 5)}, "bad flags"},
    {"digest flags 0x80", B_DIGEST0, {SET(D_FLAGS, 0x80)}, "bad flags"},
    {"digest items, no FULL",
     B_DIGEST,
     {SET(D_FLAGS, 0)},
     "digest items without FULL flag"},
    {"digest items, REPLY only",
     B_DIGEST,
     {SET(D_FLAGS, WM_DIGEST_REPLY)},
     "digest items without FULL flag"},
    {"fetch flags 2", B_FETCH, {SET(F_FLAGS, 2)}, "bad flags"},
    {"fetch flags 0xff", B_FETCH0, {SET(F_FLAGS, 0xff)}, "bad flags"},
    {"chunk status 3", B_CHUNK, {SET(C_STATUS, 3)}, "bad status"},
    {"mapdata status 3", B_MAPDATA, {SET(MD_STATUS, 3)}, "bad status"},
    {"mapdata status 255", B_MAPDATA, {SET(MD_STATUS, 255)}, "bad status"},
    /* Addresses. */
    {"addr udp://", B_PING, {SET(P_ADDR, 'u')}, "bad address"},
    {"addr TCP://", B_PING, {SET(P_ADDR, 'T')}, "bad address"},
    {"addr newline", B_PING, {SET(P_ADDR + 10, '\n')}, "bad address"},
    {"addr ESC", B_PING_REQ, {SET(R_ADDR + 8, 0x1b)}, "bad address"},
    {"addr DEL", B_PING, {SET(P_ADDR + 18, 0x7f)}, "bad address"},
    {"addr high byte", B_PING, {SET(P_ADDR + 7, 0xc3)}, "bad address"},
    {"addr NUL inside", B_PING, {SET(P_ADDR + 9, 0)}, "bad address"},
    {"addr NUL last", B_PING, {SET(P_ADDR + 18, 0)}, "bad address"},
    {"addrlen 0", B_PING, {SET(P_ALEN, 0)}, "bad address"},
    {"addr just tcp://", B_PING, {SET(P_ALEN, 6)}, "bad address"},
    {"addrlen 129", B_PING, {SET(P_ALEN, 129)}, "bad address"},
    {"addrlen 255", B_PING, {SET(P_ALEN, 255)}, "bad address"},
    /* Filenames. */
    {"name with /", B_ENTRIES, {SET(E_FN + 1, '/')}, "bad filename"},
    {"name with \\", B_ENTRIES, {SET(E_FN + 1, '\\')}, "bad filename"},
    {"name with NUL", B_ENTRIES, {SET(E_FN + 3, 0)}, "bad filename"},
    {"name NUL first", B_ENTRIES, {SET(E_FN, 0)}, "bad filename"},
    {"name with tab", B_ENTRIES, {SET(E_FN + 5, '\t')}, "bad filename"},
    {"name high byte", B_ENTRIES, {SET(E_FN + 5, 0xff)}, "bad filename"},
    {"fnlen 0", B_ENTRIES, {SET(E_FNLEN, 0)}, "bad filename"},
    {"fetch name with /", B_FETCH, {SET(F_FN, '/')}, "bad filename"},
    {"fetch name with NUL", B_FETCH, {SET(F_FN + 21, 0)}, "bad filename"},
    {"fetch name newline", B_FETCH, {SET(F_FN + 4, '\n')}, "bad filename"},
    {"fetch name ..",
     B_FETCH0,
     {ADD('.'), ADD('.'), SET(F_FNLEN, 2)},
     "bad filename"},
    {"fetch name .", B_FETCH0, {ADD('.'), SET(F_FNLEN, 1)}, "bad filename"},
};

/* Applies the edits of C to a copy of its base; returns the frame. */
static uint8_t *
apply(const struct bad_case *c, size_t *lenp)
{
    size_t len;
    uint8_t *f = encode_base(c->base, &len);

    f = realloc(f, len + 8);
    assert_non_null(f);
    for (size_t i = 0; i < N_ELEMS(c->edits) && c->edits[i].kind != X_END;
         i++) {
        const struct edit *e = &c->edits[i];

        switch (e->kind) {
        case X_SET:
            assert_true(e->off < len);
            f[e->off] = e->val;
            break;
        case X_CUT:
            assert_true(e->off <= len);
            len = e->off;
            break;
        case X_ADD:
            f[len++] = e->val;
            break;
        case X_END:
            break;
        }
    }
    *lenp = len;
    return f;
}

static void
test_bad_frames(void **state)
{
    wm_msg *m = msg_alloc();

    for (size_t i = 0; i < N_ELEMS(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        const char *why = NULL;
        size_t len;
        uint8_t *f = apply(c, &len);
        int rc;

        memset(m, 0x5a, sizeof(*m));
        rc = wm_msg_decode(f, len, m, &why);
        if (rc != -EBADMSG)
            fail_msg("%s: expected -EBADMSG (%s), got %d", c->name, c->why, rc);
        assert_non_null(why);
        if (strcmp(why, c->why) != 0)
            fail_msg("%s: expected \"%s\", got \"%s\"", c->name, c->why, why);
        /* Nothing half-decoded is left to be used by mistake. */
        assert_int_equal(m->type, 0);
        assert_int_equal(m->nupdates, 0);
        assert_int_equal(m->ndigest, 0);
        assert_int_equal(m->nentries, 0);
        /* A NULL why is fine. */
        assert_int_equal(wm_msg_decode(f, len, m, NULL), -EBADMSG);
        free(f);
    }
    free(m);
}

static void
test_too_large(void **state)
{
    wm_msg *m = msg_alloc();
    size_t len = WM_WIRE_FRAME_MAX + 1;
    uint8_t *f = calloc(1, len);
    const char *why = NULL;

    assert_non_null(f);
    memcpy(f, "W\001\004", 3);
    assert_int_equal(wm_msg_decode(f, len, m, &why), -EBADMSG);
    assert_string_equal(why, "frame too large");
    free(f);
    free(m);
}

/* Every prefix of every valid frame is refused, as truncated. */
static void
test_every_truncation(void **state)
{
    wm_msg *m = msg_alloc();

    for (int b = 0; b < N_BASES; b++) {
        size_t len;
        uint8_t *f = encode_base(b, &len);

        for (size_t cut = 0; cut < len; cut++) {
            const char *why = NULL;
            /* A heap copy of exactly CUT bytes, so ASan sees any overread. */
            uint8_t *g = malloc(cut ? cut : 1);

            assert_non_null(g);
            memcpy(g, f, cut);
            if (wm_msg_decode(g, cut, m, &why) != -EBADMSG)
                fail_msg("base %d cut at %zu of %zu: accepted", b, cut, len);
            if (strcmp(why, "truncated") != 0 &&
                strcmp(why, "count larger than the frame") != 0 &&
                !(cut == 0 && strcmp(why, "empty frame") == 0))
                fail_msg("base %d cut at %zu: \"%s\"", b, cut, why);
            free(g);
        }
        free(f);
    }
    free(m);
}

/* ---- encoding refuses what decoding would refuse ---- */

struct enc_case {
    const char *name;
    int base;
    void (*spoil)(wm_msg *m);
};

static void
sp_updates_17(wm_msg *m)
{
    m->nupdates = WM_WIRE_MAX_UPDATES + 1;
}

static void
sp_state_3(wm_msg *m)
{
    m->updates[0].state = 3;
}

static void
sp_addr_empty(wm_msg *m)
{
    m->updates[0].addr[0] = '\0';
}

static void
sp_addr_udp(wm_msg *m)
{
    set_str(m->updates[0].addr, "udp://10.0.0.1:1");
}

static void
sp_addr_bare(wm_msg *m)
{
    set_str(m->updates[0].addr, "tcp://");
}

static void
sp_addr_ctrl(wm_msg *m)
{
    set_str(m->updates[0].addr, "tcp://10.0.0.1:1\r");
}

static void
sp_addr_unterminated(wm_msg *m)
{
    memset(m->updates[0].addr, 'a', sizeof(m->updates[0].addr));
    memcpy(m->updates[0].addr, "tcp://", 6);
}

static void
sp_last_addr_bad(wm_msg *m)
{
    set_str(m->updates[m->nupdates - 1].addr, "tcp://\x01");
}

static void
sp_digest_flags(wm_msg *m)
{
    m->flags = 4;
}

static void
sp_digest_no_full(wm_msg *m)
{
    m->flags = WM_DIGEST_REPLY;
}

static void
sp_digest_1025(wm_msg *m)
{
    m->ndigest = WM_WIRE_MAX_DIGEST + 1;
}

static void
sp_entries_0(wm_msg *m)
{
    m->nentries = 0;
}

static void
sp_entries_65(wm_msg *m)
{
    m->nentries = WM_WIRE_MAX_ENTRIES + 1;
}

static void
sp_seq_0(wm_msg *m)
{
    m->entries[0].seq = 0;
}

static void
sp_op_0(wm_msg *m)
{
    m->entries[0].op = 0;
}

static void
sp_op_3(wm_msg *m)
{
    m->entries[m->nentries - 1].op = 3;
}

static void
sp_source_0(wm_msg *m)
{
    m->entries[0].source = 0;
}

static void
sp_source_4(wm_msg *m)
{
    m->entries[0].source = 4;
}

static void
sp_name_empty(wm_msg *m)
{
    m->entries[0].filename[0] = '\0';
}

static void
sp_name_slash(wm_msg *m)
{
    set_str(m->entries[0].filename, "../x-1.0-py3-none-any.whl");
}

static void
sp_name_backslash(wm_msg *m)
{
    set_str(m->entries[0].filename, "a\\x-1.0-py3-none-any.whl");
}

static void
sp_name_dotdot(wm_msg *m)
{
    set_str(m->entries[0].filename, "..");
}

static void
sp_name_tab(wm_msg *m)
{
    set_str(m->entries[0].filename, "x\t-1.0-py3-none-any.whl");
}

static void
sp_name_unterminated(wm_msg *m)
{
    memset(m->entries[0].filename, 'a', sizeof(m->entries[0].filename));
}

static void
sp_fetch_flags(wm_msg *m)
{
    m->flags = 2;
}

static void
sp_fetch_name(wm_msg *m)
{
    set_str(m->filename, "a/b.whl");
}

static void
sp_fetch_dot(wm_msg *m)
{
    set_str(m->filename, ".");
}

static void
sp_status_3(wm_msg *m)
{
    m->status = 3;
}

static void
sp_type_0(wm_msg *m)
{
    m->type = 0;
}

static void
sp_type_10(wm_msg *m)
{
    m->type = 10;
}

static const struct enc_case enc_cases[] = {
    {"17 updates", M_PING, sp_updates_17},
    {"state 3", B_PING, sp_state_3},
    {"req state 3", B_PING_REQ, sp_state_3},
    {"empty addr", B_ACK, sp_addr_empty},
    {"udp addr", B_PING, sp_addr_udp},
    {"bare tcp://", B_PING, sp_addr_bare},
    {"addr with CR", B_PING_REQ, sp_addr_ctrl},
    {"addr unterminated", B_PING, sp_addr_unterminated},
    {"last of 16 addrs", M_ACK, sp_last_addr_bad},
    {"digest flags 4", B_DIGEST0, sp_digest_flags},
    {"digest items, no FULL", B_DIGEST, sp_digest_no_full},
    {"1025 digest items", M_DIGEST, sp_digest_1025},
    {"no entries", B_ENTRIES, sp_entries_0},
    {"65 entries", M_ENTRIES, sp_entries_65},
    {"seq 0", B_ENTRIES, sp_seq_0},
    {"op 0", B_ENTRIES, sp_op_0},
    {"op 3 in last entry", M_ENTRIES, sp_op_3},
    {"source 0", B_ENTRIES, sp_source_0},
    {"source 4", B_ENTRIES, sp_source_4},
    {"empty name", B_ENTRIES, sp_name_empty},
    {"name with /", B_ENTRIES, sp_name_slash},
    {"name with \\", B_ENTRIES, sp_name_backslash},
    {"name ..", B_ENTRIES, sp_name_dotdot},
    {"name with tab", B_ENTRIES, sp_name_tab},
    {"name unterminated", B_ENTRIES, sp_name_unterminated},
    {"fetch flags 2", B_FETCH, sp_fetch_flags},
    {"fetch name with /", B_FETCH, sp_fetch_name},
    {"fetch name .", B_FETCH0, sp_fetch_dot},
    {"chunk status 3", B_CHUNK, sp_status_3},
    {"mapdata status 3", B_MAPDATA, sp_status_3},
    {"type 0", B_MAP, sp_type_0},
    {"type 10", B_MAP, sp_type_10},
};

static void
test_encode_refuses(void **state)
{
    wm_msg *m = msg_alloc();
    wm_buf out;

    wm_buf_init(&out, WM_WIRE_FRAME_MAX);
    for (size_t i = 0; i < N_ELEMS(enc_cases); i++) {
        build(enc_cases[i].base, m);
        enc_cases[i].spoil(m);
        if (wm_msg_encode(m, &out) != -EINVAL)
            fail_msg("%s: not refused", enc_cases[i].name);
        /* Nothing was appended. */
        assert_int_equal(out.len, 0);
        assert_false(out.failed);
    }
    wm_buf_free(&out);
    free(m);
}

/* A full buffer is -ENOMEM; encoding appends to what is there. */
static void
test_encode_buffer(void **state)
{
    wm_msg *m = msg_alloc();
    wm_buf out;

    build(B_PING, m);
    wm_buf_init(&out, P_LEN - 1);
    assert_int_equal(wm_msg_encode(m, &out), -ENOMEM);
    assert_true(out.failed);
    wm_buf_free(&out);

    wm_buf_init(&out, 2 * P_LEN);
    assert_int_equal(wm_msg_encode(m, &out), 0);
    assert_int_equal(wm_msg_encode(m, &out), 0);
    assert_int_equal(out.len, 2 * P_LEN);
    assert_memory_equal(out.data, out.data + P_LEN, P_LEN);
    wm_buf_free(&out);
    free(m);
}

/* ---- signed bytes and digest hash ---- */

static void
test_entry_signed_bytes(void **state)
{
    wm_msg *m = msg_alloc();
    uint8_t sb[WM_ENTRY_SIGNED_MAX];
    uint8_t *f;
    size_t len, n;

    /* The entry's encoding without its signature. */
    build(B_ENTRIES, m);
    f = encode_base(B_ENTRIES, &len);
    n = wm_entry_signed_bytes(&m->entries[0], sb);
    assert_int_equal(n, E_LEN - E_N - 1 - 64);
    assert_memory_equal(sb, f + E_N + 1, n);
    free(f);

    /* The longest name fits, and every field is covered. */
    build(M_ENTRIES, m);
    n = wm_entry_signed_bytes(&m->entries[0], sb);
    assert_int_equal(n, 32 + 8 + 8 + 1 + 8 + 32 + 32 + 1 + 1 + 255);
    assert_true(n <= WM_ENTRY_SIGNED_MAX);
    {
        uint8_t before[WM_ENTRY_SIGNED_MAX];
        wm_entry *e = &m->entries[0];

        memcpy(before, sb, n);
        e->size ^= 1;
        wm_entry_signed_bytes(e, sb);
        assert_memory_not_equal(before, sb, n);
        e->size ^= 1;
        e->source = 3 - e->source + 1;
        wm_entry_signed_bytes(e, sb);
        assert_memory_not_equal(before, sb, n);
    }

    /* An unterminated name is cut at the cap, not overread. */
    memset(m->entries[0].filename, 'a', sizeof(m->entries[0].filename));
    n = wm_entry_signed_bytes(&m->entries[0], sb);
    assert_true(n <= WM_ENTRY_SIGNED_MAX);
    free(m);
}

static void
test_digest_hash(void **state)
{
    wm_msg *m = msg_alloc();
    uint8_t raw[3 * 48], want[32], got[32], empty[32];

    build(M_DIGEST, m);
    /* sha256 over origin || generation (LE) || max_seq (LE), in order. */
    for (size_t i = 0; i < 3; i++) {
        uint8_t *p = raw + 48 * i;

        memcpy(p, m->digest[i].origin, 32);
        for (int k = 0; k < 8; k++) {
            p[32 + k] = (uint8_t)(m->digest[i].generation >> (8 * k));
            p[40 + k] = (uint8_t)(m->digest[i].max_seq >> (8 * k));
        }
    }
    wm_sha256_digest(raw, sizeof(raw), want);
    wm_digest_hash(m->digest, 3, got);
    assert_memory_equal(got, want, 32);

    /* Order matters. */
    {
        wm_digest_item swapped[2] = {m->digest[1], m->digest[0]};

        wm_digest_hash(m->digest, 2, want);
        wm_digest_hash(swapped, 2, got);
        assert_memory_not_equal(got, want, 32);
    }

    /* No items: the hash of nothing. */
    wm_sha256_digest("", 0, empty);
    wm_digest_hash(NULL, 0, got);
    assert_memory_equal(got, empty, 32);
    free(m);
}

/* ---- mutation sweep ---- */

/* Flips random bytes of valid frames: whatever still decodes must
 * re-encode to exactly the bytes it came from. */
static void
test_mutation_sweep(void **state)
{
    wm_msg *m = msg_alloc();
    wm_buf out;
    unsigned seed = 12345, accepted = 0;

    wm_buf_init(&out, WM_WIRE_FRAME_MAX);
    for (int b = 0; b <= B_MAPDATA; b++) {
        size_t len;
        uint8_t *f = encode_base(b, &len);
        uint8_t *g = malloc(len);

        assert_non_null(g);
        for (int iter = 0; iter < 3000; iter++) {
            int flips = 1 + iter % 3;

            memcpy(g, f, len);
            for (int k = 0; k < flips; k++) {
                seed = seed * 1103515245u + 12345u;
                g[(seed >> 8) % len] = (uint8_t)(seed >> 20);
            }
            if (wm_msg_decode(g, len, m, NULL) != 0)
                continue;
            accepted++;
            assert_int_equal(wm_msg_encode(m, &out), 0);
            assert_int_equal(out.len, len);
            assert_memory_equal(out.data, g, len);
            wm_buf_free(&out);
        }
        free(g);
        free(f);
    }
    /* Most flips land in hashes and ids, which any value fills. */
    assert_true(accepted > 1000);
    wm_buf_free(&out);
    free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_encode_buffer),
        cmocka_unit_test(test_entry_signed_bytes),
        cmocka_unit_test(test_digest_hash),
        cmocka_unit_test(test_mutation_sweep),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
