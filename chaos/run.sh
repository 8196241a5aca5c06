#!/usr/bin/env bash
# Runs one chaos run against a keel stack: load from keel-chaos-driver, seeded faults from faults.sh, then the quiesce-and-audit and the report (docs/chaos.md).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: chaos/run.sh [--short] [--duration S] [--seed N] [--faults LIST] [--rate R]
                    [--concurrency C] [--gateways 1|2] [--drain S] [--results DIR]
                    [--refunds auto|on|off]
                    [--own-stack [--brokers 1|3] [--keep-stack]]
Drives payments through a running keel stack while faults.sh breaks it, waits for the stack
to settle, audits every payment (audit.sh) and writes results/chaos-<time>/report.md with a
timeline PNG. Exit status: 0 every invariant held, 1 something broke, 2 usage error.

  --short         the CI run: 75 s, 12 payments/s, every fault kind at least once
  --duration S    seconds of load and faults (default 300)
  --seed N        seeds the fault schedule and the client's choices (default: the time)
  --faults LIST   kill,crashpoint,pause,kafka,leader,postgres,provider,partition (default all
                  but leader and partition; with 3 brokers leader too; partition needs root and
                  network namespaces). "kill" alone also turns on crashpoint.
  --rate R        new payments per second (default 20)
  --concurrency C client threads (default 8)
  --gateways N    gateway instances the client spreads over; 2 starts instance 2 (default 2)
  --drain S       longest wait for the stack to settle after the faults (default 300)
  --results DIR   where the run's folder goes (default <repo>/results)
  --refunds MODE  refund a share of the payments: auto (when the gateway serves
                  POST /v1/payments/{id}/refunds), on, off (default auto)
  --own-stack     wipe, start and afterwards stop a stack of its own: KEEL_STACK (default
                  chaos) on KEEL_PORT_BASE (default 24000) from KEEL_BIN_DIR (default
                  <repo>/build-test/bin, a build with -DKEEL_FAILPOINTS=ON)
  --brokers N     with --own-stack: 1 or 3 Kafka nodes (3: replication factor 3,
                  min.insync.replicas 2)
  --keep-stack    with --own-stack: leave the stack running afterwards
Without --own-stack the stack named by KEEL_STACK must be running (its stack.env is read).
EOF
}

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DURATION=300
SEED="$(date +%s)"
FAULTS=""
RATE=20
CONCURRENCY=8
GATEWAYS=2
DRAIN=300
RESULTS="$REPO/results"
OWN_STACK=0
BROKERS=1
KEEP_STACK=0
SHORT=0
GAP="1:4"
GIVE_UP=180
REFUNDS=auto
while (($#)); do
    case "$1" in
    --short)
        SHORT=1
        DURATION=75
        RATE=12
        DRAIN=120
        GAP="0:1"
        GIVE_UP=90
        shift
        ;;
    --duration) DURATION=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --faults) FAULTS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --gateways) GATEWAYS=$2; shift 2 ;;
    --drain) DRAIN=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    --refunds) REFUNDS=$2; shift 2 ;;
    --own-stack) OWN_STACK=1; shift ;;
    --brokers) BROKERS=$2; shift 2 ;;
    --keep-stack) KEEP_STACK=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
[[ "$DURATION" =~ ^[0-9]+$ && "$SEED" =~ ^[0-9]+$ && "$GATEWAYS" =~ ^[12]$ &&
    "$BROKERS" =~ ^[13]$ && "$DRAIN" =~ ^[0-9]+$ ]] || {
    usage >&2
    exit 2
}
say() { printf '[chaos %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}


# ---- the stack ---------------------------------------------------------------------------
export KEEL_STACK="${KEEL_STACK:-chaos}"
STACK_SH="$REPO/deploy/local/stack.sh"
if ((OWN_STACK)); then
    export KEEL_PORT_BASE="${KEEL_PORT_BASE:-24000}"
    export KEEL_BIN_DIR="${KEEL_BIN_DIR:-$REPO/build-test/bin}"
    export KEEL_KAFKA_NODES=$BROKERS
    # Like make test: a service that leaks or hits undefined behaviour dies loudly.
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    [[ -x "$KEEL_BIN_DIR/keel-gateway" ]] || die "no keel binaries in $KEEL_BIN_DIR; run make build-test"
    say "starting stack $KEEL_STACK (port base $KEEL_PORT_BASE, $BROKERS Kafka node(s))"
    "$STACK_SH" wipe >/dev/null 2>&1 || true
    mkdir -p "$REPO/.keel" # a fresh checkout has none yet; the up log goes there
    # up is idempotent: a second try starts only what did not come up (a port can be held
    # for a moment as some client's ephemeral source port when the base lies in that range).
    for try in 1 2 3; do
        "$STACK_SH" up >"$REPO/.keel/$KEEL_STACK.up.log" 2>&1 && break
        ((try < 3)) || die "stack $KEEL_STACK did not come up: $(tail -n 3 "$REPO/.keel/$KEEL_STACK.up.log") (logs in $REPO/.keel/$KEEL_STACK/logs)"
        say "stack $KEEL_STACK did not come up; trying again in 10 s"
        sleep 10
    done
fi
if ((OWN_STACK)) || [[ -z "${KEEL_STATE_DIR:-}" || -z "${KEEL_GATEWAY_URL:-}" ]]; then
    [[ -f "$REPO/.keel/$KEEL_STACK/stack.env" ]] ||
        die "stack $KEEL_STACK is not running (no .keel/$KEEL_STACK/stack.env); start it or pass --own-stack"
    set -a
    # shellcheck disable=SC1090
    . "$REPO/.keel/$KEEL_STACK/stack.env"
    set +a
fi
export KEEL_BIN_DIR="${KEEL_BIN_DIR:-}"
NODES="$(cat "$KEEL_STATE_DIR/kafka.nodes" 2>/dev/null || echo 1)"
if [[ -z "$FAULTS" ]]; then
    FAULTS="kill,crashpoint,pause,kafka,postgres,provider"
    ((NODES == 3)) && FAULTS+=",leader"
fi
# "kill" means both kinds of kill unless the caller chose crash points explicitly.
if [[ ",$FAULTS," == *,kill,* && ",$FAULTS," != *,crashpoint,* ]]; then FAULTS+=",crashpoint"; fi
DRIVER="$KEEL_BIN_DIR/keel-chaos-driver"
[[ -x "$DRIVER" ]] || die "$DRIVER is missing; build the chaos targets (cmake --build <build>)"
for tool in jq kcat psql curl gnuplot; do
    command -v "$tool" >/dev/null || die "$tool is missing; run deploy/install-deps.sh"
done
if [[ ",$FAULTS," == *,crashpoint,* ]] && ! grep -q keel_failpoint_hit "$KEEL_BIN_DIR/keel-gateway" 2>/dev/null; then
    die "$KEEL_BIN_DIR was built without -DKEEL_FAILPOINTS=ON: crash points cannot fire (use make build-test)"
fi

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$RESULTS/chaos-$STAMP"
mkdir -p "$OUT"
RUN_ID="chaos-$STAMP-$SEED"

# ---- the run's own merchant: its payments are the audit's universe -----------------------
# shellcheck source=chaos/lib.sh
. "$REPO/chaos/lib.sh"
CHAOS_KEELCTL_LOG="$OUT/keelctl.log"
chaos_new_merchant "chaos $RUN_ID" || die "keelctl could not create the run's merchant and key (see $OUT/keelctl.log)"
MERCHANT=$CHAOS_MERCHANT
API_KEY=$CHAOS_API_KEY

GATEWAY_URLS="$KEEL_GATEWAY_URL"
STARTED_GW2=0
DRIVER_PID=""
FAULTS_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    chaos_stop_webhooks
    if [[ -n "$DRIVER_PID" ]]; then kill -TERM "$DRIVER_PID" 2>/dev/null || true; fi
    # faults.sh restores the stack when it ends; wait for that.
    if [[ -n "$FAULTS_PID" ]]; then
        kill -TERM "$FAULTS_PID" 2>/dev/null || true
        wait "$FAULTS_PID" 2>/dev/null || true
    fi
    if [[ -n "$DRIVER_PID" ]]; then
        kill -TERM "$DRIVER_PID" 2>/dev/null || true
        wait "$DRIVER_PID" 2>/dev/null || true
    fi
    if ((STARTED_GW2)); then
        "$STACK_SH" stop-service gateway 2 >/dev/null || { say "gateway-2 did not stop cleanly"; ((rc == 0)) && rc=1; }
    fi
    if ((OWN_STACK && !KEEP_STACK)); then
        "$STACK_SH" down >/dev/null || { say "stack $KEEL_STACK did not stop cleanly"; ((rc == 0)) && rc=1; }
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ((GATEWAYS == 2)); then
    if [[ ! -s "$KEEL_STATE_DIR/run/gateway-2.pid" ]] || ! kill -0 "$(cat "$KEEL_STATE_DIR/run/gateway-2.pid")" 2>/dev/null; then
        "$STACK_SH" start-service gateway 2 >/dev/null || die "gateway-2 did not start"
        STARTED_GW2=1
    fi
    GATEWAY_URLS+=",$KEEL_GATEWAY2_URL"
fi

# ---- the merchant's webhook endpoint, when the stack runs keel-notifier -------------------
chaos_start_webhooks "$OUT" "$SEED" "$RUN_ID-endpoint" || die "the webhook receiver could not be set up"
WEBHOOKS=off
[[ -n "$CHAOS_RECEIVER_PID" ]] && WEBHOOKS=on

cat >"$OUT/params.env" <<EOF
RUN_ID=$RUN_ID
STACK=$KEEL_STACK
SEED=$SEED
DURATION=$DURATION
RATE=$RATE
CONCURRENCY=$CONCURRENCY
FAULTS=$FAULTS
GATEWAYS=$GATEWAYS
BROKERS=$NODES
MERCHANT=$MERCHANT
SHORT=$SHORT
WEBHOOKS=$WEBHOOKS
EOF
say "run $RUN_ID: ${DURATION}s at $RATE payments/s, faults $FAULTS, seed $SEED -> $OUT"

# ---- load and faults, side by side ---------------------------------------------------------
CHAOS_API_KEY="$API_KEY" "$DRIVER" --gateway "$GATEWAY_URLS" --out "$OUT" --duration "$DURATION" \
    --rate "$RATE" --concurrency "$CONCURRENCY" --seed "$SEED" --run-id "$RUN_ID" \
    --give-up "$GIVE_UP" --refunds "$REFUNDS" 2>"$OUT/driver.log" &
DRIVER_PID=$!
"$REPO/chaos/faults.sh" --duration "$DURATION" --seed "$SEED" --faults "$FAULTS" --gap "$GAP" \
    --log "$OUT/faults.log" 2>"$OUT/faults-run.log" &
FAULTS_PID=$!
FAULTS_RC=0
wait "$FAULTS_PID" || FAULTS_RC=$?
FAULTS_PID=""
wait "$DRIVER_PID" || die "the driver failed (see $OUT/driver.log)"
DRIVER_PID=""
((FAULTS_RC == 0)) || say "error: faults.sh exit $FAULTS_RC: the stack could not be restored (see $OUT/faults-run.log)"

# ---- quiesce, audit, report ----------------------------------------------------------------
AUDIT_RC=0
"$REPO/chaos/audit.sh" --out "$OUT" --merchant "$MERCHANT" --wait "$DRAIN" \
    --faults-log "$OUT/faults.log" 2>"$OUT/audit.log" || AUDIT_RC=$?
chaos_stop_webhooks
"$REPO/chaos/report.sh" "$OUT" || say "warning: the report could not be written"

MISSING=""
IFS=, read -r -a KINDS <<<"$FAULTS"
for k in "${KINDS[@]}"; do
    awk -F'\t' -v k="$k" '$3 == k { f = 1 } END { exit !f }' "$OUT/faults.log" || MISSING+=" $k"
done
if [[ -n "$MISSING" ]]; then
    say "fault kinds that never ran:$MISSING"
    ((SHORT)) && AUDIT_RC=1
fi
((FAULTS_RC == 0)) || AUDIT_RC=1
say "report: $OUT/report.md"
exit "$AUDIT_RC"
