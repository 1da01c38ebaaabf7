/*
 * Cluster ownership (nginx's consistent hash) and the peer header; see
 * oci_cluster.h.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "oci_cluster.h"


static uint32_t  oci_crc32_table[256];
static int       oci_crc32_ready;


static void
oci_crc32_init(void)
{
    uint32_t  c;
    unsigned  i, k;

    for (i = 0; i < 256; i++) {
        c = i;

        for (k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }

        oci_crc32_table[i] = c;
    }

    oci_crc32_ready = 1;
}


uint32_t
oci_crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char  *s = p;

    if (!oci_crc32_ready) {
        /* idempotent: two threads computing it write the same table */
        oci_crc32_init();
    }

    crc = ~crc;

    while (n--) {
        crc = oci_crc32_table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
    }

    return ~crc;
}


static int
oci_ring_cmp(const void *a, const void *b)
{
    const oci_ring_point_t  *pa = a, *pb = b;

    if (pa->hash != pb->hash) {
        return pa->hash < pb->hash ? -1 : 1;
    }

    /* equal points (a CRC collision) keep the earlier peer; nginx's
     * qsort keeps either */
    return pa->peer < pb->peer ? -1 : pa->peer > pb->peer;
}


int
oci_ring_build(oci_ring_t *ring, char *const *peers, size_t n)
{
    size_t            i, j, k, len, host_len;
    uint32_t          base, hash, prev;
    unsigned char     prev_bytes[4];
    const char       *s, *port;
    oci_ring_point_t *pts;

    ring->points = NULL;
    ring->n = 0;
    ring->n_peers = 0;

    if (n == 0 || n > OCI_CLUSTER_PEERS_MAX) {
        return OCI_EINVAL;
    }

    pts = calloc(n * OCI_CLUSTER_POINTS, sizeof(oci_ring_point_t));
    if (pts == NULL) {
        return OCI_ENOMEM;
    }

    k = 0;

    for (i = 0; i < n; i++) {
        s = peers[i];
        len = strlen(s);

        /* "host:port": the port is the digits after the last ':' (as in
         * ngx_http_upstream_init_chash(); "[::1]:80" has host "[::1]") */
        host_len = len;
        port = s + len;

        for (j = 0; j < len; j++) {
            char  c = s[len - j - 1];

            if (c == ':') {
                host_len = len - j - 1;
                port = s + len - j;
                break;
            }

            if (c < '0' || c > '9') {
                break;
            }
        }

        base = oci_crc32(0, s, host_len);
        base = oci_crc32(base, "", 1);
        base = oci_crc32(base, port, (size_t) (s + len - port));

        prev = 0;

        for (j = 0; j < OCI_CLUSTER_POINTS; j++) {
            prev_bytes[0] = (unsigned char) (prev & 0xff);
            prev_bytes[1] = (unsigned char) ((prev >> 8) & 0xff);
            prev_bytes[2] = (unsigned char) ((prev >> 16) & 0xff);
            prev_bytes[3] = (unsigned char) ((prev >> 24) & 0xff);

            hash = oci_crc32(base, prev_bytes, 4);

            pts[k].hash = hash;
            pts[k].peer = (uint32_t) i;
            k++;

            prev = hash;
        }
    }

    qsort(pts, k, sizeof(oci_ring_point_t), oci_ring_cmp);

    for (i = 0, j = 1; j < k; j++) {
        if (pts[i].hash != pts[j].hash) {
            pts[++i] = pts[j];
        }
    }

    ring->points = pts;
    ring->n = i + 1;
    ring->n_peers = n;

    return OCI_OK;
}


void
oci_ring_free(oci_ring_t *ring)
{
    free(ring->points);
    ring->points = NULL;
    ring->n = 0;
    ring->n_peers = 0;
}


/* The first point at or after hash, as ngx_http_upstream_find_chash_point
 * (n when hash is past the last: the caller wraps) */
static size_t
oci_ring_find(const oci_ring_t *ring, uint32_t hash)
{
    size_t  lo, hi, mid;

    lo = 0;
    hi = ring->n;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (ring->points[mid].hash < hash) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return lo;
}


size_t
oci_ring_owner(const oci_ring_t *ring, const char *key, size_t len)
{
    size_t  i;

    i = oci_ring_find(ring, oci_crc32(0, key, len));

    return ring->points[i % ring->n].peer;
}


size_t
oci_ring_order(const oci_ring_t *ring, const char *key, size_t len,
    size_t *order)
{
    size_t         i, k, m, start;
    uint32_t       peer;
    unsigned char  seen[OCI_CLUSTER_PEERS_MAX];

    memset(seen, 0, sizeof(seen));

    start = oci_ring_find(ring, oci_crc32(0, key, len));
    m = 0;

    for (k = 0; k < ring->n && m < ring->n_peers; k++) {
        i = (start + k) % ring->n;
        peer = ring->points[i].peer;

        if (!seen[peer]) {
            seen[peer] = 1;
            order[m++] = peer;
        }
    }

    return m;
}


static int
oci_cluster_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


void
oci_cluster_list_hash(char *const *peers, size_t n,
    char out[OCI_CLUSTER_LIST_HASH_LEN + 1])
{
    size_t          i;
    char          **sorted;
    unsigned char   md[SHA256_DIGEST_LENGTH];
    EVP_MD_CTX     *ctx;
    static const char  hex[] = "0123456789abcdef";

    memset(md, 0, sizeof(md));

    sorted = malloc((n ? n : 1) * sizeof(char *));
    ctx = EVP_MD_CTX_new();

    if (sorted != NULL && ctx != NULL
        && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1)
    {
        memcpy(sorted, peers, n * sizeof(char *));
        qsort(sorted, n, sizeof(char *), oci_cluster_strcmp);

        for (i = 0; i < n; i++) {
            if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0) {
                continue;
            }

            (void) EVP_DigestUpdate(ctx, sorted[i], strlen(sorted[i]) + 1);
        }

        (void) EVP_DigestFinal_ex(ctx, md, NULL);
    }

    EVP_MD_CTX_free(ctx);
    free(sorted);

    for (i = 0; i < OCI_CLUSTER_LIST_HASH_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }

    out[OCI_CLUSTER_LIST_HASH_LEN] = '\0';
}


/* hex HMAC-SHA256 of "v1 <list> <time> <key>" into mac (65 bytes) */
static int
oci_cluster_mac(const unsigned char *secret, size_t secret_len,
    const char *list_hash, long long t, const char *key, size_t key_len,
    char mac[65])
{
    int            n;
    size_t         i;
    unsigned int   md_len;
    char           msg[64 + OCI_CLUSTER_KEY_MAX];
    unsigned char  md[EVP_MAX_MD_SIZE];
    static const char  hex[] = "0123456789abcdef";

    if (key_len > OCI_CLUSTER_KEY_MAX) {
        return OCI_ERANGE;
    }

    n = snprintf(msg, sizeof(msg), "v1 %s %lld ", list_hash, t);

    if (n < 0 || (size_t) n + key_len > sizeof(msg)) {
        return OCI_ERANGE;
    }

    memcpy(msg + n, key, key_len);

    md_len = 0;

    if (HMAC(EVP_sha256(), secret, (int) secret_len, (unsigned char *) msg,
             (size_t) n + key_len, md, &md_len)
        == NULL || md_len != 32)
    {
        return OCI_EINVAL;
    }

    for (i = 0; i < 32; i++) {
        mac[2 * i] = hex[md[i] >> 4];
        mac[2 * i + 1] = hex[md[i] & 0xf];
    }

    mac[64] = '\0';

    return OCI_OK;
}


int
oci_cluster_sign(const unsigned char *secret, size_t secret_len,
    const char *list_hash, long long now, const char *key, size_t key_len,
    char *out, size_t outlen)
{
    int   rc, n;
    char  mac[65];

    rc = oci_cluster_mac(secret, secret_len, list_hash, now, key, key_len,
                         mac);
    if (rc != OCI_OK) {
        return rc;
    }

    n = snprintf(out, outlen, "v1 %s %lld %s", list_hash, now, mac);

    return (n < 0 || (size_t) n >= outlen) ? OCI_ERANGE : OCI_OK;
}


int
oci_cluster_verify(const unsigned char *secret, size_t secret_len,
    const char *value, size_t len, long long now, const char *key,
    size_t key_len, char list_out[OCI_CLUSTER_LIST_HASH_LEN + 1])
{
    size_t      i, tl;
    long long   t;
    const char *p, *end, *lp, *tp, *mp;
    char        list[OCI_CLUSTER_LIST_HASH_LEN + 1], mac[65];

    end = value + len;
    p = value;

    if (len < 3 || memcmp(p, "v1 ", 3) != 0) {
        return OCI_EINVAL;
    }

    p += 3;
    lp = p;

    for (i = 0; i < OCI_CLUSTER_LIST_HASH_LEN; i++) {
        if (p >= end || !((*p >= '0' && *p <= '9')
                          || (*p >= 'a' && *p <= 'f')))
        {
            return OCI_EINVAL;
        }

        p++;
    }

    if (p >= end || *p++ != ' ') {
        return OCI_EINVAL;
    }

    tp = p;
    t = 0;

    while (p < end && *p >= '0' && *p <= '9') {
        if (p - tp >= 18) {
            return OCI_EINVAL;
        }

        t = t * 10 + (*p++ - '0');
    }

    tl = (size_t) (p - tp);

    if (tl == 0 || p >= end || *p++ != ' ') {
        return OCI_EINVAL;
    }

    mp = p;

    if ((size_t) (end - mp) != 64) {
        return OCI_EINVAL;
    }

    memcpy(list, lp, OCI_CLUSTER_LIST_HASH_LEN);
    list[OCI_CLUSTER_LIST_HASH_LEN] = '\0';

    if (oci_cluster_mac(secret, secret_len, list, t, key, key_len, mac)
        != OCI_OK)
    {
        return OCI_EINVAL;
    }

    if (CRYPTO_memcmp(mac, mp, 64) != 0) {
        return OCI_EINVAL;
    }

    if (t < now - OCI_CLUSTER_SKEW || t > now + OCI_CLUSTER_SKEW) {
        return OCI_ERANGE;
    }

    if (list_out != NULL) {
        memcpy(list_out, list, sizeof(list));
    }

    return OCI_OK;
}
