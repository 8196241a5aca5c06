/* Graceful shutdown: SIGTERM/SIGINT set a flag that every loop checks and waits can wake on. */
#ifndef KEEL_SHUTDOWN_H
#define KEEL_SHUTDOWN_H

#include <stdbool.h>
#include <stdint.h>

/* Installs SIGTERM and SIGINT handlers and ignores SIGPIPE. Call once in main. */
void keel_shutdown_install(void);
/* True once a stop was requested (by a signal or keel_shutdown_request). */
bool keel_shutdown_requested(void);
/* Requests a stop from code (tests, fatal errors). Async-signal-safe. */
void keel_shutdown_request(void);
/* Sleeps up to ms, returning early (true) as soon as a stop is requested. */
bool keel_shutdown_wait_ms(int64_t ms);
/* A file descriptor that becomes readable once a stop is requested, for poll(2) loops. */
int keel_shutdown_fd(void);

#endif
