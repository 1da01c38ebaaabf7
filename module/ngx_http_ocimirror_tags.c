/*
 * Tag lists.  The fetcher writes the list to a temp file and answers
 * BODY, which is sent as a file buffer (ngx_http_ocimirror_body.h) with
 * the next page's Link rewritten for the client.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_ref.h"
#include "ngx_http_ocimirror_body.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_serve.h"
#include "ngx_http_ocimirror_tags.h"


/* what the Link of the next page is made of */
typedef struct {
    oci_route_t                 *route;
    ngx_str_t                    ns;
} ngx_http_ocimirror_tags_ctx_t;


static ngx_int_t ngx_http_ocimirror_tags_headers(ngx_http_request_t *r,
    const oci_msg_t *m, void *data);
static ngx_int_t ngx_http_ocimirror_tags_link(ngx_http_request_t *r,
    ngx_http_ocimirror_tags_ctx_t *ctx, const char *next);


static const ngx_http_ocimirror_body_kind_t  ngx_http_ocimirror_tags_kind = {
    "TAGS",
    "tag list",
    "cannot read the tag list",
    ngx_string("application/json"),
    ngx_http_ocimirror_tags_headers
};


ngx_int_t
ngx_http_ocimirror_tags(ngx_http_request_t *r, oci_route_t *route,
    ngx_str_t *ns)
{
    ngx_int_t                       n;
    ngx_str_t                       value;
    oci_msg_t                       m;
    ngx_http_ocimirror_tags_ctx_t  *ctx;

    oci_msg_init(&m, OCI_MSG_TAGS, 0);

    m.n = -1;

    if (ngx_http_arg(r, (u_char *) "n", 1, &value) == NGX_OK
        && value.len)
    {
        n = ngx_atoi(value.data, value.len);

        if (n == NGX_ERROR) {
            return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                 OCI_ERR_UNSUPPORTED,
                                                 "n must be a non-negative "
                                                 "integer");
        }

        m.n = n;
    }

    if (ngx_http_arg(r, (u_char *) "last", 4, &value) == NGX_OK
        && value.len)
    {
        if (!oci_tag_valid((const char *) value.data, value.len)) {
            return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_REQUEST,
                                                 OCI_ERR_UNSUPPORTED,
                                                 "last must be a valid tag");
        }

        ngx_memcpy(m.last, value.data, value.len);
        m.last[value.len] = '\0';
    }

    ngx_cpystrn((u_char *) m.registry, (u_char *) route->registry->name,
                sizeof(m.registry));
    ngx_cpystrn((u_char *) m.name, (u_char *) route->name, sizeof(m.name));

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ocimirror_tags_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->route = route;
    ctx->ns = *ns;

    return ngx_http_ocimirror_ask_body(r, &ngx_http_ocimirror_tags_kind, ctx,
                                       &m);
}


/* The upstream's status (forwarded) and the next page's Link. */

static ngx_int_t
ngx_http_ocimirror_tags_headers(ngx_http_request_t *r, const oci_msg_t *m,
    void *data)
{
    if (m->status >= NGX_HTTP_OK && m->status < 600) {
        r->headers_out.status = m->status;
    }

    if (m->next[0] == '\0') {
        return NGX_OK;
    }

    return ngx_http_ocimirror_tags_link(r, data, m->next);
}


/* Link: </v2/<client-prefix><name>/tags/list?<next>[&ns=..]>; rel="next" */

static ngx_int_t
ngx_http_ocimirror_tags_link(ngx_http_request_t *r,
    ngx_http_ocimirror_tags_ctx_t *ctx, const char *next)
{
    size_t        len;
    u_char       *p;
    ngx_str_t     value;
    oci_route_t  *route;

    route = ctx->route;

    len = sizeof("</v2/") - 1 + ngx_strlen(route->client_prefix)
          + ngx_strlen(route->name) + sizeof("/tags/list?") - 1
          + ngx_strlen(next) + sizeof("&ns=") - 1 + ctx->ns.len
          + sizeof(">; rel=\"next\"") - 1;

    value.data = ngx_pnalloc(r->pool, len);
    if (value.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(value.data, "</v2/%s%s/tags/list?%s",
                    route->client_prefix, route->name, next);

    /* containerd names the registry in ?ns=: the next page needs it too */

    if (ctx->ns.len) {
        p = ngx_sprintf(p, "&ns=%V", &ctx->ns);
    }

    p = ngx_cpymem(p, ">; rel=\"next\"", sizeof(">; rel=\"next\"") - 1);

    value.len = p - value.data;

    return ngx_http_ocimirror_add_header(r, "Link", &value);
}
