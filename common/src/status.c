/* status.c - error struct helpers; see status.h. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

int cg_error_set(cg_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL) {
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *cg_status_name(int code)
{
    switch (code) {
    case CG_OK: return "ok";
    case CG_ERR_NOMEM: return "out of memory";
    case CG_ERR_INVALID: return "invalid";
    case CG_ERR_IO: return "i/o error";
    case CG_ERR_TIMEOUT: return "timeout";
    case CG_ERR_PROTOCOL: return "protocol error";
    case CG_ERR_STATE: return "wrong state";
    case CG_ERR_FULL: return "full";
    case CG_ERR_NOTFOUND: return "not found";
    case CG_ERR_CONFLICT: return "conflict";
    case CG_ERR_EXIT: return "exit";
    default: return "unknown status";
    }
}
