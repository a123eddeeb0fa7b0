/*
 * Whom this node trusts, and for what: the keys of cluster.trusted_keys
 * may be members (their holdings make them sources of bytes), and those
 * also in cluster.publishers may name wheels for the whole cluster. The
 * node's own key is always trusted. Both files are read at start and on
 * SIGHUP; a reload that fails keeps the old sets.
 */
#ifndef WM_TRUST_H
#define WM_TRUST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "identity.h"

typedef struct wm_trust wm_trust;

/* Reads CFG's trusted_keys and publishers (either may be unset) for the
 * node SELF. Returns 0 and *OUT, or a negative error with the reason in
 * WHY (a publisher that is not trusted is one). */
int wm_trust_load(wm_trust **out, const wm_config *cfg,
                  const uint8_t self[WM_PUBKEY_LEN], char *why, size_t whysz);

/* Reads the files again into T. Returns 0, or a negative error with WHY
 * set, T unchanged. */
int wm_trust_reload(wm_trust *t, const wm_config *cfg, char *why,
                    size_t whysz);

void wm_trust_destroy(wm_trust **t);

int wm_trust_is_trusted(const wm_trust *t, const uint8_t id[WM_PUBKEY_LEN]);
int wm_trust_is_publisher(const wm_trust *t, const uint8_t id[WM_PUBKEY_LEN]);

/* The CurveZMQ public key of trusted ID, or NULL. */
const uint8_t *wm_trust_curve(const wm_trust *t,
                              const uint8_t id[WM_PUBKEY_LEN]);

/* The trusted id whose CurveZMQ public key is CURVE, or NULL. */
const uint8_t *wm_trust_by_curve(const wm_trust *t, const uint8_t curve[32]);

/* The trusted keys other than the node's own, in file order. */
size_t wm_trust_count(const wm_trust *t);
const uint8_t *wm_trust_at(const wm_trust *t, size_t i);

#endif
