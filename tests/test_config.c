/*
 * Tests for common/config.c: a table of bad files, each with the key path
 * (and line) its error must name; the DESIGN.md example read field by field;
 * the defaults; sizes; address blocks; and every prefix of a good file, so a
 * truncated config is rejected without reading out of bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"

#define GIB ((uint64_t)1 << 30)

/* The DESIGN.md example, verbatim. */
static const char design_example[] =
    "{\n"
    "  \"node\":     { \"name\": \"agent-1\", \"data_dir\": "
    "\"/var/lib/wheelmesh\", \"identity\": \"/etc/wheelmesh/node.key\" },\n"
    "  \"http\":     { \"listen\": \"127.0.0.1:7390\", \"allow_put_from\": "
    "[\"127.0.0.1/32\"] },\n"
    "  \"cluster\":  { \"listen\": \"tcp://0.0.0.0:7391\", \"advertise\": "
    "\"tcp://10.0.0.5:7391\",\n"
    "                \"seeds\": [\"tcp://10.0.0.6:7391\"], \"trusted_keys\": "
    "\"/etc/wheelmesh/trusted_keys\",\n"
    "                \"publishers\": \"/etc/wheelmesh/publishers\", "
    "\"projects\": [\"Corp_*\"], \"max_upload_rate\": \"50MiB\" },\n"
    "  \"upstream\": { \"indexes\": [ { \"url\": \"https://pypi.org/simple/\" "
    "},\n"
    "                             { \"url\": "
    "\"https://download.pytorch.org/whl/cpu/\", \"projects\": [\"torch\", "
    "\"torchvision\", \"torchaudio\"] } ],\n"
    "                \"page_ttl_s\": 600, \"timeout_s\": 30 },\n"
    "  \"cache\":    { \"max_size\": \"20GiB\", \"expire_after_days\": 7, "
    "\"map_size\": \"256GiB\" }\n"
    "}\n";

/* Writes TEXT (LEN bytes) to a new file under /tmp; returns its path
 * (free() it and unlink it). */
static char *
write_temp_n(const char *text, size_t len)
{
    char *path = strdup("/tmp/wm_test_config_XXXXXX");
    int fd;

    assert_non_null(path);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

/* Loads TEXT into CFG; ERRORS gets the messages. */
static int
load_text_n(const char *text, size_t len, wm_config *cfg, wm_buf *errors,
            char **path_out)
{
    char *path = write_temp_n(text, len);
    int rc = wm_config_load(cfg, path, errors);

    unlink(path);
    if (path_out != NULL) {
        *path_out = path;
    } else {
        free(path);
    }
    return rc;
}

static int
load_text(const char *text, wm_config *cfg, wm_buf *errors)
{
    return load_text_n(text, strlen(text), cfg, errors, NULL);
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;

    for (; s != NULL && *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

/* ---- bad files ----------------------------------------------------------
 */

struct bad_case {
    const char *text;
    const char *expect; /* must appear in the errors */
    int line;           /* 0: not checked; else "PATH:LINE:" starts a line */
};

static const struct bad_case bad_cases[] = {
    /* syntax and shape */
    {"{\n  \"node\": {\n    \"name\": \"a\",,\n  }\n}\n",
     "3:17: invalid JSON near ','", 0},
    {"{\"cache\": {\"max_size\": \"20GiB\"}", "invalid JSON", 1},
    {"{\n\"cache\": {\"max_size\": 1,\n", "unexpected end of file", 2},
    {"{} {}", "unexpected '{}' after the end", 1},
    {"", "the file is empty", 0},
    {"  \n\t", "the file is empty", 0},
    {"[1, 2]", "expected a JSON object at the top level", 1},
    {"\"cache\"", "expected a JSON object at the top level", 1},
    {"{\"cache\": {\"max_size\": \"1GiB\", \"max_size\": \"2GiB\"}}",
     "cache.max_size: duplicate key", 1},
    {"{\"node\": {}, \"node\": {}}", "node: duplicate key", 1},
    /* unknown keys at every level */
    {"{\"nodes\": {}}", "nodes: unknown key", 1},
    {"{\n\"cache\": {\n\"max_sise\": \"1GiB\"}}", "cache.max_sise: unknown key",
     3},
    {"{\"node\": {\"nmae\": \"x\"}}", "node.nmae: unknown key", 1},
    {"{\"http\": {\"port\": 1}}", "http.port: unknown key", 1},
    {"{\"cluster\": {\"seed\": []}}", "cluster.seed: unknown key", 1},
    {"{\"upstream\": {\"index\": []}}", "upstream.index: unknown key", 1},
    {"{\"upstream\": {\"indexes\": [\n"
     "  {\"url\": \"https://a.example/simple/\"},\n"
     "  {\"url\": \"https://b.example/simple/\",\n"
     "   \"projcts\": [\"torch\"]}]}}",
     "upstream.indexes[1].projcts: unknown key", 4},
    /* wrong types */
    {"{\"node\": []}", "node: expected an object", 1},
    {"{\"node\": {\"name\": 5}}", "node.name: expected a string", 1},
    {"{\"node\": {\"name\": \"\"}}", "node.name: must not be empty", 1},
    {"{\"node\": {\"data_dir\": null}}", "node.data_dir: expected a string", 1},
    {"{\"node\": {\"identity\": true}}", "node.identity: expected a string", 1},
    {"{\"node\": {\"name\": \"a\\nb\"}}", "node.name: must not contain control",
     1},
    {"{\"http\": {\"listen\": 7390}}", "http.listen: expected a string", 1},
    {"{\"http\": {\"allow_put_from\": \"127.0.0.1/32\"}}",
     "http.allow_put_from: expected an array", 1},
    {"{\"cluster\": {\"seeds\": \"tcp://a:1\"}}",
     "cluster.seeds: expected an array", 1},
    {"{\"cluster\": {\"trusted_keys\": [\"k\"]}}",
     "cluster.trusted_keys: expected a string", 1},
    {"{\"cluster\": {\"publishers\": 1}}",
     "cluster.publishers: expected a string", 1},
    {"{\"cluster\": {\"projects\": \"corp-*\"}}",
     "cluster.projects: expected an array", 1},
    {"{\"cluster\": {\"projects\": [\"corp-*\", \"co rp\"]}}",
     "cluster.projects[1]: \"co rp\" is not a project name pattern", 1},
    {"{\"cluster\": {\"projects\": [\"-corp\"]}}",
     "cluster.projects[0]: \"-corp\" is not a project name pattern", 1},
    {"{\"cluster\": {\"max_upload_rate\": \"fast\"}}",
     "cluster.max_upload_rate: expected a size", 1},
    {"{\"upstream\": {\"indexes\": {}}}", "upstream.indexes: expected an array",
     1},
    {"{\"upstream\": {\"indexes\": [\"https://pypi.org/simple/\"]}}",
     "upstream.indexes[0]: expected an object", 1},
    {"{\"upstream\": {\"indexes\": [{\"url\": 1}]}}",
     "upstream.indexes[0].url: expected a string", 1},
    {"{\"upstream\": {\"indexes\": [{\"projects\": [\"torch\"]}]}}",
     "upstream.indexes[0].url: missing", 1},
    {"{\"upstream\": {\"page_ttl_s\": \"600\"}}",
     "upstream.page_ttl_s: expected a whole number", 1},
    {"{\"cache\": {\"expire_after_days\": \"7\"}}",
     "cache.expire_after_days: expected a whole number", 1},
    {"{\"cache\": {\"max_size\": true}}", "cache.max_size: expected a size", 1},
    /* impossible values */
    {"{\"upstream\": {\"page_ttl_s\": -1}}", "upstream.page_ttl_s: expected",
     1},
    {"{\"upstream\": {\"page_ttl_s\": 1.5}}", "upstream.page_ttl_s: expected",
     1},
    {"{\"upstream\": {\"timeout_s\": 0}}", "upstream.timeout_s: expected", 1},
    {"{\"upstream\": {\"timeout_s\": 3601}}", "upstream.timeout_s: expected",
     1},
    {"{\"upstream\": {\"timeout_s\": 1e999}}", "upstream.timeout_s: expected",
     1},
    {"{\"cache\": {\"expire_after_days\": -7}}",
     "cache.expire_after_days: expected", 1},
    {"{\"cache\": {\"max_size\": \"20GB\"}}", "cache.max_size: expected a size",
     1},
    {"{\"cache\": {\"max_size\": \"1.5GiB\"}}",
     "cache.max_size: expected a size", 1},
    {"{\"cache\": {\"max_size\": \"99999999999TiB\"}}",
     "cache.max_size: expected a size", 1},
    {"{\"cache\": {\"max_size\": -1}}", "cache.max_size: expected a size", 1},
    {"{\"cache\": {\"max_size\": 0}}", "cache.max_size: must be more than 0",
     1},
    {"{\"cache\": {\"max_size\": \"0GiB\"}}",
     "cache.max_size: must be more than 0", 1},
    {"{\"cache\": {\"map_size\": \"0\"}}",
     "cache.map_size: must be more than 0", 1},
    {"{\"cache\": {\"max_size\": \"20GiB\",\n\"map_size\": \"10GiB\"}}",
     "cache.map_size: 10GiB is smaller than cache.max_size (20GiB)", 2},
    {"{\"cache\": {\"max_size\": \"300GiB\"}}",
     "cache.map_size: the default 256GiB is smaller", 1},
    /* addresses and URLs */
    {"{\"http\": {\"listen\": \"127.0.0.1\"}}",
     "http.listen: expected HOST:PORT", 1},
    {"{\"http\": {\"listen\": \"127.0.0.1:0\"}}", "http.listen: port must be",
     1},
    {"{\"http\": {\"listen\": \"127.0.0.1:65536\"}}",
     "http.listen: port must be", 1},
    {"{\"http\": {\"listen\": \"127.0.0.1:80x\"}}", "http.listen: port must be",
     1},
    {"{\"http\": {\"listen\": \"::1:7390\"}}", "http.listen: an IPv6 address",
     1},
    {"{\"http\": {\"listen\": \"[::g]:7390\"}}",
     "http.listen: not a valid IPv6", 1},
    {"{\"http\": {\"listen\": \"300.1.1.1:7390\"}}",
     "http.listen: not a valid IPv4", 1},
    {"{\"http\": {\"listen\": \"*:7390\"}}", "http.listen: host is neither", 1},
    {"{\"http\": {\"allow_put_from\": [\"127.0.0.1/32\", \"10.0.0.0/33\"]}}",
     "http.allow_put_from[1]: expected an address block", 1},
    {"{\"http\": {\"allow_put_from\": [\"localhost\"]}}",
     "http.allow_put_from[0]: expected an address block", 1},
    {"{\"cluster\": {\"listen\": \"0.0.0.0:7391\"}}",
     "cluster.listen: expected tcp://HOST:PORT", 1},
    {"{\"cluster\": {\"listen\": \"tcp://0.0.0.0\"}}", "cluster.listen: ", 1},
    {"{\"cluster\": {\"advertise\": \"tcp://*:7391\"}}",
     "cluster.advertise: host is neither", 1},
    {"{\"cluster\": {\"advertise\": \"tcp://0.0.0.0:7391\"}}",
     "cluster.advertise: peers cannot dial", 1},
    {"{\"cluster\": {\"seeds\": [\"tcp://10.0.0.6:7391\", "
     "\"udp://10.0.0.7:7391\"]}}",
     "cluster.seeds[1]: expected tcp://HOST:PORT", 1},
    {"{\"cluster\": {\"seeds\": [\"tcp://10.0.0.6:99999\"]}}",
     "cluster.seeds[0]: port must be", 1},
    {"{\"cluster\": {\"seeds\": [\"tcp://"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "example:7391\"]}}",
     "cluster.seeds[0]: longer than the 128 bytes", 1},
    {"{\"cluster\": {\"seeds\": [\"abcd@tcp://10.0.0.6:7391\"]}}",
     "cluster.seeds[0]: expected KEY@tcp://HOST:PORT with KEY 64 hex", 1},
    {"{\"cluster\": {\"seeds\": [\"00112233445566778899aabbccddeeff"
     "00112233445566778899AABBCCDDEEFg@tcp://10.0.0.6:7391\"]}}",
     "cluster.seeds[0]: expected KEY@tcp://HOST:PORT", 1},
    {"{\"cluster\": {\"seeds\": [\"00112233445566778899aabbccddeeff"
     "00112233445566778899AABBCCDDEEFF@10.0.0.6:7391\"]}}",
     "cluster.seeds[0]: expected tcp://HOST:PORT", 1},
    {"{\"upstream\": {\"indexes\": [{\"url\": \"ftp://pypi.org/simple/\"}]}}",
     "upstream.indexes[0].url: must start with http:// or https://", 1},
    {"{\"upstream\": {\"indexes\": [{\"url\": \"https://\"}]}}",
     "upstream.indexes[0].url: has no host", 1},
    {"{\"upstream\": {\"indexes\": [{\"url\": \"https://a/simple?x=1\"}]}}",
     "upstream.indexes[0].url: must not contain", 1},
    {"{\"upstream\": {\"indexes\": [{\"url\": \"https://a/\", "
     "\"projects\": []}]}}",
     "upstream.indexes[0].projects: empty", 1},
    {"{\"upstream\": {\"indexes\": [{\"url\": \"https://a/\", "
     "\"projects\": [\"torch\", \"-torch\"]}]}}",
     "upstream.indexes[0].projects[1]: \"-torch\" is not a valid project", 1},
    {"{\"upstream\": {\"indexes\": [{\"url\": \"https://a/\", "
     "\"projects\": [\"to rch\"]}]}}",
     "upstream.indexes[0].projects[0]: \"to rch\" is not a valid project", 1},
    {"{\"upstream\": {\"indexes\": [{\"url\": \"https://a/\", "
     "\"projects\": \"torch\"}]}}",
     "upstream.indexes[0].projects: expected an array", 1},
};

static void
test_bad_configs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *bc = &bad_cases[i];
        wm_config cfg;
        wm_buf errors;
        char *path = NULL;
        int rc;

        wm_buf_init(&errors, 1 << 16);
        rc = load_text_n(bc->text, strlen(bc->text), &cfg, &errors, &path);
        if (rc != -EINVAL || errors.data == NULL ||
            strstr(errors.data, bc->expect) == NULL) {
            print_error("case %zu: %s\n  rc %d, errors:\n%s", i, bc->text, rc,
                        errors.data != NULL ? errors.data : "(none)");
            fail();
        }
        if (bc->line > 0) {
            char want[256];
            snprintf(want, sizeof want, "%s:%d:", path, bc->line);
            if (strstr(errors.data, want) == NULL) {
                print_error("case %zu: want line %d in:\n%s", i, bc->line,
                            errors.data);
                fail();
            }
        }
        /* Every error line names the file. */
        assert_true(strncmp(errors.data, path, strlen(path)) == 0);
        /* A failed load leaves nothing behind. */
        assert_null(cfg.name);
        assert_null(cfg.indexes);
        assert_int_equal(cfg.nindexes, 0);
        free(path);
        wm_buf_free(&errors);
    }
}

static void
test_error_format(void **state)
{
    static const char text[] = "{\n"
                               "  \"node\": {\"name\": \"a\"},\n"
                               "  \"cache\": {\n"
                               "    \"expire_after_days\": 7,\n"
                               "    \"max_size\": \"20 GiB\"\n"
                               "  }\n"
                               "}\n";
    wm_config cfg;
    wm_buf errors;
    char *path, want[512];

    (void)state;
    wm_buf_init(&errors, 1 << 16);
    assert_int_equal(load_text_n(text, strlen(text), &cfg, &errors, &path),
                     -EINVAL);
    snprintf(want, sizeof want,
             "%s:5: cache.max_size: expected a size such as \"20GiB\" "
             "(units B, KiB, MiB, GiB, TiB), got \"20 GiB\"\n",
             path);
    assert_string_equal(errors.data, want);
    free(path);
    wm_buf_free(&errors);
}

static void
test_syntax_error_column(void **state)
{
    static const char text[] = "{\n"
                               "  \"node\": {\n"
                               "    \"name\" \"agent-1\"\n"
                               "  }\n"
                               "}\n";
    wm_config cfg;
    wm_buf errors;
    char *path, want[512];

    (void)state;
    wm_buf_init(&errors, 1 << 16);
    assert_int_equal(load_text_n(text, strlen(text), &cfg, &errors, &path),
                     -EINVAL);
    snprintf(want, sizeof want, "%s:3:12: invalid JSON near '\"agent-1\"'\n",
             path);
    assert_string_equal(errors.data, want);
    free(path);
    wm_buf_free(&errors);
}

static void
test_all_errors_collected(void **state)
{
    static const char text[] = "{\n"
                               "  \"node\": {\"name\": 1, \"colour\": \"x\"},\n"
                               "  \"http\": {\"listen\": \"nowhere\"},\n"
                               "  \"upstream\": {\"timeout_s\": 0},\n"
                               "  \"cache\": {\"max_size\": \"20GB\"},\n"
                               "  \"extra\": 1\n"
                               "}\n";
    wm_config cfg;
    wm_buf errors;

    (void)state;
    wm_buf_init(&errors, 1 << 16);
    assert_int_equal(load_text(text, &cfg, &errors), -EINVAL);
    assert_int_equal(count_lines(errors.data), 6);
    assert_non_null(strstr(errors.data, ":2: node.name:"));
    assert_non_null(strstr(errors.data, ":2: node.colour: unknown key"));
    assert_non_null(strstr(errors.data, ":3: http.listen:"));
    assert_non_null(strstr(errors.data, ":4: upstream.timeout_s:"));
    assert_non_null(strstr(errors.data, ":5: cache.max_size:"));
    assert_non_null(strstr(errors.data, ":6: extra: unknown key"));
    wm_buf_free(&errors);
}

static void
test_too_many_errors(void **state)
{
    wm_buf text, errors;
    wm_config cfg;

    (void)state;
    wm_buf_init(&text, 1 << 20);
    wm_buf_adds(&text, "{");
    for (int i = 0; i < 1000; i++) {
        wm_buf_printf(&text, "%s\"k%d\": 1\n", i > 0 ? "," : "", i);
    }
    wm_buf_adds(&text, "}");
    assert_false(text.failed);
    wm_buf_init(&errors, 1 << 20);
    assert_int_equal(load_text(text.data, &cfg, &errors), -EINVAL);
    assert_int_equal(count_lines(errors.data), 101);
    assert_non_null(strstr(errors.data, ":100: k99: unknown key"));
    assert_non_null(strstr(errors.data, "too many problems"));
    wm_buf_free(&text);
    wm_buf_free(&errors);
}

static void
test_unreadable(void **state)
{
    wm_config cfg;
    wm_buf errors;

    (void)state;
    wm_buf_init(&errors, 1 << 16);
    assert_int_equal(
        wm_config_load(&cfg, "/tmp/wm_test_config_does_not_exist", &errors),
        -ENOENT);
    assert_string_equal(errors.data,
                        "/tmp/wm_test_config_does_not_exist: "
                        "cannot read: No such file or directory\n");
    assert_null(cfg.name);
    wm_buf_free(&errors);
    /* A NULL error buffer is allowed. */
    assert_int_equal(wm_config_load(&cfg, "/tmp", NULL), -EISDIR);
}

/* ---- good files ---------------------------------------------------------
 */

static void
test_design_example(void **state)
{
    wm_config cfg;
    wm_buf errors;
    wm_cidr lo;

    (void)state;
    wm_buf_init(&errors, 1 << 16);
    assert_int_equal(load_text(design_example, &cfg, &errors), 0);
    assert_null(errors.data);

    assert_string_equal(cfg.name, "agent-1");
    assert_string_equal(cfg.data_dir, "/var/lib/wheelmesh");
    assert_string_equal(cfg.identity, "/etc/wheelmesh/node.key");

    assert_string_equal(cfg.http_listen, "127.0.0.1:7390");
    assert_int_equal(cfg.nallow_put_from, 1);
    assert_int_equal(wm_cidr_parse("127.0.0.1/32", &lo), 0);
    assert_memory_equal(&cfg.allow_put_from[0], &lo, sizeof lo);

    assert_string_equal(cfg.cluster_listen, "tcp://0.0.0.0:7391");
    assert_string_equal(cfg.cluster_advertise, "tcp://10.0.0.5:7391");
    assert_int_equal(cfg.nseeds, 1);
    assert_string_equal(cfg.seeds[0].addr, "tcp://10.0.0.6:7391");
    assert_false(cfg.seeds[0].has_key);
    assert_string_equal(cfg.trusted_keys, "/etc/wheelmesh/trusted_keys");
    assert_string_equal(cfg.publishers, "/etc/wheelmesh/publishers");
    assert_int_equal(cfg.ncluster_projects, 1);
    assert_string_equal(cfg.cluster_projects[0], "corp-*");
    assert_int_equal(cfg.max_upload_rate, 50 * 1024 * 1024);

    assert_int_equal(cfg.nindexes, 2);
    assert_string_equal(cfg.indexes[0].url, "https://pypi.org/simple/");
    assert_null(cfg.indexes[0].projects);
    assert_int_equal(cfg.indexes[0].nprojects, 0);
    assert_string_equal(cfg.indexes[1].url,
                        "https://download.pytorch.org/whl/cpu/");
    assert_int_equal(cfg.indexes[1].nprojects, 3);
    assert_string_equal(cfg.indexes[1].projects[0], "torch");
    assert_string_equal(cfg.indexes[1].projects[1], "torchvision");
    assert_string_equal(cfg.indexes[1].projects[2], "torchaudio");
    assert_int_equal(cfg.page_ttl_s, 600);
    assert_int_equal(cfg.timeout_s, 30);

    assert_int_equal(cfg.max_size, 20 * GIB);
    assert_int_equal(cfg.expire_after_days, 7);
    assert_int_equal(cfg.map_size, 256 * GIB);

    wm_config_free(&cfg);
    assert_null(cfg.name);
    wm_config_free(&cfg); /* twice is harmless */
    wm_config_free(NULL);
    wm_buf_free(&errors);
}

static void
test_good_variants(void **state)
{
    static const char text[] =
        "\xEF\xBB\xBF{\n"
        "  \"node\": {\"data_dir\": \"/srv/wm/\"},\n"
        "  \"http\": {\"listen\": \"[::1]:8080\", \"allow_put_from\": []},\n"
        "  \"cluster\": {\"listen\": \"tcp://*:7391\", \"seeds\": [\n"
        "      \"tcp://[fe80::1]:7391\", \"tcp://agent-2.lan:7391\",\n"
        "      \"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF@tcp://10.0.0.7:7391\"]},\n"
        "  \"upstream\": {\"indexes\": [{\"url\": "
        "\"http://mirror.lan/simple\",\n"
        "      \"projects\": [\"Foo_Bar.baz\", \"A--b__c\", \"x\"]}],\n"
        "      \"page_ttl_s\": 0, \"timeout_s\": 3600},\n"
        "  \"cache\": {\"max_size\": 1048576, \"expire_after_days\": 0,\n"
        "      \"map_size\": \"1MiB\"}\n"
        "}\n";
    wm_config cfg;
    wm_buf errors;

    (void)state;
    wm_buf_init(&errors, 1 << 16);
    assert_int_equal(load_text(text, &cfg, &errors), 0);
    assert_string_equal(cfg.data_dir, "/srv/wm");
    /* The identity follows the configured data_dir. */
    assert_string_equal(cfg.identity, "/srv/wm/node.key");
    assert_string_equal(cfg.http_listen, "[::1]:8080");
    assert_int_equal(cfg.nallow_put_from, 0);
    assert_string_equal(cfg.cluster_listen, "tcp://*:7391");
    assert_null(cfg.cluster_advertise);
    assert_int_equal(cfg.nseeds, 3);
    assert_string_equal(cfg.seeds[1].addr, "tcp://agent-2.lan:7391");
    assert_false(cfg.seeds[1].has_key);
    /* A seed named with its key: one handshake, not one per trusted key. */
    assert_string_equal(cfg.seeds[2].addr, "tcp://10.0.0.7:7391");
    assert_true(cfg.seeds[2].has_key);
    assert_int_equal(cfg.seeds[2].key[0], 0x00);
    assert_int_equal(cfg.seeds[2].key[1], 0x11);
    assert_int_equal(cfg.seeds[2].key[31], 0xff);
    assert_int_equal(cfg.nindexes, 1);
    assert_string_equal(cfg.indexes[0].url, "http://mirror.lan/simple/");
    assert_int_equal(cfg.indexes[0].nprojects, 3);
    assert_string_equal(cfg.indexes[0].projects[0], "foo-bar-baz");
    assert_string_equal(cfg.indexes[0].projects[1], "a-b-c");
    assert_string_equal(cfg.indexes[0].projects[2], "x");
    assert_int_equal(cfg.page_ttl_s, 0);
    assert_int_equal(cfg.timeout_s, 3600);
    assert_int_equal(cfg.max_size, 1 << 20);
    assert_int_equal(cfg.expire_after_days, 0);
    assert_int_equal(cfg.map_size, 1 << 20);
    wm_config_free(&cfg);
    wm_buf_free(&errors);
}

static void
test_offline(void **state)
{
    wm_config cfg;

    (void)state;
    assert_int_equal(load_text("{\"upstream\": {\"indexes\": []}}", &cfg, NULL),
                     0);
    assert_int_equal(cfg.nindexes, 0);
    assert_null(cfg.indexes);
    wm_config_free(&cfg);
}

/* ---- defaults -----------------------------------------------------------
 */

static void
test_defaults(void **state)
{
    wm_config cfg, loaded;
    char host[256] = "";
    const uint8_t v4lo[4] = {127, 0, 0, 1};
    uint8_t v6lo[16] = {0};

    (void)state;
    v6lo[15] = 1;
    setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
    setenv("HOME", "/home/someone", 1);
    assert_int_equal(wm_config_defaults(&cfg), 0);
    assert_int_equal(gethostname(host, sizeof host - 1), 0);
    assert_string_equal(cfg.name, host);
    assert_string_equal(cfg.data_dir, "/tmp/xdg/wheelmesh");
    assert_string_equal(cfg.identity, "/tmp/xdg/wheelmesh/node.key");
    assert_string_equal(cfg.http_listen, "127.0.0.1:7390");
    assert_int_equal(cfg.nallow_put_from, 2);
    assert_int_equal(cfg.allow_put_from[0].family, AF_INET);
    assert_int_equal(cfg.allow_put_from[0].prefix, 32);
    assert_true(wm_cidr_match(&cfg.allow_put_from[0], AF_INET, v4lo));
    assert_int_equal(cfg.allow_put_from[1].family, AF_INET6);
    assert_int_equal(cfg.allow_put_from[1].prefix, 128);
    assert_true(wm_cidr_match(&cfg.allow_put_from[1], AF_INET6, v6lo));
    assert_string_equal(cfg.cluster_listen, "tcp://0.0.0.0:7391");
    assert_null(cfg.cluster_advertise);
    assert_int_equal(cfg.nseeds, 0);
    assert_null(cfg.trusted_keys);
    assert_int_equal(cfg.nindexes, 1);
    assert_string_equal(cfg.indexes[0].url, "https://pypi.org/simple/");
    assert_null(cfg.indexes[0].projects);
    assert_int_equal(cfg.page_ttl_s, 600);
    assert_int_equal(cfg.timeout_s, 30);
    assert_int_equal(cfg.max_size, 20 * GIB);
    assert_int_equal(cfg.expire_after_days, 7);
    assert_int_equal(cfg.map_size, 256 * GIB);

    /* "{}" gives exactly the defaults. */
    assert_int_equal(load_text("{}", &loaded, NULL), 0);
    assert_string_equal(loaded.data_dir, cfg.data_dir);
    assert_string_equal(loaded.identity, cfg.identity);
    assert_int_equal(loaded.nindexes, 1);
    assert_int_equal(loaded.map_size, cfg.map_size);
    wm_config_free(&loaded);
    wm_config_free(&cfg);

    /* An empty or relative XDG_CACHE_HOME falls back to ~/.cache. */
    setenv("XDG_CACHE_HOME", "", 1);
    assert_int_equal(wm_config_defaults(&cfg), 0);
    assert_string_equal(cfg.data_dir, "/home/someone/.cache/wheelmesh");
    assert_string_equal(cfg.identity,
                        "/home/someone/.cache/wheelmesh/node.key");
    wm_config_free(&cfg);
    setenv("XDG_CACHE_HOME", "relative", 1);
    assert_int_equal(wm_config_defaults(&cfg), 0);
    assert_string_equal(cfg.data_dir, "/home/someone/.cache/wheelmesh");
    wm_config_free(&cfg);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/other/", 1);
    assert_int_equal(wm_config_defaults(&cfg), 0);
    assert_string_equal(cfg.data_dir, "/home/other/.cache/wheelmesh");
    wm_config_free(&cfg);

    /* Only data_dir set: the identity lives there. */
    assert_int_equal(
        load_text("{\"node\": {\"data_dir\": \"/d\"}}", &loaded, NULL), 0);
    assert_string_equal(loaded.identity, "/d/node.key");
    wm_config_free(&loaded);
    assert_int_equal(
        load_text("{\"node\": {\"data_dir\": \"/\"}}", &loaded, NULL), 0);
    assert_string_equal(loaded.identity, "/node.key");
    wm_config_free(&loaded);
}

/* ---- sizes --------------------------------------------------------------
 */

static void
test_sizes(void **state)
{
    static const struct {
        const char *s;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"100", 0, 100},
        {"100B", 0, 100},
        {"1KiB", 0, 1024},
        {"512MiB", 0, 512ull << 20},
        {"20GiB", 0, 20ull << 30},
        {"256GiB", 0, 256ull << 30},
        {"1TiB", 0, 1ull << 40},
        {"0020GiB", 0, 20ull << 30},
        {"16777215TiB", 0, 16777215ull << 40},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551615B", 0, UINT64_MAX},
        {"16777216TiB", -EINVAL, 0},
        {"18446744073709551616", -EINVAL, 0},
        {"99999999999999999999999", -EINVAL, 0},
        {"17179869184GiB", -EINVAL, 0},
        {"20GB", -EINVAL, 0},
        {"20gib", -EINVAL, 0},
        {"20Gib", -EINVAL, 0},
        {"20G", -EINVAL, 0},
        {"20 GiB", -EINVAL, 0},
        {" 20GiB", -EINVAL, 0},
        {"20GiB ", -EINVAL, 0},
        {"1.5GiB", -EINVAL, 0},
        {"-1", -EINVAL, 0},
        {"+1", -EINVAL, 0},
        {"0x10", -EINVAL, 0},
        {"GiB", -EINVAL, 0},
        {"", -EINVAL, 0},
        {"1PiB", -EINVAL, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t got = 12345;
        int rc = wm_config_parse_size(cases[i].s, &got);
        if (rc != cases[i].rc || (rc == 0 && got != cases[i].want)) {
            print_error("size \"%s\": rc %d, got %llu\n", cases[i].s, rc,
                        (unsigned long long)got);
            fail();
        }
    }
    assert_int_equal(wm_config_parse_size(NULL, NULL), -EINVAL);
}

/* ---- address blocks -----------------------------------------------------
 */

static void
test_cidr_parse(void **state)
{
    static const struct {
        const char *s;
        int rc;
        int family;
        int prefix;
        const char *addr; /* the network after masking */
    } cases[] = {
        {"10.0.0.0/8", 0, AF_INET, 8, "10.0.0.0"},
        {"10.1.2.3/8", 0, AF_INET, 8, "10.0.0.0"},
        {"192.168.1.200/25", 0, AF_INET, 25, "192.168.1.128"},
        {"127.0.0.1", 0, AF_INET, 32, "127.0.0.1"},
        {"0.0.0.0/0", 0, AF_INET, 0, "0.0.0.0"},
        {"::1/128", 0, AF_INET6, 128, "::1"},
        {"::1", 0, AF_INET6, 128, "::1"},
        {"2001:db8::ff/33", 0, AF_INET6, 33, "2001:db8::"},
        {"::/0", 0, AF_INET6, 0, "::"},
        {"::ffff:10.0.0.0/104", 0, AF_INET6, 104, "::ffff:10.0.0.0"},
        {"10.0.0.0/33", -EINVAL, 0, 0, NULL},
        {"::1/129", -EINVAL, 0, 0, NULL},
        {"10.0.0.0/", -EINVAL, 0, 0, NULL},
        {"/8", -EINVAL, 0, 0, NULL},
        {"10.0.0/8", -EINVAL, 0, 0, NULL},
        {"10.0.0.0/-1", -EINVAL, 0, 0, NULL},
        {"10.0.0.0/+8", -EINVAL, 0, 0, NULL},
        {"10.0.0.0/8/8", -EINVAL, 0, 0, NULL},
        {"10.0.0.0/8 ", -EINVAL, 0, 0, NULL},
        {"10.0.0.0/00000008", -EINVAL, 0, 0, NULL},
        {"256.0.0.0/8", -EINVAL, 0, 0, NULL},
        {"fe80::1%eth0/64", -EINVAL, 0, 0, NULL},
        {"localhost", -EINVAL, 0, 0, NULL},
        {"", -EINVAL, 0, 0, NULL},
        {"1111:2222:3333:4444:5555:6666:7777:8888:9999/64", -EINVAL, 0, 0,
         NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wm_cidr c;
        uint8_t want[16] = {0};
        int rc = wm_cidr_parse(cases[i].s, &c);
        if (rc != cases[i].rc) {
            print_error("cidr \"%s\": rc %d\n", cases[i].s, rc);
            fail();
        }
        if (rc != 0) {
            continue;
        }
        assert_int_equal(c.family, cases[i].family);
        assert_int_equal(c.prefix, cases[i].prefix);
        assert_int_equal(inet_pton(c.family, cases[i].addr, want), 1);
        assert_memory_equal(c.addr, want, c.family == AF_INET ? 4 : 16);
    }
    assert_int_equal(wm_cidr_parse(NULL, NULL), -EINVAL);
}

static void
test_cidr_match(void **state)
{
    static const struct {
        const char *block;
        const char *addr;
        int match;
    } cases[] = {
        {"10.0.0.0/8", "10.1.2.3", 1},
        {"10.0.0.0/8", "11.0.0.1", 0},
        {"10.0.0.0/8", "::ffff:10.1.2.3", 1},
        {"10.0.0.0/8", "::ffff:11.1.2.3", 0},
        {"10.0.0.0/8", "::10.1.2.3", 0},
        {"10.0.0.0/8", "::1", 0},
        {"127.0.0.1/32", "127.0.0.1", 1},
        {"127.0.0.1/32", "127.0.0.2", 0},
        {"127.0.0.1/32", "::ffff:127.0.0.1", 1},
        {"192.168.1.0/25", "192.168.1.127", 1},
        {"192.168.1.0/25", "192.168.1.128", 0},
        {"0.0.0.0/0", "203.0.113.9", 1},
        {"0.0.0.0/0", "::ffff:203.0.113.9", 1},
        {"0.0.0.0/0", "2001:db8::1", 0},
        {"::1/128", "::1", 1},
        {"::1/128", "::2", 0},
        {"::1/128", "127.0.0.1", 0},
        {"2001:db8::/33", "2001:db8:7fff::1", 1},
        {"2001:db8::/33", "2001:db8:8000::1", 0},
        {"::ffff:10.0.0.0/104", "10.9.9.9", 1},
        {"::ffff:10.0.0.0/104", "11.9.9.9", 0},
        {"::/0", "2001:db8::1", 1},
        {"::/0", "198.51.100.1", 1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wm_cidr c;
        uint8_t addr[16];
        int family = strchr(cases[i].addr, ':') != NULL ? AF_INET6 : AF_INET;
        assert_int_equal(wm_cidr_parse(cases[i].block, &c), 0);
        assert_int_equal(inet_pton(family, cases[i].addr, addr), 1);
        if (!!wm_cidr_match(&c, family, addr) != cases[i].match) {
            print_error("%s in %s: want %d\n", cases[i].addr, cases[i].block,
                        cases[i].match);
            fail();
        }
    }
    assert_false(wm_cidr_match(NULL, AF_INET, (const uint8_t *)"\0\0\0\0"));
}

/* ---- robustness ---------------------------------------------------------
 */

/* Every prefix of a good file, and the good file with each byte replaced
 * by a few troublesome ones, loads or fails cleanly (ASan watches). */
static void
test_truncated_and_mangled(void **state)
{
    static const char junk[] = {'\0', '"', '\\', '{', ']', ',', '\n'};
    size_t len = strlen(design_example);
    char *copy = malloc(len);

    (void)state;
    assert_non_null(copy);
    /* The text ends in "}\n": every shorter prefix lacks the '}'. */
    for (size_t n = 0; n < len - 1; n++) {
        wm_config cfg;
        wm_buf errors;
        wm_buf_init(&errors, 1 << 16);
        assert_int_equal(load_text_n(design_example, n, &cfg, &errors, NULL),
                         -EINVAL);
        assert_true(count_lines(errors.data) >= 1);
        wm_buf_free(&errors);
    }
    for (size_t i = 0; i < len; i += 3) {
        for (size_t j = 0; j < sizeof junk; j++) {
            wm_config cfg;
            wm_buf errors;
            int rc;
            memcpy(copy, design_example, len);
            copy[i] = junk[j];
            wm_buf_init(&errors, 1 << 16);
            rc = load_text_n(copy, len, &cfg, &errors, NULL);
            assert_true(rc == 0 || rc == -EINVAL);
            if (rc == 0) {
                wm_config_free(&cfg);
            } else {
                assert_true(count_lines(errors.data) >= 1);
            }
            wm_buf_free(&errors);
        }
    }
    free(copy);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_error_format),
        cmocka_unit_test(test_syntax_error_column),
        cmocka_unit_test(test_all_errors_collected),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_good_variants),
        cmocka_unit_test(test_offline),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_truncated_and_mangled),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
