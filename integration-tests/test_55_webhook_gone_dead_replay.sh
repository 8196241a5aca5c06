#!/usr/bin/env bash
# 410 Gone disables an endpoint (later events are not sent to it); a delivery that fails every
# attempt ends dead, keelctl lists it and replays it (same event id) once the receiver works;
# /metrics shows deliveries by outcome, attempt latency, queue depth and oldest pending age.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/webhooks_lib.sh"
trap wh_cleanup EXIT

# Two merchants, so the two endpoints see only their own events; both run at once.
wh_merchant || { finish; exit; }
gone_key=$API_KEY
wh_receiver gone --status 410 || { finish; exit; }
gone_port=$WH_PORT
res=$(wh_register "http://127.0.0.1:$gone_port/hook")
assert_eq 200 "$(status_of "$res")" "endpoint for the 410 receiver"
gone_ep=$(body_of "$res" | jq -r .id)
gone_pay=$(create_payment 5501) || { finish; exit; }

wh_merchant || { finish; exit; }
down_key=$API_KEY
wh_receiver down --status 500 || { finish; exit; }
down_port=$WH_PORT
res=$(wh_register "http://127.0.0.1:$down_port/hook")
assert_eq 200 "$(status_of "$res")" "endpoint for the failing receiver"
down_pay=$(create_payment 5502) || { finish; exit; }

# --- 410 -----------------------------------------------------------------------------------
export API_KEY=$gone_key
disabled() { [[ "$(body_of "$(api GET "/v1/webhook_endpoints/$gone_ep")" | jq -r .status)" == disabled ]]; }
wait_until 40 disabled && pass "410 Gone disabled the endpoint" || fail "the endpoint is still enabled"
assert_eq "the endpoint answered 410 Gone" \
    "$(body_of "$(api GET "/v1/webhook_endpoints/$gone_ep")" | jq -r .disabled_reason)" "disabled_reason"
assert_eq 1 "$(wh_requests gone)" "one attempt, no retries after 410"
ev=$(wh_header gone 1 keel-event-id)
assert_eq dead "$(wh_delivery_status "$ev")" "the delivery that got 410 is dead"
wait_payment_status "$gone_pay" succeeded 30 >/dev/null || true
create_payment 5503 >/dev/null || { finish; exit; }
sleep 2
assert_eq 1 "$(wh_requests gone)" "a disabled endpoint gets no new events"

# --- queue depth while the failing delivery waits for its retries ---------------------------
queued() { (($(notifier_metric keel_notifier_queue_depth) >= 1)); }
wait_until 10 queued && pass "keel_notifier_queue_depth counts the waiting delivery" ||
    fail "keel_notifier_queue_depth stayed 0"
aged() {
    curl -sS -m 5 "$KEEL_NOTIFIER_URL/metrics" |
        awk '$1 == "keel_notifier_oldest_pending_seconds" && $2 > 0 {ok=1} END {exit !ok}'
}
wait_until 10 aged && pass "keel_notifier_oldest_pending_seconds is above 0" ||
    fail "keel_notifier_oldest_pending_seconds stayed 0"

# --- dead after the last attempt, then replayed ---------------------------------------------
export API_KEY=$down_key
wait_until 40 wh_has_requests down 7 && pass "the failing receiver got all 7 attempts" ||
    fail "the failing receiver got $(wh_requests down) attempts"
down_ev=$(wh_header down 1 keel-event-id)
is_dead() { [[ "$(wh_delivery_status "$down_ev")" == dead ]]; }
wait_until 10 is_dead && pass "after the last attempt the delivery is dead" ||
    fail "delivery status $(wh_delivery_status "$down_ev")"
sleep 1
assert_eq 7 "$(wh_requests down)" "no attempt after the last one"
delivery=$(sql_notifier "select id from webhook_deliveries where event_id = '$down_ev'")
listed=$(wh_keelctl deliveries list --dead --endpoint "$(sql_notifier "select endpoint_id from webhook_deliveries where id = '$delivery'")")
grep -q "^$delivery	$down_ev	payment.succeeded	.*	dead	7	500	" <<<"$listed" &&
    pass "keelctl deliveries list --dead shows it" || fail "keelctl deliveries list --dead: $listed"
rc=0
out=$(wh_keelctl deliveries replay whd_nosuchdelivery 2>&1) || rc=$?
assert_eq 1 "$rc" "replaying an unknown delivery fails ($out)"

echo 200 >"$TMP_DIR/down/status" # the merchant fixed the endpoint
out=$(wh_keelctl deliveries replay "$delivery" 2>&1) && pass "keelctl deliveries replay: $out" ||
    fail "keelctl deliveries replay: $out"
wait_until 20 wh_has_requests down 8 && pass "the replayed delivery arrived" ||
    fail "nothing arrived after the replay"
assert_eq "$down_ev" "$(wh_header down 8 keel-event-id)" "the replay carries the same event id"
cmp -s "$(wh_body_file down 1)" "$(wh_body_file down 8)" && pass "... and the same bytes" ||
    fail "the replay's body differs"
succeeded() { [[ "$(wh_delivery_status "$down_ev")" == succeeded ]]; }
wait_until 10 succeeded && pass "the replayed delivery is recorded as succeeded" ||
    fail "after the replay: $(wh_delivery_status "$down_ev")"
out=$(wh_keelctl deliveries replay "$delivery" 2>&1) && fail "a second replay was accepted: $out" ||
    pass "a delivery that is not dead is not replayed: $out"

# --- metrics -----------------------------------------------------------------------------------
for series in 'keel_notifier_deliveries_total{outcome="succeeded"}' \
    'keel_notifier_deliveries_total{outcome="dead"}' 'keel_notifier_deliveries_total{outcome="gone"}' \
    'keel_notifier_delivery_attempts_total{result="http_error"}' 'keel_notifier_attempt_seconds_count' \
    'keel_notifier_endpoints_disabled_total{reason="gone"}'; do
    v=$(notifier_metric "$series")
    ((v >= 1)) && pass "$series = $v" || fail "$series = $v"
done
curl -sS -m 5 "$KEEL_NOTIFIER_URL/metrics" | grep -q '^keel_notifier_attempt_seconds_bucket{le="0.1"}' &&
    pass "attempt latency is a histogram" || fail "no keel_notifier_attempt_seconds buckets"
finish
