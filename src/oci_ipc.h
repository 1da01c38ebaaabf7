/*
 * The line protocol between nginx workers and the fetcher, over one unix
 * stream socket per worker.  Every message is one line of at most
 * OCI_IPC_LINE_MAX bytes: a verb, a request id chosen by the worker, and
 * space-separated tokens that never contain spaces or control bytes
 * ('-' stands for an empty token).  Only FAIL's last field, a message,
 * runs to the end of the line.
 *
 * worker -> fetcher
 *   PING     <id>
 *   BLOB     <id> <registry> <name> <digest>
 *   STAT     <id> <registry> <name> <digest>
 *                                     a HEAD of a blob: its size, from the
 *                                     store or the upstream's HEAD;
 *                                     nothing is downloaded or stored
 *   MANIFEST <id> <registry> <name> <reference> <head:0|1> <accept|->
 *                                     accept "-": the mirror's own answer
 *                                     (upstream asked for every manifest
 *                                     type; the tag record, the stored
 *                                     manifest); a list (of a tag): what
 *                                     the upstream answers a client with
 *                                     that Accept, relayed and never
 *                                     stored
 *   TAGS     <id> <registry> <name> <n|-1> <last|->
 *   REFERRERS <id> <registry> <name> <digest> <artifact-type|->
 *   STATS    <id>                     the fetcher's metrics
 *   STATUS   <id>                     the fetcher's part of the status
 *                                     page: downloads in flight, the
 *                                     store, the endpoints, the last
 *                                     errors (a JSON object)
 *   USED     <id> <digest>            a stored blob or manifest was served
 *                                     (recency for the cache manager;
 *                                     batched by the worker, no answer)
 *   REPLICATE <id> <registry> <name> <digest>
 *                                     a cluster node with replicate "hot":
 *                                     a blob its clients ask for often and
 *                                     another node owns; the fetcher
 *                                     copies it here from the owner, in
 *                                     the background (no answer; id 0)
 *   CANCEL   <id>                     the worker's client went away
 *   DETACH   <id>                     the request has what it needs (a
 *                                     range on disk) and leaves, but the
 *                                     download is wanted: it goes on for
 *                                     the store
 *   CTL      <id> <command...>        ocimirrorctl's command line (to the
 *                                     end of the line; see ctl.h)
 *
 * fetcher -> worker
 *   PONG     <id> <writable:0|1>    the fetcher could create and remove
 *                                     a file in the store just now
 *   SIZE     <id> <size> <path>       blob size known; path is the file to
 *                                     open (temp file while downloading,
 *                                     the store file if already complete)
 *   PROGRESS <id> <bytes>             bytes written contiguously from 0
 *   DONE     <id>                     blob verified and committed
 *   META     <id> <digest> <size> <media-type> <stale:0|1> <path|->
 *                                     manifest answer (STAT's too: the
 *                                     blob's digest and size, type
 *                                     application/octet-stream, no path);
 *                                     for a GET the
 *                                     manifest is in the store by digest,
 *                                     or, with a path, in that temp file
 *                                     (a relayed answer), which the worker
 *                                     unlinks after opening, as a BODY's
 *   BODY     <id> <status> <path> <next|->
 *                                     a body in a temp file that the
 *                                     worker unlinks after opening:
 *                                     TAGS: the tags/list JSON, next is
 *                                     the query of the Link header's next
 *                                     page ("n=..&last=..");
 *                                     REFERRERS: the image index (already
 *                                     filtered by the artifact type);
 *                                     STATS: Prometheus text lines;
 *                                     STATUS: a JSON object
 *   FAIL     <id> <status> <code> <message...>
 *   BUSY     <id> <retry-after> <message...>
 *                                     refused at once: one of the
 *                                     fetcher's bounds is reached (the
 *                                     message names it); the client gets
 *                                     503 TOOMANYREQUESTS and Retry-After
 *                                     (seconds, 1..86400)
 *   FROM     <id> <source>          where the answer that follows comes
 *                                     from, said only when it is not a
 *                                     download started for this request:
 *                                     "inflight" (a BLOB joined a download
 *                                     already running), "negative" (a
 *                                     MANIFEST's FAIL is a remembered
 *                                     upstream 404); for the worker's log
 *                                     ($ocimirror_cache_status)
 *   WAIT     <id>                     still working on it (queued for a
 *                                     transfer slot, waiting for a token,
 *                                     or a body without Content-Length):
 *                                     sent to a waiter that has heard
 *                                     nothing for a while, so the worker's
 *                                     timer measures silence, not work
 *
 *   OUT      <id> <text...>           a line of a CTL's answer (to the
 *                                     end of the line; may be empty)
 *   END      <id> <status>            the CTL is done: 0 ok, 1 failed,
 *                                     2 bad usage
 *
 * If the worker cannot open a SIZE path that is a temp file (ENOENT), the
 * fetcher has already committed it: the worker opens the store path.
 */

#ifndef OCI_IPC_H
#define OCI_IPC_H

#include "oci.h"
#include "oci_error.h"

#define OCI_IPC_LINE_MAX  8192
#define OCI_IPC_TEXT_MAX  2048        /* a CTL's command, an OUT line */

typedef enum {
    OCI_MSG_PING = 0,
    OCI_MSG_BLOB,
    OCI_MSG_MANIFEST,
    OCI_MSG_TAGS,
    OCI_MSG_CANCEL,
    OCI_MSG_PONG,
    OCI_MSG_SIZE,
    OCI_MSG_PROGRESS,
    OCI_MSG_DONE,
    OCI_MSG_META,
    OCI_MSG_BODY,
    OCI_MSG_FAIL,
    OCI_MSG_WAIT,
    OCI_MSG_REFERRERS,
    OCI_MSG_STATS,
    OCI_MSG_USED,
    OCI_MSG_CTL,
    OCI_MSG_OUT,
    OCI_MSG_END,
    OCI_MSG_STAT,
    OCI_MSG_BUSY,
    OCI_MSG_DETACH,
    OCI_MSG_REPLICATE,
    OCI_MSG_FROM,
    OCI_MSG_STATUS,
    OCI_MSG__COUNT
} oci_msg_type_t;

/* FROM's source */
typedef enum {
    OCI_FROM_NONE = 0,
    OCI_FROM_INFLIGHT,
    OCI_FROM_NEGATIVE
} oci_from_t;

typedef struct {
    oci_msg_type_t  type;
    uint32_t        id;

    /* BLOB, STAT, MANIFEST, TAGS, REFERRERS */
    char            registry[OCI_HOST_MAX + 1];
    char            name[OCI_NAME_MAX + 1];
    char            reference[OCI_REF_MAX + 1];  /* BLOB, STAT,
                                                    REFERRERS, USED: the
                                                    digest */
    char            artifact_type[OCI_MEDIA_TYPE_MAX + 1];
                                                 /* REFERRERS, "" = all */
    int             head;                        /* MANIFEST */
    char            accept[OCI_ACCEPT_MAX + 1];  /* MANIFEST, "" = none */
    long long       n;                           /* TAGS, -1 = absent */
    char            last[OCI_TAG_MAX + 1];       /* TAGS, "" = absent */

    /* SIZE, PROGRESS, META */
    long long       size;                 /* SIZE, META */
    long long       bytes;                /* PROGRESS */
    char            path[OCI_PATH_MAX];   /* SIZE, BODY; META: "" or a
                                             temp file */
    char            digest[OCI_DIGEST_MAX + 1];           /* META */
    char            media_type[OCI_MEDIA_TYPE_MAX + 1];   /* META */
    int             stale;                                /* META */

    /* BODY, FAIL; PONG: 1 if the store is writable */
    int             status;
    char            next[512];            /* BODY, "" = no next page */
    char            code[32];             /* FAIL: "MANIFEST_UNKNOWN" */
    char            message[256];         /* FAIL, BUSY */
    long            retry_after;          /* BUSY: seconds */
    char            text[OCI_IPC_TEXT_MAX];   /* CTL, OUT; END: status */
    oci_from_t      from;                     /* FROM */
} oci_msg_t;

/* Clear a message and set its type and id; other fields empty. */
void oci_msg_init(oci_msg_t *m, oci_msg_type_t type, uint32_t id);

/* A FAIL for id: status, the spec's code of code (UNKNOWN if it has
 * none) and message (cut to fit). */
void oci_msg_fail(oci_msg_t *m, uint32_t id, int status, oci_errcode_t code,
    const char *message);

/* A FROM for id: the answer that follows comes from source. */
void oci_msg_from(oci_msg_t *m, uint32_t id, oci_from_t source);

/* A BUSY for id: retry after secs seconds, message naming the bound. */
void oci_msg_busy(oci_msg_t *m, uint32_t id, long secs, const char *message);

/*
 * Encode m as one line ending in '\n' into buf.  Returns the length (no
 * NUL is counted) or OCI_EINVAL if a token field holds a space, control
 * byte or is invalid for the verb, OCI_ERANGE if cap is too small.  The
 * FAIL message has control bytes replaced by spaces.
 */
int oci_msg_encode(const oci_msg_t *m, char *buf, size_t cap);

/* The temp file m hands over to the worker (a BODY's, a META's with a
 * path), or NULL. */
const char *oci_msg_file(const oci_msg_t *m);

/*
 * 1 if s[0..len) may stand in a URI reference of a Link header (a BODY's
 * next goes into the client's; the fetcher follows the upstream's):
 * printable ASCII without space, '<', '>', '"' and '\\'.
 */
int oci_ipc_link_safe(const char *s, size_t len);

/*
 * Decode the first line in buf[0..len).  On success fills m, sets
 * *consumed to the bytes used (line and '\n') and returns OCI_OK.
 * Returns OCI_EAGAIN if no complete line is there yet (and len is below
 * OCI_IPC_LINE_MAX), OCI_EINVAL for a malformed line (*consumed is still
 * set so the caller may skip it) or OCI_ERANGE for an over-long line.
 */
int oci_msg_decode(const char *buf, size_t len, oci_msg_t *m,
    size_t *consumed);

#endif /* OCI_IPC_H */
