#!/usr/bin/env bash
# Object-level access: merchant A's key cannot read, list, page through or refund merchant
# B's payments; each attempt answers exactly like a payment that does not exist (404).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api_lib.sh"

ma=$(new_merchant "A $TEST_NAME") && ka=$(new_key "$ma") || { fail "merchant A"; finish; exit; }
mb=$(new_merchant "B $TEST_NAME") && kb=$(new_key "$mb") || { fail "merchant B"; finish; exit; }
assert_eq 202 "$(call POST /v1/payments "$kb" "$(payment_body 4100)" "b-$RANDOM$RANDOM")" "B creates a payment"
pb=$(last_json .id)
missing="pay_$(openssl rand -hex 16)"
wait_until 60 bash -c "curl -sS -H 'Authorization: Bearer $kb' $KEEL_GATEWAY_URL/v1/payments/$pb | grep -q '\"status\":\"succeeded\"'" &&
    pass "B's payment succeeded" || fail "B's payment did not succeed"

# GET: B's payment and a missing one look the same to A.
assert_eq 404 "$(call GET "/v1/payments/$missing" "$ka")" "A: a missing payment → 404"
ref=$(last_json '.error | [.type, .code, .message, .param] | @tsv')
assert_eq 404 "$(call GET "/v1/payments/$pb" "$ka")" "A: B's payment → 404"
assert_eq "$ref" "$(last_json '.error | [.type, .code, .message, .param] | @tsv')" "indistinguishable from a missing one"
openapi_check GET "/v1/payments/$pb" 404
assert_eq 200 "$(call GET "/v1/payments/$pb" "$kb")" "B reads its own payment"

# Lists: A's list never holds B's payment; B's payment is no cursor for A.
assert_eq 200 "$(call GET '/v1/payments?limit=100' "$ka")" "A lists its payments"
assert_eq 0 "$(last_json "[.data[] | select(.id == \"$pb\")] | length")" "A's list does not hold B's payment"
for cursor in starting_after ending_before; do
    assert_eq 404 "$(call GET "/v1/payments?$cursor=$pb" "$ka")" "A: $cursor=B's payment → 404"
    assert_eq "$cursor" "$(last_json .error.param)" "the 404 names $cursor"
done
assert_eq 404 "$(call GET "/v1/payments/$pb/refunds" "$ka")" "A cannot list B's refunds"

# Refunds: A cannot refund B's payment, and nothing is written.
assert_eq 404 "$(call POST "/v1/payments/$pb/refunds" "$ka" '{}' "a-$RANDOM")" "A: refunding B's payment → 404"
assert_eq "$ref" "$(last_json '.error | [.type, .code, .message, .param] | @tsv')" "again indistinguishable from a missing one"
assert_eq 0 "$(sql_gateway "select count(*) from refunds where payment_id = '$pb'")" "no refund row for B's payment"
assert_eq 0 "$(sql_gateway "select count(*) from outbox where message_key = '$pb' and ce_type = 'keel.v1.RefundRequested'")" \
    "no RefundRequested for B's payment"
# Idempotency keys are per merchant: A's key name does not collide with B's.
assert_eq 202 "$(call POST /v1/payments "$ka" "$(payment_body 4100)" "shared-$pb")" "A uses a key name..."
assert_eq 202 "$(call POST /v1/payments "$kb" "$(payment_body 4200)" "shared-$pb")" "...B uses the same name for another payment"
[[ "$(last_header Idempotent-Replayed)" == "" ]] && pass "B's is not a replay of A's" || fail "B got A's answer"
finish
