/* saga_table.c - sagas by id, and their deadlines; see saga_table.h. */
#include "saga_table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a over the id: ids are random hex, any decent mix will do. */
static size_t saga_hash(const char *id)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *id != '\0'; id++) {
        h ^= (unsigned char)*id;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

int saga_table_init(saga_table *t, size_t expected)
{
    size_t n = 64;

    memset(t, 0, sizeof(*t));
    while (n < expected && n < ((size_t)1 << 30))
        n <<= 1;
    t->buckets = calloc(n, sizeof(*t->buckets));
    if (t->buckets == NULL)
        return CG_ERR_NOMEM;
    t->n_buckets = n;
    return CG_OK;
}

void saga_table_destroy(saga_table *t)
{
    free(t->buckets);
    free(t->heap);
    memset(t, 0, sizeof(*t));
}

saga *saga_table_find(const saga_table *t, const char *id)
{
    saga *s = t->buckets[saga_hash(id) & (t->n_buckets - 1)];

    while (s != NULL && strcmp(s->id, id) != 0)
        s = s->hnext;
    return s;
}

/* Doubles the buckets when the load passes 1; a failed growth is harmless
 * (chains get longer), so it is not reported. */
static void saga_table_grow(saga_table *t)
{
    size_t n = t->n_buckets * 2;
    saga **b = calloc(n, sizeof(*b));

    if (b == NULL)
        return;
    for (size_t i = 0; i < t->n_buckets; i++) {
        saga *s = t->buckets[i], *next;

        for (; s != NULL; s = next) {
            size_t j = saga_hash(s->id) & (n - 1);

            next = s->hnext;
            s->hnext = b[j];
            b[j] = s;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
}

int saga_table_add(saga_table *t, saga *s)
{
    size_t i;

    if (t->count >= t->n_buckets)
        saga_table_grow(t);
    i = saga_hash(s->id) & (t->n_buckets - 1);
    s->hnext = t->buckets[i];
    t->buckets[i] = s;
    s->heap_idx = SAGA_HEAP_NONE;
    t->count++;
    return CG_OK;
}

void saga_table_remove(saga_table *t, saga *s)
{
    saga **pp = &t->buckets[saga_hash(s->id) & (t->n_buckets - 1)];

    saga_table_unschedule(t, s);
    while (*pp != NULL && *pp != s)
        pp = &(*pp)->hnext;
    if (*pp == s) {
        *pp = s->hnext;
        s->hnext = NULL;
        t->count--;
    }
}

/* ---- the heap ------------------------------------------------------------ */

static void heap_set(saga_table *t, size_t i, saga *s)
{
    t->heap[i] = s;
    s->heap_idx = i;
}

static void heap_up(saga_table *t, size_t i)
{
    saga *s = t->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (t->heap[parent]->deadline_ms <= s->deadline_ms)
            break;
        heap_set(t, i, t->heap[parent]);
        i = parent;
    }
    heap_set(t, i, s);
}

static void heap_down(saga_table *t, size_t i)
{
    saga *s = t->heap[i];

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        long long best = s->deadline_ms;

        if (l < t->heap_len && t->heap[l]->deadline_ms < best) {
            m = l;
            best = t->heap[l]->deadline_ms;
        }
        if (r < t->heap_len && t->heap[r]->deadline_ms < best)
            m = r;
        if (m == i)
            break;
        heap_set(t, i, t->heap[m]);
        i = m;
    }
    heap_set(t, i, s);
}

void saga_table_unschedule(saga_table *t, saga *s)
{
    size_t i = s->heap_idx;
    saga *last;

    if (i == SAGA_HEAP_NONE)
        return;
    s->heap_idx = SAGA_HEAP_NONE;
    last = t->heap[--t->heap_len];
    if (last == s)
        return;
    heap_set(t, i, last);
    if (i > 0 && t->heap[(i - 1) / 2]->deadline_ms > last->deadline_ms)
        heap_up(t, i);
    else
        heap_down(t, i);
}

int saga_table_schedule(saga_table *t, saga *s, long long deadline_ms)
{
    saga_table_unschedule(t, s);
    s->deadline_ms = deadline_ms;
    if (t->heap_len == t->heap_cap) {
        size_t cap = t->heap_cap ? t->heap_cap * 2 : 256;
        saga **h = realloc(t->heap, cap * sizeof(*h));

        if (h == NULL)
            return CG_ERR_NOMEM;
        t->heap = h;
        t->heap_cap = cap;
    }
    heap_set(t, t->heap_len++, s);
    heap_up(t, t->heap_len - 1);
    return CG_OK;
}

saga *saga_table_pop_expired(saga_table *t, long long now_ms)
{
    saga *s;

    if (t->heap_len == 0 || t->heap[0]->deadline_ms > now_ms)
        return NULL;
    s = t->heap[0];
    saga_table_unschedule(t, s);
    return s;
}
