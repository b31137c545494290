/* rds_int.h - internals shared by the rds_*.c files; not for other modules.
 *
 * rds_link.c   one hiredis async connection: connect deadline, a bounded FIFO
 *              of pending commands with deadlines, teardown.
 * rds_sentinel.c  asking the sentinels for the master (and, in replica mode,
 *              ranking the replicas they see healthy), and the +switch-master
 *              subscription.
 * rds.c        the client: discovery state machine, the replica probe, the
 *              pool, the timer.
 * rds_cmd.c    the public command API and leases.
 *
 * Lifetime rule that keeps hiredis safe: a redisAsyncContext is freed by us
 * only from our own events (the timer, the kick, rds_client_free), never from
 * inside a hiredis callback. Callbacks only record what happened, mark a link
 * CLOSING (unusable at once) and kick the client; the next step frees it. */
#ifndef CG_RDS_INT_H
#define CG_RDS_INT_H

#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "rds.h"

#define RDS_HOST_MAX 256
#define RDS_ADDR_MAX (RDS_HOST_MAX + 8)   /* "host:port" */
#define RDS_WHY_MAX 128
#define RDS_TICK_MS 10                    /* deadline resolution of the client timer */

/* A routine line of a discovery round: at debug in a quiet round (the
 * periodic replica retry), so that staying on the fallback is said once. */
#define rds_log_round(c, ...) \
    log_at((c)->quiet ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, (c)->name, __VA_ARGS__)

/* What a link is for; decides what it sends once connected and what its loss means. */
enum rds_link_kind {
    RDS_LINK_POOL = 0,   /* a server connection carrying user commands */
    RDS_LINK_ASK,        /* a short query to one sentinel for the master (and replicas) */
    RDS_LINK_SUB,        /* the +switch-master subscription to one sentinel */
    RDS_LINK_PROBE       /* replica mode: a short ROLE check of one candidate replica */
};

/* A link's lifecycle. */
enum rds_link_state {
    RDS_LINK_IDLE = 0,     /* no connection; the owner decides when to start one */
    RDS_LINK_CONNECTING,   /* TCP connect in flight, bounded by deadline_us */
    RDS_LINK_HANDSHAKE,    /* connected; the kind's setup (AUTH+ROLE, the query, SUBSCRIBE)
                              is in flight, bounded by deadline_us */
    RDS_LINK_READY,        /* set up: a pool link takes commands, the sub link is subscribed */
    RDS_LINK_CLOSING,      /* unusable; the next step frees what is left and goes IDLE */
    RDS_LINK_STATE_MAX
};

/* The client's discovery state machine. */
enum rds_state {
    RDS_ST_WAIT = 0,   /* backing off until wait_until_us, then ask the sentinels again */
    RDS_ST_ASK,        /* asking sentinel ask_idx where the master (and the replicas) are */
    RDS_ST_PROBE,      /* replica mode: verifying candidate cand_idx on the probe link */
    RDS_ST_CONNECT,    /* bringing every idle pool link up to server_host:server_port */
    RDS_ST_STEADY,     /* every pool link is ready; leave it when one is lost */
    RDS_ST_MAX
};

typedef struct rds_link rds_link;

/* One accepted command, queued on its link in sending order. */
typedef struct rds_cmd {
    struct rds_cmd *next;
    rds_link *link;
    rds_reply_cb cb;
    void *arg;
    int user;                     /* a caller's command (counted in stats), not our own */
    int64_t deadline_us;
} rds_cmd;

struct rds_link {
    rds_client *client;
    int kind;                     /* enum rds_link_kind */
    int slot;                     /* index in the pool, for logs */
    int state;                    /* enum rds_link_state; changed only by rds_link_set_state */
    redisAsyncContext *ac;        /* NULL once hiredis frees it or we do */
    char host[RDS_HOST_MAX];
    int port;
    int64_t deadline_us;          /* connect / handshake deadline */
    int fail_status;              /* what pending commands get when the link closes */
    char why[RDS_WHY_MAX];        /* why it is closing, for the log */
    int was_ready;                /* reached READY since the last connect */
    rds_cmd *head, *tail;         /* pending commands, oldest first */
    int pending;
    rds_lease *lease;             /* its holder, or NULL */
    int watching, in_multi;       /* what a lease left open: cleaned up on release */
};

struct rds_lease {
    rds_client *client;
    rds_link *link;               /* NULL once the connection was lost */
    rds_lease *prev, *next;       /* the client's live leases */
};

typedef struct rds_addr {
    char host[RDS_HOST_MAX];
    int port;
} rds_addr;

/* A replica the sentinel sees healthy, with its rank (higher first). */
typedef struct rds_cand {
    rds_addr addr;
    uint64_t weight;
} rds_cand;

struct rds_client {
    struct event_base *base;
    char *name;                   /* master name, also the log id */
    char *password;
    int mode;                     /* enum rds_role from the config: MASTER or REPLICA */
    uint64_t rank_seed;           /* replica mode: this process's replica ranking */
    int connect_timeout_ms, command_timeout_ms;
    int reconnect_min_ms, reconnect_max_ms;
    int max_pending;
    rds_state_cb on_state;
    void *state_arg;

    rds_addr *sentinels;
    int n_sentinels;

    struct event *tick;           /* the persistent timer: deadlines and retries */
    struct event *kick;           /* runs the step soon after a callback changed something */
    int closing;                  /* rds_client_free is running */
    int cb_depth;                 /* > 0 while a user callback runs */

    int state;                    /* enum rds_state; changed only by rds_set_state */
    int64_t wait_until_us;        /* RDS_ST_WAIT: when to ask again */
    int backoff_ms;               /* next wait; doubles up to reconnect_max_ms */
    int rediscover;               /* ask again at the next step */
    int hold_off;                 /* the master is not serving: back off, then ask again */
    int stale;                    /* master mode: a pool link found a replica at server_addr */
    int connect_failures;         /* links to the server lost or failed in RDS_ST_CONNECT */
    int quiet;                    /* a periodic replica round: its routine lines go to debug */

    /* asking (rds_sentinel.c) */
    rds_link ask;
    int ask_first;                /* sentinel to start a round with */
    int ask_idx, ask_tries;       /* sentinel being asked; how many asked this round */
    int ask_started, ask_done, ask_ok;   /* ask_ok: the master's address is in ask_host/port */
    char ask_host[RDS_HOST_MAX];
    int ask_port;
    /* replica mode: the sentinel's healthy replicas, best first */
    rds_cand cands[RDS_REPLICA_CANDIDATES];
    int n_cands;                  /* kept (at most RDS_REPLICA_CANDIDATES) */
    int n_replicas, n_healthy;    /* listed, and healthy of those (for the log) */

    /* the probe (rds.c, replica mode) */
    rds_link probe;
    int cand_idx;                 /* candidate being verified */
    int probe_started, probe_done, probe_ok;
    int probe_role;               /* enum rds_role the candidate's ROLE said */
    char probe_why[RDS_WHY_MAX];  /* why the last candidate was not usable */
    int on_fallback;              /* replica mode: serving from the master, said once */
    int64_t retry_replica_us;     /* replica mode, on a master: when to look again */

    /* subscription (rds_sentinel.c) */
    rds_link sub;
    int sub_idx;                  /* sentinel to subscribe to next */
    int sub_tries;                /* failed attempts since the last subscription */
    int sub_backoff_ms;
    int64_t sub_next_us;
    int sub_ever;                 /* subscribed at least once */

    /* the server: the master, or in replica mode a replica or the fallback master */
    char server_host[RDS_HOST_MAX];
    int server_port;
    char server_addr[RDS_ADDR_MAX];
    int server_role;              /* enum rds_role its ROLE said when a pool link was verified */
    rds_link *pool;
    int pool_size;
    int ready_count;              /* pool links in READY */
    int reported_up;              /* last value given to on_state */
    int rr;                       /* round-robin cursor */
    rds_lease *leases;

    rds_stats stats;
};

/* rds_link.c */
int64_t rds_now_us(void);
void rds_kick(rds_client *c);
void rds_link_init(rds_link *l, rds_client *c, int kind, int slot);
void rds_link_set_state(rds_link *l, int state);
int rds_link_connect(rds_link *l, const char *host, int port) CG_MUSTCHECK;
int rds_link_send(rds_link *l, rds_reply_cb cb, void *arg, const char *buf, size_t len,
                  int user) CG_MUSTCHECK;
int rds_link_sendf(rds_link *l, rds_reply_cb cb, void *arg, const char *fmt, ...) CG_MUSTCHECK;
void rds_link_mark_closing(rds_link *l, int status, const char *why);
void rds_link_lost(rds_link *l, const char *why);
void rds_link_check(rds_link *l, int64_t now);
void rds_link_close(rds_link *l);
const char *rds_link_kind_name(int kind);

/* rds_sentinel.c */
int rds_sentinels_parse(rds_client *c, const char *list, cg_error *err) CG_MUSTCHECK;
void rds_ask_round_start(rds_client *c, int quiet);
void rds_ask_step(rds_client *c);
void rds_ask_on_connected(rds_link *l);
void rds_ask_on_closed(rds_link *l);
void rds_sub_step(rds_client *c, int64_t now);
void rds_sub_on_connected(rds_link *l);
void rds_sub_on_closed(rds_link *l);

/* rds.c */
void rds_set_state(rds_client *c, int state);
void rds_pool_on_connected(rds_link *l);
void rds_pool_on_closed(rds_link *l);
void rds_pool_condemn(rds_client *c, const char *why);
void rds_server_found(rds_client *c, const char *host, int port);
void rds_replica_round_done(rds_client *c);
void rds_probe_on_connected(rds_link *l);
void rds_probe_on_closed(rds_link *l);
void rds_enter_wait(rds_client *c, const char *why);
void rds_link_on_connected(rds_link *l);
void rds_link_on_closed(rds_link *l);

/* rds_cmd.c */
void rds_cmd_finish(rds_cmd *cmd, int status, redisReply *reply);
void rds_lease_detach(rds_link *l);
void rds_leases_free(rds_client *c);

#endif
