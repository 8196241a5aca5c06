/* The payment state machine: risk check, then a charge along the currency's route with every
 * provider call between a recorded intent and a recorded outcome; unknown outcomes are asked
 * about at the same provider until the deadline, never charged elsewhere. */
#include <stdio.h>
#include <string.h>

#include "flow.h"
#include "keel/failpoint.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "payment_events.h"

/* What charge_at() left behind. */
typedef enum charge_result {
    CHARGE_DONE,          /* an outcome or a retry was recorded (or the lease was lost): stop */
    CHARGE_NOT_PROCESSED, /* certainly not charged, recorded: the next provider may be tried */
    CHARGE_REJECTED,      /* the breaker refused: nothing sent, nothing recorded */
} charge_result;

/* A charge's attempt row to finish with the outcome; id 0 = none. */
typedef struct attempt_info {
    int64_t id;
    int calls;
} attempt_info;

static void metric_fallback(const char *from, const char *reason)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "from=\"%s\",reason=\"%s\"", from, reason);
    keel_metric_inc(keel_metrics_counter(keel_metrics_default(), "keel_payments_fallbacks_total",
                                         "Payments sent on to the next provider of their route, "
                                         "by the provider passed over and why",
                                         labels));
}

/* ---- recording an outcome --------------------------------------------------------------- */

typedef struct step_tx {
    const payments_flow_worker *w;
    const payments_payment *p;
    payments_action action;
    payments_record rec;
    attempt_info attempt;
    const char *attempt_outcome;
    const char *attempt_detail;
    const char *reason; /* for review */
} step_tx;

static keel_result step_body(keel_db *db, void *arg)
{
    step_tx *tx = arg;
    const char *topic = tx->w->flow->events_topic;
    keel_result rc;
    if (tx->attempt.id > 0) {
        rc = payments_store_finish_attempt(db, tx->attempt.id, tx->attempt_outcome,
                                           tx->attempt.calls, tx->attempt_detail);
        if (rc != KEEL_OK) {
            return rc;
        }
    }
    rc = payments_store_record(db, tx->p->id, tx->w->owner, &tx->rec);
    if (rc != KEEL_OK) {
        return rc;
    }
    switch (tx->action) {
    case PAYMENTS_ACTION_SUCCEED:
        return payments_events_succeeded(db, topic, tx->p, tx->rec.provider,
                                         tx->rec.provider_charge_id);
    case PAYMENTS_ACTION_FAIL:
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        return payments_events_failed(db, topic, tx->p, tx->rec.provider, tx->rec.failure_code,
                                      tx->rec.failure_message);
    case PAYMENTS_ACTION_REVIEW:
        return payments_events_requires_review(db, topic, tx->p, tx->rec.provider, tx->reason);
    case PAYMENTS_ACTION_RETRY:
        return KEEL_OK;
    }
    return KEEL_ERR;
}

/* Records the outcome of a round: state change, attempt row and event in one transaction,
 * only while this worker still holds the lease. provider is where the outcome came from ("" when
 * no provider answered); ambiguous when it (or an earlier call) may have charged unseen. */
static void record_step(const payments_flow_worker *w, payments_payment *p, const char *provider,
                        const payments_charge_outcome *out, bool ambiguous,
                        const attempt_info *attempt, const char *operation)
{
    const payments_flow *f = w->flow;
    char last_error[512];
    char message[400];
    char reason[1024];
    snprintf(last_error, sizeof(last_error), "%s %s: %s", provider[0] != '\0' ? provider : "-",
             operation, out->detail);
    int64_t age = payments_flow_unknown_age(w, p->unknown_age_ms);
    bool past_deadline = ambiguous && age >= f->unknown_deadline_ms;

    step_tx tx = {.w = w, .p = p};
    if (attempt != NULL) {
        tx.attempt = *attempt;
    }
    tx.attempt_outcome = payments_charge_status_name(out->status);
    tx.attempt_detail = out->detail;
    tx.action =
        payments_worker_decide(out->status, p->attempts, f->max_attempts, ambiguous, past_deadline);
    payments_record *rec = &tx.rec;
    rec->provider = provider;
    rec->provider_charge_id = out->charge_id;
    rec->attempts = p->attempts;
    rec->ambiguous = ambiguous || p->ambiguous;
    if (ambiguous && provider[0] != '\0') {
        rec->ambiguous_provider = provider;
        rec->mark_unknown = true;
    }
    switch (tx.action) {
    case PAYMENTS_ACTION_SUCCEED:
        rec->status = "succeeded";
        rec->phase = PAYMENTS_PHASE_DONE;
        rec->mark_unknown = false;
        break;
    case PAYMENTS_ACTION_FAIL:
        rec->status = "failed";
        rec->phase = PAYMENTS_PHASE_DONE;
        rec->failure_code = out->failure_code;
        rec->failure_message = out->failure_message;
        rec->mark_unknown = false;
        break;
    case PAYMENTS_ACTION_RETRY:
        rec->status = "processing";
        /* Unknown: the next round must ask this provider first. Not processed: the next round
         * routes afresh. */
        rec->phase = ambiguous ? PAYMENTS_PHASE_CHARGE_STARTED : PAYMENTS_PHASE_RISK_CHECKED;
        rec->attempts = p->attempts + 1;
        rec->retry_delay_ms = payments_worker_retry_delay_ms(p->attempts, w->rng);
        rec->last_error = last_error;
        break;
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        rec->status = "failed";
        rec->phase = PAYMENTS_PHASE_DONE;
        rec->attempts = p->attempts + 1;
        rec->failure_code = "provider_unavailable";
        snprintf(message, sizeof(message),
                 "no provider processed the charge in %d rounds; nothing was charged",
                 rec->attempts);
        rec->failure_message = message;
        rec->last_error = last_error;
        break;
    case PAYMENTS_ACTION_REVIEW:
        rec->status = "requires_review";
        rec->phase = PAYMENTS_PHASE_DONE;
        rec->attempts = p->attempts + 1;
        rec->last_error = last_error;
        snprintf(reason, sizeof(reason),
                 "outcome at %s unknown for %lld ms (deadline %lld ms); last: %s; ask %s for the "
                 "charge under idempotency key %s",
                 provider, (long long)age, (long long)f->unknown_deadline_ms, out->detail, provider,
                 p->id);
        tx.reason = reason;
        break;
    }

    keel_result rc = payments_flow_tx(f, step_body, &tx);
    if (rc == KEEL_ERR_CONFLICT) {
        keel_log_warn("payment %s: lease lost before recording %s (%s); another worker resolves "
                      "it through a status lookup",
                      p->id, payments_action_name(tx.action), out->detail);
        return;
    }
    if (rc != KEEL_OK) {
        keel_log_error("payment %s: could not record %s (%s, database %s); it stays in its "
                       "phase and is resolved by a status lookup when the lease expires",
                       p->id, payments_action_name(tx.action), out->detail, keel_result_name(rc));
        return;
    }
    switch (tx.action) {
    case PAYMENTS_ACTION_SUCCEED:
        payments_flow_metric_outcome("payment", "succeeded");
        keel_log_info("payment %s succeeded at %s (charge %s)", p->id, provider, out->charge_id);
        break;
    case PAYMENTS_ACTION_FAIL:
        payments_flow_metric_outcome("payment", "failed");
        keel_log_info("payment %s failed at %s: %s (%s)", p->id, provider, out->failure_code,
                      out->failure_message);
        break;
    case PAYMENTS_ACTION_RETRY:
        if (f->schedule != NULL) {
            f->schedule(f->schedule_arg, rec->retry_delay_ms);
        }
        keel_log_warn("payment %s: round %d without outcome (%s); next in %lld ms%s", p->id,
                      rec->attempts, last_error, (long long)rec->retry_delay_ms,
                      ambiguous ? ", a status lookup first" : "");
        break;
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        payments_flow_metric_outcome("payment", "failed");
        keel_log_warn("payment %s failed: %s (%s)", p->id, message, last_error);
        break;
    case PAYMENTS_ACTION_REVIEW:
        payments_flow_metric_outcome("payment", "requires_review");
        keel_log_error("payment %s requires review: %s", p->id, reason);
        break;
    }
}

/* ---- risk ------------------------------------------------------------------------------- */

typedef struct risk_tx {
    const payments_flow_worker *w;
    const payments_payment *p;
    const payments_risk_decision *d;
} risk_tx;

static keel_result risk_body(keel_db *db, void *arg)
{
    risk_tx *tx = arg;
    const payments_flow *f = tx->w->flow;
    keel_result rc = payments_store_set_risk(db, tx->p->id, tx->w->owner, f->lease_ms, tx->d->score,
                                             tx->d->degraded, tx->d->reason);
    if (rc != KEEL_OK || !tx->d->blocked) {
        return rc;
    }
    payments_record rec = {
        .status = "failed",
        .phase = PAYMENTS_PHASE_DONE,
        .failure_code = "risk_blocked",
        .failure_message = tx->d->reason,
        .attempts = tx->p->attempts,
    };
    rc = payments_store_record(db, tx->p->id, tx->w->owner, &rec);
    if (rc != KEEL_OK) {
        return rc;
    }
    return payments_events_failed(db, f->events_topic, tx->p, "", rec.failure_code,
                                  rec.failure_message);
}

/* The risk check and its record. True when the payment may be charged now. */
static bool check_risk(const payments_flow_worker *w, payments_payment *p)
{
    payments_risk_decision d;
    payments_risk_input in = {
        .payment_id = p->id,
        .merchant_id = p->merchant_id,
        .amount = p->amount,
        .currency = p->currency,
        .payment_method = p->payment_method,
        .traceparent = p->traceparent,
    };
    payments_risk_check(w->flow->risk, &in, &d);
    p->risk_score = d.score;
    p->risk_degraded = d.degraded;
    risk_tx tx = {.w = w, .p = p, .d = &d};
    keel_result rc = payments_flow_tx(w->flow, risk_body, &tx);
    if (rc != KEEL_OK) {
        keel_log_warn("payment %s: risk decision not recorded (%s); the payment is checked "
                      "again when its lease expires",
                      p->id, keel_result_name(rc));
        return false;
    }
    if (d.blocked) {
        payments_flow_metric_outcome("payment", "failed");
        keel_log_info("payment %s blocked by risk: %s", p->id, d.reason);
        return false;
    }
    p->phase = PAYMENTS_PHASE_RISK_CHECKED;
    return true;
}

/* ---- one charge at one provider --------------------------------------------------------- */

typedef struct intent_tx {
    const payments_flow_worker *w;
    const payments_payment *p;
    const char *provider;
    int64_t attempt_id;
} intent_tx;

static keel_result intent_body(keel_db *db, void *arg)
{
    intent_tx *tx = arg;
    return payments_store_mark_charge_started(db, tx->p->id, tx->w->owner, tx->w->flow->lease_ms,
                                              tx->provider, &tx->attempt_id);
}

typedef struct not_charged_tx {
    const payments_flow_worker *w;
    const payments_payment *p;
    attempt_info attempt;
    const char *detail;
} not_charged_tx;

static keel_result not_charged_body(keel_db *db, void *arg)
{
    not_charged_tx *tx = arg;
    keel_result rc = payments_store_finish_attempt(db, tx->attempt.id, "not_processed",
                                                   tx->attempt.calls, tx->detail);
    if (rc != KEEL_OK) {
        return rc;
    }
    return payments_store_mark_not_charged(db, tx->p->id, tx->w->owner);
}

/* Charges p at g: intent committed, call (with g's bounded retries), outcome recorded. pinned:
 * the payment may only ever go to g, so even not_processed keeps it here. *out gets the
 * outcome. */
static charge_result charge_at(const payments_flow_worker *w, payments_payment *p,
                               payments_guard *g, bool pinned, payments_charge_outcome *out)
{
    const char *name = payments_guard_name(g);
    if (!payments_guard_acquire(g)) {
        payments_flow_outcome(out, PAYMENTS_CHARGE_NOT_PROCESSED, "circuit breaker open");
        return CHARGE_REJECTED;
    }
    intent_tx itx = {.w = w, .p = p, .provider = name};
    keel_result rc = payments_flow_tx(w->flow, intent_body, &itx);
    if (rc != KEEL_OK) {
        payments_guard_release(g);
        keel_log_warn("payment %s: intent to charge at %s not recorded (%s); not charging now",
                      p->id, name, keel_result_name(rc));
        return CHARGE_DONE;
    }
    p->phase = PAYMENTS_PHASE_CHARGE_STARTED;
    snprintf(p->provider, sizeof(p->provider), "%s", name);

    KEEL_FAILPOINT("payments.before_charge");
    payments_charge_request req = {
        .payment_id = p->id,
        .merchant_id = p->merchant_id,
        .amount = p->amount,
        .currency = p->currency,
        .payment_method = p->payment_method,
        .description = p->description,
        .metadata_json = p->metadata_json,
        .traceparent = p->traceparent,
    };
    attempt_info attempt = {.id = itx.attempt_id};
    payments_guard_charge(g, &req, out, &attempt.calls);
    KEEL_FAILPOINT("payments.after_charge");
    keel_log_debug("payment %s: charge at %s -> %s in %d call(s) (%s)", p->id, name,
                   payments_charge_status_name(out->status), attempt.calls, out->detail);

    if (out->status == PAYMENTS_CHARGE_NOT_PROCESSED && !pinned) {
        not_charged_tx ntx = {.w = w, .p = p, .attempt = attempt, .detail = out->detail};
        rc = payments_flow_tx(w->flow, not_charged_body, &ntx);
        if (rc != KEEL_OK) {
            keel_log_warn("payment %s: %s did not charge, but that was not recorded (%s); the "
                          "next worker asks %s first",
                          p->id, name, keel_result_name(rc), name);
            return CHARGE_DONE;
        }
        p->phase = PAYMENTS_PHASE_RISK_CHECKED;
        return CHARGE_NOT_PROCESSED;
    }
    record_step(w, p, name, out, pinned || out->status == PAYMENTS_CHARGE_UNKNOWN, &attempt,
                "charge");
    return CHARGE_DONE;
}

/* ---- the rounds ------------------------------------------------------------------------- */

/* Phase charge_started: a call may have reached p->provider. Ask it under the same key; only
 * a clear "nothing here" lets us charge again, and then only there. */
static void resolve_unknown(const payments_flow_worker *w, payments_payment *p)
{
    const char *name = p->ambiguous_provider[0] != '\0' ? p->ambiguous_provider : p->provider;
    payments_guard *g = payments_flow_guard(w->flow, name);
    payments_charge_outcome out;
    if (g == NULL) {
        keel_log_error("payment %s: its charge may be at \"%s\", which is not configured; add it "
                       "back (KEEL_PAYMENTS_*_URL) or resolve the payment by hand",
                       p->id, name);
        payments_flow_outcome(&out, PAYMENTS_CHARGE_UNKNOWN, "provider not configured");
        record_step(w, p, name, &out, true, NULL, "lookup");
        return;
    }
    if (!payments_guard_acquire(g)) {
        payments_flow_outcome(&out, PAYMENTS_CHARGE_UNKNOWN,
                              "circuit breaker open; lookup postponed");
        record_step(w, p, name, &out, true, NULL, "lookup");
        return;
    }
    payments_lookup_status st = payments_guard_lookup(g, p->id, p->traceparent, &out);
    if (st == PAYMENTS_LOOKUP_FOUND) {
        keel_log_info("payment %s: status lookup at %s found the charge (%s)", p->id, name,
                      out.detail);
        record_step(w, p, name, &out, true, NULL, "lookup");
        return;
    }
    if (st == PAYMENTS_LOOKUP_FAILED) {
        out.status = PAYMENTS_CHARGE_UNKNOWN;
        record_step(w, p, name, &out, true, NULL, "lookup");
        return;
    }
    keel_log_info("payment %s: no charge under its key at %s; charging there again", p->id, name);
    if (charge_at(w, p, g, true, &out) == CHARGE_REJECTED) {
        /* The breaker opened since the lookup: ask again later, still only here. */
        record_step(w, p, name, &out, true, NULL, "charge");
    }
}

/* Phase risk_checked: along the route, falling back only when a provider certainly did not
 * charge (not_processed) or its breaker is open. */
static void route_and_charge(const payments_flow_worker *w, payments_payment *p)
{
    payments_charge_outcome out;
    char last[512] = "no provider on the route";
    if (p->ambiguous_provider[0] != '\0') {
        /* Defensive: a pinned payment is always left in charge_started, but should one come
         * here it still goes nowhere else. */
        snprintf(p->provider, sizeof(p->provider), "%s", p->ambiguous_provider);
        resolve_unknown(w, p);
        return;
    }
    const payments_route *route = payments_routes_for(w->flow->routes, p->currency);
    for (int i = 0; route != NULL && i < route->n; i++) {
        payments_guard *g = w->flow->guards[route->providers[i]];
        const char *name = payments_guard_name(g);
        charge_result r = charge_at(w, p, g, false, &out);
        if (r == CHARGE_DONE) {
            return;
        }
        const char *why = r == CHARGE_REJECTED ? "breaker_open" : "not_processed";
        snprintf(last, sizeof(last), "%s: %s", name, out.detail);
        if (i + 1 < route->n) {
            metric_fallback(name, why);
            keel_log_info("payment %s: %s did not charge (%s); trying %s", p->id, name, out.detail,
                          payments_guard_name(w->flow->guards[route->providers[i + 1]]));
        }
    }
    payments_flow_outcome(&out, PAYMENTS_CHARGE_NOT_PROCESSED, last);
    record_step(w, p, "", &out, false, NULL, "route");
}

void payments_flow_payment(const payments_flow_worker *w, payments_payment *p)
{
    if (p->phase == PAYMENTS_PHASE_RECEIVED && !check_risk(w, p)) {
        return;
    }
    if (p->phase == PAYMENTS_PHASE_CHARGE_STARTED) {
        /* An earlier call's outcome was never recorded (a crash, a lost lease) or was unknown. */
        resolve_unknown(w, p);
        return;
    }
    route_and_charge(w, p);
}
