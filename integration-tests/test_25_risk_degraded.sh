#!/usr/bin/env bash
# The risk check before charging: when the risk API is down or slower than
# KEEL_PAYMENTS_RISK_TIMEOUT_MS, payments proceed under local rules (per-currency amount limits,
# KEEL_PAYMENTS_LOCAL_RISK_LIMITS), flagged risk_degraded in keel_payments and in their events;
# local rules block what exceeds the limit; a healthy API's verdict counts, its block too.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

sim_heal
fresh_payments

# --- down ----------------------------------------------------------------------------------
sim_faults risk '"outage":true' && pass "the risk API refuses connections"
id=$(pay usd 1999) || { fail "POST"; finish; exit; }
wait_pay "$id" succeeded 30 && pass "a payment proceeds while the risk API is down" || fail "not succeeded"
assert_eq "true -1" "$(pay_field "$id" risk_degraded) $(pay_field "$id" risk_score)" "it is flagged degraded, no score"
[[ "$(pay_field "$id" risk_reason)" == "local rules"* ]] && pass "the reason names local rules" ||
    fail "risk_reason: $(pay_field "$id" risk_reason)"
wait_until 20 eval '(($(events_of "$id" keel.v1.PaymentSucceeded) == 1))' || fail "no PaymentSucceeded"
fields=$(event_fields "$id" keel.v1.PaymentSucceeded)
assert_eq "1 -1" "$(jq -r '"\(.["8"]) \(.["9"])"' <<<"$fields")" "PaymentSucceeded carries risk_degraded=true, risk_score=-1"

# Local rules block what the API would have had to judge: 600000 > usd's 500000.
big=$(pay usd 600000) || { fail "POST"; finish; exit; }
wait_pay "$big" failed 30 && pass "an amount over the local usd limit fails" || fail "not failed"
assert_eq "risk_blocked true" "$(pay_field "$big" failure_code) $(pay_field "$big" risk_degraded)" \
    "failure_code risk_blocked, decided degraded"
assert_eq 0 "$(sim_charges "$big")" "no provider was asked to charge it"
wait_until 20 eval '(($(events_of "$big" keel.v1.PaymentFailed) == 1))' || fail "no PaymentFailed"
fields=$(event_fields "$big" keel.v1.PaymentFailed)
assert_eq "risk_blocked 1" "$(jq -r '"\(.["5"]) \(.["9"])"' <<<"$fields")" "PaymentFailed says risk_blocked, risk_degraded"

# --- slow ----------------------------------------------------------------------------------
sim_faults risk '"outage":false,"latency_ms":1500' && pass "the risk API answers after 1.5 s"
id=$(pay usd 2500) || { fail "POST"; finish; exit; }
wait_pay "$id" succeeded 30 && pass "a payment proceeds without waiting for the slow API" || fail "not succeeded"
assert_eq true "$(pay_field "$id" risk_degraded)" "flagged degraded"

# --- healthy -------------------------------------------------------------------------------
sim_faults risk '"latency_ms":0'
sleep 2 # the risk breaker may have opened: KEEL_PAYMENTS_BREAKER_OPEN_MS is 1500 here
id=$(pay usd 2600) || { fail "POST"; finish; exit; }
wait_pay "$id" succeeded 30 || fail "not succeeded"
score=$(pay_field "$id" risk_score)
if [[ "$(pay_field "$id" risk_degraded)" == false ]] && ((score >= 0 && score < 30)); then
    pass "with the API back, its score counts ($score) and nothing is degraded"
else
    fail "healthy API: degraded=$(pay_field "$id" risk_degraded) score=$score"
fi
high=$(pay usd 2700 pm_risk_high) || { fail "POST"; finish; exit; }
wait_pay "$high" failed 30 || fail "a high-risk payment did not fail"
assert_eq "risk_blocked false 90" "$(pay_field "$high" failure_code) $(pay_field "$high" risk_degraded) $(pay_field "$high" risk_score)" \
    "the API's block is final: risk_blocked, not degraded, score 90"
assert_eq 0 "$(sim_charges "$high")" "and nothing was charged"
finish
