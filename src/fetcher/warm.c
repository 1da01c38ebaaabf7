/*
 * Warm lists (see warm.h).  SCAFFOLD: replaced by the warm work.
 */

#include <stdlib.h>

#include "warm.h"

struct warm_s {
    jobs_t  *jobs;
};


warm_t *
warm_create(const oci_config_t *cf, jobs_t *jobs)
{
    warm_t  *w;

    w = calloc(1, sizeof(warm_t));
    if (w != NULL) {
        w->jobs = jobs;
    }

    return w;
}


void
warm_destroy(warm_t *w)
{
    free(w);
}


void
warm_tick(warm_t *w)
{
}
