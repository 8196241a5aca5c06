/* The workers that drive each payment through its phases: claim under a lease, record the
 * intent, call the provider, record the outcome with its event in one transaction. */
#ifndef PAYMENTS_WORKER_H
#define PAYMENTS_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/db.h"
#include "keel/retry.h"
#include "provider.h"

/* Delay before attempt n+1 after n attempts failed without an outcome: full jitter with
 * base 200 ms and cap 10 s. */
#define PAYMENTS_RETRY_BASE_MS 200
#define PAYMENTS_RETRY_CAP_MS 10000

/* What to record after one attempt. */
typedef enum payments_action {
    PAYMENTS_ACTION_SUCCEED = 0,      /* status succeeded + PaymentSucceeded */
    PAYMENTS_ACTION_FAIL,             /* declined: status failed + PaymentFailed */
    PAYMENTS_ACTION_RETRY,            /* no outcome yet: attempts+1, try again after a delay */
    PAYMENTS_ACTION_FAIL_UNAVAILABLE, /* out of attempts, provably nothing charged: failed
                                         "provider_unavailable" + PaymentFailed */
    PAYMENTS_ACTION_REVIEW,           /* out of attempts and a charge may exist:
                                         requires_review, no event */
} payments_action;

/* Pure: the action after an attempt with this outcome. attempts_before counts earlier
 * attempts without an outcome; ambiguous is true when this or any earlier attempt may have
 * charged unseen. */
payments_action payments_worker_decide(payments_charge_status outcome, int attempts_before,
                                       int max_attempts, bool ambiguous);

/* The delay before the next attempt after attempts_before + 1 attempts failed (keel_backoff,
 * base PAYMENTS_RETRY_BASE_MS, cap PAYMENTS_RETRY_CAP_MS). rng may be NULL. */
int64_t payments_worker_retry_delay_ms(int attempts_before, uint64_t *rng);

const char *payments_action_name(payments_action a);

typedef struct payments_workers_options {
    keel_db_pool *pool;
    payments_provider *provider; /* borrowed; must outlive the workers */
    const char *instance_id;     /* lease owners are "<instance_id>/w<n>" */
    const char *events_topic;    /* e.g. "keel.payment-events.v1" */
    int workers;
    int64_t lease_ms;
    int max_attempts;
    int poll_interval_ms; /* safety-net poll for due work; 0 = 500 */
} payments_workers_options;

typedef struct payments_workers payments_workers;

/* Starts opts->workers threads. NULL with err filled on failure. Copies the options. */
payments_workers *payments_workers_start(const payments_workers_options *opts, char *err,
                                         size_t err_len);
/* Wakes a waiting worker to look for due work now (after intake stored a payment). Thread-safe;
 * may be used as a payments_intake.on_stored callback with the workers as its argument. */
void payments_workers_notify(void *workers);
/* Asks every worker to stop once it has recorded the payment it holds, waits for all of
 * them and frees. NULL is fine. */
void payments_workers_stop(payments_workers *w);

#endif
