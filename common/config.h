/*
 * The node's configuration: a JSON file (cJSON), every key optional, every
 * key with a default (DESIGN.md "Config"). Unknown keys, wrong types and
 * impossible values are errors that name the key ("cache.max_size") and,
 * where the file shows it, the line.
 */
#ifndef WM_CONFIG_H
#define WM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* One CIDR block from http.allow_put_from, IPv4 or IPv6. */
typedef struct wm_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix; /* 0..32 or 0..128 */
} wm_cidr;

typedef struct wm_index {
    char *url;       /* ends with "/" */
    char **projects; /* normalised names; NULL when it serves every project */
    size_t nprojects;
} wm_index;

/* A peer to join through. Written "KEY@tcp://HOST:PORT" it names the key
 * expected there (64 hex digits, as in trusted_keys): one handshake. Written
 * "tcp://HOST:PORT" the key is found by trying every trusted key, one
 * handshake each: N agents started at once make N * N. */
typedef struct wm_seed {
    char *addr; /* "tcp://HOST:PORT" */
    uint8_t key[32];
    int has_key;
} wm_seed;

typedef struct wm_config {
    /* node */
    char *name;     /* default: the host name */
    char *data_dir; /* default: $XDG_CACHE_HOME/wheelmesh or ~/.cache/... */
    char *identity; /* default: <data_dir>/node.key */
    /* http */
    char *http_listen; /* "HOST:PORT" or "[V6]:PORT"; default 127.0.0.1:7390 */
    wm_cidr *allow_put_from; /* default 127.0.0.1/32 and ::1/128 */
    size_t nallow_put_from;
    /* cluster */
    char *cluster_listen;    /* default "tcp://0.0.0.0:7391" */
    char *cluster_advertise; /* NULL: derived at run time */
    wm_seed *seeds;
    size_t nseeds;
    char *trusted_keys; /* path; NULL: none */
    char *publishers;   /* path, trusted_keys format; NULL: none */
    char **cluster_projects; /* name patterns the cluster owns (PEP 503) */
    size_t ncluster_projects;
    uint64_t max_upload_rate; /* bytes per second to peers; 0: no cap */
    /* upstream */
    wm_index *indexes;   /* default: one, https://pypi.org/simple/ */
    size_t nindexes;     /* 0: offline */
    uint32_t page_ttl_s; /* default 600 */
    uint32_t timeout_s;  /* default 30 */
    /* cache */
    uint64_t max_size;          /* default 20 GiB */
    uint32_t expire_after_days; /* default 7; 0 = never */
    uint64_t map_size;          /* default 256 GiB; >= max_size */
} wm_config;

/* Fills CFG with every default. Returns 0, or -ENOMEM. Free with
 * wm_config_free(). */
int wm_config_defaults(wm_config *cfg);

/* Loads PATH over the defaults into CFG. On failure returns -EINVAL (or
 * -errno when the file cannot be read), leaves CFG freed, and appends one
 * line per problem to ERRORS, each naming the file, the line when known and
 * the key, e.g. "node.json:7: cache.max_size: expected a size such as
 * \"20GiB\"". */
int wm_config_load(wm_config *cfg, const char *path, wm_buf *errors);

/* Parses a size: a plain number of bytes or a number followed by
 * B, KiB, MiB, GiB or TiB. Returns 0 or -EINVAL (also on overflow). */
int wm_config_parse_size(const char *s, uint64_t *out);

/* Parses "10.0.0.0/8", "::1/128" or a bare address (full prefix).
 * Returns 0 or -EINVAL. */
int wm_cidr_parse(const char *s, wm_cidr *out);

/* True when the address (FAMILY, 4 or 16 bytes at ADDR) lies in C. An IPv4
 * address mapped into IPv6 (::ffff:a.b.c.d) matches IPv4 blocks. */
int wm_cidr_match(const wm_cidr *c, int family, const uint8_t *addr);

/* True when socket address SA (IPv4 or IPv6) lies in one of the N blocks
 * of LIST. */
struct sockaddr;
int wm_cidr_list_match(const wm_cidr *list, size_t n,
                       const struct sockaddr *sa);

/* Resolves "HOST:PORT" or "[V6]:PORT" (as http.listen holds it) into SS
 * and *SSLEN. Returns 0 or -EINVAL. */
struct sockaddr_storage;
int wm_config_resolve(const char *hostport, struct sockaddr_storage *ss,
                      unsigned *sslen);

/* Frees every string and list CFG owns and zeroes it. */
void wm_config_free(wm_config *cfg);

#endif
