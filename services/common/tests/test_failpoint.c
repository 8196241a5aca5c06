/* Unit tests for keel/failpoint.h: crash and sleep actions, parsing, and the disabled build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/failpoint.h"

/* Failpoints are parsed once per process, so every scenario sets KEEL_FAILPOINTS in a fresh
 * child before its first hit. Returns the child's wait status. */
static int run_child(const char *spec, int (*scenario)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (freopen("/dev/null", "w", stderr) == NULL) {
            _exit(100);
        }
        if (spec != NULL) {
            setenv("KEEL_FAILPOINTS", spec, 1);
        } else {
            unsetenv("KEEL_FAILPOINTS");
        }
        _exit(scenario());
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_exit_ok(int status)
{
    if (WIFSIGNALED(status)) {
        fail_msg("child killed by signal %d", WTERMSIG(status));
    }
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) {
        fail_msg("child check %d failed", WEXITSTATUS(status));
    }
}

#ifdef KEEL_FAILPOINTS_ENABLED

static int scenario_crash_after_sleep(void)
{
    KEEL_FAILPOINT("not.armed");
    int64_t start = keel_clock_monotonic_ms();
    KEEL_FAILPOINT("outbox.slow");
    int64_t slept = keel_clock_monotonic_ms() - start;
    if (slept < 145 || slept > 5000) {
        return 1;
    }
    /* A malformed entry is skipped, not fatal. */
    KEEL_FAILPOINT("bad");
    KEEL_FAILPOINT("outbox.after_publish");
    return 2; /* reached only if the crash point did not fire */
}

static void test_crash_kills_with_sigkill(void **state)
{
    (void)state;
    int status = run_child(" outbox.slow = sleep(150) ,bad=explode,novalue,"
                           "outbox.after_publish=crash",
                           scenario_crash_after_sleep);
    if (WIFEXITED(status)) {
        fail_msg("child exited with %d instead of being killed", WEXITSTATUS(status));
    }
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

static int scenario_nothing_armed(void)
{
    int64_t start = keel_clock_monotonic_ms();
    KEEL_FAILPOINT("outbox.after_publish");
    KEEL_FAILPOINT("outbox.slow");
    return keel_clock_monotonic_ms() - start < 100 ? 0 : 1;
}

static void test_unarmed_points_do_nothing(void **state)
{
    (void)state;
    assert_exit_ok(run_child(NULL, scenario_nothing_armed));
    assert_exit_ok(run_child("", scenario_nothing_armed));
    /* Names match exactly, not by prefix. */
    assert_exit_ok(run_child("outbox=crash,outbox.after=crash,outbox.slow.x=sleep(5000)",
                             scenario_nothing_armed));
    /* Unknown or malformed actions are ignored. */
    assert_exit_ok(
        run_child("outbox.after_publish=Crash,outbox.slow=sleep(abc)", scenario_nothing_armed));
    assert_exit_ok(
        run_child("outbox.after_publish=sleep(),outbox.slow=sleep(-5)", scenario_nothing_armed));
}

enum { HIT_THREADS = 8 };
static int64_t thread_slept[HIT_THREADS];

static void *hit_concurrently(void *arg)
{
    int t = *(int *)arg;
    int64_t start = keel_clock_monotonic_ms();
    KEEL_FAILPOINT("relay.pause");
    thread_slept[t] = keel_clock_monotonic_ms() - start;
    return NULL;
}

static int scenario_threads_first_hit(void)
{
    /* The first hit of all threads races on the lazy parse; each must see the point. */
    pthread_t th[HIT_THREADS];
    int ids[HIT_THREADS];
    for (int t = 0; t < HIT_THREADS; t++) {
        ids[t] = t;
        if (pthread_create(&th[t], NULL, hit_concurrently, &ids[t]) != 0) {
            return 1;
        }
    }
    for (int t = 0; t < HIT_THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    for (int t = 0; t < HIT_THREADS; t++) {
        if (thread_slept[t] < 95) {
            return 2;
        }
    }
    return 0;
}

static void test_lazy_parse_is_thread_safe(void **state)
{
    (void)state;
    assert_exit_ok(run_child("relay.pause=sleep(100)", scenario_threads_first_hit));
}

#else

static int scenario_disabled(void)
{
    KEEL_FAILPOINT("outbox.after_publish");
    return 0;
}

static void test_disabled_build_ignores_env(void **state)
{
    (void)state;
    /* Compiled out: even an armed crash point does nothing. */
    assert_exit_ok(run_child("outbox.after_publish=crash", scenario_disabled));
}

#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifdef KEEL_FAILPOINTS_ENABLED
        cmocka_unit_test(test_crash_kills_with_sigkill),
        cmocka_unit_test(test_unarmed_points_do_nothing),
        cmocka_unit_test(test_lazy_parse_is_thread_safe),
#else
        cmocka_unit_test(test_disabled_build_ignores_env),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
