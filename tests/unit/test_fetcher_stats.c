/*
 * Unit tests for src/fetcher/stats.c: the Prometheus text of
 * stats_render() (families, names, labels and their escaping, gauges left
 * out while unknown), the loop's stall histogram, and STATS: the text in
 * a temp file handed over with BODY, the jobs in flight, the loop's
 * stalls, and no file left behind when the worker is gone or the store
 * cannot take it.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "fetcher_fakes.h"


#define DIGEST  "sha256:" \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


/* stats_render() into a string (free it). */
static char *
render(void)
{
    char    *text;
    size_t   len;
    FILE    *f;

    text = NULL;
    f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(stats_render(f), 0);
    assert_int_equal(fclose(f), 0);
    assert_non_null(text);

    return text;
}


static int
has_line(const char *text, const char *line)
{
    const char  *p;
    size_t       len;

    len = strlen(line);

    for (p = text; p != NULL && *p != '\0'; ) {
        if (strncmp(p, line, len) == 0 && (p[len] == '\n')) {
            return 1;
        }

        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }

    return 0;
}


/* A label value from p (just after '"') to its closing quote: only the
 * three escapes of the format.  The position after the quote. */
static const char *
check_label_value(const char *p)
{
    for ( ;; ) {
        assert_true(*p != '\0' && *p != '\n');

        if (*p == '"') {
            return p + 1;
        }

        if (*p == '\\') {
            p++;
            assert_true(*p == '\\' || *p == '"' || *p == 'n');
        }

        p++;
    }
}


/*
 * The whole text follows the exposition format: every family has a HELP
 * and then a TYPE line before its samples, only once; counters end in
 * _total; a histogram's samples are its name with _bucket (an le label,
 * cumulative counts, +Inf last), _sum and _count (the +Inf count); every
 * sample is name{label="value",...} number.  Returns the number of
 * samples.
 */
static int
check_format(const char *text)
{
    char         families[128][128];
    char         types[128][16];
    char         help_of[128], name[128], type[16];
    const char  *p, *end, *q;
    char        *num_end;
    int          nfam, samples, i, n, flen, inf_seen;
    double       v, bucket_prev;

    nfam = 0;
    samples = 0;
    help_of[0] = '\0';
    bucket_prev = 0;
    inf_seen = 0;

    for (p = text; *p != '\0'; p = end + 1) {
        end = strchr(p, '\n');
        assert_non_null(end);

        if (strncmp(p, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(p + 7, "%127s", help_of), 1);
            assert_true(p + 7 + strlen(help_of) < end);
            continue;
        }

        if (strncmp(p, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(p + 7, "%127s %15s", name, type), 2);
            assert_string_equal(name, help_of);
            assert_true(strcmp(type, "counter") == 0
                        || strcmp(type, "gauge") == 0
                        || strcmp(type, "histogram") == 0);

            for (i = 0; i < nfam; i++) {
                assert_string_not_equal(families[i], name);
            }

            assert_true(nfam < 128);
            snprintf(families[nfam], sizeof(families[0]), "%s", name);
            snprintf(types[nfam], sizeof(types[0]), "%s", type);
            nfam++;
            bucket_prev = 0;
            inf_seen = 0;
            continue;
        }

        assert_true(*p != '#');

        n = (int) strcspn(p, "{ ");
        assert_true(n > 0 && n < (int) sizeof(name));
        memcpy(name, p, (size_t) n);
        name[n] = '\0';

        /* the sample belongs to the family declared last */
        assert_true(nfam > 0);
        flen = (int) strlen(families[nfam - 1]);

        if (strcmp(types[nfam - 1], "histogram") == 0) {
            assert_memory_equal(name, families[nfam - 1], (size_t) flen);
            assert_true(strcmp(name + flen, "_bucket") == 0
                        || strcmp(name + flen, "_sum") == 0
                        || strcmp(name + flen, "_count") == 0);
            assert_true((strcmp(name + flen, "_bucket") == 0)
                        == (strncmp(p + n, "{le=\"", 5) == 0));

        } else {
            assert_string_equal(name, families[nfam - 1]);
        }

        if (strcmp(types[nfam - 1], "counter") == 0) {
            assert_true(n > 6 && strcmp(name + n - 6, "_total") == 0);
        }

        q = p + n;

        if (*q == '{') {
            q++;

            for ( ;; ) {
                while ((*q >= 'a' && *q <= 'z') || *q == '_') {
                    q++;
                }

                assert_true(q[0] == '=' && q[1] == '"');
                q = check_label_value(q + 2);

                if (*q == ',') {
                    q++;
                    continue;
                }

                assert_true(*q == '}');
                q++;
                break;
            }
        }

        assert_true(*q == ' ');
        q++;
        errno = 0;
        v = strtod(q, &num_end);
        assert_int_equal(errno, 0);
        assert_true(num_end == end && num_end > q);

        if (strcmp(types[nfam - 1], "histogram") == 0) {
            if (strcmp(name + flen, "_bucket") == 0) {
                assert_false(inf_seen);
                assert_true(v >= bucket_prev);
                bucket_prev = v;
                inf_seen = strncmp(p + n, "{le=\"+Inf\"}", 11) == 0;

            } else if (strcmp(name + flen, "_count") == 0) {
                /* the +Inf bucket came last, and holds every sample */
                assert_true(inf_seen);
                assert_true(v == bucket_prev);
            }
        }

        samples++;
    }

    return samples;
}


static void
test_render(void **state)
{
    fake_env_t        *e = *state;
    stats_registry_t  *reg, *solo;
    char              *text;

    reg = stats_registry(oci_config_registry(e->cf, FAKE_REG,
                                             strlen(FAKE_REG)));
    solo = stats_registry(oci_config_registry(e->cf, FAKE_SOLO,
                                              strlen(FAKE_SOLO)));

    reg->blobs_fetched = 3;
    reg->digest_mismatches = 1;
    reg->upstream_bytes = 12345678901ULL;
    reg->ratelimit_remaining = 7;
    reg->endpoints[0].requests = 5;
    reg->endpoints[1].up = 0;
    reg->endpoints[1].rtt_us = 1500;
    solo->manifests_fetched = 2;

    text = render();

    assert_true(check_format(text) > 20);

    assert_true(has_line(text,
        "# TYPE ocimirror_fetcher_blobs_fetched_total counter"));
    assert_true(has_line(text,
        "ocimirror_fetcher_blobs_fetched_total{registry=\"reg.test\"} 3"));
    assert_true(has_line(text,
        "ocimirror_fetcher_blobs_fetched_total{registry=\"solo.test\"} 0"));
    assert_true(has_line(text,
        "ocimirror_fetcher_digest_mismatches_total{registry=\"reg.test\"} 1"));
    assert_true(has_line(text,
        "ocimirror_fetcher_upstream_bytes_total{registry=\"reg.test\"} "
        "12345678901"));
    assert_true(has_line(text,
        "ocimirror_fetcher_manifests_fetched_total{registry=\"solo.test\"} "
        "2"));

    /* gauges: known ones only */
    assert_true(has_line(text,
        "# TYPE ocimirror_fetcher_ratelimit_remaining gauge"));
    assert_true(has_line(text,
        "ocimirror_fetcher_ratelimit_remaining{registry=\"reg.test\"} 7"));
    assert_null(strstr(text,
        "ocimirror_fetcher_ratelimit_remaining{registry=\"solo.test\"}"));
    assert_null(strstr(text, "ocimirror_fetcher_ratelimit_limit{"));

    assert_true(has_line(text,
        "ocimirror_fetcher_endpoint_requests_total{registry=\"reg.test\","
        "endpoint=\"" FAKE_EP1 "\"} 5"));
    assert_true(has_line(text,
        "ocimirror_fetcher_endpoint_up{registry=\"reg.test\","
        "endpoint=\"" FAKE_EP1 "\"} 1"));
    assert_true(has_line(text,
        "ocimirror_fetcher_endpoint_up{registry=\"reg.test\","
        "endpoint=\"" FAKE_EP2 "\"} 0"));
    assert_true(has_line(text,
        "ocimirror_fetcher_endpoint_rtt_seconds{registry=\"reg.test\","
        "endpoint=\"" FAKE_EP2 "\"} 0.001500"));
    assert_null(strstr(text,
        "ocimirror_fetcher_endpoint_rtt_seconds{registry=\"reg.test\","
        "endpoint=\"" FAKE_EP1 "\"}"));
    assert_true(has_line(text,
        "ocimirror_fetcher_endpoint_throttled_total{registry=\"solo.test\","
        "endpoint=\"" FAKE_EP_SOLO "\"} 0"));

    assert_true(has_line(text,
        "# TYPE ocimirror_fetcher_start_time_seconds gauge"));

    free(text);
}


/* Label values come from the config: backslash, quote and line feed are
 * escaped, nothing else. */
static void
test_render_escaping(void **state)
{
    oci_config_t     cf;
    oci_registry_t   reg;
    char            *endpoints[1];
    char            *text;

    memset(&cf, 0, sizeof(cf));
    memset(&reg, 0, sizeof(reg));

    reg.name = "a\"b\\c\nd";
    endpoints[0] = "http://h.test/p\"q\\r";
    reg.endpoints = endpoints;
    reg.n_endpoints = 1;
    cf.registries = &reg;
    cf.n_registries = 1;

    assert_int_equal(stats_init(&cf), 0);
    stats_registry(&reg)->failovers = 4;

    text = render();
    check_format(text);

    assert_true(has_line(text,
        "ocimirror_fetcher_failovers_total{registry=\"a\\\"b\\\\c\\nd\"} 4"));
    assert_true(has_line(text,
        "ocimirror_fetcher_endpoint_failures_total{registry=\"a\\\"b\\\\c"
        "\\nd\",endpoint=\"http://h.test/p\\\"q\\\\r\"} 0"));

    free(text);
    stats_destroy();
}


/* No registry: every family is still declared, with no sample. */
static void
test_render_empty(void **state)
{
    oci_config_t   cf;
    char          *text;

    memset(&cf, 0, sizeof(cf));

    assert_int_equal(stats_init(&cf), 0);

    text = render();
    assert_int_equal(check_format(text), 1);     /* the start time */
    assert_true(has_line(text,
        "# TYPE ocimirror_fetcher_digest_mismatches_total counter"));
    assert_true(has_line(text,
        "# TYPE ocimirror_fetcher_endpoint_up gauge"));

    free(text);
    stats_destroy();
}


/* The scrub's counters and gauges, each once, in the text format. */
static void
test_render_scrub(void **state)
{
    stats_scrub_t   st;
    char           *text;
    size_t          len;
    FILE           *f;

    memset(&st, 0, sizeof(st));
    st.checked = 12;
    st.checked_bytes = 123456789012ULL;
    st.corrupt = 2;
    st.mismatches = 1;
    st.skipped = 3;
    st.running = 1;
    st.last_completed = 1700000000;
    st.quarantine_files = 2;

    text = NULL;
    f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(stats_render_scrub(f, &st), 0);
    assert_int_equal(fclose(f), 0);

    assert_int_equal(check_format(text), 8);
    assert_true(has_line(text,
        "# TYPE ocimirror_fetcher_scrub_checked_total counter"));
    assert_true(has_line(text, "ocimirror_fetcher_scrub_checked_total 12"));
    assert_true(has_line(text, "ocimirror_fetcher_scrub_checked_bytes_total "
                               "123456789012"));
    assert_true(has_line(text, "ocimirror_fetcher_scrub_corrupt_total 2"));
    assert_true(has_line(text,
        "ocimirror_fetcher_scrub_diff_id_mismatches_total 1"));
    assert_true(has_line(text, "ocimirror_fetcher_scrub_skipped_total 3"));
    assert_true(has_line(text, "# TYPE ocimirror_fetcher_scrub_running gauge"));
    assert_true(has_line(text, "ocimirror_fetcher_scrub_running 1"));
    assert_true(has_line(text, "ocimirror_fetcher_scrub_last_completed_"
                               "timestamp_seconds 1700000000"));
    assert_true(has_line(text, "ocimirror_fetcher_quarantine_files 2"));

    free(text);
}


/* The loop's stalls: the longest as seconds, the histogram cumulative
 * with its bounds as le labels, +Inf and _count every iteration. */
static void
test_render_loop(void **state)
{
    loop_stats_t   ls;
    char          *text;
    size_t         len;
    FILE          *f;

    memset(&ls, 0, sizeof(ls));
    ls.iterations = 8;
    ls.busy_ns = 1234567890123ULL;
    ls.longest_ns = 1500000000LL;
    ls.buckets[0] = 5;                      /* up to 100 us */
    ls.buckets[4] = 2;                      /* over 5, up to 10 ms */
    ls.buckets[LOOP_STALL_BOUNDS] = 1;      /* over 1 s */

    text = NULL;
    f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(stats_render_loop(f, &ls), 0);
    assert_int_equal(fclose(f), 0);

    assert_int_equal(check_format(text), 1 + LOOP_STALL_BOUNDS + 1 + 2);
    assert_true(has_line(text,
        "# TYPE ocimirror_fetcher_loop_longest_stall_seconds gauge"));
    assert_true(has_line(text,
        "ocimirror_fetcher_loop_longest_stall_seconds 1.500000000"));
    assert_true(has_line(text,
        "# TYPE ocimirror_fetcher_loop_stall_seconds histogram"));
    assert_true(has_line(text,
        "ocimirror_fetcher_loop_stall_seconds_bucket{le=\"0.0001\"} 5"));
    assert_true(has_line(text,
        "ocimirror_fetcher_loop_stall_seconds_bucket{le=\"0.005\"} 5"));
    assert_true(has_line(text,
        "ocimirror_fetcher_loop_stall_seconds_bucket{le=\"0.01\"} 7"));
    assert_true(has_line(text,
        "ocimirror_fetcher_loop_stall_seconds_bucket{le=\"0.05\"} 7"));
    assert_true(has_line(text,
        "ocimirror_fetcher_loop_stall_seconds_bucket{le=\"1\"} 7"));
    assert_true(has_line(text,
        "ocimirror_fetcher_loop_stall_seconds_bucket{le=\"+Inf\"} 8"));
    assert_true(has_line(text,
        "ocimirror_fetcher_loop_stall_seconds_sum 1234.567890123"));
    assert_true(has_line(text, "ocimirror_fetcher_loop_stall_seconds_count 8"));

    free(text);
}


static void
test_render_commit_lists(void **state)
{
    stats_commit_t  cs;
    stats_lists_t   ls;
    char           *text;
    size_t          len;
    FILE           *f;

    memset(&cs, 0, sizeof(cs));
    cs.queued = 3;
    cs.committed = 41;
    cs.failed = 2;
    cs.refused = 7;
    cs.longest_ns = 2250000000LL;
    cs.busy_ns = 5000000001ULL;

    memset(&ls, 0, sizeof(ls));
    ls.hits = 100;
    ls.misses = 4;
    ls.evictions = 1;
    ls.invalidations = 2;
    ls.bytes = 123456;
    ls.entries = 3;

    text = NULL;
    f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(stats_render_commit(f, &cs), 0);
    assert_int_equal(stats_render_lists(f, &ls), 0);
    assert_int_equal(fclose(f), 0);

    assert_int_equal(check_format(text), 6 + 6);
    assert_true(has_line(text, "# TYPE ocimirror_fetcher_commit_queued "
                         "gauge"));
    assert_true(has_line(text, "ocimirror_fetcher_commit_queued 3"));
    assert_true(has_line(text, "ocimirror_fetcher_commits_total 41"));
    assert_true(has_line(text, "ocimirror_fetcher_commit_failures_total 2"));
    assert_true(has_line(text, "ocimirror_fetcher_commit_refused_total 7"));
    assert_true(has_line(text,
        "ocimirror_fetcher_commit_longest_seconds 2.250000000"));
    assert_true(has_line(text,
        "ocimirror_fetcher_commit_seconds_total 5.000000001"));
    assert_true(has_line(text, "ocimirror_fetcher_list_cache_hits_total 100"));
    assert_true(has_line(text, "ocimirror_fetcher_list_cache_misses_total 4"));
    assert_true(has_line(text,
        "ocimirror_fetcher_list_cache_evictions_total 1"));
    assert_true(has_line(text,
        "ocimirror_fetcher_list_cache_invalidations_total 2"));
    assert_true(has_line(text, "ocimirror_fetcher_list_cache_bytes 123456"));
    assert_true(has_line(text, "ocimirror_fetcher_list_cache_entries 3"));

    free(text);
}


static void
stats_msg(fake_env_t *e, conn_t *c, uint32_t id)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_STATS, id);
    dispatch_on_msg(c, &m, e->jobs);
}


static void
blob_msg(fake_env_t *e, conn_t *c, uint32_t id)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_BLOB, id);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "a/b");
    snprintf(m.reference, sizeof(m.reference), DIGEST);
    dispatch_on_msg(c, &m, e->jobs);
}


/* STATS: BODY 200 with a temp file under <store>/tmp holding the text,
 * the jobs in flight and the loop's stalls; the file is the worker's to
 * remove. */
static void
test_request(void **state)
{
    fake_env_t  *e = *state;
    oci_msg_t    m;
    loop_t      *loop;
    int          before;
    char         tmpdir[256], text[65536];

    stats_registry(oci_config_registry(e->cf, FAKE_REG,
                                       strlen(FAKE_REG)))->blobs_fetched = 9;

    /* a loop that turned twice: its stalls are in the answer */
    loop = loop_create();
    assert_non_null(loop);
    assert_int_equal(loop_once(loop, 0), 0);
    assert_int_equal(loop_once(loop, 0), 0);
    e->jobs->loop = loop;

    /* a blob job in flight, with two waiters */
    blob_msg(e, &e->c2, 1);
    blob_msg(e, &e->c2, 2);
    assert_int_equal(fake_xfer_count(), 1);
    before = fake_tmp_count(e);

    stats_msg(e, &e->c1, 42);

    assert_int_equal(fake_conn_next(&e->c1, &m), 1);
    assert_int_equal(m.type, OCI_MSG_BODY);
    assert_int_equal(m.id, 42);
    assert_int_equal(m.status, 200);
    assert_string_equal(m.next, "");

    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp/", e->store);
    assert_memory_equal(m.path, tmpdir, strlen(tmpdir));
    assert_int_equal(fake_tmp_count(e), before + 1);

    assert_true(fake_read_file(m.path, text, sizeof(text)) > 0);
    check_format(text);
    assert_true(has_line(text,
        "ocimirror_fetcher_blobs_fetched_total{registry=\"reg.test\"} 9"));
    assert_true(has_line(text, "ocimirror_fetcher_jobs{kind=\"blob\"} 1"));
    assert_true(has_line(text,
        "ocimirror_fetcher_jobs{kind=\"manifest\"} 0"));
    assert_true(has_line(text, "ocimirror_fetcher_jobs{kind=\"tags\"} 0"));
    assert_true(has_line(text, "ocimirror_fetcher_waiters 2"));
    assert_true(has_line(text, "ocimirror_fetcher_loop_stall_seconds_count 2"));
    assert_non_null(strstr(text,
        "\nocimirror_fetcher_loop_longest_stall_seconds "));

    e->jobs->loop = NULL;
    loop_destroy(loop);

    /* no scrub (the fakes set none up): its families, at zero */
    assert_true(has_line(text, "ocimirror_fetcher_scrub_running 0"));
    assert_true(has_line(text, "ocimirror_fetcher_scrub_checked_total 0"));
    assert_true(has_line(text, "ocimirror_fetcher_quarantine_files 0"));

    /* nothing else was sent */
    assert_int_equal(fake_conn_next(&e->c1, &m), 0);

    /* what the worker does; the fetcher keeps no reference to it */
    assert_int_equal(unlink(m.path), 0);
    assert_int_equal(fake_tmp_count(e), before);
}


/* A worker that is gone gets nothing, and no file is left for it. */
static void
test_request_conn_gone(void **state)
{
    fake_env_t  *e = *state;

    conn_kill(&e->c1);
    stats_msg(e, &e->c1, 5);

    assert_string_equal(fake_conn_take(&e->c1), "");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* The store cannot take the file: FAIL 503, nothing left. */
static void
test_request_store_failing(void **state)
{
    fake_env_t  *e = *state;
    oci_msg_t    m;
    char         tmp[256], moved[256];

    snprintf(tmp, sizeof(tmp), "%s/tmp", e->store);
    snprintf(moved, sizeof(moved), "%s/tmp.away", e->store);
    assert_int_equal(rename(tmp, moved), 0);

    stats_msg(e, &e->c1, 6);

    assert_int_equal(fake_conn_next(&e->c1, &m), 1);
    assert_int_equal(m.type, OCI_MSG_FAIL);
    assert_int_equal(m.id, 6);
    assert_int_equal(m.status, 503);
    assert_string_equal(m.code, "UNAVAILABLE");

    assert_int_equal(rename(moved, tmp), 0);
    assert_int_equal(fake_tmp_count(e), 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_render, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test(test_render_escaping),
        cmocka_unit_test(test_render_empty),
        cmocka_unit_test(test_render_scrub),
        cmocka_unit_test(test_render_loop),
        cmocka_unit_test(test_render_commit_lists),
        cmocka_unit_test_setup_teardown(test_request, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_request_conn_gone,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_request_store_failing,
                                        fake_env_setup, fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
