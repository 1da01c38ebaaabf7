/*
 * Unit tests for src/fetcher/endpoints.c and negative.c: the order of the
 * usable endpoints ("ordered", "fastest" by probed round trip), failures
 * and the doubling back-off with its cap, probes bringing an endpoint
 * back, 429 throttling with and without Retry-After, the rate limit
 * gauges, the counters; the negative cache (expiry, TTL 0, the cap).
 * Transfers are the fakes of fetcher_fakes.h; the clock is the test's.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "fetcher_fakes.h"
#include "endpoints.h"
#include "negative.h"

#define EP_A  "http://a.test"
#define EP_B  "http://b.test"
#define EP_C  "http://c.test"

typedef struct {
    char           dir[64];
    oci_config_t  *cf;
    endpoints_t   *eps;
    const oci_registry_t  *fast;    /* a, b, c; fastest; backoff 10 */
    const oci_registry_t  *ord;     /* a, b; ordered; backoff 2 */
    const oci_registry_t  *off;     /* negative_ttl 0 */
} env_t;

static long long  now_ms;


static long long
test_clock(void)
{
    return now_ms;
}


/* with_fast: fast.test selects "fastest" (else "ordered": no probe
 * rounds get in the way of a test of the back-off). */
static int
setup_config(void **state, int with_fast)
{
    env_t  *e;
    char    file[128], err[512];
    FILE   *fp;

    e = calloc(1, sizeof(env_t));
    assert_non_null(e);

    snprintf(e->dir, sizeof(e->dir), "/tmp/ocitest-eps.XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(file, sizeof(file), "%s/ocimirror.cfg", e->dir);

    fp = fopen(file, "w");
    assert_non_null(fp);
    fprintf(fp,
            "store = { path = \"%s/store\"; };\n"
            "registries = (\n"
            "  { name = \"fast.test\"; endpoints = ( \"" EP_A "\", \""
            EP_B "\", \"" EP_C "/\" ); select = \"%s\";\n"
            "    probe_interval = 30; backoff = 10; negative_ttl = 5; },\n"
            "  { name = \"ord.test\"; endpoints = ( \"" EP_A "\", \""
            EP_B "\" ); backoff = 2; },\n"
            "  { name = \"off.test\"; endpoints = ( \"" EP_A "\" );\n"
            "    negative_ttl = 0; }\n"
            ");\n", e->dir, with_fast ? "fastest" : "ordered");
    fclose(fp);

    err[0] = '\0';
    if (oci_config_load(file, &e->cf, err, sizeof(err)) != OCI_OK) {
        fail_msg("config: %s", err);
    }

    e->fast = oci_config_registry(e->cf, "fast.test", 9);
    e->ord = oci_config_registry(e->cf, "ord.test", 8);
    e->off = oci_config_registry(e->cf, "off.test", 8);
    assert_non_null(e->fast);
    assert_non_null(e->ord);
    assert_non_null(e->off);

    assert_int_equal(stats_init(e->cf), 0);
    fake_xfer_reset();
    now_ms = 1000000;

    e->eps = endpoints_create(e->cf, (xfer_multi_t *) e);
    assert_non_null(e->eps);
    endpoints_set_clock(e->eps, test_clock);

    *state = e;
    return 0;
}


static int
setup(void **state)
{
    return setup_config(state, 1);
}


static int
setup_ordered(void **state)
{
    return setup_config(state, 0);
}


static int
teardown(void **state)
{
    env_t  *e = *state;

    endpoints_destroy(e->eps);
    assert_int_equal(fake_xfer_count(), 0);
    stats_destroy();
    oci_config_destroy(e->cf);
    test_rm_rf(e->dir);
    free(e);

    return 0;
}


/* The order as a string of endpoint indexes, "01"; *throttled too. */
static const char *
order(env_t *e, const oci_registry_t *reg, int *throttled)
{
    static char  out[16];
    size_t       o[8], n, i;
    int          t;

    n = endpoints_order(e->eps, reg, o, &t);

    for (i = 0; i < n; i++) {
        out[i] = (char) ('0' + o[i]);
    }

    out[n] = '\0';

    if (throttled != NULL) {
        *throttled = t;
    }

    return out;
}


static void
answer(env_t *e, const oci_registry_t *reg, size_t i, long status)
{
    xfer_resp_t  r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.retry_after = -1;
    r.ratelimit_limit = -1;
    r.ratelimit_remaining = -1;
    endpoints_answered(e->eps, reg, i, &r);
}


/* Answer the probe x: an HTTP status, or a curl failure if status is 0. */
static void
probe_reply(xfer_t *x, long status, CURLcode rc)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.rc = rc;
    fake_xfer_reply(x, &r);
}


static void
test_ordered(void **state)
{
    env_t  *e = *state;
    int     t;

    assert_string_equal(order(e, e->ord, &t), "01");
    assert_int_equal(t, 0);

    /* failures below the limit, or broken by a success, change nothing */
    endpoints_failed(e->eps, e->ord, 0);
    answer(e, e->ord, 0, 503);
    answer(e, e->ord, 0, 404);
    endpoints_failed(e->eps, e->ord, 0);
    endpoints_failed(e->eps, e->ord, 0);
    assert_string_equal(order(e, e->ord, NULL), "01");
    assert_true(stats_registry(e->ord)->endpoints[0].failures == 4);

    /* the third in a row: skipped for backoff seconds */
    answer(e, e->ord, 0, 500);
    assert_string_equal(order(e, e->ord, &t), "1");
    assert_int_equal(t, 0);
    assert_int_equal(endpoints_usable(e->eps, e->ord, 0), 0);
    assert_int_equal(stats_registry(e->ord)->endpoints[0].up, 0);

    /* both down: nothing usable, and not because of a 429 */
    endpoints_failed(e->eps, e->ord, 1);
    endpoints_failed(e->eps, e->ord, 1);
    endpoints_failed(e->eps, e->ord, 1);
    assert_string_equal(order(e, e->ord, &t), "");
    assert_int_equal(t, 0);

    /* no requests were counted: only endpoints_sent() counts */
    assert_true(stats_registry(e->ord)->endpoints[0].requests == 0);
    endpoints_sent(e->eps, e->ord, 1);
    assert_true(stats_registry(e->ord)->endpoints[1].requests == 1);
}


/* Down for backoff << level, probed back in after it, doubling up to 32
 * times backoff while the probes fail. */
static void
test_backoff(void **state)
{
    static const long long  periods[] = { 2, 4, 8, 16, 32, 64, 64, 64 };
    env_t              *e = *state;
    endpoints_state_t   st;
    xfer_t             *x;
    size_t              k;

    endpoints_failed(e->eps, e->ord, 0);
    endpoints_failed(e->eps, e->ord, 0);
    endpoints_failed(e->eps, e->ord, 0);

    for (k = 0; k < sizeof(periods) / sizeof(periods[0]); k++) {
        endpoints_state(e->eps, e->ord, 0, &st);
        assert_int_equal(st.down, 1);
        assert_true(st.down_until == now_ms + periods[k] * 1000);

        /* not before the period has passed */
        now_ms += periods[k] * 1000 - 1;
        endpoints_tick(e->eps);
        assert_int_equal(fake_xfer_count(), 0);
        assert_string_equal(order(e, e->ord, NULL), "1");

        now_ms += 1;
        endpoints_tick(e->eps);
        x = fake_xfer_one();
        assert_string_equal(x->url, EP_A "/v2/");
        assert_int_equal(x->prio, XFER_PRIO_TOKEN);
        assert_string_equal(x->bearer, "");

        /* one probe at a time */
        endpoints_tick(e->eps);
        assert_int_equal(fake_xfer_count(), 1);
        endpoints_state(e->eps, e->ord, 0, &st);
        assert_int_equal(st.probing, 1);

        /* still not usable while the probe runs; it fails */
        assert_string_equal(order(e, e->ord, NULL), "1");
        if (k % 2) {
            probe_reply(x, 502, CURLE_OK);

        } else {
            probe_reply(x, 0, CURLE_COULDNT_CONNECT);
        }
    }

    assert_true(stats_registry(e->ord)->endpoints[0].requests == k);

    /* a probe answered (401 is alive): usable again */
    now_ms += 64 * 1000;
    endpoints_tick(e->eps);
    probe_reply(fake_xfer_one(), 401, CURLE_OK);
    assert_string_equal(order(e, e->ord, NULL), "01");
    assert_int_equal(stats_registry(e->ord)->endpoints[0].up, 1);

    /* the level stays until a request is served: failing again means
     * the longest period at once */
    endpoints_failed(e->eps, e->ord, 0);
    endpoints_failed(e->eps, e->ord, 0);
    endpoints_failed(e->eps, e->ord, 0);
    endpoints_state(e->eps, e->ord, 0, &st);
    assert_true(st.down_until == now_ms + 64 * 1000);

    now_ms += 64 * 1000;
    endpoints_tick(e->eps);
    probe_reply(fake_xfer_one(), 200, CURLE_OK);
    answer(e, e->ord, 0, 200);
    endpoints_failed(e->eps, e->ord, 0);
    endpoints_failed(e->eps, e->ord, 0);
    endpoints_failed(e->eps, e->ord, 0);
    endpoints_state(e->eps, e->ord, 0, &st);
    assert_true(st.down_until == now_ms + 2 * 1000);

    /* an endpoint that is up is not probed in "ordered" mode */
    now_ms += 2 * 1000;
    endpoints_tick(e->eps);
    probe_reply(fake_xfer_one(), 200, CURLE_OK);
    now_ms += 3600 * 1000;
    endpoints_tick(e->eps);
    assert_int_equal(fake_xfer_count(), 0);
}


/* The probe round trips order "fastest"; unknown last, ties in the order
 * written; a round every probe_interval.  A round trip is the request's
 * own as the transfer timed it (xfer_round_trip_us()): the time a probe
 * waited for a slot, or for a bandwidth tick, is not the endpoint's. */
static void
test_fastest(void **state)
{
    env_t              *e = *state;
    endpoints_state_t   st;
    xfer_t             *a, *b, *c;

    /* nothing measured yet: the order written */
    assert_string_equal(order(e, e->fast, NULL), "012");

    endpoints_tick(e->eps);
    assert_int_equal(fake_xfer_count(), 3);
    a = fake_xfer_at(0);
    b = fake_xfer_at(1);
    c = fake_xfer_at(2);
    assert_string_equal(a->url, EP_A "/v2/");
    assert_string_equal(b->url, EP_B "/v2/");
    assert_string_equal(c->url, EP_C "/v2/");
    assert_int_equal(a->unshaped, 1);
    assert_int_equal(c->unshaped, 1);

    /* c queued for seconds behind busy slots, then answered quickly */
    now_ms += 5000;
    c->rtt_us = 20000;
    probe_reply(c, 200, CURLE_OK);
    a->rtt_us = 150000;
    probe_reply(a, 401, CURLE_OK);
    assert_string_equal(order(e, e->fast, NULL), "201");

    /* a failed probe: round trip unknown, still usable */
    probe_reply(b, 500, CURLE_OK);
    assert_string_equal(order(e, e->fast, NULL), "201");
    endpoints_state(e->eps, e->fast, 2, &st);
    assert_true(st.rtt_us == 20000);
    assert_true(stats_registry(e->fast)->endpoints[2].rtt_us == 20000);
    assert_true(stats_registry(e->fast)->endpoints[1].rtt_us == -1);

    /* the next round only after probe_interval */
    now_ms += 1000;
    endpoints_tick(e->eps);
    assert_int_equal(fake_xfer_count(), 0);
    now_ms += 29 * 1000;
    endpoints_tick(e->eps);
    assert_int_equal(fake_xfer_count(), 3);

    /* equal round trips: the order written */
    a = fake_xfer_at(0);
    b = fake_xfer_at(1);
    c = fake_xfer_at(2);
    now_ms += 40;
    a->rtt_us = 40000;
    b->rtt_us = 40000;
    c->rtt_us = 40000;
    probe_reply(c, 200, CURLE_OK);
    probe_reply(b, 200, CURLE_OK);
    probe_reply(a, 200, CURLE_OK);
    assert_string_equal(order(e, e->fast, NULL), "012");

    /* a slower endpoint that is down is not ordered at all */
    endpoints_failed(e->eps, e->fast, 0);
    endpoints_failed(e->eps, e->fast, 0);
    endpoints_failed(e->eps, e->fast, 0);
    assert_string_equal(order(e, e->fast, NULL), "12");
}


static void
test_throttled(void **state)
{
    env_t              *e = *state;
    xfer_resp_t         r;
    fake_reply_t        fr;
    endpoints_state_t   st;
    int                 t;

    /* the round of "fastest" out of the way */
    ((oci_registry_t *) e->fast)->probe_interval = 86400;
    endpoints_tick(e->eps);

    while (fake_xfer_count() > 0) {
        probe_reply(fake_xfer_at(0), 200, CURLE_OK);
    }

    memset(&r, 0, sizeof(r));
    r.status = 429;
    r.retry_after = 5;
    r.ratelimit_limit = -1;
    r.ratelimit_remaining = -1;
    endpoints_answered(e->eps, e->ord, 0, &r);

    assert_string_equal(order(e, e->ord, &t), "1");
    assert_int_equal(t, 1);
    assert_true(stats_registry(e->ord)->endpoints[0].throttled == 1);
    assert_true(stats_registry(e->ord)->endpoints[0].failures == 0);

    /* no Retry-After: the default */
    r.retry_after = -1;
    endpoints_answered(e->eps, e->ord, 1, &r);
    assert_string_equal(order(e, e->ord, &t), "");
    assert_int_equal(t, 1);

    /* not probed while throttled */
    now_ms += 5000 - 1;
    endpoints_tick(e->eps);
    assert_int_equal(fake_xfer_count(), 0);

    /* then probed like a backed-off endpoint: usable once it answers */
    now_ms += 1;
    assert_string_equal(order(e, e->ord, &t), "");
    endpoints_tick(e->eps);
    assert_string_equal(fake_xfer_one()->url, EP_A "/v2/");
    probe_reply(fake_xfer_one(), 401, CURLE_OK);
    assert_string_equal(order(e, e->ord, &t), "0");
    assert_int_equal(t, 1);

    /* a probe answered 429 throttles it again */
    now_ms += (ENDPOINTS_RETRY_AFTER - 5) * 1000;
    endpoints_tick(e->eps);
    assert_string_equal(fake_xfer_one()->url, EP_B "/v2/");
    memset(&fr, 0, sizeof(fr));
    fr.status = 429;
    fr.retry_after_set = 1;
    fr.retry_after = 2;
    fake_xfer_reply(fake_xfer_one(), &fr);
    assert_string_equal(order(e, e->ord, NULL), "0");
    endpoints_state(e->eps, e->ord, 1, &st);
    assert_int_equal(st.throttled, 1);

    /* a probe that fails backs it off */
    now_ms += 2000;
    endpoints_tick(e->eps);
    probe_reply(fake_xfer_one(), 0, CURLE_COULDNT_CONNECT);
    endpoints_state(e->eps, e->ord, 1, &st);
    assert_int_equal(st.throttled, 0);
    assert_int_equal(st.down, 1);
    assert_string_equal(order(e, e->ord, &t), "0");
    assert_int_equal(t, 0);

    /* a Retry-After beyond max_retry_after is capped */
    ((oci_registry_t *) e->ord)->max_retry_after = 30;
    r.retry_after = 86400;
    endpoints_answered(e->eps, e->ord, 0, &r);
    now_ms += 30 * 1000 - 1;
    endpoints_state(e->eps, e->ord, 0, &st);
    assert_true(st.throttled_until == now_ms + 1);
}


static void
test_ratelimit(void **state)
{
    env_t        *e = *state;
    xfer_resp_t   r;

    assert_true(stats_registry(e->ord)->ratelimit_limit == -1);
    assert_true(stats_registry(e->ord)->ratelimit_remaining == -1);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.retry_after = -1;
    r.ratelimit_limit = 100;
    r.ratelimit_remaining = 60;
    endpoints_answered(e->eps, e->ord, 0, &r);
    assert_true(stats_registry(e->ord)->ratelimit_limit == 100);
    assert_true(stats_registry(e->ord)->ratelimit_remaining == 60);

    /* an answer without the headers keeps the last values */
    r.ratelimit_limit = -1;
    r.ratelimit_remaining = -1;
    endpoints_answered(e->eps, e->ord, 1, &r);
    assert_true(stats_registry(e->ord)->ratelimit_remaining == 60);

    r.ratelimit_remaining = 3;
    endpoints_answered(e->eps, e->ord, 1, &r);
    assert_true(stats_registry(e->ord)->ratelimit_limit == 100);
    assert_true(stats_registry(e->ord)->ratelimit_remaining == 3);
}


static void
test_negative(void **state)
{
    env_t          *e = *state;
    negative_t     *neg;
    oci_errcode_t   code;
    char            ref[16];
    int             i;

    neg = negative_create(3, test_clock);
    assert_non_null(neg);

    assert_int_equal(negative_find(neg, e->fast, "a/b", "v1", &code), 0);
    negative_add(neg, e->fast, "a/b", "v1", OCI_ERR_MANIFEST_UNKNOWN);
    negative_add(neg, e->fast, "a/b", "v2", OCI_ERR_NAME_UNKNOWN);

    code = OCI_ERR_UPSTREAM;
    assert_int_equal(negative_find(neg, e->fast, "a/b", "v1", &code), 1);
    assert_int_equal(code, OCI_ERR_MANIFEST_UNKNOWN);
    assert_int_equal(negative_find(neg, e->fast, "a/b", "v2", &code), 1);
    assert_int_equal(code, OCI_ERR_NAME_UNKNOWN);

    /* per registry, name and reference */
    assert_int_equal(negative_find(neg, e->ord, "a/b", "v1", &code), 0);
    assert_int_equal(negative_find(neg, e->fast, "a/c", "v1", &code), 0);
    assert_int_equal(negative_find(neg, e->fast, "a/b", "v3", &code), 0);

    /* negative_ttl = 0: off */
    negative_add(neg, e->off, "a/b", "v1", OCI_ERR_MANIFEST_UNKNOWN);
    assert_int_equal(negative_find(neg, e->off, "a/b", "v1", &code), 0);
    assert_int_equal(negative_count(neg), 2);

    /* expiry after negative_ttl (5 s) */
    now_ms += 4999;
    assert_int_equal(negative_find(neg, e->fast, "a/b", "v1", &code), 1);
    negative_add(neg, e->fast, "a/b", "v2", OCI_ERR_NAME_UNKNOWN);
    now_ms += 1;
    assert_int_equal(negative_find(neg, e->fast, "a/b", "v1", &code), 0);
    assert_int_equal(negative_count(neg), 1);

    /* added again 1 ms before the end: a new period from then */
    assert_int_equal(negative_find(neg, e->fast, "a/b", "v2", &code), 1);
    now_ms += 4998;
    assert_int_equal(negative_find(neg, e->fast, "a/b", "v2", &code), 1);
    now_ms += 1;
    assert_int_equal(negative_find(neg, e->fast, "a/b", "v2", &code), 0);

    /* the cap: the oldest goes */
    for (i = 0; i < 5; i++) {
        snprintf(ref, sizeof(ref), "t%d", i);
        negative_add(neg, e->fast, "a/b", ref, OCI_ERR_MANIFEST_UNKNOWN);
        assert_true(negative_count(neg) <= 3);
    }

    assert_int_equal(negative_count(neg), 3);
    assert_int_equal(negative_find(neg, e->fast, "a/b", "t0", &code), 0);
    assert_int_equal(negative_find(neg, e->fast, "a/b", "t1", &code), 0);
    assert_int_equal(negative_find(neg, e->fast, "a/b", "t2", &code), 1);
    assert_int_equal(negative_find(neg, e->fast, "a/b", "t4", &code), 1);

    negative_destroy(neg);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ordered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff, setup_ordered,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fastest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ratelimit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative, setup, teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
