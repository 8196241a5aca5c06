#!/usr/bin/env bash
# A payment through the gateway is posted to the ledger once, net of the fee schedule's fee
# (usd: 2.90 % rounded half up + 30); a redelivered or republished PaymentSucceeded posts
# nothing more; a failed payment moves no money; a refund is borne by the merchant. The
# merchant's balance and entries come back through the gateway, and the audit passes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ledger_lib.sh"

read -r merchant key < <(new_merchant "Ledger Posting $$" UTC) || { fail "merchant"; finish; exit; }
pass "merchant $merchant reached the ledger through keel.merchant-events.v1"

res=$(API_KEY=$key api POST /v1/payments '{"amount":10000,"currency":"usd","payment_method":"pm_card_visa"}' "ledger-$$")
[[ "$(status_of "$res")" == 202 ]] || fail "POST /v1/payments answered $res"
pay=$(body_of "$res" | jq -r .id)
API_KEY=$key wait_payment_status "$pay" succeeded 60 && pass "payment $pay succeeded" || fail "payment did not succeed"
wait_posted "$merchant" 1 && pass "the ledger posted it" || fail "not posted"

# 10000 * 2.90 % = 290, + 30 = 320; the merchant is owed 9680.
balance=$(body_of "$(api_as "$key" GET /v1/balance)")
assert_eq 9680 "$(jq -r '.available[] | select(.currency == "usd") | .amount' <<<"$balance")" "balance is amount - fee"
assert_eq false "$(jq -r .stale <<<"$balance")" "a fresh balance is not stale"
entry=$(body_of "$(api_as "$key" GET '/v1/balance/transactions?limit=1')" | jq -c '.data[0]')
assert_eq "$pay 10000 320 9680 payment" "$(jq -r '"\(.source) \(.amount) \(.fee) \(.net) \(.type)"' <<<"$entry")" \
    "the entry shows gross, fee and net"
assert_eq 3 "$(sql_ledger "select count(*) from journal_lines l join journal_transactions t on t.id = l.transaction_id where t.source_id = '$pay'")" \
    "three lines: provider clearing, merchant payable, fee revenue"
assert_eq 0 "$(sql_ledger "select sum(l.amount) from journal_lines l join journal_transactions t on t.id = l.transaction_id where t.source_id = '$pay'")" \
    "the lines sum to zero"

# The outcome record delivered again, byte for byte (same ce_id), and republished under a
# new event id: neither posts a second time.
read -r partition offset _ headers < <(kafka_records keel.payment-events.v1 | awk -v k="$pay" '$3 == k' | head -1)
kcat -b "$KEEL_KAFKA_BROKERS" -C -t keel.payment-events.v1 -p "$partition" -o "$offset" -c 1 -e -q \
    -f '%s' >"$TMP_DIR/succeeded.bin"
header_args=()
IFS=',' read -ra pairs <<<"$headers"
for pair in "${pairs[@]}"; do header_args+=(-H "$pair"); done
before=$(metric "$KEEL_LEDGER_URL" 'keel_consumer_messages_total{consumer="ledger.payment-events",outcome="ok"}')
kcat -b "$KEEL_KAFKA_BROKERS" -P -t keel.payment-events.v1 -p "$partition" -k "$pay" \
    "${header_args[@]}" "$TMP_DIR/succeeded.bin"
publish_event PaymentSucceeded "$pay" "republished-$$" "$TMP_DIR/succeeded.bin"
both_consumed() {
    (($(metric "$KEEL_LEDGER_URL" 'keel_consumer_messages_total{consumer="ledger.payment-events",outcome="ok"}') >= before + 2))
}
wait_until 30 both_consumed && pass "the ledger consumed both copies" || fail "copies not consumed"
assert_eq 1 "$(sql_ledger "select count(*) from journal_transactions where source_id = '$pay'")" \
    "the payment is posted exactly once"
assert_eq 1 "$(sql_ledger "select count(*) from skipped_events where event_id = 'republished-$$' and source_id = '$pay'")" \
    "the republished event is recorded as a duplicate"
assert_eq 9680 "$(body_of "$(api_as "$key" GET /v1/balance)" | jq -r '.available[0].amount')" "balance unchanged"

# A failure moves no money: nothing is posted for it.
fail_id="pay_$(printf '%032x' $((RANDOM * 32768 + RANDOM)))"
{
    pb_string 1 "$fail_id"
    pb_string 2 "$merchant"
    pb_int 3 5000
    pb_string 4 usd
    pb_string 5 card_declined
} >"$TMP_DIR/failed.bin"
no_money=$(metric "$KEEL_LEDGER_URL" 'keel_ledger_events_total{result="no_money"}')
publish_event PaymentFailed "$fail_id" "failed-$$" "$TMP_DIR/failed.bin"
skipped() { (($(metric "$KEEL_LEDGER_URL" 'keel_ledger_events_total{result="no_money"}') > no_money)); }
wait_until 30 skipped && pass "PaymentFailed was consumed and skipped" || fail "PaymentFailed not consumed"
assert_eq 0 "$(sql_ledger "select count(*) from journal_transactions where source_id = '$fail_id'")" \
    "a failed payment posts nothing"

# A refund of 2500: the merchant bears all of it (keel keeps the fee).
publish_refund "refund-$$" "re_ledger_$$" "$pay" "$merchant" 2500 "$(date -u +%FT%T.000Z)"
wait_posted "$merchant" 2 && pass "the refund was posted" || fail "refund not posted"
assert_eq 7180 "$(body_of "$(api_as "$key" GET /v1/balance)" | jq -r '.available[0].amount')" \
    "balance after the refund is 9680 - 2500"
assert_eq "refund -2500 0 -2500" "$(body_of "$(api_as "$key" GET '/v1/balance/transactions?limit=1')" |
    jq -r '.data[0] | "\(.type) \(.amount) \(.fee) \(.net)"')" "the refund entry"

ledger_audit
finish
