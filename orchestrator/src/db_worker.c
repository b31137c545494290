/* db_worker.c - the MariaDB worker thread; see db_worker.h. */
#include "db_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

struct dbw {
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dbw_job *in_head, *in_tail;     /* waiting to run */
    dbw_job *out_head, *out_tail;   /* ran, waiting for `done` */
    size_t n_in, max_queue;
    int stop;
    int efd;
    struct event *ev;
    db_config cfg;
    char *host, *user, *password, *database;
};

static void push(dbw_job **head, dbw_job **tail, dbw_job *j)
{
    j->next = NULL;
    if (*tail != NULL)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void *dbw_main(void *arg)
{
    dbw *w = arg;
    MYSQL *conn = NULL;
    uint64_t one = 1;

    mysql_thread_init();
    for (;;) {
        dbw_job *j;

        pthread_mutex_lock(&w->mu);
        while (w->in_head == NULL && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        j = w->in_head;
        w->in_head = j->next;
        if (w->in_head == NULL)
            w->in_tail = NULL;
        w->n_in--;
        pthread_mutex_unlock(&w->mu);

        j->run(j, &conn, &w->cfg);

        pthread_mutex_lock(&w->mu);
        push(&w->out_head, &w->out_tail, j);
        pthread_mutex_unlock(&w->mu);
        while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR)
            ;
    }
    db_close(conn);
    mysql_thread_end();
    return NULL;
}

/* Runs `done` of every finished job, on the loop. */
static void dbw_drain(dbw *w)
{
    dbw_job *j, *next;

    pthread_mutex_lock(&w->mu);
    j = w->out_head;
    w->out_head = w->out_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    for (; j != NULL; j = next) {
        next = j->next;
        j->done(j, 0);
    }
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;

    (void)what;
    while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
    dbw_drain(arg);
}

static char *dup_or_null(const char *s, int *ok)
{
    char *d = NULL;

    if (s != NULL && (d = strdup(s)) == NULL)
        *ok = 0;
    return d;
}

int dbw_new(struct event_base *base, const db_config *cfg, size_t max_queue, dbw **out,
            cg_error *err)
{
    dbw *w = calloc(1, sizeof(*w));
    int ok = 1, rc = CG_OK;

    *out = NULL;
    if (w == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "out of memory");
    w->efd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->max_queue = max_queue;
    w->cfg = *cfg;
    w->cfg.host = w->host = dup_or_null(cfg->host, &ok);
    w->cfg.user = w->user = dup_or_null(cfg->user, &ok);
    w->cfg.password = w->password = dup_or_null(cfg->password, &ok);
    w->cfg.database = w->database = dup_or_null(cfg->database, &ok);
    if (!ok) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto err;
    }
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        rc = cg_error_set(err, CG_ERR_IO, "eventfd: %s", strerror(errno));
        goto err;
    }
    w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_wake, w);
    if (w->ev == NULL || event_add(w->ev, NULL) != 0) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "event_new failed");
        goto err;
    }
    if (pthread_create(&w->thread, NULL, dbw_main, w) != 0) {
        rc = cg_error_set(err, CG_ERR_IO, "pthread_create failed");
        goto err;
    }
    w->started = 1;
    *out = w;
    return CG_OK;
err:
    dbw_free(w);
    return rc;
}

int dbw_submit(dbw *w, dbw_job *job)
{
    int rc = CG_OK;

    pthread_mutex_lock(&w->mu);
    if (w->stop)
        rc = CG_ERR_STATE;
    else if (w->n_in >= w->max_queue)
        rc = CG_ERR_FULL;
    else {
        push(&w->in_head, &w->in_tail, job);
        w->n_in++;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void dbw_free(dbw *w)
{
    dbw_job *j, *next;

    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->thread, NULL);
    dbw_drain(w);
    for (j = w->in_head; j != NULL; j = next) {
        next = j->next;
        j->done(j, 1);
    }
    if (w->ev != NULL)
        event_free(w->ev);
    if (w->efd >= 0)
        close(w->efd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->host);
    free(w->user);
    if (w->password != NULL) {
        explicit_bzero(w->password, strlen(w->password));
        free(w->password);
    }
    free(w->database);
    free(w);
}
