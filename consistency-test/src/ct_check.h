/* ct_check.h - the invariants of docs/design.md, checked over a snapshot.
 *
 * Each check prints one counted line (ct_report) with its figures, and under
 * a failing line the first offenders. "Quiet" means no saga is running: the
 * checks that only hold then (no reservation in flight, every saga finished,
 * holders exactly the row users) run only with quiet set; the others hold at
 * any instant and run always (ct_collect reads the rows before Redis, so a
 * row seen implies its reservation was already there). The read-model
 * check (R1, order_counts = rows per shard, room and coupon) also runs
 * always: each shard's counts are read in one transaction with its rows. */
#ifndef CT_CHECK_H
#define CT_CHECK_H

#include "ct_report.h"
#include "ct_snap.h"

/* Runs every check; returns the number of failed ones. */
int ct_check_run(const ct_snapshot *s, int quiet, ct_report *r);

/* Per-coupon figures, also used by the scenarios' own assertions. */
typedef struct ct_coupon_counts {
    size_t rows;             /* order rows over every shard */
    size_t reserved;         /* "R" outcomes */
    size_t reserved_no_row;  /* "R" outcomes whose saga has no row: in flight or orphaned */
    size_t rejected;         /* "J:..." outcomes */
    size_t released;         /* "L" outcomes */
} ct_coupon_counts;

void ct_coupon_count(const ct_coupon *c, ct_coupon_counts *out);

#endif
