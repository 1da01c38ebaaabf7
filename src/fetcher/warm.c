/*
 * Warm lists (see warm.h).
 *
 * Every image is on warm_t.all (by id) and in one bucket of the table by
 * reference, and on one of three schedules: ready (due now: new, named
 * again by ocimirrorctl, its platforms changed; first come first), waiting
 * (its next round later; appended with now + warm_interval, so the list is
 * in due order) or active (a round under way).  A tick starts rounds from
 * ready, then from waiting while the head is due, up to WARM_ACTIVE, then
 * steps the active rounds in turn until its work budget is spent; an
 * image stepped goes to the back, so the next tick starts with the
 * others.
 *
 * A round keeps its manifests (the top one, then an index's children)
 * and its blobs as items: queued, fetching (a job in flight: one warm
 * started, counted against WARM_JOBS, or another one it joined), stored
 * or failed.  The job layer says nothing when a job ends, so a fetching
 * item asks it at every tick whether the job is still in flight, and the
 * store whether the file is there once it is not.  A tag's job is known
 * to have answered when the tag record was written after the round
 * began.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "oci_image.h"
#include "oci_ref.h"
#include "oci_store.h"
#include "log.h"
#include "negative.h"
#include "queue.h"
#include "warm.h"

#define WARM_BAD_LINES_LOGGED  20   /* a warm_file's bad lines logged one
                                       by one, then counted */

typedef enum {
    WARM_STAGE_TAG = 0,             /* the tag's job is in flight */
    WARM_STAGE_ITEMS                /* manifests and blobs */
} warm_stage_t;

typedef struct {
    char               digest[OCI_DIGEST_MAX + 1];
    long long          size;        /* -1: unknown */
    long long          done;
    warm_blob_state_t  state;
    int                ours;        /* warm started its job, in flight */
} warm_item_t;

typedef struct {
    queue_t        link;            /* warm_t.all, by id */
    queue_t        hash_link;       /* a bucket of warm_t.hash */
    queue_t        sched_link;      /* ready, waiting or active */
    unsigned       id;
    unsigned       sources;         /* WARM_SRC_* */
    unsigned long  file_gen;        /* the warm_file read that named it */
    warm_spec_t    spec;
    char           ref[WARM_REF_MAX];
    warm_state_t   state;
    int            active;
    int            again;           /* due again once the round ends */
    time_t         due;             /* on waiting: the next round */

    /* the round under way, or the last one */
    warm_stage_t   stage;
    time_t         started;         /* wall clock: a tag record at least
                                       this recent is the round's answer */
    warm_item_t   *mans;            /* the top manifest, then an index's
                                       children: 1 +
                                       prefetch.max_children, while a
                                       round is under way */
    size_t         n_mans;
    warm_item_t   *blobs;
    size_t         n_blobs;
    size_t         cap_blobs;
    long long      bytes;           /* the blobs' sizes */
    size_t         fetched;         /* jobs the round started */
    int            failed;
    char           why[256];        /* the round's first failure */
    warm_state_t   previous;        /* how the round before ended */
} warm_image_t;

struct warm_s {
    const oci_config_t   *cf;
    jobs_t               *jobs;
    const warm_ops_t     *ops;
    time_t              (*now)(void);

    queue_t               all;
    queue_t              *hash;
    size_t                nhash;
    queue_t               ready;
    queue_t               waiting;
    queue_t               active;
    size_t                n;
    size_t                n_active;
    size_t                ours;         /* items whose job warm started,
                                           in flight */
    unsigned              next_id;
    unsigned long         count[WARM_FAILED + 1];   /* by state */

    /* the warm_file as last seen */
    int                   file_state;   /* 0 not yet, 1 read (the fields
                                           below are valid), -errno */
    dev_t                 file_dev;
    ino_t                 file_ino;
    off_t                 file_size;
    struct timespec       file_mtime;
    unsigned long         file_gen;

    stats_warm_t          stats;        /* the counters, bad_lines */
};

static long warm_step_items(warm_t *w, warm_image_t *img, long budget);
static void warm_fail(warm_image_t *img, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void warm_item_fail(warm_image_t *img, warm_item_t *it,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static const char *const  warm_state_names[] = {
    "resolving", "fetching", "done", "failed"
};

static const char *const  warm_blob_state_names[] = {
    "queued", "fetching", "stored", "failed"
};


const char *
warm_state_name(warm_state_t state)
{
    return warm_state_names[state];
}


const char *
warm_blob_state_name(warm_blob_state_t state)
{
    return warm_blob_state_names[state];
}


static time_t
warm_monotonic(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec;
}


void
warm_set_clock(warm_t *w, time_t (*now)(void))
{
    w->now = now;
}


/*
 * References.
 */

int
warm_spec_parse(const oci_config_t *cf, const char *text,
    char *const *platforms, size_t n, warm_spec_t *spec, char *err,
    size_t cap)
{
    const char  *why;
    size_t       i, len;

    memset(spec, 0, sizeof(warm_spec_t));

    if (oci_imageref_parse(text, strlen(text), 0, &spec->ref, &why)
        != OCI_OK)
    {
        snprintf(err, cap, "\"%s\": %s", text, why);
        return OCI_EINVAL;
    }

    spec->reg = oci_config_registry(cf, spec->ref.registry,
                                    strlen(spec->ref.registry));
    if (spec->reg == NULL) {
        snprintf(err, cap, "\"%s\": no registry \"%s\" in the config", text,
                 spec->ref.registry);
        return OCI_ENOENT;
    }

    if (n > WARM_PLATFORMS) {
        snprintf(err, cap, "\"%s\": %zu platforms, at most %d", text, n,
                 WARM_PLATFORMS);
        return OCI_ERANGE;
    }

    for (i = 0; i < n; i++) {
        if (!oci_platform_valid(platforms[i])) {
            snprintf(err, cap, "\"%s\": a platform is \"os/arch\" or "
                     "\"os/arch/variant\" in lower case", platforms[i]);
            return OCI_EINVAL;
        }

        /* valid: shorter than OCI_PLATFORM_MAX */
        memcpy(spec->platforms[i], platforms[i], strlen(platforms[i]) + 1);
    }

    spec->n_platforms = n;

    /* as the config does for its own images */
    len = strlen(spec->ref.name);

    if (spec->reg->library_prefix && strchr(spec->ref.name, '/') == NULL) {
        if (len + 8 >= sizeof(spec->ref.name)) {
            snprintf(err, cap, "\"%s\": the name is too long", text);
            return OCI_EINVAL;
        }

        memmove(spec->ref.name + 8, spec->ref.name, len + 1);
        memcpy(spec->ref.name, "library/", 8);
    }

    return OCI_OK;
}


int
warm_parse_line(const oci_config_t *cf, char *line, warm_spec_t *spec,
    char *err, size_t cap)
{
    char    *words[WARM_PLATFORMS + 1], *p, *save;
    size_t   n;
    int      rc;

    /* '#' belongs to no reference or platform: the rest is a comment */
    p = strchr(line, '#');
    if (p != NULL) {
        *p = '\0';
    }

    n = 0;

    for (p = strtok_r(line, " \t\r\n\v\f", &save); p != NULL;
         p = strtok_r(NULL, " \t\r\n\v\f", &save))
    {
        if (n == sizeof(words) / sizeof(words[0])) {
            snprintf(err, cap, "\"%s\": more than %d platforms", words[0],
                     WARM_PLATFORMS);
            return OCI_ERANGE;
        }

        words[n++] = p;
    }

    if (n == 0) {
        return 0;
    }

    rc = warm_spec_parse(cf, words[0], &words[1], n - 1, spec, err, cap);

    return rc == OCI_OK ? 1 : rc;
}


static size_t
warm_hash(const char *s)
{
    size_t  h;

    /* FNV-1a */
    for (h = 2166136261u; *s != '\0'; s++) {
        h = (h ^ (unsigned char) *s) * 16777619u;
    }

    return h;
}


static warm_image_t *
warm_find(warm_t *w, const char *ref)
{
    queue_t       *b, *q;
    warm_image_t  *img;

    b = &w->hash[warm_hash(ref) % w->nhash];

    for (q = queue_head(b); q != queue_sentinel(b); q = queue_next(q)) {
        img = queue_data(q, warm_image_t, hash_link);

        if (strcmp(img->ref, ref) == 0) {
            return img;
        }
    }

    return NULL;
}


static int
warm_platforms_same(const warm_spec_t *a, const warm_spec_t *b)
{
    size_t  i;

    if (a->n_platforms != b->n_platforms) {
        return 0;
    }

    for (i = 0; i < a->n_platforms; i++) {
        if (strcmp(a->platforms[i], b->platforms[i]) != 0) {
            return 0;
        }
    }

    return 1;
}


/*
 * Images and their schedules.
 */

static void
warm_set_state(warm_t *w, warm_image_t *img, warm_state_t state)
{
    w->count[img->state]--;
    w->count[state]++;
    img->state = state;
}


/* Due now: next in line among the images due (a round under way goes
 * on, and the next follows it). */
static void
warm_due_now(warm_t *w, warm_image_t *img)
{
    if (img->active) {
        img->again = 1;
        return;
    }

    queue_remove(&img->sched_link);
    queue_insert_tail(&w->ready, &img->sched_link);
}


/* Forget the items of the last round. */
static void
warm_items_clear(warm_t *w, warm_image_t *img)
{
    size_t  i;

    for (i = 0; i < img->n_mans; i++) {
        w->ours -= img->mans[i].ours;
    }

    for (i = 0; i < img->n_blobs; i++) {
        w->ours -= img->blobs[i].ours;
    }

    img->n_mans = 0;
    img->n_blobs = 0;
    img->bytes = 0;
    img->fetched = 0;
    img->failed = 0;
    img->why[0] = '\0';
}


static void
warm_image_free(warm_t *w, warm_image_t *img)
{
    warm_items_clear(w, img);

    queue_remove(&img->link);
    queue_remove(&img->hash_link);
    queue_remove(&img->sched_link);

    if (img->active) {
        w->n_active--;
    }

    w->count[img->state]--;
    w->n--;

    free(img->mans);
    free(img->blobs);
    free(img);
}


/*
 * The image of spec from source: found by its reference, or new (due at
 * once).  Platforms: the config's stay; else the last given replace the
 * others and bring a round now.  OCI_OK with *out and *found, OCI_ERANGE
 * (warm_max, counted), OCI_ENOMEM (logged).
 */
static int
warm_take(warm_t *w, const warm_spec_t *spec, unsigned source,
    warm_image_t **out, int *found)
{
    warm_image_t  *img;
    char           ref[WARM_REF_MAX];

    oci_imageref_format(&spec->ref, ref, sizeof(ref));

    img = warm_find(w, ref);

    if (img != NULL) {
        if (!(img->sources & WARM_SRC_CONFIG)
            && !warm_platforms_same(&img->spec, spec))
        {
            memcpy(img->spec.platforms, spec->platforms,
                   sizeof(spec->platforms));
            img->spec.n_platforms = spec->n_platforms;
            warm_due_now(w, img);
        }

        img->sources |= source;
        *out = img;
        *found = 1;

        return OCI_OK;
    }

    if (w->n >= (size_t) w->cf->warm_max) {
        w->stats.refused++;
        return OCI_ERANGE;
    }

    img = calloc(1, sizeof(warm_image_t));
    if (img == NULL) {
        log_error("warm %s: out of memory", ref);
        return OCI_ENOMEM;
    }

    img->id = w->next_id++;
    img->sources = source;
    img->spec = *spec;
    memcpy(img->ref, ref, sizeof(ref));
    img->state = WARM_RESOLVING;

    queue_insert_tail(&w->all, &img->link);
    queue_insert_tail(&w->hash[warm_hash(ref) % w->nhash], &img->hash_link);
    queue_insert_tail(&w->ready, &img->sched_link);
    w->count[WARM_RESOLVING]++;
    w->n++;

    *out = img;
    *found = 0;

    return OCI_OK;
}


int
warm_add(warm_t *w, const warm_spec_t *spec, unsigned *id)
{
    warm_image_t  *img;
    int            found, rc;

    rc = warm_take(w, spec, WARM_SRC_CLI, &img, &found);
    if (rc != OCI_OK) {
        return rc;
    }

    /* named again: resolved again now, the tag may have moved */
    if (found) {
        warm_due_now(w, img);
    }

    *id = img->id;

    return OCI_OK;
}


/*
 * The warm_file.
 */

/* The images only the warm_file named, and not in its read gen, leave. */
static void
warm_file_sweep(warm_t *w)
{
    queue_t       *q, *next;
    warm_image_t  *img;

    for (q = queue_head(&w->all); q != queue_sentinel(&w->all); q = next) {
        next = queue_next(q);
        img = queue_data(q, warm_image_t, link);

        if (!(img->sources & WARM_SRC_FILE) || img->file_gen == w->file_gen)
        {
            continue;
        }

        img->sources &= ~WARM_SRC_FILE;

        if (img->sources == 0) {
            log_info("warm #%u %s: no longer in the warm_file", img->id,
                     img->ref);
            warm_image_free(w, img);
        }
    }
}


/* The warm_file cannot be read (err: an errno): an empty list, logged
 * when the failure is new. */
static void
warm_file_failed(warm_t *w, int err)
{
    if (w->file_state == -err) {
        return;
    }

    if (err == EFBIG) {
        log_warn("warm_file \"%s\" is larger than %d bytes: taken as an "
                 "empty list until it changes", w->cf->warm_file,
                 WARM_FILE_MAX);

    } else {
        log_warn("warm_file \"%s\": %s: taken as an empty list until it "
                 "can be read", w->cf->warm_file, strerror(err));
    }

    w->file_state = -err;
    w->file_gen++;
    w->stats.bad_lines = 0;
    warm_file_sweep(w);
}


/* One valid line: its image, unless it is one too many or a repeat.  1
 * if it was taken. */
static int
warm_file_take(warm_t *w, const warm_spec_t *spec, unsigned long lineno,
    size_t *over, size_t *bad)
{
    warm_image_t  *img;
    char           ref[WARM_REF_MAX];
    int            found, rc;

    oci_imageref_format(&spec->ref, ref, sizeof(ref));

    img = warm_find(w, ref);

    if (img != NULL && (img->sources & WARM_SRC_FILE)
        && img->file_gen == w->file_gen)
    {
        if (++*bad <= WARM_BAD_LINES_LOGGED) {
            log_error("%s:%lu: %s is listed already, skipped",
                      w->cf->warm_file, lineno, ref);
        }

        return 0;
    }

    rc = warm_take(w, spec, WARM_SRC_FILE, &img, &found);

    if (rc == OCI_ERANGE) {
        if (++*over == 1) {
            log_error("%s:%lu: %s: the warm lists hold warm_max (%ld) "
                      "images, skipped", w->cf->warm_file, lineno, ref,
                      w->cf->warm_max);
        }

        return 0;
    }

    if (rc != OCI_OK) {
        return 0;
    }

    img->file_gen = w->file_gen;

    return 1;
}


static void
warm_file_load(warm_t *w)
{
    const char     *path = w->cf->warm_file;
    warm_spec_t     spec;
    struct stat     st;
    FILE           *fp;
    char            line[WARM_LINE_MAX], err[512];
    unsigned long   lineno;
    size_t          len, bad, over, images;
    int             c, rc;

    fp = fopen(path, "re");
    if (fp == NULL) {
        warm_file_failed(w, errno);
        return;
    }

    /* what is read is this file: a change after it is seen at a tick */
    if (fstat(fileno(fp), &st) != 0) {
        rc = errno;
        fclose(fp);
        warm_file_failed(w, rc);
        return;
    }

    if (st.st_size > WARM_FILE_MAX) {
        fclose(fp);
        warm_file_failed(w, EFBIG);
        return;
    }

    w->file_gen++;
    lineno = 0;
    bad = 0;
    over = 0;
    images = 0;

    while (fgets(line, sizeof(line), fp) != NULL) {
        lineno++;
        len = strlen(line);

        if (len == sizeof(line) - 1 && line[len - 1] != '\n'
            && (c = getc(fp)) != EOF && c != '\n')
        {
            /* the rest of it goes unread */
            do {
                c = getc(fp);
            } while (c != EOF && c != '\n');

            if (++bad <= WARM_BAD_LINES_LOGGED) {
                log_error("%s:%lu: longer than %d bytes, skipped", path,
                          lineno, WARM_LINE_MAX - 1);
            }

            continue;
        }

        rc = warm_parse_line(w->cf, line, &spec, err, sizeof(err));

        if (rc == 0) {
            continue;
        }

        if (rc < 0) {
            if (++bad <= WARM_BAD_LINES_LOGGED) {
                log_error("%s:%lu: %s, skipped", path, lineno, err);
            }

            continue;
        }

        images += warm_file_take(w, &spec, lineno, &over, &bad);
    }

    if (ferror(fp)) {
        rc = errno;
        fclose(fp);
        warm_file_failed(w, rc);
        return;
    }

    fclose(fp);

    w->file_state = 1;
    w->file_dev = st.st_dev;
    w->file_ino = st.st_ino;
    w->file_size = st.st_size;
    w->file_mtime = st.st_mtim;
    w->stats.bad_lines = bad;

    warm_file_sweep(w);

    if (bad > WARM_BAD_LINES_LOGGED) {
        log_error("%s: %zu more bad lines skipped", path,
                  bad - WARM_BAD_LINES_LOGGED);
    }

    if (over > 1) {
        log_error("%s: %zu more images skipped over warm_max", path,
                  over - 1);
    }

    log_info("warm_file \"%s\": %zu image%s, %zu bad line%s", path, images,
             images == 1 ? "" : "s", bad, bad == 1 ? "" : "s");
}


/* One stat a tick: read the file again when it is another one, or
 * changed. */
static void
warm_file_check(warm_t *w)
{
    struct stat  st;

    if (w->cf->warm_file == NULL) {
        return;
    }

    if (stat(w->cf->warm_file, &st) != 0) {
        warm_file_failed(w, errno);
        return;
    }

    if (!S_ISREG(st.st_mode)) {
        warm_file_failed(w, S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
        return;
    }

    if (w->file_state == 1
        && st.st_dev == w->file_dev && st.st_ino == w->file_ino
        && st.st_size == w->file_size
        && st.st_mtim.tv_sec == w->file_mtime.tv_sec
        && st.st_mtim.tv_nsec == w->file_mtime.tv_nsec)
    {
        return;
    }

    warm_file_load(w);
}


/*
 * Rounds.
 */

/* The round fails (at its end): the first reason is kept. */
static void
warm_fail(warm_image_t *img, const char *fmt, ...)
{
    va_list  ap;

    if (!img->failed) {
        va_start(ap, fmt);
        vsnprintf(img->why, sizeof(img->why), fmt, ap);
        va_end(ap);
    }

    img->failed = 1;
}


static void
warm_item_fail(warm_image_t *img, warm_item_t *it, const char *fmt, ...)
{
    va_list  ap;

    it->state = WARM_BLOB_FAILED;
    it->done = 0;                   /* the temp file went with the job */

    if (!img->failed) {
        va_start(ap, fmt);
        vsnprintf(img->why, sizeof(img->why), fmt, ap);
        va_end(ap);
    }

    img->failed = 1;
}


static void
warm_round_end(warm_t *w, warm_image_t *img)
{
    warm_set_state(w, img, img->failed ? WARM_FAILED : WARM_DONE);

    if (img->failed) {
        w->stats.rounds_failed++;
        log_warn("warm #%u %s: failed: %s; the next round in %lds", img->id,
                 img->ref, img->why, w->cf->warm_interval);

    } else if (img->fetched > 0 || img->previous != WARM_DONE) {
        w->stats.rounds_done++;
        log_info("warm #%u %s: done, %zu blob%s, %lld bytes, %zu "
                 "download%s started", img->id, img->ref, img->n_blobs,
                 img->n_blobs == 1 ? "" : "s", img->bytes, img->fetched,
                 img->fetched == 1 ? "" : "s");

    } else {
        w->stats.rounds_done++;
        log_debug("warm #%u %s: done, everything stored", img->id,
                  img->ref);
    }

    /* every item is over: no download of ours is left */
    free(img->mans);
    img->mans = NULL;
    img->n_mans = 0;
    img->active = 0;
    w->n_active--;
    queue_remove(&img->sched_link);

    if (img->again) {
        img->again = 0;
        queue_insert_tail(&w->ready, &img->sched_link);
        return;
    }

    img->due = w->now() + w->cf->warm_interval;
    queue_insert_tail(&w->waiting, &img->sched_link);
}


static void
warm_round_start(warm_t *w, warm_image_t *img)
{
    const warm_spec_t  *s = &img->spec;
    oci_errcode_t       code;

    warm_items_clear(w, img);

    img->previous = img->state;
    img->active = 1;
    w->n_active++;
    queue_remove(&img->sched_link);
    queue_insert_tail(&w->active, &img->sched_link);
    warm_set_state(w, img, WARM_RESOLVING);
    img->started = time(NULL);

    log_debug("warm #%u %s: a round", img->id, img->ref);

    img->mans = calloc(1 + (size_t) w->cf->prefetch_max_children,
                       sizeof(warm_item_t));
    if (img->mans == NULL) {
        warm_fail(img, "out of memory");
        warm_round_end(w, img);
        return;
    }

    if (s->ref.digest[0] != '\0') {
        memcpy(img->mans[0].digest, s->ref.digest, sizeof(s->ref.digest));
        img->mans[0].size = -1;
        img->n_mans = 1;
        img->stage = WARM_STAGE_ITEMS;
        return;
    }

    /* the mirror answers a remembered 404 without asking: so do we */
    if (negative_find(w->jobs->negative, s->reg, s->ref.name, s->ref.tag,
                      &code))
    {
        warm_fail(img, "manifest unknown upstream (a 404 remembered)");
        warm_round_end(w, img);
        return;
    }

    if (w->ops->resolve(w->jobs, s->reg, s->ref.name, s->ref.tag) < 0) {
        warm_fail(img, "the tag's job could not start");
        warm_round_end(w, img);
        return;
    }

    img->stage = WARM_STAGE_TAG;
}


/* The tag's job is over: the record it wrote names the manifest.  The
 * budget left. */
static long
warm_step_tag(warm_t *w, warm_image_t *img, long budget)
{
    const warm_spec_t  *s = &img->spec;
    oci_tag_record_t    rec;
    oci_errcode_t       code;
    char                hex[OCI_SHA256_HEX_LEN + 1];

    if (w->ops->resolving(w->jobs, s->reg, s->ref.name, s->ref.tag)) {
        return budget - 1;
    }

    if (oci_tag_record_read(w->cf->store_path, s->reg->name, s->ref.name,
                            s->ref.tag, &rec) == OCI_OK
        && rec.fetched_at >= (long long) img->started
        && oci_digest_parse(rec.digest, strlen(rec.digest), hex) == OCI_OK)
    {
        memcpy(img->mans[0].digest, rec.digest, sizeof(rec.digest));
        img->mans[0].size = rec.size;
        img->n_mans = 1;
        img->stage = WARM_STAGE_ITEMS;

        return warm_step_items(w, img, budget - 1);

    } else if (negative_find(w->jobs->negative, s->reg, s->ref.name,
                             s->ref.tag, &code))
    {
        warm_fail(img, "manifest unknown upstream (404)");
        warm_round_end(w, img);

    } else {
        warm_fail(img, "the tag was not resolved: the upstream failed "
                  "(the log says how)");
        warm_round_end(w, img);
    }

    return budget - 1;
}


static void
warm_add_blob(warm_image_t *img, const oci_desc_t *d)
{
    warm_item_t  *items;
    size_t        i, cap;

    for (i = 0; i < img->n_blobs; i++) {
        if (strcmp(img->blobs[i].digest, d->digest) == 0) {
            return;
        }
    }

    if (img->n_blobs == WARM_BLOBS) {
        warm_fail(img, "more than %d blobs: the rest left out",
                  WARM_BLOBS);
        return;
    }

    if (img->n_blobs == img->cap_blobs) {
        cap = img->cap_blobs ? img->cap_blobs * 2 : 16;
        if (cap > WARM_BLOBS) {
            cap = WARM_BLOBS;
        }

        items = realloc(img->blobs, cap * sizeof(warm_item_t));
        if (items == NULL) {
            warm_fail(img, "out of memory");
            return;
        }

        img->blobs = items;
        img->cap_blobs = cap;
    }

    memset(&img->blobs[img->n_blobs], 0, sizeof(warm_item_t));
    memcpy(img->blobs[img->n_blobs].digest, d->digest,
           strlen(d->digest) + 1);
    img->blobs[img->n_blobs].size = d->size;
    img->n_blobs++;
    img->bytes += d->size;
}


/* Manifest item i is stored and parsed as m: what it names joins the
 * round. */
/* A manifest's fan-out was cut at a cap of prefetch: the image fails
 * (saying so, once) and the registry's counters move, as in prefetch. */
static void
warm_capped(warm_t *w, warm_image_t *img, size_t left_out, const char *what,
    const char *key, long cap)
{
    warm_fail(img, "%zu %s left out, over prefetch.%s (%ld)", left_out, what,
              key, cap);
    stats_registry(img->spec.reg)->prefetch_capped++;
    stats_registry(img->spec.reg)->prefetch_left_out += left_out;
}


/* Manifest item i is stored and parsed as m: what it names joins the
 * round, within the caps of prefetch (max_layers a manifest,
 * max_children an index) and WARM_BLOBS in all. */
static void
warm_expand(warm_t *w, warm_image_t *img, size_t i, const oci_image_t *m)
{
    char   *own[WARM_PLATFORMS], **patterns;
    size_t  k, n, before, layers, children, left_out;

    if (m->kind == OCI_IMAGE_MANIFEST) {
        if (m->config.digest[0] != '\0') {
            warm_add_blob(img, &m->config);
        }

        layers = m->n;

        if (layers > (size_t) w->cf->prefetch_max_layers) {
            layers = (size_t) w->cf->prefetch_max_layers;
            warm_capped(w, img, m->n - layers, "layers", "max_layers",
                        w->cf->prefetch_max_layers);
        }

        for (k = 0; k < layers; k++) {
            warm_add_blob(img, &m->items[k]);
        }

        return;
    }

    if (m->kind != OCI_IMAGE_INDEX || i > 0) {
        warm_item_fail(img, &img->mans[i], "%s is not an image %s",
                       img->mans[i].digest,
                       i > 0 ? "manifest" : "manifest or index");
        return;
    }

    /* the image's platforms, or prefetch.platforms (none: any) */
    if (img->spec.n_platforms > 0) {
        for (k = 0; k < img->spec.n_platforms; k++) {
            own[k] = img->spec.platforms[k];
        }

        patterns = own;
        n = img->spec.n_platforms;

    } else {
        patterns = w->cf->prefetch_platforms;
        n = w->cf->n_prefetch_platforms;
    }

    before = img->n_mans;
    children = (size_t) w->cf->prefetch_max_children;
    left_out = 0;

    for (k = 0; k < m->n; k++) {
        if (!oci_platform_match(patterns, n, m->items[k].platform)) {
            continue;
        }

        if (img->n_mans == 1 + children) {
            left_out++;
            continue;
        }

        memset(&img->mans[img->n_mans], 0, sizeof(warm_item_t));
        memcpy(img->mans[img->n_mans].digest, m->items[k].digest,
               strlen(m->items[k].digest) + 1);
        img->mans[img->n_mans].size = m->items[k].size;
        img->n_mans++;
    }

    if (left_out > 0) {
        warm_capped(w, img, left_out, "platform manifests", "max_children",
                    w->cf->prefetch_max_children);
    }

    if (img->n_mans == before && left_out == 0) {
        warm_fail(img, "the index %s has no manifest of the platforms "
                  "asked for", img->mans[0].digest);
    }
}


/* Item it (a manifest if index says so) is in the store: 1, and it is
 * marked used (and a manifest expanded or failed); 0 if it is not. */
static int
warm_item_stored(warm_t *w, warm_image_t *img, warm_item_t *it,
    int manifest, size_t index)
{
    const char   *store = w->cf->store_path;
    oci_image_t   m;
    struct stat   st;
    char          hex[OCI_SHA256_HEX_LEN + 1];
    char          path[OCI_PATH_MAX];
    int           rc;

    if (oci_digest_parse(it->digest, strlen(it->digest), hex) != OCI_OK
        || oci_store_blob_path(store, hex, path, sizeof(path)) != OCI_OK)
    {
        warm_item_fail(img, it, "%s cannot be fetched", it->digest);
        return 1;
    }

    if (!manifest) {
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            return 0;
        }

        it->state = WARM_BLOB_STORED;
        it->done = (long long) st.st_size;
        cache_used(w->jobs->cache, path);

        return 1;
    }

    rc = oci_image_read(store, hex, &m);

    if (rc == OCI_ENOENT) {
        return 0;
    }

    if (rc != OCI_OK) {
        warm_item_fail(img, it, "the stored manifest %s cannot be read "
                       "(%d)", it->digest, rc);
        return 1;
    }

    it->state = WARM_BLOB_STORED;
    it->done = it->size;
    cache_used(w->jobs->cache, path);

    if (m.invalid > 0) {
        log_debug("warm #%u %s: %s: %zu descriptors without a sha256 "
                  "digest and size left out", img->id, img->ref, it->digest,
                  m.invalid);
    }

    warm_expand(w, img, index, &m);
    oci_image_free(&m);

    return 1;
}


/* One item that is not over: the budget left. */
static long
warm_step_item(warm_t *w, warm_image_t *img, warm_item_t *it, int manifest,
    size_t index, long budget)
{
    const warm_spec_t  *s = &img->spec;
    long long           done;
    long                cost;
    int                 rc;

    cost = manifest ? WARM_READ_COST : 1;

    if (w->ops->running(w->jobs, s->reg, s->ref.name, it->digest, manifest,
                        &done))
    {
        if (it->state == WARM_BLOB_QUEUED) {
            it->state = WARM_BLOB_FETCHING;     /* someone else's: joined */
        }

        it->done = done;
        return budget - 1;
    }

    /* no job for it: not begun, or over */

    if (it->ours) {
        it->ours = 0;
        w->ours--;
    }

    if (it->state == WARM_BLOB_QUEUED && w->ours >= WARM_JOBS) {
        /* its turn comes when a download of ours ends */
        return budget;
    }

    if (warm_item_stored(w, img, it, manifest, index)) {
        return budget - cost;
    }

    if (it->state == WARM_BLOB_FETCHING) {
        warm_item_fail(img, it, "%s could not be fetched (the log says "
                       "why)", it->digest);
        return budget - cost;
    }

    rc = w->ops->start(w->jobs, s->reg, s->ref.name, it->digest, manifest);

    if (rc < 0) {
        warm_item_fail(img, it, "%s: the job could not start", it->digest);

    } else if (rc == 1) {
        it->state = WARM_BLOB_FETCHING;
        it->ours = 1;
        w->ours++;
        img->fetched++;
        w->stats.downloads++;
    }

    /* 0: stored or in flight meanwhile, seen at the next tick */

    return budget - cost;
}


/* Step the items of a round: the budget left.  The round ends when every
 * item is over. */
static long
warm_step_items(warm_t *w, warm_image_t *img, long budget)
{
    warm_item_t  *it;
    size_t        i;
    int           open_mans, open_blobs;

    open_mans = 0;
    open_blobs = 0;

    /* the manifests first: they say what the blobs are */
    for (i = 0; i < img->n_mans; i++) {
        it = &img->mans[i];

        if (it->state == WARM_BLOB_STORED || it->state == WARM_BLOB_FAILED)
        {
            continue;
        }

        if (budget > 0) {
            budget = warm_step_item(w, img, it, 1, i, budget);
        }

        open_mans += it->state != WARM_BLOB_STORED
                     && it->state != WARM_BLOB_FAILED;
    }

    for (i = 0; i < img->n_blobs; i++) {
        it = &img->blobs[i];

        if (it->state == WARM_BLOB_STORED || it->state == WARM_BLOB_FAILED)
        {
            continue;
        }

        if (budget > 0) {
            budget = warm_step_item(w, img, it, 0, i, budget);
        }

        open_blobs += it->state != WARM_BLOB_STORED
                      && it->state != WARM_BLOB_FAILED;
    }

    if (open_mans + open_blobs == 0) {
        warm_round_end(w, img);

    } else if (open_mans == 0 && img->state == WARM_RESOLVING) {
        warm_set_state(w, img, WARM_FETCHING);
    }

    return budget;
}


void
warm_tick(warm_t *w)
{
    warm_image_t  *img;
    time_t         now;
    size_t         n;
    long           budget;

    warm_file_check(w);

    now = w->now();
    budget = WARM_TICK_WORK;

    /* a start that fails at once (a 404 remembered) costs its budget */
    while (w->n_active < WARM_ACTIVE && budget-- > 0) {
        if (!queue_empty(&w->ready)) {
            img = queue_data(queue_head(&w->ready), warm_image_t,
                             sched_link);

        } else if (!queue_empty(&w->waiting)
                   && queue_data(queue_head(&w->waiting), warm_image_t,
                                 sched_link)->due <= now)
        {
            img = queue_data(queue_head(&w->waiting), warm_image_t,
                             sched_link);

        } else {
            break;
        }

        warm_round_start(w, img);
    }

    budget = WARM_TICK_WORK;

    for (n = w->n_active; n > 0 && budget > 0; n--) {
        img = queue_data(queue_head(&w->active), warm_image_t, sched_link);

        /* to the back: the next tick begins with the others */
        queue_remove(&img->sched_link);
        queue_insert_tail(&w->active, &img->sched_link);

        budget = img->stage == WARM_STAGE_TAG
                 ? warm_step_tag(w, img, budget)
                 : warm_step_items(w, img, budget);
    }
}


/*
 * Creation.
 */

warm_t *
warm_create(const oci_config_t *cf, jobs_t *jobs, const warm_ops_t *ops)
{
    const oci_image_spec_t  *c;
    warm_image_t            *img;
    warm_spec_t              spec;
    warm_t                  *w;
    char                     ref[WARM_REF_MAX], err[512];
    size_t                   i;
    int                      found;

    w = calloc(1, sizeof(warm_t));
    if (w == NULL) {
        log_error("warm: out of memory");
        return NULL;
    }

    w->cf = cf;
    w->jobs = jobs;
    w->ops = ops;
    w->now = warm_monotonic;
    w->next_id = 1;

    queue_init(&w->all);
    queue_init(&w->ready);
    queue_init(&w->waiting);
    queue_init(&w->active);

    /* a bucket for every two images warm_max allows, at most 64Ki */
    w->nhash = (size_t) cf->warm_max / 2 + 1;
    if (w->nhash > 65536) {
        w->nhash = 65536;
    }

    w->hash = calloc(w->nhash, sizeof(queue_t));
    if (w->hash == NULL) {
        log_error("warm: out of memory");
        free(w);
        return NULL;
    }

    for (i = 0; i < w->nhash; i++) {
        queue_init(&w->hash[i]);
    }

    for (i = 0; i < cf->n_warm; i++) {
        c = &cf->warm[i];

        oci_imageref_format(&c->ref, ref, sizeof(ref));

        /* the config checked the reference, the registry and the
         * platforms, and applied the library prefix */
        if (warm_spec_parse(cf, ref, c->platforms, c->n_platforms, &spec,
                            err, sizeof(err)) != OCI_OK)
        {
            log_error("warm: %s, left out", err);
            continue;
        }

        if (warm_take(w, &spec, WARM_SRC_CONFIG, &img, &found) != OCI_OK) {
            warm_destroy(w);
            return NULL;
        }

        if (found) {
            log_warn("warm: %s is listed twice in the config; the first "
                     "entry counts", ref);
        }
    }

    warm_file_check(w);

    log_info("warm: %zu image%s, a round every %lds, at most %ld images",
             w->n, w->n == 1 ? "" : "s", cf->warm_interval, cf->warm_max);

    return w;
}


void
warm_destroy(warm_t *w)
{
    if (w == NULL) {
        return;
    }

    while (!queue_empty(&w->all)) {
        warm_image_free(w, queue_data(queue_head(&w->all), warm_image_t,
                                      link));
    }

    free(w->hash);
    free(w);
}


/*
 * Views.
 */

static void
warm_info_fill(const warm_image_t *img, warm_info_t *info)
{
    size_t  i;

    memset(info, 0, sizeof(warm_info_t));
    info->id = img->id;
    info->ref = img->ref;
    info->state = img->state;
    info->blobs = img->n_blobs;
    info->bytes = img->bytes;

    for (i = 0; i < img->n_blobs; i++) {
        if (img->blobs[i].state == WARM_BLOB_STORED) {
            info->blobs_done++;
        }

        info->bytes_done += img->blobs[i].done;
    }
}


void
warm_list(warm_t *w, warm_each_pt each, void *data)
{
    queue_t      *q;
    warm_info_t   info;

    for (q = queue_head(&w->all); q != queue_sentinel(&w->all);
         q = queue_next(q))
    {
        warm_info_fill(queue_data(q, warm_image_t, link), &info);
        each(&info, data);
    }
}


static warm_image_t *
warm_by_id(warm_t *w, unsigned id)
{
    queue_t       *q;
    warm_image_t  *img;

    for (q = queue_head(&w->all); q != queue_sentinel(&w->all);
         q = queue_next(q))
    {
        img = queue_data(q, warm_image_t, link);

        if (img->id == id) {
            return img;
        }
    }

    return NULL;
}


int
warm_image(warm_t *w, unsigned id, warm_info_t *info)
{
    warm_image_t  *img;

    img = warm_by_id(w, id);
    if (img == NULL) {
        return OCI_ENOENT;
    }

    warm_info_fill(img, info);

    return OCI_OK;
}


int
warm_blobs(warm_t *w, unsigned id, warm_blob_each_pt each, void *data)
{
    warm_image_t  *img;
    warm_item_t   *it;
    size_t         i;

    img = warm_by_id(w, id);
    if (img == NULL) {
        return OCI_ENOENT;
    }

    for (i = 0; i < img->n_blobs; i++) {
        it = &img->blobs[i];
        each(it->digest, it->state, it->done, it->size, data);
    }

    return OCI_OK;
}


void
warm_state(warm_t *w, stats_warm_t *st)
{
    *st = w->stats;
    st->pending = w->count[WARM_RESOLVING] + w->count[WARM_FETCHING];
    st->done = w->count[WARM_DONE];
    st->failed = w->count[WARM_FAILED];
}
