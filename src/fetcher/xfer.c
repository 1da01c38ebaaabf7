/*
 * Upstream HTTP transfers on a libcurl multi handle (see xfer.h).
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bw.h"
#include "log.h"
#include "queue.h"
#include "stats.h"
#include "throttle.h"
#include "url.h"
#include "xfer.h"

#define XFER_USER_AGENT  "ocimirror/0.1"

struct xfer_multi_s {
    CURLM                 *multi;
    loop_t                *loop;
    const oci_config_t    *cf;
    int                    timerfd;
    int                    running;
    int                    running_prefetch;
    int                    prefetch_max;    /* slots prefetch may hold */
    bw_t                  *bw;          /* bandwidth limits */
    throttle_t            *held;        /* hosts that answered 429 */
    struct curl_slist    **resolve;     /* per registry, NULL if none */
    queue_t                pending[XFER_PRIO_N];   /* not yet added */
    size_t                 npending[XFER_PRIO_N];
    queue_t                active;      /* xfer_t, added to the multi */
};

struct xfer_s {
    queue_t                link;        /* in pending or active */
    xfer_multi_t          *xm;
    CURL                  *easy;
    struct curl_slist     *headers;
    const xfer_handler_t  *handler;
    void                  *data;
    char                  *url;
    const char            *method;
    xfer_prio_t            prio;
    int                    redirected;  /* see xfer_req_t */
    long                   answer;      /* see xfer_req_t */
    const oci_registry_t  *registry;    /* NULL: the "fetcher" group's */
    bw_flow_t              flow;        /* its share of the limits */
    char                   range[48];   /* "F-L" or "F-", "" if none */
    int                    active;
    int                    final;       /* 2xx header block complete */
    int                    refused;     /* the handler refused headers or
                                           body bytes: so is all the rest */
    char                   home_host[OCI_HOST_MAX + 1];
    int                    proxied;     /* the registry has a proxy */
    int                    seen_https;  /* a hop so far was https */
    int                    held;        /* see xfer_held() */
    char                   hop_refused[OCI_HOST_MAX + 96];
                                        /* see xfer_refused(); "" */
    struct timespec        started;
    xfer_resp_t            resp;
    char                   errbuf[CURL_ERROR_SIZE];
};

static void xfer_free(xfer_t *x);
static void xfer_multi_free(xfer_multi_t *xm);
static int xfer_resolve_lists(xfer_multi_t *xm);
static void xfer_deactivate(xfer_t *x);
static void xfer_drain(xfer_multi_t *xm);
static void xfer_log_done(xfer_t *x, CURLcode rc);
static int xfer_prereq_cb(void *clientp, char *primary_ip, char *local_ip,
    int primary_port, int local_port);


static void
xfer_check(const char *where, CURLMcode mc)
{
    /* a socket curl already forgot is harmless; anything else is logged
     * and the loop carries on */
    if (mc != CURLM_OK && mc != CURLM_BAD_SOCKET) {
        log_error("%s failed: %s", where, curl_multi_strerror(mc));
    }
}


static void
xfer_timer_handler(loop_t *loop, int fd, uint32_t events, void *data)
{
    xfer_multi_t  *xm = data;
    uint64_t       count;
    int            running;

    /* EAGAIN: the timer was rearmed after it fired; curl still wants to
     * look at its timeouts, so go on either way */
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        log_error("read(timerfd) failed: %s", strerror(errno));
    }

    xfer_check("curl_multi_socket_action(timeout)",
               curl_multi_socket_action(xm->multi, CURL_SOCKET_TIMEOUT, 0,
                                        &running));
    xfer_drain(xm);
}


static void
xfer_socket_handler(loop_t *loop, int fd, uint32_t events, void *data)
{
    xfer_multi_t  *xm = data;
    int            action, running;

    action = 0;

    if (events & (EPOLLIN | EPOLLHUP)) {
        action |= CURL_CSELECT_IN;
    }

    if (events & EPOLLOUT) {
        action |= CURL_CSELECT_OUT;
    }

    if (events & EPOLLERR) {
        action |= CURL_CSELECT_ERR;
    }

    xfer_check("curl_multi_socket_action",
               curl_multi_socket_action(xm->multi, fd, action, &running));
    xfer_drain(xm);
}


/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket in epoll. */
static int
xfer_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
    void *socketp)
{
    xfer_multi_t  *xm = userp;
    uint32_t       events;
    int            rc;

    if (what == CURL_POLL_REMOVE) {
        if (loop_del(xm->loop, s) != 0) {
            log_error("epoll_ctl(DEL, %d) failed: %s", (int) s,
                      strerror(errno));
        }

        return 0;
    }

    events = 0;

    if (what & CURL_POLL_IN) {
        events |= EPOLLIN;
    }

    if (what & CURL_POLL_OUT) {
        events |= EPOLLOUT;
    }

    if (loop_has(xm->loop, s)) {
        rc = loop_mod(xm->loop, s, events);

    } else {
        rc = loop_add(xm->loop, s, events, xfer_socket_handler, xm);
    }

    if (rc != 0) {
        log_error("epoll_ctl(%d) failed: %s", (int) s, strerror(errno));
    }

    return 0;
}


/* CURLMOPT_TIMERFUNCTION: one timerfd holds curl's next deadline. */
static int
xfer_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    xfer_multi_t       *xm = userp;
    struct itimerspec   its;

    memset(&its, 0, sizeof(its));

    if (timeout_ms > 0) {
        its.it_value.tv_sec = timeout_ms / 1000;
        its.it_value.tv_nsec = (timeout_ms % 1000) * 1000000L;

    } else if (timeout_ms == 0) {
        /* "now": an all-zero it_value would disarm the timer */
        its.it_value.tv_nsec = 1;
    }

    if (timerfd_settime(xm->timerfd, 0, &its, NULL) != 0) {
        log_error("timerfd_settime() failed: %s", strerror(errno));
        return -1;
    }

    return 0;
}


xfer_multi_t *
xfer_multi_create(loop_t *loop, const oci_config_t *cf)
{
    xfer_multi_t  *xm;
    int            i, slots;

    xm = calloc(1, sizeof(xfer_multi_t));
    if (xm == NULL) {
        log_error("out of memory");
        return NULL;
    }

    xm->loop = loop;
    xm->cf = cf;
    /* half of the slots, and of the connections to one host: a client's
     * request for the registry a big image is prefetched from must not
     * queue inside curl behind the prefetch's connections */
    slots = cf->max_transfers < cf->max_per_host ? cf->max_transfers
                                                  : cf->max_per_host;
    xm->prefetch_max = slots > 1 ? slots / 2 : 1;

    for (i = 0; i < XFER_PRIO_N; i++) {
        queue_init(&xm->pending[i]);
    }

    queue_init(&xm->active);

    xm->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (xm->timerfd == -1) {
        log_error("timerfd_create() failed: %s", strerror(errno));
        free(xm);
        return NULL;
    }

    if (loop_add(loop, xm->timerfd, EPOLLIN, xfer_timer_handler, xm) != 0) {
        log_error("epoll_ctl(timerfd) failed: %s", strerror(errno));
        close(xm->timerfd);
        free(xm);
        return NULL;
    }

    xm->bw = bw_create(loop, cf);
    if (xm->bw == NULL) {
        loop_del(loop, xm->timerfd);
        close(xm->timerfd);
        free(xm);
        return NULL;
    }

    xm->multi = curl_multi_init();
    xm->held = throttle_create(THROTTLE_CAP);
    xm->resolve = calloc(cf->n_registries + 1, sizeof(struct curl_slist *));

    if (xm->multi == NULL || xm->held == NULL || xm->resolve == NULL
        || xfer_resolve_lists(xm) != 0)
    {
        log_error("cannot set up the transfers: out of memory");
        xfer_multi_free(xm);
        return NULL;
    }

    for (i = 0; i < (int) cf->n_registries; i++) {
        if (!cf->registries[i].tls_verify) {
            log_warn("registry \"%s\": tls_verify = false: its TLS "
                     "certificates are not checked", cf->registries[i].name);
        }
    }

    curl_multi_setopt(xm->multi, CURLMOPT_SOCKETFUNCTION, xfer_socket_cb);
    curl_multi_setopt(xm->multi, CURLMOPT_SOCKETDATA, xm);
    curl_multi_setopt(xm->multi, CURLMOPT_TIMERFUNCTION, xfer_timer_cb);
    curl_multi_setopt(xm->multi, CURLMOPT_TIMERDATA, xm);
    curl_multi_setopt(xm->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long) cf->max_transfers);
    curl_multi_setopt(xm->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long) cf->max_per_host);
    curl_multi_setopt(xm->multi, CURLMOPT_PIPELINING,
                      cf->http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);

    return xm;
}


void
xfer_multi_destroy(xfer_multi_t *xm)
{
    queue_t  *q;
    int       i;

    if (xm == NULL) {
        return;
    }

    while (!queue_empty(&xm->active)) {
        q = queue_head(&xm->active);
        xfer_abort(queue_data(q, xfer_t, link));
    }

    for (i = 0; i < XFER_PRIO_N; i++) {
        while (!queue_empty(&xm->pending[i])) {
            q = queue_head(&xm->pending[i]);
            xfer_abort(queue_data(q, xfer_t, link));
        }
    }

    xfer_multi_free(xm);
}


/* What xfer_multi_create() set up.  curl_multi_cleanup() may still report
 * sockets to remove: the loop is alive until after this returns. */
static void
xfer_multi_free(xfer_multi_t *xm)
{
    size_t  i;

    if (xm->multi != NULL) {
        curl_multi_cleanup(xm->multi);
    }

    if (xm->resolve != NULL) {
        for (i = 0; i < xm->cf->n_registries; i++) {
            curl_slist_free_all(xm->resolve[i]);
        }

        free(xm->resolve);
    }

    throttle_destroy(xm->held);
    bw_destroy(xm->bw);
    loop_del(xm->loop, xm->timerfd);
    close(xm->timerfd);
    free(xm);
}


/* The resolve entries of every registry as curl lists.  0, or -1. */
static int
xfer_resolve_lists(xfer_multi_t *xm)
{
    const oci_registry_t  *reg;
    struct curl_slist     *l;
    size_t                 i, k;

    for (i = 0; i < xm->cf->n_registries; i++) {
        reg = &xm->cf->registries[i];

        for (k = 0; k < reg->n_resolve; k++) {
            l = curl_slist_append(xm->resolve[i], reg->resolve[k]);
            if (l == NULL) {
                return -1;
            }

            xm->resolve[i] = l;
        }
    }

    return 0;
}


static void
xfer_resp_reset(xfer_resp_t *r)
{
    r->status = 0;
    r->content_length = -1;
    r->content_type[0] = '\0';
    r->digest[0] = '\0';
    r->www_authenticate[0] = '\0';
    r->link[0] = '\0';
    r->link_truncated = 0;
    r->range_first = -1;
    r->range_last = -1;
    r->range_total = -1;
    r->retry_after = -1;
    r->ratelimit_limit = -1;
    r->ratelimit_remaining = -1;
    r->body_len = 0;
    r->bytes = 0;
}


/* Copy a header value if it fits; "" otherwise (a truncated value would
 * be a different value). */
static void
xfer_copy_value(char *dst, size_t cap, const char *v, size_t len)
{
    if (len >= cap) {
        dst[0] = '\0';
        return;
    }

    memcpy(dst, v, len);
    dst[len] = '\0';
}


/* Append ", " and a header value to the list in dst if it fits whole;
 * otherwise leave dst as it is.  0, or -1 if the value was left out. */
static int
xfer_append_value(char *dst, size_t cap, const char *v, size_t len)
{
    size_t  used, sep;

    used = strlen(dst);
    sep = used > 0 ? 2 : 0;

    if (len == 0) {
        return 0;
    }

    if (used + sep + len >= cap) {
        return -1;
    }

    memcpy(dst + used, ", ", sep);
    memcpy(dst + used + sep, v, len);
    dst[used + sep + len] = '\0';

    return 0;
}


static int
xfer_header_is(const char *line, size_t nlen, const char *name)
{
    return strlen(name) == nlen && strncasecmp(line, name, nlen) == 0;
}


/* A decimal number at *p (advanced past it), below 10^18; -1 if none. */
static long long
xfer_number(const char **p, const char *end)
{
    long long  v;
    int        digits;

    v = 0;

    for (digits = 0; *p < end && isdigit((unsigned char) **p); digits++) {
        if (digits == 18) {
            return -1;
        }

        v = v * 10 + (**p - '0');
        (*p)++;
    }

    return digits > 0 ? v : -1;
}


/*
 * Content-Range (RFC 9110, 14.4): "bytes F-L/T" where the total T may be
 * an asterisk (unknown), or the unsatisfied form with an asterisk in place
 * of "F-L".  Whatever does not parse leaves the fields at -1.
 */
static void
xfer_parse_content_range(xfer_resp_t *r, const char *v, size_t len)
{
    const char  *p, *end;
    long long    first, last, total;

    p = v;
    end = v + len;

    if (len < 6 || strncasecmp(p, "bytes ", 6) != 0) {
        return;
    }

    p += 6;

    if (p < end && *p == '*') {
        first = -1;
        last = -1;
        p++;

    } else {
        first = xfer_number(&p, end);

        if (first < 0 || p == end || *p++ != '-') {
            return;
        }

        last = xfer_number(&p, end);

        if (last < first) {
            return;
        }
    }

    if (p == end || *p++ != '/') {
        return;
    }

    if (p < end && *p == '*') {
        total = -1;
        p++;

    } else {
        total = xfer_number(&p, end);

        if (total < 0 || (last >= 0 && last >= total)) {
            return;
        }
    }

    if (p != end || (first < 0 && total < 0)) {
        return;
    }

    r->range_first = first;
    r->range_last = last;
    r->range_total = total;
}


/* Retry-After (RFC 9110, 10.2.3): delay-seconds or an HTTP-date. */
static void
xfer_parse_retry_after(xfer_resp_t *r, const char *v, size_t len)
{
    const char  *p;
    long long    secs;
    char         date[64];
    time_t       t, now;

    p = v;
    secs = xfer_number(&p, v + len);

    if (secs >= 0 && p == v + len) {
        r->retry_after = secs > 86400 ? 86400 : (long) secs;
        return;
    }

    if (len == 0 || len >= sizeof(date)) {
        return;
    }

    memcpy(date, v, len);
    date[len] = '\0';

    t = curl_getdate(date, NULL);
    if (t == -1) {
        return;
    }

    now = time(NULL);
    secs = t > now ? (long long) (t - now) : 0;
    r->retry_after = secs > 86400 ? 86400 : (long) secs;
}


static void
xfer_parse_header(xfer_t *x, const char *line, size_t len)
{
    const char   *colon, *v, *p;
    size_t        nlen, vlen;
    char          num[32];
    char         *end;
    long long     cl;
    xfer_resp_t  *r = &x->resp;

    colon = memchr(line, ':', len);
    if (colon == NULL) {
        return;
    }

    nlen = (size_t) (colon - line);
    v = colon + 1;
    vlen = len - nlen - 1;

    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }

    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
        vlen--;
    }

    if (xfer_header_is(line, nlen, "content-length")) {
        if (vlen == 0 || vlen >= sizeof(num)) {
            return;
        }

        memcpy(num, v, vlen);
        num[vlen] = '\0';
        errno = 0;
        cl = strtoll(num, &end, 10);

        if (errno == 0 && *end == '\0' && cl >= 0 && num[0] != '-') {
            r->content_length = cl;
        }

    } else if (xfer_header_is(line, nlen, "content-range")) {
        xfer_parse_content_range(r, v, vlen);

    } else if (xfer_header_is(line, nlen, "content-type")) {
        xfer_copy_value(r->content_type, sizeof(r->content_type), v, vlen);

    } else if (xfer_header_is(line, nlen, "docker-content-digest")) {
        xfer_copy_value(r->digest, sizeof(r->digest), v, vlen);

    } else if (xfer_header_is(line, nlen, "www-authenticate")) {
        /* several challenges may be offered: prefer Bearer */
        if (r->www_authenticate[0] == '\0'
            || (strncasecmp(r->www_authenticate, "bearer", 6) != 0
                && vlen >= 6 && strncasecmp(v, "bearer", 6) == 0))
        {
            xfer_copy_value(r->www_authenticate,
                            sizeof(r->www_authenticate), v, vlen);
        }

    } else if (xfer_header_is(line, nlen, "retry-after")) {
        xfer_parse_retry_after(r, v, vlen);

    } else if (xfer_header_is(line, nlen, "ratelimit-limit")) {
        p = v;
        r->ratelimit_limit = xfer_number(&p, v + vlen);

    } else if (xfer_header_is(line, nlen, "ratelimit-remaining")) {
        p = v;
        r->ratelimit_remaining = xfer_number(&p, v + vlen);

    } else if (xfer_header_is(line, nlen, "link")) {
        /* repeated Link fields make one list (RFC 9110, 5.3): a registry
         * may send rel="prev" and rel="next" apart */
        if (xfer_append_value(r->link, sizeof(r->link), v, vlen) != 0) {
            r->link_truncated = 1;
        }
    }
}


/* The status code at the start of s[0..len) ("200 OK", "503"): three
 * digits, 100 to 999; 0 if there is none.  The line is not NUL-terminated,
 * so no strtol(). */
static long
xfer_status(const char *s, size_t len)
{
    if (len < 3 || s[0] < '1' || s[0] > '9'
        || !isdigit((unsigned char) s[1]) || !isdigit((unsigned char) s[2])
        || (len > 3 && isdigit((unsigned char) s[3])))
    {
        return 0;
    }

    return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}


/* CURLOPT_HEADERFUNCTION: one header line per call. */
size_t
xfer_header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    xfer_t  *x = userdata;
    size_t   total, len;
    char    *p;

    total = size * nitems;
    len = total;

    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }

    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* a new response after a redirect: the home's word on where it
         * points is kept */
        if (x->resp.status >= 300 && x->resp.status < 400) {
            if (!x->resp.redirected) {
                memcpy(x->resp.redirect_digest, x->resp.digest,
                       sizeof(x->resp.digest));
            }

            x->resp.redirected = 1;
        }

        /* forget the previous block (a redirect, 1xx) */
        xfer_resp_reset(&x->resp);
        x->final = 0;

        p = memchr(buf, ' ', len);
        if (p != NULL) {
            x->resp.status = xfer_status(p + 1, len - (size_t) (p + 1 - buf));
        }

        return total;
    }

    if (x->final) {
        /* trailers after a body: not ours to interpret */
        return total;
    }

    if (len == 0) {
        if (x->resp.status >= 200 && x->resp.status < 300) {
            x->final = 1;

            if (x->handler->headers != NULL
                && x->handler->headers(x, x->data) != 0)
            {
                x->refused = 1;
                return 0;
            }
        }

        return total;
    }

    xfer_parse_header(x, buf, len);

    return total;
}


/* CURLOPT_WRITEFUNCTION */
size_t
xfer_write_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
    xfer_t       *x = userdata;
    xfer_resp_t  *r = &x->resp;
    size_t        n, room;
    char         *body;

    n = size * nmemb;

    /* A refusal is final.  curl 7.88 hands a block kept by a pause over
     * inside curl_easy_pause() (bw.c), returns our refusal of it there and
     * then goes on with the transfer: the next block must not be taken
     * where the refused one belonged, and done must not see success. */
    if (x->refused) {
        return 0;
    }

    if (r->status >= 200 && r->status < 300) {
        /* curl hands the same bytes over again after the unpause */
        if (x->flow.bucket[0] != NULL && !bw_admit(x->xm->bw, &x->flow, n))
        {
            if (x->registry != NULL) {
                stats_registry(x->registry)->bandwidth_pauses++;
            }

            return CURL_WRITEFUNC_PAUSE;
        }

        if (x->handler->body(x, p, n, x->data) != 0) {
            x->refused = 1;
            return 0;
        }

        r->bytes += (long long) n;

        if (x->registry != NULL) {
            stats_registry(x->registry)->upstream_bytes += n;
        }

        return n;
    }

    /* an error answer: keep its start for the JSON error code */
    if (r->body == NULL) {
        body = malloc(XFER_ERRBODY_MAX);
        if (body == NULL) {
            return n;
        }

        r->body = body;
    }

    room = XFER_ERRBODY_MAX - r->body_len;
    if (n < room) {
        room = n;
    }

    memcpy(r->body + r->body_len, p, room);
    r->body_len += room;

    return n;
}


/* Append "<prefix><value>" to the request headers. */
static struct curl_slist *
xfer_add_header(struct curl_slist *list, const char *prefix,
    const char *value, int *failed)
{
    struct curl_slist  *l;
    char               *line;
    size_t              len;

    if (*failed) {
        return list;
    }

    len = strlen(prefix) + strlen(value) + 1;
    line = malloc(len);
    if (line == NULL) {
        *failed = 1;
        return list;
    }

    snprintf(line, len, "%s%s", prefix, value);
    l = curl_slist_append(list, line);

    /* curl copied the string; wipe ours, it may hold a token (a plain
     * memset() before free() may be optimised away) */
    explicit_bzero(line, len);
    free(line);

    if (l == NULL) {
        *failed = 1;
        return list;
    }

    return l;
}


/*
 * The transport settings of reg (NULL: the "fetcher" group's) and, if
 * shaped, the transfer's share of the bandwidth limits.
 */
static void
xfer_transport(xfer_t *x, const oci_config_t *cf, const oci_registry_t *reg,
    int shaped, int direct)
{
    CURL        *e = x->easy;
    const char  *proxy, *no_proxy;
    long         connect_timeout, low_speed_time, low_speed_limit;
    long long    rate, share;

    proxy = reg != NULL ? reg->proxy : cf->proxy;
    no_proxy = reg != NULL ? reg->no_proxy : cf->no_proxy;
    x->proxied = proxy != NULL && proxy[0] != '\0';
    connect_timeout = reg != NULL ? reg->connect_timeout : cf->connect_timeout;
    low_speed_time = reg != NULL ? reg->low_speed_time : cf->low_speed_time;

    /* "" rather than unset: curl would otherwise take a proxy from the
     * http_proxy, https_proxy, all_proxy and no_proxy environment
     * variables, and only the config may send traffic to a proxy */
    if (direct) {
        proxy = NULL;
        no_proxy = NULL;
        x->proxied = 0;
    }

    curl_easy_setopt(e, CURLOPT_PROXY, proxy != NULL ? proxy : "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, no_proxy != NULL ? no_proxy : "");

    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, connect_timeout);

    if (shaped) {
        bw_flow_init(x->xm->bw, &x->flow, reg, e);
    }

    /* a stall is less than 1 KiB/s, or less than the transfer's share of
     * a bandwidth limit lower than that */
    low_speed_limit = 1024;
    rate = bw_flow_rate(&x->flow);

    if (rate > 0) {
        share = rate / (cf->max_transfers > 0 ? cf->max_transfers : 1);

        if (share < low_speed_limit) {
            low_speed_limit = share > 0 ? (long) share : 1;
        }
    }

    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, low_speed_time);

    if (reg == NULL) {
        return;
    }

    if (x->xm->resolve[reg - cf->registries] != NULL) {
        curl_easy_setopt(e, CURLOPT_RESOLVE,
                         x->xm->resolve[reg - cf->registries]);
    }

    /* a CA file replaces the system store for this registry: curl's
     * default CA directory (CURLOPT_CAPATH, /etc/ssl/certs with Debian's
     * libcurl) would otherwise still be searched too, and any publicly
     * trusted certificate accepted */
    if (reg->ca_file.path != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, reg->ca_file.path);
        curl_easy_setopt(e, CURLOPT_CAPATH, (char *) NULL);
    }

    if (reg->client_cert.path != NULL) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, reg->client_cert.path);
    }

    if (reg->client_key.path != NULL) {
        curl_easy_setopt(e, CURLOPT_SSLKEY, reg->client_key.path);
    }

    if (!reg->tls_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}


xfer_t *
xfer_start(xfer_multi_t *xm, const xfer_req_t *req,
    const xfer_handler_t *handler, void *data)
{
    xfer_t                *x;
    CURL                  *e;
    int                    failed;
    const oci_config_t    *cf = xm->cf;
    const oci_registry_t  *reg = req->registry;
    char                   url[XFER_LOG_URL_MAX];
    char                   scheme[16];

    x = calloc(1, sizeof(xfer_t));
    if (x == NULL) {
        log_error("out of memory for a transfer");
        return NULL;
    }

    queue_init(&x->link);
    x->xm = xm;
    x->handler = handler;
    x->data = data;
    x->method = req->head ? "HEAD" : "GET";
    x->prio = req->prio;
    x->redirected = req->redirected;
    x->answer = req->answer;
    x->registry = reg;
    queue_init(&x->flow.link);
    xfer_resp_reset(&x->resp);

    x->url = strdup(req->url);
    x->easy = curl_easy_init();

    if (url_scheme_host(req->home != NULL ? req->home : req->url,
                        scheme, sizeof(scheme), x->home_host,
                        sizeof(x->home_host))
        != 0)
    {
        x->home_host[0] = '\0';
    }

    if (x->url == NULL || x->easy == NULL) {
        xfer_log_url(req->url, !req->redirected, url, sizeof(url));
        log_error("cannot set up a transfer for %s", url);
        xfer_free(x);
        return NULL;
    }

    failed = 0;

    if (req->accept != NULL) {
        x->headers = xfer_add_header(x->headers, "Accept: ", req->accept,
                                     &failed);
    }

    if (req->header != NULL) {
        x->headers = xfer_add_header(x->headers, "", req->header, &failed);
    }

    if (req->bearer != NULL) {
        x->headers = xfer_add_header(x->headers, "Authorization: Bearer ",
                                     req->bearer, &failed);
    }

    if (failed) {
        xfer_log_url(req->url, !req->redirected, url, sizeof(url));
        log_error("out of memory for request headers of %s", url);
        xfer_free(x);
        return NULL;
    }

    e = x->easy;

    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");

    /* Redirects (blob CDNs) are followed; CURLOPT_UNRESTRICTED_AUTH is
     * left off, so curl sends our Authorization header only while the
     * scheme, host and port are those of the original URL.  Each hop is
     * checked before it is sent (see xfer.h). */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, xfer_prereq_cb);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);

    xfer_transport(x, cf, reg, !req->unshaped, req->direct);

    if (req->username != NULL && req->password != NULL) {
        /* curl keeps Basic, like our Authorization header, to the host
         * and port of the URL: a redirect elsewhere goes without */
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, req->username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, req->password);
    }

    curl_easy_setopt(e, CURLOPT_USERAGENT, XFER_USER_AGENT);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, xfer_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xfer_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);

    /* the chunks of one blob go over HTTP/1.1 on purpose: streams of one
     * HTTP/2 connection share its congestion window, separate
     * connections each get their own.  So do transfers under a bandwidth
     * limit: pausing and resuming an HTTP/2 stream over and over can
     * stall it in the curl we build on (curl issue 10988), while a paused
     * HTTP/1.1 transfer simply leaves its data to TCP's flow control */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     cf->http2 && !req->http1 && x->flow.bucket[0] == NULL
                     ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);

    if (req->head) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }

    if (req->ranged) {
        if (req->range_last >= 0) {
            snprintf(x->range, sizeof(x->range), "%lld-%lld",
                     req->range_first, req->range_last);

        } else {
            snprintf(x->range, sizeof(x->range), "%lld-", req->range_first);
        }

        curl_easy_setopt(e, CURLOPT_RANGE, x->range);
    }

    if (x->headers != NULL) {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    }

    if (req->urgent) {
        queue_insert_head(&xm->pending[x->prio], &x->link);

    } else {
        queue_insert_tail(&xm->pending[x->prio], &x->link);
    }

    xm->npending[x->prio]++;

    return x;
}


void
xfer_abort(xfer_t *x)
{
    xfer_free(x);
}


void
xfer_set_prio(xfer_t *x, xfer_prio_t prio)
{
    xfer_multi_t  *xm = x->xm;

    if (x->prio == prio) {
        return;
    }

    if (x->active) {
        xm->running_prefetch += (prio == XFER_PRIO_PREFETCH)
                                - (x->prio == XFER_PRIO_PREFETCH);

    } else {
        queue_remove(&x->link);
        queue_insert_tail(&xm->pending[prio], &x->link);
        xm->npending[x->prio]--;
        xm->npending[prio]++;
    }

    x->prio = prio;
}


/* Out of the multi and out of the running counts. */
static void
xfer_deactivate(xfer_t *x)
{
    xfer_multi_t  *xm = x->xm;

    xfer_check("curl_multi_remove_handle",
               curl_multi_remove_handle(xm->multi, x->easy));
    x->active = 0;
    xm->running--;

    if (x->prio == XFER_PRIO_PREFETCH) {
        xm->running_prefetch--;
    }

    queue_remove(&x->link);
}


static void
xfer_free(xfer_t *x)
{
    struct curl_slist  *l;

    if (x->active) {
        xfer_deactivate(x);

    } else if (queue_linked(&x->link)) {
        queue_remove(&x->link);
        x->xm->npending[x->prio]--;
    }

    bw_flow_remove(x->xm->bw, &x->flow);

    if (x->easy != NULL) {
        curl_easy_cleanup(x->easy);
    }

    /* the list may hold an Authorization header: wiped, not only freed */
    for (l = x->headers; l != NULL; l = l->next) {
        explicit_bzero(l->data, strlen(l->data));
    }

    curl_slist_free_all(x->headers);

    free(x->resp.body);
    free(x->url);
    free(x);
}


/* The next transfer to start, by priority; NULL if none may start. */
static xfer_t *
xfer_next(xfer_multi_t *xm)
{
    int  i;

    if (xm->running >= xm->cf->max_transfers) {
        return NULL;
    }

    for (i = 0; i < XFER_PRIO_N; i++) {
        if (i == XFER_PRIO_PREFETCH
            && xm->running_prefetch >= xm->prefetch_max)
        {
            return NULL;
        }

        if (!queue_empty(&xm->pending[i])) {
            return queue_data(queue_head(&xm->pending[i]), xfer_t, link);
        }
    }

    return NULL;
}


size_t
xfer_queued(const xfer_multi_t *xm, xfer_prio_t prio)
{
    return xm->npending[prio];
}


int
xfer_pump(xfer_multi_t *xm)
{
    xfer_t     *x;
    CURLMcode   mc;
    int         worked;
    char        url[XFER_LOG_URL_MAX];

    worked = 0;

    while ((x = xfer_next(xm)) != NULL) {
        queue_remove(&x->link);
        xm->npending[x->prio]--;

        clock_gettime(CLOCK_MONOTONIC, &x->started);
        worked = 1;

        if (x->answer != 0) {
            xfer_log_url(x->url, !x->redirected, url, sizeof(url));
            log_debug("%s %s answered %ld without a request", x->method,
                      url, x->answer);
            x->resp.status = x->answer;
            x->handler->done(x, CURLE_OK, x->data);
            xfer_free(x);
            continue;
        }

        mc = curl_multi_add_handle(xm->multi, x->easy);
        if (mc != CURLM_OK) {
            xfer_log_url(x->url, !x->redirected, url, sizeof(url));
            log_error("curl_multi_add_handle(%s) failed: %s", url,
                      curl_multi_strerror(mc));
            x->handler->done(x, CURLE_FAILED_INIT, x->data);
            xfer_free(x);
            continue;
        }

        x->active = 1;
        xm->running++;

        if (x->prio == XFER_PRIO_PREFETCH) {
            xm->running_prefetch++;
        }

        queue_insert_tail(&xm->active, &x->link);
    }

    return worked;
}


/* Collect finished transfers: after every curl_multi_socket_action(). */
static void
xfer_drain(xfer_multi_t *xm)
{
    CURLMsg   *msg;
    CURL      *easy;
    CURLcode   rc;
    xfer_t    *x;
    char      *priv;
    int        left;

    for ( ;; ) {
        msg = curl_multi_info_read(xm->multi, &left);
        if (msg == NULL) {
            break;
        }

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        /* msg dies with the handle's removal: copy what we need */
        easy = msg->easy_handle;
        rc = msg->data.result;

        priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        x = (xfer_t *) priv;

        if (rc == CURLE_OK && x->refused) {
            /* the refusal curl_easy_pause() swallowed (xfer_write_cb()) */
            rc = CURLE_WRITE_ERROR;
        }

        xfer_deactivate(x);
        xfer_log_done(x, rc);

        x->handler->done(x, rc, x->data);
        xfer_free(x);
    }

    xfer_pump(xm);
}


void
xfer_log_url(const char *url, int keep_query, char *out, size_t cap)
{
    const char  *auth, *end, *at;
    size_t       n, len;

    if (cap == 0) {
        return;
    }

    len = keep_query ? strcspn(url, "#") : strcspn(url, "?#");

    /* userinfo sits between "//" and the last '@' before the path */
    auth = strstr(url, "://");
    auth = auth != NULL && (size_t) (auth - url) < len ? auth + 3 : url;
    end = auth + strcspn(auth, "/?#");
    at = memrchr(auth, '@', (size_t) (end - auth));

    n = 0;

    if (at != NULL) {
        n = (size_t) (auth - url);
        n = n < cap - 1 ? n : cap - 1;
        memcpy(out, url, n);
        len -= (size_t) (at + 1 - url);
        url = at + 1;
    }

    len = len < cap - 1 - n ? len : cap - 1 - n;
    memcpy(out + n, url, len);
    out[n + len] = '\0';
}


/* One line per finished transfer.  Only our own URL is printed in full (it
 * holds no secret); a redirect target may carry a signed query, so only
 * its scheme, host and path are shown. */
static void
xfer_log_done(xfer_t *x, CURLcode rc)
{
    struct timespec   now;
    long long         ms;
    curl_off_t        bytes;
    char             *eff;
    char              url[XFER_LOG_URL_MAX], effurl[XFER_LOG_URL_MAX];

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (long long) (now.tv_sec - x->started.tv_sec) * 1000
         + (now.tv_nsec - x->started.tv_nsec) / 1000000;

    bytes = 0;
    curl_easy_getinfo(x->easy, CURLINFO_SIZE_DOWNLOAD_T, &bytes);

    eff = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &eff);

    effurl[0] = '\0';

    if (eff != NULL && strcmp(eff, x->url) != 0) {
        xfer_log_url(eff, 0, effurl, sizeof(effurl));
    }

    xfer_log_url(x->url, !x->redirected, url, sizeof(url));

    if (rc == CURLE_OK) {
        log_info("%s %s%s%s%s%s %ld %lld bytes %lld ms", x->method,
                 url, x->range[0] ? " bytes=" : "", x->range,
                 effurl[0] ? " -> " : "", effurl,
                 x->resp.status, (long long) bytes, ms);

    } else {
        log_info("%s %s%s%s%s%s failed: %s (%lld bytes, %lld ms)",
                 x->method, url, x->range[0] ? " bytes=" : "",
                 x->range, effurl[0] ? " -> " : "", effurl,
                 xfer_strerror(x, rc), (long long) bytes, ms);
    }
}


const xfer_resp_t *
xfer_response(const xfer_t *x)
{
    return &x->resp;
}


const char *
xfer_effective_url(const xfer_t *x)
{
    char  *eff;

    eff = NULL;

    if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &eff) != CURLE_OK
        || eff == NULL)
    {
        return x->url;
    }

    return eff;
}


int
xfer_answered(const xfer_t *x)
{
    return x->answer != 0;
}


const char *
xfer_refused(const xfer_t *x)
{
    return x->hop_refused[0] != '\0' ? x->hop_refused : NULL;
}


int
xfer_held(const xfer_t *x)
{
    return x->held;
}


static long long
xfer_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void
xfer_hold_host(xfer_multi_t *xm, const char *url, long secs)
{
    char  origin[OCI_HOST_MAX + 32];

    if (url_origin(url, origin, sizeof(origin)) == 0) {
        throttle_hold(xm->held, origin, xfer_now_ms() + secs * 1000LL);
    }
}


/* Refuse a hop of x to url for the reason in x->hop_refused: logged (with
 * the address connected to, if it is what decided) and counted.  -1. */
static int
xfer_hop_refuse(xfer_t *x, const char *url, const char *address)
{
    char  logurl[XFER_LOG_URL_MAX];

    xfer_log_url(url, 0, logurl, sizeof(logurl));

    if (address != NULL) {
        log_warn("%s %s: %s (connected to %s; a host the registry's "
                 "redirect_hosts lists is allowed)", x->method, logurl,
                 x->hop_refused, address);

    } else {
        log_warn("%s %s: %s", x->method, logurl, x->hop_refused);
    }

    if (x->registry != NULL) {
        stats_registry(x->registry)->redirects_refused++;
    }

    return -1;
}


/*
 * A hop of x to url, connected to address (see xfer.h).  0 to send it, -1
 * to refuse it (x->held or x->hop_refused set, logged).
 */
static int
xfer_hop_check(xfer_t *x, const char *url, const char *address)
{
    const oci_registry_t  *reg = x->registry;
    const char            *kind;
    char                   scheme[16], host[OCI_HOST_MAX + 1];
    char                   origin[OCI_HOST_MAX + 32];
    char                   logurl[XFER_LOG_URL_MAX];

    if (url_scheme_host(url, scheme, sizeof(scheme), host, sizeof(host))
            != 0
        || url_origin(url, origin, sizeof(origin)) != 0)
    {
        snprintf(x->hop_refused, sizeof(x->hop_refused),
                 "redirect to a URL that does not parse refused");
        return xfer_hop_refuse(x, url, NULL);
    }

    if (strcmp(scheme, "https") == 0) {
        x->seen_https = 1;

    } else if (x->seen_https) {
        snprintf(x->hop_refused, sizeof(x->hop_refused),
                 "redirect from https down to http refused");
        return xfer_hop_refuse(x, url, NULL);
    }

    if (throttle_until(x->xm->held, origin, xfer_now_ms()) != 0) {
        xfer_log_url(url, 0, logurl, sizeof(logurl));
        log_info("%s %s: %s answered 429 lately, not asking it", x->method,
                 logurl, origin);
        x->held = 1;
        return -1;
    }

    if (strcmp(host, x->home_host) == 0
        || (reg != NULL && oci_redirect_host_allowed(reg, host)))
    {
        return 0;
    }

    /* through a proxy the address is the proxy's: only a host written as
     * an address can be judged */
    kind = url_address_local(x->proxied ? host : address);

    if (kind == NULL) {
        return 0;
    }

    snprintf(x->hop_refused, sizeof(x->hop_refused),
             "redirect to %.*s (a %s address) refused", OCI_HOST_MAX, host,
             kind);

    return xfer_hop_refuse(x, url, address);
}


/* CURLOPT_PREREQFUNCTION: a hop is connected, nothing of it sent yet. */
static int
xfer_prereq_cb(void *clientp, char *primary_ip, char *local_ip,
    int primary_port, int local_port)
{
    xfer_t  *x = clientp;
    char    *url;

    url = NULL;

    if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK
        || url == NULL)
    {
        url = x->url;
    }

    return xfer_hop_check(x, url, primary_ip) == 0
           ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}


long long
xfer_round_trip_us(const xfer_t *x)
{
    curl_off_t  pre, first;

    if (x->answer != 0
        || curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pre)
           != CURLE_OK
        || curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME_T, &first)
           != CURLE_OK
        || first <= 0 || first < pre)
    {
        return -1;
    }

    return (long long) (first - pre);
}


const char *
xfer_strerror(const xfer_t *x, CURLcode rc)
{
    if (x->errbuf[0] != '\0') {
        return x->errbuf;
    }

    return curl_easy_strerror(rc);
}
