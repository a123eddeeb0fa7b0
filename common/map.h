/*
 * A hash map from byte-string keys (up to 255 bytes: sha256s, project
 * names) to pointers, with a recency order for bounded caches. Buckets are
 * picked by a keyed hash, so keys chosen by a peer or a client cannot pile
 * into one bucket. Not thread-safe: one owner thread.
 */
#ifndef WM_MAP_H
#define WM_MAP_H

#include <stddef.h>
#include <stdint.h>

#define WM_MAP_KEY_MAX 255

typedef struct wm_map wm_map;

/* A new empty map; NULL when out of memory. */
wm_map *wm_map_new(void);

/* Frees the map (NULL is fine), calling FREE_VALUE (may be NULL) on every
 * value, and clears the pointer. */
void wm_map_destroy(wm_map **m, void (*free_value)(void *));

/* The value of KEY, or NULL. */
void *wm_map_get(const wm_map *m, const void *key, size_t klen);

/* Sets KEY to VALUE (not NULL), replacing an old value (which the caller
 * still owns), and makes KEY the most recently used. Returns 0, -EINVAL
 * for a key over WM_MAP_KEY_MAX bytes, or -ENOMEM. */
int wm_map_put(wm_map *m, const void *key, size_t klen, void *value);

/* Removes KEY; returns its value (the caller's now) or NULL. */
void *wm_map_remove(wm_map *m, const void *key, size_t klen);

/* Makes KEY the most recently used; returns its value or NULL. */
void *wm_map_touch(wm_map *m, const void *key, size_t klen);

/* The least recently used entry: its value (and key, when KEY is not
 * NULL), or NULL when the map is empty. */
void *wm_map_oldest(const wm_map *m, const void **key, size_t *klen);

size_t wm_map_count(const wm_map *m);

/* Iterates from the most recently used: start with *CURSOR = NULL; returns
 * the next value (key in *KEY / *KLEN when not NULL) or NULL at the end.
 * The map must not change during the walk, except that the entry just
 * returned may be removed. */
void *wm_map_next(const wm_map *m, void **cursor, const void **key,
                  size_t *klen);

#endif
