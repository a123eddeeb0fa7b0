/*
 * The cluster's wire messages: encoding and strict decoding. A message is
 * one header frame (this module) and, for CHUNK and MAPDATA only, a second
 * frame of bulk bytes that the caller checks against sizes and hashes.
 *
 * Header frame: 'W', version 2, type, then the type's fields, integers
 * little-endian, strings as u8 length + bytes (no NUL). Decoding checks
 * every length against the frame and the caps below, rejects trailing
 * bytes, unknown types and versions, out-of-range enums, strings with NUL
 * or control bytes; it never trusts a count before checking that the bytes
 * for it are there.
 */
#ifndef WM_WIRE_H
#define WM_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define WM_ID_LEN           32
#define WM_SIG_BYTES        64
#define WM_WIRE_VERSION     2
#define WM_WIRE_ADDR_MAX    128  /* "tcp://host:port" */
#define WM_WIRE_NAME_MAX    255  /* wheel filenames */
#define WM_WIRE_NODE_MAX    64   /* node names */
#define WM_WIRE_PYVER_MAX   128  /* Requires-Python */
#define WM_WIRE_MAX_UPDATES 16   /* membership updates piggybacked per msg */
#define WM_WIRE_MAX_DIGEST  1024 /* origins in one digest */
#define WM_WIRE_MAX_ENTRIES 64   /* index entries in one message */
#define WM_WIRE_FRAME_MAX   (1u << 20) /* a header frame never exceeds this */
#define WM_WIRE_MAX_CHUNKS  65536 /* chunks in one HAVE bitmap: 64 GiB */
/* Incarnations and sequence numbers at or above this are refused: they
 * only ever grow by one, so such a value is an attempt to wrap them. */
#define WM_WIRE_COUNTER_MAX ((uint64_t)1 << 62)

enum wm_msg_type {
    WM_MSG_PING = 1,     /* seq, updates */
    WM_MSG_ACK = 2,      /* seq, updates */
    WM_MSG_PING_REQ = 3, /* seq, target, updates: "probe TARGET for me" */
    WM_MSG_DIGEST = 4,   /* flags, digest_hash, [digest items] */
    WM_MSG_ENTRIES = 5,  /* entries */
    WM_MSG_FETCH = 6,    /* sha256, idx, flags, filename */
    WM_MSG_CHUNK = 7,    /* sha256, idx, status (+ bulk frame: the bytes) */
    WM_MSG_MAP = 8,      /* sha256 */
    WM_MSG_MAPDATA = 9,  /* sha256, status (+ bulk frame: chunk hashes) */
    WM_MSG_SYNC = 10,    /* seq, flags, updates: part of a member's view */
    WM_MSG_HAVE = 11,    /* sha256, flags, nchunks, bitmap: chunks held */
};

enum wm_member_state { WM_ALIVE = 0, WM_SUSPECT = 1, WM_DEAD = 2 };

/* DIGEST flags */
#define WM_DIGEST_FULL  1 /* the items are present */
#define WM_DIGEST_REPLY 2 /* an answer: do not answer it again */

/* SYNC flags */
#define WM_SYNC_ASK 1 /* the first part of a view: answer with yours */

/* HAVE flags */
#define WM_HAVE_ASK 1 /* "I am fetching it too": answer with yours */

/* FETCH flags */
#define WM_FETCH_UPSTREAM 1 /* the holder may fetch it from upstream first */

/* CHUNK / MAPDATA status */
enum wm_chunk_status {
    WM_CHUNK_OK = 0,
    WM_CHUNK_MISSING = 1, /* not held (and not being fetched) */
    WM_CHUNK_LATER = 2,   /* being fetched: ask again */
    WM_CHUNK_BUSY = 3,    /* at its upload limit: ask another holder */
};

/* A member's own statement of where it is: its address, name and
 * incarnation, signed by it. Nobody else can change them. */
typedef struct wm_alive {
    uint64_t incarnation;
    char addr[WM_WIRE_ADDR_MAX + 1]; /* starts with "tcp://" */
    char name[WM_WIRE_NODE_MAX + 1]; /* may be empty */
    uint8_t sig[WM_SIG_BYTES];
} wm_alive;

/* What one member says about another (or itself). ALIVE carries the
 * member's signed statement; SUSPECT and DEAD are anyone's report about
 * an incarnation and carry no address. */
typedef struct wm_member_update {
    uint8_t id[WM_ID_LEN];
    uint8_t state; /* enum wm_member_state */
    uint64_t incarnation;
    wm_alive alive; /* state ALIVE only; alive.incarnation == incarnation */
} wm_member_update;

/* A publisher's claim: "FILENAME is the file with sha256, size and chunk
 * map root of the entry it travels with", signed by the publisher. */
typedef struct wm_claim {
    uint8_t publisher[WM_ID_LEN];
    char filename[WM_WIRE_NAME_MAX + 1];
    char requires_python[WM_WIRE_PYVER_MAX + 1]; /* may be empty */
    uint8_t sig[WM_SIG_BYTES];
} wm_claim;

/* One line of an origin's holdings log, signed by the origin: "ORIGIN
 * holds (op add) or no longer holds (op remove) the bytes with sha256".
 * It names nothing; a publisher's claim may travel with an add. */
typedef struct wm_entry {
    uint8_t origin[WM_ID_LEN];
    uint64_t generation; /* a new log (data wiped) starts a new generation */
    uint64_t seq;        /* 1, 2, 3, ... within a generation */
    uint8_t op;          /* 1 add, 2 remove */
    uint8_t sha256[32];
    uint64_t size;
    uint8_t chunks_root[32]; /* sha256 of the chunk hash list */
    uint8_t has_claim;       /* op add only */
    wm_claim claim;
    uint8_t sig[WM_SIG_BYTES];
} wm_entry;

#define WM_OP_ADD    1
#define WM_OP_REMOVE 2

typedef struct wm_digest_item {
    uint8_t origin[WM_ID_LEN];
    uint64_t generation;
    uint64_t max_seq;
} wm_digest_item;

/* A decoded header frame. Only the fields of its type are meaningful. It is
 * large (the arrays are inline): allocate it once, not on the stack of a
 * deep call. */
typedef struct wm_msg {
    uint8_t type;
    /* PING, ACK, PING_REQ */
    uint32_t seq;
    uint8_t target[WM_ID_LEN];
    wm_member_update updates[WM_WIRE_MAX_UPDATES];
    size_t nupdates;
    /* DIGEST */
    uint8_t flags;
    uint8_t digest_hash[32];
    wm_digest_item digest[WM_WIRE_MAX_DIGEST];
    size_t ndigest;
    /* ENTRIES */
    wm_entry entries[WM_WIRE_MAX_ENTRIES];
    size_t nentries;
    /* FETCH, CHUNK, MAP, MAPDATA (flags shared with DIGEST) */
    uint8_t sha256[32];
    uint32_t idx;
    uint8_t status;
    /* HAVE (sha256 and flags above): bit i of bitmap (byte i / 8, bit
     * i % 8) is chunk i; the bits past nchunks are zero */
    uint32_t nchunks;
    uint8_t bitmap[WM_WIRE_MAX_CHUNKS / 8];
    char filename[WM_WIRE_NAME_MAX + 1]; /* last: see the senders' memset */
} wm_msg;

/* Appends the header frame of M to OUT (whose cap must allow
 * WM_WIRE_FRAME_MAX). Returns 0, or -EINVAL when M breaks a cap or holds a
 * bad field (the same checks decoding applies), or -ENOMEM. */
int wm_msg_encode(const wm_msg *m, wm_buf *out);

/* Decodes a header frame of LEN bytes into OUT. Returns 0, or -EBADMSG
 * with a static reason in *WHY (may be NULL) for anything malformed. */
int wm_msg_decode(const void *frame, size_t len, wm_msg *out, const char **why);

/* The bytes a signature covers, into OUT (room for WM_SIGNED_MAX), each
 * with its own domain string so no signature serves for another kind:
 * an entry (every field but its own sig, the claim with its sig included),
 * a claim (publisher, filename, requires_python, and the sha256, size and
 * chunks_root of ENTRY), and a member's alive statement. Return the
 * length. */
#define WM_SIGNED_MAX 2048
size_t wm_entry_signed_bytes(const wm_entry *e, uint8_t *out);
size_t wm_claim_signed_bytes(const wm_entry *e, uint8_t *out);
size_t wm_alive_signed_bytes(const uint8_t id[WM_ID_LEN], const wm_alive *a,
                             uint8_t *out);

/* Signing and checking the three statements with node keys. A sign
 * function fills the signature and the signer (an entry's origin, a
 * claim's publisher) from ID; a valid function returns 1 when the
 * signature is right. */
struct wm_identity;
void wm_entry_sign(const struct wm_identity *id, wm_entry *e);
int wm_entry_valid(const wm_entry *e);
void wm_claim_sign(const struct wm_identity *id, wm_entry *e);
int wm_claim_valid(const wm_entry *e);
void wm_alive_sign(const struct wm_identity *id, wm_alive *a);
int wm_alive_valid(const uint8_t id[WM_ID_LEN], const wm_alive *a);

/* sha256 over the digest items in the order given (callers sort by
 * origin), for the cheap "are we in sync" check. */
void wm_digest_hash(const wm_digest_item *items, size_t n, uint8_t out[32]);

#endif
