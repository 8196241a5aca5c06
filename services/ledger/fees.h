/* The fee schedule: basis points plus a fixed amount per currency, parsed from
 * KEEL_LEDGER_FEES and applied in integer arithmetic with one documented rounding rule. */
#ifndef LEDGER_FEES_H
#define LEDGER_FEES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEDGER_FEES_MAX_RULES 64
#define LEDGER_FEES_MAX_BP 10000                  /* 100 % */
#define LEDGER_FEES_MAX_FIXED INT64_C(1000000000) /* minor units */

typedef struct ledger_fee_rule {
    char currency[4]; /* lowercase ISO 4217 code; "" for the default rule */
    int64_t bp;       /* basis points of the amount: 290 = 2.90 % */
    int64_t fixed;    /* minor units added per payment */
} ledger_fee_rule;

typedef struct ledger_fee_schedule {
    ledger_fee_rule rules[LEDGER_FEES_MAX_RULES];
    size_t count;
    ledger_fee_rule fallback; /* the "default=" rule, required */
} ledger_fee_schedule;

/* Parses "usd=290bp+30;eur=250bp+25;default=300bp+0": `;`-separated rules, each a
 * currency keel supports (or "default") = <0..10000>bp+<0..1000000000>, spaces allowed
 * around the separators. Exactly one default rule; a currency at most once. On error
 * returns false with the offending rule named in err. */
bool ledger_fees_parse(const char *text, ledger_fee_schedule *out, char *err, size_t err_len);

/* The rule for currency (case-insensitive), or the default rule. */
const ledger_fee_rule *ledger_fees_rule(const ledger_fee_schedule *s, const char *currency);

/* The fee on a payment of amount (> 0) minor units:
 *   round_half_up(amount * bp / 10000) + fixed, capped at amount,
 * with the rounding computed as (amount * bp + 5000) / 10000 in int64. The cap keeps a
 * merchant's net from going negative on tiny payments. Returns false (and leaves *fee
 * alone) when amount <= 0 or the arithmetic would overflow int64. */
bool ledger_fees_compute(const ledger_fee_rule *rule, int64_t amount, int64_t *fee);

#endif
