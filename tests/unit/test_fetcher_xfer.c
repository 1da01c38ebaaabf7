/*
 * Unit tests for src/fetcher/xfer.c without a network: transfers are set
 * up with xfer_start() on a real multi handle, and curl's header and write
 * callbacks are fed answers by hand, one exactly sized buffer (not
 * NUL-terminated, as curl passes them) per call.  The few tests that need
 * curl itself to run a transfer talk to a one-answer HTTP server on a
 * loopback port chosen by the kernel.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "test_curl.h"
#include "oci_config.h"
#include "loop.h"
#include "stats.h"
#include "xfer.h"


#define HEX64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIGEST  "sha256:" HEX64


typedef struct {
    loop_t         *loop;
    oci_config_t    cf;
    xfer_multi_t   *xm;
    xfer_t         *x;
    int             headers;        /* calls of the headers callback */
    long            headers_status; /* the status it saw */
    int             headers_rc;     /* what it returns */
    int             body_rc;
    char            body[256];
    size_t          body_len;
    int             done;
    xfer_t         *done_order[16];  /* transfers in the order they ended */
} fixture_t;


static int
on_headers(xfer_t *x, void *data)
{
    fixture_t  *f = data;

    f->headers++;
    f->headers_status = xfer_response(x)->status;

    return f->headers_rc;
}


static int
on_body(xfer_t *x, const char *p, size_t n, void *data)
{
    fixture_t  *f = data;

    if (f->body_rc != 0) {
        return f->body_rc;
    }

    assert_true(f->body_len + n <= sizeof(f->body));
    memcpy(f->body + f->body_len, p, n);
    f->body_len += n;

    return 0;
}


static void
on_done(xfer_t *x, CURLcode rc, void *data)
{
    fixture_t  *f = data;

    if (f->done < 16) {
        f->done_order[f->done] = x;
    }

    f->done++;
}


static const xfer_handler_t  handler = { on_headers, on_body, on_done };


static xfer_t *
start_prio(fixture_t *f, const char *url, xfer_prio_t prio, int urgent)
{
    xfer_req_t  req;
    xfer_t     *x;

    memset(&req, 0, sizeof(req));
    req.url = url;
    req.accept = "application/json";
    req.bearer = "secret-token";
    req.prio = prio;
    req.urgent = urgent;

    x = xfer_start(f->xm, &req, &handler, f);
    assert_non_null(x);

    return x;
}


static xfer_t *
start(fixture_t *f, const char *url, int urgent)
{
    return start_prio(f, url, XFER_PRIO_CLIENT, urgent);
}


static int
setup(void **state)
{
    fixture_t  *f;

    f = calloc(1, sizeof(fixture_t));
    assert_non_null(f);

    f->cf.max_transfers = 1;
    f->cf.connect_timeout = 10;
    f->cf.low_speed_time = 30;

    f->loop = loop_create();
    assert_non_null(f->loop);
    f->xm = xfer_multi_create(f->loop, &f->cf);
    assert_non_null(f->xm);

    f->x = start(f, "http://127.0.0.1:9/v2/a/manifests/v1", 0);

    *state = f;
    return 0;
}


static int
teardown(void **state)
{
    fixture_t  *f = *state;

    /* aborting never calls done */
    xfer_multi_destroy(f->xm);
    assert_int_equal(f->done, 0);

    loop_destroy(f->loop);
    free(f);

    return 0;
}


/* One header line, as curl hands it over: exactly len bytes, no NUL. */
static size_t
feed(xfer_t *x, const char *line)
{
    size_t   len, rc;
    char    *buf;

    len = strlen(line);
    buf = malloc(len > 0 ? len : 1);
    assert_non_null(buf);
    memcpy(buf, line, len);

    rc = xfer_header_cb(buf, 1, len, x);

    free(buf);
    return rc;
}


static void
feed_ok(xfer_t *x, const char *line)
{
    assert_int_equal(feed(x, line), strlen(line));
}


static size_t
write_body(xfer_t *x, const char *p, size_t n)
{
    char    *buf;
    size_t   rc;

    buf = malloc(n > 0 ? n : 1);
    assert_non_null(buf);
    memcpy(buf, p, n);

    rc = xfer_write_cb(buf, 1, n, x);

    free(buf);
    return rc;
}


static void
test_fresh_response(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);

    assert_int_equal(r->status, 0);
    assert_true(r->content_length == -1);
    assert_string_equal(r->content_type, "");
    assert_string_equal(r->digest, "");
    assert_string_equal(r->www_authenticate, "");
    assert_string_equal(r->link, "");
    assert_true(r->range_first == -1 && r->range_last == -1
                && r->range_total == -1);
    assert_null(r->body);
    assert_int_equal(r->body_len, 0);
    assert_true(r->bytes == 0);
}


static void
test_header_block(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);

    feed_ok(f->x, "HTTP/1.1 200 OK\r\n");
    assert_int_equal(r->status, 200);

    feed_ok(f->x, "Content-Length: 1234\r\n");
    feed_ok(f->x, "content-type: application/vnd.oci.image.manifest.v1+json;"
                  " charset=utf-8\r\n");
    feed_ok(f->x, "DOCKER-CONTENT-DIGEST:" DIGEST "\r\n");
    feed_ok(f->x, "Link: \t </v2/a/tags/list?n=2&last=b>; rel=\"next\""
                  " \t\r\n");
    feed_ok(f->x, "X-Content-Length: 99\r\n");
    feed_ok(f->x, "no colon here\r\n");
    feed_ok(f->x, "Content-Typo: text/plain\n");

    assert_int_equal(f->headers, 0);
    feed_ok(f->x, "\r\n");
    assert_int_equal(f->headers, 1);
    assert_int_equal(f->headers_status, 200);

    assert_true(r->content_length == 1234);
    /* the raw value: parameters are the manifest kind's to strip */
    assert_string_equal(r->content_type,
                        "application/vnd.oci.image.manifest.v1+json;"
                        " charset=utf-8");
    assert_string_equal(r->digest, DIGEST);
    assert_string_equal(r->link, "</v2/a/tags/list?n=2&last=b>; rel=\"next\"");
    assert_string_equal(r->www_authenticate, "");

    /* trailers after the final block are not interpreted */
    feed_ok(f->x, "Content-Length: 5\r\n");
    feed_ok(f->x, "Docker-Content-Digest: sha256:0\r\n");
    feed_ok(f->x, "\r\n");
    assert_true(r->content_length == 1234);
    assert_string_equal(r->digest, DIGEST);
    assert_int_equal(f->headers, 1);
}


/* A redirect's block, then the final one: nothing of the first survives. */
static void
test_redirect_resets(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);

    feed_ok(f->x, "HTTP/1.1 307 Temporary Redirect\r\n");
    feed_ok(f->x, "Location: https://cdn.example/blob?sig=1\r\n");
    feed_ok(f->x, "Content-Type: text/html\r\n");
    feed_ok(f->x, "Content-Length: 57\r\n");
    feed_ok(f->x, "Docker-Content-Digest: " DIGEST "\r\n");
    feed_ok(f->x, "Link: <x?n=1>; rel=\"next\"\r\n");
    feed_ok(f->x, "WWW-Authenticate: Bearer realm=\"https://a/t\"\r\n");
    feed_ok(f->x, "\r\n");

    assert_int_equal(r->status, 307);
    assert_true(r->content_length == 57);
    assert_int_equal(f->headers, 0);

    assert_int_equal(r->redirected, 0);

    /* a second redirect: the first one's digest is the home's word */
    feed_ok(f->x, "HTTP/1.1 302 Found\r\n");
    assert_int_equal(r->redirected, 1);
    assert_string_equal(r->redirect_digest, DIGEST);
    feed_ok(f->x, "Location: https://cdn2.example/blob\r\n");
    feed_ok(f->x, "Docker-Content-Digest: sha256:"
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "\r\n");
    feed_ok(f->x, "\r\n");

    feed_ok(f->x, "HTTP/2 200 \r\n");
    assert_int_equal(r->status, 200);
    assert_true(r->content_length == -1);
    assert_string_equal(r->content_type, "");
    assert_string_equal(r->digest, "");
    assert_string_equal(r->link, "");
    assert_string_equal(r->www_authenticate, "");
    assert_int_equal(r->redirected, 1);
    assert_string_equal(r->redirect_digest, DIGEST);

    feed_ok(f->x, "content-length: 10\r\n");
    feed_ok(f->x, "\r\n");

    assert_int_equal(f->headers, 1);
    assert_true(r->content_length == 10);
}


/* What a log line shows of a URL: never userinfo, a query only if asked. */
static void
test_log_url(void **state)
{
    char  out[XFER_LOG_URL_MAX], tiny[8];

    xfer_log_url("https://u:pw@cdn.example/b?sig=s3cret#f", 0, out,
                 sizeof(out));
    assert_string_equal(out, "https://cdn.example/b");
    xfer_log_url("https://u:pw@cdn.example/b?sig=s3cret", 1, out,
                 sizeof(out));
    assert_string_equal(out, "https://cdn.example/b?sig=s3cret");
    xfer_log_url("https://reg.test/v2/a/tags/list?n=1&last=x", 1, out,
                 sizeof(out));
    assert_string_equal(out, "https://reg.test/v2/a/tags/list?n=1&last=x");
    xfer_log_url("https://auth.test/t?user=a@b", 0, out, sizeof(out));
    assert_string_equal(out, "https://auth.test/t");
    xfer_log_url("http://a@b@h:1", 0, out, sizeof(out));
    assert_string_equal(out, "http://h:1");
    xfer_log_url("https://x:y@host.example/long/path", 0, tiny,
                 sizeof(tiny));
    assert_string_equal(tiny, "https:/");
}


/* 1xx blocks and error answers do not complete the headers. */
static void
test_interim_and_errors(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);

    feed_ok(f->x, "HTTP/1.1 100 Continue\r\n");
    feed_ok(f->x, "\r\n");
    assert_int_equal(r->status, 100);
    assert_int_equal(f->headers, 0);

    feed_ok(f->x, "HTTP/1.1 401 Unauthorized\r\n");
    feed_ok(f->x, "\r\n");
    assert_int_equal(r->status, 401);
    assert_int_equal(f->headers, 0);

    feed_ok(f->x, "HTTP/1.0 204 No Content\r\n");
    feed_ok(f->x, "\n");
    assert_int_equal(f->headers, 1);
    assert_int_equal(f->headers_status, 204);
}


/* The headers callback refuses: curl is told to abort (0 != len). */
static void
test_headers_abort(void **state)
{
    fixture_t  *f = *state;

    f->headers_rc = -1;

    feed_ok(f->x, "HTTP/1.1 200 OK\r\n");
    assert_int_equal(feed(f->x, "\r\n"), 0);
    assert_int_equal(f->headers, 1);
}


static void
test_status_line(void **state)
{
    static const struct {
        const char  *line;
        long         status;
    } cases[] = {
        { "HTTP/1.1 404 Not Found\r\n", 404 },
        { "HTTP/2 503\r\n", 503 },
        { "HTTP/1.1 200", 200 },            /* no line end at all */
        { "HTTP/1.1 999 X\r\n", 999 },
        { "HTTP/1.1 99 X\r\n", 0 },
        { "HTTP/1.1 1000 X\r\n", 0 },
        { "HTTP/1.1 abc\r\n", 0 },
        { "HTTP/1.1 \r\n", 0 },
        { "HTTP/1.1\r\n", 0 },
        { "HTTP/", 0 },
    };

    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);
    size_t              i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        feed_ok(f->x, "HTTP/1.1 418 Teapot\r\n");
        assert_int_equal(r->status, 418);

        feed_ok(f->x, cases[i].line);
        if (r->status != cases[i].status) {
            fail_msg("\"%s\": status %ld, expected %ld", cases[i].line,
                     r->status, cases[i].status);
        }
    }
}


static void
test_content_length(void **state)
{
    static const struct {
        const char  *value;
        long long    cl;
    } cases[] = {
        { "0", 0 },
        { "42", 42 },
        { "  42\t", 42 },
        { "9223372036854775807", 9223372036854775807LL },
        { "9223372036854775808", -1 },      /* overflows */
        { "-1", -1 },
        { "-0", -1 },
        { "12abc", -1 },
        { "abc", -1 },
        { "4 2", -1 },
        { "", -1 },
        { "1234567890123456789012345678901234567890", -1 },
    };

    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);
    char                line[128];
    size_t              i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        feed_ok(f->x, "HTTP/1.1 200 OK\r\n");
        snprintf(line, sizeof(line), "Content-Length: %s\r\n",
                 cases[i].value);
        feed_ok(f->x, line);

        if (r->content_length != cases[i].cl) {
            fail_msg("\"%s\": %lld, expected %lld", cases[i].value,
                     r->content_length, cases[i].cl);
        }
    }
}


/* Several challenges: Bearer wins whichever comes first. */
static void
test_www_authenticate(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);
    char                line[2100];

    feed_ok(f->x, "HTTP/1.1 401 Unauthorized\r\n");
    feed_ok(f->x, "WWW-Authenticate: Basic realm=\"x\"\r\n");
    assert_string_equal(r->www_authenticate, "Basic realm=\"x\"");
    feed_ok(f->x, "www-authenticate: bearer realm=\"https://a/t\"\r\n");
    assert_string_equal(r->www_authenticate, "bearer realm=\"https://a/t\"");
    feed_ok(f->x, "WWW-Authenticate: Basic realm=\"y\"\r\n");
    feed_ok(f->x, "WWW-Authenticate: Bearer realm=\"https://b/t\"\r\n");
    assert_string_equal(r->www_authenticate, "bearer realm=\"https://a/t\"");

    /* too long to keep whole: dropped, and a later one may fill in */
    feed_ok(f->x, "HTTP/1.1 401 Unauthorized\r\n");
    memset(line, 'a', sizeof(line));
    memcpy(line, "WWW-Authenticate: Bearer realm=\"", 32);
    memcpy(line + sizeof(line) - 4, "\"\r\n", 4);
    feed_ok(f->x, line);
    assert_string_equal(r->www_authenticate, "");
    feed_ok(f->x, "WWW-Authenticate: Basic realm=\"z\"\r\n");
    assert_string_equal(r->www_authenticate, "Basic realm=\"z\"");
}


/* Repeated Link fields are one list. */
static void
test_link_list(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);

    feed_ok(f->x, "HTTP/1.1 200 OK\r\n");
    feed_ok(f->x, "Link: </v2/a/tags/list?n=2>; rel=\"prev\"\r\n");
    feed_ok(f->x, "Link:\r\n");
    feed_ok(f->x, "link: </v2/a/tags/list?n=2&last=b>; rel=\"next\"\r\n");
    assert_string_equal(r->link, "</v2/a/tags/list?n=2>; rel=\"prev\", "
                        "</v2/a/tags/list?n=2&last=b>; rel=\"next\"");

    /* a new answer, a new list */
    feed_ok(f->x, "HTTP/1.1 200 OK\r\n");
    feed_ok(f->x, "Link: <b?n=1>; rel=next\r\n");
    assert_string_equal(r->link, "<b?n=1>; rel=next");
}


/* A value that does not fit is dropped, not truncated. */
static void
test_values_too_long(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);
    char                line[1200];
    size_t              n;

    feed_ok(f->x, "HTTP/1.1 200 OK\r\n");

    /* a 71-byte digest fits, 72 bytes do not */
    feed_ok(f->x, "Docker-Content-Digest: " DIGEST "\r\n");
    assert_string_equal(r->digest, DIGEST);
    feed_ok(f->x, "Docker-Content-Digest: " DIGEST "0\r\n");
    assert_string_equal(r->digest, "");

    /* Link: 1024 bytes do not fit, 1023 do; nothing more fits after */
    n = (size_t) snprintf(line, sizeof(line), "Link: ");
    memset(line + n, 'l', 1024);
    memcpy(line + n + 1024, "\r\n", 3);
    assert_int_equal(r->link_truncated, 0);
    feed_ok(f->x, line);
    assert_string_equal(r->link, "");
    assert_int_equal(r->link_truncated, 1);

    /* a new answer starts a new list */
    feed_ok(f->x, "HTTP/1.1 200 OK\r\n");
    assert_int_equal(r->link_truncated, 0);

    memset(line + n, 'l', 1023);
    memcpy(line + n + 1023, "\r\n", 3);
    feed_ok(f->x, line);
    assert_int_equal(strlen(r->link), 1023);
    assert_int_equal(r->link_truncated, 0);

    /* the value left out might be the next page: that is said */
    feed_ok(f->x, "Link: <a?n=1>; rel=\"next\"\r\n");
    assert_int_equal(strlen(r->link), 1023);
    assert_int_equal(r->link_truncated, 1);

    n = (size_t) snprintf(line, sizeof(line), "Content-Type: a/");
    memset(line + n, 't', sizeof(r->content_type));
    memcpy(line + n + sizeof(r->content_type), "\r\n", 3);
    feed_ok(f->x, line);
    assert_string_equal(r->content_type, "");
}


static void
test_body_2xx(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);

    feed_ok(f->x, "HTTP/1.1 200 OK\r\n");
    feed_ok(f->x, "\r\n");

    assert_int_equal(write_body(f->x, "hello ", 6), 6);
    assert_int_equal(write_body(f->x, "world", 5), 5);
    assert_int_equal(f->body_len, 11);
    assert_memory_equal(f->body, "hello world", 11);
    assert_true(r->bytes == 11);
    assert_null(r->body);

    /* the consumer refuses: curl is told to abort, nothing is counted */
    f->body_rc = -1;
    assert_int_equal(write_body(f->x, "!", 1), 0);
    assert_true(r->bytes == 11);
}


/* An error answer's body is kept for its JSON, up to XFER_ERRBODY_MAX;
 * the rest is swallowed so that the transfer still ends normally. */
static void
test_body_error(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);
    char               *big;
    size_t              i;

    feed_ok(f->x, "HTTP/1.1 404 Not Found\r\n");
    feed_ok(f->x, "\r\n");

    assert_int_equal(write_body(f->x, "{\"errors\":", 10), 10);
    assert_int_equal(f->body_len, 0);
    assert_int_equal(r->body_len, 10);
    assert_memory_equal(r->body, "{\"errors\":", 10);
    assert_true(r->bytes == 0);

    big = malloc(40000);
    assert_non_null(big);

    for (i = 0; i < 40000; i++) {
        big[i] = (char) ('a' + i % 26);
    }

    assert_int_equal(write_body(f->x, big, 40000), 40000);
    assert_int_equal(r->body_len, 40010);
    assert_int_equal(write_body(f->x, big, 40000), 40000);
    assert_int_equal(r->body_len, XFER_ERRBODY_MAX);
    assert_memory_equal(r->body + 10, big, 40000);
    assert_memory_equal(r->body + 40010, big, XFER_ERRBODY_MAX - 40010);
    assert_int_equal(write_body(f->x, big, 1), 1);
    assert_int_equal(r->body_len, XFER_ERRBODY_MAX);

    free(big);

    /* a new answer starts with an empty body */
    feed_ok(f->x, "HTTP/1.1 500 Oops\r\n");
    assert_int_equal(r->body_len, 0);
    assert_int_equal(write_body(f->x, "x", 1), 1);
    assert_int_equal(r->body_len, 1);
    assert_memory_equal(r->body, "x", 1);
}


static void
test_unreachable(void **state)
{
    static const CURLcode  yes[] = {
        CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
        CURLE_OPERATION_TIMEDOUT, CURLE_SSL_CONNECT_ERROR,
        CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
        CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM,
        CURLE_WEIRD_SERVER_REPLY,
        /* the next endpoint may show a certificate that verifies */
        CURLE_PEER_FAILED_VERIFICATION
    };
    static const CURLcode  no[] = {
        CURLE_OK, CURLE_WRITE_ERROR, CURLE_ABORTED_BY_CALLBACK,
        CURLE_TOO_MANY_REDIRECTS, CURLE_URL_MALFORMAT,
        CURLE_UNSUPPORTED_PROTOCOL, CURLE_SSL_CERTPROBLEM,
        CURLE_OUT_OF_MEMORY, CURLE_FAILED_INIT
    };
    size_t  i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_int_equal(xfer_unreachable(yes[i]), 1);
    }

    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_int_equal(xfer_unreachable(no[i]), 0);
    }
}


/* TLS failures get a reason a client can act on; others none. */
static void
test_failure_reason(void **state)
{
    assert_non_null(strstr(xfer_failure_reason(
                               CURLE_PEER_FAILED_VERIFICATION),
                           "certificate refused"));
    assert_non_null(strstr(xfer_failure_reason(CURLE_SSL_CERTPROBLEM),
                           "client_cert"));
    assert_non_null(strstr(xfer_failure_reason(CURLE_SSL_CACERT_BADFILE),
                           "ca_file"));
    assert_non_null(xfer_failure_reason(CURLE_SSL_CONNECT_ERROR));
    assert_null(xfer_failure_reason(CURLE_OK));
    assert_null(xfer_failure_reason(CURLE_COULDNT_CONNECT));
    assert_null(xfer_failure_reason(CURLE_WRITE_ERROR));
}


/* A request answered from memory (a refusal job_auth.c remembers): done at
 * the next pump with that status, without a slot or a connection. */
static void
test_answer(void **state)
{
    fixture_t   *f = *state;
    xfer_req_t   req;
    xfer_t      *x;

    memset(&req, 0, sizeof(req));
    req.url = "http://127.0.0.1:9/v2/a/manifests/v2";
    req.answer = 401;
    req.prio = XFER_PRIO_TOKEN;

    x = xfer_start(f->xm, &req, &handler, f);
    assert_non_null(x);

    /* it goes first (token class) and ends at once; f->x then runs */
    assert_int_equal(xfer_pump(f->xm), 1);
    assert_int_equal(f->done, 1);
    assert_ptr_equal(f->done_order[0], x);
    assert_int_equal(f->headers, 0);
    assert_int_equal(f->body_len, 0);

    /* nothing left but f->x for teardown, which must not call done */
    f->done = 0;
}


/* A multi for one registry, "reg.test", with these bandwidth limits
 * (bytes/s, 0: none) for the fetcher group and the registry.  cf and reg
 * must outlive the multi; stats_destroy() after it. */
static xfer_multi_t *
limited_multi(fixture_t *f, oci_config_t *cf, oci_registry_t *reg,
    long long global_bw, long long reg_bw)
{
    xfer_multi_t  *xm;

    memset(reg, 0, sizeof(oci_registry_t));
    reg->name = "reg.test";
    reg->tls_verify = 1;
    reg->connect_timeout = 10;
    reg->low_speed_time = 30;
    reg->bandwidth_limit = reg_bw;

    *cf = f->cf;
    cf->max_transfers = 4;
    cf->max_per_host = 4;
    cf->bandwidth_limit = global_bw;
    cf->registries = reg;
    cf->n_registries = 1;
    assert_int_equal(stats_init(cf), 0);

    xm = xfer_multi_create(f->loop, cf);
    assert_non_null(xm);

    return xm;
}


/* With a bandwidth limit the write callback takes blocks while the
 * bucket holds tokens, then pauses (the bytes are handed over again
 * later) and counts the pause; every 2xx body byte is counted. */
static void
test_bandwidth_pause(void **state)
{
    fixture_t         *f = *state;
    oci_config_t       cf;
    oci_registry_t     reg;
    xfer_multi_t      *xm;
    xfer_req_t         req;
    xfer_t            *x, *y;
    stats_registry_t  *st;
    char               block[60];
    int                i;

    /* a 100-byte burst (20 ms) */
    xm = limited_multi(f, &cf, &reg, 5000, 0);
    st = stats_registry(&reg);

    memset(&req, 0, sizeof(req));
    req.url = "http://127.0.0.1:9/v2/a/blobs/" DIGEST;
    req.registry = &reg;
    req.prio = XFER_PRIO_CLIENT;
    x = xfer_start(xm, &req, &handler, f);
    y = xfer_start(xm, &req, &handler, f);
    assert_non_null(x);
    assert_non_null(y);

    feed_ok(x, "HTTP/1.1 200 OK\r\n");
    feed_ok(x, "\r\n");
    feed_ok(y, "HTTP/1.1 200 OK\r\n");
    feed_ok(y, "\r\n");
    memset(block, 'b', sizeof(block));

    /* 100 tokens: two blocks pass (the second into debt), the third
     * pauses x */
    for (i = 0; i < 2; i++) {
        assert_int_equal(write_body(x, block, sizeof(block)),
                         sizeof(block));
    }

    assert_int_equal(write_body(x, block, sizeof(block)),
                     CURL_WRITEFUNC_PAUSE);
    assert_int_equal(st->bandwidth_pauses, 1);
    assert_int_equal(st->upstream_bytes, 120);
    assert_int_equal(f->body_len, 120);

    /* y must wait its turn behind x */
    assert_int_equal(write_body(y, block, sizeof(block)),
                     CURL_WRITEFUNC_PAUSE);
    assert_int_equal(st->bandwidth_pauses, 2);

    /* an error answer is not limited, nor counted */
    feed_ok(y, "HTTP/1.1 500 Oops\r\n");
    feed_ok(y, "\r\n");
    assert_int_equal(write_body(y, block, sizeof(block)), sizeof(block));
    assert_int_equal(st->upstream_bytes, 120);

    /* paused transfers go away cleanly */
    xfer_multi_destroy(xm);
    stats_destroy();
    assert_int_equal(f->done, 0);
}


/* A refusal of body bytes is final: a consumer that would take a later
 * block (blob.c's "more than the range" is no sticky state) never sees
 * one, or it would land where the refused block belonged. */
static void
test_refusal_final(void **state)
{
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);

    feed_ok(f->x, "HTTP/1.1 200 OK\r\n");
    feed_ok(f->x, "\r\n");

    assert_int_equal(write_body(f->x, "ab", 2), 2);
    f->body_rc = -1;
    assert_int_equal(write_body(f->x, "cd", 2), 0);
    f->body_rc = 0;
    assert_int_equal(write_body(f->x, "ef", 2), 0);
    assert_int_equal(write_body(f->x, "gh", 2), 0);

    assert_int_equal(f->body_len, 2);
    assert_memory_equal(f->body, "ab", 2);
    assert_true(r->bytes == 2);
}


/* An HTTP server on a loopback port for one connection: it reads the
 * request, then writes the answer as fast as the socket takes it. */
typedef struct {
    loop_t      *loop;
    int          lfd;
    int          cfd;
    int          port;
    const char  *answer;
    size_t       len;
    size_t       sent;
    char         req[4096];
    size_t       got;
} server_t;


static void
server_io(loop_t *loop, int fd, uint32_t events, void *data)
{
    server_t  *s = data;
    ssize_t    n;

    if (s->got < sizeof(s->req)
        && memmem(s->req, s->got, "\r\n\r\n", 4) == NULL)
    {
        n = read(fd, s->req + s->got, sizeof(s->req) - s->got);

        if (n > 0) {
            s->got += (size_t) n;
        }

        if (memmem(s->req, s->got, "\r\n\r\n", 4) != NULL) {
            assert_int_equal(loop_mod(loop, fd, EPOLLOUT), 0);
        }

        return;
    }

    if (s->sent < s->len) {
        n = write(fd, s->answer + s->sent, s->len - s->sent);

        if (n > 0) {
            s->sent += (size_t) n;
        }

        if (s->sent == s->len) {
            assert_int_equal(loop_mod(loop, fd, 0), 0);
        }
    }
}


static void
server_accept(loop_t *loop, int fd, uint32_t events, void *data)
{
    server_t  *s = data;

    if (s->cfd != -1) {
        return;
    }

    s->cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(s->cfd != -1);
    assert_int_equal(loop_add(loop, s->cfd, EPOLLIN, server_io, s), 0);
}


static void
server_start(server_t *s, loop_t *loop, const char *answer, size_t len)
{
    struct sockaddr_in  sin;
    socklen_t           slen;

    memset(s, 0, sizeof(server_t));
    s->loop = loop;
    s->cfd = -1;
    s->answer = answer;
    s->len = len;

    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s->lfd != -1);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *) &sin, sizeof(sin)),
                     0);
    assert_int_equal(listen(s->lfd, 4), 0);

    slen = sizeof(sin);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *) &sin, &slen),
                     0);
    s->port = ntohs(sin.sin_port);

    assert_int_equal(loop_add(loop, s->lfd, EPOLLIN, server_accept, s), 0);
}


static void
server_stop(server_t *s)
{
    if (s->cfd != -1) {
        loop_del(s->loop, s->cfd);
        close(s->cfd);
    }

    loop_del(s->loop, s->lfd);
    close(s->lfd);
}


/* A consumer that refuses the first block handed over after a bandwidth
 * pause, once, and would take the blocks after it. */
typedef struct {
    stats_registry_t  *st;
    long long          taken;
    int                refused;
    int                after;       /* blocks offered after the refusal */
    int                done;
    CURLcode           rc;
    long long          rtt_us;
} refuser_t;


static int
refuser_body(xfer_t *x, const char *p, size_t n, void *data)
{
    refuser_t  *r = data;

    if (r->refused) {
        r->after++;
        r->taken += (long long) n;
        return 0;
    }

    if (r->st != NULL && r->st->bandwidth_pauses > 0) {
        r->refused = 1;
        return -1;
    }

    r->taken += (long long) n;
    return 0;
}


static void
refuser_done(xfer_t *x, CURLcode rc, void *data)
{
    refuser_t  *r = data;

    r->done++;
    r->rc = rc;
    r->rtt_us = xfer_round_trip_us(x);
}


static const xfer_handler_t  refuser_handler = {
    NULL, refuser_body, refuser_done
};


/* A 200 answer with a 64 KiB body; its length in *len. */
static char *
answer_64k(size_t *len)
{
    static const char  head[] = "HTTP/1.1 200 OK\r\n"
                                "Content-Length: 65536\r\n\r\n";
    char              *a;

    *len = sizeof(head) - 1 + 65536;
    a = malloc(*len);
    assert_non_null(a);
    memcpy(a, head, sizeof(head) - 1);
    memset(a + sizeof(head) - 1, 'z', 65536);

    return a;
}


/* Run the loop until rf's transfer is done (20 s at most). */
static void
wait_refuser(fixture_t *f, refuser_t *rf)
{
    int  i;

    for (i = 0; i < 400 && rf->done == 0; i++) {
        assert_true(loop_once(f->loop, 50) >= 0);
    }
}


/*
 * The block a bandwidth pause kept is handed over again by the tick's
 * curl_easy_pause(CURLPAUSE_CONT); curl 7.88 does it inside that call and
 * returns the refusal there, then goes on reading.  The refusal must
 * still end the transfer, as CURLE_WRITE_ERROR, with no block taken
 * after it.
 */
static void
test_refusal_in_pause(void **state)
{
    fixture_t       *f = *state;
    oci_config_t     cf;
    oci_registry_t   reg;
    xfer_multi_t    *xm;
    xfer_req_t       req;
    server_t         srv;
    refuser_t        rf;
    char            *answer, url[128];
    size_t           len;

    xm = limited_multi(f, &cf, &reg, 0, 100000);    /* a 2000-byte burst */

    answer = answer_64k(&len);
    server_start(&srv, f->loop, answer, len);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/a/blobs/" DIGEST,
             srv.port);

    memset(&rf, 0, sizeof(rf));
    rf.st = stats_registry(&reg);

    memset(&req, 0, sizeof(req));
    req.url = url;
    req.registry = &reg;
    req.prio = XFER_PRIO_CLIENT;
    assert_non_null(xfer_start(xm, &req, &refuser_handler, &rf));
    assert_int_equal(xfer_pump(xm), 1);

    wait_refuser(f, &rf);

    assert_int_equal(rf.done, 1);
    assert_int_equal(rf.refused, 1);
    assert_int_equal(rf.after, 0);
    assert_int_equal(rf.rc, CURLE_WRITE_ERROR);
    assert_true(rf.taken > 0 && rf.taken < 65536);

    xfer_multi_destroy(xm);
    server_stop(&srv);
    free(answer);
    stats_destroy();
}


/* A probe's transfer (unshaped) is not held back by a bandwidth limit,
 * and its round trip is curl's, from the request to the first byte of
 * the answer; a transfer that got no answer has none. */
static void
test_unshaped_round_trip(void **state)
{
    fixture_t       *f = *state;
    oci_config_t     cf;
    oci_registry_t   reg;
    xfer_multi_t    *xm;
    xfer_req_t       req;
    xfer_t          *x;
    server_t         srv;
    refuser_t        rf;
    char            *answer, url[128], block[60];
    size_t           len;
    int              i;

    xm = limited_multi(f, &cf, &reg, 0, 5000);      /* a 100-byte burst */

    memset(&req, 0, sizeof(req));
    req.url = "http://127.0.0.1:9/v2/";
    req.registry = &reg;
    req.prio = XFER_PRIO_TOKEN;
    req.unshaped = 1;
    x = xfer_start(xm, &req, &handler, f);
    assert_non_null(x);

    /* far more than the limit's burst: never paused */
    feed_ok(x, "HTTP/1.1 200 OK\r\n");
    feed_ok(x, "\r\n");
    memset(block, 'p', sizeof(block));

    for (i = 0; i < 4; i++) {
        assert_int_equal(write_body(x, block, sizeof(block)),
                         sizeof(block));
    }

    assert_int_equal(stats_registry(&reg)->bandwidth_pauses, 0);
    xfer_abort(x);

    /* a real answer from a loopback server: timed by curl */
    answer = answer_64k(&len);
    server_start(&srv, f->loop, answer, len);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/", srv.port);
    req.url = url;

    memset(&rf, 0, sizeof(rf));
    rf.rtt_us = -2;
    assert_non_null(xfer_start(xm, &req, &refuser_handler, &rf));
    xfer_pump(xm);

    wait_refuser(f, &rf);

    assert_int_equal(rf.done, 1);
    assert_int_equal(rf.rc, CURLE_OK);
    assert_true(rf.taken == 65536);
    assert_int_equal(stats_registry(&reg)->bandwidth_pauses, 0);
    assert_true(rf.rtt_us >= 0 && rf.rtt_us < 10 * 1000000LL);
    server_stop(&srv);
    free(answer);

    /* no answer at all (nobody serves the discard port): none */
    rf.done = 0;
    rf.rtt_us = -2;
    req.url = "http://127.0.0.1:9/v2/";
    assert_non_null(xfer_start(xm, &req, &refuser_handler, &rf));
    xfer_pump(xm);

    wait_refuser(f, &rf);

    assert_int_equal(rf.done, 1);
    assert_true(rf.rc != CURLE_OK);
    assert_true(rf.rtt_us == -1);

    /* answered from memory: never timed */
    rf.done = 0;
    rf.rtt_us = -2;
    req.answer = 401;
    assert_non_null(xfer_start(xm, &req, &refuser_handler, &rf));
    assert_int_equal(xfer_pump(xm), 1);
    assert_int_equal(rf.done, 1);
    assert_true(rf.rtt_us == -1);

    xfer_multi_destroy(xm);
    stats_destroy();
}


/* What a transfer that met the hop check ended with. */
typedef struct {
    int        done;
    CURLcode   rc;
    long       status;
    int        redirected;
    int        held;
    char       refused[256];
    char       body[64];
    size_t     body_len;
} hop_t;


static int
hop_body(xfer_t *x, const char *p, size_t n, void *data)
{
    hop_t  *h = data;

    if (n > sizeof(h->body) - h->body_len) {
        return -1;
    }

    memcpy(h->body + h->body_len, p, n);
    h->body_len += n;

    return 0;
}


static void
hop_done(xfer_t *x, CURLcode rc, void *data)
{
    hop_t  *h = data;

    h->done++;
    h->rc = rc;
    h->status = xfer_response(x)->status;
    h->redirected = xfer_response(x)->redirected;
    h->held = xfer_held(x);
    snprintf(h->refused, sizeof(h->refused), "%s",
             xfer_refused(x) != NULL ? xfer_refused(x) : "");
}


static const xfer_handler_t  hop_handler = { NULL, hop_body, hop_done };


/*
 * A registry on 127.0.0.1 that redirects to "secret.test", which resolve
 * puts on 127.0.0.1 too: a loopback address of another host than the
 * endpoint's.  GET /v2/x there with h; the answers are one-shot servers.
 */
static void
hop_run(fixture_t *f, const char *const *hosts, size_t n_hosts, hop_t *h,
    server_t *home, server_t *secret, int hold)
{
    static const char  secret_answer[] = "HTTP/1.1 200 OK\r\n"
                                         "Content-Length: 6\r\n\r\n"
                                         "secret";
    oci_config_t       cf;
    oci_registry_t     reg;
    xfer_multi_t      *xm;
    xfer_req_t         req;
    static char        home_answer[256], resolve[64], url[128],
                       target[64];
    char              *resolves[1];
    int                i;

    server_start(secret, f->loop, secret_answer, sizeof(secret_answer) - 1);
    snprintf(target, sizeof(target), "http://secret.test:%d", secret->port);
    snprintf(home_answer, sizeof(home_answer),
             "HTTP/1.1 307 Temporary Redirect\r\n"
             "Location: %s/blob?sig=s3cr3t\r\n"
             "Content-Length: 0\r\n\r\n", target);
    server_start(home, f->loop, home_answer, strlen(home_answer));
    snprintf(resolve, sizeof(resolve), "secret.test:%d:127.0.0.1",
             secret->port);
    resolves[0] = resolve;

    memset(&reg, 0, sizeof(reg));
    reg.name = "reg.test";
    reg.tls_verify = 1;
    reg.connect_timeout = 10;
    reg.low_speed_time = 30;
    reg.resolve = resolves;
    reg.n_resolve = 1;
    reg.redirect_hosts = (char **) hosts;
    reg.n_redirect_hosts = n_hosts;

    cf = f->cf;
    cf.max_transfers = 4;
    cf.max_per_host = 4;
    cf.registries = &reg;
    cf.n_registries = 1;
    assert_int_equal(stats_init(&cf), 0);

    xm = xfer_multi_create(f->loop, &cf);
    assert_non_null(xm);

    if (hold) {
        xfer_hold_host(xm, target, 60);
    }

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/x", home->port);
    memset(&req, 0, sizeof(req));
    req.url = url;
    req.home = url;
    req.registry = &reg;
    req.prio = XFER_PRIO_CLIENT;
    memset(h, 0, sizeof(hop_t));
    assert_non_null(xfer_start(xm, &req, &hop_handler, h));
    xfer_pump(xm);

    for (i = 0; i < 400 && h->done == 0; i++) {
        assert_true(loop_once(f->loop, 50) >= 0);
    }

    assert_int_equal(h->done, 1);
    assert_int_equal(stats_registry(&reg)->redirects_refused,
                     h->refused[0] != '\0');

    xfer_multi_destroy(xm);
    stats_destroy();
    server_stop(home);
    server_stop(secret);
}


/* A redirect to a loopback address of another host is refused once
 * connected, before a byte of the request is sent there; listed in
 * redirect_hosts it is followed; a host held back after a 429 is not
 * asked. */
static void
test_redirect_confined(void **state)
{
    static const char *const  allowed[] = { "secret.test" };

    fixture_t  *f = *state;
    server_t    home, secret;
    hop_t       h;

    hop_run(f, NULL, 0, &h, &home, &secret, 0);
    assert_int_equal(h.rc, CURLE_ABORTED_BY_CALLBACK);
    assert_string_equal(h.refused, "redirect to secret.test (a loopback "
                        "address) refused");
    assert_int_equal(h.held, 0);
    assert_int_equal(h.body_len, 0);
    assert_true(home.got > 0);
    assert_true(secret.got == 0);

    hop_run(f, allowed, 1, &h, &home, &secret, 0);
    assert_int_equal(h.rc, CURLE_OK);
    assert_int_equal(h.status, 200);
    assert_int_equal(h.redirected, 1);
    assert_string_equal(h.refused, "");
    assert_true(h.body_len == 6 && memcmp(h.body, "secret", 6) == 0);
    assert_true(secret.got > 0);

    hop_run(f, allowed, 1, &h, &home, &secret, 1);
    assert_int_equal(h.rc, CURLE_ABORTED_BY_CALLBACK);
    assert_int_equal(h.held, 1);
    assert_string_equal(h.refused, "");
    assert_true(secret.got == 0);
}


static void
test_strerror(void **state)
{
    fixture_t  *f = *state;

    /* nothing in the error buffer: curl's generic text */
    assert_string_equal(xfer_strerror(f->x, CURLE_COULDNT_CONNECT),
                        curl_easy_strerror(CURLE_COULDNT_CONNECT));
    assert_string_equal(xfer_strerror(f->x, CURLE_OPERATION_TIMEDOUT),
                        curl_easy_strerror(CURLE_OPERATION_TIMEDOUT));
}


/* At most max_transfers run; the rest wait; nothing runs without a loop
 * turn, so no connection is ever attempted here. */
static void
test_pump(void **state)
{
    fixture_t  *f = *state;
    xfer_t     *z;

    start(f, "http://127.0.0.1:9/v2/b/blobs/" DIGEST, 1);
    z = start(f, "http://127.0.0.1:9/v2/c/tags/list", 0);

    assert_int_equal(xfer_pump(f->xm), 1);
    assert_int_equal(xfer_pump(f->xm), 0);

    /* a queued one can go at any time; done is not called */
    xfer_abort(z);
    assert_int_equal(xfer_pump(f->xm), 0);

    /* teardown aborts the running and the queued one */
}


static void
assert_range(const xfer_resp_t *r, long long first, long long last,
    long long total)
{
    if (r->range_first != first || r->range_last != last
        || r->range_total != total)
    {
        fail_msg("Content-Range %lld-%lld/%lld, expected %lld-%lld/%lld",
                 r->range_first, r->range_last, r->range_total, first, last,
                 total);
    }
}


static void
test_content_range(void **state)
{
    static const char *const  bad[] = {
        "Content-Range: bytes 9-5/100\r\n",
        "Content-Range: bytes 0-99/50\r\n",
        "Content-Range: bytes 0-99/99\r\n",
        "Content-Range: items 0-1/2\r\n",
        "Content-Range: bytes 0-99/1234x\r\n",
        "Content-Range: bytes -5/10\r\n",
        "Content-Range: bytes 0-99\r\n",
        "Content-Range: bytes */*\r\n",
        "Content-Range: bytes 0-/10\r\n",
        "Content-Range: bytes 0-1234567890123456789/*\r\n",
        "Content-Range: bytes\r\n",
        NULL
    };
    fixture_t          *f = *state;
    const xfer_resp_t  *r = xfer_response(f->x);
    size_t              i;

    feed_ok(f->x, "HTTP/1.1 206 Partial Content\r\n");
    feed_ok(f->x, "content-range:  bytes 0-99/1234 \r\n");
    assert_range(r, 0, 99, 1234);

    feed_ok(f->x, "HTTP/1.1 206 Partial Content\r\n");
    assert_range(r, -1, -1, -1);
    feed_ok(f->x, "Content-Range: bytes 5-5/*\r\n");
    assert_range(r, 5, 5, -1);

    feed_ok(f->x, "HTTP/1.1 416 Range Not Satisfiable\r\n");
    feed_ok(f->x, "Content-Range: BYTES */1234\r\n");
    assert_range(r, -1, -1, 1234);

    feed_ok(f->x, "HTTP/1.1 206 Partial Content\r\n");
    feed_ok(f->x, "Content-Range: bytes 8388608-16777215/67108864\r\n");
    assert_range(r, 8388608, 16777215, 67108864);

    for (i = 0; bad[i] != NULL; i++) {
        feed_ok(f->x, "HTTP/1.1 206 Partial Content\r\n");
        feed_ok(f->x, bad[i]);

        if (r->range_first != -1 || r->range_last != -1
            || r->range_total != -1)
        {
            fail_msg("\"%s\" was taken", bad[i]);
        }
    }
}


/* Before any answer the effective URL is the request's own. */
static void
test_effective_url(void **state)
{
    fixture_t  *f = *state;

    assert_string_equal(xfer_effective_url(f->x),
                        "http://127.0.0.1:9/v2/a/manifests/v1");
}


/* Run the loop until n transfers ended (each fails to connect to the
 * discard port, which nobody serves). */
static void
run_until_done(fixture_t *f, int n)
{
    int  i;

    xfer_pump(f->xm);

    for (i = 0; i < 200 && f->done < n; i++) {
        assert_int_equal(loop_once(f->loop, 50), 0);
    }

    assert_int_equal(f->done, n);
}


/* Token requests, then client work, then prefetch; urgent ones at the
 * head of their class; a promoted transfer at the end of its new one.
 * One slot: the order they end in is the order they started in. */
static void
test_priorities(void **state)
{
    fixture_t  *f = *state;
    xfer_t     *p1, *c1, *t1, *c2, *p2, *p3;

    p1 = start_prio(f, "http://127.0.0.1:9/p1", XFER_PRIO_PREFETCH, 0);
    c1 = start_prio(f, "http://127.0.0.1:9/c1", XFER_PRIO_CLIENT, 0);
    t1 = start_prio(f, "http://127.0.0.1:9/t1", XFER_PRIO_TOKEN, 0);
    c2 = start_prio(f, "http://127.0.0.1:9/c2", XFER_PRIO_CLIENT, 1);
    p2 = start_prio(f, "http://127.0.0.1:9/p2", XFER_PRIO_PREFETCH, 1);
    p3 = start_prio(f, "http://127.0.0.1:9/p3", XFER_PRIO_PREFETCH, 0);

    xfer_set_prio(p3, XFER_PRIO_CLIENT);

    run_until_done(f, 7);

    assert_ptr_equal(f->done_order[0], t1);
    assert_ptr_equal(f->done_order[1], c2);
    assert_ptr_equal(f->done_order[2], f->x);
    assert_ptr_equal(f->done_order[3], c1);
    assert_ptr_equal(f->done_order[4], p3);
    assert_ptr_equal(f->done_order[5], p2);
    assert_ptr_equal(f->done_order[6], p1);

    /* all ended through done: nothing left for teardown to abort */
    f->done = 0;
}


/* Prefetch holds at most half of the slots (the lower of max_transfers
 * and max_per_host); client work takes the rest; a promoted transfer no
 * longer counts as prefetch. */
static void
test_prefetch_share(void **state)
{
    fixture_t     *f = *state;
    oci_config_t   cf;
    xfer_multi_t  *xm;
    xfer_req_t     req;
    xfer_t        *p[3];
    int            i;

    cf = f->cf;
    cf.max_transfers = 4;
    cf.max_per_host = 16;
    xm = xfer_multi_create(f->loop, &cf);
    assert_non_null(xm);

    memset(&req, 0, sizeof(req));
    req.prio = XFER_PRIO_PREFETCH;

    for (i = 0; i < 3; i++) {
        req.url = "http://127.0.0.1:9/p";
        p[i] = xfer_start(xm, &req, &handler, f);
        assert_non_null(p[i]);
    }

    assert_int_equal(xfer_pump(xm), 1);
    assert_int_equal(xfer_pump(xm), 0);

    req.prio = XFER_PRIO_CLIENT;
    assert_non_null(xfer_start(xm, &req, &handler, f));
    assert_int_equal(xfer_pump(xm), 1);

    /* the third prefetch waited: promoted, it takes the last slot */
    xfer_set_prio(p[2], XFER_PRIO_CLIENT);
    assert_int_equal(xfer_pump(xm), 1);

    assert_non_null(xfer_start(xm, &req, &handler, f));
    assert_int_equal(xfer_pump(xm), 0);

    xfer_multi_destroy(xm);

    /* two connections per host: prefetch gets one of them */
    cf.max_transfers = 8;
    cf.max_per_host = 2;
    xm = xfer_multi_create(f->loop, &cf);
    assert_non_null(xm);

    req.prio = XFER_PRIO_PREFETCH;
    assert_non_null(xfer_start(xm, &req, &handler, f));
    p[0] = xfer_start(xm, &req, &handler, f);
    assert_non_null(p[0]);
    assert_int_equal(xfer_pump(xm), 1);
    assert_int_equal(xfer_pump(xm), 0);
    xfer_set_prio(p[0], XFER_PRIO_CLIENT);
    assert_int_equal(xfer_pump(xm), 1);

    xfer_multi_destroy(xm);
    assert_int_equal(f->done, 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_block, setup, teardown),
        cmocka_unit_test(test_log_url),
        cmocka_unit_test_setup_teardown(test_redirect_resets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interim_and_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_headers_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_length, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_www_authenticate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_link_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_too_long, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_body_2xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect_confined, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_strerror, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_reason, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bandwidth_pause, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refusal_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_in_pause, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unshaped_round_trip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_content_range, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_effective_url, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_priorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetch_share, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
