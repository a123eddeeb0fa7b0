/*
 * Routing: see route.h. Pins are exact (normalised) names; cluster
 * ownership takes name patterns, so a fleet can claim "corp-*" at once.
 */
#include "route.h"

#include <string.h>

int
wm_route_match(const char *pattern, const char *name)
{
    const char *star = NULL, *resume = NULL;

    /* Greedy matching with one backtrack point per '*': linear enough for
     * names of at most a few hundred bytes. */
    while (*name != '\0') {
        if (*pattern == '*') {
            star = pattern++;
            resume = name;
        } else if (*pattern == '?' || *pattern == *name) {
            pattern++;
            name++;
        } else if (star != NULL) {
            pattern = star + 1;
            name = ++resume;
        } else {
            return 0;
        }
    }
    while (*pattern == '*')
        pattern++;
    return *pattern == '\0';
}

int
wm_route_cluster_owned(const wm_config *cfg, const char *project)
{
    for (size_t i = 0; i < cfg->ncluster_projects; i++)
        if (wm_route_match(cfg->cluster_projects[i], project))
            return 1;
    return 0;
}

static int
pins(const wm_index *ix, const char *project)
{
    for (size_t i = 0; i < ix->nprojects; i++)
        if (strcmp(ix->projects[i], project) == 0)
            return 1;
    return 0;
}

size_t
wm_route(const wm_config *cfg, const char *project, size_t *out, int *pinned)
{
    size_t n = 0;

    *pinned = 0;
    if (wm_route_cluster_owned(cfg, project))
        return 0;
    for (size_t i = 0; i < cfg->nindexes; i++) {
        if (pins(&cfg->indexes[i], project)) {
            *pinned = 1;
            out[0] = i;
            return 1;
        }
    }
    for (size_t i = 0; i < cfg->nindexes; i++)
        if (cfg->indexes[i].nprojects == 0)
            out[n++] = i;
    return n;
}

int
wm_route_allows(const wm_config *cfg, const char *project, const char *url)
{
    int pinned = 0, general = 0;

    if (wm_route_cluster_owned(cfg, project))
        return 0;
    for (size_t i = 0; i < cfg->nindexes; i++) {
        const wm_index *ix = &cfg->indexes[i];
        int match = strcmp(ix->url, url) == 0;
        if (pins(ix, project)) {
            if (match)
                return 1;
            pinned = 1;
        } else if (ix->nprojects == 0 && match) {
            general = 1;
        }
    }
    return !pinned && general;
}
