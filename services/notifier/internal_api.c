/* Handlers of the internal endpoint API: token check, validation, the SSRF check of the URL,
 * then one statement or transaction. Secrets appear only in create and rotate answers. */
#include "internal_api.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint_url.h"
#include "event_render.h"
#include "keel/id.h"
#include "keel/log.h"
#include "signature.h"
#include "store.h"

#define API_PREFIX "/internal/v1/merchants/:merchant/webhook_endpoints"

bool notifier_api_token_ok(const char *header, const char *token)
{
    static const char scheme[] = "Bearer ";
    if (header == NULL || token == NULL || token[0] == '\0' ||
        strncmp(header, scheme, sizeof(scheme) - 1) != 0) {
        return false;
    }
    const char *given = header + sizeof(scheme) - 1;
    size_t n = strlen(token);
    /* The length is not secret (it is fixed per deployment); the bytes are. */
    return strlen(given) == n && CRYPTO_memcmp(given, token, n) == 0;
}

static void respond_unavailable(keel_http_response *resp, const char *message)
{
    keel_http_respond_error(resp, 503, "api_error", "service_unavailable", message, NULL);
    keel_http_response_header(resp, "Retry-After", "1");
}

static void respond_invalid(keel_http_response *resp, const char *code, const char *message,
                            const char *param)
{
    keel_http_respond_error(resp, 400, "invalid_request_error", code, message, param);
}

static void respond_missing(keel_http_response *resp)
{
    keel_http_respond_error(resp, 404, "invalid_request_error", "resource_missing",
                            "no such webhook endpoint for this merchant", "id");
}

/* Merchant ids come from the gateway's own records; anything else is a caller bug. */
static bool merchant_id_ok(const char *m)
{
    size_t n = m != NULL ? strlen(m) : 0;
    if (n == 0 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = m[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* Checks the token and the merchant; answers 401/400 itself and returns NULL otherwise. */
static const char *api_begin(const notifier_api *api, const keel_http_request *req,
                             keel_http_response *resp)
{
    if (!notifier_api_token_ok(keel_http_request_header(req, "Authorization"), api->token)) {
        keel_http_respond_error(resp, 401, "authentication_error", "invalid_internal_token",
                                "the internal API needs \"Authorization: Bearer <the token in "
                                "KEEL_NOTIFIER_INTERNAL_TOKEN_FILE>\"",
                                NULL);
        return NULL;
    }
    const char *merchant = keel_http_request_param(req, "merchant");
    if (!merchant_id_ok(merchant)) {
        respond_invalid(resp, "merchant_invalid",
                        "the merchant id must be 1..63 letters, digits, '_' or '-'", "merchant");
        return NULL;
    }
    return merchant;
}

static keel_db *api_acquire(const notifier_api *api, keel_http_response *resp)
{
    keel_db *db = keel_db_pool_acquire(api->pool, api->acquire_timeout_ms);
    if (db == NULL) {
        respond_unavailable(resp, "no database connection became free in time; retry shortly");
    }
    return db;
}

/* ---- create ---------------------------------------------------------------------------- */

typedef struct create_input {
    const char *url;
    const char *description;
    const char *events[NOTIFIER_MAX_EVENTS_PER_ENDPOINT];
    size_t event_count;
} create_input;

/* Validates the create body; answers 400 itself and returns false when it is not usable. */
static bool create_validate(json_t *body, create_input *in, keel_http_response *resp)
{
    const char *key;
    json_t *value;
    memset(in, 0, sizeof(*in));
    in->description = "";
    json_object_foreach(body, key, value)
    {
        if (strcmp(key, "url") != 0 && strcmp(key, "enabled_events") != 0 &&
            strcmp(key, "description") != 0) {
            respond_invalid(resp, "parameter_unknown",
                            "unknown parameter; a webhook endpoint takes url, enabled_events "
                            "and description",
                            key);
            return false;
        }
    }
    json_t *url = json_object_get(body, "url");
    if (!json_is_string(url)) {
        respond_invalid(resp, "parameter_missing",
                        "url is required: the https URL keel posts "
                        "events to",
                        "url");
        return false;
    }
    in->url = json_string_value(url);
    json_t *desc = json_object_get(body, "description");
    if (desc != NULL && !json_is_null(desc)) {
        if (!json_is_string(desc) || json_string_length(desc) > NOTIFIER_DESCRIPTION_MAX) {
            respond_invalid(resp, "parameter_invalid",
                            "description must be a string of at most 500 bytes", "description");
            return false;
        }
        in->description = json_string_value(desc);
    }
    json_t *events = json_object_get(body, "enabled_events");
    size_t n = json_is_array(events) ? json_array_size(events) : 0;
    if (n == 0 || n > NOTIFIER_MAX_EVENTS_PER_ENDPOINT) {
        respond_invalid(resp, "parameter_invalid",
                        "enabled_events must be a list of 1 to 16 event types, e.g. "
                        "[\"payment.succeeded\", \"payment.failed\"] or [\"*\"]",
                        "enabled_events");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const char *type = json_string_value(json_array_get(events, i));
        if (!notifier_event_type_known(type)) {
            respond_invalid(resp, "parameter_invalid",
                            "enabled_events holds an unknown event type; known types: "
                            "payment.succeeded, payment.failed, payment.requires_review, "
                            "refund.succeeded, refund.failed, or \"*\" for all",
                            "enabled_events");
            return false;
        }
        for (size_t k = 0; k < in->event_count; k++) {
            if (strcmp(in->events[k], type) == 0) {
                type = NULL; /* a repeated type is harmless: keep one */
                break;
            }
        }
        if (type != NULL) {
            in->events[in->event_count++] = type;
        }
    }
    return true;
}

/* Answers a URL the SSRF guard or the parser refused, in words the merchant can act on. */
static void respond_url_problem(keel_http_response *resp, keel_result r, const char *why)
{
    char message[600];
    switch (r) {
    case KEEL_ERR_TRANSIENT:
    case KEEL_ERR_TIMEOUT:
        snprintf(message, sizeof(message),
                 "the url's host could not be resolved right now (%s); "
                 "try again",
                 why);
        respond_unavailable(resp, message);
        return;
    case KEEL_ERR_NOT_FOUND:
        snprintf(message, sizeof(message), "the url's host does not resolve: %s", why);
        respond_invalid(resp, "url_unresolvable", message, "url");
        return;
    default:
        break;
    }
    snprintf(message, sizeof(message), "url is not allowed: %s", why);
    respond_invalid(resp, "url_invalid", message, "url");
}

typedef struct create_tx {
    const notifier_endpoint_new *ep;
    int max_endpoints;
} create_tx;

static keel_result create_body(keel_db *db, void *arg)
{
    create_tx *tx = arg;
    return notifier_store_endpoint_insert(db, tx->ep, tx->max_endpoints);
}

/* Answers the endpoint's view with its secret added (create and rotate, the only answers that
 * ever carry a secret). */
static void respond_with_secret(keel_db *db, const char *merchant, const char *id,
                                const char *secret, keel_http_response *resp)
{
    json_t *view = NULL;
    keel_result r = notifier_store_endpoint_get(db, merchant, id, &view);
    if (r != KEEL_OK) {
        /* Committed but not readable back: the merchant must not lose the secret silently. */
        keel_log_error("endpoint %s of %s was saved but could not be read back (%s)", id, merchant,
                       keel_result_name(r));
        respond_unavailable(resp, "the endpoint was saved but its answer could not be built; "
                                  "rotate its secret to get a new one");
        return;
    }
    json_object_set_new(view, "secret", json_string(secret));
    keel_http_respond_json(resp, 200, view);
}

static void handle_create(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    notifier_api *api = ctx;
    json_t *body = NULL;
    keel_db *db = NULL;
    create_input in;
    char why[512];
    char id[48];
    char secret[NOTIFIER_SECRET_LEN] = "";
    keel_ip addr;

    const char *merchant = api_begin(api, req, resp);
    if (merchant == NULL) {
        goto done;
    }
    body = keel_http_request_json(req, resp);
    if (body == NULL || !create_validate(body, &in, resp)) {
        goto done;
    }
    keel_result r = notifier_url_check(in.url, api->allow_http, api->allow, api->dns_timeout_ms,
                                       &addr, why, sizeof(why));
    if (r != KEEL_OK) {
        keel_log_info("merchant %s: webhook url refused: %s", merchant, why);
        respond_url_problem(resp, r, why);
        goto done;
    }
    if (!notifier_secret_new(secret)) {
        respond_unavailable(resp, "no randomness for a signing secret; retry shortly");
        goto done;
    }
    keel_id_new("we_", id, sizeof(id));
    notifier_endpoint_new ep = {
        .id = id,
        .merchant_id = merchant,
        .url = in.url,
        .description = in.description,
        .events = in.events,
        .event_count = in.event_count,
        .secret = secret,
    };
    create_tx tx = {.ep = &ep, .max_endpoints = api->max_endpoints};
    db = api_acquire(api, resp);
    if (db == NULL) {
        goto done;
    }
    r = keel_db_transaction(db, NULL, create_body, &tx, NULL);
    if (r == KEEL_ERR_FULL) {
        char message[160];
        snprintf(message, sizeof(message),
                 "a merchant can have at most %d webhook endpoints; delete one first",
                 api->max_endpoints);
        respond_invalid(resp, "endpoint_limit_reached", message, NULL);
        goto done;
    }
    if (r != KEEL_OK) {
        respond_unavailable(resp, "the database is unavailable; nothing was created, retry");
        goto done;
    }
    keel_log_info("merchant %s: webhook endpoint %s created (%zu event types)", merchant, id,
                  in.event_count);
    respond_with_secret(db, merchant, id, secret, resp);
done:
    memset(secret, 0, sizeof(secret));
    if (db != NULL) {
        keel_db_pool_release(api->pool, db);
        db = NULL;
    }
    json_decref(body);
    body = NULL;
}

/* ---- read, list, delete ------------------------------------------------------------------ */

/* api_begin for a route with an endpoint id: also answers 404 for an id that cannot exist. */
static bool api_begin_endpoint(const notifier_api *api, const keel_http_request *req,
                               keel_http_response *resp, const char **merchant, const char **id)
{
    *merchant = api_begin(api, req, resp);
    *id = keel_http_request_param(req, "id");
    if (*merchant == NULL) {
        return false;
    }
    if (*id == NULL || strncmp(*id, "we_", 3) != 0 || strlen(*id) >= 48) {
        respond_missing(resp);
        return false;
    }
    return true;
}

static void handle_get(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    notifier_api *api = ctx;
    const char *merchant;
    const char *id;
    json_t *view = NULL;
    if (!api_begin_endpoint(api, req, resp, &merchant, &id)) {
        return;
    }
    keel_db *db = api_acquire(api, resp);
    if (db == NULL) {
        return;
    }
    keel_result r = notifier_store_endpoint_get(db, merchant, id, &view);
    keel_db_pool_release(api->pool, db);
    if (r == KEEL_OK) {
        keel_http_respond_json(resp, 200, view);
    } else if (r == KEEL_ERR_NOT_FOUND) {
        respond_missing(resp);
    } else {
        respond_unavailable(resp, "the database is unavailable; retry shortly");
    }
}

static void handle_list(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    notifier_api *api = ctx;
    const char *merchant = api_begin(api, req, resp);
    json_t *data = NULL;
    if (merchant == NULL) {
        return;
    }
    keel_db *db = api_acquire(api, resp);
    if (db == NULL) {
        return;
    }
    keel_result r = notifier_store_endpoint_list(db, merchant, &data);
    keel_db_pool_release(api->pool, db);
    if (r != KEEL_OK) {
        respond_unavailable(resp, "the database is unavailable; retry shortly");
        return;
    }
    /* At most max_endpoints per merchant, so one page always holds them all. */
    keel_http_respond_json(
        resp, 200, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", 0));
}

typedef struct delete_tx {
    const char *merchant;
    const char *id;
} delete_tx;

static keel_result delete_body(keel_db *db, void *arg)
{
    delete_tx *tx = arg;
    return notifier_store_endpoint_delete(db, tx->merchant, tx->id);
}

static void handle_delete(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    notifier_api *api = ctx;
    const char *merchant;
    const char *id;
    if (!api_begin_endpoint(api, req, resp, &merchant, &id)) {
        return;
    }
    keel_db *db = api_acquire(api, resp);
    if (db == NULL) {
        return;
    }
    delete_tx tx = {.merchant = merchant, .id = id};
    keel_result r = keel_db_transaction(db, NULL, delete_body, &tx, NULL);
    keel_db_pool_release(api->pool, db);
    if (r == KEEL_OK) {
        keel_log_info("merchant %s: webhook endpoint %s deleted", merchant, id);
        keel_http_respond_json(
            resp, 200,
            json_pack("{s:s, s:s, s:b}", "id", id, "object", "webhook_endpoint", "deleted", 1));
    } else if (r == KEEL_ERR_NOT_FOUND) {
        respond_missing(resp);
    } else {
        respond_unavailable(resp, "the database is unavailable; nothing was deleted, retry");
    }
}

/* ---- rotate ---------------------------------------------------------------------------- */

/* The overlap asked for, or the default; answers 400 itself and returns -1 when invalid. */
static int64_t rotate_overlap(const keel_http_request *req, keel_http_response *resp)
{
    size_t len = 0;
    keel_http_request_body(req, &len);
    if (len == 0) {
        return NOTIFIER_DEFAULT_OVERLAP_S;
    }
    json_t *body = keel_http_request_json(req, resp);
    if (body == NULL) {
        return -1;
    }
    int64_t overlap = NOTIFIER_DEFAULT_OVERLAP_S;
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        if (strcmp(key, "overlap_seconds") != 0) {
            respond_invalid(resp, "parameter_unknown",
                            "unknown parameter; rotate_secret takes overlap_seconds", key);
            overlap = -1;
            break;
        }
        if (!json_is_integer(value) || json_integer_value(value) < 0 ||
            json_integer_value(value) > NOTIFIER_MAX_OVERLAP_S) {
            respond_invalid(resp, "parameter_invalid",
                            "overlap_seconds must be an integer from 0 to 604800 (7 days): how "
                            "long the old secret keeps signing alongside the new one",
                            "overlap_seconds");
            overlap = -1;
            break;
        }
        overlap = (int64_t)json_integer_value(value);
    }
    json_decref(body);
    return overlap;
}

static void handle_rotate(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    notifier_api *api = ctx;
    const char *merchant;
    const char *id;
    char secret[NOTIFIER_SECRET_LEN] = "";
    keel_db *db = NULL;
    if (!api_begin_endpoint(api, req, resp, &merchant, &id)) {
        return;
    }
    int64_t overlap = rotate_overlap(req, resp);
    if (overlap < 0) {
        return;
    }
    if (!notifier_secret_new(secret)) {
        respond_unavailable(resp, "no randomness for a signing secret; retry shortly");
        return;
    }
    db = api_acquire(api, resp);
    if (db == NULL) {
        goto done;
    }
    keel_result r = notifier_store_endpoint_rotate(db, merchant, id, secret, overlap);
    if (r == KEEL_ERR_NOT_FOUND) {
        respond_missing(resp);
        goto done;
    }
    if (r != KEEL_OK) {
        respond_unavailable(resp, "the database is unavailable; the secret is unchanged, retry");
        goto done;
    }
    keel_log_info("merchant %s: webhook endpoint %s has a new secret; the old one signs too for "
                  "%lld s",
                  merchant, id, (long long)overlap);
    respond_with_secret(db, merchant, id, secret, resp);
done:
    memset(secret, 0, sizeof(secret));
    if (db != NULL) {
        keel_db_pool_release(api->pool, db);
        db = NULL;
    }
}

void notifier_api_register(notifier_api *api, keel_http_server *srv)
{
    keel_http_server_route(srv, "POST", API_PREFIX, handle_create, api);
    keel_http_server_route(srv, "GET", API_PREFIX, handle_list, api);
    keel_http_server_route(srv, "GET", API_PREFIX "/:id", handle_get, api);
    keel_http_server_route(srv, "DELETE", API_PREFIX "/:id", handle_delete, api);
    keel_http_server_route(srv, "POST", API_PREFIX "/:id/rotate_secret", handle_rotate, api);
}
