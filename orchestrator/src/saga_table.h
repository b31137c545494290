/* saga_table.h - the sagas in memory: a hash table by saga id and a min-heap
 * of step deadlines, so that the one timer finds expired steps in O(log n)
 * instead of scanning every saga each tick (libevent's own min-heap idea).
 * The table does not own the sagas' waiters or deliveries; saga_table_remove
 * only unlinks. */
#ifndef ORCH_SAGA_TABLE_H
#define ORCH_SAGA_TABLE_H

#include <stddef.h>

#include "saga.h"
#include "status.h"

typedef struct saga_table {
    saga **buckets;
    size_t n_buckets;      /* a power of two */
    size_t count;
    saga **heap;           /* min-heap on deadline_ms */
    size_t heap_len, heap_cap;
} saga_table;

int saga_table_init(saga_table *t, size_t expected) CG_MUSTCHECK;
/* Frees the table's arrays (not the sagas). */
void saga_table_destroy(saga_table *t);

saga *saga_table_find(const saga_table *t, const char *id);
/* Adds s (its id must not be in the table); may grow the buckets. */
int saga_table_add(saga_table *t, saga *s) CG_MUSTCHECK;
/* Unlinks s from the hash and the heap. */
void saga_table_remove(saga_table *t, saga *s);

/* Sets s's deadline and (re)positions it in the heap. */
int saga_table_schedule(saga_table *t, saga *s, long long deadline_ms) CG_MUSTCHECK;
/* Takes s out of the heap (no deadline). */
void saga_table_unschedule(saga_table *t, saga *s);
/* The saga with the earliest deadline when that deadline is <= now, taken out
 * of the heap; NULL otherwise. */
saga *saga_table_pop_expired(saga_table *t, long long now_ms);

#endif
