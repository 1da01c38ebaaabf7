/*
 * The fetcher's log (see log.h).
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX  2048

static int  log_verbose_flag;

static void log_vwrite(const char *level, const char *fmt, va_list ap)
    LOG_FORMAT(2, 0);


void
log_set_verbose(int verbose)
{
    log_verbose_flag = verbose;
}


static void
log_vwrite(const char *level, const char *fmt, va_list ap)
{
    char       line[LOG_LINE_MAX];
    size_t     len, start, i;
    time_t     now;
    struct tm  tm;
    int        n;

    now = time(NULL);
    localtime_r(&now, &tm);

    len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S ", &tm);
    n = snprintf(line + len, sizeof(line) - len, "%s ", level);
    len += (size_t) n;
    start = len;

    n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
    if (n < 0) {
        n = 0;
    }

    len += (size_t) n;
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }

    for (i = start; i < len; i++) {
        if ((unsigned char) line[i] < 0x20 || line[i] == 0x7f) {
            line[i] = ' ';
        }
    }

    line[len++] = '\n';

    /* stderr may be a pipe that is gone: nothing sensible is left to do
     * with a failed log write */
    if (write(STDERR_FILENO, line, len) < 0) {
        return;
    }
}


void
log_error(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    log_vwrite("error", fmt, ap);
    va_end(ap);
}


void
log_warn(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    log_vwrite("warn", fmt, ap);
    va_end(ap);
}


void
log_info(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    log_vwrite("info", fmt, ap);
    va_end(ap);
}


void
log_debug(const char *fmt, ...)
{
    va_list  ap;

    if (!log_verbose_flag) {
        return;
    }

    va_start(ap, fmt);
    log_vwrite("debug", fmt, ap);
    va_end(ap);
}
