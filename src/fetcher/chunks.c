/*
 * The chunk table of a ranged blob download (see chunks.h).
 */

#include <stdlib.h>
#include <string.h>

#include "oci.h"
#include "chunks.h"


int
chunks_plan(chunks_t *t, long long total, long long size, int rest_whole,
    void *owner)
{
    long long  start;
    size_t     n, i;

    if (rest_whole) {
        n = total > size ? 2 : 1;

    } else {
        n = (size_t) ((total + size - 1) / size);
    }

    t->chunk = calloc(n, sizeof(chunk_t));
    if (t->chunk == NULL) {
        return OCI_ENOMEM;
    }

    t->n = n;
    t->first = 0;
    t->running = 0;

    for (i = 0; i < n; i++) {
        start = (long long) i * size;

        t->chunk[i].start = start;
        t->chunk[i].end = (i + 1 == n || total - start < size) ? total
                                                               : start + size;
        t->chunk[i].owner = owner;
    }

    return OCI_OK;
}


void
chunks_free(chunks_t *t)
{
    free(t->chunk);
    memset(t, 0, sizeof(chunks_t));
}


chunk_t *
chunks_next(chunks_t *t)
{
    size_t  i;

    for (i = t->first; i < t->n; i++) {
        if (t->chunk[i].state == CHUNK_WAITING) {
            return &t->chunk[i];
        }
    }

    return NULL;
}


int
chunks_is_frontier(chunks_t *t, const chunk_t *c)
{
    chunks_contiguous(t);

    return t->first < t->n && c == &t->chunk[t->first];
}


void
chunks_start(chunks_t *t, chunk_t *c)
{
    c->state = CHUNK_RUNNING;
    t->running++;
}


void
chunks_done(chunks_t *t, chunk_t *c)
{
    c->state = CHUNK_DONE;
    c->xfer = NULL;
    t->running--;
}


int
chunks_failed(chunks_t *t, chunk_t *c, int max_failures)
{
    c->xfer = NULL;
    c->state = CHUNK_WAITING;
    t->running--;

    return ++c->failures < max_failures;
}


void
chunks_again(chunks_t *t, chunk_t *c)
{
    c->xfer = NULL;
    c->state = CHUNK_WAITING;
    t->running--;
}


long long
chunks_contiguous(chunks_t *t)
{
    chunk_t  *c;

    while (t->first < t->n && t->chunk[t->first].state == CHUNK_DONE) {
        t->first++;
    }

    if (t->first == t->n) {
        return t->n > 0 ? t->chunk[t->n - 1].end : 0;
    }

    c = &t->chunk[t->first];

    return c->start + c->got;
}


int
chunks_complete(const chunks_t *t)
{
    size_t  i;

    for (i = t->first; i < t->n; i++) {
        if (t->chunk[i].state != CHUNK_DONE) {
            return 0;
        }
    }

    return 1;
}
