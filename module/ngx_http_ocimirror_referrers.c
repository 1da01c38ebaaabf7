/*
 * Referrers.  The fetcher writes the image index, already filtered by
 * the artifact type, to a temp file and answers BODY, which is sent as
 * a file buffer (ngx_http_ocimirror_body.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "oci_ref.h"
#include "ngx_http_ocimirror_body.h"
#include "ngx_http_ocimirror_error.h"
#include "ngx_http_ocimirror_referrers.h"
#include "ngx_http_ocimirror_serve.h"


static ngx_int_t ngx_http_ocimirror_referrers_type(ngx_http_request_t *r,
    oci_msg_t *m);
static ngx_int_t ngx_http_ocimirror_referrers_filtered(
    ngx_http_request_t *r, const oci_msg_t *m, void *data);


/* [0]: every referrer; [1]: those of the artifactType asked for */

static const ngx_http_ocimirror_body_kind_t
    ngx_http_ocimirror_referrers_kinds[] =
{
    { "REFERRERS", "referrers index", "cannot read the referrers",
      ngx_string(OCI_MT_OCI_INDEX), NULL },
    { "REFERRERS", "referrers index", "cannot read the referrers",
      ngx_string(OCI_MT_OCI_INDEX), ngx_http_ocimirror_referrers_filtered }
};


ngx_int_t
ngx_http_ocimirror_referrers(ngx_http_request_t *r, oci_route_t *route)
{
    ngx_int_t    rc;
    oci_msg_t    m;
    ngx_uint_t   filtered;

    oci_msg_init(&m, OCI_MSG_REFERRERS, 0);

    rc = ngx_http_ocimirror_referrers_type(r, &m);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_ocimirror_send_error(r, NGX_HTTP_BAD_REQUEST,
                                             OCI_ERR_UNSUPPORTED,
                                             "artifactType must be a media "
                                             "type");
    }

    ngx_cpystrn((u_char *) m.registry, (u_char *) route->registry->name,
                sizeof(m.registry));
    ngx_cpystrn((u_char *) m.name, (u_char *) route->name, sizeof(m.name));
    ngx_cpystrn((u_char *) m.reference, (u_char *) route->reference,
                sizeof(m.reference));

    filtered = (m.artifact_type[0] != '\0');

    return ngx_http_ocimirror_ask_body(r,
                                 &ngx_http_ocimirror_referrers_kinds[filtered],
                                 NULL, &m);
}


/*
 * The artifactType argument, percent-decoded (clients escape its '/' and
 * '+'), into m->artifact_type; absent or empty: no filter.  NGX_OK,
 * NGX_DECLINED if it is no media type, NGX_ERROR.
 */
static ngx_int_t
ngx_http_ocimirror_referrers_type(ngx_http_request_t *r, oci_msg_t *m)
{
    u_char     *buf, *dst, *src;
    size_t      len;
    ngx_str_t   value;

    if (ngx_http_arg(r, (u_char *) "artifactType", 12, &value) != NGX_OK
        || value.len == 0)
    {
        return NGX_OK;
    }

    /* an escape takes three bytes: longer than this is too long anyway */
    if (value.len > 3 * OCI_MEDIA_TYPE_MAX) {
        return NGX_DECLINED;
    }

    /* decoding never makes a value longer */
    buf = ngx_pnalloc(r->pool, value.len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    dst = buf;
    src = value.data;

    ngx_unescape_uri(&dst, &src, value.len, 0);

    len = dst - buf;

    if (len > OCI_MEDIA_TYPE_MAX
        || !oci_media_type_valid((const char *) buf, len))
    {
        return NGX_DECLINED;
    }

    ngx_memcpy(m->artifact_type, buf, len);
    m->artifact_type[len] = '\0';

    return NGX_OK;
}


/* The filter asked for was applied: say so. */

static ngx_int_t
ngx_http_ocimirror_referrers_filtered(ngx_http_request_t *r,
    const oci_msg_t *m, void *data)
{
    static ngx_str_t  filters = ngx_string("artifactType");

    return ngx_http_ocimirror_add_header(r, "OCI-Filters-Applied", &filters);
}
