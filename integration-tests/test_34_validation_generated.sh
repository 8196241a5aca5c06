#!/usr/bin/env bash
# Strict validation: 1,000 generated requests mixing valid and invalid input (every rule of
# the body, the headers and the list parameters, one fault each) get only documented
# statuses, error objects that name the offending parameter, and bodies that match
# docs/openapi.yaml; no invalid payment is stored; fields such as status or merchant_id are
# refused, never assigned.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api_lib.sh"

m=$(new_merchant "generated $TEST_NAME") || { fail "merchant"; finish; exit; }
# Its own generous limit: this test is about validation, not about 429s.
k=$(new_key "$m" --rate-limit 100000 --burst 100000) || { fail "key"; finish; exit; }

# shellcheck source=tools/openapi/ensure.sh
(. "$OPENAPI_DIR/ensure.sh") || { fail "the npm packages of tools/openapi"; finish; exit; }
seed=${KEEL_GENERATED_SEED:-$((RANDOM * 32768 + RANDOM))}
log "seed $seed (rerun with KEEL_GENERATED_SEED=$seed)"
if KEEL_API_KEY=$k node "$OPENAPI_DIR/contract.mjs" generate 1000 "$seed" >"$TMP_DIR/summary" 2>"$TMP_DIR/violations"; then
    pass "1000 generated requests: documented statuses, valid bodies, the right param named ($(jq -c .statuses "$TMP_DIR/summary"))"
else
    fail "generated requests broke the contract: $(head -c 3000 "$TMP_DIR/violations")"
fi
created=$(jq '.created | length' "$TMP_DIR/summary" 2>/dev/null || echo -1)
((created > 100)) && pass "$created valid payments among them" || fail "only $created valid payments were generated"

# What the database holds for the merchant is exactly the accepted payments, all valid.
assert_eq "$created" "$(sql_gateway "select count(*) from payments where merchant_id = '$m'")" \
    "one stored payment per 202, nothing else"
jq -r '.created[]' "$TMP_DIR/summary" | sort >"$TMP_DIR/created"
sql_gateway "select id from payments where merchant_id = '$m' order by id" | sort >"$TMP_DIR/stored"
assert_eq "" "$(comm -3 "$TMP_DIR/created" "$TMP_DIR/stored" | head -n3)" "the stored ids are the answered ids"
invalid=$(sql_gateway "
    select count(*) from payments p where merchant_id = '$m' and (
        amount <= 0
        or amount > case when currency in ('clp','isk','jpy','krw','pyg','ugx','vnd','xaf','xof',
                                           'bhd','iqd','jod','kwd','lyd','omr','tnd')
                         then 99999999999 else 9999999999 end
        or currency !~ '^[a-z]{3}\$'
        or octet_length(description) > 1000
        or payment_method is null or length(payment_method) not between 1 and 100
        or jsonb_typeof(metadata) <> 'object'
        or (select count(*) from jsonb_each(metadata)) > 50
        or exists (select 1 from jsonb_each(metadata) e
                   where length(e.key) not between 1 and 40 or jsonb_typeof(e.value) <> 'string'
                         or length(e.value #>> '{}') > 500)
        or status not in ('pending', 'succeeded', 'failed', 'requires_review'))")
assert_eq 0 "$invalid" "no stored payment breaks a rule"

# Mass assignment is impossible: server-owned fields are refused by name.
for field in status merchant_id id created_at amount_refunded provider; do
    assert_eq 400 "$(call POST /v1/payments "$k" "{\"amount\":100,\"currency\":\"usd\",\"$field\":\"x\"}" "ma-$field-$RANDOM")" \
        "a POST with \"$field\" → 400"
    assert_eq "parameter_unknown $field" "$(last_json '"\(.error.code) \(.error.param)"')" "...parameter_unknown naming $field"
done
assert_eq 0 "$(sql_gateway "select count(*) from payments where merchant_id = '$m' and amount = 100")" "none of them was stored"
# Refund bodies are as strict.
pid=$(head -n1 "$TMP_DIR/created")
assert_eq 400 "$(call POST "/v1/payments/$pid/refunds" "$k" '{"amount":1,"status":"succeeded"}' "ma-r-$RANDOM")" \
    "a refund with \"status\" → 400"
assert_eq status "$(last_json .error.param)" "...naming status"
finish
