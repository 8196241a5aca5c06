#!/usr/bin/env bash
# keel-gateway SIGKILLed right after answering 202, before its relay published the request:
# the request waits in the outbox and, after a restart, the payment completes.
source "$(dirname "$0")/lib.sh"
trap '"$STACK" kill-service gateway >/dev/null 2>&1 || true; "$STACK" start-service gateway >/dev/null' EXIT

# Hold the relay just before it publishes (a test-build failpoint), so the 202 is answered
# while the event exists only as an outbox row.
"$STACK" stop-service gateway >/dev/null
"$STACK" start-service gateway 1 'KEEL_FAILPOINTS=outbox.before_publish=sleep(600000)' >/dev/null
id=$(create_payment 777) || { fail "POST"; finish; exit; }
pass "202 answered while the relay is held"
assert_eq 1 "$(sql_gateway "select count(*) from outbox where message_key = '$id'")" "the request is in the outbox"
assert_eq 0 "$(kafka_count_key keel.payment-requests.v1 "$id")" "nothing published yet"

"$STACK" kill-service gateway >/dev/null
pass "gateway SIGKILLed"
"$STACK" start-service gateway >/dev/null
wait_payment_status "$id" succeeded 60 && pass "after the restart the payment completes" || fail "payment lost"
assert_eq 0 "$(sql_gateway "select count(*) from outbox where message_key = '$id'")" "the outbox row is gone"
assert_eq 1 "$(sim_charge_count "$id")" "charged once"
trap - EXIT
finish
