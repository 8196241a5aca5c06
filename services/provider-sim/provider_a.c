/* Provider A's HTTP API (Stripe-shaped charges) on top of the sandbox state. */
#include "provider_a.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keel/log.h"

struct provider_a {
    sim_provider *provider;
    char *api_key;
    keel_metrics *metrics;
};

/* Every value sim_requests_total's outcome label takes, so all series exist from start. */
static const char *const provider_a_outcomes[] = {
    "succeeded",        /* a new charge that succeeded */
    "declined",         /* a new charge that was declined (402) */
    "replayed",         /* an idempotent replay of a stored answer */
    "ok",               /* a retrieval or list that answered 200 */
    "not_found",        /* a retrieval of an unknown charge */
    "invalid",          /* a 4xx for a malformed request */
    "conflict",         /* an idempotency key reused with other parameters */
    "unauthorized",     /* a missing or wrong API key */
    "injected_error",   /* error_rate fired: 500 before any work */
    "injected_timeout", /* timeout_after_charge_rate fired: charged, then held */
    "unavailable",      /* the outage began while the request was in progress */
    "error",            /* the sandbox itself failed (out of memory, log full) */
};

/* --- pure logic ------------------------------------------------------------------- */

provider_a_outcome provider_a_outcome_for_source(const char *source)
{
    provider_a_outcome o = {.status = SIM_CHARGE_SUCCEEDED};
    if (source == NULL)
        return o;
    if (strcmp(source, "pm_card_declined") == 0) {
        o.status = SIM_CHARGE_FAILED;
        o.failure_code = "card_declined";
        o.decline_code = "generic_decline";
        o.failure_message = "Your card was declined.";
    } else if (strcmp(source, "pm_card_insufficient_funds") == 0) {
        o.status = SIM_CHARGE_FAILED;
        o.failure_code = "insufficient_funds";
        o.decline_code = "insufficient_funds";
        o.failure_message = "Your card has insufficient funds.";
    }
    return o;
}

static bool provider_a_known_param(const char *name)
{
    static const char *const known[] = {"amount", "currency", "source", "description", "metadata"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(name, known[i]) == 0)
            return true;
    }
    return false;
}

static int provider_a_reject(provider_a_error *err, const char *code, const char *param,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int provider_a_reject(provider_a_error *err, const char *code, const char *param,
                             const char *fmt, ...)
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

static int provider_a_parse_metadata(const json_t *md, provider_a_error *err)
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

int provider_a_parse_charge(const json_t *body, provider_a_params *out, provider_a_error *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (!json_is_object(body))
        return provider_a_reject(err, "parameter_invalid", NULL,
                                 "the request body must be a JSON object");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)body, name, v)
    {
        if (!provider_a_known_param(name))
            return provider_a_reject(err, "parameter_unknown", name,
                                     "Received unknown parameter: %.60s (the parameters are "
                                     "amount, currency, source, description, metadata)",
                                     name);
    }

    const json_t *amount = json_object_get(body, "amount");
    if (amount == NULL)
        return provider_a_reject(err, "parameter_missing", "amount",
                                 "Missing required param: amount (an integer of minor units)");
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
    out->amount = (int64_t)json_integer_value(amount);

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

bool provider_a_authorized(const char *api_key, const char *authorization)
{
    if (api_key == NULL || *api_key == '\0')
        return true;
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    size_t want_len = strlen(api_key);
    size_t given_len = strlen(given);
    /* Constant time in the key's length: no early exit on the first differing byte. */
    unsigned char diff = want_len != given_len;
    for (size_t i = 0; i < want_len; i++)
        diff |= (unsigned char)api_key[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
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
        const char *decline = provider_a_outcome_for_source(c->source).decline_code;
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

static void provider_a_count(provider_a *pa, const char *outcome)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "provider=\"%s\",outcome=\"%s\"",
             sim_provider_name(pa->provider), outcome);
    keel_metric_inc(keel_metrics_counter(pa->metrics, "sim_requests_total",
                                         "Requests to sandbox providers, by outcome", labels));
}

static keel_metric *provider_a_charges_metric(provider_a *pa, sim_charge_status s)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "provider=\"%s\",status=\"%s\"",
             sim_provider_name(pa->provider), sim_charge_status_name(s));
    return keel_metrics_counter(pa->metrics, "sim_charges_total",
                                "Charges recorded by sandbox providers, by status", labels);
}

provider_a *provider_a_new(const provider_a_options *opts)
{
    provider_a *pa = calloc(1, sizeof(*pa));
    if (pa == NULL)
        return NULL;
    pa->provider = opts->provider;
    pa->metrics = opts->metrics;
    pa->api_key = strdup(opts->api_key != NULL ? opts->api_key : "");
    if (pa->api_key == NULL) {
        free(pa);
        return NULL;
    }
    /* Register every series at start so dashboards see zeros, not gaps. */
    char labels[128];
    for (size_t i = 0; i < sizeof(provider_a_outcomes) / sizeof(provider_a_outcomes[0]); i++) {
        snprintf(labels, sizeof(labels), "provider=\"%s\",outcome=\"%s\"",
                 sim_provider_name(pa->provider), provider_a_outcomes[i]);
        keel_metrics_counter(pa->metrics, "sim_requests_total",
                             "Requests to sandbox providers, by outcome", labels);
    }
    provider_a_charges_metric(pa, SIM_CHARGE_SUCCEEDED);
    provider_a_charges_metric(pa, SIM_CHARGE_FAILED);
    return pa;
}

void provider_a_free(provider_a *pa)
{
    if (pa == NULL)
        return;
    free(pa->api_key);
    pa->api_key = NULL;
    free(pa);
}

/* Authentication, then the injected latency, outage and error. Returns false when it
 * already answered. */
static bool provider_a_prologue(provider_a *pa, const keel_http_request *req,
                                keel_http_response *resp, sim_fault_decision *d)
{
    if (!provider_a_authorized(pa->api_key, keel_http_request_header(req, "Authorization"))) {
        keel_http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"keel-provider-sim\"");
        keel_http_respond_error(resp, 401, "authentication_error", "api_key_invalid",
                                "Invalid API key: send 'Authorization: Bearer <key>' with the "
                                "key from KEEL_SIM_API_KEY",
                                NULL);
        provider_a_count(pa, "unauthorized");
        return false;
    }
    *d = sim_provider_decide(pa->provider);
    if (d->latency_ms > 0)
        sim_provider_wait(pa->provider, d->latency_ms);
    if (sim_provider_faults(pa->provider).outage) {
        /* The listener is closing; this request slipped in before it did. */
        keel_http_respond_error(resp, 503, "api_error", "provider_unavailable",
                                "the sandbox provider is in a simulated outage", NULL);
        provider_a_count(pa, "unavailable");
        return false;
    }
    if (d->error) {
        keel_log_info("%s: injected error (error_rate), nothing processed",
                      sim_provider_name(pa->provider));
        keel_http_respond_error(resp, 500, "api_error", "simulated_error",
                                "simulated provider error (error_rate); nothing was processed, "
                                "retrying is safe",
                                NULL);
        provider_a_count(pa, "injected_error");
        return false;
    }
    return true;
}

static void provider_a_invalid(provider_a *pa, keel_http_response *resp, unsigned status,
                               const char *code, const char *message, const char *param)
{
    keel_http_respond_error(resp, status, "invalid_request_error", code, message, param);
    provider_a_count(pa, "invalid");
}

static void provider_a_create(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    provider_a *pa = ctx;
    sim_fault_decision d;
    json_t *body = NULL;
    char *fingerprint = NULL;
    sim_response out = {0};
    if (!provider_a_prologue(pa, req, resp, &d))
        goto done;

    const char *key = keel_http_request_header(req, "Idempotency-Key");
    if (key == NULL || *key == '\0') {
        provider_a_invalid(pa, resp, 400, "idempotency_key_missing",
                           "the Idempotency-Key header is required: send one unique key per "
                           "charge and the same key on every retry of it",
                           NULL);
        goto done;
    }
    if (!provider_a_key_valid(key)) {
        provider_a_invalid(pa, resp, 400, "idempotency_key_invalid",
                           "the Idempotency-Key header must be 1 to 255 printable ASCII "
                           "characters",
                           NULL);
        goto done;
    }
    body = keel_http_request_json(req, resp);
    if (body == NULL) {
        provider_a_count(pa, "invalid");
        goto done;
    }
    provider_a_params params;
    provider_a_error perr;
    if (provider_a_parse_charge(body, &params, &perr) != 0) {
        provider_a_invalid(pa, resp, 400, perr.code, perr.message, perr.param);
        goto done;
    }
    fingerprint = provider_a_fingerprint(&params);
    if (fingerprint == NULL) {
        keel_http_respond_error(resp, 500, "api_error", "out_of_memory",
                                "the sandbox ran out of memory", NULL);
        provider_a_count(pa, "error");
        goto done;
    }
    provider_a_outcome outcome = provider_a_outcome_for_source(params.source);
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
    sim_charge_result r = sim_provider_charge(pa->provider, &creq, provider_a_render, NULL, &out);
    const char *counted = NULL;
    char msg[512];
    switch (r) {
    case SIM_CHARGE_CREATED:
        keel_metric_inc(provider_a_charges_metric(pa, outcome.status));
        keel_log_info("%s: charge %s created: %lld %s, %s%s%s (idempotency key %s)",
                      sim_provider_name(pa->provider), out.charge_id, (long long)params.amount,
                      params.currency, sim_charge_status_name(outcome.status),
                      outcome.failure_code != NULL ? " " : "",
                      outcome.failure_code != NULL ? outcome.failure_code : "", key);
        counted = outcome.status == SIM_CHARGE_SUCCEEDED ? "succeeded" : "declined";
        break;
    case SIM_CHARGE_REPLAYED:
        keel_http_response_header(resp, "Idempotent-Replayed", "true");
        counted = "replayed";
        break;
    case SIM_CHARGE_CONFLICT:
        snprintf(msg, sizeof(msg),
                 "Keys for idempotent requests can only be used with the same parameters they "
                 "were first used with (charge %s). Use a new key for a different charge.",
                 out.charge_id);
        keel_http_respond_error(resp, 400, "idempotency_error", "idempotency_key_reused", msg,
                                NULL);
        provider_a_count(pa, "conflict");
        goto done;
    case SIM_CHARGE_LOG_FULL:
        keel_http_respond_error(resp, 503, "api_error", "sandbox_full",
                                "the sandbox's charge log is full; POST /_sim/reset on the admin "
                                "port clears it",
                                NULL);
        provider_a_count(pa, "error");
        goto done;
    case SIM_CHARGE_ERROR:
    default:
        keel_http_respond_error(resp, 500, "api_error", "sandbox_error",
                                "the sandbox failed to record the charge (out of memory); "
                                "nothing was charged",
                                NULL);
        provider_a_count(pa, "error");
        goto done;
    }
    if (d.timeout_after_charge) {
        /* The charge exists; holding the answer makes the client time out not knowing it,
         * which is exactly the ambiguity a caller must resolve by asking under the key. */
        keel_log_info("%s: holding the answer for charge %s for %lld ms "
                      "(timeout_after_charge_rate)",
                      sim_provider_name(pa->provider), out.charge_id, (long long)d.hold_ms);
        sim_provider_wait(pa->provider, d.hold_ms);
        counted = "injected_timeout";
    }
    keel_http_respond_raw(resp, out.status, "application/json", out.body, strlen(out.body));
    provider_a_count(pa, counted);
done:
    sim_response_clear(&out);
    free(fingerprint);
    fingerprint = NULL;
    json_decref(body);
}

static void provider_a_retrieve(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    provider_a *pa = ctx;
    sim_fault_decision d;
    if (!provider_a_prologue(pa, req, resp, &d))
        return;
    const char *id = keel_http_request_param(req, "id");
    json_t *charge = id != NULL ? sim_provider_charge_by_id(pa->provider, id) : NULL;
    if (charge == NULL) {
        char msg[128];
        snprintf(msg, sizeof(msg), "No such charge: '%.64s'", id != NULL ? id : "");
        keel_http_respond_error(resp, 404, "invalid_request_error", "resource_missing", msg, "id");
        provider_a_count(pa, "not_found");
        return;
    }
    keel_http_respond_json(resp, 200, charge);
    provider_a_count(pa, "ok");
}

static void provider_a_list(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    provider_a *pa = ctx;
    sim_fault_decision d;
    if (!provider_a_prologue(pa, req, resp, &d))
        return;
    const char *key = keel_http_request_query(req, "idempotency_key");
    const char *limit_text = keel_http_request_query(req, "limit");
    json_t *data = NULL;
    bool has_more = false;
    if (key != NULL) {
        data = json_array();
        json_t *charge = sim_provider_charge_by_key(pa->provider, key);
        if (data != NULL && charge != NULL)
            json_array_append_new(data, charge);
        else
            json_decref(charge);
    } else {
        long limit = PROVIDER_A_LIST_DEFAULT_LIMIT;
        if (limit_text != NULL) {
            char *end = NULL;
            limit = strtol(limit_text, &end, 10);
            if (end == limit_text || *end != '\0' || limit < 1 ||
                limit > PROVIDER_A_LIST_MAX_LIMIT) {
                provider_a_invalid(pa, resp, 400, "parameter_invalid_integer",
                                   "limit must be an integer from 1 to 100", "limit");
                return;
            }
        }
        data = sim_provider_charges_list(pa->provider, (size_t)limit, &has_more);
    }
    json_t *list = data != NULL ? json_pack("{s:s, s:o, s:b, s:s}", "object", "list", "data", data,
                                            "has_more", has_more, "url", "/v1/charges")
                                : NULL;
    if (list == NULL) {
        keel_http_respond_error(resp, 500, "api_error", "out_of_memory",
                                "the sandbox ran out of memory", NULL);
        provider_a_count(pa, "error");
        return;
    }
    keel_http_respond_json(resp, 200, list);
    provider_a_count(pa, "ok");
}

void provider_a_routes(keel_http_server *srv, void *ctx)
{
    keel_http_server_route(srv, "POST", "/v1/charges", provider_a_create, ctx);
    keel_http_server_route(srv, "GET", "/v1/charges", provider_a_list, ctx);
    keel_http_server_route(srv, "GET", "/v1/charges/:id", provider_a_retrieve, ctx);
}
