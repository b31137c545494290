/* main.c - order-svc: owns the orders (coupon_results) on the MariaDB shards.
 *
 * Loads the settings (ord_conf.h, env prefix ORDER_), runs the service
 * (ord_svc.h) on one libevent loop, and stops it gracefully on SIGTERM or
 * SIGINT: exit 0 once in-flight work is finished or the shutdown timeout
 * passed, 1 on a bad configuration or a failed start. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "ord_conf.h"
#include "ord_svc.h"

static void ord_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("-", "%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    ord_svc_stop(arg);
}

int main(int argc, char **argv)
{
    ord_conf conf;
    cg_error err = {0, ""};
    struct event_base *base = NULL;
    struct event *sig_term = NULL, *sig_int = NULL;
    ord_svc *svc = NULL;
    sigset_t stop_signals;
    int rc, status = 1;

    log_set_program("order-svc");
    /* Hold SIGTERM/SIGINT until the loop watches them: a stop asked for
     * during start-up is then handled gracefully, and the threads started
     * meanwhile inherit the mask, so the signals reach the loop's thread. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    memset(&conf, 0, sizeof(conf));
    rc = cfg_load(&ord_conf_spec, &conf, argc, argv, &err);
    if (rc == CG_ERR_EXIT) {
        status = 0;
        goto done;
    }
    if (rc != CG_OK || svc_conf_apply_log_level(&conf.svc, &err) != CG_OK) {
        log_error("-", "configuration: %s", err.msg);
        goto done;
    }
    /* Broken sockets must surface as errors, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (base == NULL) {
        log_error("-", "event_base_new failed");
        goto done;
    }
    svc = ord_svc_new(base, &conf, &err);
    if (svc == NULL) {
        log_error("-", "start: %s", err.msg);
        goto done;
    }
    sig_term = evsignal_new(base, SIGTERM, ord_on_signal, svc);
    sig_int = evsignal_new(base, SIGINT, ord_on_signal, svc);
    if (sig_term == NULL || sig_int == NULL || event_add(sig_term, NULL) != 0 ||
        event_add(sig_int, NULL) != 0) {
        log_error("-", "cannot watch signals");
        goto done;
    }
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    event_base_dispatch(base);
    log_info("-", "stopped %s", ord_svc_stopped_cleanly(svc) ? "cleanly" : "after the timeout");
    status = 0;

done:
    if (sig_term != NULL)
        event_free(sig_term);
    if (sig_int != NULL)
        event_free(sig_int);
    ord_svc_free(svc);
    if (base != NULL)
        event_base_free(base);
    cfg_free(&ord_conf_spec, &conf);
    if (status == 0 && rc != CG_ERR_EXIT)
        log_info("-", "exiting 0");
    return status;
}
