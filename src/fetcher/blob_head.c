/*
 * HEAD of a blob that is not stored (STAT).  A client that only asks
 * whether a blob exists, and how big it is, gets the upstream's answer
 * to the same HEAD: nothing is downloaded and nothing is stored, so a
 * loop of HEADs over big public images costs requests, never disk.  A
 * stored blob is answered from the store (the worker found none, but it
 * may have landed since).
 *
 * One job per registry, name and digest: unlike a download, the answer
 * is the upstream's word for that repository (a 404 there is no 404
 * elsewhere), so there is nothing to share across repositories.  The
 * upstream must give a Content-Length, and a Docker-Content-Digest, if
 * it sends one, must be the digest asked for: the client would otherwise
 * be told a size for another blob.
 */

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "blob_head.h"
#include "job.h"
#include "log.h"

typedef struct {
    job_t         job;                          /* first */
    char          digest[OCI_DIGEST_MAX + 1];
    long long     size;                         /* -1 until the headers */
} blob_head_job_t;

static int blob_head_headers(job_t *j, const xfer_resp_t *r);
static int blob_head_body(job_t *j, const char *p, size_t n);
static int blob_head_reset(job_t *j);
static int blob_head_can_retry(job_t *j);
static void blob_head_done(job_t *j, const xfer_resp_t *r);

static const job_ops_t  blob_head_ops = {
    "blob_head",
    OCI_ERR_BLOB_UNKNOWN,
    blob_head_headers,
    blob_head_body,
    blob_head_reset,
    blob_head_can_retry,
    blob_head_done,
    NULL,               /* unavailable: FAIL 503 */
    NULL,               /* idle: dropped */
    NULL,               /* flush: nothing to report before the end */
    NULL,               /* cleanup: it holds nothing */
    NULL,               /* promote: no transfers of its own */
    NULL,               /* throttled: FAIL 429 */
    NULL,               /* retarget: each waiter asked this way */
    NULL,               /* rejected: FAIL */
    0,
    NULL                /* view: not a download the status page lists */
};


static void
blob_head_send(conn_t *c, uint32_t id, const char *digest, long long size)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_META, id);
    snprintf(m.digest, sizeof(m.digest), "%s", digest);
    m.size = size;
    snprintf(m.media_type, sizeof(m.media_type), "%s", BLOB_HEAD_TYPE);
    conn_send(c, &m);
}


void
blob_head_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_registry_t  *reg;
    blob_head_job_t       *h;
    job_t                 *j;
    struct stat            st;
    char                   hex[OCI_SHA256_HEX_LEN + 1];
    char                   path[OCI_PATH_MAX];
    char                   key[JOB_KEY_MAX];
    int                    rc;

    reg = job_check_request(jobs, c, m);
    if (reg == NULL) {
        return;
    }

    rc = oci_digest_parse(m->reference, strlen(m->reference), hex);
    if (rc != OCI_OK) {
        conn_send_fail(c, m->id, 400, OCI_ERR_DIGEST_INVALID,
                       rc == OCI_ENOTSUP ? "unsupported digest algorithm"
                                         : "invalid digest");
        return;
    }

    if (oci_store_blob_path(jobs->cf->store_path, hex, path, sizeof(path))
        == OCI_OK
        && stat(path, &st) == 0 && S_ISREG(st.st_mode))
    {
        blob_head_send(c, m->id, m->reference, (long long) st.st_size);
        return;
    }

    snprintf(key, sizeof(key), "H %s %s %s", reg->name, m->name,
             m->reference);

    j = job_find(jobs, key);

    if (j != NULL) {
        if (job_add_waiter(j, c, m->id) == NULL) {
            conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE,
                           "out of memory");
        }

        return;
    }

    if (jobs_admit_job(jobs, c, m->id) != 0) {
        return;
    }

    j = job_create(jobs, &blob_head_ops, sizeof(blob_head_job_t), reg,
                   m->name, m->reference, key);
    if (j == NULL) {
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    h = (blob_head_job_t *) j;
    snprintf(h->digest, sizeof(h->digest), "%s", m->reference);
    h->size = -1;

    if (job_add_waiter(j, c, m->id) == NULL) {
        job_finish(j);
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    snprintf(j->path, sizeof(j->path), "/v2/%s/blobs/%s", m->name,
             m->reference);
    j->head = 1;

    job_issue(j);
}


static int
blob_head_headers(job_t *j, const xfer_resp_t *r)
{
    blob_head_job_t  *h = (blob_head_job_t *) j;

    if (r->content_length < 0) {
        log_error("%s: upstream answered HEAD without a Content-Length",
                  j->label);
        return job_abort(j, 502, OCI_ERR_UPSTREAM,
                         "upstream gave no blob size");
    }

    if (r->digest[0] != '\0' && strcmp(r->digest, h->digest) != 0) {
        log_error("%s: upstream answered HEAD for %s", j->label, r->digest);
        return job_abort(j, 502, OCI_ERR_UPSTREAM,
                         "upstream named another digest");
    }

    h->size = r->content_length;

    return 0;
}


/* A HEAD has no body; a server that sends one anyway is not listened
 * to. */
static int
blob_head_body(job_t *j, const char *p, size_t n)
{
    return 0;
}


static int
blob_head_reset(job_t *j)
{
    ((blob_head_job_t *) j)->size = -1;

    return 0;
}


static int
blob_head_can_retry(job_t *j)
{
    return 1;
}


static void
blob_head_done(job_t *j, const xfer_resp_t *r)
{
    blob_head_job_t  *h = (blob_head_job_t *) j;
    queue_t          *q;
    waiter_t         *w;

    if (h->size < 0) {
        job_fail(j, 502, OCI_ERR_UPSTREAM, "upstream gave no blob size");
        return;
    }

    log_debug("%s: upstream HEAD says %lld bytes", j->label, h->size);

    for (q = queue_head(&j->waiters);
         q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        w = queue_data(q, waiter_t, job_link);
        blob_head_send(w->conn, w->id, h->digest, h->size);
    }

    job_finish(j);
}

