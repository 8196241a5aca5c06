#!/usr/bin/env bash
# Each service's database role reaches only its own database; every binary documents its
# configuration with --help and never prints a secret.
source "$(dirname "$0")/lib.sh"

pw_payments=$(cat "$KEEL_STATE_DIR/secrets/payments.db-password")
if PGPASSWORD=$pw_payments psql "postgresql://keel_payments@127.0.0.1:$KEEL_PG_PORT/keel_gateway" -XAtqc 'select 1' >/dev/null 2>&1; then
    fail "keel_payments could connect to keel_gateway"
else
    pass "keel_payments cannot connect to keel_gateway"
fi
assert_eq 1 "$(PGPASSWORD=$pw_payments psql "postgresql://keel_payments@127.0.0.1:$KEEL_PG_PORT/keel_payments" -XAtqc 'select 1')" \
    "keel_payments connects to its own database"

for bin in keel-gateway keel-payments keel-provider-sim keel-ledger keel-notifier; do
    out=$("$KEEL_BIN_DIR/$bin" --help 2>&1) && pass "$bin --help exits 0" || fail "$bin --help failed"
    [[ "$out" == *KEEL_HTTP_PORT* ]] && pass "$bin --help lists KEEL_HTTP_PORT" || fail "$bin --help: $out"
done
# Secrets are redacted from the configuration a service logs at start-up.
if grep -q -F "$pw_payments" "$KEEL_STATE_DIR"/logs/*.log; then
    fail "a database password appears in a log"
else
    pass "no database password in any log"
fi
finish
