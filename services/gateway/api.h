/* What every public-API handler of the gateway shares: the settings, the per-request preamble
 * (authentication, the key's rate limit, a database connection or a 503 when the pool is
 * saturated) and keel's one error object. Handlers in other files (payments, refunds,
 * balances, webhooks) use these so every endpoint behaves alike. */
#ifndef GATEWAY_API_H
#define GATEWAY_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "auth.h"
#include "idempotency.h"
#include "keel/cloudevents.h"
#include "keel/db.h"
#include "keel/http_server.h"
#include "keel/metrics.h"
#include "keel/ratelimit.h"

#define GATEWAY_IDEMPOTENCY_HEADER "Idempotency-Key"

/* The limits a gateway_api enforces; gateway_api_init sets these defaults, main.c may change
 * them from configuration before the server starts. */
typedef struct gateway_api_settings {
    int64_t acquire_timeout_ms;   /* a request waits this long for a connection, then 503 */
    int max_db_waiters;           /* requests allowed to wait for a connection at once */
    double rate_per_s;            /* a key's token-bucket rate unless the key sets its own */
    double burst;                 /* a key's bucket size unless the key sets its own */
    int64_t idempotency_lease_ms; /* an in-flight Idempotency-Key is recoverable after this */
} gateway_api_settings;

typedef struct gateway_api {
    keel_db_pool *pool;
    gateway_api_settings settings;
    keel_ratelimit *ratelimit;
    atomic_int db_waiters;
    keel_metric *payments_created;
    keel_metric *refunds_created;
    keel_metric *idempotent_replays;
    keel_metric *rate_limited;
    keel_metric *shed;
} gateway_api;

/* The transaction options of a POST's work: a request holds its HTTP client, and retrying a
 * failing database for long only piles up connections, so three attempts within a few
 * hundred milliseconds, then 503. */
extern const keel_db_tx_options gateway_api_post_tx_options;

/* Fills api with default settings, creates its rate limiter and registers its metrics in
 * the default registry. pool stays the caller's. Free with gateway_api_free. */
void gateway_api_init(gateway_api *api, keel_db_pool *pool, int64_t acquire_timeout_ms);
void gateway_api_free(gateway_api *api);

/* The preamble of an authenticated endpoint: checks the Bearer key (401), the key's rate
 * limit (429 with Retry-After) and takes a pooled connection (503 with Retry-After when
 * none is free in time or too many requests already wait). Adds the RateLimit-Policy and
 * RateLimit headers to resp. Returns the connection, which the caller hands back with
 * gateway_api_release, and fills who; or answers resp itself and returns NULL. */
keel_db *gateway_api_begin(gateway_api *api, const keel_http_request *req, keel_http_response *resp,
                           gateway_principal *who);
void gateway_api_release(gateway_api *api, keel_db *db);

/* gateway_api_begin for a handler that needs no database connection of its own (e.g. a
 * proxy): the connection is only used for the key lookup. Returns true when the request
 * may proceed; otherwise resp is answered. */
bool gateway_api_authenticate(gateway_api *api, const keel_http_request *req,
                              keel_http_response *resp, gateway_principal *who);

/* keel's error object {"error":{"type","code","message","param"}} with the type that belongs
 * to the status: 401 authentication_error, 429 rate_limit_error, 5xx api_error, a code
 * starting "idempotency_" idempotency_error, anything else invalid_request_error. param is
 * the field, query parameter, header or path parameter at fault, or NULL when the request
 * as a whole is. */
void gateway_api_error(keel_http_response *resp, unsigned status, const char *code,
                       const char *message, const char *param);

/* 503 service_unavailable with Retry-After: 1. */
void gateway_api_unavailable(keel_http_response *resp, const char *message);

/* 404 resource_missing for an object that does not exist or belongs to another merchant:
 * the two are indistinguishable. what names the object ("payment"), param where its id came
 * from ("id", "starting_after"). */
void gateway_api_not_found(keel_http_response *resp, const char *what, const char *param);

/* Answers a body that is already JSON text (a rendered object or a recorded answer). */
void gateway_api_respond_text(keel_http_response *resp, unsigned status, const char *body);

/* The preamble of an idempotent POST: gateway_api_begin, then the Idempotency-Key header
 * (gateway_api_idempotency_key) and the JSON body (gateway_api_body). Returns the connection
 * with *key and *body (the caller's reference) set, or NULL after answering. */
keel_db *gateway_api_begin_post(gateway_api *api, const keel_http_request *req,
                                keel_http_response *resp, gateway_principal *who, const char **key,
                                json_t **body);

/* The Idempotency-Key header of a POST, or NULL after answering 400
 * (idempotency_key_missing / idempotency_key_invalid, param "Idempotency-Key"). */
const char *gateway_api_idempotency_key(const keel_http_request *req, keel_http_response *resp);

/* The request body as a JSON object (gateway_body_parse), or NULL after answering 400/415.
 * The caller owns the reference. */
json_t *gateway_api_body(const keel_http_request *req, keel_http_response *resp);

/* Answers the result of gateway_idempotent_execute: the body with its status when executed
 * or replayed (a replay carries Idempotent-Replayed: true), 422 idempotency_key_reused naming
 * what differs, or 409 idempotency_key_in_use with Retry-After. */
void gateway_api_respond_idempotent(gateway_api *api, keel_http_response *resp,
                                    const gateway_idem_result *result);

/* Answers an idempotent POST after gateway_idempotent_execute returned r: the result when
 * r is KEEL_OK, else 503 saying nothing was done (and a log line naming what, e.g.
 * "creating a payment"). */
void gateway_api_finish_post(gateway_api *api, keel_http_response *resp, keel_result r,
                             const gateway_idem_result *result, const char *what);

/* Collects a request's query parameters for gateway_list_params_parse: at most cap of them
 * (names and values borrowed from the request); *n counts every parameter sent, so
 * n > cap tells the parser there were too many. */
void gateway_api_query_params(const keel_http_request *req, const char **names, const char **values,
                              size_t cap, size_t *n);

/* A request's trace: the incoming traceparent when the server accepted one, else a new one
 * started here (and set as the log trace id) so the request's log lines and the events it
 * causes share one trace. Call gateway_api_trace_end when done. */
typedef struct gateway_api_trace {
    const char *traceparent;
    char fresh[KEEL_TRACEPARENT_LEN];
    bool own;
} gateway_api_trace;
void gateway_api_trace_begin(const keel_http_request *req, gateway_api_trace *trace);
void gateway_api_trace_end(gateway_api_trace *trace);

#endif
