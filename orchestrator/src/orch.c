/* orch.c - clocks and readiness of the orchestrator's context; see orch.h. */
#include "orch.h"

#include <time.h>

long long orch_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long orch_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int orch_ready(const orch *o)
{
    return o->rds != NULL && o->mq != NULL && rds_client_is_up(o->rds) &&
           mq_client_is_up(o->mq) && o->recovery == RECOVERY_DONE;
}
