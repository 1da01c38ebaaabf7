/*
 * The line codec of the worker <-> fetcher protocol (see oci_ipc.h).
 * Encoding and decoding share one validation, so whatever one side can
 * send the other accepts, and nothing else.
 */

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "oci_ipc.h"
#include "oci_ref.h"


#define OCI_IPC_TOKENS_MAX  7


typedef struct {
    const char  *name;
    size_t       len;
    unsigned     ntokens;     /* verb and id included; FAIL, BUSY: before
                                 the message */
} oci_ipc_verb_t;

typedef struct {
    const char  *p;
    size_t       len;
} oci_ipc_tok_t;

typedef struct {
    char    *buf;
    size_t   cap;
    size_t   len;
    int      overflow;
} oci_ipc_out_t;


static int oci_ipc_is_token_byte(int c);
static int oci_ipc_path_valid(const char *s, size_t cap);
static int oci_ipc_accept_valid(const char *s, size_t cap);
static int oci_ipc_next_valid(const char *s, size_t cap);
static int oci_ipc_code_valid(const char *s, size_t cap);
static int oci_ipc_terminated(const char *s, size_t cap, size_t *len);
static int oci_ipc_check(const oci_msg_t *m);
static void oci_ipc_put(oci_ipc_out_t *o, const char *s, size_t n);
static void oci_ipc_put_token(oci_ipc_out_t *o, const char *s);
static void oci_ipc_put_num(oci_ipc_out_t *o, long long v);
static void oci_ipc_put_text(oci_ipc_out_t *o, const char *s);
static int oci_ipc_num(const oci_ipc_tok_t *t, long long min, long long max,
    long long *out);
static int oci_ipc_copy(const oci_ipc_tok_t *t, char *dst, size_t cap,
    int dash_empty);


static const oci_ipc_verb_t  oci_ipc_verbs[OCI_MSG__COUNT] = {
    [OCI_MSG_PING] =     { "PING", 4, 2 },
    [OCI_MSG_BLOB] =     { "BLOB", 4, 5 },
    [OCI_MSG_MANIFEST] = { "MANIFEST", 8, 7 },
    [OCI_MSG_TAGS] =     { "TAGS", 4, 6 },
    [OCI_MSG_CANCEL] =   { "CANCEL", 6, 2 },
    [OCI_MSG_PONG] =     { "PONG", 4, 3 },
    [OCI_MSG_SIZE] =     { "SIZE", 4, 4 },
    [OCI_MSG_PROGRESS] = { "PROGRESS", 8, 3 },
    [OCI_MSG_DONE] =     { "DONE", 4, 2 },
    [OCI_MSG_META] =     { "META", 4, 7 },
    [OCI_MSG_BODY] =     { "BODY", 4, 5 },
    [OCI_MSG_FAIL] =     { "FAIL", 4, 4 },
    [OCI_MSG_WAIT] =     { "WAIT", 4, 2 },
    [OCI_MSG_REFERRERS] = { "REFERRERS", 9, 6 },
    [OCI_MSG_STATS] =    { "STATS", 5, 2 },
    [OCI_MSG_USED] =     { "USED", 4, 3 },
    [OCI_MSG_CTL] =      { "CTL", 3, 2 },
    [OCI_MSG_OUT] =      { "OUT", 3, 2 },
    [OCI_MSG_END] =      { "END", 3, 3 },
    [OCI_MSG_STAT] =     { "STAT", 4, 5 },
    [OCI_MSG_BUSY] =     { "BUSY", 4, 3 },
    [OCI_MSG_DETACH] =   { "DETACH", 6, 2 },
    [OCI_MSG_REPLICATE] = { "REPLICATE", 9, 5 },
    [OCI_MSG_FROM] =     { "FROM", 4, 3 },
    [OCI_MSG_STATUS] =   { "STATUS", 6, 2 },
};

/* FROM's sources, by oci_from_t */
static const char  *oci_ipc_from_words[] = {
    NULL,
    "inflight",
    "negative"
};


void
oci_msg_init(oci_msg_t *m, oci_msg_type_t type, uint32_t id)
{
    memset(m, 0, sizeof(oci_msg_t));

    m->type = type;
    m->id = id;
    m->n = -1;
}


void
oci_msg_fail(oci_msg_t *m, uint32_t id, int status, oci_errcode_t code,
    const char *message)
{
    const char  *s;

    oci_msg_init(m, OCI_MSG_FAIL, id);
    m->status = status;

    s = oci_err_code(code);
    snprintf(m->code, sizeof(m->code), "%s", s != NULL ? s : "UNKNOWN");
    snprintf(m->message, sizeof(m->message), "%s", message);
}


void
oci_msg_from(oci_msg_t *m, uint32_t id, oci_from_t source)
{
    oci_msg_init(m, OCI_MSG_FROM, id);
    m->from = source;
}


void
oci_msg_busy(oci_msg_t *m, uint32_t id, long secs, const char *message)
{
    oci_msg_init(m, OCI_MSG_BUSY, id);
    m->retry_after = secs;
    snprintf(m->message, sizeof(m->message), "%s", message);
}


static int
oci_ipc_is_token_byte(int c)
{
    return c > 0x20 && c != 0x7f;
}


/* 1 if s is NUL-terminated within cap; its length in *len */
static int
oci_ipc_terminated(const char *s, size_t cap, size_t *len)
{
    *len = strnlen(s, cap);

    return *len < cap;
}


static int
oci_ipc_path_valid(const char *s, size_t cap)
{
    size_t  len, i;

    if (!oci_ipc_terminated(s, cap, &len) || len == 0 || s[0] != '/') {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!oci_ipc_is_token_byte((unsigned char) s[i])) {
            return 0;
        }
    }

    return 1;
}


/* "" or media types (or "*" "/" "*") joined by single commas */
static int
oci_ipc_accept_valid(const char *s, size_t cap)
{
    size_t       len;
    const char  *p, *end, *comma;

    if (!oci_ipc_terminated(s, cap, &len) || len > OCI_ACCEPT_MAX) {
        return 0;
    }

    p = s;
    end = s + len;

    while (p < end) {
        comma = memchr(p, ',', (size_t) (end - p));

        if (comma == NULL) {
            comma = end;

        } else if (comma + 1 == end) {
            return 0;
        }

        if (!(comma - p == 3 && memcmp(p, "*/*", 3) == 0)
            && !oci_media_type_valid(p, (size_t) (comma - p)))
        {
            return 0;
        }

        p = comma + 1;
    }

    return 1;
}


/* "" or a query string for a Link header */
static int
oci_ipc_next_valid(const char *s, size_t cap)
{
    size_t  len;

    if (!oci_ipc_terminated(s, cap, &len)) {
        return 0;
    }

    if (len == 1 && s[0] == '-') {
        return 0;
    }

    return oci_ipc_link_safe(s, len);
}


const char *
oci_msg_file(const oci_msg_t *m)
{
    if (m->type == OCI_MSG_BODY
        || (m->type == OCI_MSG_META && m->path[0] != '\0'))
    {
        return m->path;
    }

    return NULL;
}


int
oci_ipc_link_safe(const char *s, size_t len)
{
    size_t  i;
    int     c;

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '"'
            || c == '\\')
        {
            return 0;
        }
    }

    return 1;
}


/* [A-Z0-9_]+ */
static int
oci_ipc_code_valid(const char *s, size_t cap)
{
    size_t  len, i;
    int     c;

    if (!oci_ipc_terminated(s, cap, &len) || len == 0) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
            return 0;
        }
    }

    return 1;
}


static int
oci_ipc_check(const oci_msg_t *m)
{
    size_t  len;

    switch (m->type) {

    case OCI_MSG_PING:
    case OCI_MSG_CANCEL:
    case OCI_MSG_DETACH:
    case OCI_MSG_DONE:
    case OCI_MSG_WAIT:
    case OCI_MSG_STATS:
    case OCI_MSG_STATUS:
        return OCI_OK;

    case OCI_MSG_BLOB:
    case OCI_MSG_STAT:
    case OCI_MSG_REPLICATE:
    case OCI_MSG_MANIFEST:
    case OCI_MSG_TAGS:
    case OCI_MSG_REFERRERS:
        if (!oci_ipc_terminated(m->registry, sizeof(m->registry), &len)
            || !oci_host_valid(m->registry, len)
            || !oci_ipc_terminated(m->name, sizeof(m->name), &len)
            || !oci_name_valid(m->name, len))
        {
            return OCI_EINVAL;
        }
        break;

    case OCI_MSG_PONG:
        return (m->status == 0 || m->status == 1) ? OCI_OK : OCI_EINVAL;

    case OCI_MSG_FROM:
        return (m->from == OCI_FROM_INFLIGHT || m->from == OCI_FROM_NEGATIVE)
               ? OCI_OK : OCI_EINVAL;

    case OCI_MSG_CTL:
    case OCI_MSG_OUT:
        if (!oci_ipc_terminated(m->text, sizeof(m->text), &len)
            || (m->type == OCI_MSG_CTL && len == 0))
        {
            return OCI_EINVAL;
        }
        return OCI_OK;

    case OCI_MSG_END:
        return (m->status >= 0 && m->status <= 255) ? OCI_OK : OCI_EINVAL;

    case OCI_MSG_USED:
        if (!oci_ipc_terminated(m->reference, sizeof(m->reference), &len)
            || oci_digest_parse(m->reference, len, NULL) != OCI_OK)
        {
            return OCI_EINVAL;
        }
        return OCI_OK;

    case OCI_MSG_SIZE:
        if (m->size < 0 || !oci_ipc_path_valid(m->path, sizeof(m->path))) {
            return OCI_EINVAL;
        }
        return OCI_OK;

    case OCI_MSG_PROGRESS:
        return (m->bytes >= 0) ? OCI_OK : OCI_EINVAL;

    case OCI_MSG_META:
        if (!oci_ipc_terminated(m->digest, sizeof(m->digest), &len)
            || oci_digest_parse(m->digest, len, NULL) != OCI_OK
            || m->size < 0
            || (m->stale != 0 && m->stale != 1)
            || !oci_ipc_terminated(m->media_type, sizeof(m->media_type),
                                   &len)
            || !oci_media_type_valid(m->media_type, len)
            || (m->path[0] != '\0'
                && !oci_ipc_path_valid(m->path, sizeof(m->path))))
        {
            return OCI_EINVAL;
        }
        return OCI_OK;

    case OCI_MSG_BODY:
        if (m->status < 100 || m->status > 599
            || !oci_ipc_path_valid(m->path, sizeof(m->path))
            || !oci_ipc_next_valid(m->next, sizeof(m->next)))
        {
            return OCI_EINVAL;
        }
        return OCI_OK;

    case OCI_MSG_FAIL:
        if (m->status < 100 || m->status > 599
            || !oci_ipc_code_valid(m->code, sizeof(m->code))
            || !oci_ipc_terminated(m->message, sizeof(m->message), &len))
        {
            return OCI_EINVAL;
        }
        return OCI_OK;

    case OCI_MSG_BUSY:
        if (m->retry_after < 1 || m->retry_after > 86400
            || !oci_ipc_terminated(m->message, sizeof(m->message), &len))
        {
            return OCI_EINVAL;
        }
        return OCI_OK;

    default:
        return OCI_EINVAL;
    }

    /* BLOB, STAT, MANIFEST, TAGS: their own fields */

    if (!oci_ipc_terminated(m->reference, sizeof(m->reference), &len)) {
        return OCI_EINVAL;
    }

    if (m->type == OCI_MSG_BLOB || m->type == OCI_MSG_STAT
        || m->type == OCI_MSG_REPLICATE)
    {
        return (oci_digest_parse(m->reference, len, NULL) == OCI_OK)
               ? OCI_OK : OCI_EINVAL;
    }

    if (m->type == OCI_MSG_REFERRERS) {
        if (oci_digest_parse(m->reference, len, NULL) != OCI_OK
            || !oci_ipc_terminated(m->artifact_type,
                                   sizeof(m->artifact_type), &len)
            || (len > 0 && !oci_media_type_valid(m->artifact_type, len)))
        {
            return OCI_EINVAL;
        }

        return OCI_OK;
    }

    if (m->type == OCI_MSG_MANIFEST) {
        if (oci_ref_is_digest(m->reference, len)) {
            if (oci_digest_parse(m->reference, len, NULL) != OCI_OK) {
                return OCI_EINVAL;
            }

        } else if (!oci_tag_valid(m->reference, len)) {
            return OCI_EINVAL;
        }

        if ((m->head != 0 && m->head != 1)
            || !oci_ipc_accept_valid(m->accept, sizeof(m->accept)))
        {
            return OCI_EINVAL;
        }

        return OCI_OK;
    }

    /* TAGS */

    if (m->n < -1
        || !oci_ipc_terminated(m->last, sizeof(m->last), &len)
        || (len != 0 && !oci_tag_valid(m->last, len)))
    {
        return OCI_EINVAL;
    }

    return OCI_OK;
}


static void
oci_ipc_put(oci_ipc_out_t *o, const char *s, size_t n)
{
    if (o->overflow || o->cap - o->len <= n) {
        /* room for the NUL is kept */
        o->overflow = 1;
        return;
    }

    memcpy(o->buf + o->len, s, n);
    o->len += n;
}


/* " token", or " -" for an empty one */
static void
oci_ipc_put_token(oci_ipc_out_t *o, const char *s)
{
    oci_ipc_put(o, " ", 1);

    if (s[0] == '\0') {
        oci_ipc_put(o, "-", 1);

    } else {
        oci_ipc_put(o, s, strlen(s));
    }
}


static void
oci_ipc_put_num(oci_ipc_out_t *o, long long v)
{
    char  num[24];
    int   n;

    n = snprintf(num, sizeof(num), " %lld", v);
    oci_ipc_put(o, num, (size_t) n);
}


/* " " and text to the end of the line (nothing if it is empty), with
 * control bytes as spaces */
static void
oci_ipc_put_text(oci_ipc_out_t *o, const char *s)
{
    char  c;

    if (*s == '\0') {
        return;
    }

    oci_ipc_put(o, " ", 1);

    for ( /* void */ ; *s != '\0'; s++) {
        c = *s;

        if ((unsigned char) c < 0x20 || c == 0x7f) {
            c = ' ';
        }

        oci_ipc_put(o, &c, 1);
    }
}


int
oci_msg_encode(const oci_msg_t *m, char *buf, size_t cap)
{
    oci_ipc_out_t          o;
    const oci_ipc_verb_t  *v;

    if ((unsigned) m->type >= OCI_MSG__COUNT || oci_ipc_check(m) != OCI_OK) {
        return OCI_EINVAL;
    }

    if (buf == NULL || cap == 0) {
        return OCI_ERANGE;
    }

    v = &oci_ipc_verbs[m->type];

    o.buf = buf;
    o.cap = cap;
    o.len = 0;
    o.overflow = 0;

    oci_ipc_put(&o, v->name, v->len);
    oci_ipc_put_num(&o, (long long) m->id);

    switch (m->type) {

    case OCI_MSG_BLOB:
    case OCI_MSG_STAT:
    case OCI_MSG_REPLICATE:
    case OCI_MSG_MANIFEST:
    case OCI_MSG_TAGS:
    case OCI_MSG_REFERRERS:
        oci_ipc_put_token(&o, m->registry);
        oci_ipc_put_token(&o, m->name);

        if (m->type == OCI_MSG_TAGS) {
            oci_ipc_put_num(&o, m->n);
            oci_ipc_put_token(&o, m->last);
            break;
        }

        oci_ipc_put_token(&o, m->reference);

        if (m->type == OCI_MSG_MANIFEST) {
            oci_ipc_put_num(&o, m->head);
            oci_ipc_put_token(&o, m->accept);
        }

        if (m->type == OCI_MSG_REFERRERS) {
            oci_ipc_put_token(&o, m->artifact_type);
        }

        break;

    case OCI_MSG_PONG:
    case OCI_MSG_END:
        oci_ipc_put_num(&o, m->status);
        break;

    case OCI_MSG_USED:
        oci_ipc_put_token(&o, m->reference);
        break;

    case OCI_MSG_CTL:
    case OCI_MSG_OUT:
        oci_ipc_put_text(&o, m->text);
        break;

    case OCI_MSG_SIZE:
        oci_ipc_put_num(&o, m->size);
        oci_ipc_put_token(&o, m->path);
        break;

    case OCI_MSG_FROM:
        oci_ipc_put_token(&o, oci_ipc_from_words[m->from]);
        break;

    case OCI_MSG_PROGRESS:
        oci_ipc_put_num(&o, m->bytes);
        break;

    case OCI_MSG_META:
        oci_ipc_put_token(&o, m->digest);
        oci_ipc_put_num(&o, m->size);
        oci_ipc_put_token(&o, m->media_type);
        oci_ipc_put_num(&o, m->stale);
        oci_ipc_put_token(&o, m->path);
        break;

    case OCI_MSG_BODY:
        oci_ipc_put_num(&o, m->status);
        oci_ipc_put_token(&o, m->path);
        oci_ipc_put_token(&o, m->next);
        break;

    case OCI_MSG_FAIL:
        oci_ipc_put_num(&o, m->status);
        oci_ipc_put_token(&o, m->code);

        oci_ipc_put_text(&o, m->message);
        break;

    case OCI_MSG_BUSY:
        oci_ipc_put_num(&o, m->retry_after);
        oci_ipc_put_text(&o, m->message);
        break;

    default:
        break;
    }

    oci_ipc_put(&o, "\n", 1);

    if (o.overflow || o.len > OCI_IPC_LINE_MAX) {
        return OCI_ERANGE;
    }

    buf[o.len] = '\0';

    return (int) o.len;
}


/* a decimal number without sign or leading zeros; "-1" if min allows it */
static int
oci_ipc_num(const oci_ipc_tok_t *t, long long min, long long max,
    long long *out)
{
    long long  v;
    size_t     i;
    int        d;

    if (t->len == 2 && t->p[0] == '-' && t->p[1] == '1' && min <= -1) {
        *out = -1;
        return OCI_OK;
    }

    if (t->len == 0 || t->len > 19 || (t->p[0] == '0' && t->len > 1)) {
        return OCI_EINVAL;
    }

    v = 0;

    for (i = 0; i < t->len; i++) {
        if (t->p[i] < '0' || t->p[i] > '9') {
            return OCI_EINVAL;
        }

        d = t->p[i] - '0';

        if (v > max / 10 || (v == max / 10 && d > max % 10)) {
            return OCI_EINVAL;
        }

        v = v * 10 + d;
    }

    if (v < min) {
        return OCI_EINVAL;
    }

    *out = v;

    return OCI_OK;
}


static int
oci_ipc_copy(const oci_ipc_tok_t *t, char *dst, size_t cap, int dash_empty)
{
    if (dash_empty && t->len == 1 && t->p[0] == '-') {
        dst[0] = '\0';
        return OCI_OK;
    }

    if (t->len >= cap) {
        return OCI_EINVAL;
    }

    memcpy(dst, t->p, t->len);
    dst[t->len] = '\0';

    return OCI_OK;
}


int
oci_msg_decode(const char *buf, size_t len, oci_msg_t *m, size_t *consumed)
{
    const char            *nl, *p, *end, *sp;
    const oci_ipc_verb_t  *v;
    oci_ipc_tok_t          t[OCI_IPC_TOKENS_MAX];
    size_t                 scan, ntok, cap, i;
    long long              num;
    unsigned               type;
    char                  *txt;
    int                    c;

    *consumed = 0;

    scan = (len < OCI_IPC_LINE_MAX) ? len : OCI_IPC_LINE_MAX;
    nl = (buf != NULL) ? memchr(buf, '\n', scan) : NULL;

    if (nl == NULL) {
        return (len < OCI_IPC_LINE_MAX) ? OCI_EAGAIN : OCI_ERANGE;
    }

    *consumed = (size_t) (nl - buf) + 1;

    end = nl;

    for (p = buf; p < end; p++) {
        c = (unsigned char) *p;

        if (c < 0x20 || c == 0x7f) {
            return OCI_EINVAL;
        }
    }

    /* the verb */

    sp = memchr(buf, ' ', (size_t) (end - buf));

    if (sp == NULL) {
        return OCI_EINVAL;
    }

    for (type = 0; type < OCI_MSG__COUNT; type++) {
        if (oci_ipc_verbs[type].len == (size_t) (sp - buf)
            && memcmp(oci_ipc_verbs[type].name, buf, (size_t) (sp - buf)) == 0)
        {
            break;
        }
    }

    if (type == OCI_MSG__COUNT) {
        return OCI_EINVAL;
    }

    v = &oci_ipc_verbs[type];

    /* tokens after the verb, separated by exactly one space */

    p = buf;
    ntok = 0;

    for ( ;; ) {
        if (ntok == v->ntokens) {
            break;
        }

        sp = memchr(p, ' ', (size_t) (end - p));

        if (sp == NULL) {
            sp = end;
        }

        if (sp == p) {
            return OCI_EINVAL;
        }

        t[ntok].p = p;
        t[ntok].len = (size_t) (sp - p);
        ntok++;

        if (sp == end) {
            break;
        }

        p = sp + 1;
    }

    if (ntok != v->ntokens) {
        return OCI_EINVAL;
    }

    oci_msg_init(m, (oci_msg_type_t) type, 0);

    p = t[ntok - 1].p + t[ntok - 1].len;

    if (p != end) {
        /* more after the last token: FAIL's and BUSY's message, CTL's
         * and OUT's text */

        if (type == OCI_MSG_FAIL || type == OCI_MSG_BUSY) {
            txt = m->message;
            cap = sizeof(m->message);

        } else if (type == OCI_MSG_CTL || type == OCI_MSG_OUT) {
            txt = m->text;
            cap = sizeof(m->text);

        } else {
            return OCI_EINVAL;
        }

        p++;

        if ((size_t) (end - p) >= cap) {
            return OCI_EINVAL;
        }

        memcpy(txt, p, (size_t) (end - p));
        txt[end - p] = '\0';
    }

    if (oci_ipc_num(&t[1], 0, UINT32_MAX, &num) != OCI_OK) {
        return OCI_EINVAL;
    }

    m->id = (uint32_t) num;

    switch (type) {

    case OCI_MSG_BLOB:
    case OCI_MSG_STAT:
    case OCI_MSG_REPLICATE:
    case OCI_MSG_MANIFEST:
    case OCI_MSG_TAGS:
    case OCI_MSG_REFERRERS:
        if (oci_ipc_copy(&t[2], m->registry, sizeof(m->registry), 0)
            || oci_ipc_copy(&t[3], m->name, sizeof(m->name), 0))
        {
            return OCI_EINVAL;
        }

        if (type == OCI_MSG_TAGS) {
            if (oci_ipc_num(&t[4], -1, LLONG_MAX, &m->n)
                || oci_ipc_copy(&t[5], m->last, sizeof(m->last), 1))
            {
                return OCI_EINVAL;
            }
            break;
        }

        if (oci_ipc_copy(&t[4], m->reference, sizeof(m->reference), 0)) {
            return OCI_EINVAL;
        }

        if (type == OCI_MSG_MANIFEST) {
            if (oci_ipc_num(&t[5], 0, 1, &num)
                || oci_ipc_copy(&t[6], m->accept, sizeof(m->accept), 1))
            {
                return OCI_EINVAL;
            }
            m->head = (int) num;
        }

        if (type == OCI_MSG_REFERRERS
            && oci_ipc_copy(&t[5], m->artifact_type,
                            sizeof(m->artifact_type), 1))
        {
            return OCI_EINVAL;
        }

        break;

    case OCI_MSG_USED:
        if (oci_ipc_copy(&t[2], m->reference, sizeof(m->reference), 0)) {
            return OCI_EINVAL;
        }
        break;

    case OCI_MSG_PONG:
        if (oci_ipc_num(&t[2], 0, 1, &num)) {
            return OCI_EINVAL;
        }
        m->status = (int) num;
        break;

    case OCI_MSG_END:
        if (oci_ipc_num(&t[2], 0, 255, &num)) {
            return OCI_EINVAL;
        }
        m->status = (int) num;
        break;

    case OCI_MSG_SIZE:
        if (oci_ipc_num(&t[2], 0, LLONG_MAX, &m->size)
            || oci_ipc_copy(&t[3], m->path, sizeof(m->path), 0))
        {
            return OCI_EINVAL;
        }
        break;

    case OCI_MSG_PROGRESS:
        if (oci_ipc_num(&t[2], 0, LLONG_MAX, &m->bytes)) {
            return OCI_EINVAL;
        }
        break;

    case OCI_MSG_FROM:
        for (i = OCI_FROM_INFLIGHT; i <= OCI_FROM_NEGATIVE; i++) {
            if (t[2].len == strlen(oci_ipc_from_words[i])
                && memcmp(t[2].p, oci_ipc_from_words[i], t[2].len) == 0)
            {
                m->from = (oci_from_t) i;
            }
        }
        break;

    case OCI_MSG_META:
        if (oci_ipc_copy(&t[2], m->digest, sizeof(m->digest), 0)
            || oci_ipc_num(&t[3], 0, LLONG_MAX, &m->size)
            || oci_ipc_copy(&t[4], m->media_type, sizeof(m->media_type), 0)
            || oci_ipc_num(&t[5], 0, 1, &num)
            || oci_ipc_copy(&t[6], m->path, sizeof(m->path), 1))
        {
            return OCI_EINVAL;
        }
        m->stale = (int) num;
        break;

    case OCI_MSG_BODY:
        if (oci_ipc_num(&t[2], 0, 999, &num)
            || oci_ipc_copy(&t[3], m->path, sizeof(m->path), 0)
            || oci_ipc_copy(&t[4], m->next, sizeof(m->next), 1))
        {
            return OCI_EINVAL;
        }
        m->status = (int) num;
        break;

    case OCI_MSG_FAIL:
        if (oci_ipc_num(&t[2], 0, 999, &num)
            || oci_ipc_copy(&t[3], m->code, sizeof(m->code), 0))
        {
            return OCI_EINVAL;
        }
        m->status = (int) num;
        break;

    case OCI_MSG_BUSY:
        if (oci_ipc_num(&t[2], 1, 86400, &num)) {
            return OCI_EINVAL;
        }
        m->retry_after = (long) num;
        break;

    default:
        break;
    }

    return oci_ipc_check(m);
}
