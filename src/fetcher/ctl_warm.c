/*
 * ocimirrorctl warm, warm-status (see ctl.h).  SCAFFOLD.
 */

#include "ctl.h"


int
ctl_warm(ctl_call_t *call, int argc, char **argv)
{
    ctl_out(call, "warm: not built yet");
    return CTL_FAIL;
}


int
ctl_warm_status(ctl_call_t *call, int argc, char **argv)
{
    ctl_out(call, "warm-status: not built yet");
    return CTL_FAIL;
}


void
ctl_warm_summary(ctl_call_t *call)
{
}
