/*
 * BODY answers (see body.h).
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "oci_store.h"
#include "body.h"
#include "log.h"


int
body_reply(const oci_config_t *cf, conn_t *c, uint32_t id, const char *text,
    size_t len, const char *next)
{
    oci_msg_t  m;

    oci_msg_init(&m, OCI_MSG_BODY, id);
    m.status = 200;
    snprintf(m.next, sizeof(m.next), "%s", next);

    return body_send(cf, c, &m, text, len);
}


int
body_send(const oci_config_t *cf, conn_t *c, oci_msg_t *m, const char *text,
    size_t len)
{
    int  fd, rc;

    fd = oci_store_tmp_create(cf->store_path, m->path, sizeof(m->path));
    if (fd < 0) {
        log_error("cannot create a temp file in \"%s/tmp\": %s",
                  cf->store_path, strerror(errno));
        conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE, "store not writable");
        return -1;
    }

    rc = oci_write_all(fd, text, len, 0);

    if (rc != 0) {
        log_error("write(\"%s\") failed: %s", m->path, strerror(errno));
    }

    close(fd);

    /* once sent the file is the worker's; if not, nobody's */
    if (rc != 0 || conn_send(c, m) != 0) {
        unlink(m->path);

        if (rc != 0) {
            conn_send_fail(c, m->id, 503, OCI_ERR_UNAVAILABLE,
                       "store write failed");
        }

        return -1;
    }

    return 0;
}
