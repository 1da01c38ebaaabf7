/*
 * Unit tests for src/fetcher/tags.c.  Forwarded (tags_ttl = 0): the
 * upstream query, the body handed over in a temp file (BODY), the next
 * page from the Link header, limits, failover, and who removes the temp
 * file in every ending.  Cached (tags_ttl > 0): the whole list fetched
 * page by page, stored sorted, paged by the fetcher with n and last,
 * reused within the TTL, served stale when the upstream fails, one fetch
 * for every request meanwhile, failover only before the first page, and
 * a next page that cannot be followed failing rather than cutting the
 * list short.  Upstream and workers are the fakes of fetcher_fakes.h.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>
#include <cmocka.h>

#include "fetcher_fakes.h"


#define LIST     "{\"name\":\"a/b\",\"tags\":[\"v1\",\"v2\"]}"
#define URL      FAKE_EP1 "/v2/a/b/tags/list"
#define NEXT     "</v2/a/b/tags/list?n=2&last=v2>; rel=\"next\""


/* Every registry forwards: the tests of the forwarding path. */
static int
setup_forward(void **state)
{
    fake_env_t  *e;
    size_t       i;

    fake_env_setup(state);
    e = *state;

    for (i = 0; i < e->cf->n_registries; i++) {
        e->cf->registries[i].tags_ttl = 0;
    }

    return 0;
}


static void
request(fake_env_t *e, conn_t *c, uint32_t id, long long n,
    const char *last)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_TAGS, id);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "a/b");
    m.n = n;
    snprintf(m.last, sizeof(m.last), "%s", last);
    dispatch_on_msg(c, &m, e->jobs);
}


static void
reply_list(const char *body, const char *link)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = "application/json";
    r.body = body;
    r.link = link;
    r.chunk = 5;
    fake_xfer_reply(fake_xfer_one(), &r);
}


/* The next line is BODY id 200 <temp file> <next>; the file holds body.
 * The file is the worker's: the test removes it, as the worker does. */
static void
assert_body(fake_env_t *e, conn_t *c, uint32_t id, const char *body,
    const char *next)
{
    oci_msg_t  m;
    char       prefix[256], buf[256];

    assert_true(fake_conn_next(c, &m));
    assert_int_equal(m.type, OCI_MSG_BODY);
    assert_int_equal(m.id, id);
    assert_int_equal(m.status, 200);
    assert_string_equal(m.next, next);

    snprintf(prefix, sizeof(prefix), "%s/tmp/", e->store);
    assert_memory_equal(m.path, prefix, strlen(prefix));
    assert_int_equal(fake_read_file(m.path, buf, sizeof(buf)),
                     (long) strlen(body));
    assert_string_equal(buf, body);

    assert_int_equal(unlink(m.path), 0);
    assert_false(fake_conn_next(c, &m));
}


static void
test_list(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;

    request(e, &e->c1, 1, -1, "");

    x = fake_xfer_one();
    assert_string_equal(x->url, URL);
    assert_string_equal(x->accept, "application/json");
    assert_int_equal(x->head, 0);
    /* no temp file before the upstream answers */
    assert_int_equal(fake_tmp_count(e), 0);

    reply_list(LIST, NEXT);

    /* the file outlives the job: the worker owns it now */
    assert_int_equal(fake_tmp_count(e), 1);
    assert_body(e, &e->c1, 1, LIST, "n=2&last=v2");
    assert_int_equal(fake_tmp_count(e), 0);

    /* no Link: no next page */
    request(e, &e->c1, 2, -1, "");
    reply_list("{\"name\":\"a/b\",\"tags\":[]}", NULL);
    assert_body(e, &e->c1, 2, "{\"name\":\"a/b\",\"tags\":[]}", "");
}


static void
test_query(void **state)
{
    fake_env_t  *e = *state;

    request(e, &e->c1, 1, 10, "v1.2");
    assert_string_equal(fake_xfer_one()->url, URL "?n=10&last=v1.2");
    reply_list(LIST, NULL);
    assert_body(e, &e->c1, 1, LIST, "");

    request(e, &e->c1, 2, 0, "");
    assert_string_equal(fake_xfer_one()->url, URL "?n=0");
    reply_list(LIST, NULL);
    assert_body(e, &e->c1, 2, LIST, "");

    request(e, &e->c1, 3, -1, "_x-y.z");
    assert_string_equal(fake_xfer_one()->url, URL "?last=_x-y.z");
    reply_list(LIST, NULL);
    assert_body(e, &e->c1, 3, LIST, "");
}


#define UNFOLLOWABLE  "502 UNKNOWN cannot follow the upstream's next page"


/* A next page the worker cannot be handed (no query, not safe for a
 * Link header or an IPC line) fails: the page alone would say the list
 * ends there.  (next NULL: FAIL.) */
static void
test_link_next(void **state)
{
    static const struct {
        const char  *link;
        const char  *next;
    } cases[] = {
        { NEXT, "n=2&last=v2" },
        { "<https://one.test/v2/a/b/tags/list?last=v2&n=2>; rel=next",
          "last=v2&n=2" },
        { "</v2/a/b/tags/list?n=2&last=v2>;rel=\"next\";title=\"x\"",
          "n=2&last=v2" },
        { "</v2/a/b/tags/list?n=2&last=v2>; rel=\"prev\"", "" },
        { "</v2/a/b/tags/list>; rel=\"next\"", NULL },
        { "</v2/a/b/tags/list?>; rel=\"next\"", NULL },
        { "</v2/a/b/tags/list?n=2&last=a\"b>; rel=\"next\"", NULL },
        { "</v2/a/b/tags/list?n=2&last=a\\b>; rel=\"next\"", NULL },
        { "</v2/a/b/tags/list?n=2 &last=b>; rel=\"next\"", NULL },
        { "</v2/a/b/tags/list?n=2&last=a<b>; rel=\"next\"", NULL },
        { "</v2/a/b/tags/list?n=2&last=\xc3\xa9>; rel=\"next\"", NULL },
        { "</v2/a/b/tags/list?n=2&last=v2; rel=\"next\"", NULL },
        { "</v2/a/b/tags/list?n=2&last=v2; rel=\"prev\"", "" },
        { "", "" },
        { "garbage", "" },
        /* several link-values: the one that is next, wherever it is */
        { "</v2/a/b/tags/list?n=1>; rel=\"prev\", "
          "</v2/a/b/tags/list?n=2&last=c>; rel=\"next\"", "n=2&last=c" },
        { "</v2/a/b/tags/list?n=2&last=c>; rel=\"next\", "
          "</v2/a/b/tags/list?n=1>; rel=\"prev\"", "n=2&last=c" },
        { "</v2/a/b/tags/list?n=1>; rel=\"first\", "
          "</v2/a/b/tags/list?n=9>; rel=\"last\"", "" },
    };

    fake_env_t  *e = *state;
    size_t       i;
    char         want[128];

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        request(e, &e->c1, 1, -1, "");
        reply_list(LIST, cases[i].link);

        if (cases[i].next != NULL) {
            assert_body(e, &e->c1, 1, LIST, cases[i].next);
            continue;
        }

        snprintf(want, sizeof(want), "FAIL 1 " UNFOLLOWABLE "\n");
        assert_string_equal(fake_conn_take(&e->c1), want);
        assert_int_equal(fake_tmp_count(e), 0);
    }
}


/* The query must fit the IPC field (511 bytes) whole; one that does not
 * fails rather than ending the list. */
static void
test_link_next_long(void **state)
{
    fake_env_t  *e = *state;
    char         link[700], query[520];

    memset(query, 'q', sizeof(query));
    memcpy(query, "n=1&last=", 9);

    query[511] = '\0';
    snprintf(link, sizeof(link), "</v2/a/b/tags/list?%s>; rel=\"next\"",
             query);
    request(e, &e->c1, 1, -1, "");
    reply_list(LIST, link);
    assert_body(e, &e->c1, 1, LIST, query);

    query[511] = 'q';
    query[512] = '\0';
    snprintf(link, sizeof(link), "</v2/a/b/tags/list?%s>; rel=\"next\"",
             query);
    request(e, &e->c1, 2, -1, "");
    reply_list(LIST, link);
    assert_string_equal(fake_conn_take(&e->c1), "FAIL 2 " UNFOLLOWABLE "\n");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* A Link value left out (too long for the response's field) may have
 * been the next one: unless a next one was kept, that fails too. */
static void
test_link_truncated(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.body = LIST;
    r.link_truncated = 1;

    request(e, &e->c1, 1, -1, "");
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1), "FAIL 1 " UNFOLLOWABLE "\n");

    request(e, &e->c1, 2, -1, "");
    r.link = "</v2/a/b/tags/list?n=1>; rel=\"prev\"";
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1), "FAIL 2 " UNFOLLOWABLE "\n");

    request(e, &e->c1, 3, -1, "");
    r.link = NEXT;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_body(e, &e->c1, 3, LIST, "n=2&last=v2");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* Each request has its own job: the worker unlinks its file. */
static void
test_no_coalescing(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;

    request(e, &e->c1, 1, -1, "");
    request(e, &e->c2, 2, -1, "");
    assert_int_equal(fake_xfer_count(), 2);
    assert_int_equal(fake_tmp_count(e), 0);

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.body = LIST;
    fake_xfer_reply(fake_xfer_at(1), &r);
    assert_body(e, &e->c2, 2, LIST, "");

    r.body = "{}";
    fake_xfer_reply(fake_xfer_at(0), &r);
    assert_body(e, &e->c1, 1, "{}", "");
}


static void
test_not_found(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;

    request(e, &e->c1, 1, -1, "");
    memset(&r, 0, sizeof(r));
    r.status = 404;
    r.body = "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":"
             "\"repository name not known to registry\"}]}";
    fake_xfer_reply(fake_xfer_one(), &r);

    request(e, &e->c1, 2, -1, "");
    memset(&r, 0, sizeof(r));
    r.status = 404;
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 404 NAME_UNKNOWN repository name not known "
                        "to registry\n"
                        "FAIL 2 404 NAME_UNKNOWN upstream answered 404\n");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* The worker's client went away: the list is not wanted, nor its file. */
static void
test_cancel_and_gone(void **state)
{
    fake_env_t  *e = *state;

    request(e, &e->c1, 1, -1, "");
    fake_cancel(e->jobs, &e->c1, 1);

    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.aborted, 1);
    assert_int_equal(fake_tmp_count(e), 0);

    request(e, &e->c1, 2, -1, "");
    request(e, &e->c1, 3, 5, "");
    jobs_on_gone(&e->c1, e->jobs);

    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.aborted, 3);
    assert_int_equal(fake_tmp_count(e), 0);
    assert_string_equal(fake_conn_take(&e->c1), "");
}


/* BODY could not be sent (the worker is dead): the file is not handed
 * over, so the fetcher removes it. */
static void
test_not_handed_over(void **state)
{
    fake_env_t  *e = *state;

    request(e, &e->c1, 1, -1, "");
    conn_kill(&e->c1);
    reply_list(LIST, NEXT);

    assert_string_equal(fake_conn_take(&e->c1), "");
    assert_int_equal(fake_tmp_count(e), 0);
}


static void
test_too_large(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    char          *big;
    size_t         len;

    request(e, &e->c1, 1, -1, "");
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.length_set = 1;
    r.length = 16 * 1024 * 1024 + 1;
    r.body = "{}";
    fake_xfer_reply(fake_xfer_one(), &r);

    len = 16 * 1024 * 1024 + 1;
    big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);

    request(e, &e->c1, 2, -1, "");
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.chunked = 1;
    r.body = big;
    r.body_len = len;
    r.chunk = 4 * 1024 * 1024;
    fake_xfer_reply(fake_xfer_one(), &r);

    free(big);

    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 502 UNKNOWN tag list too large\n"
                        "FAIL 2 502 UNKNOWN tag list too large\n");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* A broken answer, then the next endpoint: the file starts over. */
static void
test_failover(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;

    request(e, &e->c1, 1, 3, "v0");

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_RECV_ERROR;
    r.status = 200;
    r.chunked = 1;
    r.body = "{\"name\":\"a/b\",\"tags\":[\"half-of-a-very-long-list";
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_xfer_one()->url,
                        FAKE_EP2 "/v2/a/b/tags/list?n=3&last=v0");
    reply_list(LIST, NEXT);
    assert_body(e, &e->c1, 1, LIST, "n=2&last=v2");
}


static void
test_store_unwritable(void **state)
{
    fake_env_t  *e = *state;
    char         tmp[256], off[256];
    int          fd;

    snprintf(tmp, sizeof(tmp), "%s/tmp", e->store);
    snprintf(off, sizeof(off), "%s/tmp.off", e->store);
    assert_int_equal(rename(tmp, off), 0);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);

    /* the temp file comes with the upstream's answer, and so does the
     * failure */
    request(e, &e->c1, 1, -1, "");
    assert_int_equal(fake_xfers.started, 1);
    assert_string_equal(fake_conn_take(&e->c1), "");

    reply_list(LIST, NEXT);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 503 UNAVAILABLE store not writable\n");
    assert_int_equal(fake_xfer_count(), 0);

    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(rename(off, tmp), 0);
}


/*
 * Cached lists.
 */

#define PAGE1    "{\"name\":\"a/b\",\"tags\":[\"v3\",\"v1\",\"a b\"]}"
#define PAGE2    "{\"name\":\"a/b\",\"tags\":[\"v2\",5,\"v1\",\"V0\"]}"
#define SORTED   "{\"name\":\"a/b\",\"tags\":[\"V0\",\"v1\",\"v2\",\"v3\"]}"


static void
stored_path(fake_env_t *e, char *path, size_t cap)
{
    assert_int_equal(oci_store_taglist_path(e->store, FAKE_REG, "a/b", path,
                                            cap), OCI_OK);
}


/* Make the stored list seconds old. */
static void
age_stored(fake_env_t *e, long seconds)
{
    char  path[512];

    stored_path(e, path, sizeof(path));
    fake_age_file(path, seconds);
}


/* The stored list, as the fetcher writes it. */
static void
put_stored(fake_env_t *e, const char *text)
{
    char  path[512];

    stored_path(e, path, sizeof(path));
    assert_int_equal(oci_store_cache_write(e->store, path, text,
                                           strlen(text), 0), OCI_OK);
}


/* Fill the store: two upstream pages, the second asked for by Link. */
static void
fill(fake_env_t *e)
{
    request(e, &e->c1, 1, -1, "");

    /* the whole list: no n, no last upstream */
    assert_string_equal(fake_xfer_one()->url, URL);
    reply_list(PAGE1, "</v2/a/b/tags/list?n=3&last=v1>; rel=\"next\"");

    assert_string_equal(fake_xfer_one()->url, URL "?n=3&last=v1");
    reply_list(PAGE2, NULL);

    assert_body(e, &e->c1, 1, SORTED, "");
}


static void
test_cached_whole_list(void **state)
{
    fake_env_t  *e = *state;
    char         path[512], buf[256];

    fill(e);

    /* sorted, without duplicates and tags that break the grammar */
    stored_path(e, path, sizeof(path));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)),
                     (long) strlen(SORTED));
    assert_string_equal(buf, SORTED);
    assert_int_equal(fake_tmp_count(e), 0);
}


/* The fetcher pages the stored list itself, as the spec says. */
static void
test_cached_pagination(void **state)
{
    static const struct {
        long long    n;
        const char  *last;
        const char  *tags;
        const char  *next;
    } cases[] = {
        { -1, "", "\"V0\",\"v1\",\"v2\",\"v3\"", "" },
        { 2, "", "\"V0\",\"v1\"", "n=2&last=v1" },
        { 2, "v1", "\"v2\",\"v3\"", "" },
        { 3, "v1", "\"v2\",\"v3\"", "" },
        { 1, "v1", "\"v2\"", "n=1&last=v2" },
        { 4, "", "\"V0\",\"v1\",\"v2\",\"v3\"", "" },
        { 100, "", "\"V0\",\"v1\",\"v2\",\"v3\"", "" },
        { -1, "v2", "\"v3\"", "" },
        { -1, "v", "\"v1\",\"v2\",\"v3\"", "" },
        { -1, "A", "\"V0\",\"v1\",\"v2\",\"v3\"", "" },
        { -1, "v3", "", "" },
        { 2, "zzz", "", "" },
        /* n = 0: an empty list and no next page */
        { 0, "", "", "" },
        { 0, "v1", "", "" },
    };

    fake_env_t  *e = *state;
    size_t       i;
    char         body[256];

    fill(e);

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        request(e, &e->c1, 10 + i, cases[i].n, cases[i].last);
        assert_int_equal(fake_xfer_count(), 0);

        snprintf(body, sizeof(body), "{\"name\":\"a/b\",\"tags\":[%s]}",
                 cases[i].tags);
        assert_body(e, &e->c1, 10 + i, body, cases[i].next);
    }

    assert_int_equal(fake_xfers.started, 2);
}


/* Within tags_ttl from the store, after it from upstream again. */
static void
test_cached_ttl(void **state)
{
    fake_env_t  *e = *state;

    fill(e);

    age_stored(e, 59);
    request(e, &e->c1, 2, -1, "");
    assert_int_equal(fake_xfer_count(), 0);
    assert_body(e, &e->c1, 2, SORTED, "");

    age_stored(e, 60);
    request(e, &e->c1, 3, 1, "");
    assert_string_equal(fake_xfer_one()->url, URL);
    reply_list("{\"name\":\"a/b\",\"tags\":[\"new\",\"v1\"]}", NULL);
    assert_body(e, &e->c1, 3, "{\"name\":\"a/b\",\"tags\":[\"new\"]}",
                "n=1&last=new");

    request(e, &e->c1, 4, -1, "new");
    assert_int_equal(fake_xfer_count(), 0);
    assert_body(e, &e->c1, 4, "{\"name\":\"a/b\",\"tags\":[\"v1\"]}", "");
}


/* Answer every transfer with a connection error (at most a few). */
static void
fail_all(long status)
{
    fake_reply_t  r;
    int           i;

    memset(&r, 0, sizeof(r));
    r.rc = status == 0 ? CURLE_COULDNT_CONNECT : CURLE_OK;
    r.status = status;

    for (i = 0; i < 4 && fake_xfer_count() > 0; i++) {
        fake_xfer_reply(fake_xfer_one(), &r);
    }

    assert_int_equal(fake_xfer_count(), 0);
}


/* The next line is FAIL id 503 UNAVAILABLE (its message is job.c's). */
static void
assert_unavailable(conn_t *c, uint32_t id)
{
    oci_msg_t  m;

    assert_true(fake_conn_next(c, &m));
    assert_int_equal(m.type, OCI_MSG_FAIL);
    assert_int_equal(m.id, id);
    assert_int_equal(m.status, 503);
    assert_string_equal(m.code, "UNAVAILABLE");
    assert_false(fake_conn_next(c, &m));
}


/* Every endpoint down, or 429: the stored list, even past its TTL.
 * (The endpoints' back-off may answer before any transfer: the same.) */
static void
test_cached_stale(void **state)
{
    fake_env_t  *e = *state;

    /* nothing stored: FAIL */
    request(e, &e->c1, 1, -1, "");
    fail_all(0);
    assert_unavailable(&e->c1, 1);

    fill(e);
    age_stored(e, 600);

    request(e, &e->c1, 2, 2, "");
    fail_all(0);
    assert_body(e, &e->c1, 2, "{\"name\":\"a/b\",\"tags\":[\"V0\",\"v1\"]}",
                "n=2&last=v1");

    /* past tags_ttl + stale_if_error: no longer (and it is removed) */
    age_stored(e, 60 + e->cf->registries[0].stale_if_error);
    request(e, &e->c1, 3, -1, "");
    fail_all(0);
    assert_unavailable(&e->c1, 3);

    put_stored(e, SORTED);
    age_stored(e, 59 + e->cf->registries[0].stale_if_error);
    request(e, &e->c1, 4, -1, "v2");
    fail_all(503);
    assert_body(e, &e->c1, 4, "{\"name\":\"a/b\",\"tags\":[\"v3\"]}", "");

    request(e, &e->c1, 5, -1, "");
    fail_all(429);
    assert_body(e, &e->c1, 5, SORTED, "");
    assert_int_equal(fake_tmp_count(e), 0);
}


static void
test_cached_errors(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    char           path[512], buf[64];

    request(e, &e->c1, 1, -1, "");
    memset(&r, 0, sizeof(r));
    r.status = 404;
    r.body = "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":"
             "\"repository name not known to registry\"}]}";
    fake_xfer_reply(fake_xfer_one(), &r);

    request(e, &e->c1, 2, -1, "");
    reply_list("{\"name\":\"a/b\",\"tags\":", NULL);

    request(e, &e->c1, 3, -1, "");
    reply_list("[\"v1\"]", NULL);

    request(e, &e->c1, 4, -1, "");
    reply_list("{\"name\":\"a/b\",\"tags\":\"v1\"}", NULL);

    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 404 NAME_UNKNOWN repository name not known "
                        "to registry\n"
                        "FAIL 2 502 UNKNOWN invalid tag list upstream\n"
                        "FAIL 3 502 UNKNOWN invalid tag list upstream\n"
                        "FAIL 4 502 UNKNOWN invalid tag list upstream\n");

    /* nothing was stored */
    stored_path(e, path, sizeof(path));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);

    /* a list without tags (null, or no field) is an empty list */
    request(e, &e->c1, 5, -1, "");
    reply_list("{\"name\":\"a/b\",\"tags\":null}", NULL);
    assert_body(e, &e->c1, 5, "{\"name\":\"a/b\",\"tags\":[]}", "");

    age_stored(e, 100);
    request(e, &e->c1, 6, -1, "");
    reply_list("{\"name\":\"a/b\"}", NULL);
    assert_body(e, &e->c1, 6, "{\"name\":\"a/b\",\"tags\":[]}", "");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* The upstream's pages are bounded: an endless Link fails. */
static void
test_cached_pages_bounded(void **state)
{
    fake_env_t  *e = *state;
    char         link[128];
    int          i;

    request(e, &e->c1, 1, -1, "");

    for (i = 0; i < 1000; i++) {
        assert_int_equal(fake_xfer_count(), 1);
        snprintf(link, sizeof(link), "</v2/a/b/tags/list?n=1&last=t%d>; "
                 "rel=\"next\"", i);
        reply_list("{\"name\":\"a/b\",\"tags\":[\"t\"]}", link);
    }

    assert_int_equal(fake_xfer_count(), 0);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 502 UNKNOWN tag list too large\n");
}


/* The client left: the fetch stops, nothing is stored. */
static void
test_cached_cancel(void **state)
{
    fake_env_t  *e = *state;
    char         path[512], buf[64];

    request(e, &e->c1, 1, -1, "");
    reply_list(PAGE1, "</v2/a/b/tags/list?n=3&last=v1>; rel=\"next\"");
    assert_int_equal(fake_xfer_count(), 1);

    fake_cancel(e->jobs, &e->c1, 1);

    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.aborted, 1);
    assert_string_equal(fake_conn_take(&e->c1), "");

    stored_path(e, path, sizeof(path));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
    assert_int_equal(fake_tmp_count(e), 0);
}


/* A broken first page moves to the next endpoint; a broken later page
 * does not: its query is the first endpoint's cursor.  The fetch is then
 * unavailable (the stored list, or 503), and nothing is stored. */
static void
test_cached_failover(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    char           path[512], buf[64];

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_RECV_ERROR;
    r.status = 200;
    r.chunked = 1;
    r.body = "{\"name\":\"a/b\",\"tags\":[\"half";

    request(e, &e->c1, 1, -1, "");
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP2 "/v2/a/b/tags/list");
    reply_list(PAGE1, "</v2/a/b/tags/list?n=3&last=v1>; rel=\"next\"");
    assert_string_equal(fake_xfer_one()->url,
                        FAKE_EP2 "/v2/a/b/tags/list?n=3&last=v1");
    reply_list(PAGE2, NULL);
    assert_body(e, &e->c1, 1, SORTED, "");

    age_stored(e, 600);
    stored_path(e, path, sizeof(path));
    assert_int_equal(unlink(path), 0);

    request(e, &e->c1, 2, -1, "");
    assert_string_equal(fake_xfer_one()->url, URL);
    reply_list(PAGE1, "</v2/a/b/tags/list?n=3&last=v1>; rel=\"next\"");
    assert_string_equal(fake_xfer_one()->url, URL "?n=3&last=v1");
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 5);
    assert_unavailable(&e->c1, 2);
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
}


/* A next page that cannot be followed is no last page: FAIL 502, and
 * nothing is stored (the list would be cut short for tags_ttl). */
static void
test_cached_next_unusable(void **state)
{
    static const char  *links[] = {
        "</v2/a/b/tags/list?n=3&last=a\"b>; rel=\"next\"",
        "</v2/a/b/tags/list>; rel=\"next\"",
        "</v2/a/b/tags/list?n=3&last=v1; rel=\"next\"",
        NULL,                                   /* a value left out */
    };

    fake_env_t    *e = *state;
    fake_reply_t   r;
    char           path[512], buf[64], want[128];
    size_t         i;

    stored_path(e, path, sizeof(path));

    for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        request(e, &e->c1, 1 + i, -1, "");

        memset(&r, 0, sizeof(r));
        r.status = 200;
        r.body = PAGE1;
        r.link = links[i];
        r.link_truncated = links[i] == NULL;
        fake_xfer_reply(fake_xfer_one(), &r);

        assert_int_equal(fake_xfer_count(), 0);
        snprintf(want, sizeof(want), "FAIL %zu " UNFOLLOWABLE "\n", 1 + i);
        assert_string_equal(fake_conn_take(&e->c1), want);
        assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
    }

    /* a query longer than a worker's line is fine upstream */
    request(e, &e->c1, 9, -1, "");

    {
        char  link[900], last[700];

        memset(last, 'x', sizeof(last) - 1);
        last[sizeof(last) - 1] = '\0';
        snprintf(link, sizeof(link), "</v2/a/b/tags/list?n=3&last=%s>; "
                 "rel=\"next\"", last);
        reply_list(PAGE1, link);
        assert_int_equal(strlen(fake_xfer_one()->url),
                         strlen(URL "?n=3&last=") + strlen(last));
    }

    reply_list(PAGE2, NULL);
    assert_body(e, &e->c1, 9, SORTED, "");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* One fetch of the whole list for every request meanwhile, each paged
 * as it asked, each in its own file. */
static void
test_cached_coalesced(void **state)
{
    fake_env_t  *e = *state;

    request(e, &e->c1, 1, 2, "");
    request(e, &e->c2, 2, -1, "v1");
    request(e, &e->c1, 3, -1, "");
    assert_int_equal(fake_xfers.started, 1);

    reply_list(PAGE1, "</v2/a/b/tags/list?n=3&last=v1>; rel=\"next\"");

    /* joining while the pages are under way */
    request(e, &e->c2, 4, 1, "v2");
    reply_list(PAGE2, NULL);
    assert_int_equal(fake_xfers.started, 2);

    {
        oci_msg_t  m1, m3;
        char       buf[256];

        /* c1's two answers, in two files */
        assert_true(fake_conn_next(&e->c1, &m1));
        assert_true(fake_conn_next(&e->c1, &m3));
        assert_false(fake_conn_next(&e->c1, &m1));
        assert_int_equal(m1.id, 1);
        assert_int_equal(m3.id, 3);
        assert_string_not_equal(m1.path, m3.path);
        assert_string_equal(m1.next, "n=2&last=v1");
        assert_string_equal(m3.next, "");

        assert_true(fake_read_file(m1.path, buf, sizeof(buf)) > 0);
        assert_string_equal(buf, "{\"name\":\"a/b\",\"tags\":"
                            "[\"V0\",\"v1\"]}");
        assert_true(fake_read_file(m3.path, buf, sizeof(buf)) > 0);
        assert_string_equal(buf, SORTED);
        assert_int_equal(unlink(m1.path), 0);
        assert_int_equal(unlink(m3.path), 0);
    }

    {
        oci_msg_t  m2, m4;
        char       buf[256];

        assert_true(fake_conn_next(&e->c2, &m2));
        assert_true(fake_conn_next(&e->c2, &m4));
        assert_int_equal(m2.id, 2);
        assert_int_equal(m4.id, 4);
        assert_true(fake_read_file(m2.path, buf, sizeof(buf)) > 0);
        assert_string_equal(buf, "{\"name\":\"a/b\",\"tags\":"
                            "[\"v2\",\"v3\"]}");
        assert_true(fake_read_file(m4.path, buf, sizeof(buf)) > 0);
        assert_string_equal(buf, "{\"name\":\"a/b\",\"tags\":[\"v3\"]}");
        assert_string_equal(m4.next, "");
        assert_int_equal(unlink(m2.path), 0);
        assert_int_equal(unlink(m4.path), 0);
    }

    assert_int_equal(fake_tmp_count(e), 0);

    /* one waiter leaves, the fetch goes on for the other */
    age_stored(e, 60);
    request(e, &e->c1, 5, -1, "");
    request(e, &e->c2, 6, -1, "");
    fake_cancel(e->jobs, &e->c1, 5);
    assert_int_equal(fake_xfer_count(), 1);
    reply_list(PAGE2, NULL);
    assert_string_equal(fake_conn_take(&e->c1), "");
    assert_body(e, &e->c2, 6, "{\"name\":\"a/b\",\"tags\":"
                "[\"V0\",\"v1\",\"v2\"]}", "");
}


/* The stored list answers stale every waiter of the fetch, and each
 * answer counts. */
static void
test_cached_stale_waiters(void **state)
{
    fake_env_t  *e = *state;

    fill(e);
    age_stored(e, 600);

    request(e, &e->c1, 2, 1, "");
    request(e, &e->c2, 3, -1, "v2");
    assert_int_equal(fake_xfer_count(), 1);
    fail_all(0);

    assert_body(e, &e->c1, 2, "{\"name\":\"a/b\",\"tags\":[\"V0\"]}",
                "n=1&last=V0");
    assert_body(e, &e->c2, 3, "{\"name\":\"a/b\",\"tags\":[\"v3\"]}", "");
    assert_true(stats_registry(e->jobs->cf->registries)->stale_served == 2);
}


/* A stored list past tags_ttl + stale_if_error can answer nothing any
 * more: it is removed when found. */
static void
test_cached_expired_removed(void **state)
{
    fake_env_t  *e = *state;
    char         path[512], buf[256];

    fill(e);
    stored_path(e, path, sizeof(path));

    age_stored(e, 59 + e->cf->registries[0].stale_if_error);
    request(e, &e->c1, 2, -1, "");
    assert_true(fake_read_file(path, buf, sizeof(buf)) > 0);
    fail_all(0);
    assert_body(e, &e->c1, 2, SORTED, "");

    age_stored(e, 60 + e->cf->registries[0].stale_if_error);
    request(e, &e->c1, 3, -1, "");
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
    fail_all(0);
    assert_unavailable(&e->c1, 3);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_query, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_link_next, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_link_next_long, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_link_truncated, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_no_coalescing, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_gone, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_not_handed_over,
                                        setup_forward, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_failover, setup_forward,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_store_unwritable,
                                        setup_forward, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_whole_list,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_pagination,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_ttl, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_stale, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_errors, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_pages_bounded,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_cancel, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_failover,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_next_unusable,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_coalesced,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_stale_waiters,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cached_expired_removed,
                                        fake_env_setup, fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
