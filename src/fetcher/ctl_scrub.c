/*
 * ocimirrorctl scrub, scrub-status (see ctl.h).  SCAFFOLD.
 */

#include "ctl.h"


int
ctl_scrub(ctl_call_t *call, int argc, char **argv)
{
    ctl_out(call, "scrub: not built yet");
    return CTL_FAIL;
}


int
ctl_scrub_status(ctl_call_t *call, int argc, char **argv)
{
    ctl_out(call, "scrub-status: not built yet");
    return CTL_FAIL;
}


void
ctl_scrub_summary(ctl_call_t *call)
{
}
