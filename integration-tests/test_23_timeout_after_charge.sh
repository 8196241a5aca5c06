#!/usr/bin/env bash
# Provider A charges and then does not answer in time (the sandbox records the charge and holds
# the answer past keel-payments' provider timeout). The outcome is unknown, so B is never
# called for that payment; the status lookup at A under the same key finds the charge; the
# payment succeeds with exactly one charge.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

sim_heal
fresh_payments
# Held 2.5 s: longer than the test stack's KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS (1000).
sim_faults provider_a '"timeout_after_charge_rate":1,"timeout_hold_ms":2500' &&
    pass "provider A holds every answer after charging"

id=$(pay usd 4321) || { fail "POST /v1/payments"; finish; exit; }
wait_pay "$id" succeeded 30 && pass "the payment succeeded" || fail "payment did not succeed"
assert_eq 1 "$(sim_charges "$id" provider_a)" "one charge at A"
assert_eq 0 "$(sim_charges "$id" provider_b)" "B was never called for it"
assert_eq provider_a "$(pay_field "$id" provider)" "keel_payments records A as the provider"
assert_eq "provider_a:unknown" "$(attempts_of "$id")" "the one charge call ended unknown (no second charge call)"
assert_eq provider_a "$(pay_field "$id" ambiguous_provider)" "the payment was pinned to A while unknown"
charge_id=$(curl -sS "$SIM/_sim/charges?idempotency_key=$id" | jq -r '.data[0].id')
assert_eq "$charge_id" "$(pay_field "$id" provider_charge_id)" "the lookup found that very charge"
(($(metric "$KEEL_PAYMENTS_URL" 'keel_payments_provider_calls_total{provider="provider_a",operation="lookup",result="found"}') >= 1)) &&
    pass "a status lookup found it" || fail "no successful lookup counted"
wait_until 20 eval '(($(events_of "$id" keel.v1.PaymentSucceeded) == 1))' &&
    pass "one PaymentSucceeded event" || fail "PaymentSucceeded events: $(events_of "$id" keel.v1.PaymentSucceeded)"
finish
