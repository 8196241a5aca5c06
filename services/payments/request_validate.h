/* The rules a PaymentRequested must meet before keel-payments stores it (the gateway's rules,
 * so an external producer's input is held to the same standard). */
#ifndef PAYMENTS_REQUEST_VALIDATE_H
#define PAYMENTS_REQUEST_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "keel/money.h"
#include "keel/v1/payments.pb-c.h"
#include "keel/v1/refunds.pb-c.h"

#define PAYMENTS_DESCRIPTION_MAX_BYTES 1000
#define PAYMENTS_METADATA_MAX_KEYS 50
#define PAYMENTS_METADATA_KEY_MAX_CHARS 40 /* Unicode code points, as the gateway counts */
#define PAYMENTS_METADATA_VALUE_MAX_CHARS 500
#define PAYMENTS_PAYMENT_METHOD_MAX_BYTES 100

/* True when req may be stored. Otherwise false, with the first broken rule in err, phrased
 * "invalid <field>: <rule>" (e.g. "invalid amount: must be > 0"). Pure: reads only req. */
bool payments_request_validate(const Keel__V1__PaymentRequested *req, char *err, size_t err_len);

/* True if s is "pay_" followed by exactly 32 lowercase hex digits. */
bool payments_payment_id_valid(const char *s);
/* True if s is "re_" followed by exactly 32 lowercase hex digits. */
bool payments_refund_id_valid(const char *s);

/* The rules of a RefundRequested, like payments_request_validate: the shape only (ids,
 * merchant, amount > 0 and within the currency's maximum, a known currency, a reason of at
 * most 1000 bytes of UTF-8). Whether the payment allows the refund is decided at intake. */
bool payments_refund_request_validate(const Keel__V1__RefundRequested *req, char *err,
                                      size_t err_len);

/* True if s is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
bool payments_utf8_valid(const char *s);
/* The number of code points in valid UTF-8 s. */
size_t payments_utf8_length(const char *s);

#endif
