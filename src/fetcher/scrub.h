/*
 * The scrub: stored blobs re-hashed at a bounded rate; a blob that does
 * not match its name goes to quarantine/.
 */

#ifndef FETCHER_SCRUB_H
#define FETCHER_SCRUB_H

#include "oci_config.h"
#include "cache.h"
#include "loop.h"

typedef struct scrub_s  scrub_t;

scrub_t *scrub_create(const oci_config_t *cf, loop_t *loop, cache_t *cache);
void scrub_destroy(scrub_t *s);

/* Once a second. */
void scrub_tick(scrub_t *s);

#endif /* FETCHER_SCRUB_H */
