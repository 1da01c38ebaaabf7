/*
 * Unit tests for src/fetcher/manifest.c: GET by tag and by digest (the
 * sha256 checks, what is stored, the tag record: always the answer to
 * every manifest type; relays for the clients it does not serve),
 * the media type (Content-Type without parameters, generic types and the
 * body's "mediaType"), HEAD answered from headers or falling back to GET,
 * revalidation of a stored tag, stale-if-error, coalescing and limits.
 * Upstream and workers are the fakes of fetcher_fakes.h.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "oci_ref.h"
#include "fetcher_fakes.h"
#include "manifest.h"


#define MT_INDEX     OCI_MT_OCI_INDEX
#define MT_MANIFEST  OCI_MT_OCI_MANIFEST
#define INDEX \
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_INDEX "\",\"manifests\":[]}"
#define MANIFEST \
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST "\"," \
    "\"config\":{},\"layers\":[]}"
#define UNTYPED      "{\"schemaVersion\":2,\"config\":{},\"layers\":[]}"
#define URL_V1       FAKE_EP1 "/v2/a/b/manifests/v1"
#define HEX64_1 \
    "1111111111111111111111111111111111111111111111111111111111111111"

typedef struct {
    const char  *body;
    char         hex[OCI_SHA256_HEX_LEN + 1];
    char         digest[OCI_DIGEST_MAX + 1];
    size_t       len;
} doc_t;


static void
doc(doc_t *d, const char *body)
{
    d->body = body;
    d->len = strlen(body);
    fake_sha256(body, d->len, d->hex);
    snprintf(d->digest, sizeof(d->digest), "sha256:%s", d->hex);
}


static void
request(fake_env_t *e, conn_t *c, uint32_t id, const char *ref, int head,
    const char *accept)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_MANIFEST, id);
    snprintf(m.registry, sizeof(m.registry), FAKE_REG);
    snprintf(m.name, sizeof(m.name), "a/b");
    snprintf(m.reference, sizeof(m.reference), "%s", ref);
    m.head = head;
    snprintf(m.accept, sizeof(m.accept), "%s", accept);
    dispatch_on_msg(c, &m, e->jobs);
}


/* A GET answer (a HEAD one if x is a HEAD: no body, length given). */
static void
answer(xfer_t *x, const doc_t *d, const char *type, const char *digest)
{
    fake_reply_t  r;

    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = type;
    r.digest = digest;

    if (x->head) {
        r.length_set = 1;
        r.length = (long long) d->len;

    } else {
        r.body = d->body;
        r.chunk = 7;
    }

    fake_xfer_reply(x, &r);
}


static void
assert_meta(conn_t *c, uint32_t id, const doc_t *d, const char *type,
    int stale)
{
    char  want[512];

    snprintf(want, sizeof(want), "META %u %s %zu %s %d -\n", (unsigned) id,
             d->digest, d->len, type, stale);
    assert_string_equal(fake_conn_take(c), want);
}


/* The manifest and its type are in the store. */
static void
assert_stored(fake_env_t *e, const doc_t *d, const char *type)
{
    char  path[OCI_PATH_MAX], buf[512];

    assert_int_equal(oci_store_blob_path(e->store, d->hex, path,
                                         sizeof(path)), OCI_OK);
    assert_int_equal(fake_read_file(path, buf, sizeof(buf)), (long) d->len);
    assert_string_equal(buf, d->body);

    assert_int_equal(oci_store_type_read(e->store, d->hex, buf, sizeof(buf)),
                     OCI_OK);
    assert_string_equal(buf, type);
}


static void
assert_not_stored(fake_env_t *e, const doc_t *d)
{
    char         path[OCI_PATH_MAX];
    struct stat  st;

    assert_int_equal(oci_store_blob_path(e->store, d->hex, path,
                                         sizeof(path)), OCI_OK);
    assert_int_equal(stat(path, &st), -1);
}


static void
assert_record(fake_env_t *e, const char *tag, const doc_t *d,
    const char *type)
{
    oci_tag_record_t  rec;
    long long         now;

    assert_int_equal(oci_tag_record_read(e->store, FAKE_REG, "a/b", tag,
                                         &rec), OCI_OK);
    assert_string_equal(rec.digest, d->digest);
    assert_true(rec.size == (long long) d->len);
    assert_string_equal(rec.media_type, type);

    now = (long long) time(NULL);
    assert_true(rec.fetched_at <= now && rec.fetched_at >= now - 5);
}


static void
assert_no_record(fake_env_t *e, const char *tag)
{
    oci_tag_record_t  rec;

    assert_int_equal(oci_tag_record_read(e->store, FAKE_REG, "a/b", tag,
                                         &rec), OCI_ENOENT);
}


/* A record, stored manifest and type as an earlier GET leaves them, but
 * fetched at fetched_at. */
static void
seed(fake_env_t *e, const doc_t *d, const char *type, long long fetched_at)
{
    oci_tag_record_t  rec;
    char              tmp[OCI_PATH_MAX];
    int               fd;

    assert_int_equal(oci_store_type_write(e->store, d->hex, type, 0),
                     OCI_OK);
    fd = oci_store_tmp_create(e->store, tmp, sizeof(tmp));
    assert_true(fd >= 0);
    assert_int_equal(write(fd, d->body, d->len), (ssize_t) d->len);
    assert_int_equal(oci_store_commit(e->store, tmp, fd, d->hex, 0), OCI_OK);
    close(fd);

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.digest, sizeof(rec.digest), "%s", d->digest);
    rec.size = (long long) d->len;
    snprintf(rec.media_type, sizeof(rec.media_type), "%s", type);
    rec.fetched_at = fetched_at;
    assert_int_equal(oci_tag_record_write(e->store, FAKE_REG, "a/b", "v1",
                                          &rec, 0), OCI_OK);
}


/* make the record of "v1" stale, as the worker found it before it asked */
static void
age_record(fake_env_t *e)
{
    oci_tag_record_t  rec;

    assert_int_equal(oci_tag_record_read(e->store, FAKE_REG, "a/b", "v1",
                                         &rec), OCI_OK);
    rec.fetched_at = 1;
    assert_int_equal(oci_tag_record_write(e->store, FAKE_REG, "a/b", "v1",
                                          &rec, 0), OCI_OK);
}


static void
test_get_by_tag(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;
    doc_t        d;

    doc(&d, INDEX);
    request(e, &e->c1, 1, "v1", 0, "");

    x = fake_xfer_one();
    assert_string_equal(x->url, URL_V1);
    assert_int_equal(x->head, 0);
    assert_string_equal(x->accept, OCI_MT_ALL_MANIFESTS);

    answer(x, &d, MT_INDEX, d.digest);

    assert_meta(&e->c1, 1, &d, MT_INDEX, 0);
    assert_stored(e, &d, MT_INDEX);
    assert_record(e, "v1", &d, MT_INDEX);
    assert_int_equal(fake_tmp_count(e), 0);
}


/* A relay's answer (META with the temp file of the body): the body is
 * the upstream's, the temp file is the worker's to unlink. */
static void
assert_relayed(conn_t *c, uint32_t id, const char *digest, const char *body,
    const char *type)
{
    oci_msg_t  m;
    char       buf[512];

    assert_true(fake_conn_next(c, &m));
    assert_int_equal(m.type, OCI_MSG_META);
    assert_int_equal(m.id, id);
    assert_string_equal(m.digest, digest);
    assert_true(m.size == (long long) strlen(body));
    assert_string_equal(m.media_type, type);
    assert_int_equal(m.stale, 0);
    assert_non_null(oci_msg_file(&m));
    assert_int_equal(fake_read_file(m.path, buf, sizeof(buf)),
                     (long) strlen(body));
    assert_string_equal(buf, body);
    assert_int_equal(unlink(m.path), 0);
}


/* The mirror's own request asks for every manifest type, whatever the
 * client sent: the worker decides who gets the stored answer. */
static void
test_own_answer_full_accept(void **state)
{
    fake_env_t  *e = *state;
    doc_t        d;

    doc(&d, MANIFEST);
    request(e, &e->c1, 1, "v1", 0, "");
    assert_string_equal(fake_xfer_one()->accept, OCI_MT_ALL_MANIFESTS);
    answer(fake_xfer_one(), &d, MT_MANIFEST, d.digest);
    assert_meta(&e->c1, 1, &d, MT_MANIFEST, 0);
    assert_record(e, "v1", &d, MT_MANIFEST);

    /* by digest a client's list is not the question either */
    doc(&d, INDEX);
    request(e, &e->c1, 2, d.digest, 0, MT_MANIFEST);
    assert_string_equal(fake_xfer_one()->accept, OCI_MT_ALL_MANIFESTS);
    answer(fake_xfer_one(), &d, MT_INDEX, NULL);
    assert_meta(&e->c1, 2, &d, MT_INDEX, 0);
    assert_stored(e, &d, MT_INDEX);
}


/* A relay asks upstream with the client's list and hands its answer over
 * as it came; nothing is stored, recorded or remembered. */
static void
test_relay(void **state)
{
    static const char  schema1_digest[] = "sha256:" HEX64_1;

    fake_env_t    *e = *state;
    fake_reply_t   r;
    doc_t          index, child;

    doc(&index, INDEX);
    doc(&child, MANIFEST);
    seed(e, &index, MT_INDEX, (long long) time(NULL));

    /* two clients with the same list share one upstream request */
    request(e, &e->c1, 1, "v1", 0, MT_MANIFEST);
    request(e, &e->c2, 2, "v1", 0, MT_MANIFEST);
    assert_int_equal(fake_xfers.started, 1);
    assert_string_equal(fake_xfer_one()->accept, MT_MANIFEST);
    assert_int_equal(fake_xfer_one()->head, 0);

    /* the upstream picks a platform's manifest for them */
    answer(fake_xfer_one(), &child, MT_MANIFEST, child.digest);
    assert_relayed(&e->c1, 1, child.digest, MANIFEST, MT_MANIFEST);
    assert_relayed(&e->c2, 2, child.digest, MANIFEST, MT_MANIFEST);
    assert_not_stored(e, &child);
    assert_record(e, "v1", &index, MT_INDEX);
    assert_int_equal(fake_tmp_count(e), 0);

    /* a schema 1 conversion's digest names its payload, not the body:
     * relayed as the upstream said it */
    request(e, &e->c1, 3, "v1", 0, OCI_MT_OCI_INDEX ",x/y");
    answer(fake_xfer_one(), &child,
           "application/vnd.docker.distribution.manifest.v1+prettyjws",
           schema1_digest);
    assert_relayed(&e->c1, 3, schema1_digest, MANIFEST,
                   "application/vnd.docker.distribution.manifest.v1"
                   "+prettyjws");
    assert_record(e, "v1", &index, MT_INDEX);

    /* a HEAD relay: the upstream's headers */
    request(e, &e->c1, 4, "v1", 1, MT_MANIFEST);
    assert_int_equal(fake_xfer_one()->head, 1);
    answer(fake_xfer_one(), &child, MT_MANIFEST, child.digest);
    assert_meta(&e->c1, 4, &child, MT_MANIFEST, 0);

    /* a 404 for this client is not a 404 for the others */
    request(e, &e->c1, 5, "v2", 0, MT_MANIFEST);
    memset(&r, 0, sizeof(r));
    r.status = 404;
    r.body = "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":"
             "\"OCI index found, but accept header does not support OCI "
             "indexes\"}]}";
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 5 404 MANIFEST_UNKNOWN OCI index found, but "
                        "accept header does not support OCI indexes\n");
    assert_no_record(e, "v2");

    request(e, &e->c1, 6, "v2", 0, "");
    assert_string_equal(fake_xfer_one()->accept, OCI_MT_ALL_MANIFESTS);
    answer(fake_xfer_one(), &index, MT_INDEX, index.digest);
    assert_meta(&e->c1, 6, &index, MT_INDEX, 0);
    assert_record(e, "v2", &index, MT_INDEX);
    assert_int_equal(fake_xfers.started, 5);
}


static void
test_media_type(void **state)
{
    static const struct {
        const char  *content_type;
        const char  *body;
        const char  *type;          /* NULL: FAIL expected */
    } cases[] = {
        /* parameters are dropped */
        { MT_MANIFEST "; charset=utf-8", MANIFEST, MT_MANIFEST },
        { MT_MANIFEST " \t;charset=utf-8", MANIFEST, MT_MANIFEST },
        /* the header wins over the body when it says something */
        { MT_INDEX, MANIFEST, MT_INDEX },
        /* generic types: the body's mediaType */
        { "application/json", MANIFEST, MT_MANIFEST },
        { "text/plain; charset=utf-8", MANIFEST, MT_MANIFEST },
        { "Application/Octet-Stream", MANIFEST, MT_MANIFEST },
        /* ... or the generic type when the body has none */
        { "application/json", UNTYPED, "application/json" },
        /* no usable header: the body's */
        { NULL, MANIFEST, MT_MANIFEST },
        { "not a media type", MANIFEST, MT_MANIFEST },
        { ";charset=utf-8", MANIFEST, MT_MANIFEST },
        /* neither */
        { NULL, "{\"schemaVersion\":2}", NULL },
        { NULL, "{\"mediaType\":\"no type\"}", NULL },
        { NULL, "{\"mediaType\":7}", NULL },
        { "bogus", "not json", NULL },
    };

    fake_env_t  *e = *state;
    doc_t        d;
    char         tag[16];
    size_t       i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* a tag per case: no record to revalidate */
        snprintf(tag, sizeof(tag), "t%zu", i);
        doc(&d, cases[i].body);
        request(e, &e->c1, 1, tag, 0, "");
        assert_int_equal(fake_xfer_one()->head, 0);
        answer(fake_xfer_one(), &d, cases[i].content_type, NULL);

        if (cases[i].type != NULL) {
            assert_meta(&e->c1, 1, &d, cases[i].type, 0);
            assert_stored(e, &d, cases[i].type);
            assert_record(e, tag, &d, cases[i].type);

        } else {
            assert_string_equal(fake_conn_take(&e->c1),
                                "FAIL 1 502 UNKNOWN manifest without media "
                                "type\n");
            assert_not_stored(e, &d);
        }
    }
}


static void
test_digest_header(void **state)
{
    fake_env_t  *e = *state;
    doc_t        d, other;

    doc(&d, MANIFEST);
    doc(&other, INDEX);

    /* the header names other bytes at both endpoints: nothing is
     * stored, the second was asked before the client was failed */
    request(e, &e->c1, 1, "v1", 0, "");
    answer(fake_xfer_one(), &d, MT_MANIFEST, other.digest);
    assert_string_equal(fake_conn_take(&e->c1), "");
    assert_true(strncmp(fake_xfer_one()->url, FAKE_EP2 "/",
                        strlen(FAKE_EP2 "/")) == 0);
    answer(fake_xfer_one(), &d, MT_MANIFEST, other.digest);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 502 UNKNOWN digest mismatch\n");
    assert_not_stored(e, &d);
    assert_no_record(e, "v1");

    /* a header that is not a sha256 digest is not checked */
    request(e, &e->c1, 2, "v1", 0, "");
    answer(fake_xfer_one(), &d, MT_MANIFEST, "sha512:abc");
    assert_meta(&e->c1, 2, &d, MT_MANIFEST, 0);
    assert_stored(e, &d, MT_MANIFEST);
}


static void
test_get_by_digest(void **state)
{
    fake_env_t  *e = *state;
    doc_t        d, other;
    char         url[256];

    doc(&d, MANIFEST);
    doc(&other, INDEX);

    request(e, &e->c1, 1, d.digest, 0, "");
    snprintf(url, sizeof(url), FAKE_EP1 "/v2/a/b/manifests/%s", d.digest);
    assert_string_equal(fake_xfer_one()->url, url);

    /* other bytes than asked for: the second endpoint is asked, and its
     * right bytes are the answer */
    answer(fake_xfer_one(), &other, MT_INDEX, NULL);
    assert_string_equal(fake_conn_take(&e->c1), "");
    snprintf(url, sizeof(url), FAKE_EP2 "/v2/a/b/manifests/%s", d.digest);
    assert_string_equal(fake_xfer_one()->url, url);
    answer(fake_xfer_one(), &d, MT_MANIFEST, NULL);
    assert_meta(&e->c1, 1, &d, MT_MANIFEST, 0);
    assert_not_stored(e, &other);
    assert_stored(e, &d, MT_MANIFEST);
    assert_true(stats_registry(e->jobs->cf->registries)->failovers == 1);

    /* by digest, no tag record is involved */
    assert_no_record(e, "v1");

    /* stored now: answered at once, GET or HEAD, whatever the accept */
    request(e, &e->c1, 3, d.digest, 0, "");
    assert_meta(&e->c1, 3, &d, MT_MANIFEST, 0);
    request(e, &e->c1, 4, d.digest, 1, MT_INDEX);
    assert_meta(&e->c1, 4, &d, MT_MANIFEST, 0);
    assert_int_equal(fake_xfers.started, 2);
}


static void
test_bad_references(void **state)
{
    fake_env_t  *e = *state;

    request(e, &e->c1, 1, "sha256:abc", 0, "");
    request(e, &e->c1, 2, "blake3:abcDEF", 0, "");
    request(e, &e->c1, 3, "-v1", 0, "");
    request(e, &e->c1, 4, ".v1", 1, "");

    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 400 DIGEST_INVALID invalid digest\n"
                        "FAIL 2 400 DIGEST_INVALID unsupported digest "
                        "algorithm\n"
                        "FAIL 3 400 MANIFEST_INVALID invalid tag\n"
                        "FAIL 4 400 MANIFEST_INVALID invalid tag\n");
    assert_int_equal(fake_xfers.started, 0);
}


/* A client HEAD by tag: an upstream HEAD, answered from its headers. */
static void
test_head_by_tag(void **state)
{
    fake_env_t  *e = *state;
    xfer_t      *x;
    doc_t        d;

    doc(&d, INDEX);
    request(e, &e->c1, 1, "v1", 1, "");

    x = fake_xfer_one();
    assert_string_equal(x->url, URL_V1);
    assert_int_equal(x->head, 1);

    answer(x, &d, MT_INDEX "; charset=utf-8", d.digest);
    assert_meta(&e->c1, 1, &d, MT_INDEX, 0);
    assert_record(e, "v1", &d, MT_INDEX);

    /* the body was not fetched */
    assert_not_stored(e, &d);
    assert_int_equal(fake_xfers.started, 1);

    /* a relayed HEAD leaves the record alone */
    doc(&d, MANIFEST);
    request(e, &e->c1, 2, "v1", 1, MT_MANIFEST);
    answer(fake_xfer_one(), &d, MT_MANIFEST, d.digest);
    assert_meta(&e->c1, 2, &d, MT_MANIFEST, 0);
    doc(&d, INDEX);
    assert_record(e, "v1", &d, MT_INDEX);
}


/* Headers that do not tell it all: GET on the same endpoint. */
static void
test_head_inconclusive(void **state)
{
    static const struct {
        const char  *type;
        int          digest;        /* send Docker-Content-Digest */
        long long    length;        /* -1: none */
    } cases[] = {
        { MT_MANIFEST, 0, -2 },
        { "application/json", 1, -2 },
        { NULL, 1, -2 },
        { MT_MANIFEST, 1, -1 },
        { MT_MANIFEST, 1, OCI_MANIFEST_MAX + 1LL },
    };

    fake_env_t    *e = *state;
    fake_reply_t   r;
    doc_t          d;
    size_t         i;

    doc(&d, MANIFEST);

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (i > 0) {
            age_record(e);
        }

        request(e, &e->c1, 1, "v1", 1, "");
        assert_int_equal(fake_xfer_one()->head, 1);

        memset(&r, 0, sizeof(r));
        r.status = 200;
        r.content_type = cases[i].type;
        r.digest = cases[i].digest ? d.digest : NULL;
        r.length_set = 1;
        r.length = cases[i].length == -2 ? (long long) d.len
                                         : cases[i].length;
        fake_xfer_reply(fake_xfer_one(), &r);

        assert_string_equal(fake_conn_take(&e->c1), "");
        assert_string_equal(fake_xfer_one()->url, URL_V1);
        assert_int_equal(fake_xfer_one()->head, 0);

        answer(fake_xfer_one(), &d, MT_MANIFEST, d.digest);
        assert_meta(&e->c1, 1, &d, MT_MANIFEST, 0);
        assert_stored(e, &d, MT_MANIFEST);
    }
}


static void
test_head_by_digest(void **state)
{
    fake_env_t  *e = *state;
    doc_t        d, other;

    doc(&d, MANIFEST);
    doc(&other, INDEX);

    request(e, &e->c1, 1, d.digest, 1, "");
    assert_int_equal(fake_xfer_one()->head, 1);
    answer(fake_xfer_one(), &d, MT_MANIFEST, d.digest);
    assert_meta(&e->c1, 1, &d, MT_MANIFEST, 0);
    assert_not_stored(e, &d);

    /* the upstream names another manifest */
    request(e, &e->c1, 2, d.digest, 1, "");
    answer(fake_xfer_one(), &d, MT_MANIFEST, other.digest);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 502 UNKNOWN upstream digest differs\n");
}


/* A stored tag is revalidated with a HEAD. */
static void
test_revalidate(void **state)
{
    fake_env_t  *e = *state;
    doc_t        d, moved;

    doc(&d, INDEX);
    doc(&moved, MANIFEST);
    seed(e, &d, MT_INDEX, 1);

    /* unchanged: the record is fresh again, no GET */
    request(e, &e->c1, 1, "v1", 0, "");
    assert_int_equal(fake_xfer_one()->head, 1);
    answer(fake_xfer_one(), &d, MT_INDEX, d.digest);
    assert_meta(&e->c1, 1, &d, MT_INDEX, 0);
    assert_record(e, "v1", &d, MT_INDEX);
    assert_int_equal(fake_xfers.started, 1);

    /* a request that raced the revalidation (its worker saw the record
     * stale): the fresh record answers, nothing is asked upstream */
    request(e, &e->c1, 3, "v1", 0, "");
    assert_meta(&e->c1, 3, &d, MT_INDEX, 0);
    request(e, &e->c1, 4, "v1", 1, "");
    assert_meta(&e->c1, 4, &d, MT_INDEX, 0);
    assert_int_equal(fake_xfers.started, 1);

    /* moved: GET the new one, store it, point the record at it */
    age_record(e);
    request(e, &e->c1, 2, "v1", 0, "");
    answer(fake_xfer_one(), &moved, MT_MANIFEST, moved.digest);
    assert_string_equal(fake_conn_take(&e->c1), "");
    assert_int_equal(fake_xfer_one()->head, 0);
    answer(fake_xfer_one(), &moved, MT_MANIFEST, moved.digest);
    assert_meta(&e->c1, 2, &moved, MT_MANIFEST, 0);
    assert_stored(e, &moved, MT_MANIFEST);
    assert_record(e, "v1", &moved, MT_MANIFEST);
}


/* A GET of a manifest whose type is stored leaves the type file alone. */
static void
test_type_written_once(void **state)
{
    fake_env_t   *e = *state;
    doc_t         d;
    char          path[OCI_PATH_MAX];
    struct stat   before, after;

    doc(&d, INDEX);
    assert_int_equal(oci_store_type_write(e->store, d.hex, MT_INDEX, 0),
                     OCI_OK);
    assert_int_equal(oci_store_type_path(e->store, d.hex, path,
                                         sizeof(path)), OCI_OK);
    assert_int_equal(stat(path, &before), 0);

    request(e, &e->c1, 1, "v1", 0, "");
    answer(fake_xfer_one(), &d, MT_INDEX, d.digest);
    assert_meta(&e->c1, 1, &d, MT_INDEX, 0);
    assert_stored(e, &d, MT_INDEX);

    /* the same inode: not replaced by a rename */
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino == after.st_ino);
}


/* The endpoints' and the negative cache's clock (milliseconds). */
static long long  test_ms;


static long long
test_clock(void)
{
    return test_ms;
}


static int
setup_clock(void **state)
{
    fake_env_setup(state);
    test_ms = 1000000;
    jobs_set_clock(((fake_env_t *) *state)->jobs, test_clock);

    return 0;
}


/* A stale record, well within stale_if_error. */
static long long
stale_time(fake_env_t *e)
{
    const oci_registry_t  *reg;

    reg = oci_config_registry(e->cf, FAKE_REG, strlen(FAKE_REG));
    assert_non_null(reg);

    return (long long) time(NULL) - reg->tag_ttl - 10;
}


/* A 429 on a revalidation serves the stored tag stale, like a 5xx, once
 * no endpoint is left; meanwhile nothing is asked upstream. */
static void
test_stale_on_429(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    doc_t          d;

    doc(&d, INDEX);
    memset(&r, 0, sizeof(r));
    r.status = 429;
    r.retry_after_set = 1;
    r.retry_after = 20;

    /* nothing stored: TOOMANYREQUESTS, after both endpoints said so */
    request(e, &e->c1, 1, "v1", 0, "");
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_xfer_one()->url, FAKE_EP2 "/v2/a/b/manifests/v1");
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 429 TOOMANYREQUESTS upstream answered 429\n");

    seed(e, &d, MT_INDEX, stale_time(e));

    /* throttled: the record answers without a request */
    request(e, &e->c1, 2, "v1", 0, "");
    assert_meta(&e->c1, 2, &d, MT_INDEX, 1);
    request(e, &e->c1, 3, "v1", 1, "");
    assert_meta(&e->c1, 3, &d, MT_INDEX, 1);
    assert_int_equal(fake_xfers.started, 2);

    /* and a digest that is not stored gets 429 at once */
    request(e, &e->c1, 4, "sha256:" HEX64_1, 0, "");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 4 429 TOOMANYREQUESTS upstream rate limit "
                        "reached, retry later\n");
    assert_int_equal(fake_xfers.started, 2);
    assert_true(stats_registry(e->jobs->cf->registries)->stale_served == 2);

    /* Retry-After has passed and probes found them: a HEAD revalidates,
     * the 429 serves stale */
    test_ms += 20 * 1000;
    fake_probes_answer(e, 200);
    request(e, &e->c1, 5, "v1", 0, "");
    assert_int_equal(fake_xfer_one()->head, 1);
    fake_xfer_reply(fake_xfer_one(), &r);
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_meta(&e->c1, 5, &d, MT_INDEX, 1);
    assert_int_equal(fake_xfers.started, 6);
}


/* Every endpoint down: a stored tag is served stale, if acceptable. */
static void
test_stale_if_error(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    doc_t          d;

    doc(&d, INDEX);

    /* nothing stored: unavailable */
    request(e, &e->c1, 1, "v1", 0, "");
    memset(&r, 0, sizeof(r));
    r.rc = CURLE_COULDNT_CONNECT;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_xfer_one()->url,
                        FAKE_EP2 "/v2/a/b/manifests/v1");
    r.rc = CURLE_OK;
    r.status = 503;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable\n");

    seed(e, &d, MT_INDEX, stale_time(e));

    request(e, &e->c1, 2, "v1", 0, "");
    r.rc = CURLE_OPERATION_TIMEDOUT;
    r.status = 0;
    fake_xfer_reply(fake_xfer_one(), &r);
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_meta(&e->c1, 2, &d, MT_INDEX, 1);

    /* the record stays as it was: still stale */
    {
        oci_tag_record_t  rec;

        assert_int_equal(oci_tag_record_read(e->store, FAKE_REG, "a/b", "v1",
                                             &rec), OCI_OK);
        assert_true(rec.fetched_at == stale_time(e)
                    || rec.fetched_at == stale_time(e) - 1);
    }

    /* a client that does not accept the stored type gets no stale one */
    request(e, &e->c1, 3, "v1", 0, MT_MANIFEST);
    fake_xfer_reply(fake_xfer_one(), &r);
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 3 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
}


/* Stale only within stale_if_error after the record went stale; and
 * also while every endpoint backs off, without asking. */
static void
test_stale_window(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    fake_reply_t            r;
    doc_t                   d;
    long long               gone;

    doc(&d, INDEX);
    reg = oci_config_registry(e->cf, FAKE_REG, strlen(FAKE_REG));
    gone = (long long) time(NULL) - reg->tag_ttl - reg->stale_if_error;

    /* the window has just passed: 503 */
    seed(e, &d, MT_INDEX, gone);
    request(e, &e->c1, 1, "v1", 0, "");
    memset(&r, 0, sizeof(r));
    r.rc = CURLE_COULDNT_CONNECT;
    fake_xfer_reply(fake_xfer_one(), &r);
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_true(stats_registry(reg)->stale_served == 0);

    /* 10 s before its end: stale */
    seed(e, &d, MT_INDEX, gone + 10);
    request(e, &e->c1, 2, "v1", 0, "");
    fake_xfer_reply(fake_xfer_one(), &r);
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_meta(&e->c1, 2, &d, MT_INDEX, 1);
    assert_true(stats_registry(reg)->stale_served == 1);

    /* the third failure of each: both back off, nobody is asked */
    request(e, &e->c1, 3, "v1", 0, "");
    fake_xfer_reply(fake_xfer_one(), &r);
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_meta(&e->c1, 3, &d, MT_INDEX, 1);
    request(e, &e->c1, 4, "v1", 0, "");
    assert_meta(&e->c1, 4, &d, MT_INDEX, 1);
    assert_int_equal(fake_xfers.started, 6);
    assert_true(stats_registry(reg)->stale_served == 3);

    /* nothing stored for another tag: 503 at once */
    request(e, &e->c1, 5, "v2", 0, "");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 5 503 UNAVAILABLE upstream registry "
                        "unavailable\n");
    assert_int_equal(fake_xfers.started, 6);
}


static void
test_coalesce(void **state)
{
    fake_env_t  *e = *state;
    doc_t        d;

    doc(&d, INDEX);

    request(e, &e->c1, 1, "v1", 0, "");
    request(e, &e->c2, 2, "v1", 0, "");
    request(e, &e->c1, 3, "v1", 0, "");
    assert_int_equal(fake_xfers.started, 1);

    /* a relay, or a HEAD, is another question */
    request(e, &e->c2, 4, "v1", 0, MT_INDEX);
    request(e, &e->c2, 5, "v1", 1, "");
    assert_int_equal(fake_xfers.started, 3);

    answer(fake_xfer_at(0), &d, MT_INDEX, d.digest);

    {
        char  want[1024];

        snprintf(want, sizeof(want), "META 1 %s %zu %s 0 -\n"
                 "META 3 %s %zu %s 0 -\n", d.digest, d.len, MT_INDEX,
                 d.digest, d.len, MT_INDEX);
        assert_string_equal(fake_conn_take(&e->c1), want);
    }

    assert_meta(&e->c2, 2, &d, MT_INDEX, 0);

    answer(fake_xfer_at(0), &d, MT_INDEX, d.digest);
    assert_relayed(&e->c2, 4, d.digest, INDEX, MT_INDEX);
    answer(fake_xfer_at(0), &d, MT_INDEX, d.digest);
    assert_meta(&e->c2, 5, &d, MT_INDEX, 0);
}


/* A stale record served to every waiter of one job counts once per
 * waiter: the metric counts answers. */
static void
test_stale_counted_per_waiter(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    doc_t          d;

    doc(&d, INDEX);
    seed(e, &d, MT_INDEX, stale_time(e));

    request(e, &e->c1, 1, "v1", 0, "");
    request(e, &e->c2, 2, "v1", 0, "");
    request(e, &e->c1, 3, "v1", 0, "");
    assert_int_equal(fake_xfers.started, 1);

    memset(&r, 0, sizeof(r));
    r.rc = CURLE_COULDNT_CONNECT;
    fake_xfer_reply(fake_xfer_one(), &r);
    fake_xfer_reply(fake_xfer_one(), &r);

    {
        char  want[1024];

        snprintf(want, sizeof(want), "META 1 %s %zu %s 1 -\n"
                 "META 3 %s %zu %s 1 -\n", d.digest, d.len, MT_INDEX,
                 d.digest, d.len, MT_INDEX);
        assert_string_equal(fake_conn_take(&e->c1), want);
    }

    assert_meta(&e->c2, 2, &d, MT_INDEX, 1);
    assert_true(stats_registry(e->jobs->cf->registries)->stale_served == 3);
}


/* Nobody waits any more: the request is dropped, nothing is stored.
 * A tag the warm lists resolve (the fetcher's own job) goes on when a
 * client that joined it leaves, and fills the cache. */
static void
test_cancel_dropped(void **state)
{
    fake_env_t             *e = *state;
    const oci_registry_t   *reg;
    doc_t                   d;
    struct stat             st;
    char                    path[OCI_PATH_MAX];

    reg = fake_registry(e, FAKE_REG);
    doc(&d, INDEX);
    request(e, &e->c1, 1, "v1", 0, "");
    assert_int_equal(fake_xfer_count(), 1);

    fake_cancel(e->jobs, &e->c1, 1);
    assert_int_equal(fake_xfer_count(), 0);
    assert_int_equal(manifest_resolving(e->jobs, reg, "a/b", "v1"), 0);
    assert_int_equal(oci_store_tag_path(e->store, FAKE_REG, "a/b", "v1", path,
                                        sizeof(path)), OCI_OK);
    assert_int_equal(stat(path, &st), -1);
    assert_string_equal(fake_conn_take(&e->c1), "");

    assert_int_equal(manifest_resolve(e->jobs, reg, "a/b", "v1"), 1);
    request(e, &e->c1, 2, "v1", 0, "");
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_CLIENT);
    fake_cancel(e->jobs, &e->c1, 2);
    assert_int_equal(fake_xfer_one()->prio, XFER_PRIO_PREFETCH);

    answer(fake_xfer_one(), &d, MT_INDEX, d.digest);
    assert_string_equal(fake_conn_take(&e->c1), "");
    assert_stored(e, &d, MT_INDEX);
    assert_record(e, "v1", &d, MT_INDEX);
}


static void
test_limits(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    char          *big;
    size_t         len;

    /* announced too large */
    request(e, &e->c1, 1, "v1", 0, "");
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = MT_MANIFEST;
    r.length_set = 1;
    r.length = OCI_MANIFEST_MAX + 1LL;
    r.body = "{}";
    fake_xfer_reply(fake_xfer_one(), &r);

    /* or turning out so */
    len = OCI_MANIFEST_MAX + 1;
    big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);

    request(e, &e->c1, 2, "v1", 0, "");
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = MT_MANIFEST;
    r.chunked = 1;
    r.body = big;
    r.body_len = len;
    r.chunk = 1024 * 1024;
    fake_xfer_reply(fake_xfer_one(), &r);

    /* exactly the limit is fine */
    memcpy(big, MANIFEST, strlen(MANIFEST));
    request(e, &e->c1, 3, "v1", 0, "");
    r.body_len = len - 1;
    fake_xfer_reply(fake_xfer_one(), &r);

    free(big);

    {
        oci_msg_t  m;

        assert_true(fake_conn_next(&e->c1, &m));
        assert_int_equal(m.type, OCI_MSG_FAIL);
        assert_int_equal(m.id, 1);
        assert_string_equal(m.message, "manifest too large");
        assert_true(fake_conn_next(&e->c1, &m));
        assert_int_equal(m.id, 2);
        assert_string_equal(m.message, "manifest too large");
        assert_true(fake_conn_next(&e->c1, &m));
        assert_int_equal(m.type, OCI_MSG_META);
        assert_int_equal(m.id, 3);
        assert_true(m.size == OCI_MANIFEST_MAX);
        assert_string_equal(m.media_type, MT_MANIFEST);
        assert_false(fake_conn_next(&e->c1, &m));
    }
}


static void
test_not_found(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;

    request(e, &e->c1, 1, "v1", 0, "");
    memset(&r, 0, sizeof(r));
    r.status = 404;
    r.body = "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":"
             "\"manifest unknown\",\"detail\":{\"Tag\":\"v1\"}}]}";
    fake_xfer_reply(fake_xfer_one(), &r);

    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 404 MANIFEST_UNKNOWN manifest unknown\n");
    assert_no_record(e, "v1");

    /* remembered for negative_ttl: GET or HEAD, no request */
    request(e, &e->c1, 2, "v1", 1, "");
    request(e, &e->c2, 3, "v1", 0, MT_MANIFEST);
    assert_int_equal(fake_xfers.started, 1);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FROM 2 negative\n"
                        "FAIL 2 404 MANIFEST_UNKNOWN manifest unknown "
                        "upstream (remembered)\n");
    assert_string_equal(fake_conn_take(&e->c2),
                        "FROM 3 negative\n"
                        "FAIL 3 404 MANIFEST_UNKNOWN manifest unknown "
                        "upstream (remembered)\n");
    assert_true(stats_registry(e->jobs->cf->registries)->negative_hits
                == 2);

    /* another reference is asked; a digest's 404 is remembered too,
     * with the upstream's code */
    request(e, &e->c1, 4, "sha256:" HEX64_1, 1, "");
    memset(&r, 0, sizeof(r));
    r.status = 404;
    r.body = "{\"errors\":[{\"code\":\"NAME_UNKNOWN\"}]}";
    fake_xfer_reply(fake_xfer_one(), &r);
    request(e, &e->c1, 5, "sha256:" HEX64_1, 0, "");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 4 404 NAME_UNKNOWN upstream answered 404\n"
                        "FROM 5 negative\n"
                        "FAIL 5 404 NAME_UNKNOWN manifest unknown upstream "
                        "(remembered)\n");
    assert_int_equal(fake_xfers.started, 2);

    /* after negative_ttl upstream is asked again */
    test_ms += OCI_DEFAULT_NEGATIVE_TTL * 1000;
    request(e, &e->c1, 6, "v1", 1, "");
    memset(&r, 0, sizeof(r));
    r.status = 404;
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 6 404 MANIFEST_UNKNOWN upstream answered "
                        "404\n");
    assert_int_equal(fake_xfers.started, 3);

    /* a 404 to a relay (an index refused to a client that takes only
     * manifests) says nothing to the others: not remembered */
    request(e, &e->c1, 7, "v3", 0, MT_MANIFEST);
    fake_xfer_reply(fake_xfer_one(), &r);
    request(e, &e->c1, 8, "v3", 0, "");
    assert_int_equal(fake_xfers.started, 5);
    fake_xfer_reply(fake_xfer_one(), &r);
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 7 404 MANIFEST_UNKNOWN upstream answered 404\n"
                        "FAIL 8 404 MANIFEST_UNKNOWN upstream answered "
                        "404\n");
}


/* A redirected answer refused at the first endpoint is asked for at the
 * second, which answers the same: nothing has reached the client yet. */
static void
redirected_again(fake_env_t *e, fake_reply_t *r, const char *target)
{
    xfer_t  *x;

    assert_string_equal(fake_conn_take(&e->c1), "");
    x = fake_xfer_one();
    assert_true(strncmp(x->url, FAKE_EP2 "/", strlen(FAKE_EP2 "/")) == 0);
    snprintf(x->effective_url, 8192, "%s", target);
    fake_xfer_reply(x, r);
}


/* A manifest by tag that a redirect target sent is stored only if it
 * parses as the type it claims and matches the digest the registry's
 * redirect named; refused, it is asked for at the next endpoint. */
static void
test_redirected_by_tag(void **state)
{
    fake_env_t    *e = *state;
    fake_reply_t   r;
    xfer_t        *x;
    doc_t          d, other, bogus;

    doc(&d, MANIFEST);
    doc(&other, INDEX);
    doc(&bogus, "{\"schemaVersion\":2,\"mediaType\":\"" MT_MANIFEST "\"}");

    /* the redirect named other bytes: not stored, no record */
    request(e, &e->c1, 1, "v1", 0, "");
    x = fake_xfer_one();
    snprintf(x->effective_url, 8192, "http://cdn.test/m?sig=1");
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.content_type = MT_MANIFEST;
    r.body = d.body;
    r.redirect_digest = other.digest;
    fake_xfer_reply(x, &r);
    redirected_again(e, &r, "http://cdn.test/m?sig=1b");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 1 502 UNKNOWN manifest from a redirect target "
                        "does not verify\n");
    assert_not_stored(e, &d);
    assert_no_record(e, "v1");

    /* not the manifest type it claims (no config, no layers) */
    request(e, &e->c1, 2, "v1", 0, "");
    x = fake_xfer_one();
    snprintf(x->effective_url, 8192, "http://cdn.test/m?sig=2");
    r.body = bogus.body;
    r.redirect_digest = NULL;
    fake_xfer_reply(x, &r);
    redirected_again(e, &r, "http://cdn.test/m?sig=2b");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 2 502 UNKNOWN manifest from a redirect target "
                        "does not verify\n");
    assert_not_stored(e, &bogus);

    /* an index claimed as an image manifest */
    request(e, &e->c1, 3, "v1", 0, "");
    x = fake_xfer_one();
    snprintf(x->effective_url, 8192, "http://cdn.test/m?sig=3");
    r.body = other.body;
    fake_xfer_reply(x, &r);
    redirected_again(e, &r, "http://cdn.test/m?sig=3b");
    assert_string_equal(fake_conn_take(&e->c1),
                        "FAIL 3 502 UNKNOWN manifest from a redirect target "
                        "does not verify\n");

    /* the right bytes, of the digest the redirect named: stored */
    request(e, &e->c1, 4, "v1", 0, "");
    x = fake_xfer_one();
    snprintf(x->effective_url, 8192, "http://cdn.test/m?sig=4");
    r.body = d.body;
    r.redirect_digest = d.digest;
    fake_xfer_reply(x, &r);
    assert_meta(&e->c1, 4, &d, MT_MANIFEST, 0);
    assert_stored(e, &d, MT_MANIFEST);
    assert_record(e, "v1", &d, MT_MANIFEST);
    assert_true(stats_registry(e->jobs->cf->registries)->digest_mismatches
                == 6);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_by_tag, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_own_answer_full_accept,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_relay, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_redirected_by_tag,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_media_type, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_digest_header, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_get_by_digest, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_bad_references, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_head_by_tag, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_head_inconclusive,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_head_by_digest, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_revalidate, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_type_written_once,
                                        fake_env_setup, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_stale_on_429, setup_clock,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_stale_if_error, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_stale_counted_per_waiter,
                                        setup_clock, fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_coalesce, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_dropped, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_limits, fake_env_setup,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_stale_window, setup_clock,
                                        fake_env_teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup_clock,
                                        fake_env_teardown),
    };

    return cmocka_run_group_tests(tests, test_curl_setup, test_curl_teardown);
}
