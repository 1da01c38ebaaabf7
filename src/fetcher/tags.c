/*
 * Tags jobs: GET <endpoint>/v2/<name>/tags/list?n=..&last=.. into a temp
 * file that the worker opens and unlinks (BODY), with the query of the
 * Link header's next page.  Each request has its own job: the worker
 * unlinks the file, so two workers cannot share one.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "oci_store.h"
#include "job.h"
#include "log.h"
#include "url.h"

#define TAGS_BODY_MAX  (16 * 1024 * 1024)

typedef struct {
    job_t       job;                            /* first */
    int         fd;
    char        tmp[OCI_PATH_MAX];
    long long   written;
    int         handed_over;                    /* the worker owns tmp */
} tags_job_t;

static int tags_headers(job_t *j, const xfer_resp_t *r);
static int tags_body(job_t *j, const char *p, size_t n);
static int tags_reset(job_t *j);
static int tags_can_retry(job_t *j);
static void tags_done(job_t *j, const xfer_resp_t *r);
static void tags_idle(job_t *j);
static void tags_cleanup(job_t *j);

static const job_ops_t  tags_ops = {
    "tags",
    OCI_ERR_NAME_UNKNOWN,
    tags_headers,
    tags_body,
    tags_reset,
    tags_can_retry,
    tags_done,
    NULL,               /* unavailable: FAIL 503 */
    tags_idle,
    NULL,
    tags_cleanup,
    NULL,               /* promote: no transfers of its own */
    NULL,               /* throttled: FAIL */
    NULL                /* retarget: keyed by registry and name */
};


void
tags_request(jobs_t *jobs, conn_t *c, const oci_msg_t *m)
{
    const oci_registry_t  *reg;
    tags_job_t            *t;
    job_t                 *j;
    CURL                  *easy;
    char                   num[32];
    int                    rc;

    reg = job_check_request(jobs, c, m);
    if (reg == NULL) {
        return;
    }

    j = job_create(jobs, &tags_ops, sizeof(tags_job_t), reg, m->name, NULL,
                   NULL);
    if (j == NULL) {
        reply_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    t = (tags_job_t *) j;
    t->fd = -1;

    if (job_add_waiter(j, c, m->id) == NULL) {
        job_finish(j);
        reply_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    snprintf(j->path, sizeof(j->path), "/v2/%s/tags/list", m->name);

    easy = curl_easy_init();
    if (easy == NULL) {
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "out of memory");
        return;
    }

    rc = 0;

    if (m->n >= 0) {
        snprintf(num, sizeof(num), "%lld", m->n);
        rc = url_add_query_arg(easy, j->path, sizeof(j->path), "n", num);
    }

    if (rc == 0 && m->last[0] != '\0') {
        rc = url_add_query_arg(easy, j->path, sizeof(j->path), "last",
                               m->last);
    }

    curl_easy_cleanup(easy);

    if (rc != 0) {
        job_fail(j, 400, OCI_ERR_UNSUPPORTED, "query too long");
        return;
    }

    t->fd = oci_store_tmp_create(jobs->cf->store_path, t->tmp,
                                 sizeof(t->tmp));
    if (t->fd < 0) {
        log_error("cannot create a temp file in \"%s/tmp\": %s",
                  jobs->cf->store_path, strerror(errno));
        job_fail(j, 503, OCI_ERR_UNAVAILABLE, "store not writable");
        return;
    }

    j->head = 0;
    j->accept = "application/json";

    job_issue(j);
}


static int
tags_reset(job_t *j)
{
    tags_job_t  *t = (tags_job_t *) j;

    if (ftruncate(t->fd, 0) != 0) {
        log_error("ftruncate(\"%s\") failed: %s", t->tmp, strerror(errno));
        return -1;
    }

    t->written = 0;

    return 0;
}


static int
tags_can_retry(job_t *j)
{
    return 1;
}


static int
tags_headers(job_t *j, const xfer_resp_t *r)
{
    if (r->content_length > TAGS_BODY_MAX) {
        log_error("%s: %lld bytes is over the limit", j->label,
                  r->content_length);
        return job_abort(j, 502, OCI_ERR_UPSTREAM, "tag list too large");
    }

    return 0;
}


static int
tags_body(job_t *j, const char *p, size_t n)
{
    tags_job_t  *t = (tags_job_t *) j;

    if (t->written + (long long) n > TAGS_BODY_MAX) {
        log_error("%s: body over the limit", j->label);
        return job_abort(j, 502, OCI_ERR_UPSTREAM, "tag list too large");
    }

    if (job_write_all(t->fd, p, n, t->written) != 0) {
        log_error("pwrite(\"%s\") failed: %s", t->tmp, strerror(errno));
        return job_abort(j, 503, OCI_ERR_UNAVAILABLE, "store write failed");
    }

    t->written += (long long) n;

    return 0;
}


/*
 * The query of the rel="next" target in a Link value, which may list
 * several link-values separated by commas (rel="prev" and rel="next"):
 *   </v2/<name>/tags/list?n=2&last=b>; rel="next"   ->   n=2&last=b
 * 1 if found (and a valid IPC token), 0 otherwise.
 */
static int
tags_link_next(const char *link, char *out, size_t cap)
{
    const char  *lt, *gt, *q, *p, *end;
    size_t       len;

    for (p = link; /* void */ ; p = end) {
        lt = strchr(p, '<');
        gt = lt != NULL ? strchr(lt, '>') : NULL;

        if (gt == NULL) {
            return 0;
        }

        /* the parameters of this link-value run to the next one's '<' */
        end = strchr(gt, '<');
        if (end == NULL) {
            end = gt + strlen(gt);
        }

        len = (size_t) (end - gt);

        if (memmem(gt, len, "rel=\"next\"", 10) != NULL
            || memmem(gt, len, "rel=next", 8) != NULL)
        {
            break;
        }
    }

    q = memchr(lt, '?', (size_t) (gt - lt));
    if (q == NULL) {
        return 0;
    }

    q++;
    len = (size_t) (gt - q);

    if (len == 0 || len >= cap) {
        return 0;
    }

    /* it goes into the client's Link header and onto an IPC line */
    for (p = q; p < gt; p++) {
        if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f
            || *p == '<' || *p == '"' || *p == '\\')
        {
            return 0;
        }
    }

    memcpy(out, q, len);
    out[len] = '\0';

    return 1;
}


static void
tags_done(job_t *j, const xfer_resp_t *r)
{
    tags_job_t  *t = (tags_job_t *) j;
    queue_t     *q;
    oci_msg_t    m;

    oci_msg_init(&m, OCI_MSG_BODY, 0);
    m.status = (int) r->status;
    snprintf(m.path, sizeof(m.path), "%s", t->tmp);

    if (!tags_link_next(r->link, m.next, sizeof(m.next))) {
        m.next[0] = '\0';
    }

    /* one waiter; once it has the message the file is the worker's */
    if (!queue_empty(&j->waiters)) {
        q = queue_head(&j->waiters);
        if (waiter_send(queue_data(q, waiter_t, job_link), &m) == 0) {
            t->handed_over = 1;
        }
    }

    job_finish(j);
}


/* Nobody wants the list any more. */
static void
tags_idle(job_t *j)
{
    job_finish(j);
}


static void
tags_cleanup(job_t *j)
{
    tags_job_t  *t = (tags_job_t *) j;

    if (t->fd < 0) {
        return;
    }

    close(t->fd);

    if (!t->handed_over && unlink(t->tmp) != 0 && errno != ENOENT) {
        log_error("unlink(\"%s\") failed: %s", t->tmp, strerror(errno));
    }
}
