/* The job that deletes Idempotency-Keys past their 24 hours, so the table stays bounded. */
#ifndef GATEWAY_IDEMPOTENCY_PRUNER_H
#define GATEWAY_IDEMPOTENCY_PRUNER_H

#include <stddef.h>
#include <stdint.h>

typedef struct gateway_pruner gateway_pruner;

/* Starts a thread with its own connection that prunes every interval_ms (and once at
 * start) in batches, until keel_shutdown_request. Several gateway instances may all run
 * it: deletes of the same rows simply find nothing. Returns NULL with a reason in err. */
gateway_pruner *gateway_pruner_start(const char *conninfo, const char *password,
                                     int64_t interval_ms, char *err, size_t err_len);

/* Waits for the thread (call after keel_shutdown_request) and frees. NULL is fine. */
void gateway_pruner_stop(gateway_pruner *p);

#endif
