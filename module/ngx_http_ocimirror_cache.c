/*
 * Small store files in shared memory (see ngx_http_ocimirror_cache.h).
 *
 * One zone per configuration: a red-black tree of copies keyed by the
 * crc32 of their key, and a queue, most recently used first.  A tag
 * record's key is "<registry> <name> <tag>" (a space appears in none of
 * them), a media type's is "sha256:<hex>" (which has none).  Each copy
 * holds its key, a digest (empty for a media type) and a media type
 * inline.  A zone that outlives a reload keeps its copies: what a tag
 * named and what type a manifest has do not depend on the configuration,
 * and tag records are used only while fresh under the current TTL.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ocimirror_module.h"
#include "ngx_http_ocimirror_cache.h"


/* copies take 512-byte slab slots at most: some 8000 of them */
#define NGX_HTTP_OCIMIRROR_CACHE_SIZE  (4 * 1024 * 1024)

#define NGX_HTTP_OCIMIRROR_CACHE_KEY_MAX                                     \
    (OCI_HOST_MAX + 1 + OCI_NAME_MAX + 1 + OCI_TAG_MAX)


typedef struct {
    ngx_str_node_t        sn;             /* sn.str: the key, in data */
    ngx_queue_t           queue;
    long long             size;
    long long             fetched_at;
    u_char                digest_len;
    u_char                type_len;
    u_char                data[1];        /* key, digest, media type */
} ngx_http_ocimirror_cache_node_t;


typedef struct {
    ngx_rbtree_t          rbtree;
    ngx_rbtree_node_t     sentinel;
    ngx_queue_t           queue;          /* most recently used first */
} ngx_http_ocimirror_cache_sh_t;


struct ngx_http_ocimirror_cache_s {
    ngx_http_ocimirror_cache_sh_t  *sh;
    ngx_slab_pool_t                *shpool;
};


static ngx_int_t ngx_http_ocimirror_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_ocimirror_cache_tag_key(const char *registry,
    const char *name, const char *tag, u_char *buf, ngx_str_t *key);
static void ngx_http_ocimirror_cache_type_key(const char *hex, u_char *buf,
    ngx_str_t *key);
static ngx_int_t ngx_http_ocimirror_cache_get(
    ngx_http_ocimirror_cache_t *cache, ngx_str_t *key,
    oci_tag_record_t *rec);
static void ngx_http_ocimirror_cache_put(ngx_http_ocimirror_cache_t *cache,
    ngx_str_t *key, const oci_tag_record_t *rec);
static void ngx_http_ocimirror_cache_delete(ngx_http_ocimirror_cache_t *cache,
    ngx_http_ocimirror_cache_node_t *n);


ngx_http_ocimirror_cache_t *
ngx_http_ocimirror_cache_create(ngx_conf_t *cf)
{
    ngx_shm_zone_t              *shm_zone;
    ngx_http_ocimirror_cache_t  *cache;

    static ngx_str_t  name = ngx_string("ocimirror_cache");

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_ocimirror_cache_t));
    if (cache == NULL) {
        return NULL;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, NGX_HTTP_OCIMIRROR_CACHE_SIZE,
                                     &ngx_http_ocimirror_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    shm_zone->init = ngx_http_ocimirror_cache_init_zone;
    shm_zone->data = cache;

    return cache;
}


static ngx_int_t
ngx_http_ocimirror_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_ocimirror_cache_t  *ocache = data;

    size_t                       len;
    ngx_http_ocimirror_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache != NULL) {
        /* a reload: the zone and its copies carry over */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_ocimirror_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_str_rbtree_insert_value);

    ngx_queue_init(&cache->sh->queue);

    len = sizeof(" in ocimirror zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in ocimirror zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is normal: the oldest copies make room */
    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_ocimirror_cache_tag_get(ngx_http_ocimirror_cache_t *cache,
    const char *registry, const char *name, const char *tag,
    oci_tag_record_t *rec)
{
    ngx_str_t  key;
    u_char     buf[NGX_HTTP_OCIMIRROR_CACHE_KEY_MAX];

    if (ngx_http_ocimirror_cache_tag_key(registry, name, tag, buf, &key)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    return ngx_http_ocimirror_cache_get(cache, &key, rec);
}


void
ngx_http_ocimirror_cache_tag_put(ngx_http_ocimirror_cache_t *cache,
    const char *registry, const char *name, const char *tag,
    const oci_tag_record_t *rec)
{
    ngx_str_t  key;
    u_char     buf[NGX_HTTP_OCIMIRROR_CACHE_KEY_MAX];

    if (ngx_http_ocimirror_cache_tag_key(registry, name, tag, buf, &key)
        == NGX_OK)
    {
        ngx_http_ocimirror_cache_put(cache, &key, rec);
    }
}


void
ngx_http_ocimirror_cache_tag_forget(ngx_http_ocimirror_cache_t *cache,
    const char *registry, const char *name, const char *tag)
{
    ngx_str_t        key;
    ngx_str_node_t  *sn;
    u_char           buf[NGX_HTTP_OCIMIRROR_CACHE_KEY_MAX];

    if (ngx_http_ocimirror_cache_tag_key(registry, name, tag, buf, &key)
        != NGX_OK)
    {
        return;
    }

    ngx_shmtx_lock(&cache->shpool->mutex);

    sn = ngx_str_rbtree_lookup(&cache->sh->rbtree, &key,
                               ngx_crc32_short(key.data, key.len));

    if (sn != NULL) {
        ngx_http_ocimirror_cache_delete(cache,
                                       (ngx_http_ocimirror_cache_node_t *) sn);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


ngx_int_t
ngx_http_ocimirror_cache_type_get(ngx_http_ocimirror_cache_t *cache,
    const char *hex, char *type)
{
    ngx_str_t         key;
    oci_tag_record_t  rec;
    u_char            buf[sizeof("sha256:") - 1 + OCI_SHA256_HEX_LEN];

    ngx_http_ocimirror_cache_type_key(hex, buf, &key);

    if (ngx_http_ocimirror_cache_get(cache, &key, &rec) != NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_cpystrn((u_char *) type, (u_char *) rec.media_type,
                OCI_MEDIA_TYPE_MAX + 1);

    return NGX_OK;
}


void
ngx_http_ocimirror_cache_type_put(ngx_http_ocimirror_cache_t *cache,
    const char *hex, const char *type)
{
    ngx_str_t         key;
    oci_tag_record_t  rec;
    u_char            buf[sizeof("sha256:") - 1 + OCI_SHA256_HEX_LEN];

    if (ngx_strlen(type) > OCI_MEDIA_TYPE_MAX) {
        return;
    }

    ngx_http_ocimirror_cache_type_key(hex, buf, &key);

    rec.digest[0] = '\0';
    rec.size = 0;
    rec.fetched_at = 0;
    ngx_cpystrn((u_char *) rec.media_type, (u_char *) type,
                OCI_MEDIA_TYPE_MAX + 1);

    ngx_http_ocimirror_cache_put(cache, &key, &rec);
}


/* "<registry> <name> <tag>" in buf; NGX_DECLINED if a part is too long. */

static ngx_int_t
ngx_http_ocimirror_cache_tag_key(const char *registry, const char *name,
    const char *tag, u_char *buf, ngx_str_t *key)
{
    u_char  *p;
    size_t   rlen, nlen, tlen;

    rlen = ngx_strlen(registry);
    nlen = ngx_strlen(name);
    tlen = ngx_strlen(tag);

    if (rlen > OCI_HOST_MAX || nlen > OCI_NAME_MAX || tlen > OCI_TAG_MAX) {
        return NGX_DECLINED;
    }

    p = ngx_cpymem(buf, registry, rlen);
    *p++ = ' ';
    p = ngx_cpymem(p, name, nlen);
    *p++ = ' ';
    p = ngx_cpymem(p, tag, tlen);

    key->data = buf;
    key->len = p - buf;

    return NGX_OK;
}


/* "sha256:<hex>" in buf; hex is 64 characters (oci_ref.h). */

static void
ngx_http_ocimirror_cache_type_key(const char *hex, u_char *buf,
    ngx_str_t *key)
{
    u_char  *p;

    p = ngx_cpymem(buf, "sha256:", sizeof("sha256:") - 1);
    p = ngx_cpymem(p, hex, OCI_SHA256_HEX_LEN);

    key->data = buf;
    key->len = p - buf;
}


static ngx_int_t
ngx_http_ocimirror_cache_get(ngx_http_ocimirror_cache_t *cache,
    ngx_str_t *key, oci_tag_record_t *rec)
{
    u_char                           *p;
    ngx_str_node_t                   *sn;
    ngx_http_ocimirror_cache_node_t  *n;

    ngx_shmtx_lock(&cache->shpool->mutex);

    sn = ngx_str_rbtree_lookup(&cache->sh->rbtree, key,
                               ngx_crc32_short(key->data, key->len));

    if (sn == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return NGX_DECLINED;
    }

    n = (ngx_http_ocimirror_cache_node_t *) sn;

    ngx_queue_remove(&n->queue);
    ngx_queue_insert_head(&cache->sh->queue, &n->queue);

    p = n->data + n->sn.str.len;

    ngx_memcpy(rec->digest, p, n->digest_len);
    rec->digest[n->digest_len] = '\0';
    p += n->digest_len;

    ngx_memcpy(rec->media_type, p, n->type_len);
    rec->media_type[n->type_len] = '\0';

    rec->size = n->size;
    rec->fetched_at = n->fetched_at;

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return NGX_OK;
}


static void
ngx_http_ocimirror_cache_put(ngx_http_ocimirror_cache_t *cache,
    ngx_str_t *key, const oci_tag_record_t *rec)
{
    u_char                           *p;
    size_t                            digest_len, type_len;
    uint32_t                          hash;
    ngx_queue_t                      *q;
    ngx_str_node_t                   *sn;
    ngx_http_ocimirror_cache_node_t  *n;

    digest_len = ngx_strlen(rec->digest);
    type_len = ngx_strlen(rec->media_type);

    if (digest_len > OCI_DIGEST_MAX || type_len > OCI_MEDIA_TYPE_MAX) {
        return;
    }

    hash = ngx_crc32_short(key->data, key->len);

    ngx_shmtx_lock(&cache->shpool->mutex);

    sn = ngx_str_rbtree_lookup(&cache->sh->rbtree, key, hash);

    if (sn != NULL) {
        n = (ngx_http_ocimirror_cache_node_t *) sn;

        if (n->fetched_at > rec->fetched_at) {
            /* another worker was here with a newer record */
            ngx_shmtx_unlock(&cache->shpool->mutex);
            return;
        }

        ngx_http_ocimirror_cache_delete(cache, n);
    }

    for ( ;; ) {
        n = ngx_slab_alloc_locked(cache->shpool,
                                  offsetof(ngx_http_ocimirror_cache_node_t,
                                           data)
                                  + key->len + digest_len + type_len);

        if (n != NULL || ngx_queue_empty(&cache->sh->queue)) {
            break;
        }

        q = ngx_queue_last(&cache->sh->queue);

        ngx_http_ocimirror_cache_delete(cache,
                  ngx_queue_data(q, ngx_http_ocimirror_cache_node_t, queue));
    }

    if (n == NULL) {
        ngx_shmtx_unlock(&cache->shpool->mutex);
        return;
    }

    p = ngx_cpymem(n->data, key->data, key->len);
    p = ngx_cpymem(p, rec->digest, digest_len);
    ngx_memcpy(p, rec->media_type, type_len);

    n->sn.node.key = hash;
    n->sn.str.len = key->len;
    n->sn.str.data = n->data;
    n->size = rec->size;
    n->fetched_at = rec->fetched_at;
    n->digest_len = (u_char) digest_len;
    n->type_len = (u_char) type_len;

    ngx_rbtree_insert(&cache->sh->rbtree, &n->sn.node);
    ngx_queue_insert_head(&cache->sh->queue, &n->queue);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* With the zone locked. */

static void
ngx_http_ocimirror_cache_delete(ngx_http_ocimirror_cache_t *cache,
    ngx_http_ocimirror_cache_node_t *n)
{
    ngx_rbtree_delete(&cache->sh->rbtree, &n->sn.node);
    ngx_queue_remove(&n->queue);
    ngx_slab_free_locked(cache->shpool, n);
}
