/* ct_stack.h - the stack's own scripts, for the fault scenarios.
 *
 * Servers are killed and started only through $REPO_DIR/scripts/stack and
 * scripts/services (by pid file, never by name), with STACK_DIR from the
 * environment; every call is bounded by timeout(1). */
#ifndef CT_STACK_H
#define CT_STACK_H

#include <stddef.h>
#include <sys/types.h>

#include "ct_conf.h"
#include "status.h"

#define CT_SCRIPT_TIMEOUT_S 180

/* Runs scripts/<script> <args> (its output to stderr); the exit status, or
 * -1 when it could not run. */
int ct_script(const ct_conf *conf, const char *script, const char *args);

/* Starts scripts/<script> <args> without waiting (the load driver keeps
 * sending meanwhile); the child's pid, or -1. */
pid_t ct_script_spawn(const ct_conf *conf, const char *script, const char *args);

/* The exit status of a spawned script: CT_SCRIPT_RUNNING while it runs
 * (block = 0), -1 when it failed to run. */
#define CT_SCRIPT_RUNNING (-2)
int ct_script_reap(pid_t pid, int block);

/* 1 when `scripts/services status` says the service is up. */
int ct_service_up(const ct_conf *conf, const char *name);

/* One queue of the broker, as `scripts/stack queues` reports it. */
typedef struct ct_queue_count {
    char name[128];
    long ready;
    long unacked;          /* delivered to a consumer, not acknowledged yet */
    long consumers;
} ct_queue_count;

#define CT_QUEUES_MAX 64

/* The grab vhost's queues (unacknowledged counts are not visible over
 * AMQP, hence the script); CG_ERR_IO when it cannot be run or read. */
int ct_stack_queues(const ct_conf *conf, ct_queue_count *out, size_t max, size_t *n) CG_MUSTCHECK;

#endif
