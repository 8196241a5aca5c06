/* API-key authentication: "Authorization: Bearer sk_..." → the merchant of an active key. */
#ifndef GATEWAY_AUTH_H
#define GATEWAY_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "keel/db.h"
#include "keel/error.h"
#include "keel/http_server.h"

#define GATEWAY_API_KEY_MAX_LEN 200 /* longer bearer tokens are refused before any lookup */

/* Who a request acts for. */
typedef struct gateway_principal {
    char merchant_id[64];
    char key_id[64];
    /* The key's own token-bucket limit, set with keelctl; 0 when the key uses the gateway's
     * default (KEEL_GATEWAY_RATE_LIMIT_PER_S / _BURST). */
    double rate_per_s;
    double burst;
} gateway_principal;

/* Finds the secret in an Authorization header value: "Bearer" (any case), one or more
 * spaces, then 1..GATEWAY_API_KEY_MAX_LEN visible ASCII characters and nothing else.
 * Returns false for a missing or malformed header. *secret points into header. */
bool gateway_auth_parse_bearer(const char *header, const char **secret, size_t *secret_len);

/* Looks the secret up by its SHA-256 among keys that are neither revoked nor expired.
 * KEEL_OK with out filled; KEEL_ERR_NOT_FOUND for an unknown, revoked or expired key (answer
 * 401); any other code is database trouble (answer 503). */
keel_result gateway_auth_lookup(keel_db *db, const char *secret, size_t secret_len,
                                gateway_principal *out);

/* The same lookup by the secret's SHA-256 hex (from gateway_sha256_hex), for callers that
 * need the hash anyway (the rate limiter keys buckets by it, never by the secret). */
keel_result gateway_auth_lookup_hash(keel_db *db, const char *hash_hex, gateway_principal *out);

/* The one 401 answer, identical for a missing, malformed, unknown or revoked key, so the
 * response tells an attacker nothing about which it was. */
void gateway_auth_respond_unauthorized(keel_http_response *resp);

#endif
