/* ct_grab.c - grab answers and invariant I4; see ct_grab.h. */
#include "ct_grab.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "msg.h"

static const char *const ct_kind_names[CT_GRAB_KIND_MAX] = {
    "granted", "rejected", "pending (202)", "transport error", "http error", "malformed",
};

const char *ct_grab_kind_name(enum ct_grab_kind k)
{
    return (k >= 0 && k < CT_GRAB_KIND_MAX) ? ct_kind_names[k] : "?";
}

static void ct_malformed(ct_grab *g, const char *fmt, ...) CG_PRINTF(2, 3);
static void ct_malformed(ct_grab *g, const char *fmt, ...)
{
    va_list ap;

    g->kind = CT_GRAB_MALFORMED;
    va_start(ap, fmt);
    vsnprintf(g->problem, sizeof(g->problem), fmt, ap);
    va_end(ap);
}

/* The integer member key of obj, or -1 (with *ok = 0) when absent or not an integer. */
static long long ct_json_int(const json_t *obj, const char *key, int *ok)
{
    const json_t *v = json_object_get(obj, key);

    *ok = json_is_integer(v);
    return *ok ? (long long)json_integer_value(v) : -1;
}

static void ct_take_saga_id(ct_grab *g, const json_t *root)
{
    const char *s = json_string_value(json_object_get(root, "saga_id"));

    if (s != NULL && msg_saga_id_valid(s))
        snprintf(g->saga_id, sizeof(g->saga_id), "%s", s);
}

static void ct_parse_200(ct_grab *g, const json_t *root)
{
    long long status, user, coupon, room;
    const char *reason;
    int ok;

    ct_take_saga_id(g, root);
    status = ct_json_int(root, "grab_status", &ok);
    if (!ok || (status != 0 && status != 1))
        return ct_malformed(g, "grab_status missing or not 0/1");
    reason = json_string_value(json_object_get(root, "fail_reason"));
    if (g->saga_id[0] == '\0') {
        /* Only the local sold-out flag answers without starting a saga, and
         * only with out_of_stock; a null id anywhere else breaks the contract. */
        if (!(status == 0 && json_is_null(json_object_get(root, "saga_id")) && reason != NULL &&
              strcmp(reason, "out_of_stock") == 0))
            return ct_malformed(g, "saga_id missing or not 32 lower-case hex digits");
        g->no_saga = 1;
    }
    user = ct_json_int(root, "user_id", &ok);
    if (!ok || user != g->user_id)
        return ct_malformed(g, "user_id %lld, asked %lld", user, g->user_id);
    coupon = ct_json_int(root, "coupon_id", &ok);
    if (!ok || coupon != g->coupon_id)
        return ct_malformed(g, "coupon_id %lld, asked %lld", coupon, g->coupon_id);
    room = ct_json_int(root, "room_id", &ok);
    if (!ok || (g->room_id > 0 && room != g->room_id))
        return ct_malformed(g, "room_id %lld, the coupon's room is %lld", room, g->room_id);
    if (status == 0) {
        if (reason == NULL || reason[0] == '\0')
            return ct_malformed(g, "grab_status 0 without a fail_reason");
        snprintf(g->fail_reason, sizeof(g->fail_reason), "%s", reason);
        g->kind = CT_GRAB_REJECTED;
    } else {
        if (reason != NULL && reason[0] != '\0')
            return ct_malformed(g, "grab_status 1 with fail_reason \"%s\"", reason);
        g->kind = CT_GRAB_GRANTED;
    }
}

static void ct_parse_202(ct_grab *g, const json_t *root)
{
    const char *status = json_string_value(json_object_get(root, "status"));

    ct_take_saga_id(g, root);
    if (g->saga_id[0] == '\0')
        return ct_malformed(g, "202 without a well-formed saga_id");
    if (status == NULL || strcmp(status, "pending") != 0)
        return ct_malformed(g, "202 with status \"%s\", not \"pending\"", status ? status : "");
    g->kind = CT_GRAB_PENDING;
}

void ct_grab_parse(ct_grab *g, int http_status, const char *body, const char *problem)
{
    json_t *root = NULL;
    json_error_t jerr;

    g->http_status = http_status;
    g->saga_id[0] = '\0';
    g->no_saga = 0;
    g->fail_reason[0] = '\0';
    g->problem[0] = '\0';
    if (http_status == 0) {
        g->kind = CT_GRAB_TRANSPORT;
        snprintf(g->problem, sizeof(g->problem), "%s", problem ? problem : "no answer");
        return;
    }
    if (http_status != 200 && http_status != 202) {
        g->kind = CT_GRAB_HTTP_ERROR;
        snprintf(g->problem, sizeof(g->problem), "HTTP %d: %.120s", http_status, body ? body : "");
        return;
    }
    root = body != NULL ? json_loads(body, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(root)) {
        ct_malformed(g, "HTTP %d with a body that is not a JSON object: %.80s", http_status,
                     body ? body : "");
    } else if (http_status == 200) {
        ct_parse_200(g, root);
    } else {
        ct_parse_202(g, root);
    }
    json_decref(root);
}

int ct_grab_parse_state(const char *body, char *state, size_t len)
{
    static const char *const keys[] = {"state", "saga_state", "status"};
    json_t *root = body != NULL ? json_loads(body, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *s = NULL;
    int status = CG_ERR_PROTOCOL;

    state[0] = '\0';
    /* "state" is the saga's state; the other spellings are accepted only
     * when it is absent, and only with an upper-case state name. */
    for (size_t i = 0; json_is_object(root) && i < sizeof(keys) / sizeof(keys[0]) && s == NULL; i++) {
        const char *v = json_string_value(json_object_get(root, keys[i]));

        if (v != NULL && (i == 0 || (v[0] >= 'A' && v[0] <= 'Z')))
            s = v;
    }
    if (s != NULL) {
        snprintf(state, len, "%s", s);
        status = CG_OK;
    }
    json_decref(root);
    return status;
}

int ct_grab_outcome(const ct_grab *g)
{
    switch (g->kind) {
    case CT_GRAB_GRANTED:
        return 1;
    case CT_GRAB_REJECTED:
        return 0;
    case CT_GRAB_PENDING:
    case CT_GRAB_TRANSPORT:
    case CT_GRAB_HTTP_ERROR:
    case CT_GRAB_MALFORMED:
        if (strcmp(g->final_state, CT_STATE_COMPLETED) == 0)
            return 1;
        if (strcmp(g->final_state, CT_STATE_COMPENSATED) == 0)
            return 0;
        return -1;
    default:
        return -1;
    }
}

static int ct_cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

void ct_grab_stats_of(const ct_grab *g, size_t n, ct_grab_stats *out)
{
    long long *lat = NULL;

    memset(out, 0, sizeof(*out));
    out->n = n;
    lat = n > 0 ? malloc(n * sizeof(*lat)) : NULL;
    for (size_t i = 0; i < n; i++) {
        int o = ct_grab_outcome(&g[i]);
        size_t k;

        out->kind[g[i].kind]++;
        if (o == 1)
            out->granted_final++;
        else if (o == 0)
            out->rejected_final++;
        else
            out->unresolved++;
        if (o == -1 && g[i].saga_id[0] == '\0')
            out->unknown_transport++;
        out->no_saga += g[i].no_saga;
        if (lat != NULL)
            lat[i] = g[i].latency_ms;
        if (g[i].kind != CT_GRAB_REJECTED)
            continue;
        for (k = 0; k < out->n_reasons; k++) {
            if (strcmp(out->reasons[k], g[i].fail_reason) == 0)
                break;
        }
        if (k == out->n_reasons && k < 8) {
            snprintf(out->reasons[k], sizeof(out->reasons[k]), "%s", g[i].fail_reason);
            out->n_reasons++;
        }
        if (k < out->n_reasons)
            out->reason_n[k]++;
        else
            out->reasons_other++;
    }
    if (lat != NULL) {
        qsort(lat, n, sizeof(*lat), ct_cmp_ll);
        out->p50_ms = lat[n / 2];
        out->p99_ms = lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
        out->max_ms = lat[n - 1];
    }
    free(lat);
}

void ct_grab_print(ct_report *r, const ct_grab_stats *st, long long elapsed_ms)
{
    char reasons[400] = "";
    size_t off = 0;

    for (size_t k = 0; k < st->n_reasons && off < sizeof(reasons); k++)
        off += (size_t)snprintf(reasons + off, sizeof(reasons) - off, "%s%s %zu", k ? ", " : "",
                                st->reasons[k], st->reason_n[k]);
    if (st->reasons_other > 0 && off < sizeof(reasons))
        snprintf(reasons + off, sizeof(reasons) - off, ", other %zu", st->reasons_other);
    ct_say(r, "   attempted %zu in %lld ms: granted %zu, rejected %zu (%s; %zu by the sold-out flag, "
           "without a saga), 202 %zu, transport errors %zu, http errors %zu, malformed %zu; latency "
           "p50 %lld ms, p99 %lld ms, max %lld ms",
           st->n, elapsed_ms, st->kind[CT_GRAB_GRANTED], st->kind[CT_GRAB_REJECTED],
           reasons[0] ? reasons : "-", st->no_saga, st->kind[CT_GRAB_PENDING], st->kind[CT_GRAB_TRANSPORT],
           st->kind[CT_GRAB_HTTP_ERROR], st->kind[CT_GRAB_MALFORMED], st->p50_ms, st->p99_ms,
           st->max_ms);
    ct_say(r, "   after resolution: granted %zu, not granted %zu, unresolved %zu (of which %zu "
           "without any saga id)", st->granted_final, st->rejected_final, st->unresolved,
           st->unknown_transport);
}

static int ct_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Offender lines are capped like the checker's. */
typedef struct ct_lines {
    size_t total;
    size_t shown;
    char line[CT_DETAIL_MAX][240];
} ct_lines;

static void ct_line(ct_lines *l, const char *fmt, ...) CG_PRINTF(2, 3);
static void ct_line(ct_lines *l, const char *fmt, ...)
{
    va_list ap;

    l->total++;
    if (l->shown >= CT_DETAIL_MAX)
        return;
    va_start(ap, fmt);
    vsnprintf(l->line[l->shown++], sizeof(l->line[0]), fmt, ap);
    va_end(ap);
}

static int ct_lines_assert(ct_report *r, const ct_lines *l, const char *what)
{
    int ok = ct_assert(r, l->total == 0, "%s", what);

    for (size_t i = 0; i < l->shown; i++)
        ct_detail(r, "%s", l->line[i]);
    if (l->total > l->shown)
        ct_detail(r, "... and %zu more", l->total - l->shown);
    return ok;
}

int ct_grab_check(ct_report *r, const ct_snapshot *snap, const ct_grab *g, size_t n)
{
    ct_lines agree = {0}, api = {0}, extra = {0};
    const char **known = NULL;
    size_t n_known = 0, checked = 0, unexplained = 0, unknown_transport = 0;
    int failed = 0;
    char what[300];

    known = n > 0 ? malloc(n * sizeof(*known)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const ct_coupon *c = ct_snapshot_find(snap, g[i].coupon_id);
        const ct_row *row = NULL;
        int o = ct_grab_outcome(&g[i]);
        size_t rows;

        if (g[i].saga_id[0] == '\0') {
            if (o == -1)
                unknown_transport += g[i].kind != CT_GRAB_GRANTED && g[i].kind != CT_GRAB_REJECTED;
            continue;
        }
        if (known != NULL)
            known[n_known++] = g[i].saga_id;
        if (c == NULL) {
            ct_line(&agree, "saga %s: coupon %lld was not read", g[i].saga_id, g[i].coupon_id);
            continue;
        }
        rows = ct_coupon_rows_of(c, g[i].saga_id, &row);
        if (o == -1) {
            ct_line(&agree, "saga %s (user %lld, %s) never resolved: GET /api/grab says %s (HTTP %d)",
                    g[i].saga_id, g[i].user_id, ct_grab_kind_name(g[i].kind),
                    g[i].final_state[0] ? g[i].final_state : "no state", g[i].read_status);
            continue;
        }
        checked++;
        if (o == 1 && (rows != 1 || row->user_id != g[i].user_id))
            ct_line(&agree, "saga %s (user %lld) answered %s as granted, but has %zu rows%s",
                    g[i].saga_id, g[i].user_id, ct_grab_kind_name(g[i].kind), rows,
                    rows == 1 ? " of another user" : "");
        if (o == 0 && rows != 0)
            ct_line(&agree, "saga %s (user %lld) answered %s as not granted (%s), but has %zu rows",
                    g[i].saga_id, g[i].user_id, ct_grab_kind_name(g[i].kind),
                    g[i].fail_reason[0] ? g[i].fail_reason : g[i].final_state, rows);
        if (g[i].kind == CT_GRAB_GRANTED || g[i].kind == CT_GRAB_REJECTED) {
            const char *want = g[i].kind == CT_GRAB_GRANTED ? CT_STATE_COMPLETED : CT_STATE_COMPENSATED;

            if (g[i].read_status != 200 || strcmp(g[i].final_state, want) != 0)
                ct_line(&api, "saga %s answered %s, GET /api/grab says %s (HTTP %d)", g[i].saga_id,
                        ct_grab_kind_name(g[i].kind), g[i].final_state[0] ? g[i].final_state : "no state",
                        g[i].read_status);
        }
    }
    if (known != NULL)
        qsort(known, n_known, sizeof(*known), ct_cmp_str);
    /* Rows of the grabs' coupons that no answer accounts for. */
    for (size_t ci = 0; ci < snap->n_coupons; ci++) {
        const ct_coupon *c = &snap->coupons[ci];
        int ours = 0;

        for (size_t i = 0; i < n && !ours; i++)
            ours = g[i].coupon_id == c->coupon_id;
        if (!ours)
            continue;
        for (size_t k = 0; k < c->n_rows; k++) {
            const char *id = c->rows[k].saga_id;

            if (known != NULL && bsearch(&id, known, n_known, sizeof(*known), ct_cmp_str) != NULL)
                continue;
            unexplained++;
            if (unexplained > unknown_transport)
                ct_line(&extra, "coupon %lld: row of saga %s (user %lld) answers no request",
                        c->coupon_id, id, c->rows[k].user_id);
        }
    }
    snprintf(what, sizeof(what), "I4 answers agree with the database: %zu of %zu grabs with a "
             "known outcome match their rows", checked, n);
    failed += !ct_lines_assert(r, &agree, what);
    snprintf(what, sizeof(what), "I4 GET /api/grab agrees with every 200 answer");
    failed += !ct_lines_assert(r, &api, what);
    snprintf(what, sizeof(what), "I4 no grant without an answer: %zu rows of unknown sagas, at most "
             "%zu requests were lost without a saga id", unexplained, unknown_transport);
    failed += !ct_lines_assert(r, &extra, what);
    free(known);
    return failed;
}
