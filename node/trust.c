/*
 * Trusted keys and publishers: two lists read with
 * wm_identity_load_trusted, kept as arrays (the order seeds are tried in)
 * and as maps for the lookups every message makes.
 */
#include "trust.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "map.h"

struct key {
    uint8_t id[WM_PUBKEY_LEN];
    uint8_t curve[32];
    int publisher;
};

struct wm_trust {
    uint8_t self[WM_PUBKEY_LEN];
    struct key *keys; /* without self */
    size_t nkeys;
    struct key self_key;
    wm_map *by_id, *by_curve;
};

static void
clear(wm_trust *t)
{
    wm_map_destroy(&t->by_id, NULL);
    wm_map_destroy(&t->by_curve, NULL);
    free(t->keys);
    t->keys = NULL;
    t->nkeys = 0;
}

/* Builds the sets into T from the files of CFG. */
static int
build(wm_trust *t, const wm_config *cfg, char *why, size_t whysz)
{
    uint8_t(*trusted)[WM_PUBKEY_LEN] = NULL, (*pubs)[WM_PUBKEY_LEN] = NULL;
    size_t ntrusted = 0, npubs = 0;
    int rc = 0;

    if (cfg->trusted_keys != NULL)
        rc = wm_identity_load_trusted(cfg->trusted_keys, &trusted, &ntrusted,
                                      why, whysz);
    if (rc == 0 && cfg->publishers != NULL)
        rc = wm_identity_load_trusted(cfg->publishers, &pubs, &npubs, why,
                                      whysz);
    if (rc != 0)
        goto out;
    t->keys = calloc(ntrusted + 1, sizeof(*t->keys));
    t->by_id = wm_map_new();
    t->by_curve = wm_map_new();
    if (t->keys == NULL || t->by_id == NULL || t->by_curve == NULL) {
        snprintf(why, whysz, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    memset(&t->self_key, 0, sizeof(t->self_key));
    memcpy(t->self_key.id, t->self, WM_PUBKEY_LEN);
    wm_identity_curve_pub(t->self, t->self_key.curve);
    wm_map_put(t->by_id, t->self, WM_PUBKEY_LEN, &t->self_key);
    for (size_t i = 0; i < ntrusted; i++) {
        struct key *k = &t->keys[t->nkeys];
        if (memcmp(trusted[i], t->self, WM_PUBKEY_LEN) == 0 ||
            wm_map_get(t->by_id, trusted[i], WM_PUBKEY_LEN) != NULL)
            continue; /* ourselves, or listed twice */
        memcpy(k->id, trusted[i], WM_PUBKEY_LEN);
        wm_identity_curve_pub(k->id, k->curve);
        if (wm_map_put(t->by_id, k->id, WM_PUBKEY_LEN, k) != 0 ||
            wm_map_put(t->by_curve, k->curve, 32, k) != 0) {
            snprintf(why, whysz, "out of memory");
            rc = -ENOMEM;
            goto out;
        }
        t->nkeys++;
    }
    for (size_t i = 0; i < npubs; i++) {
        struct key *k = wm_map_get(t->by_id, pubs[i], WM_PUBKEY_LEN);
        char hex[WM_PUBKEY_HEX];
        if (k == NULL) {
            wm_hex_encode(pubs[i], WM_PUBKEY_LEN, hex);
            snprintf(why, whysz,
                     "%s: publisher %.16s... is not in cluster.trusted_keys "
                     "(a publisher must also be trusted)",
                     cfg->publishers, hex);
            rc = -EINVAL;
            goto out;
        }
        k->publisher = 1;
    }
out:
    free(trusted);
    free(pubs);
    return rc;
}

int
wm_trust_load(wm_trust **out, const wm_config *cfg,
              const uint8_t self[WM_PUBKEY_LEN], char *why, size_t whysz)
{
    wm_trust *t = calloc(1, sizeof(*t));
    int rc;

    *out = NULL;
    if (t == NULL) {
        snprintf(why, whysz, "out of memory");
        return -ENOMEM;
    }
    memcpy(t->self, self, WM_PUBKEY_LEN);
    rc = build(t, cfg, why, whysz);
    if (rc != 0) {
        wm_trust_destroy(&t);
        return rc;
    }
    *out = t;
    return 0;
}

int
wm_trust_reload(wm_trust *t, const wm_config *cfg, char *why, size_t whysz)
{
    wm_trust fresh;
    int rc;

    memset(&fresh, 0, sizeof(fresh));
    memcpy(fresh.self, t->self, WM_PUBKEY_LEN);
    rc = build(&fresh, cfg, why, whysz);
    if (rc != 0) {
        clear(&fresh);
        return rc;
    }
    clear(t);
    t->keys = fresh.keys;
    t->nkeys = fresh.nkeys;
    t->by_id = fresh.by_id;
    t->by_curve = fresh.by_curve;
    /* The map points at the self key inside FRESH: point it here. */
    t->self_key = fresh.self_key;
    wm_map_put(t->by_id, t->self, WM_PUBKEY_LEN, &t->self_key);
    return 0;
}

void
wm_trust_destroy(wm_trust **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    clear(*tp);
    free(*tp);
    *tp = NULL;
}

int
wm_trust_is_trusted(const wm_trust *t, const uint8_t id[WM_PUBKEY_LEN])
{
    return wm_map_get(t->by_id, id, WM_PUBKEY_LEN) != NULL;
}

int
wm_trust_is_publisher(const wm_trust *t, const uint8_t id[WM_PUBKEY_LEN])
{
    const struct key *k = wm_map_get(t->by_id, id, WM_PUBKEY_LEN);

    return k != NULL && k->publisher;
}

const uint8_t *
wm_trust_curve(const wm_trust *t, const uint8_t id[WM_PUBKEY_LEN])
{
    const struct key *k = wm_map_get(t->by_id, id, WM_PUBKEY_LEN);

    return k != NULL ? k->curve : NULL;
}

const uint8_t *
wm_trust_by_curve(const wm_trust *t, const uint8_t curve[32])
{
    const struct key *k = wm_map_get(t->by_curve, curve, 32);

    return k != NULL ? k->id : NULL;
}

size_t
wm_trust_count(const wm_trust *t)
{
    return t->nkeys;
}

const uint8_t *
wm_trust_at(const wm_trust *t, size_t i)
{
    return t->keys[i].id;
}
