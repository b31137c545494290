/* status.h - the status codes and error struct shared by every module.
 *
 * Functions return an int: CG_OK (0) or one of the negative codes below.
 * Details go into a cg_error the caller owns (never a global), in the
 * manner of jansson's json_error_t and hiredis' ctx->errstr. */
#ifndef CG_STATUS_H
#define CG_STATUS_H

#include <stddef.h>

/* Results a caller must look at (pgbouncer's _MUSTCHECK). */
#define CG_MUSTCHECK __attribute__((warn_unused_result))
#define CG_PRINTF(fmt_idx, args_idx) __attribute__((format(printf, fmt_idx, args_idx)))

enum cg_status {
    CG_OK = 0,              /* success */
    CG_ERR_NOMEM = -1,      /* an allocation failed */
    CG_ERR_INVALID = -2,    /* bad input: argument, config value, message */
    CG_ERR_IO = -3,         /* a system call or network operation failed */
    CG_ERR_TIMEOUT = -4,    /* a deadline passed before an answer came */
    CG_ERR_PROTOCOL = -5,   /* the peer answered something unexpected */
    CG_ERR_STATE = -6,      /* not possible in the current state (e.g. not connected) */
    CG_ERR_FULL = -7,       /* a bounded queue or buffer is full */
    CG_ERR_NOTFOUND = -8,   /* the thing asked for does not exist */
    CG_ERR_CONFLICT = -9,   /* optimistic check failed (e.g. WATCH aborted EXEC) */
    CG_ERR_EXIT = -10       /* not an error: the caller should exit 0 (--help, --check-config) */
};

#define CG_ERROR_MSG_MAX 256

/* Filled by a failing call; the caller owns it, usually on its stack. */
typedef struct cg_error {
    int code;                     /* one of enum cg_status */
    char msg[CG_ERROR_MSG_MAX];   /* human-readable, names the field or peer at fault */
} cg_error;

/* Sets err (when not NULL) and returns code, so that `return cg_error_set(...)`
 * reads as one statement. */
int cg_error_set(cg_error *err, int code, const char *fmt, ...) CG_PRINTF(3, 4);

/* A short fixed name for a status code ("ok", "timeout", ...). */
const char *cg_status_name(int code);

#endif
