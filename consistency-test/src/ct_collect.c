/* ct_collect.c - fills a snapshot from Redis and the shards; see ct_collect.h. */
#include "ct_collect.h"

#include <stdlib.h>
#include <string.h>

#include "ct_redis.h"

static int ct_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reads the saga log of every saga the coupon's outcomes, rows or the extra
 * list mention, and records it in c->sagas. */
static int ct_collect_sagas(redisContext *rc, ct_coupon *c, const ct_extra_saga *extra,
                            size_t n_extra, cg_error *err)
{
    size_t cap = c->n_outcomes + c->n_rows + n_extra, n = 0, u = 0;
    const char **ids = NULL;
    char (*states)[CT_SAGA_STATE_MAX] = NULL;
    int *found = NULL;
    int status = CG_OK;

    if (cap == 0)
        return CG_OK;
    ids = malloc(cap * sizeof(*ids));
    states = calloc(cap, sizeof(*states));
    found = calloc(cap, sizeof(*found));
    if (ids == NULL || states == NULL || found == NULL) {
        status = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < c->n_outcomes; i++)
        ids[n++] = c->outcomes[i].saga_id;
    for (size_t i = 0; i < c->n_rows; i++)
        ids[n++] = c->rows[i].saga_id;
    for (size_t i = 0; i < n_extra; i++) {
        if (extra[i].coupon_id == c->coupon_id && extra[i].saga_id[0] != '\0')
            ids[n++] = extra[i].saga_id;
    }
    qsort(ids, n, sizeof(*ids), ct_cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (u == 0 || strcmp(ids[u - 1], ids[i]) != 0)
            ids[u++] = ids[i];
    }
    status = ct_redis_saga_states(rc, ids, u, states, found, err);
    if (status != CG_OK)
        goto done;
    /* ids point into c's arrays, which adding sagas does not move. */
    for (size_t i = 0; i < u && status == CG_OK; i++)
        status = ct_coupon_add_saga(c, ids[i], states[i], found[i]);
    if (status != CG_OK)
        cg_error_set(err, status, "out of memory");
    ct_coupon_sort(c);
done:
    free(found);
    free(states);
    free(ids);
    return status;
}

int ct_collect(const ct_conf *conf, redisContext *rc, ct_shards *sh, const long long *coupons,
               size_t n, const ct_extra_saga *extra, size_t n_extra, ct_snapshot *out,
               cg_error *err)
{
    long long *all = NULL;
    int status;

    ct_snapshot_init(out);
    status = ct_conf_map(conf, sh->n, &out->map, err);
    if (status != CG_OK)
        goto done;
    if (n == 0) {
        status = ct_redis_coupon_ids(rc, &all, &n, err);
        if (status != CG_OK)
            goto done;
        coupons = all;
        out->full = 1;
    }
    for (size_t i = 0; i < n && status == CG_OK; i++) {
        ct_coupon *c = ct_snapshot_add_coupon(out, coupons[i]);

        if (c == NULL) {
            status = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
            break;
        }
        status = ct_shards_read_rows(sh, c, err);
        if (status == CG_OK)
            status = ct_redis_read_coupon(rc, c, err);
        if (status == CG_OK)
            status = ct_collect_sagas(rc, c, extra, n_extra, err);
    }
    if (status == CG_OK)
        status = ct_redis_active_sagas(rc, out->full ? NULL : coupons, out->full ? 0 : n,
                                       &out->active_sagas, out->active_sample,
                                       sizeof(out->active_sample), err);
    if (status == CG_OK && out->full)
        status = ct_shards_read_strays(sh, out, CT_STRAY_ROWS_MAX, err);
done:
    free(all);
    if (status != CG_OK)
        ct_snapshot_free(out);
    return status;
}
