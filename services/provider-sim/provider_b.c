/* Provider B's HTTP API (Paystack-shaped transactions and refunds) on the sandbox state. */
#include "provider_b.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel/log.h"

/* --- pure logic ------------------------------------------------------------------- */

static int provider_b_reject(provider_b_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int provider_b_reject(provider_b_error *err, const char *code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* An amount: a JSON integer or a string of digits (Paystack takes both), 1..max. Returns 0,
 * or -1 and fills err. */
static int provider_b_parse_amount(const json_t *v, int64_t *out, provider_b_error *err)
{
    int64_t amount = -1;
    if (json_is_integer(v)) {
        amount = (int64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *text = json_string_value(v);
        size_t len = json_string_length(v);
        if (len > 0 && len <= 12 && strspn(text, "0123456789") == len)
            amount = strtoll(text, NULL, 10);
    } else {
        return provider_b_reject(err, "invalid_params",
                                 "Invalid Amount Sent: amount must be an integer of the minor "
                                 "unit (kobo), e.g. 5000 for 50.00");
    }
    if (amount < 1 || amount > SIM_API_MAX_AMOUNT)
        return provider_b_reject(err, "invalid_params",
                                 "Invalid Amount Sent: amount must be 1 to %lld in the minor "
                                 "unit (kobo)",
                                 (long long)SIM_API_MAX_AMOUNT);
    *out = amount;
    return 0;
}

bool provider_b_reference_valid(const char *reference)
{
    if (reference == NULL || *reference == '\0')
        return false;
    size_t n = 0;
    for (const char *c = reference; *c != '\0'; c++, n++) {
        /* These would not survive as a path segment of GET /transaction/verify/:reference. */
        if (*c < 0x21 || *c > 0x7e || strchr("/?#%\\", *c) != NULL ||
            n >= PROVIDER_B_MAX_REFERENCE_LEN)
            return false;
    }
    return true;
}

int provider_b_parse_charge(const json_t *body, provider_b_charge_params *out,
                            provider_b_error *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    const json_t *amount = json_object_get(body, "amount");
    if (amount == NULL)
        return provider_b_reject(err, "invalid_params",
                                 "amount is required (an integer of the minor unit, kobo)");
    if (provider_b_parse_amount(amount, &out->amount, err) != 0)
        return -1;

    const char *cur = json_string_value(json_object_get(body, "currency"));
    if (cur == NULL)
        return provider_b_reject(err, "invalid_params",
                                 "currency is required (a three-letter code such as NGN)");
    if (strlen(cur) != 3 || !isalpha((unsigned char)cur[0]) || !isalpha((unsigned char)cur[1]) ||
        !isalpha((unsigned char)cur[2]))
        return provider_b_reject(err, "invalid_params",
                                 "Currency not supported: currency must be a three-letter code "
                                 "such as NGN, got '%.20s'",
                                 cur);
    for (int i = 0; i < 3; i++)
        out->currency[i] = (char)toupper((unsigned char)cur[i]);
    out->currency[3] = '\0';

    out->email = json_string_value(json_object_get(body, "email"));
    if (out->email == NULL || strchr(out->email, '@') == NULL ||
        strlen(out->email) > PROVIDER_B_MAX_EMAIL_LEN)
        return provider_b_reject(err, "invalid_params",
                                 "Invalid Email Address Passed: email is required, e.g. "
                                 "customer@example.com");

    out->reference = json_string_value(json_object_get(body, "reference"));
    if (!provider_b_reference_valid(out->reference))
        return provider_b_reject(err, "invalid_params",
                                 "Invalid transaction reference: reference is required, 1 to "
                                 "%d printable characters without spaces or / ? # %% \\",
                                 PROVIDER_B_MAX_REFERENCE_LEN);

    out->authorization_code = json_string_value(json_object_get(body, "authorization_code"));
    if (out->authorization_code == NULL || strncmp(out->authorization_code, "pm_", 3) != 0 ||
        strlen(out->authorization_code) > 255)
        return provider_b_reject(err, "invalid_params",
                                 "Invalid authorization code: authorization_code is required; "
                                 "the sandbox takes pm_ test tokens such as pm_card_visa, "
                                 "pm_card_declined, pm_card_insufficient_funds");

    const json_t *metadata = json_object_get(body, "metadata");
    if (metadata != NULL && !json_is_null(metadata)) {
        if (!json_is_object(metadata))
            return provider_b_reject(err, "invalid_params",
                                     "metadata must be a JSON object, or null");
        out->metadata = metadata;
    }
    return 0;
}

char *provider_b_fingerprint(const provider_b_charge_params *p)
{
    json_t *doc =
        json_pack("{s:I, s:s, s:s, s:s}", "amount", (json_int_t)p->amount, "currency", p->currency,
                  "email", p->email, "authorization_code", p->authorization_code);
    if (doc == NULL)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

const char *provider_b_gateway_response(const char *failure_code)
{
    if (failure_code == NULL)
        return "Approved";
    return strcmp(failure_code, "insufficient_funds") == 0 ? "Insufficient Funds" : "Declined";
}

void provider_b_iso8601(int64_t unix_s, char *out, size_t out_len)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, out_len, "%Y-%m-%dT%H:%M:%S.000Z", &tm) == 0)
        snprintf(out, out_len, "1970-01-01T00:00:00.000Z");
}

/* The integer of a numeric id (the state keeps ids as text). */
static json_int_t provider_b_id(const char *id)
{
    return (json_int_t)strtoll(id, NULL, 10);
}

/* Dumps {"status":true,"message":message,"data":data} into *body; the caller keeps data.
 * Returns 0, or -1 on OOM. */
static int provider_b_envelope(const char *message, json_t *data, char **body)
{
    json_t *env = json_pack("{s:b, s:s, s:O}", "status", 1, "message", message, "data", data);
    *body = env != NULL ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    return *body != NULL ? 0 : -1;
}

int provider_b_render(const sim_charge *c, json_t **object, unsigned *status, char **body,
                      void *ctx)
{
    (void)ctx;
    bool paid = c->status == SIM_CHARGE_SUCCEEDED;
    char created[32];
    provider_b_iso8601(c->created, created, sizeof(created));
    const json_t *md = json_object_get(c->attrs, "metadata");
    json_t *tx = json_pack(
        "{s:I, s:s, s:I, s:s, s:s, s:s, s:n, s:s, s:s, s:s, s:s?,"
        " s:{s:s?}, s:{s:s, s:b, s:s}, s:O?}",
        "id", provider_b_id(c->id), "reference", c->idempotency_key, "amount",
        (json_int_t)c->amount, "currency", c->currency, "status", paid ? "success" : "failed",
        "gateway_response", provider_b_gateway_response(c->failure_code), "message", "domain",
        "test", "channel", "card", "created_at", created, "paid_at", paid ? created : NULL,
        "customer", "email", json_string_value(json_object_get(c->attrs, "email")), "authorization",
        "authorization_code", c->source != NULL ? c->source : "", "reusable", 1, "channel", "card",
        "metadata", md);
    if (tx == NULL)
        return -1;
    if (provider_b_envelope("Charge attempted", tx, body) != 0) {
        json_decref(tx);
        return -1;
    }
    *object = tx;
    *status = 200;
    return 0;
}

static int provider_b_note(const json_t *body, const char *name, const char **out,
                           provider_b_error *err)
{
    const json_t *v = json_object_get(body, name);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > PROVIDER_B_MAX_NOTE_LEN)
        return provider_b_reject(err, "invalid_params",
                                 "%s must be a string of at most %d bytes, or null", name,
                                 PROVIDER_B_MAX_NOTE_LEN);
    *out = json_string_value(v);
    return 0;
}

int provider_b_parse_refund(const json_t *body, provider_b_refund_params *out,
                            provider_b_error *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    const json_t *tx = json_object_get(body, "transaction");
    if (json_is_integer(tx) && json_integer_value(tx) > 0) {
        snprintf(out->id_text, sizeof(out->id_text), "%lld", (long long)json_integer_value(tx));
        out->transaction = out->id_text;
    } else if (json_is_string(tx) && json_string_length(tx) > 0 &&
               json_string_length(tx) <= PROVIDER_B_MAX_REFERENCE_LEN) {
        out->transaction = json_string_value(tx);
    } else {
        return provider_b_reject(err, "invalid_params",
                                 "transaction is required: the transaction's reference or its "
                                 "id");
    }
    const json_t *amount = json_object_get(body, "amount");
    if (amount != NULL && !json_is_null(amount) &&
        provider_b_parse_amount(amount, &out->amount, err) != 0)
        return -1;
    if (provider_b_note(body, "merchant_note", &out->merchant_note, err) != 0 ||
        provider_b_note(body, "customer_note", &out->customer_note, err) != 0)
        return -1;
    return 0;
}

json_t *provider_b_refund_attrs(const provider_b_refund_params *p)
{
    return json_pack("{s:s?, s:s?}", "merchant_note", p->merchant_note, "customer_note",
                     p->customer_note);
}

char *provider_b_refund_fingerprint(const provider_b_refund_params *p)
{
    json_t *doc = provider_b_refund_attrs(p);
    char *text = NULL;
    if (doc != NULL && json_object_set_new(doc, "transaction", json_string(p->transaction)) == 0 &&
        json_object_set_new(doc, "amount", json_integer((json_int_t)p->amount)) == 0)
        text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

int provider_b_refund_render(const sim_refund *r, json_t **object, unsigned *status, char **body,
                             void *ctx)
{
    (void)ctx;
    char created[32];
    provider_b_iso8601(r->created, created, sizeof(created));
    const sim_charge *c = r->charge;
    json_t *refund = json_pack(
        "{s:I, s:{s:I, s:s, s:I, s:s}, s:I, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s}", "id",
        provider_b_id(r->id), "transaction", "id", provider_b_id(c->id), "reference",
        c->idempotency_key, "amount", (json_int_t)c->amount, "currency", c->currency, "amount",
        (json_int_t)r->amount, "currency", c->currency, "status", "processed", "domain", "test",
        "merchant_note", json_string_value(json_object_get(r->attrs, "merchant_note")),
        "customer_note", json_string_value(json_object_get(r->attrs, "customer_note")),
        "idempotency_key", r->idempotency_key, "createdAt", created);
    if (refund == NULL)
        return -1;
    if (provider_b_envelope("Refund processed", refund, body) != 0) {
        json_decref(refund);
        return -1;
    }
    *object = refund;
    *status = 200;
    return 0;
}

void provider_b_respond_error(keel_http_response *resp, unsigned status, const char *type,
                              const char *code, const char *message, const char *param)
{
    (void)type;
    (void)param;
    keel_http_respond_json(resp, status,
                           json_pack("{s:b, s:s, s:s}", "status", 0, "message", message, "code",
                                     code != NULL ? code : "error"));
}

/* --- HTTP ----------------------------------------------------------------------- */

static void provider_b_invalid(sim_api *api, keel_http_response *resp, unsigned status,
                               const char *code, const char *message)
{
    provider_b_respond_error(resp, status, NULL, code, message, NULL);
    sim_api_count(api, "invalid");
}

/* Answers 200 {"status":true,"message":message,"data":data} (takes data). */
static void provider_b_ok(sim_api *api, keel_http_response *resp, const char *message, json_t *data)
{
    json_t *env = data != NULL
                      ? json_pack("{s:b, s:s, s:o}", "status", 1, "message", message, "data", data)
                      : NULL;
    if (env == NULL) {
        sim_api_out_of_memory(api, resp);
        return;
    }
    keel_http_respond_json(resp, 200, env);
    sim_api_count(api, "ok");
}

/* The fault prologue, then the JSON body (the caller owns it); NULL after answering. */
static json_t *provider_b_begin(sim_api *api, const keel_http_request *req,
                                keel_http_response *resp, sim_fault_decision *d)
{
    if (!sim_api_prologue(api, req, resp, d))
        return NULL;
    return sim_api_json_object(api, req, resp);
}

static void provider_b_charge(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    json_t *attrs = NULL;
    char *fingerprint = NULL;
    sim_response out = {0};
    json_t *body = provider_b_begin(api, req, resp, &d);
    if (body == NULL)
        goto done;
    provider_b_charge_params params;
    provider_b_error perr;
    if (provider_b_parse_charge(body, &params, &perr) != 0) {
        provider_b_invalid(api, resp, 400, perr.code, perr.message);
        goto done;
    }
    fingerprint = provider_b_fingerprint(&params);
    attrs = json_pack("{s:s, s:O?}", "email", params.email, "metadata", params.metadata);
    if (fingerprint == NULL || attrs == NULL) {
        sim_api_out_of_memory(api, resp);
        goto done;
    }
    sim_token_outcome outcome = sim_token_outcome_for(params.authorization_code, d.decline);
    sim_charge_request creq = {
        .idempotency_key = params.reference,
        .fingerprint = fingerprint,
        .numeric_id = true,
        .amount = params.amount,
        .currency = params.currency,
        .source = params.authorization_code,
        .attrs = attrs,
        .status = outcome.status,
        .failure_code = outcome.failure_code,
        .failure_message =
            outcome.failure_code != NULL ? provider_b_gateway_response(outcome.failure_code) : NULL,
    };
    sim_charge_result r = sim_provider_charge(api->provider, &creq, provider_b_render, NULL, &out);
    switch (r) {
    case SIM_CHARGE_CREATED:
        sim_api_count_charge(api, outcome.status);
        keel_log_info("%s: transaction %s created: %lld %s, %s (reference %s)",
                      sim_provider_name(api->provider), out.charge_id, (long long)params.amount,
                      params.currency, provider_b_gateway_response(outcome.failure_code),
                      params.reference);
        break;
    case SIM_CHARGE_REPLAYED:
        break;
    case SIM_CHARGE_CONFLICT:
        provider_b_respond_error(resp, 400, NULL, "duplicate_reference",
                                 "Duplicate Transaction Reference", NULL);
        sim_api_count(api, "conflict");
        goto done;
    case SIM_CHARGE_LOG_FULL:
    case SIM_CHARGE_ERROR:
    default:
        sim_api_not_recorded(api, resp, r == SIM_CHARGE_LOG_FULL, "transaction");
        goto done;
    }
    char what[96];
    snprintf(what, sizeof(what), "transaction %s", out.charge_id);
    sim_api_respond_stored(api, resp, &d, r == SIM_CHARGE_REPLAYED, what, &out,
                           outcome.status == SIM_CHARGE_SUCCEEDED ? "succeeded" : "declined");
done:
    sim_response_clear(&out);
    free(fingerprint);
    fingerprint = NULL;
    json_decref(attrs);
    json_decref(body);
}

static void provider_b_verify(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    if (!sim_api_prologue(api, req, resp, &d))
        return;
    const char *reference = keel_http_request_param(req, "reference");
    json_t *tx = reference != NULL ? sim_provider_charge_by_key(api->provider, reference) : NULL;
    if (tx == NULL) {
        provider_b_respond_error(resp, 404, NULL, "transaction_not_found",
                                 "Transaction reference not found", NULL);
        sim_api_count(api, "not_found");
        return;
    }
    provider_b_ok(api, resp, "Verification successful", tx);
}

/* Answers a refused refund. */
static void provider_b_refund_refused(sim_api *api, keel_http_response *resp, sim_refund_result r,
                                      const sim_refund_request *req, const sim_response *out)
{
    char msg[256];
    const char *outcome = "refund_rejected";
    unsigned status = 400;
    const char *code = NULL;
    switch (r) {
    case SIM_REFUND_NO_CHARGE:
        status = 404;
        code = "transaction_not_found";
        snprintf(msg, sizeof(msg), "Transaction not found: '%.64s'", req->charge_ref);
        break;
    case SIM_REFUND_NOT_REFUNDABLE:
        code = "transaction_not_refundable";
        snprintf(msg, sizeof(msg), "Cannot refund a failed transaction (%s)", out->charge_id);
        break;
    case SIM_REFUND_ALREADY_REFUNDED:
        code = "transaction_reversed";
        snprintf(msg, sizeof(msg), "Transaction has been fully reversed");
        break;
    case SIM_REFUND_AMOUNT_TOO_LARGE:
        code = "amount_too_large";
        snprintf(msg, sizeof(msg),
                 "Refund amount (%lld) cannot be more than the unrefunded transaction amount "
                 "(%lld)",
                 (long long)req->amount, (long long)out->remaining);
        break;
    case SIM_REFUND_CONFLICT:
        code = "idempotency_key_reused";
        outcome = "conflict";
        snprintf(msg, sizeof(msg),
                 "Idempotency-Key was first used with other parameters (refund %s); use a new "
                 "key for a different refund",
                 out->refund_id);
        break;
    default:
        sim_api_not_recorded(api, resp, r == SIM_REFUND_LOG_FULL, "refund");
        return;
    }
    provider_b_respond_error(resp, status, NULL, code, msg, NULL);
    sim_api_count(api, outcome);
}

static void provider_b_refund(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    json_t *attrs = NULL;
    char *fingerprint = NULL;
    json_t *body = provider_b_begin(api, req, resp, &d);
    if (body == NULL)
        goto done;
    const char *key = keel_http_request_header(req, "Idempotency-Key");
    if (key != NULL && !provider_b_reference_valid(key)) {
        provider_b_invalid(api, resp, 400, "invalid_params",
                           "the Idempotency-Key header must be 1 to 255 printable characters "
                           "without spaces or / ? # % \\");
        goto done;
    }
    provider_b_refund_params params;
    provider_b_error perr;
    if (provider_b_parse_refund(body, &params, &perr) != 0) {
        provider_b_invalid(api, resp, 400, perr.code, perr.message);
        goto done;
    }
    fingerprint = provider_b_refund_fingerprint(&params);
    attrs = provider_b_refund_attrs(&params);
    if (fingerprint == NULL || attrs == NULL) {
        sim_api_out_of_memory(api, resp);
        goto done;
    }
    sim_refund_request rreq = {
        .idempotency_key = key,
        .fingerprint = fingerprint,
        .charge_ref = params.transaction,
        .ref_may_be_key = true,
        .numeric_id = true,
        .amount = params.amount,
        .attrs = attrs,
    };
    sim_api_refund(api, resp, &d, &rreq, provider_b_refund_render, provider_b_refund_refused);
done:
    free(fingerprint);
    fingerprint = NULL;
    json_decref(attrs);
    json_decref(body);
}

static void provider_b_refund_fetch(const keel_http_request *req, keel_http_response *resp,
                                    void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    if (!sim_api_prologue(api, req, resp, &d))
        return;
    const char *id = keel_http_request_param(req, "id");
    json_t *refund = id != NULL ? sim_provider_refund_by_id(api->provider, id) : NULL;
    if (refund == NULL) {
        provider_b_respond_error(resp, 404, NULL, "refund_not_found", "Refund not found", NULL);
        sim_api_count(api, "not_found");
        return;
    }
    provider_b_ok(api, resp, "Refund retrieved", refund);
}

static void provider_b_refund_list(const keel_http_request *req, keel_http_response *resp,
                                   void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    if (!sim_api_prologue(api, req, resp, &d))
        return;
    const char *tx = keel_http_request_query(req, "transaction");
    bool found = true, has_more = false;
    json_t *data = sim_provider_refunds_list(api->provider, tx, true, PROVIDER_B_LIST_LIMIT, &found,
                                             &has_more);
    if (data != NULL && !found) {
        json_decref(data);
        provider_b_respond_error(resp, 404, NULL, "transaction_not_found", "Transaction not found",
                                 NULL);
        sim_api_count(api, "not_found");
        return;
    }
    provider_b_ok(api, resp, "Refunds retrieved", data);
}

void provider_b_routes(keel_http_server *srv, void *ctx)
{
    keel_http_server_route(srv, "POST", "/transaction/charge", provider_b_charge, ctx);
    keel_http_server_route(srv, "GET", "/transaction/verify/:reference", provider_b_verify, ctx);
    keel_http_server_route(srv, "POST", "/refund", provider_b_refund, ctx);
    keel_http_server_route(srv, "GET", "/refund", provider_b_refund_list, ctx);
    keel_http_server_route(srv, "GET", "/refund/:id", provider_b_refund_fetch, ctx);
}
