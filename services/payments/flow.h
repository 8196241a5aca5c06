/* The state machines of payments and refunds: what a worker does with one claimed payment or
 * refund (risk, routing, provider calls between recorded phases, outcomes with their events),
 * and the pure decisions they rest on. */
#ifndef PAYMENTS_FLOW_H
#define PAYMENTS_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/db.h"
#include "payment_store.h"
#include "policy.h"
#include "provider.h"
#include "provider_guard.h"
#include "refund_store.h"
#include "risk.h"

/* Delay before the next round after n rounds without an outcome (and between status
 * lookups of an unknown outcome): full jitter with base 200 ms and cap 10 s. */
#define PAYMENTS_RETRY_BASE_MS 200
#define PAYMENTS_RETRY_CAP_MS 10000

/* What to record after one round. */
typedef enum payments_action {
    PAYMENTS_ACTION_SUCCEED = 0,      /* succeeded + PaymentSucceeded / RefundSucceeded */
    PAYMENTS_ACTION_FAIL,             /* declined: failed + PaymentFailed / RefundFailed */
    PAYMENTS_ACTION_RETRY,            /* no outcome yet: another round after a delay */
    PAYMENTS_ACTION_FAIL_UNAVAILABLE, /* out of rounds, provably nothing charged: failed
                                         "provider_unavailable" + the failure event */
    PAYMENTS_ACTION_REVIEW,           /* the outcome stayed unknown past the deadline:
                                         requires_review (+ PaymentRequiresReview) */
} payments_action;

/* Pure: the action after a round with this outcome. attempts_before counts earlier rounds
 * without an outcome; ambiguous is true when this or an earlier call may have charged
 * unseen; past_deadline when the outcome has been unknown for longer than the deadline.
 * Definite answers are recorded at once. An ambiguous payment is never failed: it is asked
 * about again until the deadline, then goes to review. An unambiguous one is retried until
 * max_attempts rounds, then fails as provider_unavailable. */
payments_action payments_worker_decide(payments_charge_status outcome, int attempts_before,
                                       int max_attempts, bool ambiguous, bool past_deadline);

/* The delay before the next round after attempts_before + 1 rounds without an outcome
 * (keel_backoff, base PAYMENTS_RETRY_BASE_MS, cap PAYMENTS_RETRY_CAP_MS). rng may be NULL. */
int64_t payments_worker_retry_delay_ms(int attempts_before, uint64_t *rng);

const char *payments_action_name(payments_action a);

/* Everything the state machines use, shared by all workers (borrowed, read-only). */
typedef struct payments_flow {
    keel_db_pool *pool;
    payments_guard *const *guards; /* one per configured provider */
    int n_guards;
    const payments_routes *routes; /* indices into guards */
    payments_risk *risk;
    const char *events_topic;
    int64_t lease_ms;
    int max_attempts;            /* rounds without an outcome before an unambiguous failure */
    int64_t unknown_deadline_ms; /* how long an unknown outcome is asked about */
    /* Told when a retry was scheduled delay_ms from now, so a worker wakes then. */
    void (*schedule)(void *arg, int64_t delay_ms);
    void *schedule_arg;
} payments_flow;

/* One worker's view: the flow, its lease owner name, its RNG and when it claimed the item it
 * works on (monotonic ms). */
typedef struct payments_flow_worker {
    const payments_flow *flow;
    const char *owner;
    uint64_t *rng;
    int64_t claimed_at_ms;
} payments_flow_worker;

/* The guard of the provider with this name, or NULL when it is not configured. */
payments_guard *payments_flow_guard(const payments_flow *f, const char *name);

/* Works one claimed payment until it is recorded done or rescheduled (or the lease is lost):
 * risk check in phase received; a status lookup first in phase charge_started; otherwise a
 * charge along the route, falling back only on not_processed or an open breaker. Updates p. */
void payments_flow_payment(const payments_flow_worker *w, payments_payment *p);

/* Works one claimed refund at the provider that charged its payment (never elsewhere). */
void payments_flow_refund(const payments_flow_worker *w, const payments_refund *r);

/* Registers the outcome counters at zero, so alerts see them before the first payment. */
void payments_flow_metrics_register(void);

/* ---- shared by the two state machines (flow.c) ---------------------------------------- */

/* Runs fn in a transaction on a pooled connection. KEEL_ERR_TRANSIENT when no connection
 * was free in time. */
keel_result payments_flow_tx(const payments_flow *f, keel_db_tx_fn fn, void *arg);
/* How long the outcome has been unknown now, from its age at claim time; -1 when never. */
int64_t payments_flow_unknown_age(const payments_flow_worker *w, int64_t age_at_claim_ms);
/* Resets out to status with detail, for outcomes the flow decides itself (breaker open,
 * provider not configured). */
void payments_flow_outcome(payments_charge_outcome *out, payments_charge_status status,
                           const char *detail);
/* keel_payments_outcomes_total{status} (what = "payment") or
 * keel_payments_refund_outcomes_total{status} (what = "refund"). */
void payments_flow_metric_outcome(const char *what, const char *status);

#endif
