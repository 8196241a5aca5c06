#!/usr/bin/env bash
# API keys made with keelctl: stored only as SHA-256, listed without secrets, revoked and
# rotated (with and without a grace period); a missing, malformed, unknown, revoked or
# expired key gets one and the same 401 body.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api_lib.sh"

m=$(new_merchant "keys $TEST_NAME") || { fail "merchant create"; finish; exit; }
k1=$(new_key "$m") || { fail "apikey create"; finish; exit; }
[[ "$k1" =~ ^sk_test_[0-9a-f]{48}$ ]] && pass "the secret has the sk_test_ prefix and 48 hex digits" || fail "secret '$k1'"
id1=$(key_id_of "$k1")
assert_eq 1 "$(sql_gateway "select count(*) from api_keys where id = '$id1' and key_hash = encode(sha256('$k1'::bytea), 'hex')")" \
    "the key row holds the secret's SHA-256"
assert_eq 0 "$(sql_gateway "select count(*) from api_keys a where row_to_json(a)::text like '%$k1%'")" \
    "no column holds the secret itself"
list=$(api_keelctl apikey list --merchant "$m")
grep -q "$id1" <<<"$list" && pass "apikey list shows the key" || fail "apikey list: $list"
grep -q "$k1" <<<"$list" && fail "apikey list printed the secret" || pass "apikey list never prints the secret"

assert_eq 200 "$(call GET '/v1/payments?limit=1' "$k1")" "a new key works"

# One 401 for every reason a key is refused.
call GET /v1/payments '' >/dev/null
ref=$(last_body)
assert_eq 'Bearer realm="keel"' "$(last_header WWW-Authenticate)" "401 names the Bearer scheme"
openapi_check GET /v1/payments 401
same_401() { # label, curl args...
    local label=$1 status
    shift
    status=$(call GET /v1/payments '' '' '' "$@")
    if [[ "$status" == 401 && "$(last_body)" == "$ref" ]]; then pass "$label → the same 401"; else fail "$label → $status $(last_body)"; fi
}
same_401 "a malformed header" -H "Authorization: Token $k1"
same_401 "Bearer without a key" -H "Authorization: Bearer "
same_401 "a key with a blank inside" -H "Authorization: Bearer sk_test_a b"
same_401 "an unknown key" -H "Authorization: Bearer sk_test_$(openssl rand -hex 24)"
same_401 "a key too long" -H "Authorization: Bearer sk_test_$(openssl rand -hex 200)"

# Rotation with a grace period: both keys work until the old one expires.
k2=$(api_keelctl apikey rotate --key-id "$id1" --grace 3 2>/dev/null) || fail "apikey rotate"
assert_eq 200 "$(call GET '/v1/payments?limit=1' "$k2")" "the rotated-in key works"
assert_eq 200 "$(call GET '/v1/payments?limit=1' "$k1")" "the old key works during the grace period"
sleep 3.5
same_401 "the old key after its grace period" -H "Authorization: Bearer $k1"
assert_eq 200 "$(call GET '/v1/payments?limit=1' "$k2")" "the new key still works"

# Rotation without grace revokes at once; a revoked key cannot be rotated again.
id2=$(key_id_of "$k2")
k3=$(api_keelctl apikey rotate --key-id "$id2" 2>/dev/null) || fail "apikey rotate without grace"
same_401 "a key rotated without grace" -H "Authorization: Bearer $k2"
assert_eq 200 "$(call GET '/v1/payments?limit=1' "$k3")" "its successor works"
api_keelctl apikey rotate --key-id "$id2" >/dev/null 2>&1 && fail "rotating a revoked key succeeded" ||
    pass "a revoked key cannot be rotated"

# Revocation takes effect on the next request.
api_keelctl apikey revoke --key-id "$(key_id_of "$k3")" >/dev/null || fail "apikey revoke"
same_401 "a revoked key" -H "Authorization: Bearer $k3"
assert_eq "$id1 $id2" "$(sql_gateway "select string_agg(id, ' ' order by created_at, id) from api_keys where merchant_id = '$m' and replaced_by is not null")" \
    "rotated keys record their successor"
finish
