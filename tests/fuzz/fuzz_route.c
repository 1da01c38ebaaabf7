/*
 * The routing of a client's /v2/ path (src/oci_route.c): the raw path
 * and containerd's ?ns= value, straight from the request line, against
 * a config of docker.io (the default, with library_prefix), ghcr.io,
 * localhost:5000 and localhost.
 *
 * Input: one flags byte (bit 0: an ns argument follows the path after
 * the first '\n'), then the path after "/v2/".
 * Checks: a route names a configured registry, a valid repository and a
 * valid tag or sha256 digest (they become store paths and upstream
 * URLs); a refusal has a code and a message.
 */

#include <string.h>

#include "fuzz.h"
#include "oci_ref.h"
#include "oci_route.h"


static oci_registry_t  fuzz_regs[4];
static oci_config_t    fuzz_cf;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_regs[0].name = "docker.io";
    fuzz_regs[0].library_prefix = 1;
    fuzz_regs[1].name = "ghcr.io";
    fuzz_regs[2].name = "localhost:5000";
    fuzz_regs[3].name = "localhost";

    fuzz_cf.registries = fuzz_regs;
    fuzz_cf.n_registries = 4;
    fuzz_cf.default_registry = &fuzz_regs[0];

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    oci_route_t     r;
    oci_errcode_t   code;
    const char     *s, *nl, *ns;
    char           *path, msg[256];
    char            hex[OCI_SHA256_HEX_LEN + 1];
    size_t          len, ns_len;
    int             rc;

    if (size == 0) {
        return 0;
    }

    s = (const char *) data + 1;
    len = size - 1;
    ns = NULL;
    ns_len = 0;

    if (data[0] & 1) {
        nl = memchr(s, '\n', len);

        if (nl != NULL) {
            ns = nl + 1;
            ns_len = (size_t) (s + len - ns);
            len = (size_t) (nl - s);
        }
    }

    /* the module hands over the path with its "/v2/": exactly that many
     * bytes, so that a read past it is seen */
    path = malloc(len + 4);
    if (path == NULL) {
        return 0;
    }

    memcpy(path, "/v2/", 4);
    memcpy(path + 4, s, len);

    code = OCI_ERR__COUNT;
    msg[0] = '\0';

    rc = oci_route(&fuzz_cf, path, len + 4, ns, ns_len, &r, &code, msg,
                   sizeof(msg));

    free(path);

    if (rc != OCI_OK) {
        FUZZ_CHECK(rc == OCI_EINVAL);
        FUZZ_CHECK(code < OCI_ERR__COUNT);
        FUZZ_CHECK(msg[0] != '\0' && strlen(msg) < sizeof(msg));
        return 0;
    }

    FUZZ_CHECK(r.endpoint <= OCI_EP_REFERRERS);

    if (r.endpoint == OCI_EP_BASE) {
        return 0;
    }

    FUZZ_CHECK(r.registry >= fuzz_regs && r.registry < fuzz_regs + 4);
    FUZZ_CHECK(strlen(r.client_prefix) < sizeof(r.client_prefix));

    FUZZ_CHECK(oci_name_valid(r.name, strlen(r.name)));

    if (r.endpoint == OCI_EP_TAGS) {
        return 0;
    }

    if (r.is_digest) {
        FUZZ_CHECK(oci_digest_parse(r.reference, strlen(r.reference), hex)
                   == OCI_OK);
        FUZZ_CHECK(strcmp(hex, r.hex) == 0);

    } else {
        FUZZ_CHECK(r.endpoint == OCI_EP_MANIFEST);
        FUZZ_CHECK(oci_tag_valid(r.reference, strlen(r.reference)));
    }

    return 0;
}
