/* ord_read.c - parsing, planning and answering order reads; see ord_read.h. */
#include "ord_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "httpq.h"
#include "ord_sql.h"

/* The columns of an order row, in the order the answer reads them; the
 * last one is the shard's own number, a literal in each shard's statement. */
#define ORDQ_ORDER_COLS "saga_id,user_id,coupon_id,room_id,grab_time,use_status,order_amount"
enum { OC_SAGA, OC_USER, OC_COUPON, OC_ROOM, OC_TIME, OC_USE, OC_AMOUNT, OC_SHARD, OC_N };

static const char *const ordq_kind_names[ORDQ_KIND_MAX] = {
    "user_coupons", "room_orders", "recent_orders", "room_counts", "totals", "shards",
};

const char *ordq_kind_name(enum ordq_kind k)
{
    return (k >= 0 && k < ORDQ_KIND_MAX) ? ordq_kind_names[k] : "?";
}

/* ---- parsing ------------------------------------------------------------------- */

static const struct {
    const char *pattern;
    enum ordq_kind kind;
    const char *id_name;       /* the path id's name in a 400 */
} ordq_routes[] = {
    {"/api/user/#/coupons", ORDQ_USER_COUPONS, "user_id"},
    {"/api/room/#/orders", ORDQ_ROOM_ORDERS, "room_id"},
    {"/api/orders/recent", ORDQ_RECENT, NULL},
    {"/internal/room/#/counts", ORDQ_ROOM_COUNTS, "room_id"},
    {"/internal/totals", ORDQ_TOTALS, NULL},
    {"/internal/shards", ORDQ_SHARDS, NULL},
};

static int ordq_refuse(ordq_refusal *why, int code, const char *field, const char *msg)
{
    why->code = code;
    why->field = field;
    snprintf(why->message, sizeof(why->message), "%s", msg);
    return CG_ERR_INVALID;
}

/* The parameters each kind takes. */
static int ordq_params(ordq *q, const char *query, ordq_refusal *why)
{
    httpq_int_spec specs[2] = {{NULL, 0, 0, 0}, {NULL, 0, 0, 0}};
    long long v[2];
    const char *bad = NULL;
    cg_error err = {0, ""};
    int n = 0;

    switch (q->kind) {
    case ORDQ_USER_COUPONS:
        specs[n++] = (httpq_int_spec){"limit", ORDQ_USER_LIMIT_DEF, 1, ORDQ_LIMIT_MAX};
        break;
    case ORDQ_ROOM_ORDERS:
        specs[n++] = (httpq_int_spec){"limit", ORDQ_ROOM_LIMIT_DEF, 1, ORDQ_LIMIT_MAX};
        break;
    case ORDQ_RECENT:
        specs[n++] = (httpq_int_spec){"limit", ORDQ_RECENT_LIMIT_DEF, 1, ORDQ_LIMIT_MAX};
        specs[n++] = (httpq_int_spec){"hours", ORDQ_HOURS_DEF, 1, ORDQ_HOURS_MAX};
        break;
    case ORDQ_ROOM_COUNTS:
    case ORDQ_TOTALS:
    case ORDQ_SHARDS:
        break;
    default:
        abort();
    }
    if (httpq_parse_ints(query, specs, n, v, &bad, &err) != CG_OK)
        return ordq_refuse(why, 400, bad, err.msg);
    if (n >= 1)
        q->limit = v[0];
    if (n >= 2)
        q->hours = v[1];
    return CG_OK;
}

int ordq_parse(int is_get, const char *path, const char *query, long long now_ms, ordq *q,
               ordq_refusal *why)
{
    memset(q, 0, sizeof(*q));
    memset(why, 0, sizeof(*why));
    q->now_ms = now_ms;
    for (size_t i = 0; i < sizeof(ordq_routes) / sizeof(ordq_routes[0]); i++) {
        switch (httpq_path_match(path, ordq_routes[i].pattern, &q->id)) {
        case HTTPQ_NO_MATCH:
            continue;
        case HTTPQ_BAD_ID:
            return ordq_refuse(why, 400, ordq_routes[i].id_name,
                               "expected an integer id in 1..9000000000000000000");
        case HTTPQ_MATCH:
            break;
        }
        if (!is_get)
            return ordq_refuse(why, 405, NULL, "allowed: GET");
        q->kind = ordq_routes[i].kind;
        return ordq_params(q, query, why);
    }
    return ordq_refuse(why, 404, NULL, "no such endpoint");
}

/* ---- planning ------------------------------------------------------------------- */

/* The filter of an order-list query. */
static int ordq_where(const ordq *q, char *buf, size_t len)
{
    char since[40];
    int n;

    if (q->kind == ORDQ_USER_COUPONS) {
        n = snprintf(buf, len, "user_id = %lld", q->id);
    } else if (q->kind == ORDQ_ROOM_ORDERS) {
        n = snprintf(buf, len, "room_id = %lld", q->id);
    } else {
        if (ord_sql_time(q->now_ms - q->hours * 3600000LL, since, sizeof(since)) != CG_OK)
            return CG_ERR_INVALID;
        n = snprintf(buf, len, "grab_time >= %s", since);
    }
    return n > 0 && (size_t)n < len ? CG_OK : CG_ERR_FULL;
}

static int ordq_sql(const ordq *q, int shard, char *buf, size_t len)
{
    char where[64];
    int n;

    switch (q->kind) {
    case ORDQ_USER_COUPONS:
    case ORDQ_ROOM_ORDERS:
    case ORDQ_RECENT:
        /* each has its index: idx_user_time, idx_room_time, idx_time */
        if (ordq_where(q, where, sizeof(where)) != CG_OK)
            return CG_ERR_INVALID;
        n = snprintf(buf, len,
                     "SELECT " ORDQ_ORDER_COLS ",%d FROM coupon_results WHERE %s "
                     "ORDER BY grab_time DESC, result_id DESC LIMIT %lld",
                     shard, where, q->limit);
        break;
    case ORDQ_ROOM_COUNTS:
        n = snprintf(buf, len,
                     "SELECT coupon_id, orders, %d FROM order_counts WHERE room_id = %lld "
                     "ORDER BY coupon_id DESC",
                     shard, q->id);
        break;
    case ORDQ_TOTALS:
        n = snprintf(buf, len,
                     "SELECT room_id, SUM(orders), %d FROM order_counts GROUP BY room_id "
                     "ORDER BY room_id DESC LIMIT %d",
                     shard, SR_LIMIT_MAX);
        break;
    case ORDQ_SHARDS:
        n = snprintf(buf, len, "SELECT %d, COALESCE(SUM(orders), 0) FROM order_counts", shard);
        break;
    default:
        abort();
    }
    return n > 0 && (size_t)n < len ? CG_OK : CG_ERR_FULL;
}

static uint64_t ordq_shards(const ordq *q, const sr_map *map)
{
    int s = -1;

    switch (q->kind) {
    case ORDQ_USER_COUPONS:
        s = sr_shard_of_user(map, q->id);
        break;
    case ORDQ_ROOM_ORDERS:
    case ORDQ_ROOM_COUNTS:
        s = sr_shard_of_room(map, q->id);
        break;
    case ORDQ_RECENT:
        return sr_shards_of_window(map, (q->now_ms - q->hours * 3600000LL) / 1000,
                                   q->now_ms / 1000);
    default:
        break;
    }
    return s >= 0 ? UINT64_C(1) << s : sr_all_shards(map);
}

int ordq_plan_build(const ordq *q, const sr_map *map, int timeout_ms, ordq_plan *plan,
                    cg_error *err)
{
    memset(plan, 0, sizeof(*plan));
    plan->shards = ordq_shards(q, map);
    if (plan->shards == 0)
        return cg_error_set(err, CG_ERR_INVALID, "no shard can hold the window");
    for (int s = 0; s < map->n_shards; s++) {
        if (!(plan->shards >> s & 1))
            continue;
        if (ordq_sql(q, s, plan->text[s], sizeof(plan->text[s])) != CG_OK)
            return cg_error_set(err, CG_ERR_INVALID, "%s: statement does not fit",
                                ordq_kind_name(q->kind));
        plan->sql[s] = plan->text[s];
    }
    plan->req.mode = SR_ROWS;
    plan->req.shards = plan->shards;
    plan->req.sql_per_shard = plan->sql;
    plan->req.timeout_ms = timeout_ms;
    switch (q->kind) {
    case ORDQ_USER_COUPONS:
    case ORDQ_ROOM_ORDERS:
    case ORDQ_RECENT:
        plan->req.limit = (size_t)q->limit;
        plan->req.order_col = OC_TIME;
        break;
    default:
        plan->req.limit = SR_LIMIT_MAX;
        plan->req.order_col = 0;
        break;
    }
    return CG_OK;
}

/* ---- answering ------------------------------------------------------------------ */

void ordq_iso_time(const char *sql_time, char *out, size_t len)
{
    size_t n = sql_time != NULL ? strlen(sql_time) : 0;

    if (n >= 19 && n + 2 <= len && sql_time[10] == ' ') {
        memcpy(out, sql_time, n);
        out[10] = 'T';
        out[n] = 'Z';
        out[n + 1] = '\0';
        return;
    }
    snprintf(out, len, "%s", sql_time != NULL ? sql_time : "");
}

static json_t *ordq_int(const char *v)
{
    return v != NULL ? json_integer(strtoll(v, NULL, 10)) : json_null();
}

static json_t *ordq_order(char **row)
{
    char when[40];

    ordq_iso_time(row[OC_TIME], when, sizeof(when));
    return json_pack("{s:s?, s:o, s:o, s:o, s:i, s:s, s:o, s:f, s:o}",
                     "saga_id", row[OC_SAGA], "user_id", ordq_int(row[OC_USER]),
                     "coupon_id", ordq_int(row[OC_COUPON]), "room_id", ordq_int(row[OC_ROOM]),
                     "grab_status", 1, "grab_time", when, "use_status", ordq_int(row[OC_USE]),
                     "order_amount", row[OC_AMOUNT] != NULL ? strtod(row[OC_AMOUNT], NULL) : 0.0,
                     "shard", ordq_int(row[OC_SHARD]));
}

static json_t *ordq_shard_list(uint64_t mask, int n)
{
    json_t *a = json_array();

    for (int s = 0; a != NULL && s < n; s++) {
        if (mask >> s & 1)
            json_array_append_new(a, json_integer(s));
    }
    return a;
}

static json_t *ordq_missing(const sr_result *res)
{
    json_t *a = json_array();

    for (int i = 0; a != NULL && i < res->n_missing; i++)
        json_array_append_new(a, json_integer(res->missing[i]));
    return a;
}

static json_t *ordq_orders(const sr_result *res)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && i < res->n_rows; i++) {
        if (res->n_cols < OC_N || json_array_append_new(a, ordq_order(res->rows[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Rows "key, count, shard" merged by key descending: equal keys are next to
 * each other, so one pass adds them up. Answered rising by key, as
 * [{key_name: k, "orders": n}], with the total in *total. */
static json_t *ordq_sum_by_key(const sr_result *res, const char *key_name, long long *total)
{
    json_t *a = json_array();
    size_t i = 0;

    *total = 0;
    while (a != NULL && i < res->n_rows) {
        const char *key = res->rows[i][0];
        long long sum = 0;

        for (; i < res->n_rows && sr_value_cmp(res->rows[i][0], key) == 0; i++)
            sum += res->rows[i][1] != NULL ? strtoll(res->rows[i][1], NULL, 10) : 0;
        *total += sum;
        if (json_array_insert_new(a, 0, json_pack("{s:o, s:I}", key_name, ordq_int(key),
                                                  "orders", (json_int_t)sum)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static json_t *ordq_per_shard(const sr_result *res, const ordq_plan *plan, int n_shards)
{
    long long per[SR_MAX_SHARDS] = {0};
    json_t *a = json_array();

    for (size_t i = 0; i < res->n_rows; i++) {
        long long s = res->rows[i][2] != NULL ? strtoll(res->rows[i][2], NULL, 10) : -1;

        if (s >= 0 && s < n_shards && res->rows[i][1] != NULL)
            per[s] += strtoll(res->rows[i][1], NULL, 10);
    }
    for (int s = 0; a != NULL && s < n_shards; s++) {
        if ((plan->shards >> s & 1) && res->shard_status[s] == CG_OK)
            json_array_append_new(a, json_pack("{s:i, s:I}", "shard", s, "orders",
                                               (json_int_t)per[s]));
    }
    return a;
}

/* Per shard: address, up, rows, query time; and the balance score, the
 * largest shard's rows over the mean of the shards that answered. */
static void ordq_shards_answer(const sr_result *res, const ordq_plan *plan, int n_shards,
                               const char *const *addr, json_t *out)
{
    long long rows[SR_MAX_SHARDS] = {0}, max = 0, sum = 0;
    int up[SR_MAX_SHARDS] = {0}, n_up = 0;
    json_t *a = json_array();

    for (size_t i = 0; i < res->n_rows; i++) {
        long long s = res->rows[i][0] != NULL ? strtoll(res->rows[i][0], NULL, 10) : -1;

        if (s >= 0 && s < n_shards) {
            rows[s] = res->rows[i][1] != NULL ? strtoll(res->rows[i][1], NULL, 10) : 0;
            up[s] = 1;
        }
    }
    for (int s = 0; a != NULL && s < n_shards; s++) {
        json_t *o;

        if (!(plan->shards >> s & 1))
            continue;
        up[s] = up[s] && res->shard_status[s] == CG_OK;
        o = json_pack("{s:i, s:s, s:b}", "shard", s, "address", addr[s], "up", up[s]);
        if (o != NULL && up[s]) {
            json_object_set_new(o, "rows", json_integer(rows[s]));
            json_object_set_new(o, "query_ms", json_real((double)res->shard_us[s] / 1000.0));
            n_up++;
            sum += rows[s];
            max = rows[s] > max ? rows[s] : max;
        } else if (o != NULL) {
            json_object_set_new(o, "error", json_string(cg_status_name(res->shard_status[s])));
        }
        json_array_append_new(a, o);
    }
    json_object_set_new(out, "shards", a);
    json_object_set_new(out, "total_rows", json_integer(sum));
    json_object_set_new(out, "balance_score",
                        sum > 0 ? json_real((double)max * n_up / (double)sum) : json_null());
}

void *ordq_answer(const ordq *q, const sr_map *map, const ordq_plan *plan, const sr_result *res,
                  const char *const *shard_addr)
{
    json_t *out = json_pack("{s:s, s:o, s:b, s:o}", "strategy", sr_strategy_name(map->strategy),
                            "shards_asked", ordq_shard_list(plan->shards, map->n_shards),
                            "partial", res->partial, "missing_shards", ordq_missing(res));
    json_t *list = NULL;
    long long total = 0;
    char since[40], iso[48];
    int ok = 1;

    if (out == NULL)
        return NULL;
    switch (q->kind) {
    case ORDQ_USER_COUPONS:
    case ORDQ_ROOM_ORDERS:
    case ORDQ_RECENT:
        if (q->kind == ORDQ_USER_COUPONS) {
            json_object_set_new(out, "user_id", json_integer(q->id));
        } else if (q->kind == ORDQ_ROOM_ORDERS) {
            json_object_set_new(out, "room_id", json_integer(q->id));
        } else {
            json_object_set_new(out, "hours", json_integer(q->hours));
            if (ord_sql_time(q->now_ms - q->hours * 3600000LL, since, sizeof(since)) == CG_OK) {
                since[strlen(since) - 1] = '\0';   /* drop the SQL quotes */
                ordq_iso_time(since + 1, iso, sizeof(iso));
                json_object_set_new(out, "since", json_string(iso));
            }
        }
        json_object_set_new(out, "limit", json_integer(q->limit));
        list = ordq_orders(res);
        json_object_set_new(out, "count", json_integer((json_int_t)res->n_rows));
        json_object_set_new(out, "orders", list);
        ok = list != NULL;
        break;
    case ORDQ_ROOM_COUNTS:
        json_object_set_new(out, "room_id", json_integer(q->id));
        list = ordq_sum_by_key(res, "coupon_id", &total);
        json_object_set_new(out, "coupons", list);
        json_object_set_new(out, "orders", json_integer(total));
        ok = list != NULL;
        break;
    case ORDQ_TOTALS:
        list = ordq_sum_by_key(res, "room_id", &total);
        json_object_set_new(out, "rooms", list);
        json_object_set_new(out, "orders", json_integer(total));
        json_object_set_new(out, "per_shard", ordq_per_shard(res, plan, map->n_shards));
        json_object_set_new(out, "truncated", json_boolean(res->n_rows >= SR_LIMIT_MAX));
        ok = list != NULL;
        break;
    case ORDQ_SHARDS:
        ordq_shards_answer(res, plan, map->n_shards, shard_addr, out);
        break;
    default:
        abort();
    }
    if (!ok) {
        json_decref(out);
        out = NULL;
    }
    return out;
}
