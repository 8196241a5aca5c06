#!/usr/bin/env bash
# GET /v1/balance never hangs on the ledger: with keel-ledger stopped, or frozen (SIGSTOP, so
# connections are accepted and never answered), it answers within the gateway's ledger
# timeout from the last-known copy, with "stale": true and that copy's as_of. Lists and
# statements, which have no copy, answer 503. Once the ledger is back, answers are fresh.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ledger_lib.sh"

timeout_ms=$(sed -n 's/^KEEL_GATEWAY_LEDGER_TIMEOUT_MS=//p' "$KEEL_STATE_DIR/env/gateway.env")
timeout_ms=${timeout_ms:-1000}
# What "within its timeout" allows on top: authentication and the copy's read.
limit_ms=$((timeout_ms + 1000))

read -r merchant key < <(new_merchant "Stale $$" UTC) || { fail "merchant"; finish; exit; }
publish_payment "evt-43-$$" "pay_43_$$" "$merchant" 5000 "$(date -u +%FT%T.000Z)"
wait_posted "$merchant" 1 && pass "a payment is posted" || fail "not posted"

fresh=$(body_of "$(api_as "$key" GET /v1/balance)")
assert_eq "false 4825" "$(jq -r '"\(.stale) \(.available[0].amount)"' <<<"$fresh")" "a fresh balance (5000 - 175)"
as_of=$(jq -r .as_of <<<"$fresh")

# timed_balance: prints "<status> <ms> <body>".
timed_balance() {
    local out
    out=$(curl -sS -m 30 -o "$TMP_DIR/balance" -w '%{http_code} %{time_total}' \
        -H "Authorization: Bearer $key" "$KEEL_GATEWAY_URL/v1/balance" || true)
    awk '{printf "%s %d ", $1, $2 * 1000}' <<<"$out"
    cat "$TMP_DIR/balance"
}
check_stale() { # WHAT
    local status ms body
    read -r status ms body <<<"$(timed_balance)"
    assert_eq 200 "$status" "$1: GET /v1/balance still answers"
    assert_le "$limit_ms" "$ms" "$1: it answers within the ledger timeout ($timeout_ms ms) plus 1 s"
    assert_eq "true 4825 $as_of" "$(jq -r '"\(.stale) \(.available[0].amount) \(.as_of)"' <<<"$body")" \
        "$1: the last-known balance, stale, with its as_of"
}

"$STACK" stop-service ledger >/dev/null
is_running ledger && fail "the ledger still runs"
check_stale "ledger stopped"
check_stale "ledger stopped, again (the breaker may be open now)"
res=$(api_as "$key" GET /v1/balance/transactions)
assert_eq "503 service_unavailable" "$(status_of "$res") $(body_of "$res" | jq -r .error.code)" \
    "balance transactions answer 503 without the ledger"
res=$(api_as "$key" GET /v1/statements/2025-01-01)
assert_eq 503 "$(status_of "$res")" "statements answer 503 without the ledger"

"$STACK" start-service ledger >/dev/null
fresh_again() { [[ "$(body_of "$(api_as "$key" GET /v1/balance)" | jq -r .stale)" == false ]]; }
wait_until 30 fresh_again && pass "fresh again once the ledger is back" || fail "still stale"

# Frozen: the kernel accepts connections, nothing answers. The timeout has to do the work.
pid=$(pid_of ledger)
as_of=$(body_of "$(api_as "$key" GET /v1/balance)" | jq -r .as_of)
kill -STOP "$pid"
check_stale "ledger frozen"
kill -CONT "$pid"
wait_until 30 fresh_again && pass "fresh again once the ledger thaws" || fail "still stale after SIGCONT"
assert_eq 0 "$(sql_gateway "select count(*) from ledger_balance_copies where merchant_id = '$merchant' and as_of < '$as_of'")" \
    "the gateway's copy only moves forward"

ledger_audit
finish
