/* POST/GET /v1/webhook_endpoints, GET/DELETE /v1/webhook_endpoints/{id} and
 * POST /v1/webhook_endpoints/{id}/rotate_secret: authenticated here, then proxied to
 * keel-notifier's internal API (which owns endpoints and their signing secrets) with the
 * merchant in the path and the shared internal token. Answers pass through unchanged and
 * are never logged: create and rotate answers carry a secret. */
#ifndef GATEWAY_WEBHOOKS_API_H
#define GATEWAY_WEBHOOKS_API_H

#include <stdbool.h>

#include "api.h"
#include "keel/config.h"
#include "keel/http_server.h"

/* The configuration rows; main.c puts them into the gateway's table. */
#define GATEWAY_WEBHOOKS_CONFIG_SPECS                                                              \
    {"KEEL_GATEWAY_NOTIFIER_URL", KEEL_CONFIG_STRING, "http://127.0.0.1:18130",                    \
     "base URL of keel-notifier's internal API (webhook endpoints)", false},                       \
        {"KEEL_GATEWAY_NOTIFIER_TIMEOUT_MS", KEEL_CONFIG_INT, "5000",                              \
         "how long a call to keel-notifier may take (it resolves the endpoint's host)", false},    \
    {                                                                                              \
        "KEEL_NOTIFIER_INTERNAL_TOKEN", KEEL_CONFIG_STRING, "",                                    \
            "token for keel-notifier's internal API (or KEEL_NOTIFIER_INTERNAL_TOKEN_FILE, the "   \
            "file keel-notifier reads); empty = the webhook endpoints answer 503",                 \
            true                                                                                   \
    }

/* Reads the rows above from cfg and adds the five routes, which authenticate through api.
 * api, srv and cfg must outlive the server; the state lives in static storage (one gateway
 * per process). False (logged) for an unusable URL or timeout. */
bool gateway_webhooks_api_register(gateway_api *api, keel_http_server *srv, const keel_config *cfg);

#endif
