/* The ledger's internal HTTP API (the gateway calls it; it is not for merchants directly):
 *   GET /v1/merchants/:merchant_id/balance
 *   GET /v1/merchants/:merchant_id/balance_transactions?limit&starting_after&ending_before&currency
 *   GET /v1/merchants/:merchant_id/statements/:date?currency */
#ifndef LEDGER_API_H
#define LEDGER_API_H

#include <stdint.h>

#include "keel/db.h"
#include "keel/http_server.h"

typedef struct ledger_api {
    keel_db_pool *pool;
    int64_t acquire_timeout_ms; /* a request waits this long for a connection, then 503 */
} ledger_api;

/* Adds the routes; api must outlive the server. */
void ledger_api_register(ledger_api *api, keel_http_server *srv);

#endif
