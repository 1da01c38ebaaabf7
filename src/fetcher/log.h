/*
 * The fetcher's log: one line per event on stderr,
 *   "YYYY-mm-ddTHH:MM:SS level message"
 * written with a single write(2) so lines never interleave.  Control bytes
 * in a message become spaces: a line is always one line.  Callers never
 * pass a credential (tokens, Authorization values) to these functions.
 */

#ifndef FETCHER_LOG_H
#define FETCHER_LOG_H

#define LOG_FORMAT(a, b)  __attribute__((format(printf, a, b)))

/* 1: also print debug lines (-v). */
void log_set_verbose(int verbose);

void log_error(const char *fmt, ...) LOG_FORMAT(1, 2);
void log_warn(const char *fmt, ...) LOG_FORMAT(1, 2);
void log_info(const char *fmt, ...) LOG_FORMAT(1, 2);
void log_debug(const char *fmt, ...) LOG_FORMAT(1, 2);

#endif /* FETCHER_LOG_H */
