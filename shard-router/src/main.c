/* main.c - shard-router operator CLI.
 *
 *   shard-router route --strategy S --shards N [--map SPEC] USER_ID ROOM_ID [GRAB_TIME]
 *
 * prints the shard an order goes to, the way order-svc computes it. Status,
 * row counts and placement checks come with the read path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sr_map.h"

static void usage(void)
{
    fprintf(stderr, "usage: shard-router route --strategy hash|range-room|range-day --shards N "
                    "[--map SPEC] USER_ID ROOM_ID [GRAB_TIME]\n");
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

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "route") == 0)
        return cmd_route(argc - 2, argv + 2);
    usage();
    return 2;
}
