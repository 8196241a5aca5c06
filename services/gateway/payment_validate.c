/* Strict validation of a POST /v1/payments body (see payment_validate.h for the rules). */
#include "payment_validate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool gateway_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t need;
        uint32_t cp;
        uint32_t min;

        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            need = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false; /* a continuation byte where a sequence should start, or 0xf8.. */
        }
        if (len - i <= need) {
            return false; /* truncated sequence */
        }
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* Overlong forms would let two byte strings mean the same text; surrogates and
         * values past U+10FFFF are not characters at all. PostgreSQL refuses all three. */
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += need + 1;
    }
    return true;
}

size_t gateway_utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            n++;
        }
    }
    return n;
}

static bool fail(gateway_validation_error *err, const char *code, const char *param,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static bool fail(gateway_validation_error *err, const char *code, const char *param,
                 const char *fmt, ...)
{
    va_list ap;

    err->status = 400;
    err->code = code;
    snprintf(err->param, sizeof(err->param), "%s", param);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return false;
}

/* Refuses the first member of body not named in known (NULL-terminated), listing what is
 * allowed. Unknown fields are checked first: a typo such as "ammount" must not surface as
 * "amount missing", and no field can ever be mass-assigned. */
static bool check_known_fields(const json_t *body, const char *const *known, const char *allowed,
                               gateway_validation_error *err)
{
    const char *name;
    json_t *value;

    json_object_foreach((json_t *)body, name, value)
    {
        bool found = false;
        (void)value;
        for (size_t i = 0; known[i] != NULL && !found; i++) {
            found = strcmp(name, known[i]) == 0;
        }
        if (!found && name[0] == '\0') {
            /* An empty name cannot be named in param; the body as a whole is at fault. */
            return fail(err, "parameter_unknown", "body",
                        "a field with an empty name is not allowed: allowed are %s", allowed);
        }
        if (!found) {
            char shown[64];
            snprintf(shown, sizeof(shown), "%s", name);
            return fail(err, "parameter_unknown", name, "unknown field \"%s\": allowed are %s",
                        shown, allowed);
        }
    }
    return true;
}

/* The field's value, or NULL when it is absent or JSON null. */
static json_t *field(const json_t *body, const char *name)
{
    json_t *v = json_object_get(body, name);
    return json_is_null(v) ? NULL : v;
}

static bool check_amount_currency(const json_t *body, gateway_payment_input *out,
                                  gateway_validation_error *err)
{
    json_t *amount = field(body, "amount");
    json_t *currency = field(body, "currency");
    char reason[160];

    if (amount == NULL) {
        return fail(err, "parameter_missing", "amount",
                    "amount is required: an integer number of the currency's minor units");
    }
    /* jansson keeps 100 and 100.0 apart: only the former is an integer. Amounts are never
     * floats, and a string "100" is refused too, so clients cannot rely on coercion. */
    if (!json_is_integer(amount)) {
        return fail(err, "parameter_invalid_integer", "amount",
                    "amount must be an integer JSON number of minor units (e.g. 1999 for "
                    "19.99 usd), not a float, string or other type");
    }
    if (currency == NULL) {
        return fail(err, "parameter_missing", "currency",
                    "currency is required: a three-letter ISO 4217 code such as \"usd\"");
    }
    if (!json_is_string(currency)) {
        return fail(err, "parameter_invalid_string", "currency",
                    "currency must be a string such as \"usd\"");
    }
    out->currency = keel_currency_find(json_string_value(currency));
    if (out->currency == NULL ||
        strlen(json_string_value(currency)) != json_string_length(currency)) {
        return fail(err, "currency_unsupported", "currency",
                    "currency is not a supported ISO 4217 code (e.g. \"usd\", \"eur\")");
    }
    out->amount = (int64_t)json_integer_value(amount);
    if (out->amount <= 0) {
        return fail(err, "amount_too_small", "amount", "amount must be greater than 0");
    }
    if (!keel_money_amount_valid(out->currency, out->amount, reason, sizeof(reason))) {
        return fail(err, "amount_too_large", "amount", "%s", reason);
    }
    return true;
}

/* A string field: valid UTF-8, no NUL, at most max_bytes bytes, not empty when !allow_empty. */
static bool check_string(const json_t *v, const char *param, size_t max_bytes, bool allow_empty,
                         const char **out, gateway_validation_error *err)
{
    size_t len;

    if (!json_is_string(v)) {
        return fail(err, "parameter_invalid_string", param, "%s must be a string", param);
    }
    len = json_string_length(v);
    if (!gateway_utf8_valid(json_string_value(v), len)) {
        return fail(err, "parameter_invalid_string", param,
                    "%s must be valid UTF-8 text without NUL characters", param);
    }
    if (len == 0 && !allow_empty) {
        return fail(err, "parameter_invalid_string", param, "%s must not be empty", param);
    }
    if (len > max_bytes) {
        return fail(err, "string_too_long", param, "%s must be at most %zu bytes, got %zu", param,
                    max_bytes, len);
    }
    *out = json_string_value(v);
    return true;
}

static bool check_metadata(json_t *metadata, gateway_validation_error *err)
{
    const char *key;
    size_t klen;
    json_t *value;
    char param[sizeof(err->param)];

    if (!json_is_object(metadata)) {
        return fail(err, "parameter_invalid_object", "metadata",
                    "metadata must be an object of string keys and string values");
    }
    if (json_object_size(metadata) > GATEWAY_METADATA_MAX_KEYS) {
        return fail(err, "metadata_too_many_keys", "metadata",
                    "metadata may hold at most %d keys, got %zu", GATEWAY_METADATA_MAX_KEYS,
                    json_object_size(metadata));
    }
    json_object_keylen_foreach(metadata, key, klen, value)
    {
        size_t vlen;

        /* The key is not echoed in param here: it is the thing that is wrong and may be
         * arbitrarily long or not even text. */
        if (klen == 0 || strlen(key) != klen || !gateway_utf8_valid(key, klen) ||
            gateway_utf8_length(key, klen) > GATEWAY_METADATA_KEY_MAX_CHARS) {
            return fail(err, "metadata_key_invalid", "metadata",
                        "metadata keys must be 1 to %d characters of valid UTF-8",
                        GATEWAY_METADATA_KEY_MAX_CHARS);
        }
        snprintf(param, sizeof(param), "metadata[%s]", key);
        if (!json_is_string(value)) {
            return fail(err, "metadata_value_invalid", param,
                        "metadata values must be strings (%s is not)", param);
        }
        vlen = json_string_length(value);
        if (!gateway_utf8_valid(json_string_value(value), vlen)) {
            return fail(err, "metadata_value_invalid", param,
                        "%s must be valid UTF-8 text without NUL characters", param);
        }
        if (gateway_utf8_length(json_string_value(value), vlen) >
            GATEWAY_METADATA_VALUE_MAX_CHARS) {
            return fail(err, "string_too_long", param, "%s must be at most %d characters", param,
                        GATEWAY_METADATA_VALUE_MAX_CHARS);
        }
    }
    return true;
}

bool gateway_payment_validate(const json_t *body, gateway_payment_input *out,
                              gateway_validation_error *err)
{
    static const char *const known[] = {"amount",   "currency",       "description",
                                        "metadata", "payment_method", NULL};
    json_t *v;

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (!json_is_object(body)) {
        return fail(err, "parameter_invalid_object", "body",
                    "the request body must be a JSON object");
    }
    if (!check_known_fields(body, known,
                            "amount, currency, description, metadata and payment_method", err)) {
        return false;
    }
    if (!check_amount_currency(body, out, err)) {
        return false;
    }
    v = field(body, "description");
    if (v != NULL && !check_string(v, "description", GATEWAY_DESCRIPTION_MAX_BYTES, true,
                                   &out->description, err)) {
        return false;
    }
    v = field(body, "metadata");
    if (v != NULL) {
        if (!check_metadata(v, err)) {
            return false;
        }
        out->metadata = v;
    }
    out->payment_method = GATEWAY_DEFAULT_PAYMENT_METHOD;
    v = field(body, "payment_method");
    if (v != NULL && !check_string(v, "payment_method", GATEWAY_PAYMENT_METHOD_MAX_BYTES, false,
                                   &out->payment_method, err)) {
        return false;
    }
    return true;
}

/* The largest amount of any currency: a refund above it cannot fit any payment. */
#define REFUND_AMOUNT_MAX INT64_C(99999999999)

bool gateway_refund_validate(const json_t *body, gateway_refund_input *out,
                             gateway_validation_error *err)
{
    static const char *const known[] = {"amount", "reason", NULL};
    json_t *v;

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (!json_is_object(body)) {
        return fail(err, "parameter_invalid_object", "body",
                    "the request body must be a JSON object");
    }
    if (!check_known_fields(body, known, "amount and reason", err)) {
        return false;
    }
    v = field(body, "amount");
    if (v != NULL) {
        if (!json_is_integer(v)) {
            return fail(err, "parameter_invalid_integer", "amount",
                        "amount must be an integer JSON number of the payment's minor units; "
                        "leave it out to refund everything that remains");
        }
        out->amount = (int64_t)json_integer_value(v);
        if (out->amount <= 0) {
            return fail(err, "amount_too_small", "amount", "amount must be greater than 0");
        }
        if (out->amount > REFUND_AMOUNT_MAX) {
            return fail(err, "amount_too_large", "amount",
                        "amount must be at most %" PRId64 " minor units", REFUND_AMOUNT_MAX);
        }
    }
    v = field(body, "reason");
    if (v != NULL) {
        size_t len;
        if (!check_string(v, "reason", SIZE_MAX, false, &out->reason, err)) {
            return false;
        }
        len = strlen(out->reason);
        if (gateway_utf8_length(out->reason, len) > GATEWAY_REFUND_REASON_MAX_CHARS) {
            return fail(err, "string_too_long", "reason", "reason must be at most %d characters",
                        GATEWAY_REFUND_REASON_MAX_CHARS);
        }
    }
    return true;
}
