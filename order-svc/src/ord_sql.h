/* ord_sql.h - the statements of order-svc's shard transactions, built as text.
 *
 * Pure functions, unit-tested with fixed strings. Nothing is quoted from
 * outside: saga ids were checked to be 32 hex digits by msg_decode (and are
 * checked again here), the other values are integers, and grab_time is
 * rendered in C as a UTC DATETIME(3) literal so that the session time zone
 * cannot move it. */
#ifndef ORD_SQL_H
#define ORD_SQL_H

#include <stddef.h>

#include "msg.h"
#include "ord_queue.h"
#include "status.h"

/* Room for the longest statement: a full batch of create rows (each well
 * under 200 bytes) plus the statement around them. */
#define ORD_SQL_MAX (512 + MSG_MAX_BATCH * 200)

/* 'YYYY-MM-DD HH:MM:SS.mmm' (with the quotes) for ms since the epoch, UTC. */
int ord_sql_time(long long ms, char *buf, size_t len) CG_MUSTCHECK;

/* SELECT saga_id FROM saga_barriers WHERE saga_id IN (...) LOCK IN SHARE MODE */
int ord_sql_barrier_select(ord_item *const *items, size_t n, char *buf, size_t len) CG_MUSTCHECK;

/* The multi-row INSERT ... ON DUPLICATE KEY UPDATE saga_id = saga_id of the
 * items not marked barred; *rows gets their number (0: nothing to insert,
 * and buf is left empty). */
int ord_sql_create_insert(ord_item *const *items, size_t n, char *buf, size_t len,
                          size_t *rows) CG_MUSTCHECK;

/* INSERT IGNORE INTO saga_barriers (saga_id) VALUES (...),... */
int ord_sql_cancel_barriers(ord_item *const *items, size_t n, char *buf, size_t len) CG_MUSTCHECK;

/* DELETE FROM coupon_results WHERE saga_id IN (...) */
int ord_sql_cancel_delete(ord_item *const *items, size_t n, char *buf, size_t len) CG_MUSTCHECK;

#endif
