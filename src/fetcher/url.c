/*
 * Query arguments of upstream URLs (see url.h).
 */

#include <stdio.h>
#include <string.h>

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
