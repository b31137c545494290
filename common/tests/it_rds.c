/* it_rds.c - integration tests of the Sentinel-aware Redis client (rds.h)
 * against the local stack: redis-a (first master), redis-b (replica) and
 * three sentinels, quorum 2 (scripts/stack; the runner sources run/stack.env).
 *
 * The tests share the stack and run in order; the failover test kills the
 * master and brings it back as a replica, so that the stack is healthy again
 * for what follows. Every wait runs the event loop under a deadline. Waits
 * on the stack itself use blocking hiredis: this is a test, not the loop of
 * a service. */
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <hiredis/hiredis.h>

#include "log.h"
#include "rds.h"
#include "rds_sync.h"
#include "itkit.h"
#include "testhelp.h"

#define UP_BOUND_MS 10000        /* discovery on a healthy stack */
#define FAILOVER_BOUND_MS 15000  /* kill -> writes succeed on the promoted replica */
#define REJOIN_BOUND_MS 30000    /* old master back as a connected replica */

static struct event_base *base;
static const char *sentinels, *master_name, *repo_dir;
static int down_after_ms, port_a, port_b;
static volatile sig_atomic_t frozen_pid;   /* a SIGSTOPped server to SIGCONT on any exit */

/* ---- helpers ------------------------------------------------------------------ */

/* Runs the loop until pred(arg) holds or timeout_ms passes; returns pred's last value. */
static int run_until(int (*pred)(void *), void *arg, int timeout_ms)
{
    return itk_run_until(base, pred, arg, timeout_ms);
}

static void run_for(int ms)
{
    itk_run_for(base, ms);
}

static int client_up(void *arg)
{
    return rds_client_is_up(arg);
}

struct state_log {
    int ups, downs, last;
};

static void on_state(rds_client *c, int up, void *arg)
{
    struct state_log *s = arg;

    (void)c;
    s->last = up;
    if (up)
        s->ups++;
    else
        s->downs++;
}

static rds_client *client_new(const rds_config *cfg, struct state_log *sl)
{
    rds_client *c = NULL;
    cg_error err = {0, ""};

    if (rds_client_new(base, cfg, on_state, sl, &c, &err) != CG_OK)
        TH_FAIL_AT("rds_client_new: %s", err.msg);
    return c;
}

static void config_for_stack(rds_config *cfg)
{
    rds_config_defaults(cfg);
    cfg->sentinels = sentinels;
    cfg->master_name = master_name;
}

/* One command's outcome, copied out of the callback. */
struct result {
    int done;
    int status;
    int type;
    long long integer;
    size_t elements;
    char str[256];     /* string, status or error text; element 0 of an array */
    int elem0_type;
};

static void on_result(rds_client *c, int status, redisReply *r, void *arg)
{
    struct result *res = arg;

    (void)c;
    res->done++;
    res->status = status;
    if (r != NULL) {
        res->type = r->type;
        res->integer = r->integer;
        res->elements = r->elements;
        if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
            r->type == REDIS_REPLY_ERROR)
            snprintf(res->str, sizeof(res->str), "%s", r->str);
        if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
            res->elem0_type = r->element[0]->type;
            if (r->element[0]->str != NULL)
                snprintf(res->str, sizeof(res->str), "%s", r->element[0]->str);
        }
    }
}

static int result_done(void *arg)
{
    return ((struct result *)arg)->done > 0;
}

/* Sends fmt on c (or on lease when not NULL) and waits for the reply. */
static int cmd_wait(rds_client *c, rds_lease *lease, struct result *res, const char *fmt, ...)
{
    int rc;
    va_list ap;

    memset(res, 0, sizeof(*res));
    va_start(ap, fmt);
    rc = lease != NULL ? rds_lease_vcommand(lease, on_result, res, fmt, ap)
                       : rds_vcommand(c, on_result, res, fmt, ap);
    va_end(ap);
    if (rc == CG_OK && !run_until(result_done, res, 5000))
        rc = CG_ERR_TIMEOUT;   /* the client must answer itself well before this */
    return rc != CG_OK ? rc : res->status;
}

#define IT_QUERY_TIMEOUT_MS 1000

/* The master address the first answering sentinel gives, "host:port"; "" if none. */
static void sentinel_master(char *out, size_t size)
{
    char ip[64];
    int port = 0;
    cg_error err;

    out[0] = '\0';
    if (rds_sync_sentinel_view(sentinels, master_name, IT_QUERY_TIMEOUT_MS, ip, sizeof(ip), &port,
                               &err) == CG_OK)
        snprintf(out, size, "%s:%d", ip, port);
}

static int master_port(rds_client *c)
{
    const char *colon = strrchr(rds_master_addr(c), ':');

    return colon != NULL ? atoi(colon + 1) : 0;
}

static const char *instance_name(int port)
{
    return port == port_a ? "redis-a" : port == port_b ? "redis-b" : NULL;
}

static void thaw(void)
{
    if (frozen_pid > 0) {
        kill((pid_t)frozen_pid, SIGCONT);
        frozen_pid = 0;
    }
}

static void thaw_on_signal(int sig)
{
    thaw();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- 1. discovery --------------------------------------------------------------- */

static void test_discovery(void)
{
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    struct result res;
    char sentinel_view[300];
    long long t0 = itk_now_ms();
    rds_client *c;

    config_for_stack(&cfg);
    c = client_new(&cfg, &sl);
    TH_REQUIRE(c != NULL);
    TH_CHECK(rds_client_is_up(c) == 0);
    TH_CHECK(run_until(client_up, c, UP_BOUND_MS));
    fprintf(stdout, "    ready in %lld ms at %s\n", itk_now_ms() - t0, rds_master_addr(c));
    run_for(50);   /* on_state comes from the next step */
    TH_CHECK_INT(sl.ups, 1);
    TH_CHECK_INT(sl.last, 1);

    sentinel_master(sentinel_view, sizeof(sentinel_view));
    TH_CHECK_STR(rds_master_addr(c), sentinel_view);

    TH_CHECK_INT(cmd_wait(c, NULL, &res, "SET %s %s", "it_rds:discovery", "hello"), CG_OK);
    TH_CHECK_STR(res.str, "OK");
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "GET %s", "it_rds:discovery"), CG_OK);
    TH_CHECK_INT(res.type, REDIS_REPLY_STRING);
    TH_CHECK_STR(res.str, "hello");
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "ROLE"), CG_OK);
    TH_CHECK_INT(res.type, REDIS_REPLY_ARRAY);
    TH_CHECK_STR(res.str, "master");
    /* An error reply is a reply: CG_OK, the caller inspects it. */
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "NOSUCHCOMMAND"), CG_OK);
    TH_CHECK_INT(res.type, REDIS_REPLY_ERROR);
    rds_client_free(c);
}

/* ---- 2. failover ----------------------------------------------------------------------- */

struct writer {
    rds_client *c;
    struct event *ev;
    char old_master[300];
    long long t_kill;           /* 0 before the kill */
    long long last_ok_before;   /* last acknowledged INCR before the kill */
    long long first_ok_after;   /* first acknowledged INCR on the new master */
    int ok, failed, rejected, in_flight;
};

static void writer_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    struct writer *w = arg;
    long long t = itk_now_ms();

    w->in_flight--;
    if (status == CG_OK && r->type == REDIS_REPLY_INTEGER) {
        w->ok++;
        if (w->t_kill == 0)
            w->last_ok_before = t;
        else if (w->first_ok_after == 0 && strcmp(rds_master_addr(c), w->old_master) != 0)
            w->first_ok_after = t;
    } else {
        w->failed++;
    }
}

static void writer_tick(evutil_socket_t fd, short what, void *arg)
{
    struct writer *w = arg;

    (void)fd;
    (void)what;
    if (rds_command(w->c, writer_reply, w, "INCR %s", "it_rds:failover") == CG_OK)
        w->in_flight++;
    else
        w->rejected++;
}

static int writer_recovered(void *arg)
{
    return ((struct writer *)arg)->first_ok_after != 0;
}

static int writer_idle(void *arg)
{
    return ((struct writer *)arg)->in_flight == 0;
}

struct rejoin {
    int port;
    long long next_poll;
};

/* The old master answers ROLE as a replica with its link to the master up,
 * and the sentinels list it as a replica that is not down. */
static int rejoined(void *arg)
{
    struct rejoin *j = arg;
    redisReply *r;
    char want[64], list[1024], *save = NULL, *colon;
    int ok = 0, seen = 0;

    if (itk_now_ms() < j->next_poll)
        return 0;
    j->next_poll = itk_now_ms() + 200;
    r = rds_sync_query("127.0.0.1", j->port, IT_QUERY_TIMEOUT_MS, "ROLE");
    ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 4 &&
         strcmp(r->element[0]->str, "slave") == 0 &&
         strcmp(r->element[3]->str, "connected") == 0;
    freeReplyObject(r);
    snprintf(want, sizeof(want), "%d", j->port);
    snprintf(list, sizeof(list), "%s", sentinels);
    for (char *item = strtok_r(list, ",", &save); ok && item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        if ((colon = strrchr(item, ':')) == NULL)
            continue;
        *colon = '\0';
        r = rds_sync_query(item, atoi(colon + 1), IT_QUERY_TIMEOUT_MS, "SENTINEL replicas %s",
                           master_name);
        for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            redisReply *e = r->element[i];
            const char *port = NULL, *flags = NULL;

            for (size_t k = 0; k + 1 < e->elements; k += 2) {
                if (strcmp(e->element[k]->str, "port") == 0)
                    port = e->element[k + 1]->str;
                if (strcmp(e->element[k]->str, "flags") == 0)
                    flags = e->element[k + 1]->str;
            }
            if (port != NULL && flags != NULL && strcmp(port, want) == 0 &&
                strcmp(flags, "slave") == 0)
                seen++;
        }
        freeReplyObject(r);
    }
    return ok && seen > 0;
}

static void test_failover(void)
{
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    struct writer w;
    struct rejoin j = {0, 0};
    struct timeval every = {0, 10000};
    rds_stats st;
    char sentinel_view[300];
    const char *victim;
    rds_lease *held;
    rds_client *c;
    int recovered;

    memset(&w, 0, sizeof(w));
    config_for_stack(&cfg);
    c = client_new(&cfg, &sl);
    TH_REQUIRE(c != NULL);
    TH_REQUIRE(run_until(client_up, c, UP_BOUND_MS));
    victim = instance_name(master_port(c));
    TH_REQUIRE(victim != NULL);
    snprintf(w.old_master, sizeof(w.old_master), "%s", rds_master_addr(c));
    j.port = master_port(c);

    run_for(100);   /* all links up */
    held = rds_lease_acquire(c);
    TH_CHECK(held != NULL);
    w.c = c;
    w.ev = event_new(base, -1, EV_PERSIST, writer_tick, &w);
    event_add(w.ev, &every);
    run_for(300);
    TH_CHECK(w.ok > 10);

    fprintf(stdout, "    killing %s (%s)\n", victim, w.old_master);
    w.t_kill = itk_now_ms();
    TH_CHECK_INT(itk_script("stack", "kill %s", victim), 0);
    recovered = run_until(writer_recovered, &w, FAILOVER_BOUND_MS);
    event_free(w.ev);
    TH_CHECK(recovered);
    if (recovered)
        fprintf(stdout, "    writes resumed on %s %lld ms after the kill (last ack before: "
                "%lld ms before the kill); %d ok, %d failed, %d refused while down\n",
                rds_master_addr(c), w.first_ok_after - w.t_kill, w.t_kill - w.last_ok_before,
                w.ok, w.failed, w.rejected);
    TH_CHECK(run_until(writer_idle, &w, 5000));
    sentinel_master(sentinel_view, sizeof(sentinel_view));
    TH_CHECK_STR(rds_master_addr(c), sentinel_view);
    TH_CHECK(strcmp(rds_master_addr(c), w.old_master) != 0);
    rds_client_stats(c, &st);
    TH_CHECK(st.failovers >= 1);
    TH_CHECK(sl.downs >= 1);
    /* A lease does not survive its connection: the transaction is gone. */
    if (held != NULL)
        TH_CHECK_INT(rds_lease_command(held, NULL, NULL, "PING"), CG_ERR_STATE);
    rds_lease_release(held);

    /* Bring the old master back: it must rejoin as a replica. */
    TH_CHECK_INT(itk_script("stack", "start-one %s", victim), 0);
    TH_CHECK(run_until(rejoined, &j, REJOIN_BOUND_MS));
    TH_CHECK(rds_client_is_up(c));
    rds_client_free(c);
}

/* ---- 3. transactions on leases -------------------------------------------------------- */

static void test_lease_transactions(void)
{
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    struct result r1, r2, w1, w2, g1, g2, m1, m2, s1, s2, e1, e2, res;
    rds_lease *l1 = NULL, *l2 = NULL, *extra[8] = {NULL};
    long long id1 = 0, id2 = 0;
    const char *key = "it_rds:tx";
    rds_client *c;
    int n_extra = 0;

    config_for_stack(&cfg);
    c = client_new(&cfg, &sl);
    TH_REQUIRE(c != NULL);
    /* Every link, not just the first, so that two leases plus a shared link exist. */
    for (long long t = itk_now_ms(); itk_now_ms() - t < UP_BOUND_MS; run_for(20)) {
        if ((l1 = rds_lease_acquire(c)) != NULL && (l2 = rds_lease_acquire(c)) != NULL)
            break;
        rds_lease_release(l1);
        l1 = NULL;
    }
    TH_REQUIRE(l1 != NULL && l2 != NULL);
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "SET %s %s", key, "v0"), CG_OK);
    TH_CHECK_INT(cmd_wait(c, l1, &res, "CLIENT ID"), CG_OK);
    id1 = res.integer;
    TH_CHECK_INT(cmd_wait(c, l2, &res, "CLIENT ID"), CG_OK);
    id2 = res.integer;
    TH_CHECK(id1 != id2);
    /* Leased connections carry nothing else. */
    for (int i = 0; i < 20; i++) {
        TH_CHECK_INT(cmd_wait(c, NULL, &res, "CLIENT ID"), CG_OK);
        TH_CHECK(res.integer != id1 && res.integer != id2);
    }
    /* Transactions are refused on shared connections. */
    TH_CHECK_INT(rds_command(c, NULL, NULL, "WATCH %s", key), CG_ERR_INVALID);
    TH_CHECK_INT(rds_command(c, NULL, NULL, "MULTI"), CG_ERR_INVALID);

    /* Interleaved: both WATCH and read, then l1 commits, then l2's EXEC must abort. */
    memset(&w1, 0, sizeof(w1)); memset(&w2, 0, sizeof(w2));
    memset(&g1, 0, sizeof(g1)); memset(&g2, 0, sizeof(g2));
    TH_CHECK_INT(rds_lease_command(l1, on_result, &w1, "WATCH %s", key), CG_OK);
    TH_CHECK_INT(rds_lease_command(l2, on_result, &w2, "WATCH %s", key), CG_OK);
    TH_CHECK_INT(rds_lease_command(l1, on_result, &g1, "GET %s", key), CG_OK);
    TH_CHECK_INT(rds_lease_command(l2, on_result, &g2, "GET %s", key), CG_OK);
    TH_CHECK(run_until(result_done, &g1, 5000) && run_until(result_done, &g2, 5000));
    TH_CHECK_STR(g1.str, "v0");
    TH_CHECK_STR(g2.str, "v0");

    memset(&m1, 0, sizeof(m1)); memset(&s1, 0, sizeof(s1)); memset(&e1, 0, sizeof(e1));
    TH_CHECK_INT(rds_lease_command(l1, on_result, &m1, "MULTI"), CG_OK);
    TH_CHECK_INT(rds_lease_command(l1, on_result, &s1, "SET %s %s", key, "v1"), CG_OK);
    TH_CHECK_INT(rds_lease_command(l1, on_result, &e1, "EXEC"), CG_OK);
    TH_CHECK(run_until(result_done, &e1, 5000));
    TH_CHECK_STR(s1.str, "QUEUED");
    TH_CHECK_INT(e1.status, CG_OK);
    TH_CHECK_INT(e1.type, REDIS_REPLY_ARRAY);
    TH_CHECK_INT(e1.elements, 1);
    TH_CHECK_STR(e1.str, "OK");

    memset(&m2, 0, sizeof(m2)); memset(&s2, 0, sizeof(s2)); memset(&e2, 0, sizeof(e2));
    TH_CHECK_INT(rds_lease_command(l2, on_result, &m2, "MULTI"), CG_OK);
    TH_CHECK_INT(rds_lease_command(l2, on_result, &s2, "SET %s %s", key, "v2"), CG_OK);
    TH_CHECK_INT(rds_lease_command(l2, on_result, &e2, "EXEC"), CG_OK);
    TH_CHECK(run_until(result_done, &e2, 5000));
    TH_CHECK_INT(e2.status, CG_OK);
    TH_CHECK_INT(e2.type, REDIS_REPLY_NIL);   /* aborted: the key changed after WATCH */
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "GET %s", key), CG_OK);
    TH_CHECK_STR(res.str, "v1");

    /* Abandoned mid-transaction: release must DISCARD, so nothing commits and the
     * next holder of that connection is not inside someone's MULTI. */
    memset(&r1, 0, sizeof(r1)); memset(&r2, 0, sizeof(r2));
    TH_CHECK_INT(rds_lease_command(l1, NULL, NULL, "WATCH %s", key), CG_OK);
    TH_CHECK_INT(rds_lease_command(l1, NULL, NULL, "MULTI"), CG_OK);
    TH_CHECK_INT(rds_lease_command(l1, on_result, &r1, "SET %s %s", key, "abandoned"), CG_OK);
    TH_CHECK_INT(rds_lease_command(l2, on_result, &r2, "WATCH %s", key), CG_OK);
    rds_lease_release(l1);
    rds_lease_release(l2);
    TH_CHECK(run_until(result_done, &r1, 5000) && run_until(result_done, &r2, 5000));
    TH_CHECK_STR(r1.str, "QUEUED");
    while (n_extra < 8 && (extra[n_extra] = rds_lease_acquire(c)) != NULL)
        n_extra++;
    TH_CHECK_INT(n_extra, cfg.pool_size - 1);   /* one link stays shared */
    for (int i = 0; i < n_extra; i++) {
        TH_CHECK_INT(cmd_wait(c, extra[i], &res, "PING"), CG_OK);
        TH_CHECK_STR(res.str, "PONG");
        rds_lease_release(extra[i]);
    }
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "GET %s", key), CG_OK);
    TH_CHECK_STR(res.str, "v1");
    rds_client_free(c);
}

/* ---- 4. command timeout on a frozen master -------------------------------------------- */

struct batch {
    int n, done, timeouts, other;
    long long last_done;
};

static void batch_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    struct batch *b = arg;

    (void)c;
    (void)r;
    b->done++;
    b->last_done = itk_now_ms();
    if (status == CG_ERR_TIMEOUT)
        b->timeouts++;
    else
        b->other++;
}

static int batch_done(void *arg)
{
    struct batch *b = arg;

    return b->done == b->n;
}

static void test_command_timeout(void)
{
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    struct batch b = {10, 0, 0, 0, 0};
    struct result res;
    rds_stats st;
    const char *name;
    long long t_stop, t_cont;
    int freeze_ms = down_after_ms * 6 / 10 < 600 ? down_after_ms * 6 / 10 : 600;
    int pid, accepted = 0, all_done;
    rds_client *c;

    config_for_stack(&cfg);
    cfg.command_timeout_ms = 200;
    cfg.connect_timeout_ms = 200;
    cfg.reconnect_min_ms = 50;
    cfg.reconnect_max_ms = 400;
    c = client_new(&cfg, &sl);
    TH_REQUIRE(c != NULL);
    TH_REQUIRE(run_until(client_up, c, UP_BOUND_MS));
    name = instance_name(master_port(c));
    TH_REQUIRE(name != NULL);
    pid = itk_stack_pid(name);
    TH_REQUIRE(pid > 0);

    /* Nothing between STOP and CONT may return early. */
    frozen_pid = pid;
    TH_CHECK_INT(kill(pid, SIGSTOP), 0);
    t_stop = itk_now_ms();
    for (int i = 0; i < b.n; i++)
        accepted += rds_command(c, batch_reply, &b, "INCR %s", "it_rds:timeout") == CG_OK;
    all_done = run_until(batch_done, &b, freeze_ms);
    run_until(itk_never, NULL, (int)(t_stop + freeze_ms - itk_now_ms()));
    kill(pid, SIGCONT);
    t_cont = itk_now_ms();
    frozen_pid = 0;

    TH_CHECK_INT(accepted, b.n);
    TH_CHECK(all_done);
    TH_CHECK_INT(b.timeouts, b.n);
    TH_CHECK_INT(b.other, 0);
    fprintf(stdout, "    %d commands failed with timeout %lld ms after SIGSTOP (timeout %d ms, "
            "frozen %lld ms)\n", b.timeouts, b.last_done - t_stop, cfg.command_timeout_ms,
            t_cont - t_stop);
    TH_CHECK(b.last_done - t_stop < cfg.command_timeout_ms + 150);

    TH_CHECK(run_until(client_up, c, 5000));
    fprintf(stdout, "    up again %lld ms after SIGCONT\n", itk_now_ms() - t_cont);
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "INCR %s", "it_rds:timeout"), CG_OK);
    TH_CHECK_INT(res.type, REDIS_REPLY_INTEGER);
    rds_client_stats(c, &st);
    TH_CHECK(st.timeouts >= (uint64_t)b.n);
    rds_client_free(c);
}

/* ---- 5. every callback exactly once, also when the client is freed ------------------- */

#define ONCE_N 1000

struct once {
    int calls[ONCE_N];
    int total, ok, state, other;
};

struct once_arg {
    struct once *o;
    int i;
};

static void once_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    struct once_arg *a = arg;

    (void)c;
    (void)r;
    a->o->calls[a->i]++;
    a->o->total++;
    if (status == CG_OK)
        a->o->ok++;
    else if (status == CG_ERR_STATE)
        a->o->state++;
    else
        a->o->other++;
}

static int half_done(void *arg)
{
    return ((struct once *)arg)->total >= ONCE_N / 2;
}

/* Sends ONCE_N commands, runs the loop for run_ms (0: not at all), frees the client. */
static void once_round(int run_ms, const char *label)
{
    static struct once o;
    static struct once_arg args[ONCE_N];
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    int accepted = 0, once = 1;
    rds_client *c;

    memset(&o, 0, sizeof(o));
    config_for_stack(&cfg);
    c = client_new(&cfg, &sl);
    TH_REQUIRE(c != NULL);
    /* Every link up, so that all of them carry pending commands. */
    TH_REQUIRE(run_until(client_up, c, UP_BOUND_MS));
    run_for(200);
    for (int i = 0; i < ONCE_N; i++) {
        args[i].o = &o;
        args[i].i = i;
        accepted += rds_command(c, once_reply, &args[i], "INCR %s", "it_rds:once") == CG_OK;
    }
    if (run_ms > 0)
        run_until(half_done, &o, run_ms);
    rds_client_free(c);
    for (int i = 0; i < ONCE_N; i++)
        once &= o.calls[i] == 1;
    fprintf(stdout, "    %s: %d accepted, %d callbacks (%d ok, %d state, %d other)\n", label,
            accepted, o.total, o.ok, o.state, o.other);
    TH_CHECK_INT(accepted, ONCE_N);
    TH_CHECK_INT(o.total, ONCE_N);
    TH_CHECK(once);
    TH_CHECK_INT(o.other, 0);
}

static void test_callbacks_exactly_once(void)
{
    once_round(0, "free at once");
    once_round(5000, "free half way");
}

static void test_bounded_pending(void)
{
    static struct once o;
    static struct once_arg args[20];
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    rds_stats st;
    rds_client *c;
    int accepted = 0;

    memset(&o, 0, sizeof(o));
    config_for_stack(&cfg);
    cfg.pool_size = 1;
    cfg.max_pending = 10;
    c = client_new(&cfg, &sl);
    TH_REQUIRE(c != NULL);
    TH_REQUIRE(run_until(client_up, c, UP_BOUND_MS));
    for (int i = 0; i < 20; i++) {
        args[i].o = &o;
        args[i].i = i;
        accepted += rds_command(c, once_reply, &args[i], "PING") == CG_OK;
    }
    TH_CHECK_INT(accepted, 10);
    TH_CHECK_INT(rds_command(c, NULL, NULL, "PING"), CG_ERR_FULL);
    run_until(half_done, &o, 100);   /* ONCE_N / 2 is never reached: just run */
    TH_CHECK_INT(o.total, 10);
    TH_CHECK_INT(o.ok, 10);
    TH_CHECK_INT(rds_command(c, NULL, NULL, "PING"), CG_OK);   /* room again */
    rds_client_stats(c, &st);
    TH_CHECK_INT(st.rejected, 11);
    rds_client_free(c);
}

/* ---- 6. fail fast without a master ---------------------------------------------------- */

static int full_backlog(int *port, int fills[4])
{
    struct sockaddr_in a;
    int fd = itk_silent_listener(port);

    if (fd >= 0 && listen(fd, 0) != 0) {
        close(fd);
        fd = -1;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)*port);
    for (int i = 0; i < 4; i++) {
        fills[i] = fd >= 0 ? socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0) : -1;
        if (fills[i] >= 0 && connect(fills[i], (struct sockaddr *)&a, sizeof(a)) != 0) {
            /* EINPROGRESS, or the queue is already full: fine either way */
        }
    }
    return fd;
}

/* Sends the log to an unlinked temp file until capture_log_end(), which
 * returns what was logged (malloc'd; NULL on failure) and echoes it to stderr. */
static void capture_log_begin(int *fd)
{
    char path[] = "/tmp/it_rds_log_XXXXXX";

    *fd = mkstemp(path);
    if (*fd >= 0) {
        unlink(path);
        log_set_fd(*fd);
    }
}

static char *capture_log_end(int fd)
{
    char *text = NULL;
    off_t len;

    log_set_fd(2);
    if (fd < 0)
        return NULL;
    len = lseek(fd, 0, SEEK_END);
    text = len >= 0 ? calloc(1, (size_t)len + 1) : NULL;
    if (text != NULL && pread(fd, text, (size_t)len, 0) == len)
        fputs(text, stderr);
    close(fd);
    return text;
}

static void test_fail_fast(void)
{
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    char list[256], *logged = NULL;
    rds_stats st;
    rds_client *c;
    long long t0;
    int hole_port = 0, hole = itk_silent_listener(&hole_port);
    int full_port = 0, fills[4], full = full_backlog(&full_port, fills);
    int rc, log_fd = -1;

    TH_REQUIRE(hole >= 0 && full >= 0);
    snprintf(list, sizeof(list), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", itk_closed_port(),
             hole_port, full_port);
    capture_log_begin(&log_fd);
    rds_config_defaults(&cfg);
    cfg.sentinels = list;
    cfg.master_name = "nomaster";
    cfg.connect_timeout_ms = 200;
    cfg.command_timeout_ms = 200;
    cfg.reconnect_min_ms = 50;
    cfg.reconnect_max_ms = 200;
    c = client_new(&cfg, &sl);
    TH_REQUIRE(c != NULL);   /* (leaks two sockets on failure: the test ends anyway) */

    t0 = itk_now_ms();
    rc = rds_command(c, NULL, NULL, "PING");
    TH_CHECK_INT(rc, CG_ERR_STATE);
    run_for(2000);   /* several rounds: refused, the black hole, the full backlog */
    TH_CHECK(!rds_client_is_up(c));
    TH_CHECK_STR(rds_master_addr(c), "");
    TH_CHECK_INT(sl.ups, 0);
    for (int i = 0; i < 100; i++)
        TH_CHECK_INT(rds_command(c, NULL, NULL, "SET %s %d", "k", i), CG_ERR_STATE);
    TH_CHECK(rds_lease_acquire(c) == NULL);
    rds_client_stats(c, &st);
    TH_CHECK_INT(st.commands, 0);
    TH_CHECK_INT(st.rejected, 101);
    t0 = itk_now_ms();
    rds_client_free(c);
    TH_CHECK(itk_now_ms() - t0 < 100);
    logged = capture_log_end(log_fd);
    close(hole);
    close(full);
    for (int i = 0; i < 4; i++)
        if (fills[i] >= 0)
            close(fills[i]);
    /* Each kind of dead sentinel was met and bounded. */
    TH_CHECK(logged != NULL && strstr(logged, "Connection refused") != NULL);
    TH_CHECK(logged != NULL && strstr(logged, "no reply within 200 ms") != NULL);
    TH_CHECK(logged != NULL && strstr(logged, "connect timed out after 200 ms") != NULL);
    free(logged);

    /* Bad configuration is refused with a message. */
    {
        cg_error err = {0, ""};
        rds_client *bad = NULL;

        rds_config_defaults(&cfg);
        cfg.sentinels = "127.0.0.1";
        cfg.master_name = "m";
        TH_CHECK_INT(rds_client_new(base, &cfg, NULL, NULL, &bad, &err), CG_ERR_INVALID);
        TH_CHECK(bad == NULL);
        TH_CHECK(strstr(err.msg, "127.0.0.1") != NULL);
    }
}

/* ---- 7. stale sentinel view and READONLY, against a fake sentinel + master -------- */

/* One listener that answers as a sentinel (SENTINEL, SUBSCRIBE) and as a
 * master that says ROLE master but answers every other command with an
 * error: READONLY, what a client meets at a demoted master, or LOADING. */
struct fake {
    struct evconnlistener *lis;
    int port;
    int answer_port;                   /* what get-master-addr-by-name answers */
    const char *replicas;              /* what SENTINEL replicas answers (RESP); NULL: as above */
    const char *role_state;            /* ROLE: a replica with this link state; NULL: master */
    const char *error;                 /* the answer to any other command */
    struct bufferevent *conns[64];
    int subscribed[64];
};

static void bulk(struct evbuffer *out, const char *s)
{
    evbuffer_add_printf(out, "$%zu\r\n%s\r\n", strlen(s), s);
}

/* Bytes used by one complete request "*N\r\n$L\r\n...\r\n"; 0 while incomplete.
 * name gets the first argument, arg1 the second ("" when there is none). */
static size_t fake_parse(const char *p, size_t len, char *name, size_t size, char *arg1,
                         size_t arg1size)
{
    const char *end = p + len, *q = p, *nl = memchr(p, '\n', len);
    long argc, n;

    name[0] = '\0';
    arg1[0] = '\0';
    if (len < 4 || *p != '*' || nl == NULL)
        return 0;
    argc = strtol(p + 1, NULL, 10);
    q = nl + 1;
    for (long i = 0; i < argc; i++) {
        if (q >= end || *q != '$' || (nl = memchr(q, '\n', (size_t)(end - q))) == NULL)
            return 0;
        n = strtol(q + 1, NULL, 10);
        q = nl + 1;
        if (end - q < n + 2)
            return 0;
        if (i == 0)
            snprintf(name, size, "%.*s", (int)n, q);
        if (i == 1)
            snprintf(arg1, arg1size, "%.*s", (int)n, q);
        q += n + 2;
    }
    return (size_t)(q - p);
}

static void fake_read(struct bufferevent *bev, void *arg)
{
    struct fake *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    char name[32], arg1[32], port[16];
    size_t used;

    while (evbuffer_get_length(in) > 0 &&
           (used = fake_parse((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in),
                              name, sizeof(name), arg1, sizeof(arg1))) > 0) {
        evbuffer_drain(in, used);
        if (strcasecmp(name, "SENTINEL") == 0 && strcasecmp(arg1, "replicas") == 0 &&
            f->replicas != NULL) {
            evbuffer_add(out, f->replicas, strlen(f->replicas));
        } else if (strcasecmp(name, "SENTINEL") == 0) {
            snprintf(port, sizeof(port), "%d", f->answer_port);
            evbuffer_add_printf(out, "*2\r\n");
            bulk(out, "127.0.0.1");
            bulk(out, port);
        } else if (strcasecmp(name, "SUBSCRIBE") == 0) {
            for (int i = 0; i < 64; i++)
                f->subscribed[i] |= f->conns[i] == bev;
            evbuffer_add_printf(out, "*3\r\n");
            bulk(out, "subscribe");
            bulk(out, "+switch-master");
            evbuffer_add_printf(out, ":1\r\n");
        } else if (strcasecmp(name, "ROLE") == 0 && f->role_state != NULL) {
            evbuffer_add_printf(out, "*5\r\n");
            bulk(out, "slave");
            bulk(out, "127.0.0.1");
            evbuffer_add_printf(out, ":%d\r\n", f->answer_port);
            bulk(out, f->role_state);
            evbuffer_add_printf(out, ":-1\r\n");
        } else if (strcasecmp(name, "ROLE") == 0) {
            evbuffer_add_printf(out, "*3\r\n");
            bulk(out, "master");
            evbuffer_add_printf(out, ":0\r\n*0\r\n");
        } else {
            evbuffer_add_printf(out, "-%s\r\n", f->error);
        }
    }
}

static void fake_drop(struct fake *f, struct bufferevent *bev)
{
    for (int i = 0; i < 64; i++) {
        if (f->conns[i] == bev) {
            f->conns[i] = NULL;
            f->subscribed[i] = 0;
        }
    }
    bufferevent_free(bev);
}

static void fake_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fake_drop(arg, bev);
}

static void fake_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                        int salen, void *arg)
{
    struct fake *f = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    int slot = 0;

    (void)lis;
    (void)sa;
    (void)salen;
    while (slot < 64 && f->conns[slot] != NULL)
        slot++;
    if (bev == NULL || slot == 64) {
        if (bev != NULL)
            bufferevent_free(bev);
        return;
    }
    f->conns[slot] = bev;
    bufferevent_setcb(bev, fake_read, NULL, fake_event, f);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static int fake_start(struct fake *f)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    memset(f, 0, sizeof(*f));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lis = evconnlistener_new_bind(base, fake_accept, f,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                     (struct sockaddr *)&a, sizeof(a));
    if (f->lis != NULL &&
        getsockname(evconnlistener_get_fd(f->lis), (struct sockaddr *)&a, &len) == 0)
        f->port = ntohs(a.sin_port);
    return f->port > 0 ? CG_OK : CG_ERR_IO;
}

static void fake_stop(struct fake *f)
{
    for (int i = 0; i < 64; i++)
        if (f->conns[i] != NULL)
            fake_drop(f, f->conns[i]);
    if (f->lis != NULL)
        evconnlistener_free(f->lis);
}

static void fake_publish_switch(struct fake *f, int from, int to)
{
    char msg[128];

    snprintf(msg, sizeof(msg), "fake 127.0.0.1 %d 127.0.0.1 %d", from, to);
    for (int i = 0; i < 64; i++) {
        if (f->conns[i] != NULL && f->subscribed[i]) {
            struct evbuffer *out = bufferevent_get_output(f->conns[i]);

            evbuffer_add_printf(out, "*3\r\n");
            bulk(out, "message");
            bulk(out, "+switch-master");
            bulk(out, msg);
        }
    }
}

struct at_port {
    rds_client *c;
    int port;
};

static int up_at(void *arg)
{
    struct at_port *a = arg;

    return rds_client_is_up(a->c) && master_port(a->c) == a->port;
}

static int addr_at(void *arg)
{
    struct at_port *a = arg;

    return master_port(a->c) == a->port;
}

static void test_stale_view_and_readonly(void)
{
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    struct fake f;
    struct result res;
    struct at_port at;
    char list[64], view[300], *colon;
    rds_stats st;
    rds_client *c = NULL;
    long long t0;
    int real_port, replica_port;

    sentinel_master(view, sizeof(view));
    colon = strrchr(view, ':');
    TH_REQUIRE(colon != NULL);
    real_port = atoi(colon + 1);
    replica_port = real_port == port_a ? port_b : port_a;
    TH_REQUIRE(fake_start(&f) == CG_OK);
    f.answer_port = f.port;   /* first, the fake itself is "the master" */
    snprintf(list, sizeof(list), "127.0.0.1:%d", f.port);
    rds_config_defaults(&cfg);
    cfg.sentinels = list;
    cfg.master_name = "fake";
    cfg.reconnect_max_ms = 400;
    c = client_new(&cfg, &sl);
    if (c == NULL)
        fake_stop(&f);
    TH_REQUIRE(c != NULL);
    at.c = c;

    /* LOADING from "the master": let go of it, come back after a backoff. */
    at.port = f.port;
    f.error = "LOADING Redis is loading the dataset in memory";
    TH_CHECK(run_until(up_at, &at, 3000));
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "SET %s %s", "it_rds:ro", "x"), CG_OK);
    TH_CHECK(strncmp(res.str, "LOADING", 7) == 0);
    TH_CHECK(!rds_client_is_up(c));
    t0 = itk_now_ms();
    TH_CHECK(run_until(up_at, &at, 3000));
    TH_CHECK(itk_now_ms() - t0 >= cfg.reconnect_min_ms - 20);

    /* READONLY from "the master": rediscover at once, follow the sentinel elsewhere. */
    f.error = "READONLY You can't write against a read only replica.";
    f.answer_port = real_port;
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "SET %s %s", "it_rds:ro", "x"), CG_OK);
    TH_CHECK_INT(res.type, REDIS_REPLY_ERROR);
    TH_CHECK(strncmp(res.str, "READONLY", 8) == 0);
    at.port = real_port;
    TH_CHECK(run_until(up_at, &at, 3000));
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "SET %s %s", "it_rds:ro", "x"), CG_OK);
    TH_CHECK_STR(res.str, "OK");

    /* +switch-master to a replica (a stale view): ROLE says slave, never ready. */
    f.answer_port = replica_port;
    fake_publish_switch(&f, real_port, replica_port);
    at.port = replica_port;
    TH_CHECK(run_until(addr_at, &at, 3000));
    run_for(800);
    TH_CHECK(!rds_client_is_up(c));
    TH_CHECK_INT(rds_command(c, NULL, NULL, "PING"), CG_ERR_STATE);

    /* The view heals: the next +switch-master brings the client back at once. */
    f.answer_port = real_port;
    fake_publish_switch(&f, replica_port, real_port);
    at.port = real_port;
    TH_CHECK(run_until(up_at, &at, 1000));
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "PING"), CG_OK);
    rds_client_stats(c, &st);
    TH_CHECK_INT(st.failovers, 3);
    rds_client_free(c);
    fake_stop(&f);
}

/* ---- 9. replica mode against the real stack ----------------------------------------- */

#define FALLBACK_BOUND_MS 5000    /* replica killed -> reads served by the master */
#define MOVE_BACK_BOUND_MS 30000  /* replica restarted -> reads back on it */
#define REPLICATION_BOUND_MS 5000 /* a write on the master readable on the replica */

struct served {
    rds_client *c;
    rds_role role;
    const char *addr;
};

/* Up, on the given kind of server, at the given address. */
static int served_as(void *arg)
{
    struct served *s = arg;

    return rds_client_is_up(s->c) && rds_server_role(s->c) == s->role &&
           strcmp(rds_server_addr(s->c), s->addr) == 0;
}

struct poll_get {
    rds_client *c;
    const char *key, *want;
    struct result res;
    int in_flight, seen;
};

/* Keeps one GET in flight until one answers want. */
static int poll_get_seen(void *arg)
{
    struct poll_get *p = arg;

    if (p->in_flight && p->res.done) {
        p->in_flight = 0;
        p->seen = p->res.status == CG_OK && p->res.type == REDIS_REPLY_STRING &&
                  strcmp(p->res.str, p->want) == 0;
    }
    if (!p->seen && !p->in_flight) {
        memset(&p->res, 0, sizeof(p->res));
        p->in_flight = rds_command(p->c, on_result, &p->res, "GET %s", p->key) == CG_OK;
    }
    return p->seen;
}

static int poll_get_idle(void *arg)
{
    struct poll_get *p = arg;

    return !p->in_flight || p->res.done;
}

/* 1 when a GET of key through c answers want within timeout_ms. */
static int get_until(rds_client *c, const char *key, const char *want, int timeout_ms)
{
    struct poll_get p;
    int seen;

    memset(&p, 0, sizeof(p));
    p.c = c;
    p.key = key;
    p.want = want;
    seen = run_until(poll_get_seen, &p, timeout_ms);
    /* The callback points at p: wait for it (the client answers within its timeout). */
    if (!run_until(poll_get_idle, &p, 5000))
        TH_FAIL_AT("a GET through the client got no callback");
    return seen;
}

static int count_in(const char *text, const char *what)
{
    int n = 0;

    for (const char *p = text; p != NULL && (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

static void test_replica_reads(void)
{
    rds_config cfg;
    struct state_log msl = {0, 0, 0}, rsl = {0, 0, 0};
    struct served want;
    struct rejoin j = {0, 0};
    struct result res;
    rds_stats st0, st;
    char view[300], view_after[300], replica_addr[64], token[64], *colon, *logged = NULL;
    const char *key = "it_rds:replica", *replica_name = NULL;
    rds_client *m = NULL, *r = NULL;
    long long t0;
    int killed = 0, log_fd = -1, replica_port = 0, pid;

    sentinel_master(view, sizeof(view));
    colon = strrchr(view, ':');
    TH_REQUIRE(colon != NULL);
    replica_port = atoi(colon + 1) == port_a ? port_b : port_a;
    replica_name = instance_name(replica_port);
    snprintf(replica_addr, sizeof(replica_addr), "127.0.0.1:%d", replica_port);
    fprintf(stdout, "    master %s, replica %s (%s)\n", view, replica_addr, replica_name);

    config_for_stack(&cfg);
    TH_CHECK_INT(cfg.role, RDS_ROLE_MASTER);   /* the default stays master mode */
    m = client_new(&cfg, &msl);
    cfg.role = RDS_ROLE_REPLICA;
    cfg.reconnect_max_ms = 500;                /* retry period on the fallback */
    t0 = itk_now_ms();
    r = client_new(&cfg, &rsl);
    TH_REQUIRE_OR_DONE(m != NULL && r != NULL);
    TH_REQUIRE_OR_DONE(run_until(client_up, m, UP_BOUND_MS));
    want = (struct served){r, RDS_ROLE_REPLICA, replica_addr};
    TH_REQUIRE_OR_DONE(run_until(served_as, &want, UP_BOUND_MS));
    fprintf(stdout, "    replica client on %s (replica) in %lld ms\n", rds_server_addr(r),
            itk_now_ms() - t0);
    TH_CHECK_INT(rds_server_role(m), RDS_ROLE_MASTER);
    TH_CHECK_STR(rds_server_addr(m), view);
    TH_CHECK_STR(rds_master_addr(m), rds_server_addr(m));
    TH_CHECK_STR(rds_master_addr(r), rds_server_addr(r));
    TH_CHECK_INT(cmd_wait(r, NULL, &res, "ROLE"), CG_OK);
    TH_CHECK_STR(res.str, "slave");

    /* A write on the master becomes readable through the replica client. */
    snprintf(token, sizeof(token), "v%d-%lld", (int)getpid(), itk_now_ms());
    TH_CHECK_INT(cmd_wait(m, NULL, &res, "SET %s %s", key, token), CG_OK);
    TH_CHECK_STR(res.str, "OK");
    t0 = itk_now_ms();
    TH_CHECK(get_until(r, key, token, REPLICATION_BOUND_MS));
    fprintf(stdout, "    write on the master read on the replica after %lld ms\n",
            itk_now_ms() - t0);

    /* Writes are not policed; READONLY is the caller's and moves nothing. */
    rds_client_stats(r, &st0);
    TH_CHECK_INT(cmd_wait(r, NULL, &res, "SET %s %s", key, "from-replica-client"), CG_OK);
    TH_CHECK_INT(res.type, REDIS_REPLY_ERROR);
    TH_CHECK(strncmp(res.str, "READONLY", 8) == 0);
    run_for(300);
    TH_CHECK(served_as(&want));
    rds_client_stats(r, &st);
    TH_CHECK_INT(st.connects, st0.connects);
    TH_CHECK_INT(st.failovers, st0.failovers);
    TH_CHECK_INT(rsl.downs, 0);
    TH_CHECK(rds_lease_acquire(r) == NULL);   /* transactions belong to the master */

    /* SIGKILL the replica: reads fall back to the master, said once. The kill is
     * sent from here, not by `stack kill`, so that the loop runs at once (the
     * script blocks it while it waits) and the client meets a replica the
     * sentinels still list as healthy. */
    pid = itk_stack_pid(replica_name);
    TH_REQUIRE_OR_DONE(pid > 0);
    capture_log_begin(&log_fd);
    fprintf(stdout, "    SIGKILL %s (pid %d)\n", replica_name, pid);
    t0 = itk_now_ms();
    TH_REQUIRE_OR_DONE(kill(pid, SIGKILL) == 0);
    killed = 1;
    want = (struct served){r, RDS_ROLE_MASTER, view};
    TH_CHECK(run_until(served_as, &want, FALLBACK_BOUND_MS));
    fprintf(stdout, "    reads on the master %s %lld ms after the kill\n", rds_server_addr(r),
            itk_now_ms() - t0);
    TH_CHECK(get_until(r, key, token, 1000));
    TH_CHECK_INT(cmd_wait(r, NULL, &res, "ROLE"), CG_OK);
    TH_CHECK_STR(res.str, "master");
    /* Several retry periods on the fallback: it stays, quietly. */
    run_for(4 * cfg.reconnect_max_ms);
    TH_CHECK(served_as(&want));

    TH_CHECK_INT(itk_script("stack", "start-one %s", replica_name), 0);
    killed = 0;
    t0 = itk_now_ms();
    want = (struct served){r, RDS_ROLE_REPLICA, replica_addr};
    TH_CHECK(run_until(served_as, &want, MOVE_BACK_BOUND_MS));
    fprintf(stdout, "    reads back on the replica %s %lld ms after it was started\n",
            rds_server_addr(r), itk_now_ms() - t0);
    logged = capture_log_end(log_fd);
    log_fd = -1;
    TH_CHECK_INT(count_in(logged, "reading from the master"), 1);
    TH_CHECK_INT(count_in(logged, "is usable again"), 1);
    TH_CHECK(get_until(r, key, token, 1000));
    TH_CHECK_INT(cmd_wait(r, NULL, &res, "ROLE"), CG_OK);
    TH_CHECK_STR(res.str, "slave");
    rds_client_stats(r, &st);
    TH_CHECK_INT(st.fallbacks, 1);
    TH_CHECK_INT(msl.downs, 0);   /* the master-mode client never noticed */

done:
    if (log_fd >= 0)
        free(capture_log_end(log_fd));
    free(logged);
    if (killed && replica_name != NULL)
        TH_CHECK_INT(itk_script("stack", "start-one %s", replica_name), 0);
    rds_client_free(r);
    rds_client_free(m);
    /* The stack as it was: the same master, the replica connected and seen healthy. */
    sentinel_master(view_after, sizeof(view_after));
    TH_CHECK_STR(view_after, view);
    j.port = replica_port;
    TH_CHECK(run_until(rejoined, &j, REJOIN_BOUND_MS));
}

/* ---- 10. replica choice, against a fake sentinel ---------------------------------------- */

struct fake_replica {
    int port;
    const char *flags;
    const char *link;   /* master-link-status */
};

struct downs_since {
    const struct state_log *sl;
    int downs;
};

static int went_down(void *arg)
{
    struct downs_since *d = arg;

    return d->sl->downs > d->downs;
}

/* SENTINEL replicas' answer: one flat field/value array per replica. */
static void fake_replicas_resp(char *buf, size_t size, const struct fake_replica *list, int n)
{
    size_t len = (size_t)snprintf(buf, size, "*%d\r\n", n);

    for (int i = 0; i < n && len < size; i++) {
        char name[32], port[16];
        const char *fields[] = {"name", name, "ip", "127.0.0.1", "port", port,
                                "runid", "0000", "flags", list[i].flags,
                                "master-link-status", list[i].link, "slave-priority", "100"};
        size_t nf = sizeof(fields) / sizeof(fields[0]);

        snprintf(name, sizeof(name), "127.0.0.1:%d", list[i].port);
        snprintf(port, sizeof(port), "%d", list[i].port);
        len += (size_t)snprintf(buf + len, size - len, "*%zu\r\n", nf);
        for (size_t k = 0; k < nf && len < size; k++)
            len += (size_t)snprintf(buf + len, size - len, "$%zu\r\n%s\r\n", strlen(fields[k]),
                                    fields[k]);
    }
}

static void test_replica_choice(void)
{
    static char resp[4096];
    rds_config cfg;
    struct state_log sl = {0, 0, 0};
    struct fake f;
    struct served want;
    struct result res;
    char list[64], view[300], master_addr[300], replica_addr[64], fake_addr[64], *colon;
    struct downs_since dl;
    rds_stats st, st0;
    rds_client *c = NULL;
    int real_port, replica_port;
    int dead1 = itk_closed_port(), dead2 = itk_closed_port(), dead3 = itk_closed_port();

    /* Configuration: master mode by default, a bad role refused. */
    {
        cg_error err = {0, ""};
        rds_client *bad = NULL;

        rds_config_defaults(&cfg);
        TH_CHECK_INT(cfg.role, RDS_ROLE_MASTER);
        cfg.sentinels = "127.0.0.1:1";
        cfg.master_name = "m";
        cfg.role = (rds_role)7;
        TH_CHECK_INT(rds_client_new(base, &cfg, NULL, NULL, &bad, &err), CG_ERR_INVALID);
        TH_CHECK(bad == NULL);
        TH_CHECK(strstr(err.msg, "role") != NULL);
    }

    sentinel_master(view, sizeof(view));
    colon = strrchr(view, ':');
    TH_REQUIRE(colon != NULL);
    real_port = atoi(colon + 1);
    replica_port = real_port == port_a ? port_b : port_a;
    snprintf(master_addr, sizeof(master_addr), "%s", view);
    snprintf(replica_addr, sizeof(replica_addr), "127.0.0.1:%d", replica_port);
    TH_REQUIRE(fake_start(&f) == CG_OK);
    f.answer_port = real_port;
    f.error = "ERR not a server";

    /* Every replica unhealthy in its own way (the real one "disconnected"): the master. */
    {
        const struct fake_replica sick[] = {
            {dead1, "slave,s_down", "ok"},
            {dead2, "slave", "err"},
            {dead3, "slave,o_down", "ok"},
            {replica_port, "slave,disconnected", "ok"},
        };

        fake_replicas_resp(resp, sizeof(resp), sick, 4);
    }
    f.replicas = resp;
    snprintf(list, sizeof(list), "127.0.0.1:%d", f.port);
    rds_config_defaults(&cfg);
    cfg.sentinels = list;
    cfg.master_name = "fake";
    cfg.role = RDS_ROLE_REPLICA;
    cfg.reconnect_max_ms = 300;
    cfg.connect_timeout_ms = 300;
    c = client_new(&cfg, &sl);
    TH_REQUIRE_OR_DONE(c != NULL);
    want = (struct served){c, RDS_ROLE_MASTER, master_addr};
    TH_CHECK(run_until(served_as, &want, 3000));
    run_for(3 * cfg.reconnect_max_ms);   /* retries: still nothing healthy */
    TH_CHECK(served_as(&want));
    rds_client_stats(c, &st);
    TH_CHECK_INT(st.fallbacks, 1);
    TH_CHECK_INT(st.failovers, 0);

    /* Healthy by the sentinel but dead (three) and the real one: it ends on the real one,
     * whatever the ranking puts first. */
    {
        const struct fake_replica mixed[] = {
            {dead1, "slave", "ok"},
            {replica_port, "slave", "ok"},
            {dead2, "slave", "ok"},
            {dead3, "slave", "ok"},
        };

        fake_replicas_resp(resp, sizeof(resp), mixed, 4);
    }
    want = (struct served){c, RDS_ROLE_REPLICA, replica_addr};
    TH_CHECK(run_until(served_as, &want, 3000));
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "ROLE"), CG_OK);
    TH_CHECK_STR(res.str, "slave");
    rds_client_stats(c, &st);
    TH_CHECK_INT(st.failovers, 1);

    /* +switch-master: drop the pool and choose again (the same healthy replica). */
    dl.sl = &sl;
    dl.downs = sl.downs;
    fake_publish_switch(&f, real_port, real_port);
    TH_CHECK(run_until(went_down, &dl, 3000));
    TH_CHECK(run_until(served_as, &want, 3000));

    /* The replica turns unhealthy and a switch is announced: back to the master. */
    {
        const struct fake_replica gone[] = {{replica_port, "slave,s_down", "ok"}};

        fake_replicas_resp(resp, sizeof(resp), gone, 1);
    }
    fake_publish_switch(&f, real_port, real_port);
    want = (struct served){c, RDS_ROLE_MASTER, master_addr};
    TH_CHECK(run_until(served_as, &want, 3000));
    rds_client_stats(c, &st);
    TH_CHECK_INT(st.fallbacks, 2);

    /* An empty list is no replica; a malformed one is ignored, not trusted. */
    f.replicas = "*0\r\n";
    run_for(2 * cfg.reconnect_max_ms);
    TH_CHECK(served_as(&want));
    f.replicas = "*2\r\n$3\r\nfoo\r\n*1\r\n:1\r\n";
    run_for(2 * cfg.reconnect_max_ms);
    TH_CHECK(served_as(&want));
    rds_client_stats(c, &st);
    TH_CHECK_INT(st.fallbacks, 2);   /* staying on the master is not a new fallback */

    /* A replica whose ROLE says its link is still "sync" is not used; once
     * "connected" it is (the fake plays that replica). */
    f.role_state = "sync";
    {
        const struct fake_replica syncing[] = {{f.port, "slave", "ok"}};

        fake_replicas_resp(resp, sizeof(resp), syncing, 1);
    }
    f.replicas = resp;
    run_for(3 * cfg.reconnect_max_ms);
    TH_CHECK(served_as(&want));
    f.role_state = "connected";
    snprintf(fake_addr, sizeof(fake_addr), "127.0.0.1:%d", f.port);
    want = (struct served){c, RDS_ROLE_REPLICA, fake_addr};
    TH_CHECK(run_until(served_as, &want, 3000));

    /* READONLY from the replica is the caller's: nothing is dropped or asked. */
    f.error = "READONLY You can't write against a read only replica.";
    rds_client_stats(c, &st0);
    TH_CHECK_INT(cmd_wait(c, NULL, &res, "SET %s %s", "it_rds:ro", "x"), CG_OK);
    TH_CHECK_INT(res.type, REDIS_REPLY_ERROR);
    TH_CHECK(strncmp(res.str, "READONLY", 8) == 0);
    run_for(3 * cfg.reconnect_max_ms);
    TH_CHECK(served_as(&want));
    rds_client_stats(c, &st);
    TH_CHECK_INT(st.connects, st0.connects);
    TH_CHECK_INT(st.failovers, st0.failovers);

done:
    rds_client_free(c);
    fake_stop(&f);
}

/* ---- main ------------------------------------------------------------------------------------ */

static const struct th_test tests[] = {
    {"discovery", test_discovery},
    {"failover", test_failover},
    {"lease_transactions", test_lease_transactions},
    {"command_timeout", test_command_timeout},
    {"callbacks_exactly_once", test_callbacks_exactly_once},
    {"bounded_pending", test_bounded_pending},
    {"fail_fast", test_fail_fast},
    {"stale_view_and_readonly", test_stale_view_and_readonly},
    {"replica_reads", test_replica_reads},
    {"replica_choice", test_replica_choice},
};

int main(int argc, char **argv)
{
    const char *level = itk_env("LOG_LEVEL", NULL);
    int lvl = LOG_LEVEL_INFO, rc;

    log_set_program("it_rds");
    if (level != NULL && log_level_parse(level, &lvl) == CG_OK)
        log_set_level(lvl);
    sentinels = itk_env("SENTINEL_ADDRS", NULL);
    master_name = itk_env("SENTINEL_MASTER_NAME", NULL);
    repo_dir = itk_env("REPO_DIR", NULL);
    if (sentinels == NULL || master_name == NULL || repo_dir == NULL || !itk_env("REDIS_A_PORT", NULL) ||
        !itk_env("REDIS_B_PORT", NULL)) {
        fprintf(stdout, "it_rds: needs the stack environment (run/stack.env: SENTINEL_ADDRS, "
                "SENTINEL_MASTER_NAME, REDIS_A_PORT, REDIS_B_PORT) and REPO_DIR\n");
        fprintf(stdout, "0 passed, 1 failed\n");
        return 1;
    }
    port_a = atoi(itk_env("REDIS_A_PORT", NULL));
    port_b = atoi(itk_env("REDIS_B_PORT", NULL));
    down_after_ms = itk_env("SENTINEL_DOWN_AFTER_MS", NULL) ? atoi(itk_env("SENTINEL_DOWN_AFTER_MS", NULL)) : 1000;

    atexit(thaw);
    signal(SIGINT, thaw_on_signal);
    signal(SIGTERM, thaw_on_signal);
    signal(SIGABRT, thaw_on_signal);
    signal(SIGSEGV, thaw_on_signal);
    signal(SIGPIPE, SIG_IGN);

    base = event_base_new();
    rc = th_main("it_rds", tests, TH_TABLE_LEN(tests), argc, argv);
    event_base_free(base);
    return rc;
}
