/* Unit tests for keel/wakeup.h: a sleeper wakes on a kick, on a due time, on its timeout and
 * on stop, and a kick between reading `seen` and sleeping is not slept through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/wakeup.h"

typedef struct sleeper {
    keel_wakeup *w;
    uint64_t seen;
    int64_t ms;
    int64_t slept_ms;
    pthread_t tid;
} sleeper;

static void *sleeper_main(void *arg)
{
    sleeper *s = arg;
    int64_t t0 = keel_clock_monotonic_ms();
    keel_wakeup_sleep(s->w, s->seen, s->ms);
    s->slept_ms = keel_clock_monotonic_ms() - t0;
    return NULL;
}

static void start(sleeper *s, keel_wakeup *w, int64_t ms)
{
    s->w = w;
    s->seen = keel_wakeup_seen(w);
    s->ms = ms;
    assert_int_equal(pthread_create(&s->tid, NULL, sleeper_main, s), 0);
}

static void test_timeout(void **state)
{
    (void)state;
    keel_wakeup *w = keel_wakeup_new();
    assert_non_null(w);
    sleeper s;
    start(&s, w, 300);
    pthread_join(s.tid, NULL);
    assert_true(s.slept_ms >= 290 && s.slept_ms < 1500);
    keel_wakeup_free(w);
}

static void test_kick_wakes_every_sleeper(void **state)
{
    (void)state;
    keel_wakeup *w = keel_wakeup_new();
    sleeper a, b;
    start(&a, w, 10000);
    start(&b, w, 10000);
    usleep(100 * 1000);
    keel_wakeup_kick(w);
    pthread_join(a.tid, NULL);
    pthread_join(b.tid, NULL);
    assert_true(a.slept_ms < 2000);
    assert_true(b.slept_ms < 2000);
    keel_wakeup_free(w);
}

/* A kick after `seen` was read but before the sleep starts ends the sleep at once. */
static void test_early_kick_not_lost(void **state)
{
    (void)state;
    keel_wakeup *w = keel_wakeup_new();
    uint64_t seen = keel_wakeup_seen(w);
    keel_wakeup_kick(w);
    int64_t t0 = keel_clock_monotonic_ms();
    keel_wakeup_sleep(w, seen, 10000);
    assert_true(keel_clock_monotonic_ms() - t0 < 100);
    keel_wakeup_free(w);
}

/* A due time wakes one sleeper when it arrives, not before. */
static void test_due_time(void **state)
{
    (void)state;
    keel_wakeup *w = keel_wakeup_new();
    sleeper s;
    start(&s, w, 10000);
    usleep(50 * 1000);
    keel_wakeup_due_in(w, 400);
    keel_wakeup_due_in(w, 5000); /* a later time does not replace the earlier one */
    pthread_join(s.tid, NULL);
    assert_true(s.slept_ms >= 430 && s.slept_ms < 2000);
    keel_wakeup_free(w);
}

static void test_stop(void **state)
{
    (void)state;
    keel_wakeup *w = keel_wakeup_new();
    sleeper s;
    assert_false(keel_wakeup_stopped(w));
    start(&s, w, 10000);
    usleep(50 * 1000);
    keel_wakeup_stop(w);
    pthread_join(s.tid, NULL);
    assert_true(s.slept_ms < 2000);
    assert_true(keel_wakeup_stopped(w));
    /* Once stopped, sleeping returns at once. */
    int64_t t0 = keel_clock_monotonic_ms();
    keel_wakeup_sleep(w, keel_wakeup_seen(w), 10000);
    assert_true(keel_clock_monotonic_ms() - t0 < 100);
    keel_wakeup_free(w);
    keel_wakeup_kick(NULL); /* harmless */
    keel_wakeup_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_kick_wakes_every_sleeper),
        cmocka_unit_test(test_early_kick_not_lost),
        cmocka_unit_test(test_due_time),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
