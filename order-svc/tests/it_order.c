/* it_order.c - integration tests of order-svc against the real stack.
 *
 * Starts the service with `$REPO_DIR/scripts/services start order-svc` (the
 * stack comes from STACK_DIR and stack.env, as scripts/run-tests exports
 * them), publishes commands with its own mq client to grab.cmd / "order"
 * with reply_to = a queue of its own, and reads the shards directly with
 * db.c (MARIADB_SHARDS, MARIADB_USER, MARIADB_PASSWORD_FILE). Dead letters
 * are seen through a queue of its own bound to grab.dlx / "dead", a copy
 * that leaves grab.dead to whoever reads it.
 *
 * Where each order must land is computed here, independently of the
 * service: the hash strategy's default map is contiguous blocks of the 1024
 * buckets, bucket = splitmix64-finalizer(user_id) % 1024; the range-room map
 * is spelled out by hand. The shard-kill test always starts mariadb-s1
 * again, and the range-room test always restarts the service with the hash
 * strategy. IT_ORDER_N sets the size of the bulk test (default 500),
 * IT_ORDER_LOG the test's own log level (default warn). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "db.h"
#include "itkit.h"
#include "log.h"
#include "mq.h"
#include "msg.h"
#include "sr_map.h"
#include "testhelp.h"

#define IT_SHARDS 4
#define IT_MAX_SAGAS 20000
#define IT_MAX_DEAD 64
#define IT_REPLY_WAIT_MS 20000
#define IT_GIVE_UP_MS 3000          /* the service's default create_give_up_ms */
#define IT_ADDR_BUF 256

/* Like TH_REQUIRE, but jumps to the test's cleanup instead of returning. */
/* ---- environment -------------------------------------------------------- */

static struct {
    itk_amqp amqp;
    char db_password[256];
    const char *db_user;
    char shard_spec[IT_SHARDS][IT_ADDR_BUF];
    int n_shards;
    char stack_dir[512];
} env;

static int it_env_load(void)
{
    const char *shards = itk_env("MARIADB_SHARDS", NULL), *p, *end;

    if (itk_amqp_load(&env.amqp, "grab", "grab") != 0 ||
        itk_read_secret(itk_env("MARIADB_PASSWORD_FILE", NULL), env.db_password,
                        sizeof(env.db_password)) != 0)
        return -1;
    env.db_user = itk_env("MARIADB_USER", "grab");
    if (shards == NULL || itk_env("STACK_DIR", NULL) == NULL || itk_env("REPO_DIR", NULL) == NULL) {
        fprintf(stderr, "it_order: MARIADB_SHARDS, STACK_DIR and REPO_DIR must be set "
                        "(source the stack's stack.env)\n");
        return -1;
    }
    snprintf(env.stack_dir, sizeof(env.stack_dir), "%s", itk_env("STACK_DIR", ""));
    for (p = shards; *p != '\0' && env.n_shards < IT_SHARDS; p = *end ? end + 1 : end) {
        end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        snprintf(env.shard_spec[env.n_shards++], IT_ADDR_BUF, "%.*s", (int)(end - p), p);
    }
    if (env.n_shards != IT_SHARDS) {
        fprintf(stderr, "it_order: expected %d shards in MARIADB_SHARDS\n", IT_SHARDS);
        return -1;
    }
    return 0;
}

/* ---- where orders must land (computed here, not by the service) -------------- */

static int it_hash_shard(long long user_id)
{
    uint64_t z = (uint64_t)user_id + UINT64_C(0x9e3779b97f4a7c15);

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    z ^= z >> 31;
    return (int)((z % 1024) / (1024 / IT_SHARDS));
}

/* The map used by the range-room test: 1:0,26:1,51:2,76:3. */
static int it_room_shard(long long room_id)
{
    return room_id >= 76 ? 3 : room_id >= 51 ? 2 : room_id >= 26 ? 1 : 0;
}

/* The first user id from `from` on whose orders land on shard s. */
static long long it_user_on(int s, long long from)
{
    while (it_hash_shard(from) != s)
        from++;
    return from;
}

/* ---- shard access -------------------------------------------------------------- */

static MYSQL *shard_conn[IT_SHARDS];

static MYSQL *it_shard(int s)
{
    db_config cfg;
    char buf[IT_ADDR_BUF];
    cg_error err = {0, ""};

    if (shard_conn[s] != NULL)
        return shard_conn[s];
    db_config_defaults(&cfg);
    if (db_parse_addr(env.shard_spec[s], &cfg, buf, sizeof(buf), &err) != CG_OK) {
        TH_FAIL_AT("shard %d address: %s", s, err.msg);
        return NULL;
    }
    cfg.user = env.db_user;
    cfg.password = env.db_password;
    if (db_connect(&cfg, &shard_conn[s], &err) != CG_OK) {
        TH_FAIL_AT("shard %d: %s", s, err.msg);
        return NULL;
    }
    return shard_conn[s];
}

static void it_shard_close(int s)
{
    db_close(shard_conn[s]);
    shard_conn[s] = NULL;
}

/* The query's integer on shard s; -1 (and a failure) when it cannot run. A
 * connection that broke since the last call (a restarted server) is opened
 * again once. */
static long long it_query(int s, const char *sql)
{
    cg_error err = {0, ""};
    int64_t v = -1;
    int rc;

    for (int attempt = 0; attempt < 2; attempt++) {
        MYSQL *c = it_shard(s);

        if (c == NULL)
            return -1;
        rc = db_query_int64(c, sql, &v, &err);
        if (rc == CG_OK)
            return v;
        it_shard_close(s);
        if (rc != CG_ERR_IO && rc != CG_ERR_TIMEOUT)
            break;
    }
    TH_FAIL_AT("shard %d: %s: %s", s, sql, err.msg);
    return -1;
}

static long long it_rows(int s, const char *saga)
{
    char sql[160];

    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM coupon_results WHERE saga_id = '%s'", saga);
    return it_query(s, sql);
}

static long long it_barriers(int s, const char *saga)
{
    char sql[160];

    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM saga_barriers WHERE saga_id = '%s'", saga);
    return it_query(s, sql);
}

/* Rows of saga on every shard, into rows[IT_SHARDS]; returns the total. */
static long long it_rows_everywhere(const char *saga, long long *rows)
{
    long long total = 0;

    for (int s = 0; s < IT_SHARDS; s++) {
        rows[s] = it_rows(s, saga);
        total += rows[s];
    }
    return total;
}

/* 1 when saga has exactly one row, on shard `want`, and none elsewhere. */
static int it_only_on(const char *saga, int want)
{
    long long rows[IT_SHARDS];

    it_rows_everywhere(saga, rows);
    for (int s = 0; s < IT_SHARDS; s++) {
        if (rows[s] != (s == want ? 1 : 0)) {
            TH_FAIL_AT("saga %s: %lld rows on shard %d (expected on shard %d only)", saga, rows[s],
                       s, want);
            return 0;
        }
    }
    return 1;
}

/* Applies schema/shard.sql: `scripts/stack migrate` when the stack script has
 * it, else statement by statement through db.c. */
static int it_apply_schema(void)
{
    char path[1024], *text = NULL, *stmt, *save = NULL;
    cg_error err = {0, ""};
    FILE *f = NULL;
    long size;
    int ok = 0;

    if (itk_script("stack", "help 2>&1 | grep -q '^ *migrate'") == 0 &&
        itk_script("stack", "migrate") == 0)
        return 0;
    snprintf(path, sizeof(path), "%s/schema/shard.sql", itk_env("REPO_DIR", "."));
    f = fopen(path, "r");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto done;
    text = calloc(1, (size_t)size + 1);
    if (text == NULL || fread(text, 1, (size_t)size, f) != (size_t)size)
        goto done;
    /* Drop the comment lines, then run each statement on each shard. */
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');

        if (strncmp(line, "--", 2) == 0)
            memset(line, ' ', nl ? (size_t)(nl - line) : strlen(line));
        line = nl ? nl + 1 : NULL;
    }
    for (stmt = strtok_r(text, ";", &save); stmt != NULL; stmt = strtok_r(NULL, ";", &save)) {
        if (strspn(stmt, " \t\r\n") == strlen(stmt))
            continue;
        for (int s = 0; s < IT_SHARDS; s++) {
            if (it_shard(s) == NULL || db_exec(it_shard(s), stmt, NULL, &err) != CG_OK) {
                fprintf(stderr, "it_order: schema on shard %d: %s\n", s, err.msg);
                goto done;
            }
        }
    }
    ok = 1;
done:
    if (f != NULL)
        fclose(f);
    free(text);
    return ok ? 0 : -1;
}

/* ---- the broker side: commands out, replies and dead letters in ------------ */

static struct event_base *base;
static mq_client *mq;
static char reply_queue[128], dead_queue[128];

typedef struct it_reply {
    char saga[MSG_SAGA_ID_LEN + 1];
    char result[16];
    char reason[32];
    int count;                 /* replies seen for the saga */
    long long at_ms;           /* when the last one came */
} it_reply;

static it_reply *replies;      /* open addressing on the saga id */
static int bad_replies;        /* replies whose properties or body broke the contract */
static int confirmed, refused;

typedef struct it_dead {
    char message_id[80];
    char reason[256];
    char type[40];
} it_dead;

static it_dead dead[IT_MAX_DEAD];
static int n_dead;

static it_reply *it_reply_slot(const char *saga, int create)
{
    uint64_t h = strtoull(saga + 16, NULL, 16);

    for (size_t i = 0; i < IT_MAX_SAGAS; i++) {
        it_reply *r = &replies[(h + i) % IT_MAX_SAGAS];

        if (strcmp(r->saga, saga) == 0)
            return r;
        if (r->saga[0] == '\0') {
            if (!create)
                return NULL;
            memcpy(r->saga, saga, sizeof(r->saga));
            return r;
        }
    }
    return NULL;
}

static const it_reply *it_reply_of(const char *saga)
{
    return it_reply_slot(saga, 0);
}

static void it_on_reply(mq_client *c, mq_message *msg, void *arg)
{
    static msg_batch batch;
    jv_error jerr;

    (void)arg;
    if (msg->type == NULL || strcmp(msg->type, "order.reply") != 0 ||
        msg_decode(MSG_ORDER_REPLY, msg->body, msg->body_len, &batch, &jerr) != CG_OK) {
        bad_replies++;
        fprintf(stdout, "    bad reply: type %s body %.200s\n", msg->type ? msg->type : "-", msg->body);
        goto done;
    }
    if (batch.n == 1 && (msg->correlation_id == NULL ||
                         strcmp(msg->correlation_id, batch.items[0].saga_id) != 0)) {
        bad_replies++;
        fprintf(stdout, "    reply of one item without its saga as correlation id\n");
    }
    for (size_t i = 0; i < batch.n; i++) {
        it_reply *r = it_reply_slot(batch.items[i].saga_id, 1);

        if (r == NULL)
            continue;
        snprintf(r->result, sizeof(r->result), "%s", batch.items[i].result);
        snprintf(r->reason, sizeof(r->reason), "%s", batch.items[i].reason);
        r->count++;
        r->at_ms = itk_now_ms();
    }
done:
    (void)mq_ack(c, msg->id, 0);
    mq_message_free(msg);
}

static const char *it_jstr(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));

    return v != NULL ? v : "";
}

static void it_on_dead(mq_client *c, mq_message *msg, void *arg)
{
    json_t *root = json_loadb(msg->body, msg->body_len, 0, NULL);
    it_dead *d = n_dead < IT_MAX_DEAD ? &dead[n_dead++] : NULL;

    (void)arg;
    if (d != NULL) {
        memset(d, 0, sizeof(*d));
        snprintf(d->message_id, sizeof(d->message_id), "%s",
                 it_jstr(root, "message_id"));
        snprintf(d->reason, sizeof(d->reason), "%s",
                 it_jstr(root, "reason"));
        snprintf(d->type, sizeof(d->type), "%s",
                 it_jstr(root, "type"));
    }
    json_decref(root);
    (void)mq_ack(c, msg->id, 0);
    mq_message_free(msg);
}

static const it_dead *it_dead_of(const char *message_id)
{
    for (int i = 0; i < n_dead; i++) {
        if (strcmp(dead[i].message_id, message_id) == 0)
            return &dead[i];
    }
    return NULL;
}

static void it_on_confirm(mq_client *c, int result, void *arg)
{
    (void)c;
    (void)arg;
    if (result == MQ_PUBLISH_ACKED)
        confirmed++;
    else
        refused++;
}

static int it_pred_up(void *arg)
{
    return mq_client_is_up(arg);
}

struct it_count_wait {
    int *counter;
    int target;
};

static int it_pred_count(void *arg)
{
    struct it_count_wait *w = arg;

    return *w->counter >= w->target;
}

/* Publishes one raw command and waits for the broker's confirm. */
static int it_publish_raw(const char *type, const char *message_id, const char *correlation_id,
                          const char *reply_to, const char *body, size_t len)
{
    mq_props props = {0};
    struct it_count_wait w = {&confirmed, confirmed + 1};
    int before_refused = refused;

    props.type = type;
    props.message_id = message_id;
    props.correlation_id = correlation_id;
    props.reply_to = reply_to;
    if (mq_publish(mq, MSG_EXCHANGE_CMD, MSG_KEY_ORDER, &props, body, len, it_on_confirm, NULL) != CG_OK)
        return -1;
    if (!itk_run_until(base, it_pred_count, &w, 10000) || refused != before_refused)
        return -1;
    return 0;
}

/* Sends one order.create / order.cancel message of n items. */
static int it_send(enum msg_kind kind, const msg_item *items, size_t n)
{
    static msg_batch b;
    static unsigned seq;
    char message_id[64], *body = NULL;
    size_t len = 0;
    int rc;

    b.kind = kind;
    b.n = n;
    memcpy(b.items, items, n * sizeof(*items));
    if (msg_encode_new(&b, &body, &len) != CG_OK)
        return -1;
    snprintf(message_id, sizeof(message_id), "it-order-%d-%u", (int)getpid(), ++seq);
    rc = it_publish_raw(msg_kind_name(kind), message_id, n == 1 ? items[0].saga_id : NULL,
                        reply_queue, body, len);
    free(body);
    return rc;
}

/* Orders this test writes directly use coupon ids far above the seeded and
 * admin-created ones, so that checks of other tests on the same stack never
 * see them. */
#define IT_COUPON_BASE 900000

static void it_item(msg_item *it, long long user, long long coupon, long long room)
{
    memset(it, 0, sizeof(*it));
    if (msg_saga_id_new(it->saga_id) != CG_OK)
        abort();
    it->user_id = user;
    it->coupon_id = coupon < IT_COUPON_BASE ? IT_COUPON_BASE + coupon : coupon;
    it->room_id = room;
    it->grab_time = 1790000000000LL + (long long)(rand() % 100000000);
}

struct it_reply_wait {
    const msg_item *items;
    size_t n;
    int min_count;
};

static int it_pred_replies(void *arg)
{
    const struct it_reply_wait *w = arg;

    for (size_t i = 0; i < w->n; i++) {
        const it_reply *r = it_reply_of(w->items[i].saga_id);

        if (r == NULL || r->count < w->min_count)
            return 0;
    }
    return 1;
}

/* Waits until every item has at least min_count replies. */
static int it_wait_replies(const msg_item *items, size_t n, int min_count, int timeout_ms)
{
    struct it_reply_wait w = {items, n, min_count};

    return itk_run_until(base, it_pred_replies, &w, timeout_ms);
}

static int it_count(const msg_item *item)
{
    const it_reply *r = it_reply_of(item->saga_id);

    return r ? r->count : 0;
}

static int it_result_is(const msg_item *item, const char *result, const char *reason)
{
    const it_reply *r = it_reply_of(item->saga_id);

    if (r == NULL) {
        TH_FAIL_AT("saga %s: no reply (expected %s)", item->saga_id, result);
        return 0;
    }
    if (strcmp(r->result, result) != 0 || strcmp(r->reason, reason ? reason : "") != 0) {
        TH_FAIL_AT("saga %s: reply %s/%s, expected %s/%s", item->saga_id, r->result, r->reason,
                   result, reason ? reason : "");
        return 0;
    }
    return 1;
}

/* ---- the service --------------------------------------------------------------- */

static long it_log_size(void);
static int it_log_has(long from, const char *needle);

struct it_log_wait {
    long from;
};

static int it_pred_ready(void *arg)
{
    return it_log_has(((struct it_log_wait *)arg)->from, "order-svc ready");
}

/* Starts the service and waits for this instance's own ready line (the
 * script may see an earlier instance's line in the shared log). */
static int it_service_start(void)
{
    struct it_log_wait w = {it_log_size()};

    if (itk_script("services", "start order-svc") != 0)
        return -1;
    if (!itk_run_until(base, it_pred_ready, &w, 30000)) {
        fprintf(stdout, "    order-svc logged no ready line within 30 s\n");
        return -1;
    }
    return 0;
}

static int it_service_stop(void)
{
    return itk_script("services", "stop order-svc");
}

static long it_log_size(void)
{
    char path[600];
    struct stat st;

    snprintf(path, sizeof(path), "%s/logs/order-svc.log", env.stack_dir);
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* 1 when the service log has `needle` after byte offset `from`. */
static int it_log_has(long from, const char *needle)
{
    char path[600], *buf;
    FILE *f;
    size_t n;
    int found = 0;

    snprintf(path, sizeof(path), "%s/logs/order-svc.log", env.stack_dir);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    buf = malloc(1 << 20);
    if (buf != NULL && fseek(f, from, SEEK_SET) == 0) {
        n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        found = strstr(buf, needle) != NULL;
    }
    free(buf);
    fclose(f);
    return found;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_bulk_creates(void)
{
    size_t n = (size_t)atoi(itk_env("IT_ORDER_N", "500")), per_msg;
    msg_item *items = calloc(n, sizeof(*items));
    long long expect[IT_SHARDS] = {0}, t0, t1, got;
    char *in_all = NULL, *in_shard[IT_SHARDS] = {NULL};
    size_t cap = n * 40 + 256, used_all = 0, used[IT_SHARDS] = {0};
    sr_map map;
    cg_error err;
    int mismatch = 0, created = 0;

    TH_REQUIRE_OR_DONE(items != NULL && n > 0 && n <= IT_MAX_SAGAS / 2);
    TH_REQUIRE_OR_DONE(sr_map_build(&map, SR_HASH, IT_SHARDS, NULL, &err) == CG_OK);
    for (size_t i = 0; i < n; i++) {
        /* many users (a stride that spreads them over the buckets), 5 coupons, 100 rooms */
        it_item(&items[i], 1000 + (long long)i * 7919, 1 + (long long)(i % 5), 1 + (long long)(i % 100));
        expect[it_hash_shard(items[i].user_id)]++;
        /* the service's router must agree with the independent computation */
        mismatch += sr_shard_of(&map, items[i].user_id, items[i].room_id,
                                items[i].grab_time / 1000) != it_hash_shard(items[i].user_id);
    }
    TH_CHECK_INT(mismatch, 0);
    for (int s = 0; s < IT_SHARDS; s++)
        TH_CHECK(expect[s] > 0);
    /* a few batches: 4 messages (MSG_MAX_BATCH at most each) */
    per_msg = (n + 3) / 4;
    if (per_msg > MSG_MAX_BATCH)
        per_msg = MSG_MAX_BATCH;
    t0 = itk_now_ms();
    for (size_t off = 0; off < n; off += per_msg)
        TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, items + off, off + per_msg > n ? n - off : per_msg) == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(items, n, 1, IT_REPLY_WAIT_MS));
    t1 = 0;
    for (size_t i = 0; i < n; i++) {
        const it_reply *r = it_reply_of(items[i].saga_id);

        created += r != NULL && strcmp(r->result, "created") == 0 && r->count == 1;
        if (r != NULL && r->at_ms > t1)
            t1 = r->at_ms;
    }
    TH_CHECK_INT(created, n);
    fprintf(stdout, "    %zu creates in %zu messages: all replies in %lld ms (%.0f rows/s)\n", n,
            (n + per_msg - 1) / per_msg, t1 - t0, (double)n * 1000.0 / (double)(t1 - t0 + 1));
    /* every row on its shard, one each: per shard, rows among all the sagas =
     * rows among the sagas routed there = the number routed there */
    in_all = malloc(cap);
    for (int s = 0; s < IT_SHARDS; s++)
        in_shard[s] = malloc(cap);
    TH_REQUIRE_OR_DONE(in_all != NULL && in_shard[0] && in_shard[1] && in_shard[2] && in_shard[3]);
    used_all = (size_t)snprintf(in_all, cap, "SELECT COUNT(*) FROM coupon_results WHERE saga_id IN (");
    for (int s = 0; s < IT_SHARDS; s++)
        used[s] = (size_t)snprintf(in_shard[s], cap, "%s", in_all);
    for (size_t i = 0; i < n; i++) {
        int s = it_hash_shard(items[i].user_id);

        used_all += (size_t)snprintf(in_all + used_all, cap - used_all, "%s'%s'", i ? "," : "",
                                     items[i].saga_id);
        used[s] += (size_t)snprintf(in_shard[s] + used[s], cap - used[s], "%s'%s'",
                                    in_shard[s][used[s] - 1] == '(' ? "" : ",", items[i].saga_id);
    }
    snprintf(in_all + used_all, cap - used_all, ")");
    for (int s = 0; s < IT_SHARDS; s++) {
        snprintf(in_shard[s] + used[s], cap - used[s], ")");
        got = it_query(s, in_all);
        if (got != expect[s])
            TH_FAIL_AT("shard %d holds %lld of the sagas, expected %lld", s, got, expect[s]);
        got = it_query(s, in_shard[s]);
        if (got != expect[s])
            TH_FAIL_AT("shard %d holds %lld of its own sagas, expected %lld", s, got, expect[s]);
    }
    fprintf(stdout, "    rows per shard: %lld %lld %lld %lld\n", expect[0], expect[1], expect[2],
            expect[3]);
done:
    for (int s = 0; s < IT_SHARDS; s++)
        free(in_shard[s]);
    free(in_all);
    free(items);
}

/* The unacknowledged count of order.cmd from `scripts/stack queues`, -1
 * when it cannot be read. */
static long it_order_cmd_unacked(void)
{
    char cmd[1024], line[256], name[128];
    long ready, unacked, consumers, found = -1;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "\"%s/scripts/stack\" queues 2>/dev/null", itk_env("REPO_DIR", "."));
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (sscanf(line, "%127s %ld %ld %ld", name, &ready, &unacked, &consumers) == 4 &&
            strcmp(name, MSG_QUEUE_ORDER) == 0)
            found = unacked;
    }
    if (pclose(p) != 0)
        found = -1;
    return found;
}

/* Many small commands whose items land on different shards, so that one
 * reply carries items of several commands and one command's items come back
 * in several replies (published while earlier ones are confirmed and freed):
 * every delivery must be acked once its replies are confirmed. */
static void test_every_delivery_acked(void)
{
    enum { N_MSG = 240, PER = 3 };
    static msg_item items[N_MSG * PER];
    long long user = 3000000, deadline;
    long unacked = -1;

    for (int m = 0; m < N_MSG; m++) {
        for (int k = 0; k < PER; k++) {
            /* item k of every message on shard (m + k) % 4: three shards each */
            user = it_user_on((m + k) % IT_SHARDS, user + 1);
            /* coupon ids far above the ones the stack's other tests create */
            it_item(&items[m * PER + k], user, 900001 + k, 1 + m % 100);
        }
        TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, &items[m * PER], PER) == 0);
    }
    TH_REQUIRE_OR_DONE(it_wait_replies(items, N_MSG * PER, 1, IT_REPLY_WAIT_MS));
    /* Every item answered; the broker must now see no delivery left unacked
     * (bounded poll: the last acks may still be on their way). */
    deadline = itk_now_ms() + 10000;
    do {
        unacked = it_order_cmd_unacked();
        if (unacked == 0)
            break;
        itk_run_for(base, 200);   /* the loop goes on meanwhile (replies, heartbeats) */
    } while (itk_now_ms() < deadline);
    if (unacked != 0)
        TH_FAIL_AT("%s: %ld deliveries still unacked 10 s after every reply", MSG_QUEUE_ORDER,
                   unacked);
done:
    return;
}

static void test_duplicate_create(void)
{
    msg_item x, msg2[3];

    it_item(&x, 424242, 3, 1);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, &x, 1) == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(&x, 1, 1, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&x, "created", NULL));
    /* again in a new message, twice in it, beside another saga */
    msg2[0] = x;
    it_item(&msg2[1], 424243, 3, 1);
    msg2[2] = x;
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, msg2, 3) == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(&x, 1, 3, IT_REPLY_WAIT_MS));
    TH_REQUIRE_OR_DONE(it_wait_replies(&msg2[1], 1, 1, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&x, "created", NULL));
    TH_CHECK(it_result_is(&msg2[1], "created", NULL));
    TH_CHECK_INT(it_count(&x), 3);
    TH_CHECK(it_only_on(x.saga_id, it_hash_shard(x.user_id)));
    TH_CHECK(it_only_on(msg2[1].saga_id, it_hash_shard(msg2[1].user_id)));
done:
    return;
}

static void test_cancel(void)
{
    msg_item z;
    long long rows[IT_SHARDS];
    int s;

    it_item(&z, 515151, 4, 2);
    s = it_hash_shard(z.user_id);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, &z, 1) == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(&z, 1, 1, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&z, "created", NULL));
    TH_CHECK(it_only_on(z.saga_id, s));
    for (int round = 1; round <= 2; round++) {
        TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CANCEL, &z, 1) == 0);
        TH_REQUIRE_OR_DONE(it_wait_replies(&z, 1, 1 + round, IT_REPLY_WAIT_MS));
        TH_CHECK(it_result_is(&z, "cancelled", NULL));
        TH_CHECK_INT(it_rows_everywhere(z.saga_id, rows), 0);
        TH_CHECK_INT(it_barriers(s, z.saga_id), 1);
    }
done:
    return;
}

static void test_cancel_before_create(void)
{
    msg_item w;
    long long rows[IT_SHARDS];
    int s;

    it_item(&w, 616161, 5, 3);
    s = it_hash_shard(w.user_id);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CANCEL, &w, 1) == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(&w, 1, 1, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&w, "cancelled", NULL));
    TH_CHECK_INT(it_barriers(s, w.saga_id), 1);
    /* the late create (twice, as a redelivery would) inserts nothing */
    for (int round = 1; round <= 2; round++) {
        TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, &w, 1) == 0);
        TH_REQUIRE_OR_DONE(it_wait_replies(&w, 1, 1 + round, IT_REPLY_WAIT_MS));
        TH_CHECK(it_result_is(&w, "failed", "barred"));
        TH_CHECK_INT(it_rows_everywhere(w.saga_id, rows), 0);
    }
done:
    return;
}

/* A barrier row another session has written but not committed: the create
 * of that saga waits on its share lock, hits the lock wait timeout, is
 * re-run (batch, then item by item) and kept, while the other create of the
 * same message goes through; once the writer commits, the create sees the
 * barrier and answers barred. */
static void test_lock_wait(void)
{
    enum { HOLD_MS = 12000 };
    msg_item two[2];
    db_config cfg;
    char buf[IT_ADDR_BUF], sql[160];
    cg_error err = {0, ""};
    MYSQL *holder = NULL;
    long long t0, rows[IT_SHARDS];
    int s, open_txn = 0;

    it_item(&two[0], it_user_on(2, 4000000), 1, 1);
    it_item(&two[1], it_user_on(2, 4100000), 1, 1);
    s = 2;
    db_config_defaults(&cfg);
    TH_REQUIRE_OR_DONE(db_parse_addr(env.shard_spec[s], &cfg, buf, sizeof(buf), &err) == CG_OK);
    cfg.user = env.db_user;
    cfg.password = env.db_password;
    cfg.read_timeout_ms = 30000;
    TH_REQUIRE_OR_DONE(db_connect(&cfg, &holder, &err) == CG_OK);
    TH_REQUIRE_OR_DONE(db_exec(holder, "BEGIN", NULL, &err) == CG_OK);
    open_txn = 1;
    snprintf(sql, sizeof(sql), "INSERT INTO saga_barriers (saga_id) VALUES ('%s')", two[0].saga_id);
    TH_REQUIRE_OR_DONE(db_exec(holder, sql, NULL, &err) == CG_OK);
    t0 = itk_now_ms();
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, two, 2) == 0);
    /* the free saga is answered while the lock is still held */
    TH_CHECK(it_wait_replies(&two[1], 1, 1, HOLD_MS - 1000));
    TH_CHECK(it_result_is(&two[1], "created", NULL));
    fprintf(stdout, "    unlocked item answered after %lld ms\n", itk_now_ms() - t0);
    itk_run_until(base, itk_never, NULL, (int)(HOLD_MS - (itk_now_ms() - t0)));
    TH_CHECK_INT(it_count(&two[0]), 0);
    TH_REQUIRE_OR_DONE(db_exec(holder, "COMMIT", NULL, &err) == CG_OK);
    open_txn = 0;
    TH_CHECK(it_wait_replies(&two[0], 1, 1, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&two[0], "failed", "barred"));
    fprintf(stdout, "    locked item answered %lld ms after the commit\n", itk_now_ms() - t0 - HOLD_MS);
    TH_CHECK_INT(it_rows_everywhere(two[0].saga_id, rows), 0);
    TH_CHECK(it_only_on(two[1].saga_id, s));
done:
    if (open_txn && db_exec(holder, "ROLLBACK", NULL, &err) != CG_OK)
        TH_FAIL_AT("rollback: %s", err.msg);
    db_close(holder);
}

struct it_dead_wait {
    const char *message_id;
};

static int it_pred_dead(void *arg)
{
    return it_dead_of(((struct it_dead_wait *)arg)->message_id) != NULL;
}

static void test_malformed(void)
{
    static const struct {
        const char *type, *body, *why;
    } bad[] = {
        {"order.create", "{not json", ""},
        {"order.bogus", "{\"items\":[]}", "order.bogus"},
        {"order.create",
         "{\"items\":[{\"saga_id\":\"ABCDEF0123456789ABCDEF0123456789\",\"user_id\":1,"
         "\"coupon_id\":1,\"room_id\":1,\"grab_time\":1790000000000}]}",
         "items[0].saga_id"},
        {"order.cancel", "{\"items\":[{\"saga_id\":\"0123\",\"extra\":1}]}", "items[0]"},
        {NULL, "{\"items\":[]}", "type"},
    };
    char message_id[64];
    const it_dead *d;
    msg_item ok;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct it_dead_wait w = {message_id};

        snprintf(message_id, sizeof(message_id), "it-order-bad-%d-%zu", (int)getpid(), i);
        TH_REQUIRE_OR_DONE(it_publish_raw(bad[i].type, message_id, NULL, reply_queue, bad[i].body,
                                  strlen(bad[i].body)) == 0);
        if (!itk_run_until(base, it_pred_dead, &w, IT_REPLY_WAIT_MS)) {
            TH_FAIL_AT("message %zu (%s) not dead-lettered", i, bad[i].body);
            continue;
        }
        d = it_dead_of(message_id);
        fprintf(stdout, "    dead letter %zu: %s\n", i, d->reason);
        TH_CHECK(d->reason[0] != '\0');
        TH_CHECK(strstr(d->reason, bad[i].why) != NULL);
    }
    /* a valid command without reply_to cannot be answered: dead-lettered too */
    {
        struct it_dead_wait w = {message_id};
        char *body = NULL;
        size_t len;
        static msg_batch b;

        it_item(&b.items[0], 1, 1, 1);
        b.kind = MSG_ORDER_CREATE;
        b.n = 1;
        TH_REQUIRE_OR_DONE(msg_encode_new(&b, &body, &len) == CG_OK);
        snprintf(message_id, sizeof(message_id), "it-order-noreply-%d", (int)getpid());
        TH_REQUIRE_OR_DONE(it_publish_raw("order.create", message_id, NULL, NULL, body, len) == 0);
        free(body);
        TH_CHECK(itk_run_until(base, it_pred_dead, &w, IT_REPLY_WAIT_MS));
        d = it_dead_of(message_id);
        TH_CHECK(d != NULL && strstr(d->reason, "reply_to") != NULL);
    }
    /* and the service goes on working */
    it_item(&ok, 717171, 1, 1);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, &ok, 1) == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(&ok, 1, 1, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&ok, "created", NULL));
    TH_CHECK(it_only_on(ok.saga_id, it_hash_shard(ok.user_id)));
done:
    return;
}

/* SIGTERM while a burst is in work: the service exits 0 in time, and after a
 * restart every command is answered (the unacked ones come again), one row
 * each. */
static void test_graceful_stop(void)
{
    enum { N = 400 };
    static msg_item items[N];
    long from = it_log_size(), t0;
    int created = 0;

    for (int i = 0; i < N; i++)
        it_item(&items[i], 2000000 + (long long)i * 31, 2, 7);
    for (int off = 0; off < N; off += 50)
        TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, items + off, 50) == 0);
    t0 = itk_now_ms();
    TH_REQUIRE_OR_DONE(it_service_stop() == 0);
    fprintf(stdout, "    stopped in %lld ms\n", itk_now_ms() - t0);
    TH_CHECK(itk_now_ms() - t0 < 12000);
    TH_CHECK(it_log_has(from, "exiting 0"));
    TH_CHECK(!it_log_has(from, "did not stop"));
    TH_REQUIRE_OR_DONE(it_service_start() == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(items, N, 1, IT_REPLY_WAIT_MS));
    for (int i = 0; i < N; i++)
        created += it_result_is(&items[i], "created", NULL);
    TH_CHECK_INT(created, N);
    for (int i = 0; i < N; i += 37)
        TH_CHECK(it_only_on(items[i].saga_id, it_hash_shard(items[i].user_id)));
done:
    return;
}

/* mariadb-s1 (shards 1 and 3) killed: creates there fail with
 * shard_unavailable after the give-up time, creates on shards 0 and 2 go on,
 * and a cancel for shard 1 waits and completes once the server is back. */
static void test_shard_down(void)
{
    msg_item k, up02[4], down13[4], mixed[4], after;
    long long t_kill, t_give_up = 0, rows[IT_SHARDS];
    int killed = 0, s, late_01 = 0;

    /* an order on shard 1 to cancel during the outage */
    it_item(&k, it_user_on(1, 3000000), 1, 1);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, &k, 1) == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(&k, 1, 1, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&k, "created", NULL));
    for (int i = 0; i < 4; i++) {
        it_item(&up02[i], it_user_on(i % 2 ? 2 : 0, 3100000 + i * 1000), 1, 1);
        it_item(&down13[i], it_user_on(i % 2 ? 3 : 1, 3200000 + i * 1000), 1, 1);
        it_item(&mixed[i], it_user_on(i, 3300000 + i * 1000), 1, 1);
    }

    TH_REQUIRE_OR_DONE(itk_script("stack", "kill mariadb-s1") == 0);
    killed = 1;
    t_kill = itk_now_ms();
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, down13, 4) == 0);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, up02, 4) == 0);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, mixed, 4) == 0);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CANCEL, &k, 1) == 0);
    /* shards 0 and 2 answer at once, also for the message that has shard 1
     * and 3 items in it */
    TH_REQUIRE_OR_DONE(it_wait_replies(up02, 4, 1, 2000));
    TH_CHECK(it_wait_replies(&mixed[0], 1, 1, 2000) && it_wait_replies(&mixed[2], 1, 1, 2000));
    for (int i = 0; i < 4; i++)
        TH_CHECK(it_result_is(&up02[i], "created", NULL));
    TH_CHECK(it_result_is(&mixed[0], "created", NULL));
    TH_CHECK(it_result_is(&mixed[2], "created", NULL));
    late_01 = it_count(&down13[0]) + it_count(&mixed[1]);
    TH_CHECK_INT(late_01, 0);
    /* shards 1 and 3: failed / shard_unavailable after the give-up time */
    TH_REQUIRE_OR_DONE(it_wait_replies(down13, 4, 1, IT_GIVE_UP_MS + 5000));
    TH_REQUIRE_OR_DONE(it_wait_replies(&mixed[1], 1, 1, 2000) && it_wait_replies(&mixed[3], 1, 1, 2000));
    for (int i = 0; i < 4; i++) {
        const it_reply *r = it_reply_of(down13[i].saga_id);

        TH_CHECK(it_result_is(&down13[i], "failed", "shard_unavailable"));
        if (r != NULL && r->at_ms > t_give_up)
            t_give_up = r->at_ms;
    }
    TH_CHECK(it_result_is(&mixed[1], "failed", "shard_unavailable"));
    TH_CHECK(it_result_is(&mixed[3], "failed", "shard_unavailable"));
    fprintf(stdout, "    shard 1/3 creates failed %lld ms after the kill\n", t_give_up - t_kill);
    TH_CHECK(t_give_up - t_kill >= IT_GIVE_UP_MS - 200);
    /* the cancel is not given up: still no answer */
    itk_run_for(base, 1000);
    TH_CHECK_INT(it_count(&k), 1);
    /* shards 0/2 still work well into the outage */
    it_item(&after, it_user_on(2, 3400000), 1, 1);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, &after, 1) == 0);
    TH_CHECK(it_wait_replies(&after, 1, 1, 2000));
    TH_CHECK(it_result_is(&after, "created", NULL));

    TH_REQUIRE_OR_DONE(itk_script("stack", "start-one mariadb-s1") == 0);
    killed = 0;
    it_shard_close(1);
    it_shard_close(3);
    TH_CHECK(it_wait_replies(&k, 1, 2, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&k, "cancelled", NULL));
    TH_CHECK_INT(it_rows_everywhere(k.saga_id, rows), 0);
    TH_CHECK_INT(it_barriers(1, k.saga_id), 1);
    /* no row for any create that was answered failed */
    for (int i = 0; i < 4; i++) {
        TH_CHECK_INT(it_rows_everywhere(down13[i].saga_id, rows), 0);
        s = i % 2 ? 2 : 0;
        TH_CHECK(it_only_on(up02[i].saga_id, s));
    }
    TH_CHECK_INT(it_rows_everywhere(mixed[1].saga_id, rows), 0);
    TH_CHECK_INT(it_rows_everywhere(mixed[3].saga_id, rows), 0);
    TH_CHECK(it_only_on(mixed[0].saga_id, 0));
    TH_CHECK(it_only_on(mixed[2].saga_id, 2));
    /* and shard 1 takes orders again */
    it_item(&after, it_user_on(1, 3500000), 1, 1);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, &after, 1) == 0);
    TH_CHECK(it_wait_replies(&after, 1, 1, IT_REPLY_WAIT_MS));
    TH_CHECK(it_result_is(&after, "created", NULL));
    TH_CHECK(it_only_on(after.saga_id, 1));
done:
    if (killed && itk_script("stack", "start-one mariadb-s1") != 0)
        TH_FAIL_AT("could not start mariadb-s1 again");
    it_shard_close(1);
    it_shard_close(3);
}

static void test_range_room(void)
{
    static const long long rooms[] = {1, 25, 26, 50, 51, 75, 76, 100};
    enum { N = sizeof(rooms) / sizeof(rooms[0]) };
    msg_item items[N];
    int restarted = 0;

    TH_REQUIRE_OR_DONE(it_service_stop() == 0);
    setenv("ORDER_SHARD_STRATEGY", "range-room", 1);
    setenv("ORDER_SHARD_MAP", "1:0,26:1,51:2,76:3", 1);
    restarted = 1;
    TH_REQUIRE_OR_DONE(it_service_start() == 0);
    /* one user for all: only the room decides */
    for (int i = 0; i < N; i++)
        it_item(&items[i], 818181, 1 + (rooms[i] - 1) * 5, rooms[i]);
    TH_REQUIRE_OR_DONE(it_send(MSG_ORDER_CREATE, items, N) == 0);
    TH_REQUIRE_OR_DONE(it_wait_replies(items, N, 1, IT_REPLY_WAIT_MS));
    for (int i = 0; i < N; i++) {
        TH_CHECK(it_result_is(&items[i], "created", NULL));
        TH_CHECK(it_only_on(items[i].saga_id, it_room_shard(rooms[i])));
    }
done:
    unsetenv("ORDER_SHARD_STRATEGY");
    unsetenv("ORDER_SHARD_MAP");
    if (restarted && (it_service_stop() != 0 || it_service_start() != 0))
        TH_FAIL_AT("could not restart order-svc with the hash strategy");
}

static void test_replies_valid(void)
{
    /* type order.reply, a strict body, the saga as correlation id when alone */
    TH_CHECK_INT(bad_replies, 0);
}

/* ---- setup ---------------------------------------------------------------------- */

static int it_setup(void)
{
    static mq_exchange_decl exchanges[8];
    static mq_queue_decl queues[8];
    static mq_binding_decl bindings[8];
    mq_topology msg_topo, topo;
    mq_config cfg;
    cg_error err = {0, ""};
    size_t i;

    replies = calloc(IT_MAX_SAGAS, sizeof(*replies));
    base = event_base_new();
    if (replies == NULL || base == NULL)
        return -1;
    if (it_apply_schema() != 0) {
        fprintf(stderr, "it_order: cannot apply schema/shard.sql\n");
        return -1;
    }
    snprintf(reply_queue, sizeof(reply_queue), "it_order.%d.reply", (int)getpid());
    snprintf(dead_queue, sizeof(dead_queue), "it_order.%d.dead", (int)getpid());
    /* The saga topology, plus our reply queue and a copy of the dead letters. */
    msg_topology(&msg_topo, NULL);
    memset(&topo, 0, sizeof(topo));
    for (i = 0; i < msg_topo.n_exchanges; i++)
        exchanges[i] = msg_topo.exchanges[i];
    for (i = 0; i < msg_topo.n_queues; i++)
        queues[i] = msg_topo.queues[i];
    queues[i++] = (mq_queue_decl){reply_queue, NULL, NULL, 0, 1};
    queues[i++] = (mq_queue_decl){dead_queue, NULL, NULL, 0, 1};
    topo.n_queues = i;
    for (i = 0; i < msg_topo.n_bindings; i++)
        bindings[i] = msg_topo.bindings[i];
    bindings[i++] = (mq_binding_decl){dead_queue, MSG_EXCHANGE_DLX, MSG_KEY_DEAD};
    topo.n_bindings = i;
    topo.exchanges = exchanges;
    topo.n_exchanges = msg_topo.n_exchanges;
    topo.queues = queues;
    topo.bindings = bindings;
    mq_config_defaults(&cfg);
    cfg.host = env.amqp.host;
    cfg.port = env.amqp.port;
    cfg.user = env.amqp.user;
    cfg.password = env.amqp.password;
    cfg.vhost = env.amqp.vhost;
    cfg.name = "it_order";
    mq = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    if (mq == NULL || mq_consume(mq, reply_queue, it_on_reply, NULL) != CG_OK ||
        mq_consume(mq, dead_queue, it_on_dead, NULL) != CG_OK ||
        !itk_run_until(base, it_pred_up, mq, 15000)) {
        fprintf(stderr, "it_order: broker: %s\n", err.msg[0] ? err.msg : "not up in 15 s");
        return -1;
    }
    /* A fresh start, with the settings of this run. */
    unsetenv("ORDER_SHARD_STRATEGY");
    unsetenv("ORDER_SHARD_MAP");
    if (it_service_stop() != 0 || it_service_start() != 0) {
        fprintf(stderr, "it_order: cannot start order-svc\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"bulk creates land on their shards", test_bulk_creates},
        {"small multi-shard commands: every delivery acked", test_every_delivery_acked},
        {"duplicate create: one row, created", test_duplicate_create},
        {"cancel: row gone, barrier, idempotent", test_cancel},
        {"cancel before create: barred, no row", test_cancel_before_create},
        {"malformed messages dead-lettered, service goes on", test_malformed},
        {"lock wait: retried, item by item, then barred", test_lock_wait},
        {"SIGTERM mid-burst: exit 0, nothing lost", test_graceful_stop},
        {"shard server down: give up creates, cancels wait", test_shard_down},
        {"range-room strategy places by room", test_range_room},
        {"every reply kept the contract", test_replies_valid},
    };
    int level = LOG_LEVEL_WARN, rc;

    if (log_level_parse(itk_env("IT_ORDER_LOG", "warn"), &level) != CG_OK)
        level = LOG_LEVEL_WARN;
    log_set_level(level);
    log_set_program("it_order");
    srand((unsigned)getpid());
    if (it_env_load() != 0 || it_setup() != 0) {
        fprintf(stdout, "0 passed, 1 failed\n");
        return 1;
    }
    rc = th_main("it_order", tests, TH_TABLE_LEN(tests), argc, argv);
    /* Leave no rows behind: other tests' checks of the same stack would see
     * orders of coupons that have no stock. */
    for (int s = 0; s < IT_SHARDS; s++) {
        cg_error err = {0, ""};
        char sql[128];

        snprintf(sql, sizeof(sql), "DELETE FROM coupon_results WHERE coupon_id >= %d", IT_COUPON_BASE);
        if (it_shard(s) == NULL || db_exec(it_shard(s), sql, NULL, &err) != CG_OK)
            fprintf(stdout, "it_order: could not delete its rows on shard %d: %s\n", s, err.msg);
    }
    /* Leave nothing running that this test started. */
    if (it_service_stop() != 0)
        fprintf(stdout, "it_order: could not stop order-svc\n");
    mq_client_free(mq);
    for (int s = 0; s < IT_SHARDS; s++)
        it_shard_close(s);
    event_base_free(base);
    free(replies);
    return rc;
}
