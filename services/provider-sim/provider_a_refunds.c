/* Provider A's refunds (Stripe-shaped): POST /v1/refunds with an Idempotency-Key, retrieval
 * and lookup by key or charge, refused when more than charged minus refunded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider_a.h"

/* --- pure logic ------------------------------------------------------------------- */

static bool provider_a_refund_reason_valid(const char *reason)
{
    return strcmp(reason, "duplicate") == 0 || strcmp(reason, "fraudulent") == 0 ||
           strcmp(reason, "requested_by_customer") == 0;
}

int provider_a_parse_refund(const json_t *body, provider_a_refund_params *out,
                            provider_a_error *err)
{
    static const char *const known[] = {"charge", "amount", "reason", "metadata", NULL};
    memset(out, 0, sizeof(*out));
    if (provider_a_check_params(body, known, err) != 0)
        return -1;
    const json_t *charge = json_object_get(body, "charge");
    if (charge == NULL)
        return provider_a_reject(err, "parameter_missing", "charge",
                                 "Missing required param: charge (the id of the charge to "
                                 "refund, ch_...)");
    if (!json_is_string(charge) || json_string_length(charge) == 0 ||
        json_string_length(charge) > 255)
        return provider_a_reject(err, "parameter_invalid", "charge",
                                 "charge must be a charge id such as ch_...");
    out->charge = json_string_value(charge);

    const json_t *amount = json_object_get(body, "amount");
    if (amount != NULL && !json_is_null(amount) &&
        provider_a_parse_amount(amount, &out->amount, err) != 0)
        return -1;

    const json_t *reason = json_object_get(body, "reason");
    if (reason != NULL && !json_is_null(reason)) {
        if (!json_is_string(reason) || !provider_a_refund_reason_valid(json_string_value(reason)))
            return provider_a_reject(err, "parameter_invalid", "reason",
                                     "reason must be duplicate, fraudulent, "
                                     "requested_by_customer, or null");
        out->reason = json_string_value(reason);
    }

    const json_t *metadata = json_object_get(body, "metadata");
    if (metadata != NULL && !json_is_null(metadata)) {
        if (provider_a_parse_metadata(metadata, err) != 0)
            return -1;
        if (json_object_size(metadata) > 0)
            out->metadata = metadata;
    }
    return 0;
}

/* {"reason":..,"metadata":{..}}: what the refund render needs besides the state's fields. */
static json_t *provider_a_refund_attrs(const provider_a_refund_params *p)
{
    json_t *md = p->metadata != NULL ? json_deep_copy(p->metadata) : json_object();
    return json_pack("{s:s?, s:o}", "reason", p->reason, "metadata", md);
}

char *provider_a_refund_fingerprint(const provider_a_refund_params *p)
{
    json_t *doc = provider_a_refund_attrs(p);
    if (doc == NULL)
        return NULL;
    char *text = NULL;
    if (json_object_set_new(doc, "charge", json_string(p->charge)) == 0 &&
        json_object_set_new(doc, "amount", json_integer((json_int_t)p->amount)) == 0)
        text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

int provider_a_refund_render(const sim_refund *r, json_t **object, unsigned *status, char **body,
                             void *ctx)
{
    (void)ctx;
    const json_t *md = json_object_get(r->attrs, "metadata");
    json_t *obj = json_pack(
        "{s:s, s:s, s:I, s:s, s:s, s:s, s:s?, s:o, s:s?, s:I}", "id", r->id, "object", "refund",
        "amount", (json_int_t)r->amount, "charge", r->charge->id, "currency", r->charge->currency,
        "status", "succeeded", "reason", json_string_value(json_object_get(r->attrs, "reason")),
        "metadata", md != NULL ? json_deep_copy(md) : json_object(), "idempotency_key",
        r->idempotency_key, "created", (json_int_t)r->created);
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text == NULL) {
        json_decref(obj);
        return -1;
    }
    *object = obj;
    *status = 200;
    *body = text;
    return 0;
}

/* --- HTTP ----------------------------------------------------------------------- */

/* Answers a refused refund in Stripe's words. */
static void provider_a_refund_refused(sim_api *api, keel_http_response *resp, sim_refund_result r,
                                      const sim_refund_request *req, const sim_response *out)
{
    char msg[512];
    switch (r) {
    case SIM_REFUND_NO_CHARGE:
        snprintf(msg, sizeof(msg), "No such charge: '%.64s'", req->charge_ref);
        keel_http_respond_error(resp, 404, "invalid_request_error", "resource_missing", msg,
                                "charge");
        break;
    case SIM_REFUND_NOT_REFUNDABLE:
        snprintf(msg, sizeof(msg), "Charge %s failed (it was declined), so it cannot be refunded.",
                 out->charge_id);
        keel_http_respond_error(resp, 400, "invalid_request_error", "charge_not_refundable", msg,
                                "charge");
        break;
    case SIM_REFUND_ALREADY_REFUNDED:
        snprintf(msg, sizeof(msg), "Charge %s has already been refunded.", out->charge_id);
        keel_http_respond_error(resp, 400, "invalid_request_error", "charge_already_refunded", msg,
                                "charge");
        break;
    case SIM_REFUND_AMOUNT_TOO_LARGE:
        snprintf(msg, sizeof(msg),
                 "Refund amount (%lld) is greater than unrefunded amount on charge (%lld)",
                 (long long)req->amount, (long long)out->remaining);
        keel_http_respond_error(resp, 400, "invalid_request_error", "amount_too_large", msg,
                                "amount");
        break;
    case SIM_REFUND_CONFLICT:
        snprintf(msg, sizeof(msg),
                 "Keys for idempotent requests can only be used with the same parameters they "
                 "were first used with (refund %s). Use a new key for a different refund.",
                 out->refund_id);
        keel_http_respond_error(resp, 400, "idempotency_error", "idempotency_key_reused", msg,
                                NULL);
        sim_api_count(api, "conflict");
        return;
    default:
        sim_api_not_recorded(api, resp, r == SIM_REFUND_LOG_FULL, "refund");
        return;
    }
    sim_api_count(api, "refund_rejected");
}

static void provider_a_refund_create(const keel_http_request *req, keel_http_response *resp,
                                     void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    const char *key = NULL;
    json_t *attrs = NULL;
    char *fingerprint = NULL;
    json_t *body = provider_a_begin(api, req, resp, &d, &key);
    if (body == NULL)
        goto done;
    provider_a_refund_params params;
    provider_a_error perr;
    if (provider_a_parse_refund(body, &params, &perr) != 0) {
        provider_a_invalid(api, resp, 400, perr.code, perr.message, perr.param);
        goto done;
    }
    fingerprint = provider_a_refund_fingerprint(&params);
    attrs = provider_a_refund_attrs(&params);
    if (fingerprint == NULL || attrs == NULL) {
        sim_api_out_of_memory(api, resp);
        goto done;
    }
    sim_refund_request rreq = {
        .idempotency_key = key,
        .fingerprint = fingerprint,
        .charge_ref = params.charge,
        .ref_may_be_key = false,
        .id_prefix = "re_",
        .amount = params.amount,
        .attrs = attrs,
    };
    sim_api_refund(api, resp, &d, &rreq, provider_a_refund_render, provider_a_refund_refused);
done:
    free(fingerprint);
    fingerprint = NULL;
    json_decref(attrs);
    json_decref(body);
}

static void provider_a_refund_retrieve(const keel_http_request *req, keel_http_response *resp,
                                       void *ctx)
{
    provider_a_retrieve_by_id(req, resp, ctx, "refund", sim_provider_refund_by_id);
}

static void provider_a_refund_list(const keel_http_request *req, keel_http_response *resp,
                                   void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    if (!sim_api_prologue(api, req, resp, &d))
        return;
    const char *key = keel_http_request_query(req, "idempotency_key");
    const char *charge = keel_http_request_query(req, "charge");
    json_t *data = NULL;
    bool has_more = false;
    if (key != NULL) {
        data = provider_a_list_of(sim_provider_refund_by_key(api->provider, key));
    } else {
        size_t limit;
        bool found;
        if (!provider_a_list_limit(api, req, resp, &limit))
            return;
        data = sim_provider_refunds_list(api->provider, charge, false, limit, &found, &has_more);
        if (data != NULL && !found) {
            json_decref(data);
            char msg[128];
            snprintf(msg, sizeof(msg), "No such charge: '%.64s'", charge);
            keel_http_respond_error(resp, 404, "invalid_request_error", "resource_missing", msg,
                                    "charge");
            sim_api_count(api, "not_found");
            return;
        }
    }
    provider_a_respond_list(api, resp, data, has_more, "/v1/refunds");
}

void provider_a_refund_routes(keel_http_server *srv, sim_api *api)
{
    keel_http_server_route(srv, "POST", "/v1/refunds", provider_a_refund_create, api);
    keel_http_server_route(srv, "GET", "/v1/refunds", provider_a_refund_list, api);
    keel_http_server_route(srv, "GET", "/v1/refunds/:id", provider_a_refund_retrieve, api);
}
