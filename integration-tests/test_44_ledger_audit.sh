#!/usr/bin/env bash
# keelctl audit and the ledger's keel_ledger_audit_failures gauge catch a balance that no
# longer equals the sum of its lines (corrupted on purpose here), and clear once it is fixed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ledger_lib.sh"

read -r merchant _ < <(new_merchant "Audit $$" UTC) || { fail "merchant"; finish; exit; }
publish_payment "evt-44-$$" "pay_44_$$" "$merchant" 2000 "$(date -u +%FT%T.000Z)"
wait_posted "$merchant" 1 && pass "a payment is posted" || fail "not posted"
ledger_audit

# The ledger audits every 300 ms in this test, so the gauge follows within a second.
"$STACK" stop-service ledger >/dev/null
"$STACK" start-service ledger 1 KEEL_LEDGER_AUDIT_INTERVAL_MS=300 >/dev/null
gauge() { metric "$KEEL_LEDGER_URL" keel_ledger_audit_failures; }
gauge_is() { [[ "$(gauge)" == "$1" ]]; }
audited() { (($(metric "$KEEL_LEDGER_URL" 'keel_ledger_audit_runs_total{result="ok"}') > 0)); }
wait_until 10 audited && pass "the ledger audits its books and finds them right" || fail "no clean audit run"
assert_eq 0 "$(gauge)" "keel_ledger_audit_failures is 0"

sql_ledger "update accounts set balance = balance + 1 where kind = 'merchant_payable' and owner = '$merchant'"
if out=$(keelctl audit 2>&1); then
    fail "keelctl audit passed on a corrupted balance: $out"
else
    pass "keelctl audit exits non-zero on a corrupted balance"
fi
[[ "$out" == *balance_mismatch*"merchant_payable:$merchant:usd"* ]] && pass "it names the account" \
    || fail "audit output: $out"
wait_until 10 gauge_is 1 && pass "keel_ledger_audit_failures is 1" || fail "gauge is $(gauge)"

sql_ledger "update accounts set balance = balance - 1 where kind = 'merchant_payable' and owner = '$merchant'"
wait_until 10 gauge_is 0 && pass "the gauge clears once the balance is right" || fail "gauge is $(gauge)"

"$STACK" stop-service ledger >/dev/null
"$STACK" start-service ledger >/dev/null
ledger_audit
finish
