#!/usr/bin/env bash
# Stripe's idempotency semantics under fire: 20 concurrent POSTs with one Idempotency-Key make
# one payment (the others get the recorded answer or 409 while it is in flight); another body
# under the key gets 422 naming what differs; and a gateway killed right after claiming a key
# leaves a claim that blocks retries (409) only until its lease ends, after which the retry
# creates the payment exactly once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api_lib.sh"
trap restore_gateway EXIT

m=$(new_merchant "idem $TEST_NAME") && k=$(new_key "$m") || { fail "merchant"; finish; exit; }
key="race-$RANDOM$RANDOM"
body=$(payment_body 7300 eur)
for i in $(seq 1 20); do
    curl -sS -m 15 -o "$TMP_DIR/race-$i.body" -w '%{http_code}' -X POST \
        -H "Authorization: Bearer $k" -H "Idempotency-Key: $key" -H 'Content-Type: application/json' \
        --data-binary "$body" "$KEEL_GATEWAY_URL/v1/payments" >"$TMP_DIR/race-$i.status" &
done
wait
created=0 replays=0 busy=0 other=0
for i in $(seq 1 20); do
    case "$(cat "$TMP_DIR/race-$i.status")" in
    202) created=$((created + 1)) ;;
    409) [[ "$(jq -r .error.code "$TMP_DIR/race-$i.body")" == idempotency_key_in_use ]] && busy=$((busy + 1)) || other=$((other + 1)) ;;
    *) other=$((other + 1)) ;;
    esac
done
log "20 concurrent POSTs: $created × 202, $busy × 409"
assert_eq 0 "$other" "every answer is 202 or 409 idempotency_key_in_use"
assert_eq 1 "$(sql_gateway "select count(*) from payments where merchant_id = '$m'")" "one payment was created"
ids=$(cat "$TMP_DIR"/race-*.body | jq -r 'select(.id != null) | .id' | sort -u)
assert_eq 1 "$(wc -l <<<"$ids")" "every 202 carries the same payment"
assert_eq 202 "$(call POST /v1/payments "$k" "$body" "$key")" "a later retry..."
assert_eq "$ids" "$(last_json .id)" "...replays the recorded payment"
assert_eq true "$(last_header Idempotent-Replayed)" "...and says so"
assert_eq 1 "$(kafka_count_key keel.payment-requests.v1 "$ids")" "one PaymentRequested on Kafka"

# The same key with another body: 422, naming the parameter that differs.
assert_eq 422 "$(call POST /v1/payments "$k" "$(payment_body 7301 eur)" "$key")" "another body under the key → 422"
assert_eq idempotency_key_reused "$(last_json .error.code)" "code idempotency_key_reused"
assert_eq Idempotency-Key "$(last_json .error.param)" "param names the header"
last_json .error.message | grep -q 'different parameters: amount;' && pass "the message names amount as the difference" ||
    fail "message: $(last_json .error.message)"
openapi_check POST /v1/payments 422
# Key order and explicit nulls do not make another request.
assert_eq 202 "$(call POST /v1/payments "$k" "{\"description\":\"$TEST_NAME\",\"currency\":\"eur\",\"metadata\":null,\"amount\":7300}" "$key")" \
    "the same parameters in another order replay"
assert_eq 422 "$(call POST "/v1/payments/$ids/refunds" "$k" '{}' "$key")" "the key on another endpoint → 422"
last_json .error.message | grep -q 'another endpoint (POST /v1/payments)' && pass "the message names the first endpoint" ||
    fail "message: $(last_json .error.message)"

# While the first request is still working (held 600 ms after its claim), its twins get 409
# with Retry-After at once rather than waiting; afterwards the key replays.
restart_gateway 'KEEL_FAILPOINTS=gateway.after_idempotency_claim=sleep(600)' KEEL_HTTP_THREADS=8
slow_key="slow-$RANDOM$RANDOM"
curl -sS -m 15 -o "$TMP_DIR/slow-first.body" -w '%{http_code}' -X POST -H "Authorization: Bearer $k" \
    -H "Idempotency-Key: $slow_key" -H 'Content-Type: application/json' --data-binary "$(payment_body 7350)" \
    "$KEEL_GATEWAY_URL/v1/payments" >"$TMP_DIR/slow-first.status" &
first_pid=$!
sleep 0.2
started=$(date +%s%N)
assert_eq 409 "$(call POST /v1/payments "$k" "$(payment_body 7350)" "$slow_key")" "a twin while the first is in flight → 409"
took=$((($(date +%s%N) - started) / 1000000))
((took < 300)) && pass "answered in ${took} ms, without waiting for the first" || fail "the 409 took ${took} ms"
assert_eq idempotency_key_in_use "$(last_json .error.code)" "...idempotency_key_in_use"
assert_eq 1 "$(last_header Retry-After)" "...with Retry-After: 1"
openapi_check POST /v1/payments 409
wait "$first_pid"
assert_eq 202 "$(cat "$TMP_DIR/slow-first.status")" "the first request completes"
assert_eq 202 "$(call POST /v1/payments "$k" "$(payment_body 7350)" "$slow_key")" "then its twin gets the recorded answer"
assert_eq "$(jq -r .id "$TMP_DIR/slow-first.body")" "$(last_json .id)" "...the same payment"

# A gateway killed after claiming a key, before doing the work.
restart_gateway 'KEEL_FAILPOINTS=gateway.after_idempotency_claim=crash' KEEL_GATEWAY_IDEMPOTENCY_LEASE_MS=6000
crash_key="crash-$RANDOM$RANDOM"
status=$(call POST /v1/payments "$k" "$(payment_body 7400)" "$crash_key")
[[ "$status" != 202 ]] && pass "the gateway died mid-request (answer '$status')" || fail "the failpoint did not fire"
for _ in $(seq 1 50); do is_running gateway || break; sleep 0.2; done
"$STACK" start-service gateway 1 KEEL_GATEWAY_IDEMPOTENCY_LEASE_MS=6000 >/dev/null
claimed=$(date +%s%N)
assert_eq 409 "$(call POST /v1/payments "$k" "$(payment_body 7400)" "$crash_key")" "the dead request's claim answers 409 while its lease runs"
[[ -n "$(last_header Retry-After)" ]] && pass "the 409 carries Retry-After" || fail "409 without Retry-After"
assert_eq 0 "$(sql_gateway "select count(*) from payments where merchant_id = '$m' and amount = 7400")" "nothing was created"
deadline=$((SECONDS + 20))
while status=$(call POST /v1/payments "$k" "$(payment_body 7400)" "$crash_key") && [[ "$status" == 409 ]] && ((SECONDS < deadline)); do
    sleep 0.5
done
assert_eq 202 "$status" "after the lease the retry takes the key over and creates the payment"
log "recovered after $((($(date +%s%N) - claimed) / 1000000)) ms"
assert_eq 1 "$(sql_gateway "select count(*) from payments where merchant_id = '$m' and amount = 7400")" "exactly one payment"
assert_eq 202 "$(call POST /v1/payments "$k" "$(payment_body 7400)" "$crash_key")" "and the next retry replays it"
assert_eq true "$(last_header Idempotent-Replayed)" "as a replay"
finish
