/* keys.h - the Redis key layout shared by stock-svc, the orchestrator, the
 * seeder and the consistency test (docs/messages.md has the whole picture).
 *
 * The braces are Redis Cluster hash tags: all keys of one coupon stay in one
 * slot, so that one WATCH/MULTI/EXEC can cover them if the data ever moves
 * to a cluster. */
#ifndef CG_KEYS_H
#define CG_KEYS_H

/* remaining stock of coupon C, an integer that never goes below 0 */
#define KEY_STOCK_FMT         "stock:{%lld}"
/* the coupon's total (initial) stock, for reads and reconciliation */
#define KEY_STOCK_TOTAL_FMT   "stock:{%lld}:total"
/* set of user ids holding coupon C (one per user) */
#define KEY_STOCK_HOLDERS_FMT "stock:{%lld}:holders"
/* hash saga_id -> outcome of that saga's reserve/release on coupon C:
 * "R" reserved, "J:<reason>" rejected, "L" released (or barred before any
 * reserve); a saga id seen before gets the answer recorded here */
#define KEY_STOCK_SAGAS_FMT   "stock:{%lld}:sagas"
/* the coupon's room id (immutable), so the orchestrator routes without SQL */
#define KEY_STOCK_ROOM_FMT    "stock:{%lld}:room"
/* set of coupon ids with stock loaded, for sweeps and checks */
#define KEY_COUPONS           "coupons"
/* set of the coupon ids of room R with stock loaded, for the room's stats */
#define KEY_ROOM_COUPONS_FMT  "room:{%lld}:coupons"

/* saga log (orchestrator): hash of the saga's state and data */
#define KEY_SAGA_FMT          "saga:%s"
/* sorted set of an orchestrator instance's unfinished saga ids, scored by
 * their next deadline (ms); recovery resumes them */
#define KEY_SAGAS_ACTIVE_FMT  "sagas:active:%s"
/* an orchestrator instance's heartbeat (expires when it dies) */
#define KEY_ORCH_ALIVE_FMT    "orch:alive:%s"
/* set of orchestrator instance ids ever seen, walked by the adoption sweep */
#define KEY_ORCH_INSTANCES    "orch:instances"
/* Idempotency-Key header -> saga id */
#define KEY_IDEMPOTENCY_FMT   "idem:%s"

#define KEY_MAX 128            /* longest key built from these formats */

#endif
