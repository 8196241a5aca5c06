#!/usr/bin/env bash
# Rotating an endpoint's secret with an overlap: deliveries carry two signatures, one under the
# new secret and one under the old, so receivers can switch at their own pace; without an
# overlap only the new secret signs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/webhooks_lib.sh"
trap wh_cleanup EXIT

wh_merchant || { finish; exit; }
wh_receiver r || { finish; exit; }
port=$WH_PORT
res=$(wh_register "http://127.0.0.1:$port/hook" '["payment.succeeded"]')
assert_eq 200 "$(status_of "$res")" "endpoint created"
ep=$(body_of "$res" | jq -r .id)
old=$(body_of "$res" | jq -r .secret)
res=$(api POST "/v1/webhook_endpoints/$ep/rotate_secret" '{"overlap_seconds":3600}')
assert_eq 200 "$(status_of "$res")" "rotated with a one-hour overlap"
new=$(body_of "$res" | jq -r .secret)

create_payment 700 >/dev/null || { finish; exit; }
wait_until 40 wh_has_requests r 1 && pass "delivered during the overlap" || fail "nothing delivered"
sig=$(wh_header r 1 keel-signature)
ts=$(wh_header r 1 keel-timestamp)
body=$(wh_body_file r 1)
assert_eq "t=$ts,v1=$(wh_hmac "$new" "$ts" "$body"),v1=$(wh_hmac "$old" "$ts" "$body")" "$sig" \
    "two signatures: the new secret's first, then the old one's"
# Named, not shown: even a test stack's secrets stay out of logs.
for which in new old; do
    [[ $which == new ]] && s=$new || s=$old
    out=$("$WH_VERIFY" --signature "$sig" --body "$body" --secret "$s") || true
    assert_eq valid "$out" "verify-webhook.sh accepts the delivery under the $which secret"
done

# Rotating again without an overlap ends the old secrets at once.
res=$(api POST "/v1/webhook_endpoints/$ep/rotate_secret" '{"overlap_seconds":0}')
newest=$(body_of "$res" | jq -r .secret)
create_payment 701 >/dev/null || { finish; exit; }
wait_until 40 wh_has_requests r 2 && pass "delivered after the second rotation" ||
    fail "nothing delivered after the second rotation"
sig=$(wh_header r 2 keel-signature)
ts=$(wh_header r 2 keel-timestamp)
assert_eq "t=$ts,v1=$(wh_hmac "$newest" "$ts" "$(wh_body_file r 2)")" "$sig" \
    "one signature, under the newest secret"
if "$WH_VERIFY" --signature "$sig" --body "$(wh_body_file r 2)" --secret "$new" >/dev/null; then
    fail "the replaced secret still verifies"
else
    pass "the replaced secret no longer verifies"
fi
finish
