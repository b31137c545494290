/* lg_tmpl.h - request path templates and the seeded generator that fills them.
 *
 * A template is a path with placeholders: {user} (uniform in 1..users),
 * {room} (1..rooms), {hot_room} (1..hot_rooms) and {coupon} (1..coupons),
 * e.g. "/api/room/{room}/orders?limit=20". It is compiled once into literal
 * and placeholder parts, then expanded per request from a splitmix64 stream
 * seeded by (seed, stream name): the same seed and endpoint name give the
 * same sequence of paths, whatever other endpoints run. */
#ifndef LG_TMPL_H
#define LG_TMPL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define LG_TMPL_MAX 1024      /* longest template, including its NUL */
#define LG_TMPL_PARTS 32      /* literal and placeholder parts per template */
#define LG_PATH_MAX 2048      /* longest expanded path, including its NUL */

/* The placeholders. */
enum lg_var {
    LG_VAR_USER = 0,      /* {user} */
    LG_VAR_ROOM = 1,      /* {room} */
    LG_VAR_HOT_ROOM = 2,  /* {hot_room} */
    LG_VAR_COUPON = 3,    /* {coupon} */
    LG_VAR_MAX
};

/* The upper bound of each placeholder's range; every range starts at 1. */
typedef struct lg_ranges {
    long long max[LG_VAR_MAX];
} lg_ranges;

typedef struct lg_tmpl_part {
    int var;          /* enum lg_var, or -1 for literal text */
    size_t off, len;  /* the literal's place in text */
} lg_tmpl_part;

typedef struct lg_tmpl {
    char text[LG_TMPL_MAX];
    lg_tmpl_part parts[LG_TMPL_PARTS];
    int n_parts;
} lg_tmpl;

typedef struct lg_rng {
    uint64_t state;
} lg_rng;

/* Seeds a stream from the run's seed and a name (the endpoint's). */
void lg_rng_seed(lg_rng *r, uint64_t seed, const char *stream);
uint64_t lg_rng_next(lg_rng *r);
/* Uniform in [lo, hi] (hi >= lo). */
long long lg_rng_uniform(lg_rng *r, long long lo, long long hi);

/* Compiles text: it must start with '/', hold only printable ASCII without
 * spaces, and every '{' must open a known placeholder. */
int lg_tmpl_compile(lg_tmpl *t, const char *text, cg_error *err) CG_MUSTCHECK;

/* Writes one path into out (size len); its length, or -1 when it does not
 * fit. A range of 0 or less expands to 1. */
int lg_tmpl_expand(const lg_tmpl *t, const lg_ranges *ranges, lg_rng *rng, char *out, size_t len);

/* "user", "room", ... */
const char *lg_var_name(int var);

#endif
