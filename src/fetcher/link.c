/*
 * Link header parsing (see link.h).
 */

#include <string.h>

#include "link.h"


int
link_next_target(const char *link, const char **start, size_t *len)
{
    const char  *lt, *gt, *p, *end;
    size_t       plen;

    for (p = link; /* void */ ; p = end) {
        lt = strchr(p, '<');
        gt = lt != NULL ? strchr(lt, '>') : NULL;

        if (gt == NULL) {
            return 0;
        }

        /* the parameters of this link-value run to the next one's '<' */
        end = strchr(gt, '<');
        if (end == NULL) {
            end = gt + strlen(gt);
        }

        plen = (size_t) (end - gt);

        if (memmem(gt, plen, "rel=\"next\"", 10) != NULL
            || memmem(gt, plen, "rel=next", 8) != NULL)
        {
            *start = lt + 1;
            *len = (size_t) (gt - (lt + 1));
            return 1;
        }
    }
}

