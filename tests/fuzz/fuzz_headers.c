/*
 * An upstream's answer as the fetcher reads it (src/fetcher/xfer.c,
 * xfer_header_cb() and xfer_write_cb(), the callbacks libcurl calls):
 * the status line and the header fields, among them Content-Range
 * (ranged blob downloads), Retry-After (429s), Link (list pages),
 * WWW-Authenticate, Content-Length and RateLimit-*, then the start of an
 * error body.  A real transfer is set up (to a loopback port, never
 * started: the loop is not run, so nothing is sent) and its callbacks
 * are fed as curl would.
 *
 * Input: header lines, each ending in '\n' as curl hands them over; an
 * empty line ends the block and what follows is the body.  Each input is
 * a fresh answer: "HTTP/1.1 200 OK" is fed first (the input may bring
 * another status line).
 * Checks: what xfer_resp_t says is within its bounds: a status of 100
 * to 999 or none, a Content-Range of first <= last < total, a
 * Retry-After of at most a day, NUL-ended fields, an error body of at
 * most XFER_ERRBODY_MAX bytes.
 */

#include <string.h>

#include <curl/curl.h>

#include "fuzz.h"
#include "loop.h"
#include "oci_config.h"
#include "xfer.h"


static loop_t        *fuzz_loop;
static oci_config_t   fuzz_cf;
static xfer_multi_t  *fuzz_xm;
static xfer_t        *fuzz_x;


static int
fuzz_on_headers(xfer_t *x, void *data)
{
    return 0;
}


static int
fuzz_on_body(xfer_t *x, const char *p, size_t n, void *data)
{
    return 0;
}


static void
fuzz_on_done(xfer_t *x, CURLcode rc, void *data)
{
    /* never called: the transfer is never run */
    abort();
}


static const xfer_handler_t  fuzz_handler = {
    fuzz_on_headers, fuzz_on_body, fuzz_on_done
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    xfer_req_t  req;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return -1;
    }

    fuzz_cf.max_transfers = 1;
    fuzz_cf.connect_timeout = 10;
    fuzz_cf.low_speed_time = 30;

    fuzz_loop = loop_create();
    if (fuzz_loop == NULL) {
        return -1;
    }

    fuzz_xm = xfer_multi_create(fuzz_loop, &fuzz_cf);
    if (fuzz_xm == NULL) {
        return -1;
    }

    memset(&req, 0, sizeof(req));
    req.url = "http://127.0.0.1:9/v2/a/blobs/sha256:"
              "0123456789abcdef0123456789abcdef"
              "0123456789abcdef0123456789abcdef";
    req.prio = XFER_PRIO_CLIENT;

    fuzz_x = xfer_start(fuzz_xm, &req, &fuzz_handler, NULL);

    return fuzz_x != NULL ? 0 : -1;
}


/* curl hands each line over in a buffer of its own, not NUL-ended */
static size_t
fuzz_feed(size_t (*cb)(char *, size_t, size_t, void *), const char *p,
    size_t n)
{
    char    *buf;
    size_t   rc;

    buf = malloc(n > 0 ? n : 1);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, p, n);
    rc = cb(buf, 1, n, fuzz_x);
    free(buf);

    return rc;
}


static void
fuzz_check_resp(const xfer_resp_t *r)
{
    FUZZ_CHECK(r->status == 0 || (r->status >= 100 && r->status <= 999));
    FUZZ_CHECK(r->content_length >= -1);

    FUZZ_CHECK(r->range_first >= -1 && r->range_last >= -1
               && r->range_total >= -1);
    FUZZ_CHECK((r->range_first == -1) == (r->range_last == -1));
    FUZZ_CHECK(r->range_first <= r->range_last);
    FUZZ_CHECK(r->range_last == -1 || r->range_total == -1
               || r->range_last < r->range_total);

    FUZZ_CHECK(r->retry_after >= -1 && r->retry_after <= 86400);
    FUZZ_CHECK(r->ratelimit_limit >= -1 && r->ratelimit_remaining >= -1);

    FUZZ_CHECK(strnlen(r->content_type, sizeof(r->content_type))
               < sizeof(r->content_type));
    FUZZ_CHECK(strnlen(r->digest, sizeof(r->digest)) < sizeof(r->digest));
    FUZZ_CHECK(strnlen(r->www_authenticate, sizeof(r->www_authenticate))
               < sizeof(r->www_authenticate));
    FUZZ_CHECK(strnlen(r->link, sizeof(r->link)) < sizeof(r->link));
    FUZZ_CHECK(r->body_len <= XFER_ERRBODY_MAX);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char   status[] = "HTTP/1.1 200 OK\r\n";
    const char         *p, *end, *nl;
    size_t              n, rc;
    int                 body;

    fuzz_feed(xfer_header_cb, status, sizeof(status) - 1);

    p = (const char *) data;
    end = p + size;
    body = 0;

    while (p < end && !body) {
        nl = memchr(p, '\n', (size_t) (end - p));
        n = nl != NULL ? (size_t) (nl + 1 - p) : (size_t) (end - p);

        /* an empty line ends the block, as curl's last header call */
        body = (n == 1 || (n == 2 && p[0] == '\r')) && nl != NULL;

        rc = fuzz_feed(xfer_header_cb, p, n);
        FUZZ_CHECK(rc == n || rc == 0);

        p += n;
    }

    fuzz_check_resp(xfer_response(fuzz_x));

    if (body && p < end) {
        (void) fuzz_feed(xfer_write_cb, p, (size_t) (end - p));
        fuzz_check_resp(xfer_response(fuzz_x));
    }

    return 0;
}
