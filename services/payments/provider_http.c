/* The HTTP plumbing the provider adapters and the risk client share, and the helpers their
 * answer mappings use. */
#include "provider_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/cloudevents.h"
#include "keel/log.h"

int payments_http_peer_init(payments_http_peer *peer, const char *name, const char *base_url,
                            const char *api_key, long timeout_ms, long connect_timeout_ms,
                            const char *url_var, const char *key_var, char *err, size_t err_len)
{
    memset(peer, 0, sizeof(*peer));
    if (base_url == NULL || base_url[0] == '\0') {
        snprintf(err, err_len, "%s needs a base URL (%s)", name, url_var);
        return -1;
    }
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0) {
        snprintf(err, err_len, "%s=%s is not an http:// or https:// URL", url_var, base_url);
        return -1;
    }
    if (api_key == NULL || api_key[0] == '\0') {
        snprintf(err, err_len, "%s needs an API key (%s or %s_FILE)", name, key_var, key_var);
        return -1;
    }
    if (timeout_ms <= 0 || connect_timeout_ms <= 0 || connect_timeout_ms > timeout_ms) {
        snprintf(err, err_len,
                 "%s timeouts must be positive with connect (%ld ms) <= total (%ld ms)", name,
                 connect_timeout_ms, timeout_ms);
        return -1;
    }
    size_t auth_len = strlen("Authorization: Bearer ") + strlen(api_key) + 1;
    peer->name = strdup(name);
    peer->base_url = strdup(base_url);
    peer->key_var = strdup(key_var);
    peer->auth_header = malloc(auth_len);
    if (peer->name == NULL || peer->base_url == NULL || peer->key_var == NULL ||
        peer->auth_header == NULL) {
        payments_http_peer_clear(peer);
        snprintf(err, err_len, "out of memory setting up %s", name);
        return -1;
    }
    snprintf(peer->auth_header, auth_len, "Authorization: Bearer %s", api_key);
    size_t n = strlen(peer->base_url);
    while (n > 0 && peer->base_url[n - 1] == '/') {
        peer->base_url[--n] = '\0';
    }
    peer->timeout_ms = timeout_ms;
    peer->connect_timeout_ms = connect_timeout_ms;
    return 0;
}

void payments_http_peer_clear(payments_http_peer *peer)
{
    if (peer->auth_header != NULL) {
        /* The key should not linger in freed memory. */
        memset(peer->auth_header, 0, strlen(peer->auth_header));
        free(peer->auth_header);
        peer->auth_header = NULL;
    }
    free(peer->name);
    peer->name = NULL;
    free(peer->base_url);
    peer->base_url = NULL;
    free(peer->key_var);
    peer->key_var = NULL;
}

void payments_http_peer_call(const payments_http_peer *peer, const char *method, const char *path,
                             const char *json_body, const char *idempotency_key,
                             const char *traceparent, keel_http_result *out)
{
    char url[1024];
    char idem[320];
    char trace[KEEL_TRACEPARENT_LEN + 16];
    char child[KEEL_TRACEPARENT_LEN];
    const char *headers[6];
    size_t n = 0;

    snprintf(url, sizeof(url), "%s%s", peer->base_url, path);
    keel_traceparent_child(traceparent, child);
    snprintf(trace, sizeof(trace), "traceparent: %s", child);
    headers[n++] = peer->auth_header;
    headers[n++] = "Accept: application/json";
    headers[n++] = trace;
    if (json_body != NULL) {
        headers[n++] = "Content-Type: application/json";
    }
    if (idempotency_key != NULL) {
        snprintf(idem, sizeof(idem), "Idempotency-Key: %s", idempotency_key);
        headers[n++] = idem;
    }
    headers[n] = NULL;
    keel_http_call call = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = json_body,
        .body_len = json_body != NULL ? strlen(json_body) : 0,
        .connect_timeout_ms = peer->connect_timeout_ms,
        .total_timeout_ms = peer->timeout_ms,
        .max_response_bytes = PAYMENTS_MAX_RESPONSE_BYTES,
    };
    memset(out, 0, sizeof(*out));
    keel_http_client_do(&call, out);
    if (out->failure == KEEL_HTTP_OK && (out->status == 401 || out->status == 403)) {
        keel_log_error("%s refused our credentials (HTTP %ld on %s %s): set %s(_FILE) to the key "
                       "%s expects",
                       peer->name, out->status, method, path, peer->key_var, peer->name);
    }
}

static void http_provider_free(payments_provider *p)
{
    if (p == NULL) {
        return;
    }
    payments_http_peer *peer = p->impl;
    if (peer != NULL) {
        payments_http_peer_clear(peer);
        free(peer);
        p->impl = NULL;
    }
    free(p);
}

payments_provider *payments_http_provider_new(const char *name, const char *base_url,
                                              const char *api_key, long timeout_ms,
                                              long connect_timeout_ms, const char *url_var,
                                              const char *key_var, char *err, size_t err_len)
{
    payments_provider *p = calloc(1, sizeof(*p));
    payments_http_peer *peer = calloc(1, sizeof(*peer));
    if (p == NULL || peer == NULL) {
        snprintf(err, err_len, "out of memory creating %s", name);
        goto fail;
    }
    if (payments_http_peer_init(peer, name, base_url, api_key, timeout_ms, connect_timeout_ms,
                                url_var, key_var, err, err_len) != 0) {
        goto fail;
    }
    p->name = name;
    p->impl = peer;
    p->free = http_provider_free;
    return p;
fail:
    free(peer);
    free(p);
    return NULL;
}

/* ---- reading answers -------------------------------------------------------------------- */

void payments_outcome_reset(payments_charge_outcome *out, payments_charge_status status)
{
    memset(out, 0, sizeof(*out));
    out->status = status;
}

void payments_copy_str(char *dst, size_t dst_len, const char *src)
{
    snprintf(dst, dst_len, "%s", src != NULL ? src : "");
}

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

void payments_outcome_sanitize(payments_charge_outcome *out)
{
    utf8_trim_tail(out->charge_id);
    utf8_trim_tail(out->failure_code);
    utf8_trim_tail(out->failure_message);
    utf8_trim_tail(out->detail);
}

const char *payments_json_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

json_t *payments_json_object_body(const keel_http_result *r)
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

json_t *payments_metadata_object(const char *metadata_json)
{
    if (metadata_json == NULL || metadata_json[0] == '\0') {
        return json_object();
    }
    json_t *metadata = json_loads(metadata_json, 0, NULL);
    if (!json_is_object(metadata)) {
        json_decref(metadata);
        return NULL;
    }
    return metadata;
}

bool payments_map_transport(const keel_http_result *r, payments_charge_outcome *out)
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
        /* The peer answered, but with something we refuse to read: it may have acted. */
        out->status = PAYMENTS_CHARGE_UNKNOWN;
        snprintf(out->detail, sizeof(out->detail), "answer larger than %d bytes",
                 PAYMENTS_MAX_RESPONSE_BYTES);
        return true;
    }
    out->status = PAYMENTS_CHARGE_UNKNOWN;
    snprintf(out->detail, sizeof(out->detail), "unexpected transport result %d", (int)r->failure);
    return true;
}

bool payments_map_not_processed_status(const keel_http_result *r, const char *provider,
                                       const char *key_var, payments_charge_outcome *out)
{
    long st = r->status;
    if (st == 401 || st == 403) {
        /* Authentication happens before anything else: nothing happened. Our configuration is
         * wrong, which retrying will not fix, but a fixed key will, so it stays retryable. */
        out->status = PAYMENTS_CHARGE_NOT_PROCESSED;
        snprintf(out->detail, sizeof(out->detail), "HTTP %ld: %s rejected the API key; check %s",
                 st, provider, key_var);
        return true;
    }
    if (st == 429) {
        out->status = PAYMENTS_CHARGE_NOT_PROCESSED;
        snprintf(out->detail, sizeof(out->detail), "HTTP 429: rate limited");
        return true;
    }
    if (st == 500 || st == 502 || st == 503) {
        /* In general a 5xx is ambiguous: the server may have acted and then failed while
         * answering. These three are not_processed only because the providers document that
         * they answer them before any work (and keel-provider-sim does exactly that). Any
         * other 5xx (504 from a proxy that timed out waiting, ...) stays unknown. */
        out->status = PAYMENTS_CHARGE_NOT_PROCESSED;
        snprintf(out->detail, sizeof(out->detail), "HTTP %ld: %s error before any work", st,
                 provider);
        return true;
    }
    return false;
}

static void outcome_unsendable(payments_charge_outcome *out, const char *provider, const char *what)
{
    payments_outcome_reset(out, PAYMENTS_CHARGE_DECLINED);
    payments_copy_str(out->failure_code, sizeof(out->failure_code), "invalid_request");
    snprintf(out->failure_message, sizeof(out->failure_message),
             "the stored %s could not be encoded for %s", what, provider);
    snprintf(out->detail, sizeof(out->detail), "%s request could not be built", what);
}

void payments_http_peer_send(const payments_http_peer *peer, const char *path, char *json_body,
                             const char *idempotency_key, const char *traceparent, const char *what,
                             void (*map)(const keel_http_result *, payments_charge_outcome *),
                             payments_charge_outcome *out)
{
    keel_http_result res;
    if (json_body == NULL) {
        outcome_unsendable(out, peer->name, what);
        return;
    }
    payments_http_peer_call(peer, "POST", path, json_body, idempotency_key, traceparent, &res);
    map(&res, out);
    keel_http_result_clear(&res);
    free(json_body);
    json_body = NULL;
}

payments_lookup_status payments_http_peer_lookup(
    const payments_http_peer *peer, const char *path, const char *traceparent,
    payments_lookup_status (*map)(const keel_http_result *, payments_charge_outcome *),
    payments_charge_outcome *out)
{
    keel_http_result res;
    payments_http_peer_call(peer, "GET", path, NULL, NULL, traceparent, &res);
    payments_lookup_status st = map(&res, out);
    keel_http_result_clear(&res);
    return st;
}
