/* saga_log.h - the durable saga log in Redis (docs/saga.md "Saga log").
 *
 * saga:<id> is a hash with the saga's data and state; sagas:active:<inst>
 * is a sorted set of the unfinished sagas an instance owns, scored by their
 * deadline (wall-clock ms). Every write is one EVAL of a small Lua script,
 * so that the hash and the set change together and the script can refuse a
 * write that would move a state backwards or that comes from an instance
 * which no longer owns the saga (it was adopted after a missed heartbeat).
 * Reads (one saga, with "is it in my set") are scripts too, for the same
 * atomicity. Parsing of what the log holds is pure and unit-tested. */
#ifndef ORCH_SAGA_LOG_H
#define ORCH_SAGA_LOG_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "rds.h"
#include "saga.h"

/* What a write script answered. */
enum saga_put_result {
    SAGA_PUT_OK = 0,          /* written */
    SAGA_PUT_NOT_OWNER = 1,   /* the saga is not (any more) in this instance's set */
    SAGA_PUT_STALE = 2,       /* the log holds a state this one may not follow */
    SAGA_PUT_MISSING = 3,     /* the saga's hash does not exist */
    SAGA_PUT_UNKNOWN = 4,     /* no (usable) answer: outcome unknown, retry */
    SAGA_PUT_BOUND = 5        /* a STARTED write whose Idempotency-Key names another
                                 logged saga: nothing was written */
};

/* A saga as the log holds it. */
typedef struct saga_record {
    char id[MSG_SAGA_ID_LEN + 1];
    enum saga_state state;
    long long user_id, coupon_id, room_id, grab_time;
    long long created_ms, updated_ms;
    char owner[MSG_MAX_INSTANCE + 1];
    char reason[SAGA_REASON_MAX];
    enum saga_comp comp;
} saga_record;

/* Parses the field/value pairs of HGETALL saga:<id>. CG_ERR_NOTFOUND for an
 * empty hash; CG_ERR_INVALID when a required field is missing or malformed. */
int saga_record_parse(const char *id, const char *const *kv, size_t n_kv,
                      saga_record *out) CG_MUSTCHECK;

/* ---- writes -------------------------------------------------------------- */

typedef struct saga_put {
    const char *instance;     /* owner */
    const saga *s;            /* data (id, user, coupon, ...) */
    enum saga_state to;
    int is_new;               /* the first write (STARTED) */
    long long now_wall_ms;
    long long score;          /* deadline, wall-clock ms (non-terminal states) */
    long long ttl_s;          /* lifetime of the hash once terminal */
    /* The STARTED write binds idem:<idem> to the saga in the same script: the
     * key and the saga's hash exist both or neither. A key that names another
     * saga whose hash exists wins (SAGA_PUT_BOUND, nothing written); one that
     * names a saga without a hash (expired, or left by an older version) is
     * taken over. NULL or "" when the request had no key. */
    const char *idem;
    long long idem_ttl_s;     /* lifetime of the binding */
} saga_put;

/* bound: the saga the Idempotency-Key names (SAGA_PUT_BOUND only, else NULL);
 * valid during the call. */
typedef void (*saga_put_cb)(int result, const char *bound, void *arg);

/* Sends the write; cb runs exactly once later with an enum saga_put_result,
 * unless the submit fails (returns an error, cb never runs). */
int saga_log_put(rds_client *r, const saga_put *p, saga_put_cb cb, void *arg) CG_MUSTCHECK;

/* Maps the write script's answer to an enum saga_put_result; for "bound:<id>"
 * copies the id (a valid saga id, else SAGA_PUT_UNKNOWN) into
 * bound[MSG_SAGA_ID_LEN + 1]. Pure, for the unit tests. */
int saga_put_result_parse(const char *answer, char *bound);

/* ---- reads --------------------------------------------------------------- */

/* found: 0 no such saga, 1 record filled; mine: 1 when the id is in
 * sagas:active:<instance>. status != CG_OK: no answer (record invalid). */
typedef void (*saga_load_cb)(int status, int found, int mine, const saga_record *rec,
                             void *arg);

int saga_log_load(rds_client *r, const char *instance, const char *id, saga_load_cb cb,
                  void *arg) CG_MUSTCHECK;

/* ---- ownership --------------------------------------------------------------- */

/* Moves up to max of dead's active sagas to mine, when dead's heartbeat is
 * gone (atomically, in one script); the callback gets the ids moved (n may
 * be 0). ids point into the reply: copy them during the call. */
typedef void (*saga_adopt_cb)(int status, const char *const *ids, size_t n, void *arg);

int saga_log_adopt(rds_client *r, const char *dead, const char *mine, int max,
                   saga_adopt_cb cb, void *arg) CG_MUSTCHECK;

/* Copies a redisReply string array's items (borrowed pointers) into kv;
 * returns how many, at most max. */
size_t saga_log_strings(const redisReply *r, const char **kv, size_t max);

#endif
