/* GET /v1/balance, GET /v1/balance/transactions and GET /v1/statements/{YYYY-MM-DD}: the
 * ledger's answers for the API key's merchant, fetched from keel-ledger with a timeout and a
 * circuit breaker. When the ledger is down or slow, /v1/balance answers from the gateway's
 * last-known copy with "stale": true (and that copy's as_of) instead of hanging. */
#ifndef GATEWAY_BALANCE_API_H
#define GATEWAY_BALANCE_API_H

#include "api.h"
#include "keel/config.h"
#include "keel/http_server.h"

/* The configuration rows; main.c puts them into the gateway's table. */
#define GATEWAY_BALANCE_CONFIG_SPECS                                                               \
    {"KEEL_GATEWAY_LEDGER_URL", KEEL_CONFIG_STRING, "http://127.0.0.1:18120",                      \
     "base URL of keel-ledger's internal API (balances, entries, statements)", false},             \
    {                                                                                              \
        "KEEL_GATEWAY_LEDGER_TIMEOUT_MS", KEEL_CONFIG_INT, "1000",                                 \
            "how long a call to keel-ledger may take; past it /v1/balance answers from its "       \
            "last-known copy (stale)",                                                             \
            false                                                                                  \
    }

typedef struct gateway_balance_api gateway_balance_api;

/* Reads the rows above from cfg, creates the ledger's breaker (metrics label
 * breaker="ledger") and adds the three routes, which authenticate through api. api, srv and
 * cfg must outlive the result. NULL (logged) for an unusable URL or timeout. */
gateway_balance_api *gateway_balance_api_register(gateway_api *api, keel_http_server *srv,
                                                  const keel_config *cfg);
/* After the server stopped. NULL is fine. */
void gateway_balance_api_free(gateway_balance_api *b);

#endif
