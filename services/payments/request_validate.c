/* Validation of PaymentRequested: pure checks, one message per broken rule. */
#include "request_validate.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "keel/money.h"

/* True if s is prefix followed by exactly 32 lowercase hex digits. */
static bool prefixed_hex32(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    if (s == NULL || strncmp(s, prefix, n) != 0 || strlen(s) != n + 32) {
        return false;
    }
    for (const char *p = s + n; *p != '\0'; p++) {
        /* Lowercase only: the id is a primary key, and "pay_AB.." and "pay_ab.." must not
         * become two payments. */
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return false;
        }
    }
    return true;
}

bool payments_payment_id_valid(const char *s)
{
    return prefixed_hex32(s, "pay_");
}

bool payments_refund_id_valid(const char *s)
{
    return prefixed_hex32(s, "re_");
}

bool payments_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != 0) {
        unsigned c = *p;
        int extra;
        uint32_t cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (int i = 1; i <= extra; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                return false; /* also stops at the terminating NUL */
            }
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        p += extra + 1;
    }
    return true;
}

size_t payments_utf8_length(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != 0; p++) {
        if ((*p & 0xC0) != 0x80) {
            n++;
        }
    }
    return n;
}

static const char *or_empty(const char *s)
{
    return s != NULL ? s : "";
}

bool payments_request_validate(const Keel__V1__PaymentRequested *req, char *err, size_t err_len)
{
    if (!payments_payment_id_valid(req->payment_id)) {
        snprintf(err, err_len,
                 "invalid payment_id: must be \"pay_\" followed by 32 lowercase "
                 "hex digits");
        return false;
    }
    const char *merchant = or_empty(req->merchant_id);
    if (merchant[0] == '\0') {
        snprintf(err, err_len, "invalid merchant_id: must not be empty");
        return false;
    }
    if (!payments_utf8_valid(merchant)) {
        snprintf(err, err_len, "invalid merchant_id: must be UTF-8");
        return false;
    }
    if (req->amount <= 0) {
        snprintf(err, err_len, "invalid amount: must be > 0");
        return false;
    }
    const keel_currency *cur = keel_currency_find(or_empty(req->currency));
    if (cur == NULL) {
        snprintf(err, err_len, "invalid currency: \"%.16s\" is not a supported ISO 4217 code",
                 or_empty(req->currency));
        return false;
    }
    if (req->amount > cur->max_amount) {
        snprintf(err, err_len, "invalid amount: must be at most %" PRId64 " for %s",
                 cur->max_amount, cur->code);
        return false;
    }
    const char *description = or_empty(req->description);
    if (strlen(description) > PAYMENTS_DESCRIPTION_MAX_BYTES) {
        snprintf(err, err_len, "invalid description: must be at most %d bytes",
                 PAYMENTS_DESCRIPTION_MAX_BYTES);
        return false;
    }
    if (!payments_utf8_valid(description)) {
        snprintf(err, err_len, "invalid description: must be UTF-8");
        return false;
    }
    /* The gateway fills in a default method; here an empty one is refused rather than
     * guessed, since it decides what gets charged. */
    const char *method = or_empty(req->payment_method);
    if (method[0] == '\0') {
        snprintf(err, err_len, "invalid payment_method: must not be empty");
        return false;
    }
    if (strlen(method) > PAYMENTS_PAYMENT_METHOD_MAX_BYTES) {
        snprintf(err, err_len, "invalid payment_method: must be at most %d bytes",
                 PAYMENTS_PAYMENT_METHOD_MAX_BYTES);
        return false;
    }
    if (!payments_utf8_valid(method)) {
        snprintf(err, err_len, "invalid payment_method: must be UTF-8");
        return false;
    }
    if (req->n_metadata > PAYMENTS_METADATA_MAX_KEYS) {
        snprintf(err, err_len, "invalid metadata: at most %d keys", PAYMENTS_METADATA_MAX_KEYS);
        return false;
    }
    for (size_t i = 0; i < req->n_metadata; i++) {
        const Keel__V1__PaymentRequested__MetadataEntry *e = req->metadata[i];
        const char *key = e != NULL ? or_empty(e->key) : "";
        const char *value = e != NULL ? or_empty(e->value) : "";
        if (key[0] == '\0' || !payments_utf8_valid(key) ||
            payments_utf8_length(key) > PAYMENTS_METADATA_KEY_MAX_CHARS) {
            snprintf(err, err_len, "invalid metadata: key %zu must be 1 to %d characters of UTF-8",
                     i + 1, PAYMENTS_METADATA_KEY_MAX_CHARS);
            return false;
        }
        if (!payments_utf8_valid(value)) {
            snprintf(err, err_len, "invalid metadata: value of \"%s\" must be UTF-8", key);
            return false;
        }
        if (payments_utf8_length(value) > PAYMENTS_METADATA_VALUE_MAX_CHARS) {
            snprintf(err, err_len,
                     "invalid metadata: value of \"%s\" is longer than %d "
                     "characters",
                     key, PAYMENTS_METADATA_VALUE_MAX_CHARS);
            return false;
        }
    }
    return true;
}

bool payments_refund_request_validate(const Keel__V1__RefundRequested *req, char *err,
                                      size_t err_len)
{
    const keel_currency *cur = keel_currency_find(or_empty(req->currency));
    if (!payments_refund_id_valid(req->refund_id)) {
        snprintf(err, err_len, "invalid refund_id: must be \"re_\" and 32 lowercase hex digits");
    } else if (!payments_payment_id_valid(req->payment_id)) {
        snprintf(err, err_len, "invalid payment_id: must be \"pay_\" and 32 lowercase hex digits");
    } else if (or_empty(req->merchant_id)[0] == '\0' || strlen(req->merchant_id) > 100 ||
               !payments_utf8_valid(req->merchant_id)) {
        snprintf(err, err_len, "invalid merchant_id: must be 1..100 bytes of UTF-8");
    } else if (req->amount <= 0) {
        snprintf(err, err_len, "invalid amount: must be > 0");
    } else if (cur == NULL) {
        snprintf(err, err_len, "invalid currency: \"%.16s\" is not a currency keel supports",
                 or_empty(req->currency));
    } else if (req->amount > cur->max_amount) {
        snprintf(err, err_len, "invalid amount: must be at most %" PRId64 " for %s",
                 cur->max_amount, cur->code);
    } else if (strlen(or_empty(req->reason)) > PAYMENTS_DESCRIPTION_MAX_BYTES ||
               !payments_utf8_valid(or_empty(req->reason))) {
        snprintf(err, err_len, "invalid reason: must be at most %d bytes of UTF-8",
                 PAYMENTS_DESCRIPTION_MAX_BYTES);
    } else {
        return true;
    }
    return false;
}
