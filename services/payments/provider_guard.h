/* A provider behind its protections: a circuit breaker, in-place retries of answers that say
 * "nothing happened" (capped exponential backoff with full jitter) and a retry budget that
 * keeps those retries from multiplying load during an outage. One guard per provider. */
#ifndef PAYMENTS_PROVIDER_GUARD_H
#define PAYMENTS_PROVIDER_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/breaker.h"
#include "provider.h"

typedef struct payments_guard_options {
    /* Calls one charge or refund may make at this provider while the answers say
     * not_processed (1 = no retry). Unknown answers are never retried here: they need a
     * lookup first. */
    int call_attempts;
    int64_t backoff_base_ms; /* full jitter: a delay in [0, min(cap, base * 2^n)] */
    int64_t backoff_cap_ms;
    double budget_ratio;          /* retries may add this share of first calls ... */
    double budget_min_per_second; /* ... plus this many per second */
    /* The breaker's settings; name and clock are set by the guard (name = provider's). */
    keel_breaker_options breaker;
} payments_guard_options;

typedef struct payments_guard payments_guard;

/* Takes ownership of provider (freed with the guard, also on failure). NULL with err filled
 * when out of memory or the options are unusable. */
payments_guard *payments_guard_new(payments_provider *provider, const payments_guard_options *o,
                                   char *err, size_t err_len);
void payments_guard_free(payments_guard *g);

const char *payments_guard_name(const payments_guard *g);
keel_breaker_state payments_guard_state(payments_guard *g);

/* Asks the breaker for a permit for the next operation. False: the breaker is open (or its
 * half-open probes are all out), nothing may be sent now. A true must be followed by exactly
 * one payments_guard_charge / _refund / _lookup / _refund_lookup, or by
 * payments_guard_release when the caller decides not to call after all. */
bool payments_guard_acquire(payments_guard *g);
void payments_guard_release(payments_guard *g);

/* One charge under a permit: calls the provider, and while the answer is not_processed calls
 * again (same request, same key) after a backoff, as long as call_attempts, the retry budget
 * and the breaker allow. *calls gets the number of calls made. Always fills out. */
void payments_guard_charge(payments_guard *g, const payments_charge_request *req,
                           payments_charge_outcome *out, int *calls);
void payments_guard_refund(payments_guard *g, const payments_refund_request *req,
                           payments_charge_outcome *out, int *calls);

/* One lookup under a permit; never retried here (the caller's schedule does that). */
payments_lookup_status payments_guard_lookup(payments_guard *g, const char *payment_id,
                                             const char *traceparent, payments_charge_outcome *out);
payments_lookup_status payments_guard_refund_lookup(payments_guard *g,
                                                    const payments_refund_request *req,
                                                    payments_charge_outcome *out);

/* Whether an answer speaks of a healthy provider, for the breaker: an HTTP answer other than
 * 429 and 5xx. Timeouts, refused connections and 5xx are failures; a decline is not. */
bool payments_guard_healthy(const payments_charge_outcome *out);

#endif
