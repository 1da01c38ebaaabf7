/*
 * ocimirrorctl scrub, scrub-status, and the scrub's line of status (see
 * ctl.h; the scrub itself is scrub.h).  Each line of scrub-status starts
 * with a word that says what it is (state, progress, rate, counts, last,
 * next, quarantine, finding): the CLI prints the lines as they are and
 * scripts look for those words.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "oci_ref.h"
#include "ctl.h"
#include "scrub.h"


/* t as "2024-05-01 12:00:00 UTC" */
static const char *
ctl_scrub_time(time_t t, char *buf, size_t cap)
{
    struct tm  tm;

    if (gmtime_r(&t, &tm) == NULL
        || strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
    {
        snprintf(buf, cap, "%lld", (long long) t);
    }

    return buf;
}


/* The rate a pass achieved, bytes per second. */
static long long
ctl_scrub_rate(const scrub_pass_t *p)
{
    return p->seconds > 0 ? (long long) ((double) p->read_bytes / p->seconds)
                          : 0;
}


int
ctl_scrub(ctl_call_t *call, int argc, char **argv)
{
    scrub_status_t   st;
    oci_imageref_t   ref;
    const char      *text;
    char             hex[OCI_SHA256_HEX_LEN + 1];
    char             name[SCRUB_NAME_MAX];
    char             a[32], b[32];
    int              deep, i, rc;

    deep = 0;
    text = NULL;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--deep") == 0) {
            deep = 1;
            continue;
        }

        if (argv[i][0] == '-' || text != NULL) {
            ctl_out(call, "usage: scrub [--deep] [REF]  (the whole store, "
                    "or REF's image; --deep also unpacks the layers and "
                    "compares them with their diff_ids)");
            return CTL_USAGE;
        }

        text = argv[i];
    }

    scrub_status(call->env->scrub, &st);

    if (st.running) {
        ctl_out(call, "a scrub is running already: %s%s, %llu of %llu "
                "files checked, for %s; \"scrub-status\" follows it",
                st.pass.deep ? "deep, " : "", st.pass.what,
                st.pass.checked, st.pass.listed,
                ctl_age((long long) st.pass.seconds, a, sizeof(a)));
        return CTL_FAIL;
    }

    name[0] = '\0';

    if (text != NULL) {
        rc = ctl_resolve(call, text, &ref, hex);
        if (rc != OCI_OK) {
            return rc;
        }

        oci_imageref_format(&ref, name, sizeof(name));
    }

    rc = scrub_start(call->env->scrub, deep, text != NULL ? hex : NULL,
                     name);

    switch (rc) {

    case OCI_OK:
        scrub_status(call->env->scrub, &st);
        ctl_out(call, "scrub started: %s%s, at most %s/s; \"scrub-status\" "
                "follows it", st.pass.what, deep ? ", deep" : "",
                ctl_bytes(st.rate, b, sizeof(b)));
        return CTL_OK;

    case OCI_EAGAIN:
        ctl_out(call, "a scrub is running already; \"scrub-status\" "
                "follows it");
        return CTL_FAIL;

    case OCI_ENOENT:
        ctl_out(call, "the manifest sha256:%s of %s is not in the store",
                hex, text);
        return CTL_FAIL;

    default:
        ctl_out(call, "out of memory");
        return CTL_FAIL;
    }
}


static void
ctl_scrub_finding(ctl_call_t *call, const scrub_finding_t *f)
{
    char  t[64];

    ctl_scrub_time(f->at, t, sizeof(t));

    if (f->kind == SCRUB_FINDING_CORRUPT) {
        ctl_out(call, "finding     %s corrupt %s%s%s, %s", t, f->digest,
                f->got[0] != '\0' ? " hashes to " : "", f->got, f->note);
        return;
    }

    ctl_out(call, "finding     %s diff_id image %s%s%s%s layer %s expected "
            "%s computed %s%s%s", t, f->image,
            f->name[0] != '\0' ? " (" : "", f->name,
            f->name[0] != '\0' ? ")" : "", f->digest,
            f->expected[0] != '\0' ? f->expected : "(none)",
            f->got[0] != '\0' ? f->got : "(nothing)",
            f->note[0] != '\0' ? ": " : "", f->note);
}


int
ctl_scrub_status(ctl_call_t *call, int argc, char **argv)
{
    const scrub_finding_t  *f;
    const scrub_pass_t     *p;
    scrub_status_t          st;
    time_t                  now, end;
    double                  share;
    char                    a[32], b[32], c[32], t[64], rate[48];
    size_t                  i;

    if (argc != 1) {
        ctl_out(call, "usage: scrub-status");
        return CTL_USAGE;
    }

    scrub_status(call->env->scrub, &st);
    p = &st.pass;
    now = time(NULL);

    if (st.running) {
        ctl_out(call, "state       running%s: %s, %s, for %s",
                p->deep ? " (deep)" : "", p->what, st.phase,
                ctl_age((long long) p->seconds, a, sizeof(a)));

    } else {
        ctl_out(call, "state       idle");
    }

    if (p->started == 0) {
        ctl_out(call, "progress    no pass since the fetcher started");

    } else {
        share = p->listed_bytes > 0 ? 100.0 * (double) p->read_bytes
                                      / (double) p->listed_bytes
                                    : 100.0;

        ctl_out(call, "progress    %s%llu of %llu files checked, %s of %s "
                "read (%.0f%%)", st.running ? "" : "last pass: ",
                p->checked, p->listed,
                ctl_bytes(p->read_bytes, a, sizeof(a)),
                ctl_bytes(p->listed_bytes, b, sizeof(b)),
                share > 100.0 ? 100.0 : share);

        if (p->deep) {
            ctl_out(call, "progress    %llu of %llu image manifests "
                    "checked against their configs", p->images_done,
                    p->images);
        }

        /* in its first second a pass has read a slice or two at once:
         * bytes over so little time say nothing of the pace */

        if (st.running && p->seconds < 1) {
            snprintf(rate, sizeof(rate), "not measured yet");

        } else {
            snprintf(rate, sizeof(rate), "%s/s",
                     ctl_bytes(ctl_scrub_rate(p), a, sizeof(a)));
        }

        ctl_out(call, "rate        %s (limit %s/s), %llu slice%s, the "
                "longest %.1f ms and %s", rate,
                ctl_bytes(st.rate, b, sizeof(b)), p->slices,
                p->slices == 1 ? "" : "s", p->slice_max_ms,
                ctl_bytes(p->slice_max_bytes, c, sizeof(c)));

        ctl_out(call, "counts      checked %llu, corrupt %llu, diff_id "
                "mismatches %llu, skipped %llu, vanished %llu", p->checked,
                p->corrupt, p->mismatches, p->skipped, p->vanished);
    }

    /* the last pass: this process's, else the last whole-store one
     * (scrub.state) */

    if (!st.running && p->started != 0) {
        end = p->started + (time_t) p->seconds;

        ctl_out(call, "last        %s (%s ago), took %s, %s%s",
                ctl_scrub_time(end, t, sizeof(t)),
                ctl_age((long long) (now - end), a, sizeof(a)),
                ctl_age((long long) p->seconds, b, sizeof(b)),
                p->deep ? "deep, " : "", p->what);

    } else if (st.last_completed > 0) {
        ctl_out(call, "last        %s (%s ago), took %s, %sthe whole store",
                ctl_scrub_time(st.last_completed, t, sizeof(t)),
                ctl_age((long long) (now - st.last_completed), a, sizeof(a)),
                st.last_seconds >= 0
                ? ctl_age((long long) st.last_seconds, b, sizeof(b)) : "?",
                st.last_deep ? "deep, " : "");

    } else {
        ctl_out(call, "last        never");
    }

    if (st.next == 0) {
        ctl_out(call, "next        on demand only (store.scrub_interval "
                "is 0)");

    } else if (st.next <= now) {
        ctl_out(call, "next        %s", st.running ? "when this pass ends"
                                        : "due now (after the store's "
                                          "index is loaded)");

    } else {
        ctl_out(call, "next        %s (in %s)%s",
                ctl_scrub_time(st.next, t, sizeof(t)),
                ctl_age((long long) (st.next - now), a, sizeof(a)),
                call->env->jobs->cf->scrub_deep ? ", deep" : "");
    }

    ctl_out(call, "quarantine  %llu file%s (at most %ld) in %s/%s",
            st.quarantined, st.quarantined == 1 ? "" : "s",
            st.quarantine_max, call->env->jobs->cf->store_path,
            SCRUB_QUARANTINE);

    for (i = 0; (f = scrub_finding(call->env->scrub, i)) != NULL; i++) {
        ctl_scrub_finding(call, f);
    }

    if (i == 0) {
        ctl_out(call, "findings    none since the fetcher started");
    }

    return CTL_OK;
}


void
ctl_scrub_summary(ctl_call_t *call)
{
    const scrub_pass_t  *p;
    scrub_status_t       st;
    time_t               now;
    char                 a[32], b[64];

    scrub_status(call->env->scrub, &st);
    p = &st.pass;
    now = time(NULL);

    if (st.running) {
        ctl_out(call, "scrub       running%s: %s, %llu of %llu files "
                "checked, %llu corrupt, %llu diff_id mismatches",
                p->deep ? " (deep)" : "", p->what, p->checked, p->listed,
                p->corrupt, p->mismatches);
        return;
    }

    if (st.next == 0) {
        snprintf(b, sizeof(b), "on demand only");

    } else if (st.next <= now) {
        snprintf(b, sizeof(b), "due now");

    } else {
        snprintf(b, sizeof(b), "next in %s",
                 ctl_age((long long) (st.next - now), a, sizeof(a)));
    }

    if (st.last_completed > 0) {
        ctl_out(call, "scrub       idle, last pass of the whole store %s "
                "ago, %s; %llu file%s in quarantine",
                ctl_age((long long) (now - st.last_completed), a, sizeof(a)),
                b, st.quarantined, st.quarantined == 1 ? "" : "s");

    } else {
        ctl_out(call, "scrub       idle, the whole store never scrubbed, "
                "%s; %llu file%s in quarantine", b, st.quarantined,
                st.quarantined == 1 ? "" : "s");
    }
}
