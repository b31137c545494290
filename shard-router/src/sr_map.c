/* sr_map.c - shard routing by strategy; see sr_map.h. */
#include "sr_map.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sr_strategy_names[SR_STRATEGY_MAX] = {"hash", "range-room", "range-day"};

uint64_t sr_hash(int64_t user_id)
{
    uint64_t z = (uint64_t)user_id + UINT64_C(0x9e3779b97f4a7c15);

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint32_t sr_bucket_of_user(int64_t user_id)
{
    return (uint32_t)(sr_hash(user_id) % SR_BUCKETS);
}

int sr_strategy_parse(const char *name, enum sr_strategy *out)
{
    for (int i = 0; i < SR_STRATEGY_MAX; i++) {
        if (strcmp(name, sr_strategy_names[i]) == 0) {
            *out = (enum sr_strategy)i;
            return CG_OK;
        }
    }
    return CG_ERR_INVALID;
}

const char *sr_strategy_name(enum sr_strategy s)
{
    return (s >= 0 && s < SR_STRATEGY_MAX) ? sr_strategy_names[s] : "?";
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so that no time zone enters the mapping. */
static int64_t sr_days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int sr_parse_int(const char *s, const char *end, int64_t *out)
{
    char buf[32];
    char *stop = NULL;
    size_t len = (size_t)(end - s);

    if (len == 0 || len >= sizeof(buf))
        return CG_ERR_INVALID;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    *out = strtoll(buf, &stop, 10);
    return (errno == 0 && *stop == '\0') ? CG_OK : CG_ERR_INVALID;
}

static int sr_parse_day(const char *s, const char *end, int64_t *out)
{
    int y, m, d, n = 0;
    char buf[16];
    size_t len = (size_t)(end - s);

    if (len != 10)
        return CG_ERR_INVALID;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (sscanf(buf, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || m < 1 || m > 12 ||
        d < 1 || d > 31)
        return CG_ERR_INVALID;
    *out = sr_days_from_civil(y, m, d);
    return CG_OK;
}

/* Splits "A:S" items of a comma list; calls item() for each. */
typedef int (*sr_item_fn)(sr_map *map, const char *key, const char *key_end, int shard,
                          cg_error *err);

static int sr_parse_list(sr_map *map, const char *spec, sr_item_fn item, cg_error *err)
{
    const char *p = spec;
    int rc = CG_OK;

    while (rc == CG_OK && *p != '\0') {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *colon = memchr(p, ':', (size_t)(end - p));
        int64_t shard;

        if (colon == NULL || sr_parse_int(colon + 1, end, &shard) != CG_OK)
            return cg_error_set(err, CG_ERR_INVALID, "shard map item '%.*s': expected KEY:SHARD",
                                (int)(end - p), p);
        if (shard < 0 || shard >= map->n_shards)
            return cg_error_set(err, CG_ERR_INVALID, "shard map item '%.*s': shard %lld is not in "
                                "0..%d", (int)(end - p), p, (long long)shard, map->n_shards - 1);
        rc = item(map, p, colon, (int)shard, err);
        p = comma ? comma + 1 : end;
    }
    return rc;
}

static int sr_bucket_item(sr_map *map, const char *key, const char *key_end, int shard,
                          cg_error *err)
{
    const char *dash = memchr(key, '-', (size_t)(key_end - key));
    int64_t first, last;

    if (dash == NULL || sr_parse_int(key, dash, &first) != CG_OK ||
        sr_parse_int(dash + 1, key_end, &last) != CG_OK || first < 0 || last < first ||
        last >= SR_BUCKETS)
        return cg_error_set(err, CG_ERR_INVALID, "bucket range '%.*s': expected FIRST-LAST within "
                            "0..%d", (int)(key_end - key), key, SR_BUCKETS - 1);
    for (int64_t b = first; b <= last; b++) {
        if (map->bucket_shard[b] != UINT8_MAX)
            return cg_error_set(err, CG_ERR_INVALID, "bucket %lld is mapped twice", (long long)b);
        map->bucket_shard[b] = (uint8_t)shard;
    }
    return CG_OK;
}

static int sr_range_item(sr_map *map, const char *key, const char *key_end, int shard,
                         cg_error *err)
{
    int64_t from;
    int rc = map->strategy == SR_RANGE_DAY ? sr_parse_day(key, key_end, &from)
                                           : sr_parse_int(key, key_end, &from);

    if (rc != CG_OK)
        return cg_error_set(err, CG_ERR_INVALID, "range start '%.*s': expected %s",
                            (int)(key_end - key), key,
                            map->strategy == SR_RANGE_DAY ? "YYYY-MM-DD" : "a room id");
    if (map->n_ranges == SR_MAX_RANGES)
        return cg_error_set(err, CG_ERR_INVALID, "more than %d ranges", SR_MAX_RANGES);
    if (map->n_ranges > 0 && from <= map->ranges[map->n_ranges - 1].from)
        return cg_error_set(err, CG_ERR_INVALID, "range start '%.*s' does not rise",
                            (int)(key_end - key), key);
    if (map->n_ranges == 0 && map->strategy == SR_RANGE_ROOM && from != 1)
        return cg_error_set(err, CG_ERR_INVALID, "the first room range must start at 1");
    map->ranges[map->n_ranges].from = from;
    map->ranges[map->n_ranges].shard = shard;
    map->n_ranges++;
    return CG_OK;
}

/* Every shard must get some data, or a typo silently empties a server. */
static int sr_check_coverage(const sr_map *map, cg_error *err)
{
    unsigned char used[SR_MAX_SHARDS] = {0};

    if (map->strategy == SR_HASH) {
        for (int b = 0; b < SR_BUCKETS; b++) {
            if (map->bucket_shard[b] == UINT8_MAX)
                return cg_error_set(err, CG_ERR_INVALID, "bucket %d is not mapped", b);
            used[map->bucket_shard[b]] = 1;
        }
    } else {
        for (int i = 0; i < map->n_ranges; i++)
            used[map->ranges[i].shard] = 1;
    }
    for (int s = 0; s < map->n_shards; s++) {
        if (!used[s])
            return cg_error_set(err, CG_ERR_INVALID, "shard %d receives no data", s);
    }
    return CG_OK;
}

int sr_map_build(sr_map *map, enum sr_strategy strategy, int n_shards, const char *spec,
                 cg_error *err)
{
    int rc;

    memset(map, 0, sizeof(*map));
    map->strategy = strategy;
    map->n_shards = n_shards;
    if (strategy < 0 || strategy >= SR_STRATEGY_MAX)
        return cg_error_set(err, CG_ERR_INVALID, "unknown shard strategy");
    if (n_shards < 1 || n_shards > SR_MAX_SHARDS)
        return cg_error_set(err, CG_ERR_INVALID, "shard count %d is not in 1..%d", n_shards,
                            SR_MAX_SHARDS);
    if (spec == NULL || *spec == '\0') {
        if (strategy != SR_HASH)
            return cg_error_set(err, CG_ERR_INVALID, "strategy %s needs explicit ranges",
                                sr_strategy_name(strategy));
        for (int b = 0; b < SR_BUCKETS; b++)
            map->bucket_shard[b] = (uint8_t)((int64_t)b * n_shards / SR_BUCKETS);
        return sr_check_coverage(map, err);
    }
    if (strategy == SR_HASH) {
        memset(map->bucket_shard, UINT8_MAX, sizeof(map->bucket_shard));
        rc = sr_parse_list(map, spec, sr_bucket_item, err);
    } else {
        rc = sr_parse_list(map, spec, sr_range_item, err);
    }
    return rc == CG_OK ? sr_check_coverage(map, err) : rc;
}

/* The last range whose start is <= value; values before the first range
 * belong to it. Binary search: range tables can be long for day ranges. */
static int sr_range_shard(const sr_map *map, int64_t value)
{
    int lo = 0, hi = map->n_ranges - 1;

    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;

        if (map->ranges[mid].from <= value)
            lo = mid;
        else
            hi = mid - 1;
    }
    return map->ranges[lo].shard;
}

static int64_t sr_day_of(int64_t epoch_seconds)
{
    return epoch_seconds >= 0 ? epoch_seconds / 86400 : -((-epoch_seconds + 86399) / 86400);
}

int sr_shard_of(const sr_map *map, int64_t user_id, int64_t room_id, int64_t grab_time)
{
    switch (map->strategy) {
    case SR_HASH:
        return map->bucket_shard[sr_bucket_of_user(user_id)];
    case SR_RANGE_ROOM:
        return sr_range_shard(map, room_id);
    case SR_RANGE_DAY:
        return sr_range_shard(map, sr_day_of(grab_time));
    default:
        abort(); /* sr_map_build() admits no other strategy */
    }
}

int sr_shard_of_user(const sr_map *map, int64_t user_id)
{
    return map->strategy == SR_HASH ? map->bucket_shard[sr_bucket_of_user(user_id)] : -1;
}

int sr_shard_of_room(const sr_map *map, int64_t room_id)
{
    return map->strategy == SR_RANGE_ROOM ? sr_range_shard(map, room_id) : -1;
}

uint64_t sr_all_shards(const sr_map *map)
{
    return map->n_shards >= 64 ? UINT64_MAX : (UINT64_C(1) << map->n_shards) - 1;
}

uint64_t sr_shards_of_window(const sr_map *map, int64_t from, int64_t to)
{
    uint64_t mask = 0;
    int64_t first, last;

    if (map->strategy != SR_RANGE_DAY)
        return sr_all_shards(map);
    if (to < from)
        return 0;
    first = sr_day_of(from);
    last = sr_day_of(to);
    /* Range r holds the days from its `from` up to the next range's `from`
     * - 1; days before the first range belong to the first range too. */
    for (int r = 0; r < map->n_ranges; r++) {
        int64_t lo = r == 0 ? INT64_MIN : map->ranges[r].from;
        int64_t hi = r + 1 < map->n_ranges ? map->ranges[r + 1].from - 1 : INT64_MAX;

        if (lo <= last && hi >= first)
            mask |= UINT64_C(1) << map->ranges[r].shard;
    }
    return mask;
}
