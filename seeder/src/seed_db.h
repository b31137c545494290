/* seed_db.h - writes the seed data set into the main database.
 *
 * Rows go in with multi-row INSERTs of up to batch_rows rows, each ending in
 * "ON DUPLICATE KEY UPDATE <key> = <key>": a row whose id exists is kept as
 * it is (a no-op update, so strict-mode errors stay errors, unlike INSERT
 * IGNORE), which makes a re-run insert nothing twice and never change a row
 * a live sale depends on. Blocking calls (db.h): a tool, not a service. */
#ifndef SEED_DB_H
#define SEED_DB_H

#include <mysql.h>

#include "seed_data.h"
#include "status.h"

/* What to write. */
typedef struct seed_plan {
    long long seed;
    long long users;       /* user ids 1..users */
    long long rooms;       /* room ids 1..rooms */
    long long hot_rooms;   /* rooms 1..hot_rooms are hot */
    long long coupons;     /* coupon ids 1..coupons */
    int batch_rows;        /* rows per INSERT statement */
} seed_plan;

/* The outcome of loading one table. */
typedef struct seed_table_stats {
    long long rows;        /* rows sent */
    long long inserted;    /* of which new */
    long long kept;        /* of which existed already and were left alone */
    long long statements;
} seed_table_stats;

int seed_db_users(MYSQL *db, const seed_plan *p, seed_table_stats *st, cg_error *err) CG_MUSTCHECK;
int seed_db_rooms(MYSQL *db, const seed_plan *p, seed_table_stats *st, cg_error *err) CG_MUSTCHECK;
int seed_db_coupons(MYSQL *db, const seed_plan *p, seed_table_stats *st, cg_error *err) CG_MUSTCHECK;
int seed_db_coupon_details(MYSQL *db, const seed_plan *p, seed_table_stats *st,
                           cg_error *err) CG_MUSTCHECK;

/* Reads coupons 1..p->coupons back as the database holds them (a row kept
 * from an earlier run wins over what this run would have written), into a
 * new array *out of p->coupons entries (the caller frees it). Only
 * coupon_id, room_id and total_stock are filled. CG_ERR_NOTFOUND when a
 * coupon is missing. */
int seed_db_read_coupons(MYSQL *db, const seed_plan *p, seed_coupon **out,
                         cg_error *err) CG_MUSTCHECK;

/* One stock_logs row to write. */
typedef struct seed_stock_log {
    long long coupon_id;
    long long change_amount;
    long long stock_after;
    const char *note;      /* a literal without quotes */
} seed_stock_log;

/* Appends the rows with change_type 'load', batch_rows per statement. */
int seed_db_stock_logs(MYSQL *db, const seed_plan *p, const seed_stock_log *logs, long long n,
                       cg_error *err) CG_MUSTCHECK;

#endif
