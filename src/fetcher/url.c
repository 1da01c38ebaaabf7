/*
 * Query arguments and origins of upstream URLs (see url.h).
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

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


/* The scheme, host (an IPv6 address without its brackets) and port (the
 * scheme's default if none is written) of url, lower case.  0, or -1 if
 * url does not parse or a buffer is too small. */
static int
url_parts(const char *url, char *scheme, size_t scap, char *host,
    size_t hcap, char *port, size_t pcap)
{
    CURLU   *u;
    char    *sc, *h, *po, *p;
    size_t   len;
    int      rc;

    u = curl_url();
    if (u == NULL) {
        return -1;
    }

    sc = NULL;
    h = NULL;
    po = NULL;
    rc = -1;

    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_SCHEME, &sc, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_PORT, &po, CURLU_DEFAULT_PORT)
           == CURLUE_OK)
    {
        p = h;
        len = strlen(h);

        if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
            p++;
            len -= 2;
        }

        if (strlen(sc) < scap && len < hcap && strlen(po) < pcap) {
            snprintf(scheme, scap, "%s", sc);
            memcpy(host, p, len);
            host[len] = '\0';
            snprintf(port, pcap, "%s", po);
            rc = 0;
        }
    }

    curl_free(sc);
    curl_free(h);
    curl_free(po);
    curl_url_cleanup(u);

    if (rc == 0) {
        for (p = scheme; *p != '\0'; p++) {
            *p = (char) tolower((unsigned char) *p);
        }

        for (p = host; *p != '\0'; p++) {
            *p = (char) tolower((unsigned char) *p);
        }
    }

    return rc;
}


int
url_origin(const char *url, char *out, size_t cap)
{
    char  scheme[16], host[OCI_HOST_MAX + 1], port[8];
    int   n;

    if (url_parts(url, scheme, sizeof(scheme), host, sizeof(host), port,
                  sizeof(port))
        != 0)
    {
        return -1;
    }

    n = snprintf(out, cap, strchr(host, ':') != NULL ? "%s://[%s]:%s"
                                                     : "%s://%s:%s",
                 scheme, host, port);

    return (n < 0 || (size_t) n >= cap) ? -1 : 0;
}


int
url_same_origin(const char *a, const char *b)
{
    char  oa[OCI_HOST_MAX + 64], ob[OCI_HOST_MAX + 64];

    return url_origin(a, oa, sizeof(oa)) == 0
           && url_origin(b, ob, sizeof(ob)) == 0
           && strcmp(oa, ob) == 0;
}


int
url_scheme_host(const char *url, char *scheme, size_t scap, char *host,
    size_t hcap)
{
    char  port[8];

    return url_parts(url, scheme, scap, host, hcap, port, sizeof(port));
}


static const char *
url_ipv4_local(const unsigned char *a)
{
    if (a[0] == 127) {
        return "loopback";
    }

    if (a[0] == 169 && a[1] == 254) {
        return "link-local";
    }

    if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16)
        || (a[0] == 192 && a[1] == 168)
        || (a[0] == 100 && (a[1] & 0xc0) == 64))
    {
        return "private";
    }

    if (a[0] == 0) {
        return "unspecified";
    }

    return NULL;
}


const char *
url_address_local(const char *addr)
{
    static const unsigned char  mapped[12] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
    };
    static const unsigned char  zero[16];

    unsigned char  a[16];
    char           buf[INET6_ADDRSTRLEN + 1];
    size_t         len;

    len = strlen(addr);

    if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
        addr++;
        len -= 2;
    }

    if (len >= sizeof(buf)) {
        return NULL;
    }

    memcpy(buf, addr, len);
    buf[len] = '\0';

    if (inet_pton(AF_INET, buf, a) == 1) {
        return url_ipv4_local(a);
    }

    if (inet_pton(AF_INET6, buf, a) != 1) {
        return NULL;
    }

    if (memcmp(a, mapped, sizeof(mapped)) == 0) {
        return url_ipv4_local(a + 12);
    }

    if (memcmp(a, zero, 15) == 0) {
        return a[15] == 1 ? "loopback" : a[15] == 0 ? "unspecified" : NULL;
    }

    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) {
        return "link-local";
    }

    if ((a[0] & 0xfe) == 0xfc) {
        return "private";
    }

    return NULL;
}
