/* main.c - seeder: loads the design's data set into the main database and
 * every coupon's stock into Redis.
 *
 *   seeder [--users N] [--coupons N] [--reset-stock] [--check-config] ...
 *
 * Order of work: users, live_rooms, coupons, coupon_details (multi-row
 * INSERTs, existing rows kept), then the coupons as the database holds them
 * are loaded into Redis through Sentinel (SET NX: live stock is never
 * reset unless --reset-stock), then one stock_logs row per coupon whose
 * stock this run set; with --history N, then N past grabs into the shards
 * (seed_history.h; no Redis). One progress line per table on stderr. Exit 0 when
 * everything is in place, 1 on any failure (a re-run is always safe), 2 on
 * a configuration error. Settings: SEED_* (svc_conf.h), see --help. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "seed_data.h"
#include "seed_db.h"
#include "seed_history.h"
#include "seed_stock.h"
#include "svc_conf.h"

#define SEED_EXIT_OK 0
#define SEED_EXIT_FAILED 1
#define SEED_EXIT_CONFIG 2
#define SEED_ARGV_MAX 256
#define SEED_ADDR_BUF 512

typedef struct seed_config {
    long long users;
    long long coupons;
    long long rooms;
    long long hot_rooms;
    long long seed;
    long long batch_rows;
    int reset_stock;
    long long wait_replicas_ms;
    long long history;
    long long history_days;
    svc_conf svc;
} seed_config;

static const cfg_param seed_params[] = {
    {"users", CFG_INT, offsetof(seed_config, users), "100000", 0, 100000000,
     "users to seed, ids 1..N (70% normal, 25% VIP, 5% SVIP)"},
    {"coupons", CFG_INT, offsetof(seed_config, coupons), "500", 0, 10000000,
     "coupons to seed, ids 1..N, coupon c in room (c-1)/5+1"},
    {"rooms", CFG_INT, offsetof(seed_config, rooms), "100", 0, 10000000,
     "live rooms to seed, ids 1..N (at least the coupons' rooms)"},
    {"hot_rooms", CFG_INT, offsetof(seed_config, hot_rooms), "5", 0, 10000000,
     "rooms 1..N are hot: their coupons get 5,000-20,000 stock, others 500-5,000"},
    {"seed", CFG_INT, offsetof(seed_config, seed), "20261122", 0, 0x7fffffffffffffffLL,
     "the data set is a function of this seed and each row's id"},
    {"batch_rows", CFG_INT, offsetof(seed_config, batch_rows), "2000", 1, 10000,
     "rows per multi-row INSERT"},
    {"reset_stock", CFG_BOOL, offsetof(seed_config, reset_stock), "false", 0, 0,
     "for a fresh sale: overwrite each seeded coupon's Redis stock with its total and clear "
     "its holders and sagas (Redis keys only: orders in the shards are NOT removed)"},
    {"wait_replicas_ms", CFG_INT, offsetof(seed_config, wait_replicas_ms), "2000", 0, 60000,
     "after loading, wait this long for the Redis replicas to acknowledge (0: do not wait)"},
    {"history", CFG_INT, offsetof(seed_config, history), "0", 0, 1000000000LL,
     "past grabs to insert into coupon_results on the shards (0: none); no Redis"},
    {"history_days", CFG_INT, offsetof(seed_config, history_days), "30", 1, 3650,
     "the history's grab_time spans this many days before today (UTC)"},
    SVC_CONF_PARAMS(seed_config, svc),
};

static int seed_validate(const void *conf, cg_error *err)
{
    const seed_config *c = conf;
    long long need = c->coupons > 0 ? seed_coupon_room(c->coupons) : 0;

    if (c->rooms < need)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'rooms': %lld rooms cannot hold %lld "
                            "coupons (5 per room): at least %lld", c->rooms, c->coupons, need);
    if (c->hot_rooms > c->rooms)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'hot_rooms': %lld is more than the "
                            "%lld rooms", c->hot_rooms, c->rooms);
    return seed_redis_check_sentinels(c->svc.sentinels, err);
}

static const cfg_spec seed_spec = {"seeder", "SEED_", seed_params,
                                   sizeof(seed_params) / sizeof(seed_params[0]), seed_validate};

static const char seed_help_notes[] =
    "\n"
    "Loads users, live_rooms, coupons and coupon_details into the main database (main_db),\n"
    "then every seeded coupon's stock into Redis (sentinels, sentinel_master), and writes a\n"
    "stock_logs row for each coupon whose stock it set. A re-run duplicates nothing: rows\n"
    "whose id exists are kept as they are, and Redis stock that exists is kept (SET NX), so\n"
    "a sale under way is never reset.\n"
    "\n"
    "--reset-stock is for a fresh sale: stock:{C}, stock:{C}:total and stock:{C}:room are\n"
    "overwritten from the database and stock:{C}:holders and stock:{C}:sagas are deleted.\n"
    "It changes Redis keys only: granted orders in the shards (coupon_results) are NOT\n"
    "removed, so remove those yourself if the invariants are to hold afterwards.\n"
    "\n"
    "--history N inserts N past grabs into coupon_results on the shards (shards,\n"
    "shard_strategy, shard_map), each on the shard the strategy names, one thread per\n"
    "shard: users 1..users, coupons 1..coupons (half of the rows on the hot rooms'\n"
    "coupons), each (user, coupon) at most once, grab_time within the history_days days\n"
    "before today's UTC midnight. Same N and seed, same rows; a re-run adds nothing.\n"
    "saga_id is \"" SEED_HISTORY_PREFIX "\" + 24 hex digits, so the history can be removed\n"
    "with DELETE FROM coupon_results WHERE saga_id LIKE '" SEED_HISTORY_PREFIX "%'. It does\n"
    "NOT touch Redis: history is not stock.\n"
    "\n"
    "Boolean flags may be given bare (--reset-stock). Exit status: 0 done, 1 failed (safe to\n"
    "re-run), 2 bad configuration.\n";

static double seed_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A bare boolean flag (--reset-stock at the end, or before another flag) gets
 * "=true", since cfg.c takes the next argument as every flag's value. */
static int seed_expand_bool_flags(int argc, char **argv, char **out, char *store, size_t len)
{
    size_t used = 0;

    if (argc > SEED_ARGV_MAX)
        return -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int bare = 0;

        out[i] = argv[i];
        if (i == 0 || strncmp(a, "--", 2) != 0 || strchr(a, '=') != NULL)
            continue;
        for (size_t k = 0; k < seed_spec.n_params; k++) {
            const char *name = seed_spec.params[k].name;
            size_t j;

            if (seed_spec.params[k].type != CFG_BOOL)
                continue;
            for (j = 0; name[j] != '\0' && (a[2 + j] == name[j] ||
                                            (a[2 + j] == '-' && name[j] == '_')); j++)
                ;
            bare |= name[j] == '\0' && a[2 + j] == '\0';
        }
        if (bare && (i + 1 == argc || strncmp(argv[i + 1], "--", 2) == 0)) {
            int n = snprintf(store + used, len - used, "%s=true", a);

            if (n < 0 || (size_t)n >= len - used)
                return -1;
            out[i] = store + used;
            used += (size_t)n + 1;
        }
    }
    out[argc] = NULL;
    return 0;
}

static int seed_has_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

/* One progress line for a table. */
static void seed_report_table(const char *name, const seed_table_stats *st, double t0)
{
    log_info("-", "%-14s %8lld rows in %lld statements: %lld new, %lld kept (%.2fs)", name,
             st->rows, st->statements, st->inserted, st->kept, seed_now_s() - t0);
}

/* The database part: the four tables. */
static int seed_run_db(MYSQL *db, const seed_plan *plan, cg_error *err)
{
    seed_table_stats st;
    double t0;
    int rc;

    t0 = seed_now_s();
    if ((rc = seed_db_users(db, plan, &st, err)) != CG_OK)
        return rc;
    seed_report_table("users", &st, t0);
    t0 = seed_now_s();
    if ((rc = seed_db_rooms(db, plan, &st, err)) != CG_OK)
        return rc;
    seed_report_table("live_rooms", &st, t0);
    t0 = seed_now_s();
    if ((rc = seed_db_coupons(db, plan, &st, err)) != CG_OK)
        return rc;
    seed_report_table("coupons", &st, t0);
    t0 = seed_now_s();
    if ((rc = seed_db_coupon_details(db, plan, &st, err)) != CG_OK)
        return rc;
    seed_report_table("coupon_details", &st, t0);
    return CG_OK;
}

#define SEED_NOTE_MAX 64

/* The stock_logs row for a coupon whose stock this run set; note (of
 * SEED_NOTE_MAX bytes) holds its text. */
static void seed_log_row(const seed_coupon *c, const seed_stock_outcome *o, seed_stock_log *row,
                         char *note)
{
    row->coupon_id = c->coupon_id;
    row->stock_after = c->total_stock;
    row->change_amount = c->total_stock;
    if (o->action == SEED_STOCK_RESET && o->previous >= 0) {
        row->change_amount = c->total_stock - o->previous;
        snprintf(note, SEED_NOTE_MAX, "seeder --reset-stock, was %lld", o->previous);
    } else {
        snprintf(note, SEED_NOTE_MAX, "%s",
                 o->action == SEED_STOCK_RESET ? "seeder --reset-stock" : "seeder");
    }
    row->note = note;
}

/* The stock part: Redis, then stock_logs for what this run set. */
static int seed_run_stock(const seed_config *conf, MYSQL *db, const seed_plan *plan,
                          cg_error *err)
{
    seed_redis r;
    seed_coupon *cs = NULL;
    seed_stock_outcome *out = NULL;
    seed_stock_log *logs = NULL;
    long long n_logs = 0, counts[SEED_STOCK_ACTION_MAX] = {0}, mismatched = 0, acked;
    char (*notes)[SEED_NOTE_MAX] = NULL;
    double t0 = seed_now_s();
    int rc;

    memset(&r, 0, sizeof(r));
    if ((rc = seed_db_read_coupons(db, plan, &cs, err)) != CG_OK)
        goto done;
    out = calloc((size_t)plan->coupons + 1, sizeof(*out));
    logs = calloc((size_t)plan->coupons + 1, sizeof(*logs));
    notes = calloc((size_t)plan->coupons + 1, sizeof(*notes));
    if (out == NULL || logs == NULL || notes == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "stock: out of memory");
        goto done;
    }
    rc = seed_redis_connect(conf->svc.sentinels, conf->svc.sentinel_master,
                            (int)conf->svc.redis_timeout_ms, &r, err);
    if (rc != CG_OK)
        goto done;
    rc = seed_stock_load(&r, cs, plan->coupons, conf->reset_stock, out, err);
    if (rc != CG_OK)
        goto done;
    for (long long i = 0; i < plan->coupons; i++) {
        counts[out[i].action]++;
        mismatched += out[i].mismatch;
        if (out[i].action != SEED_STOCK_KEPT) {
            seed_log_row(&cs[i], &out[i], &logs[n_logs], notes[n_logs]);
            n_logs++;
        }
    }
    log_info("-", "%-14s %8lld coupons into Redis %s: %lld loaded, %lld reset, %lld kept "
             "(%.2fs)", "stock", plan->coupons, r.addr, counts[SEED_STOCK_LOADED],
             counts[SEED_STOCK_RESET], counts[SEED_STOCK_KEPT], seed_now_s() - t0);
    if (mismatched > 0)
        log_warn("-", "stock: %lld coupons keep a Redis total or room that differs from the "
                 "database (a sale under way keeps its stock; --reset-stock overwrites)", mismatched);
    if (conf->wait_replicas_ms > 0 && r.replicas > 0 && n_logs > 0) {
        rc = seed_stock_wait_replicas(&r, (int)conf->wait_replicas_ms, &acked, err);
        if (rc != CG_OK)
            goto done;
        if (acked < r.replicas)
            log_warn("-", "stock: %lld of %d replicas acknowledged within %lld ms; a failover "
                     "now could lose stock: re-run the seeder after one", acked, r.replicas,
                     conf->wait_replicas_ms);
    }
    t0 = seed_now_s();
    rc = seed_db_stock_logs(db, plan, logs, n_logs, err);
    if (rc != CG_OK) {
        log_error("-", "stock_logs: the stock is in Redis, but its log rows were not written");
        goto done;
    }
    log_info("-", "%-14s %8lld rows (%.2fs)", "stock_logs", n_logs, seed_now_s() - t0);

done:
    seed_redis_close(&r);
    free(notes);
    free(logs);
    free(out);
    free(cs);
    return rc;
}

/* The history part: past grabs into the shards. */
static int seed_run_history(const seed_config *conf, cg_error *err)
{
    seed_history_plan hp;
    seed_history_gen *gen = NULL;
    seed_history_stats *st = NULL;
    sr_map *map = NULL;
    enum sr_strategy strategy;
    int rc;

    gen = calloc(1, sizeof(*gen));
    st = calloc(1, sizeof(*st));
    map = calloc(1, sizeof(*map));
    if (gen == NULL || st == NULL || map == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "history: out of memory");
        goto done;
    }
    hp.seed = conf->seed;
    hp.rows = conf->history;
    hp.users = conf->users;
    hp.coupons = conf->coupons;
    hp.hot_rooms = conf->hot_rooms;
    hp.days = conf->history_days;
    hp.end_time = seed_history_day_start((int64_t)time(NULL));
    hp.batch_rows = (int)conf->batch_rows;
    if ((rc = sr_strategy_parse(conf->svc.shard_strategy, &strategy)) != CG_OK) {
        rc = cg_error_set(err, rc, "setting 'shard_strategy': '%s' is not hash, range-room or "
                          "range-day", conf->svc.shard_strategy);
        goto done;
    }
    if ((rc = sr_map_build(map, strategy, svc_conf_shard_count(&conf->svc), conf->svc.shard_map,
                           err)) != CG_OK ||
        (rc = seed_history_init(gen, &hp, err)) != CG_OK)
        goto done;
    log_info("-", "history: %lld rows over %lld days onto %d shards (%s), saga ids %s...",
             hp.rows, hp.days, map->n_shards, sr_strategy_name(strategy), SEED_HISTORY_PREFIX);
    if ((rc = seed_history_load(gen, &conf->svc, map, st, err)) != CG_OK)
        goto done;
    for (int i = 0; i < map->n_shards; i++)
        log_info("-", "history: shard %d: %lld rows, %lld new", i, st->rows[i], st->inserted[i]);
    log_info("-", "%-14s %8lld rows: %lld new, %lld kept (%.2fs, %.0f rows/s)", "history",
             st->total_rows, st->total_inserted, st->total_rows - st->total_inserted,
             st->seconds, st->seconds > 0 ? (double)st->total_rows / st->seconds : 0.0);

done:
    free(map);
    free(st);
    free(gen);
    return rc;
}

int main(int argc, char **argv)
{
    seed_config conf;
    seed_plan plan;
    db_config dbc;
    MYSQL *db = NULL;
    char *args[SEED_ARGV_MAX + 1], store[4096], addr[SEED_ADDR_BUF];
    cg_error err = {0, ""};
    double t0 = seed_now_s();
    int rc, status = SEED_EXIT_FAILED;

    memset(&conf, 0, sizeof(conf));
    log_set_program("seeder");
    if (seed_expand_bool_flags(argc, argv, args, store, sizeof(store)) != 0) {
        fprintf(stderr, "seeder: too many or too long arguments\n");
        return SEED_EXIT_CONFIG;
    }
    rc = cfg_load(&seed_spec, &conf, argc, args, &err);
    if (rc == CG_ERR_EXIT) {
        if (seed_has_help(argc, argv))
            fputs(seed_help_notes, stdout);
        status = SEED_EXIT_OK;
        goto done;
    }
    if (rc != CG_OK || svc_conf_apply_log_level(&conf.svc, &err) != CG_OK ||
        svc_conf_main_db(&conf.svc, &dbc, addr, sizeof(addr), &err) != CG_OK) {
        fprintf(stderr, "seeder: %s\n", err.msg);
        status = SEED_EXIT_CONFIG;
        goto done;
    }
    plan.seed = conf.seed;
    plan.users = conf.users;
    plan.rooms = conf.rooms;
    plan.hot_rooms = conf.hot_rooms;
    plan.coupons = conf.coupons;
    plan.batch_rows = (int)conf.batch_rows;
    log_info("-", "seeding %s:%d/%s: %lld users, %lld rooms (%lld hot), %lld coupons, seed %lld%s",
             dbc.host, dbc.port, dbc.database, plan.users, plan.rooms, plan.hot_rooms,
             plan.coupons, plan.seed, conf.reset_stock ? ", resetting stock" : "");
    if ((rc = db_connect(&dbc, &db, &err)) != CG_OK || (rc = seed_run_db(db, &plan, &err)) != CG_OK)
        goto failed;
    if (plan.coupons > 0 && (rc = seed_run_stock(&conf, db, &plan, &err)) != CG_OK)
        goto failed;
    if (conf.history > 0 && (rc = seed_run_history(&conf, &err)) != CG_OK)
        goto failed;
    log_info("-", "done in %.2fs", seed_now_s() - t0);
    status = SEED_EXIT_OK;
    goto done;

failed:
    /* 1146: no such table */
    log_error("-", "failed: %s%s", err.msg,
              strstr(err.msg, "(1146)") != NULL ? " (apply the schema first: scripts/stack migrate)"
                                                : "");
    log_error("-", "running the seeder again is safe once the cause is fixed");
done:
    db_close(db);
    cfg_free(&seed_spec, &conf);
    return status;
}
