/*
 * Leveled logging to stderr or to a file, safe from any thread.
 * Lines look like "2026-11-25T21:07:47Z warn  http: reason".
 */
#ifndef WM_LOG_H
#define WM_LOG_H

enum wm_log_level { WM_LOG_DEBUG, WM_LOG_INFO, WM_LOG_WARN, WM_LOG_ERROR };

/* Sends log lines to PATH (appended), or to stderr when PATH is NULL.
 * Returns 0, or -errno when the file cannot be opened (logging then stays
 * where it was). The path is copied. */
int wm_log_open(const char *path);

/* Reopens the current log file (after logrotate moved it); SIGHUP calls
 * this from the node loop, never from the signal handler. */
int wm_log_reopen(void);

/* Lines below LEVEL are dropped. Default: WM_LOG_INFO. */
void wm_log_set_level(enum wm_log_level level);

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int wm_log_level_parse(const char *name);

void wm_log(enum wm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define wm_debug(...) wm_log(WM_LOG_DEBUG, __VA_ARGS__)
#define wm_info(...)  wm_log(WM_LOG_INFO, __VA_ARGS__)
#define wm_warn(...)  wm_log(WM_LOG_WARN, __VA_ARGS__)
#define wm_error(...) wm_log(WM_LOG_ERROR, __VA_ARGS__)

#endif
