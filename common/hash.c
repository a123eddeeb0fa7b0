/*
 * SHA-256 via OpenSSL's EVP interface, and hex encoding. EVP picks the
 * CPU's SHA extensions when it has them.
 */
#include "hash.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>

struct wm_sha256 {
    EVP_MD_CTX *md;
};

wm_sha256 *
wm_sha256_new(void)
{
    wm_sha256 *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->md = EVP_MD_CTX_new();
    if (ctx->md == NULL ||
        EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx->md);
        free(ctx);
        return NULL;
    }
    return ctx;
}

void
wm_sha256_destroy(wm_sha256 **ctx)
{
    if (ctx == NULL || *ctx == NULL)
        return;
    EVP_MD_CTX_free((*ctx)->md);
    free(*ctx);
    *ctx = NULL;
}

void
wm_sha256_update(wm_sha256 *ctx, const void *data, size_t len)
{
    EVP_DigestUpdate(ctx->md, data, len);
}

void
wm_sha256_final(wm_sha256 *ctx, uint8_t out[WM_SHA256_LEN])
{
    EVP_DigestFinal_ex(ctx->md, out, NULL);
    EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL);
}

void
wm_sha256_digest(const void *data, size_t len, uint8_t out[WM_SHA256_LEN])
{
    EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL);
}

void
wm_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
wm_hex_decode(const char *hex, uint8_t *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        hi = hex_value(hex[2 * i]);
        if (hi < 0)
            return -EINVAL;
        lo = hex_value(hex[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[2 * len] == '\0' ? 0 : -EINVAL;
}
