/*
 * The scrub (see scrub.h).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "oci_store.h"
#include "layercheck.h"
#include "log.h"
#include "queue.h"
#include "scrub.h"

#define SCRUB_MD_LEN      (OCI_SHA256_HEX_LEN / 2)
#define SCRUB_CHUNK       (64 * 1024)     /* one read() */
#define SCRUB_BUCKETS     16384
#define SCRUB_DEPTH_MAX   64              /* directories open in a walk */
#define SCRUB_RECORD_MAX  1024            /* a tag record line */
#define SCRUB_QNAME_MAX   96              /* "<hex>.<unix-time>" */
#define SCRUB_REL_MAX     96              /* "types/sha256/<2>/<64>" */
#define SCRUB_LAG_NS      (100 * 1000000LL)  /* a late slice catches up
                                                this much, no more */

#define SCRUB_MT_OCI_CONFIG     "application/vnd.oci.image.config.v1+json"
#define SCRUB_MT_DOCKER_CONFIG  \
    "application/vnd.docker.container.image.v1+json"

/* What a pass does now, in this order; a pass of one image starts at
 * IMAGES (deep) or FILES, its lists made by scrub_start(). */
typedef enum {
    SCRUB_IDLE = 0,
    SCRUB_LIST,                 /* sha256/ into files */
    SCRUB_TAGS,                 /* deep: tags/ into names */
    SCRUB_TYPES,                /* deep: types/sha256/ into indexes and
                                   images */
    SCRUB_INDEXES,              /* deep: an index's name to its children */
    SCRUB_IMAGES,               /* deep: layers against diff_ids */
    SCRUB_FILES                 /* the listed files not read yet */
} scrub_phase_t;

static const char *const  scrub_phases[] = {
    "idle",
    "listing the store",
    "reading the tag records",
    "listing the manifests",
    "reading the indexes",
    "checking the images' layers",
    "checking the files"
};

/* What reading a stored file came to. */
typedef enum {
    SCRUB_READ_OK = 0,          /* it matches its name */
    SCRUB_READ_QUARANTINED,     /* it did not */
    SCRUB_READ_VANISHED,        /* it went while it was read */
    SCRUB_READ_ABSENT,          /* not stored */
    SCRUB_READ_TOO_LARGE        /* not read whole (left for FILES) */
} scrub_read_t;

typedef struct {
    unsigned char  md[SCRUB_MD_LEN];
} scrub_item_t;

typedef struct {
    scrub_item_t  *a;
    size_t         n;
    size_t         cap;
} scrub_list_t;

/*
 * A digest in a map: in "done", a blob the deep part read (and for a
 * layer, what it unpacked to); in "names", the registry/name:tag of a
 * manifest; in "listed", a file of an image's pass.
 */
typedef struct {
    queue_t              link;
    unsigned char        md[SCRUB_MD_LEN];
    scrub_read_t         read;
    int                  checked;       /* a layer check ran */
    layercheck_result_t  result;
    unsigned char        diff[SCRUB_MD_LEN];   /* MATCH, MISMATCH */
    char                 name[];
} scrub_node_t;

typedef struct {
    queue_t  *buckets;          /* NULL: not in use this pass */
} scrub_map_t;

typedef struct {
    DIR     *dir;
    size_t   len;               /* of its path in scrub_walk_t.path */
} scrub_level_t;

typedef struct {
    scrub_level_t  level[SCRUB_DEPTH_MAX];
    int            depth;
    char           path[OCI_PATH_MAX];   /* relative to the root */
    struct stat    st;                   /* of the file found */
} scrub_walk_t;

/* The file being read, across slices. */
typedef struct {
    int             fd;                   /* -1: none */
    unsigned char   md[SCRUB_MD_LEN];     /* its name */
    char            rel[SCRUB_REL_MAX];
    dev_t           dev;
    ino_t           ino;
    int             error;                /* errno of a failed read */
    int             layer;                /* lc was begun */
    layercheck_t    lc;
    size_t          len;                  /* scrub_t.buf[pos..len) is */
    size_t          pos;                  /* still to be fed to lc */
} scrub_reader_t;

/* The image the deep part checks, across slices. */
typedef struct {
    int             loaded;
    unsigned char   md[SCRUB_MD_LEN];
    oci_image_t     img;
    char          (*diff)[OCI_SHA256_HEX_LEN + 1];   /* the config's */
    int            *diff_rc;              /* oci_digest_parse()'s */
    size_t          ndiff;
    size_t          layer;                /* the next to begin */
    size_t          current;              /* the one being read */
} scrub_image_t;

typedef char  scrub_qname_t[SCRUB_QNAME_MAX];

struct scrub_s {
    const oci_config_t  *cf;
    loop_t              *loop;
    cache_t             *cache;
    int                  rootfd;
    int                  timerfd;
    unsigned char       *buf;           /* SCRUB_CHUNK */
    EVP_MD_CTX          *ctx;

    /* the pass */
    scrub_phase_t        phase;
    int                  whole;         /* the whole store, not an image */
    char                 name[SCRUB_NAME_MAX];   /* an image's pass */
    scrub_pass_t         pass;
    long long            started_ns;
    long long            next_ns;       /* the next slice may start */
    scrub_walk_t         walk;
    scrub_list_t         files;
    scrub_list_t         indexes;
    scrub_list_t         images;
    size_t               pos;           /* in the list of the phase */
    scrub_map_t          done;
    scrub_map_t          names;
    scrub_map_t          listed;
    scrub_reader_t       rd;
    scrub_image_t        im;

    /* the slice */
    long long            slice_budget;
    long long            slice_bytes;
    long long            slice_out;
    long long            slice_deadline;
    unsigned             slice_entries;

    /* the schedule (scrub.state) */
    time_t               last_completed;
    time_t               since;         /* the schedule counts from */
    double               last_seconds;
    int                  last_deep;

    /* quarantine/, the oldest first */
    scrub_qname_t       *quarantine;
    size_t               nquarantine;
    size_t               quarantine_cap;

    scrub_finding_t      findings[SCRUB_FINDINGS_MAX];
    size_t               nfindings;
    size_t               finding_next;

    stats_scrub_t        totals;
};


static void scrub_timer_handler(loop_t *loop, int fd, uint32_t events,
    void *data);
static void scrub_slice(scrub_t *s);
static void scrub_advance(scrub_t *s);
static void scrub_end(scrub_t *s);
static void scrub_reader_step(scrub_t *s);
static void scrub_layer_judge(scrub_t *s, size_t i, scrub_node_t *node);
static scrub_read_t scrub_quarantine(scrub_t *s, const char *rel,
    const unsigned char *md, const char *got, const char *why);
static void scrub_quarantine_load(scrub_t *s);
static long scrub_quarantine_max(scrub_t *s);
static void scrub_state_load(scrub_t *s);
static time_t scrub_due(scrub_t *s);
static long long scrub_rate(scrub_t *s);



/* Small helpers. */


static long long
scrub_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


/* 64 lower-case hex digits into md; 0, or -1 if hex is not that. */
static int
scrub_unhex(const char *hex, unsigned char *md)
{
    int     i, hi, lo;
    char    c;

    hi = 0;

    for (i = 0; i < OCI_SHA256_HEX_LEN; i++) {
        c = hex[i];

        if (c >= '0' && c <= '9') {
            lo = c - '0';

        } else if (c >= 'a' && c <= 'f') {
            lo = c - 'a' + 10;

        } else {
            return -1;
        }

        if (i % 2 == 0) {
            hi = lo;

        } else {
            md[i / 2] = (unsigned char) (hi << 4 | lo);
        }
    }

    return 0;
}


static void
scrub_hex(const unsigned char *md, char hex[OCI_SHA256_HEX_LEN + 1])
{
    oci_sha256_hex(md, hex);
}


/* "sha256/<2>/<64>" of md (types: "types/sha256/..."). */
static void
scrub_rel(const unsigned char *md, int types, char *out, size_t cap)
{
    char  hex[OCI_SHA256_HEX_LEN + 1];

    scrub_hex(md, hex);
    snprintf(out, cap, "%ssha256/%.2s/%s", types ? "types/" : "", hex, hex);
}


static int
scrub_list_add(scrub_list_t *l, const unsigned char *md)
{
    scrub_item_t  *a;
    size_t         cap;

    if (l->n == l->cap) {
        cap = l->cap == 0 ? 256 : l->cap * 2;

        a = realloc(l->a, cap * sizeof(scrub_item_t));
        if (a == NULL) {
            return OCI_ENOMEM;
        }

        l->a = a;
        l->cap = cap;
    }

    memcpy(l->a[l->n].md, md, SCRUB_MD_LEN);
    l->n++;

    return OCI_OK;
}


static void
scrub_list_free(scrub_list_t *l)
{
    free(l->a);
    memset(l, 0, sizeof(scrub_list_t));
}


static int
scrub_map_init(scrub_map_t *m)
{
    size_t  i;

    m->buckets = malloc(SCRUB_BUCKETS * sizeof(queue_t));
    if (m->buckets == NULL) {
        return OCI_ENOMEM;
    }

    for (i = 0; i < SCRUB_BUCKETS; i++) {
        queue_init(&m->buckets[i]);
    }

    return OCI_OK;
}


static queue_t *
scrub_map_bucket(scrub_map_t *m, const unsigned char *md)
{
    uint32_t  h;

    /* a digest is uniform already */
    memcpy(&h, md, sizeof(h));

    return &m->buckets[h % SCRUB_BUCKETS];
}


static scrub_node_t *
scrub_map_find(scrub_map_t *m, const unsigned char *md)
{
    scrub_node_t  *n;
    queue_t       *b, *q;

    if (m->buckets == NULL) {
        return NULL;
    }

    b = scrub_map_bucket(m, md);

    for (q = queue_head(b); q != queue_sentinel(b); q = queue_next(q)) {
        n = queue_data(q, scrub_node_t, link);

        if (memcmp(n->md, md, SCRUB_MD_LEN) == 0) {
            return n;
        }
    }

    return NULL;
}


/* The node of md, new (with name) or found.  NULL if out of memory or
 * the map is not in use. */
static scrub_node_t *
scrub_map_add(scrub_map_t *m, const unsigned char *md, const char *name)
{
    scrub_node_t  *n;
    size_t         len;

    if (m->buckets == NULL) {
        return NULL;
    }

    n = scrub_map_find(m, md);
    if (n != NULL) {
        return n;
    }

    len = name != NULL ? strlen(name) : 0;

    n = calloc(1, sizeof(scrub_node_t) + len + 1);
    if (n == NULL) {
        log_error("scrub: out of memory");
        return NULL;
    }

    memcpy(n->md, md, SCRUB_MD_LEN);

    if (len > 0) {
        memcpy(n->name, name, len + 1);
    }

    queue_insert_tail(scrub_map_bucket(m, md), &n->link);

    return n;
}


static void
scrub_map_free(scrub_map_t *m)
{
    queue_t  *b;
    size_t    i;

    if (m->buckets == NULL) {
        return;
    }

    for (i = 0; i < SCRUB_BUCKETS; i++) {
        b = &m->buckets[i];

        while (!queue_empty(b)) {
            scrub_node_t  *n = queue_data(queue_head(b), scrub_node_t, link);

            queue_remove(&n->link);
            free(n);
        }
    }

    free(m->buckets);
    m->buckets = NULL;
}



/* Life cycle and pacing. */


scrub_t *
scrub_create(const oci_config_t *cf, loop_t *loop, cache_t *cache)
{
    scrub_t  *s;

    s = calloc(1, sizeof(scrub_t));
    if (s == NULL) {
        log_error("out of memory");
        return NULL;
    }

    s->cf = cf;
    s->loop = loop;
    s->cache = cache;
    s->timerfd = -1;
    s->rd.fd = -1;
    s->last_seconds = -1;

    s->rootfd = open(cf->store_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->rootfd == -1) {
        log_error("open(\"%s\") failed: %s", cf->store_path,
                  strerror(errno));
        free(s);
        return NULL;
    }

    s->buf = malloc(SCRUB_CHUNK);
    s->ctx = EVP_MD_CTX_new();

    if (s->buf == NULL || s->ctx == NULL) {
        log_error("out of memory");
        scrub_destroy(s);
        return NULL;
    }

    s->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->timerfd == -1
        || loop_add(loop, s->timerfd, EPOLLIN, scrub_timer_handler, s) != 0)
    {
        log_error("cannot set up the scrub's timer: %s", strerror(errno));
        scrub_destroy(s);
        return NULL;
    }

    scrub_quarantine_load(s);
    scrub_state_load(s);

    if (cf->scrub_interval > 0) {
        log_info("scrub: a %spass of the store every %ld s, the next in "
                 "%lld s, at most %lld bytes/s; %zu of at most %ld files in "
                 SCRUB_QUARANTINE "/", cf->scrub_deep ? "deep " : "",
                 cf->scrub_interval,
                 (long long) (scrub_due(s) - time(NULL)), scrub_rate(s),
                 s->nquarantine, scrub_quarantine_max(s));

    } else {
        log_info("scrub: on demand only, at most %lld bytes/s; %zu of at "
                 "most %ld files in " SCRUB_QUARANTINE "/", scrub_rate(s),
                 s->nquarantine, scrub_quarantine_max(s));
    }

    return s;
}


/* Free what a pass holds; the counters and the findings stay. */
static void
scrub_pass_free(scrub_t *s)
{
    while (s->walk.depth > 0) {
        closedir(s->walk.level[--s->walk.depth].dir);
    }

    if (s->rd.fd != -1) {
        close(s->rd.fd);
        s->rd.fd = -1;
    }

    layercheck_abort(&s->rd.lc);
    s->rd.layer = 0;

    oci_image_free(&s->im.img);
    free(s->im.diff);
    free(s->im.diff_rc);
    memset(&s->im, 0, sizeof(scrub_image_t));

    scrub_list_free(&s->files);
    scrub_list_free(&s->indexes);
    scrub_list_free(&s->images);
    scrub_map_free(&s->done);
    scrub_map_free(&s->names);
    scrub_map_free(&s->listed);
}


void
scrub_destroy(scrub_t *s)
{
    if (s == NULL) {
        return;
    }

    scrub_pass_free(s);

    if (s->timerfd != -1) {
        loop_del(s->loop, s->timerfd);
        close(s->timerfd);
    }

    EVP_MD_CTX_free(s->ctx);
    free(s->buf);
    free(s->quarantine);
    close(s->rootfd);
    free(s);
}


/* Run the next slice at at_ns (CLOCK_MONOTONIC), or as soon as the loop
 * is free if that is past; 0: never. */
static void
scrub_arm(scrub_t *s, long long at_ns)
{
    struct itimerspec  its;
    int                flags;

    memset(&its, 0, sizeof(its));
    flags = 0;

    if (at_ns > 0 && at_ns <= scrub_now_ns()) {
        its.it_value.tv_nsec = 1;

    } else if (at_ns > 0) {
        its.it_value.tv_sec = at_ns / 1000000000LL;
        its.it_value.tv_nsec = at_ns % 1000000000LL;
        flags = TFD_TIMER_ABSTIME;
    }

    if (timerfd_settime(s->timerfd, flags, &its, NULL) != 0) {
        log_error("timerfd_settime() failed: %s", strerror(errno));
    }
}


static void
scrub_timer_handler(loop_t *loop, int fd, uint32_t events, void *data)
{
    scrub_t   *s = data;
    uint64_t   n;

    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN) {
        log_error("read(timerfd) failed: %s", strerror(errno));
    }

    if (s->phase != SCRUB_IDLE) {
        scrub_slice(s);
    }
}


static long long
scrub_rate(scrub_t *s)
{
    return s->cf->scrub_rate > 0 ? s->cf->scrub_rate
                                 : OCI_DEFAULT_SCRUB_RATE;
}


static int
scrub_slice_over(scrub_t *s)
{
    return s->slice_bytes >= s->slice_budget
           || s->slice_out >= SCRUB_SLICE_INFLATE
           || s->slice_entries >= SCRUB_WALK_SLICE
           || scrub_now_ns() >= s->slice_deadline;
}


static void scrub_list_step(scrub_t *s);
static void scrub_tags_step(scrub_t *s);
static void scrub_types_step(scrub_t *s);
static void scrub_index_step(scrub_t *s);
static void scrub_image_step(scrub_t *s);
static void scrub_files_step(scrub_t *s);


/*
 * One slice: steps until the slice's budget of bytes, unpacked bytes,
 * entries or time is spent, then the next slice for when the rate allows
 * what was read.  A slice starts only once next_ns has passed, so the
 * bytes read since the start of the pass never pass rate * elapsed + one
 * slice.  A timer that fires late (a busy loop, a busy machine) would
 * lose its lateness at every slice and the pass fall short of the rate:
 * next_ns may lag behind the start by SCRUB_LAG_NS, so that a pass that
 * waited long earns no more than that much of a burst.
 */
static void
scrub_slice(scrub_t *s)
{
    long long  start, end, rate, budget;
    double     ms;

    start = scrub_now_ns();
    rate = scrub_rate(s);

    if (s->next_ns < start - SCRUB_LAG_NS) {
        s->next_ns = start - SCRUB_LAG_NS;
    }

    budget = rate / 50;
    budget = budget < SCRUB_SLICE_MIN ? SCRUB_SLICE_MIN : budget;
    budget = budget > SCRUB_SLICE_BYTES ? SCRUB_SLICE_BYTES : budget;

    s->slice_budget = budget;
    s->slice_bytes = 0;
    s->slice_out = 0;
    s->slice_entries = 0;
    s->slice_deadline = start + SCRUB_SLICE_USEC * 1000LL;

    while (s->phase != SCRUB_IDLE && !scrub_slice_over(s)) {

        switch (s->phase) {

        case SCRUB_LIST:
            scrub_list_step(s);
            break;

        case SCRUB_TAGS:
            scrub_tags_step(s);
            break;

        case SCRUB_TYPES:
            scrub_types_step(s);
            break;

        case SCRUB_INDEXES:
            scrub_index_step(s);
            break;

        case SCRUB_IMAGES:
            scrub_image_step(s);
            break;

        default:  /* SCRUB_FILES */
            scrub_files_step(s);
            break;
        }
    }

    end = scrub_now_ns();
    ms = (double) (end - start) / 1e6;

    s->pass.slices++;

    if (ms > s->pass.slice_max_ms) {
        s->pass.slice_max_ms = ms;
    }

    if (s->slice_bytes > s->pass.slice_max_bytes) {
        s->pass.slice_max_bytes = s->slice_bytes;
    }

    if (s->phase == SCRUB_IDLE) {
        return;                     /* scrub_end() saw to the rest */
    }

    s->pass.seconds = (double) (end - s->started_ns) / 1e9;
    s->next_ns += (long long) ((double) s->slice_bytes * 1e9
                               / (double) rate);

    scrub_arm(s, s->next_ns);
}


/* Bytes read from the store, for the pace and the counters. */
static void
scrub_count_read(scrub_t *s, long long n)
{
    s->slice_bytes += n;
    s->pass.read_bytes += n;
    s->totals.checked_bytes += (unsigned long long) n;
}


static void
scrub_count_skipped(scrub_t *s)
{
    s->pass.skipped++;
    s->totals.skipped++;
}


static void
scrub_count_checked(scrub_t *s)
{
    s->pass.checked++;
    s->totals.checked++;
}


static scrub_finding_t *
scrub_finding_new(scrub_t *s, scrub_finding_kind_t kind)
{
    scrub_finding_t  *f;

    f = &s->findings[s->finding_next];
    s->finding_next = (s->finding_next + 1) % SCRUB_FINDINGS_MAX;

    if (s->nfindings < SCRUB_FINDINGS_MAX) {
        s->nfindings++;
    }

    memset(f, 0, sizeof(scrub_finding_t));
    f->kind = kind;
    f->at = time(NULL);

    return f;
}


const scrub_finding_t *
scrub_finding(scrub_t *s, size_t i)
{
    if (i >= s->nfindings) {
        return NULL;
    }

    return &s->findings[(s->finding_next + SCRUB_FINDINGS_MAX - 1 - i)
                        % SCRUB_FINDINGS_MAX];
}



/* Walks of the store, an entry a step. */


/* Open walk_path[0..len) as the next level.  0, or -1 (skipped; logged
 * unless missing). */
static int
scrub_walk_open(scrub_t *s, scrub_walk_t *w, size_t len)
{
    DIR  *d;
    int   fd;

    if (w->depth == SCRUB_DEPTH_MAX) {
        log_warn("scrub: \"%s/%.*s\" is nested too deep, not scrubbed",
                 s->cf->store_path, (int) len, w->path);
        return -1;
    }

    fd = openat(s->rootfd, w->path,
                O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

    if (fd == -1 || (d = fdopendir(fd)) == NULL) {
        if (errno != ENOENT) {
            log_error("scrub: open(\"%s/%s\") failed: %s", s->cf->store_path,
                      w->path, strerror(errno));
        }

        if (fd != -1) {
            close(fd);
        }

        return -1;
    }

    w->level[w->depth].dir = d;
    w->level[w->depth].len = len;
    w->depth++;

    return 0;
}


static void
scrub_walk_begin(scrub_t *s, const char *top)
{
    scrub_walk_t  *w = &s->walk;

    while (w->depth > 0) {
        closedir(w->level[--w->depth].dir);
    }

    snprintf(w->path, sizeof(w->path), "%s", top);
    scrub_walk_open(s, w, strlen(w->path));
}


/* One directory entry: 1 if it is a regular file (its path in
 * walk.path, its stat in walk.st), 0 if it was something else, -1 when
 * the walk is over. */
static int
scrub_walk_next(scrub_t *s)
{
    scrub_walk_t   *w = &s->walk;
    scrub_level_t  *lv;
    struct dirent  *de;
    size_t          nlen, len;

    s->slice_entries++;

    if (w->depth == 0) {
        return -1;
    }

    lv = &w->level[w->depth - 1];

    errno = 0;
    de = readdir(lv->dir);

    if (de == NULL) {
        if (errno != 0) {
            log_error("scrub: readdir(\"%s/%.*s\") failed: %s",
                      s->cf->store_path, (int) lv->len, w->path,
                      strerror(errno));
        }

        closedir(lv->dir);
        w->depth--;
        return 0;
    }

    if (de->d_name[0] == '.') {
        return 0;
    }

    nlen = strlen(de->d_name);

    if (lv->len + 1 + nlen >= sizeof(w->path)) {
        return 0;
    }

    w->path[lv->len] = '/';
    memcpy(w->path + lv->len + 1, de->d_name, nlen + 1);
    len = lv->len + 1 + nlen;

    if (fstatat(dirfd(lv->dir), de->d_name, &w->st, AT_SYMLINK_NOFOLLOW)
        != 0)
    {
        return 0;                   /* gone meanwhile */
    }

    if (S_ISDIR(w->st.st_mode)) {
        scrub_walk_open(s, w, len);
        return 0;
    }

    return S_ISREG(w->st.st_mode) ? 1 : 0;
}


/* The digest of a path "<prefix><2 hex>/<64 hex>" whose two folders'
 * digits are its first two: 0, or -1 for any other path. */
static int
scrub_path_digest(const char *path, const char *prefix, unsigned char *md)
{
    size_t  plen;

    plen = strlen(prefix);

    if (strncmp(path, prefix, plen) != 0
        || strlen(path) != plen + 3 + OCI_SHA256_HEX_LEN
        || path[plen + 2] != '/'
        || path[plen] != path[plen + 3] || path[plen + 1] != path[plen + 4])
    {
        return -1;
    }

    return scrub_unhex(path + plen + 3, md);
}


/* sha256/: the files to check. */
static void
scrub_list_step(scrub_t *s)
{
    unsigned char  md[SCRUB_MD_LEN];
    int            rc;

    rc = scrub_walk_next(s);

    if (rc < 0) {
        scrub_advance(s);
        return;
    }

    if (rc == 0 || scrub_path_digest(s->walk.path, "sha256/", md) != 0) {
        return;                     /* no file of ours */
    }

    if (scrub_list_add(&s->files, md) != OCI_OK) {
        log_error("scrub: out of memory: %s is not scrubbed",
                  s->walk.path);
        return;
    }

    s->pass.listed++;
    s->pass.listed_bytes += (long long) s->walk.st.st_size;
}


/* Read the small file rel whole into buf (cap bytes, NUL-terminated):
 * its length, or -1. */
static ssize_t
scrub_read_line(scrub_t *s, const char *rel, char *buf, size_t cap)
{
    ssize_t  n;
    int      fd;

    fd = openat(s->rootfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1) {
        return -1;
    }

    do {
        n = read(fd, buf, cap - 1);
    } while (n == -1 && errno == EINTR);

    close(fd);

    if (n < 0) {
        return -1;
    }

    buf[n] = '\0';

    return n;
}


/* tags/: which registry/name:tag names a manifest (the first found). */
static void
scrub_tags_step(scrub_t *s)
{
    oci_tag_record_t   rec;
    unsigned char      md[SCRUB_MD_LEN];
    const char        *p, *slash, *at;
    char               buf[SCRUB_RECORD_MAX];
    char               name[SCRUB_NAME_MAX];
    char               hex[OCI_SHA256_HEX_LEN + 1];
    ssize_t            n;
    int                rc;

    rc = scrub_walk_next(s);

    if (rc < 0) {
        scrub_advance(s);
        return;
    }

    /* "tags/<registry>/<name>/@<tag>": neither a registry nor a name
     * holds an '@' */

    p = s->walk.path + 5;
    slash = strchr(p, '/');
    at = strstr(p, "/@");

    if (rc == 0 || slash == NULL || at == NULL || at <= slash) {
        return;
    }

    n = scrub_read_line(s, s->walk.path, buf, sizeof(buf));

    if (n <= 0 || oci_tag_record_parse(buf, (size_t) n, &rec) != OCI_OK
        || oci_digest_parse(rec.digest, strlen(rec.digest), hex) != OCI_OK
        || scrub_unhex(hex, md) != 0)
    {
        return;
    }

    snprintf(name, sizeof(name), "%.*s/%.*s:%s", (int) (slash - p), p,
             (int) (at - slash - 1), slash + 1, at + 2);

    scrub_map_add(&s->names, md, name);
}


/* types/sha256/: the manifests, by kind. */
static void
scrub_types_step(scrub_t *s)
{
    unsigned char  md[SCRUB_MD_LEN];
    char           hex[OCI_SHA256_HEX_LEN + 1];
    char           type[OCI_MEDIA_TYPE_MAX + 1];
    int            rc;

    rc = scrub_walk_next(s);

    if (rc < 0) {
        scrub_advance(s);
        return;
    }

    if (rc == 0 || scrub_path_digest(s->walk.path, "types/sha256/", md) != 0)
    {
        return;
    }

    scrub_hex(md, hex);

    if (oci_store_type_read(s->cf->store_path, hex, type, sizeof(type))
        != OCI_OK)
    {
        return;
    }

    switch (oci_image_kind(type)) {

    case OCI_IMAGE_INDEX:
        rc = scrub_list_add(&s->indexes, md);
        break;

    case OCI_IMAGE_MANIFEST:
        rc = scrub_list_add(&s->images, md);
        s->pass.images++;
        break;

    default:
        /* an artifact of its own type: nothing to unpack */
        scrub_count_skipped(s);
        rc = OCI_OK;
        break;
    }

    if (rc != OCI_OK) {
        log_error("scrub: out of memory: the manifest sha256:%s is not "
                  "checked deeply", hex);
    }
}



/* Reading files. */


/* The path rel still names the file of dev and ino. */
static int
scrub_same_file(scrub_t *s, const char *rel, dev_t dev, ino_t ino)
{
    struct stat  st;

    return fstatat(s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0
           && st.st_dev == dev && st.st_ino == ino;
}


/* The file of its digest md is read: sha256 into got (hex), compared
 * with md, quarantined if it differs (error: a read failed).  OK,
 * QUARANTINED or VANISHED. */
static scrub_read_t
scrub_verdict(scrub_t *s, const char *rel, const unsigned char *md,
    dev_t dev, ino_t ino, int error, char got[OCI_SHA256_HEX_LEN + 1])
{
    unsigned char  sum[EVP_MAX_MD_SIZE];
    unsigned int   len;
    char           why[128];

    got[0] = '\0';

    if (!scrub_same_file(s, rel, dev, ino)) {
        s->pass.vanished++;
        return SCRUB_READ_VANISHED;
    }

    len = 0;

    if (error == 0
        && (EVP_DigestFinal_ex(s->ctx, sum, &len) != 1
            || len != SCRUB_MD_LEN))
    {
        log_error("scrub: the sha256 of %s failed: it is not checked", rel);
        s->pass.vanished++;
        return SCRUB_READ_VANISHED;
    }

    if (error == 0 && memcmp(sum, md, SCRUB_MD_LEN) == 0) {
        scrub_count_checked(s);
        return SCRUB_READ_OK;
    }

    if (error == 0) {
        scrub_hex(sum, got);
        why[0] = '\0';

    } else {
        snprintf(why, sizeof(why), "it cannot be read: %s",
                 strerror(error));
    }

    if (scrub_quarantine(s, rel, md, got, why) == SCRUB_READ_VANISHED) {
        return SCRUB_READ_VANISHED;
    }

    scrub_count_checked(s);

    return SCRUB_READ_QUARANTINED;
}


/* Open the file md for reading in slices; a layer (with its media type)
 * is unpacked too.  OK, or ABSENT. */
static scrub_read_t
scrub_reader_open(scrub_t *s, const unsigned char *md, const char *layer_type)
{
    scrub_reader_t  *rd = &s->rd;
    struct stat      st;
    char             diff_id[OCI_DIGEST_MAX + 1];
    char             hex[OCI_SHA256_HEX_LEN + 1];
    long long        max_out;

    s->slice_entries++;

    memcpy(rd->md, md, SCRUB_MD_LEN);
    scrub_rel(md, 0, rd->rel, sizeof(rd->rel));

    rd->fd = openat(s->rootfd, rd->rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (rd->fd == -1) {
        if (errno != ENOENT) {
            log_error("scrub: open(\"%s/%s\") failed: %s", s->cf->store_path,
                      rd->rel, strerror(errno));
        }

        return SCRUB_READ_ABSENT;
    }

    if (fstat(rd->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(rd->fd);
        rd->fd = -1;
        return SCRUB_READ_ABSENT;
    }

    rd->dev = st.st_dev;
    rd->ino = st.st_ino;
    rd->error = 0;
    rd->len = 0;
    rd->pos = 0;
    rd->layer = 0;

    (void) posix_fadvise(rd->fd, 0, 0, POSIX_FADV_SEQUENTIAL);

    EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL);

    if (layer_type != NULL) {
        /* what the layer unpacks to is compared by scrub_layer_judge(),
         * for every image that names it: any valid diff_id will do */
        scrub_hex(md, hex);
        snprintf(diff_id, sizeof(diff_id), "sha256:%s", hex);

        max_out = (long long) st.st_size * SCRUB_INFLATE_RATIO
                  + SCRUB_INFLATE_MARGIN;

        if (layercheck_begin(&rd->lc, layer_type, diff_id, max_out)
            == OCI_OK)
        {
            rd->layer = 1;

        } else {
            log_error("scrub: out of memory: the layer sha256:%s is not "
                      "unpacked", hex);
        }
    }

    return SCRUB_READ_OK;
}


/* The reader reached the end (or failed): the verdict, and for a layer
 * what it unpacked to. */
static void
scrub_reader_end(scrub_t *s)
{
    scrub_reader_t       *rd = &s->rd;
    scrub_node_t         *node;
    scrub_read_t          verdict;
    layercheck_result_t   result;
    char                  got[OCI_SHA256_HEX_LEN + 1];
    char                  diff[OCI_DIGEST_MAX + 1];
    char                  hex[OCI_SHA256_HEX_LEN + 1];

    close(rd->fd);
    rd->fd = -1;

    verdict = scrub_verdict(s, rd->rel, rd->md, rd->dev, rd->ino, rd->error,
                         got);

    if (s->phase != SCRUB_IMAGES) {
        layercheck_abort(&rd->lc);
        rd->layer = 0;
        return;
    }

    /* a layer of the deep part */

    node = scrub_map_add(&s->done, rd->md, NULL);

    if (node == NULL) {
        layercheck_abort(&rd->lc);
        rd->layer = 0;
        return;
    }

    node->read = verdict;

    if (rd->layer && verdict == SCRUB_READ_OK) {
        result = layercheck_end(&rd->lc, diff, sizeof(diff));

        node->checked = 1;
        node->result = result;

        if ((result == LAYERCHECK_MATCH || result == LAYERCHECK_MISMATCH)
            && (oci_digest_parse(diff, strlen(diff), hex) != OCI_OK
                || scrub_unhex(hex, node->diff) != 0))
        {
            node->checked = 0;
        }

        if (result == LAYERCHECK_TOO_LARGE) {
            scrub_hex(rd->md, hex);
            log_warn("scrub: the layer sha256:%s unpacks to more than %d "
                     "times its size and %lld bytes: not checked against "
                     "its diff_id", hex, SCRUB_INFLATE_RATIO,
                     SCRUB_INFLATE_MARGIN);
        }
    }

    layercheck_abort(&rd->lc);
    rd->layer = 0;

    scrub_layer_judge(s, s->im.current, node);
}


/*
 * Read, hash and (a layer) unpack the next piece.  The bytes read wait in
 * buf until layercheck took them SCRUB_FEED at a time, each feed counted
 * against the slice's unpacked budget.
 */
static void
scrub_reader_step(scrub_t *s)
{
    scrub_reader_t  *rd = &s->rd;
    long long        before, want;
    size_t           n;
    ssize_t          got;

    if (rd->layer && rd->pos < rd->len) {
        n = rd->len - rd->pos < SCRUB_FEED ? rd->len - rd->pos : SCRUB_FEED;
        before = layercheck_out(&rd->lc);

        if (layercheck_feed(&rd->lc, s->buf + rd->pos, n) != OCI_OK) {
            layercheck_abort(&rd->lc);
            rd->layer = 0;
        }

        rd->pos += n;

        if (rd->layer) {
            s->slice_out += layercheck_out(&rd->lc) - before;

            if (layercheck_known(&rd->lc)) {
                rd->pos = rd->len;  /* the rest is only hashed */
            }
        }

        return;
    }

    want = s->slice_budget - s->slice_bytes;
    want = want > SCRUB_CHUNK ? SCRUB_CHUNK : want;

    if (want <= 0) {
        return;
    }

    got = read(rd->fd, s->buf, (size_t) want);

    if (got < 0) {
        if (errno == EINTR) {
            return;
        }

        rd->error = errno;
        scrub_reader_end(s);
        return;
    }

    if (got == 0) {
        scrub_reader_end(s);
        return;
    }

    scrub_count_read(s, got);
    EVP_DigestUpdate(s->ctx, s->buf, (size_t) got);

    if (rd->layer && !layercheck_known(&rd->lc)) {
        rd->len = (size_t) got;
        rd->pos = 0;
    }
}


/*
 * A manifest or config, read whole (at most OCI_MANIFEST_MAX bytes) and
 * verified; in a deep pass it is then done.  *body (malloc()ed, NUL
 * after *len bytes) only with OK.
 */
static scrub_read_t
scrub_read_whole(scrub_t *s, const unsigned char *md, char **body,
    size_t *len)
{
    scrub_node_t  *node;
    scrub_read_t   verdict;
    struct stat    st;
    char           rel[SCRUB_REL_MAX];
    char           got[OCI_SHA256_HEX_LEN + 1];
    size_t         have;
    ssize_t        n;
    char          *buf;
    int            fd, error;

    *body = NULL;
    *len = 0;
    s->slice_entries++;

    node = scrub_map_find(&s->done, md);

    if (node != NULL && node->read != SCRUB_READ_OK) {
        return node->read;
    }

    scrub_rel(md, 0, rel, sizeof(rel));

    fd = openat(s->rootfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd == -1) {
        return SCRUB_READ_ABSENT;
    }

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return SCRUB_READ_ABSENT;
    }

    if (st.st_size > OCI_MANIFEST_MAX) {
        close(fd);
        return SCRUB_READ_TOO_LARGE;
    }

    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return SCRUB_READ_TOO_LARGE;
    }

    error = 0;

    for (have = 0; have < (size_t) st.st_size; have += (size_t) n) {
        n = read(fd, buf + have, (size_t) st.st_size - have);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            error = n == 0 ? EIO : errno;
            break;
        }
    }

    close(fd);

    buf[have] = '\0';
    scrub_count_read(s, (long long) have);

    if (node != NULL) {
        /* read already: the verdict stands, only the body was wanted */
        *body = buf;
        *len = have;
        return SCRUB_READ_OK;
    }

    EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(s->ctx, buf, have);

    verdict = scrub_verdict(s, rel, md, st.st_dev, st.st_ino, error, got);

    node = scrub_map_add(&s->done, md, NULL);
    if (node != NULL) {
        node->read = verdict;
    }

    if (verdict != SCRUB_READ_OK) {
        free(buf);
        return verdict;
    }

    *body = buf;
    *len = have;

    return SCRUB_READ_OK;
}



/* The deep part. */


/* An index's name to its children (that have none of their own). */
static void
scrub_index_step(scrub_t *s)
{
    scrub_node_t  *name;
    oci_image_t    img;
    unsigned char  child[SCRUB_MD_LEN];
    char           hex[OCI_SHA256_HEX_LEN + 1];
    size_t         len, i;
    char          *body;

    if (s->pos == s->indexes.n) {
        scrub_advance(s);
        return;
    }

    name = scrub_map_find(&s->names, s->indexes.a[s->pos].md);

    if (scrub_read_whole(s, s->indexes.a[s->pos++].md, &body, &len)
        != SCRUB_READ_OK)
    {
        return;
    }

    if (name != NULL
        && oci_image_parse(OCI_MT_OCI_INDEX, body, len, &img) == OCI_OK)
    {
        for (i = 0; i < img.n; i++) {
            if (oci_digest_parse(img.items[i].digest,
                                 strlen(img.items[i].digest), hex) == OCI_OK
                && scrub_unhex(hex, child) == 0)
            {
                scrub_map_add(&s->names, child, name->name);
            }
        }

        oci_image_free(&img);
    }

    free(body);
}


/* The config's rootfs.diff_ids: 0, or -1 if it has none (no image
 * config). */
static int
scrub_diff_ids(scrub_t *s, const char *body, size_t len)
{
    scrub_image_t  *im = &s->im;
    const char     *v;
    json_t         *root, *ids, *j;
    size_t          i, n;

    root = json_loadb(body, len, 0, NULL);
    ids = json_object_get(json_object_get(root, "rootfs"), "diff_ids");

    if (!json_is_array(ids)) {
        json_decref(root);
        return -1;
    }

    n = json_array_size(ids);

    im->diff = calloc(n + 1, sizeof(*im->diff));
    im->diff_rc = calloc(n + 1, sizeof(int));

    if (im->diff == NULL || im->diff_rc == NULL) {
        json_decref(root);
        return -1;
    }

    json_array_foreach(ids, i, j) {
        v = json_string_value(j);

        im->diff_rc[i] = v != NULL ? oci_digest_parse(v, strlen(v),
                                                      im->diff[i])
                                   : OCI_EINVAL;

        if (im->diff_rc[i] != OCI_OK) {
            im->diff[i][0] = '\0';
        }
    }

    im->ndiff = n;
    json_decref(root);

    return 0;
}


/* The next image manifest and its config: loaded, or done with (counted
 * as skipped when there is nothing to check). */
static void
scrub_image_load(scrub_t *s)
{
    scrub_image_t  *im = &s->im;
    unsigned char   md[SCRUB_MD_LEN], config[SCRUB_MD_LEN];
    const char     *ct;
    char            hex[OCI_SHA256_HEX_LEN + 1];
    size_t          len;
    scrub_read_t    verdict;
    char           *body;
    int             rc;

    memcpy(md, s->images.a[s->pos++].md, SCRUB_MD_LEN);

    if (scrub_read_whole(s, md, &body, &len) != SCRUB_READ_OK) {
        s->pass.images_done++;
        return;
    }

    rc = oci_image_parse(OCI_MT_OCI_MANIFEST, body, len, &im->img);
    free(body);

    if (rc != OCI_OK || im->img.config.digest[0] == '\0') {
        oci_image_free(&im->img);
        scrub_count_skipped(s);
        s->pass.images_done++;
        return;
    }

    /* an artifact in an image manifest: its config says what it is */

    ct = im->img.config.media_type;

    if (ct[0] != '\0' && strcmp(ct, SCRUB_MT_OCI_CONFIG) != 0
        && strcmp(ct, SCRUB_MT_DOCKER_CONFIG) != 0)
    {
        oci_image_free(&im->img);
        scrub_count_skipped(s);
        s->pass.images_done++;
        return;
    }

    if (oci_digest_parse(im->img.config.digest,
                         strlen(im->img.config.digest), hex) != OCI_OK
        || scrub_unhex(hex, config) != 0)
    {
        verdict = SCRUB_READ_ABSENT;

    } else {
        verdict = scrub_read_whole(s, config, &body, &len);
    }


    if (verdict == SCRUB_READ_OK) {
        rc = scrub_diff_ids(s, body, len);
        free(body);

    } else {
        rc = -1;
    }

    if (rc != 0) {
        /* not stored, too large, damaged, or no image config */
        if (verdict != SCRUB_READ_QUARANTINED
            && verdict != SCRUB_READ_VANISHED)
        {
            scrub_count_skipped(s);
        }

        oci_image_free(&im->img);
        free(im->diff);
        free(im->diff_rc);
        memset(im, 0, sizeof(scrub_image_t));
        s->pass.images_done++;
        return;
    }

    memcpy(im->md, md, SCRUB_MD_LEN);
    im->layer = 0;
    im->loaded = 1;
}


static void
scrub_image_done(scrub_t *s)
{
    oci_image_free(&s->im.img);
    free(s->im.diff);
    free(s->im.diff_rc);
    memset(&s->im, 0, sizeof(scrub_image_t));
    s->pass.images_done++;
}


/* A finding about layer i of the image: its diff_id is not what it
 * unpacks to (got: its sha256, or "" and why). */
static void
scrub_diff_finding(scrub_t *s, size_t i, const char *got, const char *why)
{
    scrub_image_t    *im = &s->im;
    scrub_finding_t  *f;
    scrub_node_t     *name;
    char              hex[OCI_SHA256_HEX_LEN + 1];

    s->pass.mismatches++;
    s->totals.mismatches++;

    f = scrub_finding_new(s, SCRUB_FINDING_DIFF_ID);

    scrub_hex(im->md, hex);
    snprintf(f->image, sizeof(f->image), "sha256:%s", hex);
    snprintf(f->digest, sizeof(f->digest), "%s", im->img.items[i].digest);

    if (i < im->ndiff && im->diff[i][0] != '\0') {
        snprintf(f->expected, sizeof(f->expected), "sha256:%s",
                 im->diff[i]);
    }

    if (got[0] != '\0') {
        snprintf(f->got, sizeof(f->got), "sha256:%s", got);
    }

    snprintf(f->note, sizeof(f->note), "%s", why);

    if (s->whole) {
        name = scrub_map_find(&s->names, im->md);

        if (name != NULL) {
            snprintf(f->name, sizeof(f->name), "%s", name->name);
        }

    } else {
        snprintf(f->name, sizeof(f->name), "%s", s->name);
    }

    log_error("scrub: the image %s%s%s%s: its layer %d, %s, unpacks to %s "
              "but its config names %s%s%s", f->image,
              f->name[0] != '\0' ? " (" : "", f->name,
              f->name[0] != '\0' ? ")" : "", (int) i, f->digest,
              f->got[0] != '\0' ? f->got : "nothing",
              f->expected[0] != '\0' ? f->expected : "no valid diff_id",
              why[0] != '\0' ? ": " : "", why);
}


/* Layer i of the image was read (now or for another image): compare what
 * it unpacked to with the config's diff_id. */
static void
scrub_layer_judge(scrub_t *s, size_t i, scrub_node_t *node)
{
    scrub_image_t  *im = &s->im;
    char            got[OCI_SHA256_HEX_LEN + 1];

    if (node->read != SCRUB_READ_OK) {
        return;                     /* quarantined or gone: not the
                                       image's fault */
    }

    if (i >= im->ndiff) {
        scrub_diff_finding(s, i, "", "the config names fewer diff_ids "
                           "than the manifest names layers");
        return;
    }

    if (im->diff_rc[i] == OCI_ENOTSUP) {
        scrub_count_skipped(s);     /* another algorithm */
        return;
    }

    if (im->diff_rc[i] != OCI_OK) {
        scrub_diff_finding(s, i, "", "the config's diff_id is no digest");
        return;
    }

    if (!node->checked) {
        scrub_count_skipped(s);
        return;
    }

    switch (node->result) {

    case LAYERCHECK_MATCH:
    case LAYERCHECK_MISMATCH:
        scrub_hex(node->diff, got);

        if (strcmp(got, im->diff[i]) != 0) {
            scrub_diff_finding(s, i, got, "");
        }

        break;

    case LAYERCHECK_CORRUPT:
        scrub_diff_finding(s, i, "", "the blob is no valid stream of its "
                           "media type");
        break;

    default:
        /* zstd, an unknown type, past the inflation bound */
        scrub_count_skipped(s);
        break;
    }
}


/* The next layer of the image: judged from an earlier read, or read. */
static void
scrub_layer_begin(scrub_t *s)
{
    scrub_image_t  *im = &s->im;
    scrub_node_t   *node;
    oci_desc_t     *d;
    unsigned char   md[SCRUB_MD_LEN];
    char            hex[OCI_SHA256_HEX_LEN + 1];
    size_t          i;

    s->slice_entries++;

    i = im->layer++;
    d = &im->img.items[i];

    if (oci_digest_parse(d->digest, strlen(d->digest), hex) != OCI_OK
        || scrub_unhex(hex, md) != 0)
    {
        return;
    }

    node = scrub_map_find(&s->done, md);

    if (node != NULL) {
        scrub_layer_judge(s, i, node);
        return;
    }

    im->current = i;

    /* not stored: nothing to check */
    (void) scrub_reader_open(s, md, d->media_type);
}


static void
scrub_image_step(scrub_t *s)
{
    if (s->rd.fd != -1) {
        scrub_reader_step(s);
        return;
    }

    if (!s->im.loaded) {
        if (s->pos == s->images.n) {
            scrub_advance(s);
            return;
        }

        scrub_image_load(s);
        return;
    }

    if (s->im.layer == s->im.img.n) {
        scrub_image_done(s);
        return;
    }

    scrub_layer_begin(s);
}


/* The files listed, but those the deep part read. */
static void
scrub_files_step(scrub_t *s)
{
    scrub_item_t  *it;

    if (s->rd.fd != -1) {
        scrub_reader_step(s);
        return;
    }

    if (s->pos == s->files.n) {
        scrub_advance(s);
        return;
    }

    it = &s->files.a[s->pos++];

    if (scrub_map_find(&s->done, it->md) != NULL) {
        s->slice_entries++;
        return;
    }

    if (scrub_reader_open(s, it->md, NULL) == SCRUB_READ_ABSENT) {
        s->pass.vanished++;
    }
}



/* Passes. */


static void
scrub_advance(scrub_t *s)
{
    s->pos = 0;

    switch (s->phase) {

    case SCRUB_LIST:
        if (s->pass.deep) {
            s->phase = SCRUB_TAGS;
            scrub_walk_begin(s, "tags");

        } else {
            s->phase = SCRUB_FILES;
        }

        break;

    case SCRUB_TAGS:
        s->phase = SCRUB_TYPES;
        scrub_walk_begin(s, "types/sha256");
        break;

    case SCRUB_TYPES:
        s->phase = SCRUB_INDEXES;
        break;

    case SCRUB_INDEXES:
        s->phase = SCRUB_IMAGES;
        break;

    case SCRUB_IMAGES:
        s->phase = SCRUB_FILES;
        break;

    default:
        scrub_end(s);
        break;
    }
}


/* Add the stored file of the digest "sha256:..." to an image's pass
 * (once).  1 if it is stored. */
static int
scrub_image_file(scrub_t *s, const char *digest, unsigned char *md)
{
    struct stat  st;
    char         hex[OCI_SHA256_HEX_LEN + 1];
    char         rel[SCRUB_REL_MAX];

    if (oci_digest_parse(digest, strlen(digest), hex) != OCI_OK
        || scrub_unhex(hex, md) != 0)
    {
        return 0;
    }

    if (scrub_map_find(&s->listed, md) != NULL) {
        return 1;
    }

    scrub_rel(md, 0, rel, sizeof(rel));

    if (fstatat(s->rootfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0
        || !S_ISREG(st.st_mode))
    {
        return 0;
    }

    if (scrub_map_add(&s->listed, md, NULL) == NULL
        || scrub_list_add(&s->files, md) != OCI_OK)
    {
        return 0;
    }

    s->pass.listed++;
    s->pass.listed_bytes += (long long) st.st_size;

    return 1;
}


/* The stored image manifest hex: its config and layers, and itself for
 * the deep part. */
static void
scrub_image_parts(scrub_t *s, const char *digest)
{
    oci_image_t    img;
    unsigned char  md[SCRUB_MD_LEN];
    char           hex[OCI_SHA256_HEX_LEN + 1];
    size_t         i;

    if (oci_digest_parse(digest, strlen(digest), hex) != OCI_OK
        || oci_image_read(s->cf->store_path, hex, &img) != OCI_OK)
    {
        return;
    }

    if (img.kind == OCI_IMAGE_MANIFEST) {
        if (s->pass.deep && scrub_unhex(hex, md) == 0
            && scrub_list_add(&s->images, md) == OCI_OK)
        {
            s->pass.images++;
        }

        scrub_image_file(s, img.config.digest, md);

        for (i = 0; i < img.n; i++) {
            scrub_image_file(s, img.items[i].digest, md);
        }
    }

    oci_image_free(&img);
}


/* An image's pass: the lists of the manifest hex and what it names.
 * OCI_OK, OCI_ENOENT if it is not stored. */
static int
scrub_image_lists(scrub_t *s, const char *hex)
{
    oci_image_t    img;
    unsigned char  md[SCRUB_MD_LEN];
    char           digest[OCI_DIGEST_MAX + 1];
    size_t         i;

    snprintf(digest, sizeof(digest), "sha256:%s", hex);

    if (!scrub_image_file(s, digest, md)) {
        return OCI_ENOENT;
    }

    if (oci_image_read(s->cf->store_path, hex, &img) != OCI_OK) {
        return OCI_OK;              /* a blob, or no manifest we know */
    }

    if (img.kind == OCI_IMAGE_INDEX) {
        for (i = 0; i < img.n; i++) {
            if (scrub_image_file(s, img.items[i].digest, md)) {
                scrub_image_parts(s, img.items[i].digest);
            }
        }

    } else {
        scrub_image_parts(s, digest);
    }

    oci_image_free(&img);

    return OCI_OK;
}


int
scrub_start(scrub_t *s, int deep, const char *hex, const char *name)
{
    int  rc;

    if (s->phase != SCRUB_IDLE) {
        return OCI_EAGAIN;
    }

    scrub_pass_free(s);
    memset(&s->pass, 0, sizeof(scrub_pass_t));

    s->pass.deep = deep;
    s->pass.started = time(NULL);
    s->started_ns = scrub_now_ns();
    s->next_ns = s->started_ns;
    s->pos = 0;
    s->whole = hex == NULL;

    rc = OCI_OK;

    if (deep && (scrub_map_init(&s->done) != OCI_OK
                 || (s->whole && scrub_map_init(&s->names) != OCI_OK)))
    {
        rc = OCI_ENOMEM;
    }

    if (rc == OCI_OK && s->whole) {
        snprintf(s->pass.what, sizeof(s->pass.what), "the whole store");
        s->name[0] = '\0';
        s->phase = SCRUB_LIST;
        scrub_walk_begin(s, "sha256");

    } else if (rc == OCI_OK) {
        snprintf(s->name, sizeof(s->name), "%s", name);
        snprintf(s->pass.what, sizeof(s->pass.what), "%s (sha256:%s)", name,
                 hex);

        rc = scrub_map_init(&s->listed);

        if (rc == OCI_OK) {
            rc = scrub_image_lists(s, hex);
        }

        s->phase = deep ? SCRUB_IMAGES : SCRUB_FILES;
    }

    if (rc != OCI_OK) {
        s->phase = SCRUB_IDLE;
        scrub_pass_free(s);
        memset(&s->pass, 0, sizeof(scrub_pass_t));
        return rc;
    }

    log_info("scrub: a %spass of %s starts, at most %lld bytes/s",
             deep ? "deep " : "", s->pass.what, scrub_rate(s));

    scrub_arm(s, s->next_ns);

    return OCI_OK;
}


static void
scrub_state_write(scrub_t *s)
{
    char  path[OCI_PATH_MAX], line[160];
    int   n;

    snprintf(path, sizeof(path), "%s/" SCRUB_STATE_FILE, s->cf->store_path);

    n = snprintf(line, sizeof(line), "completed %lld seconds %.0f deep %d "
                 "since %lld\n", (long long) s->last_completed,
                 s->last_seconds, s->last_deep, (long long) s->since);

    if (oci_store_cache_write(s->cf->store_path, path, line, (size_t) n,
                              s->cf->store_fsync) != OCI_OK)
    {
        log_error("scrub: cannot write \"%s\": %s", path, strerror(errno));
    }
}


/*
 * scrub.state: when the last whole-store pass ended and took, and since
 * when the schedule counts (the first start on a store that had none).
 * Missing or unreadable, the schedule starts now and is written so.
 */
static void
scrub_state_load(scrub_t *s)
{
    long long   completed, since;
    double      seconds;
    size_t      len;
    long long   mtime;
    char        path[OCI_PATH_MAX];
    char       *buf;
    int         deep, rc;

    snprintf(path, sizeof(path), "%s/" SCRUB_STATE_FILE, s->cf->store_path);

    rc = oci_store_cache_read(path, 1024, &buf, &len, &mtime);

    if (rc == OCI_OK) {
        if (sscanf(buf, "completed %lld seconds %lf deep %d since %lld",
                   &completed, &seconds, &deep, &since) == 4
            && completed >= 0 && since >= 0)
        {
            s->last_completed = (time_t) completed;
            s->last_seconds = completed > 0 ? seconds : -1;
            s->last_deep = deep != 0;
            s->since = (time_t) since;
            free(buf);
            return;
        }

        log_warn("scrub: \"%s\" is not a scrub state: the schedule starts "
                 "now", path);
        free(buf);

    } else if (rc != OCI_ENOENT) {
        log_warn("scrub: cannot read \"%s\": the schedule starts now", path);
    }

    s->last_completed = 0;
    s->last_seconds = -1;
    s->since = time(NULL);
    scrub_state_write(s);
}


static time_t
scrub_due(scrub_t *s)
{
    if (s->cf->scrub_interval <= 0) {
        return 0;
    }

    return (s->last_completed > 0 ? s->last_completed : s->since)
           + s->cf->scrub_interval;
}


static void
scrub_end(scrub_t *s)
{
    double  rate;

    s->pass.seconds = (double) (scrub_now_ns() - s->started_ns) / 1e9;
    s->phase = SCRUB_IDLE;
    scrub_arm(s, 0);

    /* a shallow pass does not put off the deep one scrub_deep wants */

    if (s->whole && (s->pass.deep || !s->cf->scrub_deep)) {
        s->last_completed = time(NULL);
        s->last_seconds = s->pass.seconds;
        s->last_deep = s->pass.deep;
        s->since = s->last_completed;
        scrub_state_write(s);
    }

    rate = s->pass.seconds > 0 ? (double) s->pass.read_bytes
                                 / s->pass.seconds : 0;

    log_info("scrub: the %spass of %s is done in %.1f s: %llu files "
             "checked, %lld bytes read (%.1f MiB/s), %llu corrupt, %llu "
             "diff_id mismatches, %llu skipped, %llu vanished",
             s->pass.deep ? "deep " : "", s->pass.what, s->pass.seconds,
             s->pass.checked, s->pass.read_bytes, rate / (1024 * 1024),
             s->pass.corrupt, s->pass.mismatches, s->pass.skipped,
             s->pass.vanished);

    scrub_pass_free(s);
}


void
scrub_tick(scrub_t *s)
{
    stats_store_t  st;
    time_t         due;

    if (s == NULL || s->phase != SCRUB_IDLE) {
        return;
    }

    due = scrub_due(s);

    if (due == 0 || time(NULL) < due) {
        return;
    }

    /* the index first: both walk the store */

    cache_state(s->cache, &st);

    if (st.loading) {
        return;
    }

    log_info("scrub: a pass is due (store.scrub_interval = %ld s)",
             s->cf->scrub_interval);

    if (scrub_start(s, s->cf->scrub_deep, NULL, NULL) != OCI_OK) {
        log_error("scrub: out of memory: the pass waits for the next "
                  "tick");
    }
}


void
scrub_status(scrub_t *s, scrub_status_t *st)
{
    memset(st, 0, sizeof(scrub_status_t));

    st->running = s->phase != SCRUB_IDLE;
    st->phase = scrub_phases[s->phase];
    st->pass = s->pass;

    if (st->running) {
        st->pass.seconds = (double) (scrub_now_ns() - s->started_ns) / 1e9;
    }

    st->last_completed = s->last_completed;
    st->last_seconds = s->last_seconds;
    st->last_deep = s->last_deep;
    st->next = scrub_due(s);
    st->rate = scrub_rate(s);
    st->quarantined = s->nquarantine;
    st->quarantine_max = s->cf->quarantine_max;
}


void
scrub_state(scrub_t *s, stats_scrub_t *st)
{
    memset(st, 0, sizeof(stats_scrub_t));

    if (s == NULL) {
        return;
    }

    *st = s->totals;
    st->running = s->phase != SCRUB_IDLE;
    st->last_completed = (long long) s->last_completed;
    st->quarantine_files = s->nquarantine;
}



/* Quarantine. */


static long
scrub_quarantine_max(scrub_t *s)
{
    return s->cf->quarantine_max > 0 ? s->cf->quarantine_max
                                     : OCI_DEFAULT_QUARANTINE_MAX;
}


/* The unix time of a name "<64 hex>.<digits>", or -1. */
static long long
scrub_qname_time(const char *name)
{
    unsigned char  md[SCRUB_MD_LEN];
    const char    *p;
    long long      t;

    if (strlen(name) < OCI_SHA256_HEX_LEN + 2
        || name[OCI_SHA256_HEX_LEN] != '.'
        || scrub_unhex(name, md) != 0)
    {
        return -1;
    }

    t = 0;

    for (p = name + OCI_SHA256_HEX_LEN + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || t > 1000000000000LL) {
            return -1;
        }

        t = t * 10 + (*p - '0');
    }

    return t;
}


static int
scrub_qname_cmp(const void *a, const void *b)
{
    long long  x, y;

    x = scrub_qname_time(a);
    y = scrub_qname_time(b);

    if (x != y) {
        return (x > y) - (x < y);
    }

    return strcmp(a, b);
}


/* The oldest files go while there are more than quarantine_max. */
static void
scrub_quarantine_bound(scrub_t *s)
{
    char    rel[SCRUB_QNAME_MAX + 16];
    long    max;

    max = scrub_quarantine_max(s);

    while (s->nquarantine > (size_t) max) {
        snprintf(rel, sizeof(rel), SCRUB_QUARANTINE "/%s", s->quarantine[0]);

        if (unlinkat(s->rootfd, rel, 0) != 0 && errno != ENOENT) {
            log_error("scrub: unlink(\"%s/%s\") failed: %s",
                      s->cf->store_path, rel, strerror(errno));
            return;
        }

        log_warn("scrub: %s/ holds at most %ld files (store.quarantine_max):"
                 " removed the oldest, %s", SCRUB_QUARANTINE, max,
                 s->quarantine[0]);

        s->nquarantine--;
        memmove(&s->quarantine[0], &s->quarantine[1],
                s->nquarantine * sizeof(scrub_qname_t));
    }
}


static int
scrub_quarantine_add(scrub_t *s, const char *name)
{
    scrub_qname_t  *a;
    size_t          cap, i;

    for (i = 0; i < s->nquarantine; i++) {
        if (strcmp(s->quarantine[i], name) == 0) {
            return OCI_OK;          /* replaced by the rename */
        }
    }

    if (s->nquarantine == s->quarantine_cap) {
        cap = s->quarantine_cap == 0 ? 16 : s->quarantine_cap * 2;

        a = realloc(s->quarantine, cap * sizeof(scrub_qname_t));
        if (a == NULL) {
            return OCI_ENOMEM;
        }

        s->quarantine = a;
        s->quarantine_cap = cap;
    }

    /* in order of time: the end, but after a clock that went back */

    for (i = s->nquarantine; i > 0; i--) {
        if (scrub_qname_cmp(s->quarantine[i - 1], name) <= 0) {
            break;
        }
    }

    memmove(&s->quarantine[i + 1], &s->quarantine[i],
            (s->nquarantine - i) * sizeof(scrub_qname_t));
    snprintf(s->quarantine[i], sizeof(scrub_qname_t), "%s", name);
    s->nquarantine++;

    return OCI_OK;
}


/* What quarantine/ holds (created if missing), bounded at once. */
static void
scrub_quarantine_load(scrub_t *s)
{
    struct dirent  *de;
    DIR            *d;
    int             fd;

    if (mkdirat(s->rootfd, SCRUB_QUARANTINE, OCI_STORE_DIR_MODE) != 0
        && errno != EEXIST)
    {
        log_error("scrub: mkdir(\"%s/" SCRUB_QUARANTINE "\") failed: %s",
                  s->cf->store_path, strerror(errno));
        return;
    }

    fd = openat(s->rootfd, SCRUB_QUARANTINE,
                O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);

    if (fd == -1 || (d = fdopendir(fd)) == NULL) {
        log_error("scrub: open(\"%s/" SCRUB_QUARANTINE "\") failed: %s",
                  s->cf->store_path, strerror(errno));

        if (fd != -1) {
            close(fd);
        }

        return;
    }

    while ((de = readdir(d)) != NULL) {
        if (scrub_qname_time(de->d_name) < 0
            || strlen(de->d_name) >= SCRUB_QNAME_MAX)
        {
            continue;               /* not the scrub's */
        }

        if (scrub_quarantine_add(s, de->d_name) != OCI_OK) {
            log_error("scrub: out of memory");
            break;
        }
    }

    closedir(d);

    scrub_quarantine_bound(s);
}


/*
 * The file rel (of digest md) does not match it: into quarantine/, its
 * types/ line gone, the cache told, logged and found.  got: its sha256
 * (hex), or "" and why.  QUARANTINED, or VANISHED if it went meanwhile.
 */
static scrub_read_t
scrub_quarantine(scrub_t *s, const char *rel, const unsigned char *md,
    const char *got, const char *why)
{
    scrub_finding_t  *f;
    char              hex[OCI_SHA256_HEX_LEN + 1];
    char              name[SCRUB_QNAME_MAX];
    char              qrel[SCRUB_QNAME_MAX + 16];
    char              types[SCRUB_REL_MAX];
    char              path[OCI_PATH_MAX];
    int               kept;

    scrub_hex(md, hex);
    snprintf(name, sizeof(name), "%s.%lld", hex, (long long) time(NULL));
    snprintf(qrel, sizeof(qrel), SCRUB_QUARANTINE "/%s", name);

    /* the folder may have been removed by hand since the start */
    if (mkdirat(s->rootfd, SCRUB_QUARANTINE, OCI_STORE_DIR_MODE) != 0
        && errno != EEXIST)
    {
        log_error("scrub: mkdir(\"%s/" SCRUB_QUARANTINE "\") failed: %s",
                  s->cf->store_path, strerror(errno));
    }

    kept = 1;

    if (renameat(s->rootfd, rel, s->rootfd, qrel) != 0) {
        if (errno == ENOENT) {
            s->pass.vanished++;     /* evicted or purged meanwhile */
            return SCRUB_READ_VANISHED;
        }

        /* it must not be served again: removed, if it cannot be kept */

        log_error("scrub: rename(\"%s/%s\", \"%s/%s\") failed: %s",
                  s->cf->store_path, rel, s->cf->store_path, qrel,
                  strerror(errno));

        if (unlinkat(s->rootfd, rel, 0) != 0) {
            log_error("scrub: unlink(\"%s/%s\") failed: %s",
                      s->cf->store_path, rel, strerror(errno));
        }

        kept = 0;
    }

    scrub_rel(md, 1, types, sizeof(types));

    if (unlinkat(s->rootfd, types, 0) != 0 && errno != ENOENT) {
        log_error("scrub: unlink(\"%s/%s\") failed: %s", s->cf->store_path,
                  types, strerror(errno));
    }

    snprintf(path, sizeof(path), "%s/%s", s->cf->store_path, rel);
    cache_removed(s->cache, path);

    s->pass.corrupt++;
    s->totals.corrupt++;

    f = scrub_finding_new(s, SCRUB_FINDING_CORRUPT);
    snprintf(f->digest, sizeof(f->digest), "sha256:%s", hex);

    if (got[0] != '\0') {
        snprintf(f->got, sizeof(f->got), "sha256:%s", got);
    }

    if (kept) {
        snprintf(f->note, sizeof(f->note), "quarantined as "
                 SCRUB_QUARANTINE "/%s", name);

    } else {
        snprintf(f->note, sizeof(f->note), "removed: it could not be "
                 "moved to " SCRUB_QUARANTINE "/");
    }

    if (got[0] != '\0') {
        log_error("scrub: the file of sha256:%s does not match its digest: "
                  "it hashes to sha256:%s; %s, the next pull fetches it "
                  "again", hex, got, f->note);

    } else {
        snprintf(f->note + strlen(f->note), sizeof(f->note)
                 - strlen(f->note), " (%s)", why);

        log_error("scrub: the file of sha256:%s: %s; %s, the next pull "
                  "fetches it again", hex, why, f->note);
    }

    if (kept) {
        if (scrub_quarantine_add(s, name) != OCI_OK) {
            log_error("scrub: out of memory");
        }

        scrub_quarantine_bound(s);
    }

    return SCRUB_READ_QUARANTINED;
}
