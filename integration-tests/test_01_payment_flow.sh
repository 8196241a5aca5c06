#!/usr/bin/env bash
# One payment end to end through real Kafka and PostgreSQL: POST → pending → succeeded; a
# declined card → failed with the provider's code; events carry CloudEvents headers.
source "$(dirname "$0")/lib.sh"

id=$(create_payment 1999 pm_card_visa) || { fail "POST /v1/payments"; finish; exit; }
[[ "$id" == pay_* ]] && pass "payment id $id has the pay_ prefix" || fail "payment id '$id'"

res=$(api GET "/v1/payments/$id")
assert_eq 200 "$(status_of "$res")" "GET answers 200"
assert_eq 1999 "$(body_of "$res" | jq -r .amount)" "GET shows the amount"

if wait_payment_status "$id" succeeded 60; then pass "payment reached succeeded"; else fail "payment never succeeded"; fi
assert_eq 1 "$(sim_charge_count "$id")" "the provider recorded exactly one charge"

declined=$(create_payment 500 pm_card_declined) || fail "POST declined payment"
if wait_payment_status "$declined" failed 60; then pass "declined card ends failed"; else fail "declined card did not fail"; fi
assert_eq card_declined "$(body_of "$(api GET "/v1/payments/$declined")" | jq -r .failure_code)" \
    "failure_code comes from the provider"

# The request and the outcome travel with CloudEvents binary-mode headers and a traceparent.
headers=$(kafka_records keel.payment-requests.v1 | awk -v k="$id" '$3 == k' | head -1)
for h in ce_specversion=1.0 ce_type=keel.v1.PaymentRequested ce_source=/keel/gateway \
    content-type=application/protobuf ce_id= ce_time= traceparent=00-; do
    [[ "$headers" == *"$h"* ]] && pass "request record has $h" || fail "request record lacks $h: $headers"
done
outcome=$(kafka_records keel.payment-events.v1 | awk -v k="$id" '$3 == k' | head -1)
[[ "$outcome" == *ce_type=keel.v1.PaymentSucceeded* ]] && pass "outcome event is PaymentSucceeded" \
    || fail "outcome event: $outcome"
# The outcome continues the request's trace: same trace id in both traceparents.
req_trace=$(grep -o 'traceparent=00-[0-9a-f]*' <<<"$headers" | cut -d- -f2)
out_trace=$(grep -o 'traceparent=00-[0-9a-f]*' <<<"$outcome" | cut -d- -f2)
assert_eq "$req_trace" "$out_trace" "the outcome event carries the request's trace id"

# Unknown payment, no key, bad key.
assert_eq 404 "$(status_of "$(api GET /v1/payments/pay_00000000000000000000000000000000)")" "unknown id → 404"
assert_eq 401 "$(status_of "$(API_KEY=sk_test_wrong api GET "/v1/payments/$id")")" "wrong API key → 401"
finish
