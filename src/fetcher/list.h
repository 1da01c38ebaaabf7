/*
 * What the list kinds (tags.c, referrers.c) share: a JSON list that the
 * fetcher gathers from the upstream page by page into memory (following
 * the upstream's next pages within a byte and a page limit), keeps in
 * the store for the registry's TTL, answers from the store while it is
 * fresh, and answers stale, up to TTL + stale_if_error, when every
 * endpoint fails or the upstream answers 429.
 *
 * A kind's job struct starts with a list_job_t (which starts with the
 * job_t); its job_ops_t takes the list_* callbacks for what is the same,
 * and its list_kind_t says what differs.  What the list is, how a page
 * is read and where the next one is stay the kind's.
 *
 * One job fetches a list for every request that asks for it meanwhile
 * (the kind keys it); each waiter keeps what it asked of the list
 * (waiter_t.asked) and gets its own answer, in its own temp file.
 *
 * A list is fetched from one endpoint: a failover is allowed only before
 * the first page was taken, since a next page's query is the endpoint's
 * own (a cursor another endpoint need not know).  A failure after that
 * answers as when every endpoint fails (stale, or 503).
 */

#ifndef FETCHER_LIST_H
#define FETCHER_LIST_H

#include <jansson.h>

#include "oci.h"
#include "job.h"
#include "paging.h"

typedef struct list_job_s  list_job_t;

typedef struct {
    const char  *member;        /* the stored object's array: "tags" */
    const char  *what;          /* the stored object, for the log: "list" */
    size_t       body_max;      /* bytes of all upstream pages together,
                                   and of the stored file */
    unsigned     pages_max;     /* upstream pages */
    const char  *too_large;     /* the FAIL message over either limit */

    /* Send the answer made of list (the member array) to the waiter w,
     * as it asked (w->asked). */
    void       (*answer)(list_job_t *l, waiter_t *w, json_t *list);

    /* A list read from the store, before it is kept parsed: put it in
     * the shape the answers rely on (tags: sorted).  0, or -1 to refuse
     * it; NULL: taken as it is. */
    int        (*loaded)(json_t *list);
} list_kind_t;

struct list_job_s {
    job_t               job;                    /* first */
    const list_kind_t  *kind;
    char                path[OCI_PATH_MAX];     /* the stored list; "":
                                                   none is kept */
    long                ttl;                    /* seconds it is fresh */
    char               *page;                   /* this page's body */
    size_t              page_len;
    size_t              page_cap;
    long long           total;                  /* body bytes, all pages */
    unsigned            pages;                  /* pages taken */
};

/* Set up l after job_create(): path ("" if none is kept) is copied. */
void list_init(list_job_t *l, const list_kind_t *kind, long ttl,
    const char *path);

/* The member array of the stored list at path if the file is younger
 * than max_age seconds (a new reference: a use, for cache); NULL if path
 * is "", or there is no such list or it is older.  A file expire seconds
 * old or older can serve nothing any more (not even stale): it is
 * removed.  The parse is kept in jobs->lists (listcache.h): while the
 * file stays the same, a request costs one stat() and no read. */
json_t *list_stored(jobs_t *jobs, const list_kind_t *kind,
    const char *path, long max_age, long expire);

/* Keep text as the stored list at l->path (nothing if ""), and list (the
 * member array text was made of, not to be changed any more) as its
 * parse; a failure is logged, and the answer goes out anyway. */
void list_keep(list_job_t *l, const char *text, json_t *list);

/* This page's body as JSON (a new reference), NULL if it is not JSON. */
json_t *list_page(list_job_t *l);

/* A page was taken: ask for the next one at path if next is PAGING_NEXT.
 * 1 if the job went on, or failed (one page too many, or PAGING_UNUSABLE:
 * a next page that cannot be followed, FAIL 502, nothing kept); 0 after
 * the last page (PAGING_LAST). */
int list_next_page(list_job_t *l, paging_next_t next, const char *path);

/* Answer every waiter with list and finish the job. */
void list_answer(list_job_t *l, json_t *list);

/* Release what the list holds (from the kind's cleanup). */
void list_cleanup(list_job_t *l);

/* job_ops_t callbacks: the byte limit over all pages, the page buffer,
 * another endpoint only before the first page was taken, the stale
 * answer or FAIL 503 (unavailable) or FAIL 429 (throttled).  (Nobody
 * waits: the job layer drops the job.) */
int list_headers(job_t *j, const xfer_resp_t *r);
int list_body(job_t *j, const char *p, size_t n);
int list_reset(job_t *j);
int list_can_retry(job_t *j);
void list_unavailable(job_t *j);
int list_throttled(job_t *j);

#endif /* FETCHER_LIST_H */
