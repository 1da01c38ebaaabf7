/*
 * The last errors of the fetcher's upstream work, for the status page: a
 * ring of ERRORS_MAX entries, the oldest overwritten.  job.c adds a job's
 * failure (every FAIL but a 404: a digest mismatch, an upstream that is
 * unavailable, refused credentials, a 429) and a failover to another
 * endpoint; the log has each of them too.  One ring for the process, like
 * the counters of stats.h: nothing to create or destroy.
 */

#ifndef FETCHER_ERRORS_H
#define FETCHER_ERRORS_H

#include <stddef.h>

#define ERRORS_MAX       20
#define ERRORS_WHAT_MAX  320          /* a job's label */
#define ERRORS_TEXT_MAX  256

typedef struct {
    long long  time;                  /* unix seconds */
    int        status;                /* the FAIL's; 0: a failover */
    char       what[ERRORS_WHAT_MAX];     /* "blob reg/name@digest" */
    char       message[ERRORS_TEXT_MAX];
} errors_entry_t;

/* Remember an error (both strings cut to fit). */
void errors_add(const char *what, int status, const char *message);

/* Copy the entries, newest first, into out[0..max): their number. */
size_t errors_get(errors_entry_t *out, size_t max);

/* Every error remembered since the start (the ring keeps the last
 * ERRORS_MAX). */
unsigned long long errors_total(void);

/* Forget them (the unit tests). */
void errors_clear(void);

#endif /* FETCHER_ERRORS_H */
