#!/usr/bin/env bash
# docs/openapi.yaml is linted by Redocly CLI (installed from tools/openapi/package-lock.json)
# and every operation's real answers, good and bad, from two merchants' keys, match it:
# documented status, body schema, required and documented headers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api_lib.sh"

if out=$(bash "$OPENAPI_DIR/lint.sh" 2>&1); then
    pass "redocly lint: docs/openapi.yaml is valid OpenAPI 3.1 under recommended-strict"
else
    fail "redocly lint: $(tail -n 30 <<<"$out")"
fi
mb=$(new_merchant "B $TEST_NAME") && kb=$(new_key "$mb") || { fail "merchant B"; finish; exit; }
if KEEL_API_KEY_B=$kb node "$OPENAPI_DIR/contract.mjs" walk >"$TMP_DIR/summary" 2>"$TMP_DIR/violations"; then
    pass "every operation answers as documented ($(jq -r '"\(.checked) answers checked"' "$TMP_DIR/summary"))"
else
    fail "answers that break the contract: $(head -c 3000 "$TMP_DIR/violations")"
fi
assert_eq succeeded "$(jq -r .payment_status "$TMP_DIR/summary" 2>/dev/null)" "the walk refunded a succeeded payment"
finish
