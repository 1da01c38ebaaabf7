/*
 * ocimirrorctl watching work the fetcher goes on with after it answered:
 * a warm (and a scrub, with --wait), polled by its status command.
 *
 * warm answers "#<id> queued <ref>"; warm-status <id> answers
 *
 *   #<id> <state> <ref> <blobs_done>/<blobs> <bytes_done>/<bytes>
 *     <digest> <state> <bytes_done>/<size>        one line a blob
 *
 * the image's state resolving, fetching, done or failed; a blob's
 * queued, fetching, stored or failed (an unknown state is shown as it
 * comes, and taken as work still going on).
 *
 * On a terminal the view redraws its lines in place (cursor up, clear
 * line: the ANSI sequences every terminal emulator knows), cut to the
 * terminal's width and height; elsewhere (a log, a pipe) it prints a line
 * only when a state changes, so a CI log holds the story and no noise.
 */

#ifndef OCTL_WATCH_H
#define OCTL_WATCH_H

#include <stdio.h>

#include "oci.h"

#define OCTL_STATE_MAX  24
#define OCTL_REF_MAX    (OCI_HOST_MAX + OCI_NAME_MAX + OCI_DIGEST_MAX + 4)

typedef struct {
    char       digest[OCI_DIGEST_MAX + 1];
    char       state[OCTL_STATE_MAX];
    long long  done;
    long long  size;
} octl_warm_blob_t;

/* One warm-status answer. */
typedef struct {
    unsigned long      id;
    char               state[OCTL_STATE_MAX];
    char               ref[OCTL_REF_MAX];
    long long          blobs_done;
    long long          blobs;
    long long          bytes_done;
    long long          bytes;
    octl_warm_blob_t  *blob;
    size_t             n;
    size_t             cap;
    size_t             lines;       /* parsed so far */
} octl_warm_t;

typedef enum {
    OCTL_WARM_GOING = 0,
    OCTL_WARM_DONE,
    OCTL_WARM_FAILED
} octl_warm_end_t;

/* The id of warm's answer line "#<id> queued <ref>": OCI_OK or
 * OCI_EINVAL. */
int octl_warm_queued(const char *line, unsigned long *id);

/* Forget the last answer (keep the memory) before the next one. */
void octl_warm_reset(octl_warm_t *w);

/* One line of a warm-status answer, in order: OCI_OK, OCI_EINVAL (not
 * the grammar above), OCI_ENOMEM. */
int octl_warm_line(octl_warm_t *w, const char *line);

octl_warm_end_t octl_warm_end(const octl_warm_t *w);

void octl_warm_free(octl_warm_t *w);

/* Lines of text, kept (a scrub-status answer). */
typedef struct {
    char    **v;
    size_t    n;
    size_t    cap;
} octl_lines_t;

int octl_lines_add(octl_lines_t *l, const char *s);

/* 1 if one of the lines is a "state" line that says idle ("state idle",
 * "state: idle ..."): how scrub --wait knows the scrub-status answer
 * tells of no scrub running. */
int octl_lines_idle(const octl_lines_t *l);
void octl_lines_clear(octl_lines_t *l);
void octl_lines_free(octl_lines_t *l);

typedef struct {
    char  digest[OCI_DIGEST_MAX + 1];
    char  state[OCTL_STATE_MAX];
} octl_seen_t;

typedef struct {
    FILE         *out;
    int           tty;
    int           width;            /* columns; lines are cut below it */
    int           rows;             /* a frame fits in rows - 1 lines */
    size_t        drawn;            /* tty: lines of the frame shown */
    /* not a tty: the states printed last */
    char          state[OCTL_STATE_MAX];
    octl_seen_t  *seen;
    size_t        n_seen;
    size_t        cap_seen;
    octl_lines_t  frame;
} octl_view_t;

void octl_view_init(octl_view_t *v, FILE *out, int tty, int width, int rows);

/* Show a warm-status answer: a frame on a terminal, the changes
 * elsewhere.  OCI_OK or OCI_ENOMEM. */
int octl_view_warm(octl_view_t *v, const octl_warm_t *w);

/* Show lines as a frame (a terminal only; elsewhere nothing). */
void octl_view_lines(octl_view_t *v, const octl_lines_t *l);

void octl_view_free(octl_view_t *v);

#endif /* OCTL_WATCH_H */
