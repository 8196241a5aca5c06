/* Unit tests for keel/config.h: env parsing, types, *_FILE secrets, redaction and --help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/config.h"
#include "keel/log.h"

static const keel_config_spec SPECS[] = {
    {"KEEL_T_NAME", KEEL_CONFIG_STRING, NULL, "the name of the thing", false},
    {"KEEL_T_PORT", KEEL_CONFIG_INT, "8080", "port to listen on", false},
    {"KEEL_T_FLAG", KEEL_CONFIG_BOOL, "false", "turn the flag on", false},
    {"KEEL_T_SECRET", KEEL_CONFIG_STRING, "", "the password", true},
    {"KEEL_T_TOKEN", KEEL_CONFIG_STRING, NULL, "a required token", true},
};
#define NSPECS (sizeof SPECS / sizeof SPECS[0])

static const char *const VARS[] = {"KEEL_T_NAME",       "KEEL_T_PORT",     "KEEL_T_FLAG",
                                   "KEEL_T_SECRET",     "KEEL_T_TOKEN",    "KEEL_T_SECRET_FILE",
                                   "KEEL_T_TOKEN_FILE", "KEEL_T_NAME_FILE"};

static char tmp_dir[64];

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) {
        unsetenv(VARS[i]);
    }
    setenv("KEEL_T_NAME", "widget", 1);
    setenv("KEEL_T_TOKEN", "tok-value", 1);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/keel_test_config_XXXXXX");
    return mkdtemp(tmp_dir) != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes content to a file in the test's directory and returns its path (static buffer). */
static const char *write_file(const char *name, const char *content)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    return path;
}

static void test_defaults_and_env(void **state)
{
    (void)state;
    char err[256] = "";
    keel_config *cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(keel_config_string(cfg, "KEEL_T_NAME"), "widget");
    assert_int_equal(keel_config_int(cfg, "KEEL_T_PORT"), 8080);
    assert_false(keel_config_bool(cfg, "KEEL_T_FLAG"));
    assert_string_equal(keel_config_string(cfg, "KEEL_T_SECRET"), "");
    assert_string_equal(keel_config_string(cfg, "KEEL_T_TOKEN"), "tok-value");
    assert_true(keel_config_has(cfg, "KEEL_T_PORT"));
    assert_false(keel_config_has(cfg, "KEEL_T_NOPE"));
    keel_config_free(cfg);

    setenv("KEEL_T_PORT", "-42", 1);
    setenv("KEEL_T_FLAG", "YES", 1);
    cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(keel_config_int(cfg, "KEEL_T_PORT"), -42);
    assert_true(keel_config_bool(cfg, "KEEL_T_FLAG"));
    keel_config_free(cfg);
}

static void test_missing_required_names_variable(void **state)
{
    (void)state;
    unsetenv("KEEL_T_NAME");
    char err[256] = "";
    assert_null(keel_config_load(SPECS, NSPECS, err, sizeof err));
    assert_non_null(strstr(err, "KEEL_T_NAME"));
    assert_non_null(strstr(err, "the name of the thing"));

    /* Set but empty counts as missing for a required variable. */
    setenv("KEEL_T_NAME", "", 1);
    err[0] = '\0';
    assert_null(keel_config_load(SPECS, NSPECS, err, sizeof err));
    assert_non_null(strstr(err, "KEEL_T_NAME"));

    /* A required secret mentions its _FILE alternative. */
    setenv("KEEL_T_NAME", "widget", 1);
    unsetenv("KEEL_T_TOKEN");
    err[0] = '\0';
    assert_null(keel_config_load(SPECS, NSPECS, err, sizeof err));
    assert_non_null(strstr(err, "KEEL_T_TOKEN_FILE"));
}

static void expect_int(const char *text, bool ok, int64_t want, const char *err_part)
{
    setenv("KEEL_T_PORT", text, 1);
    char err[256] = "";
    keel_config *cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    if (ok) {
        if (cfg == NULL) {
            fail_msg("\"%s\" rejected: %s", text, err);
        }
        assert_int_equal(keel_config_int(cfg, "KEEL_T_PORT"), want);
        keel_config_free(cfg);
    } else {
        if (cfg != NULL) {
            fail_msg("\"%s\" accepted as an int", text);
        }
        assert_non_null(strstr(err, "KEEL_T_PORT"));
        assert_non_null(strstr(err, err_part));
    }
}

static void test_int_parsing_and_range(void **state)
{
    (void)state;
    expect_int("0", true, 0, NULL);
    expect_int("+17", true, 17, NULL);
    expect_int("9223372036854775807", true, INT64_MAX, NULL);
    expect_int("-9223372036854775808", true, INT64_MIN, NULL);
    expect_int("9223372036854775808", false, 0, "out of range");
    expect_int("-9223372036854775809", false, 0, "out of range");
    expect_int("99999999999999999999999", false, 0, "out of range");
    expect_int("12x", false, 0, "not a decimal integer");
    expect_int("", false, 0, "not a decimal integer");
    expect_int(" 5", false, 0, "not a decimal integer");
    expect_int("5 ", false, 0, "not a decimal integer");
    expect_int("0x10", false, 0, "not a decimal integer");
    expect_int("-", false, 0, "not a decimal integer");
}

static void test_bool_parsing(void **state)
{
    (void)state;
    const char *truthy[] = {"true", "TRUE", "1", "yes", "On"};
    const char *falsy[] = {"false", "False", "0", "no", "OFF"};
    char err[256];
    for (size_t i = 0; i < 5; i++) {
        setenv("KEEL_T_FLAG", truthy[i], 1);
        keel_config *cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
        assert_non_null(cfg);
        assert_true(keel_config_bool(cfg, "KEEL_T_FLAG"));
        keel_config_free(cfg);
        setenv("KEEL_T_FLAG", falsy[i], 1);
        cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
        assert_non_null(cfg);
        assert_false(keel_config_bool(cfg, "KEEL_T_FLAG"));
        keel_config_free(cfg);
    }
    setenv("KEEL_T_FLAG", "maybe", 1);
    assert_null(keel_config_load(SPECS, NSPECS, err, sizeof err));
    assert_non_null(strstr(err, "KEEL_T_FLAG"));
    assert_non_null(strstr(err, "maybe"));
}

static void test_secret_from_file(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("KEEL_T_SECRET_FILE", write_file("secret", "s3cr3t-pw\n"), 1);
    keel_config *cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(keel_config_string(cfg, "KEEL_T_SECRET"), "s3cr3t-pw");
    keel_config_free(cfg);

    /* Exactly one trailing newline is removed (CRLF counts as one). */
    setenv("KEEL_T_SECRET_FILE", write_file("secret2", "line1\n\n"), 1);
    cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(keel_config_string(cfg, "KEEL_T_SECRET"), "line1\n");
    keel_config_free(cfg);
    setenv("KEEL_T_SECRET_FILE", write_file("secret3", "crlf\r\n"), 1);
    cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(keel_config_string(cfg, "KEEL_T_SECRET"), "crlf");
    keel_config_free(cfg);
    setenv("KEEL_T_SECRET_FILE", write_file("secret4", "no-newline"), 1);
    cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(keel_config_string(cfg, "KEEL_T_SECRET"), "no-newline");
    keel_config_free(cfg);

    /* A required secret may come only from its file. */
    unsetenv("KEEL_T_TOKEN");
    setenv("KEEL_T_TOKEN_FILE", write_file("token", "from-file\n"), 1);
    cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(keel_config_string(cfg, "KEEL_T_TOKEN"), "from-file");
    keel_config_free(cfg);
}

static void test_secret_file_errors(void **state)
{
    (void)state;
    char err[256] = "";
    /* Both set: refuse rather than guess which one wins. */
    setenv("KEEL_T_SECRET", "inline-pw", 1);
    setenv("KEEL_T_SECRET_FILE", write_file("both", "file-pw\n"), 1);
    assert_null(keel_config_load(SPECS, NSPECS, err, sizeof err));
    assert_non_null(strstr(err, "KEEL_T_SECRET"));
    assert_non_null(strstr(err, "KEEL_T_SECRET_FILE"));
    assert_null(strstr(err, "inline-pw"));
    assert_null(strstr(err, "file-pw"));

    /* A missing file names the path. */
    unsetenv("KEEL_T_SECRET");
    setenv("KEEL_T_SECRET_FILE", "/nonexistent/keel-secret", 1);
    assert_null(keel_config_load(SPECS, NSPECS, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/keel-secret"));
    assert_non_null(strstr(err, "KEEL_T_SECRET_FILE"));
}

static void test_file_ignored_for_non_secret(void **state)
{
    (void)state;
    char err[256] = "";
    setenv("KEEL_T_NAME_FILE", write_file("name", "from-file\n"), 1);
    keel_config *cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(keel_config_string(cfg, "KEEL_T_NAME"), "widget");
    keel_config_free(cfg);
}

static void test_secret_never_in_type_error(void **state)
{
    (void)state;
    static const keel_config_spec pin_spec[] = {
        {"KEEL_T_PIN", KEEL_CONFIG_INT, NULL, "a numeric secret", true},
    };
    setenv("KEEL_T_PIN", "hunter2", 1);
    char err[256] = "";
    assert_null(keel_config_load(pin_spec, 1, err, sizeof err));
    assert_non_null(strstr(err, "KEEL_T_PIN"));
    assert_null(strstr(err, "hunter2"));
    unsetenv("KEEL_T_PIN");
}

/* Runs keel_config_log with stderr on a pipe and returns what it wrote. */
static char *capture_config_log(const keel_config *cfg)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    close(fds[1]);
    keel_config_log(cfg); /* a few short lines: fits the pipe's buffer */
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + len, 65535 - len)) > 0) {
        len += (size_t)n;
    }
    close(fds[0]);
    return buf;
}

static void test_log_redacts_secrets(void **state)
{
    (void)state;
    keel_log_init("test-config", KEEL_LOG_INFO);
    char err[256] = "";
    setenv("KEEL_T_SECRET_FILE", write_file("logged", "pa55word-xyz\n"), 1);
    setenv("KEEL_T_TOKEN", "tok-9876", 1);
    keel_config *cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    char *out = capture_config_log(cfg);
    keel_config_free(cfg);

    assert_null(strstr(out, "pa55word-xyz"));
    assert_null(strstr(out, "tok-9876"));
    assert_non_null(strstr(out, "KEEL_T_SECRET=<redacted>"));
    assert_non_null(strstr(out, "KEEL_T_TOKEN=<redacted>"));
    /* Ordinary values are shown, with where they came from. */
    assert_non_null(strstr(out, "KEEL_T_NAME=widget (from environment)"));
    assert_non_null(strstr(out, "KEEL_T_PORT=8080 (from default)"));
    int lines = 0;
    for (const char *p = out; *p != '\0'; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, (int)NSPECS);
    free(out);

    /* A password typed into a URL or a libpq keyword string is masked too. */
    setenv("KEEL_T_NAME", "postgresql://keel:urlpw-123@db.local:5432/keel?sslmode=disable", 1);
    cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    out = capture_config_log(cfg);
    keel_config_free(cfg);
    assert_null(strstr(out, "urlpw-123"));
    assert_non_null(strstr(out, "postgresql://keel:<redacted>@db.local:5432/keel?sslmode=disable"));
    free(out);
    setenv("KEEL_T_NAME", "host=db user=keel password=kwpw-456 dbname=keel", 1);
    cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    out = capture_config_log(cfg);
    keel_config_free(cfg);
    assert_null(strstr(out, "kwpw-456"));
    assert_non_null(strstr(out, "password=<redacted> dbname=keel"));
    free(out);
}

static void test_wants_help(void **state)
{
    (void)state;
    char prog[] = "svc";
    char help[] = "--help";
    char h[] = "-h";
    char other[] = "--verbose";
    char *argv1[] = {prog, other, help, NULL};
    char *argv2[] = {prog, h, NULL};
    char *argv3[] = {prog, other, NULL};
    char *argv4[] = {help, NULL}; /* argv[0] is the program, not an option */
    assert_true(keel_config_wants_help(3, argv1));
    assert_true(keel_config_wants_help(2, argv2));
    assert_false(keel_config_wants_help(2, argv3));
    assert_false(keel_config_wants_help(1, argv4));
    assert_false(keel_config_wants_help(0, NULL));
}

static void test_print_help_is_aligned_table(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    keel_config_print_help(f, "keel-test", "Does test things.", SPECS, NSPECS);
    fclose(f);

    assert_non_null(strstr(text, "Usage: keel-test"));
    assert_non_null(strstr(text, "Does test things."));
    const char *header = strstr(text, "  VARIABLE ");
    assert_non_null(header);
    const char *line_start = header;
    while (line_start > text && line_start[-1] != '\n') {
        line_start--;
    }
    long type_col = strstr(header, "TYPE") - line_start;
    long help_col = strstr(header, "DESCRIPTION") - line_start;
    /* Every row puts its type and help text in the header's columns. */
    for (size_t i = 0; i < NSPECS; i++) {
        const char *row = strstr(text, SPECS[i].name);
        assert_non_null(row);
        while (row > text && row[-1] != '\n') {
            row--;
        }
        const char *type = i == 1 ? "int" : (i == 2 ? "bool" : "string");
        assert_memory_equal(row + type_col, type, strlen(type));
        assert_memory_equal(row + help_col, SPECS[i].help, strlen(SPECS[i].help));
    }
    assert_non_null(strstr(text, "(required)"));
    assert_non_null(strstr(text, "8080"));
    free(text);
}

static void test_getter_misuse_aborts(void **state)
{
    (void)state;
    char err[256];
    keel_config *cfg = keel_config_load(SPECS, NSPECS, err, sizeof err);
    assert_non_null(cfg);
    for (int which = 0; which < 3; which++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* Silence the abort message in the test log. */
            freopen("/dev/null", "w", stderr);
            if (which == 0) {
                keel_config_string(cfg, "KEEL_T_UNKNOWN");
            } else if (which == 1) {
                keel_config_int(cfg, "KEEL_T_NAME");
            } else {
                keel_config_bool(cfg, "KEEL_T_PORT");
            }
            _exit(0);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
    }
    keel_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_and_env, setup),
        cmocka_unit_test_setup(test_missing_required_names_variable, setup),
        cmocka_unit_test_setup(test_int_parsing_and_range, setup),
        cmocka_unit_test_setup(test_bool_parsing, setup),
        cmocka_unit_test_setup(test_secret_from_file, setup),
        cmocka_unit_test_setup(test_secret_file_errors, setup),
        cmocka_unit_test_setup(test_file_ignored_for_non_secret, setup),
        cmocka_unit_test_setup(test_secret_never_in_type_error, setup),
        cmocka_unit_test_setup(test_log_redacts_secrets, setup),
        cmocka_unit_test_setup(test_wants_help, setup),
        cmocka_unit_test_setup(test_print_help_is_aligned_table, setup),
        cmocka_unit_test_setup(test_getter_misuse_aborts, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
