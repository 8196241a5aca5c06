/* What every outbound HTTP peer of keel-payments shares (the provider adapters and the risk
 * client): base URL, bearer key and timeouts, one call helper, and the answer-reading helpers
 * the adapters' mappings are built from. */
#ifndef PAYMENTS_PROVIDER_HTTP_H
#define PAYMENTS_PROVIDER_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "keel/http_client.h"
#include "provider.h"

/* The largest answer read from any provider or the risk API; a bigger one is no usable
 * answer (and, for a charge, an unknown outcome). */
#define PAYMENTS_MAX_RESPONSE_BYTES (64 * 1024)

typedef struct payments_http_peer {
    char *name;        /* "provider_a", for messages */
    char *base_url;    /* without a trailing '/' */
    char *auth_header; /* "Authorization: Bearer <key>"; never logged */
    char *key_var;     /* the variable that holds the key, named in error messages */
    long timeout_ms;   /* total per call, connect included */
    long connect_timeout_ms;
} payments_http_peer;

/* Copies everything. Returns 0, or -1 with err naming url_var / key_var when the URL or key
 * is empty or the timeouts are not 0 < connect <= total. */
int payments_http_peer_init(payments_http_peer *peer, const char *name, const char *base_url,
                            const char *api_key, long timeout_ms, long connect_timeout_ms,
                            const char *url_var, const char *key_var, char *err, size_t err_len);
/* Frees the copies (the key is wiped first). Safe on a zeroed or cleared peer. */
void payments_http_peer_clear(payments_http_peer *peer);

/* One call to base_url + path, blocking up to the peer's timeouts. json_body may be NULL (no
 * body); idempotency_key may be NULL (no Idempotency-Key header); traceparent is the parent
 * of the call's own traceparent (NULL or "" = a new trace). Logs an actionable error when the
 * peer refuses our key (401/403). The caller clears out. */
void payments_http_peer_call(const payments_http_peer *peer, const char *method, const char *path,
                             const char *json_body, const char *idempotency_key,
                             const char *traceparent, keel_http_result *out);

/* A provider whose impl is a payments_http_peer set up as payments_http_peer_init says (name
 * must be a string literal: the provider keeps the pointer). The caller fills in the
 * functions; free is set. NULL with err filled on failure. */
payments_provider *payments_http_provider_new(const char *name, const char *base_url,
                                              const char *api_key, long timeout_ms,
                                              long connect_timeout_ms, const char *url_var,
                                              const char *key_var, char *err, size_t err_len);

/* POSTs json_body (taken: freed here) to base_url + path and maps the answer with map. A NULL
 * body is a request that could not be built: out becomes a final "invalid_request" decline
 * naming what, and nothing is sent. idempotency_key and traceparent as for the call. */
void payments_http_peer_send(const payments_http_peer *peer, const char *path, char *json_body,
                             const char *idempotency_key, const char *traceparent, const char *what,
                             void (*map)(const keel_http_result *, payments_charge_outcome *),
                             payments_charge_outcome *out);

/* GETs base_url + path and maps the answer with map (a lookup). */
payments_lookup_status payments_http_peer_lookup(
    const payments_http_peer *peer, const char *path, const char *traceparent,
    payments_lookup_status (*map)(const keel_http_result *, payments_charge_outcome *),
    payments_charge_outcome *out);

/* ---- reading answers (pure) ------------------------------------------------------------ */

void payments_outcome_reset(payments_charge_outcome *out, payments_charge_status status);
/* Cuts a UTF-8 character that truncation split at the end of each text field: they go into
 * text columns and protobuf strings, which both refuse broken UTF-8. */
void payments_outcome_sanitize(payments_charge_outcome *out);
/* snprintf("%s") that accepts NULL as "". */
void payments_copy_str(char *dst, size_t dst_len, const char *src);
/* The string member key of obj, or NULL when missing or not a string. */
const char *payments_json_str(const json_t *obj, const char *key);
/* The body parsed as a JSON object (duplicate keys refused), or NULL. The caller decrefs. */
json_t *payments_json_object_body(const keel_http_result *r);

/* The stored metadata (a JSON object text, or NULL/"" for none) as a new object; NULL when
 * it is not an object (which intake never writes). The caller decrefs. */
json_t *payments_metadata_object(const char *metadata_json);

/* Sorts an answer that did not arrive, or arrived too large, by whether the request could
 * have reached the peer: NOT_SENT → not_processed; timeouts, resets and oversized answers →
 * unknown. Returns true when it handled r (r->failure != KEEL_HTTP_OK). */
bool payments_map_transport(const keel_http_result *r, payments_charge_outcome *out);

/* What a status code says before the body is read, for providers that document answering
 * 401/403 (our key), 429 (rate limit) and 500/502/503 before doing any work: not_processed.
 * Returns true when it decided; false leaves out alone. */
bool payments_map_not_processed_status(const keel_http_result *r, const char *provider,
                                       const char *key_var, payments_charge_outcome *out);

#endif
