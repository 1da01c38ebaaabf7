/*
 * Parsing of an upstream's WWW-Authenticate challenge and of a token
 * endpoint's JSON answer (the Docker token flow that Docker Hub, ghcr.io
 * and quay.io require, anonymous for now).
 */

#ifndef OCI_AUTH_H
#define OCI_AUTH_H

#include "oci.h"

typedef enum {
    OCI_AUTH_NONE = 0,
    OCI_AUTH_BASIC,
    OCI_AUTH_BEARER
} oci_auth_scheme_t;

typedef struct {
    oci_auth_scheme_t  scheme;
    char               realm[1024];
    char               service[256];
    char               scope[512];
} oci_challenge_t;

/*
 * Parse one WWW-Authenticate value, e.g.
 *   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",
 *          scope="repository:library/nginx:pull"
 * Parameter names are case-insensitive, values quoted or bare, quoted
 * values may hold backslash escapes and commas.  Unknown parameters are
 * ignored.  Returns OCI_OK, OCI_EINVAL (malformed or unknown scheme) or
 * OCI_ERANGE (a value too long).
 */
int oci_auth_parse_challenge(const char *s, size_t len, oci_challenge_t *out);

/*
 * Parse a token endpoint's JSON: {"token":..} or {"access_token":..},
 * "expires_in" seconds (default 60 when absent, as the spec says).
 * Returns OCI_OK or OCI_EINVAL / OCI_ERANGE.
 */
int oci_auth_parse_token(const char *json, size_t len, char *token,
    size_t cap, long *expires_in);

#endif /* OCI_AUTH_H */
