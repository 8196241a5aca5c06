/* Provider B adapter (Paystack-shaped: {"status","message","data"} envelopes, the merchant
 * reference as the idempotency key): builds its HTTP calls and maps every answer to
 * succeeded / declined / not_processed / unknown, for charges and for refunds. */
#include "provider_b.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROVIDER_B_NAME "provider_b"
#define PROVIDER_B_URL_VAR "KEEL_PAYMENTS_PROVIDER_B_URL"
#define PROVIDER_B_KEY_VAR "KEEL_PAYMENTS_PROVIDER_B_API_KEY"

/* An id as provider B writes it (a JSON integer, or its digits as a string) into dst. False
 * when it is neither. */
static bool id_text(const json_t *v, char *dst, size_t dst_len)
{
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        snprintf(dst, dst_len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return true;
    }
    if (json_is_string(v) && json_string_length(v) > 0) {
        payments_copy_str(dst, dst_len, json_string_value(v));
        return true;
    }
    return false;
}

/* Paystack's gateway_response words for a failed transaction, as keel's failure codes. */
static const char *decline_code(const char *gateway_response)
{
    if (gateway_response != NULL && strcasecmp(gateway_response, "Insufficient Funds") == 0) {
        return "insufficient_funds";
    }
    return "card_declined";
}

/* Maps one transaction object. Only "success" and "failed" with an id are definite; the
 * other words Paystack uses (pending, ongoing, processing, queued, abandoned, reversed) leave
 * the outcome unknown. */
static void map_transaction(const json_t *tx, payments_charge_outcome *out)
{
    char id[64];
    const char *status = payments_json_str(tx, "status");
    if (!json_is_object(tx) || !id_text(json_object_get(tx, "id"), id, sizeof(id)) ||
        status == NULL) {
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        payments_copy_str(out->detail, sizeof(out->detail), "transaction without id or status");
        return;
    }
    payments_copy_str(out->charge_id, sizeof(out->charge_id), id);
    if (strcmp(status, "success") == 0) {
        out->status = PAYMENTS_CHARGE_SUCCEEDED;
        snprintf(out->detail, sizeof(out->detail), "transaction %s succeeded", id);
    } else if (strcmp(status, "failed") == 0) {
        const char *gw = payments_json_str(tx, "gateway_response");
        out->status = PAYMENTS_CHARGE_DECLINED;
        payments_copy_str(out->failure_code, sizeof(out->failure_code), decline_code(gw));
        payments_copy_str(out->failure_message, sizeof(out->failure_message),
                          gw != NULL && gw[0] != '\0' ? gw : "the provider declined the charge");
        snprintf(out->detail, sizeof(out->detail), "transaction %s failed: %s", id,
                 out->failure_code);
    } else {
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "transaction %s has status \"%s\"", id, status);
    }
}

/* A refund object: "processed" moved the money back; "failed" did not; "pending",
 * "processing", "needs-attention" and anything else may still. */
static void map_refund_object(const json_t *refund, payments_charge_outcome *out)
{
    char id[64];
    const char *status = payments_json_str(refund, "status");
    if (!json_is_object(refund) || !id_text(json_object_get(refund, "id"), id, sizeof(id)) ||
        status == NULL) {
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        payments_copy_str(out->detail, sizeof(out->detail), "refund without id or status");
        return;
    }
    payments_copy_str(out->charge_id, sizeof(out->charge_id), id);
    if (strcmp(status, "processed") == 0) {
        out->status = PAYMENTS_CHARGE_SUCCEEDED;
        snprintf(out->detail, sizeof(out->detail), "refund %s processed", id);
    } else if (strcmp(status, "failed") == 0) {
        out->status = PAYMENTS_CHARGE_DECLINED;
        payments_copy_str(out->failure_code, sizeof(out->failure_code), "refund_failed");
        payments_copy_str(out->failure_message, sizeof(out->failure_message),
                          "provider_b reports the refund as failed");
        snprintf(out->detail, sizeof(out->detail), "refund %s failed", id);
    } else {
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "refund %s has status \"%s\"", id, status);
    }
}

/* The "data" of a {"status":true,...} envelope, or NULL. */
static const json_t *envelope_data(const json_t *root)
{
    return json_is_true(json_object_get(root, "status")) ? json_object_get(root, "data") : NULL;
}

/* The machine code of an error envelope {"status":false,"message","code"}, or NULL. */
static const char *error_code(const json_t *root)
{
    return root != NULL ? payments_json_str(root, "code") : NULL;
}

/* A refusal before any work: declined with the provider's code (default_code when the body
 * says none) and message. */
static void map_refusal(const keel_http_result *r, const json_t *root, const char *default_code,
                        payments_charge_outcome *out)
{
    const char *code = error_code(root);
    const char *message = root != NULL ? payments_json_str(root, "message") : NULL;
    out->status = PAYMENTS_CHARGE_DECLINED;
    payments_copy_str(out->failure_code, sizeof(out->failure_code),
                      code != NULL && code[0] != '\0' ? code : default_code);
    if (message != NULL && message[0] != '\0') {
        payments_copy_str(out->failure_message, sizeof(out->failure_message), message);
    } else {
        snprintf(out->failure_message, sizeof(out->failure_message), "provider_b answered %ld (%s)",
                 r->status, out->failure_code);
    }
    snprintf(out->detail, sizeof(out->detail), "HTTP %ld: %s", r->status, out->failure_code);
}

/* The 200 envelope around one resource, mapped by map_object; unreadable → unknown. */
static void map_ok_envelope(const keel_http_result *r, const json_t *root,
                            void (*map_object)(const json_t *, payments_charge_outcome *),
                            payments_charge_outcome *out)
{
    const json_t *data = root != NULL ? envelope_data(root) : NULL;
    if (!json_is_object(data)) {
        snprintf(out->detail, sizeof(out->detail), "HTTP 200 with %s",
                 root == NULL ? (r->body_len == 0 ? "an empty body" : "a malformed body")
                              : "no usable data");
        return;
    }
    map_object(data, out);
}

static void map_charge(const keel_http_result *r, payments_charge_outcome *out)
{
    payments_outcome_reset(out, PAYMENTS_CHARGE_UNKNOWN);
    if (payments_map_transport(r, out)) {
        return;
    }
    out->http_status = r->status;
    json_t *root = payments_json_object_body(r);
    long st = r->status;
    if (st == 200) {
        /* Paystack answers 200 both for a success and for a declined card: the transaction's
         * status decides. */
        map_ok_envelope(r, root, map_transaction, out);
    } else if (st == 400) {
        const char *code = error_code(root);
        if (code != NULL && strcmp(code, "duplicate_reference") == 0) {
            /* Our reference already names a transaction made with other parameters: money may
             * have moved under it, so only a verify can tell. */
            snprintf(out->detail, sizeof(out->detail),
                     "HTTP 400: reference already used with other parameters");
        } else {
            /* Validation before charging (invalid_params): the same request fails again. */
            map_refusal(r, root, "invalid_request", out);
            payments_copy_str(out->failure_code, sizeof(out->failure_code), "invalid_request");
        }
    } else if (!payments_map_not_processed_status(r, PROVIDER_B_NAME, PROVIDER_B_KEY_VAR, out)) {
        snprintf(out->detail, sizeof(out->detail), "HTTP %ld: undocumented answer", st);
    }
    json_decref(root);
}

static payments_lookup_status map_lookup(const keel_http_result *r, payments_charge_outcome *out)
{
    payments_outcome_reset(out, PAYMENTS_CHARGE_UNKNOWN);
    if (payments_map_transport(r, out)) {
        return PAYMENTS_LOOKUP_FAILED;
    }
    out->http_status = r->status;
    payments_lookup_status result = PAYMENTS_LOOKUP_FAILED;
    json_t *root = payments_json_object_body(r);
    const char *code = error_code(root);
    if (r->status == 200) {
        map_ok_envelope(r, root, map_transaction, out);
        result =
            out->status == PAYMENTS_CHARGE_UNKNOWN ? PAYMENTS_LOOKUP_FAILED : PAYMENTS_LOOKUP_FOUND;
    } else if (r->status == 404 && code != NULL && strcmp(code, "transaction_not_found") == 0) {
        /* Only provider B's own words count: a bare 404 may come from a wrong URL. */
        snprintf(out->detail, sizeof(out->detail), "no transaction under this reference");
        result = PAYMENTS_LOOKUP_NOT_FOUND;
    } else {
        snprintf(out->detail, sizeof(out->detail), "verify answered HTTP %ld (%s)", r->status,
                 code != NULL ? code : "no code");
    }
    json_decref(root);
    return result;
}

static void map_refund(const keel_http_result *r, payments_charge_outcome *out)
{
    payments_outcome_reset(out, PAYMENTS_CHARGE_UNKNOWN);
    if (payments_map_transport(r, out)) {
        return;
    }
    out->http_status = r->status;
    json_t *root = payments_json_object_body(r);
    const char *code = error_code(root);
    long st = r->status;
    if (st == 200) {
        map_ok_envelope(r, root, map_refund_object, out);
    } else if (st == 400 && code != NULL && strcmp(code, "idempotency_key_reused") == 0) {
        snprintf(out->detail, sizeof(out->detail),
                 "HTTP 400: refund key already used with other parameters");
    } else if (st == 400) {
        /* amount_too_large, transaction_reversed, transaction_not_refundable, invalid_params:
         * refused before refunding, and will be again. */
        map_refusal(r, root, "invalid_request", out);
    } else if (st == 404 && code != NULL && strcmp(code, "transaction_not_found") == 0) {
        map_refusal(r, root, "transaction_not_found", out);
        payments_copy_str(out->failure_code, sizeof(out->failure_code), "charge_not_found");
    } else if (!payments_map_not_processed_status(r, PROVIDER_B_NAME, PROVIDER_B_KEY_VAR, out)) {
        snprintf(out->detail, sizeof(out->detail), "HTTP %ld: undocumented answer", st);
    }
    json_decref(root);
}

static payments_lookup_status map_refund_lookup(const keel_http_result *r, const char *refund_id,
                                                payments_charge_outcome *out)
{
    payments_outcome_reset(out, PAYMENTS_CHARGE_UNKNOWN);
    if (payments_map_transport(r, out)) {
        return PAYMENTS_LOOKUP_FAILED;
    }
    out->http_status = r->status;
    payments_lookup_status result = PAYMENTS_LOOKUP_FAILED;
    json_t *root = payments_json_object_body(r);
    const char *code = error_code(root);
    const json_t *data = root != NULL ? envelope_data(root) : NULL;
    if (r->status == 404 && code != NULL && strcmp(code, "transaction_not_found") == 0) {
        /* No transaction, so no refund of it either. */
        snprintf(out->detail, sizeof(out->detail), "no transaction, so no refund");
        result = PAYMENTS_LOOKUP_NOT_FOUND;
        goto done;
    }
    if (r->status != 200 || !json_is_array(data)) {
        snprintf(out->detail, sizeof(out->detail), "refund list answered HTTP %ld%s", r->status,
                 r->status == 200 ? " without a data array" : "");
        goto done;
    }
    /* The list holds every refund of the transaction; ours is the one under our key. */
    bool seen = false;
    for (size_t i = 0; i < json_array_size(data); i++) {
        const json_t *refund = json_array_get(data, i);
        const char *key =
            json_is_object(refund) ? payments_json_str(refund, "idempotency_key") : NULL;
        if (key == NULL || strcmp(key, refund_id) != 0) {
            continue;
        }
        payments_charge_outcome one;
        payments_outcome_reset(&one, PAYMENTS_CHARGE_UNKNOWN);
        map_refund_object(refund, &one);
        one.http_status = r->status;
        if (!seen || one.status == PAYMENTS_CHARGE_SUCCEEDED) {
            *out = one;
        }
        seen = true;
    }
    if (!seen) {
        snprintf(out->detail, sizeof(out->detail), "no refund under this key");
        result = PAYMENTS_LOOKUP_NOT_FOUND;
    } else {
        result =
            out->status == PAYMENTS_CHARGE_UNKNOWN ? PAYMENTS_LOOKUP_FAILED : PAYMENTS_LOOKUP_FOUND;
    }
done:
    json_decref(root);
    return result;
}

void payments_provider_b_map_charge(const keel_http_result *r, payments_charge_outcome *out)
{
    map_charge(r, out);
    payments_outcome_sanitize(out);
}

payments_lookup_status payments_provider_b_map_lookup(const keel_http_result *r,
                                                      payments_charge_outcome *out)
{
    payments_lookup_status st = map_lookup(r, out);
    payments_outcome_sanitize(out);
    return st;
}

void payments_provider_b_map_refund(const keel_http_result *r, payments_charge_outcome *out)
{
    map_refund(r, out);
    payments_outcome_sanitize(out);
}

payments_lookup_status payments_provider_b_map_refund_lookup(const keel_http_result *r,
                                                             const char *refund_id,
                                                             payments_charge_outcome *out)
{
    payments_lookup_status st = map_refund_lookup(r, refund_id, out);
    payments_outcome_sanitize(out);
    return st;
}

/* ---- the calls ---------------------------------------------------------------------------- */

static void upper3(const char *in, char out[4])
{
    size_t i = 0;
    for (; i < 3 && in != NULL && in[i] != '\0'; i++) {
        out[i] = (char)toupper((unsigned char)in[i]);
    }
    out[i] = '\0';
}

/* {"amount","currency","email","reference","authorization_code","metadata"}; NULL when the
 * stored metadata is not a JSON object. */
static char *charge_body(const payments_charge_request *req)
{
    char *text = NULL;
    char currency[4];
    char email[160];
    json_t *metadata = payments_metadata_object(req->metadata_json);
    if (metadata == NULL) {
        goto done;
    }
    upper3(req->currency, currency);
    snprintf(email, sizeof(email), "customer+%s@%s", req->payment_id,
             PAYMENTS_PROVIDER_B_EMAIL_DOMAIN);
    json_t *body = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:O}}", "amount", (json_int_t)req->amount,
        "currency", currency, "email", email, "reference", req->payment_id, "authorization_code",
        req->payment_method != NULL ? req->payment_method : "", "metadata", "keel_merchant_id",
        req->merchant_id != NULL ? req->merchant_id : "", "description",
        req->description != NULL ? req->description : "", "custom", metadata);
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
    }
done:
    json_decref(metadata);
    return text;
}

static void provider_b_charge(payments_provider *p, const payments_charge_request *req,
                              payments_charge_outcome *out)
{
    /* The reference in the body is provider B's idempotency key; no header needed. */
    payments_http_peer_send(p->impl, "/transaction/charge", charge_body(req), NULL,
                            req->traceparent, "payment", payments_provider_b_map_charge, out);
}

static payments_lookup_status provider_b_lookup(payments_provider *p, const char *payment_id,
                                                const char *traceparent,
                                                payments_charge_outcome *out)
{
    char path[256];
    /* payment ids are "pay_" + hex (checked at intake), so they need no URL escaping. */
    snprintf(path, sizeof(path), "/transaction/verify/%s", payment_id);
    return payments_http_peer_lookup(p->impl, path, traceparent, payments_provider_b_map_lookup,
                                     out);
}

static void provider_b_refund(payments_provider *p, const payments_refund_request *req,
                              payments_charge_outcome *out)
{
    char currency[4];
    char note[160];
    upper3(req->currency, currency);
    snprintf(note, sizeof(note), "keel refund %s", req->refund_id);
    /* The transaction by our reference (the payment id), which provider B looks up first. */
    json_t *obj = json_pack("{s:s, s:I, s:s, s:s}", "transaction", req->payment_id, "amount",
                            (json_int_t)req->amount, "currency", currency, "merchant_note", note);
    char *body = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    /* Without the Idempotency-Key every POST /refund is a new refund: the key makes a repeat
     * after a timeout safe. */
    payments_http_peer_send(p->impl, "/refund", body, req->refund_id, req->traceparent, "refund",
                            payments_provider_b_map_refund, out);
}

static payments_lookup_status provider_b_refund_lookup(payments_provider *p,
                                                       const payments_refund_request *req,
                                                       payments_charge_outcome *out)
{
    const payments_http_peer *peer = p->impl;
    keel_http_result res;
    char path[256];
    snprintf(path, sizeof(path), "/refund?transaction=%s", req->payment_id);
    payments_http_peer_call(peer, "GET", path, NULL, NULL, req->traceparent, &res);
    payments_lookup_status st = payments_provider_b_map_refund_lookup(&res, req->refund_id, out);
    keel_http_result_clear(&res);
    return st;
}

payments_provider *payments_provider_b_new(const payments_provider_b_options *opts, char *err,
                                           size_t err_len)
{
    payments_provider *p = payments_http_provider_new(
        PROVIDER_B_NAME, opts->base_url, opts->api_key, opts->timeout_ms, opts->connect_timeout_ms,
        PROVIDER_B_URL_VAR, PROVIDER_B_KEY_VAR, err, err_len);
    if (p != NULL) {
        p->charge = provider_b_charge;
        p->lookup = provider_b_lookup;
        p->refund = provider_b_refund;
        p->refund_lookup = provider_b_refund_lookup;
    }
    return p;
}
