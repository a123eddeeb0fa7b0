/*
 * A node's identity: an Ed25519 key pair (libsodium). The node id is the
 * public key; it signs every file record it creates. The key file holds one
 * line, "wheelmesh-ed25519 <64 hex digits of the seed>", mode 0600.
 */
#ifndef WM_IDENTITY_H
#define WM_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#define WM_PUBKEY_LEN 32
#define WM_SIG_LEN    64
#define WM_PUBKEY_HEX 65

typedef struct wm_identity wm_identity;

/* Initialises libsodium; call once before any other function here.
 * Returns 0 or -1. */
int wm_identity_init(void);

/* Generates a fresh key. Returns NULL when out of memory. */
wm_identity *wm_identity_generate(void);

/* Loads the key at PATH. Returns NULL with *WHY set to a static reason
 * ("cannot read", "not a wheelmesh key", "mode is not 0600") on failure. */
wm_identity *wm_identity_load(const char *path, const char **why);

/* Writes ID to PATH with mode 0600, refusing to overwrite an existing file.
 * Returns 0, -EEXIST, or another -errno. */
int wm_identity_save(const wm_identity *id, const char *path);

/* Loads PATH, or creates and saves a new key there when it does not exist
 * (a node's first start). NULL with *WHY on failure. */
wm_identity *wm_identity_load_or_create(const char *path, const char **why);

/* Wipes the secret key, frees ID (NULL is fine), clears the pointer. */
void wm_identity_destroy(wm_identity **id);

const uint8_t *wm_identity_pubkey(const wm_identity *id);
/* Hex of the public key, as printed by keygen and listed in trusted_keys. */
void wm_identity_pubkey_hex(const wm_identity *id, char out[WM_PUBKEY_HEX]);

/* Detached signature over MSG. */
void wm_identity_sign(const wm_identity *id, const void *msg, size_t len,
                      uint8_t sig[WM_SIG_LEN]);

/* Returns 0 when SIG is PUBKEY's signature over MSG, -EBADMSG otherwise. */
int wm_identity_verify(const uint8_t pubkey[WM_PUBKEY_LEN], const void *msg,
                       size_t len, const uint8_t sig[WM_SIG_LEN]);

/* The CurveZMQ key pair of ID: its Ed25519 keys converted to X25519, so
 * one key file gives both the signing identity and the transport keys. */
void wm_identity_curve(const wm_identity *id, uint8_t pk[32], uint8_t sk[32]);

/* The CurveZMQ public key of the node whose Ed25519 public key is ED_PK.
 * Returns 0, or -EINVAL when ED_PK is not a valid key. */
int wm_identity_curve_pub(const uint8_t ed_pk[WM_PUBKEY_LEN], uint8_t out[32]);

/* Reads a trusted_keys file: one public key (64 hex digits) a line, blank
 * lines and "#" comments allowed, anything after the key ignored (a name).
 * Returns 0 with a malloc'd array in *KEYS (caller frees) and its length
 * in *N, or a negative error with "PATH:LINE: reason" in WHY (size
 * WHYSZ). */
int wm_identity_load_trusted(const char *path, uint8_t (**keys)[WM_PUBKEY_LEN],
                             size_t *n, char *why, size_t whysz);

/* N random bytes from the system's generator (libsodium). */
void wm_random_bytes(void *buf, size_t n);

/* A keyed 64-bit hash (SipHash) of DATA under the 16-byte KEY: table
 * buckets that a peer or client who chooses the names cannot crowd. */
uint64_t wm_keyed_hash64(const uint8_t key[16], const void *data, size_t len);

#endif
