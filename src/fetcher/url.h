/*
 * Query arguments of upstream URLs: the tag list's n and last, the token
 * request's service and scope.
 *
 * Its own unit rather than part of xfer.c: token.c and tags.c use it, and
 * their unit tests replace xfer.c with fakes.
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

#endif /* FETCHER_URL_H */
