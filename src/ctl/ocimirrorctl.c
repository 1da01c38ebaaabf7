/*
 * ocimirrorctl: the operator's tool, as varnishadm is Varnish's.  It
 * sends each command to the running fetcher as one CTL line on its unix
 * socket and prints the answer (octl_conn.c), follows a warm or a scrub
 * until it ends (octl_watch.c), and measures the store itself for du
 * (octl_du.c), read-only, so that the fetcher's loop never walks it.
 *
 * The fetcher owns the grammar of its commands: they are passed through
 * as written, and only what the CLI adds itself (du, --no-wait, --wait)
 * is parsed here; clients writes runtimes' files from the config alone
 * (octl_clients.c).  Errors are one line on stderr, "ocimirrorctl: ...".
 */

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "oci_config.h"
#include "oci_ipc.h"
#include "octl_clients.h"
#include "octl_conn.h"
#include "octl_du.h"
#include "octl_watch.h"


#define OCTL_CONFIG_DEFAULT   "/etc/ocimirror/ocimirror.cfg"
#define OCTL_TIMEOUT_DEFAULT  30          /* seconds for an answer */
#define OCTL_TIMEOUT_MAX      86400
#define OCTL_WARM_POLL_MS     500
#define OCTL_SCRUB_POLL_MS    1000
#define OCTL_DU_TOP_DEFAULT   10
#define OCTL_DU_NEXT_DEFAULT  10

#define OCTL_EXIT_OK          0
#define OCTL_EXIT_FAIL        1
#define OCTL_EXIT_USAGE       2
#define OCTL_EXIT_INTERRUPTED 130         /* 128 + SIGINT, as shells do */

typedef struct {
    const char    *config;          /* -c */
    const char    *socket;          /* -s: the config is not needed */
    int            timeout;         /* -t, seconds */
    oci_config_t  *cf;              /* loaded when first needed */
} octl_t;

typedef int (*octl_cmd_pt)(octl_t *ctl, int argc, char **argv);

typedef struct {
    const char   *name;
    octl_cmd_pt   handler;
} octl_command_t;

static int octl_pass(octl_t *ctl, int argc, char **argv);
static int octl_warm(octl_t *ctl, int argc, char **argv);
static int octl_scrub(octl_t *ctl, int argc, char **argv);
static int octl_du(octl_t *ctl, int argc, char **argv);
static int octl_clients(octl_t *ctl, int argc, char **argv);
static int octl_help(octl_t *ctl, int argc, char **argv);

static const octl_command_t  octl_commands[] = {
    { "status", octl_pass },
    { "du", octl_du },
    { "clients", octl_clients },
    { "evict", octl_pass },
    { "pins", octl_pass },
    { "pin", octl_pass },
    { "unpin", octl_pass },
    { "purge", octl_pass },
    { "warm", octl_warm },
    { "warm-status", octl_pass },
    { "scrub", octl_scrub },
    { "scrub-status", octl_pass },
    { "help", octl_help },
};

/* Set by SIGINT while a warm or a scrub is watched: stop watching. */
static volatile sig_atomic_t  octl_interrupted;

static const char  octl_help_text[] =
"NAME\n"
"    ocimirrorctl - control the ocimirror fetcher and measure its store\n"
"\n"
"SYNOPSIS\n"
"    ocimirrorctl [-c FILE] [-s SOCKET] [-t SECONDS] COMMAND [ARGS...]\n"
"\n"
"DESCRIPTION\n"
"    Sends COMMAND to the running ocimirror-fetcher on its unix socket and\n"
"    prints the answer; du reads the store itself, read-only.  REF is\n"
"    registry/name[:tag|@digest] (the tag \"latest\" if neither); pin and\n"
"    unpin take globs (ghcr.io/org/*:*).  PLATFORM is os/arch or\n"
"    os/arch/variant.  Arguments hold no spaces.\n"
"\n"
"OPTIONS\n"
"    -c FILE     the config (default " OCTL_CONFIG_DEFAULT "):\n"
"                the fetcher's socket (fetcher.socket) and the store\n"
"                (store.path)\n"
"    -s SOCKET   the fetcher's socket; then only du and clients read the\n"
"                config\n"
"    -t SECONDS  how long to wait for an answer (default 30)\n"
"    -h          this text\n"
"\n"
"COMMANDS\n"
"    status                  the store, eviction, pins, jobs, warm and\n"
"                            scrub, as the fetcher sees them\n"
"    du [--top N] [--next N] [--bytes]\n"
"                            bytes on disk by registry and repository, the\n"
"                            N largest images (10) and the bytes no tag\n"
"                            reaches, from the store; the pins and the next\n"
"                            N files eviction takes (10), from the fetcher;\n"
"                            --bytes: exact numbers\n"
"    evict --dry-run [N]     the next N files eviction would take (20),\n"
"                            least recently used first\n"
"    pins                    the pins, and what they hold\n"
"    pin REF [PLATFORM...]   keep an image from eviction until the\n"
"                            fetcher restarts (store.pin: for good)\n"
"    unpin REF               undo a pin\n"
"    purge REF|DIGEST        remove an image (tag record, manifests,\n"
"                            blobs) or one file, now\n"
"    warm [--no-wait] REF [PLATFORM...]\n"
"                            fetch an image into the store and show its\n"
"                            progress until it is done; Ctrl-C stops the\n"
"                            waiting, not the warm\n"
"    warm-status [ID]        the warms, or one\n"
"    scrub [--wait] [--deep] [REF]\n"
"                            check stored files against their digests\n"
"                            (--deep: layers too); --wait polls\n"
"                            scrub-status until its state is idle\n"
"    scrub-status            the scrub running, or the last one\n"
"    clients --mirror URL [--out DIR] [--format F] [--ca FILE]\n"
"                            write the files that point clients at the\n"
"                            mirror URL, for every configured registry:\n"
"                            containerd's certs.d/<registry>/hosts.toml,\n"
"                            CRI-O/podman's registries.conf.d drop-in,\n"
"                            Docker's daemon.json (Docker Hub only); F is\n"
"                            containerd, crio, docker or all (all); DIR\n"
"                            the folder (.); --ca: the CA file containerd\n"
"                            checks an https mirror with\n"
"    help                    this text\n"
"\n"
"    pin, unpin, purge, warm and scrub change the mirror: the fetcher takes\n"
"    them from root and from its own user only.\n"
"\n"
"EXIT STATUS\n"
"    0 done; 1 failed (the answer, or a line on stderr, says why); 2 bad\n"
"    usage; 130 Ctrl-C while a warm or a scrub was watched (it goes on).\n"
"    du exits 0 when it measured the store, and says so in its report\n"
"    when the fetcher's part is unavailable.\n";


static void
octl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
octl_error(const char *fmt, ...)
{
    va_list  ap;

    fflush(stdout);
    fputs("ocimirrorctl: ", stderr);

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);

    fputc('\n', stderr);
}


static int
octl_help(octl_t *ctl, int argc, char **argv)
{
    fputs(octl_help_text, stdout);
    return OCTL_EXIT_OK;
}


static int
octl_config(octl_t *ctl)
{
    char  err[1024];

    if (ctl->cf != NULL) {
        return OCTL_EXIT_OK;
    }

    if (oci_config_load(ctl->config, &ctl->cf, err, sizeof(err)) != OCI_OK) {
        octl_error("%s", err);
        return OCTL_EXIT_FAIL;
    }

    return OCTL_EXIT_OK;
}


/* Connect to the fetcher: OCI_OK, or an error code with err filled. */
static int
octl_connect(octl_t *ctl, octl_conn_t *conn, char *err, size_t errlen)
{
    if (ctl->socket == NULL && ctl->cf == NULL) {
        if (oci_config_load(ctl->config, &ctl->cf, err, errlen) != OCI_OK) {
            return OCI_EINVAL;
        }
    }

    return octl_conn_open(conn, ctl->socket != NULL ? ctl->socket
                                                    : ctl->cf->fetcher_socket,
                          ctl->timeout * 1000, err, errlen);
}


/*
 * The command line word argv[0..argc) as one CTL text: each word must
 * survive the fetcher's split at spaces, and the whole fit one line.
 */
static int
octl_text(int argc, char **argv, char *text, size_t cap)
{
    const unsigned char  *p;
    size_t                len, n;
    int                   i;

    len = 0;

    for (i = 0; i < argc; i++) {
        if (argv[i][0] == '\0') {
            octl_error("argument %d is empty: the fetcher would not see it",
                       i + 1);
            return OCTL_EXIT_USAGE;
        }

        for (p = (const unsigned char *) argv[i]; *p != '\0'; p++) {
            if (*p <= ' ' || *p == 0x7f) {
                octl_error("argument \"%s\" holds a space or a control "
                           "byte: no argument of a command does", argv[i]);
                return OCTL_EXIT_USAGE;
            }
        }

        n = strlen(argv[i]);

        if (len + (i > 0) + n >= cap) {
            octl_error("the command line is longer than %zu bytes", cap - 1);
            return OCTL_EXIT_USAGE;
        }

        if (i > 0) {
            text[len++] = ' ';
        }

        memcpy(text + len, argv[i], n);
        len += n;
    }

    text[len] = '\0';

    return OCTL_EXIT_OK;
}


/* Take the CLI's own flag out of argv (it is never the fetcher's). */
static int
octl_take_flag(int *argc, char **argv, const char *flag)
{
    int  i, found;

    found = 0;

    for (i = 1; i < *argc; i++) {
        if (strcmp(argv[i], flag) == 0) {
            memmove(&argv[i], &argv[i + 1],
                    (size_t) (*argc - i) * sizeof(char *));
            (*argc)--;
            i--;
            found = 1;
        }
    }

    return found;
}


static void
octl_print_line(const char *line, void *data)
{
    FILE  *out = data;

    fputs(line, out);
    fputc('\n', out);
}


static void
octl_keep_line(const char *line, void *data)
{
    octl_lines_t  *l = data;

    /* out of memory: the line is lost, the answer still ends */
    (void) octl_lines_add(l, line);
}


static void
octl_print_lines(const octl_lines_t *l, const char *indent)
{
    size_t  i;

    for (i = 0; i < l->n; i++) {
        printf("%s%s\n", indent, l->v[i]);
    }
}


/* A command whose answer is printed as it comes. */
static int
octl_pass(octl_t *ctl, int argc, char **argv)
{
    octl_conn_t  conn;
    char         text[OCI_IPC_TEXT_MAX], err[1024];
    int          rc;

    rc = octl_text(argc, argv, text, sizeof(text));
    if (rc != OCTL_EXIT_OK) {
        return rc;
    }

    if (octl_connect(ctl, &conn, err, sizeof(err)) != OCI_OK) {
        octl_error("%s", err);
        return OCTL_EXIT_FAIL;
    }

    rc = octl_conn_call(&conn, text, octl_print_line, stdout, err,
                        sizeof(err));
    octl_conn_close(&conn);

    if (rc < 0) {
        octl_error("%s", err);
        return OCTL_EXIT_FAIL;
    }

    return rc;
}


static void
octl_on_sigint(int sig)
{
    octl_interrupted = 1;
}


/* Ctrl-C sets octl_interrupted and wakes poll(): the watch ends, not
 * the process (no SA_RESTART, so a wait returns EINTR). */
static void
octl_catch_sigint(void)
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = octl_on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}


/* Sleep ms, or less if Ctrl-C comes: 1 if it came. */
static int
octl_pause(int ms)
{
    if (!octl_interrupted) {
        (void) poll(NULL, 0, ms);
    }

    return octl_interrupted;
}


static void
octl_view_open(octl_view_t *v)
{
    struct winsize  ws;
    int             tty;

    tty = isatty(STDOUT_FILENO);

    if (!tty || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0) {
        ws.ws_col = 0;
        ws.ws_row = 0;
    }

    octl_view_init(v, stdout, tty, ws.ws_col, ws.ws_row);
}


typedef struct {
    octl_warm_t   *warm;
    octl_lines_t  *raw;
    int            bad;             /* a line is not warm-status's */
    char           bad_line[96];
} octl_warm_answer_t;


static void
octl_warm_out(const char *line, void *data)
{
    octl_warm_answer_t  *a = data;

    (void) octl_lines_add(a->raw, line);

    if (!a->bad && octl_warm_line(a->warm, line) != OCI_OK) {
        a->bad = 1;
        snprintf(a->bad_line, sizeof(a->bad_line), "%s", line);
    }
}


/* Poll warm-status id and show it until the warm ends or Ctrl-C. */
static int
octl_warm_watch(octl_conn_t *conn, unsigned long id)
{
    octl_warm_answer_t  a;
    octl_lines_t        raw;
    octl_warm_t         w;
    octl_view_t         v;
    char                text[64], err[1024];
    int                 rc, status;

    memset(&w, 0, sizeof(w));
    memset(&raw, 0, sizeof(raw));
    octl_view_open(&v);

    snprintf(text, sizeof(text), "warm-status %lu", id);

    octl_catch_sigint();
    conn->stop = &octl_interrupted;

    status = OCTL_EXIT_INTERRUPTED;

    while (!octl_pause(OCTL_WARM_POLL_MS)) {
        octl_warm_reset(&w);
        octl_lines_clear(&raw);

        a.warm = &w;
        a.raw = &raw;
        a.bad = 0;

        rc = octl_conn_call(conn, text, octl_warm_out, &a, err, sizeof(err));

        if (rc == OCTL_EINTR) {
            break;
        }

        if (rc < 0) {
            octl_error("%s", err);
            status = OCTL_EXIT_FAIL;
            break;
        }

        if (rc != OCTL_EXIT_OK) {
            /* the fetcher's own answer: the warm is gone, say, or this
             * fetcher has no warm-status */
            octl_print_lines(&raw, "");
            status = rc;
            break;
        }

        if (a.bad || w.lines == 0 || w.id != id) {
            octl_error("malformed answer to \"%s\": \"%s\"", text,
                       a.bad ? a.bad_line : raw.n > 0 ? raw.v[0] : "");
            status = OCTL_EXIT_FAIL;
            break;
        }

        if (octl_view_warm(&v, &w) != OCI_OK) {
            octl_error("out of memory");
            status = OCTL_EXIT_FAIL;
            break;
        }

        if (octl_warm_end(&w) == OCTL_WARM_DONE) {
            status = OCTL_EXIT_OK;
            break;
        }

        if (octl_warm_end(&w) == OCTL_WARM_FAILED) {
            octl_error("warm #%lu of %s failed", id, w.ref);
            status = OCTL_EXIT_FAIL;
            break;
        }
    }

    if (status == OCTL_EXIT_INTERRUPTED) {
        octl_error("stopped waiting; warm #%lu goes on in the fetcher "
                   "(\"ocimirrorctl warm-status %lu\" shows it)", id, id);
    }

    octl_view_free(&v);
    octl_lines_free(&raw);
    octl_warm_free(&w);

    return status;
}


static int
octl_warm(octl_t *ctl, int argc, char **argv)
{
    octl_lines_t   lines;
    octl_conn_t    conn;
    unsigned long  id;
    size_t         i;
    char           text[OCI_IPC_TEXT_MAX], err[1024];
    int            rc, no_wait;

    no_wait = octl_take_flag(&argc, argv, "--no-wait");

    rc = octl_text(argc, argv, text, sizeof(text));
    if (rc != OCTL_EXIT_OK) {
        return rc;
    }

    if (octl_connect(ctl, &conn, err, sizeof(err)) != OCI_OK) {
        octl_error("%s", err);
        return OCTL_EXIT_FAIL;
    }

    memset(&lines, 0, sizeof(lines));

    rc = octl_conn_call(&conn, text, octl_keep_line, &lines, err,
                        sizeof(err));

    if (rc < 0) {
        octl_error("%s", err);
        rc = OCTL_EXIT_FAIL;
        goto done;
    }

    octl_print_lines(&lines, "");

    if (rc != OCTL_EXIT_OK) {
        goto done;
    }

    for (i = 0; i < lines.n; i++) {
        if (octl_warm_queued(lines.v[i], &id) == OCI_OK) {
            break;
        }
    }

    if (i == lines.n) {
        octl_error("malformed answer to warm: no \"#<id> queued <ref>\" "
                   "line");
        rc = OCTL_EXIT_FAIL;
        goto done;
    }

    fflush(stdout);

    if (!no_wait) {
        rc = octl_warm_watch(&conn, id);
    }

done:

    octl_lines_free(&lines);
    octl_conn_close(&conn);

    return rc;
}


static int
octl_scrub(octl_t *ctl, int argc, char **argv)
{
    octl_lines_t   lines;
    octl_conn_t    conn;
    octl_view_t    v;
    char           text[OCI_IPC_TEXT_MAX], err[1024];
    int            rc, status;

    if (!octl_take_flag(&argc, argv, "--wait")) {
        return octl_pass(ctl, argc, argv);
    }

    rc = octl_text(argc, argv, text, sizeof(text));
    if (rc != OCTL_EXIT_OK) {
        return rc;
    }

    if (octl_connect(ctl, &conn, err, sizeof(err)) != OCI_OK) {
        octl_error("%s", err);
        return OCTL_EXIT_FAIL;
    }

    rc = octl_conn_call(&conn, text, octl_print_line, stdout, err,
                        sizeof(err));

    if (rc != OCTL_EXIT_OK) {
        if (rc < 0) {
            octl_error("%s", err);
            rc = OCTL_EXIT_FAIL;
        }

        octl_conn_close(&conn);
        return rc;
    }

    fflush(stdout);

    memset(&lines, 0, sizeof(lines));
    octl_view_open(&v);
    octl_catch_sigint();
    conn.stop = &octl_interrupted;

    status = OCTL_EXIT_INTERRUPTED;

    while (!octl_pause(OCTL_SCRUB_POLL_MS)) {
        octl_lines_clear(&lines);

        rc = octl_conn_call(&conn, "scrub-status", octl_keep_line, &lines,
                            err, sizeof(err));

        if (rc == OCTL_EINTR) {
            break;
        }

        if (rc < 0) {
            octl_error("%s", err);
            status = OCTL_EXIT_FAIL;
            break;
        }

        if (rc != OCTL_EXIT_OK) {
            octl_print_lines(&lines, "");
            status = rc;
            break;
        }

        octl_view_lines(&v, &lines);

        if (octl_lines_idle(&lines)) {
            if (!v.tty) {
                octl_print_lines(&lines, "");
            }

            status = OCTL_EXIT_OK;
            break;
        }
    }

    if (status == OCTL_EXIT_INTERRUPTED) {
        octl_error("stopped waiting; the scrub goes on in the fetcher "
                   "(\"ocimirrorctl scrub-status\" shows it)");
    }

    octl_view_free(&v);
    octl_lines_free(&lines);
    octl_conn_close(&conn);

    return status;
}


/* "N" of an option: 0 to max. */
static int
octl_count(const char *opt, const char *s, long max, long *out)
{
    char  *end;
    long   v;

    if (s == NULL) {
        octl_error("%s needs a number", opt);
        return OCTL_EXIT_USAGE;
    }

    errno = 0;
    v = strtol(s, &end, 10);

    if (errno != 0 || end == s || *end != '\0' || v < 0 || v > max) {
        octl_error("%s \"%s\": a number from 0 to %ld", opt, s, max);
        return OCTL_EXIT_USAGE;
    }

    *out = v;

    return OCTL_EXIT_OK;
}


/* The fetcher's part of du: pins and what eviction takes next. */
static void
octl_du_live(octl_t *ctl, long next)
{
    octl_lines_t  lines;
    octl_conn_t   conn;
    char          text[64], err[1024];
    int           rc;

    printf("\nfetcher\n");

    if (octl_connect(ctl, &conn, err, sizeof(err)) != OCI_OK) {
        printf("  unavailable: %s\n", err);
        return;
    }

    memset(&lines, 0, sizeof(lines));

    rc = octl_conn_call(&conn, "pins", octl_keep_line, &lines, err,
                        sizeof(err));

    if (rc < 0) {
        printf("  unavailable: %s\n", err);
        goto done;
    }

    /* the first line is the sum: "N pins, holding F stored files, B" */
    if (lines.n > 0) {
        printf("  pinned: %s\n", lines.v[0]);
    }

    octl_lines_clear(&lines);

    snprintf(text, sizeof(text), "evict --dry-run %ld", next);

    rc = octl_conn_call(&conn, text, octl_keep_line, &lines, err,
                        sizeof(err));

    if (rc < 0) {
        printf("  unavailable: %s\n", err);
        goto done;
    }

    octl_print_lines(&lines, "  ");

done:

    octl_lines_free(&lines);
    octl_conn_close(&conn);
}


static int
octl_du(octl_t *ctl, int argc, char **argv)
{
    octl_du_t  du;
    char       err[1024];
    long       top, next;
    int        i, exact, rc;

    top = OCTL_DU_TOP_DEFAULT;
    next = OCTL_DU_NEXT_DEFAULT;
    exact = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bytes") == 0) {
            exact = 1;

        } else if (strcmp(argv[i], "--top") == 0) {
            rc = octl_count("--top", argv[i + 1], OCTL_DU_TOP_MAX, &top);
            if (rc != OCTL_EXIT_OK) {
                return rc;
            }

            i++;

        } else if (strcmp(argv[i], "--next") == 0) {
            rc = octl_count("--next", argv[i + 1], 100000, &next);
            if (rc != OCTL_EXIT_OK) {
                return rc;
            }

            i++;

        } else {
            octl_error("du: unknown argument \"%s\" (du [--top N] "
                       "[--next N] [--bytes])", argv[i]);
            return OCTL_EXIT_USAGE;
        }
    }

    rc = octl_config(ctl);
    if (rc != OCTL_EXIT_OK) {
        return rc;
    }

    rc = octl_du_walk(ctl->cf->store_path, (size_t) top, &du, err,
                      sizeof(err));

    if (rc != OCI_OK) {
        octl_du_free(&du);
        octl_error("%s", err);
        return OCTL_EXIT_FAIL;
    }

    octl_du_print(stdout, ctl->cf->store_path, &du, exact);
    octl_du_free(&du);

    octl_du_live(ctl, next);

    return OCTL_EXIT_OK;
}


static void
octl_clients_report(const char *line, void *data)
{
    printf("%s\n", line);
}


/* clients: generated from the config alone; the fetcher is not asked. */
static int
octl_clients(octl_t *ctl, int argc, char **argv)
{
    octl_mirror_t  m;
    const char    *url, *dir, *format, *ca;
    unsigned       formats;
    char           err[OCI_PATH_MAX + 256];
    int            i, rc;

    url = NULL;
    dir = ".";
    format = "all";
    ca = NULL;

    for (i = 1; i < argc; i++) {
        if (i + 1 == argc
            || (strcmp(argv[i], "--mirror") != 0
                && strcmp(argv[i], "--out") != 0
                && strcmp(argv[i], "--format") != 0
                && strcmp(argv[i], "--ca") != 0))
        {
            octl_error("clients: %s \"%s\" (clients --mirror URL "
                       "[--out DIR] [--format containerd|crio|docker|all] "
                       "[--ca FILE])",
                       i + 1 == argc && argv[i][0] == '-'
                       ? "a value is missing after" : "unknown argument",
                       argv[i]);
            return OCTL_EXIT_USAGE;
        }

        if (strcmp(argv[i], "--mirror") == 0) {
            url = argv[i + 1];

        } else if (strcmp(argv[i], "--out") == 0) {
            dir = argv[i + 1];

        } else if (strcmp(argv[i], "--format") == 0) {
            format = argv[i + 1];

        } else {
            ca = argv[i + 1];
        }

        i++;
    }

    if (url == NULL) {
        octl_error("clients: --mirror URL is needed (the address clients "
                   "reach the mirror at, http://mirror.example:5000)");
        return OCTL_EXIT_USAGE;
    }

    if (strcmp(format, "all") == 0) {
        formats = OCTL_CLIENTS_ALL;

    } else if (strcmp(format, "containerd") == 0) {
        formats = OCTL_CLIENTS_CONTAINERD;

    } else if (strcmp(format, "crio") == 0) {
        formats = OCTL_CLIENTS_CRIO;

    } else if (strcmp(format, "docker") == 0) {
        formats = OCTL_CLIENTS_DOCKER;

    } else {
        octl_error("clients: --format \"%s\": containerd, crio, docker or "
                   "all", format);
        return OCTL_EXIT_USAGE;
    }

    if (ca != NULL && ca[0] != '/') {
        octl_error("clients: --ca \"%s\": the path on the nodes, absolute",
                   ca);
        return OCTL_EXIT_USAGE;
    }

    if (dir[0] == '\0') {
        octl_error("clients: --out is empty");
        return OCTL_EXIT_USAGE;
    }

    if (octl_mirror_parse(url, &m, err, sizeof(err)) != OCI_OK) {
        octl_error("clients: %s", err);
        return OCTL_EXIT_USAGE;
    }

    if (ca != NULL && !m.https) {
        octl_error("clients: --ca is for an https:// mirror");
        return OCTL_EXIT_USAGE;
    }

    rc = octl_config(ctl);
    if (rc != OCTL_EXIT_OK) {
        return rc;
    }

    if (octl_clients_write(ctl->cf, &m, dir, formats, ca,
                           octl_clients_report, NULL, err, sizeof(err))
        != OCI_OK)
    {
        octl_error("clients: %s", err);
        return OCTL_EXIT_FAIL;
    }

    return OCTL_EXIT_OK;
}


/* what is wrong (its own quotes), and how it is used */
static void
octl_usage_error(const char *what, const char *arg)
{
    octl_error("%s%s; usage: ocimirrorctl [-c FILE] [-s SOCKET] "
               "[-t SECONDS] COMMAND [ARGS...] (\"ocimirrorctl help\" "
               "lists the commands)", what, arg);
}


int
main(int argc, char **argv)
{
    static const struct option  long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    octl_t   ctl;
    size_t   i;
    long     timeout;
    char     opt[3], what[64];
    int      c, rc;

    memset(&ctl, 0, sizeof(ctl));
    ctl.config = OCTL_CONFIG_DEFAULT;
    ctl.timeout = OCTL_TIMEOUT_DEFAULT;

    opterr = 0;

    /* "+": options end at the command; its own start with '-' too */
    while ((c = getopt_long(argc, argv, "+c:s:t:h", long_options, NULL))
           != -1)
    {
        switch (c) {

        case 'c':
            ctl.config = optarg;
            break;

        case 's':
            ctl.socket = optarg;
            break;

        case 't':
            rc = octl_count("-t", optarg, OCTL_TIMEOUT_MAX, &timeout);
            if (rc != OCTL_EXIT_OK) {
                return rc;
            }

            if (timeout == 0) {
                octl_error("-t 0: the wait must be at least a second");
                return OCTL_EXIT_USAGE;
            }

            ctl.timeout = (int) timeout;
            break;

        case 'h':
            return octl_help(&ctl, 0, NULL);

        default:
            opt[0] = '-';
            opt[1] = (char) optopt;
            opt[2] = '\0';

            if (optopt == 'c' || optopt == 's' || optopt == 't') {
                snprintf(what, sizeof(what), "option %s needs a value",
                         opt);
                octl_usage_error(what, "");

            } else {
                octl_usage_error("unknown option ",
                                 optopt != 0 ? opt : argv[optind - 1]);
            }

            return OCTL_EXIT_USAGE;
        }
    }

    if (optind == argc) {
        octl_usage_error("no command", "");
        return OCTL_EXIT_USAGE;
    }

    for (i = 0; i < sizeof(octl_commands) / sizeof(octl_commands[0]); i++) {
        if (strcmp(octl_commands[i].name, argv[optind]) == 0) {
            break;
        }
    }

    if (i == sizeof(octl_commands) / sizeof(octl_commands[0])) {
        octl_usage_error("unknown command ", argv[optind]);
        return OCTL_EXIT_USAGE;
    }

    rc = octl_commands[i].handler(&ctl, argc - optind, argv + optind);

    if (ctl.cf != NULL) {
        oci_config_destroy(ctl.cf);
    }

    if (fflush(stdout) != 0 && rc == OCTL_EXIT_OK) {
        octl_error("cannot write the answer: %s", strerror(errno));
        return OCTL_EXIT_FAIL;
    }

    return rc;
}
