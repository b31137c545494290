/* cfg.h - one configuration table per program; file, then environment, then flags.
 *
 * A program describes its settings once, as a table of {name, type, offset,
 * default} rows over its own config struct (Redis static_configs[],
 * pgbouncer bouncer_params[]). cfg_load() fills the struct from, in rising
 * precedence: the defaults, a config file (`--config FILE` or PREFIX_CONFIG),
 * environment variables (PREFIX_NAME, upper case), and command-line flags
 * (--name=value or --name value; '-' and '_' are the same). Secrets are
 * never taken from argv: they come from the environment, from the file, or
 * from a file named by NAME_FILE. `--check-config` validates, prints the
 * effective settings with secrets masked, and asks the caller to exit. */
#ifndef CG_CFG_H
#define CG_CFG_H

#include <stddef.h>
#include <stdio.h>

#include "status.h"

enum cfg_type {
    CFG_INT = 0,      /* long long member, checked against [min, max] */
    CFG_BOOL = 1,     /* int member: 1 for true/yes/on/1, 0 for false/no/off/0 */
    CFG_STRING = 2,   /* char * member, owned by the struct: cfg_free() frees it */
    CFG_SECRET = 3,   /* like CFG_STRING, but never from argv and masked when printed */
    CFG_TYPE_MAX
};

#define CFG_VALUE_MAX 4096     /* longest value (and secret file) accepted */
#define CFG_FILE_MAX (1 << 20) /* longest config file accepted */

typedef struct cfg_param {
    const char *name;          /* lower_snake_case; also the file key */
    enum cfg_type type;
    size_t offset;             /* offsetof(program_config, member) */
    const char *default_value; /* text, parsed like any other source; NULL: unset */
    long long min, max;        /* CFG_INT bounds, inclusive */
    const char *help;          /* one line for --help */
} cfg_param;

typedef struct cfg_spec {
    const char *program;       /* for --help */
    const char *env_prefix;    /* "ORCH_" gives ORCH_HTTP_PORT for http_port */
    const cfg_param *params;
    size_t n_params;
    /* Cross-field checks run after loading (and by --check-config); may be NULL. */
    int (*validate)(const void *conf, cg_error *err);
} cfg_spec;

/* Fills conf (zeroed by the caller) from all sources. Returns CG_OK,
 * CG_ERR_EXIT when --help or --check-config was handled (exit 0), or an
 * error whose message names the setting and the source at fault. On any
 * return, cfg_free() releases what was allocated. */
int cfg_load(const cfg_spec *spec, void *conf, int argc, char **argv, cg_error *err) CG_MUSTCHECK;

/* Frees the strings cfg_load() stored in conf. */
void cfg_free(const cfg_spec *spec, void *conf);

/* Prints "name = value" per setting; secrets appear as "(set)" or "(unset)". */
void cfg_print(const cfg_spec *spec, const void *conf, FILE *out);

#endif
