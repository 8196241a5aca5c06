#!/usr/bin/env bash
# The SSRF guard without the test stack's loopback allow-list: registering 127.0.0.1, 10.0.0.1,
# 169.254.169.254, [::1], [::ffff:127.0.0.1] or a name resolving to loopback is refused (checks
# only: nothing is ever sent to a non-loopback address); an endpoint registered while loopback
# was allowed is refused again at delivery time, its receiver never called; and an endpoint
# whose every attempt fails for longer than KEEL_NOTIFIER_DISABLE_AFTER is disabled.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/webhooks_lib.sh"
restore() {
    wh_cleanup
    "$STACK" stop-service notifier >/dev/null 2>&1 || true
    "$STACK" start-service notifier >/dev/null
}
trap restore EXIT

wh_merchant || { finish; exit; }
wh_receiver r || { finish; exit; }
port=$WH_PORT
# Registered while the stack allow-lists loopback.
res=$(wh_register "http://127.0.0.1:$port/hook" '["payment.succeeded"]')
assert_eq 200 "$(status_of "$res")" "a loopback endpoint is accepted while loopback is allow-listed"
ep=$(body_of "$res" | jq -r .id)

"$STACK" stop-service notifier >/dev/null
"$STACK" start-service notifier 1 'KEEL_NOTIFIER_ALLOW_CIDRS=' 'KEEL_NOTIFIER_DISABLE_AFTER=1s' >/dev/null

for target in "127.0.0.1:$port" "10.0.0.1" "169.254.169.254" "[::1]:$port" \
    "[::ffff:127.0.0.1]:$port" "localhost:$port" "[fd00:ec2::254]" "0.0.0.0:$port"; do
    res=$(wh_register "http://$target/hook")
    if [[ "$(status_of "$res")" == 400 && "$(body_of "$res" | jq -r .error.code)" == url_invalid ]]; then
        pass "registering http://$target is refused: $(body_of "$res" | jq -r .error.message)"
    else
        fail "registering http://$target: $res"
    fi
done
assert_eq 0 "$(wh_requests r)" "no registration check sent anything"

# Delivery time: the endpoint registered earlier now resolves to a refused address.
pay=$(create_payment 5400) || { finish; exit; }
# The restarted process counts from zero.
refused() { (($(notifier_metric 'keel_notifier_delivery_attempts_total{result="refused"}') > 0)); }
wait_until 40 refused && pass "the delivery attempt was refused by the SSRF guard" ||
    fail "no refused attempt counted"
err=$(sql_notifier "select a.error from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id \
    where d.endpoint_id = '$ep' order by a.id limit 1")
[[ "$err" == *"loopback address"* ]] && pass "the attempt records why: $err" || fail "attempt error '$err'"
assert_eq "" "$(sql_notifier "select address from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id \
    where d.endpoint_id = '$ep' and a.address is not null limit 1")" "no address was connected to"

# Refused attempt after refused attempt: past KEEL_NOTIFIER_DISABLE_AFTER=1s it is disabled.
disabled() { [[ "$(body_of "$(api GET "/v1/webhook_endpoints/$ep")" | jq -r .status)" == disabled ]]; }
wait_until 20 disabled && pass "an endpoint failing for longer than 1s is disabled" ||
    fail "endpoint status: $(body_of "$(api GET "/v1/webhook_endpoints/$ep")" | jq -c '{status, disabled_reason}')"
reason=$(body_of "$(api GET "/v1/webhook_endpoints/$ep")" | jq -r .disabled_reason)
[[ "$reason" == "every delivery attempt failed since"* ]] && pass "disabled_reason: $reason" ||
    fail "disabled_reason '$reason'"
(($(notifier_metric 'keel_notifier_endpoints_disabled_total{reason="failing"}') >= 1)) &&
    pass "the disabling is counted" || fail "keel_notifier_endpoints_disabled_total{reason=\"failing\"} is 0"
assert_eq 0 "$(wh_requests r)" "the receiver never got a request"
finish
