/* main.c - shard-router operator CLI.
 *
 *   shard-router route --strategy S --shards N [--map SPEC] USER_ID ROOM_ID [GRAB_TIME]
 *   shard-router status | counts [--by coupon|room] | verify   [settings]
 *
 * `route` prints the shard an order goes to, the way order-svc computes it.
 * The others read the shards (cli_status.h, cli_verify.h) with the settings
 * of cli_conf.h: SR_* environment variables, overridden by flags. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_conf.h"
#include "cli_status.h"
#include "cli_verify.h"
#include "sr_map.h"

static void usage_to(FILE *out)
{
    fprintf(out,
        "usage: shard-router route --strategy hash|range-room|range-day --shards N [--map SPEC]\n"
        "                          USER_ID ROOM_ID [GRAB_TIME]\n"
        "       shard-router status [settings]\n"
        "       shard-router counts [--by coupon|room] [settings]\n"
        "       shard-router verify [--batch N] [--max-list N] [settings]\n"
        "       shard-router COMMAND --help      (every setting, its env variable and default)\n"
        "\n"
        "  route   the shard of one order under a strategy and map\n"
        "  status  per shard: index, address/db, up/down, latency of SELECT 1 in ms (1 ms\n"
        "          resolution; the first query pays the connect), rows in coupon_results;\n"
        "          then the total and the balance score\n"
        "  counts  rows per shard; --by coupon|room also lists rows per id and shard\n"
        "  verify  checks that every row (user_id, room_id, grab_time) is on the shard the\n"
        "          configured strategy/map names; prints the first --max-list misplaced\n"
        "          rows and the total; reads --batch rows per shard and round trip\n"
        "\n"
        "  balance score = max / mean of the row counts of the shards that answered:\n"
        "          1.000 is perfectly even, 2.000 means the fullest shard holds twice its share\n"
        "\n"
        "  Settings come from SR_* variables (SR_SHARDS, SR_DB_USER, SR_DB_PASSWORD_FILE,\n"
        "  SR_SHARD_STRATEGY, SR_SHARD_MAP, SR_TIMEOUT_MS, ...) and --name value flags.\n"
        "  Shards are asked in parallel; one that does not answer within --timeout-ms is\n"
        "  reported down.\n"
        "\n"
        "  exit: 0 ok; 1 verify found misplaced rows; 2 usage or configuration error;\n"
        "        3 a shard is unreachable (named on stderr)\n");
}

static void usage(void)
{
    usage_to(stderr);
}

static int parse_i64(const char *s, long long *out)
{
    char *end = NULL;

    *out = strtoll(s, &end, 10);
    return (end != s && *end == '\0') ? 0 : -1;
}

static int cmd_route(int argc, char **argv)
{
    const char *strategy_name = "hash", *spec = NULL;
    long long shards = 4, ids[3] = {0, 0, 0};
    int n_ids = 0;
    enum sr_strategy strategy;
    sr_map *map = NULL;
    cg_error err = {0};
    int rc = 2;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--strategy") == 0 && i + 1 < argc)
            strategy_name = argv[++i];
        else if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc && parse_i64(argv[i + 1], &shards) == 0)
            i++;
        else if (strcmp(argv[i], "--map") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (n_ids < 3 && parse_i64(argv[i], &ids[n_ids]) == 0)
            n_ids++;
        else
            goto usage;
    }
    if (n_ids < 2 || sr_strategy_parse(strategy_name, &strategy) != CG_OK)
        goto usage;
    map = malloc(sizeof(*map));
    if (map == NULL)
        goto done;
    if (sr_map_build(map, strategy, (int)shards, spec, &err) != CG_OK) {
        fprintf(stderr, "shard-router: %s\n", err.msg);
        goto done;
    }
    printf("%d\n", sr_shard_of(map, ids[0], ids[1], ids[2]));
    rc = 0;
    goto done;
usage:
    usage();
done:
    free(map);
    return rc;
}

static int wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

/* Runs a command that reads the shards; argv[0] is the command's name. */
static int cmd_shards(int (*run)(cli_ctx *), int argc, char **argv)
{
    cli_ctx ctx;
    cg_error err = {0, ""};
    int rc;

    if (wants_help(argc, argv))
        usage_to(stdout);
    rc = cli_open(&ctx, argc, argv, &err);
    if (rc == CG_ERR_EXIT)
        rc = CLI_EXIT_OK;
    else if (rc != CG_OK) {
        fprintf(stderr, "shard-router %s: %s\n", argv[0], err.msg);
        rc = CLI_EXIT_USAGE;
    } else
        rc = run(&ctx);
    cli_close(&ctx);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = argc >= 2 ? argv[1] : "";

    if (strcmp(cmd, "route") == 0)
        return cmd_route(argc - 2, argv + 2);
    if (strcmp(cmd, "status") == 0)
        return cmd_shards(cli_status, argc - 1, argv + 1);
    if (strcmp(cmd, "counts") == 0)
        return cmd_shards(cli_counts, argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0)
        return cmd_shards(cli_verify, argc - 1, argv + 1);
    if (wants_help(argc - 1, argv + 1)) {
        usage_to(stdout);
        return CLI_EXIT_OK;
    }
    usage();
    return CLI_EXIT_USAGE;
}
