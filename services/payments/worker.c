/* The worker threads: they share due payments and refunds through leases and run each through
 * its state machine (payment_flow.c, refund_flow.c). */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/clock.h"
#include "keel/cloudevents.h"
#include "keel/log.h"
#include "keel/retry.h"
#include "keel/shutdown.h"
#include "payment_store.h"
#include "refund_store.h"

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
    bool refunds_first; /* alternates, so a stream of due payments cannot starve refunds */
} worker_thread;

struct payments_workers {
    payments_workers_options opts;
    payments_flow flow;
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

/* ---- waking up ------------------------------------------------------------------------ */

/* Remembers that a payment falls due in delay_ms, so a waiting worker wakes then instead of
 * at its next poll: retries of a few hundred milliseconds keep their timing. Payments other
 * instances scheduled are found by the poll. */
static void workers_schedule(void *arg, int64_t delay_ms)
{
    payments_workers *ws = arg;
    int64_t due = keel_clock_monotonic_ms() + (delay_ms > 0 ? delay_ms : 0);
    pthread_mutex_lock(&ws->mu);
    if (ws->next_due_ms == 0 || due < ws->next_due_ms) {
        ws->next_due_ms = due;
    }
    pthread_cond_broadcast(&ws->cond); /* waiters recompute their deadline */
    pthread_mutex_unlock(&ws->mu);
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

/* Sets the log's trace id from a traceparent while an item is worked. */
static void worker_trace(const char *traceparent)
{
    char trace_id[33];
    keel_traceparent_trace_id(traceparent, trace_id);
    keel_log_set_trace_id(trace_id[0] != '\0' ? trace_id : NULL);
}

/* Claims one due payment (refund false) or refund (true) and works it. KEEL_ERR_NOT_FOUND
 * when none is due; another error when the database is away. */
static keel_result worker_work_kind(worker_thread *t, bool refund)
{
    payments_workers *ws = t->ws;
    payments_payment p;
    payments_refund r;
    memset(&p, 0, sizeof(p));
    memset(&r, 0, sizeof(r));
    keel_db *db = keel_db_pool_acquire(ws->opts.pool, WORKER_ACQUIRE_TIMEOUT_MS);
    if (db == NULL) {
        return KEEL_ERR_TRANSIENT;
    }
    keel_result rc = refund ? payments_refund_store_claim(db, t->owner, ws->opts.lease_ms, &r)
                            : payments_store_claim(db, t->owner, ws->opts.lease_ms, &p);
    keel_db_pool_release(ws->opts.pool, db);
    db = NULL;
    if (rc != KEEL_OK) {
        return rc;
    }
    payments_flow_worker fw = {
        .flow = &ws->flow,
        .owner = t->owner,
        .rng = &t->rng,
        .claimed_at_ms = keel_clock_monotonic_ms(),
    };
    worker_trace(refund ? r.traceparent : p.traceparent);
    if (refund) {
        payments_flow_refund(&fw, &r);
    } else {
        payments_flow_payment(&fw, &p);
        payments_payment_clear(&p);
    }
    keel_log_set_trace_id(NULL);
    return KEEL_OK;
}

/* Works one due item, payments and refunds taking turns to go first. */
static keel_result worker_work_one(worker_thread *t)
{
    bool first = t->refunds_first;
    t->refunds_first = !t->refunds_first;
    keel_result rc = worker_work_kind(t, first);
    if (rc == KEEL_ERR_NOT_FOUND) {
        rc = worker_work_kind(t, !first);
    }
    return rc;
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
        keel_result rc = worker_work_one(t);
        if (rc == KEEL_OK) {
            failures = 0;
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

    if (opts->pool == NULL || opts->guards == NULL || opts->n_guards < 1 || opts->routes == NULL ||
        opts->risk == NULL || opts->instance_id == NULL || opts->events_topic == NULL ||
        opts->workers < 1 || opts->lease_ms <= 0 || opts->max_attempts < 1 ||
        opts->unknown_deadline_ms <= 0) {
        snprintf(err, err_len,
                 "payments workers need a pool, providers, routes, a risk client, an instance "
                 "id, an events topic, workers >= 1, lease_ms > 0, max_attempts >= 1 and an "
                 "unknown deadline > 0");
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
    ws->flow = (payments_flow){
        .pool = opts->pool,
        .guards = opts->guards,
        .n_guards = opts->n_guards,
        .routes = opts->routes,
        .risk = opts->risk,
        .events_topic = ws->events_topic,
        .lease_ms = opts->lease_ms,
        .max_attempts = opts->max_attempts,
        .unknown_deadline_ms = opts->unknown_deadline_ms,
        .schedule = workers_schedule,
        .schedule_arg = ws,
    };

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

    payments_flow_metrics_register();
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
