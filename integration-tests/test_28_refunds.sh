#!/usr/bin/env bash
# Refunds at the payments level, fed RefundRequested records on keel.payment-requests.v1 as the
# gateway's relay publishes them: full and partial refunds, an over-refund rejected with
# amount_exceeds_refundable (refunds in flight count), each refund sent to the provider that
# charged under the refund id as key, a duplicated record refunded once, and a refund for a
# payment keel-payments does not know refused after bounded retries.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

sim_heal
fresh_payments
refund_events() { kafka_records keel.payment-events.v1 | awk -v k="$1" '$3 == k' | grep -c "ce_type=keel.v1.Refund$2," || true; }

# --- partial, then the rest, then one more unit ---------------------------------------------
p1=$(pay usd 2000) || { fail "POST"; finish; exit; }
wait_pay "$p1" succeeded 30 || { fail "payment $p1"; finish; exit; }
r1=$(new_refund_id)
publish_refund "ev-$r1" "$r1" "$p1" 500 usd
wait_refund "$r1" succeeded 30 && pass "a partial refund (500 of 2000) succeeded" || fail "partial refund"
refunds=$(sim_refunds_of "$p1")
assert_eq "provider_a $r1 500" "$(jq -r '.[0] | "\(.provider) \(.idempotency_key) \(.amount)"' <<<"$refunds")" \
    "sent to A, which charged, under the refund id as key"
assert_eq "$(jq -r '.[0].id' <<<"$refunds")" "$(refund_field "$r1" provider_refund_id)" "A's refund id is recorded"
r2=$(new_refund_id)
publish_refund "ev-$r2" "$r2" "$p1" 1500 usd
wait_refund "$r2" succeeded 30 && pass "refunding the remaining 1500 succeeded (fully refunded)" || fail "second refund"
r3=$(new_refund_id)
publish_refund "ev-$r3" "$r3" "$p1" 1 usd
wait_refund "$r3" failed 30 && pass "one more unit is refused" || fail "over-refund not refused"
assert_eq amount_exceeds_refundable "$(refund_field "$r3" failure_code)" "failure_code amount_exceeds_refundable"
log "message: $(refund_field "$r3" failure_message)"
assert_eq 2 "$(sim_refunds_of "$p1" | jq length)" "the provider saw only the two valid refunds"
wait_until 20 eval '(($(refund_events "$p1" Succeeded) == 2 && $(refund_events "$p1" Failed) == 1))' &&
    pass "events: two RefundSucceeded, one RefundFailed" ||
    fail "events: $(refund_events "$p1" Succeeded) succeeded, $(refund_events "$p1" Failed) failed"

# --- a full refund goes to B when B charged ------------------------------------------------
p2=$(pay ngn 9000) || { fail "POST"; finish; exit; }
wait_pay "$p2" succeeded 30 || { fail "payment $p2"; finish; exit; }
assert_eq provider_b "$(pay_field "$p2" provider)" "the ngn payment was charged at B"
r4=$(new_refund_id)
publish_refund "ev-$r4" "$r4" "$p2" 9000 ngn
wait_refund "$r4" succeeded 30 && pass "a full refund succeeded" || fail "full refund"
assert_eq "provider_b 9000" "$(sim_refunds_of "$p2" | jq -r '.[0] | "\(.provider) \(.amount)"')" "it was made at B"
assert_eq 0 "$(sim_refunds_of "$p2" provider_a | jq length)" "nothing at A"
wait_until 20 eval '(($(refund_events "$p2" Succeeded) == 1))' || fail "no RefundSucceeded for $p2"
assert_eq "$r4 provider_b" "$(event_fields "$p2" keel.v1.RefundSucceeded | jq -r '"\(.["1"]) \(.["6"])"')" \
    "RefundSucceeded names the refund and provider B"

# --- a duplicated record is one refund -----------------------------------------------------
p3=$(pay usd 3000) || { fail "POST"; finish; exit; }
wait_pay "$p3" succeeded 30 || { fail "payment $p3"; finish; exit; }
r5=$(new_refund_id)
before=$(consumer_ok_count)
publish_refund "ev-$r5" "$r5" "$p3" 1000 usd
publish_refund "ev-$r5" "$r5" "$p3" 1000 usd       # the very same record again
publish_refund "ev-$r5-again" "$r5" "$p3" 1000 usd # the same refund under another event id
consumed() { (($(consumer_ok_count) >= before + 3)); }
wait_until 30 consumed && pass "all three copies were consumed" || fail "copies not consumed"
wait_refund "$r5" succeeded 30 || fail "refund $r5"
sleep 1
assert_eq 1 "$(sim_refunds_of "$p3" | jq length)" "one refund at the provider"
assert_eq 1 "$(sql_payments "select count(*) from refunds where payment_id = '$p3'")" "one refund row"
assert_eq 1 "$(refund_events "$p3" Succeeded)" "one RefundSucceeded event"

# --- refunds in flight count: two refunds of 60 % back to back ------------------------------
p4=$(pay usd 1000) || { fail "POST"; finish; exit; }
wait_pay "$p4" succeeded 30 || { fail "payment $p4"; finish; exit; }
sim_faults provider_a '"latency_ms":600' # keeps the first refund in flight at the provider
r6=$(new_refund_id)
r7=$(new_refund_id)
publish_refund "ev-$r6" "$r6" "$p4" 600 usd
publish_refund "ev-$r7" "$r7" "$p4" 600 usd
wait_refund "$r7" failed 30 && pass "the second 60 % refund is refused" || fail "second refund: $(refund_field "$r7" status)"
assert_eq amount_exceeds_refundable "$(refund_field "$r7" failure_code)" "while the first was in flight"
wait_refund "$r6" succeeded 30 && pass "the first one succeeded" || fail "first refund"
sim_faults provider_a '"latency_ms":0'

# --- a refund of a payment unknown here ----------------------------------------------------
ghost="pay_$(openssl rand -hex 16)"
r8=$(new_refund_id)
publish_refund "ev-$r8" "$r8" "$ghost" 100 usd
wait_refund "$r8" failed 60 && pass "a refund of an unknown payment is refused after bounded retries" ||
    fail "unknown payment's refund: $(refund_field "$r8" status)"
assert_eq payment_not_found "$(refund_field "$r8" failure_code)" "failure_code payment_not_found"
wait_until 20 eval '(($(refund_events "$ghost" Failed) == 1))' && pass "with a RefundFailed event" ||
    fail "no RefundFailed for the unknown payment"
finish
