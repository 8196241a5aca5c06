/* Token-bucket rate limiting keyed by string (an API key's hash, a client address), with
 * bounded memory and the numbers the RateLimit / Retry-After headers need. */
#ifndef KEEL_RATELIMIT_H
#define KEEL_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A bucket holds at most burst tokens and gains rate_per_s tokens a second; a request takes
 * one. burst >= 1 and rate_per_s > 0, else the limit admits nothing. */
typedef struct keel_ratelimit_limit {
    double rate_per_s;
    double burst;
} keel_ratelimit_limit;

typedef struct keel_ratelimit_decision {
    bool allowed;
    int64_t remaining;      /* whole tokens left after this request */
    int64_t retry_after_ms; /* denied: until one token is there again; allowed: 0 */
    int64_t reset_ms;       /* until the bucket is full again */
} keel_ratelimit_decision;

typedef struct keel_ratelimit keel_ratelimit;

/* A limiter remembering at most max_keys buckets (0 = 10000). When a new key arrives and the
 * table is full, the least recently used bucket is forgotten; a forgotten key starts again
 * with a full bucket, so max_keys must exceed the number of keys active within one refill
 * period for the limit to hold exactly. Thread-safe. NULL only when out of memory. */
keel_ratelimit *keel_ratelimit_new(size_t max_keys);
void keel_ratelimit_free(keel_ratelimit *rl);

/* Takes one token from key's bucket at now_ms (a monotonic clock in milliseconds, e.g.
 * keel_clock_monotonic_ms). A key seen for the first time starts with a full bucket of
 * limit. A limit that differs from the bucket's previous one replaces it at once (the tokens
 * held are capped at the new burst), so operators can change a key's limit while it is in use.
 * Fills out; returns out->allowed. */
bool keel_ratelimit_take(keel_ratelimit *rl, const char *key, const keel_ratelimit_limit *limit,
                         int64_t now_ms, keel_ratelimit_decision *out);

/* The limit key's bucket was last used with; false when the limiter holds no bucket for key
 * (never seen, or forgotten). Lets a caller refuse a flood before any costly lookup. */
bool keel_ratelimit_lookup(keel_ratelimit *rl, const char *key, keel_ratelimit_limit *limit);

/* Replaces the limit of key's bucket without taking a token (the tokens held are capped at
 * the new burst). Does nothing when the limiter holds no bucket for key. */
void keel_ratelimit_configure(keel_ratelimit *rl, const char *key,
                              const keel_ratelimit_limit *limit);

/* Buckets currently held (for tests and metrics). */
size_t keel_ratelimit_size(keel_ratelimit *rl);

#endif
