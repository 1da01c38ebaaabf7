/*
 * The scrub (see scrub.h).  SCAFFOLD: replaced by the scrub work.
 */

#include <stdlib.h>

#include "scrub.h"

struct scrub_s {
    cache_t  *cache;
};


scrub_t *
scrub_create(const oci_config_t *cf, loop_t *loop, cache_t *cache)
{
    scrub_t  *s;

    s = calloc(1, sizeof(scrub_t));
    if (s != NULL) {
        s->cache = cache;
    }

    return s;
}


void
scrub_destroy(scrub_t *s)
{
    free(s);
}


void
scrub_tick(scrub_t *s)
{
}
