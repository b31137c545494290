/* saga_log.c - the saga log's scripts and parsing; see saga_log.h. */
#include "saga_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"

/* The write. Refuses (without changing anything) a write from an instance
 * whose active set no longer holds the saga, and a state that may not follow
 * the logged one; a repeated terminal write is accepted as already done, so
 * that a write retried after an unknown outcome converges. The first write
 * (STARTED) of a keyed grab also binds idem:<key> (KEYS[3]) to the saga, so
 * that a key never names a saga that was not logged (a crash between two
 * separate commands left such keys): when the key already names another
 * saga whose hash exists, nothing is written and that saga is answered;
 * a key naming a saga without a hash is taken over. ARGV: id, state,
 * is_new, terminal, score, ttl, idem ttl, the saga key prefix, then the
 * fields. */
static const char saga_put_lua[] =
    "local allowed = {['STARTED>RESERVED']=1, ['STARTED>COMPENSATING']=1,\n"
    "  ['STARTED>COMPENSATED']=1, ['RESERVED>COMPLETED']=1, ['RESERVED>COMPENSATING']=1,\n"
    "  ['COMPENSATING>COMPENSATED']=1}\n"
    "local cur = redis.call('HGET', KEYS[1], 'state')\n"
    "if cur == ARGV[2] and ARGV[4] == '1' then return 'ok' end\n"
    "if cur then\n"
    "  if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 'not_owner' end\n"
    "  if cur ~= ARGV[2] and not allowed[cur .. '>' .. ARGV[2]] then return 'stale' end\n"
    "elseif ARGV[3] ~= '1' then\n"
    "  return 'missing'\n"
    "elseif KEYS[3] then\n"
    "  local b = redis.call('GET', KEYS[3])\n"
    "  if b and b ~= ARGV[1] and redis.call('EXISTS', ARGV[8] .. b) == 1 then\n"
    "    return 'bound:' .. b\n"
    "  end\n"
    "  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[7])\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', ARGV[2], unpack(ARGV, 9))\n"
    "if ARGV[4] == '1' then\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[6])\n"
    "else\n"
    "  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])\n"
    "end\n"
    "return 'ok'\n";

/* One saga and whether it is in the caller's active set, in one round trip. */
static const char saga_load_lua[] =
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "local mine = redis.call('ZSCORE', KEYS[2], ARGV[1]) and 1 or 0\n"
    "return {h, mine}\n";

/* Adoption: only when the heartbeat is gone; moves up to ARGV[2] sagas from
 * the dead instance's set to the caller's, and forgets the dead instance once
 * its set is empty. Atomic, so two adopters never both get a saga, and an
 * instance that comes back (heartbeat first) is never robbed. */
static const char saga_adopt_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return {} end\n"
    "local ids = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')\n"
    "local out = {}\n"
    "for i = 1, #ids, 2 do\n"
    "  redis.call('ZADD', KEYS[3], ids[i + 1], ids[i])\n"
    "  redis.call('ZREM', KEYS[2], ids[i])\n"
    "  out[#out + 1] = ids[i]\n"
    "end\n"
    "if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end\n"
    "return out\n";

/* ---- parsing ----------------------------------------------------------------- */

static int parse_ll(const char *s, long long *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return CG_ERR_INVALID;
    v = strtoll(s, &end, 10);
    if (*end != '\0')
        return CG_ERR_INVALID;
    *out = v;
    return CG_OK;
}

int saga_record_parse(const char *id, const char *const *kv, size_t n_kv, saga_record *out)
{
    enum { F_STATE = 1, F_USER = 2, F_COUPON = 4, F_ROOM = 8, F_TIME = 16, F_ALL = 31 };
    int seen = 0, rc = CG_OK;

    memset(out, 0, sizeof(*out));
    if (n_kv == 0)
        return CG_ERR_NOTFOUND;
    snprintf(out->id, sizeof(out->id), "%s", id);
    for (size_t i = 0; i + 1 < n_kv && rc == CG_OK; i += 2) {
        const char *k = kv[i], *v = kv[i + 1];

        if (k == NULL || v == NULL)
            return CG_ERR_INVALID;
        if (strcmp(k, "state") == 0) {
            rc = saga_state_parse(v, &out->state);
            seen |= F_STATE;
        } else if (strcmp(k, "user_id") == 0) {
            rc = parse_ll(v, &out->user_id);
            seen |= F_USER;
        } else if (strcmp(k, "coupon_id") == 0) {
            rc = parse_ll(v, &out->coupon_id);
            seen |= F_COUPON;
        } else if (strcmp(k, "room_id") == 0) {
            rc = parse_ll(v, &out->room_id);
            seen |= F_ROOM;
        } else if (strcmp(k, "grab_time") == 0) {
            rc = parse_ll(v, &out->grab_time);
            seen |= F_TIME;
        } else if (strcmp(k, "created_ms") == 0) {
            rc = parse_ll(v, &out->created_ms);
        } else if (strcmp(k, "updated_ms") == 0) {
            rc = parse_ll(v, &out->updated_ms);
        } else if (strcmp(k, "owner") == 0) {
            snprintf(out->owner, sizeof(out->owner), "%s", v);
        } else if (strcmp(k, "reason") == 0) {
            snprintf(out->reason, sizeof(out->reason), "%s", v);
        } else if (strcmp(k, "comp") == 0) {
            rc = saga_comp_parse(v, &out->comp);
        }
        /* other fields (per-state timestamps) are for people, not for recovery */
    }
    if (rc != CG_OK || (seen & F_ALL) != F_ALL)
        return CG_ERR_INVALID;
    if (out->state == SAGA_COMPENSATING && out->comp == SAGA_COMP_NONE)
        out->comp = SAGA_COMP_CANCEL;   /* unknown progress: the safe start */
    return CG_OK;
}

size_t saga_log_strings(const redisReply *r, const char **kv, size_t max)
{
    size_t n = 0;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t i = 0; i < r->elements && n < max; i++) {
        const redisReply *e = r->element[i];

        kv[n++] = (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) ? e->str : NULL;
    }
    return n;
}

/* ---- writes -------------------------------------------------------------------- */

typedef struct put_ctx {
    saga_put_cb cb;
    void *arg;
} put_ctx;

#define PUT_BOUND_PREFIX "bound:"

int saga_put_result_parse(const char *answer, char *bound)
{
    size_t n = sizeof(PUT_BOUND_PREFIX) - 1;

    bound[0] = '\0';
    if (strcmp(answer, "ok") == 0)
        return SAGA_PUT_OK;
    if (strcmp(answer, "not_owner") == 0)
        return SAGA_PUT_NOT_OWNER;
    if (strcmp(answer, "stale") == 0)
        return SAGA_PUT_STALE;
    if (strcmp(answer, "missing") == 0)
        return SAGA_PUT_MISSING;
    if (strncmp(answer, PUT_BOUND_PREFIX, n) == 0 && msg_saga_id_valid(answer + n)) {
        memcpy(bound, answer + n, MSG_SAGA_ID_LEN + 1);
        return SAGA_PUT_BOUND;
    }
    return SAGA_PUT_UNKNOWN;
}

static void on_put(rds_client *c, int status, redisReply *r, void *arg)
{
    put_ctx *p = arg;
    char bound[MSG_SAGA_ID_LEN + 1] = "";
    int result = SAGA_PUT_UNKNOWN;

    (void)c;
    if (status == CG_OK && r != NULL && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING)) {
        result = saga_put_result_parse(r->str, bound);
        if (result == SAGA_PUT_UNKNOWN)
            log_warn("-", "saga log write answered '%s'", r->str);
    } else if (status == CG_OK && r != NULL && r->type == REDIS_REPLY_ERROR) {
        log_warn("-", "saga log write: %s", r->str);
    }
    p->cb(result, result == SAGA_PUT_BOUND ? bound : NULL, p->arg);
    free(p);
}

#define PUT_MAX_ARGS 40

int saga_log_put(rds_client *r, const saga_put *p, saga_put_cb cb, void *arg)
{
    const saga *s = p->s;
    const char *argv[PUT_MAX_ARGS];
    char key[KEY_MAX], set[KEY_MAX], idem[KEY_MAX], prefix[KEY_MAX], score[24], ttl[24], now[24];
    char idem_ttl[24];
    char user[24], coupon[24], room[24], gtime[24], created[24];
    char ts_field[32];
    int argc = 0, rc, terminal = saga_state_terminal(p->to);
    int keyed = p->is_new && p->idem != NULL && p->idem[0] != '\0';
    put_ctx *ctx;

    snprintf(key, sizeof(key), KEY_SAGA_FMT, s->id);
    snprintf(set, sizeof(set), KEY_SAGAS_ACTIVE_FMT, p->instance);
    snprintf(score, sizeof(score), "%lld", p->score);
    snprintf(ttl, sizeof(ttl), "%lld", p->ttl_s);
    snprintf(now, sizeof(now), "%lld", p->now_wall_ms);
    snprintf(idem, sizeof(idem), KEY_IDEMPOTENCY_FMT, keyed ? p->idem : "");
    snprintf(idem_ttl, sizeof(idem_ttl), "%lld", p->idem_ttl_s);
    snprintf(prefix, sizeof(prefix), KEY_SAGA_FMT, "");   /* "saga:" */
    /* "reserved_ms": when each state was reached, for people reading the log */
    snprintf(ts_field, sizeof(ts_field), "%s_ms", saga_state_name(p->to));
    for (char *c = ts_field; *c != '\0'; c++)
        *c = (char)((*c >= 'A' && *c <= 'Z') ? *c - 'A' + 'a' : *c);

    argv[argc++] = "EVAL";
    argv[argc++] = saga_put_lua;
    argv[argc++] = keyed ? "3" : "2";
    argv[argc++] = key;
    argv[argc++] = set;
    if (keyed)
        argv[argc++] = idem;
    argv[argc++] = s->id;
    argv[argc++] = saga_state_name(p->to);
    argv[argc++] = p->is_new ? "1" : "0";
    argv[argc++] = terminal ? "1" : "0";
    argv[argc++] = score;
    argv[argc++] = ttl;
    argv[argc++] = idem_ttl;
    argv[argc++] = prefix;
    /* ARGV[9..]: fields */
    argv[argc++] = "owner";
    argv[argc++] = p->instance;
    argv[argc++] = "updated_ms";
    argv[argc++] = now;
    argv[argc++] = ts_field;
    argv[argc++] = now;
    if (p->is_new) {
        snprintf(user, sizeof(user), "%lld", s->user_id);
        snprintf(coupon, sizeof(coupon), "%lld", s->coupon_id);
        snprintf(room, sizeof(room), "%lld", s->room_id);
        snprintf(gtime, sizeof(gtime), "%lld", s->grab_time);
        snprintf(created, sizeof(created), "%lld", s->created_ms);
        argv[argc++] = "user_id";
        argv[argc++] = user;
        argv[argc++] = "coupon_id";
        argv[argc++] = coupon;
        argv[argc++] = "room_id";
        argv[argc++] = room;
        argv[argc++] = "grab_time";
        argv[argc++] = gtime;
        argv[argc++] = "created_ms";
        argv[argc++] = created;
    }
    if (p->to == SAGA_COMPENSATING || p->to == SAGA_COMPENSATED) {
        argv[argc++] = "reason";
        argv[argc++] = s->reason[0] ? s->reason : "unknown";
    }
    if (p->to == SAGA_COMPENSATING) {
        argv[argc++] = "comp";
        argv[argc++] = saga_comp_name(s->comp);
    }
    ctx = malloc(sizeof(*ctx));
    if (ctx == NULL)
        return CG_ERR_NOMEM;
    ctx->cb = cb;
    ctx->arg = arg;
    rc = rds_command_argv(r, on_put, ctx, argc, argv, NULL);
    if (rc != CG_OK)
        free(ctx);
    return rc;
}

/* ---- reads ----------------------------------------------------------------------- */

typedef struct load_ctx {
    saga_load_cb cb;
    void *arg;
    char id[MSG_SAGA_ID_LEN + 1];
} load_ctx;

#define LOAD_MAX_KV 64

static void on_load(rds_client *c, int status, redisReply *r, void *arg)
{
    load_ctx *l = arg;
    saga_record rec;
    const char *kv[LOAD_MAX_KV];
    size_t n;
    int rc = status, found = 0, mine = 0;

    (void)c;
    if (rc == CG_OK && (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                        r->element[1]->type != REDIS_REPLY_INTEGER)) {
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            log_warn(l->id, "saga log read: %s", r->str);
        rc = CG_ERR_PROTOCOL;
    }
    if (rc == CG_OK) {
        mine = r->element[1]->integer == 1;
        n = saga_log_strings(r->element[0], kv, LOAD_MAX_KV);
        rc = saga_record_parse(l->id, kv, n, &rec);
        if (rc == CG_OK) {
            found = 1;
        } else if (rc == CG_ERR_NOTFOUND) {
            rc = CG_OK;
        } else {
            log_error(l->id, "saga log entry is malformed");
        }
    }
    l->cb(rc, found, mine, found ? &rec : NULL, l->arg);
    free(l);
}

int saga_log_load(rds_client *r, const char *instance, const char *id, saga_load_cb cb, void *arg)
{
    char key[KEY_MAX], set[KEY_MAX];
    const char *argv[6];
    load_ctx *l;
    int rc;

    l = malloc(sizeof(*l));
    if (l == NULL)
        return CG_ERR_NOMEM;
    l->cb = cb;
    l->arg = arg;
    snprintf(l->id, sizeof(l->id), "%s", id);
    snprintf(key, sizeof(key), KEY_SAGA_FMT, id);
    snprintf(set, sizeof(set), KEY_SAGAS_ACTIVE_FMT, instance);
    argv[0] = "EVAL";
    argv[1] = saga_load_lua;
    argv[2] = "2";
    argv[3] = key;
    argv[4] = set;
    argv[5] = l->id;
    rc = rds_command_argv(r, on_load, l, 6, argv, NULL);
    if (rc != CG_OK)
        free(l);
    return rc;
}

/* ---- adoption -------------------------------------------------------------------- */

typedef struct adopt_ctx {
    saga_adopt_cb cb;
    void *arg;
} adopt_ctx;

static void on_adopt(rds_client *c, int status, redisReply *r, void *arg)
{
    adopt_ctx *a = arg;
    const char **ids = NULL;
    size_t n = 0;

    (void)c;
    if (status == CG_OK && (r == NULL || r->type != REDIS_REPLY_ARRAY)) {
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            log_warn("-", "saga adoption: %s", r->str);
        status = CG_ERR_PROTOCOL;
    }
    if (status == CG_OK && r->elements > 0) {
        ids = malloc(r->elements * sizeof(*ids));
        if (ids == NULL)
            status = CG_ERR_NOMEM;
        else
            n = saga_log_strings(r, ids, r->elements);
    }
    a->cb(status, ids, n, a->arg);
    free(ids);
    free(a);
}

int saga_log_adopt(rds_client *r, const char *dead, const char *mine, int max, saga_adopt_cb cb,
                   void *arg)
{
    char alive[KEY_MAX], dead_set[KEY_MAX], my_set[KEY_MAX], maxs[16];
    const char *argv[9];
    adopt_ctx *a;
    int rc;

    a = malloc(sizeof(*a));
    if (a == NULL)
        return CG_ERR_NOMEM;
    a->cb = cb;
    a->arg = arg;
    snprintf(alive, sizeof(alive), KEY_ORCH_ALIVE_FMT, dead);
    snprintf(dead_set, sizeof(dead_set), KEY_SAGAS_ACTIVE_FMT, dead);
    snprintf(my_set, sizeof(my_set), KEY_SAGAS_ACTIVE_FMT, mine);
    snprintf(maxs, sizeof(maxs), "%d", max);
    argv[0] = "EVAL";
    argv[1] = saga_adopt_lua;
    argv[2] = "4";
    argv[3] = alive;
    argv[4] = dead_set;
    argv[5] = my_set;
    argv[6] = KEY_ORCH_INSTANCES;
    argv[7] = dead;
    argv[8] = maxs;
    rc = rds_command_argv(r, on_adopt, a, 9, argv, NULL);
    if (rc != CG_OK)
        free(a);
    return rc;
}
