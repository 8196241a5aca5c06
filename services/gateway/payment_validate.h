/* Strict validation of a POST /v1/payments body: pure, no I/O, so every rule is unit-tested. */
#ifndef GATEWAY_PAYMENT_VALIDATE_H
#define GATEWAY_PAYMENT_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "keel/money.h"

#define GATEWAY_DESCRIPTION_MAX_BYTES 1000
#define GATEWAY_METADATA_MAX_KEYS 50
#define GATEWAY_METADATA_KEY_MAX_CHARS 40
#define GATEWAY_METADATA_VALUE_MAX_CHARS 500
#define GATEWAY_PAYMENT_METHOD_MAX_BYTES 100
#define GATEWAY_DEFAULT_PAYMENT_METHOD "pm_card_visa"

/* A valid request. Strings and metadata are borrowed from the JSON body passed to
 * gateway_payment_validate and live as long as it does. */
typedef struct gateway_payment_input {
    int64_t amount;                /* minor units, 0 < amount <= currency->max_amount */
    const keel_currency *currency; /* currency->code is the lowercase code to store */
    const char *description;       /* NULL when absent */
    json_t *metadata;              /* an object of string values; NULL when absent */
    const char *payment_method;    /* never NULL: GATEWAY_DEFAULT_PAYMENT_METHOD if absent */
} gateway_payment_input;

/* Why a body was refused (status 400): an API error code, a message for the merchant's
 * developer and the parameter at fault (e.g. "amount" or "metadata[order_id]"). */
typedef gateway_error gateway_validation_error;

/* Checks body against every rule:
 *   amount          required integer JSON number (not a float or string), 0 < amount <= the
 *                   currency's maximum                (parameter_missing,
 *                   parameter_invalid_integer, amount_too_small, amount_too_large)
 *   currency        required string, a currency keel supports, any case
 *                   (parameter_missing, parameter_invalid_string, currency_unsupported)
 *   description     optional string, at most 1000 bytes of valid UTF-8
 *                   (parameter_invalid_string, string_too_long)
 *   metadata        optional object, at most 50 keys, keys 1..40 characters, values strings
 *                   of at most 500 characters (parameter_invalid_object,
 *                   metadata_too_many_keys, metadata_key_invalid, metadata_value_invalid,
 *                   string_too_long)
 *   payment_method  optional string of 1..100 bytes (parameter_invalid_string,
 *                   string_too_long)
 * Any other field is refused with parameter_unknown. JSON null for an optional field means
 * "absent". Characters are Unicode code points; strings must be valid UTF-8 without NUL.
 * Returns true and fills out, or false and fills err (the first problem found, fields
 * checked in the order above after unknown fields). */
bool gateway_payment_validate(const json_t *body, gateway_payment_input *out,
                              gateway_validation_error *err);

#define GATEWAY_REFUND_REASON_MAX_CHARS 500

/* A valid refund request; reason is borrowed from the JSON body. */
typedef struct gateway_refund_input {
    int64_t amount;     /* minor units; 0 when absent (= everything still refundable) */
    const char *reason; /* NULL when absent */
} gateway_refund_input;

/* Checks a POST /v1/payments/{id}/refunds body:
 *   amount  optional integer JSON number > 0 and at most the largest amount of any currency
 *           (parameter_invalid_integer, amount_too_small, amount_too_large); whether it fits
 *           the payment is checked against the payment later (amount_exceeds_refundable)
 *   reason  optional string of 1..500 characters of valid UTF-8 (parameter_invalid_string,
 *           string_too_long)
 * Any other field is refused with parameter_unknown; JSON null means absent. */
bool gateway_refund_validate(const json_t *body, gateway_refund_input *out,
                             gateway_validation_error *err);

/* True if s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF) and holds no NUL byte. */
bool gateway_utf8_valid(const char *s, size_t len);
/* The number of code points in valid UTF-8 s[0..len). */
size_t gateway_utf8_length(const char *s, size_t len);

#endif
