/*
 * Small store files in shared memory, so that a manifest hit costs no
 * file read besides the manifest's own (through the open file cache).
 *
 * A tag record and a manifest's media type (oci_store.h) are each read
 * with open(), read() and close() over a path four or five directories
 * deep: on a warm manifest request that is most of what the worker does
 * besides sending the answer.  The cache holds copies of what those
 * files said, in one zone shared by the workers, least recently used
 * first out when it is full.
 *
 * A tag record's copy is only ever used while it is fresh by its own
 * fetched_at, and the fetcher writes a record only when a worker asked
 * it, that is when the worker had no fresh record the client accepts: so
 * a fresh copy says what the file said within the tag's TTL, which is all
 * the contract promises.  A worker that hears the fetcher's answer for a
 * tag forgets the copy, so the next request reads what was just written.
 * A media type belongs to a digest: it does not change.
 */

#ifndef NGX_HTTP_OCIMIRROR_CACHE_H
#define NGX_HTTP_OCIMIRROR_CACHE_H

#include <ngx_config.h>
#include <ngx_core.h>

#include "oci_store.h"


typedef struct ngx_http_ocimirror_cache_s  ngx_http_ocimirror_cache_t;


/* Add the shared zone to the configuration being parsed. */
ngx_http_ocimirror_cache_t *ngx_http_ocimirror_cache_create(ngx_conf_t *cf);

/* NGX_OK with a copy of the tag's record in rec, or NGX_DECLINED. */
ngx_int_t ngx_http_ocimirror_cache_tag_get(ngx_http_ocimirror_cache_t *cache,
    const char *registry, const char *name, const char *tag,
    oci_tag_record_t *rec);

/* Remember rec, unless a newer copy is there; a full zone drops the
 * least recently used copies, and if that is not enough, this one. */
void ngx_http_ocimirror_cache_tag_put(ngx_http_ocimirror_cache_t *cache,
    const char *registry, const char *name, const char *tag,
    const oci_tag_record_t *rec);

/* Drop the tag's copy, if any. */
void ngx_http_ocimirror_cache_tag_forget(ngx_http_ocimirror_cache_t *cache,
    const char *registry, const char *name, const char *tag);

/* NGX_OK with the media type of manifest hex in type (OCI_MEDIA_TYPE_MAX
 * + 1 bytes), or NGX_DECLINED. */
ngx_int_t ngx_http_ocimirror_cache_type_get(ngx_http_ocimirror_cache_t *cache,
    const char *hex, char *type);

void ngx_http_ocimirror_cache_type_put(ngx_http_ocimirror_cache_t *cache,
    const char *hex, const char *type);


#endif /* NGX_HTTP_OCIMIRROR_CACHE_H */
