# Helpers of the webhook tests (test_5x): a merchant of each test's own, loopback receivers
# (webhook_receiver.py) that record what keel sent, endpoints, and the notifier's database.
# Source it after lib.sh.

WH_RECEIVER="$KEEL_REPO/integration-tests/webhook_receiver.py"
WH_VERIFY="$KEEL_REPO/tools/verify-webhook.sh"
WH_PIDS=()

sql_notifier() { psql "$KEEL_NOTIFIER_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# wh_keelctl ARGS...: keelctl with the stack's env/keelctl.env.
wh_keelctl() {
    (
        set -a
        # shellcheck disable=SC1091
        . "$KEEL_STATE_DIR/env/keelctl.env"
        set +a
        "$KEEL_BIN_DIR/keelctl" "$@"
    )
}

# wh_merchant: a new merchant and API key for this test; sets WH_MERCHANT and API_KEY (which
# lib.sh's api and create_payment use), so no other test's endpoints see its events.
wh_merchant() {
    WH_MERCHANT=$(wh_keelctl merchant create --name "$TEST_NAME" 2>/dev/null | tail -n1) &&
        API_KEY=$(wh_keelctl apikey create --merchant "$WH_MERCHANT" 2>/dev/null | tail -n1) &&
        [[ -n "$WH_MERCHANT" && -n "$API_KEY" ]] || {
        fail "could not create a merchant and API key with keelctl"
        return 1
    }
    export API_KEY
}

# wh_receiver NAME [receiver options]: starts a receiver recording into $TMP_DIR/NAME and sets
# WH_PORT to its port. Call it directly, never in $(...): its pid must reach WH_PIDS in this
# shell so wh_cleanup can stop it (and the receiver exits by itself after 10 minutes anyway).
wh_receiver() {
    local dir="$TMP_DIR/$1"
    shift
    mkdir -p "$dir"
    WH_PORT=""
    python3 "$WH_RECEIVER" --dir "$dir" --max-seconds 600 "$@" >"$dir/log" 2>&1 &
    WH_PIDS+=($!)
    wait_until 10 test -s "$dir/port" || {
        fail "receiver $dir did not start: $(cat "$dir/log")"
        return 1
    }
    WH_PORT=$(cat "$dir/port")
}

# Stops the receivers this test started (by pid).
wh_cleanup() {
    local pid
    for pid in "${WH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${WH_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    WH_PIDS=()
}

# wh_register URL [EVENTS_JSON]: POST /v1/webhook_endpoints; prints "<status> <body>".
wh_register() {
    api POST /v1/webhook_endpoints "{\"url\":\"$1\",\"enabled_events\":${2:-[\"*\"]}}"
}

# wh_requests NAME: how many requests receiver NAME recorded.
wh_requests() {
    local f="$TMP_DIR/$1/requests.jsonl"
    [[ -f "$f" ]] && wc -l <"$f" || echo 0
}
wh_has_requests() { (($(wh_requests "$1") >= $2)); }

# wh_header NAME N HEADER: a header (lower-case name) of request N of receiver NAME.
wh_header() {
    jq -r --argjson n "$2" --arg h "$3" 'select(.n == $n) | .headers[$h] // empty' \
        "$TMP_DIR/$1/requests.jsonl"
}
wh_body_file() { echo "$TMP_DIR/$1/body-$2"; }

# wh_hmac SECRET T FILE: hex HMAC-SHA256 of "<T>." and the file's bytes, by openssl alone.
wh_hmac() {
    { printf '%s.' "$2"; cat "$3"; } | openssl dgst -sha256 -hmac "$1" | awk '{print $NF}'
}

# wh_delivery_status EVENT_ID [ENDPOINT_ID]: the status of the event's delivery (to that
# endpoint, when the event has several).
wh_delivery_status() {
    sql_notifier "select status from webhook_deliveries where event_id = '$1' and endpoint_id like '${2:-%}'"
}

# notifier_metric NAME_AND_LABELS: one series of keel-notifier's /metrics (0 when absent).
notifier_metric() { metric "$KEEL_NOTIFIER_URL" "$1"; }
