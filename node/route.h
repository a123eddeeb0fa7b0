/*
 * Which upstream index, if any, speaks for a project, decided from the
 * configuration as it is now. An index with `projects` is the only source
 * of those projects and is asked for nothing else; every other project
 * comes from the first general index that knows it; a project matching
 * cluster.projects belongs to the cluster and is never asked of upstream.
 * Pure functions: no state, no I/O.
 */
#ifndef WM_ROUTE_H
#define WM_ROUTE_H

#include <stddef.h>

#include "config.h"

/* True when NAME matches PATTERN, in which '*' stands for any run of
 * characters and '?' for one (both PEP 503-normalised). */
int wm_route_match(const char *pattern, const char *name);

/* True when PROJECT belongs to the cluster (cluster.projects). */
int wm_route_cluster_owned(const wm_config *cfg, const char *project);

/* The indexes that may serve PROJECT, in the order to ask them, into OUT
 * (room for CFG->nindexes): the one index that pins it, or every general
 * index in order, or none (offline, cluster-owned, or pinned nowhere and
 * no general index). Sets *PINNED. Returns how many. */
size_t wm_route(const wm_config *cfg, const char *project, size_t *out,
                int *pinned);

/* True when a page of PROJECT fetched from index URL may still be used:
 * URL is one of PROJECT's indexes under today's configuration. */
int wm_route_allows(const wm_config *cfg, const char *project,
                    const char *url);

#endif
