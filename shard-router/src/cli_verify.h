/* cli_verify.h - the placement check of the operator CLI: every row of
 * coupon_results must sit on the shard sr_shard_of() names for its user,
 * room and grab time under the configured strategy and map. */
#ifndef CLI_VERIFY_H
#define CLI_VERIFY_H

#include "cli_conf.h"

/* Streams every shard's rows newest result_id first, `batch` rows per round
 * trip (memory stays bounded by one batch), prints the first max_list
 * misplaced rows and a total. Returns CLI_EXIT_OK when all rows are in
 * place, CLI_EXIT_MISPLACED when some are not, CLI_EXIT_DOWN when a shard
 * does not answer (named on stderr; nothing is concluded then). */
int cli_verify(cli_ctx *ctx);

#endif
