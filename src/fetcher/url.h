/*
 * Upstream URLs: query arguments (the tag list's n and last, the token
 * request's service and scope), origins (whether a URL is on a
 * registry's own scheme, host and port, where its credentials may go),
 * hosts, and the addresses a redirect must not lead to.
 *
 * Its own unit rather than part of xfer.c: token.c, job_auth.c, blob.c and
 * tags.c use it, and their unit tests replace xfer.c with fakes.
 */

#ifndef FETCHER_URL_H
#define FETCHER_URL_H

#include <stddef.h>

#include <curl/curl.h>

/* Append "?name=<escaped value>" to url, or "&name=..." if url already
 * has a query; easy is any handle (curl_easy_escape() wants one).  0, or
 * -1 if escaping failed or the result does not fit in cap bytes (url is
 * then cut short, still terminated). */
int url_add_query_arg(CURL *easy, char *url, size_t cap, const char *name,
    const char *value);

/* 1 if both URLs have the same scheme, host and port (case aside, a
 * default port written out or not), 0 if not or if one does not parse. */
int url_same_origin(const char *a, const char *b);

/* "scheme://host:port" of url, lower case, the port always written.  0,
 * or -1 if url does not parse or out is too small. */
int url_origin(const char *url, char *out, size_t cap);

/* The scheme ("http", "https") and the host of url, lower case (an IPv6
 * address without its brackets).  0, or -1 if url does not parse or a
 * buffer is too small. */
int url_scheme_host(const char *url, char *scheme, size_t scap, char *host,
    size_t hcap);

/*
 * The kind of a numeric address (IPv4, or IPv6 with or without brackets;
 * an IPv4-mapped IPv6 address counts as its IPv4 address) that a redirect
 * must not lead to: "loopback" (127.0.0.0/8, ::1), "link-local"
 * (169.254.0.0/16, fe80::/10), "private" (10.0.0.0/8, 172.16.0.0/12,
 * 192.168.0.0/16, 100.64.0.0/10, fc00::/7) or "unspecified" (0.0.0.0/8,
 * ::).  NULL for any other address, and for what is not a numeric
 * address (a host name).
 */
const char *url_address_local(const char *addr);

#endif /* FETCHER_URL_H */
