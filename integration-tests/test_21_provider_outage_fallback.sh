#!/usr/bin/env bash
# Provider A refuses connections (its listener is closed): payments succeed through provider B,
# A's circuit breaker opens (keel-payments' /metrics); once A is back, half-open probes succeed,
# the breaker closes and traffic returns to A. No payment is charged twice.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

sim_heal
fresh_payments KEEL_PAYMENTS_BREAKER_OPEN_MS=3000
sim_faults provider_a '"outage":true' && pass "provider A is down (connection refused)"

ids=()
for i in $(seq 1 14); do
    id=$(pay usd $((1000 + i))) || { fail "POST /v1/payments"; finish; exit; }
    ids+=("$id")
done
ok=0
for id in "${ids[@]}"; do
    wait_pay "$id" succeeded 30 && ok=$((ok + 1))
done
assert_eq ${#ids[@]} "$ok" "every payment succeeded during A's outage"
at_b=0 at_a=0
for id in "${ids[@]}"; do
    at_b=$((at_b + $(sim_charges "$id" provider_b)))
    at_a=$((at_a + $(sim_charges "$id" provider_a)))
done
assert_eq ${#ids[@]} "$at_b" "each was charged once at B"
assert_eq 0 "$at_a" "none at A"
assert_eq provider_b "$(pay_field "${ids[-1]}" provider)" "keel_payments names B as the charging provider"
(($(breaker_moves provider_a open) >= 1)) && pass "A's breaker opened (keel_breaker_transitions_total)" \
    || fail "A's breaker never opened"
# While the breaker was open, payments went straight to B (a payment may still have been the
# half-open probe, and been refused, once the open period ran out).
skipped=0
for id in "${ids[@]}"; do
    [[ "$(attempts_of "$id")" == "provider_b:succeeded" ]] && skipped=$((skipped + 1))
done
((skipped >= 1)) && pass "with the breaker open, A was not even tried ($skipped payments)" \
    || fail "every payment tried A first"
(($(metric "$KEEL_PAYMENTS_URL" 'keel_payments_fallbacks_total{from="provider_a",reason="breaker_open"}') >= 1)) &&
    pass "fallbacks for an open breaker are counted" || fail "no breaker_open fallback counted"
log "fallbacks: $(curl -sS "$KEEL_PAYMENTS_URL/metrics" | grep '^keel_payments_fallbacks_total' | tr '\n' ' ')"

# A comes back. After the open period the next calls are half-open probes; when they succeed
# the breaker closes and A is the primary again.
sim_faults provider_a '"outage":false'
sleep 3.5 # > KEEL_PAYMENTS_BREAKER_OPEN_MS (3000 here)
back=()
for i in $(seq 1 5); do
    id=$(pay usd $((2000 + i))) || { fail "POST /v1/payments"; finish; exit; }
    wait_pay "$id" succeeded 30 || fail "payment $id after A's return"
    back+=("$(pay_field "$id" provider)")
done
log "providers after A's return: ${back[*]}"
assert_eq provider_a "${back[-1]}" "traffic went back to A"
(($(breaker_moves provider_a half_open) >= 1)) && pass "the breaker went half-open" || fail "never half-open"
(($(breaker_moves provider_a closed) >= 1)) && pass "the probes closed it" || fail "never closed again"
assert_eq 0 "$(breaker provider_a)" "A's breaker is closed (keel_breaker_state 0)"
for id in "${ids[@]}"; do
    (($(sim_charges "$id") == 1)) || fail "payment $id has $(sim_charges "$id") charges"
done
finish
