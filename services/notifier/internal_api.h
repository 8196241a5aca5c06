/* keel-notifier's internal HTTP API, called only by keel-gateway (which authenticates the
 * merchant): webhook endpoints under /internal/v1/merchants/:merchant/webhook_endpoints.
 * Every call carries "Authorization: Bearer <KEEL_NOTIFIER_INTERNAL_TOKEN>". */
#ifndef NOTIFIER_INTERNAL_API_H
#define NOTIFIER_INTERNAL_API_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/ssrf.h"

#define NOTIFIER_MAX_EVENTS_PER_ENDPOINT 16
#define NOTIFIER_DESCRIPTION_MAX 500
#define NOTIFIER_DEFAULT_OVERLAP_S (24 * 3600)
#define NOTIFIER_MAX_OVERLAP_S (7 * 24 * 3600)

typedef struct notifier_api {
    keel_db_pool *pool;
    int64_t acquire_timeout_ms;
    const char *token;                /* borrowed; the shared internal token */
    const keel_ssrf_allowlist *allow; /* borrowed; may be NULL */
    bool allow_http;
    int64_t dns_timeout_ms;
    int max_endpoints; /* per merchant */
} notifier_api;

/* Adds the routes; api (and what it points to) must outlive the server. */
void notifier_api_register(notifier_api *api, keel_http_server *srv);

/* Constant-time check of an Authorization header against "Bearer <token>". */
bool notifier_api_token_ok(const char *header, const char *token);

#endif
