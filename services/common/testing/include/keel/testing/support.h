/* Small helpers shared by libkeel's unit tests: a scenario in a child process, waiting for an
 * outbox relay to lead. Linked into test executables only (library keel_testing). */
#ifndef KEEL_TESTING_SUPPORT_H
#define KEEL_TESTING_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/outbox.h"

/* Runs scenario in a forked child and fails the running cmocka test unless it exits 0; the
 * exit code names the first check that failed. For state that is one-way per process (the
 * stop flag), so each scenario gets a fresh copy. */
void keel_test_run_in_child(int (*scenario)(void));

/* Polls r until it holds the relay lock (true) or timeout_ms passed (false). */
bool keel_test_wait_leader(keel_outbox_relay *r, int64_t timeout_ms);

#endif
