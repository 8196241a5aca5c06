/* Circuit breaker (closed / open / half-open over a sliding window of failure rate and slow
 * calls) and a retry budget, for every outbound dependency. Thread-safe. */
#ifndef KEEL_BREAKER_H
#define KEEL_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum keel_breaker_state {
    KEEL_BREAKER_CLOSED = 0,
    KEEL_BREAKER_OPEN = 1,
    KEEL_BREAKER_HALF_OPEN = 2,
} keel_breaker_state;

typedef struct keel_breaker_options {
    const char *name;     /* the `breaker` label of its metrics, e.g. "provider_a" */
    int window_size;      /* the last N calls are judged; 0 = 20 */
    int min_calls;        /* no verdict before this many calls in the window; 0 = 10 */
    double failure_rate;  /* open when failures / calls >= this; 0 = 0.5 */
    double slow_rate;     /* open when slow calls / calls >= this; 0 = 1.0 */
    int64_t slow_call_ms; /* a call at least this long is slow; 0 = 2000 */
    int64_t open_ms;      /* how long it stays open before probing; 0 = 5000 */
    int half_open_probes; /* probes let through when half-open; all succeed → closed, any
                             failure → open again; 0 = 3 */
    /* The clock; NULL = keel_clock_monotonic_ms. For tests. */
    int64_t (*now_ms)(void *ctx);
    void *clock_ctx;
} keel_breaker_options;

typedef struct keel_breaker keel_breaker;

keel_breaker *keel_breaker_new(const keel_breaker_options *opts);
void keel_breaker_free(keel_breaker *b);

/* May a call go out now? Closed: yes. Open: no until open_ms passed, then the breaker turns
 * half-open. Half-open: yes for up to half_open_probes calls in flight, no for the rest.
 * Every true must be followed by exactly one keel_breaker_record. */
bool keel_breaker_allow(keel_breaker *b);
/* Records the result of an allowed call: success false for a failure that speaks of the
 * dependency's health (timeouts, refused connections, 5xx) — not for a decline. */
void keel_breaker_record(keel_breaker *b, bool success, int64_t duration_ms);
/* Gives back a permit of keel_breaker_allow for a call that was never made (the caller found
 * it could not send after all): no verdict, and a half-open probe slot is free again. Counts
 * as the one keel_breaker_record that permit needed. */
void keel_breaker_release(keel_breaker *b);
keel_breaker_state keel_breaker_state_now(keel_breaker *b);
const char *keel_breaker_state_name(keel_breaker_state s);

/* Exports keel_breaker_state{breaker} (0 closed, 1 open, 2 half-open),
 * keel_breaker_transitions_total{breaker,to} and keel_breaker_rejected_total{breaker}. */

/* A retry budget: retries may add at most `ratio` of the first attempts (plus
 * min_per_second), so retries cannot multiply load during an outage. */
typedef struct keel_retry_budget keel_retry_budget;
keel_retry_budget *keel_retry_budget_new(const char *name, double ratio, double min_per_second);
void keel_retry_budget_free(keel_retry_budget *b);
/* Call once per first attempt: deposits `ratio` of a token (bounded). */
void keel_retry_budget_deposit(keel_retry_budget *b);
/* Call before each retry: takes one token; false means "do not retry now". Exports
 * keel_retry_budget_exhausted_total{budget}. */
bool keel_retry_budget_withdraw(keel_retry_budget *b);

#endif
