/* The retry schedule of webhook deliveries: a list of delays with upward jitter, the verdict
 * after one attempt, and Retry-After. Pure functions; no clock reads except where passed in. */
#ifndef NOTIFIER_SCHEDULE_H
#define NOTIFIER_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* About three days: 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, then 12 h five times,
 * so 14 attempts over roughly 76 hours. */
#define NOTIFIER_DEFAULT_SCHEDULE "30s,2m,10m,30m,1h,2h,4h,8h,12h,12h,12h,12h,12h"

typedef struct notifier_schedule {
    int64_t *delays_ms; /* delays_ms[i]: the wait after attempt i+1 failed */
    int count;
    int jitter_pct; /* each wait grows by a random 0..jitter_pct percent */
} notifier_schedule;

/* Parses "250ms", "30s", "2m", "1h" or "3d" (a positive integer and a unit) into ms. */
bool notifier_duration_parse(const char *text, int64_t *ms);

/* Parses a comma-separated list of durations (1 to 100 of them, each at most 7 days).
 * jitter_pct must be 0..100. On failure fills err naming the bad entry. */
bool notifier_schedule_parse(const char *text, int jitter_pct, notifier_schedule *out, char *err,
                             size_t err_len);
void notifier_schedule_clear(notifier_schedule *s);

/* Attempts in all: the first one plus one per delay. */
int notifier_schedule_max_attempts(const notifier_schedule *s);
/* The longest delay of the schedule (a Retry-After is capped to it). */
int64_t notifier_schedule_longest_ms(const notifier_schedule *s);

/* The wait before the next attempt after `attempts_made` attempts (>= 1) failed: the
 * schedule's delay plus jitter, at least retry_after_ms when that is >= 0 (capped to the
 * longest delay of the schedule, so a peer cannot park a delivery for a year). rng may be
 * NULL. -1 when no attempt is left. */
int64_t notifier_schedule_next_ms(const notifier_schedule *s, int attempts_made,
                                  int64_t retry_after_ms, uint64_t *rng);

/* A Retry-After value in ms from now_ms: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct
 * 2015 07:28:00 GMT"; a past date gives 0). -1 when value is empty or malformed. */
int64_t notifier_retry_after_ms(const char *value, int64_t now_ms);

/* What one attempt means for the delivery. */
typedef enum notifier_verdict {
    NOTIFIER_VERDICT_SUCCEEDED = 0, /* a 2xx answer */
    NOTIFIER_VERDICT_RETRY,         /* failed; another attempt is due later */
    NOTIFIER_VERDICT_DEAD,          /* failed and that was the last attempt */
    NOTIFIER_VERDICT_GONE,          /* 410 Gone: the endpoint is disabled, the delivery dead */
} notifier_verdict;

/* status is the HTTP status, or 0 when no answer arrived (transport error, refused address).
 * attempts_made counts this attempt. */
notifier_verdict notifier_decide(long status, int attempts_made, int max_attempts);
const char *notifier_verdict_name(notifier_verdict v);

#endif
