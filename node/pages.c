/*
 * Page rendering. HTML goes through a capped wm_buf with every name
 * escaped; JSON through cJSON. Links always point back at this node
 * (/files/<sha256>/<filename>) and carry the sha256, so pip verifies what
 * it gets whichever node or index the bytes came from.
 */
#include "pages.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"
#include "listing.h"
#include "wheelname.h"

#define PAGE_MAX    (64u << 20)
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

    if (entry == NULL ||
        cJSON_AddStringToObject(entry, "name", project) == NULL) {
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
    wm_buf_adds(
        b, "<!DOCTYPE html>\n<html>\n  <head>\n"
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

/* The link target into B: the local /files/ path or the upstream URL. */
static void
file_href(wm_buf *b, const wm_listed *fv, int html)
{
    char sha[WM_SHA256_HEX];

    if (fv->url == NULL) {
        wm_hex_encode(fv->sha256, WM_SHA256_LEN, sha);
        wm_buf_printf(b, "/files/%s/", sha);
        if (html)
            wm_buf_add_html(b, fv->filename);
        else
            wm_buf_adds(b, fv->filename);
    } else if (html) {
        wm_buf_add_html(b, fv->url);
    } else {
        wm_buf_adds(b, fv->url);
    }
}

/* Writes one anchor with the sha256 fragment and the PEP 503/658/714
 * attributes that apply. */
static void
html_file_link(wm_buf *b, const wm_listed *fv)
{
    char sha[WM_SHA256_HEX];

    wm_buf_adds(b, "    <a href=\"");
    file_href(b, fv, 1);
    if (fv->sha256 != NULL) {
        wm_hex_encode(fv->sha256, WM_SHA256_LEN, sha);
        wm_buf_printf(b, "#sha256=%s", sha);
    }
    wm_buf_adds(b, "\"");
    if (fv->requires_python != NULL) {
        wm_buf_adds(b, " data-requires-python=\"");
        wm_buf_add_html(b, fv->requires_python);
        wm_buf_adds(b, "\"");
    }
    if (fv->yanked != NULL) {
        wm_buf_adds(b, " data-yanked=\"");
        wm_buf_add_html(b, fv->yanked);
        wm_buf_adds(b, "\"");
    }
    if (fv->meta_sha256 != NULL) {
        wm_hex_encode(fv->meta_sha256, WM_SHA256_LEN, sha);
        wm_buf_printf(b,
                      " data-dist-info-metadata=\"sha256=%s\""
                      " data-core-metadata=\"sha256=%s\"",
                      sha, sha);
    }
    wm_buf_adds(b, ">");
    wm_buf_add_html(b, fv->filename);
    wm_buf_adds(b, "</a><br>\n");
}

static int
add_version(cJSON *versions, const char *version)
{
    const cJSON *it;

    /* Files come sorted by name, so versions mostly repeat in runs; this
     * scan is O(versions) per file, fine for the thousands a page has. */
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
json_file(cJSON *files, cJSON *versions, const wm_listed *fv)
{
    char sha[WM_SHA256_HEX];
    cJSON *file = cJSON_CreateObject(), *hashes, *meta;
    char version[WM_WHEELNAME_MAX + 1];
    wm_buf url;
    char *href;
    size_t len;

    if (file == NULL)
        return -1;
    cJSON_AddItemToArray(files, file);
    wm_buf_init(&url, 2 * WM_URL_MAX);
    file_href(&url, fv, 0);
    href = wm_buf_steal(&url, &len);
    if (href == NULL)
        return -1;
    cJSON_AddStringToObject(file, "filename", fv->filename);
    cJSON_AddStringToObject(file, "url", href);
    free(href);
    hashes = cJSON_AddObjectToObject(file, "hashes");
    if (hashes == NULL)
        return -1;
    if (fv->sha256 != NULL) {
        wm_hex_encode(fv->sha256, WM_SHA256_LEN, sha);
        cJSON_AddStringToObject(hashes, "sha256", sha);
    }
    if (fv->requires_python != NULL)
        cJSON_AddStringToObject(file, "requires-python", fv->requires_python);
    if (fv->yanked != NULL) {
        if (fv->yanked[0] != '\0')
            cJSON_AddStringToObject(file, "yanked", fv->yanked);
        else
            cJSON_AddTrueToObject(file, "yanked");
    }
    if (fv->meta_sha256 != NULL) {
        wm_hex_encode(fv->meta_sha256, WM_SHA256_LEN, sha);
        /* Only PEP 714's name: pip 23.0 crashes on the old
         * "dist-info-metadata" key holding a dict. */
        meta = cJSON_AddObjectToObject(file, "core-metadata");
        if (meta != NULL)
            cJSON_AddStringToObject(meta, "sha256", sha);
    }
    if (fv->size > 0)
        cJSON_AddNumberToObject(file, "size", (double)fv->size);
    if (wm_listing_version(fv->filename, version, sizeof(version)) == 0)
        return add_version(versions, version);
    return 0;
}

static char *
project_json(const char *project, const wm_listed *files, size_t n,
             size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *list, *versions;

    if (root == NULL || json_meta(root) == NULL ||
        cJSON_AddStringToObject(root, "name", project) == NULL)
        goto fail;
    list = cJSON_AddArrayToObject(root, "files");
    versions = cJSON_AddArrayToObject(root, "versions");
    if (list == NULL || versions == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (json_file(list, versions, &files[i]) != 0)
            goto fail;
    return json_finish(root, len);
fail:
    cJSON_Delete(root);
    return NULL;
}

static char *
project_html(const char *project, const wm_listed *files, size_t n,
             size_t *len)
{
    wm_buf b;

    wm_buf_init(&b, PAGE_MAX);
    html_head(&b, "Links for ", project);
    wm_buf_adds(&b, "    <h1>Links for ");
    wm_buf_add_html(&b, project);
    wm_buf_adds(&b, "</h1>\n");
    for (size_t i = 0; i < n; i++)
        html_file_link(&b, &files[i]);
    return html_finish(&b, len);
}

char *
wm_page_project(const char *project, const wm_listed *files, size_t n,
                enum wm_page_format fmt, size_t *len)
{
    return fmt == WM_PAGE_JSON ? project_json(project, files, n, len)
                               : project_html(project, files, n, len);
}

char *
wm_page_links(const wm_listed *files, size_t n, size_t *len)
{
    wm_buf b;

    wm_buf_init(&b, PAGE_MAX);
    html_head(&b, "Links", NULL);
    for (size_t i = 0; i < n; i++) {
        /* No metadata attributes: pip before 23.2 then downloads every
         * wheel twice (pypa/pip#11847), and --find-links gains nothing. */
        wm_listed l = files[i];
        l.meta_sha256 = NULL;
        html_file_link(&b, &l);
    }
    return html_finish(&b, len);
}

/* --- /api/files */

char *
wm_page_files_json(const wm_api_file *files, size_t n, size_t *len)
{
    cJSON *list = cJSON_CreateArray();
    char sha[WM_SHA256_HEX], id[WM_PUBKEY_HEX];

    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const wm_api_file *f = &files[i];
        cJSON *file = cJSON_CreateObject(), *holders;
        if (file == NULL)
            goto fail;
        cJSON_AddItemToArray(list, file);
        wm_hex_encode(f->sha256, WM_SHA256_LEN, sha);
        cJSON_AddStringToObject(file, "filename", f->filename);
        cJSON_AddStringToObject(file, "project", f->project);
        cJSON_AddNumberToObject(file, "size", (double)f->size);
        cJSON_AddStringToObject(file, "sha256", sha);
        cJSON_AddStringToObject(file, "source",
                                f->source ? source_name((uint8_t)f->source)
                                          : "peer");
        cJSON_AddBoolToObject(file, "local", f->source != 0);
        if (f->named_by != NULL) {
            wm_hex_encode(f->named_by, WM_PUBKEY_LEN, id);
            cJSON_AddStringToObject(file, "publisher", id);
        }
        holders = cJSON_AddArrayToObject(file, "holders");
        if (holders == NULL)
            goto fail;
        for (size_t k = 0; k < f->nholders; k++) {
            wm_hex_encode(f->holders[k], WM_PUBKEY_LEN, id);
            cJSON_AddItemToArray(holders, cJSON_CreateString(id));
        }
    }
    return json_finish(list, len);
fail:
    cJSON_Delete(list);
    return NULL;
}

/* --- /api/status and /metrics */

static uint64_t
counter(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

char *
wm_page_status(wm_node *node,
               void (*more)(void *arg, cJSON *root), void *arg, size_t *len)
{
    wm_counters *c = &node->counters;
    uint64_t files = 0, bytes = 0;
    cJSON *root = cJSON_CreateObject(), *o;

    if (root == NULL)
        return NULL;
    wm_store_usage(node->store, &files, &bytes);
    o = cJSON_AddObjectToObject(root, "node");
    if (o == NULL)
        goto fail;
    cJSON_AddStringToObject(o, "name", node->cfg->name);
    cJSON_AddStringToObject(o, "id", node->id_hex);
    cJSON_AddStringToObject(o, "version", WM_VERSION);
    cJSON_AddStringToObject(o, "url", node->url);
    cJSON_AddNumberToObject(o, "uptime_s",
                            (double)(time(NULL) - node->started));
    o = cJSON_AddObjectToObject(root, "cache");
    if (o == NULL)
        goto fail;
    cJSON_AddNumberToObject(o, "files", (double)files);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    cJSON_AddNumberToObject(o, "max_size", (double)node->cfg->max_size);
    cJSON_AddNumberToObject(o, "fill_percent",
                            node->cfg->max_size > 0
                                ? 100.0 * (double)bytes /
                                      (double)node->cfg->max_size
                                : 0.0);
    cJSON_AddNumberToObject(o, "not_kept_no_room",
                            (double)counter(&c->store_full));
    cJSON_AddNumberToObject(o, "arriving_bytes",
                            (double)wm_store_orphan_bytes(node->store));
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
    o = cJSON_AddObjectToObject(root, "upstream");
    if (o == NULL)
        goto fail;
    cJSON_AddNumberToObject(o, "indexes", (double)node->cfg->nindexes);
    cJSON_AddNumberToObject(o, "bytes", (double)counter(&c->upstream_bytes));
    cJSON_AddNumberToObject(o, "pages", (double)counter(&c->upstream_pages));
    cJSON_AddNumberToObject(o, "errors", (double)counter(&c->upstream_errors));
    cJSON_AddNumberToObject(o, "hash_mismatches",
                            (double)counter(&c->hash_mismatches));
    o = cJSON_AddObjectToObject(root, "puts");
    if (o == NULL)
        goto fail;
    cJSON_AddNumberToObject(o, "accepted", (double)counter(&c->puts));
    cJSON_AddNumberToObject(o, "rejected", (double)counter(&c->put_rejected));
    o = cJSON_AddObjectToObject(root, "fetches");
    if (o == NULL)
        goto fail;
    cJSON_AddNumberToObject(o, "failed", (double)counter(&c->fetch_failures));
    cJSON_AddNumberToObject(o, "remembered_failures",
                            (double)counter(&c->negative_hits));
    cJSON_AddNumberToObject(root, "listing_conflicts",
                            (double)counter(&c->listing_conflicts));
    if (more != NULL)
        more(arg, root);
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
wm_page_metrics(wm_node *node,
                void (*more)(void *arg, wm_buf *b), void *arg, size_t *len)
{
    wm_counters *c = &node->counters;
    uint64_t files = 0, bytes = 0;
    wm_buf b;

    wm_store_usage(node->store, &files, &bytes);
    wm_buf_init(&b, PAGE_MAX);
    metric(&b, "wheelmesh_cache_files", "gauge", "Wheels in the local store.",
           files);
    metric(&b, "wheelmesh_cache_bytes", "gauge",
           "Bytes of wheels in the local store.", bytes);
    metric(&b, "wheelmesh_cache_max_bytes", "gauge",
           "The configured cache.max_size.", node->cfg->max_size);
    wm_buf_printf(&b,
                  "# HELP wheelmesh_cache_fill_ratio Bytes held over "
                  "cache.max_size.\n# TYPE wheelmesh_cache_fill_ratio gauge\n"
                  "wheelmesh_cache_fill_ratio %.4f\n",
                  node->cfg->max_size > 0
                      ? (double)bytes / (double)node->cfg->max_size
                      : 0.0);
    metric(&b, "wheelmesh_cache_not_kept_total", "counter",
           "Wheels served but not stored: the store had no room.",
           counter(&c->store_full));
    metric(&b, "wheelmesh_cache_arriving_bytes", "gauge",
           "Bytes of peer fetches in the store before their record.",
           wm_store_orphan_bytes(node->store));
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
    metric(&b, "wheelmesh_upstream_bytes_total", "counter",
           "Bytes of wheels received from upstream indexes.",
           counter(&c->upstream_bytes));
    metric(&b, "wheelmesh_upstream_pages_total", "counter",
           "Project pages requested from upstream (304s included).",
           counter(&c->upstream_pages));
    metric(&b, "wheelmesh_upstream_errors_total", "counter",
           "Upstream requests that failed.", counter(&c->upstream_errors));
    metric(&b, "wheelmesh_hash_mismatches_total", "counter",
           "Upstream files whose bytes did not match the advertised sha256.",
           counter(&c->hash_mismatches));
    metric(&b, "wheelmesh_fetch_failures_total", "counter",
           "Fetches of wheels that failed (every source tried).",
           counter(&c->fetch_failures));
    metric(&b, "wheelmesh_fetch_remembered_failures_total", "counter",
           "Requests answered from the memory of a recent failure.",
           counter(&c->negative_hits));
    metric(&b, "wheelmesh_listing_conflicts_total", "counter",
           "Claims dropped from pages: they contradict upstream or another "
           "claim.",
           counter(&c->listing_conflicts));
    metric(&b, "wheelmesh_uptime_seconds", "gauge", "Seconds since start.",
           (uint64_t)(time(NULL) - node->started));
    if (more != NULL)
        more(arg, &b);
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
