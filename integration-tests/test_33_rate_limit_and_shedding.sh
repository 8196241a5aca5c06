#!/usr/bin/env bash
# Per-key token buckets and load shedding. A key limited with keelctl (apikey create
# --rate-limit 10 --burst 10) and hammered for 10 s is admitted at 10 requests a second
# (within 10 %, after its initial burst); every 429 carries Retry-After and the RateLimit
# headers; other keys are not affected; the limit can be changed while the key is in use.
# With its database pool saturated the gateway answers 503 with Retry-After at once instead
# of queueing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api_lib.sh"
trap restore_gateway EXIT

m=$(new_merchant "limits $TEST_NAME") || { fail "merchant"; finish; exit; }
k=$(new_key "$m" --rate-limit 10 --burst 10) || { fail "limited key"; finish; exit; }
free=$(new_key "$m") || { fail "second key"; finish; exit; }
assert_eq 200 "$(call GET '/v1/payments?limit=1' "$k")" "the limited key works"
assert_eq '"api-key";q=10;w=1' "$(last_header RateLimit-Policy)" "RateLimit-Policy: 10 per 1 s"
[[ "$(last_header RateLimit)" =~ ^\"api-key\"\;r=[0-9]+\;t=[0-9]+$ ]] && pass "RateLimit: $(last_header RateLimit)" ||
    fail "RateLimit header '$(last_header RateLimit)'"
sleep 1.2 # let the bucket fill again before measuring

# Two clients at 100 requests a second each (ten times the limit together) for 10 s, each one
# curl process reusing its connection (spawning a curl per request would measure the machine,
# not the limit). Each answer is one line: status, Retry-After and RateLimit.
duration=10
for _ in $(seq 1 $((duration * 100))); do printf 'url = "%s/v1/payments?limit=1"\noutput = "/dev/null"\n' "$KEEL_GATEWAY_URL"; done >"$TMP_DIR/urls"
start=$(date +%s.%N)
for w in 1 2; do
    # No timeout(1) around it: a killed curl loses the lines it buffered.
    curl -sS -m 5 --rate 100/s -K "$TMP_DIR/urls" -H "Authorization: Bearer $k" \
        -w '%{http_code} %header{retry-after}|%header{ratelimit}\n' >"$TMP_DIR/worker-$w" 2>/dev/null &
done
wait
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
cat "$TMP_DIR"/worker-* >"$TMP_DIR/all"
total=$(wc -l <"$TMP_DIR/all")
admitted=$(grep -c '^200 ' "$TMP_DIR/all" || true)
limited=$(grep -c '^429 ' "$TMP_DIR/all" || true)
log "$total requests in ${elapsed}s: $admitted admitted, $limited limited"
assert_eq "$total" "$((admitted + limited))" "every answer is 200 or 429"
# The bucket starts full (10) and refills at 10/s: the rate after the burst must be 10 ± 10 %.
rate=$(echo "scale=2; ($admitted - 10) / $elapsed" | bc)
if (($(echo "$rate >= 9 && $rate <= 11" | bc))); then pass "admitted at $rate/s after the burst (10/s ± 10 %)"; else fail "admitted at $rate/s, want 9..11"; fi
((total >= admitted * 2)) && pass "the clients asked at least twice what the limit admits ($total)" ||
    fail "not enough load to test the limit ($total requests)"
no_retry=$(grep '^429 ' "$TMP_DIR/all" | grep -cv '^429 [1-9][0-9]*|"api-key";r=0;t=[0-9]*$' || true)
assert_eq 0 "$no_retry" "every 429 carries Retry-After and RateLimit (r=0)"

# The 429 itself, against the contract; another key of the same merchant is unaffected.
for _ in $(seq 1 300); do [[ "$(call GET '/v1/payments?limit=1' "$k")" == 429 ]] && break; done
assert_eq rate_limited "$(last_json .error.code)" "429 code rate_limited"
openapi_check GET '/v1/payments?limit=1' 429
assert_eq 200 "$(call GET '/v1/payments?limit=1' "$free")" "another key is not limited"

# A new limit applies to a key in use from its next request.
api_keelctl apikey limit --key-id "$(key_id_of "$k")" --rate-limit 1000 --burst 1000 >/dev/null || fail "apikey limit"
call GET '/v1/payments?limit=1' "$k" >/dev/null
sleep 0.3
assert_eq 200 "$(call GET '/v1/payments?limit=1' "$k")" "after raising the limit the key is admitted"
assert_eq '"api-key";q=1000;w=1' "$(last_header RateLimit-Policy)" "and the policy shows the new limit"

# Load shedding: one connection in the pool, each request holding it 1.5 s, waits of 100 ms.
restart_gateway KEEL_DATABASE_POOL_SIZE=1 KEEL_HTTP_THREADS=8 KEEL_GATEWAY_DB_ACQUIRE_TIMEOUT_MS=100 \
    'KEEL_FAILPOINTS=gateway.after_db_acquire=sleep(1500)'
for i in $(seq 1 6); do
    curl -sS -m 10 -o "$TMP_DIR/shed-$i.body" -D "$TMP_DIR/shed-$i.h" -w '%{http_code} %{time_total}\n' \
        -H "Authorization: Bearer $free" "$KEEL_GATEWAY_URL/v1/payments?limit=1" >"$TMP_DIR/shed-$i" &
done
wait
shed=$(cat "$TMP_DIR"/shed-[0-9] | grep -c '^503 ' || true)
served=$(cat "$TMP_DIR"/shed-[0-9] | grep -c '^200 ' || true)
log "6 concurrent requests on a saturated pool: $served served, $shed shed"
((shed >= 3)) && pass "a saturated pool sheds load with 503 ($shed of 6)" || fail "only $shed of 6 shed"
slow=$(cat "$TMP_DIR"/shed-[0-9] | awk '$1 == 503 && $2 > 1.0' | wc -l)
assert_eq 0 "$slow" "shed requests are answered at once, not after queueing"
f=$(grep -l '^503 ' "$TMP_DIR"/shed-[0-9] | head -n1)
cp "$f.body" "$TMP_DIR/b"
cp "$f.h" "$TMP_DIR/h"
assert_eq 1 "$(last_header Retry-After)" "503 carries Retry-After: 1"
openapi_check GET '/v1/payments?limit=1' 503
[[ "$(metric "$KEEL_GATEWAY_URL" keel_gateway_shed_total)" -ge "$shed" ]] && pass "keel_gateway_shed_total counts them" ||
    fail "keel_gateway_shed_total is $(metric "$KEEL_GATEWAY_URL" keel_gateway_shed_total)"
finish
