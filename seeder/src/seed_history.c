/* seed_history.c - the history of past grabs; see seed_history.h.
 *
 * Every shard's thread walks all n row indexes and keeps the rows placed on
 * its shard: recomputing a row costs far less than the INSERT, and no thread
 * has to hand rows to another. */
#include "seed_history.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "seed_data.h"

#define SEED_HISTORY_DAY_S 86400LL
#define SEED_HISTORY_PROGRESS_MS 1000
#define SEED_HISTORY_POLL_MS 20
/* A batch into tables of millions of rows can take seconds on a busy shard:
 * the statement timeouts are at least this, whatever db_timeout_ms says. */
#define SEED_HISTORY_STMT_TIMEOUT_MS 60000
#define SEED_HISTORY_ROW_MAX 160      /* one value tuple, generously */
#define SEED_HISTORY_ADDR_BUF 512

/* Streams of seed_hash, apart from seed_data.c's. */
enum seed_history_stream {
    SEED_HISTORY_STREAM_MUL = 20,
    SEED_HISTORY_STREAM_ADD = 22,
    SEED_HISTORY_STREAM_TIME = 24,
    SEED_HISTORY_STREAM_SAGA = 25
};

/* splitmix64's finaliser: a bijection of 64-bit values. */
static uint64_t seed_history_mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t seed_history_gcd(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

/* A multiplier coprime to m, so that k -> k*mul mod m is a permutation. */
static uint64_t seed_history_coprime(uint64_t h, uint64_t m)
{
    uint64_t a = m > 1 ? h % m : 1;

    if (a == 0)
        a = 1;
    while (seed_history_gcd(a, m) != 1)
        a = a + 1 < m ? a + 1 : 1;
    return a;
}

int64_t seed_history_day_start(int64_t t)
{
    int64_t d = t / SEED_HISTORY_DAY_S;

    if (t < 0 && t % SEED_HISTORY_DAY_S != 0)
        d--;
    return d * SEED_HISTORY_DAY_S;
}

int seed_history_init(seed_history_gen *g, const seed_history_plan *p, cg_error *err)
{
    long long hot = p->hot_rooms * SEED_COUPONS_PER_ROOM, cap_hot, cap_cold;

    memset(g, 0, sizeof(*g));
    g->plan = *p;
    if (p->rows < 0 || p->users < 0 || p->coupons < 0 || p->days < 1 || p->batch_rows < 1)
        return cg_error_set(err, CG_ERR_INVALID, "history: bad plan");
    g->hot_coupons = hot < p->coupons ? hot : p->coupons;
    /* users and coupons are capped by the config (1e8 x 1e7) so these fit */
    cap_hot = p->users * g->hot_coupons;
    cap_cold = p->users * (p->coupons - g->hot_coupons);
    if (p->rows > cap_hot + cap_cold)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'history': %lld rows do not fit the "
                            "%lld distinct (user, coupon) pairs of %lld users and %lld coupons",
                            p->rows, cap_hot + cap_cold, p->users, p->coupons);
    g->n_hot = p->rows * SEED_HISTORY_HOT_PERCENT / 100;
    if (g->n_hot > cap_hot)
        g->n_hot = cap_hot;
    if (p->rows - g->n_hot > cap_cold)
        g->n_hot = p->rows - cap_cold;
    g->size[0] = (uint64_t)cap_hot;
    g->size[1] = (uint64_t)cap_cold;
    for (int k = 0; k < 2; k++) {
        uint64_t m = g->size[k] > 0 ? g->size[k] : 1;

        g->mul[k] = seed_history_coprime(seed_hash(p->seed, SEED_HISTORY_STREAM_MUL + (unsigned)k,
                                                   0), m);
        g->add[k] = seed_hash(p->seed, SEED_HISTORY_STREAM_ADD + (unsigned)k, 0) % m;
    }
    g->saga_key = seed_hash(p->seed, SEED_HISTORY_STREAM_SAGA, 0);
    snprintf(g->saga_tag, sizeof(g->saga_tag), "%08x", (unsigned)(g->saga_key >> 32));
    return CG_OK;
}

void seed_history_make(const seed_history_gen *g, long long i, seed_history_row *out)
{
    int grp = i < g->n_hot ? 0 : 1;
    uint64_t k = (uint64_t)(grp == 0 ? i : i - g->n_hot);
    uint64_t pair = (uint64_t)(((unsigned __int128)k * g->mul[grp] + g->add[grp]) % g->size[grp]);
    uint64_t users = (uint64_t)g->plan.users;
    uint64_t span = (uint64_t)(g->plan.days * SEED_HISTORY_DAY_S * 1000);
    uint64_t h = seed_hash(g->plan.seed, SEED_HISTORY_STREAM_TIME, i);

    out->user_id = (long long)(pair % users) + 1;
    out->coupon_id = (long long)(pair / users) + 1 + (grp == 0 ? 0 : g->hot_coupons);
    out->room_id = seed_coupon_room(out->coupon_id);
    out->grab_ms = g->plan.end_time * 1000 - 1 - (int64_t)(h % span);
    snprintf(out->saga_id, sizeof(out->saga_id), "%s%s%016llx", SEED_HISTORY_PREFIX, g->saga_tag,
             (unsigned long long)seed_history_mix((uint64_t)i ^ g->saga_key));
}

/* ---- loading: one thread per shard ------------------------------------------- */

typedef struct seed_history_job {
    const seed_history_gen *gen;
    const sr_map *map;
    db_config dbc;
    char addr[SEED_HISTORY_ADDR_BUF];
    int shard;
    atomic_llong sent;
    atomic_int finished;
    long long inserted;
    int rc;
    cg_error err;
} seed_history_job;

static int seed_history_tuple(char *buf, size_t len, const seed_history_row *r)
{
    time_t secs = (time_t)(r->grab_ms / 1000);
    struct tm tm;
    char when[32];

    gmtime_r(&secs, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    return snprintf(buf, len, "('%s',%lld,%lld,%lld,1,'%s.%03d')", r->saga_id, r->user_id,
                    r->coupon_id, r->room_id, when, (int)(r->grab_ms % 1000));
}

static const char seed_history_head[] =
    "INSERT INTO coupon_results (saga_id, user_id, coupon_id, room_id, grab_status, grab_time) "
    "VALUES ";
static const char seed_history_tail[] = " ON DUPLICATE KEY UPDATE saga_id = saga_id";

static void *seed_history_thread(void *arg)
{
    seed_history_job *j = arg;
    const seed_history_gen *g = j->gen;
    size_t cap = sizeof(seed_history_head) + sizeof(seed_history_tail) +
                 (size_t)g->plan.batch_rows * SEED_HISTORY_ROW_MAX;
    char *sql = malloc(cap);
    size_t len = 0;
    int in_batch = 0;
    MYSQL *db = NULL;
    uint64_t affected;
    seed_history_row r;

    if (sql == NULL) {
        j->rc = cg_error_set(&j->err, CG_ERR_NOMEM, "history: out of memory");
        goto done;
    }
    if ((j->rc = db_connect(&j->dbc, &db, &j->err)) != CG_OK)
        goto done;
    for (long long i = 0; i <= g->plan.rows; i++) {
        if (i < g->plan.rows) {
            seed_history_make(g, i, &r);
            if (sr_shard_of(j->map, r.user_id, r.room_id, r.grab_ms / 1000) != j->shard)
                continue;
            if (in_batch == 0) {
                memcpy(sql, seed_history_head, sizeof(seed_history_head) - 1);
                len = sizeof(seed_history_head) - 1;
            } else {
                sql[len++] = ',';
            }
            len += (size_t)seed_history_tuple(sql + len, SEED_HISTORY_ROW_MAX, &r);
            in_batch++;
        }
        if (in_batch > 0 && (in_batch == g->plan.batch_rows || i == g->plan.rows)) {
            memcpy(sql + len, seed_history_tail, sizeof(seed_history_tail));
            if ((j->rc = db_exec(db, sql, &affected, &j->err)) != CG_OK)
                goto done;
            /* a no-op "saga_id = saga_id" counts 0: affected rows are new ones */
            j->inserted += (long long)affected;
            atomic_fetch_add(&j->sent, in_batch);
            in_batch = 0;
        }
    }
    j->rc = CG_OK;

done:
    db_close(db);
    free(sql);
    atomic_store(&j->finished, 1);
    return NULL;
}

static double seed_history_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long seed_history_sent(seed_history_job *jobs, int n)
{
    long long s = 0;

    for (int i = 0; i < n; i++)
        s += atomic_load(&jobs[i].sent);
    return s;
}

int seed_history_load(const seed_history_gen *g, const svc_conf *svc, const sr_map *map,
                      seed_history_stats *st, cg_error *err)
{
    int n = svc_conf_shard_count(svc), started = 0, rc = CG_OK;
    seed_history_job *jobs = NULL;
    pthread_t tids[SR_MAX_SHARDS];
    struct timespec tick = {0, SEED_HISTORY_POLL_MS * 1000000L};
    double t0 = seed_history_now(), last = t0;

    memset(st, 0, sizeof(*st));
    if (n != map->n_shards || n < 1 || n > SR_MAX_SHARDS)
        return cg_error_set(err, CG_ERR_INVALID, "history: %d shards configured, the map has %d",
                            n, map->n_shards);
    jobs = calloc((size_t)n, sizeof(*jobs));
    if (jobs == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "history: out of memory");
    for (int i = 0; i < n; i++) {
        jobs[i].gen = g;
        jobs[i].map = map;
        jobs[i].shard = i;
        atomic_init(&jobs[i].sent, 0);
        atomic_init(&jobs[i].finished, 0);
        rc = svc_conf_shard_db(svc, i, &jobs[i].dbc, jobs[i].addr, sizeof(jobs[i].addr), err);
        if (rc != CG_OK)
            goto done;
        if (jobs[i].dbc.read_timeout_ms < SEED_HISTORY_STMT_TIMEOUT_MS)
            jobs[i].dbc.read_timeout_ms = SEED_HISTORY_STMT_TIMEOUT_MS;
        if (jobs[i].dbc.write_timeout_ms < SEED_HISTORY_STMT_TIMEOUT_MS)
            jobs[i].dbc.write_timeout_ms = SEED_HISTORY_STMT_TIMEOUT_MS;
    }
    for (started = 0; started < n; started++) {
        if (pthread_create(&tids[started], NULL, seed_history_thread, &jobs[started]) != 0) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "history: cannot start a thread");
            break;
        }
    }
    /* Polls every SEED_HISTORY_POLL_MS until every thread has finished (each
     * is bounded by its connection's timeouts), a progress line a second. */
    for (;;) {
        int running = 0;
        double now;

        for (int i = 0; i < started; i++)
            running += atomic_load(&jobs[i].finished) ? 0 : 1;
        if (running == 0)
            break;
        nanosleep(&tick, NULL);
        now = seed_history_now();
        if (now - last >= SEED_HISTORY_PROGRESS_MS / 1000.0) {
            long long sent = seed_history_sent(jobs, started);

            last = now;
            log_info("-", "history: %lld of %lld rows, %.0f rows/s", sent, g->plan.rows,
                     (double)sent / (now - t0));
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    for (int i = 0; i < started; i++) {
        st->rows[i] = atomic_load(&jobs[i].sent);
        st->inserted[i] = jobs[i].inserted;
        st->total_rows += st->rows[i];
        st->total_inserted += st->inserted[i];
        if (jobs[i].rc != CG_OK && rc == CG_OK)
            rc = cg_error_set(err, jobs[i].rc, "history: shard %d: %s", i, jobs[i].err.msg);
    }
    st->seconds = seed_history_now() - t0;

done:
    free(jobs);
    return rc;
}
