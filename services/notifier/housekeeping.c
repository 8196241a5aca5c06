/* Queue gauges and retention for keel_notifier, on one background thread. */
#include "housekeeping.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "intake.h"
#include "keel/clock.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/shutdown.h"
#include "store.h"

struct notifier_housekeeping {
    notifier_housekeeping_options opts;
    pthread_t tid;
    bool started;
    atomic_bool stop;
    keel_metric *depth;
    keel_metric *oldest;
    keel_metric *dead;
    keel_metric *pruned;
};

static void housekeeping_sample(notifier_housekeeping *h, keel_db *db)
{
    notifier_stats st;
    if (notifier_store_stats(db, &st) != KEEL_OK) {
        return; /* the gauges keep their last value; the next sample tries again */
    }
    keel_metric_set(h->depth, (double)st.pending);
    keel_metric_set(h->oldest, st.oldest_pending_s);
    keel_metric_set(h->dead, (double)st.dead);
}

static void housekeeping_prune(notifier_housekeeping *h, keel_db *db)
{
    int64_t deleted = 0;
    keel_result rc = notifier_store_prune(db, NOTIFIER_INBOX_CONSUMER, h->opts.keep_succeeded_ms,
                                          h->opts.keep_dead_ms, h->opts.keep_inbox_ms, &deleted);
    if (rc != KEEL_OK) {
        keel_log_warn("pruning old deliveries failed (%s); the next run tries again",
                      keel_result_name(rc));
        return;
    }
    keel_metric_add(h->pruned, (double)deleted);
    if (deleted > 0) {
        keel_log_info("pruned %" PRId64 " finished deliveries past their retention", deleted);
    }
}

static void *housekeeping_main(void *arg)
{
    notifier_housekeeping *h = arg;
    int64_t next_prune = keel_clock_monotonic_ms() + h->opts.prune_ms / 10;
    while (!atomic_load(&h->stop) && !keel_shutdown_requested()) {
        keel_db *db = keel_db_pool_acquire(h->opts.pool, 2000);
        if (db != NULL) {
            housekeeping_sample(h, db);
            if (keel_clock_monotonic_ms() >= next_prune) {
                housekeeping_prune(h, db);
                next_prune = keel_clock_monotonic_ms() + h->opts.prune_ms;
            }
            keel_db_pool_release(h->opts.pool, db);
            db = NULL;
        }
        /* Short naps so a stop request is seen promptly. */
        for (int64_t slept = 0; slept < h->opts.sample_ms && !atomic_load(&h->stop); slept += 200) {
            if (keel_shutdown_wait_ms(200)) {
                break;
            }
        }
    }
    return NULL;
}

notifier_housekeeping *notifier_housekeeping_start(const notifier_housekeeping_options *opts,
                                                   char *err, size_t err_len)
{
    keel_metrics *m = keel_metrics_default();
    notifier_housekeeping *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, err_len, "out of memory starting housekeeping");
        return NULL;
    }
    h->opts = *opts;
    if (h->opts.sample_ms <= 0) {
        h->opts.sample_ms = 5000;
    }
    if (h->opts.prune_ms <= 0) {
        h->opts.prune_ms = 3600 * 1000;
    }
    atomic_init(&h->stop, false);
    h->depth =
        keel_metrics_gauge(m, "keel_notifier_queue_depth",
                           "Webhook deliveries pending (due now or waiting for a retry)", NULL);
    h->oldest = keel_metrics_gauge(m, "keel_notifier_oldest_pending_seconds",
                                   "Age of the oldest pending webhook delivery", NULL);
    h->dead = keel_metrics_gauge(m, "keel_notifier_dead_deliveries",
                                 "Dead webhook deliveries kept for replay", NULL);
    h->pruned = keel_metrics_counter(m, "keel_notifier_pruned_deliveries_total",
                                     "Finished deliveries deleted after their retention", NULL);
    if (pthread_create(&h->tid, NULL, housekeeping_main, h) != 0) {
        snprintf(err, err_len, "could not start the housekeeping thread");
        free(h);
        return NULL;
    }
    h->started = true;
    return h;
}

void notifier_housekeeping_stop(notifier_housekeeping *h)
{
    if (h == NULL) {
        return;
    }
    atomic_store(&h->stop, true);
    if (h->started) {
        pthread_join(h->tid, NULL);
        h->started = false;
    }
    free(h);
}
