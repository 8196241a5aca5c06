/* The HTTP handlers of /v1/payments: POST (create, idempotent) and GET /v1/payments/:id. */
#ifndef GATEWAY_PAYMENTS_API_H
#define GATEWAY_PAYMENTS_API_H

#include <stdint.h>

#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/metrics.h"

typedef struct gateway_api {
    keel_db_pool *pool;
    int64_t acquire_timeout_ms; /* a request waits this long for a connection, then 503 */
    keel_metric *payments_created;
    keel_metric *idempotent_replays;
} gateway_api;

/* Fills api and registers its metrics in the default registry. pool stays the caller's. */
void gateway_api_init(gateway_api *api, keel_db_pool *pool, int64_t acquire_timeout_ms);
/* Adds POST /v1/payments and GET /v1/payments/:id; api must outlive the server. */
void gateway_api_register(gateway_api *api, keel_http_server *srv);

#endif
