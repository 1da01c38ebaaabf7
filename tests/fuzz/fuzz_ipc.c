/*
 * The line protocol between the workers and the fetcher (src/oci_ipc.c),
 * both ways: the fetcher decodes what a worker (or anyone who can
 * connect to its socket) sends, the worker what the fetcher sends, and
 * each encodes messages whose fields came from outside (an upstream's
 * error text and media type, a client's tag).
 *
 * Input: one flags byte.  Bit 0 clear: the rest is a stream of lines,
 * decoded as server.c and the module's link do, line after line.  Bit 0
 * set: the rest fills a message's fields (a verb byte, then the fields
 * in the order of oci_msg_t, separated by 0xff; a field may run past its
 * buffer with no NUL), which is then encoded.
 * Checks: a decoded line encodes again, and that line decodes to the
 * same message; what the encoder accepts, the decoder takes back and
 * encodes to the same line; no line is longer than OCI_IPC_LINE_MAX.
 */

#include <string.h>

#include "fuzz.h"
#include "oci_ipc.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


/* m encodes to a line that decodes and encodes back to itself; with
 * same, the decoded message equals m. */
static void
fuzz_round_trip(const oci_msg_t *m, int same)
{
    static oci_msg_t  again;
    char              line[OCI_IPC_LINE_MAX + 1], line2[OCI_IPC_LINE_MAX + 1];
    size_t            consumed;
    int               n, n2;

    n = oci_msg_encode(m, line, sizeof(line));

    if (n < 0) {
        FUZZ_CHECK(!same);
        FUZZ_CHECK(n == OCI_EINVAL || n == OCI_ERANGE);
        return;
    }

    FUZZ_CHECK((size_t) n <= OCI_IPC_LINE_MAX && line[n - 1] == '\n');
    FUZZ_CHECK(memchr(line, '\n', (size_t) n - 1) == NULL);

    FUZZ_CHECK(oci_msg_decode(line, (size_t) n, &again, &consumed)
               == OCI_OK);
    FUZZ_CHECK(consumed == (size_t) n);
    FUZZ_CHECK(again.type == m->type && again.id == m->id);

    if (same) {
        FUZZ_CHECK(memcmp(&again, m, sizeof(oci_msg_t)) == 0);
    }

    n2 = oci_msg_encode(&again, line2, sizeof(line2));
    FUZZ_CHECK(n2 == n && memcmp(line, line2, (size_t) n) == 0);

    (void) oci_msg_file(&again);
}


static void
fuzz_decode(const char *buf, size_t len)
{
    static oci_msg_t  m;
    size_t            consumed;
    int               rc;

    while (len > 0) {
        rc = oci_msg_decode(buf, len, &m, &consumed);

        if (rc == OCI_EAGAIN) {
            FUZZ_CHECK(memchr(buf, '\n', len) == NULL);
            return;
        }

        if (rc == OCI_ERANGE) {
            FUZZ_CHECK(len >= OCI_IPC_LINE_MAX);
            return;
        }

        FUZZ_CHECK(rc == OCI_OK || rc == OCI_EINVAL);
        FUZZ_CHECK(consumed > 0 && consumed <= len);
        FUZZ_CHECK(buf[consumed - 1] == '\n');

        if (rc == OCI_OK) {
            fuzz_round_trip(&m, 1);
        }

        buf += consumed;
        len -= consumed;
    }
}


/* The next field of the input, up to a 0xff byte: copied into dst,
 * NUL-ended if it fits, else cut to cap bytes with no NUL. */
static void
fuzz_field(const char **p, const char *end, char *dst, size_t cap)
{
    const char  *sep;
    size_t       n;

    sep = memchr(*p, 0xff, (size_t) (end - *p));
    n = (sep != NULL ? sep : end) - *p;

    if (n < cap) {
        memcpy(dst, *p, n);
        dst[n] = '\0';

    } else {
        memcpy(dst, *p, cap);
    }

    *p = sep != NULL ? sep + 1 : end;
}


static long long
fuzz_number(const char **p, const char *end)
{
    char  num[24];

    fuzz_field(p, end, num, sizeof(num) - 1);
    num[sizeof(num) - 1] = '\0';

    return strtoll(num, NULL, 10);
}


static void
fuzz_encode(const char *p, size_t len)
{
    static oci_msg_t   m;
    const char        *end;
    uint32_t           id;

    if (len < 6) {
        return;
    }

    end = p + len;

    memcpy(&id, p + 1, sizeof(id));
    oci_msg_init(&m, (oci_msg_type_t) ((unsigned char) p[0] % OCI_MSG__COUNT),
                 id);

    m.head = p[5] & 1;
    m.stale = (p[5] >> 1) & 1;
    m.from = (oci_from_t) ((p[5] >> 2) & 3);    /* 3: none such */
    p += 6;

    fuzz_field(&p, end, m.registry, sizeof(m.registry));
    fuzz_field(&p, end, m.name, sizeof(m.name));
    fuzz_field(&p, end, m.reference, sizeof(m.reference));
    fuzz_field(&p, end, m.artifact_type, sizeof(m.artifact_type));
    fuzz_field(&p, end, m.accept, sizeof(m.accept));
    m.n = fuzz_number(&p, end);
    fuzz_field(&p, end, m.last, sizeof(m.last));
    m.size = fuzz_number(&p, end);
    m.bytes = fuzz_number(&p, end);
    fuzz_field(&p, end, m.path, sizeof(m.path));
    fuzz_field(&p, end, m.digest, sizeof(m.digest));
    fuzz_field(&p, end, m.media_type, sizeof(m.media_type));
    m.status = (int) fuzz_number(&p, end);
    fuzz_field(&p, end, m.next, sizeof(m.next));
    fuzz_field(&p, end, m.code, sizeof(m.code));
    fuzz_field(&p, end, m.message, sizeof(m.message));
    fuzz_field(&p, end, m.text, sizeof(m.text));

    fuzz_round_trip(&m, 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    if (data[0] & 1) {
        fuzz_encode((const char *) data + 1, size - 1);

    } else {
        fuzz_decode((const char *) data + 1, size - 1);
    }

    return 0;
}
