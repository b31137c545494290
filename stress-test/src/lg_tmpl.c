/* lg_tmpl.c - path templates and their generator; see lg_tmpl.h. */
#include "lg_tmpl.h"

#include <stdio.h>
#include <string.h>

static const char *const lg_var_names[LG_VAR_MAX] = {"user", "room", "hot_room", "coupon"};

const char *lg_var_name(int var)
{
    return var >= 0 && var < LG_VAR_MAX ? lg_var_names[var] : "?";
}

/* splitmix64: one 64-bit state, good enough spread for picking ids. */
uint64_t lg_rng_next(lg_rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void lg_rng_seed(lg_rng *r, uint64_t seed, const char *stream)
{
    uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a of the stream name */

    for (const char *p = stream; p != NULL && *p != '\0'; p++) {
        h ^= (unsigned char)*p;
        h *= 0x100000001b3ULL;
    }
    r->state = seed ^ h;
    (void)lg_rng_next(r);
}

long long lg_rng_uniform(lg_rng *r, long long lo, long long hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;

    if (hi <= lo)
        return lo;
    /* multiply-shift (Lemire): no modulo bias worth naming at these sizes */
    return lo + (long long)(((unsigned __int128)lg_rng_next(r) * span) >> 64);
}

static int lg_tmpl_add(lg_tmpl *t, int var, size_t off, size_t len, cg_error *err)
{
    if (t->n_parts >= LG_TMPL_PARTS)
        return cg_error_set(err, CG_ERR_INVALID, "template '%s': more than %d parts", t->text,
                            LG_TMPL_PARTS);
    t->parts[t->n_parts].var = var;
    t->parts[t->n_parts].off = off;
    t->parts[t->n_parts].len = len;
    t->n_parts++;
    return CG_OK;
}

/* The placeholder named by text[0..len), or -1. */
static int lg_var_find(const char *name, size_t len)
{
    for (int v = 0; v < LG_VAR_MAX; v++) {
        if (strlen(lg_var_names[v]) == len && memcmp(lg_var_names[v], name, len) == 0)
            return v;
    }
    return -1;
}

int lg_tmpl_compile(lg_tmpl *t, const char *text, cg_error *err)
{
    size_t n = text != NULL ? strlen(text) : 0, lit = 0, i = 0;
    int rc = CG_OK;

    memset(t, 0, sizeof(*t));
    if (n == 0 || text[0] != '/')
        return cg_error_set(err, CG_ERR_INVALID, "template '%s': must start with '/'",
                            text != NULL ? text : "");
    if (n >= LG_TMPL_MAX)
        return cg_error_set(err, CG_ERR_INVALID, "template of %zu characters: at most %d", n,
                            LG_TMPL_MAX - 1);
    memcpy(t->text, text, n + 1);
    while (i < n && rc == CG_OK) {
        unsigned char c = (unsigned char)text[i];
        const char *close;
        int var;

        if (c <= 0x20 || c >= 0x7f)
            return cg_error_set(err, CG_ERR_INVALID, "template '%s': character %zu is not "
                                "printable ASCII (spaces must be written %%20)", text, i + 1);
        if (c != '{') {
            i++;
            continue;
        }
        close = strchr(text + i, '}');
        var = close != NULL ? lg_var_find(text + i + 1, (size_t)(close - text) - i - 1) : -1;
        if (var < 0)
            return cg_error_set(err, CG_ERR_INVALID, "template '%s': unknown placeholder at "
                                "character %zu (known: {user} {room} {hot_room} {coupon})",
                                text, i + 1);
        if (i > lit)
            rc = lg_tmpl_add(t, -1, lit, i - lit, err);
        if (rc == CG_OK)
            rc = lg_tmpl_add(t, var, 0, 0, err);
        i = (size_t)(close - text) + 1;
        lit = i;
    }
    if (rc == CG_OK && n > lit)
        rc = lg_tmpl_add(t, -1, lit, n - lit, err);
    return rc;
}

int lg_tmpl_expand(const lg_tmpl *t, const lg_ranges *ranges, lg_rng *rng, char *out, size_t len)
{
    size_t used = 0;

    if (len == 0)
        return -1;
    for (int i = 0; i < t->n_parts; i++) {
        const lg_tmpl_part *p = &t->parts[i];

        if (p->var < 0) {
            if (used + p->len >= len)
                return -1;
            memcpy(out + used, t->text + p->off, p->len);
            used += p->len;
        } else {
            long long hi = ranges->max[p->var] < 1 ? 1 : ranges->max[p->var];
            int w = snprintf(out + used, len - used, "%lld", lg_rng_uniform(rng, 1, hi));

            if (w < 0 || (size_t)w >= len - used)
                return -1;
            used += (size_t)w;
        }
    }
    out[used] = '\0';
    return (int)used;
}
