/* Webhook delivery workers: a few threads share due deliveries through leases in the database,
 * so any number of notifier instances can run and a crash loses nothing. */
#include "worker.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint_url.h"
#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/failpoint.h"
#include "keel/http_client.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/retry.h"
#include "keel/wakeup.h"
#include "signature.h"
#include "store.h"

/* How long a worker waits for a pooled connection before treating the database as away. */
#define WORKER_ACQUIRE_TIMEOUT_MS 2000

typedef struct worker_thread {
    struct notifier_workers *ws;
    char owner[160];
    pthread_t tid;
    bool started;
    uint64_t rng;
} worker_thread;

struct notifier_workers {
    notifier_workers_options opts;
    char *instance_id;
    keel_wakeup *wakeup; /* kicked by intake; told when retries recorded here fall due */
    worker_thread *threads;
    int count;
};

/* ---- metrics --------------------------------------------------------------------------- */

static void metric_attempt(const char *result, double seconds)
{
    char labels[48];
    snprintf(labels, sizeof(labels), "result=\"%s\"", result);
    keel_metric_inc(keel_metrics_counter(
        keel_metrics_default(), "keel_notifier_delivery_attempts_total",
        "Webhook delivery attempts, by result (succeeded, http_error, gone, transport_error, "
        "refused, unresolvable)",
        labels));
    keel_metric_observe(keel_metrics_histogram(keel_metrics_default(),
                                               "keel_notifier_attempt_seconds",
                                               "Duration of one webhook delivery attempt, "
                                               "resolution and signing included",
                                               NULL, NULL, 0),
                        seconds);
}

static void metric_delivery(const char *outcome)
{
    char labels[48];
    snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcome);
    keel_metric_inc(keel_metrics_counter(
        keel_metrics_default(), "keel_notifier_deliveries_total",
        "Webhook deliveries that ended, by outcome (succeeded, dead, gone, endpoint_disabled)",
        labels));
}

static void metric_disabled(const char *reason)
{
    char labels[48];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    keel_metric_inc(
        keel_metrics_counter(keel_metrics_default(), "keel_notifier_endpoints_disabled_total",
                             "Endpoints keel disabled, by reason (gone, failing)", labels));
}

/* Every series exists from the start, so rates and alerts work before the first delivery. */
static void metrics_register(void)
{
    static const char *const results[] = {"succeeded",       "http_error", "gone",
                                          "transport_error", "refused",    "unresolvable"};
    static const char *const outcomes[] = {"succeeded", "dead", "gone", "endpoint_disabled"};
    char labels[48];
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
        snprintf(labels, sizeof(labels), "result=\"%s\"", results[i]);
        keel_metrics_counter(keel_metrics_default(), "keel_notifier_delivery_attempts_total",
                             "Webhook delivery attempts, by result (succeeded, http_error, gone, "
                             "transport_error, refused, unresolvable)",
                             labels);
    }
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        snprintf(labels, sizeof(labels), "outcome=\"%s\"", outcomes[i]);
        keel_metrics_counter(keel_metrics_default(), "keel_notifier_deliveries_total",
                             "Webhook deliveries that ended, by outcome (succeeded, dead, gone, "
                             "endpoint_disabled)",
                             labels);
    }
    keel_metrics_histogram(keel_metrics_default(), "keel_notifier_attempt_seconds",
                           "Duration of one webhook delivery attempt, resolution and signing "
                           "included",
                           NULL, NULL, 0);
    keel_metrics_counter(keel_metrics_default(), "keel_notifier_endpoints_disabled_total",
                         "Endpoints keel disabled, by reason (gone, failing)", "reason=\"gone\"");
    keel_metrics_counter(keel_metrics_default(), "keel_notifier_endpoints_disabled_total",
                         "Endpoints keel disabled, by reason (gone, failing)",
                         "reason=\"failing\"");
}

/* ---- one delivery ---------------------------------------------------------------------- */

/* What one attempt found out, before it is recorded. */
typedef struct attempt_report {
    long status;            /* HTTP status, 0 when no answer */
    int64_t retry_after_ms; /* -1 when none */
    const char *result;     /* the attempts metric label */
    char address[KEEL_IP_STR_LEN];
    char error[512];
} attempt_report;

/* Resolves and checks the endpoint's host again (the DNS answer may have changed since
 * registration), then sends the stored body to exactly the checked address. */
static void attempt_send(worker_thread *t, const notifier_claim *c, int attempt,
                         attempt_report *rep)
{
    const notifier_workers_options *o = &t->ws->opts;
    keel_ip addr;
    keel_result ur = notifier_url_check(c->url, o->allow_http, o->allow, o->dns_timeout_ms, &addr,
                                        rep->error, sizeof(rep->error));
    if (ur == KEEL_ERR) {
        rep->result = "refused";
        return;
    }
    if (ur != KEEL_OK) {
        rep->result = "unresolvable";
        return;
    }
    keel_ip_format(&addr, rep->address);

    char signature[NOTIFIER_SIGNATURE_LEN];
    int64_t t_unix = keel_clock_now_ms() / 1000;
    if (!notifier_signature_header(t_unix, c->body, c->body_len, c->secret,
                                   c->previous_secret[0] != '\0' ? c->previous_secret : NULL,
                                   signature)) {
        snprintf(rep->error, sizeof(rep->error), "signing failed (OpenSSL HMAC)");
        rep->result = "transport_error";
        return;
    }
    char h_event[80], h_type[80], h_delivery[80], h_attempt[48], h_time[48], h_sig[240];
    snprintf(h_event, sizeof(h_event), "Keel-Event-Id: %s", c->event_id);
    snprintf(h_type, sizeof(h_type), "Keel-Event-Type: %s", c->event_type);
    snprintf(h_delivery, sizeof(h_delivery), "Keel-Delivery-Id: %s", c->id);
    snprintf(h_attempt, sizeof(h_attempt), "Keel-Delivery-Attempt: %d", attempt);
    snprintf(h_time, sizeof(h_time), "Keel-Timestamp: %" PRId64, t_unix);
    snprintf(h_sig, sizeof(h_sig), "Keel-Signature: %s", signature);
    const char *headers[] = {"Content-Type: application/json",
                             "User-Agent: keel-webhooks/1",
                             h_event,
                             h_type,
                             h_delivery,
                             h_attempt,
                             h_time,
                             h_sig,
                             NULL};
    keel_http_call call = {
        .method = "POST",
        .url = c->url,
        .headers = headers,
        .body = c->body,
        .body_len = c->body_len,
        .connect_timeout_ms = o->connect_timeout_ms,
        .total_timeout_ms = o->total_timeout_ms,
        .max_response_bytes = o->max_response_bytes,
        .connect_address = rep->address,
    };
    keel_http_result res;
    keel_http_client_do(&call, &res);
    if (res.failure == KEEL_HTTP_OK) {
        rep->status = res.status;
        rep->retry_after_ms = notifier_retry_after_ms(res.retry_after, keel_clock_now_ms());
        rep->result = res.status >= 200 && res.status <= 299 ? "succeeded"
                      : res.status == 410                    ? "gone"
                                                             : "http_error";
        if (strcmp(rep->result, "succeeded") != 0) {
            snprintf(rep->error, sizeof(rep->error), "the endpoint answered HTTP %ld", res.status);
        }
    } else if (res.failure == KEEL_HTTP_TOO_LARGE) {
        rep->result = "http_error";
        snprintf(rep->error, sizeof(rep->error),
                 "the endpoint's answer exceeded %zu bytes; answer 2xx with a short body",
                 o->max_response_bytes);
    } else {
        rep->result = "transport_error";
        snprintf(rep->error, sizeof(rep->error), "%s", res.error);
    }
    keel_http_result_clear(&res);
    /* The endpoint may have the event now, and nothing is recorded yet: a crash here must
     * cost at most one repeated attempt with the same event id. */
    KEEL_FAILPOINT("notifier.mid_delivery");
}

/* The host of the endpoint's URL, for logs: never the path or query, which may hold tokens. */
static void log_host(const char *url, char *out, size_t out_len)
{
    notifier_url parsed;
    char ignored[256];
    if (notifier_url_parse(url, true, &parsed, ignored, sizeof(ignored))) {
        snprintf(out, out_len, "%s:%d", parsed.host, parsed.port);
    } else {
        snprintf(out, out_len, "(unusable url)");
    }
}

static keel_result record(worker_thread *t, const notifier_attempt *a,
                          notifier_attempt_effect *effect)
{
    keel_db *db = keel_db_pool_acquire(t->ws->opts.pool, WORKER_ACQUIRE_TIMEOUT_MS);
    if (db == NULL) {
        return KEEL_ERR_TRANSIENT;
    }
    keel_result rc = notifier_store_record(db, a, effect);
    keel_db_pool_release(t->ws->opts.pool, db);
    return rc;
}

/* A delivery whose endpoint was disabled or deleted since it was created: no attempt. */
static void deliver_abandon(worker_thread *t, const notifier_claim *c)
{
    char why[64];
    notifier_attempt_effect effect;
    snprintf(why, sizeof(why), "the endpoint is %s", c->endpoint_state);
    notifier_attempt a = {
        .delivery_id = c->id,
        .endpoint_id = c->endpoint_id,
        .owner = t->owner,
        .status = "dead",
        .outcome = "endpoint_disabled",
        .attempt = c->attempts,
        .started_ms = keel_clock_now_ms(),
        .error = why,
    };
    keel_result rc = record(t, &a, &effect);
    if (rc == KEEL_OK) {
        metric_delivery("endpoint_disabled");
        keel_log_info("delivery %s (event %s) ended without an attempt: %s", c->id, c->event_id,
                      why);
    } else {
        keel_log_warn("delivery %s: could not record that %s (%s); retried when its lease ends",
                      c->id, why, keel_result_name(rc));
    }
}

static void deliver(worker_thread *t, const notifier_claim *c)
{
    notifier_workers *ws = t->ws;
    const notifier_schedule *s = ws->opts.schedule;
    int max = notifier_schedule_max_attempts(s);
    int attempt = c->attempts + 1;
    attempt_report rep = {.retry_after_ms = -1, .result = "transport_error"};
    char host[300];

    if (strcmp(c->endpoint_state, "enabled") != 0) {
        deliver_abandon(t, c);
        return;
    }
    int64_t started_ms = keel_clock_now_ms();
    int64_t t0 = keel_clock_monotonic_ms();
    attempt_send(t, c, attempt, &rep);
    int64_t duration_ms = keel_clock_monotonic_ms() - t0;
    metric_attempt(rep.result, (double)duration_ms / 1000.0);

    notifier_verdict verdict = notifier_decide(rep.status, attempt, max);
    int64_t delay_ms = 0;
    if (verdict == NOTIFIER_VERDICT_RETRY) {
        delay_ms = notifier_schedule_next_ms(s, attempt, rep.retry_after_ms, &t->rng);
    }
    notifier_attempt a = {
        .delivery_id = c->id,
        .endpoint_id = c->endpoint_id,
        .owner = t->owner,
        .status = verdict == NOTIFIER_VERDICT_SUCCEEDED ? "succeeded"
                  : verdict == NOTIFIER_VERDICT_RETRY   ? "pending"
                                                        : "dead",
        .outcome = notifier_verdict_name(verdict),
        .attempt = attempt,
        .started_ms = started_ms,
        .duration_ms = duration_ms,
        .next_delay_ms = delay_ms,
        .http_status = rep.status,
        .error = verdict == NOTIFIER_VERDICT_SUCCEEDED ? NULL : rep.error,
        .address = rep.address[0] != '\0' ? rep.address : NULL,
        .log_attempt = true,
        .endpoint_ok = verdict == NOTIFIER_VERDICT_SUCCEEDED,
        .endpoint_gone = verdict == NOTIFIER_VERDICT_GONE,
        .endpoint_failed = verdict == NOTIFIER_VERDICT_RETRY || verdict == NOTIFIER_VERDICT_DEAD,
        .disable_after_ms = ws->opts.disable_after_ms,
    };
    notifier_attempt_effect effect;
    keel_result rc = record(t, &a, &effect);
    log_host(c->url, host, sizeof(host));
    if (rc != KEEL_OK) {
        keel_log_warn("delivery %s (event %s) to %s: attempt %d (%s) could not be recorded (%s); "
                      "it is attempted again when its lease ends",
                      c->id, c->event_id, host, attempt, notifier_verdict_name(verdict),
                      keel_result_name(rc));
        return;
    }
    switch (verdict) {
    case NOTIFIER_VERDICT_SUCCEEDED:
        metric_delivery("succeeded");
        keel_log_info("delivery %s (event %s, %s) to endpoint %s at %s: HTTP %ld on attempt %d",
                      c->id, c->event_id, c->event_type, c->endpoint_id, host, rep.status, attempt);
        break;
    case NOTIFIER_VERDICT_RETRY:
        keel_wakeup_due_in(ws->wakeup, delay_ms);
        keel_log_warn("delivery %s (event %s) to endpoint %s at %s: attempt %d of %d failed (%s); "
                      "next in %" PRId64 " ms",
                      c->id, c->event_id, c->endpoint_id, host, attempt, max, rep.error, delay_ms);
        break;
    case NOTIFIER_VERDICT_DEAD:
        metric_delivery("dead");
        keel_log_error("delivery %s (event %s) to endpoint %s at %s is dead after %d attempts "
                       "(last: %s); after the merchant fixed the endpoint: keelctl deliveries "
                       "replay %s",
                       c->id, c->event_id, c->endpoint_id, host, attempt, rep.error, c->id);
        break;
    case NOTIFIER_VERDICT_GONE:
        metric_delivery("gone");
        keel_log_warn("delivery %s (event %s): endpoint %s at %s answered 410 Gone", c->id,
                      c->event_id, c->endpoint_id, host);
        break;
    }
    if (effect.endpoint_disabled) {
        bool gone = verdict == NOTIFIER_VERDICT_GONE;
        metric_disabled(gone ? "gone" : "failing");
        keel_log_error("endpoint %s of merchant %s at %s is disabled: %s; %d other pending "
                       "deliveries ended as dead. The merchant must fix the endpoint and register "
                       "it again; dead deliveries can be replayed with keelctl",
                       c->endpoint_id, c->merchant_id, host,
                       gone ? "it answered 410 Gone"
                            : "every attempt failed for longer than KEEL_NOTIFIER_DISABLE_AFTER",
                       effect.deliveries_abandoned);
    }
}

/* ---- threads --------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    worker_thread *t = arg;
    notifier_workers *ws = t->ws;
    const keel_backoff trouble = {.base_ms = 200, .cap_ms = 5000, .max_attempts = 0};
    int failures = 0;
    int64_t poll_ms = ws->opts.poll_ms > 0 ? ws->opts.poll_ms : 1000;

    keel_log_info("delivery worker %s started", t->owner);
    while (!keel_wakeup_stopped(ws->wakeup)) {
        uint64_t seen = keel_wakeup_seen(ws->wakeup);
        notifier_claim c;
        memset(&c, 0, sizeof(c));
        keel_result rc = KEEL_ERR_TRANSIENT;
        keel_db *db = keel_db_pool_acquire(ws->opts.pool, WORKER_ACQUIRE_TIMEOUT_MS);
        if (db != NULL) {
            rc = notifier_store_claim(db, t->owner, ws->opts.lease_ms, &c);
            keel_db_pool_release(ws->opts.pool, db);
            db = NULL;
        }
        if (rc == KEEL_OK) {
            failures = 0;
            /* The delivery's log lines share the trace of the payment they announce. */
            char trace_id[33];
            keel_traceparent_trace_id(c.traceparent, trace_id);
            keel_log_set_trace_id(trace_id[0] != '\0' ? trace_id : NULL);
            deliver(t, &c);
            keel_log_set_trace_id(NULL);
            notifier_claim_clear(&c);
            continue; /* more may be due */
        }
        int64_t wait_ms = poll_ms;
        if (rc != KEEL_ERR_NOT_FOUND) {
            wait_ms = keel_backoff_delay_ms(&trouble, failures, &t->rng);
            wait_ms = wait_ms > poll_ms ? wait_ms : poll_ms;
            failures += failures < 30 ? 1 : 0;
            keel_log_warn("delivery worker %s: claiming work failed (%s); next try in %" PRId64
                          " ms",
                          t->owner, keel_result_name(rc), wait_ms);
        }
        keel_wakeup_sleep(ws->wakeup, seen, wait_ms);
    }
    keel_log_info("delivery worker %s stopped", t->owner);
    return NULL;
}

void notifier_workers_notify(void *workers)
{
    notifier_workers *ws = workers;
    if (ws != NULL) {
        keel_wakeup_kick(ws->wakeup);
    }
}

void notifier_workers_stop(notifier_workers *ws)
{
    if (ws == NULL) {
        return;
    }
    if (ws->wakeup != NULL) {
        keel_wakeup_stop(ws->wakeup);
    }
    for (int i = 0; i < ws->count; i++) {
        if (ws->threads[i].started) {
            pthread_join(ws->threads[i].tid, NULL);
            ws->threads[i].started = false;
        }
    }
    keel_wakeup_free(ws->wakeup);
    ws->wakeup = NULL;
    free(ws->threads);
    ws->threads = NULL;
    free(ws->instance_id);
    ws->instance_id = NULL;
    free(ws);
}

/* Leases of "<instance>/w<n>" owners left by a previous run of this instance. */
static void workers_release_old_leases(notifier_workers *ws)
{
    char prefix[160];
    int released = 0;
    snprintf(prefix, sizeof(prefix), "%s/", ws->instance_id);
    keel_db *db = keel_db_pool_acquire(ws->opts.pool, WORKER_ACQUIRE_TIMEOUT_MS);
    if (db == NULL) {
        keel_log_warn("no database connection to release old leases; they expire on their own");
        return;
    }
    keel_result rc = notifier_store_release_leases(db, prefix, &released);
    keel_db_pool_release(ws->opts.pool, db);
    if (rc != KEEL_OK) {
        keel_log_warn("releasing this instance's old leases failed (%s); they expire on their "
                      "own",
                      keel_result_name(rc));
    } else if (released > 0) {
        keel_log_warn("released %d delivery leases held by a previous run of %s (it stopped "
                      "without recording them); those deliveries are attempted again",
                      released, ws->instance_id);
    }
}

notifier_workers *notifier_workers_start(const notifier_workers_options *opts, char *err,
                                         size_t err_len)
{
    notifier_workers *ws = NULL;

    if (opts->pool == NULL || opts->instance_id == NULL || opts->schedule == NULL ||
        opts->workers < 1 || opts->lease_ms <= 0) {
        snprintf(err, err_len,
                 "delivery workers need a pool, an instance id, a schedule, "
                 "workers >= 1 and lease_ms > 0");
        goto fail;
    }
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        snprintf(err, err_len, "out of memory starting delivery workers");
        goto fail;
    }
    ws->opts = *opts;
    ws->instance_id = strdup(opts->instance_id);
    ws->threads = calloc((size_t)opts->workers, sizeof(*ws->threads));
    ws->wakeup = keel_wakeup_new();
    if (ws->instance_id == NULL || ws->threads == NULL || ws->wakeup == NULL) {
        snprintf(err, err_len, "out of memory starting delivery workers");
        goto fail;
    }
    ws->opts.instance_id = ws->instance_id;
    ws->count = opts->workers;
    metrics_register();
    workers_release_old_leases(ws);
    uint64_t seed = (uint64_t)keel_clock_now_us() | 1u;
    for (int i = 0; i < ws->count; i++) {
        worker_thread *t = &ws->threads[i];
        t->ws = ws;
        t->rng = keel_rand_next(&seed) | 1u;
        snprintf(t->owner, sizeof(t->owner), "%s/w%d", ws->instance_id, i + 1);
        int e = pthread_create(&t->tid, NULL, worker_main, t);
        if (e != 0) {
            snprintf(err, err_len, "could not start delivery worker %d: %s", i + 1, strerror(e));
            goto fail;
        }
        t->started = true;
    }
    return ws;
fail:
    notifier_workers_stop(ws);
    return NULL;
}
