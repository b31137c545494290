/* it_stock.c - integration tests of stock-svc against the real stack.
 *
 * The runner exports the stack's stack.env and REPO_DIR. The test (re)starts
 * stock-svc with `$REPO_DIR/scripts/services start stock-svc` (STACK_DIR from
 * the environment) and talks to it only as the orchestrator would: it
 * publishes stock.reserve / stock.release batches to grab.cmd with key
 * "stock" and reply_to = its own (exclusive) reply queue, and reads the
 * answers there; it reads Redis with blocking hiredis on the master the
 * sentinels name, and grab.dead for the dead letters. The two-instance and
 * SIGTERM tests start a second stock-svc binary themselves (environment from
 * `scripts/services env stock-svc`, pid tracked here, log in
 * $STACK_DIR/logs/stock-svc-it2.log); tests that need other settings restart
 * stock-svc with them and restore the defaults after. The failover test kills
 * the Redis master and brings it back as a replica. WATCH conflicts and
 * answers per instance are read from the services' stats lines. Every wait
 * runs the event loop under a deadline. Coupon ids are far past the seeded
 * ones and chosen per run; each test loads its own coupons and removes them
 * at the end. IT_STOCK_LOG sets the test's own log level (warn). */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "itkit.h"
#include "keys.h"
#include "log.h"
#include "mq.h"
#include "msg.h"
#include "rds_sync.h"
#include "testhelp.h"

/* Like TH_REQUIRE, but jumps to the test's cleanup instead of returning. */
#define IT_WAIT_MS 30000            /* bound on waiting for a batch of answers */
#define IT_ANSWER_SLOTS (1 << 15)   /* distinct sagas the test can track */
#define IT_DEAD_MAX 256

static struct event_base *base;
static mq_client *mq;
static char reply_q[128];
static char tiny_q[128];             /* a reply queue that holds one message */
static const char *send_reply_to = reply_q;
static long long coupon_base;       /* this run's coupon ids start here */
static long long user_base;
static int svc_was_running;         /* stock-svc ran before this test: bring it back */
static pid_t child_pid;             /* the second instance, when running */
static char child_log[600];
static char main_log[600];

static itk_amqp amqp;

/* ---- answers ----------------------------------------------------------------- */

typedef struct it_answer {
    char saga[MSG_SAGA_ID_LEN + 1];
    char result[16];
    char reason[32];
    int count;                  /* replies seen for this saga */
    int differ;                 /* replies that disagreed with the first */
} it_answer;

static it_answer *answers;
static int bad_replies;         /* undecodable replies, wrong correlation ids */

static uint32_t it_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot of saga (inserted when create is set); NULL when absent or full. */
static it_answer *it_answer_slot(const char *saga, int create)
{
    uint32_t s = it_hash(saga) & (IT_ANSWER_SLOTS - 1);

    for (int n = 0; n < IT_ANSWER_SLOTS; n++, s = (s + 1) & (IT_ANSWER_SLOTS - 1)) {
        it_answer *a = &answers[s];

        if (a->saga[0] == '\0') {
            if (!create)
                return NULL;
            snprintf(a->saga, sizeof(a->saga), "%s", saga);
            return a;
        }
        if (strcmp(a->saga, saga) == 0)
            return a;
    }
    return NULL;
}

static const it_answer *it_answer_of(const char *saga)
{
    return it_answer_slot(saga, 0);
}

static msg_batch reply_batch;

static void it_on_reply(mq_client *c, mq_message *m, void *arg)
{
    jv_error jerr;

    (void)arg;
    if (m->type == NULL || strcmp(m->type, "stock.reply") != 0 ||
        msg_decode(MSG_STOCK_REPLY, m->body, m->body_len, &reply_batch, &jerr) != CG_OK) {
        bad_replies++;
        goto done;
    }
    if (reply_batch.n == 1 && (m->correlation_id == NULL ||
                               strcmp(m->correlation_id, reply_batch.items[0].saga_id) != 0))
        bad_replies++;
    if (m->message_id == NULL)
        bad_replies++;
    for (size_t i = 0; i < reply_batch.n; i++) {
        const msg_item *it = &reply_batch.items[i];
        it_answer *a = it_answer_slot(it->saga_id, 1);

        if (a == NULL) {
            bad_replies++;
            continue;
        }
        if (a->count == 0) {
            snprintf(a->result, sizeof(a->result), "%s", it->result);
            snprintf(a->reason, sizeof(a->reason), "%s", it->reason);
        } else if (strcmp(a->result, it->result) != 0 || strcmp(a->reason, it->reason) != 0) {
            a->differ++;
        }
        a->count++;
    }
done:
    (void)mq_ack(c, m->id, 0);
    mq_message_free(m);
}

/* ---- dead letters ------------------------------------------------------------- */

static struct {
    char message_id[64];
    char reason[320];
} dead[IT_DEAD_MAX];
static int n_dead;

static void it_on_dead(mq_client *c, mq_message *m, void *arg)
{
    json_t *env = json_loadb(m->body, m->body_len, 0, NULL);
    const char *mid = json_string_value(json_object_get(env, "message_id"));
    const char *reason = json_string_value(json_object_get(env, "reason"));

    (void)arg;
    if (n_dead < IT_DEAD_MAX) {
        snprintf(dead[n_dead].message_id, sizeof(dead[n_dead].message_id), "%s", mid ? mid : "");
        snprintf(dead[n_dead].reason, sizeof(dead[n_dead].reason), "%s", reason ? reason : "");
        n_dead++;
    }
    json_decref(env);
    (void)mq_ack(c, m->id, 0);
    mq_message_free(m);
}

/* How many dead letters carry message id mid; *reason gets the last one's. */
static int it_dead_count(const char *mid, const char **reason)
{
    int n = 0;

    for (int i = 0; i < n_dead; i++) {
        if (strcmp(dead[i].message_id, mid) == 0) {
            n++;
            if (reason != NULL)
                *reason = dead[i].reason;
        }
    }
    return n;
}

/* ---- publishing ----------------------------------------------------------------- */

static int pub_sent, pub_confirmed, pub_acked;

static void it_on_confirm(mq_client *c, int result, void *arg)
{
    (void)c;
    (void)arg;
    pub_confirmed++;
    pub_acked += result == MQ_PUBLISH_ACKED;
}

static int it_pred_confirmed(void *arg)
{
    (void)arg;
    return pub_confirmed >= pub_sent;
}

/* Waits until every publish so far is confirmed; 1 when all were acked. */
static int it_confirm_all(void)
{
    return itk_run_until(base, it_pred_confirmed, NULL, IT_WAIT_MS) && pub_acked == pub_sent;
}

/* Publishes a raw command; reply_to NULL leaves the property out. */
static int it_publish_raw(const char *type, const char *mid, const char *reply_to,
                          const char *body, size_t len)
{
    mq_props props = {0};
    int rc;

    props.type = type;
    props.message_id = mid;
    props.reply_to = reply_to;
    rc = mq_publish(mq, MSG_EXCHANGE_CMD, MSG_KEY_STOCK, &props, body, len, it_on_confirm, NULL);
    if (rc == CG_OK)
        pub_sent++;
    return rc;
}

static void it_new_id(char *out)
{
    if (msg_saga_id_new(out) != CG_OK)
        abort();
}

/* Publishes items as one command of kind; its message id goes to mid_out
 * (MSG_SAGA_ID_LEN + 1 bytes) when not NULL, or is taken from mid_in. */
static int it_send(enum msg_kind kind, const msg_item *items, size_t n, const char *mid_in,
                   char *mid_out)
{
    static msg_batch b;
    char mid[MSG_SAGA_ID_LEN + 1], *body = NULL;
    size_t len = 0;
    int rc;

    b.kind = kind;
    b.n = n;
    memcpy(b.items, items, n * sizeof(*items));
    if (mid_in != NULL)
        snprintf(mid, sizeof(mid), "%s", mid_in);
    else
        it_new_id(mid);
    rc = msg_encode_new(&b, &body, &len);
    if (rc == CG_OK)
        rc = it_publish_raw(msg_kind_name(kind), mid, send_reply_to, body, len);
    if (mid_out != NULL)
        memcpy(mid_out, mid, sizeof(mid));
    free(body);
    return rc;
}

static msg_item it_item(const char *saga, long long coupon, long long user)
{
    msg_item m;

    memset(&m, 0, sizeof(m));
    snprintf(m.saga_id, sizeof(m.saga_id), "%s", saga);
    m.coupon_id = coupon;
    m.user_id = user;
    return m;
}

/* A batch of sagas the test waits for. */
typedef struct it_sagas {
    int n;
    char (*id)[MSG_SAGA_ID_LEN + 1];
} it_sagas;

static int it_pred_answered(void *arg)
{
    const it_sagas *s = arg;

    for (int i = 0; i < s->n; i++) {
        const it_answer *a = it_answer_of(s->id[i]);

        if (a == NULL || a->count == 0)
            return 0;
    }
    return 1;
}

static int it_wait_answered(const char (*ids)[MSG_SAGA_ID_LEN + 1], int n, int timeout_ms)
{
    it_sagas s = {n, (char (*)[MSG_SAGA_ID_LEN + 1])ids};

    return itk_run_until(base, it_pred_answered, &s, timeout_ms);
}

/* "reserved", "rejected/out_of_stock", ... for one saga; "none" before any answer. */
static const char *it_outcome(const char *saga)
{
    static char buf[64];
    const it_answer *a = it_answer_of(saga);

    if (a == NULL || a->count == 0)
        return "none";
    snprintf(buf, sizeof(buf), "%s%s%s", a->result, a->reason[0] ? "/" : "", a->reason);
    return buf;
}

/* Counts the answers of n sagas by outcome; returns how many disagreed. */
typedef struct it_tally {
    int reserved, out_of_stock, duplicate, unknown, released_reason, released, none, other;
    int differ, multi;
} it_tally;

static it_tally it_count(const char (*ids)[MSG_SAGA_ID_LEN + 1], int n)
{
    it_tally t;

    memset(&t, 0, sizeof(t));
    for (int i = 0; i < n; i++) {
        const it_answer *a = it_answer_of(ids[i]);
        const char *o = it_outcome(ids[i]);

        if (a != NULL) {
            t.differ += a->differ;
            t.multi += a->count > 1;
        }
        if (strcmp(o, "reserved") == 0)
            t.reserved++;
        else if (strcmp(o, "rejected/out_of_stock") == 0)
            t.out_of_stock++;
        else if (strcmp(o, "rejected/duplicate") == 0)
            t.duplicate++;
        else if (strcmp(o, "rejected/unknown_coupon") == 0)
            t.unknown++;
        else if (strcmp(o, "rejected/released") == 0)
            t.released_reason++;
        else if (strcmp(o, "released") == 0)
            t.released++;
        else if (strcmp(o, "none") == 0)
            t.none++;
        else
            t.other++;
    }
    return t;
}

/* ---- Redis (blocking: this is a test, not a service loop) ------------------------ */

static redisContext *rctx;

#define IT_REDIS_TIMEOUT_MS 2000

/* Connects to the master the sentinels name (one round, ROLE checked);
 * again after a failed command. */
static int it_redis_connect(void)
{
    rds_sync_opts o = {itk_env("SENTINEL_ADDRS", "127.0.0.1:17010"),
                       itk_env("SENTINEL_MASTER_NAME", "grab"), IT_REDIS_TIMEOUT_MS, 0, NULL,
                       LOG_LEVEL_DEBUG};
    cg_error err;

    if (rctx != NULL && rctx->err == 0)
        return 0;
    redisFree(rctx);
    rctx = NULL;
    return rds_sync_master(&o, &rctx, NULL, 0, NULL, &err) == CG_OK ? 0 : -1;
}

static redisReply *it_redis(const char *fmt, ...)
{
    redisReply *r = NULL;
    va_list ap;

    if (it_redis_connect() != 0)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(rctx, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        redisFree(rctx);
        rctx = NULL;
    }
    return r;
}

/* An integer command's answer (or a string key's value); -1 when missing, -2 on error. */
static long long it_redis_ll(const char *fmt, ...)
{
    redisReply *r = NULL;
    long long v = -2;
    va_list ap;

    if (it_redis_connect() != 0)
        return -2;
    va_start(ap, fmt);
    r = redisvCommand(rctx, fmt, ap);
    va_end(ap);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    else if (r != NULL && r->type == REDIS_REPLY_NIL)
        v = -1;
    freeReplyObject(r);
    return v;
}

/* The value recorded for a saga on coupon c, "" when none. */
static const char *it_saga_record(long long c, const char *saga)
{
    static char buf[64];
    char key[KEY_MAX];
    redisReply *r;

    snprintf(key, sizeof(key), KEY_STOCK_SAGAS_FMT, c);
    r = it_redis("HGET %s %s", key, saga);
    snprintf(buf, sizeof(buf), "%s", r != NULL && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return buf;
}

/* Loads a coupon's stock as the seeder and POST /admin/coupons do. */
static int it_load_coupon(long long c, long long stock, long long room)
{
    char k_stock[KEY_MAX], k_total[KEY_MAX], k_holders[KEY_MAX], k_sagas[KEY_MAX], k_room[KEY_MAX];
    redisReply *r;
    int ok;

    snprintf(k_stock, sizeof(k_stock), KEY_STOCK_FMT, c);
    snprintf(k_total, sizeof(k_total), KEY_STOCK_TOTAL_FMT, c);
    snprintf(k_holders, sizeof(k_holders), KEY_STOCK_HOLDERS_FMT, c);
    snprintf(k_sagas, sizeof(k_sagas), KEY_STOCK_SAGAS_FMT, c);
    snprintf(k_room, sizeof(k_room), KEY_STOCK_ROOM_FMT, c);
    freeReplyObject(it_redis("DEL %s %s %s %s %s", k_stock, k_total, k_holders, k_sagas, k_room));
    r = it_redis("MSET %s %lld %s %lld %s %lld", k_stock, stock, k_total, stock, k_room, room);
    ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    r = it_redis("SADD %s %lld", KEY_COUPONS, c);
    ok = ok && r != NULL && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Removes a coupon's keys (so that the run leaves nothing behind). */
static void it_drop_coupon(long long c)
{
    char k[5][KEY_MAX];

    snprintf(k[0], KEY_MAX, KEY_STOCK_FMT, c);
    snprintf(k[1], KEY_MAX, KEY_STOCK_TOTAL_FMT, c);
    snprintf(k[2], KEY_MAX, KEY_STOCK_HOLDERS_FMT, c);
    snprintf(k[3], KEY_MAX, KEY_STOCK_SAGAS_FMT, c);
    snprintf(k[4], KEY_MAX, KEY_STOCK_ROOM_FMT, c);
    freeReplyObject(it_redis("DEL %s %s %s %s %s", k[0], k[1], k[2], k[3], k[4]));
    freeReplyObject(it_redis("SREM %s %lld", KEY_COUPONS, c));
}

typedef struct it_stock_view {
    long long stock, total, holders, sagas;
} it_stock_view;

static it_stock_view it_view(long long c)
{
    it_stock_view v;

    v.stock = it_redis_ll("GET " KEY_STOCK_FMT, c);
    v.total = it_redis_ll("GET " KEY_STOCK_TOTAL_FMT, c);
    v.holders = it_redis_ll("SCARD " KEY_STOCK_HOLDERS_FMT, c);
    v.sagas = it_redis_ll("HLEN " KEY_STOCK_SAGAS_FMT, c);
    return v;
}

/* ---- services ------------------------------------------------------------------- */

/* Reads a whole file into a new NUL-terminated buffer (NULL when unreadable). */
static char *it_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        n = (long)fread(buf, 1, (size_t)n, f);
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

/* The part of a services log since the last start of stock-svc. */
static const char *it_since_start(const char *log)
{
    const char *p = log, *last = log, *hit;

    while ((hit = strstr(p, "services: starting stock-svc")) != NULL) {
        last = hit;
        p = hit + 1;
    }
    return last;
}

static int it_log_has(const char *path, const char *needle)
{
    char *log = it_slurp(path);
    int found = log != NULL && strstr(it_since_start(log), needle) != NULL;

    free(log);
    return found;
}

typedef struct it_log_wait {
    const char *path, *needle;
} it_log_wait;

static int it_pred_log(void *arg)
{
    const it_log_wait *w = arg;

    return it_log_has(w->path, w->needle);
}

/* The counters of the last stats line since the last start; 0s when none. */
typedef struct it_svc_stats {
    unsigned long long answers, conflicts, tx, requeued, republished;
} it_svc_stats;

static unsigned long long it_field(const char *line, const char *name)
{
    const char *p = strstr(line, name);

    return p != NULL ? strtoull(p + strlen(name), NULL, 10) : 0;
}

static it_svc_stats it_stats_of(const char *path)
{
    it_svc_stats s = {0, 0, 0, 0, 0};
    char *log = it_slurp(path);
    const char *p, *last = NULL, *hit;

    if (log == NULL)
        return s;
    for (p = it_since_start(log); (hit = strstr(p, "] stats")) != NULL; p = hit + 1)
        last = hit;
    if (last != NULL) {
        char line[1024];
        size_t n = strcspn(last, "\n");

        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), last);
        s.answers = it_field(line, " reserved=") + it_field(line, " rejected=") +
                    it_field(line, " released=");
        s.conflicts = it_field(line, " conflicts=");
        s.tx = it_field(line, " tx=");
        s.requeued = it_field(line, " requeued=");
        s.republished = it_field(line, " republished=");
    }
    free(log);
    return s;
}

/* 1 when scripts/services sees stock-svc up (its pid file names a live
 * process of the binary it runs, BUILD_DIR included). */
static int it_svc_running(void)
{
    char cmd[1024], line[256];
    int up = 0;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "\"%s/scripts/services\" status 2>/dev/null",
             itk_env("REPO_DIR", "."));
    p = popen(cmd, "r");
    if (p == NULL)
        return 0;
    while (fgets(line, sizeof(line), p) != NULL)
        up |= strncmp(line, "stock-svc ", 10) == 0 && strstr(line, " up") != NULL;
    pclose(p);
    return up;
}

/* (Re)starts stock-svc through scripts/services and waits for its own ready
 * line in the lines it wrote since this start. */
static int it_start_main(void)
{
    it_log_wait w = {main_log, "stock-svc ready:"};

    if (itk_script("services", "start stock-svc") != 0)
        return -1;
    return itk_run_until(base, it_pred_log, &w, IT_WAIT_MS) ? 0 : -1;
}

static int it_restart_main(void)
{
    if (itk_script("services", "stop stock-svc") != 0)
        return -1;
    return it_start_main();
}

/* Starts a second stock-svc with the environment scripts/services gives the
 * first (plus extra "NAME=VALUE" settings), logging to child_log. */
static int it_start_child(const char *const *extra)
{
    char cmd[1024], line[4096], bin[600];
    char *envs[64];
    int n_env = 0, rc = -1, fd;
    it_log_wait w = {child_log, "stock-svc ready:"};
    FILE *p;
    pid_t pid;

    snprintf(cmd, sizeof(cmd), "\"%s/scripts/services\" env stock-svc", itk_env("REPO_DIR", "."));
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    while (n_env < 48 && fgets(line, sizeof(line), p) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strchr(line, '=') != NULL)
            envs[n_env++] = strdup(line);
    }
    pclose(p);
    for (; extra != NULL && *extra != NULL && n_env < 63; extra++)
        envs[n_env++] = strdup(*extra);
    /* The binary scripts/services runs. */
    if (getenv("BUILD_DIR") != NULL)
        snprintf(bin, sizeof(bin), "%s/bin/stock-svc", getenv("BUILD_DIR"));
    else
        snprintf(bin, sizeof(bin), "%s/build/bin/stock-svc", itk_env("REPO_DIR", "."));
    /* Emptied here, before the wait for its ready line can read it. */
    fd = open(child_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0)
        close(fd);
    pid = fork();
    if (pid == 0) {
        fd = open(child_log, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        for (int i = 3; i < 1024; i++)
            close(i);   /* not our broker and Redis sockets */
        setsid();
        for (int i = 0; i < n_env; i++)
            putenv(envs[i]);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < n_env; i++)
        free(envs[i]);
    if (pid < 0)
        return -1;
    child_pid = pid;
    if (itk_run_until(base, it_pred_log, &w, IT_WAIT_MS))
        rc = 0;
    return rc;
}

static int it_child_exited;
static int it_child_status;

static int it_pred_child_exit(void *arg)
{
    (void)arg;
    if (!it_child_exited && child_pid > 0 &&
        waitpid(child_pid, &it_child_status, WNOHANG) == child_pid) {
        it_child_exited = 1;
        child_pid = 0;
    }
    return it_child_exited;
}

/* SIGTERMs the second instance and waits (bounded) for it; returns its
 * exit status, -1 when it had to be killed. */
static int it_stop_child(int timeout_ms)
{
    if (child_pid <= 0)
        return 0;
    it_child_exited = 0;
    kill(child_pid, SIGTERM);
    if (!itk_run_until(base, it_pred_child_exit, NULL, timeout_ms)) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        child_pid = 0;
        return -1;
    }
    return WIFEXITED(it_child_status) ? WEXITSTATUS(it_child_status) : -1;
}

static void it_kill_child_at_exit(void)
{
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        child_pid = 0;
    }
}

/* ---- the tests ------------------------------------------------------------------ */

/* Fresh saga ids for n items. */
static char (*it_ids(int n))[MSG_SAGA_ID_LEN + 1]
{
    char (*ids)[MSG_SAGA_ID_LEN + 1] = calloc((size_t)n, sizeof(*ids));

    for (int i = 0; ids != NULL && i < n; i++)
        it_new_id(ids[i]);
    return ids;
}

/* Sends ids[0..n-1] as reserves of coupon c for users user0 + i, in commands
 * of the given sizes (cycled). */
static int it_send_reserves(long long c, const char (*ids)[MSG_SAGA_ID_LEN + 1], int n,
                            long long user0, const int *sizes, int n_sizes)
{
    static msg_item items[MSG_MAX_BATCH];
    int i = 0, k = 0;

    while (i < n) {
        int size = sizes[k++ % n_sizes], m = 0;

        for (; m < size && i < n; m++, i++)
            items[m] = it_item(ids[i], c, user0 + i);
        if (it_send(MSG_STOCK_RESERVE, items, (size_t)m, NULL, NULL) != CG_OK)
            return -1;
    }
    return 0;
}

static void test_reserve_150_for_100(void)
{
    long long c = coupon_base + 1;
    int sizes[] = {1, 7, 20, 50, 72};
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(150);
    it_tally t;
    it_stock_view v;

    TH_REQUIRE_OR_DONE(ids != NULL);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 100, 7) == 0);
    TH_REQUIRE_OR_DONE(it_send_reserves(c, ids, 150, user_base, sizes, 5) == 0);
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(it_wait_answered(ids, 150, IT_WAIT_MS));
    t = it_count(ids, 150);
    TH_CHECK_INT(t.reserved, 100);
    TH_CHECK_INT(t.out_of_stock, 50);
    TH_CHECK_INT(t.none + t.other + t.duplicate + t.unknown, 0);
    TH_CHECK_INT(t.differ, 0);
    v = it_view(c);
    TH_CHECK_INT(v.stock, 0);
    TH_CHECK_INT(v.holders, 100);
    TH_CHECK_INT(v.total, v.stock + v.holders);
    TH_CHECK_INT(v.sagas, 150);
done:
    free(ids);
}

static void test_same_user_twice(void)
{
    long long c = coupon_base + 2, u1 = user_base + 1, u2 = user_base + 2;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(5);
    msg_item items[2];
    it_tally t;
    it_stock_view v;

    TH_REQUIRE_OR_DONE(ids != NULL);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 10, 7) == 0);
    /* In one batch. */
    items[0] = it_item(ids[0], c, u1);
    items[1] = it_item(ids[1], c, u1);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 2, NULL, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(it_wait_answered(ids, 2, IT_WAIT_MS));
    t = it_count(ids, 2);
    TH_CHECK_INT(t.reserved, 1);
    TH_CHECK_INT(t.duplicate, 1);
    /* Across batches: after the first answer, and again for u1. */
    items[0] = it_item(ids[2], c, u2);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_answered((const char (*)[MSG_SAGA_ID_LEN + 1])ids + 2, 1, IT_WAIT_MS));
    items[0] = it_item(ids[3], c, u2);
    items[1] = it_item(ids[4], c, u1);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items + 1, 1, NULL, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(it_wait_answered(ids, 5, IT_WAIT_MS));
    TH_CHECK_STR(it_outcome(ids[2]), "reserved");
    TH_CHECK_STR(it_outcome(ids[3]), "rejected/duplicate");
    TH_CHECK_STR(it_outcome(ids[4]), "rejected/duplicate");
    v = it_view(c);
    TH_CHECK_INT(v.stock, 8);
    TH_CHECK_INT(v.holders, 2);
    TH_CHECK_INT(v.total, v.stock + v.holders);
done:
    free(ids);
}

/* Waits until saga has at least want answers. */
typedef struct it_count_wait {
    const char *saga;
    int want;
} it_count_wait;

static int it_pred_count(void *arg)
{
    const it_count_wait *w = arg;
    const it_answer *a = it_answer_of(w->saga);

    return a != NULL && a->count >= w->want;
}

static int it_wait_count(const char *saga, int want)
{
    it_count_wait w = {saga, want};

    return itk_run_until(base, it_pred_count, &w, IT_WAIT_MS);
}

static void test_same_saga_again(void)
{
    long long c = coupon_base + 3, d = coupon_base + 4;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(4);
    char mid[MSG_SAGA_ID_LEN + 1];
    msg_item items[2];
    it_stock_view v;

    TH_REQUIRE_OR_DONE(ids != NULL);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 5, 7) == 0);
    TH_REQUIRE_OR_DONE(it_load_coupon(d, 1, 7) == 0);
    items[0] = it_item(ids[0], c, user_base + 10);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, mid) == CG_OK);
    TH_CHECK(it_wait_count(ids[0], 1));
    /* The same message again (a redelivery or a duplicate publish). */
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, mid, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[0], 2));
    /* The same saga in a different message, next to a new one. */
    items[1] = it_item(ids[1], c, user_base + 11);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 2, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[0], 3));
    TH_CHECK(it_wait_count(ids[1], 1));
    TH_CHECK_STR(it_outcome(ids[0]), "reserved");
    TH_CHECK_STR(it_outcome(ids[1]), "reserved");
    TH_CHECK_INT(it_answer_of(ids[0])->differ, 0);
    v = it_view(c);
    TH_CHECK_INT(v.stock, 3);
    TH_CHECK_INT(v.holders, 2);

    /* A rejection is recorded too: once stock comes back, the same saga is
     * still rejected, while a new saga gets the unit. */
    items[0] = it_item(ids[2], d, user_base + 20);
    items[1] = it_item(ids[3], d, user_base + 21);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[2], 1));
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items + 1, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[3], 1));
    TH_CHECK_STR(it_outcome(ids[2]), "reserved");
    TH_CHECK_STR(it_outcome(ids[3]), "rejected/out_of_stock");
    TH_CHECK_STR(it_saga_record(d, ids[3]), "J:out_of_stock");
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RELEASE, items, 1, NULL, NULL) == CG_OK);   /* back to 1 */
    TH_CHECK(it_wait_count(ids[2], 2));
    TH_CHECK_INT(it_view(d).stock, 1);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items + 1, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[3], 2));
    TH_CHECK_INT(it_answer_of(ids[3])->differ, 0);
    v = it_view(d);
    TH_CHECK_INT(v.stock, 1);
    TH_CHECK_INT(v.holders, 0);
    TH_REQUIRE_OR_DONE(it_confirm_all());
done:
    free(ids);
}

static void test_release(void)
{
    long long c = coupon_base + 5;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(2);
    msg_item items[1];
    it_stock_view v;

    TH_REQUIRE_OR_DONE(ids != NULL);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 3, 7) == 0);
    items[0] = it_item(ids[0], c, user_base + 30);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[0], 1));
    TH_CHECK_STR(it_outcome(ids[0]), "reserved");
    TH_CHECK_INT(it_view(c).stock, 2);
    /* Release: stock back by exactly one, the user no longer a holder. */
    memset(answers, 0, sizeof(*answers) * IT_ANSWER_SLOTS);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RELEASE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[0], 1));
    TH_CHECK_STR(it_outcome(ids[0]), "released");
    v = it_view(c);
    TH_CHECK_INT(v.stock, 3);
    TH_CHECK_INT(v.holders, 0);
    TH_CHECK_STR(it_saga_record(c, ids[0]), "L");
    /* A second release changes nothing. */
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RELEASE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[0], 2));
    TH_CHECK_STR(it_outcome(ids[0]), "released");
    TH_CHECK_INT(it_view(c).stock, 3);

    /* Release before reserve: a barrier; the late reserve is rejected. */
    items[0] = it_item(ids[1], c, user_base + 31);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RELEASE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[1], 1));
    TH_CHECK_STR(it_outcome(ids[1]), "released");
    TH_CHECK_STR(it_saga_record(c, ids[1]), "L");
    memset(answers, 0, sizeof(*answers) * IT_ANSWER_SLOTS);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[1], 1));
    TH_CHECK_STR(it_outcome(ids[1]), "rejected/released");
    v = it_view(c);
    TH_CHECK_INT(v.stock, 3);
    TH_CHECK_INT(v.holders, 0);
    TH_CHECK_INT(v.total, v.stock + v.holders);
    TH_REQUIRE_OR_DONE(it_confirm_all());
done:
    free(ids);
}

static void test_unknown_coupon(void)
{
    long long c = coupon_base + 6;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(1);
    msg_item items[1];

    TH_REQUIRE_OR_DONE(ids != NULL);
    it_drop_coupon(c);
    items[0] = it_item(ids[0], c, user_base + 40);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[0], 1));
    TH_CHECK_STR(it_outcome(ids[0]), "rejected/unknown_coupon");
    TH_CHECK_INT(it_redis_ll("EXISTS " KEY_STOCK_FMT, c), 0);
    TH_REQUIRE_OR_DONE(it_confirm_all());
done:
    free(ids);
}

typedef struct it_dead_wait {
    const char *const *mids;
    int n;
} it_dead_wait;

static int it_pred_dead(void *arg)
{
    const it_dead_wait *w = arg;

    for (int i = 0; i < w->n; i++)
        if (it_dead_count(w->mids[i], NULL) == 0)
            return 0;
    return 1;
}

static void test_bad_messages(void)
{
    long long c = coupon_base + 7;
    char mids[5][MSG_SAGA_ID_LEN + 1], body[512];
    const char *mp[5] = {mids[0], mids[1], mids[2], mids[3], mids[4]};
    const char *reason = "";
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(2);
    msg_item items[1];
    it_dead_wait w = {mp, 5};

    TH_REQUIRE_OR_DONE(ids != NULL);
    for (int i = 0; i < 5; i++)
        it_new_id(mids[i]);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 5, 7) == 0);
    /* 0: not JSON; 1: an unknown type; 2: no reply_to; 3: a bad saga id;
     * 4: a reply kind sent as a command. */
    TH_REQUIRE_OR_DONE(it_publish_raw("stock.reserve", mids[0], reply_q, "{not json", 9) == CG_OK);
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"%s\",\"coupon_id\":%lld,"
             "\"user_id\":%lld}]}", ids[0], c, user_base + 50);
    TH_REQUIRE_OR_DONE(it_publish_raw("stock.bogus", mids[1], reply_q, body, strlen(body)) == CG_OK);
    TH_REQUIRE_OR_DONE(it_publish_raw("stock.reserve", mids[2], NULL, body, strlen(body)) == CG_OK);
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"XYZ\",\"coupon_id\":%lld,"
             "\"user_id\":1}]}", c);
    TH_REQUIRE_OR_DONE(it_publish_raw("stock.release", mids[3], reply_q, body, strlen(body)) == CG_OK);
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"%s\",\"coupon_id\":%lld,"
             "\"user_id\":%lld}]}", ids[0], c, user_base + 50);
    TH_REQUIRE_OR_DONE(it_publish_raw("stock.reply", mids[4], reply_q, body, strlen(body)) == CG_OK);
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(itk_run_until(base, it_pred_dead, &w, IT_WAIT_MS));
    itk_run_for(base, 500);   /* room for a repeat to show up */
    for (int i = 0; i < 5; i++)
        TH_CHECK_INT(it_dead_count(mids[i], NULL), 1);
    TH_CHECK(it_dead_count(mids[0], &reason) == 1 && reason[0] != '\0');
    printf("    dead letter reasons: [%s]", reason);
    TH_CHECK(it_dead_count(mids[1], &reason) == 1 && strstr(reason, "unknown type 'stock.bogus'"));
    printf(" [%s]", reason);
    TH_CHECK(it_dead_count(mids[2], &reason) == 1 && strstr(reason, "reply_to"));
    printf(" [%s]", reason);
    TH_CHECK(it_dead_count(mids[3], &reason) == 1 && strstr(reason, "items[0].saga_id"));
    printf(" [%s]", reason);
    TH_CHECK(it_dead_count(mids[4], &reason) == 1 && strstr(reason, "unknown type 'stock.reply'"));
    printf(" [%s]\n", reason);
    /* Nothing of them was answered or changed, and the service still works. */
    TH_CHECK(it_answer_of(ids[0]) == NULL);
    TH_CHECK_INT(it_view(c).stock, 5);
    items[0] = it_item(ids[1], c, user_base + 51);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait_count(ids[1], 1));
    TH_CHECK_STR(it_outcome(ids[1]), "reserved");
    TH_REQUIRE_OR_DONE(it_confirm_all());
done:
    free(ids);
}

/* Broken data (a stock that is not a number) is not a reason to loop: the
 * batch is retried a few times, then its command is dead-lettered with the
 * error, and the coupon's other commands are not stuck behind it. */
static void test_broken_stock_value(void)
{
    long long c = coupon_base + 14, ok = coupon_base + 15;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(2);
    char mid[MSG_SAGA_ID_LEN + 1];
    const char *mp[1] = {mid}, *reason = "";
    it_dead_wait w = {mp, 1};
    msg_item items[1];

    TH_REQUIRE_OR_DONE(ids != NULL);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 5, 7) == 0);
    TH_REQUIRE_OR_DONE(it_load_coupon(ok, 5, 7) == 0);
    freeReplyObject(it_redis("SET " KEY_STOCK_FMT " five", c));
    items[0] = it_item(ids[0], c, user_base + 60);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, mid) == CG_OK);
    items[0] = it_item(ids[1], ok, user_base + 61);
    TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(it_wait_count(ids[1], 1));
    TH_CHECK_STR(it_outcome(ids[1]), "reserved");
    TH_CHECK(itk_run_until(base, it_pred_dead, &w, IT_WAIT_MS));
    itk_run_for(base, 300);
    TH_CHECK(it_dead_count(mid, &reason) == 1 && strstr(reason, "not an integer") != NULL);
    printf("    dead letter reason: [%s]\n", reason);
    TH_CHECK(it_answer_of(ids[0]) == NULL);
    TH_CHECK_STR(it_saga_record(c, ids[0]), "");
done:
    free(ids);
}

typedef struct it_stats_wait {
    unsigned long long republished;
} it_stats_wait;

static int it_pred_republished(void *arg)
{
    const it_stats_wait *w = arg;

    return it_stats_of(main_log).republished > w->republished;
}

typedef struct it_record_wait {
    long long coupon;
    const char *saga;
} it_record_wait;

static int it_pred_recorded(void *arg)
{
    const it_record_wait *w = arg;

    return it_saga_record(w->coupon, w->saga)[0] != '\0';
}

/* A reply the broker refuses (the reply queue is full) is published again
 * until it is taken; the command is acked only then. */
static void test_reply_refused(void)
{
    long long c = coupon_base + 16;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(3);
    it_stats_wait w = {it_stats_of(main_log).republished};
    msg_item items[1];
    it_stock_view v;

    TH_REQUIRE_OR_DONE(ids != NULL);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 5, 7) == 0);
    send_reply_to = tiny_q;
    for (int i = 0; i < 3; i++) {
        it_record_wait rw = {c, ids[i]};

        /* One at a time, so that each answer is a reply message of its own. */
        items[0] = it_item(ids[i], c, user_base + 70 + i);
        TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, 1, NULL, NULL) == CG_OK);
        TH_CHECK(itk_run_until(base, it_pred_recorded, &rw, IT_WAIT_MS));
        itk_run_for(base, 50);
    }
    send_reply_to = reply_q;
    TH_REQUIRE_OR_DONE(it_confirm_all());
    /* One reply fits; the others are nacked by the broker and come again. */
    TH_CHECK(itk_run_until(base, it_pred_republished, &w, IT_WAIT_MS));
    TH_CHECK_INT(it_view(c).stock, 2);
    TH_CHECK(it_answer_of(ids[0]) == NULL && it_answer_of(ids[1]) == NULL &&
             it_answer_of(ids[2]) == NULL);
    TH_REQUIRE_OR_DONE(mq_consume(mq, tiny_q, it_on_reply, NULL) == CG_OK);
    TH_CHECK(it_wait_answered(ids, 3, IT_WAIT_MS));
    TH_CHECK_STR(it_outcome(ids[0]), "reserved");
    TH_CHECK_STR(it_outcome(ids[1]), "reserved");
    TH_CHECK_STR(it_outcome(ids[2]), "reserved");
    printf("    republished reply items: %llu\n",
           it_stats_of(main_log).republished - w.republished);
    v = it_view(c);
    TH_CHECK_INT(v.stock, 2);
    TH_CHECK_INT(v.holders, 3);
done:
    send_reply_to = reply_q;
    free(ids);
}

/* One burst of 500 reserves for 200 stock on coupon c, over both instances;
 * adds the round's WATCH conflicts to *conflicts. */
static void it_hot_round(long long c, int round, unsigned long long *conflicts)
{
    int n = 500, per_msg = 5;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(n);
    it_svc_stats m0, s0, m1, s1;
    long long t0, t1, deadline;
    it_tally t;
    it_stock_view v;

    TH_REQUIRE_OR_DONE(ids != NULL);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 200, 7) == 0);
    itk_run_for(base, 300);   /* the last stats lines before the burst */
    m0 = it_stats_of(main_log);
    s0 = it_stats_of(child_log);
    t0 = itk_now_ms();
    TH_REQUIRE_OR_DONE(it_send_reserves(c, ids, n, user_base + 1000 + round * n, &per_msg, 1) == 0);
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(it_wait_answered(ids, n, IT_WAIT_MS));
    t1 = itk_now_ms();
    t = it_count(ids, n);
    TH_CHECK_INT(t.reserved, 200);
    TH_CHECK_INT(t.out_of_stock, 300);
    TH_CHECK_INT(t.differ, 0);
    TH_CHECK_INT(t.none, 0);
    v = it_view(c);
    TH_CHECK_INT(v.stock, 0);
    TH_CHECK_INT(v.holders, 200);
    TH_CHECK_INT(v.total, v.stock + v.holders);
    TH_CHECK_INT(v.sagas, n);
    /* The stats lines (every 200 ms) account for every answer: both
     * instances answered a share. */
    deadline = itk_now_ms() + 5000;
    do {
        itk_run_for(base, 100);
        m1 = it_stats_of(main_log);
        s1 = it_stats_of(child_log);
    } while (m1.answers - m0.answers + s1.answers - s0.answers < (unsigned long long)n &&
             itk_now_ms() < deadline);
    printf("    round %d: %d reserves (200 stock) over 2 instances in %lld ms (%.0f reserves/s); "
           "answers %llu + %llu, transactions %llu + %llu, WATCH conflicts %llu + %llu, "
           "requeued %llu\n", round, n, t1 - t0, n * 1000.0 / (double)(t1 - t0 + 1),
           m1.answers - m0.answers, s1.answers - s0.answers, m1.tx - m0.tx, s1.tx - s0.tx,
           m1.conflicts - m0.conflicts, s1.conflicts - s0.conflicts,
           m1.requeued - m0.requeued + s1.requeued - s0.requeued);
    /* Commands the second instance requeued may be answered twice. */
    TH_CHECK(m1.answers - m0.answers + s1.answers - s0.answers >= (unsigned long long)n);
    TH_CHECK(m1.answers > m0.answers);
    TH_CHECK(s1.answers > s0.answers);
    /* With max_watch_retries 0 there, each of its conflicts requeues a batch. */
    TH_CHECK_INT(s1.requeued - s0.requeued, s1.conflicts - s0.conflicts);
    *conflicts += m1.conflicts - m0.conflicts + s1.conflicts - s0.conflicts;
done:
    free(ids);
}

static void test_two_instances_hot_coupon(void)
{
    /* Small batches on both instances: many short transactions, so that both
     * are often inside WATCH..EXEC on the same keys at once (with 512-item
     * batches one transaction may take all the stock before the other
     * instance starts one). The second instance also requeues at its first
     * conflict and admits few items at a time, to take those paths too. */
    static const char *const extra[] = {
        "STOCK_STATS_INTERVAL_MS=200", "STOCK_BATCH_MAX=4", "STOCK_MAX_WATCH_RETRIES=0",
        "STOCK_MAX_PENDING=64", "STOCK_MAX_COUPON_PENDING=16", NULL,
    };
    unsigned long long conflicts = 0;

    setenv("STOCK_BATCH_MAX", "4", 1);
    TH_REQUIRE_OR_DONE(it_restart_main() == 0);
    TH_REQUIRE_OR_DONE(it_start_child(extra) == 0);
    /* Conflicts are a matter of timing: up to three rounds to see some;
     * every round must get the counts exactly right. */
    for (int round = 1; round <= 3 && conflicts == 0; round++)
        it_hot_round(coupon_base + 10 + round, round, &conflicts);
    TH_CHECK(conflicts > 0);
done:
    unsetenv("STOCK_BATCH_MAX");
    if (it_restart_main() != 0)
        TH_FAIL_AT("stock-svc did not come back with its default settings");
}

static int it_pred_some_answered(void *arg)
{
    const it_sagas *s = arg;
    int n = 0;

    for (int i = 0; i < s->n; i++) {
        const it_answer *a = it_answer_of(s->id[i]);

        n += a != NULL && a->count > 0;
    }
    return n >= s->n / 10;
}

static void test_sigterm_while_busy(void)
{
    static const char *const extra[] = {"STOCK_STATS_INTERVAL_MS=200", NULL};
    long long c = coupon_base + 8, c2 = coupon_base + 9;
    int n = 3000, half = 1500, sizes[] = {5, 1, 10, 3};
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(n);
    it_sagas first = {half, ids};
    int status;
    char *log = NULL;
    const char *stopping;
    it_tally t;
    it_stock_view v, v2;

    TH_REQUIRE_OR_DONE(ids != NULL);
    if (child_pid <= 0)
        TH_REQUIRE_OR_DONE(it_start_child(extra) == 0);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 1000, 7) == 0);
    TH_REQUIRE_OR_DONE(it_load_coupon(c2, 400, 8) == 0);
    /* Two coupons, so that both instances run jobs in parallel. */
    TH_REQUIRE_OR_DONE(it_send_reserves(c, ids, half / 2, user_base + 5000, sizes, 4) == 0);
    TH_REQUIRE_OR_DONE(it_send_reserves(c2, ids + half / 2, half / 2, user_base + 5000, sizes, 4) == 0);
    TH_REQUIRE_OR_DONE(itk_run_until(base, it_pred_some_answered, &first, IT_WAIT_MS));
    status = kill(child_pid, SIGTERM);
    TH_REQUIRE_OR_DONE(status == 0);
    /* More work arrives while it stops: what it still takes comes back. */
    TH_REQUIRE_OR_DONE(it_send_reserves(c, ids + half, half / 2, user_base + 5000 + half / 2, sizes,
                                4) == 0);
    TH_REQUIRE_OR_DONE(it_send_reserves(c2, ids + half + half / 2, half / 2, user_base + 5000 + half / 2,
                                sizes, 4) == 0);
    it_child_exited = 0;
    TH_CHECK(itk_run_until(base, it_pred_child_exit, NULL, 20000));
    TH_CHECK(it_child_exited && WIFEXITED(it_child_status) && WEXITSTATUS(it_child_status) == 0);
    log = it_slurp(child_log);
    stopping = log != NULL ? strstr(log, "stopping: ") : NULL;
    if (stopping != NULL)
        printf("    second instance at SIGTERM: %.*s\n", (int)strcspn(stopping, "\n"), stopping);
    TH_CHECK(stopping != NULL);
    TH_CHECK(log != NULL && strstr(log, "exit 0") != NULL);
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(it_wait_answered(ids, n, 60000));
    t = it_count(ids, n);
    TH_CHECK_INT(t.reserved, 1400);
    TH_CHECK_INT(t.out_of_stock, 1600);
    TH_CHECK_INT(t.none + t.other + t.duplicate, 0);
    TH_CHECK_INT(t.differ, 0);
    printf("    %d sagas answered, %d of them more than once (redelivered after the stop)\n", n,
           t.multi);
    v = it_view(c);
    v2 = it_view(c2);
    TH_CHECK_INT(v.stock, 0);
    TH_CHECK_INT(v.holders, 1000);
    TH_CHECK_INT(v.sagas, half);
    TH_CHECK_INT(v2.stock, 0);
    TH_CHECK_INT(v2.holders, 400);
    TH_CHECK_INT(v2.sagas, half);
done:
    free(log);
    free(ids);
}

/* ---- Redis failover ---------------------------------------------------------- */

static int it_master_port(void)
{
    char ip[64];
    int port = 0;
    cg_error err;

    if (rds_sync_sentinel_view(itk_env("SENTINEL_ADDRS", "127.0.0.1:17010"),
                               itk_env("SENTINEL_MASTER_NAME", "grab"), IT_REDIS_TIMEOUT_MS, ip,
                               sizeof(ip), &port, &err) != CG_OK)
        port = 0;
    return port;
}

typedef struct it_rejoin {
    int port;
    long long next_poll;
} it_rejoin;

/* The old master answers ROLE as a replica whose link to the master is up. */
static int it_pred_rejoined(void *arg)
{
    it_rejoin *j = arg;
    redisReply *r;
    int ok;

    if (itk_now_ms() < j->next_poll)
        return 0;
    j->next_poll = itk_now_ms() + 200;
    r = rds_sync_query("127.0.0.1", j->port, IT_REDIS_TIMEOUT_MS, "ROLE");
    ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 4 &&
         strcmp(r->element[0]->str, "slave") == 0 && strcmp(r->element[3]->str, "connected") == 0;
    freeReplyObject(r);
    return ok;
}

/* Occurrences of needle in the main log since the last start. */
static int it_log_count(const char *needle)
{
    char *log = it_slurp(main_log);
    const char *p;
    int n = 0;

    for (p = log != NULL ? it_since_start(log) : NULL; p != NULL && (p = strstr(p, needle)) != NULL;
         p++)
        n++;
    free(log);
    return n;
}

static void test_redis_failover(void)
{
    long long c = coupon_base + 25;
    int n = 1500, first = 500, per_msg = 5, port = it_master_port(), killed = 0;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(n);
    it_sagas head = {first, ids};
    const char *victim = NULL;
    it_rejoin j = {port, 0};
    it_tally t;
    it_stock_view v;
    long long t_kill = 0, t_done;

    TH_REQUIRE_OR_DONE(ids != NULL && port > 0);
    victim = port == atoi(itk_env("REDIS_A_PORT", "0")) ? "redis-a"
             : port == atoi(itk_env("REDIS_B_PORT", "0")) ? "redis-b" : NULL;
    TH_REQUIRE_OR_DONE(victim != NULL);
    /* Answers wait for the replica, so that a reservation answered before
     * the kill survives the failover. */
    setenv("STOCK_WAIT_REPLICAS", "1", 1);
    setenv("STOCK_WAIT_TIMEOUT_MS", "300", 1);
    TH_REQUIRE_OR_DONE(it_restart_main() == 0);
    TH_REQUIRE_OR_DONE(it_load_coupon(c, 500, 7) == 0);
    TH_REQUIRE_OR_DONE(it_send_reserves(c, ids, first, user_base + 200000, &per_msg, 1) == 0);
    TH_REQUIRE_OR_DONE(itk_run_until(base, it_pred_some_answered, &head, IT_WAIT_MS));
    printf("    killing the master %s (port %d) mid-burst\n", victim, port);
    t_kill = itk_now_ms();
    TH_REQUIRE_OR_DONE(itk_script("stack", "kill %s", victim) == 0);
    killed = 1;
    redisFree(rctx);   /* the test's own connection moves to the new master too */
    rctx = NULL;
    TH_REQUIRE_OR_DONE(it_send_reserves(c, ids + first, n - first, user_base + 200000 + first, &per_msg,
                                1) == 0);
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(it_wait_answered(ids, n, 60000));
    t_done = itk_now_ms();
    t = it_count(ids, n);
    printf("    all %d answered %lld ms after the kill; new master port %d\n", n, t_done - t_kill,
           it_master_port());
    TH_CHECK_INT(t.reserved, 500);
    TH_CHECK_INT(t.out_of_stock, 1000);
    TH_CHECK_INT(t.none + t.other + t.duplicate, 0);
    TH_CHECK_INT(t.differ, 0);
    v = it_view(c);
    TH_CHECK_INT(v.stock, 0);
    TH_CHECK_INT(v.holders, 500);
    TH_CHECK_INT(v.total, v.stock + v.holders);
    TH_CHECK_INT(v.sagas, n);
    /* Problems are logged once per change of state, not per item. */
    printf("    log: %d \"retried with backoff\", %d \"work again\", %d WAIT short, %d WAIT "
           "recovered\n", it_log_count("retried with backoff"), it_log_count("work again"),
           it_log_count("answering anyway"), it_log_count("WAIT sees the replicas again"));
    TH_CHECK(it_log_count("retried with backoff") <= it_log_count("work again") + 1);
    TH_CHECK(it_log_count("answering anyway") <= it_log_count("WAIT sees the replicas again") + 1);
done:
    if (killed) {
        /* Bring it back: it rejoins as a replica of the new master. */
        TH_CHECK_INT(itk_script("stack", "start-one %s", victim), 0);
        TH_CHECK(itk_run_until(base, it_pred_rejoined, &j, 30000));
    }
    unsetenv("STOCK_WAIT_REPLICAS");
    unsetenv("STOCK_WAIT_TIMEOUT_MS");
    if (it_restart_main() != 0)
        TH_FAIL_AT("stock-svc did not come back with its default settings");
    free(ids);
}

/* Not a check of behaviour but of scale: one instance with the default
 * settings, 10 coupons, 20,000 reserves in commands of 100 items. */
static void test_throughput(void)
{
    int n = 20000, n_coupons = 10, per_msg = 100;
    long long stock = 1200;
    char (*ids)[MSG_SAGA_ID_LEN + 1] = it_ids(n);
    static msg_item items[MSG_MAX_BATCH];
    long long t0, t1;
    it_tally t;
    long long left = 0, holders = 0;

    TH_REQUIRE_OR_DONE(ids != NULL);
    for (int k = 0; k < n_coupons; k++)
        TH_REQUIRE_OR_DONE(it_load_coupon(coupon_base + 30 + k, stock, 9) == 0);
    t0 = itk_now_ms();
    for (int i = 0; i < n; i += per_msg) {
        for (int m = 0; m < per_msg; m++)
            items[m] = it_item(ids[i + m], coupon_base + 30 + (i + m) % n_coupons,
                               user_base + 50000 + i + m);
        TH_REQUIRE_OR_DONE(it_send(MSG_STOCK_RESERVE, items, (size_t)per_msg, NULL, NULL) == CG_OK);
    }
    TH_REQUIRE_OR_DONE(it_confirm_all());
    TH_CHECK(it_wait_answered(ids, n, 60000));
    t1 = itk_now_ms();
    t = it_count(ids, n);
    for (int k = 0; k < n_coupons; k++) {
        it_stock_view v = it_view(coupon_base + 30 + k);

        left += v.stock;
        holders += v.holders;
        TH_CHECK_INT(v.total, v.stock + v.holders);
    }
    printf("    %d reserves on %d coupons in %lld ms: %.0f reserves/s (publish, confirm, "
           "reserve, reply)\n", n, n_coupons, t1 - t0, n * 1000.0 / (double)(t1 - t0 + 1));
    TH_CHECK_INT(t.reserved, n_coupons * stock);
    TH_CHECK_INT(t.out_of_stock, n - n_coupons * stock);
    TH_CHECK_INT(left, 0);
    TH_CHECK_INT(holders, n_coupons * stock);
done:
    free(ids);
}

/* ---- setup ----------------------------------------------------------------------- */

static int it_pred_mq_up(void *arg)
{
    (void)arg;
    return mq_client_is_up(mq);
}

static int it_setup(void)
{
    static mq_exchange_decl ex[4];
    static mq_queue_decl qs[8];
    static mq_binding_decl bs[8];
    mq_topology base_topo, topo;
    mq_config cfg;
    cg_error err = {0, ""};

    if (itk_amqp_load(&amqp, "grab", "grab") != 0)
        return -1;
    snprintf(main_log, sizeof(main_log), "%s/logs/stock-svc.log", itk_env("STACK_DIR", "run"));
    snprintf(child_log, sizeof(child_log), "%s/logs/stock-svc-it2.log",
             itk_env("STACK_DIR", "run"));
    coupon_base = 9000000000LL + (long long)(getpid() % 100000) * 100;
    user_base = 800000000LL + (long long)(getpid() % 100000) * 100000;
    answers = calloc(IT_ANSWER_SLOTS, sizeof(*answers));
    base = event_base_new();
    if (answers == NULL || base == NULL)
        return -1;

    /* The service's topology plus our own exclusive reply queue. */
    msg_topology(&base_topo, NULL);
    memcpy(ex, base_topo.exchanges, base_topo.n_exchanges * sizeof(ex[0]));
    memcpy(qs, base_topo.queues, base_topo.n_queues * sizeof(qs[0]));
    memcpy(bs, base_topo.bindings, base_topo.n_bindings * sizeof(bs[0]));
    snprintf(reply_q, sizeof(reply_q), "it_stock.%d.reply", (int)getpid());
    snprintf(tiny_q, sizeof(tiny_q), "it_stock.%d.tiny", (int)getpid());
    qs[base_topo.n_queues] = (mq_queue_decl){reply_q, NULL, NULL, 0, 1};
    qs[base_topo.n_queues + 1] = (mq_queue_decl){tiny_q, NULL, NULL, 1, 1};
    topo = base_topo;
    topo.exchanges = ex;
    topo.queues = qs;
    topo.n_queues = base_topo.n_queues + 2;
    topo.bindings = bs;
    mq_config_defaults(&cfg);
    cfg.host = amqp.host;
    cfg.port = amqp.port;
    cfg.user = amqp.user;
    cfg.password = amqp.password;
    cfg.vhost = amqp.vhost;
    cfg.name = "it_stock";
    cfg.prefetch = 1000;
    mq = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    if (mq == NULL || mq_consume(mq, reply_q, it_on_reply, NULL) != CG_OK ||
        mq_consume(mq, MSG_QUEUE_DEAD, it_on_dead, NULL) != CG_OK) {
        fprintf(stderr, "it_stock: broker client: %s\n", err.msg);
        return -1;
    }
    if (!itk_run_until(base, it_pred_mq_up, NULL, 15000)) {
        fprintf(stderr, "it_stock: the broker did not come up\n");
        return -1;
    }
    if (it_redis_connect() != 0) {
        fprintf(stderr, "it_stock: no Redis master through the sentinels\n");
        return -1;
    }
    /* Our own stock-svc, started with this environment (stats every 200 ms). */
    setenv("STOCK_STATS_INTERVAL_MS", "200", 1);
    svc_was_running = it_svc_running();
    if (svc_was_running && itk_script("services", "stop stock-svc") != 0)
        return -1;
    if (it_start_main() != 0) {
        fprintf(stderr, "it_stock: stock-svc did not become ready (log %s)\n", main_log);
        return -1;
    }
    itk_run_for(base, 300);   /* drain dead letters left by earlier runs */
    n_dead = 0;
    return 0;
}

static void it_teardown(void)
{
    int st = it_stop_child(15000);

    if (st != 0)
        fprintf(stderr, "it_stock: second instance ended with %d\n", st);
    for (long long c = coupon_base + 1; c <= coupon_base + 40; c++)
        it_drop_coupon(c);
    if (itk_script("services", "stop stock-svc") != 0)
        fprintf(stderr, "it_stock: cannot stop stock-svc\n");
    unsetenv("STOCK_STATS_INTERVAL_MS");
    if (svc_was_running && itk_script("services", "start stock-svc") != 0)
        fprintf(stderr, "it_stock: cannot bring stock-svc back\n");
    mq_client_free(mq);
    redisFree(rctx);
    if (base != NULL)
        event_base_free(base);
    free(answers);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"150 users reserve 100 stock in batches", test_reserve_150_for_100},
        {"same user twice: in a batch and across batches", test_same_user_twice},
        {"same saga again: same message, other message, recorded rejection",
         test_same_saga_again},
        {"release once; release before reserve bars it", test_release},
        {"unknown coupon", test_unknown_coupon},
        {"bad messages are dead-lettered with the reason", test_bad_messages},
        {"broken stock value: retried, then dead-lettered", test_broken_stock_value},
        {"refused replies are published again", test_reply_refused},
        {"two instances on one hot coupon: 500 reserves for 200", test_two_instances_hot_coupon},
        {"SIGTERM while busy: exit 0, nothing lost", test_sigterm_while_busy},
        {"Redis master killed mid-burst (WAIT 1): nothing lost or doubled", test_redis_failover},
        {"throughput: 20,000 reserves, one instance", test_throughput},
    };
    const char *lvl = getenv("IT_STOCK_LOG");
    int level = LOG_LEVEL_WARN, rc;

    signal(SIGPIPE, SIG_IGN);
    log_set_program("it_stock");
    if (lvl && log_level_parse(lvl, &level) != CG_OK)
        level = LOG_LEVEL_WARN;
    log_set_level(level);
    atexit(it_kill_child_at_exit);
    if (it_setup() != 0) {
        it_teardown();
        printf("0 passed, 1 failed\n");
        return 1;
    }
    rc = th_main("it_stock", tests, TH_TABLE_LEN(tests), argc, argv);
    if (rc != 0) {
        fprintf(stderr, "---- %s (tail)\n", main_log);
        (void)!system("tail -n 40 \"$STACK_DIR/logs/stock-svc.log\" >&2");
        fprintf(stderr, "---- %s (tail)\n", child_log);
        (void)!system("tail -n 40 \"$STACK_DIR/logs/stock-svc-it2.log\" >&2");
    }
    it_teardown();
    return rc;
}
