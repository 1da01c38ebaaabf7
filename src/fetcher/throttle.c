/*
 * Throttled redirect targets (see throttle.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "throttle.h"

typedef struct {
    char       origin[OCI_HOST_MAX + 32];
    long long  until;                   /* 0: free */
} throttle_entry_t;

struct throttle_s {
    throttle_entry_t  *entry;
    size_t             cap;
};


throttle_t *
throttle_create(size_t cap)
{
    throttle_t  *t;

    t = calloc(1, sizeof(throttle_t));
    if (t == NULL) {
        log_error("out of memory");
        return NULL;
    }

    t->cap = cap > 0 ? cap : 1;
    t->entry = calloc(t->cap, sizeof(throttle_entry_t));

    if (t->entry == NULL) {
        log_error("out of memory");
        free(t);
        return NULL;
    }

    return t;
}


void
throttle_destroy(throttle_t *t)
{
    if (t == NULL) {
        return;
    }

    free(t->entry);
    free(t);
}


void
throttle_hold(throttle_t *t, const char *origin, long long until)
{
    throttle_entry_t  *e, *slot;
    size_t             i;

    if (strlen(origin) >= sizeof(t->entry[0].origin)) {
        return;
    }

    slot = &t->entry[0];

    for (i = 0; i < t->cap; i++) {
        e = &t->entry[i];

        if (e->until != 0 && strcmp(e->origin, origin) == 0) {
            if (until > e->until) {
                e->until = until;
            }

            return;
        }

        /* a free entry, else the one that ends first */
        if (e->until < slot->until) {
            slot = e;
        }
    }

    snprintf(slot->origin, sizeof(slot->origin), "%s", origin);
    slot->until = until;
}


long long
throttle_until(const throttle_t *t, const char *origin, long long now)
{
    const throttle_entry_t  *e;
    size_t                   i;

    for (i = 0; i < t->cap; i++) {
        e = &t->entry[i];

        if (e->until > now && strcmp(e->origin, origin) == 0) {
            return e->until;
        }
    }

    return 0;
}
