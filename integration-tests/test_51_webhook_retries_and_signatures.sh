#!/usr/bin/env bash
# A receiver that fails 5 times and then succeeds gets the same event (id and bytes) on every
# attempt, spaced by the test stack's compressed schedule; every signature verifies with plain
# `openssl dgst -sha256 -hmac`; the reference verifier accepts the delivery and rejects a changed
# body, a wrong secret and a stale timestamp; a Retry-After longer than the schedule is honoured.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/webhooks_lib.sh"
trap wh_cleanup EXIT

# The test stack's KEEL_NOTIFIER_RETRY_SCHEDULE (deploy/local/stack.sh), in ms, and its jitter.
SCHEDULE=(200 400 800 1600 2400)
JITTER_PCT=20

wh_merchant || { finish; exit; }
wh_receiver flaky --fail 5 --fail-status 500 || { finish; exit; }
flaky_port=$WH_PORT
wh_receiver busy --fail 1 --fail-status 503 --retry-after 2 || { finish; exit; }
busy_port=$WH_PORT
res=$(wh_register "http://127.0.0.1:$flaky_port/hook" '["payment.succeeded"]')
assert_eq 200 "$(status_of "$res")" "endpoint for the flaky receiver"
secret=$(body_of "$res" | jq -r .secret)
flaky_ep=$(body_of "$res" | jq -r .id)
res=$(wh_register "http://127.0.0.1:$busy_port/hook" '["payment.succeeded"]')
assert_eq 200 "$(status_of "$res")" "endpoint for the busy receiver"

pay=$(create_payment 4200) || { finish; exit; }
wait_payment_status "$pay" succeeded 60 || fail "payment $pay did not succeed"
wait_until 40 wh_has_requests flaky 6 && pass "the flaky receiver got 6 attempts" ||
    fail "the flaky receiver got $(wh_requests flaky) attempts"
sleep 1
assert_eq 6 "$(wh_requests flaky)" "no attempt after the success"

# One event: the same id, type and bytes on every attempt.
event=$(wh_header flaky 1 keel-event-id)
[[ "$event" == evt_* ]] && pass "Keel-Event-Id $event" || fail "Keel-Event-Id '$event'"
same=1
for n in 2 3 4 5 6; do
    [[ "$(wh_header flaky "$n" keel-event-id)" == "$event" ]] || same=0
    cmp -s "$(wh_body_file flaky 1)" "$(wh_body_file flaky "$n")" || same=0
done
assert_eq 1 "$same" "all six attempts carry the same event id and the same body bytes"
body=$(wh_body_file flaky 6)
assert_eq "$event event payment.succeeded $pay payment 4200" \
    "$(jq -r '[.id, .object, .type, .data.object.id, .data.object.object, .data.object.amount] | join(" ")' "$body")" \
    "the body is a Stripe-like event about the payment"
assert_eq payment.succeeded "$(wh_header flaky 6 keel-event-type)" "Keel-Event-Type"
assert_eq succeeded "$(wh_delivery_status "$event" "$flaky_ep")" "the delivery is recorded as succeeded"

# Attempts are spaced by the schedule: never earlier, at most the jitter (and some slack) later.
times=$(jq -r '.time' "$TMP_DIR/flaky/requests.jsonl")
mapfile -t t <<<"$times"
for i in 0 1 2 3 4; do
    gap=$(awk -v a="${t[$i]}" -v b="${t[$((i + 1))]}" 'BEGIN {printf "%d", (b - a) * 1000}')
    want=${SCHEDULE[$i]}
    hi=$((want + want * JITTER_PCT / 100 + 700))
    if ((gap >= want - 30 && gap <= hi)); then
        pass "gap after attempt $((i + 1)): ${gap} ms (schedule ${want} ms)"
    else
        fail "gap after attempt $((i + 1)): ${gap} ms, want ${want}..${hi} ms"
    fi
done

# Every attempt's signature verifies with openssl alone, over the raw bytes received.
ok=0
for n in 1 2 3 4 5 6; do
    sig=$(wh_header flaky "$n" keel-signature)
    ts=$(sed -n 's/^t=\([0-9]*\),.*/\1/p' <<<"$sig")
    v1=$(sed -n 's/.*,v1=\([0-9a-f]*\)$/\1/p' <<<"$sig")
    [[ "$(wh_header flaky "$n" keel-timestamp)" == "$ts" ]] || continue
    [[ -n "$v1" && "$(wh_hmac "$secret" "$ts" "$(wh_body_file flaky "$n")")" == "$v1" ]] && ok=$((ok + 1))
done
assert_eq 6 "$ok" "openssl dgst -sha256 -hmac verifies all six signatures"

# The reference verifier: accepts the real thing, rejects tampering, a wrong secret, staleness.
sig=$(wh_header flaky 6 keel-signature)
ts=$(wh_header flaky 6 keel-timestamp)
out=$("$WH_VERIFY" --signature "$sig" --body "$body" --secret "$secret") && [[ "$out" == valid ]] &&
    pass "verify-webhook.sh accepts the delivery" || fail "verify-webhook.sh: $out"
sed 's/4200/4201/' "$body" >"$TMP_DIR/tampered"
if out=$("$WH_VERIFY" --signature "$sig" --body "$TMP_DIR/tampered" --secret "$secret"); then
    fail "verify-webhook.sh accepted a changed body"
else
    pass "verify-webhook.sh rejects a changed body ($out)"
fi
if out=$("$WH_VERIFY" --signature "$sig" --body "$body" --secret "whsec_$(openssl rand -hex 32)"); then
    fail "verify-webhook.sh accepted a wrong secret"
else
    pass "verify-webhook.sh rejects a wrong secret ($out)"
fi
if out=$("$WH_VERIFY" --signature "$sig" --body "$body" --secret "$secret" --now $((ts + 600))); then
    fail "verify-webhook.sh accepted a stale timestamp"
else
    [[ "$out" == *stale* ]] && pass "verify-webhook.sh rejects a stale timestamp" ||
        fail "stale timestamp rejected for another reason: $out"
fi

# 503 with Retry-After: 2 delays the second attempt to 2 s although the schedule says 200 ms.
wait_until 20 wh_has_requests busy 2 && pass "the busy receiver got its second attempt" ||
    fail "the busy receiver got $(wh_requests busy) attempts"
mapfile -t b < <(jq -r '.time' "$TMP_DIR/busy/requests.jsonl")
gap=$(awk -v a="${b[0]}" -v c="${b[1]}" 'BEGIN {printf "%d", (c - a) * 1000}')
((gap >= 1970 && gap <= 3500)) && pass "Retry-After honoured: ${gap} ms" ||
    fail "Retry-After: the second attempt came after ${gap} ms, want about 2000"
assert_eq "$event" "$(wh_header busy 2 keel-event-id)" "the busy receiver got the same event"
finish
