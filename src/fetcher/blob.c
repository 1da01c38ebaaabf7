/*
 * Blob jobs: one upstream GET per digest, written to a temp file as it
 * arrives and hashed on the way, committed to the store only when the
 * size and sha256 match.  Waiters get SIZE (the temp file to stream from)
 * as soon as the upstream sent a Content-Length, PROGRESS once per loop
 * iteration, and DONE after the commit.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "oci_ref.h"
#include "oci_store.h"
#include "job.h"
#include "log.h"

typedef struct {
    job_t         job;                          /* first */
    char          hex[OCI_SHA256_HEX_LEN + 1];
    int           fd;
    char          tmp[OCI_PATH_MAX];
    EVP_MD_CTX   *md;
    long long     size;                         /* -1 until known */
    long long     written;
    int           size_sent;                    /* waiters stream tmp */
    int           committed;
} blob_job_t;

static int blob_headers(job_t *j, const xfer_resp_t *r);
static int blob_body(job_t *j, const char *p, size_t n);
static int blob_reset(job_t *j);
static int blob_can_retry(job_t *j);
static void blob_done(job_t *j, const xfer_resp_t *r);
static void blob_flush(job_t *j);
static void blob_cleanup(job_t *j);

static const job_ops_t  blob_ops = {
    "blob",
    OCI_ERR_BLOB_UNKNOWN,
    blob_headers,
    blob_body,
    blob_reset,
    blob_can_retry,
    blob_done,
    NULL,               /* unavailable: FAIL 503 */
    NULL,               /* idle: the download goes on to fill the cache */
    blob_flush,
    blob_cleanup
};


static void
blob_send_size(blob_job_t *b, waiter_t *w, const char *path)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_SIZE, 0);
    m.size = b->size;
    snprintf(m.path, sizeof(m.path), "%s", path);

    w->sent_size = 1;
    waiter_send(w, &m);
}


static void
blob_send_progress(blob_job_t *b, waiter_t *w)
{
    oci_msg_t  m;

    if (!w->sent_size || w->sent_bytes == b->written) {
        return;
    }

    oci_msg_init(&m, OCI_MSG_PROGRESS, 0);
    m.bytes = b->written;

    w->sent_bytes = b->written;
    waiter_send(w, &m);
}


void
blob_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_registry_t  *reg;
    blob_job_t            *b;
    job_t                 *j;
    waiter_t              *w;
    char                   hex[OCI_SHA256_HEX_LEN + 1];
    char                   path[OCI_PATH_MAX];
    char                   key[OCI_DIGEST_MAX + 8];
    struct stat            st;
    oci_msg_t              r;
    int                    rc;

    reg = job_check_request(jobs, c, m);
    if (reg == NULL) {
        return;
    }

    rc = oci_digest_parse(m->reference, strlen(m->reference), hex);
    if (rc != OCI_OK) {
        reply_fail(c, m->id, 400, OCI_ERR_DIGEST_INVALID,
                   rc == OCI_ENOTSUP ? "unsupported digest algorithm"
                                     : "invalid digest");
        return;
    }

    if (oci_store_blob_path(jobs->cf->store_path, hex, path, sizeof(path))
        != OCI_OK)
    {
        reply_fail(c, m->id, 500, OCI_ERR_UNAVAILABLE, "store path too long");
        return;
    }

    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        oci_msg_init(&r, OCI_MSG_SIZE, m->id);
        r.size = (long long) st.st_size;
        snprintf(r.path, sizeof(r.path), "%s", path);
        conn_send(c, &r);

        oci_msg_init(&r, OCI_MSG_DONE, m->id);
        conn_send(c, &r);
        return;
    }

    /* one download per digest, whichever registry or name asks */
    snprintf(key, sizeof(key), "B %s", m->reference);

    j = job_find(jobs, key);

    if (j != NULL) {
        b = (blob_job_t *) j;

        w = job_add_waiter(j, c, m->id);
        if (w == NULL) {
            reply_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
            return;
        }

        if (b->size_sent) {
            blob_send_size(b, w, b->tmp);
            blob_send_progress(b, w);
        }

        return;
    }

    j = job_create(jobs, &blob_ops, sizeof(blob_job_t), reg, m->name,
                   m->reference, key);
    if (j == NULL) {
        reply_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    b = (blob_job_t *) j;
    b->fd = -1;
    b->size = -1;
    memcpy(b->hex, hex, sizeof(b->hex));

    if (job_add_waiter(j, c, m->id) == NULL) {
        job_finish(j);
        reply_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    b->md = EVP_MD_CTX_new();
    if (b->md == NULL) {
        log_error("EVP_MD_CTX_new() failed");
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    b->fd = oci_store_tmp_create(jobs->cf->store_path, b->tmp,
                                 sizeof(b->tmp));
    if (b->fd < 0) {
        log_error("cannot create a temp file in \"%s/tmp\": %s",
                  jobs->cf->store_path, strerror(errno));
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store not writable");
        return;
    }

    snprintf(j->path, sizeof(j->path), "/v2/%s/blobs/%s", m->name,
             m->reference);
    j->head = 0;
    j->accept = NULL;

    job_issue(j);
}


static int
blob_reset(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;

    if (ftruncate(b->fd, 0) != 0) {
        log_error("ftruncate(\"%s\") failed: %s", b->tmp, strerror(errno));
        return -1;
    }

    if (EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1) {
        log_error("EVP_DigestInit_ex() failed");
        return -1;
    }

    b->written = 0;
    b->size = -1;

    return 0;
}


/* Once waiters stream the temp file, it cannot start over elsewhere. */
static int
blob_can_retry(job_t *j)
{
    return !((blob_job_t *) j)->size_sent;
}


static int
blob_headers(job_t *j, const xfer_resp_t *r)
{
    blob_job_t  *b = (blob_job_t *) j;
    queue_t     *q;

    if (r->status != 200) {
        log_error("%s: upstream answered %ld to a plain GET", j->label,
                  r->status);
        return job_abort(j, 502, OCI_ERR_UPSTREAM,
                         "unexpected upstream status");
    }

    if (r->content_length < 0) {
        /* the size is known only at the end: waiters get SIZE then */
        return 0;
    }

    b->size = r->content_length;
    b->size_sent = 1;

    for (q = queue_head(&j->waiters);
         q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        blob_send_size(b, queue_data(q, waiter_t, job_link), b->tmp);
    }

    return 0;
}


static int
blob_body(job_t *j, const char *p, size_t n)
{
    blob_job_t  *b = (blob_job_t *) j;
    ssize_t      w;
    size_t       done;

    if (b->size >= 0 && b->written + (long long) n > b->size) {
        return job_abort(j, 502, OCI_ERR_UPSTREAM,
                         "upstream sent more than its Content-Length");
    }

    for (done = 0; done < n; done += (size_t) w) {
        w = pwrite(b->fd, p + done, n - done,
                   (off_t) (b->written + (long long) done));

        if (w < 0) {
            if (errno == EINTR) {
                w = 0;
                continue;
            }

            log_error("write(\"%s\") failed: %s", b->tmp, strerror(errno));
            return job_abort(j, 503, OCI_ERR_UNAVAILABLE,
                             "store write failed");
        }
    }

    if (EVP_DigestUpdate(b->md, p, n) != 1) {
        log_error("EVP_DigestUpdate() failed");
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "hashing failed");
    }

    b->written += (long long) n;
    job_mark_dirty(j);

    return 0;
}


static void
blob_flush(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;
    queue_t     *q;

    for (q = queue_head(&j->waiters);
         q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        blob_send_progress(b, queue_data(q, waiter_t, job_link));
    }
}


static void
blob_hex(const unsigned char *md, unsigned int len, char *out)
{
    static const char  digits[] = "0123456789abcdef";
    unsigned int       i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0xf];
    }

    out[2 * len] = '\0';
}


static void
blob_done(job_t *j, const xfer_resp_t *r)
{
    blob_job_t     *b = (blob_job_t *) j;
    unsigned char   md[EVP_MAX_MD_SIZE];
    unsigned int    mdlen;
    char            got[2 * EVP_MAX_MD_SIZE + 1];
    char            path[OCI_PATH_MAX];
    const char     *root;
    queue_t        *q;
    waiter_t       *w;
    oci_msg_t       m;

    root = j->jobs->cf->store_path;

    if (b->size >= 0 && b->written != b->size) {
        log_error("%s: got %lld of %lld bytes", j->label, b->written,
                  b->size);
        job_fail(j, 502, OCI_ERR_UPSTREAM, "short body from upstream");
        return;
    }

    mdlen = 0;
    if (EVP_DigestFinal_ex(b->md, md, &mdlen) != 1
        || mdlen != OCI_SHA256_HEX_LEN / 2)
    {
        log_error("EVP_DigestFinal_ex() failed");
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "hashing failed");
        return;
    }

    blob_hex(md, mdlen, got);

    if (strcmp(got, b->hex) != 0) {
        log_error("%s: digest mismatch, upstream sent sha256:%s "
                  "(%lld bytes); not stored", j->label, got, b->written);
        job_fail(j, 502, OCI_ERR_UPSTREAM, "digest mismatch");
        return;
    }

    if (oci_store_commit(root, b->tmp, b->fd, b->hex,
                         j->jobs->cf->store_fsync)
        != OCI_OK)
    {
        log_error("%s: cannot commit \"%s\" to the store: %s", j->label,
                  b->tmp, strerror(errno));
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
        return;
    }

    b->committed = 1;
    b->size = b->written;

    if (oci_store_blob_path(root, b->hex, path, sizeof(path)) != OCI_OK) {
        path[0] = '\0';
    }

    log_debug("%s: stored, %lld bytes", j->label, b->written);

    for (q = queue_head(&j->waiters);
         q != queue_sentinel(&j->waiters);
         q = queue_next(q))
    {
        w = queue_data(q, waiter_t, job_link);

        if (!w->sent_size) {
            blob_send_size(b, w, path);
        }

        blob_send_progress(b, w);

        oci_msg_init(&m, OCI_MSG_DONE, 0);
        waiter_send(w, &m);
    }

    job_finish(j);
}


static void
blob_cleanup(job_t *j)
{
    blob_job_t  *b = (blob_job_t *) j;

    if (b->fd >= 0) {
        close(b->fd);

        if (!b->committed && unlink(b->tmp) != 0 && errno != ENOENT) {
            log_error("unlink(\"%s\") failed: %s", b->tmp, strerror(errno));
        }
    }

    EVP_MD_CTX_free(b->md);
}
