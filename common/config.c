/*
 * The node's configuration file (DESIGN.md "Config"). wm_config_load() reads
 * the JSON with cJSON, checks every member against the table of keys for its
 * section and lays what it finds over the defaults. It does not stop at the
 * first problem: every unknown or duplicate key, wrong type and impossible
 * value adds one line to the caller's error buffer, so `wheelmesh node
 * --check` shows them all at once.
 *
 * cJSON keeps no positions, so the walk reads the raw text in step with the
 * parsed tree. cJSON has already accepted the text and lists members in the
 * order they appear, so a small skipper that only knows how strings and
 * brackets nest finds the offset of every key and value, and errors carry
 * the right line. The skipper never reads past the end of the text; if it
 * ever lost step the lines would be wrong, never the verdict.
 */
#include "config.h"
#include "hash.h"
#include "wire.h"
#include "wheelname.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES (1024 * 1024) /* a config is a few hundred bytes */
#define MAX_ERRORS       100
#define NO_POS           SIZE_MAX
#define NAME_MAX_LEN     255
#define PATH_MAX_LEN     4095
#define URL_MAX_LEN      2048
#define ENDPOINT_MAX_LEN 300
#define PROJECT_MAX_LEN  WM_PROJECT_MAX
#define TTL_MAX_S        (365u * 24 * 3600)
#define EXPIRE_MAX_DAYS  36500u

#define KIB ((uint64_t)1 << 10)
#define GIB ((uint64_t)1 << 30)

typedef struct ctx {
    const char *path; /* the file, as the caller named it */
    const char *text;
    size_t len;
    wm_buf *errors; /* may be NULL */
    int nerrors;
    int oom;
    wm_config *cfg;
    wm_index *index;  /* the upstream index being read */
    int index_url;    /* that index had a "url" key */
    int identity_set; /* node.identity was given */
    size_t max_size_pos;
    size_t map_size_pos;
} ctx;

typedef void (*field_fn)(ctx *c, const char *path, const cJSON *v, size_t pos);

typedef struct field {
    const char *key;
    field_fn fn;
} field;

typedef void (*elem_fn)(ctx *c, const char *path, const cJSON *v, size_t pos,
                        size_t i);

/* ---- errors -------------------------------------------------------------
 */

static void
line_col(const ctx *c, size_t pos, unsigned *line, unsigned *col)
{
    size_t start = 0;

    *line = 1;
    if (pos > c->len) {
        pos = c->len;
    }
    for (size_t i = 0; i < pos; i++) {
        if (c->text[i] == '\n') {
            (*line)++;
            start = i + 1;
        }
    }
    *col = (unsigned)(pos - start) + 1;
}

__attribute__((format(printf, 4, 0))) static void
vfail(ctx *c, size_t pos, int with_col, const char *fmt, va_list ap)
{
    char msg[512];
    unsigned line, col;

    c->nerrors++;
    if (c->errors == NULL || c->nerrors > MAX_ERRORS + 1) {
        return;
    }
    if (c->nerrors == MAX_ERRORS + 1) {
        wm_buf_printf(c->errors, "%s: too many problems, stopping here\n",
                      c->path);
        return;
    }
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (pos == NO_POS || c->text == NULL) {
        wm_buf_printf(c->errors, "%s: %s\n", c->path, msg);
        return;
    }
    line_col(c, pos, &line, &col);
    if (with_col) {
        wm_buf_printf(c->errors, "%s:%u:%u: %s\n", c->path, line, col, msg);
    } else {
        wm_buf_printf(c->errors, "%s:%u: %s\n", c->path, line, msg);
    }
}

/* Reports a problem at byte POS of the text (NO_POS: no line). */
__attribute__((format(printf, 3, 4))) static void
fail(ctx *c, size_t pos, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(c, pos, 0, fmt, ap);
    va_end(ap);
}

/* The same with the column too, for syntax errors. */
__attribute__((format(printf, 3, 4))) static void
fail_col(ctx *c, size_t pos, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(c, pos, 1, fmt, ap);
    va_end(ap);
}

/* Copies at most N bytes of S into OUT for an error line: printable ASCII
 * stays, anything else becomes '?', and a long value ends in "...". */
static const char *
shown_n(const char *s, size_t n, char *out, size_t outsz)
{
    size_t i = 0, j = 0;

    while (j < n && s[j] != '\0' && i + 4 < outsz) {
        unsigned char ch = (unsigned char)s[j++];
        out[i++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (j < n && s[j] != '\0') {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

static const char *
shown(const char *s, char *out, size_t outsz)
{
    return shown_n(s, SIZE_MAX, out, outsz);
}

/* Writes SIZE as "20GiB" when a binary unit divides it, else "NB". */
static const char *
fmt_size(uint64_t size, char *out, size_t outsz)
{
    static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};

    for (int i = 0; i < 4; i++) {
        unsigned shift = 40 - 10 * (unsigned)i;
        uint64_t unit = (uint64_t)1 << shift;
        if (size != 0 && size % unit == 0) {
            snprintf(out, outsz, "%" PRIu64 "%s", size >> shift, units[i]);
            return out;
        }
    }
    snprintf(out, outsz, "%" PRIu64 "B", size);
    return out;
}

/* ---- walking the raw text -----------------------------------------------
 */

static size_t
skip_ws(const ctx *c, size_t pos)
{
    /* cJSON treats every byte up to 32 as white space; so does this. */
    while (pos < c->len && (unsigned char)c->text[pos] <= 32) {
        pos++;
    }
    return pos;
}

/* POS is at a '"'; returns the offset just past the closing one. */
static size_t
skip_string(const ctx *c, size_t pos)
{
    pos++;
    while (pos < c->len) {
        if (c->text[pos] == '\\') {
            pos += 2;
        } else if (c->text[pos] == '"') {
            return pos + 1;
        } else {
            pos++;
        }
    }
    return c->len;
}

/* Returns the offset just past the value that starts at POS. */
static size_t
skip_value(const ctx *c, size_t pos)
{
    int depth = 0;

    if (pos >= c->len) {
        return c->len;
    }
    if (c->text[pos] == '"') {
        return skip_string(c, pos);
    }
    if (c->text[pos] != '{' && c->text[pos] != '[') {
        while (pos < c->len && (unsigned char)c->text[pos] > 32 &&
               strchr(",]}", c->text[pos]) == NULL) {
            pos++;
        }
        return pos;
    }
    while (pos < c->len) {
        char ch = c->text[pos];
        if (ch == '"') {
            pos = skip_string(c, pos);
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
            if (depth == 0) {
                return pos + 1;
            }
        }
        pos++;
    }
    return c->len;
}

/* Moves past white space and the ',' that separates items, if any. */
static size_t
next_item(const ctx *c, size_t pos)
{
    pos = skip_ws(c, pos);
    if (pos < c->len && c->text[pos] == ',') {
        pos = skip_ws(c, pos + 1);
    }
    return pos;
}

/* KEY_POS is at a member's key; returns the offset of its value. */
static size_t
member_value(const ctx *c, size_t key_pos)
{
    size_t pos = skip_ws(c, skip_string(c, key_pos));

    if (pos < c->len && c->text[pos] == ':') {
        pos++;
    }
    return skip_ws(c, pos);
}

/* Checks the members of OBJ (whose '{' is at POS) against FIELDS and hands
 * each known one to its function with its full key path. */
static void
walk_object(ctx *c, const char *path, const cJSON *obj, size_t pos,
            const field *fields, size_t nfields)
{
    uint32_t seen = 0;
    size_t p = pos + 1;

    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        size_t key_pos = next_item(c, p);
        size_t val_pos = member_value(c, key_pos);
        const char *key = m->string != NULL ? m->string : "";
        const char *dot = path[0] != '\0' ? "." : "";
        size_t i = 0;

        while (i < nfields && strcmp(fields[i].key, key) != 0) {
            i++;
        }
        if (i == nfields) {
            char kbuf[64], known[160];
            size_t k = 0;
            known[0] = '\0';
            for (size_t j = 0; j < nfields && k < sizeof known; j++) {
                int n = snprintf(known + k, sizeof known - k, "%s%s",
                                 j > 0 ? ", " : "", fields[j].key);
                k += n > 0 ? (size_t)n : 0;
            }
            fail(c, key_pos, "%s%s%s: unknown key (expected one of: %s)", path,
                 dot, shown(key, kbuf, sizeof kbuf), known);
        } else if (seen & (UINT32_C(1) << i)) {
            fail(c, key_pos, "%s%s%s: duplicate key", path, dot, key);
        } else {
            char sub[160];
            seen |= UINT32_C(1) << i;
            snprintf(sub, sizeof sub, "%s%s%s", path, dot, key);
            fields[i].fn(c, sub, m, val_pos);
        }
        p = skip_value(c, val_pos);
    }
}

/* Hands each element of ARR (whose '[' is at POS) to FN as "PATH[i]". */
static void
walk_array(ctx *c, const char *path, const cJSON *arr, size_t pos, elem_fn fn)
{
    size_t p = pos + 1, i = 0;

    for (const cJSON *e = arr->child; e != NULL; e = e->next, i++) {
        size_t epos = next_item(c, p);
        char sub[160];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        fn(c, sub, e, epos, i);
        p = skip_value(c, epos);
    }
}

/* ---- value checks -------------------------------------------------------
 */

/* A non-empty string of at most MAX bytes without control characters. */
static int
want_string(ctx *c, const char *path, const cJSON *v, size_t pos, size_t max,
            const char **out)
{
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;

    if (s == NULL) {
        fail(c, pos, "%s: expected a string", path);
        return -1;
    }
    if (s[0] == '\0') {
        fail(c, pos, "%s: must not be empty", path);
        return -1;
    }
    if (strlen(s) > max) {
        fail(c, pos, "%s: longer than %zu bytes", path, max);
        return -1;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            fail(c, pos, "%s: must not contain control characters", path);
            return -1;
        }
    }
    *out = s;
    return 0;
}

static int
want_array(ctx *c, const char *path, const cJSON *v, size_t pos, size_t *count)
{
    if (!cJSON_IsArray(v)) {
        fail(c, pos, "%s: expected an array", path);
        return -1;
    }
    *count = (size_t)cJSON_GetArraySize(v);
    return 0;
}

static int
want_object(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    if (!cJSON_IsObject(v)) {
        fail(c, pos, "%s: expected an object", path);
        return -1;
    }
    return 0;
}

/* A whole number in MIN..MAX. */
static int
want_uint(ctx *c, const char *path, const cJSON *v, size_t pos, uint32_t min,
          uint32_t max, uint32_t *out)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1.0;

    /* The range test comes first: it also turns away NaN and infinity. */
    if (!(d >= min && d <= max) || (double)(uint32_t)d != d) {
        fail(c, pos, "%s: expected a whole number from %" PRIu32 " to %" PRIu32,
             path, min, max);
        return -1;
    }
    *out = (uint32_t)d;
    return 0;
}

/* A size: a whole number of bytes, or a string for
 * wm_config_parse_size(); more than 0. */
static int
want_size(ctx *c, const char *path, const cJSON *v, size_t pos, uint64_t *out)
{
    uint64_t size = 0;
    int ok = 0;
    char vbuf[64];

    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* Past 2^53 a double no longer holds every whole number. */
        ok = d >= 0 && d <= 9007199254740992.0 && (double)(uint64_t)d == d;
        size = ok ? (uint64_t)d : 0;
    } else if (cJSON_IsString(v) && v->valuestring != NULL) {
        ok = wm_config_parse_size(v->valuestring, &size) == 0;
        if (!ok) {
            fail(c, pos,
                 "%s: expected a size such as \"20GiB\" (units B, KiB, MiB, "
                 "GiB, TiB), got \"%s\"",
                 path, shown(v->valuestring, vbuf, sizeof vbuf));
            return -1;
        }
    }
    if (!ok) {
        fail(c, pos, "%s: expected a size such as \"20GiB\"", path);
        return -1;
    }
    if (size == 0) {
        fail(c, pos, "%s: must be more than 0", path);
        return -1;
    }
    *out = size;
    return 0;
}

/* Checks "HOST:PORT" or "[V6]:PORT" with PORT 1..65535. STAR allows "*" as
 * the host (a ZeroMQ bind to every interface). Returns NULL when S is good,
 * else a reason. */
static const char *
check_hostport(const char *s, int star)
{
    const char *port;
    uint8_t addr[16];
    unsigned long n = 0;
    size_t digits = 0;

    if (s[0] == '[') {
        char a[INET6_ADDRSTRLEN];
        const char *close = strchr(s, ']');
        size_t alen = close != NULL ? (size_t)(close - s - 1) : 0;
        if (close == NULL) {
            return "missing ']' after the IPv6 address";
        }
        if (alen == 0 || alen >= sizeof a) {
            return "not a valid IPv6 address";
        }
        memcpy(a, s + 1, alen);
        a[alen] = '\0';
        if (inet_pton(AF_INET6, a, addr) != 1) {
            return "not a valid IPv6 address";
        }
        if (close[1] != ':') {
            return "expected \":PORT\" after the address";
        }
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        size_t hlen = colon != NULL ? (size_t)(colon - s) : 0;
        int numeric = 1;
        if (colon == NULL) {
            return "expected HOST:PORT";
        }
        if (hlen == 0) {
            return "missing host before \":PORT\"";
        }
        if (memchr(s, ':', hlen) != NULL) {
            return "an IPv6 address needs brackets, as in [::1]:7390";
        }
        if (!(star && hlen == 1 && s[0] == '*')) {
            char a[INET_ADDRSTRLEN];
            if (hlen > 253) {
                return "host name too long";
            }
            for (size_t i = 0; i < hlen; i++) {
                char ch = s[i];
                int alnum = (ch >= 'a' && ch <= 'z') ||
                            (ch >= 'A' && ch <= 'Z') ||
                            (ch >= '0' && ch <= '9');
                if (!alnum && ch != '-' && ch != '.') {
                    return "host is neither an address nor a host name";
                }
                if (!(ch >= '0' && ch <= '9') && ch != '.') {
                    numeric = 0;
                }
            }
            if (numeric) {
                if (hlen >= sizeof a) {
                    return "not a valid IPv4 address";
                }
                memcpy(a, s, hlen);
                a[hlen] = '\0';
                if (inet_pton(AF_INET, a, addr) != 1) {
                    return "not a valid IPv4 address";
                }
            }
        }
        port = colon + 1;
    }
    for (; port[digits] >= '0' && port[digits] <= '9' && digits < 6; digits++) {
        n = n * 10 + (unsigned long)(port[digits] - '0');
    }
    if (digits == 0 || port[digits] != '\0' || n < 1 || n > 65535) {
        return "port must be a number from 1 to 65535";
    }
    return NULL;
}

/* A ZeroMQ endpoint "tcp://HOST:PORT". STAR: "*" may stand for every
 * interface (listen only). ANY: the unspecified addresses 0.0.0.0 and [::]
 * are fine (not for an address that peers dial). */
/* Checks that S is "tcp://HOST:PORT" (see want_tcp). */
static int
check_tcp(ctx *c, const char *path, size_t pos, const char *s, int star,
          int any)
{
    const char *why;
    char vbuf[64];

    if (strncmp(s, "tcp://", 6) != 0) {
        fail(c, pos, "%s: expected tcp://HOST:PORT, got \"%s\"", path,
             shown(s, vbuf, sizeof vbuf));
        return -1;
    }
    why = check_hostport(s + 6, star);
    if (why == NULL && !any &&
        (strncmp(s + 6, "0.0.0.0:", 8) == 0 ||
         strncmp(s + 6, "[::]:", 5) == 0)) {
        why = "peers cannot dial the unspecified address";
    }
    /* An address peers dial travels in members' statements. */
    if (why == NULL && !any && strlen(s) > WM_WIRE_ADDR_MAX) {
        why = "longer than the 128 bytes a member's address may be";
    }
    if (why != NULL) {
        fail(c, pos, "%s: %s (in \"%s\")", path, why,
             shown(s, vbuf, sizeof vbuf));
        return -1;
    }
    return 0;
}

static int
want_tcp(ctx *c, const char *path, const cJSON *v, size_t pos, int star,
         int any, const char **out)
{
    const char *s;

    if (want_string(c, path, v, pos, ENDPOINT_MAX_LEN, &s) < 0 ||
        check_tcp(c, path, pos, s, star, any) < 0) {
        return -1;
    }
    *out = s;
    return 0;
}

/* ---- storing values -----------------------------------------------------
 */

static char *
strcat3(const char *a, const char *b, const char *d)
{
    size_t la = strlen(a), lb = strlen(b), ld = strlen(d);
    char *s = malloc(la + lb + ld + 1);

    if (s != NULL) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb);
        memcpy(s + la + lb, d, ld + 1);
    }
    return s;
}

/* Replaces *DST with a copy of S. */
static void
set_str(ctx *c, char **dst, const char *s)
{
    char *copy = strdup(s);

    if (copy == NULL) {
        c->oom = 1;
        return;
    }
    free(*dst);
    *dst = copy;
}

/* Drops trailing slashes, except from "/" itself. */
static void
strip_slashes(char *dir)
{
    size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/') {
        dir[--n] = '\0';
    }
}

/* DIR "/" NAME, without doubling a slash that DIR ends with. */
static char *
join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir), ln = strlen(name);
    char *s;

    while (n > 0 && dir[n - 1] == '/') {
        n--;
    }
    s = malloc(n + 1 + ln + 1);
    if (s != NULL) {
        memcpy(s, dir, n);
        s[n] = '/';
        memcpy(s + n + 1, name, ln + 1);
    }
    return s;
}

/* The PEP 503 form of NAME as a new string, or NULL when NAME is not a
 * valid project name (or on ENOMEM, with *OOM set). */
static char *
project_normalize(const char *name, int *oom)
{
    char norm[WM_PROJECT_MAX + 1], *out;

    if (wm_project_normalize(name, norm, sizeof(norm)) != 0)
        return NULL;
    out = strdup(norm);
    if (out == NULL)
        *oom = 1;
    return out;
}

/* ---- the sections -------------------------------------------------------
 */

static void
node_name(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s;

    if (want_string(c, path, v, pos, NAME_MAX_LEN, &s) == 0) {
        set_str(c, &c->cfg->name, s);
    }
}

static void
node_data_dir(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s;

    if (want_string(c, path, v, pos, PATH_MAX_LEN, &s) == 0) {
        set_str(c, &c->cfg->data_dir, s);
        strip_slashes(c->cfg->data_dir);
    }
}

static void
node_identity(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s;

    c->identity_set = 1;
    if (want_string(c, path, v, pos, PATH_MAX_LEN, &s) == 0) {
        set_str(c, &c->cfg->identity, s);
    }
}

static void
http_listen(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s, *why;
    char vbuf[64];

    if (want_string(c, path, v, pos, ENDPOINT_MAX_LEN, &s) < 0) {
        return;
    }
    why = check_hostport(s, 0);
    if (why != NULL) {
        fail(c, pos, "%s: %s (in \"%s\"; expected HOST:PORT such as %s)", path,
             why, shown(s, vbuf, sizeof vbuf), "127.0.0.1:7390");
        return;
    }
    set_str(c, &c->cfg->http_listen, s);
}

static void
cidr_elem(ctx *c, const char *path, const cJSON *v, size_t pos, size_t i)
{
    const char *s;
    char vbuf[64];

    if (want_string(c, path, v, pos, INET6_ADDRSTRLEN + 4, &s) < 0) {
        return;
    }
    if (wm_cidr_parse(s, &c->cfg->allow_put_from[i]) < 0) {
        fail(c, pos,
             "%s: expected an address block such as \"10.0.0.0/8\" or "
             "\"::1/128\", got \"%s\"",
             path, shown(s, vbuf, sizeof vbuf));
    }
}

static void
http_allow_put_from(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    size_t n;
    wm_cidr *list = NULL;

    if (want_array(c, path, v, pos, &n) < 0) {
        return;
    }
    if (n > 0) {
        list = calloc(n, sizeof *list);
        if (list == NULL) {
            c->oom = 1;
            return;
        }
    }
    free(c->cfg->allow_put_from);
    c->cfg->allow_put_from = list;
    c->cfg->nallow_put_from = n;
    walk_array(c, path, v, pos, cidr_elem);
}

static void
cluster_listen(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s;

    if (want_tcp(c, path, v, pos, 1, 1, &s) == 0) {
        set_str(c, &c->cfg->cluster_listen, s);
    }
}

static void
cluster_advertise(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s;

    if (want_tcp(c, path, v, pos, 0, 0, &s) == 0) {
        set_str(c, &c->cfg->cluster_advertise, s);
    }
}

/* "tcp://HOST:PORT" or "KEY@tcp://HOST:PORT" (see wm_seed). */
static void
seed_elem(ctx *c, const char *path, const cJSON *v, size_t pos, size_t i)
{
    wm_seed *seed = &c->cfg->seeds[i];
    const char *s, *at;
    char vbuf[64], hex[2 * sizeof seed->key + 1];

    if (want_string(c, path, v, pos, ENDPOINT_MAX_LEN, &s) < 0) {
        return;
    }
    at = strchr(s, '@');
    if (at != NULL) {
        int sized = (size_t)(at - s) == sizeof hex - 1;
        if (sized) {
            memcpy(hex, s, sizeof hex - 1);
            hex[sizeof hex - 1] = '\0';
        }
        if (!sized || wm_hex_decode(hex, seed->key, sizeof seed->key) != 0) {
            fail(c, pos,
                 "%s: expected KEY@tcp://HOST:PORT with KEY 64 hex digits "
                 "(a line of trusted_keys), got \"%s\"",
                 path, shown(s, vbuf, sizeof vbuf));
            return;
        }
        seed->has_key = 1;
        s = at + 1;
    }
    if (check_tcp(c, path, pos, s, 0, 0) == 0) {
        set_str(c, &seed->addr, s);
    }
}

static void
cluster_seeds(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    size_t n;

    if (want_array(c, path, v, pos, &n) < 0) {
        return;
    }
    /* Seeds are NULL by default, so there is nothing to free. */
    if (n > 0) {
        c->cfg->seeds = calloc(n, sizeof *c->cfg->seeds);
        if (c->cfg->seeds == NULL) {
            c->oom = 1;
            return;
        }
    }
    c->cfg->nseeds = n;
    walk_array(c, path, v, pos, seed_elem);
}

static void
cluster_trusted_keys(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s;

    if (want_string(c, path, v, pos, PATH_MAX_LEN, &s) == 0) {
        set_str(c, &c->cfg->trusted_keys, s);
    }
}

static void
cluster_publishers(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s;

    if (want_string(c, path, v, pos, PATH_MAX_LEN, &s) == 0) {
        set_str(c, &c->cfg->publishers, s);
    }
}

/* A project name pattern: a project name in which '*' stands for any run
 * of characters and '?' for one; kept in PEP 503 form. NULL when it is not
 * one (or on ENOMEM, with *OOM set). */
static char *
pattern_normalize(const char *s, int *oom)
{
    char plain[WM_PROJECT_MAX + 1], norm[WM_PROJECT_MAX + 1], *out;
    size_t n = strlen(s), k = 0;

    if (n == 0 || n > WM_PROJECT_MAX)
        return NULL;
    /* Wildcards become letters for the check, then come back. */
    for (size_t i = 0; i <= n; i++)
        plain[i] = s[i] == '*' || s[i] == '?' ? 'a' : s[i];
    if (wm_project_normalize(plain, norm, sizeof(norm)) != 0 ||
        strlen(norm) != n)
        return NULL; /* separators run together: keep it simple, refuse */
    for (size_t i = 0; i < n; i++, k++)
        norm[k] = s[i] == '*' || s[i] == '?' ? s[i] : norm[k];
    out = strdup(norm);
    if (out == NULL)
        *oom = 1;
    return out;
}

static void
cluster_project_elem(ctx *c, const char *path, const cJSON *v, size_t pos,
                     size_t i)
{
    const char *s;
    char vbuf[64];

    if (want_string(c, path, v, pos, PROJECT_MAX_LEN, &s) < 0) {
        return;
    }
    c->cfg->cluster_projects[i] = pattern_normalize(s, &c->oom);
    if (c->cfg->cluster_projects[i] == NULL && !c->oom) {
        fail(c, pos,
             "%s: \"%s\" is not a project name pattern (a name in which * "
             "and ? are wildcards)",
             path, shown(s, vbuf, sizeof vbuf));
    }
}

static void
cluster_projects(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    size_t n;

    if (want_array(c, path, v, pos, &n) < 0) {
        return;
    }
    if (n > 0) {
        c->cfg->cluster_projects = calloc(n, sizeof *c->cfg->cluster_projects);
        if (c->cfg->cluster_projects == NULL) {
            c->oom = 1;
            return;
        }
    }
    c->cfg->ncluster_projects = n;
    walk_array(c, path, v, pos, cluster_project_elem);
}

static void
cluster_max_upload_rate(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    want_size(c, path, v, pos, &c->cfg->max_upload_rate);
}

static void
index_url(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    const char *s, *host, *why = NULL;
    char vbuf[64];
    size_t n;

    c->index_url = 1;
    if (want_string(c, path, v, pos, URL_MAX_LEN, &s) < 0) {
        return;
    }
    if (strncmp(s, "https://", 8) == 0) {
        host = s + 8;
    } else if (strncmp(s, "http://", 7) == 0) {
        host = s + 7;
    } else {
        host = NULL;
        why = "must start with http:// or https://";
    }
    if (host != NULL && (host[0] == '\0' || host[0] == '/')) {
        why = "has no host";
    } else if (host != NULL && strpbrk(s, " ?#") != NULL) {
        why = "must not contain spaces, a query or a fragment";
    }
    if (why != NULL) {
        fail(c, pos, "%s: %s, got \"%s\"", path, why,
             shown(s, vbuf, sizeof vbuf));
        return;
    }
    n = strlen(s);
    free(c->index->url);
    c->index->url = strcat3(s, s[n - 1] == '/' ? "" : "/", "");
    if (c->index->url == NULL) {
        c->oom = 1;
    }
}

static void
project_elem(ctx *c, const char *path, const cJSON *v, size_t pos, size_t i)
{
    const char *s;
    char vbuf[64];

    if (want_string(c, path, v, pos, PROJECT_MAX_LEN, &s) < 0) {
        return;
    }
    c->index->projects[i] = project_normalize(s, &c->oom);
    if (c->index->projects[i] == NULL && !c->oom) {
        fail(c, pos, "%s: \"%s\" is not a valid project name", path,
             shown(s, vbuf, sizeof vbuf));
    }
}

static void
index_projects(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    size_t n;

    if (want_array(c, path, v, pos, &n) < 0) {
        return;
    }
    if (n == 0) {
        fail(c, pos,
             "%s: empty; leave the key out for an index that serves every "
             "project",
             path);
        return;
    }
    c->index->projects = calloc(n, sizeof *c->index->projects);
    if (c->index->projects == NULL) {
        c->oom = 1;
        return;
    }
    c->index->nprojects = n;
    walk_array(c, path, v, pos, project_elem);
}

static const field index_fields[] = {
    {"url", index_url},
    {"projects", index_projects},
};

static void
index_elem(ctx *c, const char *path, const cJSON *v, size_t pos, size_t i)
{
    if (want_object(c, path, v, pos) < 0) {
        return;
    }
    c->index = &c->cfg->indexes[i];
    c->index_url = 0;
    walk_object(c, path, v, pos, index_fields,
                sizeof index_fields / sizeof index_fields[0]);
    if (!c->index_url) {
        fail(c, pos, "%s.url: missing; every index needs one", path);
    }
    c->index = NULL;
}

static void
upstream_indexes(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    wm_config *cfg = c->cfg;
    size_t n;

    if (want_array(c, path, v, pos, &n) < 0) {
        return;
    }
    for (size_t i = 0; i < cfg->nindexes; i++) {
        free(cfg->indexes[i].url);
        for (size_t j = 0; j < cfg->indexes[i].nprojects; j++) {
            free(cfg->indexes[i].projects[j]);
        }
        free(cfg->indexes[i].projects);
    }
    free(cfg->indexes);
    cfg->indexes = NULL;
    cfg->nindexes = 0;
    if (n == 0) {
        return; /* offline */
    }
    cfg->indexes = calloc(n, sizeof *cfg->indexes);
    if (cfg->indexes == NULL) {
        c->oom = 1;
        return;
    }
    cfg->nindexes = n;
    walk_array(c, path, v, pos, index_elem);
}

static void
upstream_page_ttl_s(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    want_uint(c, path, v, pos, 0, TTL_MAX_S, &c->cfg->page_ttl_s);
}

static void
upstream_timeout_s(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    want_uint(c, path, v, pos, 1, 3600, &c->cfg->timeout_s);
}

static void
cache_max_size(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    c->max_size_pos = pos;
    want_size(c, path, v, pos, &c->cfg->max_size);
}

static void
cache_expire_after_days(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    want_uint(c, path, v, pos, 0, EXPIRE_MAX_DAYS, &c->cfg->expire_after_days);
}

static void
cache_map_size(ctx *c, const char *path, const cJSON *v, size_t pos)
{
    c->map_size_pos = pos;
    want_size(c, path, v, pos, &c->cfg->map_size);
}

static const field node_fields[] = {
    {"name", node_name},
    {"data_dir", node_data_dir},
    {"identity", node_identity},
};
static const field http_fields[] = {
    {"listen", http_listen},
    {"allow_put_from", http_allow_put_from},
};
static const field cluster_fields[] = {
    {"listen", cluster_listen},
    {"advertise", cluster_advertise},
    {"seeds", cluster_seeds},
    {"trusted_keys", cluster_trusted_keys},
    {"publishers", cluster_publishers},
    {"projects", cluster_projects},
    {"max_upload_rate", cluster_max_upload_rate},
};
static const field upstream_fields[] = {
    {"indexes", upstream_indexes},
    {"page_ttl_s", upstream_page_ttl_s},
    {"timeout_s", upstream_timeout_s},
};
static const field cache_fields[] = {
    {"max_size", cache_max_size},
    {"expire_after_days", cache_expire_after_days},
    {"map_size", cache_map_size},
};

#define SECTION(fn, tbl)                                                       \
    static void fn(ctx *c, const char *path, const cJSON *v, size_t pos)       \
    {                                                                          \
        if (want_object(c, path, v, pos) == 0) {                               \
            walk_object(c, path, v, pos, tbl, sizeof tbl / sizeof tbl[0]);     \
        }                                                                      \
    }

SECTION(section_node, node_fields)
SECTION(section_http, http_fields)
SECTION(section_cluster, cluster_fields)
SECTION(section_upstream, upstream_fields)
SECTION(section_cache, cache_fields)

static const field top_fields[] = {
    {"node", section_node},       {"http", section_http},
    {"cluster", section_cluster}, {"upstream", section_upstream},
    {"cache", section_cache},
};

/* ---- loading ------------------------------------------------------------
 */

/* Reads all of PATH into B (NUL-terminated, at most CONFIG_MAX_BYTES).
 * Returns 0, -errno, or -EFBIG. */
static int
read_file(const char *path, wm_buf *b)
{
    char chunk[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0) {
            break;
        }
        if (b->len + (size_t)n > CONFIG_MAX_BYTES) {
            rc = -EFBIG;
            break;
        }
        if (wm_buf_add(b, chunk, (size_t)n) < 0) {
            rc = -ENOMEM;
            break;
        }
    }
    close(fd);
    /* An empty file leaves the buffer without data; make it "". */
    if (rc == 0 && wm_buf_add(b, "", 0) < 0) {
        rc = -ENOMEM;
    }
    return rc;
}

/* Reports where cJSON gave up, with the line, the column and a few bytes
 * from there. cJSON often points just past the offending byte; when that
 * lands on white space, step back to the last byte before it. */
static void
syntax_error(ctx *c, const char *end)
{
    size_t pos = 0, n = 0;
    int at_end;
    char near[48];

    if (end != NULL && end >= c->text && end <= c->text + c->len) {
        pos = (size_t)(end - c->text);
    }
    at_end = skip_ws(c, pos) >= c->len;
    while (pos > 0 && (pos >= c->len || (unsigned char)c->text[pos] <= 32)) {
        pos--;
    }
    while (pos + n < c->len && n < 20 && c->text[pos + n] != '\n' &&
           c->text[pos + n] != '\0') {
        n++;
    }
    shown_n(c->text + pos, n, near, sizeof near);
    if (at_end) {
        fail_col(c, pos, "invalid JSON near '%s' (unexpected end of file)",
                 near);
    } else {
        fail_col(c, pos, "invalid JSON near '%s'", near);
    }
}

/* Checks what only the whole file can tell, and derives the identity. */
static void
finish(ctx *c)
{
    wm_config *cfg = c->cfg;

    if (cfg->map_size < cfg->max_size) {
        char a[32], b[32];
        if (c->map_size_pos != NO_POS) {
            fail(c, c->map_size_pos,
                 "cache.map_size: %s is smaller than cache.max_size (%s); "
                 "the map must hold the whole cache",
                 fmt_size(cfg->map_size, a, sizeof a),
                 fmt_size(cfg->max_size, b, sizeof b));
        } else {
            fail(c, c->max_size_pos,
                 "cache.map_size: the default %s is smaller than "
                 "cache.max_size (%s); set cache.map_size too",
                 fmt_size(cfg->map_size, a, sizeof a),
                 fmt_size(cfg->max_size, b, sizeof b));
        }
    }
    if (!c->identity_set) {
        char *id = join_path(cfg->data_dir, "node.key");
        if (id == NULL) {
            c->oom = 1;
            return;
        }
        free(cfg->identity);
        cfg->identity = id;
    }
}

int
wm_config_load(wm_config *cfg, const char *path, wm_buf *errors)
{
    ctx c = {.path = path,
             .errors = errors,
             .cfg = cfg,
             .max_size_pos = NO_POS,
             .map_size_pos = NO_POS};
    wm_buf file;
    cJSON *root = NULL;
    const char *end = NULL;
    size_t start, after;
    int rc;

    memset(cfg, 0, sizeof *cfg);
    wm_buf_init(&file, CONFIG_MAX_BYTES + 1);
    rc = read_file(path, &file);
    if (rc == -EFBIG) {
        fail(&c, NO_POS, "larger than %d bytes; not a config file",
             CONFIG_MAX_BYTES);
        rc = -EINVAL;
        goto out;
    }
    if (rc < 0) {
        fail(&c, NO_POS, "cannot read: %s", strerror(-rc));
        goto out;
    }
    c.text = file.data;
    c.len = file.len;
    rc = wm_config_defaults(cfg);
    if (rc < 0) {
        fail(&c, NO_POS, "out of memory");
        goto out;
    }

    start = 0;
    if (c.len >= 3 && memcmp(c.text, "\xEF\xBB\xBF", 3) == 0) {
        start = 3; /* cJSON skips a UTF-8 byte order mark too */
    }
    start = skip_ws(&c, start);
    if (start >= c.len) {
        fail(&c, NO_POS, "the file is empty (write {} to take every default)");
        goto check;
    }
    root = cJSON_ParseWithLengthOpts(c.text, c.len, &end, 0);
    if (root == NULL) {
        syntax_error(&c, end);
        goto check;
    }
    after = end != NULL ? skip_ws(&c, (size_t)(end - c.text)) : c.len;
    if (after < c.len) {
        char near[48];
        fail_col(&c, after, "invalid JSON: unexpected '%s' after the end",
                 shown_n(c.text + after, 20, near, sizeof near));
    }
    if (!cJSON_IsObject(root)) {
        fail(&c, start,
             "expected a JSON object at the top level, such as "
             "{\"cache\": {\"max_size\": \"20GiB\"}}");
        goto check;
    }
    walk_object(&c, "", root, start, top_fields,
                sizeof top_fields / sizeof top_fields[0]);
    finish(&c);

check:
    if (c.oom) {
        fail(&c, NO_POS, "out of memory");
        rc = -ENOMEM;
    } else if (c.nerrors > 0) {
        rc = -EINVAL;
    } else {
        rc = 0;
    }
out:
    cJSON_Delete(root);
    wm_buf_free(&file);
    if (rc < 0) {
        wm_config_free(cfg);
    }
    return rc;
}

/* ---- defaults -----------------------------------------------------------
 */

/* $XDG_CACHE_HOME/wheelmesh when that is set to an absolute path (the XDG
 * spec says to ignore a relative one), else ~/.cache/wheelmesh with ~ from
 * $HOME or the password database. */
static char *
default_data_dir(void)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char *dir = NULL;

    if (xdg != NULL && xdg[0] == '/') {
        dir = join_path(xdg, "wheelmesh");
    } else if (home != NULL && home[0] != '\0') {
        dir = join_path(home, ".cache/wheelmesh");
    } else {
        struct passwd pw, *found = NULL;
        char *pwbuf = malloc(16384);
        if (pwbuf == NULL) {
            return NULL;
        }
        if (getpwuid_r(getuid(), &pw, pwbuf, 16384, &found) == 0 &&
            found != NULL && pw.pw_dir != NULL && pw.pw_dir[0] != '\0') {
            dir = join_path(pw.pw_dir, ".cache/wheelmesh");
        } else {
            dir = strdup(".cache/wheelmesh");
        }
        free(pwbuf);
    }
    return dir;
}

int
wm_config_defaults(wm_config *cfg)
{
    char host[256];

    memset(cfg, 0, sizeof *cfg);
    if (gethostname(host, sizeof host) != 0 || host[0] == '\0') {
        memcpy(host, "localhost", sizeof "localhost");
    }
    host[sizeof host - 1] = '\0';
    cfg->name = strdup(host);
    cfg->data_dir = default_data_dir();
    cfg->identity =
        cfg->data_dir != NULL ? join_path(cfg->data_dir, "node.key") : NULL;
    cfg->http_listen = strdup("127.0.0.1:7390");
    cfg->allow_put_from = calloc(2, sizeof *cfg->allow_put_from);
    if (cfg->allow_put_from != NULL) {
        cfg->nallow_put_from = 2;
        wm_cidr_parse("127.0.0.1/32", &cfg->allow_put_from[0]);
        wm_cidr_parse("::1/128", &cfg->allow_put_from[1]);
    }
    cfg->cluster_listen = strdup("tcp://0.0.0.0:7391");
    cfg->indexes = calloc(1, sizeof *cfg->indexes);
    if (cfg->indexes != NULL) {
        cfg->nindexes = 1;
        cfg->indexes[0].url = strdup("https://pypi.org/simple/");
    }
    cfg->page_ttl_s = 600;
    cfg->timeout_s = 30;
    cfg->max_size = 20 * GIB;
    cfg->expire_after_days = 7;
    cfg->map_size = 256 * GIB;

    if (cfg->name == NULL || cfg->data_dir == NULL || cfg->identity == NULL ||
        cfg->http_listen == NULL || cfg->allow_put_from == NULL ||
        cfg->cluster_listen == NULL || cfg->indexes == NULL ||
        cfg->indexes[0].url == NULL) {
        wm_config_free(cfg);
        return -ENOMEM;
    }
    return 0;
}

void
wm_config_free(wm_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    free(cfg->name);
    free(cfg->data_dir);
    free(cfg->identity);
    free(cfg->http_listen);
    free(cfg->allow_put_from);
    free(cfg->cluster_listen);
    free(cfg->cluster_advertise);
    for (size_t i = 0; i < cfg->nseeds; i++) {
        free(cfg->seeds[i].addr);
    }
    free(cfg->seeds);
    free(cfg->trusted_keys);
    free(cfg->publishers);
    for (size_t i = 0; i < cfg->ncluster_projects; i++) {
        free(cfg->cluster_projects[i]);
    }
    free(cfg->cluster_projects);
    for (size_t i = 0; i < cfg->nindexes; i++) {
        free(cfg->indexes[i].url);
        for (size_t j = 0; j < cfg->indexes[i].nprojects; j++) {
            free(cfg->indexes[i].projects[j]);
        }
        free(cfg->indexes[i].projects);
    }
    free(cfg->indexes);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- sizes and address blocks -------------------------------------------
 */

int
wm_config_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0},     {"B", 0},    {"KiB", 10},
                 {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    uint64_t n = 0;
    const char *p = s;

    if (s == NULL || out == NULL || !(*p >= '0' && *p <= '9')) {
        return -EINVAL;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10) {
            return -EINVAL;
        }
        n = n * 10 + d;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].suffix) == 0) {
            if (n > (UINT64_MAX >> units[i].shift)) {
                return -EINVAL;
            }
            *out = n << units[i].shift;
            return 0;
        }
    }
    return -EINVAL;
}

int
wm_cidr_parse(const char *s, wm_cidr *out)
{
    char a[INET6_ADDRSTRLEN];
    wm_cidr c;
    const char *slash;
    size_t alen;
    int max;

    if (s == NULL || out == NULL) {
        return -EINVAL;
    }
    memset(&c, 0, sizeof c);
    slash = strchr(s, '/');
    alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof a) {
        return -EINVAL;
    }
    memcpy(a, s, alen);
    a[alen] = '\0';
    if (inet_pton(AF_INET, a, c.addr) == 1) {
        c.family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, a, c.addr) == 1) {
        c.family = AF_INET6;
        max = 128;
    } else {
        return -EINVAL;
    }
    c.prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        int n = 0, digits = 0;
        for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++) {
            n = n * 10 + (*p - '0');
        }
        if (digits == 0 || *p != '\0' || n > max) {
            return -EINVAL;
        }
        c.prefix = n;
    }
    /* Keep only the network part: "10.1.2.3/8" is the block 10.0.0.0/8. */
    for (int bit = c.prefix; bit < max; bit++) {
        c.addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    }
    *out = c;
    return 0;
}

int
wm_cidr_match(const wm_cidr *c, int family, const uint8_t *addr)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                         0, 0, 0, 0, 0xff, 0xff};
    uint8_t mapped[16];
    int full, rest;

    if (c == NULL || addr == NULL) {
        return 0;
    }
    if (c->family == AF_INET && family == AF_INET6) {
        if (memcmp(addr, v4mapped, sizeof v4mapped) != 0) {
            return 0;
        }
        addr += 12;
        family = AF_INET;
    } else if (c->family == AF_INET6 && family == AF_INET) {
        memcpy(mapped, v4mapped, sizeof v4mapped);
        memcpy(mapped + 12, addr, 4);
        addr = mapped;
        family = AF_INET6;
    }
    if (family != c->family || c->prefix < 0 ||
        c->prefix > (family == AF_INET ? 32 : 128)) {
        return 0;
    }
    full = c->prefix / 8;
    rest = c->prefix % 8;
    if (memcmp(c->addr, addr, (size_t)full) != 0) {
        return 0;
    }
    if (rest != 0) {
        uint8_t mask = (uint8_t)(0xffu << (8 - rest));
        return (c->addr[full] & mask) == (addr[full] & mask);
    }
    return 1;
}

int
wm_cidr_list_match(const wm_cidr *list, size_t n, const struct sockaddr *sa)
{
    const uint8_t *addr;
    int family;

    if (sa->sa_family == AF_INET) {
        family = AF_INET;
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6) {
        family = AF_INET6;
        addr = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    } else {
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (wm_cidr_match(&list[i], family, addr))
            return 1;
    return 0;
}

int
wm_config_resolve(const char *hostport, struct sockaddr_storage *ss,
                  unsigned *sslen)
{
    char host[256];
    const char *port;
    struct addrinfo hints, *res = NULL;
    size_t hlen;

    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        hlen = (size_t)(close - hostport - 1);
        port = close + 2;
        hostport++;
    } else {
        port = strrchr(hostport, ':');
        if (port == NULL)
            return -EINVAL;
        hlen = (size_t)(port - hostport);
        port++;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, hostport, hlen);
    host[hlen] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return -EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
