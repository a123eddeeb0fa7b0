/*
 * Unit tests for common/wire (format version 2): every message type
 * round-trips (also at its caps and in the variants a peer may send), the
 * byte layout is pinned by golden frames, a table of malformed frames is
 * refused with the right reason, every truncation of every valid frame is
 * refused, counters are refused from WM_WIRE_COUNTER_MAX on, encoding
 * refuses what decoding would refuse, the signed bytes of entries, claims
 * and alive statements cover every field but the signature itself and never
 * coincide across the three kinds, signatures made with real keys check out
 * and break when anything they cover changes, and a mutation sweep checks
 * that whatever decodes re-encodes to the same bytes.
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
#include "identity.h"
#include "wire.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Two keys for the signing tests, made once by the group setup. */
static wm_identity *key_a, *key_b;

/* ---- valid messages to start from ---- */

enum base {
    /* Small messages, fields at the offsets below. */
    B_PING,     /* one ALIVE update, with a node name */
    B_ACK,      /* a SUSPECT and a DEAD update: no statements */
    B_PING_REQ, /* one ALIVE update, empty node name */
    B_DIGEST,   /* FULL, one item */
    B_DIGEST0,  /* no flags, no items */
    B_ENTRIES,  /* one add with a claim */
    B_ENTRIES0, /* one remove, no claim */
    B_FETCH,    /* with a filename */
    B_FETCH0,   /* without */
    B_CHUNK,
    B_MAP,
    B_MAPDATA,
    B_SYNC,     /* ASK, one ALIVE update */
    B_HAVE,     /* ASK, 11 chunks: 0, 2 and 9 held */
    /* Every count and string at its cap, every shape of update and entry
     * mixed, the last update's and entry's counters at
     * WM_WIRE_COUNTER_MAX - 1. */
    M_PING,
    M_ACK,
    M_PING_REQ,
    M_DIGEST,
    M_ENTRIES,
    M_FETCH,
    M_HAVE, /* 65,536 chunks, all held */
    N_BASES
};

/* The shapes of an entry. */
enum shape { SH_CLAIM, SH_REMOVE, SH_ADD };

#define ADDR      "tcp://10.0.0.1:7391"
#define ADDR_LEN  19
#define NODE      "node-a"
#define NODE_LEN  6
#define NAME      "x-1.0-py3-none-any.whl"
#define NAME_LEN  22
#define PYVER     ">=3.8"
#define PYVER_LEN 5
#define SIG       WM_SIG_BYTES

/* Encoded sizes: an update without a statement, the statement that
 * follows an ALIVE one, an entry without a claim, the claim in one. */
#define UPD_LEN         (32 + 1 + 8)
#define STMT_LEN(a, n)  (1 + (a) + 1 + (n) + SIG)
#define ENTRY_LEN       (32 + 8 + 8 + 1 + 32 + 8 + 32 + 1 + SIG)
#define CLAIM_LEN(f, p) (32 + 1 + (f) + 1 + (p) + SIG)

/* Byte offsets in the small messages (pinned by test_layout). */
#define P_SEQ     3
#define P_NUPD    7
#define P_ID      8
#define P_STATE   (P_ID + 32)
#define P_INC     (P_STATE + 1)
#define P_ALEN    (P_INC + 8)
#define P_ADDR    (P_ALEN + 1)
#define P_NLEN    (P_ADDR + ADDR_LEN)
#define P_NAME    (P_NLEN + 1)
#define P_SIG     (P_NAME + NODE_LEN)
#define P_LEN     (P_SIG + SIG)
#define A_NUPD    7
#define A_STATE0  (A_NUPD + 1 + 32)
#define A_INC0    (A_STATE0 + 1)
#define A_STATE1  (A_INC0 + 8 + 32)
#define A_INC1    (A_STATE1 + 1)
#define A_LEN     (A_INC1 + 8)
#define R_NUPD    (3 + 4 + 32)
#define R_STATE   (R_NUPD + 1 + 32)
#define R_INC     (R_STATE + 1)
#define R_ALEN    (R_INC + 8)
#define R_ADDR    (R_ALEN + 1)
#define R_NLEN    (R_ADDR + ADDR_LEN)
#define R_SIG     (R_NLEN + 1)
#define R_LEN     (R_SIG + SIG)
#define D_FLAGS   3
#define D_N       (D_FLAGS + 1 + 32)
#define D_LEN     (D_N + 2 + 48)
#define E_N       3
#define E_ORIGIN  (E_N + 1)
#define E_GEN     (E_ORIGIN + 32)
#define E_SEQ     (E_GEN + 8)
#define E_OP      (E_SEQ + 8)
#define E_SHA     (E_OP + 1)
#define E_SIZE    (E_SHA + 32)
#define E_ROOT    (E_SIZE + 8)
#define E_HAS     (E_ROOT + 32)
#define E_PUB     (E_HAS + 1)
#define E_FNLEN   (E_PUB + 32)
#define E_FN      (E_FNLEN + 1)
#define E_PYLEN   (E_FN + NAME_LEN)
#define E_PY      (E_PYLEN + 1)
#define E_CSIG    (E_PY + PYVER_LEN)
#define E_SIG     (E_CSIG + SIG)
#define E_LEN     (E_SIG + SIG)
#define E0_SIG    (E_HAS + 1)
#define E0_LEN    (E0_SIG + SIG)
#define F_IDX     (3 + 32)
#define F_FLAGS   (F_IDX + 4)
#define F_FNLEN   (F_FLAGS + 1)
#define F_FN      (F_FNLEN + 1)
#define F_LEN     (F_FN + NAME_LEN)
#define C_STATUS  (3 + 32 + 4)
#define MD_STATUS (3 + 32)
#define H_FLAGS   (3 + 32)
#define H_COUNT   (H_FLAGS + 1)
#define H_BITMAP  (H_COUNT + 4)

/* The domain strings that open the signed bytes (NUL included). Pinned:
 * changing one invalidates every signature in a cluster. */
#define DOM_ENTRY "wheelmesh-holding-v2"
#define DOM_CLAIM "wheelmesh-claim-v2"
#define DOM_ALIVE "wheelmesh-alive-v2"

/* Fills N bytes with a pattern that differs per SEED, so a field swapped
 * with another shows. */
static void
fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

/* A string of exactly LEN printable bytes after PREFIX, walking through
 * every printable byte a filename allows (all but '/' and '\\'). */
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

static uint64_t
get_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void
put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Update I in STATE; an ALIVE one carries a statement (at its caps when
 * MAX) with a made-up signature. */
static void
make_update(wm_member_update *u, unsigned i, uint8_t state, int max)
{
    fill(u->id, sizeof(u->id), 100 + i);
    u->state = state;
    u->incarnation = 0x0102030405060708ull * (i + 1);
    if (state != WM_ALIVE)
        return;
    u->alive.incarnation = u->incarnation;
    if (max) {
        fill_str(u->alive.addr, "tcp://", WM_WIRE_ADDR_MAX);
        fill_str(u->alive.name, "", WM_WIRE_NODE_MAX);
    } else {
        set_str(u->alive.addr, ADDR);
        set_str(u->alive.name, NODE);
    }
    fill(u->alive.sig, SIG, 150 + i);
}

/* Entry I of SHAPE (its strings at their caps when MAX), with made-up
 * signatures. */
static void
make_entry(wm_entry *e, unsigned i, enum shape shape, int max)
{
    fill(e->origin, sizeof(e->origin), 200 + i);
    e->generation = 0x1112131415161718ull + i;
    e->seq = i + 1;
    e->op = shape == SH_REMOVE ? WM_OP_REMOVE : WM_OP_ADD;
    fill(e->sha256, 32, 300 + i);
    e->size = UINT64_MAX - i;
    fill(e->chunks_root, 32, 400 + i);
    e->has_claim = shape == SH_CLAIM;
    if (e->has_claim) {
        fill(e->claim.publisher, WM_ID_LEN, 600 + i);
        if (max) {
            fill_str(e->claim.filename, "", WM_WIRE_NAME_MAX);
            fill_str(e->claim.requires_python, "", WM_WIRE_PYVER_MAX);
        } else {
            set_str(e->claim.filename, NAME);
            set_str(e->claim.requires_python, PYVER);
        }
        fill(e->claim.sig, SIG, 700 + i);
    }
    fill(e->sig, SIG, 500 + i);
}

/* Builds base B into M (zeroed first). */
static void
build(int b, wm_msg *m)
{
    wm_member_update *last;
    size_t i;

    memset(m, 0, sizeof(*m));
    switch (b) {
    case B_PING:
        m->type = WM_MSG_PING;
        m->seq = 0xa1a2a3a4;
        m->nupdates = 1;
        make_update(&m->updates[0], 0, WM_ALIVE, 0);
        break;
    case B_ACK:
        m->type = WM_MSG_ACK;
        m->seq = 0xa1a2a3a4;
        m->nupdates = 2;
        make_update(&m->updates[0], 0, WM_SUSPECT, 0);
        make_update(&m->updates[1], 1, WM_DEAD, 0);
        break;
    case B_PING_REQ:
        m->type = WM_MSG_PING_REQ;
        m->seq = UINT32_MAX;
        fill(m->target, sizeof(m->target), 7);
        m->nupdates = 1;
        make_update(&m->updates[0], 0, WM_ALIVE, 0);
        m->updates[0].alive.name[0] = '\0';
        break;
    case M_PING:
    case M_ACK:
    case M_PING_REQ:
        m->type = b == M_PING  ? WM_MSG_PING
                  : b == M_ACK ? WM_MSG_ACK
                               : WM_MSG_PING_REQ;
        m->seq = b == M_PING_REQ ? UINT32_MAX : 0xa1a2a3a4;
        if (b == M_PING_REQ)
            fill(m->target, sizeof(m->target), 7);
        m->nupdates = WM_WIRE_MAX_UPDATES;
        for (i = 0; i < m->nupdates; i++)
            make_update(&m->updates[i], (unsigned)i, (uint8_t)(i % 3), 1);
        last = &m->updates[m->nupdates - 1];
        last->incarnation = WM_WIRE_COUNTER_MAX - 1;
        last->alive.incarnation = last->incarnation;
        break;
    case B_DIGEST:
    case M_DIGEST:
        m->type = WM_MSG_DIGEST;
        m->flags =
            b == M_DIGEST ? WM_DIGEST_FULL | WM_DIGEST_REPLY : WM_DIGEST_FULL;
        m->ndigest = b == M_DIGEST ? WM_WIRE_MAX_DIGEST : 1;
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
    case B_ENTRIES0:
        m->type = WM_MSG_ENTRIES;
        m->nentries = 1;
        make_entry(&m->entries[0], 0, b == B_ENTRIES ? SH_CLAIM : SH_REMOVE, 0);
        break;
    case M_ENTRIES:
        m->type = WM_MSG_ENTRIES;
        m->nentries = WM_WIRE_MAX_ENTRIES;
        for (i = 0; i < m->nentries; i++)
            make_entry(&m->entries[i], (unsigned)i, (enum shape)(i % 3), 1);
        m->entries[m->nentries - 1].generation = WM_WIRE_COUNTER_MAX - 1;
        m->entries[m->nentries - 1].seq = WM_WIRE_COUNTER_MAX - 1;
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
        m->status = WM_CHUNK_BUSY;
        break;
    case B_SYNC:
        m->type = WM_MSG_SYNC;
        m->seq = 0xa1a2a3a4;
        m->flags = WM_SYNC_ASK;
        m->nupdates = 1;
        make_update(&m->updates[0], 0, WM_ALIVE, 0);
        break;
    case B_HAVE:
        m->type = WM_MSG_HAVE;
        fill(m->sha256, 32, 15);
        m->flags = WM_HAVE_ASK;
        m->nchunks = 11;
        m->bitmap[0] = 0x05;
        m->bitmap[1] = 0x02;
        break;
    case M_HAVE:
        m->type = WM_MSG_HAVE;
        fill(m->sha256, 32, 16);
        m->nchunks = WM_WIRE_MAX_CHUNKS;
        memset(m->bitmap, 0xff, sizeof(m->bitmap));
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

/* Encodes M, which must be valid; the caller frees the returned bytes. */
static uint8_t *
encode(const wm_msg *m, size_t *len)
{
    wm_buf out;
    char *data;

    wm_buf_init(&out, WM_WIRE_FRAME_MAX);
    assert_int_equal(wm_msg_encode(m, &out), 0);
    data = wm_buf_steal(&out, len);
    assert_non_null(data);
    return (uint8_t *)data;
}

/* Encodes base B; the caller frees the returned bytes. */
static uint8_t *
encode_base(int b, size_t *len)
{
    wm_msg *m = msg_alloc();
    uint8_t *f;

    build(b, m);
    f = encode(m, len);
    free(m);
    return f;
}

/* ---- round trip ---- */

static void
assert_update_equal(const wm_member_update *a, const wm_member_update *b)
{
    assert_memory_equal(a->id, b->id, WM_ID_LEN);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->incarnation, b->incarnation);
    if (a->state != WM_ALIVE)
        return;
    assert_int_equal(a->alive.incarnation, b->alive.incarnation);
    assert_string_equal(a->alive.addr, b->alive.addr);
    assert_string_equal(a->alive.name, b->alive.name);
    assert_memory_equal(a->alive.sig, b->alive.sig, SIG);
}

static void
assert_entry_equal(const wm_entry *a, const wm_entry *b)
{
    assert_memory_equal(a->origin, b->origin, WM_ID_LEN);
    assert_int_equal(a->generation, b->generation);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->op, b->op);
    assert_memory_equal(a->sha256, b->sha256, 32);
    assert_int_equal(a->size, b->size);
    assert_memory_equal(a->chunks_root, b->chunks_root, 32);
    assert_int_equal(a->has_claim, b->has_claim);
    if (a->has_claim) {
        assert_memory_equal(a->claim.publisher, b->claim.publisher, WM_ID_LEN);
        assert_string_equal(a->claim.filename, b->claim.filename);
        assert_string_equal(a->claim.requires_python, b->claim.requires_python);
        assert_memory_equal(a->claim.sig, b->claim.sig, SIG);
    }
    assert_memory_equal(a->sig, b->sig, SIG);
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
    case WM_MSG_SYNC:
        assert_int_equal(a->seq, b->seq);
        if (a->type == WM_MSG_PING_REQ)
            assert_memory_equal(a->target, b->target, WM_ID_LEN);
        if (a->type == WM_MSG_SYNC)
            assert_int_equal(a->flags, b->flags);
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
    case WM_MSG_HAVE:
        assert_memory_equal(a->sha256, b->sha256, 32);
        assert_int_equal(a->flags, b->flags);
        assert_int_equal(a->nchunks, b->nchunks);
        assert_memory_equal(a->bitmap, b->bitmap, (a->nchunks + 7) / 8);
        break;
    default:
        fail_msg("unexpected type %d", a->type);
    }
}

/* M encodes, decodes to the same fields, and the decoded message encodes
 * to the very same bytes. WHAT names M in a failure. */
static void
assert_round_trip(const wm_msg *m, const char *what)
{
    wm_msg *d = msg_alloc();
    const char *why = "unset";
    uint8_t *frame, *again;
    size_t len, len2;

    frame = encode(m, &len);
    assert_true(len <= WM_WIRE_FRAME_MAX);
    if (wm_msg_decode(frame, len, d, &why) != 0)
        fail_msg("%s: refused: %s", what, why);
    assert_null(why);
    assert_msg_equal(m, d);
    again = encode(d, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(again, frame, len);
    free(again);
    free(frame);
    free(d);
}

static void
test_round_trip(void **state)
{
    wm_msg *m = msg_alloc();

    for (int b = 0; b < N_BASES; b++) {
        char what[32];

        snprintf(what, sizeof(what), "base %d", b);
        build(b, m);
        assert_round_trip(m, what);
    }
    free(m);
}

/* Valid variants of the bases, some at a cap, some with fields the
 * encoding leaves out. Each must round-trip like a base. */
struct ok_case {
    const char *name;
    int base;
    void (*vary)(wm_msg *m);
};

static void
ok_inc_top(wm_msg *m)
{
    m->updates[0].incarnation = WM_WIRE_COUNTER_MAX - 1;
    m->updates[0].alive.incarnation = WM_WIRE_COUNTER_MAX - 1;
}

static void
ok_inc_0(wm_msg *m)
{
    m->updates[0].incarnation = 0;
    m->updates[0].alive.incarnation = 0;
}

static void
ok_suspect_inc_top(wm_msg *m)
{
    m->updates[0].incarnation = WM_WIRE_COUNTER_MAX - 1;
}

static void
ok_no_updates(wm_msg *m)
{
    m->nupdates = 0;
}

static void
ok_name_empty(wm_msg *m)
{
    m->updates[0].alive.name[0] = '\0';
}

static void
ok_name_max(wm_msg *m)
{
    fill_str(m->updates[0].alive.name, "", WM_WIRE_NODE_MAX);
}

static void
ok_name_slash(wm_msg *m)
{
    set_str(m->updates[0].alive.name, "rack 3/node a");
}

static void
ok_addr_max(wm_msg *m)
{
    fill_str(m->updates[0].alive.addr, "tcp://", WM_WIRE_ADDR_MAX);
}

static void
ok_addr_short(wm_msg *m)
{
    set_str(m->updates[0].alive.addr, "tcp://x");
}

/* SUSPECT and DEAD carry no statement: whatever is in the struct is not
 * sent (and need not be valid). */
static void
ok_suspect_junk(wm_msg *m)
{
    memset(&m->updates[0].alive, 0xff, sizeof(m->updates[0].alive));
    memset(&m->updates[1].alive, 0x01, sizeof(m->updates[1].alive));
}

static void
ok_gen_top(wm_msg *m)
{
    m->entries[0].generation = WM_WIRE_COUNTER_MAX - 1;
}

static void
ok_gen_0(wm_msg *m)
{
    m->entries[0].generation = 0;
}

static void
ok_seq_top(wm_msg *m)
{
    m->entries[0].seq = WM_WIRE_COUNTER_MAX - 1;
}

static void
ok_size_0(wm_msg *m)
{
    m->entries[0].size = 0;
}

static void
ok_pyver_empty(wm_msg *m)
{
    m->entries[0].claim.requires_python[0] = '\0';
}

static void
ok_pyver_max(wm_msg *m)
{
    fill_str(m->entries[0].claim.requires_python, "", WM_WIRE_PYVER_MAX);
}

static void
ok_filename_max(wm_msg *m)
{
    fill_str(m->entries[0].claim.filename, "", WM_WIRE_NAME_MAX);
}

static void
ok_filename_dots(wm_msg *m)
{
    set_str(m->entries[0].claim.filename, "...");
}

static void
ok_filename_one(wm_msg *m)
{
    set_str(m->entries[0].claim.filename, "x");
}

/* An add without a claim: the claim in the struct is not sent. */
static void
ok_add_no_claim(wm_msg *m)
{
    m->entries[0].has_claim = 0;
    memset(m->entries[0].claim.filename, '/',
           sizeof(m->entries[0].claim.filename));
}

static void
ok_remove_junk_claim(wm_msg *m)
{
    memset(&m->entries[0].claim, 0x01, sizeof(m->entries[0].claim));
}

static void
ok_status_ok(wm_msg *m)
{
    m->status = WM_CHUNK_OK;
}

static void
ok_status_missing(wm_msg *m)
{
    m->status = WM_CHUNK_MISSING;
}

static void
ok_status_later(wm_msg *m)
{
    m->status = WM_CHUNK_LATER;
}

static void
ok_status_busy(wm_msg *m)
{
    m->status = WM_CHUNK_BUSY;
}

static void
ok_flags_0(wm_msg *m)
{
    m->flags = 0;
}

static void
ok_digest_reply(wm_msg *m)
{
    m->flags = WM_DIGEST_REPLY;
}

static void
ok_have_one(wm_msg *m)
{
    m->nchunks = 1;
    memset(m->bitmap, 0, 2);
}

static void
ok_have_eight(wm_msg *m)
{
    m->nchunks = 8;
    m->bitmap[0] = 0xff;
    m->bitmap[1] = 0;
}

static const struct ok_case ok_cases[] = {
    {"incarnation 2^62 - 1", B_PING, ok_inc_top},
    {"req incarnation 2^62 - 1", B_PING_REQ, ok_inc_top},
    {"incarnation 0", B_PING, ok_inc_0},
    {"suspect incarnation 2^62 - 1", B_ACK, ok_suspect_inc_top},
    {"no updates", B_PING, ok_no_updates},
    {"req no updates", B_PING_REQ, ok_no_updates},
    {"name empty", B_PING, ok_name_empty},
    {"name of 64", B_PING, ok_name_max},
    {"name with / and space", B_PING_REQ, ok_name_slash},
    {"addr of 128", B_PING_REQ, ok_addr_max},
    {"addr tcp://x", B_PING, ok_addr_short},
    {"statement junk not sent", B_ACK, ok_suspect_junk},
    {"generation 2^62 - 1", B_ENTRIES, ok_gen_top},
    {"generation 0", B_ENTRIES0, ok_gen_0},
    {"seq 2^62 - 1", B_ENTRIES, ok_seq_top},
    {"remove seq 2^62 - 1", B_ENTRIES0, ok_seq_top},
    {"size 0", B_ENTRIES, ok_size_0},
    {"requires_python empty", B_ENTRIES, ok_pyver_empty},
    {"requires_python of 128", B_ENTRIES, ok_pyver_max},
    {"filename of 255", B_ENTRIES, ok_filename_max},
    {"filename ...", B_ENTRIES, ok_filename_dots},
    {"filename of 1", B_ENTRIES, ok_filename_one},
    {"add without claim", B_ENTRIES, ok_add_no_claim},
    {"remove, claim junk not sent", B_ENTRIES0, ok_remove_junk_claim},
    {"chunk OK", B_CHUNK, ok_status_ok},
    {"chunk MISSING", B_CHUNK, ok_status_missing},
    {"chunk BUSY", B_CHUNK, ok_status_busy},
    {"mapdata OK", B_MAPDATA, ok_status_ok},
    {"mapdata LATER", B_MAPDATA, ok_status_later},
    {"mapdata BUSY", B_MAPDATA, ok_status_busy},
    {"fetch flags 0", B_FETCH, ok_flags_0},
    {"sync, no ASK", B_SYNC, ok_flags_0},
    {"sync, no updates", B_SYNC, ok_no_updates},
    {"have, no ASK", B_HAVE, ok_flags_0},
    {"have, one chunk, none held", B_HAVE, ok_have_one},
    {"have, 8 chunks, all held", B_HAVE, ok_have_eight},
    {"digest REPLY, no items", B_DIGEST0, ok_digest_reply},
};

static void
test_variants(void **state)
{
    wm_msg *m = msg_alloc();

    for (size_t i = 0; i < N_ELEMS(ok_cases); i++) {
        build(ok_cases[i].base, m);
        ok_cases[i].vary(m);
        assert_round_trip(m, ok_cases[i].name);
    }
    free(m);
}

/* The exact bytes, so the layout cannot drift without a test noticing. */
static void
test_layout(void **state)
{
    /* M_PING: 16 updates, every third ALIVE (0, 3, ..., 15). */
    enum { N_ALIVE = (WM_WIRE_MAX_UPDATES + 2) / 3 };
    /* M_ENTRIES: 64 entries, every third with a claim (0, 3, ..., 63). */
    enum { N_CLAIM = (WM_WIRE_MAX_ENTRIES + 2) / 3 };
    enum {
        M_PING_LEN = 3 + 4 + 1 + WM_WIRE_MAX_UPDATES * UPD_LEN +
                     N_ALIVE * STMT_LEN(WM_WIRE_ADDR_MAX, WM_WIRE_NODE_MAX)
    };
    static const struct {
        int base;
        size_t len;
    } lens[] = {
        {B_PING, P_LEN},
        {B_ACK, A_LEN},
        {B_PING_REQ, R_LEN},
        {B_DIGEST, D_LEN},
        {B_DIGEST0, D_N + 2},
        {B_ENTRIES, E_LEN},
        {B_ENTRIES0, E0_LEN},
        {B_FETCH, F_LEN},
        {B_FETCH0, F_FN},
        {B_CHUNK, C_STATUS + 1},
        {B_MAP, 3 + 32},
        {B_MAPDATA, MD_STATUS + 1},
        {B_SYNC, P_LEN + 1}, /* a PING with a flags byte after the seq */
        {B_HAVE, H_BITMAP + 2},
        {M_HAVE, H_BITMAP + WM_WIRE_MAX_CHUNKS / 8},
        {M_PING, M_PING_LEN},
        {M_ACK, M_PING_LEN},
        {M_PING_REQ, M_PING_LEN + 32},
        {M_DIGEST, 3 + 1 + 32 + 2 + WM_WIRE_MAX_DIGEST * 48},
        {M_ENTRIES,
         3 + 1 + WM_WIRE_MAX_ENTRIES * ENTRY_LEN +
             N_CLAIM * CLAIM_LEN(WM_WIRE_NAME_MAX, WM_WIRE_PYVER_MAX)},
        {M_FETCH, F_FN + WM_WIRE_NAME_MAX},
    };
    static const uint8_t ping_head[] = {
        'W', 2, WM_MSG_PING, 0xa4, 0xa3, 0xa2, 0xa1, /* seq */
        1,                                           /* nupdates */
    };
    static const uint8_t upd_tail[] = {
        WM_ALIVE, 8, 7, 6, 5, 4, 3, 2, 1, ADDR_LEN, /* state, inc, addrlen */
    };
    static const uint8_t chunk_tail[] = {4, 3, 2, 1, WM_CHUNK_LATER};
    wm_msg *m = msg_alloc();
    uint8_t *f;
    size_t len;

    assert_int_equal(N_ALIVE, 6);
    assert_int_equal(N_CLAIM, 22);
    for (size_t i = 0; i < N_ELEMS(lens); i++) {
        f = encode_base(lens[i].base, &len);
        if (len != lens[i].len)
            fail_msg("base %d: %zu bytes, expected %zu", lens[i].base, len,
                     lens[i].len);
        free(f);
    }

    build(B_PING, m);
    f = encode(m, &len);
    assert_memory_equal(f, ping_head, sizeof(ping_head));
    assert_memory_equal(f + P_ID, m->updates[0].id, 32);
    assert_memory_equal(f + P_STATE, upd_tail, sizeof(upd_tail));
    assert_memory_equal(f + P_ADDR, ADDR, ADDR_LEN);
    assert_int_equal(f[P_NLEN], NODE_LEN);
    assert_memory_equal(f + P_NAME, NODE, NODE_LEN);
    assert_memory_equal(f + P_SIG, m->updates[0].alive.sig, SIG);
    free(f);

    /* No statement after SUSPECT and DEAD. */
    f = encode_base(B_ACK, &len);
    assert_memory_equal(f, "W\002\002", 3);
    assert_int_equal(f[A_NUPD], 2);
    assert_int_equal(f[A_STATE0], WM_SUSPECT);
    assert_int_equal(f[A_INC0 + 7], 0x01);
    assert_int_equal(f[A_STATE1], WM_DEAD);
    assert_int_equal(f[A_INC1 + 7], 0x02);
    free(f);

    f = encode_base(B_PING_REQ, &len);
    assert_memory_equal(f, "W\002\003\377\377\377\377", 7);
    assert_int_equal(f[R_NUPD], 1);
    assert_int_equal(f[R_ALEN], ADDR_LEN);
    assert_int_equal(f[R_NLEN], 0);
    free(f);

    f = encode_base(B_CHUNK, &len);
    assert_memory_equal(f, "W\002\007", 3);
    assert_memory_equal(f + C_STATUS - 4, chunk_tail, sizeof(chunk_tail));
    free(f);

    f = encode_base(B_MAPDATA, &len);
    assert_int_equal(f[MD_STATUS], WM_CHUNK_BUSY);
    assert_int_equal(WM_CHUNK_BUSY, 3);
    free(f);

    f = encode_base(B_DIGEST, &len);
    assert_int_equal(f[D_FLAGS], WM_DIGEST_FULL);
    assert_int_equal(f[D_N], 1);
    assert_int_equal(f[D_N + 1], 0);
    free(f);

    build(B_ENTRIES, m);
    f = encode(m, &len);
    assert_int_equal(f[E_N], 1);
    assert_memory_equal(f + E_ORIGIN, m->entries[0].origin, 32);
    assert_int_equal(get_le(f + E_GEN, 8), 0x1112131415161718ull);
    assert_int_equal(get_le(f + E_SEQ, 8), 1);
    assert_int_equal(f[E_OP], WM_OP_ADD);
    assert_memory_equal(f + E_SHA, m->entries[0].sha256, 32);
    assert_int_equal(get_le(f + E_SIZE, 8), UINT64_MAX);
    assert_memory_equal(f + E_ROOT, m->entries[0].chunks_root, 32);
    assert_int_equal(f[E_HAS], 1);
    assert_memory_equal(f + E_PUB, m->entries[0].claim.publisher, 32);
    assert_int_equal(f[E_FNLEN], NAME_LEN);
    assert_memory_equal(f + E_FN, NAME, NAME_LEN);
    assert_int_equal(f[E_PYLEN], PYVER_LEN);
    assert_memory_equal(f + E_PY, PYVER, PYVER_LEN);
    assert_memory_equal(f + E_CSIG, m->entries[0].claim.sig, SIG);
    assert_memory_equal(f + E_SIG, m->entries[0].sig, SIG);
    free(f);

    f = encode_base(B_ENTRIES0, &len);
    assert_int_equal(f[E_OP], WM_OP_REMOVE);
    assert_int_equal(f[E_HAS], 0);
    free(f);

    f = encode_base(B_FETCH, &len);
    assert_int_equal(f[F_FLAGS], WM_FETCH_UPSTREAM);
    assert_int_equal(f[F_FNLEN], NAME_LEN);
    free(f);
    free(m);
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
    {"version 1", B_PING, {SET(1, 1)}, "bad version"},
    {"version 1 entries", B_ENTRIES, {SET(1, 1)}, "bad version"},
    {"version 3", B_ACK, {SET(1, 3)}, "bad version"},
    {"version 255", B_MAP, {SET(1, 255)}, "bad version"},
    {"type 0", B_PING, {SET(2, 0)}, "unknown type"},
    {"type 12", B_MAP, {SET(2, 12)}, "unknown type"},
    {"type 255", B_MAP, {SET(2, 255)}, "unknown type"},
    {"header only", B_MAP, {CUT(3)}, "truncated"},
    /* Trailing bytes, for every type. */
    {"trailing PING", B_PING, {ADD(0)}, "trailing bytes"},
    {"trailing ACK", B_ACK, {ADD(1)}, "trailing bytes"},
    {"trailing PING_REQ", B_PING_REQ, {ADD('a')}, "trailing bytes"},
    {"trailing DIGEST", B_DIGEST, {ADD(0)}, "trailing bytes"},
    {"trailing DIGEST0", B_DIGEST0, {ADD(0)}, "trailing bytes"},
    {"trailing ENTRIES", B_ENTRIES, {ADD(0)}, "trailing bytes"},
    {"trailing ENTRIES0", B_ENTRIES0, {ADD(0)}, "trailing bytes"},
    {"trailing FETCH", B_FETCH, {ADD('l')}, "trailing bytes"},
    {"trailing FETCH0", B_FETCH0, {ADD(0)}, "trailing bytes"},
    {"trailing CHUNK", B_CHUNK, {ADD(0)}, "trailing bytes"},
    {"trailing MAP", B_MAP, {ADD(0)}, "trailing bytes"},
    {"trailing MAPDATA", B_MAPDATA, {ADD(0)}, "trailing bytes"},
    {"trailing SYNC", B_SYNC, {ADD(0)}, "trailing bytes"},
    {"trailing HAVE", B_HAVE, {ADD(0)}, "trailing bytes"},
    /* Counts. */
    {"updates 2, one there", B_PING, {SET(P_NUPD, 2)}, "truncated"},
    {"updates > data", B_PING, {SET(P_NUPD, 4)}, "count larger than the frame"},
    {"ack updates > data",
     B_ACK,
     {SET(A_NUPD, 3)},
     "count larger than the frame"},
    {"ack updates 1 of 2", B_ACK, {SET(A_NUPD, 1)}, "trailing bytes"},
    {"updates 17", B_PING, {SET(P_NUPD, 17)}, "too many updates"},
    {"updates 255", B_ACK, {SET(A_NUPD, 255)}, "too many updates"},
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
    {"entries0 > data",
     B_ENTRIES0,
     {SET(E_N, 2)},
     "count larger than the frame"},
    {"entries 65", B_ENTRIES, {SET(E_N, 65)}, "too many entries"},
    {"entries 255", B_ENTRIES0, {SET(E_N, 255)}, "too many entries"},
    {"addrlen > data", B_PING, {SET(P_ALEN, 100)}, "truncated"},
    {"fnlen > data", B_ENTRIES, {SET(E_FNLEN, 255)}, "truncated"},
    {"fetch fnlen > data", B_FETCH, {SET(F_FNLEN, 23)}, "truncated"},
    {"fetch fnlen short", B_FETCH, {SET(F_FNLEN, 21)}, "trailing bytes"},
    /* Member states and incarnations. */
    {"state 3", B_PING, {SET(P_STATE, 3)}, "bad member state"},
    {"state 255", B_PING_REQ, {SET(R_STATE, 255)}, "bad member state"},
    {"ack state 3", B_ACK, {SET(A_STATE1, 3)}, "bad member state"},
    {"DEAD made ALIVE: no statement",
     B_ACK,
     {SET(A_STATE1, WM_ALIVE)},
     "truncated"},
    {"ALIVE made SUSPECT: statement left over",
     B_PING,
     {SET(P_STATE, WM_SUSPECT)},
     "trailing bytes"},
    {"incarnation >= 2^62",
     B_PING,
     {SET(P_INC + 7, 0x40)},
     "incarnation out of range"},
    {"req incarnation top bit",
     B_PING_REQ,
     {SET(R_INC + 7, 0x80)},
     "incarnation out of range"},
    {"suspect incarnation >= 2^62",
     B_ACK,
     {SET(A_INC0 + 7, 0x40)},
     "incarnation out of range"},
    {"dead incarnation 0xff..",
     B_ACK,
     {SET(A_INC1 + 7, 0xff)},
     "incarnation out of range"},
    /* Entries: op, seq, generation, claim flag. */
    {"op 0", B_ENTRIES, {SET(E_OP, 0)}, "bad op"},
    {"op 3", B_ENTRIES0, {SET(E_OP, 3)}, "bad op"},
    {"seq 0", B_ENTRIES, {SET(E_SEQ, 0)}, "bad seq"},
    {"seq >= 2^62", B_ENTRIES, {SET(E_SEQ + 7, 0x40)}, "bad seq"},
    {"remove seq 0xff..", B_ENTRIES0, {SET(E_SEQ + 7, 0xff)}, "bad seq"},
    {"generation >= 2^62", B_ENTRIES, {SET(E_GEN + 7, 0x40)},
     "bad generation"},
    {"remove generation top bit",
     B_ENTRIES0,
     {SET(E_GEN + 7, 0x80)},
     "bad generation"},
    {"claim on a remove",
     B_ENTRIES,
     {SET(E_OP, WM_OP_REMOVE)},
     "bad claim flag"},
    {"has_claim 1 on a remove", B_ENTRIES0, {SET(E_HAS, 1)}, "bad claim flag"},
    {"has_claim 2", B_ENTRIES, {SET(E_HAS, 2)}, "bad claim flag"},
    {"has_claim 255", B_ENTRIES0, {SET(E_HAS, 255)}, "bad claim flag"},
    {"has_claim 0, claim there", B_ENTRIES, {SET(E_HAS, 0)}, "trailing bytes"},
    /* Flags and status. */
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
    {"sync flags 2", B_SYNC, {SET(3 + 4, 2)}, "bad flags"},
    {"sync flags 0xff", B_SYNC, {SET(3 + 4, 0xff)}, "bad flags"},
    {"sync flags cut", B_SYNC, {CUT(3 + 4)}, "truncated"},
    {"have flags 2", B_HAVE, {SET(H_FLAGS, 2)}, "bad flags"},
    {"have 0 chunks", B_HAVE, {SET(H_COUNT, 0)}, "bad chunk count"},
    {"have 65,537 chunks",
     B_HAVE,
     {SET(H_COUNT, 1), SET(H_COUNT + 2, 1)},
     "bad chunk count"},
    {"have count cut", B_HAVE, {CUT(H_COUNT + 2)}, "truncated"},
    {"have bitmap cut", B_HAVE, {CUT(H_BITMAP + 1)}, "truncated"},
    {"have 8 chunks, 2 bytes of bitmap", B_HAVE, {SET(H_COUNT, 8)},
     "trailing bytes"},
    {"have bit 11 of 11", B_HAVE, {SET(H_BITMAP + 1, 0x0a)},
     "bits past the last chunk"},
    {"have bit 15 of 11", B_HAVE, {SET(H_BITMAP + 1, 0x80)},
     "bits past the last chunk"},
    {"chunk status 4", B_CHUNK, {SET(C_STATUS, 4)}, "bad status"},
    {"chunk status 255", B_CHUNK, {SET(C_STATUS, 255)}, "bad status"},
    {"mapdata status 4", B_MAPDATA, {SET(MD_STATUS, 4)}, "bad status"},
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
    {"addrlen 255", B_PING_REQ, {SET(R_ALEN, 255)}, "bad address"},
    /* Node names. */
    {"name of 65", B_PING, {SET(P_NLEN, 65)}, "bad node name"},
    {"name of 255", B_PING_REQ, {SET(R_NLEN, 255)}, "bad node name"},
    {"name newline", B_PING, {SET(P_NAME + 2, '\n')}, "bad node name"},
    {"name tab", B_PING, {SET(P_NAME, '\t')}, "bad node name"},
    {"name NUL", B_PING, {SET(P_NAME + 5, 0)}, "bad node name"},
    {"name DEL", B_PING, {SET(P_NAME + 1, 0x7f)}, "bad node name"},
    {"name high byte", B_PING, {SET(P_NAME + 3, 0xe9)}, "bad node name"},
    /* Signatures. */
    {"no alive sig", B_PING, {CUT(P_SIG)}, "truncated"},
    {"alive sig short", B_PING, {CUT(P_SIG + 63)}, "truncated"},
    {"req alive sig short", B_PING_REQ, {CUT(R_SIG + 1)}, "truncated"},
    {"no name after addr", B_PING, {CUT(P_NLEN)}, "truncated"},
    {"claim sig short", B_ENTRIES, {CUT(E_CSIG + 10)}, "truncated"},
    {"no entry sig", B_ENTRIES, {CUT(E_SIG)}, "truncated"},
    {"entry sig short", B_ENTRIES, {CUT(E_SIG + 63)}, "truncated"},
    {"remove sig short: below the smallest entry",
     B_ENTRIES0,
     {CUT(E0_SIG + 32)},
     "count larger than the frame"},
    /* Claim filenames. */
    {"name with /", B_ENTRIES, {SET(E_FN + 1, '/')}, "bad filename"},
    {"name with \\", B_ENTRIES, {SET(E_FN + 1, '\\')}, "bad filename"},
    {"name with NUL", B_ENTRIES, {SET(E_FN + 3, 0)}, "bad filename"},
    {"name NUL first", B_ENTRIES, {SET(E_FN, 0)}, "bad filename"},
    {"name with tab", B_ENTRIES, {SET(E_FN + 5, '\t')}, "bad filename"},
    {"name high byte", B_ENTRIES, {SET(E_FN + 5, 0xff)}, "bad filename"},
    {"fnlen 0", B_ENTRIES, {SET(E_FNLEN, 0)}, "bad filename"},
    {"name ..",
     B_ENTRIES,
     {SET(E_FNLEN, 2), SET(E_FN, '.'), SET(E_FN + 1, '.')},
     "bad filename"},
    {"name .", B_ENTRIES, {SET(E_FNLEN, 1), SET(E_FN, '.')}, "bad filename"},
    {"fetch name with /", B_FETCH, {SET(F_FN, '/')}, "bad filename"},
    {"fetch name with NUL", B_FETCH, {SET(F_FN + 21, 0)}, "bad filename"},
    {"fetch name newline", B_FETCH, {SET(F_FN + 4, '\n')}, "bad filename"},
    {"fetch name ..",
     B_FETCH0,
     {ADD('.'), ADD('.'), SET(F_FNLEN, 2)},
     "bad filename"},
    {"fetch name .", B_FETCH0, {ADD('.'), SET(F_FNLEN, 1)}, "bad filename"},
    /* Requires-Python. */
    {"pylen 129", B_ENTRIES, {SET(E_PYLEN, 129)}, "bad requires-python"},
    {"pylen 255", B_ENTRIES, {SET(E_PYLEN, 255)}, "bad requires-python"},
    {"pyver newline", B_ENTRIES, {SET(E_PY + 1, '\n')}, "bad requires-python"},
    {"pyver NUL", B_ENTRIES, {SET(E_PY, 0)}, "bad requires-python"},
    {"pyver DEL", B_ENTRIES, {SET(E_PY + 4, 0x7f)}, "bad requires-python"},
    {"pyver high byte",
     B_ENTRIES,
     {SET(E_PY + 2, 0x80)},
     "bad requires-python"},
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

/* Decoding F refuses it with WHY and leaves nothing half-decoded in M. */
static void
assert_refused(const uint8_t *f, size_t len, wm_msg *m, const char *name,
               const char *want)
{
    const char *why = NULL;
    int rc;

    memset(m, 0x5a, sizeof(*m));
    rc = wm_msg_decode(f, len, m, &why);
    if (rc != -EBADMSG)
        fail_msg("%s: expected -EBADMSG (%s), got %d", name, want, rc);
    assert_non_null(why);
    if (strcmp(why, want) != 0)
        fail_msg("%s: expected \"%s\", got \"%s\"", name, want, why);
    assert_int_equal(m->type, 0);
    assert_int_equal(m->nupdates, 0);
    assert_int_equal(m->ndigest, 0);
    assert_int_equal(m->nentries, 0);
    /* A NULL why is fine. */
    assert_int_equal(wm_msg_decode(f, len, m, NULL), -EBADMSG);
}

static void
test_bad_frames(void **state)
{
    wm_msg *m = msg_alloc();

    for (size_t i = 0; i < N_ELEMS(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        size_t len;
        uint8_t *f = apply(c, &len);

        assert_refused(f, len, m, c->name, c->why);
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
    memcpy(f, "W\002\004", 3);
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

/* ---- counters: refused from WM_WIRE_COUNTER_MAX on ---- */

static void
set_inc0(wm_msg *m, uint64_t v)
{
    m->updates[0].incarnation = v;
    m->updates[0].alive.incarnation = v;
}

static void
set_inc1(wm_msg *m, uint64_t v)
{
    m->updates[1].incarnation = v;
}

static void
set_gen(wm_msg *m, uint64_t v)
{
    m->entries[0].generation = v;
}

static void
set_seq(wm_msg *m, uint64_t v)
{
    m->entries[0].seq = v;
}

static const struct counter_case {
    const char *name;
    int base;
    size_t off; /* of the counter's 8 little-endian bytes in the frame */
    void (*set)(wm_msg *m, uint64_t v);
    const char *why;
} counter_cases[] = {
    {"ALIVE incarnation", B_PING, P_INC, set_inc0, "incarnation out of range"},
    {"req ALIVE incarnation", B_PING_REQ, R_INC, set_inc0,
     "incarnation out of range"},
    {"SUSPECT incarnation", B_ACK, A_INC0, set_inc0,
     "incarnation out of range"},
    {"DEAD incarnation", B_ACK, A_INC1, set_inc1, "incarnation out of range"},
    {"add generation", B_ENTRIES, E_GEN, set_gen, "bad generation"},
    {"add seq", B_ENTRIES, E_SEQ, set_seq, "bad seq"},
    {"remove generation", B_ENTRIES0, E_GEN, set_gen, "bad generation"},
    {"remove seq", B_ENTRIES0, E_SEQ, set_seq, "bad seq"},
};

static void
test_counters(void **state)
{
    static const uint64_t over[] = {
        WM_WIRE_COUNTER_MAX,
        WM_WIRE_COUNTER_MAX + 1,
        (uint64_t)1 << 63,
        UINT64_MAX,
    };
    wm_msg *m = msg_alloc();
    wm_buf out;

    wm_buf_init(&out, WM_WIRE_FRAME_MAX);
    for (size_t i = 0; i < N_ELEMS(counter_cases); i++) {
        const struct counter_case *c = &counter_cases[i];
        uint8_t *f;
        size_t len;

        /* The largest allowed value goes through, at the offset given. */
        build(c->base, m);
        c->set(m, WM_WIRE_COUNTER_MAX - 1);
        assert_round_trip(m, c->name);
        f = encode(m, &len);
        assert_int_equal(get_le(f + c->off, 8), WM_WIRE_COUNTER_MAX - 1);

        for (size_t k = 0; k < N_ELEMS(over); k++) {
            /* Encoding refuses it... */
            build(c->base, m);
            c->set(m, over[k]);
            if (wm_msg_encode(m, &out) != -EINVAL)
                fail_msg("%s = %#llx: encoded", c->name,
                         (unsigned long long)over[k]);
            assert_int_equal(out.len, 0);
            /* ... and so does decoding. */
            put_le(f + c->off, over[k], 8);
            assert_refused(f, len, m, c->name, c->why);
        }
        free(f);
    }
    wm_buf_free(&out);
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
sp_inc_over(wm_msg *m)
{
    set_inc0(m, WM_WIRE_COUNTER_MAX);
}

static void
sp_dead_inc_over(wm_msg *m)
{
    m->updates[1].incarnation = UINT64_MAX;
}

/* The statement names another incarnation than the update. */
static void
sp_alive_inc_differs(wm_msg *m)
{
    m->updates[0].alive.incarnation++;
}

static void
sp_addr_empty(wm_msg *m)
{
    m->updates[0].alive.addr[0] = '\0';
}

static void
sp_addr_udp(wm_msg *m)
{
    set_str(m->updates[0].alive.addr, "udp://10.0.0.1:1");
}

static void
sp_addr_bare(wm_msg *m)
{
    set_str(m->updates[0].alive.addr, "tcp://");
}

static void
sp_addr_ctrl(wm_msg *m)
{
    set_str(m->updates[0].alive.addr, "tcp://10.0.0.1:1\r");
}

static void
sp_addr_unterminated(wm_msg *m)
{
    memset(m->updates[0].alive.addr, 'a', sizeof(m->updates[0].alive.addr));
    memcpy(m->updates[0].alive.addr, "tcp://", 6);
}

static void
sp_last_addr_bad(wm_msg *m)
{
    set_str(m->updates[m->nupdates - 1].alive.addr, "tcp://\x01");
}

static void
sp_name_unterminated(wm_msg *m)
{
    memset(m->updates[0].alive.name, 'a', sizeof(m->updates[0].alive.name));
}

static void
sp_name_newline(wm_msg *m)
{
    set_str(m->updates[0].alive.name, "node\n");
}

static void
sp_name_del(wm_msg *m)
{
    set_str(m->updates[0].alive.name, "\x7f");
}

static void
sp_last_name_bad(wm_msg *m)
{
    set_str(m->updates[m->nupdates - 1].alive.name, "a\tb");
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
sp_seq_over(wm_msg *m)
{
    m->entries[0].seq = WM_WIRE_COUNTER_MAX;
}

static void
sp_gen_over(wm_msg *m)
{
    m->entries[0].generation = WM_WIRE_COUNTER_MAX;
}

static void
sp_last_gen_over(wm_msg *m)
{
    m->entries[m->nentries - 1].generation = UINT64_MAX;
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
sp_has_claim_2(wm_msg *m)
{
    m->entries[0].has_claim = 2;
}

static void
sp_claim_on_remove(wm_msg *m)
{
    m->entries[0].op = WM_OP_REMOVE;
}

static void
sp_fn_empty(wm_msg *m)
{
    m->entries[0].claim.filename[0] = '\0';
}

static void
sp_fn_slash(wm_msg *m)
{
    set_str(m->entries[0].claim.filename, "../x-1.0-py3-none-any.whl");
}

static void
sp_fn_backslash(wm_msg *m)
{
    set_str(m->entries[0].claim.filename, "a\\x-1.0-py3-none-any.whl");
}

static void
sp_fn_dotdot(wm_msg *m)
{
    set_str(m->entries[0].claim.filename, "..");
}

static void
sp_fn_dot(wm_msg *m)
{
    set_str(m->entries[0].claim.filename, ".");
}

static void
sp_fn_tab(wm_msg *m)
{
    set_str(m->entries[0].claim.filename, "x\t-1.0-py3-none-any.whl");
}

static void
sp_fn_unterminated(wm_msg *m)
{
    memset(m->entries[0].claim.filename, 'a',
           sizeof(m->entries[0].claim.filename));
}

static void
sp_last_fn_bad(wm_msg *m)
{
    /* The last entry (63) has a claim. */
    set_str(m->entries[m->nentries - 1].claim.filename, "a/b");
}

static void
sp_pyver_unterminated(wm_msg *m)
{
    memset(m->entries[0].claim.requires_python, '3',
           sizeof(m->entries[0].claim.requires_python));
}

static void
sp_pyver_newline(wm_msg *m)
{
    set_str(m->entries[0].claim.requires_python, ">=3.8\n");
}

static void
sp_pyver_high(wm_msg *m)
{
    set_str(m->entries[0].claim.requires_python, ">=3\xc2\xb7");
}

static void
sp_flags_2(wm_msg *m)
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
sp_status_4(wm_msg *m)
{
    m->status = 4;
}

static void
sp_status_255(wm_msg *m)
{
    m->status = 255;
}

static void
sp_type_0(wm_msg *m)
{
    m->type = 0;
}

static void
sp_type_12(wm_msg *m)
{
    m->type = 12;
}

static void
sp_have_0(wm_msg *m)
{
    m->nchunks = 0;
}

static void
sp_have_over(wm_msg *m)
{
    m->nchunks = WM_WIRE_MAX_CHUNKS + 1;
}

static void
sp_have_stray_bit(wm_msg *m)
{
    m->bitmap[1] |= 0x40;
}

static const struct enc_case enc_cases[] = {
    {"17 updates", M_PING, sp_updates_17},
    {"state 3", B_PING, sp_state_3},
    {"req state 3", B_PING_REQ, sp_state_3},
    {"ack state 3", B_ACK, sp_state_3},
    {"incarnation 2^62", B_PING, sp_inc_over},
    {"suspect incarnation 2^62", B_ACK, sp_inc_over},
    {"dead incarnation max", B_ACK, sp_dead_inc_over},
    {"statement incarnation differs", B_PING, sp_alive_inc_differs},
    {"empty addr", B_PING, sp_addr_empty},
    {"udp addr", B_PING, sp_addr_udp},
    {"bare tcp://", B_PING, sp_addr_bare},
    {"addr with CR", B_PING_REQ, sp_addr_ctrl},
    {"addr unterminated", B_PING, sp_addr_unterminated},
    {"last of 16 addrs", M_ACK, sp_last_addr_bad},
    {"name unterminated (65)", B_PING, sp_name_unterminated},
    {"name with newline", B_PING_REQ, sp_name_newline},
    {"name DEL", B_PING, sp_name_del},
    {"last of 16 names", M_PING_REQ, sp_last_name_bad},
    {"digest flags 4", B_DIGEST0, sp_digest_flags},
    {"digest items, no FULL", B_DIGEST, sp_digest_no_full},
    {"1025 digest items", M_DIGEST, sp_digest_1025},
    {"no entries", B_ENTRIES, sp_entries_0},
    {"65 entries", M_ENTRIES, sp_entries_65},
    {"seq 0", B_ENTRIES, sp_seq_0},
    {"seq 2^62", B_ENTRIES0, sp_seq_over},
    {"generation 2^62", B_ENTRIES, sp_gen_over},
    {"last generation max", M_ENTRIES, sp_last_gen_over},
    {"op 0", B_ENTRIES, sp_op_0},
    {"op 3 in last entry", M_ENTRIES, sp_op_3},
    {"has_claim 2", B_ENTRIES, sp_has_claim_2},
    {"has_claim 2 on a remove", B_ENTRIES0, sp_has_claim_2},
    {"claim on a remove", B_ENTRIES, sp_claim_on_remove},
    {"claim name empty", B_ENTRIES, sp_fn_empty},
    {"claim name with /", B_ENTRIES, sp_fn_slash},
    {"claim name with \\", B_ENTRIES, sp_fn_backslash},
    {"claim name ..", B_ENTRIES, sp_fn_dotdot},
    {"claim name .", B_ENTRIES, sp_fn_dot},
    {"claim name with tab", B_ENTRIES, sp_fn_tab},
    {"claim name unterminated", B_ENTRIES, sp_fn_unterminated},
    {"last claim name", M_ENTRIES, sp_last_fn_bad},
    {"requires_python unterminated (129)", B_ENTRIES, sp_pyver_unterminated},
    {"requires_python newline", B_ENTRIES, sp_pyver_newline},
    {"requires_python high bytes", B_ENTRIES, sp_pyver_high},
    {"fetch flags 2", B_FETCH, sp_flags_2},
    {"sync flags 2", B_SYNC, sp_flags_2},
    {"fetch name with /", B_FETCH, sp_fetch_name},
    {"fetch name .", B_FETCH0, sp_fetch_dot},
    {"chunk status 4", B_CHUNK, sp_status_4},
    {"chunk status 255", B_CHUNK, sp_status_255},
    {"mapdata status 4", B_MAPDATA, sp_status_4},
    {"type 0", B_MAP, sp_type_0},
    {"have flags 2", B_HAVE, sp_flags_2},
    {"have 0 chunks", B_HAVE, sp_have_0},
    {"have 65,537 chunks", B_HAVE, sp_have_over},
    {"have bit 14 of 11", B_HAVE, sp_have_stray_bit},
    {"type 12", B_MAP, sp_type_12},
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

/* ---- signed bytes ---- */

/* Whose signed bytes (or signature) a change reaches. */
#define COV_ENTRY 1
#define COV_CLAIM 2

/* Changes to one field of an entry that carries a claim. */
enum entry_flip {
    FE_ORIGIN0,
    FE_ORIGIN31,
    FE_GEN0,
    FE_GEN61,
    FE_SEQ,
    FE_OP,
    FE_SHA0,
    FE_SHA31,
    FE_SIZE0,
    FE_SIZE63,
    FE_ROOT0,
    FE_ROOT31,
    FE_HAS_CLAIM,
    FE_PUB0,
    FE_PUB31,
    FE_FN,
    FE_FN_SHORTER,
    FE_FN_PY_BOUNDARY,
    FE_PY,
    FE_PY_EMPTY,
    FE_PY_LONGER,
    FE_CSIG0,
    FE_CSIG63,
    FE_SIG0,
    FE_SIG63,
};

static void
flip_entry(wm_entry *e, enum entry_flip what)
{
    char *fn = e->claim.filename, *py = e->claim.requires_python;
    size_t n;

    switch (what) {
    case FE_ORIGIN0:
        e->origin[0] ^= 1;
        break;
    case FE_ORIGIN31:
        e->origin[31] ^= 0x80;
        break;
    case FE_GEN0:
        e->generation ^= 1;
        break;
    case FE_GEN61:
        e->generation ^= (uint64_t)1 << 61;
        break;
    case FE_SEQ:
        e->seq++;
        break;
    case FE_OP:
        e->op = e->op == WM_OP_ADD ? WM_OP_REMOVE : WM_OP_ADD;
        break;
    case FE_SHA0:
        e->sha256[0] ^= 1;
        break;
    case FE_SHA31:
        e->sha256[31] ^= 0x80;
        break;
    case FE_SIZE0:
        e->size ^= 1;
        break;
    case FE_SIZE63:
        e->size ^= (uint64_t)1 << 63;
        break;
    case FE_ROOT0:
        e->chunks_root[0] ^= 1;
        break;
    case FE_ROOT31:
        e->chunks_root[31] ^= 0x80;
        break;
    case FE_HAS_CLAIM:
        e->has_claim ^= 1;
        break;
    case FE_PUB0:
        e->claim.publisher[0] ^= 1;
        break;
    case FE_PUB31:
        e->claim.publisher[31] ^= 0x80;
        break;
    case FE_FN:
        fn[0] ^= 1;
        break;
    case FE_FN_SHORTER:
        fn[strlen(fn) - 1] = '\0';
        break;
    case FE_FN_PY_BOUNDARY:
        /* "...whl" + ">=3.8" becomes "...wh" + "l>=3.8": the same bytes
         * in a row, told apart only by the length prefixes. */
        n = strlen(fn);
        memmove(py + 1, py, strlen(py) + 1);
        py[0] = fn[n - 1];
        fn[n - 1] = '\0';
        break;
    case FE_PY:
        py[0] ^= 1;
        break;
    case FE_PY_EMPTY:
        py[0] = '\0';
        break;
    case FE_PY_LONGER:
        n = strlen(py);
        py[n] = '1';
        py[n + 1] = '\0';
        break;
    case FE_CSIG0:
        e->claim.sig[0] ^= 1;
        break;
    case FE_CSIG63:
        e->claim.sig[63] ^= 0x80;
        break;
    case FE_SIG0:
        e->sig[0] ^= 1;
        break;
    case FE_SIG63:
        e->sig[63] ^= 0x80;
        break;
    }
}

/* For each change: whose signed bytes it changes, and whose signature then
 * fails. The claim covers the file (sha256, size, chunks_root) and what the
 * publisher says of it, not the holder: it travels unchanged with any
 * origin's entry. The entry covers the claim, its signature included. */
static const struct entry_flip_case {
    const char *name;
    enum entry_flip what;
    int covers;
    int breaks;
} entry_flips[] = {
    {"origin[0]", FE_ORIGIN0, COV_ENTRY, COV_ENTRY},
    {"origin[31]", FE_ORIGIN31, COV_ENTRY, COV_ENTRY},
    {"generation bit 0", FE_GEN0, COV_ENTRY, COV_ENTRY},
    {"generation bit 61", FE_GEN61, COV_ENTRY, COV_ENTRY},
    {"seq", FE_SEQ, COV_ENTRY, COV_ENTRY},
    {"op", FE_OP, COV_ENTRY, COV_ENTRY},
    {"sha256[0]", FE_SHA0, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"sha256[31]", FE_SHA31, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"size bit 0", FE_SIZE0, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"size bit 63", FE_SIZE63, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"chunks_root[0]", FE_ROOT0, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"chunks_root[31]", FE_ROOT31, COV_ENTRY | COV_CLAIM,
     COV_ENTRY | COV_CLAIM},
    {"has_claim", FE_HAS_CLAIM, COV_ENTRY, COV_ENTRY},
    {"publisher[0]", FE_PUB0, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"publisher[31]", FE_PUB31, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"filename", FE_FN, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"filename shorter", FE_FN_SHORTER, COV_ENTRY | COV_CLAIM,
     COV_ENTRY | COV_CLAIM},
    {"filename/requires_python boundary", FE_FN_PY_BOUNDARY,
     COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"requires_python", FE_PY, COV_ENTRY | COV_CLAIM, COV_ENTRY | COV_CLAIM},
    {"requires_python emptied", FE_PY_EMPTY, COV_ENTRY | COV_CLAIM,
     COV_ENTRY | COV_CLAIM},
    {"requires_python longer", FE_PY_LONGER, COV_ENTRY | COV_CLAIM,
     COV_ENTRY | COV_CLAIM},
    {"claim sig[0]", FE_CSIG0, COV_ENTRY, COV_ENTRY | COV_CLAIM},
    {"claim sig[63]", FE_CSIG63, COV_ENTRY, COV_ENTRY | COV_CLAIM},
    {"sig[0]", FE_SIG0, 0, COV_ENTRY},
    {"sig[63]", FE_SIG63, 0, COV_ENTRY},
};

typedef size_t (*entry_signer)(const wm_entry *e, uint8_t *out);

/* True when SIGNED gives different bytes for A and B. */
static int
entry_differs(entry_signer signed_bytes, const wm_entry *a, const wm_entry *b)
{
    uint8_t sa[WM_SIGNED_MAX], sb[WM_SIGNED_MAX];
    size_t na = signed_bytes(a, sa), nb = signed_bytes(b, sb);

    assert_true(na <= WM_SIGNED_MAX);
    assert_true(nb <= WM_SIGNED_MAX);
    return na != nb || memcmp(sa, sb, na) != 0;
}

static void
test_entry_signed_bytes(void **state)
{
    wm_msg *m = msg_alloc();
    uint8_t sb[WM_SIGNED_MAX], want[WM_SIGNED_MAX];
    wm_entry x, y;
    uint8_t *f;
    size_t len, n, k;

    /* The domain, then the entry as sent without its own signature. */
    for (int b = B_ENTRIES; b <= B_ENTRIES0; b++) {
        size_t end = b == B_ENTRIES ? E_SIG : E0_SIG;

        build(b, m);
        f = encode(m, &len);
        n = wm_entry_signed_bytes(&m->entries[0], sb);
        assert_int_equal(n, sizeof(DOM_ENTRY) + end - E_ORIGIN);
        assert_memory_equal(sb, DOM_ENTRY, sizeof(DOM_ENTRY));
        assert_memory_equal(sb + sizeof(DOM_ENTRY), f + E_ORIGIN,
                            end - E_ORIGIN);
        free(f);
    }

    /* The domain, the publisher, the file's sha256, size and chunks_root,
     * and filename and requires_python as sent. */
    build(B_ENTRIES, m);
    f = encode(m, &len);
    k = 0;
    memcpy(want + k, DOM_CLAIM, sizeof(DOM_CLAIM));
    k += sizeof(DOM_CLAIM);
    memcpy(want + k, f + E_PUB, 32);
    k += 32;
    memcpy(want + k, f + E_SHA, 32 + 8 + 32); /* sha256, size, chunks_root */
    k += 32 + 8 + 32;
    memcpy(want + k, f + E_FNLEN, E_CSIG - E_FNLEN);
    k += E_CSIG - E_FNLEN;
    n = wm_claim_signed_bytes(&m->entries[0], sb);
    assert_int_equal(n, k);
    assert_memory_equal(sb, want, k);
    free(f);

    /* At their caps, they fit. */
    build(M_ENTRIES, m);
    assert_int_equal(m->entries[0].has_claim, 1);
    n = wm_entry_signed_bytes(&m->entries[0], sb);
    assert_int_equal(n, sizeof(DOM_ENTRY) + ENTRY_LEN - SIG +
                            CLAIM_LEN(WM_WIRE_NAME_MAX, WM_WIRE_PYVER_MAX));
    assert_true(n <= WM_SIGNED_MAX);
    n = wm_claim_signed_bytes(&m->entries[0], sb);
    assert_int_equal(n, sizeof(DOM_CLAIM) + 32 + 32 + 8 + 32 + 1 +
                            WM_WIRE_NAME_MAX + 1 + WM_WIRE_PYVER_MAX);

    /* Every field is covered where it should be; the signature itself is
     * not. */
    build(B_ENTRIES, m);
    for (size_t i = 0; i < N_ELEMS(entry_flips); i++) {
        const struct entry_flip_case *c = &entry_flips[i];

        x = m->entries[0];
        flip_entry(&x, c->what);
        if (entry_differs(wm_entry_signed_bytes, &m->entries[0], &x) !=
            !!(c->covers & COV_ENTRY))
            fail_msg("%s: entry signed bytes %s", c->name,
                     c->covers & COV_ENTRY ? "unchanged" : "changed");
        if (entry_differs(wm_claim_signed_bytes, &m->entries[0], &x) !=
            !!(c->covers & COV_CLAIM))
            fail_msg("%s: claim signed bytes %s", c->name,
                     c->covers & COV_CLAIM ? "unchanged" : "changed");
    }

    /* Without a claim, the claim in the struct is neither sent nor
     * covered (and not read: its strings here are unterminated). */
    build(B_ENTRIES0, m);
    x = m->entries[0];
    memset(&x.claim, 'c', sizeof(x.claim));
    assert_false(entry_differs(wm_entry_signed_bytes, &m->entries[0], &x));

    /* Unterminated strings are cut at their caps, not overread. */
    build(B_ENTRIES, m);
    x = y = m->entries[0];
    memset(x.claim.filename, 'a', WM_WIRE_NAME_MAX);
    x.claim.filename[WM_WIRE_NAME_MAX] = '\0';
    memset(y.claim.filename, 'a', sizeof(y.claim.filename));
    memset(x.claim.requires_python, 'b', WM_WIRE_PYVER_MAX);
    x.claim.requires_python[WM_WIRE_PYVER_MAX] = '\0';
    memset(y.claim.requires_python, 'b', sizeof(y.claim.requires_python));
    assert_false(entry_differs(wm_entry_signed_bytes, &x, &y));
    assert_false(entry_differs(wm_claim_signed_bytes, &x, &y));
    free(m);
}

/* Changes to one field of a member's alive statement (or its id). */
enum alive_flip {
    FA_ID0,
    FA_ID31,
    FA_INC0,
    FA_INC61,
    FA_ADDR,
    FA_ADDR_SHORTER,
    FA_ADDR_NAME_BOUNDARY,
    FA_NAME,
    FA_NAME_EMPTY,
    FA_NAME_LONGER,
    FA_SIG0,
    FA_SIG63,
};

static void
flip_alive(uint8_t id[WM_ID_LEN], wm_alive *a, enum alive_flip what)
{
    size_t n;

    switch (what) {
    case FA_ID0:
        id[0] ^= 1;
        break;
    case FA_ID31:
        id[31] ^= 0x80;
        break;
    case FA_INC0:
        a->incarnation ^= 1;
        break;
    case FA_INC61:
        a->incarnation ^= (uint64_t)1 << 61;
        break;
    case FA_ADDR:
        a->addr[strlen(a->addr) - 1] ^= 1;
        break;
    case FA_ADDR_SHORTER:
        a->addr[strlen(a->addr) - 1] = '\0';
        break;
    case FA_ADDR_NAME_BOUNDARY:
        /* "tcp://...:7391" + "node-a" becomes "tcp://...:739" +
         * "1node-a". */
        n = strlen(a->addr);
        memmove(a->name + 1, a->name, strlen(a->name) + 1);
        a->name[0] = a->addr[n - 1];
        a->addr[n - 1] = '\0';
        break;
    case FA_NAME:
        a->name[0] ^= 1;
        break;
    case FA_NAME_EMPTY:
        a->name[0] = '\0';
        break;
    case FA_NAME_LONGER:
        n = strlen(a->name);
        a->name[n] = 'x';
        a->name[n + 1] = '\0';
        break;
    case FA_SIG0:
        a->sig[0] ^= 1;
        break;
    case FA_SIG63:
        a->sig[63] ^= 0x80;
        break;
    }
}

/* Every change but to the signature changes the signed bytes; every change
 * makes the signature fail. */
static const struct alive_flip_case {
    const char *name;
    enum alive_flip what;
    int covered;
} alive_flips[] = {
    {"id[0]", FA_ID0, 1},
    {"id[31]", FA_ID31, 1},
    {"incarnation bit 0", FA_INC0, 1},
    {"incarnation bit 61", FA_INC61, 1},
    {"addr", FA_ADDR, 1},
    {"addr shorter", FA_ADDR_SHORTER, 1},
    {"addr/name boundary", FA_ADDR_NAME_BOUNDARY, 1},
    {"name", FA_NAME, 1},
    {"name emptied", FA_NAME_EMPTY, 1},
    {"name longer", FA_NAME_LONGER, 1},
    {"sig[0]", FA_SIG0, 0},
    {"sig[63]", FA_SIG63, 0},
};

static int
alive_differs(const uint8_t *ida, const wm_alive *a, const uint8_t *idb,
              const wm_alive *b)
{
    uint8_t sa[WM_SIGNED_MAX], sb[WM_SIGNED_MAX];
    size_t na = wm_alive_signed_bytes(ida, a, sa);
    size_t nb = wm_alive_signed_bytes(idb, b, sb);

    assert_true(na <= WM_SIGNED_MAX);
    assert_true(nb <= WM_SIGNED_MAX);
    return na != nb || memcmp(sa, sb, na) != 0;
}

static void
test_alive_signed_bytes(void **state)
{
    wm_msg *m = msg_alloc();
    uint8_t sb[WM_SIGNED_MAX], want[WM_SIGNED_MAX], id[WM_ID_LEN];
    const wm_member_update *u = &m->updates[0];
    wm_alive x, y;
    uint8_t *f;
    size_t len, n, k;

    /* The domain, the member's id and incarnation, then address and name
     * as sent. */
    build(B_PING, m);
    f = encode(m, &len);
    k = 0;
    memcpy(want + k, DOM_ALIVE, sizeof(DOM_ALIVE));
    k += sizeof(DOM_ALIVE);
    memcpy(want + k, f + P_ID, 32);
    k += 32;
    memcpy(want + k, f + P_INC, 8);
    k += 8;
    memcpy(want + k, f + P_ALEN, P_SIG - P_ALEN);
    k += P_SIG - P_ALEN;
    n = wm_alive_signed_bytes(u->id, &u->alive, sb);
    assert_int_equal(n, k);
    assert_memory_equal(sb, want, k);
    free(f);

    /* At the caps, it fits. */
    build(M_PING, m);
    assert_int_equal(u->state, WM_ALIVE);
    n = wm_alive_signed_bytes(u->id, &u->alive, sb);
    assert_int_equal(n, sizeof(DOM_ALIVE) + 32 + 8 + 1 + WM_WIRE_ADDR_MAX + 1 +
                            WM_WIRE_NODE_MAX);
    assert_true(n <= WM_SIGNED_MAX);

    /* Every field is covered; the signature is not. */
    build(B_PING, m);
    for (size_t i = 0; i < N_ELEMS(alive_flips); i++) {
        const struct alive_flip_case *c = &alive_flips[i];

        memcpy(id, u->id, WM_ID_LEN);
        x = u->alive;
        flip_alive(id, &x, c->what);
        if (alive_differs(u->id, &u->alive, id, &x) != c->covered)
            fail_msg("%s: alive signed bytes %s", c->name,
                     c->covered ? "unchanged" : "changed");
    }

    /* Unterminated strings are cut at their caps, not overread. */
    x = y = u->alive;
    memset(x.addr, 'a', WM_WIRE_ADDR_MAX);
    x.addr[WM_WIRE_ADDR_MAX] = '\0';
    memset(y.addr, 'a', sizeof(y.addr));
    memset(x.name, 'b', WM_WIRE_NODE_MAX);
    x.name[WM_WIRE_NODE_MAX] = '\0';
    memset(y.name, 'b', sizeof(y.name));
    assert_false(alive_differs(u->id, &x, u->id, &y));
    free(m);
}

/* ---- the three domains ---- */

/* The body of signed bytes SB (N bytes): what follows the domain string
 * and its NUL. */
static const uint8_t *
body_of(const uint8_t *sb, size_t n, size_t *len)
{
    size_t d = strnlen((const char *)sb, n);

    assert_true(d < n);
    *len = n - d - 1;
    return sb + d + 1;
}

/* Reads B (N bytes) as the body of a claim's signed bytes into E: an add
 * with that claim (publisher, filename, requires_python) of that file
 * (sha256, size, chunks_root), and origin, generation and seq unset. */
static void
body_as_claim(const uint8_t *b, size_t n, wm_entry *e)
{
    size_t off = 32 + 32 + 8 + 32, len;

    memset(e, 0, sizeof(*e));
    assert_true(n > off);
    memcpy(e->claim.publisher, b, 32);
    memcpy(e->sha256, b + 32, 32);
    e->size = get_le(b + 64, 8);
    memcpy(e->chunks_root, b + 72, 32);
    len = b[off++];
    assert_true(off + len < n);
    memcpy(e->claim.filename, b + off, len);
    off += len;
    len = b[off++];
    assert_true(len <= WM_WIRE_PYVER_MAX);
    assert_int_equal(off + len, n);
    memcpy(e->claim.requires_python, b + off, len);
    e->op = WM_OP_ADD;
    e->has_claim = 1;
}

/* Reads B (N bytes) as the body of the signed bytes of an entry without a
 * claim into E. */
static void
body_as_entry(const uint8_t *b, size_t n, wm_entry *e)
{
    memset(e, 0, sizeof(*e));
    assert_int_equal(n, ENTRY_LEN - SIG);
    memcpy(e->origin, b, 32);
    e->generation = get_le(b + 32, 8);
    e->seq = get_le(b + 40, 8);
    e->op = b[48];
    memcpy(e->sha256, b + 49, 32);
    e->size = get_le(b + 81, 8);
    memcpy(e->chunks_root, b + 89, 32);
    assert_int_equal(b[121], 0); /* has_claim */
}

/* Fails unless the signed bytes SA (NA) and SB (NB) have equal bodies but
 * differ as a whole. */
static void
assert_same_body(const uint8_t *sa, size_t na, const uint8_t *sb, size_t nb)
{
    size_t la, lb;
    const uint8_t *ba = body_of(sa, na, &la), *bb = body_of(sb, nb, &lb);

    assert_int_equal(la, lb);
    assert_memory_equal(ba, bb, la);
    assert_true(na != nb || memcmp(sa, sb, na) != 0);
}

/* Each domain string opens its kind's signed bytes, and none is a prefix
 * of another. Then, for each pair of kinds, a statement of one whose
 * fields give exactly the body of a statement of the other: only the
 * domain tells them apart, and a signature does not serve for both. */
static void
test_signed_domains(void **state)
{
    static const char *const domains[] = {DOM_ENTRY, DOM_CLAIM, DOM_ALIVE};
    const uint8_t *pub = wm_identity_pubkey(key_a);
    uint8_t sa[WM_SIGNED_MAX], sb[WM_SIGNED_MAX];
    const uint8_t *body;
    wm_msg *m = msg_alloc();
    wm_entry e, c;
    wm_alive a;
    size_t na, nb, len;

    /* With its NUL, a domain is a prefix of another only if equal. */
    for (size_t i = 0; i < N_ELEMS(domains); i++)
        for (size_t j = i + 1; j < N_ELEMS(domains); j++)
            assert_string_not_equal(domains[i], domains[j]);

    /* An entry whose body reads as a claim: chunks_root[15] is the
     * filename's length, the rest of chunks_root the filename, and
     * has_claim 0 an empty requires_python. */
    memset(&e, 0, sizeof(e));
    make_entry(&e, 0, SH_ADD, 0);
    e.chunks_root[15] = 16;
    memcpy(e.chunks_root + 16, "pkgs-1.0-py3.whl", 16);
    wm_entry_sign(key_a, &e);
    na = wm_entry_signed_bytes(&e, sa);
    assert_memory_equal(sa, DOM_ENTRY, sizeof(DOM_ENTRY));
    body = body_of(sa, na, &len);
    body_as_claim(body, len, &c);
    assert_string_equal(c.claim.filename, "pkgs-1.0-py3.whl");
    assert_memory_equal(c.claim.publisher, pub, WM_ID_LEN);
    nb = wm_claim_signed_bytes(&c, sb);
    assert_memory_equal(sb, DOM_CLAIM, sizeof(DOM_CLAIM));
    assert_same_body(sa, na, sb, nb);
    assert_true(wm_entry_valid(&e));
    memcpy(c.claim.sig, e.sig, SIG);
    assert_false(wm_claim_valid(&c));
    /* It is a claim a peer could send, once its publisher signs it. */
    wm_claim_sign(key_a, &c);
    assert_true(wm_claim_valid(&c));
    build(B_ENTRIES, m);
    memcpy(&m->entries[0].claim, &c.claim, sizeof(c.claim));
    assert_round_trip(m, "entry-as-claim");

    /* An alive statement whose body reads as a claim: an address of 64
     * ending in ' ' (a filename of 32), a name of 64 ('@', the length,
     * opens the filename) whose byte 31 is ' ' (a requires_python of 32). */
    memset(&a, 0, sizeof(a));
    a.incarnation = 0x0102030405060708ull;
    fill_str(a.addr, "tcp://", 64);
    a.addr[63] = ' ';
    fill_str(a.name, "", 64);
    a.name[31] = ' ';
    wm_alive_sign(key_a, &a);
    na = wm_alive_signed_bytes(pub, &a, sa);
    assert_memory_equal(sa, DOM_ALIVE, sizeof(DOM_ALIVE));
    body = body_of(sa, na, &len);
    body_as_claim(body, len, &c);
    assert_int_equal(strlen(c.claim.filename), 32);
    assert_int_equal(c.claim.filename[0], '@');
    assert_int_equal(strlen(c.claim.requires_python), 32);
    nb = wm_claim_signed_bytes(&c, sb);
    assert_same_body(sa, na, sb, nb);
    assert_true(wm_alive_valid(pub, &a));
    memcpy(c.claim.sig, a.sig, SIG);
    assert_false(wm_claim_valid(&c));
    wm_claim_sign(key_a, &c);
    assert_true(wm_claim_valid(&c));
    /* Both are statements a peer could send. */
    build(B_ENTRIES, m);
    memcpy(&m->entries[0].claim, &c.claim, sizeof(c.claim));
    assert_round_trip(m, "alive-as-claim: the claim");
    build(B_PING, m);
    memcpy(m->updates[0].id, pub, WM_ID_LEN);
    m->updates[0].incarnation = a.incarnation;
    m->updates[0].alive = a;
    assert_round_trip(m, "alive-as-claim: the statement");

    /* An alive statement whose body reads as an entry without a claim:
     * an address of 80 and an empty name (has_claim 0). The entry's op is
     * the address's byte 7, which decoding refuses; the signature check
     * alone does not look at it, so the domain is what keeps them apart. */
    memset(&a, 0, sizeof(a));
    a.incarnation = 0x0102030405060708ull;
    fill_str(a.addr, "tcp://", 80);
    wm_alive_sign(key_a, &a);
    na = wm_alive_signed_bytes(pub, &a, sa);
    body = body_of(sa, na, &len);
    body_as_entry(body, len, &e);
    assert_memory_equal(e.origin, pub, WM_ID_LEN);
    assert_int_equal(e.op, (uint8_t)a.addr[7]);
    nb = wm_entry_signed_bytes(&e, sb);
    assert_same_body(sa, na, sb, nb);
    assert_true(wm_alive_valid(pub, &a));
    memcpy(e.sig, a.sig, SIG);
    assert_false(wm_entry_valid(&e));
    wm_entry_sign(key_a, &e);
    assert_true(wm_entry_valid(&e));
    free(m);
}

/* ---- signing and checking with real keys ---- */

static void
test_entry_sign_valid(void **state)
{
    const uint8_t *pub_a = wm_identity_pubkey(key_a);
    const uint8_t *pub_b = wm_identity_pubkey(key_b);
    uint8_t sb[WM_SIGNED_MAX];
    wm_msg *m = msg_alloc(), *d = msg_alloc();
    wm_entry e, x;
    uint8_t *f;
    size_t len;

    /* B publishes, A holds: the claim first, as the entry covers it. */
    build(B_ENTRIES, m);
    e = m->entries[0];
    assert_false(wm_entry_valid(&e));
    assert_false(wm_claim_valid(&e));
    wm_claim_sign(key_b, &e);
    wm_entry_sign(key_a, &e);
    assert_memory_equal(e.origin, pub_a, WM_ID_LEN);
    assert_memory_equal(e.claim.publisher, pub_b, WM_ID_LEN);
    assert_true(wm_entry_valid(&e));
    assert_true(wm_claim_valid(&e));

    /* Changing anything covered breaks the signature that covers it. */
    for (size_t i = 0; i < N_ELEMS(entry_flips); i++) {
        const struct entry_flip_case *c = &entry_flips[i];

        x = e;
        flip_entry(&x, c->what);
        if (wm_entry_valid(&x) != !(c->breaks & COV_ENTRY))
            fail_msg("%s: entry %s", c->name,
                     c->breaks & COV_ENTRY ? "still valid" : "invalid");
        if (wm_claim_valid(&x) != !(c->breaks & COV_CLAIM))
            fail_msg("%s: claim %s", c->name,
                     c->breaks & COV_CLAIM ? "still valid" : "invalid");
    }

    /* Another key's signature over the very same bytes is no good. */
    x = e;
    wm_identity_sign(key_b, sb, wm_entry_signed_bytes(&x, sb), x.sig);
    assert_false(wm_entry_valid(&x));
    x = e;
    wm_identity_sign(key_a, sb, wm_claim_signed_bytes(&x, sb), x.claim.sig);
    assert_false(wm_claim_valid(&x));
    /* Another key's signing makes it that key's statement. */
    x = e;
    wm_entry_sign(key_b, &x);
    assert_memory_equal(x.origin, pub_b, WM_ID_LEN);
    assert_true(wm_entry_valid(&x));
    assert_memory_not_equal(x.sig, e.sig, SIG);

    /* An entry without a claim: the struct's claim is not covered. */
    build(B_ENTRIES0, m);
    x = m->entries[0];
    wm_entry_sign(key_a, &x);
    assert_true(wm_entry_valid(&x));
    memset(&x.claim, 0x77, sizeof(x.claim));
    assert_true(wm_entry_valid(&x));
    x.seq++;
    assert_false(wm_entry_valid(&x));

    /* The signatures survive the wire. */
    build(B_ENTRIES, m);
    m->entries[0] = e;
    f = encode(m, &len);
    assert_int_equal(wm_msg_decode(f, len, d, NULL), 0);
    assert_true(wm_entry_valid(&d->entries[0]));
    assert_true(wm_claim_valid(&d->entries[0]));
    free(f);
    free(d);
    free(m);
}

static void
test_alive_sign_valid(void **state)
{
    const uint8_t *pub_a = wm_identity_pubkey(key_a);
    const uint8_t *pub_b = wm_identity_pubkey(key_b);
    uint8_t sb[WM_SIGNED_MAX], id[WM_ID_LEN];
    wm_msg *m = msg_alloc(), *d = msg_alloc();
    wm_alive a, x;
    uint8_t *f;
    size_t len;

    build(B_PING, m);
    a = m->updates[0].alive;
    assert_false(wm_alive_valid(pub_a, &a));
    wm_alive_sign(key_a, &a);
    assert_true(wm_alive_valid(pub_a, &a));
    /* It is A's statement, not B's. */
    assert_false(wm_alive_valid(pub_b, &a));

    for (size_t i = 0; i < N_ELEMS(alive_flips); i++) {
        const struct alive_flip_case *c = &alive_flips[i];

        memcpy(id, pub_a, WM_ID_LEN);
        x = a;
        flip_alive(id, &x, c->what);
        if (wm_alive_valid(id, &x))
            fail_msg("%s: still valid", c->name);
    }

    /* Another key's signature over the very same bytes is no good. */
    x = a;
    wm_identity_sign(key_b, sb, wm_alive_signed_bytes(pub_a, &x, sb), x.sig);
    assert_false(wm_alive_valid(pub_a, &x));
    assert_false(wm_alive_valid(pub_b, &x));
    x = a;
    wm_alive_sign(key_b, &x);
    assert_true(wm_alive_valid(pub_b, &x));
    assert_false(wm_alive_valid(pub_a, &x));

    /* The signature survives the wire, an empty name too. */
    for (int empty = 0; empty <= 1; empty++) {
        build(B_PING, m);
        memcpy(m->updates[0].id, pub_a, WM_ID_LEN);
        if (empty)
            m->updates[0].alive.name[0] = '\0';
        wm_alive_sign(key_a, &m->updates[0].alive);
        f = encode(m, &len);
        assert_int_equal(wm_msg_decode(f, len, d, NULL), 0);
        assert_true(wm_alive_valid(d->updates[0].id, &d->updates[0].alive));
        free(f);
    }
    free(d);
    free(m);
}

/* ---- digest hash ---- */

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
        put_le(p + 32, m->digest[i].generation, 8);
        put_le(p + 40, m->digest[i].max_seq, 8);
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
    for (int b = 0; b < M_PING; b++) {
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
    /* Most flips land in hashes, ids and signatures, which any value
     * fills. */
    assert_true(accepted > 1000);
    wm_buf_free(&out);
    free(m);
}

static int
setup(void **state)
{
    if (wm_identity_init() != 0)
        return -1;
    key_a = wm_identity_generate();
    key_b = wm_identity_generate();
    return key_a != NULL && key_b != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    wm_identity_destroy(&key_a);
    wm_identity_destroy(&key_b);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_encode_buffer),
        cmocka_unit_test(test_entry_signed_bytes),
        cmocka_unit_test(test_alive_signed_bytes),
        cmocka_unit_test(test_signed_domains),
        cmocka_unit_test(test_entry_sign_valid),
        cmocka_unit_test(test_alive_sign_valid),
        cmocka_unit_test(test_digest_hash),
        cmocka_unit_test(test_mutation_sweep),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
