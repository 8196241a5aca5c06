/* Unit tests for keel/log.h: every line is valid JSON with escaping, levels and trace ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/log.h"

/* stderr is redirected to a temporary file (not a pipe, which would block writers once
 * full) while a test logs; capture_end returns everything written. */
static int saved_stderr = -1;
static FILE *capture_file;

static void capture_begin(void)
{
    capture_file = tmpfile();
    assert_non_null(capture_file);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_int_equal(dup2(fileno(capture_file), STDERR_FILENO), STDERR_FILENO);
}

static char *capture_end(void)
{
    assert_int_equal(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    fseek(capture_file, 0, SEEK_END);
    long size = ftell(capture_file);
    fseek(capture_file, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, capture_file), (size_t)size);
    fclose(capture_file);
    capture_file = NULL;
    return buf;
}

/* Parses the only line of out; fails the test unless there is exactly one. */
static json_t *single_line(const char *out)
{
    size_t len = strlen(out);
    assert_true(len > 0);
    assert_int_equal(out[len - 1], '\n');
    assert_null(memchr(out, '\n', len - 1));
    json_error_t jerr;
    json_t *obj = json_loadb(out, len - 1, 0, &jerr);
    if (obj == NULL) {
        fail_msg("not JSON (%s): %s", jerr.text, out);
    }
    return obj;
}

static int setup(void **state)
{
    (void)state;
    keel_log_init("test-svc", KEEL_LOG_DEBUG);
    keel_log_set_trace_id(NULL);
    return 0;
}

static void test_line_fields(void **state)
{
    (void)state;
    capture_begin();
    keel_log_info("hello %s %d", "world", 42);
    char *out = capture_end();
    json_t *obj = single_line(out);
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(obj, "service")), "test-svc");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), "hello world 42");
    assert_true(json_is_null(json_object_get(obj, "trace_id")));
    const char *ts = json_string_value(json_object_get(obj, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[23], 'Z');
    json_decref(obj);
    free(out);
}

static void test_escaping(void **state)
{
    (void)state;
    capture_begin();
    /* Quotes, backslash, named and unnamed control characters, valid multi-byte UTF-8, and
     * invalid sequences: a stray continuation byte, 0xff, an overlong '/', a UTF-16
     * surrogate, a truncated sequence at the end. */
    keel_log_error("q\"b\\n\n\r\t|\x01|\x1f|\x7f|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xff|"
                   "\xc0\xaf|\xed\xa0\x80|\xe2\x82");
    char *out = capture_end();
    json_t *obj = single_line(out); /* jansson itself rejects invalid UTF-8 */
    assert_string_equal(json_string_value(json_object_get(obj, "msg")),
                        "q\"b\\n\n\r\t|\x01|\x1f|\x7f|\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|"
                        "\xef\xbf\xbd|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd");
    assert_non_null(strstr(out, "\\u0001"));
    assert_non_null(strstr(out, "\\n\\r\\t"));
    json_decref(obj);
    free(out);
}

static void test_level_filter(void **state)
{
    (void)state;
    keel_log_init("test-svc", KEEL_LOG_WARN);
    capture_begin();
    keel_log_debug("dropped debug");
    keel_log_info("dropped info");
    keel_log_warn("kept warn");
    char *out = capture_end();
    keel_log_init("test-svc", KEEL_LOG_DEBUG);
    json_t *obj = single_line(out);
    assert_string_equal(json_string_value(json_object_get(obj, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), "kept warn");
    json_decref(obj);
    free(out);
}

static void test_level_parse(void **state)
{
    (void)state;
    keel_log_level lvl = KEEL_LOG_ERROR;
    assert_true(keel_log_level_parse("DEBUG", &lvl));
    assert_int_equal(lvl, KEEL_LOG_DEBUG);
    assert_true(keel_log_level_parse("Info", &lvl));
    assert_int_equal(lvl, KEEL_LOG_INFO);
    assert_true(keel_log_level_parse("warn", &lvl));
    assert_int_equal(lvl, KEEL_LOG_WARN);
    assert_true(keel_log_level_parse("error", &lvl));
    assert_int_equal(lvl, KEEL_LOG_ERROR);
    assert_false(keel_log_level_parse("warning", &lvl));
    assert_false(keel_log_level_parse("", &lvl));
    assert_false(keel_log_level_parse(NULL, &lvl));
    assert_int_equal(lvl, KEEL_LOG_ERROR); /* untouched on failure */
}

static const char *const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

static void *log_without_trace(void *arg)
{
    (void)arg;
    keel_log_info("from other thread");
    return (void *)keel_log_trace_id();
}

static void test_trace_id_is_thread_local(void **state)
{
    (void)state;
    keel_log_set_trace_id(TRACE);
    assert_string_equal(keel_log_trace_id(), TRACE);

    capture_begin();
    pthread_t th;
    void *other_trace = (void *)1;
    assert_int_equal(pthread_create(&th, NULL, log_without_trace, NULL), 0);
    pthread_join(th, &other_trace);
    char *out = capture_end();
    assert_null(other_trace);
    json_t *obj = single_line(out);
    assert_true(json_is_null(json_object_get(obj, "trace_id")));
    json_decref(obj);
    free(out);

    capture_begin();
    keel_log_info("with trace");
    out = capture_end();
    obj = single_line(out);
    assert_string_equal(json_string_value(json_object_get(obj, "trace_id")), TRACE);
    json_decref(obj);
    free(out);

    keel_log_set_trace_id(NULL);
    assert_null(keel_log_trace_id());
}

enum { LOG_THREADS = 4, LOG_LINES = 500 };

static void *log_many(void *arg)
{
    int t = *(int *)arg;
    char trace[33];
    snprintf(trace, sizeof trace, "%032d", t);
    keel_log_set_trace_id(trace);
    for (int i = 0; i < LOG_LINES; i++) {
        keel_log_info("thread %d line %d %s", t, i,
                      "padding padding padding padding padding padding padding padding");
    }
    return NULL;
}

static void test_lines_from_threads_never_mix(void **state)
{
    (void)state;
    capture_begin();
    pthread_t th[LOG_THREADS];
    int ids[LOG_THREADS];
    for (int t = 0; t < LOG_THREADS; t++) {
        ids[t] = t;
        assert_int_equal(pthread_create(&th[t], NULL, log_many, &ids[t]), 0);
    }
    for (int t = 0; t < LOG_THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    char *out = capture_end();
    int per_thread[LOG_THREADS] = {0};
    int lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *obj = json_loads(line, 0, &jerr);
        if (obj == NULL) {
            fail_msg("mixed or broken line: %s", line);
        }
        int t = -1;
        int i = -1;
        assert_int_equal(
            sscanf(json_string_value(json_object_get(obj, "msg")), "thread %d line %d", &t, &i), 2);
        assert_true(t >= 0 && t < LOG_THREADS);
        char trace[33];
        snprintf(trace, sizeof trace, "%032d", t);
        /* Each line carries the trace id of the thread that wrote it. */
        assert_string_equal(json_string_value(json_object_get(obj, "trace_id")), trace);
        assert_int_equal(i, per_thread[t]); /* one thread's lines stay in order */
        per_thread[t]++;
        lines++;
        json_decref(obj);
    }
    assert_int_equal(lines, LOG_THREADS * LOG_LINES);
    free(out);
}

static void test_long_message_is_cut_but_valid(void **state)
{
    (void)state;
    size_t n = 40000;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++) {
        big[i] = (char)('a' + i % 26);
    }
    big[n] = '\0';
    capture_begin();
    keel_log_info("%s", big);
    char *out = capture_end();
    json_t *obj = single_line(out);
    const char *msg = json_string_value(json_object_get(obj, "msg"));
    size_t len = strlen(msg);
    assert_true(len > 1000 && len < n);
    assert_memory_equal(msg, big, len - 3);
    assert_string_equal(msg + len - 3, "...");
    json_decref(obj);
    free(out);
    free(big);

    /* A medium message (longer than the stack buffers, shorter than the cap) is kept whole. */
    char medium[3000];
    memset(medium, '"', sizeof medium - 1); /* each quote doubles when escaped */
    medium[sizeof medium - 1] = '\0';
    capture_begin();
    keel_log_info("%s", medium);
    out = capture_end();
    obj = single_line(out);
    assert_string_equal(json_string_value(json_object_get(obj, "msg")), medium);
    json_decref(obj);
    free(out);
}

static void test_errno_preserved(void **state)
{
    (void)state;
    capture_begin();
    errno = ECONNREFUSED;
    keel_log_warn("connect failed");
    int after = errno;
    char *out = capture_end();
    free(out);
    assert_int_equal(after, ECONNREFUSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_line_fields, setup),
        cmocka_unit_test_setup(test_escaping, setup),
        cmocka_unit_test_setup(test_level_filter, setup),
        cmocka_unit_test_setup(test_level_parse, setup),
        cmocka_unit_test_setup(test_trace_id_is_thread_local, setup),
        cmocka_unit_test_setup(test_lines_from_threads_never_mix, setup),
        cmocka_unit_test_setup(test_long_message_is_cut_but_valid, setup),
        cmocka_unit_test_setup(test_errno_preserved, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
