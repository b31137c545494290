/* ct_stack.c - running the stack's scripts; see ct_stack.h. */
#include "ct_stack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

int ct_script(const ct_conf *conf, const char *script, const char *args)
{
    char cmd[1024];
    int rc;

    snprintf(cmd, sizeof(cmd), "timeout %d \"%s/scripts/%s\" %s >&2", CT_SCRIPT_TIMEOUT_S,
             conf->repo_dir, script, args);
    log_info("-", "running %s", cmd);
    fflush(stdout);
    rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc))
        return -1;
    return WEXITSTATUS(rc);
}

pid_t ct_script_spawn(const ct_conf *conf, const char *script, const char *args)
{
    char cmd[1024];
    pid_t pid;

    snprintf(cmd, sizeof(cmd), "exec timeout %d \"%s/scripts/%s\" %s >&2", CT_SCRIPT_TIMEOUT_S,
             conf->repo_dir, script, args);
    log_info("-", "starting %s", cmd);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

int ct_script_reap(pid_t pid, int block)
{
    int st = 0;
    pid_t r;

    if (pid <= 0)
        return -1;
    do {
        r = waitpid(pid, &st, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0)
        return CT_SCRIPT_RUNNING;
    if (r < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

int ct_service_up(const ct_conf *conf, const char *name)
{
    char cmd[1024], line[256];
    FILE *p;
    int up = 0;

    snprintf(cmd, sizeof(cmd), "timeout 30 \"%s/scripts/services\" status 2>/dev/null", conf->repo_dir);
    p = popen(cmd, "r");
    if (p == NULL)
        return 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        char n[64], pid[32], state[16];

        if (sscanf(line, "%63s %31s %15s", n, pid, state) == 3 && strcmp(n, name) == 0)
            up = strcmp(state, "up") == 0;
    }
    pclose(p);
    return up;
}

int ct_stack_queues(const ct_conf *conf, ct_queue_count *out, size_t max, size_t *n)
{
    char cmd[1024], line[512];
    FILE *p;
    int rc, header = 1;

    *n = 0;
    snprintf(cmd, sizeof(cmd), "timeout 30 \"%s/scripts/stack\" queues 2>/dev/null", conf->repo_dir);
    p = popen(cmd, "r");
    if (p == NULL)
        return CG_ERR_IO;
    while (fgets(line, sizeof(line), p) != NULL) {
        ct_queue_count q;

        if (header) {   /* "name messages_ready ..." */
            header = 0;
            if (strncmp(line, "name", 4) == 0)
                continue;
        }
        if (sscanf(line, "%127s %ld %ld %ld", q.name, &q.ready, &q.unacked, &q.consumers) != 4)
            continue;
        if (*n < max)
            out[(*n)++] = q;
    }
    rc = pclose(p);
    return rc == 0 ? CG_OK : CG_ERR_IO;
}
