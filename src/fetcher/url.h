/*
 * Upstream URLs: query arguments (the tag list's n and last, the token
 * request's service and scope) and origins (whether a URL is on a
 * registry's own scheme, host and port, where its credentials may go).
 *
 * Its own unit rather than part of xfer.c: token.c, auth.c, blob.c and
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

#endif /* FETCHER_URL_H */
