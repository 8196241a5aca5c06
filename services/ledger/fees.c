/* The fee schedule: parsing KEEL_LEDGER_FEES and computing a payment's fee in integers. */
#include "fees.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keel/money.h"

/* Reads a decimal number of at most 12 digits from [*p, end) into *out. */
static bool fees_number(const char **p, const char *end, int64_t *out)
{
    int64_t v = 0;
    int digits = 0;

    while (*p < end && isdigit((unsigned char)**p)) {
        if (++digits > 12) {
            return false;
        }
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return digits > 0;
}

static void fees_trim(const char **start, const char **end)
{
    while (*start < *end && isspace((unsigned char)**start)) {
        (*start)++;
    }
    while (*end > *start && isspace((unsigned char)(*end)[-1])) {
        (*end)--;
    }
}

/* Parses "<bp>bp+<fixed>" in [p, end). */
static bool fees_parse_terms(const char *p, const char *end, ledger_fee_rule *rule)
{
    fees_trim(&p, &end);
    if (!fees_number(&p, end, &rule->bp) || end - p < 2 || strncasecmp(p, "bp", 2) != 0) {
        return false;
    }
    p += 2;
    fees_trim(&p, &end);
    if (p == end || *p != '+') {
        return false;
    }
    p++;
    fees_trim(&p, &end);
    if (!fees_number(&p, end, &rule->fixed) || p != end) {
        return false;
    }
    return rule->bp <= LEDGER_FEES_MAX_BP && rule->fixed <= LEDGER_FEES_MAX_FIXED;
}

bool ledger_fees_parse(const char *text, ledger_fee_schedule *out, char *err, size_t err_len)
{
    const char *p = text != NULL ? text : "";
    bool have_default = false;

    memset(out, 0, sizeof(*out));
    while (*p != '\0') {
        const char *semi = strchr(p, ';');
        const char *end = semi != NULL ? semi : p + strlen(p);
        const char *start = p;
        const char *eq;
        ledger_fee_rule rule = {0};
        char name[16];
        size_t name_len;

        p = semi != NULL ? semi + 1 : end;
        fees_trim(&start, &end);
        if (start == end) {
            continue; /* "a;;b" or a trailing ';' */
        }
        eq = memchr(start, '=', (size_t)(end - start));
        if (eq == NULL) {
            snprintf(err, err_len,
                     "KEEL_LEDGER_FEES: rule \"%.*s\" has no '='; write e.g. usd=290bp+30",
                     (int)(end - start), start);
            return false;
        }
        const char *name_end = eq;
        fees_trim(&start, &name_end);
        name_len = (size_t)(name_end - start);
        if (name_len == 0 || name_len >= sizeof(name)) {
            snprintf(err, err_len, "KEEL_LEDGER_FEES: rule \"%.*s\" names no currency",
                     (int)(end - start), start);
            return false;
        }
        memcpy(name, start, name_len);
        name[name_len] = '\0';
        if (!fees_parse_terms(eq + 1, end, &rule)) {
            snprintf(err, err_len,
                     "KEEL_LEDGER_FEES: rule \"%.*s\" must read <currency>=<bp>bp+<fixed> with "
                     "bp 0..%d and fixed 0..%lld minor units, e.g. usd=290bp+30",
                     (int)(end - start), start, LEDGER_FEES_MAX_BP,
                     (long long)LEDGER_FEES_MAX_FIXED);
            return false;
        }
        if (strcasecmp(name, "default") == 0) {
            if (have_default) {
                snprintf(err, err_len, "KEEL_LEDGER_FEES: more than one default rule");
                return false;
            }
            have_default = true;
            out->fallback = rule;
            continue;
        }
        const keel_currency *cur = keel_currency_find(name);
        if (cur == NULL) {
            snprintf(err, err_len,
                     "KEEL_LEDGER_FEES: \"%s\" is not a currency keel supports (use a "
                     "lowercase ISO 4217 code such as usd, or default)",
                     name);
            return false;
        }
        if (ledger_fees_rule(out, cur->code) != &out->fallback) {
            snprintf(err, err_len, "KEEL_LEDGER_FEES: %s has more than one rule", cur->code);
            return false;
        }
        if (out->count == LEDGER_FEES_MAX_RULES) {
            snprintf(err, err_len, "KEEL_LEDGER_FEES: more than %d rules", LEDGER_FEES_MAX_RULES);
            return false;
        }
        snprintf(rule.currency, sizeof(rule.currency), "%s", cur->code);
        out->rules[out->count++] = rule;
    }
    if (!have_default) {
        snprintf(err, err_len,
                 "KEEL_LEDGER_FEES needs a default rule for the other currencies, e.g. "
                 "default=300bp+0 (default=0bp+0 charges nothing)");
        return false;
    }
    return true;
}

const ledger_fee_rule *ledger_fees_rule(const ledger_fee_schedule *s, const char *currency)
{
    for (size_t i = 0; currency != NULL && i < s->count; i++) {
        if (strcasecmp(s->rules[i].currency, currency) == 0) {
            return &s->rules[i];
        }
    }
    return &s->fallback;
}

bool ledger_fees_compute(const ledger_fee_rule *rule, int64_t amount, int64_t *fee)
{
    int64_t product;
    int64_t total;

    if (amount <= 0 || rule->bp < 0 || rule->fixed < 0) {
        return false;
    }
    /* Round half up on the percentage part only: 0.5 minor unit and more goes up. */
    if (__builtin_mul_overflow(amount, rule->bp, &product) ||
        __builtin_add_overflow(product, INT64_C(5000), &product)) {
        return false;
    }
    if (__builtin_add_overflow(product / 10000, rule->fixed, &total)) {
        return false;
    }
    *fee = total < amount ? total : amount;
    return true;
}
