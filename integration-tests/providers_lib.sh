# Helpers for the provider tests (test_2x): simulator faults and logs, a fresh keel-payments,
# payments in any currency, payments-side state, and RefundRequested records on Kafka.
# Source after lib.sh.

SIM="$KEEL_PROVIDER_SIM_URL"

# sim_faults PROVIDER JSON_FIELDS: sets faults, e.g. sim_faults provider_a '"outage":true'.
sim_faults() {
    curl -sS -m 10 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "{\"provider\":\"$1\",$2}" "$SIM/_sim/faults" | grep -q '^200$' ||
        { log "could not set faults $2 on $1"; return 1; }
}
# sim_heal: every sandbox provider healthy again (charges are kept).
sim_heal() {
    local p
    for p in provider_a provider_b risk; do
        sim_faults "$p" '"outage":false,"error_rate":0,"latency_ms":0,"latency_jitter_ms":0,"timeout_after_charge_rate":0,"decline_rate":0' || true
    done
}
# sim_charges KEY [PROVIDER]: charges the sandbox recorded under that idempotency key.
sim_charges() {
    local q="idempotency_key=$1"
    [[ -n "${2:-}" ]] && q+="&provider=$2"
    curl -sS -m 5 "$SIM/_sim/charges?$q" | jq '.data | length'
}
# sim_refunds_of CHARGE_KEY [PROVIDER]: the sandbox's refunds of the charge made under a key.
sim_refunds_of() {
    local q="charge=$1"
    [[ -n "${2:-}" ]] && q+="&provider=$2"
    curl -sS -m 5 "$SIM/_sim/refunds?$q" | jq -c '.data'
}
# sim_requests PROVIDER: every request the sandbox counted for that provider so far.
sim_requests() {
    curl -sS -m 5 "$SIM/metrics" | awk -v p="provider=\"$1\"" \
        '/^sim_requests_total\{/ && index($0, p) {s += $2} END {printf "%d\n", s}'
}

# fresh_payments [VAR=value ...]: restarts keel-payments (new breakers and budgets) with the
# stack's env plus the overrides; the EXIT trap of the test puts the plain one back.
fresh_payments() {
    "$STACK" stop-service payments >/dev/null
    "$STACK" start-service payments 1 "$@" >/dev/null
}
restore_payments() {
    sim_heal
    "$STACK" stop-service payments >/dev/null 2>&1 || "$STACK" kill-service payments >/dev/null 2>&1 || true
    "$STACK" start-service payments >/dev/null
}

# pay CURRENCY AMOUNT [PAYMENT_METHOD]: creates a payment through the gateway; prints its id.
pay() {
    local res
    res=$(api POST /v1/payments "{\"amount\":$2,\"currency\":\"$1\",\"description\":\"$TEST_NAME\",\"payment_method\":\"${3:-pm_card_visa}\"}" "k-$TEST_NAME-$RANDOM-$RANDOM-$$")
    if [[ "$(status_of "$res")" != 202 ]]; then
        log "POST /v1/payments answered $res"
        return 1
    fi
    body_of "$res" | jq -r .id
}

# pay_field ID COLUMN: one column of the payment in keel_payments ("" when absent).
pay_field() { sql_payments "select coalesce($2::text, '') from payments where id = '$1'"; }
# wait_pay ID STATUS [TIMEOUT_S]: until keel_payments records that status.
wait_pay() {
    local deadline=$((SECONDS + ${3:-30})) got=""
    while ((SECONDS < deadline)); do
        got=$(pay_field "$1" status)
        [[ "$got" == "$2" ]] && return 0
        sleep 0.2
    done
    log "payment $1 is '$got' in keel_payments after ${3:-30}s, wanted '$2'"
    return 1
}
# attempts_of ID: "provider:outcome,..." of the payment's charges in order.
attempts_of() {
    sql_payments "select coalesce(string_agg(provider || ':' || coalesce(outcome, '-'), ',' order by id), '') from payment_attempts where payment_id = '$1'"
}
# breaker PROVIDER: the breaker's state gauge on keel-payments (0 closed, 1 open, 2 half-open).
breaker() { metric "$KEEL_PAYMENTS_URL" "keel_breaker_state{breaker=\"$1\"}"; }
breaker_moves() { metric "$KEEL_PAYMENTS_URL" "keel_breaker_transitions_total{breaker=\"$1\",to=\"$2\"}"; }

# --- events on keel.payment-events.v1 ---------------------------------------------------
# events_of KEY CE_TYPE: how many records of that type the payment has.
events_of() {
    kafka_records keel.payment-events.v1 | awk -v k="$1" '$3 == k' | grep -c "ce_type=$2," || true
}
# event_fields KEY CE_TYPE: the first such record's protobuf fields as JSON {"number": value}
# (varints as signed 64-bit, length-delimited as text).
event_fields() {
    local p o
    read -r p o _ < <(kafka_records keel.payment-events.v1 | awk -v k="$1" '$3 == k' | grep "ce_type=$2," | head -1)
    [[ -n "${o:-}" ]] || { echo '{}'; return 0; }
    kcat -b "$KEEL_KAFKA_BROKERS" -C -t keel.payment-events.v1 -p "$p" -o "$o" -c 1 -e -q -f '%s' \
        >"$TMP_DIR/event.bin"
    python3 - "$TMP_DIR/event.bin" <<'PY'
import json, sys
data = open(sys.argv[1], "rb").read()
out, i = {}, 0
def varint():
    global i
    n = shift = 0
    while True:
        b = data[i]; i += 1
        n |= (b & 0x7F) << shift; shift += 7
        if b < 0x80:
            return n
while i < len(data):
    key = varint(); num, wt = key >> 3, key & 7
    if wt == 0:
        v = varint()
        out[str(num)] = v - (1 << 64) if v >= 1 << 63 else v
    elif wt == 2:
        n = varint(); out[str(num)] = data[i:i + n].decode("utf-8", "replace"); i += n
    else:
        raise SystemExit(f"unexpected wire type {wt}")
print(json.dumps(out))
PY
}

# --- RefundRequested on keel.payment-requests.v1 ----------------------------------------
new_refund_id() { printf 're_%s' "$(openssl rand -hex 16)"; }
# publish_refund CE_ID REFUND_ID PAYMENT_ID AMOUNT CURRENCY [MERCHANT_ID]: one record, as the
# gateway's relay would publish it (key = payment id, CloudEvents headers, protobuf body).
publish_refund() {
    local f="$TMP_DIR/refund-$1.bin"
    python3 - "$2" "$3" "${6:-$KEEL_MERCHANT_ID}" "$4" "$5" >"$f" <<'PY'
import sys
def varint(n):
    out = b""
    while True:
        b = n & 0x7F; n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
def text(num, s):
    b = s.encode()
    return varint(num << 3 | 2) + varint(len(b)) + b
refund_id, payment_id, merchant_id, amount, currency = sys.argv[1:6]
sys.stdout.buffer.write(text(1, refund_id) + text(2, payment_id) + text(3, merchant_id)
                        + varint(4 << 3) + varint(int(amount)) + text(5, currency)
                        + text(6, "integration test"))
PY
    kcat -b "$KEEL_KAFKA_BROKERS" -P -t keel.payment-requests.v1 -k "$3" \
        -H ce_specversion=1.0 -H "ce_id=$1" -H ce_source=/tests/providers \
        -H ce_type=keel.v1.RefundRequested -H content-type=application/protobuf "$f"
}
refund_field() { sql_payments "select coalesce($2::text, '') from refunds where id = '$1'"; }
# wait_refund ID STATUS [TIMEOUT_S]
wait_refund() {
    local deadline=$((SECONDS + ${3:-30})) got=""
    while ((SECONDS < deadline)); do
        got=$(refund_field "$1" status)
        [[ "$got" == "$2" ]] && return 0
        sleep 0.2
    done
    log "refund $1 is '$got' after ${3:-30}s, wanted '$2'"
    return 1
}
