/* ct_quiet.c - the bounded wait for a quiet system; see ct_quiet.h. */
#include "ct_quiet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct_http.h"
#include "ct_mq.h"
#include "ct_redis.h"
#include "ct_stack.h"
#include "msg.h"

#define CT_QUIET_POLL_MS 250
#define CT_QUEUES_LOOK_MS 2000   /* between two `scripts/stack queues` */

/* One look; *quiet set when everything is at rest. */
static int ct_quiet_poll(ct_env *env, const char *const *ids, size_t n, ct_quiet_status *st,
                         char (*states)[CT_SAGA_STATE_MAX], int *found, ct_state_obs obs, void *obs_arg,
                         int *quiet, cg_error *err)
{
    static const char *const queues[] = {MSG_QUEUE_STOCK, MSG_QUEUE_ORDER};
    long depths[2] = {0, 0};
    redisContext *rc = ct_env_redis(env, err);
    int status;

    *quiet = 0;
    if (rc == NULL)
        return CG_ERR_IO;
    status = ct_redis_active_sagas(rc, NULL, 0, &st->active, st->sample, sizeof(st->sample), err);
    if (status == CG_OK && n > 0)
        status = ct_redis_saga_states(rc, ids, n, states, found, err);
    if (status != CG_OK) {
        ct_env_redis_failed(env);
        return status;
    }
    st->not_finished = 0;
    for (size_t i = 0; obs != NULL && i < n; i++)
        obs(i, states[i], found[i], obs_arg);
    for (size_t i = 0; i < n; i++) {
        if (found[i] && ct_state_terminal(states[i]))
            continue;
        if (st->not_finished++ == 0 && st->active == 0)
            snprintf(st->sample, sizeof(st->sample), "saga %s is %s", ids[i],
                     found[i] ? (states[i][0] ? states[i] : "(no state)") : "(no saga log)");
    }
    status = ct_mq_queue_depths(env->conf, queues, 2, depths, err);
    if (status != CG_OK)
        return status;
    st->depth_stock = depths[0];
    st->depth_order = depths[1];
    *quiet = st->active == 0 && st->not_finished == 0 && depths[0] <= 0 && depths[1] <= 0;
    return CG_OK;
}

/* The command and reply queues (the ones a quiet system leaves empty). */
static int ct_queue_watched(const char *name)
{
    return strcmp(name, MSG_QUEUE_STOCK) == 0 || strcmp(name, MSG_QUEUE_ORDER) == 0 ||
           strncmp(name, MSG_REPLY_PREFIX, strlen(MSG_REPLY_PREFIX)) == 0;
}

static int ct_queues_read(ct_env *env, ct_queue_count *q, size_t *n, cg_error *err)
{
    if (ct_stack_queues(env->conf, q, CT_QUEUES_MAX, n) != CG_OK || *n == 0)
        return cg_error_set(err, CG_ERR_IO, "scripts/stack queues failed: cannot tell whether "
                            "consumers hold messages");
    return CG_OK;
}

static long ct_held_before(const ct_env *env, const char *name)
{
    for (size_t i = 0; i < env->n_held; i++) {
        if (strcmp(env->held_name[i], name) == 0)
            return env->held_base[i];
    }
    return 0;
}

int ct_quiet_baseline(ct_env *env, cg_error *err)
{
    ct_queue_count q[CT_QUEUES_MAX];
    size_t n = 0;
    int status = ct_queues_read(env, q, &n, err);

    env->n_held = 0;
    for (size_t i = 0; status == CG_OK && i < n; i++) {
        size_t k = env->n_held;

        if (!ct_queue_watched(q[i].name) || q[i].ready + q[i].unacked == 0 ||
            k >= sizeof(env->held_base) / sizeof(env->held_base[0]))
            continue;
        snprintf(env->held_name[k], sizeof(env->held_name[k]), "%.127s", q[i].name);
        env->held_base[k] = q[i].ready + q[i].unacked;
        env->n_held++;
    }
    return status;
}

/* The final look: no command or reply queue holds more messages, ready or
 * unacknowledged, than before the scenario. *quiet = 0 and st->held says
 * which do. */
static int ct_queues_at_rest(ct_env *env, ct_quiet_status *st, int *quiet, cg_error *err)
{
    ct_queue_count q[CT_QUEUES_MAX];
    size_t n = 0, off = 0;
    int status = ct_queues_read(env, q, &n, err);

    *quiet = 1;
    st->held[0] = '\0';
    for (size_t i = 0; status == CG_OK && i < n; i++) {
        long before = ct_held_before(env, q[i].name);

        if (!ct_queue_watched(q[i].name) || q[i].ready + q[i].unacked <= before)
            continue;
        *quiet = 0;
        if (off < sizeof(st->held))
            off += (size_t)snprintf(st->held + off, sizeof(st->held) - off,
                                    "%s%s %ld ready %ld unacked (%ld before)", off ? ", " : "",
                                    q[i].name, q[i].ready, q[i].unacked, before);
    }
    return status;
}

int ct_wait_quiet(ct_env *env, const char *const *ids, size_t n, long long timeout_ms,
                  ct_quiet_status *st, ct_state_obs obs, void *obs_arg, cg_error *err)
{
    char (*states)[CT_SAGA_STATE_MAX] = n > 0 ? calloc(n, sizeof(*states)) : NULL;
    int *found = n > 0 ? calloc(n, sizeof(*found)) : NULL;
    long long t0 = ct_now_ms(), deadline = t0 + timeout_ms, next_look = 0;
    int status = CG_OK, quiet = 0, in_row = 0;

    memset(st, 0, sizeof(*st));
    if (n > 0 && (states == NULL || found == NULL)) {
        status = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        struct timespec pause = {0, CT_QUIET_POLL_MS * 1000000L};

        status = ct_quiet_poll(env, ids, n, st, states, found, obs, obs_arg, &quiet, err);
        in_row = status == CG_OK && quiet ? in_row + 1 : 0;
        /* The queue listing costs a rabbitmqctl run: at most one per period. */
        if (in_row >= 2 && ct_now_ms() >= next_look) {
            next_look = ct_now_ms() + CT_QUEUES_LOOK_MS;
            status = ct_queues_at_rest(env, st, &quiet, err);
            if (status == CG_OK && quiet)
                break;
            in_row = 0;
        }
        if (ct_now_ms() >= deadline) {
            if (status == CG_OK)
                status = cg_error_set(err, CG_ERR_TIMEOUT, "not quiet after %lld ms: %lld active "
                                      "sagas, %zu known sagas unfinished (%s), queued stock %ld, "
                                      "order %ld; held: %s", timeout_ms, st->active, st->not_finished,
                                      st->sample[0] ? st->sample : "-", st->depth_stock,
                                      st->depth_order, st->held[0] ? st->held : "none");
            break;
        }
        nanosleep(&pause, NULL);
    }
done:
    st->waited_ms = ct_now_ms() - t0;
    free(found);
    free(states);
    return status;
}
