/*
 * Query arguments and origins of upstream URLs (see url.h).
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "oci.h"
#include "url.h"


int
url_add_query_arg(CURL *easy, char *url, size_t cap, const char *name,
    const char *value)
{
    char    *esc;
    size_t   len;
    int      n;

    esc = curl_easy_escape(easy, value, 0);
    if (esc == NULL) {
        return -1;
    }

    len = strlen(url);
    n = snprintf(url + len, cap - len, "%c%s=%s",
                 strchr(url, '?') != NULL ? '&' : '?', name, esc);
    curl_free(esc);

    return (n < 0 || (size_t) n >= cap - len) ? -1 : 0;
}


/* The scheme, host and port of url, lower case, in one string.  0, or -1
 * if url does not parse. */
static int
url_origin(const char *url, char *out, size_t cap)
{
    CURLU  *u;
    char   *scheme, *host, *port;
    int     n;

    u = curl_url();
    if (u == NULL) {
        return -1;
    }

    scheme = NULL;
    host = NULL;
    port = NULL;
    n = -1;

    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)
           == CURLUE_OK)
    {
        n = snprintf(out, cap, "%s://%s:%s", scheme, host, port);
    }

    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);

    if (n < 0 || (size_t) n >= cap) {
        return -1;
    }

    for ( /* void */ ; *out != '\0'; out++) {
        *out = (char) tolower((unsigned char) *out);
    }

    return 0;
}


int
url_same_origin(const char *a, const char *b)
{
    char  oa[OCI_HOST_MAX + 64], ob[OCI_HOST_MAX + 64];

    return url_origin(a, oa, sizeof(oa)) == 0
           && url_origin(b, ob, sizeof(ob)) == 0
           && strcmp(oa, ob) == 0;
}
