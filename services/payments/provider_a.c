/* Provider A adapter: builds its HTTP calls and maps every answer to succeeded / declined /
 * not_processed / unknown. */
#include "provider_a.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/cloudevents.h"
#include "keel/log.h"

typedef struct provider_a {
    char *base_url;
    char *auth_header; /* "Authorization: Bearer <key>"; never logged */
    long timeout_ms;
    long connect_timeout_ms;
} provider_a;

static void outcome_reset(payments_charge_outcome *out, payments_charge_status status)
{
    memset(out, 0, sizeof(*out));
    out->status = status;
}

static void copy_str(char *dst, size_t dst_len, const char *src)
{
    snprintf(dst, dst_len, "%s", src != NULL ? src : "");
}

/* Drops a multi-byte UTF-8 character that truncation cut in half at the end of s: these
 * strings go into text columns and protobuf strings, which both refuse broken UTF-8. */
static void utf8_trim_tail(char *s)
{
    size_t n = strlen(s);
    size_t i = n;
    /* Walk back over at most 3 continuation bytes to the lead byte of the last character. */
    while (i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
    }
    if (i == 0 || ((unsigned char)s[i - 1] & 0x80) == 0) {
        if (i != n) {
            s[i] = '\0'; /* continuation bytes without a lead byte */
        }
        return;
    }
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (i - 1) < want) {
        s[i - 1] = '\0';
    }
}

static void outcome_sanitize(payments_charge_outcome *out)
{
    utf8_trim_tail(out->charge_id);
    utf8_trim_tail(out->failure_code);
    utf8_trim_tail(out->failure_message);
    utf8_trim_tail(out->detail);
}

/* The string member key of obj, or NULL when missing or not a string. */
static const char *json_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *parse_object(const keel_http_result *r)
{
    if (r->body == NULL || r->body_len == 0) {
        return NULL;
    }
    json_t *root = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (root != NULL && !json_is_object(root)) {
        json_decref(root);
        root = NULL;
    }
    return root;
}

/* Maps one charge object (as in a 200 answer or a lookup's data[]) to an outcome. A charge we
 * cannot read, or one still pending, stays UNKNOWN: only the words "succeeded" and "failed"
 * with an id are definite. */
static void map_charge_object(const json_t *charge, payments_charge_outcome *out)
{
    const char *id = json_str(charge, "id");
    const char *status = json_str(charge, "status");
    if (id == NULL || id[0] == '\0' || status == NULL) {
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        copy_str(out->detail, sizeof(out->detail), "charge object without id or status");
        return;
    }
    copy_str(out->charge_id, sizeof(out->charge_id), id);
    if (strcmp(status, "succeeded") == 0) {
        out->status = PAYMENTS_CHARGE_SUCCEEDED;
        snprintf(out->detail, sizeof(out->detail), "charge %s succeeded", id);
    } else if (strcmp(status, "failed") == 0) {
        const char *code = json_str(charge, "failure_code");
        const char *message = json_str(charge, "failure_message");
        out->status = PAYMENTS_CHARGE_DECLINED;
        copy_str(out->failure_code, sizeof(out->failure_code),
                 code != NULL && code[0] != '\0' ? code : "card_declined");
        copy_str(out->failure_message, sizeof(out->failure_message),
                 message != NULL ? message : "the provider declined the charge");
        snprintf(out->detail, sizeof(out->detail), "charge %s failed: %s", id, out->failure_code);
    } else {
        /* "pending" or a word we do not know: the money may still move. */
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "charge %s has status \"%s\"", id, status);
    }
}

/* A 402 or 400 error body: {"error":{"type":..,"code":..,"message":..,"charge":..}}. The status
 * code alone is definite, so an unreadable body still gives a decline, with a generic code. */
static void map_error_body(const keel_http_result *r, const char *default_code,
                           payments_charge_outcome *out)
{
    json_t *root = parse_object(r);
    const json_t *err = root != NULL ? json_object_get(root, "error") : NULL;
    const char *code = json_is_object(err) ? json_str(err, "code") : NULL;
    /* Stripe-style card errors say "card_declined" in code and the reason in decline_code; the
     * specific reason ("insufficient_funds") is what the charge's failure_code says too, so a
     * later lookup and this answer name the failure alike. */
    const char *decline = json_is_object(err) ? json_str(err, "decline_code") : NULL;
    if (decline != NULL && decline[0] != '\0' && strcmp(decline, "generic_decline") != 0) {
        code = decline;
    }
    const char *message = json_is_object(err) ? json_str(err, "message") : NULL;
    const char *charge = json_is_object(err) ? json_str(err, "charge") : NULL;

    out->status = PAYMENTS_CHARGE_DECLINED;
    copy_str(out->failure_code, sizeof(out->failure_code),
             code != NULL && code[0] != '\0' ? code : default_code);
    if (message != NULL && message[0] != '\0') {
        copy_str(out->failure_message, sizeof(out->failure_message), message);
    } else {
        snprintf(out->failure_message, sizeof(out->failure_message), "provider_a answered %ld (%s)",
                 r->status, out->failure_code);
    }
    copy_str(out->charge_id, sizeof(out->charge_id), charge);
    snprintf(out->detail, sizeof(out->detail), "HTTP %ld: %s", r->status, out->failure_code);
    json_decref(root);
}

/* Sorts an answer that did not arrive, or arrived too large, by whether the request could have
 * reached the provider. Returns true when it handled r. */
static bool map_transport(const keel_http_result *r, payments_charge_outcome *out)
{
    switch (r->failure) {
    case KEEL_HTTP_OK:
        return false;
    case KEEL_HTTP_NOT_SENT:
        out->status = PAYMENTS_CHARGE_NOT_PROCESSED;
        snprintf(out->detail, sizeof(out->detail), "not sent: %s", r->error);
        return true;
    case KEEL_HTTP_TIMEOUT_AFTER_SEND:
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "timeout after send: %s", r->error);
        return true;
    case KEEL_HTTP_TRANSPORT_ERROR:
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "transport error after send: %s", r->error);
        return true;
    case KEEL_HTTP_TOO_LARGE:
        /* The provider answered, but with something we refuse to read: it may have charged. */
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "answer larger than %d bytes",
                 PAYMENTS_PROVIDER_A_MAX_RESPONSE_BYTES);
        return true;
    }
    out->status = PAYMENTS_CHARGE_UNKNOWN;
    snprintf(out->detail, sizeof(out->detail), "unexpected transport result %d", (int)r->failure);
    return true;
}

static void map_charge(const keel_http_result *r, payments_charge_outcome *out)
{
    outcome_reset(out, PAYMENTS_CHARGE_UNKNOWN);
    if (map_transport(r, out)) {
        return;
    }
    out->http_status = r->status;
    long st = r->status;
    if (st == 200) {
        json_t *root = parse_object(r);
        if (root == NULL) {
            /* A 200 we cannot read may well be a charge: never call it a failure. */
            snprintf(out->detail, sizeof(out->detail), "HTTP 200 with %s body",
                     r->body_len == 0 ? "an empty" : "a malformed");
            return;
        }
        map_charge_object(root, out);
        json_decref(root);
        return;
    }
    if (st == 402) {
        map_error_body(r, "card_declined", out);
        return;
    }
    if (st == 400) {
        /* The provider refused the request as invalid before charging; the same request under
         * the same key will be refused again, so this is final. */
        map_error_body(r, "invalid_request", out);
        copy_str(out->failure_code, sizeof(out->failure_code), "invalid_request");
        return;
    }
    if (st == 401 || st == 403) {
        /* Authentication happens before anything else: nothing charged. Our configuration is
         * wrong, which retrying will not fix, but a fixed key will, so it stays retryable. */
        out->status = PAYMENTS_CHARGE_NOT_PROCESSED;
        snprintf(out->detail, sizeof(out->detail),
                 "HTTP %ld: provider_a rejected the API key; check KEEL_PAYMENTS_PROVIDER_API_KEY",
                 st);
        return;
    }
    if (st == 429) {
        /* Provider A (like Stripe) documents rate-limited requests as not processed. */
        out->status = PAYMENTS_CHARGE_NOT_PROCESSED;
        snprintf(out->detail, sizeof(out->detail), "HTTP 429: rate limited");
        return;
    }
    if (st == 500 || st == 502 || st == 503) {
        /* In general a 5xx is ambiguous: the server may have charged and then failed while
         * answering. We call these three not_processed only because provider A documents that
         * it answers them before charging (and keel-provider-sim does exactly that). Any other
         * 5xx (504 from a proxy that timed out waiting, ...) stays unknown. */
        out->status = PAYMENTS_CHARGE_NOT_PROCESSED;
        snprintf(out->detail, sizeof(out->detail), "HTTP %ld: provider error before charging", st);
        return;
    }
    /* 409 (a concurrent request under the same key is in flight), 404 from a wrong base URL,
     * 504, redirects, anything undocumented: we cannot know, so we do not guess. */
    snprintf(out->detail, sizeof(out->detail), "HTTP %ld: undocumented answer", st);
}

static payments_lookup_status map_lookup(const keel_http_result *r, payments_charge_outcome *out)
{
    outcome_reset(out, PAYMENTS_CHARGE_UNKNOWN);
    if (map_transport(r, out)) {
        return PAYMENTS_LOOKUP_FAILED;
    }
    out->http_status = r->status;
    if (r->status != 200) {
        snprintf(out->detail, sizeof(out->detail), "lookup answered HTTP %ld", r->status);
        return PAYMENTS_LOOKUP_FAILED;
    }
    payments_lookup_status result = PAYMENTS_LOOKUP_FAILED;
    json_t *root = parse_object(r);
    const json_t *data = root != NULL ? json_object_get(root, "data") : NULL;
    if (!json_is_array(data)) {
        snprintf(out->detail, sizeof(out->detail), "lookup answer without a data array");
        goto done;
    }
    if (json_array_size(data) == 0) {
        snprintf(out->detail, sizeof(out->detail), "no charge under this idempotency key");
        result = PAYMENTS_LOOKUP_NOT_FOUND;
        goto done;
    }
    /* One key names one charge; should a provider ever list more, a success among them wins
     * because that money moved. */
    payments_charge_outcome best;
    outcome_reset(&best, PAYMENTS_CHARGE_UNKNOWN);
    snprintf(best.detail, sizeof(best.detail), "no readable charge in the lookup answer");
    for (size_t i = 0; i < json_array_size(data); i++) {
        const json_t *charge = json_array_get(data, i);
        payments_charge_outcome one;
        outcome_reset(&one, PAYMENTS_CHARGE_UNKNOWN);
        if (!json_is_object(charge)) {
            continue;
        }
        map_charge_object(charge, &one);
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
    /* A pending or unreadable charge leaves us where we were: not knowing. */
    result =
        best.status == PAYMENTS_CHARGE_UNKNOWN ? PAYMENTS_LOOKUP_FAILED : PAYMENTS_LOOKUP_FOUND;
done:
    json_decref(root);
    return result;
}

void payments_provider_a_map_charge(const keel_http_result *r, payments_charge_outcome *out)
{
    map_charge(r, out);
    outcome_sanitize(out);
}

payments_lookup_status payments_provider_a_map_lookup(const keel_http_result *r,
                                                      payments_charge_outcome *out)
{
    payments_lookup_status st = map_lookup(r, out);
    outcome_sanitize(out);
    return st;
}

/* Builds {"amount","currency","source","description","metadata"}. NULL when the stored
 * metadata is not a JSON object (which intake never writes). */
static char *charge_body(const payments_charge_request *req)
{
    char *text = NULL;
    json_t *metadata = NULL;
    if (req->metadata_json != NULL && req->metadata_json[0] != '\0') {
        metadata = json_loads(req->metadata_json, 0, NULL);
        if (!json_is_object(metadata)) {
            goto done;
        }
    } else {
        metadata = json_object();
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
    const provider_a *a = p->impl;
    keel_http_result res;
    memset(&res, 0, sizeof(res));
    char url[1024];
    char idem[160];
    char trace[KEEL_TRACEPARENT_LEN + 16];
    char child[KEEL_TRACEPARENT_LEN];

    char *body = charge_body(req);
    if (body == NULL) {
        /* Nothing was sent, and the stored request can never be sent: a final failure. */
        outcome_reset(out, PAYMENTS_CHARGE_DECLINED);
        copy_str(out->failure_code, sizeof(out->failure_code), "invalid_request");
        copy_str(out->failure_message, sizeof(out->failure_message),
                 "the stored payment could not be encoded for provider_a");
        copy_str(out->detail, sizeof(out->detail), "charge body could not be built");
        return;
    }
    snprintf(url, sizeof(url), "%s/v1/charges", a->base_url);
    snprintf(idem, sizeof(idem), "Idempotency-Key: %s", req->payment_id);
    keel_traceparent_child(req->traceparent, child);
    snprintf(trace, sizeof(trace), "traceparent: %s", child);
    const char *headers[] = {
        a->auth_header, idem, "Content-Type: application/json", "Accept: application/json",
        trace,          NULL};
    keel_http_call call = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = strlen(body),
        .connect_timeout_ms = a->connect_timeout_ms,
        .total_timeout_ms = a->timeout_ms,
        .max_response_bytes = PAYMENTS_PROVIDER_A_MAX_RESPONSE_BYTES,
    };
    keel_http_client_do(&call, &res);
    payments_provider_a_map_charge(&res, out);
    if (res.failure == KEEL_HTTP_OK && (res.status == 401 || res.status == 403)) {
        keel_log_error("provider_a refused our credentials (HTTP %ld) for payment %s: set "
                       "KEEL_PAYMENTS_PROVIDER_API_KEY(_FILE) to the key provider_a expects",
                       res.status, req->payment_id);
    }
    keel_http_result_clear(&res);
    free(body);
    body = NULL;
}

static payments_lookup_status provider_a_lookup(payments_provider *p, const char *payment_id,
                                                const char *traceparent,
                                                payments_charge_outcome *out)
{
    const provider_a *a = p->impl;
    keel_http_result res;
    memset(&res, 0, sizeof(res));
    char url[1024];
    char trace[KEEL_TRACEPARENT_LEN + 16];
    char child[KEEL_TRACEPARENT_LEN];

    /* payment ids are "pay_" + hex (checked at intake), so they need no URL escaping. */
    snprintf(url, sizeof(url), "%s/v1/charges?idempotency_key=%s", a->base_url, payment_id);
    keel_traceparent_child(traceparent, child);
    snprintf(trace, sizeof(trace), "traceparent: %s", child);
    const char *headers[] = {a->auth_header, "Accept: application/json", trace, NULL};
    keel_http_call call = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .connect_timeout_ms = a->connect_timeout_ms,
        .total_timeout_ms = a->timeout_ms,
        .max_response_bytes = PAYMENTS_PROVIDER_A_MAX_RESPONSE_BYTES,
    };
    keel_http_client_do(&call, &res);
    payments_lookup_status st = payments_provider_a_map_lookup(&res, out);
    if (res.failure == KEEL_HTTP_OK && (res.status == 401 || res.status == 403)) {
        keel_log_error("provider_a refused our credentials (HTTP %ld) on a status lookup: set "
                       "KEEL_PAYMENTS_PROVIDER_API_KEY(_FILE) to the key provider_a expects",
                       res.status);
    }
    keel_http_result_clear(&res);
    return st;
}

static void provider_a_free(payments_provider *p)
{
    if (p == NULL) {
        return;
    }
    provider_a *a = p->impl;
    if (a != NULL) {
        free(a->base_url);
        a->base_url = NULL;
        if (a->auth_header != NULL) {
            /* The key should not linger in freed memory. */
            memset(a->auth_header, 0, strlen(a->auth_header));
            free(a->auth_header);
            a->auth_header = NULL;
        }
        free(a);
        p->impl = NULL;
    }
    free(p);
}

payments_provider *payments_provider_a_new(const payments_provider_a_options *opts, char *err,
                                           size_t err_len)
{
    payments_provider *p = NULL;
    provider_a *a = NULL;
    if (opts->base_url == NULL || opts->base_url[0] == '\0') {
        snprintf(err, err_len, "provider_a needs a base URL (KEEL_PAYMENTS_PROVIDER_URL)");
        goto fail;
    }
    if (opts->api_key == NULL || opts->api_key[0] == '\0') {
        snprintf(err, err_len,
                 "provider_a needs an API key (KEEL_PAYMENTS_PROVIDER_API_KEY or its _FILE)");
        goto fail;
    }
    if (opts->timeout_ms <= 0 || opts->connect_timeout_ms <= 0 ||
        opts->connect_timeout_ms > opts->timeout_ms) {
        snprintf(err, err_len,
                 "provider_a timeouts must be positive with connect (%ld ms) <= total (%ld ms)",
                 opts->connect_timeout_ms, opts->timeout_ms);
        goto fail;
    }
    p = calloc(1, sizeof(*p));
    a = calloc(1, sizeof(*a));
    if (p == NULL || a == NULL) {
        snprintf(err, err_len, "out of memory creating provider_a");
        goto fail;
    }
    a->base_url = strdup(opts->base_url);
    size_t auth_len = strlen("Authorization: Bearer ") + strlen(opts->api_key) + 1;
    a->auth_header = malloc(auth_len);
    if (a->base_url == NULL || a->auth_header == NULL) {
        snprintf(err, err_len, "out of memory creating provider_a");
        goto fail;
    }
    snprintf(a->auth_header, auth_len, "Authorization: Bearer %s", opts->api_key);
    size_t n = strlen(a->base_url);
    while (n > 0 && a->base_url[n - 1] == '/') {
        a->base_url[--n] = '\0';
    }
    a->timeout_ms = opts->timeout_ms;
    a->connect_timeout_ms = opts->connect_timeout_ms;
    p->name = "provider_a";
    p->impl = a;
    p->charge = provider_a_charge;
    p->lookup = provider_a_lookup;
    p->free = provider_a_free;
    return p;
fail:
    if (p != NULL) {
        p->impl = a;
        provider_a_free(p);
    } else if (a != NULL) {
        free(a);
    }
    return NULL;
}
