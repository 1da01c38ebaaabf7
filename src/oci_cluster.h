/*
 * A regional cluster (the config's cluster group): which node owns a
 * key, and the header a node's requests to its peers carry.
 *
 * Ownership is nginx's own "hash $key consistent" (ketama), computed the
 * same way so that the module can tell, before it forwards, whether it
 * owns a key itself: each peer "host:port" (as written in the peers list,
 * which is the name in the upstream's server directive) gets 160 points
 * on a circle of 2^32, point j the CRC-32 of host, NUL, port and the
 * little-endian bytes of point j - 1 (0 for the first); the points are
 * sorted, equal ones kept once; a key's owner is the peer of the first
 * point at or after CRC-32(key), wrapping around.  Failing over, nginx
 * walks on to the next points, skipping peers that failed:
 * oci_ring_order() gives that order.  Keys: a digest ("sha256:<hex>") for
 * blobs and manifests by digest, "<registry>/<name>:<tag>" for a tag.
 *
 * The peer header (OCI_CLUSTER_HEADER): "v1 <list> <time> <mac>", list
 * the hash of the sender's peers list (oci_cluster_list_hash(): a
 * receiver with another list logs it), time the sender's clock (seconds
 * since the epoch; OCI_CLUSTER_SKEW either way is accepted) and mac the
 * hex HMAC-SHA256 of "v1 <list> <time> <key>" under the shared secret.
 * A request whose header does not verify is a client's.
 */

#ifndef OCI_CLUSTER_H
#define OCI_CLUSTER_H

#include "oci.h"

#define OCI_CLUSTER_PEERS_MAX    64      /* peers in a list */
#define OCI_CLUSTER_PEER_MAX     (OCI_HOST_MAX + 7)   /* "host:port" */
#define OCI_CLUSTER_POINTS       160     /* per peer, as nginx */
#define OCI_CLUSTER_SECRET_MIN   16      /* bytes of the shared secret */
#define OCI_CLUSTER_SECRET_MAX   4095
#define OCI_CLUSTER_SKEW         300     /* seconds of clock difference */
#define OCI_CLUSTER_LIST_HASH_LEN  16    /* hex digits */
#define OCI_CLUSTER_KEY_MAX \
    (OCI_HOST_MAX + 1 + OCI_NAME_MAX + 1 + OCI_TAG_MAX)
#define OCI_CLUSTER_HEADER       "X-Ocimirror-Peer"
/* "v1 " list " " time " " mac */
#define OCI_CLUSTER_HEADER_MAX \
    (3 + OCI_CLUSTER_LIST_HASH_LEN + 1 + 20 + 1 + 64)

/* A fetcher's request for a copy of a hot blob, sent to its own node's
 * nginx: passed to the owner over the other nodes only (never served
 * here as a miss, which would wait on that very copy) */
#define OCI_CLUSTER_REPLICA_HEADER  "X-Ocimirror-Replica"

#define OCI_CLUSTER_REPLICATE_NONE  0
#define OCI_CLUSTER_REPLICATE_HOT   1

typedef struct {
    uint32_t    hash;
    uint32_t    peer;       /* index in the peers list */
} oci_ring_point_t;

typedef struct {
    oci_ring_point_t  *points;
    size_t             n;
    size_t             n_peers;
} oci_ring_t;

/* CRC-32 (IEEE 802.3, zlib's and nginx's ngx_crc32): crc of the bytes
 * before p (0 to start). */
uint32_t oci_crc32(uint32_t crc, const void *p, size_t n);

/* The ring of peers[0..n).  OCI_OK, OCI_EINVAL (no peer, too many),
 * OCI_ENOMEM.  Free with oci_ring_free(). */
int oci_ring_build(oci_ring_t *ring, char *const *peers, size_t n);

void oci_ring_free(oci_ring_t *ring);

/* The index of key's owner in the peers list. */
size_t oci_ring_owner(const oci_ring_t *ring, const char *key, size_t len);

/* The peers in the order a request for key tries them: the owner first,
 * then each peer as nginx's failover meets it walking the ring.  order
 * holds n_peers; returns how many were written (n_peers). */
size_t oci_ring_order(const oci_ring_t *ring, const char *key, size_t len,
    size_t *order);

/* The hash of a peers list, order and duplicates aside (the ring does
 * not depend on them): OCI_CLUSTER_LIST_HASH_LEN hex digits and a NUL. */
void oci_cluster_list_hash(char *const *peers, size_t n,
    char out[OCI_CLUSTER_LIST_HASH_LEN + 1]);

/* The header value for key, at time now.  OCI_OK, or OCI_ERANGE if out
 * (OCI_CLUSTER_HEADER_MAX + 1 fits) is too small. */
int oci_cluster_sign(const unsigned char *secret, size_t secret_len,
    const char *list_hash, long long now, const char *key, size_t key_len,
    char *out, size_t outlen);

/* Check a header value for key at time now: OCI_OK (list_out, if not
 * NULL, gets the sender's list hash), OCI_EINVAL (malformed, or the mac
 * does not match), OCI_ERANGE (too old or from the future). */
int oci_cluster_verify(const unsigned char *secret, size_t secret_len,
    const char *value, size_t len, long long now, const char *key,
    size_t key_len, char list_out[OCI_CLUSTER_LIST_HASH_LEN + 1]);

#endif /* OCI_CLUSTER_H */
