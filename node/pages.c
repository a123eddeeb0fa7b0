/*
 * Page rendering. HTML goes through a capped wm_buf with every name
 * escaped; JSON through cJSON. Links always point back at this node
 * (/files/<sha256>/<filename>) and carry the sha256, so pip verifies what
 * it gets whichever node or index the bytes came from.
 */
#include "pages.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"

#define PAGE_MAX (64u << 20)
#define API_VERSION "1.1"

static const char *
source_name(uint8_t source)
{
    switch (source) {
    case WM_SOURCE_PUT:
        return "put";
    case WM_SOURCE_PEER:
        return "peer";
    case WM_SOURCE_UPSTREAM:
        return "upstream";
    default:
        return "unknown";
    }
}

/* cJSON_PrintUnformatted, with the length and the page cap applied. */
static char *
json_finish(cJSON *root, size_t *len)
{
    char *out = root != NULL ? cJSON_PrintUnformatted(root) : NULL;

    cJSON_Delete(root);
    if (out == NULL)
        return NULL;
    *len = strlen(out);
    if (*len > PAGE_MAX) {
        free(out);
        return NULL;
    }
    return out;
}

static cJSON *
json_meta(cJSON *root)
{
    cJSON *meta = cJSON_AddObjectToObject(root, "meta");
    if (meta != NULL)
        cJSON_AddStringToObject(meta, "api-version", API_VERSION);
    return meta;
}

/* --- /simple/ */

static int
root_html_project(const char *project, void *arg)
{
    wm_buf *b = arg;

    wm_buf_adds(b, "    <a href=\"/simple/");
    wm_buf_add_html(b, project);
    wm_buf_adds(b, "/\">");
    wm_buf_add_html(b, project);
    wm_buf_adds(b, "</a><br>\n");
    return 0;
}

static int
root_json_project(const char *project, void *arg)
{
    cJSON *entry = cJSON_CreateObject();

    if (entry == NULL || cJSON_AddStringToObject(entry, "name", project) ==
                             NULL) {
        cJSON_Delete(entry);
        return -1;
    }
    cJSON_AddItemToArray(arg, entry);
    return 0;
}

/* Opens a page titled TITLE followed by NAME (escaped; may be NULL). */
static void
html_head(wm_buf *b, const char *title, const char *name)
{
    wm_buf_adds(b, "<!DOCTYPE html>\n<html>\n  <head>\n"
                   "    <meta name=\"pypi:repository-version\" content=\"" API_VERSION
                   "\">\n    <title>");
    wm_buf_adds(b, title);
    if (name != NULL)
        wm_buf_add_html(b, name);
    wm_buf_adds(b, "</title>\n  </head>\n  <body>\n");
}

static char *
html_finish(wm_buf *b, size_t *len)
{
    wm_buf_adds(b, "  </body>\n</html>\n");
    return wm_buf_steal(b, len);
}

char *
wm_page_root(wm_store_view *v, enum wm_page_format fmt, size_t *len)
{
    if (fmt == WM_PAGE_JSON) {
        cJSON *root = cJSON_CreateObject();
        cJSON *projects;

        if (root == NULL || json_meta(root) == NULL)
            goto fail;
        projects = cJSON_AddArrayToObject(root, "projects");
        if (projects == NULL ||
            wm_store_each_project(v, root_json_project, projects) != 0)
            goto fail;
        return json_finish(root, len);
    fail:
        cJSON_Delete(root);
        return NULL;
    }
    wm_buf b;
    wm_buf_init(&b, PAGE_MAX);
    html_head(&b, "Simple index", NULL);
    wm_store_each_project(v, root_html_project, &b);
    return html_finish(&b, len);
}

/* --- /simple/<project>/ and /links/ */

/* Writes one anchor: the href back at this node with the sha256 fragment,
 * and the PEP 658/714 attributes when METADATA is stored. */
static void
html_file_link(wm_buf *b, const wm_file_info *f)
{
    char sha[WM_SHA256_HEX], msha[WM_SHA256_HEX];

    wm_hex_encode(f->sha256, WM_SHA256_LEN, sha);
    wm_buf_printf(b, "    <a href=\"/files/%s/", sha);
    wm_buf_add_html(b, f->filename);
    wm_buf_printf(b, "#sha256=%s\"", sha);
    if (f->meta_size > 0) {
        wm_hex_encode(f->meta_sha256, WM_SHA256_LEN, msha);
        wm_buf_printf(b,
                      " data-dist-info-metadata=\"sha256=%s\""
                      " data-core-metadata=\"sha256=%s\"",
                      msha, msha);
    }
    wm_buf_adds(b, ">");
    wm_buf_add_html(b, f->filename);
    wm_buf_adds(b, "</a><br>\n");
}

static int
html_file(const wm_file_info *f, void *arg)
{
    html_file_link(arg, f);
    return 0;
}

struct project_json {
    cJSON *files;
    cJSON *versions;
};

static int
add_version(cJSON *versions, const char *version)
{
    const cJSON *it;

    /* Files come sorted by name, so a repeat is usually the last entry;
     * the scan is O(versions) only for interleaved tags. */
    cJSON_ArrayForEach(it, versions)
    {
        if (strcmp(it->valuestring, version) == 0)
            return 0;
    }
    cJSON *s = cJSON_CreateString(version);
    if (s == NULL)
        return -1;
    cJSON_AddItemToArray(versions, s);
    return 0;
}

static int
json_file(const wm_file_info *f, void *arg)
{
    struct project_json *pj = arg;
    char sha[WM_SHA256_HEX], msha[WM_SHA256_HEX];
    char url[16 + WM_SHA256_HEX + WM_WHEELNAME_MAX];
    cJSON *file = cJSON_CreateObject(), *hashes, *meta;
    wm_wheelname wn;

    if (file == NULL)
        return -1;
    cJSON_AddItemToArray(pj->files, file);
    wm_hex_encode(f->sha256, WM_SHA256_LEN, sha);
    snprintf(url, sizeof(url), "/files/%s/%s", sha, f->filename);
    cJSON_AddStringToObject(file, "filename", f->filename);
    cJSON_AddStringToObject(file, "url", url);
    hashes = cJSON_AddObjectToObject(file, "hashes");
    if (hashes == NULL || cJSON_AddStringToObject(hashes, "sha256", sha) ==
                              NULL)
        return -1;
    if (f->meta_size > 0) {
        wm_hex_encode(f->meta_sha256, WM_SHA256_LEN, msha);
        /* Only PEP 714's name: pip 23.0 crashes on the old
         * "dist-info-metadata" key holding a dict. */
        meta = cJSON_AddObjectToObject(file, "core-metadata");
        if (meta != NULL)
            cJSON_AddStringToObject(meta, "sha256", msha);
    }
    cJSON_AddNumberToObject(file, "size", (double)f->size);
    if (wm_wheelname_parse(f->filename, &wn, NULL) == 0)
        return add_version(pj->versions, wn.version);
    return 0;
}

char *
wm_page_project(wm_store_view *v, const char *project,
                enum wm_page_format fmt, int *found, size_t *len)
{
    *found = 0;
    if (fmt == WM_PAGE_JSON) {
        struct project_json pj;
        cJSON *root = cJSON_CreateObject();

        if (root == NULL || json_meta(root) == NULL ||
            cJSON_AddStringToObject(root, "name", project) == NULL)
            goto fail;
        pj.files = cJSON_AddArrayToObject(root, "files");
        pj.versions = cJSON_AddArrayToObject(root, "versions");
        if (pj.files == NULL || pj.versions == NULL ||
            wm_store_each_file(v, project, json_file, &pj) != 0)
            goto fail;
        *found = cJSON_GetArraySize(pj.files) > 0;
        if (!*found)
            goto fail;
        return json_finish(root, len);
    fail:
        cJSON_Delete(root);
        return NULL;
    }
    wm_buf b;
    wm_buf_init(&b, PAGE_MAX);
    html_head(&b, "Links for ", project);
    wm_buf_adds(&b, "    <h1>Links for ");
    wm_buf_add_html(&b, project);
    wm_buf_adds(&b, "</h1>\n");
    size_t before = b.len;
    wm_store_each_file(v, project, html_file, &b);
    *found = b.len > before;
    if (!*found) {
        wm_buf_free(&b);
        return NULL;
    }
    return html_finish(&b, len);
}

char *
wm_page_links(wm_store_view *v, const char *project, size_t *len)
{
    wm_buf b;

    wm_buf_init(&b, PAGE_MAX);
    html_head(&b, "Links", NULL);
    wm_store_each_file(v, project, html_file, &b);
    return html_finish(&b, len);
}

/* --- /api/files */

struct files_json {
    cJSON *list;
    const char *holder;
};

static int
api_file(const wm_file_info *f, void *arg)
{
    struct files_json *fj = arg;
    char sha[WM_SHA256_HEX], origin[WM_PUBKEY_HEX];
    cJSON *file = cJSON_CreateObject(), *holders;

    if (file == NULL)
        return -1;
    cJSON_AddItemToArray(fj->list, file);
    wm_hex_encode(f->sha256, WM_SHA256_LEN, sha);
    wm_hex_encode(f->origin, WM_PUBKEY_LEN, origin);
    cJSON_AddStringToObject(file, "filename", f->filename);
    cJSON_AddStringToObject(file, "project", f->project);
    cJSON_AddNumberToObject(file, "size", (double)f->size);
    cJSON_AddStringToObject(file, "sha256", sha);
    cJSON_AddStringToObject(file, "source", source_name(f->source));
    cJSON_AddStringToObject(file, "origin", origin);
    cJSON_AddNumberToObject(file, "added", (double)f->added);
    holders = cJSON_AddArrayToObject(file, "holders");
    if (holders == NULL)
        return -1;
    cJSON_AddItemToArray(holders, cJSON_CreateString(fj->holder));
    return 0;
}

char *
wm_page_files_json(wm_node *node, wm_store_view *v, const char *project,
                   size_t *len)
{
    struct files_json fj = {cJSON_CreateArray(), node->id_hex};

    if (fj.list == NULL || wm_store_each_file(v, project, api_file, &fj) != 0) {
        cJSON_Delete(fj.list);
        return NULL;
    }
    return json_finish(fj.list, len);
}

/* --- /api/status and /metrics */

static uint64_t
counter(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

char *
wm_page_status(wm_node *node, wm_store_view *v, size_t *len)
{
    wm_counters *c = &node->counters;
    uint64_t files = 0, bytes = 0;
    cJSON *root = cJSON_CreateObject(), *o;

    if (root == NULL)
        return NULL;
    wm_store_stats(v, &files, &bytes);
    o = cJSON_AddObjectToObject(root, "node");
    if (o == NULL)
        goto fail;
    cJSON_AddStringToObject(o, "name", node->cfg->name);
    cJSON_AddStringToObject(o, "id", node->id_hex);
    cJSON_AddStringToObject(o, "version", WM_VERSION);
    cJSON_AddStringToObject(o, "url", node->url);
    cJSON_AddNumberToObject(o, "uptime_s", (double)(time(NULL) - node->started));
    o = cJSON_AddObjectToObject(root, "cache");
    if (o == NULL)
        goto fail;
    cJSON_AddNumberToObject(o, "files", (double)files);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    cJSON_AddNumberToObject(o, "max_size", (double)node->cfg->max_size);
    o = cJSON_AddObjectToObject(root, "hits");
    if (o == NULL)
        goto fail;
    cJSON_AddNumberToObject(o, "local", (double)counter(&c->hits_local));
    cJSON_AddNumberToObject(o, "peer", (double)counter(&c->hits_peer));
    cJSON_AddNumberToObject(o, "upstream", (double)counter(&c->hits_upstream));
    cJSON_AddNumberToObject(root, "misses", (double)counter(&c->misses));
    cJSON_AddNumberToObject(root, "requests", (double)counter(&c->requests));
    cJSON_AddNumberToObject(root, "bytes_served",
                            (double)counter(&c->bytes_served));
    o = cJSON_AddObjectToObject(root, "puts");
    if (o == NULL)
        goto fail;
    cJSON_AddNumberToObject(o, "accepted", (double)counter(&c->puts));
    cJSON_AddNumberToObject(o, "rejected", (double)counter(&c->put_rejected));
    /* No cluster yet: this node is the only member. */
    if (cJSON_AddArrayToObject(root, "members") == NULL)
        goto fail;
    return json_finish(root, len);
fail:
    cJSON_Delete(root);
    return NULL;
}

static void
metric(wm_buf *b, const char *name, const char *type, const char *help,
       uint64_t value)
{
    wm_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help,
                  name, type, name, value);
}

char *
wm_page_metrics(wm_node *node, wm_store_view *v, size_t *len)
{
    wm_counters *c = &node->counters;
    uint64_t files = 0, bytes = 0;
    wm_buf b;

    wm_store_stats(v, &files, &bytes);
    wm_buf_init(&b, PAGE_MAX);
    metric(&b, "wheelmesh_cache_files", "gauge", "Wheels in the local store.",
           files);
    metric(&b, "wheelmesh_cache_bytes", "gauge",
           "Bytes of wheels in the local store.", bytes);
    metric(&b, "wheelmesh_cache_max_bytes", "gauge",
           "The configured cache.max_size.", node->cfg->max_size);
    wm_buf_adds(&b, "# HELP wheelmesh_hits_total Wheel requests served, by "
                    "where the bytes came from.\n"
                    "# TYPE wheelmesh_hits_total counter\n");
    wm_buf_printf(&b,
                  "wheelmesh_hits_total{source=\"local\"} %" PRIu64 "\n"
                  "wheelmesh_hits_total{source=\"peer\"} %" PRIu64 "\n"
                  "wheelmesh_hits_total{source=\"upstream\"} %" PRIu64 "\n",
                  counter(&c->hits_local), counter(&c->hits_peer),
                  counter(&c->hits_upstream));
    metric(&b, "wheelmesh_misses_total", "counter",
           "Wheel requests that no source could serve.", counter(&c->misses));
    metric(&b, "wheelmesh_http_requests_total", "counter",
           "HTTP requests received.", counter(&c->requests));
    metric(&b, "wheelmesh_served_bytes_total", "counter",
           "Wheel bytes sent to clients.", counter(&c->bytes_served));
    metric(&b, "wheelmesh_puts_total", "counter", "Wheels accepted by PUT.",
           counter(&c->puts));
    metric(&b, "wheelmesh_put_rejected_total", "counter",
           "PUT requests refused.", counter(&c->put_rejected));
    metric(&b, "wheelmesh_uptime_seconds", "gauge", "Seconds since start.",
           (uint64_t)(time(NULL) - node->started));
    return wm_buf_steal(&b, len);
}

char *
wm_page_put_result(const wm_file_info *info, size_t *len)
{
    char sha[WM_SHA256_HEX];
    cJSON *root = cJSON_CreateObject();

    if (root == NULL)
        return NULL;
    wm_hex_encode(info->sha256, WM_SHA256_LEN, sha);
    cJSON_AddStringToObject(root, "filename", info->filename);
    cJSON_AddStringToObject(root, "project", info->project);
    cJSON_AddStringToObject(root, "sha256", sha);
    cJSON_AddNumberToObject(root, "size", (double)info->size);
    return json_finish(root, len);
}
