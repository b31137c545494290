/* lg_stats.c - per-endpoint counting; see lg_stats.h. */
#include "lg_stats.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void lg_stats_start(lg_ep_stats *st, long long now_us)
{
    memset(st, 0, sizeof(*st));   /* the histogram too */
    st->first_us = now_us;
    st->last_us = now_us;
}

void lg_stats_record(lg_ep_stats *st, const lg_result *r, long long now_us)
{
    st->requests++;
    st->last_us = now_us;
    if (r->connected)
        st->connects++;
    switch (r->xerr) {
    case LG_XERR_NONE:
        lg_hist_record(&st->hist, r->latency_us);
        st->status[r->status >= 100 && r->status < LG_STATUS_MAX ? r->status : 0]++;
        if (r->status >= 200 && r->status < 300)
            st->ok++;
        else
            st->non_2xx++;
        if (r->body != NULL && lg_body_partial(r->body, r->body_len))
            st->partial++;
        return;
    case LG_XERR_TIMEOUT:
        st->timeouts++;
        break;
    case LG_XERR_TRANSPORT:
    default:
        st->transport_errors++;
        break;
    }
    if (st->first_error[0] == '\0')
        snprintf(st->first_error, sizeof(st->first_error), "%s",
                 r->what != NULL && r->what[0] != '\0' ? r->what : "transport error");
}

double lg_stats_seconds(const lg_ep_stats *st)
{
    return st->last_us > st->first_us ? (double)(st->last_us - st->first_us) / 1e6 : 0.0;
}

double lg_stats_rps(const lg_ep_stats *st)
{
    double s = lg_stats_seconds(st);

    return s > 0.0 ? (double)st->requests / s : 0.0;
}

static size_t lg_skip_ws(const char *b, size_t i, size_t len)
{
    while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r'))
        i++;
    return i;
}

int lg_body_partial(const char *body, size_t len)
{
    static const char key[] = "\"partial\"";
    const size_t klen = sizeof(key) - 1;
    const char *at;
    size_t from = 0;

    while (from < len && (at = memmem(body + from, len - from, key, klen)) != NULL) {
        size_t i = lg_skip_ws(body, (size_t)(at - body) + klen, len);

        from = (size_t)(at - body) + klen;
        if (i >= len || body[i] != ':')
            continue;   /* a string value "partial", not a key */
        i = lg_skip_ws(body, i + 1, len);
        if (len - i >= 4 && memcmp(body + i, "true", 4) == 0 &&
            (i + 4 == len || !isalnum((unsigned char)body[i + 4])))
            return 1;
    }
    return 0;
}
