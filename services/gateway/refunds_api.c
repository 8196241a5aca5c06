/* The HTTP handlers of /v1/payments/{id}/refunds. */
#include "refunds_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/log.h"
#include "list_params.h"
#include "payment_validate.h"
#include "refund_create.h"
#include "refund_store.h"

static void handle_create(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_api *api = ctx;
    gateway_principal who;
    gateway_api_trace trace;
    const char *payment_id = keel_http_request_param(req, "id");
    keel_db *db;
    json_t *json = NULL;
    const char *key;
    gateway_refund_input input;
    gateway_validation_error verr;
    gateway_idem_result result = {0};
    gateway_refund_request rreq;
    char path[96];
    keel_result r;

    gateway_api_trace_begin(req, &trace);
    db = gateway_api_begin_post(api, req, resp, &who, &key, &json);
    if (db == NULL) {
        goto done;
    }
    /* A malformed id names no payment: the same 404 as a missing or foreign one. */
    if (payment_id == NULL || !gateway_id_valid(payment_id, "pay_")) {
        gateway_api_not_found(resp, "payment", "id");
        goto done;
    }
    if (!gateway_refund_validate(json, &input, &verr)) {
        gateway_api_error(resp, 400, verr.code, verr.message, verr.param);
        goto done;
    }
    snprintf(path, sizeof(path), "/v1/payments/%s/refunds", payment_id);
    rreq = (gateway_refund_request){
        .merchant_id = who.merchant_id,
        .payment_id = payment_id,
        .idempotency_key = key,
        .path = path,
        .params = json,
        .input = &input,
        .traceparent = trace.traceparent,
        .lease_ms = api->settings.idempotency_lease_ms,
    };
    r = gateway_refund_create(db, &gateway_api_post_tx_options, &rreq, &result);
    if (r == KEEL_OK && result.outcome == GATEWAY_IDEM_EXECUTED && result.status == 202) {
        keel_metric_inc(api->refunds_created);
    }
    gateway_api_finish_post(api, resp, r, &result, "creating a refund");
done:
    gateway_idem_result_clear(&result);
    json_decref(json);
    json = NULL;
    gateway_api_release(api, db);
    db = NULL;
    gateway_api_trace_end(&trace);
}

static void handle_list(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_api *api = ctx;
    gateway_principal who;
    const char *payment_id = keel_http_request_param(req, "id");
    const char *names[GATEWAY_LIST_MAX_PARAMS];
    const char *values[GATEWAY_LIST_MAX_PARAMS];
    size_t n = 0;
    gateway_list_params lp;
    gateway_error err;
    const char *bad_param = "id";
    char *body = NULL;
    keel_db *db;
    keel_result r = KEEL_ERR_NOT_FOUND;

    db = gateway_api_begin(api, req, resp, &who);
    if (db == NULL) {
        return;
    }
    gateway_api_query_params(req, names, values, GATEWAY_LIST_MAX_PARAMS, &n);
    if (!gateway_list_params_parse(GATEWAY_LIST_REFUNDS, names, values, n, &lp, &err)) {
        gateway_api_release(api, db);
        gateway_api_error(resp, err.status, err.code, err.message, err.param);
        return;
    }
    if (payment_id != NULL && gateway_id_valid(payment_id, "pay_")) {
        r = gateway_refund_store_list(db, who.merchant_id, payment_id, &lp, &body, &bad_param);
    }
    gateway_api_release(api, db);
    db = NULL;
    if (r == KEEL_OK) {
        gateway_api_respond_text(resp, 200, body);
    } else if (r == KEEL_ERR_NOT_FOUND) {
        gateway_api_not_found(resp, strcmp(bad_param, "id") == 0 ? "payment" : "refund", bad_param);
    } else {
        gateway_api_unavailable(resp, "the database is unavailable; retry shortly");
    }
    free(body);
    body = NULL;
}

void gateway_refunds_register(gateway_api *api, keel_http_server *srv)
{
    keel_http_server_route(srv, "POST", "/v1/payments/:id/refunds", handle_create, api);
    keel_http_server_route(srv, "GET", "/v1/payments/:id/refunds", handle_list, api);
}
