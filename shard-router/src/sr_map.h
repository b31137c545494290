/* sr_map.h - which shard an order lives on.
 *
 * Two strategies, chosen by configuration:
 *  - hash: by user_id through a fixed table of SR_BUCKETS virtual buckets;
 *    bucket = sr_hash(user_id) % SR_BUCKETS and the configured map sends
 *    buckets to shards. Adding a shard moves whole buckets, never re-hashes.
 *  - range-room: by room_id against configured, gap-free room ranges.
 *  - range-day: by the UTC day of grab_time against configured start days.
 * The same order always lands on the same shard, whoever computes it, so the
 * hash function and bucket count are part of the data format: never change
 * them without moving the data. */
#ifndef SR_MAP_H
#define SR_MAP_H

#include <stdint.h>

#include "status.h"

#define SR_BUCKETS 1024     /* virtual buckets of the hash strategy; fixed forever */
#define SR_MAX_SHARDS 64    /* upper bound on configured shards */
#define SR_MAX_RANGES 256   /* upper bound on configured ranges */

enum sr_strategy {
    SR_HASH = 0,         /* user_id -> bucket -> shard */
    SR_RANGE_ROOM = 1,   /* room_id ranges -> shard */
    SR_RANGE_DAY = 2,    /* grab_time day ranges -> shard */
    SR_STRATEGY_MAX
};

/* One range: values from `from` up to the next range's `from` - 1 (the last
 * range is open-ended) go to `shard`. For SR_RANGE_DAY, `from` counts days
 * since 1970-01-01 UTC. */
typedef struct sr_range {
    int64_t from;
    int shard;
} sr_range;

typedef struct sr_map {
    enum sr_strategy strategy;
    int n_shards;
    uint8_t bucket_shard[SR_BUCKETS];   /* SR_HASH */
    sr_range ranges[SR_MAX_RANGES];     /* SR_RANGE_*, sorted by from */
    int n_ranges;
} sr_map;

/* The fixed 64-bit mix of a user id (splitmix64's finalizer). */
uint64_t sr_hash(int64_t user_id);
uint32_t sr_bucket_of_user(int64_t user_id);

/* Parses a strategy name: "hash", "range-room", "range-day". */
int sr_strategy_parse(const char *name, enum sr_strategy *out) CG_MUSTCHECK;
const char *sr_strategy_name(enum sr_strategy s);

/* Builds a map for n_shards shards. spec may be NULL or "" for the default
 * layout (hash: contiguous equal bucket blocks; range-room: not allowed, the
 * boundaries must be given), else:
 *   hash:       "FIRST-LAST:SHARD,..." bucket ranges covering 0..SR_BUCKETS-1 once
 *   range-room: "FROM:SHARD,..."  rising room ids; the first FROM must be 1
 *   range-day:  "YYYY-MM-DD:SHARD,..." rising days; earlier days go to the first range
 * Every shard must receive something. */
int sr_map_build(sr_map *map, enum sr_strategy strategy, int n_shards, const char *spec,
                 cg_error *err) CG_MUSTCHECK;

/* The shard of an order. grab_time is seconds since the epoch (UTC). */
int sr_shard_of(const sr_map *map, int64_t user_id, int64_t room_id, int64_t grab_time);

/* The shard holding every order of a user under SR_HASH, or -1 when the
 * strategy spreads a user's orders (range strategies). */
int sr_shard_of_user(const sr_map *map, int64_t user_id);

/* The shard holding every order of a room under SR_RANGE_ROOM, else -1. */
int sr_shard_of_room(const sr_map *map, int64_t room_id);

/* Bit i set for every shard i of the map. */
uint64_t sr_all_shards(const sr_map *map);

/* The shards that can hold orders with grab_time in [from, to] (seconds
 * since the epoch, UTC): under SR_RANGE_DAY those whose day ranges meet the
 * window, else every shard. 0 when to < from. */
uint64_t sr_shards_of_window(const sr_map *map, int64_t from, int64_t to);

#endif
