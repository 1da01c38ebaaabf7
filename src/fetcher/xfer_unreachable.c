/*
 * Which curl results mean "this endpoint cannot be reached" (fail over to
 * the next one), and what TLS failures mean to a client.  A unit of its
 * own, apart from xfer.c, so that the unit tests, which replace xfer.c
 * with fakes, link this very list.
 */

#include "xfer.h"


int
xfer_unreachable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return 1;

    default:
        return 0;
    }
}


const char *
xfer_failure_reason(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        return "upstream TLS certificate refused (not trusted by ca_file "
               "or the system store, or not for this host)";

    case CURLE_SSL_CONNECT_ERROR:
        return "upstream TLS handshake failed";

    case CURLE_SSL_CERTPROBLEM:
        return "the configured client_cert cannot be used";

    case CURLE_SSL_CACERT_BADFILE:
        return "the configured ca_file cannot be used";

    default:
        return NULL;
    }
}
