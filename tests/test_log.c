/*
 * Unit tests for common/log: the line format, level filtering, a failed
 * open that leaves logging where it was, reopening after logrotate moved
 * the file, whole lines from several threads, and level names.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "testutil.h"

static size_t
count_lines(const char *text)
{
    size_t n = 0;

    for (; *text != '\0'; text++)
        n += *text == '\n';
    return n;
}

static int
setup(void **state)
{
    (void)state;
    return tu_tmpdir_create("test_log");
}

static int
teardown(void **state)
{
    (void)state;
    wm_log_open(NULL);
    return tu_tmpdir_remove();
}

/* Each test starts at the default level with a fresh file. */
static int
each_setup(void **state)
{
    (void)state;
    wm_log_set_level(WM_LOG_INFO);
    return wm_log_open(NULL);
}

static void
test_line_format(void **state)
{
    const char *path = tu_tmp_path("format.log");
    regex_t re;
    char *text, *line, *save = NULL;
    static const char *const want[] = {
        "info  hello 42 world",
        "warn  http: reason",
        "error boom",
    };
    size_t i = 0;

    (void)state;
    assert_int_equal(wm_log_open(path), 0);
    wm_info("hello %d %s", 42, "world");
    wm_warn("http: %s", "reason");
    wm_error("boom");

    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                             "[0-9]{2}Z (.*)$",
                             REG_EXTENDED),
                     0);
    text = tu_read_file(path, NULL);
    assert_int_equal(count_lines(text), 3);
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), i++) {
        regmatch_t m[2];

        assert_true(i < 3);
        if (regexec(&re, line, 2, m, 0) != 0)
            fail_msg("bad line \"%s\"", line);
        assert_string_equal(line + m[1].rm_so, want[i]);
    }
    assert_int_equal(i, 3);
    regfree(&re);
    free(text);
}

/* Opening appends to what is already there. */
static void
test_open_appends(void **state)
{
    const char *path = tu_tmp_path("append.log");
    FILE *f = fopen(path, "w");
    char *text;

    (void)state;
    assert_non_null(f);
    fputs("earlier line\n", f);
    fclose(f);
    assert_int_equal(wm_log_open(path), 0);
    wm_info("later line");
    text = tu_read_file(path, NULL);
    assert_int_equal(strncmp(text, "earlier line\n", 13), 0);
    assert_non_null(strstr(text + 13, " info  later line\n"));
    assert_int_equal(count_lines(text), 2);
    free(text);
}

typedef struct level_case {
    enum wm_log_level min;
    int want[4]; /* lines expected for debug, info, warn, error */
} level_case;

static void
test_level_filter(void **state)
{
    static const level_case cases[] = {
        {WM_LOG_DEBUG, {1, 1, 1, 1}},
        {WM_LOG_INFO, {0, 1, 1, 1}},
        {WM_LOG_WARN, {0, 0, 1, 1}},
        {WM_LOG_ERROR, {0, 0, 0, 1}},
    };
    static const char *const tags[] = {" debug msg-", " info  msg-",
                                       " warn  msg-", " error msg-"};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[32];
        const char *path;
        char *text;
        size_t total = 0;

        snprintf(name, sizeof(name), "level%zu.log", i);
        path = tu_tmp_path(name);
        assert_int_equal(wm_log_open(path), 0);
        wm_log_set_level(cases[i].min);
        wm_debug("msg-%zu", i);
        wm_info("msg-%zu", i);
        wm_warn("msg-%zu", i);
        wm_error("msg-%zu", i);
        text = tu_read_file(path, NULL);
        for (int l = 0; l < 4; l++) {
            char needle[48];
            snprintf(needle, sizeof(needle), "%s%zu\n", tags[l], i);
            if ((strstr(text, needle) != NULL) != cases[i].want[l])
                fail_msg("min %d, level %d: line %s", (int)cases[i].min, l,
                         cases[i].want[l] ? "missing" : "present");
            total += (size_t)cases[i].want[l];
        }
        assert_int_equal(count_lines(text), total);
        free(text);
    }
}

/* A failed open returns -errno and logging stays on the old file. */
static void
test_open_failure_keeps_file(void **state)
{
    const char *path = tu_tmp_path("keep.log");
    char *text;

    (void)state;
    assert_int_equal(wm_log_open(path), 0);
    assert_int_equal(wm_log_open(tu_tmp_path("no/such/dir.log")), -ENOENT);
    wm_info("still here");
    text = tu_read_file(path, NULL);
    assert_non_null(strstr(text, " info  still here\n"));
    free(text);
}

static void
test_reopen_after_rotate(void **state)
{
    const char *path = tu_tmp_path("rotate.log");
    const char *moved = tu_tmp_path("rotate.log.1");
    char *old, *cur;

    (void)state;
    assert_int_equal(wm_log_open(path), 0);
    wm_info("before rotation");
    assert_int_equal(rename(path, moved), 0);
    /* Until reopened, lines still go to the moved file. */
    wm_info("after move");
    assert_int_equal(access(path, F_OK), -1);

    assert_int_equal(wm_log_reopen(), 0);
    assert_int_equal(access(path, F_OK), 0);
    wm_info("after reopen");

    old = tu_read_file(moved, NULL);
    cur = tu_read_file(path, NULL);
    assert_non_null(strstr(old, " info  before rotation\n"));
    assert_non_null(strstr(old, " info  after move\n"));
    assert_null(strstr(old, "after reopen"));
    assert_int_equal(count_lines(old), 2);
    assert_non_null(strstr(cur, " info  after reopen\n"));
    assert_int_equal(count_lines(cur), 1);
    free(old);
    free(cur);

    /* A failed reopen (the directory is gone) keeps the current file. */
    {
        char sub[256];
        char logp[300];
        char *text;

        snprintf(sub, sizeof(sub), "%s/sub", tu_tmpdir());
        snprintf(logp, sizeof(logp), "%s/x.log", sub);
        assert_int_equal(mkdir(sub, 0700), 0);
        assert_int_equal(wm_log_open(logp), 0);
        assert_int_equal(rename(logp, moved), 0);
        assert_int_equal(rmdir(sub), 0);
        assert_int_equal(wm_log_reopen(), -ENOENT);
        wm_info("into the moved file");
        text = tu_read_file(moved, NULL);
        assert_non_null(strstr(text, " info  into the moved file\n"));
        free(text);
    }
}

/* With stderr, reopen does nothing and succeeds; lines go to fd 2. */
static void
test_stderr(void **state)
{
    const char *path = tu_tmp_path("stderr.log");
    int saved = dup(2), fd;
    char *text;

    (void)state;
    assert_true(saved >= 0);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);

    assert_int_equal(wm_log_open(NULL), 0);
    assert_int_equal(wm_log_reopen(), 0);
    wm_warn("to stderr %d", 7);

    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    text = tu_read_file(path, NULL);
    assert_non_null(strstr(text, " warn  to stderr 7\n"));
    assert_int_equal(count_lines(text), 1);
    free(text);
}

#define THREADS 4
#define LINES   300

static void *
log_thread(void *arg)
{
    int t = (int)(intptr_t)arg;

    for (int i = 0; i < LINES; i++)
        wm_info("thread %d line %d %s", t, i,
                "padding-padding-padding-padding-padding-padding");
    return NULL;
}

/* Lines from several threads are whole: none is cut or interleaved. */
static void
test_threads_whole_lines(void **state)
{
    const char *path = tu_tmp_path("threads.log");
    pthread_t th[THREADS];
    int seen[THREADS][LINES];
    char *text, *line, *save = NULL;
    size_t n = 0;

    (void)state;
    memset(seen, 0, sizeof(seen));
    assert_int_equal(wm_log_open(path), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(
            pthread_create(&th[t], NULL, log_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);

    text = tu_read_file(path, NULL);
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), n++) {
        int t, i, end = 0;
        const char *body = strstr(line, " info  thread ");

        assert_non_null(body);
        if (sscanf(body,
                   " info  thread %d line %d "
                   "padding-padding-padding-padding-padding-padding%n",
                   &t, &i, &end) != 2 ||
            end == 0 || body[end] != '\0')
            fail_msg("mangled line \"%s\"", line);
        assert_true(t >= 0 && t < THREADS && i >= 0 && i < LINES);
        seen[t][i]++;
    }
    assert_int_equal(n, THREADS * LINES);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < LINES; i++)
            assert_int_equal(seen[t][i], 1);
    free(text);
}

typedef struct parse_case {
    const char *name;
    int want;
} parse_case;

static void
test_level_parse(void **state)
{
    static const parse_case cases[] = {
        {"debug", WM_LOG_DEBUG},
        {"info", WM_LOG_INFO},
        {"warn", WM_LOG_WARN},
        {"error", WM_LOG_ERROR},
        {"", -1},
        {"DEBUG", -1},
        {"Info", -1},
        {"warning", -1},
        {"err", -1},
        {"info ", -1},
        {" info", -1},
        {"fatal", -1},
        {"errors", -1},
        {"deb", -1},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = wm_log_level_parse(cases[i].name);
        if (got != cases[i].want)
            fail_msg("\"%s\": %d, want %d", cases[i].name, got, cases[i].want);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_line_format, each_setup),
        cmocka_unit_test_setup(test_open_appends, each_setup),
        cmocka_unit_test_setup(test_level_filter, each_setup),
        cmocka_unit_test_setup(test_open_failure_keeps_file, each_setup),
        cmocka_unit_test_setup(test_reopen_after_rotate, each_setup),
        cmocka_unit_test_setup(test_stderr, each_setup),
        cmocka_unit_test_setup(test_threads_whole_lines, each_setup),
        cmocka_unit_test(test_level_parse),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
