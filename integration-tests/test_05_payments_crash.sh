#!/usr/bin/env bash
# keel-payments SIGKILLed mid-flow (after the provider charged, before the outcome was
# recorded), then restarted: the payment completes and is charged exactly once.
source "$(dirname "$0")/lib.sh"
trap '"$STACK" kill-service payments >/dev/null 2>&1 || true; "$STACK" start-service payments >/dev/null' EXIT

"$STACK" stop-service payments >/dev/null
# The failpoint kills the process (SIGKILL) right after the charge call returned.
"$STACK" start-service payments 1 'KEEL_FAILPOINTS=payments.after_charge=crash' >/dev/null
id=$(create_payment 3100) || { fail "POST"; finish; exit; }
dead() { ! is_running payments; }
wait_until 60 dead && pass "keel-payments died at the crash point" || fail "keel-payments did not crash"
assert_eq 1 "$(sim_charge_count "$id")" "the provider holds the charge"
assert_eq processing "$(sql_payments "select status from payments where id = '$id'")" \
    "keel_payments had not recorded the outcome"

"$STACK" start-service payments >/dev/null
wait_payment_status "$id" succeeded 90 && pass "after the restart the payment completes" || fail "payment stuck"
assert_eq 1 "$(sim_charge_count "$id")" "still exactly one charge"
assert_eq 1 "$(kafka_count_key keel.payment-events.v1 "$id")" "one outcome event"
trap - EXIT
finish
