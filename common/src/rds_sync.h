/* rds_sync.h - blocking Redis through Sentinel, for CLIs and tests.
 *
 * Plain synchronous hiredis with a connect and a command timeout on every
 * connection: ask the sentinels ("ip:port,...") in turn for the master's
 * address (SENTINEL get-master-addr-by-name), connect, and trust it only
 * when ROLE says master, retrying within a bound while a sentinel's view is
 * stale (a failover under way). The services use the async rds (rds.h);
 * nothing here may run on an event loop. */
#ifndef CG_RDS_SYNC_H
#define CG_RDS_SYNC_H

#include <stddef.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "status.h"

#define RDS_SYNC_ADDR_MAX 80          /* "ip:port" of a sentinel or master */
#define RDS_SYNC_RETRY_PAUSE_MS 200   /* between rounds over the sentinels */

typedef struct rds_sync_opts {
    const char *sentinels;     /* "ip:port,..." */
    const char *master_name;   /* the name the sentinels monitor */
    int timeout_ms;            /* connect and each command */
    int discover_ms;           /* bound on retrying rounds; 0: one round */
    const char *password;      /* AUTH before ROLE when not NULL */
    int log_level;             /* first round's failures; later rounds at debug */
} rds_sync_opts;

/* CG_ERR_INVALID unless sentinels is a non-empty list of ip:port. */
int rds_sync_check_sentinels(const char *sentinels, cg_error *err) CG_MUSTCHECK;

/* Splits "ip:port" into host (RDS_SYNC_ADDR_MAX bytes) and *port. */
int rds_sync_parse_addr(const char *addr, char *host, int *port, cg_error *err) CG_MUSTCHECK;

/* A new connection to ip:port with both timeouts set (caller redisFree()s
 * it); NULL and err (CG_ERR_TIMEOUT or CG_ERR_IO) on failure. */
redisContext *rds_sync_open(const char *ip, int port, int timeout_ms, cg_error *err);

/* {ms / 1000, ms % 1000} as a struct timeval, for redisSetTimeout(). */
struct timeval rds_sync_tv(int ms);

/* Sets err from a failed hiredis call on c (c may be NULL): CG_ERR_TIMEOUT
 * when the socket's timeout passed, CG_ERR_IO otherwise; returns the code.
 * The message reads "redis <addr>: <what>: <why>". */
int rds_sync_fail(redisContext *c, const char *addr, const char *what, cg_error *err);

/* Connects to host:port, runs one command and disconnects: the reply
 * (freeReplyObject), NULL when there was none. */
redisReply *rds_sync_query(const char *host, int port, int timeout_ms, const char *fmt, ...);

/* The master's address as the first answering sentinel sees it, one round,
 * no ROLE check (to compare views). CG_ERR_NOTFOUND when none answered. */
int rds_sync_sentinel_view(const char *sentinels, const char *master_name, int timeout_ms,
                           char *ip, size_t iplen, int *port, cg_error *err) CG_MUSTCHECK;

/* Finds the master (see the top) into *out, a new connection the caller
 * redisFree()s; addr (may be NULL) gets "ip:port" and replicas (may be
 * NULL) the replicas its ROLE lists. */
int rds_sync_master(const rds_sync_opts *o, redisContext **out, char *addr, size_t addrlen,
                    int *replicas, cg_error *err) CG_MUSTCHECK;

#endif
