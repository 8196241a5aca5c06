# Shared helpers for keel's integration tests: stack access, HTTP, Kafka and assertions.
# Each test sources this file; it talks to the running test stack only through its public
# surfaces (HTTP, Kafka, the databases' SQL, the simulator's charge log).
set -euo pipefail

KEEL_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${KEEL_STACK:=test}"
export KEEL_STACK
if [[ -z "${KEEL_GATEWAY_URL:-}" || -z "${KEEL_STATE_DIR:-}" ]]; then
    # shellcheck disable=SC1090
    source "$KEEL_REPO/.keel/$KEEL_STACK/stack.env"
fi
STACK="$KEEL_REPO/deploy/local/stack.sh"
TEST_NAME="$(basename "$0" .sh)"
TMP_DIR="$(mktemp -d "/tmp/keel-$TEST_NAME.XXXXXX")"
PASSED=0
FAILED=0

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "$TEST_NAME" "$*" >&2; }

pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }
fail() {
    FAILED=$((FAILED + 1))
    log "FAIL: $*"
}
# Ends the test: the ledger's books must add up whatever the test did (keelctl audit, read in
# one snapshot, so postings still in flight cannot make it fail); then prints the count and
# exits non-zero when any check failed.
finish() {
    local audit_out
    if [[ -f "$KEEL_STATE_DIR/env/keelctl.env" ]] && grep -q '^KEEL_LEDGER_DATABASE_URL=' "$KEEL_STATE_DIR/env/keelctl.env"; then
        if audit_out=$(set -a && . "$KEEL_STATE_DIR/env/keelctl.env" && set +a && "$KEEL_BIN_DIR/keelctl" audit 2>&1); then
            pass "keelctl audit after the test: the books add up"
        else
            fail "keelctl audit after the test: $audit_out"
        fi
    fi
    log "$PASSED passed, $FAILED failed"
    rm -rf "$TMP_DIR"
    [[ $FAILED -eq 0 ]]
}

assert_eq() { # expected actual message
    if [[ "$1" == "$2" ]]; then pass "$3"; else fail "$3: expected '$1', got '$2'"; fi
}
assert_le() { # limit actual message
    if (( $2 <= $1 )); then pass "$3 ($2 <= $1)"; else fail "$3: $2 > $1"; fi
}

# --- HTTP -----------------------------------------------------------------------------
# api METHOD PATH [BODY] [IDEMPOTENCY_KEY]: prints "<status> <body>" using the demo key.
api() {
    local method=$1 path=$2 body=${3:-} key=${4:-} url=${API_URL:-$KEEL_GATEWAY_URL}
    local args=(-sS -m 10 -o "$TMP_DIR/body" -w '%{http_code}' -X "$method"
        -H "Authorization: Bearer ${API_KEY:-$KEEL_API_KEY}")
    [[ -n "$key" ]] && args+=(-H "Idempotency-Key: $key")
    [[ -n "$body" ]] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    local status
    status=$(curl "${args[@]}" "$url$path" || true)
    printf '%s %s\n' "$status" "$(cat "$TMP_DIR/body" 2>/dev/null)"
}
status_of() { cut -d' ' -f1 <<<"$1"; }
body_of() { cut -d' ' -f2- <<<"$1"; }

# create_payment [AMOUNT] [PAYMENT_METHOD] [KEY]: prints the new payment id, or fails.
create_payment() {
    local amount=${1:-1999} pm=${2:-pm_card_visa} key=${3:-idem-$RANDOM-$RANDOM-$$}
    local res
    res=$(api POST /v1/payments "{\"amount\":$amount,\"currency\":\"usd\",\"description\":\"$TEST_NAME\",\"payment_method\":\"$pm\"}" "$key")
    if [[ "$(status_of "$res")" != 202 ]]; then
        log "POST /v1/payments answered $res"
        return 1
    fi
    body_of "$res" | jq -r .id
}

# wait_payment_status ID STATUS [TIMEOUT_S]: polls GET until the status matches.
wait_payment_status() {
    local id=$1 want=$2 timeout=${3:-60} got="" deadline=$((SECONDS + ${3:-60}))
    while ((SECONDS < deadline)); do
        got=$(body_of "$(api GET "/v1/payments/$id")" | jq -r '.status // empty' 2>/dev/null || true)
        [[ "$got" == "$want" ]] && return 0
        sleep 0.3
    done
    log "payment $id is '$got' after ${timeout}s, wanted '$want'"
    return 1
}

# sim_charge_count PAYMENT_ID: how many charges the simulator recorded under that key.
sim_charge_count() {
    curl -sS -m 5 "$KEEL_PROVIDER_SIM_URL/_sim/charges?idempotency_key=$1" | jq '.data | length'
}

# --- SQL ------------------------------------------------------------------------------
sql_gateway() { psql "$KEEL_GATEWAY_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
sql_payments() { psql "$KEEL_PAYMENTS_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# --- Kafka ----------------------------------------------------------------------------
# kafka_records TOPIC: every record as one line "partition offset key headers" (from the start).
kafka_records() {
    kcat -b "$KEEL_KAFKA_BROKERS" -C -t "$1" -o beginning -e -q \
        -f '%p %o %k %h\n' 2>/dev/null || true
}
# kafka_count_key TOPIC KEY: records on TOPIC whose key is KEY.
kafka_count_key() { kafka_records "$1" | awk -v k="$2" '$3 == k' | wc -l; }

# --- services -------------------------------------------------------------------------
# wait_until TIMEOUT_S COMMAND...: retries COMMAND every 0.2 s until it succeeds.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    while ((SECONDS < deadline)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}
pid_of() { cat "$KEEL_STATE_DIR/run/$1-${2:-1}.pid" 2>/dev/null; }
is_running() { local p; p=$(pid_of "$1" "${2:-1}") && kill -0 "$p" 2>/dev/null; }

# metric URL NAME_AND_LABELS: the value of one series on a /metrics page (0 when absent).
metric() {
    curl -sS -m 5 "$1/metrics" | awk -v s="$2" 'index($0, s " ") == 1 {print $2; found=1} END {if (!found) print 0}' | head -1 | cut -d. -f1
}
consumer_ok_count() { metric "$KEEL_PAYMENTS_URL" 'keel_consumer_messages_total{consumer="payments",outcome="ok"}'; }
