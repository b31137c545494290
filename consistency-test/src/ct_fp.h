/* ct_fp.h - a fingerprint of everything one coupon's sagas touched.
 *
 * Text, one fact per line, in a fixed order: the coupon's Redis keys (sets
 * and hashes sorted), the saga log of the given sagas, every shard's
 * coupon_results rows of the coupon (all columns), its order_counts rows
 * and the barrier rows of the given sagas. Two fingerprints taken around an action are equal when
 * the action changed nothing (invariant I6). */
#ifndef CT_FP_H
#define CT_FP_H

#include <stddef.h>

#include "ct_run.h"
#include "status.h"

/* A new NUL-terminated text in *out (free()). */
int ct_fingerprint(ct_env *env, long long coupon_id, const char *const *sagas, size_t n, char **out,
                   cg_error *err) CG_MUSTCHECK;

/* Prints up to max lines where a and b differ, as detail lines; returns the
 * number of differing lines. */
size_t ct_fingerprint_diff(ct_report *r, const char *a, const char *b, size_t max);

#endif
