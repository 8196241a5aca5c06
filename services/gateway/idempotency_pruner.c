/* A thread that deletes expired idempotency keys in batches. */
#include "idempotency_pruner.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "idempotency.h"
#include "keel/db.h"
#include "keel/log.h"
#include "keel/metrics.h"
#include "keel/shutdown.h"

#define PRUNE_BATCH 1000
/* One round deletes at most this many batches, so a backlog never holds the thread (and
 * the database) busy for long; the next round continues. */
#define PRUNE_MAX_BATCHES 100
#define PRUNE_CONNECT_TIMEOUT_MS 5000

struct gateway_pruner {
    keel_db *db;
    int64_t interval_ms;
    pthread_t thread;
    keel_metric *deleted;
};

static void prune_round(gateway_pruner *p)
{
    int total = 0;

    if (keel_db_connect(p->db, PRUNE_CONNECT_TIMEOUT_MS) != KEEL_OK) {
        keel_log_warn("idempotency pruner: database unavailable; trying again next round");
        return;
    }
    for (int i = 0; i < PRUNE_MAX_BATCHES && !keel_shutdown_requested(); i++) {
        int deleted = 0;
        if (gateway_idempotency_prune(p->db, PRUNE_BATCH, &deleted) != KEEL_OK) {
            break;
        }
        total += deleted;
        if (deleted < PRUNE_BATCH) {
            break;
        }
    }
    if (total > 0) {
        keel_metric_add(p->deleted, total);
        keel_log_info("idempotency pruner: deleted %d expired keys", total);
    }
}

static void *pruner_main(void *arg)
{
    gateway_pruner *p = arg;
    do {
        prune_round(p);
    } while (!keel_shutdown_wait_ms(p->interval_ms));
    return NULL;
}

gateway_pruner *gateway_pruner_start(const char *conninfo, const char *password,
                                     int64_t interval_ms, char *err, size_t err_len)
{
    gateway_pruner *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    p->db = keel_db_new(conninfo, password, "keel-gateway-pruner");
    p->interval_ms = interval_ms > 0 ? interval_ms : 60000;
    p->deleted =
        keel_metrics_counter(keel_metrics_default(), "keel_gateway_idempotency_keys_pruned_total",
                             "Idempotency keys deleted after their 24 hours", NULL);
    if (pthread_create(&p->thread, NULL, pruner_main, p) != 0) {
        snprintf(err, err_len, "cannot start the idempotency pruner thread");
        keel_db_free(p->db);
        free(p);
        return NULL;
    }
    return p;
}

void gateway_pruner_stop(gateway_pruner *p)
{
    if (p == NULL) {
        return;
    }
    pthread_join(p->thread, NULL);
    keel_db_free(p->db);
    p->db = NULL;
    free(p);
}
