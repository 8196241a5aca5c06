/* A background thread that samples the delivery queue into gauges (depth, oldest pending age,
 * dead deliveries) and prunes finished deliveries, orphaned events and old inbox rows. */
#ifndef NOTIFIER_HOUSEKEEPING_H
#define NOTIFIER_HOUSEKEEPING_H

#include <stddef.h>
#include <stdint.h>

#include "keel/db.h"

typedef struct notifier_housekeeping_options {
    keel_db_pool *pool;
    int64_t sample_ms;         /* gauges refresh this often */
    int64_t prune_ms;          /* pruning runs this often */
    int64_t keep_succeeded_ms; /* succeeded deliveries are kept this long */
    int64_t keep_dead_ms;      /* dead deliveries are kept this long (for replay) */
    int64_t keep_inbox_ms;     /* inbox rows: longer than the topic's retention */
} notifier_housekeeping_options;

typedef struct notifier_housekeeping notifier_housekeeping;

/* Registers the gauges and starts the thread. NULL with err filled on failure. */
notifier_housekeeping *notifier_housekeeping_start(const notifier_housekeeping_options *opts,
                                                   char *err, size_t err_len);
/* Stops the thread (it checks the shutdown flag) and frees. NULL is fine. */
void notifier_housekeeping_stop(notifier_housekeeping *h);

#endif
