/*
 * The next page of an upstream list (see paging.h).
 */

#include <string.h>

#include "paging.h"


/* The parameters p[0..len) say rel="next" (or rel=next). */
static int
paging_is_next(const char *p, size_t len)
{
    return memmem(p, len, "rel=\"next\"", 10) != NULL
           || memmem(p, len, "rel=next", 8) != NULL;
}


paging_next_t
paging_next_target(const char *link, int truncated, const char **start,
    size_t *len)
{
    const char  *lt, *gt, *p, *end;

    for (p = link; /* void */ ; p = end) {
        lt = strchr(p, '<');

        if (lt == NULL) {
            break;
        }

        gt = strchr(lt, '>');

        if (gt == NULL) {
            /* a target that never ends: if a next page is named after
             * it, it cannot be followed */
            if (paging_is_next(lt, strlen(lt))) {
                return PAGING_UNUSABLE;
            }

            break;
        }

        /* the parameters of this link-value run to the next one's '<' */
        end = strchr(gt, '<');
        if (end == NULL) {
            end = gt + strlen(gt);
        }

        if (paging_is_next(gt, (size_t) (end - gt))) {
            *start = lt + 1;
            *len = (size_t) (gt - (lt + 1));
            return PAGING_NEXT;
        }
    }

    /* the value left out may have been the next one */
    return truncated ? PAGING_UNUSABLE : PAGING_LAST;
}
