/* it_mq.c - integration tests of the RabbitMQ client (common/src/mq.c)
 * against a real broker.
 *
 * The broker comes from the environment (RABBITMQ_HOST, RABBITMQ_PORT,
 * RABBITMQ_USER, RABBITMQ_PASSWORD_FILE, RABBITMQ_VHOST), as written by
 * `scripts/stack start` into run/stack.env; the restart test runs
 * `$REPO_DIR/scripts/stack restart rabbitmq` (or $IT_MQ_RESTART_CMD), and the
 * queue-stats fault test freezes the broker (SIGSTOP, SIGCONT on any exit)
 * and then runs `scripts/stack kill rabbitmq` and `start-one rabbitmq`.
 * Every test uses its own queues named it_mq.<pid>.<test> and deletes them
 * through a plain librabbitmq connection; every wait runs the event loop
 * under a deadline. IT_MQ_N sets the message count of the round-trip test
 * (default 1000), IT_MQ_LOG the log level (default warn). */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mq.h"
#include "itkit.h"
#include "testhelp.h"

/* Like TH_REQUIRE, but jumps to the test's cleanup instead of returning. */
static itk_amqp it_env;

/* Loads the broker address; the password is read from its file. */
static int it_env_load(void)
{
    return itk_amqp_load(&it_env, "guest", "/");
}

static void it_config(mq_config *cfg, const char *name)
{
    mq_config_defaults(cfg);
    cfg->host = it_env.host;
    cfg->port = it_env.port;
    cfg->user = it_env.user;
    cfg->password = it_env.password;
    cfg->vhost = it_env.vhost;
    cfg->name = name;
    cfg->reconnect_max_ms = 1000;
}

static void it_qname(char *buf, size_t n, const char *suffix)
{
    snprintf(buf, n, "it_mq.%d.%s", (int)getpid(), suffix);
}

/* ---- bounded waits on the event loop ------------------------------------ */

typedef int (*it_pred)(void *arg);

/* Runs the loop until pred(arg) holds (1) or timeout_ms passes (0); with no
 * pred it just runs the loop for timeout_ms. */
static int it_wait(struct event_base *base, it_pred pred, void *arg, int timeout_ms)
{
    return itk_run_until(base, pred ? pred : itk_never, arg, timeout_ms);
}

static int it_pred_up(void *c)
{
    return mq_client_is_up(c);
}

/* ---- a plain librabbitmq connection, for checks and cleanup -------------- */

static amqp_connection_state_t it_admin_open(void)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = conn ? amqp_tcp_socket_new(conn) : NULL;
    struct timeval tv = {5, 0};
    amqp_rpc_reply_t r;

    if (sock == NULL || amqp_socket_open_noblock(sock, it_env.host, it_env.port, &tv) != AMQP_STATUS_OK)
        goto err;
    amqp_set_rpc_timeout(conn, &tv);
    r = amqp_login(conn, it_env.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, it_env.user,
                   it_env.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        goto err;
    amqp_channel_open(conn, 1);
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)
        goto err;
    return conn;
err:
    if (conn)
        amqp_destroy_connection(conn);
    return NULL;
}

static void it_admin_close(amqp_connection_state_t conn)
{
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

/* Ready messages in queue (passive declare), -1 when it cannot tell. */
static long it_queue_count(const char *queue)
{
    amqp_connection_state_t conn = it_admin_open();
    amqp_queue_declare_ok_t *ok;
    long n = -1;

    if (conn == NULL)
        return -1;
    ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    if (ok)
        n = (long)ok->message_count;
    it_admin_close(conn);
    return n;
}

/* Deletes the queues and exchanges named (NULL-terminated lists). */
static void it_cleanup(const char *const *queues, const char *const *exchanges)
{
    amqp_connection_state_t conn = it_admin_open();

    if (conn == NULL)
        return;
    for (; queues && *queues; queues++)
        amqp_queue_delete(conn, 1, amqp_cstring_bytes(*queues), 0, 0);
    for (; exchanges && *exchanges; exchanges++)
        amqp_exchange_delete(conn, 1, amqp_cstring_bytes(*exchanges), 0);
    it_admin_close(conn);
}

/* ---- 1. publish -> confirm -> consume -> ack ------------------------------ */

static struct {
    int n;
    char queue[128];
    signed char *confirm;     /* per message: result + 1, 0 = none yet */
    int *seen;
    int confirmed, acked, bad_confirm;
    int received, bad;
    mq_client *c;
} T1;

static void t1_body(char *buf, size_t n, int i)
{
    snprintf(buf, n, "{\"i\":%d,\"pad\":\"%s\"}", i,
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
}

static void t1_on_confirm(mq_client *c, int result, void *arg)
{
    int i = (int)(intptr_t)arg;

    (void)c;
    if (T1.confirm[i] != 0)
        T1.bad_confirm++;
    T1.confirm[i] = (signed char)(result + 1);
    T1.confirmed++;
    if (result == MQ_PUBLISH_ACKED)
        T1.acked++;
}

static void t1_on_delivery(mq_client *c, mq_message *m, void *arg)
{
    char want[256], id[64];
    int i = -1;

    (void)arg;
    T1.received++;
    if (m->message_id == NULL || sscanf(m->message_id, "m-%d", &i) != 1 || i < 0 || i >= T1.n) {
        T1.bad++;
        goto done;
    }
    T1.seen[i]++;
    t1_body(want, sizeof(want), i);
    if (m->body_len != strlen(want) || memcmp(m->body, want, m->body_len) != 0 || m->body[m->body_len])
        T1.bad++;
    snprintf(id, sizeof(id), "saga-%d", i);
    if (!m->correlation_id || strcmp(m->correlation_id, id) != 0 || !m->reply_to ||
        strcmp(m->reply_to, "it.reply") != 0 || !m->type || strcmp(m->type, "it.t1") != 0 ||
        !m->content_type || strcmp(m->content_type, "application/json") != 0 ||
        strcmp(m->exchange, "") != 0 || strcmp(m->routing_key, T1.queue) != 0)
        T1.bad++;
done:
    if (mq_ack(c, m->id, 0) != CG_OK)
        T1.bad++;
    mq_message_free(m);
}

static int t1_all_confirmed(void *arg)
{
    (void)arg;
    return T1.confirmed >= T1.n;
}

static int t1_all_received(void *arg)
{
    (void)arg;
    return T1.received >= T1.n;
}

static void test_roundtrip(void)
{
    struct event_base *base = event_base_new();
    const char *env_n = getenv("IT_MQ_N");
    mq_queue_decl q = {0};
    mq_topology topo = {0};
    mq_config cfg;
    cg_error err = {0};
    char body[256], mid[64], cid[64];
    mq_props props = {0};
    int64_t t0, t1, t2;
    const char *queues[2] = {T1.queue, NULL};

    memset(&T1, 0, sizeof(T1));
    T1.n = env_n ? atoi(env_n) : 1000;
    if (T1.n <= 0)
        T1.n = 1000;
    T1.confirm = calloc((size_t)T1.n, 1);
    T1.seen = calloc((size_t)T1.n, sizeof(int));
    it_qname(T1.queue, sizeof(T1.queue), "t1");
    q.name = T1.queue;
    topo.queues = &q;
    topo.n_queues = 1;
    it_config(&cfg, "it-t1");
    if ((size_t)T1.n > cfg.max_outbound)
        cfg.max_outbound = (size_t)T1.n;    /* all are queued at once */
    TH_REQUIRE_OR_DONE(base && T1.confirm && T1.seen);
    T1.c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(T1.c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, T1.c, 10000));

    props.message_id = mid;
    props.correlation_id = cid;
    props.reply_to = "it.reply";
    props.type = "it.t1";
    t0 = itk_now_ms();
    for (int i = 0; i < T1.n; i++) {
        snprintf(mid, sizeof(mid), "m-%d", i);
        snprintf(cid, sizeof(cid), "saga-%d", i);
        t1_body(body, sizeof(body), i);
        TH_REQUIRE_OR_DONE(mq_publish(T1.c, "", T1.queue, &props, body, strlen(body), t1_on_confirm,
                              (void *)(intptr_t)i) == CG_OK);
    }
    TH_REQUIRE_OR_DONE(it_wait(base, t1_all_confirmed, NULL, 60000));
    t1 = itk_now_ms();
    TH_CHECK_INT(T1.acked, T1.n);
    TH_CHECK_INT(T1.bad_confirm, 0);

    TH_REQUIRE_OR_DONE(mq_consume(T1.c, T1.queue, t1_on_delivery, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_wait(base, t1_all_received, NULL, 60000));
    t2 = itk_now_ms();
    it_wait(base, NULL, NULL, 300);     /* room for a duplicate to show up */
    TH_CHECK_INT(T1.received, T1.n);
    TH_CHECK_INT(T1.bad, 0);
    for (int i = 0; i < T1.n; i++)
        if (T1.seen[i] != 1) {
            TH_FAIL_AT("message %d received %d times", i, T1.seen[i]);
            break;
        }
    printf("    t1: %d messages: publish+confirm %" PRId64 " ms (%.0f/s), consume+ack %" PRId64
           " ms (%.0f/s)\n", T1.n, t1 - t0, T1.n * 1000.0 / (double)(t1 - t0 + 1), t2 - t1,
           T1.n * 1000.0 / (double)(t2 - t1 + 1));
    /* Freeing sends the queued acks before closing; whatever was not acked
     * would be requeued by the close and show up in the count. */
    mq_client_free(T1.c);
    T1.c = NULL;
    TH_CHECK_INT(it_queue_count(T1.queue), 0);
done:
    mq_client_free(T1.c);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
    free(T1.confirm);
    free(T1.seen);
}

/* ---- 2. nack without requeue -> dead-letter queue -------------------------- */

static struct {
    int q_received, dlq_received, dlq_ok;
} T2;

static void t2_on_queue(mq_client *c, mq_message *m, void *arg)
{
    (void)arg;
    T2.q_received++;
    (void)mq_nack(c, m->id, 0);
    mq_message_free(m);
}

static void t2_on_dlq(mq_client *c, mq_message *m, void *arg)
{
    const char *dlx = arg;

    T2.dlq_received++;
    if (m->message_id && strcmp(m->message_id, "dl-1") == 0 && strcmp(m->body, "to the dead") == 0 &&
        strcmp(m->exchange, dlx) == 0 && strcmp(m->routing_key, "dead") == 0)
        T2.dlq_ok++;
    (void)mq_ack(c, m->id, 0);
    mq_message_free(m);
}

static int t2_pred(void *arg)
{
    (void)arg;
    return T2.dlq_received >= 1;
}

static void test_dead_letter(void)
{
    struct event_base *base = event_base_new();
    char qn[128], dlq[128], dlx[128];
    mq_exchange_decl ex = {dlx, "direct"};
    mq_queue_decl qs[2] = {{.name = qn, .dead_letter_exchange = dlx, .dead_letter_routing_key = "dead"},
                           {.name = dlq}};
    mq_binding_decl b = {dlq, dlx, "dead"};
    mq_topology topo = {&ex, 1, qs, 2, &b, 1};
    mq_props props = {.message_id = "dl-1"};
    mq_client *c = NULL;
    mq_config cfg;
    cg_error err = {0};
    const char *queues[3] = {qn, dlq, NULL};
    const char *exchanges[2] = {dlx, NULL};

    memset(&T2, 0, sizeof(T2));
    it_qname(qn, sizeof(qn), "t2");
    it_qname(dlq, sizeof(dlq), "t2.dlq");
    it_qname(dlx, sizeof(dlx), "t2.dlx");
    it_config(&cfg, "it-t2");
    TH_REQUIRE_OR_DONE(base != NULL);
    c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 10000));
    TH_REQUIRE_OR_DONE(mq_consume(c, qn, t2_on_queue, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(mq_consume(c, dlq, t2_on_dlq, dlx) == CG_OK);
    TH_REQUIRE_OR_DONE(mq_publish(c, "", qn, &props, "to the dead", 11, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait(base, t2_pred, NULL, 10000));
    it_wait(base, NULL, NULL, 300);
    TH_CHECK_INT(T2.q_received, 1);
    TH_CHECK_INT(T2.dlq_received, 1);
    TH_CHECK_INT(T2.dlq_ok, 1);
done:
    mq_client_free(c);
    it_cleanup(queues, exchanges);
    if (base)
        event_base_free(base);
}

/* ---- 3. x-max-length overflow nacks the publisher -------------------------- */

#define T3_LIMIT 5
#define T3_N 12

static struct {
    int result[T3_N];
    int confirmed;
} T3;

static void t3_on_confirm(mq_client *c, int result, void *arg)
{
    (void)c;
    T3.result[(intptr_t)arg] = result;
    T3.confirmed++;
}

static int t3_pred(void *arg)
{
    (void)arg;
    return T3.confirmed >= T3_N;
}

static void test_overflow_nack(void)
{
    struct event_base *base = event_base_new();
    char qn[128];
    mq_queue_decl q = {.name = qn, .max_length = T3_LIMIT};
    mq_topology topo = {NULL, 0, &q, 1, NULL, 0};
    mq_client *c = NULL;
    mq_config cfg;
    cg_error err = {0};
    const char *queues[2] = {qn, NULL};
    int acked = 0, nacked = 0, in_order = 1;

    memset(&T3, 0, sizeof(T3));
    it_qname(qn, sizeof(qn), "t3");
    it_config(&cfg, "it-t3");
    TH_REQUIRE_OR_DONE(base != NULL);
    c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 10000));
    for (int i = 0; i < T3_N; i++)
        TH_REQUIRE_OR_DONE(mq_publish(c, "", qn, NULL, "x", 1, t3_on_confirm, (void *)(intptr_t)i) == CG_OK);
    TH_REQUIRE_OR_DONE(it_wait(base, t3_pred, NULL, 10000));
    for (int i = 0; i < T3_N; i++) {
        acked += T3.result[i] == MQ_PUBLISH_ACKED;
        nacked += T3.result[i] == MQ_PUBLISH_NACKED;
        if (T3.result[i] != (i < T3_LIMIT ? MQ_PUBLISH_ACKED : MQ_PUBLISH_NACKED))
            in_order = 0;
    }
    TH_CHECK_INT(acked, T3_LIMIT);
    TH_CHECK_INT(nacked, T3_N - T3_LIMIT);
    TH_CHECK(in_order);
    TH_CHECK_INT(it_queue_count(qn), T3_LIMIT);
done:
    mq_client_free(c);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
}

/* ---- 4. the outbound bound -------------------------------------------------- */

static int t4_confirmed;

static void t4_on_confirm(mq_client *c, int result, void *arg)
{
    (void)c;
    (void)arg;
    if (result == MQ_PUBLISH_ACKED)
        t4_confirmed++;
}

static int t4_pred(void *c)
{
    mq_stats st;

    mq_get_stats(c, &st);
    return st.outbound == 0;
}

static void test_outbound_full(void)
{
    struct event_base *base = event_base_new();
    char qn[128];
    mq_queue_decl q = {.name = qn};
    mq_topology topo = {NULL, 0, &q, 1, NULL, 0};
    mq_props props = {.transient = 1};
    mq_client *c = NULL;
    mq_config cfg;
    mq_stats st;
    cg_error err = {0};
    const char *queues[2] = {qn, NULL};
    int ok = 0, rc = CG_OK;

    t4_confirmed = 0;
    it_qname(qn, sizeof(qn), "t4");
    it_config(&cfg, "it-t4");
    cfg.max_outbound = 4;
    TH_REQUIRE_OR_DONE(base != NULL);
    c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 10000));
    while (ok < 100 && (rc = mq_publish(c, "", qn, &props, "y", 1, t4_on_confirm, NULL)) == CG_OK)
        ok++;
    TH_CHECK_INT(ok, 4);
    TH_CHECK_INT(rc, CG_ERR_FULL);
    mq_get_stats(c, &st);
    TH_CHECK_INT(st.outbound, 4);
    TH_REQUIRE_OR_DONE(it_wait(base, t4_pred, c, 10000));
    TH_CHECK_INT(t4_confirmed, 4);
    /* Confirms made room again. */
    TH_CHECK_INT(mq_publish(c, "", qn, &props, "y", 1, t4_on_confirm, NULL), CG_OK);
    TH_REQUIRE_OR_DONE(it_wait(base, t4_pred, c, 10000));
    TH_CHECK_INT(t4_confirmed, 5);
    TH_CHECK_INT(it_queue_count(qn), 5);
done:
    mq_client_free(c);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
}

/* ---- 5. broker restart while publishing ------------------------------------- */

#define T5_N 20000
#define T5_PER_TICK 10           /* every 5 ms: 2,000 messages/s */
#define T5_RESTART_AT 4000       /* messages published before the restart starts */

enum { T5_NONE = 0, T5_PENDING, T5_ACKED };

static struct {
    mq_client *c;
    char queue[128], probe_queue[128];
    unsigned char *state;         /* T5_* per message id */
    unsigned char *republished;   /* sent more than once (after UNKNOWN or NACKED) */
    int *count;                   /* deliveries per id in the final consume */
    int *retry;                   /* ids to send again, a stack */
    int n_retry;
    int next;                     /* next id never sent */
    int n_acked, n_unknown, n_nacked, n_full, n_republish;
    pid_t child;
    int child_status, child_done;
    int probes_sent, probes_rx, probes_rx_after;
    mq_message *held;             /* a probe left unacked across the restart */
    int stale_acked, probes_after_stale;
    uint64_t reconnects_at_stale;
    int64_t last_probe;
    int received, distinct, bad;
} T5;

static void t5_on_confirm(mq_client *c, int result, void *arg)
{
    int id = (int)(intptr_t)arg;

    (void)c;
    if (result == MQ_PUBLISH_ACKED) {
        if (T5.state[id] != T5_ACKED)
            T5.n_acked++;
        T5.state[id] = T5_ACKED;
        return;
    }
    if (result == MQ_PUBLISH_UNKNOWN)
        T5.n_unknown++;
    else
        T5.n_nacked++;
    if (T5.state[id] != T5_ACKED) {
        /* It may or may not be in the queue: send it again (a possible
         * duplicate, which the consumers of this system must tolerate). */
        T5.retry[T5.n_retry++] = id;
        T5.republished[id] = 1;
    }
}

static int t5_send(int id)
{
    char mid[32], body[64];
    mq_props props = {.message_id = mid, .type = "it.t5"};

    snprintf(mid, sizeof(mid), "r-%d", id);
    snprintf(body, sizeof(body), "{\"id\":%d}", id);
    return mq_publish(T5.c, "", T5.queue, &props, body, strlen(body), t5_on_confirm,
                      (void *)(intptr_t)id);
}

static void t5_on_probe(mq_client *c, mq_message *m, void *arg)
{
    mq_stats st;

    (void)arg;
    mq_get_stats(c, &st);
    T5.probes_rx++;
    if (st.reconnects >= 1)
        T5.probes_rx_after++;
    if (T5.stale_acked)
        T5.probes_after_stale++;
    if (st.reconnects >= 1 && T5.held && !T5.stale_acked) {
        /* Its tag belongs to the dead connection: the client must drop this
         * ack, not send it (the broker would close the channel). */
        (void)mq_ack(c, T5.held->id, 0);
        mq_message_free(T5.held);
        T5.held = NULL;
        T5.stale_acked = 1;
        T5.reconnects_at_stale = st.reconnects;
    }
    if (T5.held == NULL && !T5.stale_acked) {
        T5.held = m;
    } else {
        (void)mq_ack(c, m->id, 0);
        mq_message_free(m);
    }
}

static void t5_start_restart(void)
{
    const char *cmd_env = getenv("IT_MQ_RESTART_CMD");
    const char *repo = getenv("REPO_DIR");
    char cmd[1024];

    if (cmd_env && cmd_env[0])
        snprintf(cmd, sizeof(cmd), "%s", cmd_env);
    else
        snprintf(cmd, sizeof(cmd), "'%s/scripts/stack' restart rabbitmq", repo ? repo : ".");
    printf("    t5: restarting the broker: %s\n", cmd);
    fflush(stdout);
    T5.child = fork();
    if (T5.child == 0) {
        /* Keep the harness' stdout clean: the script talks on stderr. */
        dup2(2, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (T5.child < 0) {
        T5.child_done = 1;
        T5.child_status = -1;
    }
}

static void t5_tick(evutil_socket_t fd, short what, void *arg)
{
    int sent = 0, rc;

    (void)fd;
    (void)what;
    (void)arg;
    if (T5.child > 0 && !T5.child_done && waitpid(T5.child, &T5.child_status, WNOHANG) == T5.child)
        T5.child_done = 1;
    while (sent < T5_PER_TICK && T5.n_retry > 0) {
        int id = T5.retry[T5.n_retry - 1];

        if ((rc = t5_send(id)) != CG_OK)
            break;
        T5.n_retry--;
        T5.n_republish++;
        sent++;
    }
    while (sent < T5_PER_TICK && T5.next < T5_N) {
        if ((rc = t5_send(T5.next)) != CG_OK) {
            T5.n_full += rc == CG_ERR_FULL;
            break;
        }
        T5.state[T5.next++] = T5_PENDING;
        sent++;
    }
    if (T5.next >= T5_RESTART_AT && T5.child == 0 && !T5.child_done)
        t5_start_restart();
    if (itk_now_ms() - T5.last_probe >= 50) {
        mq_props props = {.transient = 1};

        T5.last_probe = itk_now_ms();
        if (mq_publish(T5.c, "", T5.probe_queue, &props, "probe", 5, NULL, NULL) == CG_OK)
            T5.probes_sent++;
    }
}

static int t5_published_all(void *arg)
{
    (void)arg;
    return T5.n_acked == T5_N && T5.child_done && T5.probes_after_stale > 2;
}

/* Waits for the restart child at most timeout_ms, then kills it. */
static void t5_reap(int timeout_ms)
{
    int64_t end = itk_now_ms() + timeout_ms;

    while (T5.child > 0 && !T5.child_done) {
        if (waitpid(T5.child, &T5.child_status, WNOHANG) == T5.child) {
            T5.child_done = 1;
        } else if (itk_now_ms() >= end) {
            kill(T5.child, SIGKILL);
            waitpid(T5.child, &T5.child_status, 0);
            T5.child_done = 1;
        } else {
            usleep(50 * 1000);
        }
    }
}

static void t5_on_delivery(mq_client *c, mq_message *m, void *arg)
{
    int id = -1;

    (void)arg;
    T5.received++;
    if (m->message_id && sscanf(m->message_id, "r-%d", &id) == 1 && id >= 0 && id < T5_N) {
        if (T5.count[id]++ == 0)
            T5.distinct++;
    } else {
        T5.bad++;
    }
    (void)mq_ack(c, m->id, 0);
    mq_message_free(m);
}

static int t5_consumed_all(void *arg)
{
    (void)arg;
    return T5.distinct >= T5_N;
}

static void test_broker_restart(void)
{
    struct event_base *base = event_base_new();
    struct event *tick = NULL;
    struct timeval tv = {0, 5000};
    mq_queue_decl qs[2] = {{.name = T5.queue}, {.name = T5.probe_queue}};
    mq_topology topo = {NULL, 0, qs, 2, NULL, 0};
    mq_config cfg;
    mq_stats st;
    cg_error err = {0};
    const char *queues[3] = {T5.queue, T5.probe_queue, NULL};
    int missing = 0, bad_dups = 0, dups = 0;

    memset(&T5, 0, sizeof(T5));
    it_qname(T5.queue, sizeof(T5.queue), "t5");
    it_qname(T5.probe_queue, sizeof(T5.probe_queue), "t5.probe");
    T5.state = calloc(T5_N, 1);
    T5.republished = calloc(T5_N, 1);
    T5.count = calloc(T5_N, sizeof(int));
    /* Each id is on the stack at most once at a time. */
    T5.retry = calloc(T5_N, sizeof(int));
    it_config(&cfg, "it-t5");
    cfg.max_outbound = 2000;
    cfg.heartbeat_s = 5;
    TH_REQUIRE_OR_DONE(base && T5.state && T5.republished && T5.count && T5.retry);
    if (getenv("IT_MQ_RESTART_CMD") == NULL && getenv("REPO_DIR") == NULL) {
        TH_FAIL_AT("neither REPO_DIR nor IT_MQ_RESTART_CMD is set: cannot restart the broker");
        goto done;
    }
    T5.c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(T5.c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, T5.c, 10000));
    TH_REQUIRE_OR_DONE(mq_consume(T5.c, T5.probe_queue, t5_on_probe, NULL) == CG_OK);
    tick = event_new(base, -1, EV_PERSIST, t5_tick, NULL);
    TH_REQUIRE_OR_DONE(tick != NULL && event_add(tick, &tv) == 0);
    TH_CHECK(it_wait(base, t5_published_all, NULL, 180000));
    event_free(tick);
    tick = NULL;
    t5_reap(120000);    /* do not leave the restart running behind the test */
    TH_CHECK(T5.child > 0 && WIFEXITED(T5.child_status) && WEXITSTATUS(T5.child_status) == 0);
    mq_get_stats(T5.c, &st);
    printf("    t5: acked %d, unknown %d, nacked %d, republished %d, full %d, reconnects %" PRIu64
           ", probes %d sent / %d received (%d after the reconnect)\n", T5.n_acked, T5.n_unknown,
           T5.n_nacked, T5.n_republish, T5.n_full, st.reconnects, T5.probes_sent, T5.probes_rx,
           T5.probes_rx_after);
    TH_CHECK_INT(T5.n_acked, T5_N);
    TH_CHECK(st.reconnects >= 1);
    TH_CHECK(T5.probes_rx_after > 0);
    /* The stale ack did not cost a channel error and another reconnect. */
    TH_CHECK(T5.stale_acked);
    TH_CHECK_INT(st.reconnects, T5.reconnects_at_stale);

    TH_REQUIRE_OR_DONE(mq_consume(T5.c, T5.queue, t5_on_delivery, NULL) == CG_OK);
    TH_CHECK(it_wait(base, t5_consumed_all, NULL, 60000));
    it_wait(base, NULL, NULL, 500);     /* duplicates arrive after the last new id */
    for (int i = 0; i < T5_N; i++) {
        missing += T5.state[i] == T5_ACKED && T5.count[i] == 0;
        dups += T5.count[i] > 1;
        bad_dups += T5.count[i] > 1 && !T5.republished[i];
    }
    printf("    t5: consumed %d deliveries, %d distinct ids, %d duplicated ids\n", T5.received,
           T5.distinct, dups);
    TH_CHECK_INT(missing, 0);
    TH_CHECK_INT(bad_dups, 0);
    TH_CHECK_INT(T5.bad, 0);
done:
    if (tick)
        event_free(tick);
    t5_reap(120000);
    mq_client_free(T5.c);
    mq_message_free(T5.held);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
    free(T5.state);
    free(T5.republished);
    free(T5.count);
    free(T5.retry);
}

/* ---- 6. prefetch bounds the unacked deliveries ------------------------------ */

#define T6_PREFETCH 5
#define T6_N 20

static struct {
    mq_message *held[T6_N];
    int n_held, received, max_held, confirmed;
} T6;

static void t6_on_delivery(mq_client *c, mq_message *m, void *arg)
{
    (void)c;
    (void)arg;
    T6.received++;
    if (T6.n_held < T6_N)
        T6.held[T6.n_held++] = m;
    else
        mq_message_free(m);
    if (T6.n_held > T6.max_held)
        T6.max_held = T6.n_held;
}

static void t6_ack_oldest(mq_client *c)
{
    mq_message *m = T6.held[0];

    memmove(&T6.held[0], &T6.held[1], (size_t)(T6.n_held - 1) * sizeof(T6.held[0]));
    T6.n_held--;
    (void)mq_ack(c, m->id, 0);
    mq_message_free(m);
}

static void t6_on_confirm(mq_client *c, int result, void *arg)
{
    (void)c;
    (void)arg;
    T6.confirmed += result == MQ_PUBLISH_ACKED;
}

static int t6_pred_held(void *arg)
{
    return T6.n_held >= (int)(intptr_t)arg;
}

static int t6_pred_confirmed(void *arg)
{
    (void)arg;
    return T6.confirmed >= T6_N;
}

static int t6_pred_received(void *arg)
{
    return T6.received >= (int)(intptr_t)arg;
}

static void test_prefetch(void)
{
    struct event_base *base = event_base_new();
    char qn[128];
    mq_queue_decl q = {.name = qn};
    mq_topology topo = {NULL, 0, &q, 1, NULL, 0};
    mq_client *c = NULL;
    mq_config cfg;
    cg_error err = {0};
    const char *queues[2] = {qn, NULL};

    memset(&T6, 0, sizeof(T6));
    it_qname(qn, sizeof(qn), "t6");
    it_config(&cfg, "it-t6");
    cfg.prefetch = T6_PREFETCH;
    TH_REQUIRE_OR_DONE(base != NULL);
    c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 10000));
    for (int i = 0; i < T6_N; i++)
        TH_REQUIRE_OR_DONE(mq_publish(c, "", qn, NULL, "p", 1, t6_on_confirm, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_wait(base, t6_pred_confirmed, NULL, 10000));
    TH_REQUIRE_OR_DONE(mq_consume(c, qn, t6_on_delivery, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_wait(base, t6_pred_held, (void *)(intptr_t)T6_PREFETCH, 10000));
    it_wait(base, NULL, NULL, 500);     /* nothing more may come while none is acked */
    TH_CHECK_INT(T6.n_held, T6_PREFETCH);
    /* Each ack lets exactly one more in. */
    while (T6.received < T6_N) {
        int want = T6.received + 1;

        t6_ack_oldest(c);
        TH_REQUIRE_OR_DONE(it_wait(base, t6_pred_received, (void *)(intptr_t)want, 10000));
        TH_CHECK(T6.n_held <= T6_PREFETCH);
    }
    it_wait(base, NULL, NULL, 200);
    TH_CHECK_INT(T6.received, T6_N);
    TH_CHECK_INT(T6.max_held, T6_PREFETCH);
done:
    while (T6.n_held > 0)
        t6_ack_oldest(c);
    mq_client_free(c);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
}

/* ---- 7. large bodies: multi-frame assembly, oversize dead-lettered ---------- */

#define T7_BIG (400 * 1024)      /* > frame_max: arrives in several body frames */
#define T7_OVER 4096             /* > the consumer's max_body */

static struct {
    int big_ok, small_ok, over_in_queue, over_in_dlq, received;
} T7;

static int t7_pattern_ok(const mq_message *m, size_t len)
{
    if (m->body_len != len || m->body[len] != '\0')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (m->body[i] != (char)('a' + i % 23))
            return 0;
    return 1;
}

static void t7_on_queue(mq_client *c, mq_message *m, void *arg)
{
    (void)arg;
    T7.received++;
    if (m->message_id && strcmp(m->message_id, "big") == 0)
        T7.big_ok += t7_pattern_ok(m, T7_BIG);
    else if (m->message_id && strcmp(m->message_id, "small") == 0)
        T7.small_ok += t7_pattern_ok(m, 100);
    else
        T7.over_in_queue++;
    (void)mq_ack(c, m->id, 0);
    mq_message_free(m);
}

static void t7_on_dlq(mq_client *c, mq_message *m, void *arg)
{
    (void)arg;
    if (m->message_id && strcmp(m->message_id, "over") == 0 && t7_pattern_ok(m, T7_OVER))
        T7.over_in_dlq++;
    (void)mq_ack(c, m->id, 0);
    mq_message_free(m);
}

static int t7_pred(void *arg)
{
    (void)arg;
    return T7.over_in_dlq >= 1 && T7.small_ok >= 1 && T7.big_ok >= 1;
}

static void test_large_bodies(void)
{
    struct event_base *base = event_base_new();
    char qn[128], bigq[128], dlq[128], dlx[128];
    mq_exchange_decl ex = {dlx, "fanout"};
    mq_queue_decl qs[3] = {{.name = qn, .dead_letter_exchange = dlx}, {.name = bigq}, {.name = dlq}};
    mq_binding_decl b = {dlq, dlx, ""};
    mq_topology topo = {&ex, 1, qs, 3, &b, 1};
    mq_client *pub = NULL, *small = NULL;
    mq_config cfg;
    cg_error err = {0};
    char *body = malloc(T7_BIG);
    const char *queues[4] = {qn, bigq, dlq, NULL};
    const char *exchanges[2] = {dlx, NULL};
    mq_props p_big = {.message_id = "big"}, p_small = {.message_id = "small"},
             p_over = {.message_id = "over"};

    memset(&T7, 0, sizeof(T7));
    it_qname(qn, sizeof(qn), "t7");
    it_qname(bigq, sizeof(bigq), "t7.big");
    it_qname(dlq, sizeof(dlq), "t7.dlq");
    it_qname(dlx, sizeof(dlx), "t7.dlx");
    TH_REQUIRE_OR_DONE(base && body);
    for (size_t i = 0; i < T7_BIG; i++)
        body[i] = (char)('a' + i % 23);
    it_config(&cfg, "it-t7-pub");
    pub = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    it_config(&cfg, "it-t7-small");
    cfg.max_body = 1024;
    small = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(pub && small);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, pub, 10000) && it_wait(base, it_pred_up, small, 10000));
    TH_REQUIRE_OR_DONE(mq_consume(small, qn, t7_on_queue, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(mq_consume(pub, bigq, t7_on_queue, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(mq_consume(pub, dlq, t7_on_dlq, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(mq_publish(pub, "", qn, &p_over, body, T7_OVER, NULL, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(mq_publish(pub, "", qn, &p_small, body, 100, NULL, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(mq_publish(pub, "", bigq, &p_big, body, T7_BIG, NULL, NULL) == CG_OK);
    TH_CHECK(it_wait(base, t7_pred, NULL, 10000));
    it_wait(base, NULL, NULL, 300);
    TH_CHECK_INT(T7.small_ok, 1);
    TH_CHECK_INT(T7.big_ok, 1);
    TH_CHECK_INT(T7.over_in_queue, 0);
    TH_CHECK_INT(T7.over_in_dlq, 1);
done:
    mq_client_free(small);
    mq_client_free(pub);
    it_cleanup(queues, exchanges);
    if (base)
        event_base_free(base);
    free(body);
}

/* ---- 8. shutdown settles every publish --------------------------------------- */

static int t8_results[3];

static void t8_on_confirm(mq_client *c, int result, void *arg)
{
    (void)c;
    (void)arg;
    t8_results[result]++;
}

static int t8_pred_some(void *arg)
{
    (void)arg;
    return t8_results[0] > 0;
}

static void test_free_settles(void)
{
    struct event_base *base = event_base_new();
    char qn[128];
    mq_queue_decl q = {.name = qn};
    mq_topology topo = {NULL, 0, &q, 1, NULL, 0};
    mq_client *c = NULL;
    mq_config cfg;
    cg_error err = {0};
    const char *queues[2] = {qn, NULL};
    int n = 3000;

    memset(t8_results, 0, sizeof(t8_results));
    it_qname(qn, sizeof(qn), "t8");
    it_config(&cfg, "it-t8");
    TH_REQUIRE_OR_DONE(base != NULL);
    c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 10000));
    /* Free while publishes are queued, sent and confirmed: each callback
     * runs exactly once, before mq_client_free returns. */
    for (int i = 0; i < n; i++)
        TH_REQUIRE_OR_DONE(mq_publish(c, "", qn, NULL, "z", 1, t8_on_confirm, NULL) == CG_OK);
    it_wait(base, t8_pred_some, NULL, 10000);
    for (int i = 0; i < n; i++)
        TH_REQUIRE_OR_DONE(mq_publish(c, "", qn, NULL, "z", 1, t8_on_confirm, NULL) == CG_OK);
    n *= 2;
    mq_client_free(c);
    c = NULL;
    TH_CHECK_INT(t8_results[0] + t8_results[1] + t8_results[2], n);
    printf("    t8: at free: %d acked, %d nacked (never sent), %d unknown\n", t8_results[0],
           t8_results[1], t8_results[2]);
    /* The queue holds at least every acked one (and maybe unknown ones). */
    TH_CHECK(it_queue_count(qn) >= t8_results[0]);
    TH_CHECK(it_queue_count(qn) <= t8_results[0] + t8_results[2]);
done:
    mq_client_free(c);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
}

/* ---- 9-11. queue depths (mq_queue_stats) -------------------------------------- */

/* What one mq_queue_stats callback saw (names copied: they die with it). */
typedef struct it_qs {
    int calls;
    int status, n;
    mq_queue_info q[MQ_STATS_MAX_QUEUES];
    char names[MQ_STATS_MAX_QUEUES][256];
    long long at;                 /* itk_now_ms() of the (last) call */
} it_qs;

static void it_on_qstats(mq_client *c, int status, const mq_queue_info *q, int n, void *arg)
{
    it_qs *r = arg;

    (void)c;
    r->calls++;
    r->status = status;
    r->n = n;
    r->at = itk_now_ms();
    for (int i = 0; i < n && i < MQ_STATS_MAX_QUEUES; i++) {
        r->q[i] = q[i];
        snprintf(r->names[i], sizeof(r->names[i]), "%s", q[i].name ? q[i].name : "(null)");
        r->q[i].name = r->names[i];
    }
}

static int it_pred_qstats(void *arg)
{
    return ((const it_qs *)arg)->calls > 0;
}

/* Submits one request; checks it was accepted and did not call back from
 * inside the submit. 1 when accepted. */
static int it_qstats_submit(mq_client *c, const char *const *queues, int n, it_qs *r)
{
    int rc;

    memset(r, 0, sizeof(*r));
    rc = mq_queue_stats(c, queues, n, it_on_qstats, r);
    TH_CHECK_INT(rc, CG_OK);
    TH_CHECK_INT(r->calls, 0);
    return rc == CG_OK;
}

/* Submits, waits (bounded) for the answer and checks it came exactly once;
 * 1 when it did. */
static int it_qstats(struct event_base *base, mq_client *c, const char *const *queues, int n,
                     it_qs *r)
{
    if (!it_qstats_submit(c, queues, n, r))
        return 0;
    TH_CHECK(it_wait(base, it_pred_qstats, r, 10000));
    it_wait(base, NULL, NULL, 50);      /* room for a second call to show up */
    TH_CHECK_INT(r->calls, 1);
    return r->calls == 1;
}

static void it_check_queue(const it_qs *r, int i, const char *name, int status, long long messages,
                           long long consumers)
{
    if (i >= r->n) {
        TH_FAIL_AT("answer %d of %d missing", i, r->n);
        return;
    }
    TH_CHECK_STR(r->q[i].name, name);
    TH_CHECK_INT(r->q[i].status, status);
    TH_CHECK_INT(r->q[i].messages, messages);
    TH_CHECK_INT(r->q[i].consumers, consumers);
}

struct it_states {
    int ups, downs;
};

static void it_on_state(mq_client *c, int up, void *arg)
{
    struct it_states *s = arg;

    (void)c;
    if (up)
        s->ups++;
    else
        s->downs++;
}

#define T9_K 7

static struct {
    mq_message *held[T9_K + 4];
    int n_held, received, redelivered, confirmed, acked;
} T9;

static void t9_on_delivery(mq_client *c, mq_message *m, void *arg)
{
    (void)c;
    (void)arg;
    T9.received++;
    T9.redelivered += m->redelivered != 0;
    if (T9.n_held < (int)TH_TABLE_LEN(T9.held))
        T9.held[T9.n_held++] = m;     /* not acked yet: the channel must keep them */
    else
        mq_message_free(m);
}

static void t9_on_confirm(mq_client *c, int result, void *arg)
{
    (void)c;
    (void)arg;
    T9.confirmed++;
    T9.acked += result == MQ_PUBLISH_ACKED;
}

static int t9_pred_confirmed(void *arg)
{
    return T9.confirmed >= (int)(intptr_t)arg;
}

static int t9_pred_received(void *arg)
{
    return T9.received >= (int)(intptr_t)arg;
}

static void t9_ack_held(mq_client *c)
{
    for (int i = 0; i < T9.n_held; i++) {
        TH_CHECK_INT(mq_ack(c, T9.held[i]->id, 0), CG_OK);
        mq_message_free(T9.held[i]);
    }
    T9.n_held = 0;
}

/* K persistent messages and no consumer: K ready, 0 consumers; with a
 * consumer holding them: 0 ready, 1 consumer; missing queues are NOTFOUND
 * among found ones, and afterwards the same client still acks, publishes and
 * consumes on its main channel without having reconnected. */
static void test_queue_stats(void)
{
    struct event_base *base = event_base_new();
    char qn[128], qb[128], miss1[128], miss2[128];
    mq_queue_decl qs[2] = {{.name = qn}, {.name = qb}};
    mq_topology topo = {NULL, 0, qs, 2, NULL, 0};
    struct it_states sts = {0, 0};
    mq_client *c = NULL;
    mq_config cfg;
    mq_stats st;
    cg_error err = {0};
    it_qs r;
    const char *queues[3] = {qn, qb, NULL};
    const char *mixed[4] = {miss1, qn, miss2, qb};
    const char *many[MQ_STATS_MAX_QUEUES];

    memset(&T9, 0, sizeof(T9));
    it_qname(qn, sizeof(qn), "t9");
    it_qname(qb, sizeof(qb), "t9.b");
    it_qname(miss1, sizeof(miss1), "t9.missing1");
    it_qname(miss2, sizeof(miss2), "t9.missing2");
    it_cleanup((const char *const[]){miss1, miss2, NULL}, NULL);
    it_config(&cfg, "it-t9");
    TH_REQUIRE_OR_DONE(base != NULL);
    c = mq_client_new(base, &cfg, &topo, it_on_state, &sts, &err);
    TH_REQUIRE_OR_DONE(c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 10000));

    for (int i = 0; i < T9_K; i++)
        TH_REQUIRE_OR_DONE(mq_publish(c, "", qn, NULL, "k", 1, t9_on_confirm, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_wait(base, t9_pred_confirmed, (void *)(intptr_t)T9_K, 10000));
    TH_CHECK_INT(T9.acked, T9_K);
    TH_REQUIRE_OR_DONE(it_qstats(base, c, queues, 2, &r));
    TH_CHECK_INT(r.status, CG_OK);
    TH_CHECK_INT(r.n, 2);
    it_check_queue(&r, 0, qn, CG_OK, T9_K, 0);
    it_check_queue(&r, 1, qb, CG_OK, 0, 0);
    printf("    t9: %s: %lld messages, %lld consumers\n", r.q[0].name, r.q[0].messages,
           r.q[0].consumers);

    /* A consumer that holds every delivery unacked. */
    TH_REQUIRE_OR_DONE(mq_consume(c, qn, t9_on_delivery, NULL) == CG_OK);
    TH_REQUIRE_OR_DONE(it_wait(base, t9_pred_received, (void *)(intptr_t)T9_K, 10000));
    TH_REQUIRE_OR_DONE(it_qstats(base, c, queues, 1, &r));
    TH_CHECK_INT(r.status, CG_OK);
    it_check_queue(&r, 0, qn, CG_OK, 0, 1);

    /* 404s between found queues: each closes only the stats channel. */
    TH_REQUIRE_OR_DONE(it_qstats(base, c, mixed, 4, &r));
    TH_CHECK_INT(r.status, CG_OK);
    TH_CHECK_INT(r.n, 4);
    it_check_queue(&r, 0, miss1, CG_ERR_NOTFOUND, 0, 0);
    it_check_queue(&r, 1, qn, CG_OK, 0, 1);
    it_check_queue(&r, 2, miss2, CG_ERR_NOTFOUND, 0, 0);
    it_check_queue(&r, 3, qb, CG_OK, 0, 0);
    /* The most a call takes, every other queue missing. */
    for (int i = 0; i < MQ_STATS_MAX_QUEUES; i++)
        many[i] = i % 2 ? miss1 : qb;
    TH_REQUIRE_OR_DONE(it_qstats(base, c, many, MQ_STATS_MAX_QUEUES, &r));
    TH_CHECK_INT(r.status, CG_OK);
    TH_CHECK_INT(r.n, MQ_STATS_MAX_QUEUES);
    for (int i = 0; i < MQ_STATS_MAX_QUEUES; i++)
        it_check_queue(&r, i, many[i], i % 2 ? CG_ERR_NOTFOUND : CG_OK, 0, 0);
    /* The passive declares created nothing. */
    TH_CHECK_INT(it_queue_count(miss1), -1);

    /* The main channel survived: its unacked deliveries were not requeued
     * (no redelivery), acks on their tags work, and so do publish and
     * consume. */
    it_wait(base, NULL, NULL, 200);
    TH_CHECK_INT(T9.received, T9_K);
    t9_ack_held(c);
    TH_REQUIRE_OR_DONE(mq_publish(c, "", qn, NULL, "after", 5, t9_on_confirm, NULL) == CG_OK);
    TH_CHECK(it_wait(base, t9_pred_confirmed, (void *)(intptr_t)(T9_K + 1), 10000));
    TH_CHECK_INT(T9.acked, T9_K + 1);
    TH_CHECK(it_wait(base, t9_pred_received, (void *)(intptr_t)(T9_K + 1), 10000));
    TH_CHECK_INT(T9.received, T9_K + 1);
    TH_CHECK_INT(T9.redelivered, 0);
    TH_CHECK(T9.n_held == 1 && strcmp(T9.held[0]->body, "after") == 0);
    t9_ack_held(c);
    TH_REQUIRE_OR_DONE(it_qstats(base, c, queues, 1, &r));
    it_check_queue(&r, 0, qn, CG_OK, 0, 1);
    mq_get_stats(c, &st);
    TH_CHECK_INT(st.reconnects, 0);
    TH_CHECK_INT(sts.ups, 1);
    TH_CHECK_INT(sts.downs, 0);
    /* Freeing sends the acks first; an unacked one would be requeued. */
    mq_client_free(c);
    c = NULL;
    TH_CHECK_INT(it_queue_count(qn), 0);
done:
    for (int i = 0; i < T9.n_held; i++)
        mq_message_free(T9.held[i]);
    T9.n_held = 0;
    mq_client_free(c);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
}

/* Bad arguments, not connected, the bound on pending calls, and free. */
static void test_queue_stats_bounds(void)
{
    struct event_base *base = event_base_new();
    char qn[128], longname[300];
    mq_queue_decl q = {.name = qn};
    mq_topology topo = {NULL, 0, &q, 1, NULL, 0};
    mq_client *c = NULL, *down = NULL;
    mq_config cfg;
    cg_error err = {0};
    it_qs r, pend[MQ_STATS_MAX_PENDING], extra;
    const char *queues[2] = {qn, NULL};
    const char *bad_empty[1] = {""}, *bad_long[1] = {longname}, *bad_null[1] = {NULL};
    const char *many[MQ_STATS_MAX_QUEUES + 1];

    it_qname(qn, sizeof(qn), "t10");
    memset(longname, 'x', 256);
    longname[256] = '\0';
    for (int i = 0; i <= MQ_STATS_MAX_QUEUES; i++)
        many[i] = qn;
    memset(&r, 0, sizeof(r));
    it_config(&cfg, "it-t10");
    TH_REQUIRE_OR_DONE(base != NULL);
    c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 10000));

    TH_CHECK_INT(mq_queue_stats(c, queues, 0, it_on_qstats, &r), CG_ERR_INVALID);
    TH_CHECK_INT(mq_queue_stats(c, many, MQ_STATS_MAX_QUEUES + 1, it_on_qstats, &r),
                 CG_ERR_INVALID);
    TH_CHECK_INT(mq_queue_stats(c, NULL, 1, it_on_qstats, &r), CG_ERR_INVALID);
    TH_CHECK_INT(mq_queue_stats(c, queues, 1, NULL, &r), CG_ERR_INVALID);
    TH_CHECK_INT(mq_queue_stats(c, bad_empty, 1, it_on_qstats, &r), CG_ERR_INVALID);
    TH_CHECK_INT(mq_queue_stats(c, bad_long, 1, it_on_qstats, &r), CG_ERR_INVALID);
    TH_CHECK_INT(mq_queue_stats(c, bad_null, 1, it_on_qstats, &r), CG_ERR_INVALID);
    longname[255] = '\0';               /* 255 bytes is a valid (missing) name */
    TH_CHECK(it_qstats(base, c, bad_long, 1, &r));
    TH_CHECK_INT(r.status, CG_OK);
    TH_CHECK_INT(r.q[0].status, CG_ERR_NOTFOUND);

    /* The bound: MQ_STATS_MAX_PENDING unanswered calls, then FULL. */
    for (int i = 0; i < MQ_STATS_MAX_PENDING; i++)
        TH_CHECK(it_qstats_submit(c, queues, 1, &pend[i]));
    memset(&extra, 0, sizeof(extra));
    TH_CHECK_INT(mq_queue_stats(c, queues, 1, it_on_qstats, &extra), CG_ERR_FULL);
    for (int i = 0; i < MQ_STATS_MAX_PENDING; i++)
        TH_CHECK(it_wait(base, it_pred_qstats, &pend[i], 10000));
    it_wait(base, NULL, NULL, 50);
    for (int i = 0; i < MQ_STATS_MAX_PENDING; i++) {
        TH_CHECK_INT(pend[i].calls, 1);
        TH_CHECK_INT(pend[i].status, CG_OK);
        it_check_queue(&pend[i], 0, qn, CG_OK, 0, 0);
    }
    TH_CHECK_INT(extra.calls, 0);
    /* Answers made room again. */
    TH_CHECK(it_qstats(base, c, queues, 1, &r));

    /* Freeing answers what is pending, once each, before it returns. */
    TH_CHECK(it_qstats_submit(c, queues, 1, &pend[0]));
    TH_CHECK(it_qstats_submit(c, queues, 1, &pend[1]));
    mq_client_free(c);
    c = NULL;
    for (int i = 0; i < 2; i++) {
        TH_CHECK_INT(pend[i].calls, 1);
        TH_CHECK_INT(pend[i].status, CG_ERR_STATE);
        TH_CHECK_INT(pend[i].q[0].status, CG_ERR_STATE);
    }

    /* A client that never connected answers STATE at once, no callback. */
    it_config(&cfg, "it-t10-down");
    cfg.port = itk_closed_port();
    down = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(down != NULL);
    it_wait(base, NULL, NULL, 200);
    TH_CHECK(!mq_client_is_up(down));
    memset(&r, 0, sizeof(r));
    TH_CHECK_INT(mq_queue_stats(down, queues, 1, it_on_qstats, &r), CG_ERR_STATE);
    it_wait(base, NULL, NULL, 100);
    TH_CHECK_INT(r.calls, 0);
done:
    mq_client_free(down);
    mq_client_free(c);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
}

/* The broker frozen (SIGSTOP): TIMEOUT within connect_timeout_ms. The
 * broker killed: an error at once, then STATE at submit once the loop knows;
 * answers again after it is back. */
static volatile sig_atomic_t t11_frozen;     /* the SIGSTOPped broker, to SIGCONT on any exit */

static void t11_thaw(void)
{
    if (t11_frozen > 0) {
        kill((pid_t)t11_frozen, SIGCONT);
        t11_frozen = 0;
    }
}

static void t11_thaw_on_signal(int sig)
{
    t11_thaw();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int t11_pred_down(void *c)
{
    return !mq_client_is_up(c);
}

#define T11_TIMEOUT_MS 1000

static void test_queue_stats_broker_down(void)
{
    struct event_base *base = event_base_new();
    char qn[128];
    mq_queue_decl q = {.name = qn};
    mq_topology topo = {NULL, 0, &q, 1, NULL, 0};
    mq_client *c = NULL;
    mq_config cfg;
    cg_error err = {0};
    it_qs r;
    const char *queues[2] = {qn, NULL};
    long long t0;
    int pid, killed = 0;

    it_qname(qn, sizeof(qn), "t11");
    it_config(&cfg, "it-t11");
    cfg.connect_timeout_ms = T11_TIMEOUT_MS;
    cfg.heartbeat_s = 30;               /* the RPC timeout must be what fires */
    TH_REQUIRE_OR_DONE(base != NULL);
    if (getenv("REPO_DIR") == NULL) {
        TH_FAIL_AT("REPO_DIR is not set: cannot stop the broker");
        goto done;
    }
    c = mq_client_new(base, &cfg, &topo, NULL, NULL, &err);
    TH_REQUIRE_OR_DONE(c != NULL);
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 10000));
    TH_REQUIRE_OR_DONE(it_qstats(base, c, queues, 1, &r));
    TH_CHECK_INT(r.status, CG_OK);

    /* Frozen: the passive declare gets no answer. */
    pid = itk_stack_pid("rabbitmq");
    TH_REQUIRE_OR_DONE(pid > 0);
    atexit(t11_thaw);
    signal(SIGINT, t11_thaw_on_signal);
    signal(SIGTERM, t11_thaw_on_signal);
    signal(SIGABRT, t11_thaw_on_signal);
    t11_frozen = pid;
    TH_CHECK_INT(kill(pid, SIGSTOP), 0);
    t0 = itk_now_ms();
    if (it_qstats_submit(c, queues, 1, &r))
        it_wait(base, it_pred_qstats, &r, T11_TIMEOUT_MS + 2000);
    t11_thaw();
    printf("    t11: frozen broker: %s after %lld ms (timeout %d ms)\n", cg_status_name(r.status),
           r.at - t0, T11_TIMEOUT_MS);
    TH_CHECK_INT(r.calls, 1);
    TH_CHECK_INT(r.status, CG_ERR_TIMEOUT);
    TH_CHECK_INT(r.q[0].status, CG_ERR_TIMEOUT);
    TH_CHECK(r.at - t0 < T11_TIMEOUT_MS + 500);
    /* The timeout cost the connection; it comes back once the broker does. */
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 30000));
    TH_REQUIRE_OR_DONE(it_qstats(base, c, queues, 1, &r));
    TH_CHECK_INT(r.status, CG_OK);

    /* Killed: the loop still thinks it is up, so the call is taken and
     * fails from the thread. */
    TH_REQUIRE_OR_DONE(itk_script("stack", "kill rabbitmq") == 0);
    killed = 1;
    t0 = itk_now_ms();
    if (mq_client_is_up(c) && it_qstats_submit(c, queues, 1, &r)) {
        TH_CHECK(it_wait(base, it_pred_qstats, &r, 2 * T11_TIMEOUT_MS + 2000));
        printf("    t11: killed broker: %s after %lld ms\n", cg_status_name(r.status), r.at - t0);
        TH_CHECK_INT(r.calls, 1);
        TH_CHECK(r.status == CG_ERR_STATE || r.status == CG_ERR_IO);
    }
    TH_CHECK(it_wait(base, t11_pred_down, c, 10000));
    memset(&r, 0, sizeof(r));
    TH_CHECK_INT(mq_queue_stats(c, queues, 1, it_on_qstats, &r), CG_ERR_STATE);
    it_wait(base, NULL, NULL, 100);
    TH_CHECK_INT(r.calls, 0);
    TH_CHECK_INT(itk_script("stack", "start-one rabbitmq"), 0);
    killed = 0;
    TH_REQUIRE_OR_DONE(it_wait(base, it_pred_up, c, 30000));
    TH_REQUIRE_OR_DONE(it_qstats(base, c, queues, 1, &r));
    TH_CHECK_INT(r.status, CG_OK);
    it_check_queue(&r, 0, qn, CG_OK, 0, 0);
done:
    t11_thaw();
    if (killed)
        TH_CHECK_INT(itk_script("stack", "start-one rabbitmq"), 0);
    mq_client_free(c);
    it_cleanup(queues, NULL);
    if (base)
        event_base_free(base);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"publish, confirm, consume, ack round trip", test_roundtrip},
        {"nack without requeue dead-letters", test_dead_letter},
        {"max-length overflow nacks publishes", test_overflow_nack},
        {"publish past max_outbound is CG_ERR_FULL", test_outbound_full},
        {"broker restart loses no confirmed message", test_broker_restart},
        {"prefetch bounds unacked deliveries", test_prefetch},
        {"large bodies: multi-frame and oversize", test_large_bodies},
        {"free settles every publish", test_free_settles},
        {"queue stats: depths, consumers, missing queues", test_queue_stats},
        {"queue stats: arguments, bound, free, never up", test_queue_stats_bounds},
        {"queue stats: frozen and killed broker", test_queue_stats_broker_down},
    };
    const char *lvl = getenv("IT_MQ_LOG");
    int level = LOG_LEVEL_WARN;

    signal(SIGPIPE, SIG_IGN);
    log_set_program("it_mq");
    if (lvl && log_level_parse(lvl, &level) != CG_OK)
        level = LOG_LEVEL_WARN;
    log_set_level(level);
    if (it_env_load() != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    return th_main("it_mq", tests, TH_TABLE_LEN(tests), argc, argv);
}
