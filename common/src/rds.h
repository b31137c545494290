/* rds.h - Redis client for a libevent program that finds its server through
 * Redis Sentinel (hiredis async underneath).
 *
 * The client never has a fixed server address. In master mode (the default)
 * it asks the sentinels in turn (SENTINEL get-master-addr-by-name), opens a
 * pool of connections to the answer, and trusts a connection only after ROLE
 * says "master". It stays subscribed to +switch-master on one sentinel and
 * moves to the new master when a failover happens; it also rediscovers when a
 * connection drops or times out, when a command answers READONLY /
 * MASTERDOWN / LOADING, and when the subscription itself drops. Retries back
 * off from reconnect_min_ms doubling to reconnect_max_ms, forever.
 *
 * Replica mode (rds_config.role = RDS_ROLE_REPLICA) takes read load off the
 * master. Each round asks a sentinel for its replicas (SENTINEL replicas) and
 * the master, keeps the replicas the sentinel sees healthy (flags without
 * s_down, o_down or disconnected; master-link-status ok), ranks them by a
 * hash of (process id, address) and verifies the best one on a single probe
 * connection: ROLE must say "slave" with its replication link "connected", or
 * "master" (a promoted replica: its reads are correct, just not offloaded).
 * When it fails the next is tried (at most RDS_REPLICA_CANDIDATES per round);
 * when none is usable the pool goes to the master ("fallback", logged once),
 * and while the pool serves from a master a quiet round looks for a replica
 * again every reconnect_max_ms, moving back when one is usable. The ranking
 * is stable per process: a process returns to the same replica after a
 * reconnect (no thrashing, reads do not jump between replicas with different
 * lag), and processes spread over the replicas. Connections are verified by
 * ROLE as in master mode, except that "slave" is also accepted; rounds run on
 * the same triggers as in master mode, with two differences: a READONLY reply
 * is a caller's write meeting a replica, not a sign of failover, so it is
 * passed to the caller and nothing else happens; and +switch-master always
 * drops the pool and chooses again (the replica set changed). Writes are not
 * policed: a replica answers them with READONLY. Leases are refused.
 * rds_server_role() and rds_server_addr() say which server answers.
 *
 * Every move to another server (failover, fallback, moving back) drops the
 * pool: commands in flight on it complete with CG_ERR_IO, and the client is
 * down (on_state) until the new connections are verified.
 *
 * Two ways to send a command:
 *   - rds_command*(): on any ready pooled connection (round robin);
 *   - rds_lease_*(): an exclusive connection for WATCH/MULTI/EXEC, since
 *     WATCH state is per connection and pipelined transactions of different
 *     users must not interleave on one connection (master mode only).
 *
 * Callback contract: a submit call that returns CG_OK has accepted the
 * command, and its callback runs exactly once, later, from the event loop
 * (never from inside the submit call): with CG_OK and the reply (which may be
 * a REDIS_REPLY_ERROR: the caller inspects it), or with reply NULL and
 *   CG_ERR_TIMEOUT  no reply within command_timeout_ms (the connection is
 *                   then dropped, failing the commands behind it the same way;
 *                   the outcome of a write is unknown),
 *   CG_ERR_IO       the connection was lost first (outcome unknown),
 *   CG_ERR_STATE    the client was freed first (outcome unknown).
 * A submit call that returns an error has not accepted the command and never
 * calls the callback: CG_ERR_STATE (no ready connection: fail fast, nothing
 * is queued while disconnected), CG_ERR_FULL (max_pending reached, or every
 * ready connection is leased), CG_ERR_INVALID (bad format, or a command the
 * mode does not allow, see below), CG_ERR_NOMEM.
 *
 * All functions are called from the event loop's thread. rds_client_free()
 * must not be called from inside any rds callback (reply or state). */
#ifndef CG_RDS_H
#define CG_RDS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "status.h"

struct event_base;
typedef struct rds_client rds_client;
typedef struct rds_lease rds_lease;

/* ---- configuration ---------------------------------------------------- */

/* Which kind of server a client uses (rds_config.role), and which kind it
 * uses now (rds_server_role). */
typedef enum rds_role {
    RDS_ROLE_MASTER = 0,   /* the master (the default: zero-initialised configs) */
    RDS_ROLE_REPLICA,      /* a healthy replica; the master while none is usable */
    RDS_ROLE_NONE          /* rds_server_role() only: no ready connection */
} rds_role;

/* Replica mode: replicas verified per round at most, best ranked first. */
#define RDS_REPLICA_CANDIDATES 4

typedef struct rds_config {
    const char *sentinels;        /* "host:port,host:port,..." (IP addresses: resolving a name
                                     would block the loop) */
    const char *master_name;      /* the name the sentinels monitor; also the log id */
    int connect_timeout_ms;       /* TCP connect bound, per attempt (default 1000) */
    int command_timeout_ms;       /* reply bound, per command (default 1000) */
    int reconnect_min_ms;         /* first retry delay, doubled up to the max (default 100) */
    int reconnect_max_ms;         /* (default 5000) */
    int pool_size;                /* server connections (default 4) */
    int max_pending;              /* commands in flight per connection (default 10000) */
    const char *password;         /* AUTH for server connections; NULL: none. Sentinels are
                                     asked without a password. */
    rds_role role;                /* RDS_ROLE_MASTER (default) or RDS_ROLE_REPLICA */
} rds_config;

/* Fills the defaults named above; sentinels/master_name/password stay NULL,
 * role is RDS_ROLE_MASTER. */
void rds_config_defaults(rds_config *cfg);

/* ---- client ------------------------------------------------------------- */

/* status: CG_OK, CG_ERR_TIMEOUT, CG_ERR_IO or CG_ERR_STATE (see the top of
 * this file). reply is owned by hiredis: valid only during the call. */
typedef void (*rds_reply_cb)(rds_client *c, int status, redisReply *reply, void *arg);

/* Called from the loop when the pool goes from no ready connection
 * to at least one (up = 1) and back (up = 0); not by rds_client_free(). */
typedef void (*rds_state_cb)(rds_client *c, int up, void *arg);

/* Creates a client and starts discovery at once; it becomes ready later
 * (on_state, rds_client_is_up). The config strings are copied. on_state may
 * be NULL. On error *out stays NULL and err says why (CG_ERR_INVALID for a
 * bad config). The caller owns the client: free it with rds_client_free(). */
int rds_client_new(struct event_base *base, const rds_config *cfg, rds_state_cb on_state,
                   void *state_arg, rds_client **out, cg_error *err) CG_MUSTCHECK;

/* Closes every connection: callbacks of commands still pending run now, with
 * CG_ERR_STATE; leases not released are freed (their pointers die with the
 * client). Not from inside an rds callback. NULL is a no-op. */
void rds_client_free(rds_client *c);

/* 1 when at least one verified connection is ready. */
int rds_client_is_up(const rds_client *c);

/* What the server in use is, as its ROLE said when the connections were
 * verified: RDS_ROLE_MASTER or RDS_ROLE_REPLICA; RDS_ROLE_NONE while no
 * connection is ready. In master mode always the master (or NONE); in
 * replica mode RDS_ROLE_MASTER means the fallback (or a promoted replica). */
rds_role rds_server_role(const rds_client *c);

/* The server in use or last chosen, "host:port"; "" before the first answer.
 * Points into the client: copy it to keep it. With rds_server_role() it is
 * what a caller reports as "served by". */
const char *rds_server_addr(const rds_client *c);

/* The same as rds_server_addr(): in master mode the server is the master.
 * (Named before replica mode; in replica mode prefer rds_server_addr.) */
const char *rds_master_addr(const rds_client *c);

/* ---- commands ----------------------------------------------------------- */

/* hiredis format strings (%s, %b with pointer + length, %d, ...). Not
 * allowed here, because they change the state of a shared connection:
 * WATCH, UNWATCH, MULTI, EXEC, DISCARD (use a lease), SELECT, SUBSCRIBE and
 * friends, MONITOR, QUIT, RESET. cb may be NULL (fire and forget). */
int rds_command(rds_client *c, rds_reply_cb cb, void *arg, const char *fmt, ...) CG_MUSTCHECK;
int rds_vcommand(rds_client *c, rds_reply_cb cb, void *arg, const char *fmt,
                 va_list ap) CG_MUSTCHECK;
int rds_command_argv(rds_client *c, rds_reply_cb cb, void *arg, int argc, const char **argv,
                     const size_t *argvlen) CG_MUSTCHECK;

/* ---- leases: one connection for one user, for transactions --------------- */

/* A ready connection that no other lease and no rds_command uses until it
 * is released; NULL when none is free (retry later), and always in replica
 * mode (transactions belong to the master: use a master-mode client). One
 * ready connection always stays unleased (when pool_size > 1), so that
 * rds_command keeps working while every other connection is inside a
 * transaction. The caller owns the lease and must release it. */
rds_lease *rds_lease_acquire(rds_client *c) CG_MUSTCHECK;

/* Like rds_command, on the lease's connection, and WATCH/MULTI/EXEC/DISCARD/
 * UNWATCH are allowed. CG_ERR_STATE once the connection was lost: the
 * transaction is gone (the server forgot its WATCH/MULTI), release the lease
 * and start over on a new one. */
int rds_lease_command(rds_lease *l, rds_reply_cb cb, void *arg, const char *fmt, ...) CG_MUSTCHECK;
int rds_lease_vcommand(rds_lease *l, rds_reply_cb cb, void *arg, const char *fmt,
                       va_list ap) CG_MUSTCHECK;
int rds_lease_command_argv(rds_lease *l, rds_reply_cb cb, void *arg, int argc,
                           const char **argv, const size_t *argvlen) CG_MUSTCHECK;

/* Returns the connection to the pool and frees the lease. If the holder
 * left a transaction open (MULTI sent without EXEC/DISCARD, or WATCH without
 * EXEC/DISCARD/UNWATCH) the client sends DISCARD or UNWATCH first, so the next
 * user starts clean; replies already pending still reach their callbacks.
 * NULL is a no-op. */
void rds_lease_release(rds_lease *l);

/* ---- observation ----------------------------------------------------------- */

typedef struct rds_stats {
    uint64_t commands;        /* accepted by a submit call */
    uint64_t rejected;        /* refused by a submit call (not up, full, invalid) */
    uint64_t replies;         /* completed with a reply (error replies included) */
    uint64_t error_replies;   /* of which REDIS_REPLY_ERROR */
    uint64_t errors;          /* completed with CG_ERR_IO or CG_ERR_STATE */
    uint64_t timeouts;        /* completed with CG_ERR_TIMEOUT */
    uint64_t failovers;       /* moves to a different server address */
    uint64_t connects;        /* server connections opened (attempts) */
    uint64_t fallbacks;       /* replica mode: moves to the master because no replica was
                                 usable (not the periodic retries that stay there) */
} rds_stats;

void rds_client_stats(const rds_client *c, rds_stats *out);

#endif
