/* lg_read.h - `stress-test read`: closed-loop GET load, one endpoint at a time.
 *
 * For each endpoint in turn: --warmup requests (not counted), then the
 * measured phase, bounded by --requests and/or --duration; every connection
 * of the pool sends its next request as soon as its previous one ended, so
 * at most --concurrency requests are in flight and each endpoint's latency
 * is its own. Requests still in flight when the phase's bound is reached
 * finish (within the timeout) and count. SIGINT/SIGTERM end the phase under
 * way early and skip the rest; a second signal stops at once. */
#ifndef LG_READ_H
#define LG_READ_H

#include "lg_args.h"
#include "lg_stats.h"
#include "status.h"

#define LG_READ_TICK_MS 10                 /* the periodic timer: timeouts, the phase deadline */
#define LG_READ_MAX_BODY (16 * 1024 * 1024) /* largest answer accepted */

/* Runs every endpoint of o; stats has o->n_endpoints entries (large: calloc
 * them). *interrupted is set when a signal cut the run short. CG_OK when
 * the run went through, whatever the answers were. */
int lg_read_run(const lg_read_opts *o, lg_ep_stats *stats, int *interrupted,
                cg_error *err) CG_MUSTCHECK;

#endif
