# Helpers of the public-API tests (test_3x): keelctl with the stack's settings, merchants with
# their own keys, raw requests whose headers and body land in files, checks of an answer
# against docs/openapi.yaml, and restarting the gateway with other settings. Source after lib.sh.

OPENAPI_DIR="$KEEL_REPO/tools/openapi"

# keelctl ARGS...: keelctl with the stack's env/keelctl.env (the gateway's database).
api_keelctl() {
    (
        set -a
        # shellcheck disable=SC1091
        . "$KEEL_STATE_DIR/env/keelctl.env"
        set +a
        "$KEEL_BIN_DIR/keelctl" "$@"
    )
}

# new_merchant NAME: prints a new merchant's id.
new_merchant() { api_keelctl merchant create --name "$1" 2>/dev/null | tail -n1; }

# new_key MERCHANT [keelctl apikey create options...]: prints a new secret key.
new_key() {
    local m=$1
    shift
    api_keelctl apikey create --merchant "$m" "$@" 2>/dev/null
}

# key_id_of SECRET: the id of the key with this secret (looked up by its hash).
key_id_of() {
    sql_gateway "select id from api_keys where key_hash = encode(sha256('$1'::bytea), 'hex')"
}

# call METHOD PATH KEY [BODY] [IDEMPOTENCY_KEY] [curl args...]: sends one request; the answer's
# headers go to $TMP_DIR/h, its body to $TMP_DIR/b; prints the status. An empty KEY sends no
# Authorization header.
call() {
    local method=$1 path=$2 key=$3 body=${4:-} idem=${5:-}
    shift $(($# < 5 ? $# : 5))
    local args=(-sS -m 15 -o "$TMP_DIR/b" -D "$TMP_DIR/h" -w '%{http_code}' -X "$method")
    [[ -n "$key" ]] && args+=(-H "Authorization: Bearer $key")
    [[ -n "$idem" ]] && args+=(-H "Idempotency-Key: $idem")
    [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    curl "${args[@]}" "$@" "$KEEL_GATEWAY_URL$path" || true
}
# The last answer's body, a header of it (case-insensitive), a field of its JSON body.
last_body() { cat "$TMP_DIR/b"; }
last_header() { awk -v n="$(tr '[:upper:]' '[:lower:]' <<<"$1")" 'BEGIN{FS=": "} {k=tolower($1)} k==n {sub(/\r$/, "", $2); print $2}' "$TMP_DIR/h" | tail -n1; }
last_json() { jq -r "$1" "$TMP_DIR/b" 2>/dev/null; }

# openapi_check METHOD PATH STATUS: the last answer must match docs/openapi.yaml.
openapi_check() {
    local out
    # shellcheck source=tools/openapi/ensure.sh
    if out=$( (. "$OPENAPI_DIR/ensure.sh" && node "$OPENAPI_DIR/contract.mjs" check "$1" "$2" "$3" "$TMP_DIR/h" "$TMP_DIR/b") 2>&1); then
        pass "$1 $2 -> $3 matches docs/openapi.yaml"
    else
        fail "$1 $2 -> $3 does not match docs/openapi.yaml: $out"
    fi
}

# restart_gateway [VAR=value...]: gateway instance 1 again, with these settings on top.
restart_gateway() {
    "$STACK" stop-service gateway >/dev/null 2>&1 || true
    "$STACK" start-service gateway 1 "$@" >/dev/null
}
# restore_gateway: the stack's own gateway (for an EXIT trap). A gateway a test crashed on
# purpose is killed first so the stop does not report its exit status.
restore_gateway() {
    "$STACK" kill-service gateway >/dev/null 2>&1 || true
    "$STACK" start-service gateway >/dev/null
}

# payment_body AMOUNT [CURRENCY]: a minimal valid POST /v1/payments body.
payment_body() { printf '{"amount":%s,"currency":"%s","description":"%s"}' "$1" "${2:-usd}" "$TEST_NAME"; }
