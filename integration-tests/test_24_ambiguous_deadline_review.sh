#!/usr/bin/env bash
# Provider A stays ambiguous: every call to it (charge and status lookups) outlasts
# keel-payments' timeout. Past KEEL_PAYMENTS_UNKNOWN_DEADLINE_MS the payment goes to
# requires_review with a PaymentRequiresReview event, and nothing is ever charged at B.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

sim_heal
fresh_payments
# 2.5 s before any answer, longer than the provider timeout (1000 ms) of the test stack.
sim_faults provider_a '"latency_ms":2500' && pass "provider A answers nothing in time"
started=$SECONDS
id=$(pay usd 4444) || { fail "POST /v1/payments"; finish; exit; }
wait_pay "$id" requires_review 40 && pass "the payment requires review" || fail "no review"
log "requires_review after $((SECONDS - started))s; last error: $(pay_field "$id" last_error)"
assert_eq 0 "$(sim_charges "$id" provider_b)" "nothing was charged at B"
assert_eq provider_a "$(pay_field "$id" ambiguous_provider)" "it stayed pinned to A"
[[ "$(attempts_of "$id")" == provider_a:* && "$(attempts_of "$id")" != *provider_b* ]] &&
    pass "only A was ever asked to charge ($(attempts_of "$id"))" || fail "attempts: $(attempts_of "$id")"
wait_until 20 eval '(($(events_of "$id" keel.v1.PaymentRequiresReview) == 1))' &&
    pass "one PaymentRequiresReview event" || fail "no PaymentRequiresReview event"
assert_eq 0 "$(events_of "$id" keel.v1.PaymentFailed)" "never announced as failed"
fields=$(event_fields "$id" keel.v1.PaymentRequiresReview)
assert_eq "$id provider_a" "$(jq -r '"\(.["1"]) \(.["5"])"' <<<"$fields")" "the event names the payment and provider A"
[[ "$(jq -r '.["6"]' <<<"$fields")" == *"idempotency key $id"* ]] &&
    pass "its reason tells the operator what to ask A" || fail "reason: $(jq -r '.["6"]' <<<"$fields")"
# The sandbox processes the late charge after its latency: whatever A did, B did nothing.
sleep 3
assert_eq 0 "$(sim_charges "$id" provider_b)" "still nothing at B"
finish
