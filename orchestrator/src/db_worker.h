/* db_worker.h - one worker thread for the orchestrator's MariaDB work
 * (POST /admin/coupons), since MariaDB calls block and must never run on the
 * event loop. Jobs go in through a bounded queue; each job's `run` executes
 * on the thread with the worker's connection (opened lazily, re-opened after
 * a broken one), and its `done` runs back on the loop thread, woken through
 * an eventfd. */
#ifndef ORCH_DB_WORKER_H
#define ORCH_DB_WORKER_H

#include <stddef.h>

#include <mysql.h>

#include "db.h"
#include "status.h"

struct event_base;
typedef struct dbw dbw;
typedef struct dbw_job dbw_job;

/* On the worker thread. *conn is the worker's connection (NULL when none is
 * open: connect with cfg); close it and set it to NULL when it broke. */
typedef void (*dbw_run_fn)(dbw_job *job, MYSQL **conn, const db_config *cfg);
/* On the loop thread; cancelled = 1 when the job never ran (shutdown). */
typedef void (*dbw_done_fn)(dbw_job *job, int cancelled);

struct dbw_job {
    dbw_run_fn run;
    dbw_done_fn done;
    struct dbw_job *next;   /* the worker's */
};

/* cfg's strings are copied. */
int dbw_new(struct event_base *base, const db_config *cfg, size_t max_queue, dbw **out,
            cg_error *err) CG_MUSTCHECK;
/* CG_ERR_FULL when max_queue jobs wait already; CG_ERR_STATE when stopping. */
int dbw_submit(dbw *w, dbw_job *job) CG_MUSTCHECK;
/* Stops the thread after the job it runs (bounded by the db timeouts), then
 * calls `done` of every job: cancelled for those that never ran. */
void dbw_free(dbw *w);

#endif
