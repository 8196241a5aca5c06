#!/usr/bin/env bash
# A decline is final: one call, no retry at the same provider, no fallback to the other, even
# with in-place retries and a fallback configured; at A (usd) and at B (ngn).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

sim_heal
fresh_payments KEEL_PAYMENTS_RETRY_BUDGET_MIN_PER_SECOND=100
a_before=$(sim_requests provider_a)
id=$(pay usd 1500 pm_card_declined) || { fail "POST"; finish; exit; }
wait_pay "$id" failed 30 && pass "declined at A: failed" || fail "not failed"
assert_eq card_declined "$(pay_field "$id" failure_code)" "failure_code card_declined"
assert_eq "provider_a:declined" "$(attempts_of "$id")" "one attempt, at A"
assert_eq 1 "$(sql_payments "select calls from payment_attempts where payment_id = '$id'")" "one call, no retry"
assert_eq 1 "$(($(sim_requests provider_a) - a_before))" "A saw exactly one request"
assert_eq 0 "$(sim_charges "$id" provider_b)" "B was never tried"

id=$(pay usd 1600 pm_card_insufficient_funds) || { fail "POST"; finish; exit; }
wait_pay "$id" failed 30 || fail "not failed"
assert_eq insufficient_funds "$(pay_field "$id" failure_code)" "the decline reason is kept (insufficient_funds)"

b_before=$(sim_requests provider_b)
a_before=$(sim_requests provider_a)
id=$(pay ngn 1700 pm_card_declined) || { fail "POST"; finish; exit; }
wait_pay "$id" failed 30 && pass "declined at B: failed" || fail "not failed"
assert_eq "provider_b:declined" "$(attempts_of "$id")" "one attempt, at B"
assert_eq 1 "$(($(sim_requests provider_b) - b_before))" "B saw exactly one request"
assert_eq 0 "$(($(sim_requests provider_a) - a_before))" "A was never tried"
wait_until 20 eval '(($(events_of "$id" keel.v1.PaymentFailed) == 1))' &&
    pass "one PaymentFailed event" || fail "no PaymentFailed event"
assert_eq "card_declined provider_b" "$(event_fields "$id" keel.v1.PaymentFailed | jq -r '"\(.["5"]) \(.["8"])"')" \
    "the event names the code and the provider"
finish
