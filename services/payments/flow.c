/* What the payment and refund state machines share: the pure decisions, the provider lookup
 * by name, transactions on pooled connections, and the outcome metrics. */
#include "flow.h"

#include <stdio.h>
#include <string.h>

#include "keel/clock.h"
#include "keel/metrics.h"
#include "keel/retry.h"

/* How long a worker waits for a pooled connection before treating the database as away. */
#define FLOW_ACQUIRE_TIMEOUT_MS 2000

payments_action payments_worker_decide(payments_charge_status outcome, int attempts_before,
                                       int max_attempts, bool ambiguous, bool past_deadline)
{
    if (outcome == PAYMENTS_CHARGE_SUCCEEDED) {
        return PAYMENTS_ACTION_SUCCEED;
    }
    if (outcome == PAYMENTS_CHARGE_DECLINED) {
        return PAYMENTS_ACTION_FAIL;
    }
    if (ambiguous || outcome == PAYMENTS_CHARGE_UNKNOWN) {
        /* Money may have moved: failing would tell the merchant something false, and charging
         * elsewhere could charge twice. Ask again until the deadline, then hand it to a
         * person. */
        return past_deadline ? PAYMENTS_ACTION_REVIEW : PAYMENTS_ACTION_RETRY;
    }
    if (max_attempts < 1) {
        max_attempts = 1;
    }
    if (attempts_before + 1 < max_attempts) {
        return PAYMENTS_ACTION_RETRY;
    }
    return PAYMENTS_ACTION_FAIL_UNAVAILABLE;
}

int64_t payments_worker_retry_delay_ms(int attempts_before, uint64_t *rng)
{
    const keel_backoff b = {
        .base_ms = PAYMENTS_RETRY_BASE_MS, .cap_ms = PAYMENTS_RETRY_CAP_MS, .max_attempts = 0};
    return keel_backoff_delay_ms(&b, attempts_before < 0 ? 0 : attempts_before, rng);
}

const char *payments_action_name(payments_action a)
{
    switch (a) {
    case PAYMENTS_ACTION_SUCCEED:
        return "succeed";
    case PAYMENTS_ACTION_FAIL:
        return "fail";
    case PAYMENTS_ACTION_RETRY:
        return "retry";
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        return "fail_unavailable";
    case PAYMENTS_ACTION_REVIEW:
        return "review";
    }
    return "invalid";
}

payments_guard *payments_flow_guard(const payments_flow *f, const char *name)
{
    for (int i = 0; name != NULL && i < f->n_guards; i++) {
        if (strcmp(payments_guard_name(f->guards[i]), name) == 0) {
            return f->guards[i];
        }
    }
    return NULL;
}

keel_result payments_flow_tx(const payments_flow *f, keel_db_tx_fn fn, void *arg)
{
    keel_db *db = keel_db_pool_acquire(f->pool, FLOW_ACQUIRE_TIMEOUT_MS);
    if (db == NULL) {
        return KEEL_ERR_TRANSIENT;
    }
    keel_result rc = keel_db_transaction(db, NULL, fn, arg, NULL);
    keel_db_pool_release(f->pool, db);
    db = NULL;
    return rc;
}

int64_t payments_flow_unknown_age(const payments_flow_worker *w, int64_t age_at_claim_ms)
{
    if (age_at_claim_ms < 0) {
        return -1;
    }
    return age_at_claim_ms + (keel_clock_monotonic_ms() - w->claimed_at_ms);
}

void payments_flow_outcome(payments_charge_outcome *out, payments_charge_status status,
                           const char *detail)
{
    memset(out, 0, sizeof(*out));
    out->status = status;
    snprintf(out->detail, sizeof(out->detail), "%s", detail);
}

static keel_metric *outcome_counter(const char *what, const char *status)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "status=\"%s\"", status);
    if (strcmp(what, "refund") == 0) {
        return keel_metrics_counter(keel_metrics_default(), "keel_payments_refund_outcomes_total",
                                    "Refunds that reached a final status, by status", labels);
    }
    return keel_metrics_counter(keel_metrics_default(), "keel_payments_outcomes_total",
                                "Payments that reached a final status, by status", labels);
}

void payments_flow_metric_outcome(const char *what, const char *status)
{
    keel_metric_inc(outcome_counter(what, status));
}

void payments_flow_metrics_register(void)
{
    static const char *const statuses[] = {"succeeded", "failed", "requires_review"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        outcome_counter("payment", statuses[i]);
        outcome_counter("refund", statuses[i]);
    }
}
