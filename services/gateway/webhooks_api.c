/* The gateway's webhook endpoints: a thin authenticated proxy to keel-notifier. */
#include "webhooks_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/http_client.h"
#include "keel/log.h"
#include "keel/metrics.h"

#define WEBHOOKS_URL_MAX 512
#define WEBHOOKS_MAX_ANSWER_BYTES (256 * 1024)

typedef struct gateway_webhooks {
    gateway_api *api;
    const char *base_url; /* owned by the configuration */
    const char *token;    /* owned by the configuration; "" = not configured */
    long timeout_ms;
    keel_metric *calls_ok;
    keel_metric *calls_failed;
} gateway_webhooks;

static gateway_webhooks webhooks;

/* Endpoint ids are "we_" and hex; anything else cannot exist and must not reach the URL. */
static bool webhooks_id_ok(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n < 4 || n > 64 || strncmp(id, "we_", 3) != 0) {
        return false;
    }
    for (size_t i = 3; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    return true;
}

/* Sends one call to the notifier for who's merchant and answers resp with its answer.
 * suffix is "" or "/<id>[/rotate_secret]"; body may be NULL. */
static void webhooks_forward(const keel_http_request *req, keel_http_response *resp,
                             const gateway_principal *who, const char *method, const char *suffix,
                             const char *body, size_t body_len)
{
    char url[WEBHOOKS_URL_MAX];
    char auth[300];
    char trace[128] = "";
    const char *tp = keel_http_request_header(req, "traceparent");
    keel_http_result res;

    if (webhooks.token[0] == '\0') {
        gateway_api_unavailable(resp, "webhooks are not configured on this gateway "
                                      "(KEEL_NOTIFIER_INTERNAL_TOKEN is empty)");
        return;
    }
    int n = snprintf(url, sizeof(url), "%s/internal/v1/merchants/%s/webhook_endpoints%s",
                     webhooks.base_url, who->merchant_id, suffix);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        gateway_api_unavailable(resp, "the notifier's URL is too long");
        return;
    }
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", webhooks.token);
    if (tp != NULL && strlen(tp) < 100) {
        snprintf(trace, sizeof(trace), "traceparent: %s", tp);
    }
    const char *headers[] = {auth, "Content-Type: application/json",
                             trace[0] != '\0' ? trace : NULL, NULL};
    keel_http_call call = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body_len,
        .connect_timeout_ms = webhooks.timeout_ms < 1000 ? webhooks.timeout_ms : 1000,
        .total_timeout_ms = webhooks.timeout_ms,
        .max_response_bytes = WEBHOOKS_MAX_ANSWER_BYTES,
    };
    keel_http_client_do(&call, &res);
    memset(auth, 0, sizeof(auth));
    if (res.failure == KEEL_HTTP_OK && res.status != 401 && res.body != NULL) {
        keel_metric_inc(webhooks.calls_ok);
        /* The answer goes out unread: it may hold a signing secret. */
        gateway_api_respond_text(resp, (unsigned)res.status, res.body);
        keel_http_result_clear(&res);
        return;
    }
    keel_metric_inc(webhooks.calls_failed);
    if (res.failure == KEEL_HTTP_OK) {
        /* 401: the two services disagree on the token; the merchant cannot fix that. */
        keel_log_error("keel-notifier answered %s %s with HTTP %ld%s", method, suffix, res.status,
                       res.status == 401 ? ": KEEL_NOTIFIER_INTERNAL_TOKEN differs between the "
                                           "gateway and the notifier"
                                         : " without a body");
        gateway_api_unavailable(resp, "webhook endpoints are unavailable right now; retry later");
    } else if (res.failure == KEEL_HTTP_NOT_SENT) {
        keel_log_warn("keel-notifier unreachable for %s webhook_endpoints%s: %s", method, suffix,
                      res.error);
        gateway_api_unavailable(resp, "webhook endpoints are unavailable right now; nothing "
                                      "was changed, retry");
    } else {
        keel_log_warn("keel-notifier did not answer %s webhook_endpoints%s in time: %s", method,
                      suffix, res.error);
        gateway_api_unavailable(resp, "webhook endpoints did not answer in time; the change may "
                                      "have been applied: list your endpoints before retrying");
    }
    keel_http_result_clear(&res);
}

static void handle_create(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_principal who;
    size_t len = 0;
    if (!gateway_api_authenticate(webhooks.api, req, resp, &who)) {
        return;
    }
    /* Only a JSON object goes on; the notifier validates its fields. */
    json_t *doc = gateway_api_body(req, resp);
    if (doc == NULL) {
        return;
    }
    json_decref(doc);
    const char *body = keel_http_request_body(req, &len);
    webhooks_forward(req, resp, &who, "POST", "", body, len);
}

static void handle_list(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_principal who;
    if (gateway_api_authenticate(webhooks.api, req, resp, &who)) {
        webhooks_forward(req, resp, &who, "GET", "", NULL, 0);
    }
}

/* The "/<id>" or "/<id>/rotate_secret" suffix, or false after answering 404. */
static bool webhooks_suffix(const keel_http_request *req, keel_http_response *resp,
                            const char *tail, char *out, size_t out_len)
{
    const char *id = keel_http_request_param(req, "id");
    if (!webhooks_id_ok(id)) {
        gateway_api_not_found(resp, "webhook endpoint", "id");
        return false;
    }
    snprintf(out, out_len, "/%s%s", id, tail);
    return true;
}

/* GET and DELETE of one endpoint: the method passes through (the route's ctx). */
static void handle_one(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_principal who;
    char suffix[96];
    if (gateway_api_authenticate(webhooks.api, req, resp, &who) &&
        webhooks_suffix(req, resp, "", suffix, sizeof(suffix))) {
        webhooks_forward(req, resp, &who, ctx, suffix, NULL, 0);
    }
}

static void handle_rotate(const keel_http_request *req, keel_http_response *resp, void *ctx)
{
    gateway_principal who;
    char suffix[96];
    size_t len = 0;
    if (!gateway_api_authenticate(webhooks.api, req, resp, &who) ||
        !webhooks_suffix(req, resp, "/rotate_secret", suffix, sizeof(suffix))) {
        return;
    }
    const char *body = keel_http_request_body(req, &len);
    if (len > 0) {
        json_t *doc = gateway_api_body(req, resp);
        if (doc == NULL) {
            return;
        }
        json_decref(doc);
    }
    webhooks_forward(req, resp, &who, "POST", suffix, len > 0 ? body : NULL, len);
}

bool gateway_webhooks_api_register(gateway_api *api, keel_http_server *srv, const keel_config *cfg)
{
    keel_metrics *m = keel_metrics_default();
    const char *base = keel_config_string(cfg, "KEEL_GATEWAY_NOTIFIER_URL");
    int64_t timeout = keel_config_int(cfg, "KEEL_GATEWAY_NOTIFIER_TIMEOUT_MS");

    if ((strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) ||
        strlen(base) > 200 || base[strlen(base) - 1] == '/') {
        keel_log_error("KEEL_GATEWAY_NOTIFIER_URL=%s must be an http(s) base URL of at most 200 "
                       "characters without a trailing slash, e.g. http://127.0.0.1:18130",
                       base);
        return false;
    }
    if (timeout < 100 || timeout > 60000) {
        keel_log_error("KEEL_GATEWAY_NOTIFIER_TIMEOUT_MS=%lld must be 100..60000",
                       (long long)timeout);
        return false;
    }
    webhooks = (gateway_webhooks){
        .api = api,
        .base_url = base,
        .token = keel_config_string(cfg, "KEEL_NOTIFIER_INTERNAL_TOKEN"),
        .timeout_ms = (long)timeout,
        .calls_ok = keel_metrics_counter(m, "keel_gateway_notifier_calls_total",
                                         "Calls to keel-notifier's internal API, by result",
                                         "result=\"ok\""),
        .calls_failed = keel_metrics_counter(m, "keel_gateway_notifier_calls_total",
                                             "Calls to keel-notifier's internal API, by result",
                                             "result=\"failed\""),
    };
    if (webhooks.token[0] == '\0') {
        keel_log_warn("KEEL_NOTIFIER_INTERNAL_TOKEN is empty: /v1/webhook_endpoints answers 503 "
                      "until it is set (the file keel-notifier reads)");
    }
    keel_http_server_route(srv, "POST", "/v1/webhook_endpoints", handle_create, NULL);
    keel_http_server_route(srv, "GET", "/v1/webhook_endpoints", handle_list, NULL);
    keel_http_server_route(srv, "GET", "/v1/webhook_endpoints/:id", handle_one, "GET");
    keel_http_server_route(srv, "DELETE", "/v1/webhook_endpoints/:id", handle_one, "DELETE");
    keel_http_server_route(srv, "POST", "/v1/webhook_endpoints/:id/rotate_secret", handle_rotate,
                           NULL);
    return true;
}
