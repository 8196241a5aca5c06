/* The refund state machine: a refund goes to the provider that charged its payment and
 * nowhere else, each call between a recorded intent and a recorded outcome, under the refund
 * id as idempotency key; unknown outcomes are looked up until the deadline. */
#include <stdio.h>
#include <string.h>

#include "flow.h"
#include "keel/failpoint.h"
#include "keel/log.h"
#include "payment_events.h"

typedef struct refund_step_tx {
    const payments_flow_worker *w;
    const payments_refund *r;
    payments_action action;
    payments_refund_record rec;
} refund_step_tx;

static keel_result refund_step_body(keel_db *db, void *arg)
{
    refund_step_tx *tx = arg;
    const payments_refund *r = tx->r;
    keel_result rc = payments_refund_store_record(db, r->id, tx->w->owner, &tx->rec);
    if (rc != KEEL_OK) {
        return rc;
    }
    payments_refund_event ev = {
        .refund_id = r->id,
        .payment_id = r->payment_id,
        .merchant_id = r->merchant_id,
        .amount = r->amount,
        .currency = r->currency,
        .provider = r->provider,
        .provider_refund_id = tx->rec.provider_refund_id,
        .failure_code = tx->rec.failure_code,
        .failure_message = tx->rec.failure_message,
        .traceparent = r->traceparent,
    };
    switch (tx->action) {
    case PAYMENTS_ACTION_SUCCEED:
        return payments_events_refund_succeeded(db, tx->w->flow->events_topic, &ev);
    case PAYMENTS_ACTION_FAIL:
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        return payments_events_refund_failed(db, tx->w->flow->events_topic, &ev);
    case PAYMENTS_ACTION_RETRY:
    case PAYMENTS_ACTION_REVIEW:
        /* There is no refund-review event: the refund stays pending for the merchant while a
         * person finds out what the provider did. */
        return KEEL_OK;
    }
    return KEEL_ERR;
}

static void record_refund_step(const payments_flow_worker *w, const payments_refund *r,
                               const payments_charge_outcome *out, bool ambiguous,
                               const char *operation)
{
    const payments_flow *f = w->flow;
    char last_error[512];
    char message[300];
    snprintf(last_error, sizeof(last_error), "%s %s: %s", r->provider, operation, out->detail);
    int64_t age = payments_flow_unknown_age(w, r->unknown_age_ms);
    bool past_deadline = ambiguous && age >= f->unknown_deadline_ms;
    refund_step_tx tx = {.w = w, .r = r};
    tx.action =
        payments_worker_decide(out->status, r->attempts, f->max_attempts, ambiguous, past_deadline);
    payments_refund_record *rec = &tx.rec;
    rec->provider_refund_id = out->charge_id;
    rec->attempts = r->attempts;
    rec->ambiguous = ambiguous || r->ambiguous;
    switch (tx.action) {
    case PAYMENTS_ACTION_SUCCEED:
        rec->status = "succeeded";
        rec->phase = PAYMENTS_REFUND_DONE;
        break;
    case PAYMENTS_ACTION_FAIL:
        rec->status = "failed";
        rec->phase = PAYMENTS_REFUND_DONE;
        rec->failure_code = out->failure_code;
        rec->failure_message = out->failure_message;
        break;
    case PAYMENTS_ACTION_RETRY:
        rec->status = "processing";
        rec->phase = ambiguous ? PAYMENTS_REFUND_STARTED : PAYMENTS_REFUND_RECEIVED;
        rec->attempts = r->attempts + 1;
        rec->mark_unknown = ambiguous;
        rec->retry_delay_ms = payments_worker_retry_delay_ms(r->attempts, w->rng);
        rec->last_error = last_error;
        break;
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        rec->status = "failed";
        rec->phase = PAYMENTS_REFUND_DONE;
        rec->attempts = r->attempts + 1;
        rec->failure_code = "provider_unavailable";
        snprintf(message, sizeof(message),
                 "%s did not process the refund in %d rounds; nothing was refunded", r->provider,
                 rec->attempts);
        rec->failure_message = message;
        rec->last_error = last_error;
        break;
    case PAYMENTS_ACTION_REVIEW:
        rec->status = "requires_review";
        rec->phase = PAYMENTS_REFUND_DONE;
        rec->attempts = r->attempts + 1;
        rec->last_error = last_error;
        break;
    }
    keel_result rc = payments_flow_tx(f, refund_step_body, &tx);
    if (rc != KEEL_OK) {
        keel_log_warn("refund %s: could not record %s (%s, database %s); resolved by a lookup "
                      "when the lease expires",
                      r->id, payments_action_name(tx.action), out->detail, keel_result_name(rc));
        return;
    }
    switch (tx.action) {
    case PAYMENTS_ACTION_SUCCEED:
        payments_flow_metric_outcome("refund", "succeeded");
        keel_log_info("refund %s of payment %s succeeded at %s (%s)", r->id, r->payment_id,
                      r->provider, out->charge_id);
        break;
    case PAYMENTS_ACTION_FAIL:
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        payments_flow_metric_outcome("refund", "failed");
        keel_log_info("refund %s of payment %s failed at %s: %s", r->id, r->payment_id, r->provider,
                      rec->failure_code);
        break;
    case PAYMENTS_ACTION_RETRY:
        if (f->schedule != NULL) {
            f->schedule(f->schedule_arg, rec->retry_delay_ms);
        }
        keel_log_warn("refund %s: round %d without outcome (%s); next in %lld ms", r->id,
                      rec->attempts, last_error, (long long)rec->retry_delay_ms);
        break;
    case PAYMENTS_ACTION_REVIEW:
        payments_flow_metric_outcome("refund", "requires_review");
        keel_log_error("refund %s of payment %s requires review: outcome at %s unknown for %lld "
                       "ms (%s); ask %s for the refund under idempotency key %s",
                       r->id, r->payment_id, r->provider, (long long)age, out->detail, r->provider,
                       r->id);
        break;
    }
}

typedef struct refund_intent_tx {
    const payments_flow_worker *w;
    const payments_refund *r;
} refund_intent_tx;

static keel_result refund_intent_body(keel_db *db, void *arg)
{
    refund_intent_tx *tx = arg;
    return payments_refund_store_mark_started(db, tx->r->id, tx->w->owner, tx->w->flow->lease_ms);
}

void payments_flow_refund(const payments_flow_worker *w, const payments_refund *r)
{
    payments_charge_outcome out;
    bool started = r->phase == PAYMENTS_REFUND_STARTED;
    bool ambiguous = r->ambiguous || started;
    payments_refund_request req = {
        .refund_id = r->id,
        .payment_id = r->payment_id,
        .charge_id = r->charge_id,
        .amount = r->amount,
        .currency = r->currency,
        .traceparent = r->traceparent,
    };
    payments_guard *g = payments_flow_guard(w->flow, r->provider);
    if (g == NULL) {
        keel_log_error("refund %s: payment %s was charged at \"%s\", which is not configured; "
                       "refunds go nowhere else",
                       r->id, r->payment_id, r->provider);
        payments_flow_outcome(&out,
                              ambiguous ? PAYMENTS_CHARGE_UNKNOWN : PAYMENTS_CHARGE_NOT_PROCESSED,
                              "provider not configured");
        record_refund_step(w, r, &out, ambiguous, "refund");
        return;
    }
    if (!payments_guard_acquire(g)) {
        payments_flow_outcome(&out,
                              ambiguous ? PAYMENTS_CHARGE_UNKNOWN : PAYMENTS_CHARGE_NOT_PROCESSED,
                              "circuit breaker open");
        record_refund_step(w, r, &out, ambiguous, started ? "refund_lookup" : "refund");
        return;
    }
    if (started) {
        payments_lookup_status st = payments_guard_refund_lookup(g, &req, &out);
        if (st != PAYMENTS_LOOKUP_NOT_FOUND) {
            if (st == PAYMENTS_LOOKUP_FAILED) {
                out.status = PAYMENTS_CHARGE_UNKNOWN;
            }
            record_refund_step(w, r, &out, true, "refund_lookup");
            return;
        }
        keel_log_info("refund %s: nothing under its key at %s; refunding there again", r->id,
                      r->provider);
        if (!payments_guard_acquire(g)) {
            payments_flow_outcome(&out, PAYMENTS_CHARGE_UNKNOWN, "circuit breaker open");
            record_refund_step(w, r, &out, true, "refund");
            return;
        }
    }
    refund_intent_tx itx = {.w = w, .r = r};
    keel_result rc = payments_flow_tx(w->flow, refund_intent_body, &itx);
    if (rc != KEEL_OK) {
        payments_guard_release(g);
        keel_log_warn("refund %s: intent not recorded (%s); not refunding now", r->id,
                      keel_result_name(rc));
        return;
    }
    KEEL_FAILPOINT("payments.before_refund");
    int calls = 0;
    payments_guard_refund(g, &req, &out, &calls);
    KEEL_FAILPOINT("payments.after_refund");
    record_refund_step(w, r, &out, ambiguous || out.status == PAYMENTS_CHARGE_UNKNOWN, "refund");
}
