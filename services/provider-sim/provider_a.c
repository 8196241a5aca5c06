/* Provider A's HTTP API (Stripe-shaped charges) on top of the sandbox state. */
#include "provider_a.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keel/log.h"

/* --- pure logic ------------------------------------------------------------------- */

provider_a_outcome provider_a_outcome_for_source(const char *source, bool decline)
{
    sim_token_outcome t = sim_token_outcome_for(source, decline);
    provider_a_outcome o = {.status = t.status, .failure_code = t.failure_code};
    if (t.failure_code == NULL)
        return o;
    if (strcmp(t.failure_code, "insufficient_funds") == 0) {
        o.decline_code = "insufficient_funds";
        o.failure_message = "Your card has insufficient funds.";
    } else {
        o.decline_code = "generic_decline";
        o.failure_message = "Your card was declined.";
    }
    return o;
}

int provider_a_reject(provider_a_error *err, const char *code, const char *param, const char *fmt,
                      ...)
{
    err->code = code;
    err->param = param;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

/* Code points in valid UTF-8 (jansson guarantees it): bytes that do not continue one. */
static size_t provider_a_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

int provider_a_parse_metadata(const json_t *md, provider_a_error *err)
{
    if (!json_is_object(md))
        return provider_a_reject(err, "parameter_invalid", "metadata",
                                 "metadata must be an object of string values, or null");
    if (json_object_size(md) > PROVIDER_A_MAX_METADATA_KEYS)
        return provider_a_reject(err, "parameter_invalid", "metadata",
                                 "metadata has %zu keys; at most %d are allowed",
                                 json_object_size(md), PROVIDER_A_MAX_METADATA_KEYS);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)md, k, v)
    {
        size_t klen = provider_a_utf8_chars(k, strlen(k));
        if (klen == 0 || klen > PROVIDER_A_MAX_METADATA_KEY_LEN)
            return provider_a_reject(err, "parameter_invalid", "metadata",
                                     "metadata key '%.60s' must be 1 to %d characters", k,
                                     PROVIDER_A_MAX_METADATA_KEY_LEN);
        if (!json_is_string(v) ||
            provider_a_utf8_chars(json_string_value(v), json_string_length(v)) >
                PROVIDER_A_MAX_METADATA_VALUE_LEN)
            return provider_a_reject(err, "parameter_invalid", "metadata",
                                     "metadata['%.40s'] must be a string of at most %d "
                                     "characters",
                                     k, PROVIDER_A_MAX_METADATA_VALUE_LEN);
    }
    return 0;
}

int provider_a_parse_amount(const json_t *amount, int64_t *out, provider_a_error *err)
{
    if (!json_is_integer(amount))
        return provider_a_reject(err, "parameter_invalid_integer", "amount",
                                 "amount must be an integer of minor units, e.g. 1099 for "
                                 "10.99");
    if (json_integer_value(amount) <= 0)
        return provider_a_reject(err, "amount_too_small", "amount",
                                 "amount must be at least 1 (minor units), got %lld",
                                 (long long)json_integer_value(amount));
    if (json_integer_value(amount) > PROVIDER_A_MAX_AMOUNT)
        return provider_a_reject(err, "amount_too_large", "amount",
                                 "amount must be at most %lld (minor units), got %lld",
                                 (long long)PROVIDER_A_MAX_AMOUNT,
                                 (long long)json_integer_value(amount));
    *out = (int64_t)json_integer_value(amount);
    return 0;
}

int provider_a_check_params(const json_t *body, const char *const *known, provider_a_error *err)
{
    memset(err, 0, sizeof(*err));
    if (!json_is_object(body))
        return provider_a_reject(err, "parameter_invalid", NULL,
                                 "the request body must be a JSON object");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)body, name, v)
    {
        bool found = false;
        char list[160] = "";
        size_t used = 0;
        for (size_t i = 0; known[i] != NULL && !found; i++) {
            found = strcmp(name, known[i]) == 0;
            int n = snprintf(list + used, sizeof(list) - used, "%s%s", i > 0 ? ", " : "", known[i]);
            used = n > 0 && used + (size_t)n < sizeof(list) ? used + (size_t)n : used;
        }
        if (!found)
            return provider_a_reject(err, "parameter_unknown", name,
                                     "Received unknown parameter: %.60s (the parameters are %s)",
                                     name, list);
    }
    return 0;
}

int provider_a_parse_charge(const json_t *body, provider_a_params *out, provider_a_error *err)
{
    static const char *const known[] = {"amount",      "currency", "source",
                                        "description", "metadata", NULL};
    memset(out, 0, sizeof(*out));
    if (provider_a_check_params(body, known, err) != 0)
        return -1;

    const json_t *amount = json_object_get(body, "amount");
    if (amount == NULL)
        return provider_a_reject(err, "parameter_missing", "amount",
                                 "Missing required param: amount (an integer of minor units)");
    if (provider_a_parse_amount(amount, &out->amount, err) != 0)
        return -1;

    const json_t *currency = json_object_get(body, "currency");
    if (currency == NULL)
        return provider_a_reject(err, "parameter_missing", "currency",
                                 "Missing required param: currency (a three-letter ISO 4217 "
                                 "code such as usd)");
    const char *cur = json_string_value(currency);
    if (cur == NULL || json_string_length(currency) != 3 || !isalpha((unsigned char)cur[0]) ||
        !isalpha((unsigned char)cur[1]) || !isalpha((unsigned char)cur[2]))
        return provider_a_reject(err, "parameter_invalid", "currency",
                                 "currency must be a three-letter ISO 4217 code such as usd");
    for (int i = 0; i < 3; i++)
        out->currency[i] = (char)tolower((unsigned char)cur[i]);
    out->currency[3] = '\0';

    const json_t *source = json_object_get(body, "source");
    if (source == NULL)
        return provider_a_reject(err, "parameter_missing", "source",
                                 "Missing required param: source (a test payment method such "
                                 "as pm_card_visa)");
    if (!json_is_string(source))
        return provider_a_reject(err, "parameter_invalid", "source",
                                 "source must be a string such as pm_card_visa");
    out->source = json_string_value(source);
    if (strncmp(out->source, "pm_", 3) != 0 || json_string_length(source) > 255 ||
        strlen(out->source) != json_string_length(source))
        return provider_a_reject(err, "resource_missing", "source",
                                 "No such PaymentMethod: '%.60s'; the sandbox takes pm_ test "
                                 "tokens: pm_card_visa, pm_card_declined, "
                                 "pm_card_insufficient_funds",
                                 out->source);

    const json_t *description = json_object_get(body, "description");
    if (description != NULL && !json_is_null(description)) {
        if (!json_is_string(description) ||
            json_string_length(description) > PROVIDER_A_MAX_DESCRIPTION_LEN)
            return provider_a_reject(err, "parameter_invalid", "description",
                                     "description must be a string of at most %d bytes, "
                                     "or null",
                                     PROVIDER_A_MAX_DESCRIPTION_LEN);
        out->description = json_string_value(description);
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

bool provider_a_key_valid(const char *key)
{
    if (key == NULL)
        return false;
    size_t n = 0;
    for (const char *c = key; *c != '\0'; c++, n++) {
        if (*c < 0x20 || *c > 0x7e || n >= PROVIDER_A_MAX_KEY_LEN)
            return false;
    }
    return n > 0;
}

char *provider_a_fingerprint(const provider_a_params *p)
{
    json_t *md = p->metadata != NULL ? json_deep_copy(p->metadata) : json_object();
    json_t *doc =
        json_pack("{s:I, s:s, s:s, s:s?, s:o}", "amount", (json_int_t)p->amount, "currency",
                  p->currency, "source", p->source, "description", p->description, "metadata", md);
    if (doc == NULL)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

int provider_a_render(const sim_charge *c, json_t **object, unsigned *status, char **body,
                      void *ctx)
{
    (void)ctx;
    bool paid = c->status == SIM_CHARGE_SUCCEEDED;
    json_t *md = c->metadata != NULL ? json_deep_copy(c->metadata) : json_object();
    json_t *obj = json_pack(
        "{s:s, s:s, s:I, s:s, s:s, s:b, s:s?, s:s?, s:s, s:I,"
        " s:I, s:b, s:s?, s:b, s:o, s:s}",
        "id", c->id, "object", "charge", "amount", (json_int_t)c->amount, "currency", c->currency,
        "status", sim_charge_status_name(c->status), "paid", paid, "failure_code", c->failure_code,
        "failure_message", c->failure_message, "idempotency_key", c->idempotency_key, "created",
        (json_int_t)c->created, "amount_captured", (json_int_t)(paid ? c->amount : 0), "captured",
        paid, "description", c->description, "livemode", 0, "metadata", md, "payment_method",
        c->source);
    if (obj == NULL)
        return -1;
    json_t *answer = NULL;
    if (paid) {
        answer = json_incref(obj);
        *status = 200;
    } else {
        const char *decline =
            provider_a_outcome_for_source(c->source, c->failure_code != NULL).decline_code;
        answer = json_pack("{s:{s:s, s:s, s:s, s:s?, s:s, s:n}}", "error", "type", "card_error",
                           "code", c->failure_code != NULL ? c->failure_code : "card_declined",
                           "decline_code", decline != NULL ? decline : "generic_decline", "message",
                           c->failure_message, "charge", c->id, "param");
        *status = 402;
    }
    char *text = answer != NULL ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    if (text == NULL) {
        json_decref(obj);
        return -1;
    }
    *object = obj;
    *body = text;
    return 0;
}

/* --- HTTP ----------------------------------------------------------------------- */

void provider_a_invalid(sim_api *api, keel_http_response *resp, unsigned status, const char *code,
                        const char *message, const char *param)
{
    keel_http_respond_error(resp, status, "invalid_request_error", code, message, param);
    sim_api_count(api, "invalid");
}

/* The Idempotency-Key header, checked; answers 400 and returns NULL when missing or
 * invalid. */
static const char *provider_a_idempotency_key(sim_api *api, const keel_http_request *req,
                                              keel_http_response *resp)
{
    const char *key = keel_http_request_header(req, "Idempotency-Key");
    if (key == NULL || *key == '\0') {
        provider_a_invalid(api, resp, 400, "idempotency_key_missing",
                           "the Idempotency-Key header is required: send one unique key per "
                           "operation and the same key on every retry of it",
                           NULL);
        return NULL;
    }
    if (!provider_a_key_valid(key)) {
        provider_a_invalid(api, resp, 400, "idempotency_key_invalid",
                           "the Idempotency-Key header must be 1 to 255 printable ASCII "
                           "characters",
                           NULL);
        return NULL;
    }
    return key;
}

json_t *provider_a_begin(sim_api *api, const keel_http_request *req, keel_http_response *resp,
                         sim_fault_decision *d, const char **key)
{
    if (!sim_api_prologue(api, req, resp, d))
        return NULL;
    *key = provider_a_idempotency_key(api, req, resp);
    if (*key == NULL)
        return NULL;
    json_t *body = keel_http_request_json(req, resp);
    if (body == NULL)
        sim_api_count(api, "invalid");
    return body;
}

void provider_a_retrieve_by_id(const keel_http_request *req, keel_http_response *resp, sim_api *api,
                               const char *kind, json_t *(*by_id)(sim_provider *p, const char *id))
{
    sim_fault_decision d;
    if (!sim_api_prologue(api, req, resp, &d))
        return;
    const char *id = keel_http_request_param(req, "id");
    json_t *found = id != NULL ? by_id(api->provider, id) : NULL;
    if (found == NULL) {
        char msg[128];
        snprintf(msg, sizeof(msg), "No such %s: '%.64s'", kind, id != NULL ? id : "");
        keel_http_respond_error(resp, 404, "invalid_request_error", "resource_missing", msg, "id");
        sim_api_count(api, "not_found");
        return;
    }
    keel_http_respond_json(resp, 200, found);
    sim_api_count(api, "ok");
}

json_t *provider_a_list_of(json_t *item)
{
    json_t *data = json_array();
    if (data == NULL) {
        json_decref(item);
        return NULL;
    }
    /* json_array_append_new takes item even when it fails. */
    if (item != NULL && json_array_append_new(data, item) != 0) {
        json_decref(data);
        return NULL;
    }
    return data;
}

void provider_a_respond_list(sim_api *api, keel_http_response *resp, json_t *data, bool has_more,
                             const char *url)
{
    json_t *list = data != NULL ? json_pack("{s:s, s:o, s:b, s:s}", "object", "list", "data", data,
                                            "has_more", has_more, "url", url)
                                : NULL;
    if (list == NULL) {
        sim_api_out_of_memory(api, resp);
        return;
    }
    keel_http_respond_json(resp, 200, list);
    sim_api_count(api, "ok");
}

bool provider_a_list_limit(sim_api *api, const keel_http_request *req, keel_http_response *resp,
                           size_t *limit)
{
    const char *text = keel_http_request_query(req, "limit");
    *limit = PROVIDER_A_LIST_DEFAULT_LIMIT;
    if (text == NULL)
        return true;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < 1 || v > PROVIDER_A_LIST_MAX_LIMIT) {
        provider_a_invalid(api, resp, 400, "parameter_invalid_integer",
                           "limit must be an integer from 1 to 100", "limit");
        return false;
    }
    *limit = (size_t)v;
    return true;
}

static void provider_a_create(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    const char *key = NULL;
    char *fingerprint = NULL;
    sim_response out = {0};
    json_t *body = provider_a_begin(api, req, resp, &d, &key);
    if (body == NULL)
        goto done;
    provider_a_params params;
    provider_a_error perr;
    if (provider_a_parse_charge(body, &params, &perr) != 0) {
        provider_a_invalid(api, resp, 400, perr.code, perr.message, perr.param);
        goto done;
    }
    fingerprint = provider_a_fingerprint(&params);
    if (fingerprint == NULL) {
        sim_api_out_of_memory(api, resp);
        goto done;
    }
    provider_a_outcome outcome = provider_a_outcome_for_source(params.source, d.decline);
    sim_charge_request creq = {
        .idempotency_key = key,
        .fingerprint = fingerprint,
        .id_prefix = "ch_",
        .amount = params.amount,
        .currency = params.currency,
        .source = params.source,
        .description = params.description,
        .metadata = params.metadata,
        .status = outcome.status,
        .failure_code = outcome.failure_code,
        .failure_message = outcome.failure_message,
    };
    sim_charge_result r = sim_provider_charge(api->provider, &creq, provider_a_render, NULL, &out);
    char msg[512];
    switch (r) {
    case SIM_CHARGE_CREATED:
        sim_api_count_charge(api, outcome.status);
        keel_log_info("%s: charge %s created: %lld %s, %s%s%s (idempotency key %s)",
                      sim_provider_name(api->provider), out.charge_id, (long long)params.amount,
                      params.currency, sim_charge_status_name(outcome.status),
                      outcome.failure_code != NULL ? " " : "",
                      outcome.failure_code != NULL ? outcome.failure_code : "", key);
        break;
    case SIM_CHARGE_REPLAYED:
        break;
    case SIM_CHARGE_CONFLICT:
        snprintf(msg, sizeof(msg),
                 "Keys for idempotent requests can only be used with the same parameters they "
                 "were first used with (charge %s). Use a new key for a different charge.",
                 out.charge_id);
        keel_http_respond_error(resp, 400, "idempotency_error", "idempotency_key_reused", msg,
                                NULL);
        sim_api_count(api, "conflict");
        goto done;
    case SIM_CHARGE_LOG_FULL:
    case SIM_CHARGE_ERROR:
    default:
        sim_api_not_recorded(api, resp, r == SIM_CHARGE_LOG_FULL, "charge");
        goto done;
    }
    snprintf(msg, sizeof(msg), "charge %s", out.charge_id);
    sim_api_respond_stored(api, resp, &d, r == SIM_CHARGE_REPLAYED, msg, &out,
                           outcome.status == SIM_CHARGE_SUCCEEDED ? "succeeded" : "declined");
done:
    sim_response_clear(&out);
    free(fingerprint);
    fingerprint = NULL;
    json_decref(body);
}

static void provider_a_retrieve(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    provider_a_retrieve_by_id(req, resp, ctx, "charge", sim_provider_charge_by_id);
}

static void provider_a_list(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    sim_api *api = ctx;
    sim_fault_decision d;
    if (!sim_api_prologue(api, req, resp, &d))
        return;
    const char *key = keel_http_request_query(req, "idempotency_key");
    json_t *data = NULL;
    bool has_more = false;
    if (key != NULL) {
        data = provider_a_list_of(sim_provider_charge_by_key(api->provider, key));
    } else {
        size_t limit;
        if (!provider_a_list_limit(api, req, resp, &limit))
            return;
        data = sim_provider_charges_list(api->provider, limit, &has_more);
    }
    provider_a_respond_list(api, resp, data, has_more, "/v1/charges");
}

void provider_a_routes(keel_http_server *srv, void *ctx)
{
    keel_http_server_route(srv, "POST", "/v1/charges", provider_a_create, ctx);
    keel_http_server_route(srv, "GET", "/v1/charges", provider_a_list, ctx);
    keel_http_server_route(srv, "GET", "/v1/charges/:id", provider_a_retrieve, ctx);
    provider_a_refund_routes(srv, ctx);
}
