/*
 * Answers that travel in a temp file: BODY <id> 200 <path> <next|->, and
 * the META of a relayed manifest.  The worker opens the file and unlinks
 * it; a file whose message could not be sent is unlinked here.
 */

#ifndef FETCHER_BODY_H
#define FETCHER_BODY_H

#include "oci_config.h"
#include "server.h"

/* Write text[0..len) to a new temp file in the store and send BODY with
 * next ("" for none) to (c, id); FAIL 503 if the store cannot take the
 * file (logged).  0, or -1 if nothing was sent. */
int body_reply(const oci_config_t *cf, conn_t *c, uint32_t id,
    const char *text, size_t len, const char *next);

/* The same for any message that hands over a file (oci_msg_file()):
 * text goes to a new temp file whose path is put into m, and m is sent
 * to c with its own id. */
int body_send(const oci_config_t *cf, conn_t *c, oci_msg_t *m,
    const char *text, size_t len);

#endif /* FETCHER_BODY_H */
