/*
 * ocimirrorctl's commands: a CTL line on the fetcher's socket holds a
 * command line, answered by OUT lines (text for the operator) and one
 * END with the exit status (oci_ipc.h).  Every command answers at once;
 * one that starts work (warm, scrub) returns and is followed by polling
 * its status.
 *
 *   status                    the store, the index, jobs, pins, warm,
 *                             scrub (ctl.c)
 *   evict --dry-run [N]       the next N files eviction would take, with
 *                             why (ctl.c)
 *   pins                      the pins and what they hold (ctl.c)
 *   pin REF [PLATFORM...]     pin for the running process (ctl.c)
 *   unpin REF                 (ctl.c)
 *   purge REF|DIGEST          remove an image or a file now (ctl.c)
 *   warm REF [PLATFORM...]    add an image to the warm lists (warm.h)
 *   warm-status [ID]          their progress, an image's blobs
 *                             (ctl_warm.c, whose header fixes the format
 *                             of these lines)
 *   scrub [--deep] [REF]      start a scrub of the store, or of REF's
 *                             image; --deep: layers against their
 *                             diff_ids (ctl_scrub.c)
 *   scrub-status              the pass running or the last, the
 *                             schedule, quarantine/, the findings
 *                             (ctl_scrub.c, whose header fixes the first
 *                             word of these lines)
 *
 * Commands that change the store or the process (pin, unpin, purge, warm,
 * scrub, evict without --dry-run) are the operator's: only a peer running
 * as root or as the fetcher's own user may send them; anyone who can
 * reach the socket (the nginx workers) may read.
 */

#ifndef FETCHER_CTL_H
#define FETCHER_CTL_H

#include "cache.h"
#include "job.h"
#include "scrub.h"
#include "server.h"
#include "warm.h"

#define CTL_ARGS_MAX  32

/* What the commands act on; set up once by fetcher.c. */
typedef struct {
    jobs_t   *jobs;
    cache_t  *cache;
    scrub_t  *scrub;
    warm_t   *warm;
} ctl_env_t;

/* One command being answered. */
typedef struct {
    const ctl_env_t  *env;
    conn_t           *conn;
    uint32_t          id;
    int               admin;        /* the peer may change things */
} ctl_call_t;

#define CTL_OK     0
#define CTL_FAIL   1
#define CTL_USAGE  2

void ctl_setup(const ctl_env_t *env);

/* A CTL line (dispatch.c's handler). */
void ctl_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m);

/* An OUT line of the answer (cut at OCI_IPC_TEXT_MAX). */
void ctl_out(ctl_call_t *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* bytes as "12.3 MiB", seconds as "3d 4h", "12m", "40s": into buf,
 * which is returned. */
const char *ctl_bytes(long long n, char *buf, size_t cap);
const char *ctl_age(long long s, char *buf, size_t cap);

/* Resolve REF ("registry/name:tag" or "...@digest", no globs) to the
 * digest of its manifest in the store: OCI_OK with hex filled, or
 * CTL_FAIL after an OUT saying why. */
int ctl_resolve(ctl_call_t *call, const char *text, oci_imageref_t *ref,
    char hex[OCI_SHA256_HEX_LEN + 1]);

/* The commands of ctl_warm.c and ctl_scrub.c: a CTL_* status. */
int ctl_warm(ctl_call_t *call, int argc, char **argv);
int ctl_warm_status(ctl_call_t *call, int argc, char **argv);
int ctl_scrub(ctl_call_t *call, int argc, char **argv);
int ctl_scrub_status(ctl_call_t *call, int argc, char **argv);

/* Their lines of "status". */
void ctl_warm_summary(ctl_call_t *call);
void ctl_scrub_summary(ctl_call_t *call);

#endif /* FETCHER_CTL_H */
