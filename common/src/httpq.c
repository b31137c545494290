/* httpq.c - path ids and integer query parameters; see httpq.h. */
#include "httpq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* Plain decimal 1..HTTPQ_ID_MAX in s[0..len). */
static int httpq_id_parse(const char *s, size_t len, long long *out)
{
    long long v = 0;

    if (len == 0 || len > 19 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        if (v > (HTTPQ_ID_MAX - (s[i] - '0')) / 10)
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

enum httpq_match httpq_path_match(const char *path, const char *pattern, long long *id)
{
    const char *hole = strchr(pattern, '#');
    size_t head, tail, plen, seg;

    *id = 0;
    if (path == NULL)
        return HTTPQ_NO_MATCH;
    if (hole == NULL)
        return strcmp(path, pattern) == 0 ? HTTPQ_MATCH : HTTPQ_NO_MATCH;
    head = (size_t)(hole - pattern);
    tail = strlen(hole + 1);
    plen = strlen(path);
    if (plen < head + tail || strncmp(path, pattern, head) != 0 ||
        strcmp(path + plen - tail, hole + 1) != 0)
        return HTTPQ_NO_MATCH;
    seg = plen - head - tail;
    /* The id is one whole segment: "/api/user/1/2/coupons" is another shape. */
    if (memchr(path + head, '/', seg) != NULL)
        return HTTPQ_NO_MATCH;
    return httpq_id_parse(path + head, seg, id) ? HTTPQ_MATCH : HTTPQ_BAD_ID;
}

static int httpq_int_parse(const char *s, long long *out)
{
    char *end;
    long long v;

    if (s[0] == '\0' || s[0] == ' ' || s[0] == '+')
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return 0;
    *out = v;
    return 1;
}

int httpq_parse_ints(const char *query, const httpq_int_spec *specs, int n, long long *out,
                     const char **bad_param, cg_error *err)
{
    struct evkeyvalq q;
    struct evkeyval *kv;
    int seen[HTTPQ_PARAMS_MAX] = {0};
    int rc = CG_OK;

    TAILQ_INIT(&q);
    if (bad_param != NULL)
        *bad_param = NULL;
    if (n > HTTPQ_PARAMS_MAX) {
        rc = cg_error_set(err, CG_ERR_INVALID, "too many parameter specs");
        goto done;
    }
    for (int i = 0; i < n; i++)
        out[i] = specs[i].def;
    if (query == NULL || query[0] == '\0')
        goto done;
    if (strlen(query) > HTTPQ_QUERY_MAX) {
        if (bad_param != NULL)
            *bad_param = "query";
        rc = cg_error_set(err, CG_ERR_INVALID, "query string longer than %d bytes",
                          HTTPQ_QUERY_MAX);
        goto done;
    }
    if (evhttp_parse_query_str(query, &q) != 0) {
        if (bad_param != NULL)
            *bad_param = "query";
        rc = cg_error_set(err, CG_ERR_INVALID, "malformed query string");
        goto done;
    }
    TAILQ_FOREACH(kv, &q, next) {
        int i;

        for (i = 0; i < n && strcmp(kv->key, specs[i].name) != 0; i++)
            ;
        if (i == n) {
            if (bad_param != NULL)
                *bad_param = "query";
            rc = cg_error_set(err, CG_ERR_INVALID, "unknown parameter '%.64s'", kv->key);
            goto done;
        }
        if (bad_param != NULL)
            *bad_param = specs[i].name;
        if (seen[i]++) {
            rc = cg_error_set(err, CG_ERR_INVALID, "'%s' given more than once", specs[i].name);
            goto done;
        }
        if (!httpq_int_parse(kv->value, &out[i]) || out[i] < specs[i].min ||
            out[i] > specs[i].max) {
            rc = cg_error_set(err, CG_ERR_INVALID, "'%s' must be an integer in %lld..%lld",
                              specs[i].name, specs[i].min, specs[i].max);
            goto done;
        }
    }
    if (bad_param != NULL)
        *bad_param = NULL;

done:
    evhttp_clear_headers(&q);   /* also the part a failed parse kept */
    return rc;
}
