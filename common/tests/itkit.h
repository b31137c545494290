/* itkit.h - helpers shared by the integration tests (it_*.c): the stack's
 * environment, its scripts, bounded waits on an event loop, and sockets that
 * misbehave on purpose. The runner (scripts/run-tests) exports the stack's
 * stack.env and REPO_DIR before it runs a test. */
#ifndef CG_ITKIT_H
#define CG_ITKIT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

static inline long long itk_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The variable's value, or fallback when unset or empty. */
static inline const char *itk_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : fallback;
}

/* Reads a secret file (the stack's password files) without its trailing
 * newline; 0 on success, -1 (and a message on stderr) otherwise. */
static inline int itk_read_secret(const char *path, char *buf, size_t size)
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "cannot read secret file %s (source the stack's stack.env)\n",
                path ? path : "(unset)");
        return -1;
    }
    n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* The broker settings from the stack's environment. */
typedef struct itk_amqp {
    char host[256];
    int port;
    char user[256];
    char password[256];
    char vhost[256];
} itk_amqp;

/* Loads RABBITMQ_HOST, _PORT, _USER and _VHOST (user and vhost fall back to
 * the given defaults) and reads the password from RABBITMQ_PASSWORD_FILE;
 * 0 on success, -1 (and a message on stderr) otherwise. */
static inline int itk_amqp_load(itk_amqp *a, const char *def_user, const char *def_vhost)
{
    const char *port = getenv("RABBITMQ_PORT");

    snprintf(a->host, sizeof(a->host), "%s", itk_env("RABBITMQ_HOST", "127.0.0.1"));
    snprintf(a->user, sizeof(a->user), "%s", itk_env("RABBITMQ_USER", def_user));
    snprintf(a->vhost, sizeof(a->vhost), "%s", itk_env("RABBITMQ_VHOST", def_vhost));
    a->port = port ? atoi(port) : 5672;
    return itk_read_secret(getenv("RABBITMQ_PASSWORD_FILE"), a->password, sizeof(a->password));
}

/* Runs $REPO_DIR/scripts/<script> with the formatted arguments, its output
 * on stderr; returns the exit status (-1 when it could not run). */
static inline int itk_script(const char *script, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int itk_script(const char *script, const char *fmt, ...)
{
    char args[768], cmd[1024];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "\"%s/scripts/%s\" %s >&2", itk_env("REPO_DIR", "."), script, args);
    rc = system(cmd);
    return rc == -1 ? -1 : (WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
}

/* The pid `scripts/stack pid NAME` prints, 0 when the server is not running. */
static inline int itk_stack_pid(const char *name)
{
    char cmd[1024], line[64] = "";
    FILE *p;

    snprintf(cmd, sizeof(cmd), "\"%s/scripts/stack\" pid %s 2>/dev/null", itk_env("REPO_DIR", "."),
             name);
    p = popen(cmd, "r");
    if (p != NULL) {
        if (fgets(line, sizeof(line), p) == NULL)
            line[0] = '\0';
        pclose(p);
    }
    return atoi(line);
}

/* Binds a socket to an ephemeral loopback port; listens when asked. */
static inline int itk_bind_loopback(int do_listen, int *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        (do_listen && listen(fd, 16) != 0) ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        *port = 0;
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A loopback port where nothing listens (free a moment ago). */
static inline int itk_closed_port(void)
{
    int port = 0, fd = itk_bind_loopback(0, &port);

    if (fd >= 0)
        close(fd);
    return port;
}

/* A listening socket that never accepts: the kernel completes the TCP
 * handshake and then nothing is ever said. Returns the fd (the caller
 * closes it), -1 on failure; the port goes to *port. */
static inline int itk_silent_listener(int *port)
{
    return itk_bind_loopback(1, port);
}

typedef int (*itk_pred)(void *arg);

static inline int itk_never(void *arg)
{
    (void)arg;
    return 0;
}

/* Runs the loop until pred(arg) holds or timeout_ms passes; returns pred's
 * last value. The 5 ms tick bounds each round when the loop has no events. */
static inline int itk_run_until(struct event_base *base, itk_pred pred, void *arg, int timeout_ms)
{
    long long deadline = itk_now_ms() + timeout_ms;
    struct timeval tick = {0, 5000};
    int ok = pred(arg);

    while (!ok && itk_now_ms() < deadline) {
        event_base_loopexit(base, &tick);
        event_base_dispatch(base);
        ok = pred(arg);
    }
    return ok;
}

/* Runs the loop for ms milliseconds. */
static inline void itk_run_for(struct event_base *base, int ms)
{
    itk_run_until(base, itk_never, NULL, ms);
}

#endif
