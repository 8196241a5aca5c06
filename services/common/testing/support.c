/* Small helpers shared by libkeel's unit tests: a scenario in a child process, waiting for an
 * outbox relay to lead. */
#include "keel/testing/support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keel/clock.h"

void keel_test_run_in_child(int (*scenario)(void))
{
    /* Unflushed output would otherwise be written twice, once by each process. */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(scenario());
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status)) {
        fail_msg("child died by signal %d", WTERMSIG(status));
    }
    if (WEXITSTATUS(status) != 0) {
        fail_msg("child check %d failed", WEXITSTATUS(status));
    }
}

bool keel_test_wait_leader(keel_outbox_relay *r, int64_t timeout_ms)
{
    int64_t deadline = keel_clock_monotonic_ms() + timeout_ms;
    while (keel_clock_monotonic_ms() < deadline) {
        if (keel_outbox_relay_is_leader(r)) {
            return true;
        }
        keel_clock_sleep_ms(20);
    }
    return false;
}
