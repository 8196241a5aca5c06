/* API-key authentication: Bearer secret → SHA-256 hex → the api_keys row of an active key. */
#include "auth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "digest.h"
#include "keel/log.h"
#include "payment_sql.h"

bool gateway_auth_parse_bearer(const char *header, const char **secret, size_t *secret_len)
{
    static const char scheme[] = "Bearer";
    const char *p;
    size_t len;

    *secret = NULL;
    *secret_len = 0;
    if (header == NULL || strncasecmp(header, scheme, sizeof(scheme) - 1) != 0) {
        return false;
    }
    p = header + sizeof(scheme) - 1;
    if (*p != ' ') {
        return false;
    }
    while (*p == ' ') {
        p++;
    }
    len = strlen(p);
    if (len == 0 || len > GATEWAY_API_KEY_MAX_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f) {
            return false;
        }
    }
    *secret = p;
    *secret_len = len;
    return true;
}

static const char SQL_LOOKUP[] = GATEWAY_SQL_AUTH_LOOKUP;

keel_result gateway_auth_lookup(keel_db *db, const char *secret, size_t secret_len,
                                gateway_principal *out)
{
    char hash[GATEWAY_SHA256_HEX_LEN];

    /* Only the hash is stored, so a leaked table does not leak usable keys; the index
     * lookup by hash reveals nothing about the secret's bytes. */
    gateway_sha256_hex(secret, secret_len, hash);
    return gateway_auth_lookup_hash(db, hash, out);
}

keel_result gateway_auth_lookup_hash(keel_db *db, const char *hash, gateway_principal *out)
{
    const char *params[1] = {hash};
    PGresult *res;
    keel_result r;

    memset(out, 0, sizeof(*out));
    res = keel_db_exec_prepared(db, "gateway_auth_lookup", SQL_LOOKUP, 1, params);
    r = keel_db_check(db, res, "looking up the API key");
    if (r != KEEL_OK) {
        goto done;
    }
    /* The equality already happened in the index; comparing again in constant time keeps
     * this code safe should the lookup ever become a prefix or range query. */
    if (PQntuples(res) != 1 || PQgetlength(res, 0, 2) != GATEWAY_SHA256_HEX_LEN - 1 ||
        strlen(hash) != GATEWAY_SHA256_HEX_LEN - 1 ||
        CRYPTO_memcmp(PQgetvalue(res, 0, 2), hash, GATEWAY_SHA256_HEX_LEN - 1) != 0) {
        r = KEEL_ERR_NOT_FOUND;
        goto done;
    }
    if ((size_t)PQgetlength(res, 0, 0) >= sizeof(out->key_id) ||
        (size_t)PQgetlength(res, 0, 1) >= sizeof(out->merchant_id)) {
        keel_log_error("api_keys row has an id or merchant_id longer than the gateway allows");
        r = KEEL_ERR;
        goto done;
    }
    snprintf(out->key_id, sizeof(out->key_id), "%s", PQgetvalue(res, 0, 0));
    snprintf(out->merchant_id, sizeof(out->merchant_id), "%s", PQgetvalue(res, 0, 1));
    out->rate_per_s = strtod(PQgetvalue(res, 0, 3), NULL);
    out->burst = strtod(PQgetvalue(res, 0, 4), NULL);
done:
    PQclear(res);
    return r;
}

void gateway_auth_respond_unauthorized(keel_http_response *resp)
{
    static const char body[] =
        "{\"error\":{\"type\":\"authentication_error\",\"code\":\"invalid_api_key\","
        "\"message\":\"Invalid API key: send an active secret key as "
        "\\\"Authorization: Bearer sk_...\\\"\",\"param\":null}}";

    /* One constant body, byte for byte the same for every reason a key is refused. */
    keel_http_respond_raw(resp, 401, "application/json", body, sizeof(body) - 1);
    keel_http_response_header(resp, "WWW-Authenticate", "Bearer realm=\"keel\"");
}
