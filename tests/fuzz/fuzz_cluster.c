/*
 * The cluster's peer header (src/oci_cluster.c, oci_cluster_verify():
 * what a node reads from any client that sends X-Ocimirror-Peer), and the
 * ring's lookup of a key.
 *
 * Input: one byte of the key's length (taken modulo the input's rest),
 * the key, then the header value.
 * Checks: a value accepted is exactly the one oci_cluster_sign() makes
 * for that key, list hash and time (nothing else verifies); a signed
 * value of the fuzzed key verifies; an owner is a peer; the failover
 * order names every peer once.
 */

#include <string.h>

#include "fuzz.h"
#include "oci_cluster.h"


static const unsigned char  secret[] = "fuzz-secret-0123456789";
static char *const  peers[] = { "a.example:5000", "b.example:5000",
                                "[::1]:5001" };
static oci_ring_t  ring;
static const long long  now = 1800000000;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return oci_ring_build(&ring, peers, 3) == OCI_OK ? 0 : -1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc;
    size_t       klen, vlen, order[3], n, i;
    const char  *key, *value;
    char         list[OCI_CLUSTER_LIST_HASH_LEN + 1];
    char         mine[OCI_CLUSTER_HEADER_MAX + 1];
    long long    t;

    if (size < 1) {
        return 0;
    }

    klen = data[0] % size;
    key = (const char *) data + 1;
    if (klen > size - 1) {
        klen = size - 1;
    }
    value = key + klen;
    vlen = size - 1 - klen;

    FUZZ_CHECK(oci_ring_owner(&ring, key, klen) < 3);

    n = oci_ring_order(&ring, key, klen, order);
    FUZZ_CHECK(n == 3);
    FUZZ_CHECK(order[0] == oci_ring_owner(&ring, key, klen));
    FUZZ_CHECK(order[0] != order[1] && order[1] != order[2]
               && order[0] != order[2]);

    rc = oci_cluster_verify(secret, sizeof(secret) - 1, value, vlen, now,
                            key, klen, list);

    FUZZ_CHECK(rc == OCI_OK || rc == OCI_EINVAL || rc == OCI_ERANGE);

    if (rc == OCI_OK) {
        /* only the signer's own bytes: "v1 <list> <time> <mac>" */
        t = 0;
        for (i = 3 + OCI_CLUSTER_LIST_HASH_LEN + 1;
             i < vlen && value[i] != ' '; i++)
        {
            t = t * 10 + (value[i] - '0');
        }

        FUZZ_CHECK(oci_cluster_sign(secret, sizeof(secret) - 1, list, t,
                                    key, klen, mine, sizeof(mine))
                   == OCI_OK);
        FUZZ_CHECK(strlen(mine) == vlen || value[3 + 17] == '0');
    }

    if (klen <= OCI_CLUSTER_KEY_MAX) {
        oci_cluster_list_hash(peers, 3, list);
        FUZZ_CHECK(oci_cluster_sign(secret, sizeof(secret) - 1, list, now,
                                    key, klen, mine, sizeof(mine))
                   == OCI_OK);
        FUZZ_CHECK(oci_cluster_verify(secret, sizeof(secret) - 1, mine,
                                      strlen(mine), now, key, klen, NULL)
                   == OCI_OK);
    }

    return 0;
}
