/*
 * WWW-Authenticate challenges (RFC 7235 auth-params) and the Docker token
 * endpoint's JSON answer.
 */

#include <limits.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "oci_auth.h"


#define OCI_TOKEN_DEFAULT_EXPIRES  60


typedef struct {
    const char  *p;
    const char  *end;
} oci_auth_cur_t;


static int oci_auth_is_tchar(int c);
static int oci_auth_is_ows(int c);
static void oci_auth_skip_ows(oci_auth_cur_t *c);
static size_t oci_auth_token(oci_auth_cur_t *c);
static int oci_auth_value(oci_auth_cur_t *c, char *out, size_t cap,
    int store);


/* RFC 7230 tchar */
static int
oci_auth_is_tchar(int c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


static int
oci_auth_is_ows(int c)
{
    return c == ' ' || c == '\t';
}


static void
oci_auth_skip_ows(oci_auth_cur_t *c)
{
    while (c->p < c->end && oci_auth_is_ows((unsigned char) *c->p)) {
        c->p++;
    }
}


/* length of the token at the cursor (the cursor moves past it) */
static size_t
oci_auth_token(oci_auth_cur_t *c)
{
    const char  *start;

    start = c->p;

    while (c->p < c->end && oci_auth_is_tchar((unsigned char) *c->p)) {
        c->p++;
    }

    return (size_t) (c->p - start);
}


/*
 * A parameter value: a quoted-string (backslash escapes any byte) or a
 * bare value.  With store, the unescaped value goes to out; OCI_ERANGE if it
 * does not fit.
 */
static int
oci_auth_value(oci_auth_cur_t *c, char *out, size_t cap, int store)
{
    const char  *start;
    size_t       n;
    int          ch;

    n = 0;

    if (c->p < c->end && *c->p == '"') {
        c->p++;

        for ( ;; ) {
            if (c->p == c->end) {
                return OCI_EINVAL;          /* unterminated */
            }

            ch = (unsigned char) *c->p++;

            if (ch == '"') {
                break;
            }

            if (ch == '\\') {
                if (c->p == c->end) {
                    return OCI_EINVAL;
                }
                ch = (unsigned char) *c->p++;
            }

            /* qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text */
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                return OCI_EINVAL;
            }

            if (store) {
                if (n + 1 >= cap) {
                    return OCI_ERANGE;
                }
                out[n++] = (char) ch;
            }
        }

    } else {
        /*
         * RFC 7235 wants a token here, but registries have been seen to
         * send bare URLs: any visible ASCII up to the next ',' is taken.
         */

        start = c->p;

        while (c->p < c->end) {
            ch = (unsigned char) *c->p;

            if (ch <= 0x20 || ch >= 0x7f || ch == ',' || ch == '"'
                || ch == '\\')
            {
                break;
            }

            c->p++;
        }

        n = (size_t) (c->p - start);

        if (n == 0) {
            return OCI_EINVAL;
        }

        if (store) {
            if (n >= cap) {
                return OCI_ERANGE;
            }
            memcpy(out, start, n);
        }
    }

    if (store) {
        out[n] = '\0';
    }

    return OCI_OK;
}


int
oci_auth_parse_challenge(const char *s, size_t len, oci_challenge_t *out)
{
    oci_auth_cur_t   c;
    const char      *name;
    char            *dst;
    size_t           nlen, cap;
    unsigned         seen, bit;
    int              rc, comma;

    memset(out, 0, sizeof(oci_challenge_t));

    if (s == NULL) {
        return OCI_EINVAL;
    }

    c.p = s;
    c.end = s + len;

    oci_auth_skip_ows(&c);

    name = c.p;
    nlen = oci_auth_token(&c);

    if (nlen == 6 && strncasecmp(name, "bearer", 6) == 0) {
        out->scheme = OCI_AUTH_BEARER;

    } else if (nlen == 5 && strncasecmp(name, "basic", 5) == 0) {
        out->scheme = OCI_AUTH_BASIC;

    } else {
        return OCI_EINVAL;
    }

    if (c.p < c.end && !oci_auth_is_ows((unsigned char) *c.p)) {
        return OCI_EINVAL;
    }

    seen = 0;

    for ( ;; ) {
        /* empty list elements (", ,") are allowed by the #rule */

        oci_auth_skip_ows(&c);

        comma = 0;

        while (c.p < c.end && *c.p == ',') {
            c.p++;
            comma = 1;
            oci_auth_skip_ows(&c);
        }

        if (c.p == c.end) {
            break;
        }

        name = c.p;
        nlen = oci_auth_token(&c);

        if (nlen == 0) {
            return OCI_EINVAL;
        }

        oci_auth_skip_ows(&c);

        if (c.p == c.end || *c.p != '=') {
            /*
             * "Bearer realm=..., Basic realm=...": a token and blank
             * not followed by '=' starts the next challenge; only the
             * first one is used.
             */
            if (comma && c.p > name + nlen) {
                break;
            }

            return OCI_EINVAL;
        }

        c.p++;
        oci_auth_skip_ows(&c);

        dst = NULL;
        cap = 0;
        bit = 0;

        if (nlen == 5 && strncasecmp(name, "realm", 5) == 0) {
            dst = out->realm;
            cap = sizeof(out->realm);
            bit = 1;

        } else if (nlen == 7 && strncasecmp(name, "service", 7) == 0) {
            dst = out->service;
            cap = sizeof(out->service);
            bit = 2;

        } else if (nlen == 5 && strncasecmp(name, "scope", 5) == 0) {
            dst = out->scope;
            cap = sizeof(out->scope);
            bit = 4;
        }

        if (seen & bit) {
            return OCI_EINVAL;          /* a parameter given twice */
        }

        seen |= bit;

        rc = oci_auth_value(&c, dst, cap, dst != NULL);

        if (rc != OCI_OK) {
            return rc;
        }

        oci_auth_skip_ows(&c);

        if (c.p < c.end && *c.p != ',') {
            return OCI_EINVAL;
        }
    }

    if (out->scheme == OCI_AUTH_BEARER && out->realm[0] == '\0') {
        return OCI_EINVAL;
    }

    return OCI_OK;
}


int
oci_auth_parse_token(const char *json, size_t len, char *token, size_t cap,
    long *expires_in)
{
    json_t        *root, *v;
    json_error_t   jerr;
    const char    *str;
    size_t         n, i;
    json_int_t     secs;
    int            rc;

    if (json == NULL || len == 0 || token == NULL || cap == 0) {
        return OCI_EINVAL;
    }

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        return OCI_EINVAL;
    }

    rc = OCI_EINVAL;

    if (!json_is_object(root)) {
        goto done;
    }

    /* "token" wins; "access_token" is the OAuth 2 name of the same */

    v = json_object_get(root, "token");

    if (v == NULL || (json_is_string(v) && json_string_length(v) == 0)) {
        v = json_object_get(root, "access_token");
    }

    if (v == NULL || !json_is_string(v)) {
        goto done;
    }

    str = json_string_value(v);
    n = json_string_length(v);

    if (n == 0) {
        goto done;
    }

    /* it goes into an Authorization header: visible ASCII only */
    for (i = 0; i < n; i++) {
        if ((unsigned char) str[i] <= 0x20 || (unsigned char) str[i] >= 0x7f) {
            goto done;
        }
    }

    secs = OCI_TOKEN_DEFAULT_EXPIRES;
    v = json_object_get(root, "expires_in");

    if (v != NULL && !json_is_null(v)) {
        if (json_is_integer(v)) {
            secs = json_integer_value(v);

        } else if (json_is_real(v) && json_real_value(v) >= 0
                   && json_real_value(v) < 1e15)
        {
            secs = (json_int_t) json_real_value(v);

        } else {
            goto done;
        }

        if (secs < 0) {
            goto done;
        }

        if (secs > LONG_MAX) {
            secs = LONG_MAX;
        }
    }

    if (n >= cap) {
        rc = OCI_ERANGE;
        goto done;
    }

    memcpy(token, str, n);
    token[n] = '\0';

    if (expires_in != NULL) {
        *expires_in = (long) secs;
    }

    rc = OCI_OK;

done:

    json_decref(root);

    return rc;
}
