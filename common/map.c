/*
 * Chained buckets, doubled when the load passes 1, and one list through
 * every entry in recency order. Each map draws its own hash key.
 */
#include "map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"

struct node {
    struct node *chain;       /* next in the bucket */
    struct node *newer, *older; /* the recency list */
    void *value;
    uint8_t klen;
    uint8_t key[];
};

struct wm_map {
    struct node **buckets;
    size_t nbuckets, count;
    struct node *newest, *oldest;
    uint8_t hkey[16];
};

wm_map *
wm_map_new(void)
{
    wm_map *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
    if (m->buckets == NULL) {
        free(m);
        return NULL;
    }
    wm_random_bytes(m->hkey, sizeof(m->hkey));
    return m;
}

void
wm_map_destroy(wm_map **mp, void (*free_value)(void *))
{
    wm_map *m;

    if (mp == NULL || *mp == NULL)
        return;
    m = *mp;
    for (struct node *n = m->newest, *next; n != NULL; n = next) {
        next = n->older;
        if (free_value != NULL)
            free_value(n->value);
        free(n);
    }
    free(m->buckets);
    free(m);
    *mp = NULL;
}

static size_t
bucket(const wm_map *m, const void *key, size_t klen)
{
    return (size_t)(wm_keyed_hash64(m->hkey, key, klen) & (m->nbuckets - 1));
}

static struct node **
slot(const wm_map *m, const void *key, size_t klen)
{
    struct node **p = &m->buckets[bucket(m, key, klen)];

    for (; *p != NULL; p = &(*p)->chain)
        if ((*p)->klen == klen && memcmp((*p)->key, key, klen) == 0)
            return p;
    return p;
}

static void
unlist(wm_map *m, struct node *n)
{
    if (n->newer != NULL)
        n->newer->older = n->older;
    else
        m->newest = n->older;
    if (n->older != NULL)
        n->older->newer = n->newer;
    else
        m->oldest = n->newer;
    n->newer = n->older = NULL;
}

static void
list_front(wm_map *m, struct node *n)
{
    n->older = m->newest;
    n->newer = NULL;
    if (m->newest != NULL)
        m->newest->newer = n;
    m->newest = n;
    if (m->oldest == NULL)
        m->oldest = n;
}

/* Doubles the buckets; on failure the map just stays slower. */
static void
rehash(wm_map *m)
{
    size_t nb = m->nbuckets * 2;
    struct node **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return;
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    for (struct node *n = m->newest; n != NULL; n = n->older) {
        struct node **p = &b[bucket(m, n->key, n->klen)];
        n->chain = *p;
        *p = n;
    }
}

void *
wm_map_get(const wm_map *m, const void *key, size_t klen)
{
    struct node *n;

    if (klen > WM_MAP_KEY_MAX)
        return NULL;
    n = *slot(m, key, klen);
    return n != NULL ? n->value : NULL;
}

int
wm_map_put(wm_map *m, const void *key, size_t klen, void *value)
{
    struct node **p, *n;

    if (klen > WM_MAP_KEY_MAX)
        return -EINVAL;
    p = slot(m, key, klen);
    if (*p != NULL) {
        (*p)->value = value;
        unlist(m, *p);
        list_front(m, *p);
        return 0;
    }
    n = calloc(1, sizeof(*n) + klen);
    if (n == NULL)
        return -ENOMEM;
    memcpy(n->key, key, klen);
    n->klen = (uint8_t)klen;
    n->value = value;
    *p = n;
    list_front(m, n);
    if (++m->count > m->nbuckets)
        rehash(m);
    return 0;
}

void *
wm_map_remove(wm_map *m, const void *key, size_t klen)
{
    struct node **p, *n;
    void *value;

    if (klen > WM_MAP_KEY_MAX)
        return NULL;
    p = slot(m, key, klen);
    n = *p;
    if (n == NULL)
        return NULL;
    *p = n->chain;
    unlist(m, n);
    value = n->value;
    free(n);
    m->count--;
    return value;
}

void *
wm_map_touch(wm_map *m, const void *key, size_t klen)
{
    struct node *n;

    if (klen > WM_MAP_KEY_MAX)
        return NULL;
    n = *slot(m, key, klen);
    if (n == NULL)
        return NULL;
    unlist(m, n);
    list_front(m, n);
    return n->value;
}

void *
wm_map_oldest(const wm_map *m, const void **key, size_t *klen)
{
    if (m->oldest == NULL)
        return NULL;
    if (key != NULL)
        *key = m->oldest->key;
    if (klen != NULL)
        *klen = m->oldest->klen;
    return m->oldest->value;
}

size_t
wm_map_count(const wm_map *m)
{
    return m->count;
}

static char walk_end; /* the cursor after the last entry */

void *
wm_map_next(const wm_map *m, void **cursor, const void **key, size_t *klen)
{
    struct node *n;

    if (*cursor == &walk_end)
        return NULL;
    n = *cursor == NULL ? m->newest : *cursor;
    if (n == NULL)
        return NULL;
    *cursor = n->older != NULL ? (void *)n->older : (void *)&walk_end;
    if (key != NULL)
        *key = n->key;
    if (klen != NULL)
        *klen = n->klen;
    return n->value;
}
