#!/usr/bin/env bash
# Records that can never succeed leave the main path: an undecodable payload and a record
# without CloudEvents headers land on keel.payment-requests.v1.dlq with the reason and their
# origin in headers, and later records are still processed.
source "$(dirname "$0")/lib.sh"

dlq_before=$(kafka_records keel.payment-requests.v1.dlq | wc -l)
printf '\xff\xff\xffnot a protobuf' >"$TMP_DIR/garbage.bin"
kcat -b "$KEEL_KAFKA_BROKERS" -P -t keel.payment-requests.v1 -k pay_garbage_$$ \
    -H ce_specversion=1.0 -H ce_id=garbage-$$ -H ce_source=/tests -H ce_type=keel.v1.PaymentRequested \
    -H content-type=application/protobuf "$TMP_DIR/garbage.bin"
printf 'no headers at all' >"$TMP_DIR/plain.bin"
kcat -b "$KEEL_KAFKA_BROKERS" -P -t keel.payment-requests.v1 -k pay_plain_$$ "$TMP_DIR/plain.bin"

# A well-formed PaymentRequested that breaks a rule (amount 0), as an external producer
# might publish it: protobuf bytes written by hand (field 1 payment_id, 2 merchant_id,
# 4 currency; amount 0 is proto3's default, so field 3 is absent).
bad_id="pay_$(printf '%032x' $$)"
{
    printf '\x0a\x24%s' "$bad_id"
    printf '\x12\x0cmer_external'
    printf '\x22\x03usd'
} >"$TMP_DIR/invalid.bin"
kcat -b "$KEEL_KAFKA_BROKERS" -P -t keel.payment-requests.v1 -k "$bad_id" \
    -H ce_specversion=1.0 -H ce_id=invalid-$$ -H ce_source=/tests -H ce_type=keel.v1.PaymentRequested \
    -H content-type=application/protobuf "$TMP_DIR/invalid.bin"

three_dead() { (($(kafka_records keel.payment-requests.v1.dlq | wc -l) >= dlq_before + 3)); }
wait_until 30 three_dead && pass "all three records reached the DLQ" || fail "DLQ did not receive them"
garbage=$(kafka_records keel.payment-requests.v1.dlq | awk -v k="pay_garbage_$$" '$3 == k')
[[ "$garbage" == *keel_dlq_reason=*undecodable* ]] && pass "the DLQ record says why (undecodable)" \
    || fail "reason missing: $garbage"
[[ "$garbage" == *keel_dlq_topic=keel.payment-requests.v1* && "$garbage" == *keel_dlq_offset=* \
    && "$garbage" == *keel_dlq_partition=* ]] && pass "the DLQ record names its origin" || fail "origin missing: $garbage"
plain=$(kafka_records keel.payment-requests.v1.dlq | awk -v k="pay_plain_$$" '$3 == k')
[[ "$plain" == *keel_dlq_reason=*CloudEvents* ]] && pass "a record without CloudEvents headers is dead-lettered" \
    || fail "plain record: $plain"
invalid=$(kafka_records keel.payment-requests.v1.dlq | awk -v k="$bad_id" '$3 == k')
[[ "$invalid" == *keel_dlq_reason=*amount* ]] && pass "an invalid amount is dead-lettered with the rule broken" \
    || fail "invalid record: $invalid"
assert_eq 0 "$(sql_payments "select count(*) from payments where id in ('pay_garbage_$$', 'pay_plain_$$', '$bad_id')")" \
    "nothing half-written in keel_payments"

id=$(create_payment 2500) || fail "POST after poison"
wait_payment_status "$id" succeeded 60 && pass "later records are still processed" || fail "partition stalled"
finish
