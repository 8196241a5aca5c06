#!/usr/bin/env bash
# A PaymentRequested record delivered twice (re-published byte for byte, headers included)
# is charged once and yields one outcome event: the inbox makes the effect exactly-once.
source "$(dirname "$0")/lib.sh"

id=$(create_payment 1234) || { fail "POST"; finish; exit; }
wait_payment_status "$id" succeeded 60 && pass "payment succeeded" || fail "payment did not succeed"

before=$(consumer_ok_count)
# Find the original record and copy it: same key, payload bytes and headers (same ce_id).
read -r partition offset _ headers < <(kafka_records keel.payment-requests.v1 | awk -v k="$id" '$3 == k' | head -1)
kcat -b "$KEEL_KAFKA_BROKERS" -C -t keel.payment-requests.v1 -p "$partition" -o "$offset" -c 1 -e -q \
    -f '%s' >"$TMP_DIR/payload.bin"
header_args=()
IFS=',' read -ra pairs <<<"$headers"
for pair in "${pairs[@]}"; do header_args+=(-H "$pair"); done
kcat -b "$KEEL_KAFKA_BROKERS" -P -t keel.payment-requests.v1 -p "$partition" -k "$id" \
    "${header_args[@]}" "$TMP_DIR/payload.bin"
assert_eq 2 "$(kafka_count_key keel.payment-requests.v1 "$id")" "the record is now on the topic twice"

# keel-payments counts every record it handled (duplicates too); wait until it counted the copy.
copy_consumed() { (($(consumer_ok_count) > before)); }
wait_until 30 copy_consumed && pass "keel-payments consumed the copy" \
    || fail "keel-payments did not consume the copy"
sleep 2 # an erroneous second charge would be made right after consumption: leave it time to show
ce_id=$(grep -o 'ce_id=[^,]*' <<<"$headers" | cut -d= -f2)
assert_eq 1 "$(sql_payments "select count(*) from inbox where consumer = 'payments' and event_id = '$ce_id'")" \
    "one inbox row for the event id"
assert_eq 1 "$(sim_charge_count "$id")" "charged exactly once"
assert_eq 1 "$(kafka_count_key keel.payment-events.v1 "$id")" "exactly one outcome event"
assert_eq 1 "$(sql_payments "select count(*) from payments where id = '$id'")" "one payment row in keel_payments"
finish
