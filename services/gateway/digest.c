/* SHA-256 as lowercase hex on libcrypto's EVP interface. */
#include "digest.h"

#include <openssl/evp.h>
#include <stdlib.h>

#include "keel/log.h"

struct gateway_sha256 {
    EVP_MD_CTX *ctx;
};

/* A digest failure means libcrypto itself is broken or out of memory; no request could be
 * answered correctly after it, so stop loudly instead of storing a wrong hash. */
static void digest_fail(const char *what)
{
    keel_log_error("SHA-256 %s failed inside libcrypto; aborting", what);
    abort();
}

gateway_sha256 *gateway_sha256_new(void)
{
    gateway_sha256 *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        digest_fail("allocation");
    }
    h->ctx = EVP_MD_CTX_new();
    if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        digest_fail("init");
    }
    return h;
}

void gateway_sha256_update(gateway_sha256 *h, const void *data, size_t len)
{
    if (len > 0 && EVP_DigestUpdate(h->ctx, data, len) != 1) {
        digest_fail("update");
    }
}

void gateway_sha256_final_hex(gateway_sha256 *h, char out[GATEWAY_SHA256_HEX_LEN])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (EVP_DigestFinal_ex(h->ctx, md, &md_len) != 1 || md_len != 32) {
        digest_fail("final");
    }
    for (unsigned int i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[2 * md_len] = '\0';
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    free(h);
}

void gateway_sha256_hex(const void *data, size_t len, char out[GATEWAY_SHA256_HEX_LEN])
{
    gateway_sha256 *h = gateway_sha256_new();
    gateway_sha256_update(h, data, len);
    gateway_sha256_final_hex(h, out);
}
