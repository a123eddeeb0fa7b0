/*
 * Leveled logging. One mutex keeps lines whole when HTTP threads and the
 * node loop log at once; the file is reopened on request so logrotate can
 * move it away (SIGHUP).
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file; /* NULL: stderr */
static char *log_path; /* owned copy, NULL for stderr */
static enum wm_log_level log_min = WM_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int
wm_log_open(const char *path)
{
    FILE *f = NULL;
    char *copy = NULL;

    if (path != NULL) {
        f = fopen(path, "ae");
        copy = strdup(path);
        if (f == NULL || copy == NULL) {
            int err = f == NULL ? errno : ENOMEM;
            if (f != NULL)
                fclose(f);
            free(copy);
            return -err;
        }
        setvbuf(f, NULL, _IOLBF, 0);
    }
    pthread_mutex_lock(&log_lock);
    if (log_file != NULL)
        fclose(log_file);
    free(log_path);
    log_file = f;
    log_path = copy;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

int
wm_log_reopen(void)
{
    int rc = 0;

    pthread_mutex_lock(&log_lock);
    if (log_path != NULL) {
        FILE *f = fopen(log_path, "ae");
        if (f == NULL) {
            rc = -errno;
        } else {
            setvbuf(f, NULL, _IOLBF, 0);
            fclose(log_file);
            log_file = f;
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void
wm_log_set_level(enum wm_log_level level)
{
    log_min = level;
}

int
wm_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void
wm_log(enum wm_log_level level, const char *fmt, ...)
{
    char stamp[32];
    struct tm tm;
    time_t now;
    va_list ap;

    if (level < log_min)
        return;
    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);

    pthread_mutex_lock(&log_lock);
    FILE *out = log_file != NULL ? log_file : stderr;
    fprintf(out, "%s %-5s ", stamp, level_names[level]);
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
}
