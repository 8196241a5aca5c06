/* The HTTP handlers of /v1/payments: authenticate, validate, then the store or one
 * idempotent transaction. */
#include "payments_api.h"

#include <stdlib.h>
#include <string.h>

#include "keel/failpoint.h"
#include "keel/log.h"
#include "list_params.h"
#include "payment_create.h"
#include "payment_store.h"
#include "payment_validate.h"
#include "refunds_api.h"

static void handle_create(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_api *api = ctx;
    gateway_principal who;
    gateway_api_trace trace;
    keel_db *db;
    json_t *json = NULL;
    const char *key;
    gateway_payment_input input;
    gateway_validation_error verr;
    gateway_idem_result result = {0};
    gateway_create_request creq;
    keel_result r;

    gateway_api_trace_begin(req, &trace);
    db = gateway_api_begin_post(api, req, resp, &who, &key, &json);
    if (db == NULL) {
        goto done;
    }
    /* Invalid input is refused before the key is claimed, so nothing is recorded for it and
     * the client may fix the request and send it again under the same key. */
    if (!gateway_payment_validate(json, &input, &verr)) {
        gateway_api_error(resp, 400, verr.code, verr.message, verr.param);
        goto done;
    }
    creq = (gateway_create_request){
        .merchant_id = who.merchant_id,
        .idempotency_key = key,
        .params = json,
        .input = &input,
        .traceparent = trace.traceparent,
        .lease_ms = api->settings.idempotency_lease_ms,
    };
    r = gateway_payment_create(db, &gateway_api_post_tx_options, &creq, &result);
    /* Committed but not yet answered: a crash here must be healed by the client's retry. */
    KEEL_FAILPOINT("gateway.after_commit");
    if (r == KEEL_OK && result.outcome == GATEWAY_IDEM_EXECUTED) {
        keel_metric_inc(api->payments_created);
    }
    gateway_api_finish_post(api, resp, r, &result, "creating a payment");
done:
    gateway_idem_result_clear(&result);
    json_decref(json);
    json = NULL;
    gateway_api_release(api, db);
    db = NULL;
    gateway_api_trace_end(&trace);
}

static void handle_get(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_api *api = ctx;
    gateway_principal who;
    const char *id = keel_http_request_param(req, "id");
    char *body = NULL;
    keel_db *db;
    keel_result r = KEEL_ERR_NOT_FOUND;

    db = gateway_api_begin(api, req, resp, &who);
    if (db == NULL) {
        return;
    }
    /* An id that is not keel's format cannot exist: spare the database the lookup. */
    if (id != NULL && gateway_id_valid(id, "pay_")) {
        r = gateway_payment_store_get(db, who.merchant_id, id, &body);
    }
    gateway_api_release(api, db);
    db = NULL;
    if (r == KEEL_OK) {
        gateway_api_respond_text(resp, 200, body);
    } else if (r == KEEL_ERR_NOT_FOUND) {
        gateway_api_not_found(resp, "payment", "id");
    } else {
        gateway_api_unavailable(resp, "the database is unavailable; retry shortly");
    }
    free(body);
    body = NULL;
}

static void handle_list(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_api *api = ctx;
    gateway_principal who;
    const char *names[GATEWAY_LIST_MAX_PARAMS];
    const char *values[GATEWAY_LIST_MAX_PARAMS];
    size_t n = 0;
    gateway_list_params lp;
    gateway_error err;
    const char *bad_param = NULL;
    char *body = NULL;
    keel_db *db;
    keel_result r;

    db = gateway_api_begin(api, req, resp, &who);
    if (db == NULL) {
        return;
    }
    gateway_api_query_params(req, names, values, GATEWAY_LIST_MAX_PARAMS, &n);
    if (!gateway_list_params_parse(GATEWAY_LIST_PAYMENTS, names, values, n, &lp, &err)) {
        gateway_api_release(api, db);
        gateway_api_error(resp, err.status, err.code, err.message, err.param);
        return;
    }
    r = gateway_payment_store_list(db, who.merchant_id, &lp, &body, &bad_param);
    gateway_api_release(api, db);
    db = NULL;
    if (r == KEEL_OK) {
        gateway_api_respond_text(resp, 200, body);
    } else if (r == KEEL_ERR_NOT_FOUND) {
        gateway_api_not_found(resp, "payment", bad_param);
    } else {
        gateway_api_unavailable(resp, "the database is unavailable; retry shortly");
    }
    free(body);
    body = NULL;
}

void gateway_api_register(gateway_api *api, keel_http_server *srv)
{
    keel_http_server_route(srv, "POST", "/v1/payments", handle_create, api);
    keel_http_server_route(srv, "GET", "/v1/payments", handle_list, api);
    keel_http_server_route(srv, "GET", "/v1/payments/:id", handle_get, api);
    gateway_refunds_register(api, srv);
}
