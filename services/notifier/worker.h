/* The delivery workers: claim a due delivery under a lease, check and pin the endpoint's
 * address, send the stored body signed, and record the attempt and what follows from it. */
#ifndef NOTIFIER_WORKER_H
#define NOTIFIER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/db.h"
#include "keel/ssrf.h"
#include "schedule.h"

typedef struct notifier_workers_options {
    keel_db_pool *pool;
    const char *instance_id;           /* lease owners are "<instance_id>/w<n>" */
    int workers;                       /* threads */
    int64_t lease_ms;                  /* must outlast DNS + connect + total timeouts */
    const notifier_schedule *schedule; /* borrowed; must outlive the workers */
    const keel_ssrf_allowlist *allow;  /* borrowed; may be NULL (nothing allow-listed) */
    bool allow_http;                   /* plain http:// endpoints (test stacks only) */
    int64_t dns_timeout_ms;
    long connect_timeout_ms;
    long total_timeout_ms;
    size_t max_response_bytes;
    int64_t disable_after_ms; /* an endpoint failing this long is disabled */
    int64_t poll_ms;          /* safety-net poll for due work; 0 = 1000 */
} notifier_workers_options;

typedef struct notifier_workers notifier_workers;

/* Ends the leases a previous run of this instance held (it died holding them, so nobody
 * else would take them before they expire), then starts the threads. NULL with err filled
 * on failure. Copies the options. */
notifier_workers *notifier_workers_start(const notifier_workers_options *opts, char *err,
                                         size_t err_len);
/* Wakes a waiting worker to look for due work (new deliveries were stored). Thread-safe;
 * usable as a notifier_intake.on_stored callback. */
void notifier_workers_notify(void *workers);
/* Lets each worker finish and record the delivery it holds, joins them and frees. NULL is
 * fine. */
void notifier_workers_stop(notifier_workers *w);

#endif
