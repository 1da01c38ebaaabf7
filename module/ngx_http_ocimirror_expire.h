/*
 * Closing what a worker's open_file_cache holds past its "inactive" time
 * even when no request comes.
 *
 * A descriptor in the cache keeps a file's blocks allocated after the
 * fetcher evicted (unlinked) it: the disk gets the space back only when
 * nginx closes it.  nginx closes cached files unused for longer than
 * "inactive" only as requests that used the cache complete, one or two
 * per completion and per worker (ngx_open_file_cleanup() ->
 * ngx_expire_old_cached_files()), so on a quiet worker evicted files
 * stay allocated for ever and a full disk stays full.
 *
 * Every second, each worker looks the store's marker file (always
 * present, tiny) up through each open_file_cache of a location with
 * "ocimirror", with a pool of its own that it destroys at once: the
 * destruction runs nginx's own cleanup of the lookup, which closes up to
 * two entries idle for longer than "inactive".  That is repeated while
 * it closes some (the cache's entry count says so), at most
 * NGX_HTTP_OCIMIRROR_EXPIRE_LOOKUPS times per cache and tick.  Only the
 * cache's public API is used, nothing of its tree or queue: nginx
 * decides what is idle and closes it the way it always does (an entry a
 * request still reads leaves the cache and is closed when that request
 * ends).  The marker's lookup costs no syscall but an open() once and a
 * stat() every open_file_cache_valid.  The hit path is untouched: a hit
 * costs what it costs static nginx with the same open_file_cache.
 *
 * An evicted file's space thus comes back at most "inactive" + 2 s after
 * its last use by a worker (nginx closes past "inactive" in whole
 * seconds; the timer ticks every second), or when the last client
 * reading it is done.  The timer is cancelable: a worker shutting down
 * does not wait for it.
 */

#ifndef NGX_HTTP_OCIMIRROR_EXPIRE_H
#define NGX_HTTP_OCIMIRROR_EXPIRE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_module.h"


/* Remember a location with "ocimirror" (at the directive): its
 * open_file_cache is known only once the configuration is merged.
 * NGX_OK or NGX_ERROR (no memory). */
ngx_int_t ngx_http_ocimirror_expire_add(ngx_conf_t *cf,
    ngx_http_core_loc_conf_t *clcf);

/* This worker's timer (init_process), if any of those locations has an
 * open_file_cache; without one there is nothing to do.  NGX_OK or
 * NGX_ERROR (no memory). */
ngx_int_t ngx_http_ocimirror_expire_init(ngx_cycle_t *cycle,
    ngx_http_ocimirror_main_conf_t *mcf);


#endif /* NGX_HTTP_OCIMIRROR_EXPIRE_H */
