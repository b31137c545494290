/* ct_scen.h - the scenarios of issue 3, each against its own fresh coupons.
 *
 *   classic            100 stock, 1,000 concurrent grabs by random users of 1,000
 *   same-user          one user, 100 concurrent grabs of one coupon
 *   order-fails        the shard server of the orders killed: every saga compensated
 *   orchestrator-kill  SIGKILL of the orchestrator in the middle of a burst, restart
 *   duplicate          stock.reserve and order.create published twice by hand
 *
 * Each creates its coupons (POST /admin/coupons), drives the load, waits
 * (bounded) until the system is quiet, resolves the answers that left the
 * outcome open, then runs every invariant check and its own assertions;
 * every assertion is one counted PASS/FAIL line. */
#ifndef CT_SCEN_H
#define CT_SCEN_H

#include <stdio.h>

#include "ct_conf.h"

void ct_scen_list(FILE *out);

/* Runs one scenario by name, or all of them (name NULL); prints the counts
 * and returns the exit status (0: every assertion passed). */
int ct_run_scenarios(const ct_conf *conf, const char *name);

#endif
