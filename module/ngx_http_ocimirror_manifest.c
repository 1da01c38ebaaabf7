/*
 * Manifests.
 *
 * By digest a manifest is immutable: the stored file and its media type
 * answer.  By tag the record must be fresh (younger than the registry's
 * tag_ttl), of a media type the client accepts, and its manifest must be
 * stored; otherwise the fetcher revalidates.  A client HEAD becomes a
 * MANIFEST with head=1 and is answered from META alone, so the upstream
 * sees a HEAD too; a GET is answered with the file META names.
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
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_fetcher.h"
#include "ngx_http_ocimirror_manifest.h"
#include "ngx_http_ocimirror_serve.h"


typedef struct {
    ngx_http_request_t          *request;
    ngx_http_ocimirror_wait_t    wait;
    const char                  *store;

    /* the tag record, if one the client accepts exists */
    ngx_uint_t                   has_record;
    char                         hex[OCI_SHA256_HEX_LEN + 1];
    ngx_str_t                    digest;
    ngx_str_t                    type;
} ngx_http_ocimirror_manifest_ctx_t;


static void ngx_http_ocimirror_manifest_accept(ngx_http_request_t *r,
    char *list, size_t cap);
static ngx_int_t ngx_http_ocimirror_manifest_stored(ngx_http_request_t *r,
    const char *store, const char *hex, ngx_str_t *digest, ngx_str_t *type,
    ngx_uint_t stale);
static ngx_int_t ngx_http_ocimirror_manifest_tagged(
    ngx_http_ocimirror_manifest_ctx_t *ctx, oci_route_t *route,
    const char *accept);
static ngx_int_t ngx_http_ocimirror_manifest_unavailable(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const char *message);
static void ngx_http_ocimirror_manifest_message(ngx_http_ocimirror_wait_t *w,
    const oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_manifest_meta(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const oci_msg_t *m);


ngx_int_t
ngx_http_ocimirror_manifest(ngx_http_request_t *r,
    ngx_http_ocimirror_main_conf_t *mcf, oci_route_t *route)
{
    char                               *accept;
    ngx_int_t                           rc;
    ngx_str_t                           digest;
    oci_msg_t                           m;
    ngx_http_ocimirror_loc_conf_t      *lcf;
    ngx_http_ocimirror_manifest_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_manifest_ctx_t));
    accept = ngx_pnalloc(r->pool, OCI_ACCEPT_MAX + 1);

    if (ctx == NULL || accept == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->store = mcf->oci->store_path;

    ngx_http_ocimirror_manifest_accept(r, accept, OCI_ACCEPT_MAX + 1);

    if (route->is_digest) {
        digest.data = (u_char *) route->reference;
        digest.len = ngx_strlen(route->reference);

        rc = ngx_http_ocimirror_manifest_stored(r, ctx->store, route->hex,
                                                &digest, NULL, 0);

    } else {
        rc = ngx_http_ocimirror_manifest_tagged(ctx, route, accept);
    }

    if (rc != NGX_DECLINED) {
        return rc;
    }

    /* ask the fetcher */

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ocimirror_module);

    ctx->wait.request = r;
    ctx->wait.handler = ngx_http_ocimirror_manifest_message;
    ctx->wait.data = ctx;
    ctx->wait.timeout = lcf->fetch_timeout;

    oci_msg_init(&m, OCI_MSG_MANIFEST, 0);

    ngx_cpystrn((u_char *) m.registry, (u_char *) route->registry->name,
                sizeof(m.registry));
    ngx_cpystrn((u_char *) m.name, (u_char *) route->name, sizeof(m.name));
    ngx_cpystrn((u_char *) m.reference, (u_char *) route->reference,
                sizeof(m.reference));
    ngx_cpystrn((u_char *) m.accept, (u_char *) accept, sizeof(m.accept));
    m.head = (r->method == NGX_HTTP_HEAD);

    if (mcf->link == NULL
        || ngx_http_ocimirror_link_request(mcf->link, &ctx->wait, &m)
           != NGX_OK)
    {
        return ngx_http_ocimirror_manifest_unavailable(ctx,
                                             "the fetcher is not available");
    }

    ngx_http_ocimirror_park(r);

    return NGX_DONE;
}


/* The media types of every Accept header, as one normalised list. */

static void
ngx_http_ocimirror_manifest_accept(ngx_http_request_t *r, char *list,
    size_t cap)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    list[0] = '\0';

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Accept") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Accept",
                               sizeof("Accept") - 1)
               != 0)
        {
            continue;
        }

        if (oci_accept_append(list, cap, (const char *) h[i].value.data,
                              h[i].value.len)
            != OCI_OK)
        {
            /* the list so far stays valid; the rest does not fit */
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "ocimirror: Accept list too long, truncated");
            break;
        }
    }
}


/*
 * Serve the stored manifest hex, with type, or with the media type stored
 * beside it if type is NULL.  NGX_DECLINED if it is not stored.
 */

static ngx_int_t
ngx_http_ocimirror_manifest_stored(ngx_http_request_t *r, const char *store,
    const char *hex, ngx_str_t *digest, ngx_str_t *type, ngx_uint_t stale)
{
    ngx_int_t             rc;
    ngx_str_t             path, stored;
    ngx_open_file_info_t  of;

    if (ngx_http_ocimirror_blob_path(r, store, hex, &path) != NGX_OK) {
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

        if (oci_store_type_read(store, hex, (char *) stored.data,
                                OCI_MEDIA_TYPE_MAX + 1)
            != OCI_OK)
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "ocimirror: no media type stored for manifest %s",
                          hex);
            return NGX_DECLINED;
        }

        stored.len = ngx_strlen(stored.data);
        type = &stored;
    }

    return ngx_http_ocimirror_serve_manifest(r, &of, &path, type, digest,
                                             stale);
}


/*
 * Serve a fresh tag record the client accepts.  NGX_DECLINED otherwise;
 * a record the client accepts is then kept in ctx for
 * ngx_http_ocimirror_manifest_unavailable().
 */

static ngx_int_t
ngx_http_ocimirror_manifest_tagged(ngx_http_ocimirror_manifest_ctx_t *ctx,
    oci_route_t *route, const char *accept)
{
    oci_registry_t      *reg;
    oci_tag_record_t     rec;
    ngx_http_request_t  *r;

    r = ctx->request;
    reg = route->registry;

    if (oci_tag_record_read(ctx->store, reg->name, route->name,
                            route->reference, &rec)
        != OCI_OK)
    {
        return NGX_DECLINED;
    }

    if (!oci_accept_allows(accept, rec.media_type)
        || oci_digest_parse(rec.digest, ngx_strlen(rec.digest), ctx->hex)
           != OCI_OK)
    {
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

    if ((long long) ngx_time() - rec.fetched_at >= reg->tag_ttl) {
        return NGX_DECLINED;
    }

    return ngx_http_ocimirror_manifest_stored(r, ctx->store, ctx->hex,
                                              &ctx->digest, &ctx->type, 0);
}


/* The fetcher cannot answer: an old record beats a 503. */

static ngx_int_t
ngx_http_ocimirror_manifest_unavailable(
    ngx_http_ocimirror_manifest_ctx_t *ctx, const char *message)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ctx->has_record) {
        rc = ngx_http_ocimirror_manifest_stored(r, ctx->store, ctx->hex,
                                                &ctx->digest, &ctx->type, 1);
        if (rc != NGX_DECLINED) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "ocimirror: stale %V served, fetcher unavailable",
                           &ctx->digest);
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

    ctx = w->data;
    r = ctx->request;

    switch (m->type) {

    case OCI_MSG_META:
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
        ngx_http_ocimirror_wait_done(w);

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "ocimirror: unexpected answer %d to MANIFEST",
                      m->type);

        rc = ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_GATEWAY,
                                           OCI_ERR_UPSTREAM,
                                           "unexpected answer from the "
                                           "fetcher");
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

    /* m is the link's buffer: keep copies */

    digest.data = ngx_pnalloc(r->pool, digest.len + type.len);
    if (digest.data == NULL) {
        return NGX_ERROR;
    }

    type.data = ngx_cpymem(digest.data, m->digest, digest.len);
    ngx_memcpy(type.data, m->media_type, type.len);

    if (r->method != NGX_HTTP_HEAD) {
        rc = ngx_http_ocimirror_manifest_stored(r, ctx->store, hex, &digest,
                                                &type, m->stale);

        if (rc != NGX_DECLINED) {
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

    return ngx_http_send_header(r);
}
