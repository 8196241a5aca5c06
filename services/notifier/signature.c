/* HMAC-SHA256 webhook signatures over the exact bytes sent, and random whsec_ secrets. */
#include "signature.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static void signature_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

bool notifier_secret_new(char out[NOTIFIER_SECRET_LEN])
{
    unsigned char raw[32];
    size_t got = 0;
    out[0] = '\0';
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n <= 0) {
            return false;
        }
        got += (size_t)n;
    }
    memcpy(out, NOTIFIER_SECRET_PREFIX, sizeof(NOTIFIER_SECRET_PREFIX) - 1);
    signature_hex(raw, sizeof(raw), out + sizeof(NOTIFIER_SECRET_PREFIX) - 1);
    return true;
}

bool notifier_hmac_hex(const char *secret, int64_t t, const char *body, size_t len,
                       char out[NOTIFIER_HMAC_HEX_LEN])
{
    bool ok = false;
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    unsigned char digest[32];
    size_t digest_len = 0;
    char prefix[32];
    char sha256[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha256, 0),
        OSSL_PARAM_construct_end(),
    };

    out[0] = '\0';
    int plen = snprintf(prefix, sizeof(prefix), "%" PRId64 ".", t);
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx == NULL ||
        EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) != 1 ||
        (len > 0 && EVP_MAC_update(ctx, (const unsigned char *)body, len) != 1) ||
        EVP_MAC_final(ctx, digest, &digest_len, sizeof(digest)) != 1 ||
        digest_len != sizeof(digest)) {
        goto done;
    }
    signature_hex(digest, sizeof(digest), out);
    ok = true;
done:
    EVP_MAC_CTX_free(ctx);
    ctx = NULL;
    EVP_MAC_free(mac);
    mac = NULL;
    return ok;
}

bool notifier_signature_header(int64_t t, const char *body, size_t len, const char *secret,
                               const char *previous, char out[NOTIFIER_SIGNATURE_LEN])
{
    char current_hex[NOTIFIER_HMAC_HEX_LEN];
    char previous_hex[NOTIFIER_HMAC_HEX_LEN];
    out[0] = '\0';
    if (!notifier_hmac_hex(secret, t, body, len, current_hex)) {
        return false;
    }
    if (previous == NULL || previous[0] == '\0') {
        snprintf(out, NOTIFIER_SIGNATURE_LEN, "t=%" PRId64 ",v1=%s", t, current_hex);
        return true;
    }
    if (!notifier_hmac_hex(previous, t, body, len, previous_hex)) {
        return false;
    }
    snprintf(out, NOTIFIER_SIGNATURE_LEN, "t=%" PRId64 ",v1=%s,v1=%s", t, current_hex,
             previous_hex);
    return true;
}
