/*
 * Upstream HTTP transfers: a libcurl multi handle driven from the loop
 * with CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION (a timerfd) and
 * curl_multi_socket_action(), after curl's ephiperfifo example.
 *
 * Every transfer is an xfer_t (CURLOPT_PRIVATE) owned by this unit from
 * xfer_start() until its done callback has returned (or xfer_abort()):
 * callers keep the pointer only to abort it, and forget it in done.
 * At most cf->max_transfers run at once; the rest wait in one queue per
 * priority that xfer_pump() starts from: token requests first (every job
 * of a registry may be waiting for one), then what clients wait for, then
 * prefetch.  Prefetch never holds more than half of the slots (or of
 * fetcher.max_per_host, if lower), so that a client's request finds a
 * free one soon even while a big image is being prefetched.
 *
 * The header block of every response is parsed as it arrives; a new status
 * line resets that state, because redirects (and 1xx answers) produce
 * several blocks.  Bodies of 2xx answers go to the caller's body callback;
 * bodies of other answers are kept (bounded) for their error JSON.
 *
 * Redirects are followed by curl (http and https only, at most 5), and
 * every hop, the first request included, is checked once connected and
 * before a byte of the request goes out (CURLOPT_PREREQFUNCTION), against
 * the request's home (the endpoint it is for):
 *
 *   - never from https down to http;
 *   - a host held back after a 429 (xfer_hold_host()) is not asked: the
 *     transfer ends (xfer_held());
 *   - a host other than the home's must not be at a loopback, link-local,
 *     private or unspecified address (url_address_local()) unless the
 *     registry lists it in redirect_hosts.  The address checked is the
 *     one connected to, so DNS cannot smuggle one in; through a proxy
 *     (the registry has one) that is the proxy's, so then only a host
 *     written as an address is checked, and the proxy decides the rest.
 *
 * A refused hop ends the transfer with CURLE_ABORTED_BY_CALLBACK, logged
 * and counted (stats redirects_refused); xfer_refused() says why.
 * The registry's resolve entries (curl's --resolve) go with each of its
 * transfers.
 */

#ifndef FETCHER_XFER_H
#define FETCHER_XFER_H

#include <curl/curl.h>

#include "oci.h"
#include "oci_config.h"
#include "loop.h"

#define XFER_ERRBODY_MAX  (64 * 1024)

typedef struct xfer_s        xfer_t;
typedef struct xfer_multi_s  xfer_multi_t;

typedef enum {
    XFER_PRIO_TOKEN = 0,
    XFER_PRIO_CLIENT,
    XFER_PRIO_PREFETCH,
    XFER_PRIO_N
} xfer_prio_t;

typedef struct {
    long        status;           /* of the last response; 0 if none */
    long long   content_length;   /* -1 if not sent */
    char        content_type[OCI_MEDIA_TYPE_MAX + 64];  /* raw value */
    char        digest[OCI_DIGEST_MAX + 1];  /* Docker-Content-Digest */
    char        www_authenticate[2048];      /* the first challenge */
    char        link[1024];       /* the Link values, ", "-joined; ""
                                     if absent; one too long is left out */
    int         link_truncated;   /* a Link value was left out: link may
                                     lack the rel="next" one */
    long long   range_first;      /* Content-Range "bytes F-L/T"; each -1 */
    long long   range_last;       /* if absent or unparsable, the total */
    long long   range_total;      /* also if it is "*" */
    long        retry_after;      /* Retry-After in seconds from now (a
                                     date is converted); -1 if absent */
    long long   ratelimit_limit;  /* RateLimit-Limit / -Remaining: the
                                     leading number ("100;w=21600");
                                     -1 if absent */
    long long   ratelimit_remaining;
    char       *body;             /* non-2xx body, bounded, not NUL-ended */
    size_t      body_len;
    long long   bytes;            /* 2xx body bytes handed over */

    /* kept across the blocks of one transfer */
    int         redirected;       /* a redirect was followed: the answer
                                     may come from another host */
    char        redirect_digest[OCI_DIGEST_MAX + 1];  /* the
                                     Docker-Content-Digest of the first
                                     redirect answer ("" if none): the
                                     home's word on what it points to */
} xfer_resp_t;

typedef struct {
    /* The header block of a 2xx answer is complete.  0 to go on, -1 to
     * abort the transfer (done then sees CURLE_WRITE_ERROR). */
    int   (*headers)(xfer_t *x, void *data);
    /* 2xx body bytes, in order.  0 or -1 to abort: a refusal is final,
     * done then sees CURLE_WRITE_ERROR. */
    int   (*body)(xfer_t *x, const char *p, size_t n, void *data);
    /* The transfer ended.  x is freed when this returns. */
    void  (*done)(xfer_t *x, CURLcode rc, void *data);
} xfer_handler_t;

typedef struct {
    const char  *url;
    const char  *home;            /* the endpoint the request is for: a
                                     hop to another host is checked (see
                                     above); NULL: url is its own home */
    int          redirected;      /* url is not built from an endpoint (a
                                     redirect target, a token realm): its
                                     query may be a secret, kept out of
                                     logs */
    int          head;            /* HEAD instead of GET */
    const char  *accept;          /* Accept value or NULL */
    const oci_registry_t  *registry;  /* whose transport settings,
                                     bandwidth share and counters apply;
                                     NULL: the "fetcher" group's */
    const char  *bearer;          /* token or NULL; never logged */
    const char  *username;        /* Basic credentials or NULL; never */
    const char  *password;        /* logged, never sent on a redirect to
                                     another host */
    xfer_prio_t  prio;
    int          urgent;          /* start before queued requests of its
                                     priority */
    int          ranged;          /* send Range: bytes=first-last */
    long long    range_first;
    long long    range_last;      /* -1: to the end */
    int          http1;           /* HTTP/1.1 even if HTTP/2 is on */
    int          unshaped;        /* no bandwidth limit applies (a probe:
                                     a few bytes, timed) */
    int          direct;          /* never through a proxy: a cluster
                                     node on the LAN (with registry NULL) */
    const char  *header;          /* one more request header line
                                     ("Name: value") or NULL */
    long         answer;          /* not 0: send nothing; the transfer
                                     ends at the next xfer_pump() with
                                     this status and no body (job_auth.c:
                                     credentials the registry refused
                                     moments ago) */
} xfer_req_t;

/* NULL on failure (logged). */
xfer_multi_t *xfer_multi_create(loop_t *loop, const oci_config_t *cf);

/* Abort and free every transfer (no done callback) and the multi. */
void xfer_multi_destroy(xfer_multi_t *xm);

/*
 * Queue a transfer; it starts at the next xfer_pump().  Returns NULL if it
 * could not be set up (logged).  The handler struct must outlive it.
 */
xfer_t *xfer_start(xfer_multi_t *xm, const xfer_req_t *req,
    const xfer_handler_t *handler, void *data);

/* Stop and free a transfer; its done callback is not called.  Never call
 * this from inside one of the transfer's own callbacks. */
void xfer_abort(xfer_t *x);

/* Move a transfer to another priority: a queued one to the end of that
 * queue; a running one goes on, counted in its new class. */
void xfer_set_prio(xfer_t *x, xfer_prio_t prio);

/* Transfers of priority prio queued for a slot (not yet started). */
size_t xfer_queued(const xfer_multi_t *xm, xfer_prio_t prio);

/* Start queued transfers while slots are free.  1 if any was started or
 * failed (so more work may have been produced), 0 otherwise. */
int xfer_pump(xfer_multi_t *xm);

const xfer_resp_t *xfer_response(const xfer_t *x);

/* The URL the answer came from, after redirects (the request's own URL
 * before any answer).  Valid until the transfer is freed. */
const char *xfer_effective_url(const xfer_t *x);

/* 1 if the transfer was answered without a request (xfer_req_t.answer):
 * no endpoint was asked, so none is to be credited or blamed. */
int xfer_answered(const xfer_t *x);

/* In done, after CURLE_ABORTED_BY_CALLBACK: why a hop was refused (for
 * the client: "redirect to a loopback address refused"), or NULL. */
const char *xfer_refused(const xfer_t *x);

/* In done, after CURLE_ABORTED_BY_CALLBACK: 1 if a hop led to a host held
 * back (xfer_hold_host()), so nothing was asked of it. */
int xfer_held(const xfer_t *x);

/* The host of url answered 429: no hop goes to its origin for secs
 * seconds (the caller caps them). */
void xfer_hold_host(xfer_multi_t *xm, const char *url, long secs);

/* In done: microseconds from the request going out to the first byte of
 * the answer (curl's timing: neither the wait for a slot or a connection
 * nor a bandwidth pause counts); -1 if no answer came. */
long long xfer_round_trip_us(const xfer_t *x);

/* curl's message for the failure rc (the error buffer if it has one). */
const char *xfer_strerror(const xfer_t *x, CURLcode rc);

/* 1 if rc means the endpoint could not be reached or stalled, so another
 * endpoint should be tried; 0 otherwise.  A certificate the endpoint
 * showed that does not verify (CURLE_PEER_FAILED_VERIFICATION) counts: the
 * next endpoint may have a good one. */
int xfer_unreachable(CURLcode rc);

/* For the client's error message: what a failed transfer means, for the
 * results that are about the TLS setup ("upstream TLS certificate
 * refused", ...); NULL for the others. */
const char *xfer_failure_reason(CURLcode rc);

/*
 * libcurl's CURLOPT_HEADERFUNCTION and CURLOPT_WRITEFUNCTION of every
 * transfer (userdata is the xfer_t): they parse the header blocks into
 * the xfer_resp_t, call the handler's headers and body callbacks, and keep
 * the bounded body of an error answer.  Only curl calls them; they are
 * declared here so that the unit tests can feed them answers without a
 * network.
 */
size_t xfer_header_cb(char *buf, size_t size, size_t nitems, void *userdata);
size_t xfer_write_cb(char *p, size_t size, size_t nmemb, void *userdata);

/* url as a log line may show it, into out (always terminated): never its
 * userinfo, its query only if keep_query. */
#define XFER_LOG_URL_MAX  2048
void xfer_log_url(const char *url, int keep_query, char *out, size_t cap);

#endif /* FETCHER_XFER_H */
