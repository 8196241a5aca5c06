/* The ISO 4217 currencies keel accepts, their minor-unit exponents and amount limits. */
#include "keel/money.h"

#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

/* The largest amount is 99,999,999 major units plus every minor unit below the next one
 * (usd 99,999,999.99 = 9999999999 minor units). Zero-decimal currencies (JPY, KRW, VND, ...)
 * have small units, so they get the 11-digit cap, 99,999,999,999, instead. */
#define MONEY_MAX_E0 INT64_C(99999999999)
#define MONEY_MAX_E2 INT64_C(9999999999)
#define MONEY_MAX_E3 INT64_C(99999999999)

#define MONEY_E0(code)                                                                             \
    {                                                                                              \
        code, 0, MONEY_MAX_E0                                                                      \
    }
#define MONEY_E2(code)                                                                             \
    {                                                                                              \
        code, 2, MONEY_MAX_E2                                                                      \
    }
#define MONEY_E3(code)                                                                             \
    {                                                                                              \
        code, 3, MONEY_MAX_E3                                                                      \
    }

/* Exponents as ISO 4217 lists them (the "minor unit" column), not as some payment
 * providers round them (e.g. HUF and IDR are 2 in ISO, ISK is 0). */
static const keel_currency money_currencies[] = {
    MONEY_E2("aed"), MONEY_E2("ars"), MONEY_E2("aud"), MONEY_E2("bdt"), MONEY_E2("bgn"),
    MONEY_E3("bhd"), MONEY_E2("brl"), MONEY_E2("cad"), MONEY_E2("chf"), MONEY_E0("clp"),
    MONEY_E2("cny"), MONEY_E2("cop"), MONEY_E2("czk"), MONEY_E2("dkk"), MONEY_E2("egp"),
    MONEY_E2("eur"), MONEY_E2("gbp"), MONEY_E2("ghs"), MONEY_E2("hkd"), MONEY_E2("huf"),
    MONEY_E2("idr"), MONEY_E2("ils"), MONEY_E2("inr"), MONEY_E3("iqd"), MONEY_E0("isk"),
    MONEY_E3("jod"), MONEY_E0("jpy"), MONEY_E2("kes"), MONEY_E0("krw"), MONEY_E3("kwd"),
    MONEY_E2("lkr"), MONEY_E3("lyd"), MONEY_E2("mad"), MONEY_E2("mxn"), MONEY_E2("myr"),
    MONEY_E2("ngn"), MONEY_E2("nok"), MONEY_E2("nzd"), MONEY_E3("omr"), MONEY_E2("pen"),
    MONEY_E2("php"), MONEY_E2("pkr"), MONEY_E2("pln"), MONEY_E0("pyg"), MONEY_E2("qar"),
    MONEY_E2("ron"), MONEY_E2("sar"), MONEY_E2("sek"), MONEY_E2("sgd"), MONEY_E2("thb"),
    MONEY_E3("tnd"), MONEY_E2("try"), MONEY_E2("twd"), MONEY_E2("uah"), MONEY_E0("ugx"),
    MONEY_E2("usd"), MONEY_E0("vnd"), MONEY_E0("xaf"), MONEY_E0("xof"), MONEY_E2("zar"),
};

const keel_currency *keel_currency_find(const char *code)
{
    if (code == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof money_currencies / sizeof money_currencies[0]; i++) {
        if (strcasecmp(money_currencies[i].code, code) == 0) {
            return &money_currencies[i];
        }
    }
    return NULL;
}

bool keel_money_amount_valid(const keel_currency *cur, int64_t amount, char *err, size_t err_len)
{
    if (cur == NULL) {
        snprintf(err, err_len,
                 "currency is not supported; use a lowercase ISO 4217 code such as usd");
        return false;
    }
    if (amount <= 0) {
        snprintf(err, err_len,
                 "amount must be a positive integer of minor units (got %" PRId64 " %s)", amount,
                 cur->code);
        return false;
    }
    if (amount > cur->max_amount) {
        snprintf(err, err_len, "amount must be at most %" PRId64 " for %s (got %" PRId64 ")",
                 cur->max_amount, cur->code, amount);
        return false;
    }
    return true;
}
