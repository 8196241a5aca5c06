/* Wall and monotonic clocks, and RFC 3339 rendering of UTC timestamps. */
#ifndef KEEL_CLOCK_H
#define KEEL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t keel_clock_now_ms(void);
/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t keel_clock_now_us(void);
/* Milliseconds of CLOCK_MONOTONIC: for timeouts and durations, never for timestamps. */
int64_t keel_clock_monotonic_ms(void);
/* Sleeps for ms milliseconds; returns early (without error) if interrupted by a signal. */
void keel_clock_sleep_ms(int64_t ms);

/* Writes "2026-11-30T16:36:58.123Z" (UTC, millisecond precision) into out.
 * out must hold KEEL_RFC3339_LEN bytes. Returns out. */
#define KEEL_RFC3339_LEN 32
char *keel_clock_format_rfc3339(int64_t epoch_ms, char *out);

#endif
