/* test_cfg.c - unit tests of configuration precedence, parsing and secrets. */
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "cfg.h"
#include "testhelp.h"

typedef struct demo_conf {
    long long port;
    int verbose;
    char *host;
    char *password;
} demo_conf;

static const cfg_param demo_params[] = {
    {"port", CFG_INT, offsetof(demo_conf, port), "8000", 1, 65535, "listen port"},
    {"verbose", CFG_BOOL, offsetof(demo_conf, verbose), "false", 0, 0, "log more"},
    {"host", CFG_STRING, offsetof(demo_conf, host), "127.0.0.1", 0, 0, "listen address"},
    {"password", CFG_SECRET, offsetof(demo_conf, password), NULL, 0, 0, "broker password"},
};

static int demo_validate(const void *conf, cg_error *err)
{
    const demo_conf *c = conf;

    if (c->verbose && c->port == 1)
        return cg_error_set(err, CG_ERR_INVALID, "verbose needs a port above 1");
    return CG_OK;
}

static const cfg_spec demo_spec = {"demo", "DEMO_", demo_params, TH_TABLE_LEN(demo_params),
                                   demo_validate};

static char tmp_dir[] = "/tmp/test_cfg.XXXXXX";

static const char *write_tmp(const char *name, const char *content)
{
    static char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    f = fopen(path, "w");
    if (f != NULL) {
        fputs(content, f);
        fclose(f);
    }
    return path;
}

static void clear_env(void)
{
    unsetenv("DEMO_PORT");
    unsetenv("DEMO_VERBOSE");
    unsetenv("DEMO_HOST");
    unsetenv("DEMO_PASSWORD");
    unsetenv("DEMO_PASSWORD_FILE");
    unsetenv("DEMO_CONFIG");
}

static int load(demo_conf *c, int argc, const char **argv, cg_error *err)
{
    memset(c, 0, sizeof(*c));
    memset(err, 0, sizeof(*err));
    /* cfg_load does not modify argv; the cast only drops const from the literals. */
    return cfg_load(&demo_spec, c, argc, (char **)argv, err);
}

static void test_defaults(void)
{
    demo_conf c;
    cg_error err;
    const char *argv[] = {"demo"};

    clear_env();
    TH_CHECK_INT(load(&c, 1, argv, &err), CG_OK);
    TH_CHECK_INT(c.port, 8000);
    TH_CHECK_INT(c.verbose, 0);
    TH_CHECK_STR(c.host, "127.0.0.1");
    TH_CHECK(c.password == NULL);
    cfg_free(&demo_spec, &c);
}

static void test_precedence(void)
{
    demo_conf c;
    cg_error err;
    const char *path = write_tmp("p.conf", "# demo\nport = 7000\nhost = \"10.0.0.1\"\nverbose = yes\n");
    char cfgflag[300];
    const char *argv[] = {"demo", cfgflag, "--port", "9000"};

    snprintf(cfgflag, sizeof(cfgflag), "--config=%s", path);
    clear_env();
    /* file only */
    TH_CHECK_INT(load(&c, 2, argv, &err), CG_OK);
    TH_CHECK_INT(c.port, 7000);
    TH_CHECK_STR(c.host, "10.0.0.1");
    TH_CHECK_INT(c.verbose, 1);
    cfg_free(&demo_spec, &c);
    /* environment beats file */
    setenv("DEMO_PORT", "7500", 1);
    TH_CHECK_INT(load(&c, 2, argv, &err), CG_OK);
    TH_CHECK_INT(c.port, 7500);
    TH_CHECK_STR(c.host, "10.0.0.1");
    cfg_free(&demo_spec, &c);
    /* flag beats environment */
    TH_CHECK_INT(load(&c, 4, argv, &err), CG_OK);
    TH_CHECK_INT(c.port, 9000);
    cfg_free(&demo_spec, &c);
    /* the file can also be named by DEMO_CONFIG */
    clear_env();
    setenv("DEMO_CONFIG", path, 1);
    TH_CHECK_INT(load(&c, 1, argv, &err), CG_OK);
    TH_CHECK_INT(c.port, 7000);
    cfg_free(&demo_spec, &c);
    clear_env();
}

static void test_flag_forms(void)
{
    demo_conf c;
    cg_error err;
    const char *argv[] = {"demo", "--port=1234", "--verbose", "on", "--host", "::1"};

    clear_env();
    TH_CHECK_INT(load(&c, 6, argv, &err), CG_OK);
    TH_CHECK_INT(c.port, 1234);
    TH_CHECK_INT(c.verbose, 1);
    TH_CHECK_STR(c.host, "::1");
    cfg_free(&demo_spec, &c);
}

static void test_bad_values(void)
{
    demo_conf c;
    cg_error err;
    const char *bad_int[] = {"demo", "--port=80x"};
    const char *range[] = {"demo", "--port=70000"};
    const char *bad_bool[] = {"demo", "--verbose=maybe"};
    const char *unknown[] = {"demo", "--colour=blue"};
    const char *missing[] = {"demo", "--port"};
    const char *stray[] = {"demo", "port=1"};

    clear_env();
    TH_CHECK_INT(load(&c, 2, bad_int, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "'port'") != NULL);
    cfg_free(&demo_spec, &c);
    TH_CHECK_INT(load(&c, 2, range, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "out of range") != NULL);
    cfg_free(&demo_spec, &c);
    TH_CHECK_INT(load(&c, 2, bad_bool, &err), CG_ERR_INVALID);
    cfg_free(&demo_spec, &c);
    TH_CHECK_INT(load(&c, 2, unknown, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "colour") != NULL);
    cfg_free(&demo_spec, &c);
    TH_CHECK_INT(load(&c, 2, missing, &err), CG_ERR_INVALID);
    cfg_free(&demo_spec, &c);
    TH_CHECK_INT(load(&c, 2, stray, &err), CG_ERR_INVALID);
    cfg_free(&demo_spec, &c);
    setenv("DEMO_PORT", "0", 1);
    TH_CHECK_INT(load(&c, 1, stray, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "DEMO_PORT") != NULL);
    cfg_free(&demo_spec, &c);
    clear_env();
}

static void test_file_errors(void)
{
    demo_conf c;
    cg_error err;
    char flag[300];
    const char *argv[] = {"demo", flag};

    clear_env();
    snprintf(flag, sizeof(flag), "--config=%s", write_tmp("u.conf", "port = 1\n\nnoise = 2\n"));
    TH_CHECK_INT(load(&c, 2, argv, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, ":3:") != NULL); /* the line number of the unknown key */
    cfg_free(&demo_spec, &c);
    snprintf(flag, sizeof(flag), "--config=%s", write_tmp("d.conf", "port = 1\nport = 2\n"));
    TH_CHECK_INT(load(&c, 2, argv, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "twice") != NULL);
    cfg_free(&demo_spec, &c);
    snprintf(flag, sizeof(flag), "--config=%s", write_tmp("n.conf", "just words\n"));
    TH_CHECK_INT(load(&c, 2, argv, &err), CG_ERR_INVALID);
    cfg_free(&demo_spec, &c);
    snprintf(flag, sizeof(flag), "--config=%s/none.conf", tmp_dir);
    TH_CHECK_INT(load(&c, 2, argv, &err), CG_ERR_IO);
    cfg_free(&demo_spec, &c);
}

static void test_secrets(void)
{
    demo_conf c;
    cg_error err;
    char fileflag[300];
    const char *secret_path = write_tmp("secret", "s3cret\n");
    const char *on_argv[] = {"demo", "--password=hunter2"};
    const char *file_flag[] = {"demo", fileflag};

    clear_env();
    /* never from argv */
    TH_CHECK_INT(load(&c, 2, on_argv, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "command line") != NULL);
    cfg_free(&demo_spec, &c);
    /* from a file named by a flag, trailing newline dropped */
    snprintf(fileflag, sizeof(fileflag), "--password-file=%s", secret_path);
    TH_CHECK_INT(load(&c, 2, file_flag, &err), CG_OK);
    TH_CHECK_STR(c.password, "s3cret");
    cfg_free(&demo_spec, &c);
    /* from the environment, directly or through *_FILE */
    setenv("DEMO_PASSWORD_FILE", secret_path, 1);
    TH_CHECK_INT(load(&c, 1, on_argv, &err), CG_OK);
    TH_CHECK_STR(c.password, "s3cret");
    cfg_free(&demo_spec, &c);
    setenv("DEMO_PASSWORD", "direct", 1);
    TH_CHECK_INT(load(&c, 1, on_argv, &err), CG_OK);
    TH_CHECK_STR(c.password, "direct");
    cfg_free(&demo_spec, &c);
    clear_env();
}

static void test_check_config_and_validate(void)
{
    demo_conf c;
    cg_error err;
    const char *check[] = {"demo", "--check-config", "--port=2"};
    const char *invalid[] = {"demo", "--check-config", "--port=1", "--verbose=true"};

    clear_env();
    TH_CHECK_INT(load(&c, 3, check, &err), CG_ERR_EXIT);
    cfg_free(&demo_spec, &c);
    TH_CHECK_INT(load(&c, 4, invalid, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "verbose needs") != NULL);
    cfg_free(&demo_spec, &c);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"defaults", test_defaults},
        {"file < environment < flags", test_precedence},
        {"flag forms", test_flag_forms},
        {"bad values name the setting", test_bad_values},
        {"file errors carry the line", test_file_errors},
        {"secrets never from argv", test_secrets},
        {"--check-config and validate", test_check_config_and_validate},
    };
    int rc;
    char cmd[300];

    if (mkdtemp(tmp_dir) == NULL)
        return 1;
    rc = th_main("cfg", tests, TH_TABLE_LEN(tests), argc, argv);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    return rc;
}
