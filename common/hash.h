/*
 * SHA-256 through OpenSSL's libcrypto (its SHA-NI code is ~4x libsodium's
 * here), plus hex helpers.
 */
#ifndef WM_HASH_H
#define WM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define WM_SHA256_LEN 32
#define WM_SHA256_HEX 65 /* 64 hex digits + NUL */

typedef struct wm_sha256 wm_sha256; /* opaque streaming context */

/* Creates a streaming hash. Returns NULL on allocation failure. */
wm_sha256 *wm_sha256_new(void);
/* Frees CTX (NULL is fine) and clears the caller's pointer. */
void wm_sha256_destroy(wm_sha256 **ctx);
void wm_sha256_update(wm_sha256 *ctx, const void *data, size_t len);
/* Writes the digest and resets CTX for reuse. */
void wm_sha256_final(wm_sha256 *ctx, uint8_t out[WM_SHA256_LEN]);

/* One-shot digest of DATA. */
void wm_sha256_digest(const void *data, size_t len, uint8_t out[WM_SHA256_LEN]);

/* Lowercase hex of LEN bytes into OUT (2*LEN+1 bytes). */
void wm_hex_encode(const uint8_t *in, size_t len, char *out);

/* Parses exactly 2*LEN hex digits (either case) from HEX, nothing after.
 * Returns 0 or -EINVAL. */
int wm_hex_decode(const char *hex, uint8_t *out, size_t len);

#endif
