#!/usr/bin/env bash
# Provider A answers 500 (before any work) to 30 % of its calls while 200 payments go through:
# every payment ends succeeded or failed, none is charged at both providers or twice at one
# (the sandbox's charge log), and the calls to A stay within the retry budget: retries at A
# add at most KEEL_PAYMENTS_RETRY_BUDGET_PERCENT of the first calls plus
# KEEL_PAYMENTS_RETRY_BUDGET_MIN_PER_SECOND per second (and one second's allowance at start).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/providers_lib.sh"
trap restore_payments EXIT

N=200
RATIO_PERCENT=20
MIN_PER_SECOND=1
sim_heal
fresh_payments "KEEL_PAYMENTS_RETRY_BUDGET_PERCENT=$RATIO_PERCENT" \
    "KEEL_PAYMENTS_RETRY_BUDGET_MIN_PER_SECOND=$MIN_PER_SECOND" KEEL_PAYMENTS_WORKERS=4 \
    KEEL_DATABASE_POOL_SIZE=8
sim_faults provider_a '"error_rate":0.3' && pass "provider A fails 30 % of its calls with 500"
a_before=$(sim_requests provider_a)
started=$SECONDS

# Four clients at once, like real traffic.
export KEEL_GATEWAY_URL KEEL_API_KEY TEST_NAME
seq 1 $N | xargs -P 4 -I{} sh -c 'curl -sS -m 10 -X POST "$KEEL_GATEWAY_URL/v1/payments" \
    -H "Authorization: Bearer $KEEL_API_KEY" -H "Idempotency-Key: k-$TEST_NAME-$$-$1" \
    -H "Content-Type: application/json" \
    --data-binary "{\"amount\":$((3000 + $1)),\"currency\":\"usd\",\"payment_method\":\"pm_card_visa\"}" |
    jq -r .id' _ {} >"$TMP_DIR/ids" 2>"$TMP_DIR/pay.err" || true
assert_eq $N "$(grep -c '^pay_' "$TMP_DIR/ids")" "the gateway took $N payments"
in_list=$(sed "s/.*/'&'/" "$TMP_DIR/ids" | paste -sd,)
settled() {
    (($(sql_payments "select count(*) from payments where id in ($in_list) and phase = 'done'") == N))
}
wait_until 180 settled && pass "all $N payments settled" || fail "not all payments settled"
elapsed=$((SECONDS - started + 1))

statuses=$(sql_payments "select status || '=' || count(*) from payments where id in ($in_list) group by status order by 1" | paste -sd' ')
log "statuses: $statuses"
assert_eq 0 "$(sql_payments "select count(*) from payments where id in ($in_list) and status not in ('succeeded', 'failed')")" \
    "every payment ended succeeded or failed"
succeeded=$(sql_payments "select count(*) from payments where id in ($in_list) and status = 'succeeded'")

# The sandbox's view: one charge per succeeded payment, across both providers.
curl -sS -m 10 "$SIM/_sim/charges" >"$TMP_DIR/charges.json"
jq -r --slurpfile ids <(jq -R . "$TMP_DIR/ids") \
    '[.data[] | select(.idempotency_key as $k | $ids | index($k))] | group_by(.idempotency_key) | map(length) | max // 0' \
    "$TMP_DIR/charges.json" >"$TMP_DIR/max"
assert_eq 1 "$(cat "$TMP_DIR/max")" "no payment was charged twice (at one provider or across both)"
charged=$(jq -r --slurpfile ids <(jq -R . "$TMP_DIR/ids") \
    '[.data[] | select(.status == "succeeded") | select(.idempotency_key as $k | $ids | index($k))] | length' \
    "$TMP_DIR/charges.json")
assert_eq "$succeeded" "$charged" "every succeeded payment has exactly one successful charge"
sql_payments "select id || ' ' || provider from payments where id in ($in_list) and status = 'succeeded'" \
    | jq -R 'split(" ") | {key: .[0], value: .[1]}' | jq -s from_entries >"$TMP_DIR/recorded.json"
mismatch=$(jq -r --slurpfile rec "$TMP_DIR/recorded.json" \
    '[.data[] | select(.status == "succeeded") | select($rec[0][.idempotency_key] != null)
      | select($rec[0][.idempotency_key] != .provider)] | length' "$TMP_DIR/charges.json")
assert_eq 0 "$mismatch" "each was charged at the provider keel_payments recorded"

# The retry budget, in figures.
a_calls=$(($(sim_requests provider_a) - a_before))
first=$(sql_payments "select count(*) from payment_attempts where provider = 'provider_a' and payment_id in ($in_list)")
retries=$((a_calls - first))
allowed=$(((first * RATIO_PERCENT + 99) / 100 + MIN_PER_SECOND * (elapsed + 1)))
fallbacks=$(sql_payments "select count(*) from payments where id in ($in_list) and provider = 'provider_b'")
log "figures: $N payments in ${elapsed}s; calls to A $a_calls = first calls $first + retries $retries;" \
    "budget allows $allowed (${RATIO_PERCENT}% of $first + ${MIN_PER_SECOND}/s x $((elapsed + 1))s);" \
    "without a budget up to $((first * 3)) calls; sent on to B: $fallbacks"
assert_le "$allowed" "$retries" "retries at A stay within the retry budget"
assert_le $((first + allowed)) "$a_calls" "calls to A stay within first calls + budget"
(($(metric "$KEEL_PAYMENTS_URL" 'keel_retry_budget_exhausted_total{budget="provider_a"}') > 0)) &&
    pass "the budget refused retries (keel_retry_budget_exhausted_total > 0)" ||
    fail "the budget never refused a retry"
finish
