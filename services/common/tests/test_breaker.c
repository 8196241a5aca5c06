/* Unit tests for keel/breaker.h: every breaker transition, the sliding window, slow calls,
 * half-open probes, the exported metrics, and the retry budget's bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/breaker.h"
#include "keel/clock.h"
#include "keel/metrics.h"

typedef struct fake_clock {
    int64_t now;
} fake_clock;

static int64_t fake_now(void *ctx)
{
    return ((fake_clock *)ctx)->now;
}

static keel_breaker *breaker_with(const char *name, fake_clock *clk, int window, int min_calls,
                                  double failure_rate, int probes)
{
    keel_breaker_options o = {
        .name = name,
        .window_size = window,
        .min_calls = min_calls,
        .failure_rate = failure_rate,
        .slow_call_ms = 100,
        .open_ms = 1000,
        .half_open_probes = probes,
        .now_ms = fake_now,
        .clock_ctx = clk,
    };
    keel_breaker *b = keel_breaker_new(&o);
    assert_non_null(b);
    return b;
}

/* One allowed call with its result; fails the test if the breaker refused it. */
static void call(keel_breaker *b, bool success, int64_t ms)
{
    assert_true(keel_breaker_allow(b));
    keel_breaker_record(b, success, ms);
}

static double metric(const char *name, const char *labels, bool gauge)
{
    keel_metrics *m = keel_metrics_default();
    keel_metric *s =
        gauge ? keel_metrics_gauge(m, name, "", labels) : keel_metrics_counter(m, name, "", labels);
    return keel_metric_value(s);
}

static double transitions(const char *breaker, const char *to)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "breaker=\"%s\",to=\"%s\"", breaker, to);
    return metric("keel_breaker_transitions_total", labels, false);
}

static double state_gauge(const char *breaker)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "breaker=\"%s\"", breaker);
    return metric("keel_breaker_state", labels, true);
}

static double rejected(const char *breaker)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "breaker=\"%s\"", breaker);
    return metric("keel_breaker_rejected_total", labels, false);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(keel_breaker_state_name(KEEL_BREAKER_CLOSED), "closed");
    assert_string_equal(keel_breaker_state_name(KEEL_BREAKER_OPEN), "open");
    assert_string_equal(keel_breaker_state_name(KEEL_BREAKER_HALF_OPEN), "half_open");
}

static void test_defaults_need_ten_calls_and_half_failing(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker_options o = {.name = "defaults", .now_ms = fake_now, .clock_ctx = &clk};
    keel_breaker *b = keel_breaker_new(&o);
    assert_non_null(b);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    /* min_calls 10: nine failures are no verdict yet. */
    for (int i = 0; i < 9; i++) {
        call(b, false, 1);
    }
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    call(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    /* open_ms 5000 by default. */
    clk.now += 4999;
    assert_false(keel_breaker_allow(b));
    clk.now += 1;
    assert_true(keel_breaker_allow(b));
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_HALF_OPEN);
    keel_breaker_record(b, true, 1);
    keel_breaker_free(b);
}

static void test_closed_below_rate_opens_at_rate(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("rate", &clk, 10, 10, 0.5, 2);
    /* 4 of 10 failed: 40 % < 50 %. */
    for (int i = 0; i < 10; i++) {
        call(b, i < 6, 1);
    }
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    /* The next failure pushes out a success: 5 of 10 = exactly the rate. */
    call(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    assert_true(transitions("rate", "open") == 1.0);
    assert_true(state_gauge("rate") == 1.0);
    keel_breaker_free(b);
}

static void test_window_slides(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("window", &clk, 4, 4, 0.75, 2);
    /* F F S S: 2/4. S pushes out the first F: 1/4; F pushes out the second F: 1/4. */
    call(b, false, 1);
    call(b, false, 1);
    call(b, true, 1);
    call(b, true, 1);
    call(b, true, 1);
    call(b, false, 1);
    /* Window S S S F, then S S F F (2/4); the next failure makes the window 3/4 and opens
     * it, where a cumulative count (5 of 8) would stay below the rate. */
    call(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    call(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    keel_breaker_free(b);
}

static void test_min_calls_larger_than_window_is_capped(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("mincap", &clk, 3, 50, 0.5, 1);
    call(b, false, 1);
    call(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    call(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    keel_breaker_free(b);
}

static void test_slow_calls_open(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker_options o = {
        .name = "slow",
        .window_size = 4,
        .min_calls = 4,
        .failure_rate = 0.9,
        .slow_rate = 0.5,
        .slow_call_ms = 100,
        .open_ms = 1000,
        .half_open_probes = 1,
        .now_ms = fake_now,
        .clock_ctx = &clk,
    };
    keel_breaker *b = keel_breaker_new(&o);
    /* 99 ms is not slow; 100 ms is. Successful but slow calls count. */
    call(b, true, 99);
    call(b, true, 99);
    call(b, true, 99);
    call(b, true, 100);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    call(b, true, 500);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    keel_breaker_free(b);
}

static void test_open_rejects_until_open_ms(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1000};
    keel_breaker *b = breaker_with("reject", &clk, 2, 2, 0.5, 2);
    call(b, false, 1);
    call(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    double before = rejected("reject");
    assert_false(keel_breaker_allow(b));
    clk.now += 999;
    assert_false(keel_breaker_allow(b));
    assert_true(rejected("reject") == before + 2.0);
    /* A late result of a call let through before it opened changes nothing. */
    keel_breaker_record(b, true, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    clk.now += 1;
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_HALF_OPEN);
    assert_true(state_gauge("reject") == 2.0);
    assert_true(transitions("reject", "half_open") == 1.0);
    keel_breaker_free(b);
}

static void test_half_open_limits_probes_and_closes(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("probes", &clk, 2, 2, 0.5, 2);
    call(b, false, 1);
    call(b, false, 1);
    clk.now += 1000;
    /* Two probes go out; the third caller is refused while they are in flight. */
    assert_true(keel_breaker_allow(b));
    assert_true(keel_breaker_allow(b));
    double before = rejected("probes");
    assert_false(keel_breaker_allow(b));
    assert_true(rejected("probes") == before + 1.0);
    keel_breaker_record(b, true, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_HALF_OPEN);
    /* The first probe's success does not open the gate to more callers. */
    assert_false(keel_breaker_allow(b));
    keel_breaker_record(b, true, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    assert_true(transitions("probes", "closed") == 1.0);
    assert_true(state_gauge("probes") == 0.0);
    /* Closed starts a fresh window: the two failures that opened it are gone, so one more
     * failure is no verdict (with them it would be 2 of 2). */
    call(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    keel_breaker_free(b);
}

static void test_half_open_failure_reopens(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("reopen", &clk, 2, 2, 0.5, 3);
    call(b, false, 1);
    call(b, false, 1);
    clk.now += 1000;
    assert_true(keel_breaker_allow(b));
    assert_true(keel_breaker_allow(b));
    keel_breaker_record(b, true, 1);
    keel_breaker_record(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    assert_true(transitions("reopen", "open") == 2.0);
    /* The open period starts again from the failed probe. */
    clk.now += 999;
    assert_false(keel_breaker_allow(b));
    clk.now += 1;
    assert_true(keel_breaker_allow(b));
    keel_breaker_record(b, true, 1);
    assert_true(transitions("reopen", "half_open") == 2.0);
    keel_breaker_free(b);
}

static void test_half_open_slow_probe_reopens(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("slowprobe", &clk, 2, 2, 0.5, 1);
    call(b, false, 1);
    call(b, false, 1);
    clk.now += 1000;
    assert_true(keel_breaker_allow(b));
    keel_breaker_record(b, true, 100);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_OPEN);
    keel_breaker_free(b);
}

static void test_half_open_ignores_stragglers(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("straggler", &clk, 2, 2, 0.5, 1);
    /* A call goes out while closed and finishes only after the breaker turned half-open. */
    assert_true(keel_breaker_allow(b));
    call(b, false, 1);
    call(b, false, 1);
    clk.now += 1000;
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_HALF_OPEN);
    keel_breaker_record(b, false, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_HALF_OPEN);
    call(b, true, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    keel_breaker_free(b);
}

static void test_release_frees_a_probe_without_verdict(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("release", &clk, 2, 2, 0.5, 1);
    /* Closed: a released permit changes nothing. */
    assert_true(keel_breaker_allow(b));
    keel_breaker_release(b);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    call(b, false, 1);
    call(b, false, 1);
    clk.now += 1000;
    assert_true(keel_breaker_allow(b));
    assert_false(keel_breaker_allow(b));
    /* The one probe was never sent: the slot is free again and no verdict was reached. */
    keel_breaker_release(b);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_HALF_OPEN);
    assert_true(keel_breaker_allow(b));
    keel_breaker_record(b, true, 1);
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    keel_breaker_free(b);
}

/* ---- probes under concurrency ------------------------------------------------------- */

#define RACERS 8

typedef struct racer {
    keel_breaker *b;
    pthread_barrier_t *start;
    bool allowed;
} racer;

static void *racer_main(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->start);
    r->allowed = keel_breaker_allow(r->b);
    return NULL;
}

static void test_half_open_probes_under_concurrency(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("race", &clk, 2, 2, 0.5, 3);
    call(b, false, 1);
    call(b, false, 1);
    clk.now += 1000;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    racer rs[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        rs[i] = (racer){.b = b, .start = &start};
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
    }
    int allowed = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        allowed += rs[i].allowed;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(allowed, 3);
    for (int i = 0; i < allowed; i++) {
        keel_breaker_record(b, true, 1);
    }
    assert_int_equal(keel_breaker_state_now(b), KEEL_BREAKER_CLOSED);
    keel_breaker_free(b);
}

static void test_metrics_rendered(void **state)
{
    (void)state;
    fake_clock clk = {.now = 1};
    keel_breaker *b = breaker_with("render_me", &clk, 2, 2, 0.5, 1);
    char *text = keel_metrics_render(keel_metrics_default());
    assert_non_null(text);
    /* Registered at zero before anything happened, so alerts can see them. */
    assert_non_null(strstr(text, "keel_breaker_state{breaker=\"render_me\"} 0"));
    assert_non_null(
        strstr(text, "keel_breaker_transitions_total{breaker=\"render_me\",to=\"open\"} 0"));
    assert_non_null(strstr(text, "keel_breaker_rejected_total{breaker=\"render_me\"} 0"));
    free(text);
    keel_breaker_free(b);
}

/* ---- retry budget -------------------------------------------------------------------- */

static double exhausted(const char *budget)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "budget=\"%s\"", budget);
    return metric("keel_retry_budget_exhausted_total", labels, false);
}

static void test_budget_earns_ratio_per_first_attempt(void **state)
{
    (void)state;
    keel_retry_budget *rb = keel_retry_budget_new("ratio", 0.5, 0);
    assert_non_null(rb);
    assert_false(keel_retry_budget_withdraw(rb));
    assert_true(exhausted("ratio") == 1.0);
    keel_retry_budget_deposit(rb);
    assert_false(keel_retry_budget_withdraw(rb));
    keel_retry_budget_deposit(rb);
    keel_retry_budget_deposit(rb);
    /* 1.5 tokens: one retry. */
    assert_true(keel_retry_budget_withdraw(rb));
    assert_false(keel_retry_budget_withdraw(rb));
    assert_true(exhausted("ratio") == 3.0);
    keel_retry_budget_free(rb);
}

static void test_budget_tenths_add_up(void **state)
{
    (void)state;
    keel_retry_budget *rb = keel_retry_budget_new("tenths", 0.1, 0);
    for (int i = 0; i < 10; i++) {
        keel_retry_budget_deposit(rb);
    }
    assert_true(keel_retry_budget_withdraw(rb));
    assert_false(keel_retry_budget_withdraw(rb));
    keel_retry_budget_free(rb);
}

static void test_budget_is_bounded(void **state)
{
    (void)state;
    keel_retry_budget *rb = keel_retry_budget_new("bounded", 0.2, 0);
    /* A long healthy spell saves up at most ratio * 100 retries. */
    for (int i = 0; i < 10000; i++) {
        keel_retry_budget_deposit(rb);
    }
    int retries = 0;
    while (keel_retry_budget_withdraw(rb) && retries < 1000) {
        retries++;
    }
    assert_int_equal(retries, 20);
    keel_retry_budget_free(rb);

    /* However small the ratio, enough first attempts still earn one retry. */
    rb = keel_retry_budget_new("tiny", 0.001, 0);
    for (int i = 0; i < 999; i++) {
        keel_retry_budget_deposit(rb);
    }
    assert_false(keel_retry_budget_withdraw(rb));
    keel_retry_budget_deposit(rb);
    assert_true(keel_retry_budget_withdraw(rb));
    keel_retry_budget_free(rb);
}

static void test_budget_zero_never_retries(void **state)
{
    (void)state;
    keel_retry_budget *rb = keel_retry_budget_new("zero", 0, 0);
    for (int i = 0; i < 100; i++) {
        keel_retry_budget_deposit(rb);
    }
    assert_false(keel_retry_budget_withdraw(rb));
    keel_retry_budget_free(rb);
}

static void test_budget_min_per_second(void **state)
{
    (void)state;
    keel_retry_budget *rb = keel_retry_budget_new("floor", 0, 2);
    /* One second's allowance at the start, then min_per_second. */
    assert_true(keel_retry_budget_withdraw(rb));
    assert_true(keel_retry_budget_withdraw(rb));
    assert_false(keel_retry_budget_withdraw(rb));
    keel_clock_sleep_ms(600);
    assert_true(keel_retry_budget_withdraw(rb));
    assert_false(keel_retry_budget_withdraw(rb));
    /* It never saves up more than one second's worth. */
    keel_clock_sleep_ms(2100);
    assert_true(keel_retry_budget_withdraw(rb));
    assert_true(keel_retry_budget_withdraw(rb));
    assert_false(keel_retry_budget_withdraw(rb));
    keel_retry_budget_free(rb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_defaults_need_ten_calls_and_half_failing),
        cmocka_unit_test(test_closed_below_rate_opens_at_rate),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_min_calls_larger_than_window_is_capped),
        cmocka_unit_test(test_slow_calls_open),
        cmocka_unit_test(test_open_rejects_until_open_ms),
        cmocka_unit_test(test_half_open_limits_probes_and_closes),
        cmocka_unit_test(test_half_open_failure_reopens),
        cmocka_unit_test(test_half_open_slow_probe_reopens),
        cmocka_unit_test(test_half_open_ignores_stragglers),
        cmocka_unit_test(test_release_frees_a_probe_without_verdict),
        cmocka_unit_test(test_half_open_probes_under_concurrency),
        cmocka_unit_test(test_metrics_rendered),
        cmocka_unit_test(test_budget_earns_ratio_per_first_attempt),
        cmocka_unit_test(test_budget_tenths_add_up),
        cmocka_unit_test(test_budget_is_bounded),
        cmocka_unit_test(test_budget_zero_never_retries),
        cmocka_unit_test(test_budget_min_per_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
