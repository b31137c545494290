/* cfg.c - configuration loading; see cfg.h for the sources and their order. */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CFG_NAME_MAX 128

/* Where a value came from, for error messages. */
typedef struct cfg_source {
    const char *kind;   /* "default", "file", "environment", "flag" */
    const char *where;  /* file path, variable name or flag; may be NULL */
    int line;           /* file line, 0 otherwise */
} cfg_source;

static int cfg_source_error(cg_error *err, const cfg_source *src, const char *name,
                            const char *what)
{
    if (src->line > 0)
        return cg_error_set(err, CG_ERR_INVALID, "%s:%d: setting '%s': %s", src->where,
                            src->line, name, what);
    return cg_error_set(err, CG_ERR_INVALID, "%s %s: setting '%s': %s", src->kind,
                        src->where ? src->where : "", name, what);
}

/* Matches a name written with '-' or '_' against a table name. */
static int cfg_name_equal(const char *table_name, const char *given, size_t given_len)
{
    size_t i;

    for (i = 0; i < given_len && table_name[i] != '\0'; i++) {
        char c = given[i] == '-' ? '_' : given[i];
        if (c != table_name[i])
            return 0;
    }
    return i == given_len && table_name[i] == '\0';
}

static const cfg_param *cfg_find(const cfg_spec *spec, const char *name, size_t len)
{
    for (size_t i = 0; i < spec->n_params; i++) {
        if (cfg_name_equal(spec->params[i].name, name, len))
            return &spec->params[i];
    }
    return NULL;
}

static int cfg_parse_bool(const char *value, int *out)
{
    static const char *const truthy[] = {"1", "true", "yes", "on"};
    static const char *const falsy[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(value, truthy[i]) == 0) {
            *out = 1;
            return CG_OK;
        }
        if (strcasecmp(value, falsy[i]) == 0) {
            *out = 0;
            return CG_OK;
        }
    }
    return CG_ERR_INVALID;
}

/* Parses value for p and stores it in conf. */
static int cfg_set(const cfg_param *p, void *conf, const char *value, const cfg_source *src,
                   cg_error *err)
{
    char *member = (char *)conf + p->offset;
    char what[CG_ERROR_MSG_MAX];

    if (strlen(value) > CFG_VALUE_MAX)
        return cfg_source_error(err, src, p->name, "value too long");
    switch (p->type) {
    case CFG_INT: {
        char *end = NULL;
        long long v;

        errno = 0;
        v = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0')
            return cfg_source_error(err, src, p->name, "expected an integer");
        if (v < p->min || v > p->max) {
            snprintf(what, sizeof(what), "%lld is out of range [%lld, %lld]", v, p->min, p->max);
            return cfg_source_error(err, src, p->name, what);
        }
        memcpy(member, &v, sizeof(v));
        break;
    }
    case CFG_BOOL: {
        int b = 0;

        if (cfg_parse_bool(value, &b) != CG_OK)
            return cfg_source_error(err, src, p->name, "expected true or false");
        memcpy(member, &b, sizeof(b));
        break;
    }
    case CFG_STRING:
    case CFG_SECRET: {
        char *copy = strdup(value);
        char *old = NULL;

        if (copy == NULL)
            return cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        memcpy(&old, member, sizeof(old));
        free(old);
        memcpy(member, &copy, sizeof(copy));
        break;
    }
    default:
        return cfg_source_error(err, src, p->name, "unknown setting type");
    }
    return CG_OK;
}

/* Reads a whole file of at most max bytes into a new NUL-terminated buffer. */
static int cfg_read_file(const char *path, size_t max, char **out, cg_error *err)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t len;
    int rc = CG_OK;

    *out = NULL;
    f = fopen(path, "r");
    if (f == NULL) {
        rc = cg_error_set(err, CG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    buf = malloc(max + 2);
    if (buf == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    len = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        rc = cg_error_set(err, CG_ERR_IO, "cannot read %s", path);
        goto done;
    }
    if (len > max) {
        rc = cg_error_set(err, CG_ERR_INVALID, "%s is larger than %zu bytes", path, max);
        goto done;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
done:
    free(buf);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Sets a secret from the contents of a file, without its trailing newline. */
static int cfg_set_secret_from_file(const cfg_param *p, void *conf, const char *path,
                                    const cfg_source *src, cg_error *err)
{
    char *content = NULL;
    size_t len;
    int rc;

    rc = cfg_read_file(path, CFG_VALUE_MAX, &content, err);
    if (rc != CG_OK)
        goto done;
    len = strlen(content);
    while (len > 0 && (content[len - 1] == '\n' || content[len - 1] == '\r'))
        content[--len] = '\0';
    rc = cfg_set(p, conf, content, src, err);
done:
    free(content);
    return rc;
}

/* Looks up "name" or, for secrets, "name_file" (the secret's path). */
static const cfg_param *cfg_find_key(const cfg_spec *spec, const char *key, size_t len,
                                     int *is_file)
{
    const cfg_param *p = cfg_find(spec, key, len);

    *is_file = 0;
    if (p == NULL && len > 5 && cfg_name_equal("_file", key + len - 5, 5)) {
        p = cfg_find(spec, key, len - 5);
        if (p != NULL && p->type == CFG_SECRET)
            *is_file = 1;
        else
            p = NULL;
    }
    return p;
}

static char *cfg_trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* File format: "name = value" lines, '#' comments, optional double quotes
 * around the value. An unknown or repeated key is an error. */
static int cfg_load_file(const cfg_spec *spec, void *conf, const char *path, cg_error *err)
{
    char *text = NULL, *line, *save = NULL;
    unsigned char *seen = NULL;
    cfg_source src = {"file", path, 0};
    int rc;

    rc = cfg_read_file(path, CFG_FILE_MAX, &text, err);
    if (rc != CG_OK)
        goto done;
    seen = calloc(spec->n_params + 1, 1);
    if (seen == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* strtok_r would merge empty lines and skew line numbers; split by hand. */
    for (line = text; line != NULL; line = save) {
        char *eq, *key, *value;
        const cfg_param *p;
        int is_file;

        save = strchr(line, '\n');
        if (save != NULL)
            *save++ = '\0';
        src.line++;
        key = cfg_trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        eq = strchr(key, '=');
        if (eq == NULL) {
            rc = cg_error_set(err, CG_ERR_INVALID, "%s:%d: expected 'name = value'", path, src.line);
            goto done;
        }
        *eq = '\0';
        key = cfg_trim(key);
        value = cfg_trim(eq + 1);
        if (value[0] == '"' && strlen(value) >= 2 && value[strlen(value) - 1] == '"') {
            value[strlen(value) - 1] = '\0';
            value++;
        }
        p = cfg_find_key(spec, key, strlen(key), &is_file);
        if (p == NULL) {
            rc = cg_error_set(err, CG_ERR_INVALID, "%s:%d: unknown setting '%s'", path, src.line, key);
            goto done;
        }
        if (seen[p - spec->params]) {
            rc = cg_error_set(err, CG_ERR_INVALID, "%s:%d: setting '%s' given twice", path,
                              src.line, p->name);
            goto done;
        }
        seen[p - spec->params] = 1;
        rc = is_file ? cfg_set_secret_from_file(p, conf, value, &src, err)
                     : cfg_set(p, conf, value, &src, err);
        if (rc != CG_OK)
            goto done;
    }
done:
    free(seen);
    free(text);
    return rc;
}

static void cfg_env_name(const cfg_spec *spec, const cfg_param *p, const char *suffix,
                         char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "%s%s%s", spec->env_prefix, p->name, suffix);

    for (size_t i = 0; i < n && i < size; i++)
        out[i] = (char)toupper((unsigned char)out[i]);
}

static int cfg_load_env(const cfg_spec *spec, void *conf, cg_error *err)
{
    char var[CFG_NAME_MAX + 16];
    cfg_source src = {"environment", var, 0};
    const char *value;
    int rc = CG_OK;

    for (size_t i = 0; i < spec->n_params && rc == CG_OK; i++) {
        const cfg_param *p = &spec->params[i];

        cfg_env_name(spec, p, "", var, sizeof(var));
        value = getenv(var);
        if (value != NULL) {
            rc = cfg_set(p, conf, value, &src, err);
            continue;
        }
        if (p->type == CFG_SECRET) {
            cfg_env_name(spec, p, "_FILE", var, sizeof(var));
            value = getenv(var);
            if (value != NULL)
                rc = cfg_set_secret_from_file(p, conf, value, &src, err);
        }
    }
    return rc;
}

static void cfg_print_help(const cfg_spec *spec)
{
    char var[CFG_NAME_MAX + 16];

    printf("usage: %s [--config FILE] [--check-config] [--name=value ...]\n\n", spec->program);
    for (size_t i = 0; i < spec->n_params; i++) {
        const cfg_param *p = &spec->params[i];

        cfg_env_name(spec, p, "", var, sizeof(var));
        printf("  --%-28s %s (env %s%s; default %s)\n", p->name, p->help ? p->help : "", var,
               p->type == CFG_SECRET ? " or *_FILE; not accepted as a flag" : "",
               p->default_value ? p->default_value : "unset");
    }
}

enum cfg_flag_action {
    CFG_FLAGS_LOAD = 0,   /* the settings were applied */
    CFG_FLAGS_HELP = 1,   /* --help was given */
    CFG_FLAGS_CHECK = 2   /* --check-config was given */
};

/* Applies the flags; *action says whether --help or --check-config was seen. */
static int cfg_load_flags(const cfg_spec *spec, void *conf, int argc, char **argv,
                          int *action, cg_error *err)
{
    cfg_source src = {"flag", NULL, 0};
    int rc = CG_OK;

    *action = CFG_FLAGS_LOAD;
    for (int i = 1; i < argc && rc == CG_OK; i++) {
        const char *arg = argv[i], *name, *value, *eq;
        const cfg_param *p;
        size_t name_len;
        int is_file;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *action = CFG_FLAGS_HELP;
            continue;
        }
        if (strcmp(arg, "--check-config") == 0) {
            *action = CFG_FLAGS_CHECK;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0)
            return cg_error_set(err, CG_ERR_INVALID, "unexpected argument '%s'", arg);
        name = arg + 2;
        eq = strchr(name, '=');
        name_len = eq ? (size_t)(eq - name) : strlen(name);
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return cg_error_set(err, CG_ERR_INVALID, "flag --%.*s needs a value", (int)name_len, name);
        }
        src.where = arg;
        if (cfg_name_equal("config", name, name_len))
            continue; /* read before the environment; see cfg_config_path() */
        p = cfg_find_key(spec, name, name_len, &is_file);
        if (p == NULL)
            return cg_error_set(err, CG_ERR_INVALID, "unknown flag --%.*s", (int)name_len, name);
        if (p->type == CFG_SECRET && !is_file)
            return cg_error_set(err, CG_ERR_INVALID,
                                "secret '%s' is not accepted on the command line (other users "
                                "can read argv): use the environment or --%s-file", p->name, p->name);
        rc = is_file ? cfg_set_secret_from_file(p, conf, value, &src, err)
                     : cfg_set(p, conf, value, &src, err);
    }
    return rc;
}

/* The config file named by the last --config flag, else by PREFIX_CONFIG. */
static const char *cfg_config_path(const cfg_spec *spec, int argc, char **argv)
{
    char var[CFG_NAME_MAX + 16];
    const char *path = NULL;

    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[++i];
    }
    if (path == NULL) {
        snprintf(var, sizeof(var), "%sCONFIG", spec->env_prefix);
        path = getenv(var);
    }
    return path;
}

int cfg_load(const cfg_spec *spec, void *conf, int argc, char **argv, cg_error *err)
{
    const char *path;
    cfg_source src = {"default", NULL, 0};
    int action = CFG_FLAGS_LOAD;
    int rc = CG_OK;

    for (size_t i = 0; i < spec->n_params && rc == CG_OK; i++) {
        if (spec->params[i].default_value != NULL)
            rc = cfg_set(&spec->params[i], conf, spec->params[i].default_value, &src, err);
    }
    if (rc != CG_OK)
        goto done;
    path = cfg_config_path(spec, argc, argv);
    if (path != NULL && (rc = cfg_load_file(spec, conf, path, err)) != CG_OK)
        goto done;
    if ((rc = cfg_load_env(spec, conf, err)) != CG_OK)
        goto done;
    if ((rc = cfg_load_flags(spec, conf, argc, argv, &action, err)) != CG_OK)
        goto done;
    if (action == CFG_FLAGS_HELP) {
        cfg_print_help(spec);
        rc = CG_ERR_EXIT;
        goto done;
    }
    if (spec->validate != NULL && (rc = spec->validate(conf, err)) != CG_OK)
        goto done;
    if (action == CFG_FLAGS_CHECK) {
        cfg_print(spec, conf, stdout);
        printf("configuration ok\n");
        rc = CG_ERR_EXIT;
    }
done:
    return rc;
}

void cfg_free(const cfg_spec *spec, void *conf)
{
    for (size_t i = 0; i < spec->n_params; i++) {
        const cfg_param *p = &spec->params[i];
        char *member = (char *)conf + p->offset;
        char *s = NULL;

        if (p->type != CFG_STRING && p->type != CFG_SECRET)
            continue;
        memcpy(&s, member, sizeof(s));
        free(s);
        s = NULL;
        memcpy(member, &s, sizeof(s));
    }
}

void cfg_print(const cfg_spec *spec, const void *conf, FILE *out)
{
    for (size_t i = 0; i < spec->n_params; i++) {
        const cfg_param *p = &spec->params[i];
        const char *member = (const char *)conf + p->offset;
        long long v;
        int b;
        const char *s;

        switch (p->type) {
        case CFG_INT:
            memcpy(&v, member, sizeof(v));
            fprintf(out, "%s = %lld\n", p->name, v);
            break;
        case CFG_BOOL:
            memcpy(&b, member, sizeof(b));
            fprintf(out, "%s = %s\n", p->name, b ? "true" : "false");
            break;
        case CFG_STRING:
            memcpy(&s, member, sizeof(s));
            fprintf(out, "%s = %s\n", p->name, s ? s : "(unset)");
            break;
        case CFG_SECRET:
            memcpy(&s, member, sizeof(s));
            fprintf(out, "%s = %s\n", p->name, s ? "(set)" : "(unset)");
            break;
        default:
            fprintf(out, "%s = ?\n", p->name);
            break;
        }
    }
}
