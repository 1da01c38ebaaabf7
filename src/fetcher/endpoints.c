/*
 * Endpoint health, back-off, throttling and probes (see endpoints.h).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "endpoints.h"
#include "log.h"
#include "stats.h"

typedef struct {
    endpoints_t           *eps;
    const oci_registry_t  *reg;
    size_t                 i;
    int                    fails;
    int                    level;
    int                    down;
    long long              down_until;
    long long              throttled_until;
    int                    throttled;   /* until a probe after
                                           throttled_until answers */
    long long              rtt_us;
    xfer_t                *probe;
    char                   url[OCI_PATH_MAX];
} ep_t;

typedef struct {
    ep_t       *ep;
    long long   next_probe;         /* ms; "fastest" only */
    int         ratelimit_low;      /* warned */
} ep_registry_t;

struct endpoints_s {
    const oci_config_t  *cf;
    xfer_multi_t        *xm;
    ep_registry_t       *regs;
    endpoints_clock_pt   now;
};

static int ep_probe_headers(xfer_t *x, void *data);
static int ep_probe_body(xfer_t *x, const char *p, size_t n, void *data);
static void ep_probe_done(xfer_t *x, CURLcode rc, void *data);

static const xfer_handler_t  ep_probe_handler = {
    ep_probe_headers,
    ep_probe_body,
    ep_probe_done
};


long long
endpoints_monotonic(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


endpoints_t *
endpoints_create(const oci_config_t *cf, xfer_multi_t *xm)
{
    endpoints_t           *eps;
    const oci_registry_t  *reg;
    ep_t                  *ep;
    size_t                 r, i, len;

    eps = calloc(1, sizeof(endpoints_t));
    if (eps == NULL) {
        log_error("out of memory");
        return NULL;
    }

    eps->cf = cf;
    eps->xm = xm;
    eps->now = endpoints_monotonic;

    eps->regs = calloc(cf->n_registries + 1, sizeof(ep_registry_t));
    if (eps->regs == NULL) {
        log_error("out of memory");
        free(eps);
        return NULL;
    }

    for (r = 0; r < cf->n_registries; r++) {
        reg = &cf->registries[r];

        eps->regs[r].ep = calloc(reg->n_endpoints + 1, sizeof(ep_t));
        if (eps->regs[r].ep == NULL) {
            log_error("out of memory");
            endpoints_destroy(eps);
            return NULL;
        }

        for (i = 0; i < reg->n_endpoints; i++) {
            ep = &eps->regs[r].ep[i];
            ep->eps = eps;
            ep->reg = reg;
            ep->i = i;
            ep->rtt_us = -1;

            len = strlen(reg->endpoints[i]);
            while (len > 0 && reg->endpoints[i][len - 1] == '/') {
                len--;
            }

            snprintf(ep->url, sizeof(ep->url), "%.*s/v2/", (int) len,
                     reg->endpoints[i]);
        }
    }

    return eps;
}


void
endpoints_destroy(endpoints_t *eps)
{
    size_t  r, i;

    if (eps == NULL) {
        return;
    }

    for (r = 0; r < eps->cf->n_registries; r++) {
        if (eps->regs[r].ep == NULL) {
            continue;
        }

        for (i = 0; i < eps->cf->registries[r].n_endpoints; i++) {
            if (eps->regs[r].ep[i].probe != NULL) {
                xfer_abort(eps->regs[r].ep[i].probe);
            }
        }

        free(eps->regs[r].ep);
    }

    free(eps->regs);
    free(eps);
}


void
endpoints_set_clock(endpoints_t *eps, endpoints_clock_pt now)
{
    eps->now = now;
}


long long
endpoints_now(endpoints_t *eps)
{
    return eps->now();
}


static ep_registry_t *
ep_registry(endpoints_t *eps, const oci_registry_t *reg)
{
    return &eps->regs[reg - eps->cf->registries];
}


static ep_t *
ep_get(endpoints_t *eps, const oci_registry_t *reg, size_t i)
{
    return &ep_registry(eps, reg)->ep[i];
}


static int
ep_usable(const ep_t *ep)
{
    return !ep->down && !ep->throttled;
}


int
endpoints_usable(endpoints_t *eps, const oci_registry_t *reg, size_t i)
{
    return ep_usable(ep_get(eps, reg, i));
}


size_t
endpoints_order(endpoints_t *eps, const oci_registry_t *reg, size_t *order,
    int *throttled)
{
    ep_t       *eparr, *a, *b;
    size_t      i, k, n, t;

    eparr = ep_registry(eps, reg)->ep;
    n = 0;
    *throttled = 0;

    for (i = 0; i < reg->n_endpoints; i++) {
        if (ep_usable(&eparr[i])) {
            order[n++] = i;

        } else if (!eparr[i].down) {
            *throttled = 1;
        }
    }

    if (reg->select != OCI_SELECT_FASTEST) {
        return n;
    }

    /* insertion sort, stable: a handful of endpoints */
    for (i = 1; i < n; i++) {
        t = order[i];
        b = &eparr[t];

        for (k = i; k > 0; k--) {
            a = &eparr[order[k - 1]];

            if (b->rtt_us < 0
                || (a->rtt_us >= 0 && a->rtt_us <= b->rtt_us))
            {
                break;
            }

            order[k] = order[k - 1];
        }

        order[k] = t;
    }

    return n;
}


static void
ep_stats(ep_t *ep)
{
    stats_endpoint_t  *st;

    st = &stats_registry(ep->reg)->endpoints[ep->i];
    st->up = !ep->down;
    st->rtt_us = ep->rtt_us;
}


void
endpoints_sent(endpoints_t *eps, const oci_registry_t *reg, size_t i)
{
    stats_registry(reg)->endpoints[i].requests++;
}


static void
ep_success(ep_t *ep)
{
    if (ep->down) {
        log_info("registry \"%s\": endpoint %s is back", ep->reg->name,
                 ep->reg->endpoints[ep->i]);
    }

    ep->fails = 0;
    ep->level = 0;
    ep->down = 0;
    ep_stats(ep);
}


/* Down for backoff << level seconds from now. */
static void
ep_back_off(ep_t *ep, long long now)
{
    long long  secs;

    secs = (long long) ep->reg->backoff << ep->level;

    log_warn("registry \"%s\": endpoint %s failed %d time%s, skipped for "
             "%llds", ep->reg->name, ep->reg->endpoints[ep->i], ep->fails,
             ep->fails == 1 ? "" : "s", secs);

    ep->down = 1;
    ep->down_until = now + secs * 1000;

    if (ep->level < ENDPOINTS_BACKOFF_MAX_SHIFT) {
        ep->level++;
    }

    ep_stats(ep);
}


static void
ep_failure(ep_t *ep)
{
    stats_registry(ep->reg)->endpoints[ep->i].failures++;

    ep->fails++;

    /* a down endpoint gets no requests of its own; those that were in
     * flight when it went down change nothing */
    if (!ep->down && ep->fails >= ENDPOINTS_FAIL_MAX) {
        ep_back_off(ep, ep->eps->now());
    }
}


void
endpoints_failed(endpoints_t *eps, const oci_registry_t *reg, size_t i)
{
    ep_failure(ep_get(eps, reg, i));
}


static void
ep_ratelimit(endpoints_t *eps, const oci_registry_t *reg,
    const xfer_resp_t *r)
{
    stats_registry_t  *st;
    ep_registry_t     *er;
    int                low;

    if (r->ratelimit_limit < 0 && r->ratelimit_remaining < 0) {
        return;
    }

    st = stats_registry(reg);
    er = ep_registry(eps, reg);

    if (r->ratelimit_limit >= 0) {
        st->ratelimit_limit = r->ratelimit_limit;
    }

    if (r->ratelimit_remaining < 0) {
        return;
    }

    st->ratelimit_remaining = r->ratelimit_remaining;

    /* low: a tenth of the limit left, or 10 requests if it is unknown */
    low = st->ratelimit_limit > 0
          ? r->ratelimit_remaining * 10 <= st->ratelimit_limit
          : r->ratelimit_remaining <= 10;

    if (low && !er->ratelimit_low) {
        log_warn("registry \"%s\": rate limit low, %lld of %lld requests "
                 "left", reg->name, r->ratelimit_remaining,
                 st->ratelimit_limit);
    }

    er->ratelimit_low = low;
}


/* A 429: no requests for Retry-After seconds, at most max_retry_after;
 * then a probe decides. */
static void
ep_throttle(ep_t *ep, const xfer_resp_t *r)
{
    const oci_registry_t  *reg = ep->reg;
    long                   secs;

    secs = r->retry_after >= 0 ? r->retry_after : ENDPOINTS_RETRY_AFTER;

    if (secs > reg->max_retry_after) {
        secs = reg->max_retry_after;
    }

    ep->throttled = 1;
    ep->throttled_until = ep->eps->now() + (long long) secs * 1000;
    stats_registry(reg)->endpoints[ep->i].throttled++;

    log_warn("registry \"%s\": endpoint %s answered 429, no requests for "
             "%lds%s, then a probe", reg->name, reg->endpoints[ep->i], secs,
             r->retry_after > reg->max_retry_after
             ? " (its Retry-After capped by max_retry_after)" : "");
}


void
endpoints_answered(endpoints_t *eps, const oci_registry_t *reg, size_t i,
    const xfer_resp_t *r)
{
    ep_t  *ep;

    ep = ep_get(eps, reg, i);

    ep_ratelimit(eps, reg, r);

    if (r->status >= 500 || r->status <= 0) {
        ep_failure(ep);
        return;
    }

    if (r->status != 429) {
        ep_success(ep);
        return;
    }

    ep_throttle(ep, r);
}


void
endpoints_redirected(endpoints_t *eps, const oci_registry_t *reg, size_t i)
{
    ep_success(ep_get(eps, reg, i));
}


static void
ep_probe(ep_t *ep)
{
    endpoints_t  *eps = ep->eps;
    xfer_req_t    req;

    memset(&req, 0, sizeof(req));
    req.url = ep->url;
    req.registry = ep->reg;
    req.prio = XFER_PRIO_TOKEN;
    /* a few bytes whose timing must not include a bandwidth pause */
    req.unshaped = 1;

    ep->probe = xfer_start(eps->xm, &req, &ep_probe_handler, ep);

    if (ep->probe == NULL) {
        return;
    }

    endpoints_sent(eps, ep->reg, ep->i);
    log_debug("registry \"%s\": probing %s", ep->reg->name, ep->url);
}


void
endpoints_tick(endpoints_t *eps)
{
    const oci_registry_t  *reg;
    ep_registry_t         *er;
    ep_t                  *ep;
    long long              now;
    size_t                 r, i;
    int                    round;

    now = eps->now();

    for (r = 0; r < eps->cf->n_registries; r++) {
        reg = &eps->cf->registries[r];
        er = &eps->regs[r];

        round = reg->select == OCI_SELECT_FASTEST && now >= er->next_probe;

        if (round) {
            er->next_probe = now + (long long) reg->probe_interval * 1000;
        }

        for (i = 0; i < reg->n_endpoints; i++) {
            ep = &er->ep[i];

            if (ep->probe != NULL || now < ep->throttled_until) {
                continue;
            }

            if (ep->throttled || (ep->down ? now >= ep->down_until : round))
            {
                ep_probe(ep);
            }
        }
    }
}


static int
ep_probe_headers(xfer_t *x, void *data)
{
    return 0;
}


static int
ep_probe_body(xfer_t *x, const char *p, size_t n, void *data)
{
    return 0;
}


static void
ep_probe_done(xfer_t *x, CURLcode rc, void *data)
{
    ep_t               *ep = data;
    endpoints_t        *eps = ep->eps;
    const xfer_resp_t  *r;
    long long           now;

    ep->probe = NULL;
    now = eps->now();
    r = xfer_response(x);

    if (rc == CURLE_OK && r->status == 429) {
        /* still throttled */
        ep_throttle(ep, r);
        return;
    }

    if (rc == CURLE_OK && r->status > 0 && r->status < 500) {
        /* the request's own round trip: not the time it queued for a
         * slot or a connection */
        ep->rtt_us = xfer_round_trip_us(x);
        ep_ratelimit(eps, ep->reg, r);

        if (ep->down || ep->throttled) {
            log_info("registry \"%s\": endpoint %s answers again",
                     ep->reg->name, ep->reg->endpoints[ep->i]);
        }

        /* alive; the back-off level drops only with a request served */
        ep->fails = 0;
        ep->down = 0;
        ep->throttled = 0;
        ep_stats(ep);
        return;
    }

    log_debug("registry \"%s\": probe of %s failed (%s)", ep->reg->name,
              ep->url, rc != CURLE_OK ? xfer_strerror(x, rc) : "5xx");

    stats_registry(ep->reg)->endpoints[ep->i].failures++;
    ep->fails++;
    ep->rtt_us = -1;

    /* a throttled endpoint whose probe fails backs off like a down one */
    if (ep->down || ep->throttled || ep->fails >= ENDPOINTS_FAIL_MAX) {
        ep->throttled = 0;
        ep_back_off(ep, now);
        return;
    }

    ep_stats(ep);
}


void
endpoints_state(endpoints_t *eps, const oci_registry_t *reg, size_t i,
    endpoints_state_t *st)
{
    ep_t  *ep;

    ep = ep_get(eps, reg, i);

    st->fails = ep->fails;
    st->level = ep->level;
    st->down = ep->down;
    st->down_until = ep->down_until;
    st->throttled_until = ep->throttled_until;
    st->throttled = ep->throttled;
    st->rtt_us = ep->rtt_us;
    st->probing = ep->probe != NULL;
}
