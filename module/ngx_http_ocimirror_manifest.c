/*
 * Manifests.
 *
 * By digest a manifest is immutable: the stored file and its media type
 * answer, whatever the client's Accept (it named the bytes it wants).
 * By tag the record must be fresh (younger than the registry's tag_ttl)
 * and its manifest stored; otherwise the fetcher revalidates (MANIFEST
 * with accept "-": the mirror's own answer, the same for every client).
 * A client HEAD becomes a MANIFEST with head=1 and is answered from META
 * alone, so the upstream sees a HEAD too; a GET is answered with the
 * file META names.
 *
 * Who gets the stored manifest of a tag depends on the client's Accept
 * alone (oci_accept_serves()): a client that sent none, only wildcards,
 * or a list that names the stored type.  Any other client gets what the
 * upstream answers it: MANIFEST with its list, a relay that stores
 * nothing (a 404 for an index it does not accept, one platform's
 * manifest of a list, ...); a GET's body then comes in a temp file.
 *
 * Tag records and media types come from the shared cache when it holds
 * them (ngx_http_ocimirror_cache.h), else from their files, and are
 * copied there; the fetcher's answer for a tag drops the tag's copy.
 *
 * The fetcher serves a stale record itself when the upstream fails
 * (META stale=1).  When the fetcher itself cannot be asked (down, lost,
 * silent), the worker does the same with a record that is only too old:
 * a cache that still holds the answer keeps serving it, with a Warning.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "ngx_http_ocimirror_cluster.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_link.h"
#include "ngx_http_ocimirror_manifest.h"
#include "ngx_http_ocimirror_outcome.h"
#include "ngx_http_ocimirror_recency.h"
#include "ngx_http_ocimirror_serve.h"


typedef struct {
    ngx_http_request_t              *request;
    ngx_http_ocimirror_wait_t        wait;
    const char                      *store;
    oci_route_t                     *route;
    ngx_http_ocimirror_cache_t      *cache;
    const char                      *accept;    /* the client's list, a
                                                   copy once it is asked */
    ngx_uint_t                       relay;     /* asked with it */

    /* the tag record, if one that serves the client exists */
    ngx_uint_t                       has_record;
    time_t                           fetched_at;
    char                             hex[OCI_SHA256_HEX_LEN + 1];
    ngx_str_t                        digest;
    ngx_str_t                        type;
} ngx_http_ocimirror_manifest_ctx_t;


/* raw Accept values up to this size are remembered with their list */
#define NGX_HTTP_OCIMIRROR_ACCEPT_RAW_MAX  2048

typedef struct {
    u_char                           raw[NGX_HTTP_OCIMIRROR_ACCEPT_RAW_MAX];
    size_t                           raw_len;
    ngx_uint_t                       valid;
    char                             list[OCI_ACCEPT_MAX + 1];
} ngx_http_ocimirror_accept_memo_t;


static const char *ngx_http_ocimirror_manifest_accept(
    ngx_http_request_t *r);
static ngx_table_elt_t *ngx_http_ocimirror_next_accept(
    ngx_list_part_t **part, ngx_uint_t *i);
static ngx_int_t ngx_http_ocimirror_manifest_stored(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const char *hex,
    ngx_str_t *digest, ngx_str_t *type, ngx_uint_t stale);
static ngx_int_t ngx_http_ocimirror_manifest_tagged(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const char *accept);
static ngx_int_t ngx_http_ocimirror_manifest_record(
    ngx_http_ocimirror_manifest_ctx_t *ctx, oci_tag_record_t *rec);
static ngx_uint_t ngx_http_ocimirror_manifest_fresh(oci_registry_t *reg,
    oci_tag_record_t *rec);
static ngx_int_t ngx_http_ocimirror_manifest_unavailable(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const char *message);
static void ngx_http_ocimirror_manifest_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_manifest_ask(
    ngx_http_ocimirror_manifest_ctx_t *ctx);
static ngx_int_t ngx_http_ocimirror_manifest_meta(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_manifest_relayed(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const oci_msg_t *m,
    ngx_str_t *digest, ngx_str_t *type);
static void ngx_http_ocimirror_manifest_count(ngx_http_request_t *r,
    ngx_http_ocimirror_counter_t counter,
    ngx_http_ocimirror_outcome_e outcome);


/* this worker's last Accept list (ngx_http_ocimirror_manifest_accept()) */
static ngx_http_ocimirror_accept_memo_t  ngx_http_ocimirror_accept_memo;


ngx_int_t
ngx_http_ocimirror_manifest(ngx_http_request_t *r,
    ngx_http_ocimirror_main_conf_t *mcf, oci_route_t *route)
{
    size_t                              len;
    ngx_int_t                           rc;
    const char                         *accept;
    ngx_str_t                           digest;
    ngx_http_ocimirror_manifest_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_manifest_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->store = mcf->oci->store_path;
    ctx->route = route;
    ctx->cache = mcf->cache;

    if (route->is_digest) {
        digest.data = (u_char *) route->reference;
        digest.len = ngx_strlen(route->reference);

        rc = ngx_http_ocimirror_manifest_stored(ctx, route->hex,
                                                &digest, NULL, 0);
        accept = "";

        if (rc == NGX_DECLINED) {
            /* not here: another cluster node may own it */
            rc = ngx_http_ocimirror_cluster_pass(r);
            if (rc != NGX_DECLINED) {
                return rc;
            }
        }

    } else {
        /* a tag is its owner's, whatever is here: one node keeps its
         * record and asks the upstream, so all nodes answer alike */

        rc = ngx_http_ocimirror_cluster_pass(r);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        accept = ngx_http_ocimirror_manifest_accept(r);
        rc = ngx_http_ocimirror_manifest_tagged(ctx, accept);
    }

    if (rc != NGX_DECLINED) {
        ngx_http_ocimirror_manifest_count(r, NGX_HTTP_OCIMIRROR_HIT_MANIFEST,
                                          NGX_HTTP_OCIMIRROR_OUTCOME_HIT);
        return rc;
    }

    /* the list is the worker's until the handler returns: the answer
     * needs a copy */

    len = ngx_strlen(accept) + 1;

    ctx->accept = ngx_pnalloc(r->pool, len);
    if (ctx->accept == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy((char *) ctx->accept, accept, len);

    return ngx_http_ocimirror_manifest_ask(ctx);
}


/*
 * Ask the fetcher: for the mirror's own answer, or (ctx->relay) for the
 * upstream's answer to this client's Accept.  What a content handler
 * returns, or what the message handler finalizes with (NGX_DONE: parked
 * again).
 */

static ngx_int_t
ngx_http_ocimirror_manifest_ask(ngx_http_ocimirror_manifest_ctx_t *ctx)
{
    ngx_int_t                        rc;
    oci_msg_t                        m;
    oci_route_t                     *route;
    ngx_http_request_t              *r;
    ngx_http_ocimirror_loc_conf_t   *lcf;
    ngx_http_ocimirror_main_conf_t  *mcf;
    ngx_http_ocimirror_outcome_e     outcome;

    r = ctx->request;
    route = ctx->route;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ocimirror_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ocimirror_module);

    /* a relay is the upstream's answer to this client alone; a record
     * that was there is revalidated (a FAIL may make it NEGATIVE, a
     * META stale STALE) */
    if (ctx->relay) {
        outcome = NGX_HTTP_OCIMIRROR_OUTCOME_BYPASS;

    } else if (ctx->has_record) {
        outcome = NGX_HTTP_OCIMIRROR_OUTCOME_REVALIDATED;

    } else {
        outcome = NGX_HTTP_OCIMIRROR_OUTCOME_MISS;
    }

    ngx_http_ocimirror_outcome_set(r, outcome);

    oci_msg_init(&m, OCI_MSG_MANIFEST, 0);

    ngx_cpystrn((u_char *) m.registry, (u_char *) route->registry->name,
                sizeof(m.registry));
    ngx_cpystrn((u_char *) m.name, (u_char *) route->name, sizeof(m.name));
    ngx_cpystrn((u_char *) m.reference, (u_char *) route->reference,
                sizeof(m.reference));
    m.head = (r->method == NGX_HTTP_HEAD);

    if (ctx->relay) {
        ngx_cpystrn((u_char *) m.accept, (u_char *) ctx->accept,
                    sizeof(m.accept));
    }

    rc = ngx_http_ocimirror_ask(r, mcf->link, &ctx->wait,
                                ngx_http_ocimirror_manifest_message, ctx,
                                lcf->fetch_timeout, &m);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_ocimirror_manifest_unavailable(ctx,
                                             "the fetcher is not available");
}


/*
 * The media types of every Accept header, as one normalised list.
 *
 * Normalising costs more than all the rest of a fresh tag hit, and the
 * clients of one kind send the same Accept headers on every request: so
 * each worker keeps the list it made last, with the raw headers it made
 * it from (each value followed by a newline, which no value contains).
 * The list is the worker's: valid until the handler returns.
 */

static const char *
ngx_http_ocimirror_manifest_accept(ngx_http_request_t *r)
{
    size_t                             off;
    ngx_uint_t                         i, fits, full;
    ngx_list_part_t                   *part;
    ngx_table_elt_t                   *h;
    ngx_http_ocimirror_accept_memo_t  *memo;

    memo = &ngx_http_ocimirror_accept_memo;

    if (memo->valid) {
        part = &r->headers_in.headers.part;
        i = 0;
        off = 0;

        while ((h = ngx_http_ocimirror_next_accept(&part, &i)) != NULL) {

            if (h->value.len >= memo->raw_len - off
                || ngx_memcmp(memo->raw + off, h->value.data, h->value.len)
                   != 0
                || memo->raw[off + h->value.len] != '\n')
            {
                break;
            }

            off += h->value.len + 1;
        }

        if (h == NULL && off == memo->raw_len) {
            return memo->list;
        }
    }

    memo->valid = 0;
    memo->list[0] = '\0';

    part = &r->headers_in.headers.part;
    i = 0;
    off = 0;
    fits = 1;
    full = 0;

    while ((h = ngx_http_ocimirror_next_accept(&part, &i)) != NULL) {

        if (fits && h->value.len < sizeof(memo->raw) - off) {
            off = ngx_cpymem(memo->raw + off, h->value.data, h->value.len)
                  - memo->raw;
            memo->raw[off++] = '\n';

        } else {
            fits = 0;
        }

        if (!full
            && oci_accept_append(memo->list, sizeof(memo->list),
                                 (const char *) h->value.data, h->value.len)
               != OCI_OK)
        {
            /* the list so far stays valid; the rest does not fit */
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "ocimirror: Accept list too long, truncated");
            full = 1;
        }
    }

    memo->raw_len = off;
    memo->valid = fits;

    return memo->list;
}


/* The next Accept header of the request from (*part, *i) on, or NULL. */

static ngx_table_elt_t *
ngx_http_ocimirror_next_accept(ngx_list_part_t **part, ngx_uint_t *i)
{
    ngx_table_elt_t  *h;

    for ( ;; ) {

        if (*i >= (*part)->nelts) {
            if ((*part)->next == NULL) {
                return NULL;
            }

            *part = (*part)->next;
            *i = 0;
            continue;
        }

        h = (ngx_table_elt_t *) (*part)->elts + (*i)++;

        if (h->key.len == sizeof("Accept") - 1
            && ngx_strncasecmp(h->key.data, (u_char *) "Accept",
                               sizeof("Accept") - 1)
               == 0)
        {
            return h;
        }
    }
}


/*
 * Serve the stored manifest hex, with type, or with the media type stored
 * beside it if type is NULL.  NGX_DECLINED if it is not stored.
 */

static ngx_int_t
ngx_http_ocimirror_manifest_stored(ngx_http_ocimirror_manifest_ctx_t *ctx,
    const char *hex, ngx_str_t *digest, ngx_str_t *type, ngx_uint_t stale)
{
    ngx_int_t             rc;
    ngx_str_t             path, stored;
    ngx_http_request_t   *r;
    ngx_open_file_info_t  of;

    r = ctx->request;

    if (ngx_http_ocimirror_blob_path(r, ctx->store, hex, &path) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_ocimirror_open(r, &path, &of);

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return ngx_http_ocimirror_send_error(r,
                                             NGX_HTTP_INTERNAL_SERVER_ERROR,
                                             OCI_ERR_UPSTREAM,
                                             "cannot read the store");
    }

    if (type == NULL) {
        stored.data = ngx_pnalloc(r->pool, OCI_MEDIA_TYPE_MAX + 1);
        if (stored.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* written before the manifest: missing only if something broke,
         * and then the fetcher knows better */

        if (ngx_http_ocimirror_cache_type_get(ctx->cache, hex,
                                              (char *) stored.data)
            != NGX_OK)
        {
            if (oci_store_type_read(ctx->store, hex, (char *) stored.data,
                                    OCI_MEDIA_TYPE_MAX + 1)
                != OCI_OK)
            {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "ocimirror: no media type stored for "
                              "manifest %s", hex);
                return NGX_DECLINED;
            }

            ngx_http_ocimirror_cache_type_put(ctx->cache, hex,
                                              (char *) stored.data);
        }

        stored.len = ngx_strlen(stored.data);
        type = &stored;
    }

    ngx_http_ocimirror_recency_note(r, hex);

    return ngx_http_ocimirror_serve_manifest(r, &of, &path, type, digest,
                                             stale);
}


/*
 * Serve a fresh tag record that serves the client.  NGX_DECLINED
 * otherwise; a record that serves the client is then kept in ctx for
 * ngx_http_ocimirror_manifest_unavailable(), and one that does not sets
 * ctx->relay.
 */

static ngx_int_t
ngx_http_ocimirror_manifest_tagged(ngx_http_ocimirror_manifest_ctx_t *ctx,
    const char *accept)
{
    oci_tag_record_t     rec;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ngx_http_ocimirror_manifest_record(ctx, &rec) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (oci_digest_parse(rec.digest, ngx_strlen(rec.digest), ctx->hex)
        != OCI_OK)
    {
        return NGX_DECLINED;
    }

    if (!oci_accept_serves(accept, rec.media_type)) {
        /* what the upstream answers this client, fresh record or not:
         * the relay does not depend on it */
        ctx->relay = 1;
        return NGX_DECLINED;
    }

    /* rec is on the stack: the headers need copies */

    ctx->digest.len = ngx_strlen(rec.digest);
    ctx->type.len = ngx_strlen(rec.media_type);

    ctx->digest.data = ngx_pnalloc(r->pool,
                                   ctx->digest.len + ctx->type.len);
    if (ctx->digest.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->type.data = ngx_cpymem(ctx->digest.data, rec.digest,
                                ctx->digest.len);
    ngx_memcpy(ctx->type.data, rec.media_type, ctx->type.len);

    ctx->has_record = 1;
    ctx->fetched_at = (time_t) rec.fetched_at;

    if (!ngx_http_ocimirror_manifest_fresh(ctx->route->registry, &rec)) {
        return NGX_DECLINED;
    }

    return ngx_http_ocimirror_manifest_stored(ctx, ctx->hex,
                                              &ctx->digest, &ctx->type, 0);
}


/*
 * The tag's record: a fresh copy from the cache, or the file (which
 * the fetcher may have rewritten since the copy was made).  NGX_DECLINED
 * if there is no record.
 */

static ngx_int_t
ngx_http_ocimirror_manifest_record(ngx_http_ocimirror_manifest_ctx_t *ctx,
    oci_tag_record_t *rec)
{
    oci_route_t     *route;
    oci_registry_t  *reg;

    route = ctx->route;
    reg = route->registry;

    if (ngx_http_ocimirror_cache_tag_get(ctx->cache, reg->name,
                                         route->name, route->reference, rec)
        == NGX_OK
        && ngx_http_ocimirror_manifest_fresh(reg, rec))
    {
        return NGX_OK;
    }

    if (oci_tag_record_read(ctx->store, reg->name, route->name,
                            route->reference, rec)
        != OCI_OK)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_ocimirror_manifest_fresh(reg, rec)) {
        ngx_http_ocimirror_cache_tag_put(ctx->cache, reg->name,
                                         route->name, route->reference, rec);
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_ocimirror_manifest_fresh(oci_registry_t *reg, oci_tag_record_t *rec)
{
    return (long long) ngx_time() - rec->fetched_at < reg->tag_ttl;
}


/* The fetcher cannot answer: an old record beats a 503, for as long as
 * the registry's stale_if_error allows (the fetcher's own rule when
 * upstream fails). */

static ngx_int_t
ngx_http_ocimirror_manifest_unavailable(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const char *message)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->has_record
        && ngx_time() - ctx->fetched_at
           < ctx->route->registry->tag_ttl
             + ctx->route->registry->stale_if_error)
    {
        rc = ngx_http_ocimirror_manifest_stored(ctx, ctx->hex,
                                                &ctx->digest, &ctx->type, 1);
        if (rc != NGX_DECLINED) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "ocimirror: stale %V served, fetcher unavailable",
                           &ctx->digest);
            ngx_http_ocimirror_manifest_count(r,
                                            NGX_HTTP_OCIMIRROR_STALE_CACHE,
                                            NGX_HTTP_OCIMIRROR_OUTCOME_STALE);
            return rc;
        }
    }

    return ngx_http_ocimirror_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         OCI_ERR_UNAVAILABLE, message);
}


static void
ngx_http_ocimirror_manifest_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m)
{
    ngx_int_t                           rc;
    ngx_http_request_t                 *r;
    ngx_http_ocimirror_manifest_ctx_t  *ctx;

    if (w->active) {
        /* SIZE or PROGRESS: no answer, the fetcher is at work */
        return;
    }

    ctx = w->data;
    r = ctx->request;

    switch (m->type) {

    case OCI_MSG_META:
        if (!ctx->route->is_digest) {
            /* the fetcher may have rewritten the tag's record */
            ngx_http_ocimirror_cache_tag_forget(ctx->cache,
                                                ctx->route->registry->name,
                                                ctx->route->name,
                                                ctx->route->reference);
        }

        rc = ngx_http_ocimirror_manifest_meta(ctx, m);
        break;

    case OCI_MSG_FAIL:
        if (w->timedout || w->lost) {
            rc = ngx_http_ocimirror_manifest_unavailable(ctx, m->message);

        } else {
            rc = ngx_http_ocimirror_send_fail(r, m);
        }

        break;

    default:
        rc = ngx_http_ocimirror_unexpected(w, m, "MANIFEST");
        break;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_ocimirror_manifest_meta(ngx_http_ocimirror_manifest_ctx_t *ctx,
    const oci_msg_t *m)
{
    char                 hex[OCI_SHA256_HEX_LEN + 1];
    ngx_int_t            rc;
    ngx_str_t            digest, type, etag;
    ngx_http_request_t  *r;

    r = ctx->request;

    digest.len = ngx_strlen(m->digest);
    type.len = ngx_strlen(m->media_type);

    if (oci_digest_parse(m->digest, digest.len, hex) != OCI_OK
        || !oci_media_type_valid(m->media_type, type.len)
        || m->size < 0)
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ocimirror: invalid META from the fetcher");

        return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                             OCI_ERR_UPSTREAM,
                                             "invalid answer from the "
                                             "fetcher");
    }

    /* the mirror's own answer may not be this client's: then the
     * upstream's answer to it is */

    if (!ctx->route->is_digest && !ctx->relay
        && !oci_accept_serves(ctx->accept, m->media_type))
    {
        ctx->relay = 1;
        return ngx_http_ocimirror_manifest_ask(ctx);
    }

    /* m is the link's buffer: keep copies */

    digest.data = ngx_pnalloc(r->pool, digest.len + type.len);
    if (digest.data == NULL) {
        return NGX_ERROR;
    }

    type.data = ngx_cpymem(digest.data, m->digest, digest.len);
    ngx_memcpy(type.data, m->media_type, type.len);

    if (oci_msg_file(m) != NULL) {
        return ngx_http_ocimirror_manifest_relayed(ctx, m, &digest, &type);
    }

    if (m->stale) {
        ngx_http_ocimirror_outcome_set(r, NGX_HTTP_OCIMIRROR_OUTCOME_STALE);
    }

    if (r->method != NGX_HTTP_HEAD) {
        rc = ngx_http_ocimirror_manifest_stored(ctx, hex, &digest,
                                                &type, m->stale);

        if (rc != NGX_DECLINED) {
            if (m->stale) {
                ngx_http_ocimirror_manifest_count(r,
                                            NGX_HTTP_OCIMIRROR_STALE_FETCHER,
                                            NGX_HTTP_OCIMIRROR_OUTCOME_STALE);
            }

            return rc;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ocimirror: manifest %V announced by the fetcher is "
                      "not in the store", &digest);

        return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                             OCI_ERR_UPSTREAM,
                                             "manifest missing from the "
                                             "store");
    }

    /* HEAD: what the upstream's HEAD said */

    if (ngx_http_ocimirror_etag(r, &digest, &etag) != NGX_OK
        || ngx_http_ocimirror_set_content(r, m->size, &type, &digest, &etag)
           != NGX_OK
        || (m->stale && ngx_http_ocimirror_add_stale_warning(r) != NGX_OK))
    {
        return NGX_ERROR;
    }

    if (m->stale) {
        ngx_http_ocimirror_metrics_count(r, NGX_HTTP_OCIMIRROR_STALE_FETCHER);
    }

    return ngx_http_send_header(r);
}


/* A relayed GET: the upstream's body for this client, in the temp file
 * META handed over (the link unlinks it once this returns). */

static ngx_int_t
ngx_http_ocimirror_manifest_relayed(ngx_http_ocimirror_manifest_ctx_t *ctx,
    const oci_msg_t *m, ngx_str_t *digest, ngx_str_t *type)
{
    off_t                size;
    ngx_fd_t             fd;
    ngx_int_t            rc;
    ngx_str_t            path, etag;
    ngx_http_request_t  *r;

    r = ctx->request;

    rc = ngx_http_ocimirror_open_body(r, m->path, "relayed manifest", &path,
                                      &fd, &size);

    if (rc == NGX_DECLINED) {
        return ngx_http_ocimirror_send_error(r,
                                             NGX_HTTP_SERVICE_UNAVAILABLE,
                                             OCI_ERR_UNAVAILABLE,
                                             "relayed manifest unreadable");
    }

    if (rc != NGX_OK
        || ngx_http_ocimirror_etag(r, digest, &etag) != NGX_OK
        || ngx_http_ocimirror_set_content(r, size, type, digest, &etag)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_ocimirror_send_file(r, fd, &path, size, 0);
}


/*
 * Count a serve from the store, once ngx_http_ocimirror_manifest_stored()
 * answered: only if the answer is the manifest (2xx, or 304 from the
 * not-modified filter), not an error such as "cannot read the store".
 */

static void
ngx_http_ocimirror_manifest_count(ngx_http_request_t *r,
    ngx_http_ocimirror_counter_t counter, ngx_http_ocimirror_outcome_e outcome)
{
    ngx_uint_t  status;

    status = r->headers_out.status;

    if (r->header_sent
        && ((status >= NGX_HTTP_OK && status < NGX_HTTP_SPECIAL_RESPONSE)
            || status == NGX_HTTP_NOT_MODIFIED))
    {
        ngx_http_ocimirror_metrics_count(r, counter);
        ngx_http_ocimirror_outcome_set(r, outcome);
    }
}
