#!/usr/bin/env bash
# Shows that every check of the chaos audit catches what it is for: a few clean payments audit clean, then each corruption on purpose (a deleted outcome, a doubled ledger line, a second charge in the simulator's log, ...) must make the audit report it and exit non-zero; each is undone again.
source "$(dirname "$0")/../integration-tests/lib.sh"
# audit.sh runs as a child: it needs the stack's variables in its environment.
set -a
# shellcheck disable=SC1091
. "$KEEL_STATE_DIR/stack.env"
set +a
AUDIT="$KEEL_REPO/chaos/audit.sh"
OUT="$TMP_DIR/run"
mkdir -p "$OUT"

# shellcheck source=chaos/lib.sh
. "$KEEL_REPO/chaos/lib.sh"
CHAOS_KEELCTL_LOG="$TMP_DIR/keelctl.log"
chaos_new_merchant "chaos audit self-test" || { fail "keelctl could not create a merchant and key"; finish; exit; }
MERCHANT=$CHAOS_MERCHANT
trap chaos_stop_webhooks EXIT
chaos_start_webhooks "$OUT" 1 "selftest-$$-endpoint" || fail "the webhook receiver could not be set up"

# Six payments that all succeed, each refunded (when the gateway has refunds), no faults.
CHAOS_API_KEY="$CHAOS_API_KEY" "$KEEL_BIN_DIR/keel-chaos-driver" --gateway "$KEEL_GATEWAY_URL" \
    --out "$OUT" --count 6 --rate 10 --concurrency 2 --decline-share 0 --replay-share 0 \
    --refund-share 1 --run-id "selftest-$$" 2>"$TMP_DIR/driver.log" ||
    fail "the driver failed: $(tail -n 3 "$TMP_DIR/driver.log")"
assert_eq 6 "$(wc -l <"$OUT/accepted.tsv")" "the driver recorded six accepted payments"
PAY="$(head -n 1 "$OUT/accepted.tsv" | cut -f1)"

# audit_expect WANT_EXIT INVARIANT MIN_COUNT MESSAGE [--wait S]
audit_expect() {
    local want=$1 inv=$2 min=$3 msg=$4 rc=0 got
    shift 4
    "$AUDIT" --out "$OUT" --merchant "$MERCHANT" "$@" >"$TMP_DIR/audit.out" 2>"$TMP_DIR/audit.err" || rc=$?
    if [[ -n "$inv" ]]; then
        got="$(awk -F'\t' -v n="$inv" '$1 == n { print $2 }' "$OUT/invariants.tsv" 2>/dev/null || true)"
        if [[ "$got" =~ ^[0-9]+$ ]] && ((got >= min)); then
            pass "$msg: $inv = $got"
        else
            fail "$msg: $inv = '$got', wanted at least $min"
            cat "$TMP_DIR/audit.out" "$TMP_DIR/audit.err" >&2
        fi
    fi
    if ((rc == want)); then
        pass "$msg: the audit exits $rc"
    else
        fail "$msg: the audit exits $rc, wanted $want"
        cat "$TMP_DIR/audit.out" "$TMP_DIR/audit.err" >&2
    fi
}

audit_expect 0 "" 0 "clean payments" --wait 90
assert_eq succeeded "$(sql_gateway "SELECT status FROM payments WHERE id = '$PAY'")" "the first payment succeeded"

# 1. A deleted outcome: the gateway forgets that the payment finished.
sql_gateway "UPDATE payments SET status = 'pending' WHERE id = '$PAY'" >/dev/null
audit_expect 1 lost 1 "a deleted outcome"
sql_gateway "UPDATE payments SET status = 'succeeded' WHERE id = '$PAY'" >/dev/null

# 2. keel-payments and the gateway disagree on how the payment ended.
sql_payments "UPDATE payments SET status = 'failed' WHERE id = '$PAY'" >/dev/null
audit_expect 1 status_mismatch 1 "an outcome changed in keel-payments"
sql_payments "UPDATE payments SET status = 'succeeded' WHERE id = '$PAY'" >/dev/null

# 3. The same Idempotency-Key answered with two ids (as the driver records it).
printf 'replay_mismatch\tselftest-key\t%s\tpay_00000000000000000000000000000000\n' "$PAY" >"$OUT/violations.tsv"
audit_expect 1 idempotency_replay_mismatch 1 "an idempotency replay with another id"
: >"$OUT/violations.tsv"

# 4. A doubled ledger line (when the stack runs keel-ledger): the books no longer balance.
if [[ -n "${KEEL_LEDGER_DB_URL:-}" ]]; then
    sql_ledger() { psql "$KEEL_LEDGER_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
    # session_replication_role = replica switches the journal's own triggers off, as only a
    # superuser can: what a bug or a bad manual fix could do.
    line="$(sql_ledger "SET session_replication_role = replica;
        INSERT INTO journal_lines (transaction_id, account_id, amount, currency, effective_at)
        SELECT l.transaction_id, l.account_id, l.amount, l.currency, l.effective_at
          FROM journal_lines l JOIN journal_transactions t ON t.id = l.transaction_id
         WHERE t.payment_id = '$PAY' AND t.source_type = 'payment' ORDER BY l.id LIMIT 1
        RETURNING id" | tail -n 1)"
    if [[ "$line" =~ ^[0-9]+$ ]]; then
        audit_expect 1 ledger_audit 1 "a doubled ledger line"
        sql_ledger "SET session_replication_role = replica; DELETE FROM journal_lines WHERE id = $line" >/dev/null
    else
        fail "no journal line of $PAY to double (is the ledger posting?)"
    fi
else
    log "no keel-ledger in this stack: the doubled-ledger-line case is skipped"
fi

# 5. Webhooks (when the stack runs keel-notifier): a delivery the notifier gave up on, one the
# receiver never got, one whose signature did not verify.
if [[ -n "$CHAOS_RECEIVER_PID" ]]; then
    sql_notifier() { psql "$KEEL_NOTIFIER_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
    delivery="$(sql_notifier "SELECT d.id FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
        WHERE e.merchant_id = '$MERCHANT' AND d.status = 'succeeded' LIMIT 1")"
    if [[ -n "$delivery" ]]; then
        sql_notifier "UPDATE webhook_deliveries SET status = 'dead' WHERE id = '$delivery'" >/dev/null
        audit_expect 1 webhook_not_delivered 1 "a webhook the notifier gave up on"
        sql_notifier "UPDATE webhook_deliveries SET status = 'succeeded' WHERE id = '$delivery'" >/dev/null
    else
        fail "no successful webhook delivery to corrupt"
    fi
    cp "$OUT/webhooks.tsv" "$TMP_DIR/webhooks.tsv"
    first_event="$(head -n 1 "$TMP_DIR/webhooks.tsv" | cut -f1)"
    grep -v "^$first_event"$'\t' "$TMP_DIR/webhooks.tsv" >"$OUT/webhooks.tsv" || true
    audit_expect 1 webhook_not_received 1 "a webhook the receiver never got"
    cp "$TMP_DIR/webhooks.tsv" "$OUT/webhooks.tsv"
    printf '%s\tpayment.succeeded\t%s\t0\t%s\t200\n' "$first_event" "$PAY" "$(date +%s%3N)" >>"$OUT/webhooks.tsv"
    audit_expect 1 webhook_bad_signature 1 "a webhook with a bad signature"
    cp "$TMP_DIR/webhooks.tsv" "$OUT/webhooks.tsv"
else
    log "no keel-notifier in this stack: the webhook cases are skipped"
fi

# 6. A refund the gateway forgot had finished (when the gateway has refunds).
refund="$(head -n 1 "$OUT/refunds.tsv" 2>/dev/null | cut -f1)"
if [[ -n "$refund" ]]; then
    was="$(sql_gateway "SELECT status FROM refunds WHERE id = '$refund'")"
    sql_gateway "UPDATE refunds SET status = 'pending' WHERE id = '$refund'" >/dev/null
    audit_expect 1 refund_lost 1 "a deleted refund outcome"
    # The same, but keel-payments put the refund in review (its outcome stayed unknown): the
    # merchant sees it pending, the provider may have made it, and that is no violation.
    sql_payments "UPDATE refunds SET status = 'requires_review' WHERE id = '$refund'" >/dev/null
    audit_expect 0 "" 0 "a refund in review, pending at the gateway, made at the provider"
    sql_payments "UPDATE refunds SET status = '$was' WHERE id = '$refund'" >/dev/null
    sql_gateway "UPDATE refunds SET status = '$was' WHERE id = '$refund'" >/dev/null
else
    log "no refund was made (the gateway has no refunds yet): the refund case is skipped"
fi

audit_expect 0 "" 0 "every corruption undone"

# 7. A second charge in the simulator's log, last because the log cannot be edited back (the
# merchant is this test's own, so no other audit sees it): at the provider that did not charge
# the payment, under the payment's own key (the cross-provider double charge fallback must
# never make); without provider B, at A under a second key.
PROVIDER_KEY="$(cat "$KEEL_PROVIDER_API_KEY_FILE")"
amount="$(sql_gateway "SELECT amount FROM payments WHERE id = '$PAY'")"
charged_at="$(curl -sS -m 10 "$KEEL_PROVIDER_SIM_URL/_sim/charges?idempotency_key=$PAY" | jq -r '.data[0].provider // empty')"
if [[ -n "${KEEL_PROVIDER_B_URL:-}" && "$charged_at" == provider_b ]]; then
    charged="$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PROVIDER_KEY" \
        -H "Idempotency-Key: $PAY" -H 'Content-Type: application/json' \
        -d "{\"amount\":$amount,\"currency\":\"usd\",\"source\":\"pm_card_visa\"}" \
        "$KEEL_PROVIDER_A_URL/v1/charges")"
elif [[ -n "${KEEL_PROVIDER_B_URL:-}" ]]; then
    charged="$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PROVIDER_KEY" \
        -H 'Content-Type: application/json' \
        -d "{\"amount\":$amount,\"currency\":\"usd\",\"email\":\"selftest@example.com\",\"reference\":\"$PAY\",\"authorization_code\":\"pm_card_visa\"}" \
        "$KEEL_PROVIDER_B_URL/transaction/charge")"
else
    charged="$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $PROVIDER_KEY" \
        -H "Idempotency-Key: $PAY-second" -H 'Content-Type: application/json' \
        -d "{\"amount\":$amount,\"currency\":\"usd\",\"source\":\"pm_card_visa\"}" \
        "$KEEL_PROVIDER_A_URL/v1/charges")"
fi
assert_eq 200 "$charged" "a second charge was made at the provider"
audit_expect 1 double_charge 1 "a second charge in the simulator's log"
chaos_stop_webhooks
trap - EXIT
finish
