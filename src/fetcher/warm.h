/*
 * Warm lists: images the fetcher pulls before any client asks (the
 * config's "warm", "warm_file", and ocimirrorctl warm).
 */

#ifndef FETCHER_WARM_H
#define FETCHER_WARM_H

#include "oci_config.h"
#include "job.h"

typedef struct warm_s  warm_t;

warm_t *warm_create(const oci_config_t *cf, jobs_t *jobs);
void warm_destroy(warm_t *w);

/* Once a second. */
void warm_tick(warm_t *w);

#endif /* FETCHER_WARM_H */
