/* The payment state machine, run by a few worker threads that share the work through leases. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/failpoint.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/shutdown.h"
#include "payment_events.h"
#include "payment_store.h"

/* How long a worker waits for a pooled connection before treating the database as away. */
#define WORKER_ACQUIRE_TIMEOUT_MS 2000

typedef struct worker_thread {
    struct payments_workers *ws;
    int index;
    char owner[192]; /* the lease owner: unique per thread, so two threads of one instance
                        never mistake each other's lease for their own */
    pthread_t tid;
    bool started;
    uint64_t rng;
} worker_thread;

struct payments_workers {
    payments_workers_options opts;
    char *instance_id;
    char *events_topic;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool sync_ready;
    uint64_t generation; /* bumped by notify; a worker waits only while it is unchanged */
    int64_t next_due_ms; /* monotonic time a retry scheduled here falls due; 0 = none known */
    bool stopping;
    worker_thread *threads;
    int count;
};

/* ---- pure decisions ------------------------------------------------------------------ */

payments_action payments_worker_decide(payments_charge_status outcome, int attempts_before,
                                       int max_attempts, bool ambiguous)
{
    if (outcome == PAYMENTS_CHARGE_SUCCEEDED) {
        return PAYMENTS_ACTION_SUCCEED;
    }
    if (outcome == PAYMENTS_CHARGE_DECLINED) {
        return PAYMENTS_ACTION_FAIL;
    }
    if (max_attempts < 1) {
        max_attempts = 1;
    }
    if (attempts_before + 1 < max_attempts) {
        return PAYMENTS_ACTION_RETRY;
    }
    /* Out of attempts. Failing the payment is safe only when no attempt could have charged:
     * otherwise the merchant would be told "failed" about money that may have moved. */
    if (outcome == PAYMENTS_CHARGE_NOT_PROCESSED && !ambiguous) {
        return PAYMENTS_ACTION_FAIL_UNAVAILABLE;
    }
    return PAYMENTS_ACTION_REVIEW;
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

/* ---- metrics ------------------------------------------------------------------------- */

static void metric_outcome(const char *status)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "status=\"%s\"", status);
    keel_metric_inc(keel_metrics_counter(keel_metrics_default(), "keel_payments_outcomes_total",
                                         "Payments that reached a final status, by status",
                                         labels));
}

static void metric_call(const char *provider, const char *operation, const char *result,
                        double seconds)
{
    char labels[160];
    snprintf(labels, sizeof(labels), "provider=\"%s\",operation=\"%s\",result=\"%s\"", provider,
             operation, result);
    keel_metric_inc(keel_metrics_counter(
        keel_metrics_default(), "keel_payments_provider_calls_total",
        "Calls to payment providers, by provider, operation (charge, lookup) and result", labels));
    snprintf(labels, sizeof(labels), "provider=\"%s\",operation=\"%s\"", provider, operation);
    keel_metric_observe(
        keel_metrics_histogram(keel_metrics_default(), "keel_payments_provider_call_seconds",
                               "Duration of calls to payment providers", labels, NULL, 0),
        seconds);
}

/* Registers the outcome series at zero so dashboards and alerts see them before the first
 * payment. */
static void metrics_register(void)
{
    static const char *const statuses[] = {"succeeded", "failed", "requires_review"};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "status=\"%s\"", statuses[i]);
        keel_metrics_counter(keel_metrics_default(), "keel_payments_outcomes_total",
                             "Payments that reached a final status, by status", labels);
    }
}

/* ---- waking up ------------------------------------------------------------------------ */

/* Remembers that a payment falls due in delay_ms, so a waiting worker wakes then instead of
 * at its next poll: retries of a few hundred milliseconds keep their timing. Payments other
 * instances scheduled are found by the poll. */
static void workers_schedule(payments_workers *ws, int64_t delay_ms)
{
    int64_t due = keel_clock_monotonic_ms() + (delay_ms > 0 ? delay_ms : 0);
    pthread_mutex_lock(&ws->mu);
    if (ws->next_due_ms == 0 || due < ws->next_due_ms) {
        ws->next_due_ms = due;
    }
    pthread_cond_broadcast(&ws->cond); /* waiters recompute their deadline */
    pthread_mutex_unlock(&ws->mu);
}

/* ---- one payment ---------------------------------------------------------------------- */

typedef struct record_tx {
    worker_thread *t;
    const payments_payment *p;
    payments_action action;
    payments_record rec;
} record_tx;

static keel_result record_body(keel_db *db, void *arg)
{
    record_tx *tx = arg;
    const payments_workers *ws = tx->t->ws;
    keel_result rc = payments_store_record(db, tx->p->id, tx->t->owner, &tx->rec);
    if (rc != KEEL_OK) {
        return rc;
    }
    switch (tx->action) {
    case PAYMENTS_ACTION_SUCCEED:
        return payments_events_succeeded(db, ws->events_topic, tx->p, tx->rec.provider,
                                         tx->rec.provider_charge_id);
    case PAYMENTS_ACTION_FAIL:
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        return payments_events_failed(db, ws->events_topic, tx->p, tx->rec.provider,
                                      tx->rec.failure_code, tx->rec.failure_message);
    case PAYMENTS_ACTION_RETRY:
    case PAYMENTS_ACTION_REVIEW:
        /* No event for review yet: nobody knows the outcome, and announcing one would be a
         * guess. */
        return KEEL_OK;
    }
    return KEEL_ERR;
}

/* Records the outcome of one attempt: state change and event in one transaction, only while
 * this thread still holds the lease. */
static void record_outcome(worker_thread *t, const payments_payment *p, const char *operation,
                           const payments_charge_outcome *out, bool ambiguous)
{
    payments_workers *ws = t->ws;
    const char *provider = ws->opts.provider->name;
    char last_error[512];
    char message[400];
    snprintf(last_error, sizeof(last_error), "%s %s: %s", provider, operation, out->detail);

    record_tx tx = {.t = t, .p = p};
    tx.action = payments_worker_decide(out->status, p->attempts, ws->opts.max_attempts, ambiguous);
    payments_record *rec = &tx.rec;
    rec->provider = provider;
    rec->provider_charge_id = out->charge_id;
    rec->attempts = p->attempts;
    rec->ambiguous = ambiguous;
    switch (tx.action) {
    case PAYMENTS_ACTION_SUCCEED:
        rec->status = "succeeded";
        rec->phase = PAYMENTS_PHASE_DONE;
        break;
    case PAYMENTS_ACTION_FAIL:
        rec->status = "failed";
        rec->phase = PAYMENTS_PHASE_DONE;
        rec->failure_code = out->failure_code;
        rec->failure_message = out->failure_message;
        break;
    case PAYMENTS_ACTION_RETRY:
        rec->status = "processing";
        /* Not processed: nothing can be charged, the next attempt may charge right away.
         * Unknown: the next attempt must ask the provider first. */
        rec->phase = out->status == PAYMENTS_CHARGE_NOT_PROCESSED ? PAYMENTS_PHASE_RECEIVED
                                                                  : PAYMENTS_PHASE_CHARGE_STARTED;
        rec->attempts = p->attempts + 1;
        rec->retry_delay_ms = payments_worker_retry_delay_ms(p->attempts, &t->rng);
        rec->last_error = last_error;
        break;
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        rec->status = "failed";
        rec->phase = PAYMENTS_PHASE_DONE;
        rec->attempts = p->attempts + 1;
        rec->failure_code = "provider_unavailable";
        snprintf(message, sizeof(message),
                 "%s did not process the charge in %d attempts; nothing was charged", provider,
                 rec->attempts);
        rec->failure_message = message;
        rec->last_error = last_error;
        break;
    case PAYMENTS_ACTION_REVIEW:
        rec->status = "requires_review";
        rec->phase = PAYMENTS_PHASE_DONE;
        rec->attempts = p->attempts + 1;
        rec->last_error = last_error;
        break;
    }

    keel_db *db = keel_db_pool_acquire(ws->opts.pool, WORKER_ACQUIRE_TIMEOUT_MS);
    keel_result rc = KEEL_ERR_TRANSIENT;
    if (db != NULL) {
        rc = keel_db_transaction(db, NULL, record_body, &tx, NULL);
        keel_db_pool_release(ws->opts.pool, db);
        db = NULL;
    }
    if (rc == KEEL_ERR_CONFLICT) {
        keel_log_warn("payment %s: lease lost before recording %s (%s); another worker resolves "
                      "it through a status lookup",
                      p->id, payments_action_name(tx.action), out->detail);
        return;
    }
    if (rc != KEEL_OK) {
        keel_log_error("payment %s: could not record %s (%s, database %s); it stays in phase "
                       "%s and is resolved by a status lookup when the lease expires",
                       p->id, payments_action_name(tx.action), out->detail, keel_result_name(rc),
                       "charge_started");
        return;
    }
    switch (tx.action) {
    case PAYMENTS_ACTION_SUCCEED:
        metric_outcome("succeeded");
        keel_log_info("payment %s succeeded at %s (charge %s)", p->id, provider, out->charge_id);
        break;
    case PAYMENTS_ACTION_FAIL:
        metric_outcome("failed");
        keel_log_info("payment %s failed at %s: %s (%s)", p->id, provider, out->failure_code,
                      out->failure_message);
        break;
    case PAYMENTS_ACTION_RETRY:
        workers_schedule(ws, rec->retry_delay_ms);
        keel_log_warn("payment %s: attempt %d of %d without outcome (%s); next in %lld ms", p->id,
                      rec->attempts, ws->opts.max_attempts, last_error,
                      (long long)rec->retry_delay_ms);
        break;
    case PAYMENTS_ACTION_FAIL_UNAVAILABLE:
        metric_outcome("failed");
        keel_log_warn("payment %s failed: %s (%s)", p->id, message, last_error);
        break;
    case PAYMENTS_ACTION_REVIEW:
        metric_outcome("requires_review");
        keel_log_error("payment %s requires review: after %d attempts nobody knows whether %s "
                       "charged it (%s); ask %s for the charge under idempotency key %s",
                       p->id, rec->attempts, provider, last_error, provider, p->id);
        break;
    }
}

/* Commits phase 'charge_started' and a fresh lease before a charge call. False when the call
 * must not happen (lease lost, or the intent could not be made durable). */
static bool record_intent(worker_thread *t, const payments_payment *p)
{
    payments_workers *ws = t->ws;
    keel_db *db = keel_db_pool_acquire(ws->opts.pool, WORKER_ACQUIRE_TIMEOUT_MS);
    if (db == NULL) {
        keel_log_warn("payment %s: no database connection to record the intent to charge; "
                      "retrying after the lease expires",
                      p->id);
        return false;
    }
    keel_result rc = payments_store_mark_charge_started(db, p->id, t->owner, ws->opts.lease_ms);
    keel_db_pool_release(ws->opts.pool, db);
    db = NULL;
    if (rc == KEEL_ERR_CONFLICT) {
        keel_log_warn("payment %s: lease lost before charging; left to its new owner", p->id);
        return false;
    }
    if (rc != KEEL_OK) {
        keel_log_warn("payment %s: intent to charge not recorded (%s); not charging now", p->id,
                      keel_result_name(rc));
        return false;
    }
    return true;
}

static void call_charge(worker_thread *t, const payments_payment *p, payments_charge_outcome *out)
{
    payments_provider *prov = t->ws->opts.provider;
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
    int64_t start = keel_clock_monotonic_ms();
    prov->charge(prov, &req, out);
    double seconds = (double)(keel_clock_monotonic_ms() - start) / 1000.0;
    metric_call(prov->name, "charge", payments_charge_status_name(out->status), seconds);
    keel_log_debug("payment %s: charge at %s → %s (%s)", p->id, prov->name,
                   payments_charge_status_name(out->status), out->detail);
}

static payments_lookup_status call_lookup(worker_thread *t, const payments_payment *p,
                                          payments_charge_outcome *out)
{
    payments_provider *prov = t->ws->opts.provider;
    int64_t start = keel_clock_monotonic_ms();
    payments_lookup_status st = prov->lookup(prov, p->id, p->traceparent, out);
    double seconds = (double)(keel_clock_monotonic_ms() - start) / 1000.0;
    metric_call(prov->name, "lookup", payments_lookup_status_name(st), seconds);
    return st;
}

static void process_payment(worker_thread *t, const payments_payment *p)
{
    payments_charge_outcome out;
    memset(&out, 0, sizeof(out));
    bool ambiguous = p->ambiguous;
    const char *operation = "charge";

    if (p->phase == PAYMENTS_PHASE_CHARGE_STARTED) {
        /* An earlier call's outcome was never recorded (a crash, a lost lease) or was unknown:
         * ask before charging, under the same idempotency key. */
        ambiguous = true;
        operation = "lookup";
        payments_lookup_status st = call_lookup(t, p, &out);
        if (st == PAYMENTS_LOOKUP_FOUND) {
            keel_log_info("payment %s: status lookup found a charge (%s)", p->id, out.detail);
            record_outcome(t, p, operation, &out, ambiguous);
            return;
        }
        if (st == PAYMENTS_LOOKUP_FAILED) {
            out.status = PAYMENTS_CHARGE_UNKNOWN;
            record_outcome(t, p, operation, &out, ambiguous);
            return;
        }
        keel_log_info("payment %s: no charge under its key at %s; charging again", p->id,
                      t->ws->opts.provider->name);
        operation = "charge";
    }
    if (!record_intent(t, p)) {
        return;
    }
    KEEL_FAILPOINT("payments.before_charge");
    call_charge(t, p, &out);
    KEEL_FAILPOINT("payments.after_charge");
    record_outcome(t, p, operation, &out, ambiguous || out.status == PAYMENTS_CHARGE_UNKNOWN);
}

/* ---- threads -------------------------------------------------------------------------- */

static bool workers_stopping(payments_workers *ws)
{
    pthread_mutex_lock(&ws->mu);
    bool stop = ws->stopping;
    pthread_mutex_unlock(&ws->mu);
    return stop || keel_shutdown_requested();
}

static uint64_t workers_generation(payments_workers *ws)
{
    pthread_mutex_lock(&ws->mu);
    uint64_t g = ws->generation;
    pthread_mutex_unlock(&ws->mu);
    return g;
}

static void deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits until notified after `seen`, until a scheduled retry falls due, until ms pass, or
 * until stopping. */
static void workers_wait(payments_workers *ws, uint64_t seen, int64_t ms)
{
    int64_t until = keel_clock_monotonic_ms() + ms;
    pthread_mutex_lock(&ws->mu);
    while (!ws->stopping && ws->generation == seen && !keel_shutdown_requested()) {
        int64_t now = keel_clock_monotonic_ms();
        if (ws->next_due_ms != 0 && ws->next_due_ms <= now) {
            ws->next_due_ms = 0; /* this worker goes to look; others keep waiting */
            break;
        }
        int64_t wake = until;
        if (ws->next_due_ms != 0 && ws->next_due_ms < wake) {
            wake = ws->next_due_ms;
        }
        if (wake <= now) {
            break;
        }
        struct timespec deadline;
        deadline_after(&deadline, wake - now);
        int e = pthread_cond_timedwait(&ws->cond, &ws->mu, &deadline);
        if (e == ETIMEDOUT && wake == until) {
            break;
        }
    }
    pthread_mutex_unlock(&ws->mu);
}

static void *worker_main(void *arg)
{
    worker_thread *t = arg;
    payments_workers *ws = t->ws;
    const keel_backoff trouble = {.base_ms = 200, .cap_ms = 5000, .max_attempts = 0};
    int failures = 0;
    int64_t poll_ms = ws->opts.poll_interval_ms > 0 ? ws->opts.poll_interval_ms : 500;

    keel_log_info("payments worker %s started", t->owner);
    while (!workers_stopping(ws)) {
        uint64_t seen = workers_generation(ws);
        payments_payment p;
        memset(&p, 0, sizeof(p));
        keel_result rc = KEEL_ERR_TRANSIENT;
        keel_db *db = keel_db_pool_acquire(ws->opts.pool, WORKER_ACQUIRE_TIMEOUT_MS);
        if (db != NULL) {
            rc = payments_store_claim(db, t->owner, ws->opts.lease_ms, &p);
            keel_db_pool_release(ws->opts.pool, db);
            db = NULL;
        }
        if (rc == KEEL_OK) {
            failures = 0;
            char trace_id[33];
            keel_traceparent_trace_id(p.traceparent, trace_id);
            keel_log_set_trace_id(trace_id[0] != '\0' ? trace_id : NULL);
            process_payment(t, &p);
            keel_log_set_trace_id(NULL);
            payments_payment_clear(&p);
            continue; /* more may be due: look again at once */
        }
        int64_t wait_ms = poll_ms;
        if (rc != KEEL_ERR_NOT_FOUND) {
            /* The database is away or refused the claim: back off, capped, and keep trying
             * for as long as the service runs. */
            wait_ms = keel_backoff_delay_ms(&trouble, failures, &t->rng);
            if (wait_ms < poll_ms) {
                wait_ms = poll_ms;
            }
            if (failures < 30) {
                failures++;
            }
            keel_log_warn("payments worker %s: claiming work failed (%s); next try in %lld ms",
                          t->owner, keel_result_name(rc), (long long)wait_ms);
        }
        workers_wait(ws, seen, wait_ms);
    }
    keel_log_info("payments worker %s stopped", t->owner);
    return NULL;
}

void payments_workers_notify(void *workers)
{
    payments_workers *ws = workers;
    if (ws == NULL) {
        return;
    }
    pthread_mutex_lock(&ws->mu);
    ws->generation++;
    pthread_cond_broadcast(&ws->cond);
    pthread_mutex_unlock(&ws->mu);
}

void payments_workers_stop(payments_workers *ws)
{
    if (ws == NULL) {
        return;
    }
    if (ws->sync_ready) {
        pthread_mutex_lock(&ws->mu);
        ws->stopping = true;
        pthread_cond_broadcast(&ws->cond);
        pthread_mutex_unlock(&ws->mu);
    }
    for (int i = 0; i < ws->count; i++) {
        if (ws->threads[i].started) {
            pthread_join(ws->threads[i].tid, NULL);
            ws->threads[i].started = false;
        }
    }
    if (ws->sync_ready) {
        pthread_cond_destroy(&ws->cond);
        pthread_mutex_destroy(&ws->mu);
    }
    free(ws->threads);
    ws->threads = NULL;
    free(ws->instance_id);
    ws->instance_id = NULL;
    free(ws->events_topic);
    ws->events_topic = NULL;
    free(ws);
}

payments_workers *payments_workers_start(const payments_workers_options *opts, char *err,
                                         size_t err_len)
{
    payments_workers *ws = NULL;
    pthread_condattr_t attr;
    bool attr_ready = false;

    if (opts->pool == NULL || opts->provider == NULL || opts->instance_id == NULL ||
        opts->events_topic == NULL || opts->workers < 1 || opts->lease_ms <= 0 ||
        opts->max_attempts < 1) {
        snprintf(err, err_len,
                 "payments workers need a pool, a provider, an instance id, an "
                 "events topic, workers >= 1, lease_ms > 0 and max_attempts >= 1");
        goto fail;
    }
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        snprintf(err, err_len, "out of memory starting payments workers");
        goto fail;
    }
    ws->opts = *opts;
    ws->instance_id = strdup(opts->instance_id);
    ws->events_topic = strdup(opts->events_topic);
    ws->threads = calloc((size_t)opts->workers, sizeof(*ws->threads));
    if (ws->instance_id == NULL || ws->events_topic == NULL || ws->threads == NULL) {
        snprintf(err, err_len, "out of memory starting payments workers");
        goto fail;
    }
    ws->opts.instance_id = ws->instance_id;
    ws->opts.events_topic = ws->events_topic;
    ws->count = opts->workers;

    /* Timed waits on the monotonic clock, so a wall-clock jump cannot stall or spin them. */
    if (pthread_condattr_init(&attr) != 0) {
        snprintf(err, err_len, "pthread_condattr_init failed");
        goto fail;
    }
    attr_ready = true;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_mutex_init(&ws->mu, NULL) != 0) {
        snprintf(err, err_len, "could not set up the workers' mutex");
        goto fail;
    }
    if (pthread_cond_init(&ws->cond, &attr) != 0) {
        pthread_mutex_destroy(&ws->mu);
        snprintf(err, err_len, "could not set up the workers' condition variable");
        goto fail;
    }
    ws->sync_ready = true;
    pthread_condattr_destroy(&attr);
    attr_ready = false;

    metrics_register();
    uint64_t seed = (uint64_t)keel_clock_now_us() | 1u;
    for (int i = 0; i < ws->count; i++) {
        worker_thread *t = &ws->threads[i];
        t->ws = ws;
        t->index = i;
        t->rng = keel_rand_next(&seed) | 1u;
        snprintf(t->owner, sizeof(t->owner), "%s/w%d", ws->instance_id, i + 1);
        int e = pthread_create(&t->tid, NULL, worker_main, t);
        if (e != 0) {
            snprintf(err, err_len, "could not start payments worker %d: %s", i + 1, strerror(e));
            goto fail;
        }
        t->started = true;
    }
    return ws;
fail:
    if (attr_ready) {
        pthread_condattr_destroy(&attr);
    }
    payments_workers_stop(ws);
    return NULL;
}
