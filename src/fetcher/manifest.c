/*
 * Manifest jobs.  Identical requests (registry, name, reference, head,
 * accept) in flight share one job.
 *
 * The mirror's own answer (accept ""): the upstream is asked with every
 * manifest type the mirror understands, whatever the client sent, so that
 * what becomes shared state (the tag record, the stored manifest, a
 * remembered 404) never depends on who asked first.  The worker then
 * decides per client (oci_accept_serves()): a client whose Accept does not
 * name the stored type asks again with its list, for a relay.
 *
 *   by digest:  GET (verify sha256 == digest, store type then body), or
 *               for a HEAD, an upstream HEAD whose Docker-Content-Digest
 *               must be the digest asked for.
 *   by tag:     HEAD (a client HEAD, or revalidating a stored record):
 *               the digest, type and size come from the headers; without
 *               a digest header, or when the digest moved, GET.  A GET
 *               stores the manifest under sha256(body) and writes the
 *               tag record.
 *
 * A relay (accept: the client's list, by tag only) asks the upstream with
 * that list and hands its answer to the worker as it came: a GET's body
 * in a temp file of its own per waiter (META with a path), a HEAD's
 * headers, an error as FAIL.  It stores nothing and remembers nothing:
 * what a narrow client gets (a 404 for an index it does not accept, a
 * platform's manifest for a list, a schema 1 conversion) is the
 * upstream's answer to that client alone.
 *
 * If every endpoint fails (or is throttled or backing off, see
 * endpoints.h) and a record whose manifest is stored exists, it is served
 * stale (META stale=1: the worker adds a Warning), but only within the
 * registry's stale_if_error seconds after it went stale (fetched_at +
 * tag_ttl + stale_if_error > now); later the client gets the error (503,
 * or 429 while throttled).
 *
 * A manifest that came by tag from another host than the endpoint (the
 * registry redirected the GET) is stored only if it parses as the
 * manifest type it claims and matches the Docker-Content-Digest of the
 * registry's redirect, when it sent one: by tag nothing else vouches for
 * the bytes (by digest, the digest does).
 *
 * An upstream 404 to the mirror's own request is remembered for the
 * registry's negative_ttl (negative.h) and answered from memory
 * meanwhile, to every client.
 *
 * Every manifest a GET of the mirror's own brings goes to the job layer's
 * on_stored hook: prefetch (wired by dispatch.c), which may start jobs
 * for its blobs or its platforms' manifests.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "body.h"
#include "cache.h"
#include "job.h"
#include "log.h"
#include "manifest.h"
#include "stats.h"

typedef struct {
    job_t             job;                      /* first */
    char              ref[OCI_REF_MAX + 1];
    char              accept[OCI_ACCEPT_MAX + 1];   /* a relay's: the
                                                       client's list */
    int               relay;                    /* see above */
    int               client_head;
    int               is_digest;
    char              hex[OCI_SHA256_HEX_LEN + 1];  /* if is_digest */
    int               revalidate;               /* a stored record exists */
    oci_tag_record_t  rec;                      /* valid if revalidate */
    char             *body;
    size_t            len;
    size_t            cap;
} manifest_job_t;

static int manifest_headers(job_t *j, const xfer_resp_t *r);
static int manifest_body(job_t *j, const char *p, size_t n);
static int manifest_reset(job_t *j);
static int manifest_can_retry(job_t *j);
static void manifest_done(job_t *j, const xfer_resp_t *r);
static void manifest_unavailable(job_t *j);
static void manifest_cleanup(job_t *j);
static int manifest_throttled(job_t *j);

static const job_ops_t  manifest_ops = {
    "manifest",
    OCI_ERR_MANIFEST_UNKNOWN,
    manifest_headers,
    manifest_body,
    manifest_reset,
    manifest_can_retry,
    manifest_done,
    manifest_unavailable,
    NULL,               /* idle: dropped (a prefetch or warm job is
                                   detached and goes on) */
    NULL,
    manifest_cleanup,
    NULL,               /* promote: no transfers of its own */
    manifest_throttled,
    NULL,               /* retarget: keyed by registry and name */
    NULL,               /* rejected: FAIL */
    0,                  /* waiter_size: META goes to all alike */
    NULL                /* view: not a download the status page lists */
};


static void
manifest_send_meta(job_t *j, const char *digest, long long size,
    const char *type, int stale)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_META, 0);
    snprintf(m.digest, sizeof(m.digest), "%s", digest);
    m.size = size;
    snprintf(m.media_type, sizeof(m.media_type), "%s", type);
    m.stale = stale;

    job_send_all(j, &m);
}


/* The manifest hex is in the store (body and media type): 1 and the
 * size and type filled, else 0. */
static int
manifest_stored(const char *root, const char *hex, long long *size,
    char *type, size_t cap)
{
    char         path[OCI_PATH_MAX];
    struct stat  st;

    if (oci_store_blob_path(root, hex, path, sizeof(path)) != OCI_OK
        || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
    {
        return 0;
    }

    if (oci_store_type_read(root, hex, type, cap) != OCI_OK) {
        return 0;
    }

    *size = (long long) st.st_size;

    return 1;
}


static void
manifest_write_record(manifest_job_t *mj, const char *digest,
    long long size, const char *type)
{
    job_t             *j = &mj->job;
    oci_tag_record_t   rec;
    char               path[OCI_PATH_MAX];

    memset(&rec, 0, sizeof(rec));
    snprintf(rec.digest, sizeof(rec.digest), "%s", digest);
    rec.size = size;
    snprintf(rec.media_type, sizeof(rec.media_type), "%s", type);
    rec.fetched_at = (long long) time(NULL);

    if (oci_tag_record_write(j->jobs->cf->store_path, j->registry->name,
                             j->name, mj->ref, &rec,
                             j->jobs->cf->store_fsync)
        != OCI_OK)
    {
        log_error("%s: cannot write the tag record: %s", j->label,
                  strerror(errno));
        return;
    }

    if (oci_store_tag_path(j->jobs->cf->store_path, j->registry->name,
                           j->name, mj->ref, path, sizeof(path))
        == OCI_OK)
    {
        cache_added(j->jobs->cache, path);
    }
}


/* Content-Type without parameters, if it is a valid media type. */
static int
manifest_content_type(const char *v, char *out, size_t cap)
{
    size_t  len;

    len = strcspn(v, ";");

    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
        len--;
    }

    if (len == 0 || len >= cap || !oci_media_type_valid(v, len)) {
        return 0;
    }

    memcpy(out, v, len);
    out[len] = '\0';

    return 1;
}


/* Types some servers put on anything: they say nothing about a manifest,
 * so the body's own "mediaType" is preferred to them. */
static int
manifest_type_generic(const char *type)
{
    return strcasecmp(type, "application/json") == 0
           || strcasecmp(type, "text/plain") == 0
           || strcasecmp(type, "application/octet-stream") == 0;
}


/* A sha256 Docker-Content-Digest header, or 0. */
static int
manifest_header_digest(const xfer_resp_t *r)
{
    char  hex[OCI_SHA256_HEX_LEN + 1];

    return r->digest[0] != '\0'
           && oci_digest_parse(r->digest, strlen(r->digest), hex) == OCI_OK;
}


static int manifest_fresh_record(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *tag, oci_msg_t *m);


static void
manifest_key(char *key, size_t cap, const oci_registry_t *reg,
    const char *name, const char *ref, int head, const char *accept)
{
    snprintf(key, cap, "M %s %s %s %d %s", reg->name, name, ref,
             head ? 1 : 0, accept);
}


/* A new job for the key, its request on its way.  NULL on failure
 * (logged); with a waiter given, it has got FAIL. */
static job_t *
manifest_start(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *ref, const char *hex, int head, const char *accept,
    const char *key, xfer_prio_t prio, conn_t *c, uint32_t id)
{
    manifest_job_t  *mj;
    job_t           *j;
    char             type[OCI_MEDIA_TYPE_MAX + 1];
    char             rhex[OCI_SHA256_HEX_LEN + 1];
    long long        size;

    j = job_create(jobs, &manifest_ops, sizeof(manifest_job_t), reg, name,
                   ref, key);
    if (j == NULL) {
        if (c != NULL) {
            conn_send_fail(c, id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        }

        return NULL;
    }

    mj = (manifest_job_t *) j;
    snprintf(mj->ref, sizeof(mj->ref), "%s", ref);
    snprintf(mj->accept, sizeof(mj->accept), "%s", accept);
    mj->relay = accept[0] != '\0';
    mj->client_head = head != 0;
    mj->is_digest = hex != NULL;
    j->prio = prio;
    j->detached = c == NULL;

    if (hex != NULL) {
        memcpy(mj->hex, hex, sizeof(mj->hex));
    }

    if (c != NULL && job_add_waiter(j, c, id) == NULL) {
        job_finish(j);
        conn_send_fail(c, id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return NULL;
    }

    /* a tag whose record points at a stored manifest: revalidate with a
     * HEAD, and keep it for stale-if-error */
    if (hex == NULL && !mj->relay
        && oci_tag_record_read(jobs->cf->store_path, reg->name, name, ref,
                               &mj->rec) == OCI_OK
        && oci_digest_parse(mj->rec.digest, strlen(mj->rec.digest), rhex)
           == OCI_OK
        && manifest_stored(jobs->cf->store_path, rhex, &size, type,
                           sizeof(type)))
    {
        mj->revalidate = 1;
    }

    snprintf(j->path, sizeof(j->path), "/v2/%s/manifests/%s", name, ref);
    j->accept = mj->relay ? mj->accept : OCI_MT_ALL_MANIFESTS;
    j->negative_ref = mj->relay ? NULL : mj->ref;
    j->head = mj->client_head || mj->revalidate;

    job_issue(j);

    return j;
}


void
manifest_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_registry_t  *reg;
    job_t                 *j;
    char                   key[JOB_KEY_MAX];
    char                   type[OCI_MEDIA_TYPE_MAX + 1];
    char                   hex[OCI_SHA256_HEX_LEN + 1];
    long long              size;
    const char            *accept;
    oci_msg_t              r;
    oci_errcode_t          code;
    int                    is_digest, rc;

    reg = job_check_request(jobs, c, m);
    if (reg == NULL) {
        return;
    }

    is_digest = oci_ref_is_digest(m->reference, strlen(m->reference));

    if (is_digest) {
        rc = oci_digest_parse(m->reference, strlen(m->reference), hex);
        if (rc != OCI_OK) {
            conn_send_fail(c, m->id, 400, OCI_ERR_DIGEST_INVALID,
                       rc == OCI_ENOTSUP ? "unsupported digest algorithm"
                                         : "invalid digest");
            return;
        }

        if (manifest_stored(jobs->cf->store_path, hex, &size, type,
                            sizeof(type)))
        {
            oci_msg_init(&r, OCI_MSG_META, m->id);
            snprintf(r.digest, sizeof(r.digest), "%s", m->reference);
            r.size = size;
            snprintf(r.media_type, sizeof(r.media_type), "%s", type);
            conn_send(c, &r);
            return;
        }

    } else if (!oci_tag_valid(m->reference, strlen(m->reference))) {
        conn_send_fail(c, m->id, 400, OCI_ERR_MANIFEST_INVALID, "invalid tag");
        return;
    }

    if (negative_find(jobs->negative, reg, m->name, m->reference, &code)) {
        log_debug("manifest %s/%s:%s: upstream 404 remembered", reg->name,
                  m->name, m->reference);
        stats_registry(reg)->negative_hits++;
        oci_msg_from(&r, m->id, OCI_FROM_NEGATIVE);
        conn_send(c, &r);
        conn_send_fail(c, m->id, oci_err_status(code), code,
                   "manifest unknown upstream (remembered)");
        return;
    }

    /* by digest the bytes are the client's choice: the stored ones,
     * whatever its Accept */
    accept = is_digest ? "" : m->accept;

    manifest_key(key, sizeof(key), reg, m->name, m->reference, m->head,
                 accept);

    j = job_find(jobs, key);

    if (j != NULL) {
        if (job_add_waiter(j, c, m->id) == NULL) {
            conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
            return;
        }

        job_promote(j);
        return;
    }

    /* the worker found the tag's record stale, but a revalidation may
     * have ended since it looked: a record fresh now is the answer, not
     * one more upstream request per request that raced it */
    if (!is_digest && accept[0] == '\0'
        && manifest_fresh_record(jobs, reg, m->name, m->reference, &r))
    {
        r.id = m->id;
        conn_send(c, &r);
        return;
    }

    if (jobs_admit_job(jobs, c, m->id) != 0) {
        return;
    }

    manifest_start(jobs, reg, m->name, m->reference,
                   is_digest ? hex : NULL, m->head, accept, key,
                   XFER_PRIO_CLIENT, c, m->id);
}


/* The tag's record is younger than tag_ttl and its manifest stored: 1
 * and the META a revalidation would send filled, else 0. */
static int
manifest_fresh_record(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *tag, oci_msg_t *m)
{
    oci_tag_record_t  rec;
    char              hex[OCI_SHA256_HEX_LEN + 1];
    char              type[OCI_MEDIA_TYPE_MAX + 1];
    long long         size;

    if (oci_tag_record_read(jobs->cf->store_path, reg->name, name, tag,
                            &rec)
        != OCI_OK
        || (long long) time(NULL) - rec.fetched_at >= reg->tag_ttl
        || oci_digest_parse(rec.digest, strlen(rec.digest), hex) != OCI_OK
        || !manifest_stored(jobs->cf->store_path, hex, &size, type,
                            sizeof(type)))
    {
        return 0;
    }

    oci_msg_init(m, OCI_MSG_META, 0);
    snprintf(m->digest, sizeof(m->digest), "%s", rec.digest);
    m->size = size;
    snprintf(m->media_type, sizeof(m->media_type), "%s", type);

    return 1;
}


int
manifest_present(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *digest)
{
    char       key[JOB_KEY_MAX];
    char       type[OCI_MEDIA_TYPE_MAX + 1];
    char       hex[OCI_SHA256_HEX_LEN + 1];
    long long  size;

    if (oci_digest_parse(digest, strlen(digest), hex) != OCI_OK) {
        return 1;
    }

    manifest_key(key, sizeof(key), reg, name, digest, 0, "");

    return manifest_stored(jobs->cf->store_path, hex, &size, type,
                           sizeof(type))
           || job_find(jobs, key) != NULL;
}


int
manifest_prefetch(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *digest)
{
    char  key[JOB_KEY_MAX];
    char  hex[OCI_SHA256_HEX_LEN + 1];

    if (manifest_present(jobs, reg, name, digest)
        || oci_digest_parse(digest, strlen(digest), hex) != OCI_OK)
    {
        return 0;
    }

    /* the key of a client GET by digest without an Accept header */
    manifest_key(key, sizeof(key), reg, name, digest, 0, "");

    return manifest_start(jobs, reg, name, digest, hex, 0, "", key,
                          XFER_PRIO_PREFETCH, NULL, 0)
           != NULL ? 1 : -1;
}


int
manifest_resolve(jobs_t *jobs, const oci_registry_t *reg, const char *name,
    const char *tag)
{
    char  key[JOB_KEY_MAX];

    if (!oci_tag_valid(tag, strlen(tag))) {
        log_error("manifest %s/%s:%s: invalid tag", reg->name, name, tag);
        return -1;
    }

    /* the key of a client GET by tag without an Accept header */
    manifest_key(key, sizeof(key), reg, name, tag, 0, "");

    if (job_find(jobs, key) != NULL) {
        return 0;
    }

    return manifest_start(jobs, reg, name, tag, NULL, 0, "", key,
                          XFER_PRIO_PREFETCH, NULL, 0)
           != NULL ? 1 : -1;
}


int
manifest_resolving(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *tag)
{
    char  key[JOB_KEY_MAX];

    manifest_key(key, sizeof(key), reg, name, tag, 0, "");

    return job_find(jobs, key) != NULL;
}


int
manifest_in_flight(jobs_t *jobs, const oci_registry_t *reg,
    const char *name, const char *digest)
{
    char  key[JOB_KEY_MAX];

    manifest_key(key, sizeof(key), reg, name, digest, 0, "");

    return job_find(jobs, key) != NULL;
}


static int
manifest_reset(job_t *j)
{
    ((manifest_job_t *) j)->len = 0;
    return 0;
}


static int
manifest_can_retry(job_t *j)
{
    return 1;
}


static int
manifest_headers(job_t *j, const xfer_resp_t *r)
{
    if (!j->head && r->content_length > OCI_MANIFEST_MAX) {
        log_error("%s: %lld bytes is over the limit", j->label,
                  r->content_length);
        return job_abort(j, 502, OCI_ERR_UPSTREAM, "manifest too large");
    }

    return 0;
}


static int
manifest_body(job_t *j, const char *p, size_t n)
{
    manifest_job_t  *mj = (manifest_job_t *) j;
    char            *body;
    size_t           cap;

    if (n > OCI_MANIFEST_MAX - mj->len) {
        log_error("%s: body over the limit", j->label);
        return job_abort(j, 502, OCI_ERR_UPSTREAM, "manifest too large");
    }

    if (mj->len + n > mj->cap) {
        cap = mj->cap ? mj->cap : 16384;
        while (cap < mj->len + n) {
            cap *= 2;
        }

        body = realloc(mj->body, cap);
        if (body == NULL) {
            return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        }

        mj->body = body;
        mj->cap = cap;
    }

    memcpy(mj->body + mj->len, p, n);
    mj->len += n;

    return 0;
}


/* Switch from HEAD to GET on the endpoint that answered. */
static void
manifest_get(job_t *j)
{
    j->head = 0;
    job_issue(j);
}


/*
 * The manifest of the record under revalidation, stored when the job
 * began, may have been evicted while the HEAD was out (a slow endpoint,
 * a failover): a META naming a file that is gone fails every waiter.
 * 1 if it is still there, and then marked used, so that eviction leaves
 * it to the workers for CACHE_GRACE; 0 if the GET must fetch it again.
 */
static int
manifest_still_stored(manifest_job_t *mj)
{
    job_t      *j = &mj->job;
    char        hex[OCI_SHA256_HEX_LEN + 1];
    char        path[OCI_PATH_MAX];
    char        type[OCI_MEDIA_TYPE_MAX + 1];
    long long   size;

    if (oci_digest_parse(mj->rec.digest, strlen(mj->rec.digest), hex)
        != OCI_OK
        || !manifest_stored(j->jobs->cf->store_path, hex, &size, type,
                            sizeof(type))
        || oci_store_blob_path(j->jobs->cf->store_path, hex, path,
                               sizeof(path)) != OCI_OK)
    {
        return 0;
    }

    cache_used(j->jobs->cache, path);

    return 1;
}


static void
manifest_head_done(manifest_job_t *mj, const xfer_resp_t *r)
{
    job_t  *j = &mj->job;
    char    type[OCI_MEDIA_TYPE_MAX + 1];

    if (!manifest_header_digest(r)
        || !manifest_content_type(r->content_type, type, sizeof(type))
        || manifest_type_generic(type)
        || r->content_length < 0 || r->content_length > OCI_MANIFEST_MAX)
    {
        /* the headers do not tell it all: the body will */
        log_debug("%s: HEAD is not conclusive, GET", j->label);
        manifest_get(j);
        return;
    }

    if (mj->is_digest) {
        if (strcmp(r->digest, mj->ref) != 0) {
            log_error("%s: upstream HEAD names %s", j->label, r->digest);
            job_fail(j, 502, OCI_ERR_UPSTREAM, "upstream digest differs");
            return;
        }

        manifest_send_meta(j, r->digest, r->content_length, type, 0);
        job_finish(j);
        return;
    }

    if (mj->revalidate && !mj->client_head) {
        if (strcmp(r->digest, mj->rec.digest) != 0) {
            log_info("%s: moved from %s to %s", j->label, mj->rec.digest,
                     r->digest);
            manifest_get(j);
            return;
        }

        if (!manifest_still_stored(mj)) {
            log_info("%s: %s left the store during the HEAD, GET",
                     j->label, mj->rec.digest);
            manifest_get(j);
            return;
        }

        /* unchanged: the record is fresh again */
        manifest_write_record(mj, mj->rec.digest, mj->rec.size,
                              mj->rec.media_type);
        manifest_send_meta(j, mj->rec.digest, mj->rec.size,
                           mj->rec.media_type, 0);
        job_finish(j);
        return;
    }

    /* a client HEAD by tag: answered from the headers; the worker checks
     * that the body is stored before it serves a GET from this record */
    if (!mj->relay) {
        manifest_write_record(mj, r->digest, r->content_length, type);
    }

    manifest_send_meta(j, r->digest, r->content_length, type, 0);
    job_finish(j);
}


/* The media type from the body's "mediaType", if valid. */
static int
manifest_body_type(manifest_job_t *mj, char *out, size_t cap)
{
    json_t      *root;
    const char  *s;
    int          ok;

    root = json_loadb(mj->body != NULL ? mj->body : "", mj->len, 0, NULL);
    if (root == NULL) {
        return 0;
    }

    ok = 0;
    s = json_string_value(json_object_get(root, "mediaType"));

    if (s != NULL && strlen(s) < cap && oci_media_type_valid(s, strlen(s))) {
        snprintf(out, cap, "%s", s);
        ok = 1;
    }

    json_decref(root);

    return ok;
}


/* Write the media type, then the body: the type exists before the
 * manifest becomes visible.  0 or -1 (logged). */
static int
manifest_store(manifest_job_t *mj, const char *hex, const char *type)
{
    job_t       *j = &mj->job;
    const char  *root = j->jobs->cf->store_path;
    char         tmp[OCI_PATH_MAX];
    char         stored[OCI_MEDIA_TYPE_MAX + 1];
    int          fd, rc;

    /* every GET by tag brings the same bytes again: the type is written
     * only when it is missing (or upstream now names another one) */
    if ((oci_store_type_read(root, hex, stored, sizeof(stored)) != OCI_OK
         || strcmp(stored, type) != 0)
        && oci_store_type_write(root, hex, type, j->jobs->cf->store_fsync)
           != OCI_OK)
    {
        log_error("%s: cannot write the media type of sha256:%s: %s",
                  j->label, hex, strerror(errno));
        return -1;
    }

    fd = oci_store_tmp_create(root, tmp, sizeof(tmp));
    if (fd < 0) {
        log_error("cannot create a temp file in \"%s/tmp\": %s", root,
                  strerror(errno));
        return -1;
    }

    /* a full disk: room made by the cache manager, and once more */
    if (oci_write_all(fd, mj->body, mj->len, 0) != 0
        && (errno != ENOSPC
            || cache_free_now(j->jobs->cache, (long long) mj->len) == 0
            || oci_write_all(fd, mj->body, mj->len, 0) != 0))
    {
        log_error("write(\"%s\") failed: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }

    rc = oci_store_commit(root, tmp, fd, hex, j->jobs->cf->store_fsync);
    close(fd);

    if (rc != OCI_OK) {
        log_error("cannot commit \"%s\" to the store: %s", tmp,
                  strerror(errno));
        unlink(tmp);
        return -1;
    }

    if (oci_store_blob_path(root, hex, tmp, sizeof(tmp)) == OCI_OK) {
        cache_added(j->jobs->cache, tmp);
    }

    return 0;
}


/* The body parses as a manifest of type: a JSON object of schema 2 whose
 * mediaType, if any, is type, with "manifests" (an index or list) or
 * "config" and "layers" (an image manifest).  1 if it does. */
static int
manifest_parses_as(manifest_job_t *mj, const char *type)
{
    json_t      *root;
    const char  *mt;
    int          ok, is_index, is_image;

    is_index = strcmp(type, OCI_MT_OCI_INDEX) == 0
               || strcmp(type, OCI_MT_DOCKER_LIST) == 0;
    is_image = strcmp(type, OCI_MT_OCI_MANIFEST) == 0
               || strcmp(type, OCI_MT_DOCKER_MANIFEST) == 0;

    if (!is_index && !is_image) {
        return 0;
    }

    root = json_loadb(mj->body != NULL ? mj->body : "", mj->len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return 0;
    }

    mt = json_string_value(json_object_get(root, "mediaType"));

    ok = json_integer_value(json_object_get(root, "schemaVersion")) == 2
         && (json_object_get(root, "mediaType") == NULL
             || (mt != NULL && strcmp(mt, type) == 0))
         && (is_index
             ? json_is_array(json_object_get(root, "manifests"))
             : json_is_object(json_object_get(root, "config"))
               && json_is_array(json_object_get(root, "layers")));

    json_decref(root);

    return ok;
}


/* A manifest by tag that a redirect target sent (see above): 0 if it may
 * be stored, -1 if not (logged). */
static int
manifest_redirect_check(manifest_job_t *mj, const xfer_resp_t *r,
    const char *digest, const char *type)
{
    job_t  *j = &mj->job;
    char    hex[OCI_SHA256_HEX_LEN + 1];

    if (!manifest_parses_as(mj, type)) {
        log_error("%s: the redirect target sent no %s; not stored",
                  j->label, type);
        return -1;
    }

    if (r->redirect_digest[0] != '\0'
        && oci_digest_parse(r->redirect_digest, strlen(r->redirect_digest),
                            hex) == OCI_OK
        && strcmp(r->redirect_digest, digest) != 0)
    {
        log_error("%s: the registry's redirect named %s, its target sent "
                  "%s; not stored", j->label, r->redirect_digest, digest);
        return -1;
    }

    return 0;
}


/* A relay's GET answer, to each waiter as the upstream gave it: the body
 * in a temp file of its own (the worker unlinks it once open), or for a
 * client HEAD (whose upstream HEAD did not tell it all) the headers. */
static void
manifest_relay(manifest_job_t *mj, const char *digest, const char *type)
{
    job_t     *j = &mj->job;
    queue_t   *q;
    waiter_t  *w;
    oci_msg_t  m;

    for (q = queue_head(&j->waiters); q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        w = queue_data(q, waiter_t, job_link);

        oci_msg_init(&m, OCI_MSG_META, w->id);
        snprintf(m.digest, sizeof(m.digest), "%s", digest);
        m.size = (long long) mj->len;
        snprintf(m.media_type, sizeof(m.media_type), "%s", type);

        if (mj->client_head) {
            waiter_send(w, &m);

        } else {
            body_send(j->jobs->cf, w->conn, &m,
                      mj->body != NULL ? mj->body : "", mj->len);
        }
    }

    job_finish(j);
}


/* A body that does not verify is counted and never stored; another
 * endpoint may well have the right one (what a client asked is the same
 * there), so it is asked before the waiters are failed. */
static void
manifest_mismatch(job_t *j, const char *why)
{
    stats_registry(j->registry)->digest_mismatches++;

    if (!job_failover(j, why)) {
        job_fail(j, 502, OCI_ERR_UPSTREAM, why);
    }
}


static void
manifest_get_done(manifest_job_t *mj, const xfer_resp_t *r)
{
    job_t          *j = &mj->job;
    unsigned char   md[EVP_MAX_MD_SIZE];
    unsigned int    mdlen;
    char            hex[OCI_SHA256_HEX_LEN + 1];
    char            digest[OCI_DIGEST_MAX + 1];
    char            type[OCI_MEDIA_TYPE_MAX + 1];

    mdlen = 0;
    if (EVP_Digest(mj->body != NULL ? mj->body : "", mj->len, md, &mdlen,
                   EVP_sha256(), NULL) != 1
        || mdlen != OCI_SHA256_HEX_LEN / 2)
    {
        log_error("EVP_Digest() failed");
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "hashing failed");
        return;
    }

    oci_sha256_hex(md, hex);

    snprintf(digest, sizeof(digest), "sha256:%s", hex);

    if (mj->is_digest && strcmp(hex, mj->hex) != 0) {
        log_error("%s: digest mismatch, upstream sent %s; not stored",
                  j->label, digest);
        manifest_mismatch(j, "digest mismatch");
        return;
    }

    if (manifest_content_type(r->content_type, type, sizeof(type))) {
        if (manifest_type_generic(type)) {
            manifest_body_type(mj, type, sizeof(type));
        }

    } else if (!manifest_body_type(mj, type, sizeof(type))) {
        log_error("%s: no media type", j->label);
        job_fail(j, 502, OCI_ERR_UPSTREAM, "manifest without media type");
        return;
    }

    if (mj->relay) {
        /* the client's own answer, digest header and all (a schema 1
         * conversion's names its payload, not the body) */
        manifest_relay(mj, manifest_header_digest(r) ? r->digest : digest,
                       type);
        return;
    }

    if (manifest_header_digest(r) && strcmp(r->digest, digest) != 0) {
        log_error("%s: Docker-Content-Digest %s but the body is %s; "
                  "not stored", j->label, r->digest, digest);
        manifest_mismatch(j, "digest mismatch");
        return;
    }

    if (!mj->is_digest && r->redirected
        && manifest_redirect_check(mj, r, digest, type) != 0)
    {
        manifest_mismatch(j, "manifest from a redirect target does not "
                          "verify");
        return;
    }

    if (manifest_store(mj, hex, type) != 0) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
        return;
    }

    stats_registry(j->registry)->manifests_fetched++;

    if (!mj->is_digest) {
        manifest_write_record(mj, digest, (long long) mj->len, type);
    }

    manifest_send_meta(j, digest, (long long) mj->len, type, 0);

    if (j->jobs->on_stored != NULL) {
        j->jobs->on_stored(j->jobs, j->registry, j->name, digest, type,
                             mj->body != NULL ? mj->body : "", mj->len);
    }

    job_finish(j);
}


static void
manifest_done(job_t *j, const xfer_resp_t *r)
{
    manifest_job_t  *mj = (manifest_job_t *) j;

    if (j->head) {
        manifest_head_done(mj, r);

    } else {
        manifest_get_done(mj, r);
    }
}


/* The stored record, if there is one, answers instead of upstream
 * (stale-if-error); the worker decides whether it serves each client.
 * 1 if it did (the job is finished). */
static int
manifest_serve_stale(job_t *j, const char *why)
{
    manifest_job_t  *mj = (manifest_job_t *) j;
    long long        until;
    queue_t         *q;

    if (!mj->revalidate) {
        return 0;
    }

    until = mj->rec.fetched_at + j->registry->tag_ttl
            + j->registry->stale_if_error;

    if ((long long) time(NULL) >= until) {
        log_warn("%s: upstream %s, the stored %s is past stale_if_error",
                 j->label, why, mj->rec.digest);
        return 0;
    }

    /* one stale answer per waiter */
    for (q = queue_head(&j->waiters); q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        stats_registry(j->registry)->stale_served++;
    }

    log_warn("%s: upstream %s, serving stale %s", j->label, why,
             mj->rec.digest);
    manifest_send_meta(j, mj->rec.digest, mj->rec.size, mj->rec.media_type,
                       1);
    job_finish(j);

    return 1;
}


/* A 429 is an upstream failure like a 5xx: a stored tag still serves. */
static int
manifest_throttled(job_t *j)
{
    return manifest_serve_stale(j, "throttles (429)");
}


/* Every endpoint failed: serve the stored record if there is one
 * (stale-if-error). */
static void
manifest_unavailable(job_t *j)
{
    if (manifest_serve_stale(j, "unavailable")) {
        return;
    }

    log_error("%s: upstream unavailable", j->label);
    job_fail(j, 503, OCI_ERR_UNAVAILABLE, job_unavailable_message(j));
}


static void
manifest_cleanup(job_t *j)
{
    free(((manifest_job_t *) j)->body);
}
