/* Wall and monotonic clocks, and RFC 3339 rendering and strict parsing of timestamps. */
#ifndef KEEL_CLOCK_H
#define KEEL_CLOCK_H

#include <stdbool.h>
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

/* Parses an RFC 3339 date-time, "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)", into
 * milliseconds since the Unix epoch. Strict, so nothing malformed reaches a SQL cast: 'T'
 * and 'Z' may be lower case but nothing else stands in for them (no blank separator), the
 * offset has its colon and is at most 23:59, the fraction has 1 to 9 digits, the date must
 * exist (no 2025-02-30), the year is 1970..9999 and the instant is not before the epoch.
 * Digits of the fraction beyond the millisecond are truncated (never moving an instant
 * across a second, so never across a day).
 * Second 60: accepted only where RFC 3339 section 5.7 lets a leap second be, 23:59:60 UTC
 * (after the offset is applied) on the last day of a month, and read as the first second of
 * the next day, as PostgreSQL reads it; refused anywhere else (23:59:60Z on the 10th, or
 * xx:xx:60 at any other minute). keel cannot store the leap second itself, and no list of
 * past leap seconds is consulted.
 * Returns true with *epoch_ms set, or false (s may be NULL) leaving *epoch_ms alone. */
bool keel_clock_parse_rfc3339(const char *s, int64_t *epoch_ms);

/* As keel_clock_parse_rfc3339, but a fraction with a non-zero digit beyond the millisecond
 * rounds up to the next millisecond. For bounds compared against timestamps stored in whole
 * milliseconds, where t >= 20.0001 s exactly when t >= 20.001 s (and t < 20.0001 s exactly
 * when t < 20.001 s). */
bool keel_clock_parse_rfc3339_ceil(const char *s, int64_t *epoch_ms);

/* Parses exactly "YYYY-MM-DD", a real calendar date with a year 1970..9999. Returns true with
 * the three fields set, or false (s may be NULL) leaving them alone. */
bool keel_clock_parse_date(const char *s, int *year, int *month, int *day);

#endif
