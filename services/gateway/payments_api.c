/* The HTTP handlers of /v1/payments: authenticate, validate, then one transaction. */
#include "payments_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "idempotency.h"
#include "keel/cloudevents.h"
#include "keel/failpoint.h"
#include "keel/log.h"
#include "payment_create.h"
#include "payment_store.h"
#include "payment_validate.h"

#define IDEMPOTENCY_HEADER "Idempotency-Key"

/* A request holds its HTTP client; retrying a failing database for long only piles up
 * connections. Three attempts within a few hundred milliseconds, then 503. */
static const keel_db_tx_options create_tx_options = {
    .isolation = KEEL_DB_READ_COMMITTED,
    .max_attempts = 3,
    .base_backoff_ms = 20,
    .cap_backoff_ms = 250,
};

void gateway_api_init(gateway_api *api, keel_db_pool *pool, int64_t acquire_timeout_ms)
{
    keel_metrics *m = keel_metrics_default();

    memset(api, 0, sizeof(*api));
    api->pool = pool;
    api->acquire_timeout_ms = acquire_timeout_ms;
    api->payments_created = keel_metrics_counter(m, "keel_gateway_payments_created_total",
                                                 "Payments created by POST /v1/payments", NULL);
    api->idempotent_replays =
        keel_metrics_counter(m, "keel_gateway_idempotent_replays_total",
                             "POST requests answered by replaying an Idempotency-Key", NULL);
}

static void respond_unavailable(keel_http_response *resp, const char *message)
{
    keel_http_respond_error(resp, 503, "api_error", "service_unavailable", message, NULL);
    keel_http_response_header(resp, "Retry-After", "1");
}

/* Authenticates the request. On success returns a pooled connection (the caller releases
 * it) and fills who; otherwise answers 401 or 503 itself and returns NULL. */
static keel_db *authenticate(gateway_api *api, const keel_http_request *req,
                             keel_http_response *resp, gateway_principal *who)
{
    const char *secret;
    size_t secret_len;
    keel_db *db;
    keel_result r;

    if (!gateway_auth_parse_bearer(keel_http_request_header(req, "Authorization"), &secret,
                                   &secret_len)) {
        gateway_auth_respond_unauthorized(resp);
        return NULL;
    }
    db = keel_db_pool_acquire(api->pool, api->acquire_timeout_ms);
    if (db == NULL) {
        respond_unavailable(resp, "no database connection became free in time; retry shortly");
        return NULL;
    }
    r = gateway_auth_lookup(db, secret, secret_len, who);
    if (r == KEEL_OK) {
        return db;
    }
    keel_db_pool_release(api->pool, db);
    if (r == KEEL_ERR_NOT_FOUND) {
        gateway_auth_respond_unauthorized(resp);
    } else {
        respond_unavailable(resp, "the database is unavailable; retry shortly");
    }
    return NULL;
}

/* Checks the Idempotency-Key header; answers 400 and returns NULL when it is not usable. */
static const char *idempotency_key(const keel_http_request *req, keel_http_response *resp)
{
    const char *key = keel_http_request_header(req, IDEMPOTENCY_HEADER);

    switch (gateway_idempotency_key_check(key)) {
    case GATEWAY_IDEM_KEY_OK:
        return key;
    case GATEWAY_IDEM_KEY_MISSING:
        keel_http_respond_error(resp, 400, "invalid_request_error", "idempotency_key_missing",
                                "POST /v1/payments needs an Idempotency-Key header: a unique "
                                "value per payment (e.g. a UUID) that you reuse on retries",
                                IDEMPOTENCY_HEADER);
        return NULL;
    case GATEWAY_IDEM_KEY_INVALID:
        break;
    }
    keel_http_respond_error(resp, 400, "invalid_request_error", "idempotency_key_invalid",
                            "the Idempotency-Key header must be 1 to 255 printable ASCII "
                            "characters",
                            IDEMPOTENCY_HEADER);
    return NULL;
}

static void respond_body(keel_http_response *resp, int status, const char *body)
{
    keel_http_respond_raw(resp, (unsigned)status, "application/json", body, strlen(body));
}

static void handle_create(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_api *api = ctx;
    gateway_principal who;
    keel_db *db = NULL;
    json_t *json = NULL;
    const char *key;
    const char *raw;
    size_t raw_len;
    char hash[GATEWAY_SHA256_HEX_LEN];
    gateway_payment_input input;
    gateway_validation_error verr;
    gateway_create_result result = {0};
    gateway_create_request creq;
    const char *traceparent = keel_http_request_header(req, "traceparent");
    char fresh_tp[KEEL_TRACEPARENT_LEN];
    bool own_trace = false;
    keel_result r;

    /* The server sets the log trace id only for a valid incoming traceparent. Without one,
     * start the trace here so this request's log lines and its PaymentRequested (and every
     * event that follows from it) share one trace id. */
    if (keel_log_trace_id() == NULL || keel_log_trace_id()[0] == '\0') {
        char trace_id[33];
        keel_traceparent_new(fresh_tp);
        keel_traceparent_trace_id(fresh_tp, trace_id);
        keel_log_set_trace_id(trace_id);
        traceparent = fresh_tp;
        own_trace = true;
    }
    db = authenticate(api, req, resp, &who);
    if (db == NULL) {
        goto done;
    }
    key = idempotency_key(req, resp);
    if (key == NULL) {
        goto done;
    }
    json = keel_http_request_json(req, resp);
    if (json == NULL) {
        goto done; /* answered 400/415 already */
    }
    if (!gateway_payment_validate(json, &input, &verr)) {
        keel_http_respond_error(resp, 400, "invalid_request_error", verr.code, verr.message,
                                verr.param);
        goto done;
    }
    raw = keel_http_request_body(req, &raw_len);
    gateway_idempotency_request_hash(keel_http_request_method(req), keel_http_request_path(req),
                                     raw, raw_len, hash);
    creq = (gateway_create_request){
        .merchant_id = who.merchant_id,
        .idempotency_key = key,
        .request_hash = hash,
        .input = &input,
        .traceparent = traceparent,
    };
    r = gateway_payment_create(db, &create_tx_options, &creq, &result);
    if (r != KEEL_OK) {
        keel_log_warn("creating a payment for %s failed (%s); answering 503", who.merchant_id,
                      keel_result_name(r));
        respond_unavailable(resp, "the database is unavailable; nothing was created, retry "
                                  "with the same Idempotency-Key");
        goto done;
    }
    /* Committed but not yet answered: a crash here must be healed by the client's retry. */
    KEEL_FAILPOINT("gateway.after_commit");
    switch (result.outcome) {
    case GATEWAY_CREATE_CREATED:
        keel_metric_inc(api->payments_created);
        respond_body(resp, result.status, result.body);
        break;
    case GATEWAY_CREATE_REPLAYED:
        keel_metric_inc(api->idempotent_replays);
        respond_body(resp, result.status, result.body);
        keel_http_response_header(resp, "Idempotent-Replayed", "true");
        break;
    case GATEWAY_CREATE_KEY_REUSED:
        keel_http_respond_error(resp, 422, "idempotency_error", "idempotency_key_reused",
                                "this Idempotency-Key was already used with a different "
                                "request body; use a new key for a new payment",
                                IDEMPOTENCY_HEADER);
        break;
    case GATEWAY_CREATE_KEY_INCOMPLETE:
        keel_http_respond_error(resp, 409, "idempotency_error", "idempotency_key_in_use",
                                "this Idempotency-Key has no recorded answer yet; retry shortly",
                                IDEMPOTENCY_HEADER);
        keel_http_response_header(resp, "Retry-After", "1");
        break;
    }
done:
    gateway_create_result_clear(&result);
    json_decref(json);
    json = NULL;
    if (db != NULL) {
        keel_db_pool_release(api->pool, db);
        db = NULL;
    }
    if (own_trace) {
        keel_log_set_trace_id(NULL);
    }
}

static void handle_get(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_api *api = ctx;
    gateway_principal who;
    const char *id = keel_http_request_param(req, "id");
    char *body = NULL;
    keel_db *db;
    keel_result r = KEEL_ERR_NOT_FOUND;

    db = authenticate(api, req, resp, &who);
    if (db == NULL) {
        return;
    }
    /* Ids are short; a long one cannot exist, so spare the database the lookup. */
    if (id != NULL && strlen(id) <= 64) {
        r = gateway_payment_store_get(db, who.merchant_id, id, &body);
    }
    keel_db_pool_release(api->pool, db);
    db = NULL;
    if (r == KEEL_OK) {
        respond_body(resp, 200, body);
    } else if (r == KEEL_ERR_NOT_FOUND) {
        keel_http_respond_error(resp, 404, "invalid_request_error", "resource_missing",
                                "no such payment for this API key's merchant", "id");
    } else {
        respond_unavailable(resp, "the database is unavailable; retry shortly");
    }
    free(body);
    body = NULL;
}

void gateway_api_register(gateway_api *api, keel_http_server *srv)
{
    keel_http_server_route(srv, "POST", "/v1/payments", handle_create, api);
    keel_http_server_route(srv, "GET", "/v1/payments/:id", handle_get, api);
}
