/*
 * The chunk table of a ranged blob download: which byte ranges exist,
 * which are done, in flight or still to fetch, and how far the file is
 * complete from offset 0.
 *
 * Bytes of one chunk arrive in order from its start ("got" counts them),
 * but chunks finish in any order.  The contiguous prefix, what workers may
 * stream and what can be hashed, ends inside the lowest chunk not done:
 * at its start plus what it got.  That chunk is the frontier, and
 * chunks_next() always offers the lowest chunk waiting to run, so the
 * frontier never waits behind chunks further out.
 *
 * A failed chunk keeps what it got: its retry asks for the rest only, so
 * bytes already written (and maybe hashed) are never written again.
 *
 * Pure bookkeeping: no I/O, no transfers; blob.c drives it.
 */

#ifndef FETCHER_CHUNKS_H
#define FETCHER_CHUNKS_H

#include "xfer.h"

typedef enum {
    CHUNK_WAITING = 0,
    CHUNK_RUNNING,
    CHUNK_DONE
} chunk_state_t;

typedef struct {
    long long       start;
    long long       end;            /* exclusive */
    long long       got;            /* bytes in place from start */
    chunk_state_t   state;
    int             failures;
    xfer_t         *xfer;           /* the caller's, while it runs */
    void           *owner;          /* the caller's */
    unsigned long   token;          /* the caller's: the token it carried */
} chunk_t;

typedef struct {
    chunk_t        *chunk;
    size_t          n;
    size_t          first;          /* lowest chunk not done */
    int             running;
} chunks_t;

/*
 * Split [0, total) into chunks of size bytes, the last one shorter; with
 * rest_whole, into at most two: [0, size) and [size, total).  total > 0,
 * size > 0.  Every chunk starts as CHUNK_WAITING with owner set.  Returns
 * OCI_OK or OCI_ENOMEM; the table must be empty (zeroed or freed).
 */
int chunks_plan(chunks_t *t, long long total, long long size,
    int rest_whole, void *owner);

/* Free the table (transfers are the caller's business) and zero it. */
void chunks_free(chunks_t *t);

/* The lowest chunk waiting to run, or NULL. */
chunk_t *chunks_next(chunks_t *t);

/* 1 if c is the frontier: the lowest chunk not done. */
int chunks_is_frontier(chunks_t *t, const chunk_t *c);

void chunks_start(chunks_t *t, chunk_t *c);
void chunks_done(chunks_t *t, chunk_t *c);

/* A running chunk failed: it waits to run again.  1 if it may, 0 if it
 * has now failed max_failures times. */
int chunks_failed(chunks_t *t, chunk_t *c, int max_failures);

/* A running chunk stopped through no fault of its own (its token ran
 * out): it waits to run again, not counted as a failure. */
void chunks_again(chunks_t *t, chunk_t *c);

/* Bytes complete from offset 0. */
long long chunks_contiguous(chunks_t *t);

/* 1 if every chunk is done. */
int chunks_complete(const chunks_t *t);

#endif /* FETCHER_CHUNKS_H */
