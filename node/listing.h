/*
 * What a project page lists: the trust rules, as a pure function.
 *
 * Only two authorities name files: the upstream index that routing picks
 * for the project (this node's own copy of its page) and publishers
 * (their signed claims; this node's own puts count as its claims here).
 * Holdings name nothing: they only make a listed file's bytes reachable.
 *
 * - A project upstream serves lists exactly upstream's files with
 *   upstream's hashes and attributes, plus claimed files whose version
 *   upstream has and whose filename it does not (platform wheels built
 *   from upstream's sdists), plus claimed versions with a local label
 *   ("2.31.0+corp1"). A project pinned to an index lists that index's
 *   files only.
 * - A project upstream does not serve lists claimed files.
 * - A claim counts only when a publisher signed it (this node's own puts
 *   count on this node) and a live member or this node holds the bytes.
 * - A claim that contradicts upstream (same filename, other bytes; a
 *   version upstream lacks) or another claim is dropped and reported.
 */
#ifndef WM_LISTING_H
#define WM_LISTING_H

#include <stddef.h>
#include <stdint.h>

#include "simplepage.h"
#include "store.h"

/* A claim on a file, as some holding carries it (or this node's own put).
 * It names the file only when its signer is a publisher now. */
typedef struct wm_claimed {
    const char *filename;
    const uint8_t *sha256;
    uint64_t size;
    const char *requires_python; /* "" when none */
    const uint8_t *publisher;    /* who signed it */
    int by_publisher; /* the signer is a publisher, or it is our own put */
    const wm_file_info *local; /* the store's record, when held here */
    int held;                  /* its holder is this node or a live member */
} wm_claimed;

/* One file a page lists. */
typedef struct wm_listed {
    const char *filename;
    const uint8_t *sha256;      /* NULL: unknown (an unhashed link) */
    const char *url;            /* NULL: this node's /files/<sha256>/ */
    const uint8_t *meta_sha256; /* NULL: no metadata advertised */
    const char *requires_python;
    const char *yanked; /* NULL: not yanked */
    uint64_t size;      /* 0: unknown */
    int held;           /* bytes here or on a live member */
} wm_listed;

/* Why a claim was dropped. */
enum wm_conflict {
    WM_CONFLICT_NAME,    /* upstream names the filename with other bytes */
    WM_CONFLICT_VERSION, /* a version of an upstream project it lacks */
    WM_CONFLICT_CLAIMS,  /* another claim names it with other bytes */
};

typedef struct wm_listing_in {
    const wm_simplepage *upstream; /* NULL: upstream does not serve it */
    int pinned;                    /* routed to an index that pins it */
    const wm_file_info *local;     /* the store's files of the project */
    size_t nlocal;
    const wm_claimed *claims; /* trusted publishers' and own puts */
    size_t nclaims;
    /* Is SHA held by a live member (not this node)? */
    int (*peers_hold)(void *arg, const uint8_t *sha);
    void *arg;
    /* Reports a dropped claim: FILENAME by PUBLISHER, and why. */
    void (*conflict)(void *arg, const char *filename,
                     const uint8_t *publisher, enum wm_conflict why);
} wm_listing_in;

/* Fills OUT (a malloc'd array, caller frees; NULL when empty) with what
 * the page lists, in page order: upstream's files first, then claimed
 * ones by filename. Pointers point into IN. Returns how many, or -ENOMEM
 * with *OUT NULL. */
long wm_listing_build(const wm_listing_in *in, wm_listed **out);

/* One line saying why. */
const char *wm_conflict_reason(enum wm_conflict why);

/* The version in a file name of PROJECT: a wheel's, or an sdist's
 * ("name-1.0.tar.gz", ".zip"). Copies it into OUT (room for SZ) and
 * returns 0, or -1 when the name holds none. */
int wm_listing_version(const char *filename, char *out, size_t sz);

#endif
