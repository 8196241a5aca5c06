#!/usr/bin/env bash
# keel-provider-sim's own HTTP API (docs/provider-sim.md), driven directly: provider B's
# Paystack-shaped charge, replay, verify and refunds; provider A's Stripe-shaped refunds and
# over-refund; risk scores steered by token; runtime faults (error rate, latency, timeout
# after charge, an outage that refuses connections and ends); start-up faults from the env.
source "$(dirname "$0")/lib.sh"

SIM="$KEEL_PROVIDER_SIM_URL"
KEY=$(cat "$KEEL_PROVIDER_API_KEY_FILE")
RUN="$$-$RANDOM"

# call URL METHOD PATH [BODY] [IDEMPOTENCY_KEY]: prints "<status> <body>" ("000 " when the
# connection failed); response headers go to $TMP_DIR/headers.
call() {
    local url=$1 method=$2 path=$3 body=${4:-} key=${5:-}
    local args=(-sS -m 10 -D "$TMP_DIR/headers" -o "$TMP_DIR/body" -w '%{http_code}' -X "$method"
        -H "Authorization: Bearer $KEY")
    [[ -n "$key" ]] && args+=(-H "Idempotency-Key: $key")
    [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    : >"$TMP_DIR/body"
    local status
    status=$(curl "${args[@]}" "$url$path" 2>/dev/null) || true
    printf '%s %s\n' "${status:-000}" "$(cat "$TMP_DIR/body")"
}
b() { call "$KEEL_PROVIDER_B_URL" "$@"; }
a() { call "$KEEL_PROVIDER_A_URL" "$@"; }
risk() { call "$KEEL_RISK_URL" POST /v1/score "$1"; }
faults() { # faults JSON: POST /_sim/faults, prints the new settings
    curl -sS -m 10 -H 'Content-Type: application/json' -d "$1" "$SIM/_sim/faults"
}
count_of() { curl -sS -m 5 "$SIM/_sim/counts" | jq -r ".data.$1.$2"; }
sj() { printf '%s %s\n' "$(status_of "$1")" "$(body_of "$1" | jq -r "$2")"; } # sj RES FILTER
replayed() { grep -qi '^Idempotent-Replayed: true' "$TMP_DIR/headers"; }
heal() { # every provider back to healthy, whatever a failed check left behind
    for p in provider_a provider_b risk; do
        faults "{\"provider\":\"$p\",\"outage\":false,\"error_rate\":0,\"latency_ms\":0,\"latency_jitter_ms\":0,\"timeout_after_charge_rate\":0,\"decline_rate\":0}" >/dev/null 2>&1 || true
    done
}
trap heal EXIT
heal

# --- provider B: charge, replay, conflict, decline, verify ---------------------------------
ref="b-$RUN-1"
charge_b() { # charge_b REFERENCE AMOUNT TOKEN
    b POST /transaction/charge "{\"amount\":$2,\"currency\":\"ngn\",\"email\":\"buyer@example.com\",\"reference\":\"$1\",\"authorization_code\":\"$3\"}"
}
b_charges_before=$(count_of provider_b charges)
res=$(charge_b "$ref" 5000 pm_card_visa)
assert_eq 200 "$(status_of "$res")" "B: POST /transaction/charge answers 200"
data=$(body_of "$res")
assert_eq "true Charge attempted success Approved 5000 NGN $ref" \
    "$(jq -r '[.status, .message, .data.status, .data.gateway_response, .data.amount, .data.currency, .data.reference] | join(" ")' <<<"$data")" \
    "B: Paystack envelope, success, currency uppercased"
tx_id=$(jq -r '.data.id' <<<"$data")
assert_eq number "$(jq -r '.data.id | type' <<<"$data")" "B: the transaction id is a JSON integer"

res=$(charge_b "$ref" 5000 pm_card_visa)
assert_eq "200 $tx_id" "$(status_of "$res") $(body_of "$res" | jq -r .data.id)" "B: a repeated reference returns the same transaction"
replayed && pass "B: the replay is marked Idempotent-Replayed" || fail "B: no Idempotent-Replayed header"
assert_eq 1 "$(curl -sS "$SIM/_sim/charges?provider=provider_b&idempotency_key=$ref" | jq '.data | length')" \
    "B: the charge log holds one charge for the reference"
assert_eq $((b_charges_before + 1)) "$(count_of provider_b charges)" "B: /_sim/counts counted one charge"

res=$(charge_b "$ref" 6000 pm_card_visa)
assert_eq "400 false duplicate_reference" "$(status_of "$res") $(body_of "$res" | jq -r '"\(.status) \(.code)"')" \
    "B: the reference with another amount is refused"

res=$(charge_b "b-$RUN-declined" 700 pm_card_insufficient_funds)
assert_eq "200 failed Insufficient Funds" "$(status_of "$res") $(body_of "$res" | jq -r '"\(.data.status) \(.data.gateway_response)"')" \
    "B: a declining token gives data.status failed"

res=$(b GET "/transaction/verify/$ref")
assert_eq "200 Verification successful $tx_id success" \
    "$(status_of "$res") $(body_of "$res" | jq -r '"\(.message) \(.data.id) \(.data.status)"')" "B: verify finds the transaction"
res=$(b GET "/transaction/verify/b-$RUN-unknown")
assert_eq "404 false Transaction reference not found" \
    "$(status_of "$res") $(body_of "$res" | jq -r '"\(.status) \(.message)"')" "B: verify of an unknown reference is 404"
res=$(KEY=wrong b GET "/transaction/verify/$ref")
assert_eq "401 false" "$(status_of "$res") $(body_of "$res" | jq -r .status)" "B: a wrong secret key is refused"

# --- provider B: refunds -------------------------------------------------------------------
res=$(b POST /refund "{\"transaction\":\"$ref\",\"amount\":2000}")
assert_eq "200 true 2000 processed $tx_id" \
    "$(status_of "$res") $(body_of "$res" | jq -r '"\(.status) \(.data.amount) \(.data.status) \(.data.transaction.id)"')" \
    "B: a partial refund by reference"
res=$(b POST /refund "{\"transaction\":\"$ref\",\"amount\":4000}")
assert_eq "400 amount_too_large" "$(status_of "$res") $(body_of "$res" | jq -r .code)" "B: refunding more than is left is refused"
res=$(b POST /refund "{\"transaction\":$tx_id}")
assert_eq "200 3000" "$(status_of "$res") $(body_of "$res" | jq -r .data.amount)" "B: the rest, by integer id"
res=$(b POST /refund "{\"transaction\":\"$ref\",\"amount\":1}")
assert_eq "400 transaction_reversed" "$(status_of "$res") $(body_of "$res" | jq -r .code)" "B: a fully refunded transaction"
res=$(b POST /refund "{\"transaction\":\"b-$RUN-declined\"}")
assert_eq "400 transaction_not_refundable" "$(status_of "$res") $(body_of "$res" | jq -r .code)" "B: a failed transaction cannot be refunded"
res=$(b POST /refund '{"transaction":"no-such-ref"}')
assert_eq "404 transaction_not_found" "$(status_of "$res") $(body_of "$res" | jq -r .code)" "B: refund of an unknown transaction"
res=$(b GET "/refund?transaction=$ref")
assert_eq "200 2" "$(status_of "$res") $(body_of "$res" | jq '.data | length')" "B: GET /refund lists the transaction's refunds"
assert_eq "2 5000" "$(curl -sS "$SIM/_sim/refunds?provider=provider_b&charge=$ref" | jq -r '"\(.data | length) \([.data[].amount] | add)"')" \
    "B: /_sim/refunds shows both refunds"
# An Idempotency-Key makes a B refund retry-safe.
ref2="b-$RUN-2"
charge_b "$ref2" 1000 pm_card_visa >/dev/null
r1=$(b POST /refund "{\"transaction\":\"$ref2\",\"amount\":100}" "rk-$RUN")
r2=$(b POST /refund "{\"transaction\":\"$ref2\",\"amount\":100}" "rk-$RUN")
assert_eq "$(body_of "$r1" | jq -r .data.id)" "$(body_of "$r2" | jq -r .data.id)" "B: a refund retried with its Idempotency-Key is the same refund"
assert_eq 1 "$(curl -sS "$SIM/_sim/refunds?provider=provider_b&charge=$ref2" | jq '.data | length')" "B: and only one refund exists"

# --- provider A: refunds ---------------------------------------------------------------------
res=$(a POST /v1/charges '{"amount":1000,"currency":"usd","source":"pm_card_visa"}' "a-$RUN-1")
ch=$(body_of "$res" | jq -r .id)
res=$(a POST /v1/refunds "{\"charge\":\"$ch\",\"amount\":600}" "ra-$RUN-1")
re=$(body_of "$res" | jq -r .id)
assert_eq "200 refund 600 $ch succeeded" \
    "$(status_of "$res") $(body_of "$res" | jq -r '"\(.object) \(.amount) \(.charge) \(.status)"')" "A: POST /v1/refunds"
[[ "$re" == re_* ]] && pass "A: the refund id is re_..." || fail "A: refund id $re"
res=$(a POST /v1/refunds "{\"charge\":\"$ch\",\"amount\":600}" "ra-$RUN-1")
assert_eq "200 $re" "$(status_of "$res") $(body_of "$res" | jq -r .id)" "A: a retried refund is the same refund"
res=$(a POST /v1/refunds "{\"charge\":\"$ch\",\"amount\":500}" "ra-$RUN-2")
assert_eq "400 invalid_request_error amount_too_large" \
    "$(status_of "$res") $(body_of "$res" | jq -r '"\(.error.type) \(.error.code)"')" "A: over-refund is refused"
res=$(a GET "/v1/refunds?idempotency_key=ra-$RUN-1")
assert_eq "200 $re" "$(status_of "$res") $(body_of "$res" | jq -r '.data[0].id')" "A: lookup by idempotency key"
res=$(a GET "/v1/refunds?idempotency_key=ra-$RUN-2")
assert_eq "200 0" "$(status_of "$res") $(body_of "$res" | jq '.data | length')" "A: the refused refund does not exist"
assert_eq "1 600" "$(curl -sS "$SIM/_sim/refunds?provider=provider_a&charge=$ch" | jq -r '"\(.data | length) \(.data[0].amount)"')" \
    "A: /_sim/refunds shows the refund"
assert_eq 600 "$(curl -sS "$SIM/_sim/charges?provider=provider_a&idempotency_key=a-$RUN-1" | jq -r '.data[0].refunded')" \
    "A: the charge log shows the refunded amount"

# --- risk ------------------------------------------------------------------------------------
score() { risk "{\"payment_id\":\"pay-$RUN-$1\",\"merchant_id\":\"mer_1\",\"amount\":100,\"currency\":\"usd\",\"payment_method\":\"$2\"}"; }
assert_eq "200 90 block" "$(sj "$(score 1 pm_risk_high)" '"\(.score) \(.decision)"')" "risk: pm_risk_high blocks"
res=$(score 2 pm_risk_review)
assert_eq "60 review" "$(body_of "$res" | jq -r '"\(.score) \(.decision)"')" "risk: pm_risk_review reviews"
low1=$(body_of "$(score 3 pm_card_visa)" | jq -r '"\(.score) \(.decision)"')
low2=$(body_of "$(score 4 pm_card_visa)" | jq -r '"\(.score) \(.decision)"')
[[ "$low1" =~ ^([0-9]|[12][0-9])\ allow$ ]] && pass "risk: other tokens score low ($low1)" || fail "risk: $low1"
assert_eq "$low1" "$low2" "risk: one token, one score"
res=$(risk '{"amount":1,"currency":"usd","payment_method":"pm_card_visa"}')
assert_eq "400 payment_id" "$(status_of "$res") $(body_of "$res" | jq -r .error.param)" "risk: a missing field is named"
assert_eq "90 block" "$(curl -sS "$SIM/_sim/scores?payment_id=pay-$RUN-1" | jq -r '.data[0] | "\(.score) \(.decision)"')" \
    "risk: /_sim/scores logs the score"

# --- runtime faults --------------------------------------------------------------------------
faults '{"provider":"provider_b","error_rate":1}' >/dev/null
before=$(count_of provider_b charges)
res=$(charge_b "b-$RUN-err" 100 pm_card_visa)
assert_eq "500 simulated_error" "$(status_of "$res") $(body_of "$res" | jq -r .code)" "B: error_rate 1 answers 500"
assert_eq "$before" "$(count_of provider_b charges)" "B: ... before charging"
faults '{"provider":"provider_b","error_rate":0}' >/dev/null

faults '{"provider":"risk","latency_ms":300,"latency_jitter_ms":100}' >/dev/null
t0=$(date +%s%N)
score 5 pm_card_visa >/dev/null
took=$((($(date +%s%N) - t0) / 1000000))
((took >= 300)) && pass "risk: latency_ms delays the answer (${took} ms)" || fail "risk: answered in ${took} ms"
faults '{"provider":"risk","latency_ms":0,"latency_jitter_ms":0}' >/dev/null

# Timeout after charge: the client gives up, yet the transaction exists (verify finds it).
faults '{"provider":"provider_b","timeout_after_charge_rate":1,"timeout_hold_ms":3000}' >/dev/null
rc=0
curl -sS -m 1 -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"amount\":100,\"currency\":\"NGN\",\"email\":\"a@b.c\",\"reference\":\"b-$RUN-held\",\"authorization_code\":\"pm_card_visa\"}" \
    "$KEEL_PROVIDER_B_URL/transaction/charge" 2>/dev/null || rc=$?
assert_eq 28 "$rc" "B: timeout_after_charge holds the answer past the client's timeout"
faults '{"provider":"provider_b","timeout_after_charge_rate":0}' >/dev/null
assert_eq "200 success" "$(sj "$(b GET "/transaction/verify/b-$RUN-held")" .data.status)" "B: ... but the transaction was made"

# Outage: B's port refuses connections, A and risk carry on, then B comes back.
assert_eq "true false" "$(faults '{"provider":"provider_b","outage":true}' | jq -r '"\(.outage) \(.listening)"')" \
    "B: outage closes the listener"
rc=0
curl -sS -m 5 -o /dev/null "$KEEL_PROVIDER_B_URL/transaction/verify/$ref" 2>/dev/null || rc=$?
assert_eq 7 "$rc" "B: connection refused during the outage"
assert_eq 200 "$(status_of "$(a GET /v1/charges?limit=1)")" "A: still serving during B's outage"
assert_eq 200 "$(status_of "$(score 6 pm_card_visa)")" "risk: still serving during B's outage"
assert_eq "false true" "$(faults '{"provider":"provider_b","outage":false}' | jq -r '"\(.outage) \(.listening)"')" \
    "B: the outage ends"
res=$(b GET "/transaction/verify/$ref")
assert_eq "200 $tx_id" "$(status_of "$res") $(body_of "$res" | jq -r .data.id)" "B: back, with its transactions"

# --- start-up faults from the environment ----------------------------------------------------
"$STACK" stop-service provider-sim >/dev/null
"$STACK" start-service provider-sim 1 KEEL_SIM_B_OUTAGE=true KEEL_SIM_RISK_DECLINE_RATE=0.5 \
    KEEL_SIM_RISK_LATENCY_MS=20 KEEL_SIM_RISK_LATENCY_DISTRIBUTION=exponential >/dev/null
rc=0
curl -sS -m 5 -o /dev/null "$KEEL_PROVIDER_B_URL/transaction/verify/x" 2>/dev/null || rc=$?
assert_eq 7 "$rc" "env: KEEL_SIM_B_OUTAGE=true starts B closed"
assert_eq "20 exponential 0.5" \
    "$(curl -sS "$SIM/_sim/faults?provider=risk" | jq -r '.data[0] | "\(.latency_ms) \(.latency_distribution) \(.decline_rate)"')" \
    "env: KEEL_SIM_RISK_* reach risk's faults"
assert_eq 200 "$(status_of "$(a GET /v1/charges?limit=1)")" "env: A is open"
"$STACK" stop-service provider-sim >/dev/null
"$STACK" start-service provider-sim >/dev/null
# A restart forgets everything: B listens again and no longer knows the reference.
assert_eq 404 "$(status_of "$(b GET "/transaction/verify/$ref")")" "restarted healthy: B listens again, memory empty"
finish
