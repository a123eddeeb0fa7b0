/*
 * Client commands on libcurl (and cJSON to read the node's answers). A
 * node's reply is capped in size like any input from outside.
 */
#include "client.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "identity.h"
#include "wheelname.h"

#define REPLY_MAX (64u << 20)

static size_t
collect(char *data, size_t size, size_t n, void *arg)
{
    return wm_buf_add(arg, data, size * n) == 0 ? size * n : 0;
}

/* Strips trailing slashes from a --node URL into OUT. */
static void
base_url(const char *node, char *out, size_t outsz)
{
    size_t len;

    snprintf(out, outsz, "%s", node);
    len = strlen(out);
    while (len > 0 && out[len - 1] == '/')
        out[--len] = '\0';
}

/* GETs URL into REPLY. Returns the HTTP status, or -1 with the curl error
 * printed. */
static long
http_get(const char *url, wm_buf *reply)
{
    CURL *curl = curl_easy_init();
    long status = -1;
    CURLcode rc;

    if (curl == NULL)
        return -1;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "wheelmesh: cannot reach %s: %s\n", url,
                curl_easy_strerror(rc));
    curl_easy_cleanup(curl);
    return status;
}

/* The first line of a node's error reply, for our one-line message. */
static const char *
first_line(wm_buf *b)
{
    if (b->failed || b->data == NULL)
        return "(no reason given)";
    b->data[strcspn(b->data, "\n")] = '\0';
    return b->data;
}

/* --- put */

static int
put_one(CURL *curl, const char *base, const char *path)
{
    char url[2048];
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;
    char *escaped;
    wm_wheelname wn;
    const char *why;
    struct stat st;
    wm_buf reply;
    FILE *f;
    long status = 0;
    CURLcode rc;
    int ret = 1;

    if (wm_wheelname_parse(name, &wn, &why) != 0) {
        fprintf(stderr, "wheelmesh put: %s: bad wheel filename: %s\n", path,
                why);
        return 1;
    }
    f = fopen(path, "rb");
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "wheelmesh put: %s: %s\n", path, strerror(errno));
        if (f != NULL)
            fclose(f);
        return 1;
    }
    escaped = curl_easy_escape(curl, name, 0);
    snprintf(url, sizeof(url), "%s/files/%s", base, escaped);
    curl_free(escaped);
    wm_buf_init(&reply, REPLY_MAX);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READDATA, f);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
    rc = curl_easy_perform(curl);
    fclose(f);
    if (rc != CURLE_OK) {
        fprintf(stderr, "wheelmesh put: %s: cannot reach %s: %s\n", path, base,
                curl_easy_strerror(rc));
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200 || status == 201) {
        cJSON *j = cJSON_Parse(reply.data != NULL ? reply.data : "");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha256");
        printf("%s %s %s\n", status == 201 ? "stored " : "present", name,
               cJSON_IsString(sha) ? sha->valuestring : "?");
        cJSON_Delete(j);
        ret = 0;
    } else {
        fprintf(stderr, "wheelmesh put: %s: %ld %s\n", path, status,
                first_line(&reply));
    }
out:
    wm_buf_free(&reply);
    return ret;
}

static void
put_usage(FILE *out)
{
    fprintf(out, "usage: wheelmesh put [--node URL] FILE.whl...\n"
                 "\n"
                 "Publishes wheels into the node, which signs them; the "
                 "cluster learns of them.\n"
                 "  --node URL  the node (default " WM_DEFAULT_NODE ")\n"
                 "  -h, --help  show this help\n");
}

static const struct option node_opts[] = {
    {"node", required_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'j'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int
wm_cmd_put(int argc, char **argv)
{
    const char *node = WM_DEFAULT_NODE;
    char base[1024];
    CURL *curl;
    int ch, failed = 0;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", node_opts, NULL)) != -1) {
        if (ch == 'n') {
            node = optarg;
        } else if (ch == 'h') {
            put_usage(stdout);
            return 0;
        } else {
            put_usage(stderr);
            return 2;
        }
    }
    if (optind == argc) {
        put_usage(stderr);
        return 2;
    }
    base_url(node, base, sizeof(base));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    if (curl == NULL)
        return 1;
    for (int i = optind; i < argc; i++) {
        curl_easy_reset(curl);
        failed |= put_one(curl, base, argv[i]);
    }
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return failed ? 1 : 0;
}

/* --- ls and status */

/* GETs BASE+PATH and parses the JSON. Returns NULL after printing why. */
static cJSON *
get_json(const char *cmd, const char *base, const char *path)
{
    char url[2048];
    wm_buf reply;
    cJSON *j = NULL;
    long status;

    snprintf(url, sizeof(url), "%s%s", base, path);
    wm_buf_init(&reply, REPLY_MAX);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    status = http_get(url, &reply);
    if (status == 200 && !reply.failed && reply.data != NULL)
        j = cJSON_Parse(reply.data);
    if (status > 0 && status != 200)
        fprintf(stderr, "wheelmesh %s: %ld %s\n", cmd, status,
                first_line(&reply));
    else if (status == 200 && j == NULL)
        fprintf(stderr, "wheelmesh %s: the node sent an unreadable answer\n",
                cmd);
    wm_buf_free(&reply);
    curl_global_cleanup();
    return j;
}

/* Parses "--node URL [--json] [ARG]" common to ls and status. Returns 0,
 * 1 for --help (printed), 2 on a usage error. */
static int
client_opts(int argc, char **argv, const char *usage, const char **node,
            int *json, const char **arg)
{
    int ch;

    *node = WM_DEFAULT_NODE;
    *json = 0;
    *arg = NULL;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", node_opts, NULL)) != -1) {
        if (ch == 'n') {
            *node = optarg;
        } else if (ch == 'j') {
            *json = 1;
        } else if (ch == 'h') {
            fputs(usage, stdout);
            return 1;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc)
        *arg = argv[optind++];
    if (optind < argc) {
        fputs(usage, stderr);
        return 2;
    }
    return 0;
}

static const char *
json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "?";
}

static double
json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int
wm_cmd_ls(int argc, char **argv)
{
    static const char usage[] =
        "usage: wheelmesh ls [--node URL] [--json] [PROJECT]\n"
        "\n"
        "Lists the wheels the cluster holds: filename, size, sha256, "
        "holders.\n"
        "  --node URL  the node (default " WM_DEFAULT_NODE ")\n"
        "  --json      print the node's JSON as it is\n"
        "  -h, --help  show this help\n";
    const char *node, *project;
    char base[1024], path[256], norm[WM_PROJECT_MAX + 1];
    const cJSON *f;
    cJSON *list;
    int json, rc;

    rc = client_opts(argc, argv, usage, &node, &json, &project);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (project != NULL &&
        wm_project_normalize(project, norm, sizeof(norm)) != 0) {
        fprintf(stderr, "wheelmesh ls: bad project name '%s'\n", project);
        return 1;
    }
    base_url(node, base, sizeof(base));
    snprintf(path, sizeof(path), "/api/files%s%s",
             project != NULL ? "?project=" : "", project != NULL ? norm : "");
    list = get_json("ls", base, path);
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        return 1;
    }
    if (json) {
        char *text = cJSON_Print(list);
        if (text != NULL)
            puts(text);
        free(text);
        cJSON_Delete(list);
        return 0;
    }
    cJSON_ArrayForEach(f, list)
    {
        const cJSON *h,
            *holders = cJSON_GetObjectItemCaseSensitive(f, "holders");
        printf("%s %.0f %s", json_str(f, "filename"), json_num(f, "size"),
               json_str(f, "sha256"));
        cJSON_ArrayForEach(h, holders)
        {
            if (cJSON_IsString(h))
                printf(" %.16s", h->valuestring);
        }
        putchar('\n');
    }
    cJSON_Delete(list);
    return 0;
}

/* SIZE bytes in human units into OUT: "0 B", "812 B", "1.5 KiB", "20.0 GiB".
 * Returns OUT. */
static const char *
human_size(double size, char *out, size_t outsz)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;

    if (size < 0)
        size = 0;
    while (size >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        size /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, outsz, "%.0f B", size);
    else
        snprintf(out, outsz, "%.1f %s", size, units[u]);
    return out;
}

/* SECONDS as "42s", "5m 03s", "2h 07m", "3d 04h" into OUT. Returns OUT. */
static const char *
human_duration(double seconds, char *out, size_t outsz)
{
    long s = seconds > 0 ? (long)seconds : 0;

    if (s < 60)
        snprintf(out, outsz, "%lds", s);
    else if (s < 3600)
        snprintf(out, outsz, "%ldm %02lds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, outsz, "%ldh %02ldm", s / 3600, s % 3600 / 60);
    else
        snprintf(out, outsz, "%ldd %02ldh", s / 86400, s % 86400 / 3600);
    return out;
}

/* Prints the human form of the node's /api/status document ST. */
static void
print_status(const cJSON *st)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(st, "node");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(st, "cache");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(st, "hits");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(st, "upstream");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(st, "puts");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(st, "cluster");
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(st, "members");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(st, "collector");
    const cJSON *m;
    char a[32], b[32], d[32];
    double max = json_num(c, "max_size");
    double used = json_num(c, "bytes");

    printf("node      %s  %s  id %.16s…  version %s  up %s\n",
           json_str(n, "name"), json_str(n, "url"), json_str(n, "id"),
           json_str(n, "version"),
           human_duration(json_num(n, "uptime_s"), d, sizeof(d)));
    printf("cache     %.0f wheels, %s of %s (%.0f%%)\n", json_num(c, "files"),
           human_size(used, a, sizeof(a)), human_size(max, b, sizeof(b)),
           max > 0 ? 100.0 * used / max : 0.0);
    printf("evicted   %.0f over the cap, %.0f unused too long, %.0f pruned "
           "(%s freed); %.0f kept as the last copy; %.0f not kept (no room)\n",
           json_num(g, "evicted_size"), json_num(g, "evicted_expiry"),
           json_num(g, "evicted_prune"),
           human_size(json_num(g, "bytes_freed"), a, sizeof(a)),
           json_num(g, "last_copies"), json_num(c, "not_kept_no_room"));
    printf("hits      local %.0f  peer %.0f  upstream %.0f  misses %.0f\n",
           json_num(h, "local"), json_num(h, "peer"), json_num(h, "upstream"),
           json_num(st, "misses"));
    printf("served    %s in %.0f HTTP requests\n",
           human_size(json_num(st, "bytes_served"), a, sizeof(a)),
           json_num(st, "requests"));
    if (json_num(u, "indexes") > 0)
        printf("upstream  %.0f index%s, %s fetched, %.0f pages, %.0f errors, "
               "%.0f hash mismatches\n",
               json_num(u, "indexes"), json_num(u, "indexes") == 1 ? "" : "es",
               human_size(json_num(u, "bytes"), a, sizeof(a)),
               json_num(u, "pages"), json_num(u, "errors"),
               json_num(u, "hash_mismatches"));
    else
        printf("upstream  none (offline)\n");
    printf("puts      %.0f accepted, %.0f rejected\n", json_num(p, "accepted"),
           json_num(p, "rejected"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cl, "enabled")))
        printf("cluster   %s  alive %.0f  suspect %.0f  dead %.0f  "
               "connections %.0f  index origins %.0f  gossip rounds %.0f  "
               "sent %s  received %s\n",
               json_str(cl, "advertise"), json_num(cl, "alive"),
               json_num(cl, "suspect"), json_num(cl, "dead"),
               json_num(cl, "connections"),
               json_num(cl, "origins"), json_num(cl, "gossip_rounds"),
               human_size(json_num(cl, "bytes_out"), a, sizeof(a)),
               human_size(json_num(cl, "bytes_in"), b, sizeof(b)));
    if (cJSON_GetArraySize(members) == 0)
        printf("members   none (this node runs alone)\n");
    cJSON_ArrayForEach(m, members)
    {
        printf("member    %.16s  %-16s %-24s %-7s heard %.1fs ago  %.0f "
               "wheels, %s\n",
               json_str(m, "id"), json_str(m, "name"), json_str(m, "address"),
               json_str(m, "state"),
               json_num(m, "last_heard_s"), json_num(m, "wheels"),
               human_size(json_num(m, "bytes"), a, sizeof(a)));
    }
}

static volatile sig_atomic_t watch_stop;

static void
on_watch_signal(int sig)
{
    (void)sig;
    watch_stop = 1;
}

/* Sleeps SECONDS, or less when a signal sets watch_stop. */
static void
watch_sleep(double seconds)
{
    struct timespec ts;

    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (!watch_stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One status report: fetched, then printed as JSON or in human form.
 * Returns 0, or 1 after printing why on stderr. */
static int
status_once(const char *base, int json)
{
    cJSON *st = get_json("status", base, "/api/status");

    if (!cJSON_IsObject(st)) {
        cJSON_Delete(st);
        return 1;
    }
    if (json) {
        char *text = cJSON_Print(st);
        if (text != NULL)
            puts(text);
        free(text);
    } else {
        print_status(st);
    }
    cJSON_Delete(st);
    return 0;
}

int
wm_cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"node", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"watch", optional_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char usage[] =
        "usage: wheelmesh status [--node URL] [--json] [--watch [SECONDS]]\n"
        "\n"
        "Shows the node and the cluster as the node sees them:\n"
        "  node      name, URL, id (its public key), version, uptime\n"
        "  cache     wheels held here, their size and the cap "
        "(cache.max_size)\n"
        "  evicted   wheels the collector dropped, by reason; last copies "
        "(nobody\n"
        "            else can give them back) are never dropped; wheels "
        "served but\n"
        "            not kept because the store (cache.map_size) was full\n"
        "  hits      wheel requests answered from this node's store (local),\n"
        "            from a peer (peer) or from the upstream index "
        "(upstream);\n"
        "            misses: wheels nobody could give\n"
        "  served    bytes sent to pip and the HTTP requests that asked\n"
        "  upstream  what the upstream indexes cost: bytes, pages, errors\n"
        "  puts      wheels published with `wheelmesh put`\n"
        "  cluster   members alive / suspect / dead, gossip traffic\n"
        "  member    one line per peer: id, name, address, state, last "
        "heard,\n"
        "            holdings\n"
        "Sizes are in KiB, MiB, GiB (powers of 1024).\n"
        "\n"
        "  --node URL         the node (default " WM_DEFAULT_NODE ")\n"
        "  --json             print the node's JSON (/api/status) as it is\n"
        "  --watch [SECONDS]  refresh every SECONDS (default 2) until "
        "Ctrl-C; on a\n"
        "                     terminal the screen is redrawn in place\n"
        "  -h, --help         show this help\n"
        "\n"
        "Example: wheelmesh status --watch 5\n";
    const char *node = WM_DEFAULT_NODE, *watch_arg = NULL;
    char base[1024], *end;
    double interval = 0;
    int json = 0, watch = 0, ch, rc;
    struct sigaction sa, old_int, old_term;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'n') {
            node = optarg;
        } else if (ch == 'j') {
            json = 1;
        } else if (ch == 'w') {
            watch = 1;
            watch_arg = optarg;
        } else if (ch == 'h') {
            fputs(usage, stdout);
            return 0;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    /* "--watch 5" as well as "--watch=5". */
    if (watch && watch_arg == NULL && optind < argc)
        watch_arg = argv[optind++];
    if (optind < argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (watch) {
        interval = 2;
        if (watch_arg != NULL) {
            errno = 0;
            interval = strtod(watch_arg, &end);
            if (errno != 0 || end == watch_arg || *end != '\0' ||
                !(interval >= 0.1 && interval <= 86400)) {
                fprintf(stderr,
                        "wheelmesh status: --watch wants seconds from 0.1 to "
                        "86400, got '%s'\n",
                        watch_arg);
                return 2;
            }
        }
    }
    base_url(node, base, sizeof(base));
    if (!watch)
        return status_once(base, json);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_watch_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int tty = isatty(STDOUT_FILENO);
    while (!watch_stop) {
        char when[32];
        time_t now = time(NULL);
        struct tm tm;

        localtime_r(&now, &tm);
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
        if (tty)
            fputs("\033[H\033[2J", stdout); /* home, clear the screen */
        else if (!json)
            putchar('\n');
        if (!json) /* --json: the documents alone, one after another */
            printf("every %gs  %s  %s\n", interval, base, when);
        fflush(stdout);
        rc = status_once(base, json);
        if (rc != 0 && tty)
            printf("(cannot read the node's status; trying again)\n");
        fflush(stdout);
        watch_sleep(interval);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return 0;
}

/* --- keygen */

int
wm_cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char usage[] =
        "usage: wheelmesh keygen [-o FILE]\n"
        "\n"
        "Writes a new node identity (Ed25519, mode 0600) and prints its "
        "public\nkey, the line other nodes put in their trusted_keys.\n"
        "  -o, --output FILE  where to write it (default ./node.key)\n"
        "  -h, --help         show this help\n";
    const char *path = "node.key";
    char hex[WM_PUBKEY_HEX];
    wm_identity *id;
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (ch == 'o') {
            path = optarg;
        } else if (ch == 'h') {
            fputs(usage, stdout);
            return 0;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (wm_identity_init() != 0 || (id = wm_identity_generate()) == NULL) {
        fprintf(stderr, "wheelmesh keygen: cannot generate a key\n");
        return 1;
    }
    rc = wm_identity_save(id, path);
    if (rc == 0)
        wm_identity_pubkey_hex(id, hex);
    wm_identity_destroy(&id);
    if (rc != 0) {
        fprintf(stderr, "wheelmesh keygen: %s: %s\n", path,
                rc == -EEXIST ? "exists already (not overwritten)"
                              : strerror(-rc));
        return 1;
    }
    printf("%s\n", hex);
    return 0;
}

/* --- prune */

static void
prune_usage(FILE *out)
{
    fprintf(out,
            "usage: wheelmesh prune [--node URL] (--all | --project NAME |\n"
            "                        --older-than DAYS | --to SIZE)\n"
            "\n"
            "Drops wheels from the node's store now, least recently used\n"
            "first; peers stop listing it as their holder within seconds.\n"
            "A wheel no upstream page lists (a put, a publisher's wheel) is\n"
            "kept and counted, unless its project is named with --project.\n"
            "  --all               every wheel upstream can give back\n"
            "  --project NAME      every wheel of one project, kept ones too\n"
            "  --older-than DAYS   wheels unused for DAYS days\n"
            "  --to SIZE           down to SIZE bytes held (e.g. 5GiB)\n"
            "  --node URL          the node (default " WM_DEFAULT_NODE ")\n"
            "  -h, --help          show this help\n"
            "Only from an address in the node's http.allow_put_from.\n");
}

static const struct option prune_opts[] = {
    {"node", required_argument, NULL, 'n'},
    {"all", no_argument, NULL, 'a'},
    {"project", required_argument, NULL, 'p'},
    {"older-than", required_argument, NULL, 'o'},
    {"to", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* DELETEs BASE/api/cache?QUERY and prints what the node did. */
static int
prune_run(const char *base, const char *key, const char *value)
{
    CURL *curl = curl_easy_init();
    char url[2048];
    char *escaped;
    wm_buf reply;
    long status = 0;
    CURLcode rc;
    int ret = 1;

    if (curl == NULL)
        return 1;
    escaped = curl_easy_escape(curl, value, 0);
    snprintf(url, sizeof(url), "%s/api/cache?%s=%s", base, key, escaped);
    curl_free(escaped);
    wm_buf_init(&reply, REPLY_MAX);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
    /* The node answers once the wheels are gone: a few hundred a second. */
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 3600L);
    rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        fprintf(stderr, "wheelmesh prune: cannot reach %s: %s\n", base,
                curl_easy_strerror(rc));
    } else if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status),
               status != 200) {
        fprintf(stderr, "wheelmesh prune: %ld %s\n", status,
                first_line(&reply));
    } else {
        cJSON *j = cJSON_Parse(reply.data != NULL ? reply.data : "");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "evicted");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bytes");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(j,
                                                          "kept_last_copies");
        if (cJSON_IsNumber(n) && cJSON_IsNumber(b) && cJSON_IsNumber(k)) {
            printf("pruned %.0f wheels (%.0f bytes); %.0f kept as the last "
                   "copy\n",
                   n->valuedouble, b->valuedouble, k->valuedouble);
            ret = 0;
        } else {
            fprintf(stderr, "wheelmesh prune: the node's answer is not what "
                            "this version expects\n");
        }
        cJSON_Delete(j);
    }
    wm_buf_free(&reply);
    curl_easy_cleanup(curl);
    return ret;
}

int
wm_cmd_prune(int argc, char **argv)
{
    const char *node = WM_DEFAULT_NODE, *key = NULL, *value = NULL;
    char base[1024];
    int ch, given = 0, ret;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", prune_opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            node = optarg;
            break;
        case 'a':
            key = "all", value = "1", given++;
            break;
        case 'p':
            key = "project", value = optarg, given++;
            break;
        case 'o':
            key = "older_than", value = optarg, given++;
            break;
        case 't':
            key = "to", value = optarg, given++;
            break;
        case 'h':
            prune_usage(stdout);
            return 0;
        default:
            prune_usage(stderr);
            return 2;
        }
    }
    if (given != 1 || optind != argc) {
        fprintf(stderr, "wheelmesh prune: give exactly one of --all, "
                        "--project, --older-than, --to\n");
        return 2;
    }
    base_url(node, base, sizeof(base));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ret = prune_run(base, key, value);
    curl_global_cleanup();
    return ret;
}
