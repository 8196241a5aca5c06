/* The worker threads that drive payments and refunds through their state machines (flow.h):
 * claim one due item under a lease, work it, look again; wait for a notification, a
 * scheduled retry or the poll interval when nothing is due. */
#ifndef PAYMENTS_WORKER_H
#define PAYMENTS_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "keel/db.h"

typedef struct payments_workers_options {
    keel_db_pool *pool;
    payments_guard *const *guards; /* borrowed; must outlive the workers */
    int n_guards;
    const payments_routes *routes; /* borrowed; indices into guards */
    payments_risk *risk;           /* borrowed */
    const char *instance_id;       /* lease owners are "<instance_id>/w<n>" */
    const char *events_topic;      /* e.g. "keel.payment-events.v1" */
    int workers;
    int64_t lease_ms;
    int max_attempts;
    int64_t unknown_deadline_ms;
    int poll_interval_ms; /* safety-net poll for due work; 0 = 500 */
} payments_workers_options;

typedef struct payments_workers payments_workers;

/* Starts opts->workers threads. NULL with err filled on failure. Copies the options (the
 * borrowed objects stay the caller's). */
payments_workers *payments_workers_start(const payments_workers_options *opts, char *err,
                                         size_t err_len);
/* Wakes a waiting worker to look for due work now (after intake stored a payment or a
 * refund). Thread-safe; usable as payments_intake.on_stored with the workers as argument. */
void payments_workers_notify(void *workers);
/* Asks every worker to stop once it has recorded what it holds, waits for all of them and
 * frees. NULL is fine. */
void payments_workers_stop(payments_workers *w);

#endif
