#!/usr/bin/env bash
# keel-notifier SIGKILLed mid-delivery (the receiver has the request, nothing is recorded yet),
# then restarted: no delivery is lost, and each event is repeated at most once, with the same
# event id.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/webhooks_lib.sh"
restore() {
    wh_cleanup
    "$STACK" kill-service notifier >/dev/null 2>&1 || true
    "$STACK" start-service notifier >/dev/null
}
trap restore EXIT

wh_merchant || { finish; exit; }
wh_receiver r || { finish; exit; }
port=$WH_PORT
res=$(wh_register "http://127.0.0.1:$port/hook" '["payment.succeeded"]')
assert_eq 200 "$(status_of "$res")" "endpoint created"

"$STACK" stop-service notifier >/dev/null
# The failpoint kills the process (SIGKILL) right after an endpoint answered.
"$STACK" start-service notifier 1 'KEEL_FAILPOINTS=notifier.mid_delivery=crash' >/dev/null
pays=()
for amount in 5301 5302 5303; do
    pays+=("$(create_payment "$amount")") || { finish; exit; }
done
dead() { ! is_running notifier; }
wait_until 60 dead && pass "keel-notifier died mid-delivery" || fail "keel-notifier did not crash"
got=$(wh_requests r)
((got >= 1)) && pass "the receiver got $got request(s) before the crash" ||
    fail "the receiver got nothing before the crash"
assert_eq 0 "$(sql_notifier "select count(*) from webhook_deliveries d join webhook_endpoints e \
    on e.id = d.endpoint_id where e.merchant_id = '$WH_MERCHANT' and d.status = 'succeeded'")" \
    "no delivery was recorded as succeeded before the crash"

"$STACK" start-service notifier >/dev/null
all_done() {
    [[ "$(sql_notifier "select count(*) from webhook_deliveries d join webhook_endpoints e \
        on e.id = d.endpoint_id where e.merchant_id = '$WH_MERCHANT' and d.status = 'succeeded'")" == 3 ]]
}
wait_until 60 all_done && pass "after the restart all three deliveries succeeded" ||
    fail "deliveries after the restart: $(sql_notifier "select string_agg(status, ',') from webhook_deliveries d join webhook_endpoints e on e.id = d.endpoint_id where e.merchant_id = '$WH_MERCHANT'")"
sleep 1

# Each payment's event arrived, none more than twice (one repeat for the one kill).
mapfile -t events < <(jq -r '.headers["keel-event-id"]' "$TMP_DIR/r/requests.jsonl")
for pay in "${pays[@]}"; do
    ev=$(sql_notifier "select id from webhook_events where body::json->'data'->'object'->>'id' = '$pay'")
    n=0
    for e in "${events[@]}"; do [[ "$e" == "$ev" ]] && n=$((n + 1)); done
    ((n >= 1 && n <= 2)) && pass "payment $pay: event $ev arrived $n time(s)" ||
        fail "payment $pay: event '$ev' arrived $n times"
done
repeats=$((${#events[@]} - 3))
((repeats >= 1 && repeats <= 3)) && pass "$repeats repeated attempt(s), one per delivery in flight" ||
    fail "$repeats repeated attempts for one kill"
trap - EXIT
wh_cleanup
finish
