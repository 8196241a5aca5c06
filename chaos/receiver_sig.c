/* Webhook signature checking for the chaos receiver: parse Keel-Signature, recompute the HMAC. */
#include "receiver_sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define CHAOS_SIG_T_MAX 24
#define CHAOS_SIG_HEX_LEN 64

/* Lowercase hex HMAC-SHA256(secret, "<t>.<body>") into out (65 bytes). */
static bool chaos_signature_compute(const char *secret, const char *t, const char *body, size_t len,
                                    char out[CHAOS_SIG_HEX_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t t_len = strlen(t);
    unsigned char *msg = malloc(t_len + 1 + len);
    bool ok = false;

    if (msg == NULL) {
        return false;
    }
    memcpy(msg, t, t_len);
    msg[t_len] = '.';
    memcpy(msg + t_len + 1, body, len);
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, t_len + 1 + len, mac, &mac_len) !=
            NULL &&
        mac_len == CHAOS_SIG_HEX_LEN / 2) {
        for (unsigned int i = 0; i < mac_len; i++) {
            snprintf(out + 2 * i, 3, "%02x", mac[i]);
        }
        ok = true;
    }
    free(msg);
    msg = NULL;
    return ok;
}

bool chaos_signature_valid(const char *secret, const char *header, const char *body, size_t len)
{
    char t[CHAOS_SIG_T_MAX] = "";
    char want[CHAOS_SIG_HEX_LEN + 1];
    const char *p = header;

    if (secret == NULL || secret[0] == '\0' || header == NULL || (body == NULL && len > 0)) {
        return false;
    }
    /* The first element must be t=<digits>. */
    if (strncmp(p, "t=", 2) != 0) {
        return false;
    }
    p += 2;
    size_t n = strspn(p, "0123456789");
    if (n == 0 || n >= sizeof(t) || (p[n] != ',' && p[n] != '\0')) {
        return false;
    }
    memcpy(t, p, n);
    t[n] = '\0';
    p += n;
    if (!chaos_signature_compute(secret, t, body != NULL ? body : "", len, want)) {
        return false;
    }
    while (*p == ',') {
        p++;
        size_t item = strcspn(p, ",");
        if (item == 3 + CHAOS_SIG_HEX_LEN && strncmp(p, "v1=", 3) == 0 &&
            CRYPTO_memcmp(p + 3, want, CHAOS_SIG_HEX_LEN) == 0) {
            return true;
        }
        p += item;
    }
    return false;
}
