#!/usr/bin/env bash
# The same Idempotency-Key with the same body returns the same payment and creates nothing
# more (rows and events counted); with another body it is refused with 422.
source "$(dirname "$0")/lib.sh"

key="idem-replay-$RANDOM-$$"
body='{"amount":4200,"currency":"eur","description":"replay test"}'
first=$(api POST /v1/payments "$body" "$key")
second=$(api POST /v1/payments "$body" "$key")
assert_eq 202 "$(status_of "$first")" "first POST → 202"
assert_eq 202 "$(status_of "$second")" "replayed POST → recorded status 202"
id=$(body_of "$first" | jq -r .id)
assert_eq "$id" "$(body_of "$second" | jq -r .id)" "the replay returns the same payment id"
assert_eq "$(body_of "$first")" "$(body_of "$second")" "the replay returns the recorded body byte for byte"

other=$(api POST /v1/payments '{"amount":4300,"currency":"eur","description":"replay test"}' "$key")
assert_eq 422 "$(status_of "$other")" "same key, different body → 422"
assert_eq Idempotency-Key "$(body_of "$other" | jq -r .error.param)" "the 422 names the Idempotency-Key"

missing=$(api POST /v1/payments "$body")
assert_eq 400 "$(status_of "$missing")" "no Idempotency-Key → 400"

wait_payment_status "$id" succeeded 60 && pass "the payment completes" || fail "payment did not complete"
assert_eq 1 "$(sql_gateway "select count(*) from payments where description = 'replay test'")" \
    "one payment row for the key"
assert_eq 1 "$(kafka_count_key keel.payment-requests.v1 "$id")" "one PaymentRequested record"
assert_eq 1 "$(sim_charge_count "$id")" "one charge"
finish
