/* Unit tests for keel/shutdown.h: signals and requests set the flag and wake waiters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"
#include "keel/shutdown.h"
#include "keel/testing/support.h"

static bool fd_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

static void test_wait_times_out_without_request(void **state)
{
    (void)state;
    assert_false(keel_shutdown_requested());
    int fd = keel_shutdown_fd();
    assert_true(fd >= 0);
    assert_false(fd_readable(fd));
    int64_t start = keel_clock_monotonic_ms();
    assert_false(keel_shutdown_wait_ms(80));
    int64_t elapsed = keel_clock_monotonic_ms() - start;
    assert_true(elapsed >= 79 && elapsed < 2000);
    assert_false(keel_shutdown_wait_ms(0));
    assert_false(keel_shutdown_requested());
}

static int scenario_signal(int sig)
{
    keel_shutdown_install();
    if (keel_shutdown_requested()) {
        return 1;
    }
    /* SIGPIPE is ignored: raising it must not kill us. */
    raise(SIGPIPE);
    if (kill(getpid(), sig) != 0) {
        return 2;
    }
    if (!keel_shutdown_requested()) {
        return 3;
    }
    if (!fd_readable(keel_shutdown_fd())) {
        return 4;
    }
    int64_t start = keel_clock_monotonic_ms();
    if (!keel_shutdown_wait_ms(10000)) {
        return 5;
    }
    if (keel_clock_monotonic_ms() - start > 1000) {
        return 6;
    }
    /* Still readable for every later poller: the pipe is never drained. */
    if (!fd_readable(keel_shutdown_fd())) {
        return 7;
    }
    return 0;
}

static int scenario_sigterm(void)
{
    return scenario_signal(SIGTERM);
}

static int scenario_sigint(void)
{
    return scenario_signal(SIGINT);
}

static void test_sigterm_requests_stop(void **state)
{
    (void)state;
    keel_test_run_in_child(scenario_sigterm);
}

static void test_sigint_requests_stop(void **state)
{
    (void)state;
    keel_test_run_in_child(scenario_sigint);
}

static void *request_later(void *arg)
{
    (void)arg;
    keel_clock_sleep_ms(100);
    keel_shutdown_request();
    return NULL;
}

static int scenario_request_wakes_waiter(void)
{
    keel_shutdown_install();
    pthread_t th;
    if (pthread_create(&th, NULL, request_later, NULL) != 0) {
        return 1;
    }
    int64_t start = keel_clock_monotonic_ms();
    bool woke = keel_shutdown_wait_ms(20000);
    int64_t elapsed = keel_clock_monotonic_ms() - start;
    pthread_join(th, NULL);
    if (!woke) {
        return 2;
    }
    if (elapsed < 90 || elapsed > 5000) {
        return 3;
    }
    return 0;
}

static void test_request_wakes_waiter(void **state)
{
    (void)state;
    keel_test_run_in_child(scenario_request_wakes_waiter);
}

static int scenario_request_before_fd(void)
{
    /* No install and no fd yet: the request must still make the fd readable later. */
    keel_shutdown_request();
    if (!keel_shutdown_requested()) {
        return 1;
    }
    int fd = keel_shutdown_fd();
    if (fd < 0 || !fd_readable(fd)) {
        return 2;
    }
    return 0;
}

static void test_request_before_fd_exists(void **state)
{
    (void)state;
    keel_test_run_in_child(scenario_request_before_fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, while this process has not created the pipe yet. */
        cmocka_unit_test(test_request_before_fd_exists),
        cmocka_unit_test(test_wait_times_out_without_request),
        cmocka_unit_test(test_sigterm_requests_stop),
        cmocka_unit_test(test_sigint_requests_stop),
        cmocka_unit_test(test_request_wakes_waiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
