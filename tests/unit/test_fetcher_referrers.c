/*
 * Unit tests for src/fetcher/referrers.c: the referrers API upstream and
 * its pages merged into one index, the artifactType filter, the index
 * kept for referrers_ttl, the fallback to the sha256-<hex> tag for
 * registries without the API, an empty index (never a 404) when there
 * are none, remembered in memory and never stored, the stored index
 * answering when the upstream fails, one fetch for every request of a
 * digest meanwhile, and a next page that cannot be followed failing.
 * Upstream and workers are the fakes of fetcher_fakes.h.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>
#include <cmocka.h>

#include "oci_ref.h"
#include "fetcher_fakes.h"


#define HEX64_TAIL \
    "123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX64    "0" HEX64_TAIL
#define DIGEST   "sha256:" HEX64
#define API_URL  FAKE_EP1 "/v2/a/b/referrers/" DIGEST
#define TAG_URL  FAKE_EP1 "/v2/a/b/manifests/sha256-" HEX64

#define SBOM     "application/vnd.example.sbom.v1+json"
#define SIG      "application/vnd.example.sig.v1"

#define D_SBOM \
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"," \
    "\"digest\":\"sha256:" "aa" "\",\"size\":10,\"artifactType\":\"" SBOM \
    "\"}"
#define D_SIG \
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"," \
    "\"digest\":\"sha256:" "bb" "\",\"size\":20,\"artifactType\":\"" SIG \
    "\",\"annotations\":{\"k\":\"v\"}}"
#define D_SBOM2 \
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"," \
    "\"digest\":\"sha256:" "cc" "\",\"size\":30,\"artifactType\":\"" SBOM \
    "\"}"
#define D_PLAIN \
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"," \
    "\"digest\":\"sha256:" "dd" "\",\"size\":40}"

#define INDEX(list) \
    "{\"schemaVersion\":2,\"mediaType\":" \
    "\"application/vnd.oci.image.index.v1+json\",\"manifests\":[" list "]}"


static void
request(fake_env_t *e, conn_t *c, uint32_t id, const char *digest,
    const char *artifact_type)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_REFERRERS, id);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "a/b");
    snprintf(m.reference, sizeof(m.reference), "%s", digest);
    snprintf(m.artifact_type, sizeof(m.artifact_type), "%s", artifact_type);
    dispatch_on_msg(c, &m, e->jobs);
}


static void
reply(long status, const char *content_type, const char *body,
    const char *link)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.content_type = content_type;
    r.body = body;
    r.link = link;
    r.chunk = 7;
    fake_xfer_reply(fake_xfer_one(), &r);
}


/* The next line is BODY id 200 <temp file> -; the file holds body. */
static void
assert_body_next(fake_env_t *e, conn_t *c, uint32_t id, const char *body)
{
    oci_msg_t  m;
    char       prefix[256], buf[2048];

    assert_true(fake_conn_next(c, &m));
    assert_int_equal(m.type, OCI_MSG_BODY);
    assert_int_equal(m.id, id);
    assert_int_equal(m.status, 200);
    assert_string_equal(m.next, "");

    snprintf(prefix, sizeof(prefix), "%s/tmp/", e->store);
    assert_memory_equal(m.path, prefix, strlen(prefix));
    assert_int_equal(fake_read_file(m.path, buf, sizeof(buf)),
                     (long) strlen(body));
    assert_string_equal(buf, body);

    assert_int_equal(unlink(m.path), 0);
}


/* The same, and it is the last line. */
static void
assert_body(fake_env_t *e, conn_t *c, uint32_t id, const char *body)
{
    oci_msg_t  m;

    assert_body_next(e, c, id, body);
    assert_false(fake_conn_next(c, &m));
}


static void
stored_path_of(fake_env_t *e, const char *hex, char *path, size_t cap)
{
    assert_int_equal(oci_store_referrers_path(e->store, FAKE_REG, "a/b",
                                              hex, path, cap), OCI_OK);
}


static void
stored_path(fake_env_t *e, char *path, size_t cap)
{
    stored_path_of(e, HEX64, path, cap);
}


/* The stored index, as the fetcher writes it. */
static void
put_stored(fake_env_t *e, const char *text)
{
    char  path[512];

    stored_path(e, path, sizeof(path));
    assert_int_equal(oci_store_cache_write(e->store, path, text,
                                           strlen(text), 0), OCI_OK);
}


/* The endpoints' and the negative cache's clock (milliseconds). */
static long long  test_ms;


static long long
test_clock(void)
{
    return test_ms;
}


static int
setup(void **state)
{
    fake_env_setup(state);
    test_ms = 1000000;
    jobs_set_clock(((fake_env_t *) *state)->jobs, test_clock);

    return 0;
}


/* Past the registry's negative_ttl. */
static void
forget_negative(fake_env_t *e)
{
    test_ms += e->cf->registries[0].negative_ttl * 1000 + 1;
}


static void
age_stored(fake_env_t *e, long seconds)
{
    char  path[512];

    stored_path(e, path, sizeof(path));
    fake_age_file(path, seconds);
}


/* The API, two pages: the index of both, stored. */
static void
fill(fake_env_t *e, uint32_t id, const char *artifact_type,
    const char *expect)
{
    xfer_t  *x;

    request(e, &e->c1, id, DIGEST, artifact_type);

    /* never filtered upstream: one stored index serves every filter */
    x = fake_xfer_one();
    assert_string_equal(x->url, API_URL);
    assert_string_equal(x->accept, OCI_MT_OCI_INDEX);
    assert_int_equal(x->head, 0);

    /* the next page's host is dropped: the same endpoint and token */
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SBOM "," D_SIG),
          "<https://elsewhere.test/v2/a/b/referrers/" DIGEST
          "?n=2&last=bb>; rel=\"next\"");

    assert_string_equal(fake_xfer_one()->url, API_URL "?n=2&last=bb");
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SBOM2 ",\"junk\"," D_PLAIN), NULL);

    assert_body(e, &e->c1, id, expect);
}


static void
test_api_pages_and_store(void **state)
{
    fake_env_t  *e = *state;
    char         path[512], buf[2048];

    fill(e, 1, "", INDEX(D_SBOM "," D_SIG "," D_SBOM2 "," D_PLAIN));

    stored_path(e, path, sizeof(path));
    assert_true(fake_read_file(path, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, INDEX(D_SBOM "," D_SIG "," D_SBOM2 ","
                                   D_PLAIN));
    assert_int_equal(fake_tmp_count(e), 0);
}


/* The filter applies to the answer, from upstream or from the store. */
static void
test_filter(void **state)
{
    fake_env_t  *e = *state;

    fill(e, 1, SBOM, INDEX(D_SBOM "," D_SBOM2));

    request(e, &e->c1, 2, DIGEST, SIG);
    assert_int_equal(fake_xfer_count(), 0);
    assert_body(e, &e->c1, 2, INDEX(D_SIG));

    request(e, &e->c1, 3, DIGEST, "application/vnd.none");
    assert_body(e, &e->c1, 3, INDEX(""));

    request(e, &e->c1, 4, DIGEST, "");
    assert_body(e, &e->c1, 4, INDEX(D_SBOM "," D_SIG "," D_SBOM2 ","
                                    D_PLAIN));

    assert_int_equal(fake_xfers.started, 2);
}


static void
test_ttl(void **state)
{
    fake_env_t  *e = *state;

    fill(e, 1, "", INDEX(D_SBOM "," D_SIG "," D_SBOM2 "," D_PLAIN));

    age_stored(e, 59);
    request(e, &e->c1, 2, DIGEST, SIG);
    assert_int_equal(fake_xfer_count(), 0);
    assert_body(e, &e->c1, 2, INDEX(D_SIG));

    age_stored(e, 60);
    request(e, &e->c1, 3, DIGEST, "");
    assert_string_equal(fake_xfer_one()->url, API_URL);
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_PLAIN), NULL);
    assert_body(e, &e->c1, 3, INDEX(D_PLAIN));

    request(e, &e->c1, 4, DIGEST, "");
    assert_int_equal(fake_xfer_count(), 0);
    assert_body(e, &e->c1, 4, INDEX(D_PLAIN));
}


/* referrers_ttl = 0: every request goes upstream, nothing is stored. */
static void
test_no_cache(void **state)
{
    fake_env_t  *e = *state;
    char         path[512], buf[64];

    e->cf->registries[0].referrers_ttl = 0;

    request(e, &e->c1, 1, DIGEST, "");
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SIG), NULL);
    assert_body(e, &e->c1, 1, INDEX(D_SIG));

    request(e, &e->c1, 2, DIGEST, SIG);
    assert_string_equal(fake_xfer_one()->url, API_URL);
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SIG "," D_SBOM), NULL);
    assert_body(e, &e->c1, 2, INDEX(D_SIG));

    stored_path(e, path, sizeof(path));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
}


/* Nothing refers to the digest: an empty index, never kept on disk
 * (any digest can be asked for), remembered in memory for negative_ttl
 * instead. */
static void
test_empty(void **state)
{
    fake_env_t  *e = *state;
    char         path[512], buf[2048], hex[OCI_SHA256_HEX_LEN + 1];
    char         digest[OCI_DIGEST_MAX + 1];
    int          i;

    request(e, &e->c1, 1, DIGEST, "");
    reply(200, OCI_MT_OCI_INDEX, INDEX(""), NULL);
    assert_body(e, &e->c1, 1, INDEX(""));

    stored_path(e, path, sizeof(path));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);

    /* remembered: no upstream request, any filter */
    request(e, &e->c1, 2, DIGEST, SIG);
    request(e, &e->c2, 3, DIGEST, "");
    assert_int_equal(fake_xfers.started, 1);
    assert_body(e, &e->c1, 2, INDEX(""));
    assert_body(e, &e->c2, 3, INDEX(""));

    /* a storm of digests nothing refers to: one request each, no file */
    for (i = 0; i < 50; i++) {
        snprintf(hex, sizeof(hex), "%064x", i);
        snprintf(digest, sizeof(digest), "sha256:%s", hex);

        request(e, &e->c1, 100 + i, digest, "");
        reply(200, OCI_MT_OCI_INDEX, INDEX(""), NULL);
        request(e, &e->c1, 200 + i, digest, "");
        assert_int_equal(fake_xfer_count(), 0);

        assert_body_next(e, &e->c1, 100 + i, INDEX(""));
        assert_body(e, &e->c1, 200 + i, INDEX(""));

        stored_path_of(e, hex, path, sizeof(path));
        assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
    }

    assert_int_equal(fake_xfers.started, 51);

    /* after negative_ttl upstream is asked again */
    forget_negative(e);
    request(e, &e->c1, 4, DIGEST, "");
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SIG), NULL);
    assert_body(e, &e->c1, 4, INDEX(D_SIG));

    stored_path(e, path, sizeof(path));
    assert_true(fake_read_file(path, buf, sizeof(buf)) > 0);

    /* the referrer went: what was kept goes too */
    age_stored(e, 60);
    request(e, &e->c1, 5, DIGEST, "");
    reply(200, OCI_MT_OCI_INDEX, INDEX(""), NULL);
    assert_body(e, &e->c1, 5, INDEX(""));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
}


/* referrers_ttl = 0 keeps nothing, not even "none". */
static void
test_empty_no_cache(void **state)
{
    fake_env_t  *e = *state;

    e->cf->registries[0].referrers_ttl = 0;

    request(e, &e->c1, 1, DIGEST, "");
    reply(200, OCI_MT_OCI_INDEX, INDEX(""), NULL);
    assert_body(e, &e->c1, 1, INDEX(""));

    request(e, &e->c1, 2, DIGEST, "");
    assert_int_equal(fake_xfer_count(), 1);
    reply(200, OCI_MT_OCI_INDEX, INDEX(""), NULL);
    assert_body(e, &e->c1, 2, INDEX(""));
}


/* No API (404, whatever its body; 405; 400): the tag schema. */
static void
test_fallback_tag(void **state)
{
    static const struct {
        long         status;
        const char  *body;
    } no_api[] = {
        { 404, "404 page not found\n" },
        { 404, "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":"
               "\"repository name not known to registry\"}]}" },
        { 405, NULL },
        { 400, NULL },
    };

    fake_env_t  *e = *state;
    xfer_t      *x;
    size_t       i;

    e->cf->registries[0].referrers_ttl = 0;

    for (i = 0; i < sizeof(no_api) / sizeof(no_api[0]); i++) {
        request(e, &e->c1, 1 + i, DIGEST, SBOM);
        reply(no_api[i].status, "text/plain", no_api[i].body, NULL);

        x = fake_xfer_one();
        assert_string_equal(x->url, TAG_URL);
        assert_string_equal(x->accept, OCI_MT_OCI_INDEX);
        reply(200, OCI_MT_OCI_INDEX, INDEX(D_SBOM "," D_SIG), NULL);
        assert_body(e, &e->c1, 1 + i, INDEX(D_SBOM));
    }
}


/* A tag's index without its mediaType field: the Content-Type's media
 * type says, its parameters (a charset) aside. */
static void
test_fallback_content_type(void **state)
{
    static const struct {
        const char  *type;
        int          index;
    } cases[] = {
        { OCI_MT_OCI_INDEX, 1 },
        { OCI_MT_OCI_INDEX "; charset=utf-8", 1 },
        { OCI_MT_OCI_INDEX ";charset=utf-8", 1 },
        { " " OCI_MT_OCI_INDEX " ; charset=\"utf-8\"", 1 },
        { "Application/VND.OCI.Image.Index.v1+JSON", 1 },
        { OCI_MT_OCI_INDEX "x; charset=utf-8", 0 },
        { "application/json; charset=utf-8", 0 },
        { "", 0 },
    };

    fake_env_t  *e = *state;
    size_t       i;

    e->cf->registries[0].referrers_ttl = 0;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        request(e, &e->c1, 1 + i, DIGEST, "");
        reply(404, NULL, NULL, NULL);
        reply(200, cases[i].type,
              "{\"schemaVersion\":2,\"manifests\":[" D_SIG ",7]}", NULL);
        assert_body(e, &e->c1, 1 + i,
                    cases[i].index ? INDEX(D_SIG) : INDEX(""));
    }
}


/* The tag schema's answers: no tag, no index, an index. */
static void
test_fallback_answers(void **state)
{
    fake_env_t  *e = *state;
    char         path[512], buf[2048];

    /* no such tag: none, remembered, not kept */
    request(e, &e->c1, 1, DIGEST, "");
    reply(404, NULL, NULL, NULL);
    reply(404, "application/json", "{\"errors\":[{\"code\":"
          "\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}", NULL);
    assert_body(e, &e->c1, 1, INDEX(""));

    stored_path(e, path, sizeof(path));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
    request(e, &e->c1, 2, DIGEST, "");
    assert_int_equal(fake_xfer_count(), 0);
    assert_body(e, &e->c1, 2, INDEX(""));

    /* the tag names an image manifest: not a list of referrers */
    forget_negative(e);
    request(e, &e->c1, 3, DIGEST, "");
    reply(404, NULL, NULL, NULL);
    reply(200, OCI_MT_OCI_MANIFEST,
          "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_OCI_MANIFEST
          "\",\"config\":{},\"layers\":[],\"manifests\":[" D_SIG "]}",
          NULL);
    assert_body(e, &e->c1, 3, INDEX(""));

    /* an index without its mediaType field: the Content-Type says */
    forget_negative(e);
    request(e, &e->c1, 10, DIGEST, "");
    reply(404, NULL, NULL, NULL);
    reply(200, OCI_MT_OCI_INDEX,
          "{\"schemaVersion\":2,\"manifests\":[" D_SIG ",7]}", NULL);
    assert_body(e, &e->c1, 10, INDEX(D_SIG));

    assert_true(fake_read_file(path, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, INDEX(D_SIG));
    age_stored(e, 60);

    /* a refusal of the tag is a refusal */
    forget_negative(e);
    request(e, &e->c1, 4, DIGEST, "");
    reply(404, NULL, NULL, NULL);
    reply(403, "application/json", "{\"errors\":[{\"code\":\"DENIED\","
          "\"message\":\"no\"}]}", NULL);
    assert_string_equal(fake_conn_take(&e->c1), "FAIL 4 403 DENIED no\n");
}


static void
test_errors(void **state)
{
    fake_env_t  *e = *state;

    /* not a digest: refused before any transfer */
    request(e, &e->c1, 1, "sha256:abc", "");
    request(e, &e->c1, 2, "latest", "");
    assert_int_equal(fake_xfers.started, 0);

    /* a 200 that is no index */
    request(e, &e->c1, 3, DIGEST, "");
    reply(200, "text/html", "<html></html>", NULL);

    request(e, &e->c1, 4, DIGEST, "");
    reply(200, OCI_MT_OCI_INDEX, "{\"manifests\":{}}", NULL);

    /* a 404 after the first page is no "no API", and no 404 either */
    request(e, &e->c1, 5, DIGEST, "");
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SIG),
          "</v2/a/b/referrers/" DIGEST "?last=x>; rel=\"next\"");
    reply(404, "application/json", "{\"errors\":[{\"code\":"
          "\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}", NULL);

    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 400 DIGEST_INVALID invalid digest\n"
                        "FAIL 2 400 DIGEST_INVALID invalid digest\n"
                        "FAIL 3 502 UNKNOWN invalid referrers upstream\n"
                        "FAIL 4 502 UNKNOWN invalid referrers upstream\n"
                        "FAIL 5 502 UNKNOWN the upstream's next page is "
                        "gone\n");
    assert_int_equal(fake_tmp_count(e), 0);
}


/* Only a path under /v2/ is followed; a next page that cannot be is no
 * last page: FAIL 502, nothing kept.  A previous page is no next one. */
static void
test_link_not_followed(void **state)
{
    static const char  *links[] = {
        "</other/path?last=x>; rel=\"next\"",
        "<https://host.only>; rel=\"next\"",
        "</v2/a/b/referrers/" DIGEST "?last=x y>; rel=\"next\"",
        "</v2/a/b/referrers/" DIGEST "?last=x; rel=\"next\"",
        NULL,                                   /* a value left out */
    };

    fake_env_t    *e = *state;
    fake_reply_t   r;
    size_t         i;
    char           path[512], buf[64];

    stored_path(e, path, sizeof(path));

    for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        request(e, &e->c1, 1, DIGEST, "");

        memset(&r, 0, sizeof(r));
        r.status = 200;
        r.content_type = OCI_MT_OCI_INDEX;
        r.body = INDEX(D_SIG);
        r.link = links[i];
        r.link_truncated = links[i] == NULL;
        fake_xfer_reply(fake_xfer_one(), &r);

        assert_int_equal(fake_xfer_count(), 0);
        assert_string_equal(fake_conn_take(&e->c1),
                            "FAIL 1 502 UNKNOWN cannot follow the "
                            "upstream's next page\n");
        assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
    }

    request(e, &e->c1, 2, DIGEST, "");
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SIG),
          "</v2/a/b/referrers/" DIGEST "?last=x>; rel=\"prev\"");
    assert_int_equal(fake_xfer_count(), 0);
    assert_body(e, &e->c1, 2, INDEX(D_SIG));
    assert_int_equal(fake_tmp_count(e), 0);
}


/* One fetch for every request of the digest meanwhile, each filtered as
 * it asked, each in its own file. */
static void
test_coalesced(void **state)
{
    fake_env_t  *e = *state;

    request(e, &e->c1, 1, DIGEST, SBOM);
    request(e, &e->c2, 2, DIGEST, SIG);
    request(e, &e->c1, 3, DIGEST, "");
    assert_int_equal(fake_xfers.started, 1);

    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SBOM "," D_SIG),
          "</v2/a/b/referrers/" DIGEST "?last=bb>; rel=\"next\"");
    request(e, &e->c2, 4, DIGEST, "application/vnd.none");
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SBOM2), NULL);
    assert_int_equal(fake_xfers.started, 2);

    assert_body_next(e, &e->c1, 1, INDEX(D_SBOM "," D_SBOM2));
    assert_body(e, &e->c1, 3, INDEX(D_SBOM "," D_SIG "," D_SBOM2));
    assert_body_next(e, &e->c2, 2, INDEX(D_SIG));
    assert_body(e, &e->c2, 4, INDEX(""));
    assert_int_equal(fake_tmp_count(e), 0);

    /* another digest is another fetch */
    request(e, &e->c1, 5, DIGEST, "");
    request(e, &e->c1, 6, "sha256:" "1" HEX64_TAIL, "");
    assert_int_equal(fake_xfers.started, 3);
    assert_string_equal(fake_xfer_one()->url,
                        FAKE_EP1 "/v2/a/b/referrers/sha256:1" HEX64_TAIL);
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_PLAIN), NULL);
    assert_body_next(e, &e->c1, 5, INDEX(D_SBOM "," D_SIG "," D_SBOM2));
    assert_body(e, &e->c1, 6, INDEX(D_PLAIN));
}


/* A broken first page moves to the next endpoint, a broken later page
 * does not (its query is the first endpoint's cursor). */
static void
test_failover_first_page_only(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    oci_msg_t      m;

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_COULDNT_CONNECT;

    e->cf->registries[0].referrers_ttl = 0;

    request(e, &e->c1, 1, DIGEST, "");
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_xfer_one()->url,
                        FAKE_EP2 "/v2/a/b/referrers/" DIGEST);
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SIG), NULL);
    assert_body(e, &e->c1, 1, INDEX(D_SIG));

    request(e, &e->c1, 2, DIGEST, "");
    assert_string_equal(fake_xfer_one()->url, API_URL);
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SIG),
          "</v2/a/b/referrers/" DIGEST "?last=bb>; rel=\"next\"");
    assert_string_equal(fake_xfer_one()->url, API_URL "?last=bb");
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.started, 4);
    assert_true(fake_conn_next(&e->c1, &m));
    assert_int_equal(m.type, OCI_MSG_FAIL);
    assert_int_equal(m.id, 2);
    assert_int_equal(m.status, 503);
    assert_false(fake_conn_next(&e->c1, &m));
}


/* Every endpoint down, or 429: the stored index, filtered. */
static void
test_stale(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    oci_msg_t      m;
    int            i;
    char           path[512], buf[64];

    fill(e, 1, "", INDEX(D_SBOM "," D_SIG "," D_SBOM2 "," D_PLAIN));
    age_stored(e, 600);

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_COULDNT_CONNECT;

    request(e, &e->c1, 2, DIGEST, SIG);
    for (i = 0; i < 4 && fake_xfer_count() > 0; i++) {
        fake_xfer_reply(fake_xfer_one(), &r);
    }
    assert_body(e, &e->c1, 2, INDEX(D_SIG));

    /* past referrers_ttl + stale_if_error: FAIL, and it is removed */
    age_stored(e, 60 + e->cf->registries[0].stale_if_error);
    request(e, &e->c1, 3, DIGEST, SIG);
    stored_path(e, path, sizeof(path));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
    for (i = 0; i < 4 && fake_xfer_count() > 0; i++) {
        fake_xfer_reply(fake_xfer_one(), &r);
    }
    assert_true(fake_conn_next(&e->c1, &m));
    assert_int_equal(m.type, OCI_MSG_FAIL);
    assert_int_equal(m.id, 3);
    assert_int_equal(m.status, 503);
    assert_false(fake_conn_next(&e->c1, &m));

    put_stored(e, INDEX(D_SBOM "," D_SIG "," D_SBOM2 "," D_PLAIN));
    age_stored(e, 600);
    request(e, &e->c1, 4, DIGEST, "");
    memset(&r, 0, sizeof(r));
    r.status = 429;
    for (i = 0; i < 4 && fake_xfer_count() > 0; i++) {
        fake_xfer_reply(fake_xfer_one(), &r);
    }
    assert_body(e, &e->c1, 4, INDEX(D_SBOM "," D_SIG "," D_SBOM2 ","
                                    D_PLAIN));
}


/* The client left: the fetch stops, nothing is stored or left. */
static void
test_cancel(void **state)
{
    fake_env_t  *e = *state;
    char         path[512], buf[64];

    request(e, &e->c1, 1, DIGEST, "");
    reply(404, NULL, NULL, NULL);
    assert_int_equal(fake_xfer_count(), 1);

    fake_cancel(e->jobs, &e->c1, 1);

    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(fake_xfers.aborted, 1);
    assert_string_equal(fake_conn_take(&e->c1), "");

    stored_path(e, path, sizeof(path));
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), -1);
    assert_int_equal(fake_tmp_count(e), 0);
}


/* BODY could not be sent (the worker is dead): its file goes. */
static void
test_not_handed_over(void **state)
{
    fake_env_t  *e = *state;

    request(e, &e->c1, 1, DIGEST, "");
    conn_kill(&e->c1);
    reply(200, OCI_MT_OCI_INDEX, INDEX(D_SIG), NULL);

    assert_string_equal(fake_conn_take(&e->c1), "");
    assert_int_equal(fake_tmp_count(e), 0);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_api_pages_and_store, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_filter, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_ttl, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_no_cache, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_empty, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_empty_no_cache, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_tag, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_content_type, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_answers, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_link_not_followed, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_coalesced, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_failover_first_page_only, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_stale, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_not_handed_over, setup,
                                        fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
