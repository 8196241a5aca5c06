/* Unit tests for keel/metrics.h: exact text rendering, series identity, concurrent updates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/metrics.h"

static void test_render_exact_text(void **state)
{
    (void)state;
    keel_metrics *m = keel_metrics_new();
    /* Registered out of order on purpose: the render sorts by name, then labels. */
    const char *help = "Requests handled, with a \\ and a\nnewline.";
    keel_metric *err500 =
        keel_metrics_counter(m, "keel_requests_total", help, "route=\"/a\",code=\"500\"");
    keel_metric *ok200 =
        keel_metrics_counter(m, "keel_requests_total", help, "route=\"/a\",code=\"200\"");
    keel_metric *depth = keel_metrics_gauge(m, "keel_queue_depth", "Items waiting.", NULL);
    const double bounds[] = {0.1, 0.5, 1};
    keel_metric *lat =
        keel_metrics_histogram(m, "keel_latency_seconds", "Latency.", "op=\"x\"", bounds, 3);

    keel_metric_inc(ok200);
    keel_metric_inc(ok200);
    keel_metric_inc(ok200);
    keel_metric_add(err500, 2);
    keel_metric_set(depth, 7.5);
    keel_metric_observe(lat, 0.0625);
    keel_metric_observe(lat, 0.25);
    keel_metric_observe(lat, 0.5); /* on a bound: counted in that bucket (le = less or equal) */
    keel_metric_observe(lat, 4);

    char *text = keel_metrics_render(m);
    const char *expected =
        "# HELP keel_latency_seconds Latency.\n"
        "# TYPE keel_latency_seconds histogram\n"
        "keel_latency_seconds_bucket{op=\"x\",le=\"0.1\"} 1\n"
        "keel_latency_seconds_bucket{op=\"x\",le=\"0.5\"} 3\n"
        "keel_latency_seconds_bucket{op=\"x\",le=\"1\"} 3\n"
        "keel_latency_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
        "keel_latency_seconds_sum{op=\"x\"} 4.8125\n"
        "keel_latency_seconds_count{op=\"x\"} 4\n"
        "# HELP keel_queue_depth Items waiting.\n"
        "# TYPE keel_queue_depth gauge\n"
        "keel_queue_depth 7.5\n"
        "# HELP keel_requests_total Requests handled, with a \\\\ and a\\nnewline.\n"
        "# TYPE keel_requests_total counter\n"
        "keel_requests_total{route=\"/a\",code=\"200\"} 3\n"
        "keel_requests_total{route=\"/a\",code=\"500\"} 2\n";
    assert_string_equal(text, expected);
    free(text);
    keel_metrics_free(m);
}

static void test_empty_registry_and_default(void **state)
{
    (void)state;
    keel_metrics *m = keel_metrics_new();
    char *text = keel_metrics_render(m);
    assert_string_equal(text, "");
    free(text);
    keel_metrics_free(m);

    keel_metrics *d = keel_metrics_default();
    assert_non_null(d);
    assert_ptr_equal(d, keel_metrics_default());
}

static void test_same_name_and_labels_same_series(void **state)
{
    (void)state;
    keel_metrics *m = keel_metrics_new();
    keel_metric *a = keel_metrics_counter(m, "keel_x_total", "X.", "k=\"1\"");
    keel_metric *b = keel_metrics_counter(m, "keel_x_total", "X.", "k=\"1\"");
    keel_metric *c = keel_metrics_counter(m, "keel_x_total", "X.", "k=\"2\"");
    keel_metric *none1 = keel_metrics_counter(m, "keel_x_total", "X.", NULL);
    keel_metric *none2 = keel_metrics_counter(m, "keel_x_total", "X.", "");
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_equal(none1, none2);
    keel_metric_inc(a);
    keel_metric_inc(b);
    assert_true(keel_metric_value(a) == 2.0);
    assert_true(keel_metric_value(c) == 0.0);
    /* A counter never goes down. */
    keel_metric_add(a, -5);
    assert_true(keel_metric_value(a) == 2.0);

    char *text = keel_metrics_render(m);
    /* The unlabeled series sorts first, and has no braces. */
    assert_non_null(strstr(text, "# TYPE keel_x_total counter\nkeel_x_total 0\n"
                                 "keel_x_total{k=\"1\"} 2\nkeel_x_total{k=\"2\"} 0\n"));
    free(text);
    keel_metrics_free(m);
}

static void test_value_formatting(void **state)
{
    (void)state;
    keel_metrics *m = keel_metrics_new();
    struct {
        double v;
        const char *want;
    } cases[] = {
        {0.1, "keel_g{c=\"a\"} 0.1\n"},
        {123456789, "keel_g{c=\"a\"} 1.23456789e+08\n"},
        {400000, "keel_g{c=\"a\"} 400000\n"},
        {1e6, "keel_g{c=\"a\"} 1e+06\n"},
        {0.0001, "keel_g{c=\"a\"} 0.0001\n"},
        {0.00001, "keel_g{c=\"a\"} 1e-05\n"},
        {0, "keel_g{c=\"a\"} 0\n"},
        {-2.5, "keel_g{c=\"a\"} -2.5\n"},
        {1e21, "keel_g{c=\"a\"} 1e+21\n"},
        {INFINITY, "keel_g{c=\"a\"} +Inf\n"},
        {-INFINITY, "keel_g{c=\"a\"} -Inf\n"},
        {NAN, "keel_g{c=\"a\"} NaN\n"},
        {1.0 / 3.0, "keel_g{c=\"a\"} 0.3333333333333333\n"},
    };
    keel_metric *g = keel_metrics_gauge(m, "keel_g", "G.", "c=\"a\"");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        keel_metric_set(g, cases[i].v);
        char *text = keel_metrics_render(m);
        if (strstr(text, cases[i].want) == NULL) {
            fail_msg("want %s in:\n%s", cases[i].want, text);
        }
        free(text);
    }
    keel_metric_set(g, 10);
    keel_metric_add(g, -3); /* gauges go both ways */
    assert_true(keel_metric_value(g) == 7.0);
    keel_metrics_free(m);
}

static void test_default_buckets(void **state)
{
    (void)state;
    keel_metrics *m = keel_metrics_new();
    keel_metric *h = keel_metrics_histogram(m, "keel_h_seconds", "H.", NULL, NULL, 0);
    keel_metric_observe(h, 0.003);
    keel_metric_observe(h, 0.2);
    keel_metric_observe(h, 20);
    assert_true(keel_metric_value(h) == 3.0);
    char *text = keel_metrics_render(m);
    const char *want = "keel_h_seconds_bucket{le=\"0.005\"} 1\n"
                       "keel_h_seconds_bucket{le=\"0.01\"} 1\n"
                       "keel_h_seconds_bucket{le=\"0.025\"} 1\n"
                       "keel_h_seconds_bucket{le=\"0.05\"} 1\n"
                       "keel_h_seconds_bucket{le=\"0.1\"} 1\n"
                       "keel_h_seconds_bucket{le=\"0.25\"} 2\n"
                       "keel_h_seconds_bucket{le=\"0.5\"} 2\n"
                       "keel_h_seconds_bucket{le=\"1\"} 2\n"
                       "keel_h_seconds_bucket{le=\"2.5\"} 2\n"
                       "keel_h_seconds_bucket{le=\"5\"} 2\n"
                       "keel_h_seconds_bucket{le=\"10\"} 2\n"
                       "keel_h_seconds_bucket{le=\"+Inf\"} 3\n"
                       "keel_h_seconds_sum 20.203\n"
                       "keel_h_seconds_count 3\n";
    if (strstr(text, want) == NULL) {
        fail_msg("unexpected render:\n%s", text);
    }
    free(text);
    keel_metrics_free(m);
}

enum { THREADS = 4, PER_THREAD = 100000 };

typedef struct shared {
    keel_metrics *m;
    keel_metric *counter;
    keel_metric *gauge;
    keel_metric *hist;
} shared;

static void *hammer(void *arg)
{
    shared *s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        keel_metric_inc(s->counter);
        keel_metric_add(s->gauge, 0.5);
        keel_metric_observe(s->hist, (i % 2) ? 0.25 : 2.0);
        if (i % 1000 == 0) {
            /* Lookups and registrations race with updates and with each other. */
            keel_metric *again = keel_metrics_counter(s->m, "keel_c_total", "C.", "t=\"x\"");
            assert_ptr_equal(again, s->counter);
            char labels[32];
            snprintf(labels, sizeof labels, "n=\"%d\"", i / 1000);
            keel_metric_inc(keel_metrics_counter(s->m, "keel_other_total", "O.", labels));
        }
    }
    return NULL;
}

static void test_concurrent_updates_sum_exactly(void **state)
{
    (void)state;
    shared s;
    s.m = keel_metrics_new();
    s.counter = keel_metrics_counter(s.m, "keel_c_total", "C.", "t=\"x\"");
    s.gauge = keel_metrics_gauge(s.m, "keel_g", "G.", NULL);
    const double bounds[] = {1.0};
    s.hist = keel_metrics_histogram(s.m, "keel_h", "H.", NULL, bounds, 1);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_create(&th[t], NULL, hammer, &s), 0);
    }
    /* Rendering while the others write must not crash or tear. */
    for (int i = 0; i < 20; i++) {
        free(keel_metrics_render(s.m));
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    assert_true(keel_metric_value(s.counter) == (double)(THREADS * PER_THREAD));
    assert_true(keel_metric_value(s.gauge) == (double)(THREADS * PER_THREAD) * 0.5);
    assert_true(keel_metric_value(s.hist) == (double)(THREADS * PER_THREAD));
    char *text = keel_metrics_render(s.m);
    assert_non_null(strstr(text, "keel_h_bucket{le=\"1\"} 200000\n"));
    assert_non_null(strstr(text, "keel_h_bucket{le=\"+Inf\"} 400000\n"));
    assert_non_null(strstr(text, "keel_h_sum 450000\n"));
    assert_non_null(strstr(text, "keel_other_total{n=\"0\"} 4\n"));
    assert_non_null(strstr(text, "keel_other_total{n=\"99\"} 4\n"));
    free(text);
    keel_metrics_free(s.m);
}

static void expect_abort(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (freopen("/dev/null", "w", stderr) == NULL) {
            _exit(100);
        }
        fn();
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void misuse_two_types(void)
{
    keel_metrics *m = keel_metrics_new();
    keel_metrics_counter(m, "keel_dup", "D.", NULL);
    keel_metrics_gauge(m, "keel_dup", "D.", "a=\"b\"");
}

static void misuse_bad_name(void)
{
    keel_metrics *m = keel_metrics_new();
    keel_metrics_counter(m, "keel-bad name", "D.", NULL);
}

static void misuse_set_counter(void)
{
    keel_metrics *m = keel_metrics_new();
    keel_metric_set(keel_metrics_counter(m, "keel_c", "C.", NULL), 3);
}

static void test_programming_errors_abort(void **state)
{
    (void)state;
    expect_abort(misuse_two_types);
    expect_abort(misuse_bad_name);
    expect_abort(misuse_set_counter);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact_text),
        cmocka_unit_test(test_empty_registry_and_default),
        cmocka_unit_test(test_same_name_and_labels_same_series),
        cmocka_unit_test(test_value_formatting),
        cmocka_unit_test(test_default_buckets),
        cmocka_unit_test(test_concurrent_updates_sum_exactly),
        cmocka_unit_test(test_programming_errors_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
