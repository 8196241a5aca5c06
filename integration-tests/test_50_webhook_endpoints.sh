#!/usr/bin/env bash
# Webhook endpoints through the gateway: created with a whsec_ secret shown once, read and listed
# without it, scoped to their merchant, validated, rotated and deleted; the notifier's internal
# API refuses callers without the shared token; no secret reaches a log.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/webhooks_lib.sh"
trap wh_cleanup EXIT

wh_merchant || { finish; exit; }
wh_receiver r1 || { finish; exit; }
port=$WH_PORT
url="http://127.0.0.1:$port/hooks?source=keel"

res=$(wh_register "$url" '["payment.succeeded","payment.failed"]')
assert_eq 200 "$(status_of "$res")" "POST /v1/webhook_endpoints answers 200"
ep=$(body_of "$res" | jq -r .id)
secret=$(body_of "$res" | jq -r .secret)
[[ "$ep" == we_* ]] && pass "endpoint id $ep" || fail "endpoint id '$ep'"
[[ "$secret" =~ ^whsec_[0-9a-f]{64}$ ]] && pass "the secret is shown at creation" ||
    fail "secret '$secret'"
assert_eq "$url" "$(body_of "$res" | jq -r .url)" "the url is kept as given"
assert_eq '["payment.succeeded","payment.failed"]' "$(body_of "$res" | jq -c .enabled_events)" \
    "the event types are kept"
assert_eq enabled "$(body_of "$res" | jq -r .status)" "a new endpoint is enabled"

res=$(api GET "/v1/webhook_endpoints/$ep")
assert_eq 200 "$(status_of "$res")" "GET /v1/webhook_endpoints/{id}"
assert_eq null "$(body_of "$res" | jq -r .secret)" "a read never shows the secret"
res=$(api GET /v1/webhook_endpoints)
assert_eq "list 1 $ep" "$(body_of "$res" | jq -r '[.object, (.data | length), .data[0].id] | join(" ")')" \
    "the list holds the endpoint"
assert_eq null "$(body_of "$res" | jq -r .data[0].secret)" "a list never shows secrets"

# Another merchant sees nothing of it.
other_key=$API_KEY
wh_merchant || { finish; exit; }
assert_eq 404 "$(status_of "$(api GET "/v1/webhook_endpoints/$ep")")" "another merchant gets 404"
assert_eq 404 "$(status_of "$(api DELETE "/v1/webhook_endpoints/$ep")")" \
    "another merchant cannot delete it"
assert_eq 0 "$(body_of "$(api GET /v1/webhook_endpoints)" | jq '.data | length')" \
    "another merchant's list is empty"
API_KEY=$other_key

# Validation, with the field named.
check_invalid() { # BODY PARAM CODE what
    local r
    r=$(api POST /v1/webhook_endpoints "$1")
    assert_eq "400 $2 $3" "$(status_of "$r") $(body_of "$r" | jq -r '.error.param + " " + .error.code')" "$4"
}
check_invalid '{"enabled_events":["*"]}' url parameter_missing "a missing url"
check_invalid "{\"url\":\"$url\",\"enabled_events\":[]}" enabled_events parameter_invalid "no event types"
check_invalid "{\"url\":\"$url\",\"enabled_events\":[\"payment.exploded\"]}" enabled_events \
    parameter_invalid "an unknown event type"
check_invalid "{\"url\":\"ftp://127.0.0.1/\",\"enabled_events\":[\"*\"]}" url url_invalid "an ftp url"
check_invalid "{\"url\":\"http://u:p@127.0.0.1:$port/\",\"enabled_events\":[\"*\"]}" url url_invalid \
    "credentials in the url"
check_invalid "{\"url\":\"$url\",\"enabled_events\":[\"*\"],\"secret\":\"mine\"}" secret \
    parameter_unknown "a secret cannot be chosen"
assert_eq 401 "$(status_of "$(API_KEY=sk_test_nope api GET /v1/webhook_endpoints)")" \
    "an unknown API key gets 401"

# Rotation: a new secret, the old one still valid for the overlap.
res=$(api POST "/v1/webhook_endpoints/$ep/rotate_secret" '{"overlap_seconds":600}')
assert_eq 200 "$(status_of "$res")" "rotate_secret answers 200"
new_secret=$(body_of "$res" | jq -r .secret)
[[ "$new_secret" =~ ^whsec_ && "$new_secret" != "$secret" ]] && pass "rotation shows a new secret" ||
    fail "rotated secret '$new_secret'"
expires=$(body_of "$res" | jq -r .previous_secret_expires)
now=$(date +%s)
((expires >= now + 590 && expires <= now + 610)) && pass "the old secret expires after the overlap" ||
    fail "previous_secret_expires $expires, now $now"
res=$(api POST "/v1/webhook_endpoints/$ep/rotate_secret" '{"overlap_seconds":999999}')
assert_eq "400 overlap_seconds" "$(status_of "$res") $(body_of "$res" | jq -r .error.param)" \
    "an overlap beyond 7 days is refused"

# The internal API wants the shared token.
code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' \
    "$KEEL_NOTIFIER_URL/internal/v1/merchants/$WH_MERCHANT/webhook_endpoints")
assert_eq 401 "$code" "the notifier's internal API refuses a caller without the token"
code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer guessed-token-guessed-token-0000' \
    "$KEEL_NOTIFIER_URL/internal/v1/merchants/$WH_MERCHANT/webhook_endpoints")
assert_eq 401 "$code" "... and one with a wrong token"

res=$(api DELETE "/v1/webhook_endpoints/$ep")
assert_eq "200 true" "$(status_of "$res") $(body_of "$res" | jq -r .deleted)" "DELETE answers deleted"
assert_eq 404 "$(status_of "$(api GET "/v1/webhook_endpoints/$ep")")" "a deleted endpoint is gone"
assert_eq "" "$(sql_notifier "select secret from webhook_endpoints where id = '$ep'")" \
    "a deleted endpoint's secret is wiped"

token=$(cat "$KEEL_STATE_DIR/secrets/notifier.internal-token")
if grep -rqF -e "$secret" -e "$new_secret" -e "$token" "$KEEL_STATE_DIR"/logs/; then
    fail "a webhook signing secret or the internal token appears in a log"
else
    pass "no webhook signing secret and no internal token in any log"
fi
finish
