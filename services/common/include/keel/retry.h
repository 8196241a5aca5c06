/* Capped exponential backoff with full jitter, for every loop in keel that retries. */
#ifndef KEEL_RETRY_H
#define KEEL_RETRY_H

#include <stdint.h>

typedef struct keel_backoff {
    int64_t base_ms;  /* the ceiling of the first delay */
    int64_t cap_ms;   /* no delay is ever longer than this */
    int max_attempts; /* attempts in all, including the first; 0 means no limit */
} keel_backoff;

/* Full jitter: a uniform random delay in [0, min(cap_ms, base_ms * 2^attempt)].
 * attempt counts from 0 (the delay after the first failure). Never overflows, however large
 * attempt is. rng_state is a caller-owned xorshift state (nonzero); pass NULL to use a
 * thread-local one seeded from getrandom(2). */
int64_t keel_backoff_delay_ms(const keel_backoff *b, int attempt, uint64_t *rng_state);

/* True if another attempt is allowed after `attempts_made` attempts. */
int keel_backoff_should_retry(const keel_backoff *b, int attempts_made);

/* A uniform random 64-bit number from a xorshift64* state; advances the state. */
uint64_t keel_rand_next(uint64_t *state);

#endif
