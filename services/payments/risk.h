/* The risk check before a charge: the risk API's verdict, or local rules (per-currency amount
 * limits) when the API fails, is slow or its breaker is open; the decision says which. */
#ifndef PAYMENTS_RISK_H
#define PAYMENTS_RISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/breaker.h"
#include "keel/http_client.h"
#include "policy.h"

typedef struct payments_risk_decision {
    bool blocked;  /* do not charge: the payment fails with "risk_blocked" */
    bool degraded; /* decided by local rules, not by the risk API */
    int score;     /* 0..100 from the API; -1 when degraded */
    char reason[256];
} payments_risk_decision;

/* What the risk API is asked about. */
typedef struct payments_risk_input {
    const char *payment_id;
    const char *merchant_id;
    int64_t amount;
    const char *currency;
    const char *payment_method;
    const char *traceparent; /* may be NULL or "" */
} payments_risk_input;

/* Pure: the API's answer as a decision. A 200 {"score":0..100,"decision":"allow"|"review"|
 * "block"} decides (block blocks; allow and review go ahead, review noted in the reason).
 * Anything else (transport failure, another status, malformed or oversized body, a score out
 * of range, an unknown decision word) returns false: the caller falls back to local rules. */
bool payments_risk_map(const keel_http_result *r, payments_risk_decision *out);

/* Pure: local rules. Blocks when amount exceeds the currency's limit; degraded, score -1;
 * why (e.g. "risk API timed out") goes into the reason. */
void payments_risk_local(const payments_risk_limits *limits, int64_t amount, const char *currency,
                         const char *why, payments_risk_decision *out);

typedef struct payments_risk_options {
    const char *url;     /* base URL; NULL or "" = no risk API: local rules only */
    const char *api_key; /* bearer key (required with a URL) */
    long timeout_ms;     /* past this the API counts as too slow: local rules decide */
    long connect_timeout_ms;
    const payments_risk_limits *limits; /* copied */
    keel_breaker_options breaker;       /* name is set to "risk" */
} payments_risk_options;

typedef struct payments_risk payments_risk;

/* NULL with err filled when the options are unusable. */
payments_risk *payments_risk_new(const payments_risk_options *o, char *err, size_t err_len);
void payments_risk_free(payments_risk *r);

/* Decides for one payment, blocking at most the API's timeout. Thread-safe. Counts
 * keel_payments_risk_decisions_total{decision,degraded}. */
void payments_risk_check(payments_risk *r, const payments_risk_input *in,
                         payments_risk_decision *out);

#endif
