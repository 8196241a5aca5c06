#!/usr/bin/env bash
# keel-payments is SIGKILLed between a charge and the record of its outcome, for a payment whose
# route starts at provider B (ngn). After the restart the recovery asks B (the provider recorded
# with the intent) first, finds the charge, and the payment completes with exactly one charge;
# provider A never hears of it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

sim_heal
"$STACK" stop-service payments >/dev/null
"$STACK" start-service payments 1 'KEEL_FAILPOINTS=payments.after_charge=crash' >/dev/null
id=$(pay ngn 7700) || { fail "POST /v1/payments"; finish; exit; }
dead() { ! is_running payments; }
wait_until 60 dead && pass "keel-payments died right after the charge call" || fail "it did not crash"
assert_eq 1 "$(sim_charges "$id" provider_b)" "B holds the charge"
assert_eq "processing charge_started provider_b" \
    "$(pay_field "$id" status) $(pay_field "$id" phase) $(pay_field "$id" provider)" \
    "keel_payments knows only the intent: charge_started at B"
assert_eq "provider_b:-" "$(attempts_of "$id")" "the attempt at B has no recorded outcome"

"$STACK" start-service payments >/dev/null
wait_pay "$id" succeeded 60 && pass "after the restart the payment completes" || fail "payment stuck"
assert_eq 1 "$(sim_charges "$id" provider_b)" "still exactly one charge at B"
assert_eq 0 "$(sim_charges "$id" provider_a)" "none at A"
charge_id=$(curl -sS "$SIM/_sim/charges?idempotency_key=$id" | jq -r '.data[0].id')
assert_eq "$charge_id" "$(pay_field "$id" provider_charge_id)" "the recovery found B's charge by its reference"
wait_until 30 eval '(($(events_of "$id" keel.v1.PaymentSucceeded) == 1))' &&
    pass "one PaymentSucceeded event" || fail "PaymentSucceeded events: $(events_of "$id" keel.v1.PaymentSucceeded)"
finish
