/* Provider A adapter: builds its HTTP calls and maps every answer to succeeded / declined /
 * not_processed / unknown, for charges and for refunds. */
#include "provider_a.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROVIDER_A_NAME "provider_a"
#define PROVIDER_A_URL_VAR "KEEL_PAYMENTS_PROVIDER_URL"
#define PROVIDER_A_KEY_VAR "KEEL_PAYMENTS_PROVIDER_API_KEY"

/* Maps one resource object (a charge or a refund) to an outcome. */
typedef void (*object_mapper)(const json_t *obj, payments_charge_outcome *out);

/* Maps one charge object (as in a 200 answer or a lookup's data[]) to an outcome. A charge we
 * cannot read, or one still pending, stays UNKNOWN: only the words "succeeded" and "failed"
 * with an id are definite. */
static void map_charge_object(const json_t *charge, payments_charge_outcome *out)
{
    const char *id = payments_json_str(charge, "id");
    const char *status = payments_json_str(charge, "status");
    if (id == NULL || id[0] == '\0' || status == NULL) {
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        payments_copy_str(out->detail, sizeof(out->detail), "charge object without id or status");
        return;
    }
    payments_copy_str(out->charge_id, sizeof(out->charge_id), id);
    if (strcmp(status, "succeeded") == 0) {
        out->status = PAYMENTS_CHARGE_SUCCEEDED;
        snprintf(out->detail, sizeof(out->detail), "charge %s succeeded", id);
    } else if (strcmp(status, "failed") == 0) {
        const char *code = payments_json_str(charge, "failure_code");
        const char *message = payments_json_str(charge, "failure_message");
        out->status = PAYMENTS_CHARGE_DECLINED;
        payments_copy_str(out->failure_code, sizeof(out->failure_code),
                          code != NULL && code[0] != '\0' ? code : "card_declined");
        payments_copy_str(out->failure_message, sizeof(out->failure_message),
                          message != NULL ? message : "the provider declined the charge");
        snprintf(out->detail, sizeof(out->detail), "charge %s failed: %s", id, out->failure_code);
    } else {
        /* "pending" or a word we do not know: the money may still move. */
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "charge %s has status \"%s\"", id, status);
    }
}

/* A refund object: "succeeded" moved the money back; "failed" and "canceled" did not (and
 * will not); "pending" and anything else may still. */
static void map_refund_object(const json_t *refund, payments_charge_outcome *out)
{
    const char *id = payments_json_str(refund, "id");
    const char *status = payments_json_str(refund, "status");
    if (id == NULL || id[0] == '\0' || status == NULL) {
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        payments_copy_str(out->detail, sizeof(out->detail), "refund object without id or status");
        return;
    }
    payments_copy_str(out->charge_id, sizeof(out->charge_id), id);
    if (strcmp(status, "succeeded") == 0) {
        out->status = PAYMENTS_CHARGE_SUCCEEDED;
        snprintf(out->detail, sizeof(out->detail), "refund %s succeeded", id);
    } else if (strcmp(status, "failed") == 0 || strcmp(status, "canceled") == 0) {
        const char *reason = payments_json_str(refund, "failure_reason");
        out->status = PAYMENTS_CHARGE_DECLINED;
        payments_copy_str(out->failure_code, sizeof(out->failure_code),
                          reason != NULL && reason[0] != '\0' ? reason : "refund_failed");
        snprintf(out->failure_message, sizeof(out->failure_message),
                 "provider_a reports the refund as %s", status);
        snprintf(out->detail, sizeof(out->detail), "refund %s %s: %s", id, status,
                 out->failure_code);
    } else {
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "refund %s has status \"%s\"", id, status);
    }
}

/* A 4xx error body: {"error":{"type":..,"code":..,"message":..,"charge":..}}. The status code
 * alone is definite, so an unreadable body still gives a decline, with default_code. */
static void map_error_body(const keel_http_result *r, const char *default_code,
                           payments_charge_outcome *out)
{
    json_t *root = payments_json_object_body(r);
    const json_t *err = root != NULL ? json_object_get(root, "error") : NULL;
    const char *code = json_is_object(err) ? payments_json_str(err, "code") : NULL;
    /* Stripe-style card errors say "card_declined" in code and the reason in decline_code; the
     * specific reason ("insufficient_funds") is what the charge's failure_code says too, so a
     * later lookup and this answer name the failure alike. */
    const char *decline = json_is_object(err) ? payments_json_str(err, "decline_code") : NULL;
    if (decline != NULL && decline[0] != '\0' && strcmp(decline, "generic_decline") != 0) {
        code = decline;
    }
    const char *message = json_is_object(err) ? payments_json_str(err, "message") : NULL;
    const char *charge = json_is_object(err) ? payments_json_str(err, "charge") : NULL;

    out->status = PAYMENTS_CHARGE_DECLINED;
    payments_copy_str(out->failure_code, sizeof(out->failure_code),
                      code != NULL && code[0] != '\0' ? code : default_code);
    if (message != NULL && message[0] != '\0') {
        payments_copy_str(out->failure_message, sizeof(out->failure_message), message);
    } else {
        snprintf(out->failure_message, sizeof(out->failure_message), "provider_a answered %ld (%s)",
                 r->status, out->failure_code);
    }
    payments_copy_str(out->charge_id, sizeof(out->charge_id), charge);
    snprintf(out->detail, sizeof(out->detail), "HTTP %ld: %s", r->status, out->failure_code);
    json_decref(root);
}

/* The error's type and code, e.g. to tell an idempotency conflict from a validation error. */
static bool error_is(const keel_http_result *r, const char *field, const char *value)
{
    json_t *root = payments_json_object_body(r);
    const json_t *err = root != NULL ? json_object_get(root, "error") : NULL;
    const char *got = json_is_object(err) ? payments_json_str(err, field) : NULL;
    bool is = got != NULL && strcmp(got, value) == 0;
    json_decref(root);
    return is;
}

/* What every A mapping of a charge or refund starts with: transport failures, and a 200
 * carrying one object (mapped by map_object; an unreadable 200 may well be money that moved,
 * so it stays unknown). True when it decided. */
static bool map_answer_start(const keel_http_result *r, object_mapper map_object,
                             payments_charge_outcome *out)
{
    payments_outcome_reset(out, PAYMENTS_CHARGE_UNKNOWN);
    if (payments_map_transport(r, out)) {
        return true;
    }
    out->http_status = r->status;
    if (r->status != 200) {
        return false;
    }
    json_t *root = payments_json_object_body(r);
    if (root == NULL) {
        snprintf(out->detail, sizeof(out->detail), "HTTP 200 with %s body",
                 r->body_len == 0 ? "an empty" : "a malformed");
        return true;
    }
    map_object(root, out);
    json_decref(root);
    return true;
}

static void map_charge(const keel_http_result *r, payments_charge_outcome *out)
{
    if (map_answer_start(r, map_charge_object, out)) {
        return;
    }
    long st = r->status;
    if (st == 402) {
        map_error_body(r, "card_declined", out);
        return;
    }
    if (st == 400 && error_is(r, "type", "idempotency_error")) {
        /* Our key already names a charge made with other parameters: money may have moved
         * under it, so only a lookup can tell. */
        snprintf(out->detail, sizeof(out->detail),
                 "HTTP 400: idempotency key already used with other parameters");
        return;
    }
    if (st == 400) {
        /* The provider refused the request as invalid before charging; the same request under
         * the same key will be refused again, so this is final. */
        map_error_body(r, "invalid_request", out);
        payments_copy_str(out->failure_code, sizeof(out->failure_code), "invalid_request");
        return;
    }
    if (payments_map_not_processed_status(r, PROVIDER_A_NAME, PROVIDER_A_KEY_VAR, out)) {
        return;
    }
    /* 409 (a concurrent request under the same key is in flight), 404 from a wrong base URL,
     * 504, redirects, anything undocumented: we cannot know, so we do not guess. */
    snprintf(out->detail, sizeof(out->detail), "HTTP %ld: undocumented answer", st);
}

static void map_refund(const keel_http_result *r, payments_charge_outcome *out)
{
    if (map_answer_start(r, map_refund_object, out)) {
        return;
    }
    long st = r->status;
    if (st == 400 && error_is(r, "type", "idempotency_error")) {
        snprintf(out->detail, sizeof(out->detail),
                 "HTTP 400: refund key already used with other parameters");
        return;
    }
    if (st == 400) {
        /* amount_too_large, charge_already_refunded, charge_not_refundable, validation: the
         * provider refused before refunding, and will again. */
        map_error_body(r, "invalid_request", out);
        payments_copy_str(out->charge_id, sizeof(out->charge_id), "");
        return;
    }
    if (st == 404 && error_is(r, "code", "resource_missing")) {
        map_error_body(r, "resource_missing", out);
        payments_copy_str(out->failure_code, sizeof(out->failure_code), "charge_not_found");
        payments_copy_str(out->charge_id, sizeof(out->charge_id), "");
        return;
    }
    if (payments_map_not_processed_status(r, PROVIDER_A_NAME, PROVIDER_A_KEY_VAR, out)) {
        return;
    }
    snprintf(out->detail, sizeof(out->detail), "HTTP %ld: undocumented answer", st);
}

/* A list answer {"data":[...]} of the resources made under one idempotency key. */
static payments_lookup_status map_list(const keel_http_result *r, object_mapper map_object,
                                       payments_charge_outcome *out)
{
    payments_outcome_reset(out, PAYMENTS_CHARGE_UNKNOWN);
    if (payments_map_transport(r, out)) {
        return PAYMENTS_LOOKUP_FAILED;
    }
    out->http_status = r->status;
    if (r->status != 200) {
        snprintf(out->detail, sizeof(out->detail), "lookup answered HTTP %ld", r->status);
        return PAYMENTS_LOOKUP_FAILED;
    }
    payments_lookup_status result = PAYMENTS_LOOKUP_FAILED;
    json_t *root = payments_json_object_body(r);
    const json_t *data = root != NULL ? json_object_get(root, "data") : NULL;
    if (!json_is_array(data)) {
        snprintf(out->detail, sizeof(out->detail), "lookup answer without a data array");
        goto done;
    }
    if (json_array_size(data) == 0) {
        snprintf(out->detail, sizeof(out->detail), "nothing under this idempotency key");
        result = PAYMENTS_LOOKUP_NOT_FOUND;
        goto done;
    }
    /* One key names one resource; should a provider ever list more, a success among them wins
     * because that money moved. */
    payments_charge_outcome best;
    payments_outcome_reset(&best, PAYMENTS_CHARGE_UNKNOWN);
    snprintf(best.detail, sizeof(best.detail), "nothing readable in the lookup answer");
    for (size_t i = 0; i < json_array_size(data); i++) {
        const json_t *obj = json_array_get(data, i);
        payments_charge_outcome one;
        payments_outcome_reset(&one, PAYMENTS_CHARGE_UNKNOWN);
        if (!json_is_object(obj)) {
            continue;
        }
        map_object(obj, &one);
        if (one.status == PAYMENTS_CHARGE_SUCCEEDED) {
            best = one;
            break;
        }
        if (one.status == PAYMENTS_CHARGE_DECLINED && best.status != PAYMENTS_CHARGE_DECLINED) {
            best = one;
        } else if (one.status == PAYMENTS_CHARGE_UNKNOWN &&
                   best.status != PAYMENTS_CHARGE_DECLINED) {
            best = one;
        }
    }
    best.http_status = r->status;
    *out = best;
    /* A pending or unreadable resource leaves us where we were: not knowing. */
    result =
        best.status == PAYMENTS_CHARGE_UNKNOWN ? PAYMENTS_LOOKUP_FAILED : PAYMENTS_LOOKUP_FOUND;
done:
    json_decref(root);
    return result;
}

void payments_provider_a_map_charge(const keel_http_result *r, payments_charge_outcome *out)
{
    map_charge(r, out);
    payments_outcome_sanitize(out);
}

payments_lookup_status payments_provider_a_map_lookup(const keel_http_result *r,
                                                      payments_charge_outcome *out)
{
    payments_lookup_status st = map_list(r, map_charge_object, out);
    payments_outcome_sanitize(out);
    return st;
}

void payments_provider_a_map_refund(const keel_http_result *r, payments_charge_outcome *out)
{
    map_refund(r, out);
    payments_outcome_sanitize(out);
}

payments_lookup_status payments_provider_a_map_refund_lookup(const keel_http_result *r,
                                                             payments_charge_outcome *out)
{
    payments_lookup_status st = map_list(r, map_refund_object, out);
    payments_outcome_sanitize(out);
    return st;
}

/* ---- the calls ---------------------------------------------------------------------------- */

/* Builds {"amount","currency","source","description","metadata"}. NULL when the stored
 * metadata is not a JSON object (which intake never writes). */
static char *charge_body(const payments_charge_request *req)
{
    char *text = NULL;
    json_t *metadata = payments_metadata_object(req->metadata_json);
    if (metadata == NULL) {
        goto done;
    }
    json_t *body = json_pack(
        "{s:I, s:s, s:s, s:s, s:O}", "amount", (json_int_t)req->amount, "currency", req->currency,
        "source", req->payment_method != NULL ? req->payment_method : "", "description",
        req->description != NULL ? req->description : "", "metadata", metadata);
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
    }
done:
    json_decref(metadata);
    return text;
}

static void provider_a_charge(payments_provider *p, const payments_charge_request *req,
                              payments_charge_outcome *out)
{
    payments_http_peer_send(p->impl, "/v1/charges", charge_body(req), req->payment_id,
                            req->traceparent, "payment", payments_provider_a_map_charge, out);
}

static payments_lookup_status provider_a_lookup(payments_provider *p, const char *payment_id,
                                                const char *traceparent,
                                                payments_charge_outcome *out)
{
    char path[256];
    /* payment ids are "pay_" + hex (checked at intake), so they need no URL escaping. */
    snprintf(path, sizeof(path), "/v1/charges?idempotency_key=%s", payment_id);
    return payments_http_peer_lookup(p->impl, path, traceparent, payments_provider_a_map_lookup,
                                     out);
}

static void provider_a_refund(payments_provider *p, const payments_refund_request *req,
                              payments_charge_outcome *out)
{
    char *body = NULL;
    /* Without the charge's id there is nothing to refund at provider A: body stays NULL, a
     * final refusal. */
    if (req->charge_id != NULL && req->charge_id[0] != '\0') {
        json_t *obj = json_pack("{s:s, s:I, s:{s:s, s:s}}", "charge", req->charge_id, "amount",
                                (json_int_t)req->amount, "metadata", "keel_refund_id",
                                req->refund_id, "keel_payment_id", req->payment_id);
        body = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
        json_decref(obj);
    }
    payments_http_peer_send(p->impl, "/v1/refunds", body, req->refund_id, req->traceparent,
                            "refund", payments_provider_a_map_refund, out);
}

static payments_lookup_status provider_a_refund_lookup(payments_provider *p,
                                                       const payments_refund_request *req,
                                                       payments_charge_outcome *out)
{
    char path[256];
    /* refund ids are "re_" + hex (checked at intake). */
    snprintf(path, sizeof(path), "/v1/refunds?idempotency_key=%s", req->refund_id);
    return payments_http_peer_lookup(p->impl, path, req->traceparent,
                                     payments_provider_a_map_refund_lookup, out);
}

payments_provider *payments_provider_a_new(const payments_provider_a_options *opts, char *err,
                                           size_t err_len)
{
    payments_provider *p = payments_http_provider_new(
        PROVIDER_A_NAME, opts->base_url, opts->api_key, opts->timeout_ms, opts->connect_timeout_ms,
        PROVIDER_A_URL_VAR, PROVIDER_A_KEY_VAR, err, err_len);
    if (p != NULL) {
        p->charge = provider_a_charge;
        p->lookup = provider_a_lookup;
        p->refund = provider_a_refund;
        p->refund_lookup = provider_a_refund_lookup;
    }
    return p;
}
