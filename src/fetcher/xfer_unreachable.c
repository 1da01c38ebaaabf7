/*
 * Which curl results mean "this endpoint cannot be reached" (fail over to
 * the next one).  A unit of its own, apart from xfer.c, so that the unit
 * tests, which replace xfer.c with fakes, link this very list.
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
