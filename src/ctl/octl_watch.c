/*
 * ocimirrorctl watching a warm or a scrub (see octl_watch.h).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci_ref.h"
#include "octl_fmt.h"
#include "octl_watch.h"


#define OCTL_BAR_WIDTH    20
#define OCTL_SHORT_HEX    12           /* of a digest, as docker shows it */
#define OCTL_TOKENS_MAX   6
#define OCTL_FRAME_ROWS   3            /* a frame's lines, at the least */


typedef struct {
    const char  *p;
    size_t       len;
} octl_tok_t;


/* Split s at single spaces (after leading ones) into at most max
 * tokens: their count, or -1 if there are more, or an empty one. */
static int
octl_split(const char *s, octl_tok_t *t, int max)
{
    const char  *sp;
    int          n;

    while (*s == ' ') {
        s++;
    }

    for (n = 0; *s != '\0'; n++) {
        if (n == max) {
            return -1;
        }

        sp = strchr(s, ' ');

        t[n].p = s;
        t[n].len = sp != NULL ? (size_t) (sp - s) : strlen(s);

        if (t[n].len == 0) {
            return -1;
        }

        if (sp == NULL) {
            return n + 1;
        }

        s = sp + 1;
    }

    return n;
}


static int
octl_num(const char *p, size_t len, long long *out)
{
    long long  v;
    size_t     i;

    if (len == 0 || len > 18) {
        return OCI_EINVAL;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return OCI_EINVAL;
        }

        v = v * 10 + (p[i] - '0');
    }

    *out = v;

    return OCI_OK;
}


/* "<a>/<b>" */
static int
octl_pair(const octl_tok_t *t, long long *a, long long *b)
{
    const char  *slash;

    slash = memchr(t->p, '/', t->len);

    if (slash == NULL
        || octl_num(t->p, (size_t) (slash - t->p), a) != OCI_OK
        || octl_num(slash + 1, t->len - (size_t) (slash - t->p) - 1, b)
           != OCI_OK)
    {
        return OCI_EINVAL;
    }

    return OCI_OK;
}


/* "#<id>" */
static int
octl_id(const octl_tok_t *t, unsigned long *id)
{
    long long  v;

    if (t->len < 2 || t->p[0] != '#'
        || octl_num(t->p + 1, t->len - 1, &v) != OCI_OK)
    {
        return OCI_EINVAL;
    }

    *id = (unsigned long) v;

    return OCI_OK;
}


static int
octl_copy(const octl_tok_t *t, char *dst, size_t cap)
{
    if (t->len >= cap) {
        return OCI_EINVAL;
    }

    memcpy(dst, t->p, t->len);
    dst[t->len] = '\0';

    return OCI_OK;
}


int
octl_warm_queued(const char *line, unsigned long *id)
{
    octl_tok_t  t[OCTL_TOKENS_MAX];

    if (line[0] != '#' || octl_split(line, t, 3) != 3
        || t[1].len != 6 || memcmp(t[1].p, "queued", 6) != 0)
    {
        return OCI_EINVAL;
    }

    return octl_id(&t[0], id);
}


void
octl_warm_reset(octl_warm_t *w)
{
    w->n = 0;
    w->lines = 0;
    w->state[0] = '\0';
}


int
octl_warm_line(octl_warm_t *w, const char *line)
{
    octl_warm_blob_t  *b;
    octl_tok_t         t[OCTL_TOKENS_MAX];
    size_t             ncap;

    if (w->lines == 0) {
        if (line[0] != '#' || octl_split(line, t, 5) != 5
            || octl_id(&t[0], &w->id) != OCI_OK
            || octl_copy(&t[1], w->state, sizeof(w->state)) != OCI_OK
            || octl_copy(&t[2], w->ref, sizeof(w->ref)) != OCI_OK
            || octl_pair(&t[3], &w->blobs_done, &w->blobs) != OCI_OK
            || octl_pair(&t[4], &w->bytes_done, &w->bytes) != OCI_OK)
        {
            return OCI_EINVAL;
        }

        w->lines++;
        return OCI_OK;
    }

    if (w->n == w->cap) {
        ncap = w->cap == 0 ? 16 : w->cap * 2;
        b = realloc(w->blob, ncap * sizeof(octl_warm_blob_t));

        if (b == NULL) {
            return OCI_ENOMEM;
        }

        w->blob = b;
        w->cap = ncap;
    }

    b = &w->blob[w->n];

    if (line[0] != ' ' || octl_split(line, t, 3) != 3
        || octl_copy(&t[0], b->digest, sizeof(b->digest)) != OCI_OK
        || oci_digest_parse(b->digest, strlen(b->digest), NULL) != OCI_OK
        || octl_copy(&t[1], b->state, sizeof(b->state)) != OCI_OK
        || octl_pair(&t[2], &b->done, &b->size) != OCI_OK)
    {
        return OCI_EINVAL;
    }

    w->n++;
    w->lines++;

    return OCI_OK;
}


octl_warm_end_t
octl_warm_end(const octl_warm_t *w)
{
    if (strcmp(w->state, "done") == 0) {
        return OCTL_WARM_DONE;
    }

    if (strcmp(w->state, "failed") == 0) {
        return OCTL_WARM_FAILED;
    }

    return OCTL_WARM_GOING;
}


void
octl_warm_free(octl_warm_t *w)
{
    free(w->blob);
    memset(w, 0, sizeof(octl_warm_t));
}


int
octl_lines_add(octl_lines_t *l, const char *s)
{
    char    **v;
    size_t    ncap;

    if (l->n == l->cap) {
        ncap = l->cap == 0 ? 16 : l->cap * 2;
        v = realloc(l->v, ncap * sizeof(char *));

        if (v == NULL) {
            return OCI_ENOMEM;
        }

        l->v = v;
        l->cap = ncap;
    }

    l->v[l->n] = strdup(s);

    if (l->v[l->n] == NULL) {
        return OCI_ENOMEM;
    }

    l->n++;

    return OCI_OK;
}


int
octl_lines_idle(const octl_lines_t *l)
{
    const char  *p;
    size_t       i;

    for (i = 0; i < l->n; i++) {
        p = l->v[i];
        p += strspn(p, " ");

        if (strncmp(p, "state", 5) != 0) {
            continue;
        }

        p += 5;

        /* "state" alone, not "stateful" */
        if (*p != ' ' && *p != ':') {
            continue;
        }

        p += strspn(p, " :");

        if (strncmp(p, "idle", 4) == 0
            && (p[4] == '\0' || strchr(" ,;(", p[4]) != NULL))
        {
            return 1;
        }
    }

    return 0;
}


void
octl_lines_clear(octl_lines_t *l)
{
    while (l->n > 0) {
        free(l->v[--l->n]);
    }
}


void
octl_lines_free(octl_lines_t *l)
{
    octl_lines_clear(l);
    free(l->v);
    memset(l, 0, sizeof(octl_lines_t));
}


void
octl_view_init(octl_view_t *v, FILE *out, int tty, int width, int rows)
{
    memset(v, 0, sizeof(octl_view_t));
    v->out = out;
    v->tty = tty;
    v->width = width > 20 ? width : 80;
    v->rows = rows > OCTL_FRAME_ROWS ? rows : 24;
}


/* Draw l over the frame drawn before (its lines cut to the width). */
static void
octl_view_draw(octl_view_t *v, const octl_lines_t *l)
{
    size_t  i, len, max;

    if (v->drawn > 0) {
        fprintf(v->out, "\033[%zuA", v->drawn);
    }

    max = (size_t) v->width - 1;

    for (i = 0; i < l->n; i++) {
        len = strlen(l->v[i]);
        fputs("\r\033[2K", v->out);
        fwrite(l->v[i], 1, len < max ? len : max, v->out);
        fputc('\n', v->out);
    }

    /* a shorter frame than the last: clear what is left below */
    fputs("\033[J", v->out);
    fflush(v->out);

    v->drawn = l->n;
}


void
octl_view_lines(octl_view_t *v, const octl_lines_t *l)
{
    if (v->tty) {
        octl_view_draw(v, l);
    }
}


/* The order blobs are shown in when they do not all fit: work going on
 * and failures, then what waits, then what is done. */
static int
octl_view_rank(const octl_warm_blob_t *b)
{
    if (strcmp(b->state, "stored") == 0) {
        return 2;
    }

    if (strcmp(b->state, "queued") == 0) {
        return 1;
    }

    return 0;
}


static int
octl_view_frame_add(octl_view_t *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
octl_view_frame_add(octl_view_t *v, const char *fmt, ...)
{
    va_list  ap;
    char     line[OCTL_REF_MAX + 256];

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);

    return octl_lines_add(&v->frame, line);
}


static int
octl_view_blob(octl_view_t *v, const octl_warm_blob_t *b)
{
    char         bar[OCTL_BAR_WIDTH + 1], a[OCTL_BYTES_LEN];
    char         s[OCTL_BYTES_LEN];
    const char  *hex;
    int          pct, fill;

    pct = strcmp(b->state, "stored") == 0 ? 100 : octl_percent(b->done,
                                                               b->size);
    fill = pct * OCTL_BAR_WIDTH / 100;

    memset(bar, '#', (size_t) fill);
    memset(bar + fill, ' ', (size_t) (OCTL_BAR_WIDTH - fill));
    bar[OCTL_BAR_WIDTH] = '\0';

    hex = strchr(b->digest, ':') != NULL ? strchr(b->digest, ':') + 1
                                         : b->digest;

    return octl_view_frame_add(v, "  %.*s  %-8s [%s] %3d%%  %s of %s",
                               OCTL_SHORT_HEX, hex, b->state, bar, pct,
                               octl_bytes(b->done, 0, a, sizeof(a)),
                               octl_bytes(b->size, 0, s, sizeof(s)));
}


static int
octl_view_warm_tty(octl_view_t *v, const octl_warm_t *w)
{
    char    a[OCTL_BYTES_LEN], s[OCTL_BYTES_LEN];
    size_t  i, room, shown, left[3];
    int     rank, rc;

    octl_lines_clear(&v->frame);

    rc = octl_view_frame_add(v, "#%lu %s %s  %lld/%lld blobs  %s of %s  %d%%",
                             w->id, w->state, w->ref, w->blobs_done, w->blobs,
                             octl_bytes(w->bytes_done, 0, a, sizeof(a)),
                             octl_bytes(w->bytes, 0, s, sizeof(s)),
                             octl_warm_end(w) == OCTL_WARM_DONE ? 100
                             : octl_percent(w->bytes_done, w->bytes));

    /* the frame must fit the screen, or cursor-up cannot reach its top */
    room = (size_t) v->rows - 2;
    shown = 0;

    if (w->n <= room) {
        for (i = 0; i < w->n && rc == OCI_OK; i++) {
            rc = octl_view_blob(v, &w->blob[i]);
        }

        if (rc == OCI_OK) {
            octl_view_draw(v, &v->frame);
        }

        return rc;
    }

    left[0] = left[1] = left[2] = 0;

    for (rank = 0; rank < 3 && rc == OCI_OK; rank++) {
        for (i = 0; i < w->n && rc == OCI_OK; i++) {
            if (octl_view_rank(&w->blob[i]) != rank) {
                continue;
            }

            if (shown < room - 1) {
                rc = octl_view_blob(v, &w->blob[i]);
                shown++;

            } else {
                left[rank]++;
            }
        }
    }

    if (rc == OCI_OK) {
        rc = octl_view_frame_add(v, "  ... and %zu more: %zu stored, %zu "
                                 "queued, %zu other",
                                 left[0] + left[1] + left[2], left[2],
                                 left[1], left[0]);
    }

    if (rc == OCI_OK) {
        octl_view_draw(v, &v->frame);
    }

    return rc;
}


static void
octl_view_image_line(octl_view_t *v, const octl_warm_t *w)
{
    fprintf(v->out, "#%lu %s %s %lld/%lld %lld/%lld\n", w->id, w->state,
            w->ref, w->blobs_done, w->blobs, w->bytes_done, w->bytes);
    snprintf(v->state, sizeof(v->state), "%s", w->state);
}


/* Not a terminal: the lines whose state changed since the last call. */
static int
octl_view_warm_log(octl_view_t *v, const octl_warm_t *w)
{
    const octl_warm_blob_t  *b;
    octl_seen_t             *s;
    size_t                   i, j, ncap;
    int                      changed;

    changed = strcmp(v->state, w->state) != 0;

    /* the image's news first, unless it is the end: then it is last */
    if (changed && octl_warm_end(w) == OCTL_WARM_GOING) {
        octl_view_image_line(v, w);
    }

    for (i = 0; i < w->n; i++) {
        b = &w->blob[i];

        for (j = 0; j < v->n_seen; j++) {
            if (strcmp(v->seen[j].digest, b->digest) == 0) {
                break;
            }
        }

        if (j == v->n_seen) {
            if (v->n_seen == v->cap_seen) {
                ncap = v->cap_seen == 0 ? 16 : v->cap_seen * 2;
                s = realloc(v->seen, ncap * sizeof(octl_seen_t));

                if (s == NULL) {
                    return OCI_ENOMEM;
                }

                v->seen = s;
                v->cap_seen = ncap;
            }

            s = &v->seen[v->n_seen++];
            memcpy(s->digest, b->digest, sizeof(s->digest));
            s->state[0] = '\0';

        } else {
            s = &v->seen[j];
        }

        if (strcmp(s->state, b->state) != 0) {
            fprintf(v->out, "  %s %s %lld/%lld\n", b->digest, b->state,
                    b->done, b->size);
            memcpy(s->state, b->state, sizeof(s->state));
        }
    }

    if (changed && octl_warm_end(w) != OCTL_WARM_GOING) {
        octl_view_image_line(v, w);
    }

    fflush(v->out);

    return OCI_OK;
}


int
octl_view_warm(octl_view_t *v, const octl_warm_t *w)
{
    return v->tty ? octl_view_warm_tty(v, w) : octl_view_warm_log(v, w);
}


void
octl_view_free(octl_view_t *v)
{
    free(v->seen);
    octl_lines_free(&v->frame);
    v->seen = NULL;
    v->n_seen = 0;
    v->cap_seen = 0;
}
