#!/usr/bin/env bash
# A refund meets the same provider trouble as a charge and is just as careful: when the
# charging provider refunds and then times out, the refund is looked up under its key (one
# refund, never repeated blindly); when that provider is down, the refund waits for it and is
# never sent to the other provider.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

sim_heal
fresh_payments
p1=$(pay usd 2500) || { fail "POST"; finish; exit; }
p2=$(pay usd 2600) || { fail "POST"; finish; exit; }
wait_pay "$p1" succeeded 30 || { fail "payment $p1"; finish; exit; }
wait_pay "$p2" succeeded 30 || { fail "payment $p2"; finish; exit; }

# --- refunded, then no answer in time ------------------------------------------------------
sim_faults provider_a '"timeout_after_charge_rate":1,"timeout_hold_ms":2500'
r1=$(new_refund_id)
publish_refund "ev-$r1" "$r1" "$p1" 2500 usd
wait_refund "$r1" succeeded 30 && pass "the refund succeeded although its answer timed out" || fail "refund $r1"
sim_heal
assert_eq 1 "$(sim_refunds_of "$p1" | jq length)" "exactly one refund at A"
assert_eq true "$(refund_field "$r1" ambiguous)" "it was resolved by a lookup under its key"
assert_eq "$(sim_refunds_of "$p1" | jq -r '.[0].id')" "$(refund_field "$r1" provider_refund_id)" \
    "the lookup found that very refund"

# --- the charging provider is down --------------------------------------------------------
sim_faults provider_a '"outage":true'
r2=$(new_refund_id)
publish_refund "ev-$r2" "$r2" "$p2" 1000 usd
waiting() { (($(sql_payments "select attempts from refunds where id = '$r2'") >= 1)) 2>/dev/null; }
wait_until 30 waiting && pass "the refund waits while A is down" || fail "no attempt recorded"
assert_eq processing "$(refund_field "$r2" status)" "still processing"
assert_eq 0 "$(sim_refunds_of "$p2" provider_b | jq length)" "nothing was sent to B"
sim_faults provider_a '"outage":false'
wait_refund "$r2" succeeded 40 && pass "once A is back the refund succeeds there" || fail "refund $r2"
assert_eq "provider_a 1" "$(sim_refunds_of "$p2" | jq -r '"\(.[0].provider) \(length)"')" "one refund, at A"
finish
