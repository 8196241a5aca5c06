/* Capped exponential backoff with full jitter and the xorshift64* generator behind it. */
#include "keel/retry.h"

#include <stdint.h>
#include <sys/random.h>

#include "keel/clock.h"

/* Any nonzero constant keeps xorshift out of its one fixed point (zero). */
#define RETRY_NONZERO_SEED 0x9E3779B97F4A7C15ULL

uint64_t keel_rand_next(uint64_t *state)
{
    uint64_t x = *state;
    if (x == 0) {
        x = RETRY_NONZERO_SEED;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static _Thread_local uint64_t retry_tls_state;

static uint64_t *retry_thread_state(void)
{
    if (retry_tls_state == 0) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
            /* Without getrandom, mix the clock with this thread's state address so threads
             * started together still get different sequences. */
            seed = (uint64_t)keel_clock_now_us() ^ (uint64_t)(uintptr_t)&retry_tls_state;
        }
        retry_tls_state = seed != 0 ? seed : RETRY_NONZERO_SEED;
    }
    return &retry_tls_state;
}

/* A uniform number in [0, bound] without modulo bias. */
static uint64_t retry_uniform(uint64_t *state, uint64_t bound)
{
    if (bound == UINT64_MAX) {
        return keel_rand_next(state);
    }
    uint64_t range = bound + 1;
    uint64_t limit = UINT64_MAX - (UINT64_MAX % range);
    uint64_t r;
    do {
        r = keel_rand_next(state);
    } while (r >= limit);
    return r % range;
}

int64_t keel_backoff_delay_ms(const keel_backoff *b, int attempt, uint64_t *rng_state)
{
    int64_t base = b->base_ms > 0 ? b->base_ms : 0;
    int64_t cap = b->cap_ms > 0 ? b->cap_ms : 0;
    if (attempt < 0) {
        attempt = 0;
    }
    /* base * 2^attempt, computed so it can never overflow: once it would pass cap, use cap. */
    int64_t ceiling;
    if (base == 0) {
        ceiling = 0;
    } else if (attempt >= 62 || base > (cap >> attempt)) {
        ceiling = cap;
    } else {
        ceiling = base << attempt;
    }
    if (ceiling > cap) {
        ceiling = cap;
    }
    if (ceiling == 0) {
        return 0;
    }
    uint64_t *state = rng_state != NULL ? rng_state : retry_thread_state();
    return (int64_t)retry_uniform(state, (uint64_t)ceiling);
}

int keel_backoff_should_retry(const keel_backoff *b, int attempts_made)
{
    if (b->max_attempts <= 0) {
        return 1;
    }
    return attempts_made < b->max_attempts;
}
