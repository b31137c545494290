/* main.c - stock-svc: owns coupon stock in Redis (through Sentinel) and
 * answers stock.reserve / stock.release commands from stock.cmd.
 *
 * Settings: stock_conf.c (STOCK_* variables, --help, --check-config). Exit
 * status: 0 after a graceful stop (SIGTERM/SIGINT) or --help/--check-config,
 * 1 when it cannot start, 2 for a bad configuration. */
#include <event2/event.h>
#include <signal.h>
#include <string.h>

#include "log.h"
#include "stock_conf.h"
#include "stock_svc.h"

int main(int argc, char **argv)
{
    stock_conf conf;
    struct event_base *base = NULL;
    stock_svc *svc = NULL;
    cg_error err;
    int rc, status = 1;

    memset(&conf, 0, sizeof(conf));
    memset(&err, 0, sizeof(err));
    log_set_program("stock-svc");
    signal(SIGPIPE, SIG_IGN);
    rc = cfg_load(&stock_conf_spec, &conf, argc, argv, &err);
    if (rc == CG_ERR_EXIT) {
        status = 0;
        goto done;
    }
    if (rc == CG_OK)
        rc = svc_conf_apply_log_level(&conf.svc, &err);
    if (rc != CG_OK) {
        log_error("-", "configuration: %s", err.msg);
        status = 2;
        goto done;
    }
    base = event_base_new();
    if (base == NULL) {
        log_error("-", "cannot create the event loop");
        goto done;
    }
    rc = stock_svc_new(base, &conf, &svc, &err);
    if (rc != CG_OK) {
        log_error("-", "cannot start: %s", err.msg);
        goto done;
    }
    status = event_base_dispatch(base) == 0 ? 0 : 1;
done:
    if (svc != NULL) {
        stock_svc_free(svc);
        log_info("-", "exit %d", status);
    }
    if (base != NULL)
        event_base_free(base);
    cfg_free(&stock_conf_spec, &conf);
    return status;
}
