/*
 * What an upstream's auth says (src/oci_auth.c): a WWW-Authenticate
 * challenge, and the token endpoint's JSON.
 *
 * Input: one flags byte (bit 0: the token JSON, else a challenge; bit 1:
 * a token buffer of 16 bytes instead of 4096, so that the "too long"
 * path runs), then the bytes.
 * Checks: a parsed challenge has a scheme, a Bearer one a realm, and its
 * values fit their buffers and hold no control bytes (they go into a
 * URL and a log line); a token is visible ASCII that fits its buffer,
 * with a non-negative lifetime.
 */

#include <string.h>

#include "fuzz.h"
#include "oci_auth.h"


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}


static void
fuzz_value_clean(const char *v, size_t cap)
{
    size_t  i, len;

    len = strnlen(v, cap);
    FUZZ_CHECK(len < cap);

    for (i = 0; i < len; i++) {
        FUZZ_CHECK((unsigned char) v[i] >= 0x20 || v[i] == '\t');
        FUZZ_CHECK((unsigned char) v[i] != 0x7f);
    }
}


static void
fuzz_challenge(const char *s, size_t len)
{
    oci_challenge_t  ch;
    int              rc;

    rc = oci_auth_parse_challenge(s, len, &ch);

    if (rc != OCI_OK) {
        FUZZ_CHECK(rc == OCI_EINVAL || rc == OCI_ERANGE);
        return;
    }

    FUZZ_CHECK(ch.scheme == OCI_AUTH_BEARER || ch.scheme == OCI_AUTH_BASIC);
    FUZZ_CHECK(ch.scheme != OCI_AUTH_BEARER || ch.realm[0] != '\0');

    fuzz_value_clean(ch.realm, sizeof(ch.realm));
    fuzz_value_clean(ch.service, sizeof(ch.service));
    fuzz_value_clean(ch.scope, sizeof(ch.scope));
}


static void
fuzz_token(const char *s, size_t len, size_t cap)
{
    char    token[4096];
    long    expires;
    size_t  i, n;
    int     rc;

    expires = -2;
    rc = oci_auth_parse_token(s, len, token, cap, &expires);

    if (rc != OCI_OK) {
        FUZZ_CHECK(rc == OCI_EINVAL || rc == OCI_ERANGE);
        return;
    }

    n = strnlen(token, cap);
    FUZZ_CHECK(n > 0 && n < cap);
    FUZZ_CHECK(expires >= 0);

    for (i = 0; i < n; i++) {
        FUZZ_CHECK((unsigned char) token[i] > 0x20
                   && (unsigned char) token[i] < 0x7f);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    if (data[0] & 1) {
        fuzz_token((const char *) data + 1, size - 1,
                   (data[0] & 2) ? 16 : 4096);

    } else {
        fuzz_challenge((const char *) data + 1, size - 1);
    }

    return 0;
}
