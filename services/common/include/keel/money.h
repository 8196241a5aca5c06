/* Money rules shared by every service: ISO 4217 currencies, their minor-unit exponents, and
 * the largest amount keel accepts per currency. Amounts are int64 minor units, never floats. */
#ifndef KEEL_MONEY_H
#define KEEL_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct keel_currency {
    const char *code;   /* lowercase ISO 4217 alpha code, e.g. "usd" */
    int exponent;       /* minor units per major unit = 10^exponent: usd 2, jpy 0, kwd 3 */
    int64_t max_amount; /* the largest amount accepted, in minor units */
} keel_currency;

/* The currency with this code (case-insensitive), or NULL when keel does not support it.
 * The table covers the common ISO 4217 currencies (at least usd eur gbp jpy chf cad aud nzd
 * sek nok dkk pln czk huf ron bgn inr cny hkd sgd krw idr myr php thb vnd brl mxn ars clp
 * cop pen zar ngn kes ghs egp mad aed sar ils try uah kwd bhd omr jod tnd isk), each with
 * its ISO exponent; max_amount is 99,999,999 major units' worth, capped for 0-exponent
 * currencies at 99,999,999,999. */
const keel_currency *keel_currency_find(const char *code);

/* Checks 0 < amount <= currency's max. Returns true, or false with a message for a
 * merchant's developer in err (e.g. "amount must be at most 99999999999 for usd"). */
bool keel_money_amount_valid(const keel_currency *cur, int64_t amount, char *err, size_t err_len);

#endif
