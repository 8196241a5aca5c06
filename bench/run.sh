#!/usr/bin/env bash
# keel's benchmark: runs every scenario against a stack, then prints the figures table (ratios last) and writes results/bench-<time>/ (report.md, CSVs, PNG plots); see docs/benchmarks.md.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"

usage() {
    cat <<'EOF'
usage: bench/run.sh [--bin-dir DIR] [--out DIR] [--keep-stack]
       bench/run.sh --smoke [--bin-dir DIR] [--out DIR]
Full run (make bench): wipes and starts its own stack (KEEL_STACK=bench, KEEL_PORT_BASE 26000
unless BENCH_STACK / BENCH_PORT_BASE say otherwise) from the binaries in --bin-dir (default
build/bin), runs every scenario, prints the figures table and writes results/bench-<time>/.
The stack is stopped at the end unless --keep-stack.
--smoke: every scenario at tiny sizes against the stack already running (the test stack that
deploy/run-tests.sh exports, or .keel/$KEEL_STACK/stack.env); it checks that the benchmark
works and never judges speed. Sizes can be changed through BENCH_* variables (see the top of
this script).
EOF
}

MODE=full
BIN_DIR=""
OUT=""
KEEP_STACK=0
while (($#)); do
    case "$1" in
    --smoke) MODE=smoke ;;
    --bin-dir)
        BIN_DIR=${2:?--bin-dir needs a folder}
        shift
        ;;
    --out)
        OUT=${2:?--out needs a folder}
        shift
        ;;
    --keep-stack) KEEP_STACK=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
    shift
done

# ---- sizes ----------------------------------------------------------------------------------
# Full run: about six minutes of scenarios on two cores. Smoke: seconds, for make test.
if [[ $MODE == full ]]; then
    : "${BENCH_STEP_S:=10}" "${BENCH_RAMP_START:=50}" "${BENCH_RAMP_FACTOR:=1.5}"
    : "${BENCH_RAMP_STEPS:=14}" "${BENCH_RAMP_REFINE:=2}" "${BENCH_PGBENCH_S:=10}"
    : "${BENCH_DRAIN_ROWS:=20000}" "${BENCH_E2E_S:=10}" "${BENCH_CONSUME_N:=3000}"
    : "${BENCH_SETTLE_S:=90}" "${BENCH_WARMUP_S:=3}" "${BENCH_WARMUP_RPS:=50}" "${BENCH_RAMP_RETRY:=1}"
else
    : "${BENCH_STEP_S:=1}" "${BENCH_RAMP_START:=10}" "${BENCH_RAMP_FACTOR:=2}"
    : "${BENCH_RAMP_STEPS:=2}" "${BENCH_RAMP_REFINE:=0}" "${BENCH_PGBENCH_S:=1}"
    : "${BENCH_DRAIN_ROWS:=200}" "${BENCH_E2E_S:=1}" "${BENCH_CONSUME_N:=1000}"
    : "${BENCH_SETTLE_S:=3}" "${BENCH_WARMUP_S:=1}" "${BENCH_WARMUP_RPS:=10}" "${BENCH_RAMP_RETRY:=0}"
fi
# The accept target: no error and p99 at most this.
: "${BENCH_P99_LIMIT_MS:=50}"
# Database connections the gateway works with (HTTP threads = pool size), and so pgbench's
# client count. The smoke run keeps the running stack's own settings.
: "${BENCH_CONNECTIONS:=8}"
# Keep-alive connections of the load generator: more than the gateway's threads, so a
# request never waits for a connection while a thread is free.
: "${BENCH_CLIENT_CONNECTIONS:=16}"
BENCH_TOPIC=bench.relay.v1
E2E_FRACTIONS=(10 30 50 70)

[[ -n "$BIN_DIR" ]] || BIN_DIR="$REPO/build/bin"
BIN_DIR="$(cd "$BIN_DIR" 2>/dev/null && pwd)" || {
    echo "error: binary folder does not exist; build first (make build) or pass --bin-dir" >&2
    exit 1
}
for tool in bench-loadgen bench-kafka-produce bench-outbox-drain bench-print-sql; do
    [[ -x "$BIN_DIR/$tool" ]] || {
        echo "error: $BIN_DIR/$tool is missing; build it first (cmake --build <build> --target $tool)" >&2
        exit 1
    }
done
for cmd in psql pgbench gnuplot curl jq awk ps; do
    command -v "$cmd" >/dev/null || {
        echo "error: '$cmd' is not installed; run deploy/install-deps.sh" >&2
        exit 1
    }
done

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
if [[ -z "$OUT" ]]; then
    if [[ $MODE == full ]]; then OUT="$REPO/results/bench-$STAMP"; else OUT="$(mktemp -d /tmp/keel-bench-smoke.XXXXXX)"; fi
fi
# Only an earlier result of this script is replaced, never a folder that holds anything else.
if [[ -d "$OUT" && -n "$(ls -A "$OUT")" && ! -f "$OUT/progress.log" ]]; then
    echo "error: $OUT exists and is not an earlier benchmark result; pick another --out" >&2
    exit 1
fi
rm -rf "$OUT"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# ---- output helpers -----------------------------------------------------------------------
say() {
    printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
    printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >>"$OUT/progress.log"
}
die() {
    say "error: $*"
    exit 1
}
# kv KEY LINE: the value of KEY in a line of key=value pairs.
kv() { awk -v k="$1" '{for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) {print substr($i, length(k) + 2); exit}}' <<<"$2"; }
# calc EXPR: floating-point arithmetic (awk), printed with up to 6 significant digits.
calc() { awk "BEGIN { v = $1; printf \"%.6g\\n\", v }"; }
fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f\n", d, v }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

FIGURES=()   # "order|label|value" lines of the table, printed sorted by order
RATIOS=()    # "label|value" for the ratios, printed last
figure() { FIGURES+=("$1|$2|$3"); }
ratio() { RATIOS+=("$1|$2"); }
# quotient A B DIGITS: A / B, or "n/a" when B is missing or zero.
quotient() {
    if [[ -z "$2" ]] || awk -v b="$2" 'BEGIN { exit !(b == 0) }'; then
        echo "n/a"
    else
        fmt "$(calc "$1 / $2")" "$3"
    fi
}

# ---- the stack ------------------------------------------------------------------------------
GATEWAY_OVERRIDES=()
STOPPED=() # services this script stopped and must start again whatever happens
STACK_UP_BY_US=0

stack() { "$REPO/deploy/local/stack.sh" "$@"; }

load_stack_env() {
    local f="$REPO/.keel/$KEEL_STACK/stack.env"
    [[ -f "$f" ]] || die "no stack.env for stack '$KEEL_STACK' ($f): start the stack first (make test does)"
    set -a
    # shellcheck source=/dev/null
    . "$f"
    set +a
}

start_service() {
    local s=$1
    local -a extra=()
    [[ $s == gateway ]] && extra=("${GATEWAY_OVERRIDES[@]}")
    stack start-service "$s" 1 "${extra[@]}" >>"$OUT/stack.log" 2>&1 ||
        die "could not start $s (see $OUT/stack.log and $KEEL_STATE_DIR/logs/$s-1.log)"
    local kept=() x
    for x in "${STOPPED[@]}"; do [[ $x == "$s" ]] || kept+=("$x"); done
    STOPPED=("${kept[@]}")
}

stop_service() {
    local s=$1 st
    STOPPED+=("$s")
    if ! st="$(stack stop-service "$s" 1 2>>"$OUT/stack.log")"; then
        die "$s did not stop cleanly (exit '$st'); see $KEEL_STATE_DIR/logs/$s-1.log"
    fi
}

cleanup() {
    local rc=$? s
    trap - EXIT INT TERM
    # Whatever failed, leave the stack as we found it: services we stopped run again.
    local -a extra
    # A full run's stack goes down anyway; a smoke run leaves the test stack as it found it.
    ((STACK_UP_BY_US && !KEEP_STACK)) && STOPPED=()
    for s in "${STOPPED[@]}"; do
        extra=()
        [[ $s == gateway ]] && extra=("${GATEWAY_OVERRIDES[@]}")
        stack start-service "$s" 1 "${extra[@]}" >>"$OUT/stack.log" 2>&1 ||
            say "warning: could not restart $s"
    done
    if ((STACK_UP_BY_US && !KEEP_STACK)); then
        say "stopping stack $KEEL_STACK"
        stack down >>"$OUT/stack.log" 2>&1 || say "warning: stack down reported an unclean stop (see $OUT/stack.log)"
    fi
    ((rc == 0)) || say "FAILED (exit $rc); progress in $OUT/progress.log, stack output in $OUT/stack.log"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $MODE == full ]]; then
    export KEEL_STACK="${BENCH_STACK:-bench}"
    # Below Linux's ephemeral range (32768-60999): the scenarios stop and start services,
    # and a port up there can meanwhile be taken by any outgoing connection of the machine.
    export KEEL_PORT_BASE="${BENCH_PORT_BASE:-26000}"
    export KEEL_BIN_DIR="$BIN_DIR"
    [[ $KEEL_STACK != local && $KEEL_STACK != test ]] || die "the benchmark wipes its stack: use another name than '$KEEL_STACK'"
    say "starting a fresh stack '$KEEL_STACK' (port base $KEEL_PORT_BASE) from $BIN_DIR"
    stack wipe >>"$OUT/stack.log" 2>&1 || true
    STACK_UP_BY_US=1
    stack up >>"$OUT/stack.log" 2>&1 || die "stack up failed (see $OUT/stack.log)"
    load_stack_env
    # The gateway of the benchmark: as many HTTP threads as database connections, and rate
    # limits far above anything one machine can send, so the database is what limits it.
    GATEWAY_OVERRIDES=(KEEL_HTTP_THREADS="$BENCH_CONNECTIONS" KEEL_DATABASE_POOL_SIZE="$BENCH_CONNECTIONS")
    gateway_help="$("$KEEL_BIN_DIR/keel-gateway" --help 2>/dev/null || true)"
    while read -r var; do
        GATEWAY_OVERRIDES+=("$var=1000000")
    done < <(awk '$1 ~ /^KEEL_GATEWAY_RATE_LIMIT.*(RPS|PER_S|RATE|BURST)$/ {print $1}' <<<"$gateway_help")
    say "gateway settings: ${GATEWAY_OVERRIDES[*]}"
    stop_service gateway
    start_service gateway
else
    if [[ -z "${KEEL_GATEWAY_URL:-}" || -z "${KEEL_STATE_DIR:-}" ]]; then
        : "${KEEL_STACK:=test}"
        export KEEL_STACK
        load_stack_env
    fi
    BENCH_CONNECTIONS=2
    say "smoke run against stack '$KEEL_STACK' (tiny sizes; speed is not judged)"
fi
[[ -n "${KEEL_GATEWAY_DB_URL:-}" && -n "${KEEL_API_KEY:-}" && -n "${KEEL_KAFKA_BROKERS:-}" ]] ||
    die "stack.env lacks KEEL_GATEWAY_DB_URL, KEEL_API_KEY or KEEL_KAFKA_BROKERS"
export KEEL_API_KEY
PARTITIONS="${KEEL_TOPIC_PARTITIONS:-3}"

sql_gw() { psql "$KEEL_GATEWAY_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
sql_pay() { psql "$KEEL_PAYMENTS_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

loadgen() {
    "$BIN_DIR/bench-loadgen" --url "$KEEL_GATEWAY_URL" --connections "$BENCH_CLIENT_CONNECTIONS" "$@"
}

RUN_T0="$(sql_gw "SELECT now()")"

# Waits until the payments this run created have their outcome in the gateway's view and
# both outboxes are empty, so the next step starts from an idle system. Stops early when
# nothing moves for 3 s (a payment held for review stays pending) or after the cap.
settle() {
    local cap=${1:-$BENCH_SETTLE_S} deadline last=-1 still=0 n=0
    deadline=$((SECONDS + cap))
    while ((SECONDS < deadline)); do
        n=$(sql_gw "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM payments
                    WHERE merchant_id = '$KEEL_MERCHANT_ID' AND created_at >= '$RUN_T0'
                    AND status = 'pending')")
        n=$((n + $(sql_pay "SELECT count(*) FROM outbox")))
        ((n == 0)) && return 0
        if [[ $n == "$last" ]]; then
            still=$((still + 1))
            if ((still >= 10)); then
                say "  ($n payments or outbox rows stay pending; going on)"
                return 0
            fi
        else
            still=0
        fi
        last=$n
        sleep 0.3
    done
    say "  (not settled within ${cap}s: $n pending; going on)"
}

# ---- RSS ---------------------------------------------------------------------------------------
echo "phase,component,mib" >"$OUT/rss.csv"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# Every process with a pid file of the stack (keel services, Kafka, Prometheus) by RSS, and
# PostgreSQL as the sum of PSS over the postmaster and its children (RSS would count the
# shared buffers once per backend).
sample_rss() {
    local phase=$1 f name pid kib pm pgdata total=0 count=0 p
    for f in "$KEEL_STATE_DIR"/run/*.pid; do
        [[ -e "$f" ]] || continue
        name="$(basename "$f" .pid)"
        pid="$(cat "$f" 2>/dev/null)"
        [[ "$pid" =~ ^[0-9]+$ && -r /proc/$pid/status ]] || continue
        kib="$(rss_kib "$pid")"
        echo "$phase,$name,$(calc "$kib / 1024")" >>"$OUT/rss.csv"
    done
    pgdata="$(cat "$KEEL_STATE_DIR/pg.location" 2>/dev/null)/data"
    pm="$(head -n1 "$pgdata/postmaster.pid" 2>/dev/null || true)"
    if [[ "$pm" =~ ^[0-9]+$ ]]; then
        for p in "$pm" $(ps --ppid "$pm" -o pid= 2>/dev/null); do
            total=$((total + $(pss_kib "$p")))
            count=$((count + 1))
        done
        echo "$phase,postgresql (PSS of all processes),$(calc "$total / 1024")" >>"$OUT/rss.csv"
        echo "$phase,$count" >>"$OUT/pg-processes.csv"
    fi
}

# ---- scenarios -----------------------------------------------------------------------------------
warm_up() {
    say "warm-up: provider latency 0, $BENCH_WARMUP_S s at $BENCH_WARMUP_RPS req/s"
    curl -fsS -m 5 -X POST "$KEEL_PROVIDER_SIM_URL/_sim/faults" -H 'Content-Type: application/json' \
        -d '{"provider":"provider_a","latency_ms":0,"error_rate":0}' >/dev/null ||
        die "could not set provider latency 0 at $KEEL_PROVIDER_SIM_URL/_sim/faults"
    "$BIN_DIR/bench-kafka-produce" --brokers "$KEEL_KAFKA_BROKERS" --topic "$BENCH_TOPIC" \
        --partitions "$PARTITIONS" --ensure-only || die "could not create topic $BENCH_TOPIC"
    local line
    line="$(loadgen --rate "$BENCH_WARMUP_RPS" --duration "$BENCH_WARMUP_S" --drain-s 10)" || die "the load generator failed during warm-up"
    (($(kv ok "$line") > 0)) || die "warm-up: no POST /v1/payments succeeded ($line); is the stack healthy?"
    # One real answer: the body the gateway records with its idempotency key (pgbench sends it).
    curl -fsS -m 10 -X POST "$KEEL_GATEWAY_URL/v1/payments" -H "Authorization: Bearer $KEEL_API_KEY" \
        -H "Idempotency-Key: bench-sample-$STAMP-$$" -H 'Content-Type: application/json' \
        -d '{"amount":1999,"currency":"usd","description":"bench","payment_method":"pm_card_visa"}' \
        >"$OUT/sample-response.json" || die "the sample POST /v1/payments failed"
    settle
    sample_rss idle
}

# ramp_step NAME RATE: one step of a ramp; appends to ramp-NAME.csv and keeps the best
# rate that met the target in CEILING_<NAME>. Returns 0 when the step met the target.
declare -A CEILINGS=()
declare -A CEILING_LINES=()
ramp_step() {
    local name=$1 rate=$2 line errors p99 pass=0
    line="$(loadgen --rate "$rate" --duration "$BENCH_STEP_S" --drain-s 10 --hist "$OUT/ramp-$name-$rate")" ||
        die "the load generator failed at $rate req/s"
    echo "$line" >>"$OUT/ramp-$name.log"
    errors="$(kv errors "$line")"
    p99="$(kv accept_p99_ms "$line")"
    if ((errors == 0)) && le "$p99" "$BENCH_P99_LIMIT_MS"; then pass=1; fi
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$rate" "$(kv achieved_rps "$line")" "$(kv ok "$line")" \
        "$errors" "$(kv accept_p50_ms "$line")" "$(kv accept_p90_ms "$line")" "$p99" \
        "$(kv accept_p999_ms "$line")" "$(kv accept_max_ms "$line")" "$pass" >>"$OUT/ramp-$name.csv"
    say "  $rate req/s offered: $(kv ok "$line") ok, $errors errors, achieved $(kv achieved_rps "$line")/s, p50 $(kv accept_p50_ms "$line") ms, p99 $p99 ms $( ((pass)) && echo '(meets the target)' || echo '(misses the target)')"
    if ((pass)); then
        if le "${CEILINGS[$name]:-0}" "$rate"; then
            CEILINGS[$name]=$rate
            CEILING_LINES[$name]=$line
        fi
        return 0
    fi
    return 1
}

# A rate holds when a step meets the target; a step that misses runs once more, because
# one slow fsync or a busy neighbour can cost a single step its p99.
ramp_rate() { # NAME RATE REST
    if ramp_step "$1" "$2"; then
        $3
        return 0
    fi
    $3
    ((BENCH_RAMP_RETRY)) || return 1
    say "  once more at $2 req/s (one miss can be a hiccup)"
    ramp_step "$1" "$2" && {
        $3
        return 0
    }
    $3
    return 1
}

# ramp NAME BETWEEN_STEPS: raises the rate until a rate misses the target, then narrows the
# gap between the last rate that held and the first that did not. BETWEEN_STEPS is the
# command that lets the system come to rest between steps.
ramp() {
    local name=$1 rest=$2 rate=$BENCH_RAMP_START step fail="" i mid
    echo "offered_rps,achieved_rps,ok,errors,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,meets_target" >"$OUT/ramp-$name.csv"
    CEILINGS[$name]=0
    # A checkpoint now rather than in the middle of a step.
    psql "$KEEL_PG_SUPERUSER_URL" -XAtq -c CHECKPOINT >/dev/null || die "CHECKPOINT failed"
    for ((step = 0; step < BENCH_RAMP_STEPS; step++)); do
        if ramp_rate "$name" "$rate" "$rest"; then
            rate="$(awk -v r="$rate" -v f="$BENCH_RAMP_FACTOR" 'BEGIN { printf "%d", r * f + 0.5 }')"
        else
            fail=$rate
            break
        fi
    done
    # Not even the first rate held (a busy machine, a sanitizer build): halve it until one
    # does, so the ceiling is still a rate that held.
    LOWEST_TRIED=$BENCH_RAMP_START
    rate=$BENCH_RAMP_START
    while ((CEILINGS[$name] == 0 && rate / 2 >= 5)); do
        rate=$((rate / 2))
        LOWEST_TRIED=$rate
        ramp_rate "$name" "$rate" "$rest" || fail=$rate
    done
    for ((i = 0; i < BENCH_RAMP_REFINE; i++)); do
        [[ -n "$fail" ]] && ((CEILINGS[$name] > 0)) || break
        mid=$(((CEILINGS[$name] + fail) / 2))
        ((mid > CEILINGS[$name] && mid < fail)) || break
        ramp_rate "$name" "$mid" "$rest" || fail=$mid
    done
    if ((CEILINGS[$name] == 0)); then
        # Nothing held: go on with the lowest rate tried so the other scenarios still run,
        # and say so.
        CEILINGS[$name]=$LOWEST_TRIED
        CEILING_LINES[$name]="$(tail -n1 "$OUT/ramp-$name.log")"
        say "  (not even $LOWEST_TRIED req/s met the target; going on with it)"
        return 1
    fi
    return 0
}

# ramp_with_figure ORDER NAME BETWEEN_STEPS LABEL: a ramp and its row in the table.
ramp_with_figure() {
    local order=$1 name=$2 line
    if ramp "$name" "$3"; then
        line="${CEILING_LINES[$name]}"
        figure "$order" "$4 (0 errors, p99 <= $BENCH_P99_LIMIT_MS ms)" \
            "${CEILINGS[$name]} req/s (p50 $(kv accept_p50_ms "$line") ms, p99 $(kv accept_p99_ms "$line") ms)"
    else
        figure "$order" "$4" "not reached: even $LOWEST_TRIED req/s missed the target"
    fi
}

# Between the steps of the gateway-alone ramp: only its outbox must be empty (payments is
# stopped, so the requests wait in Kafka).
rest_outbox() { wait_gateway_outbox 60; }

wait_gateway_outbox() {
    local deadline=$((SECONDS + $1))
    until (($(sql_gw "SELECT count(*) FROM outbox") == 0)); do
        ((SECONDS < deadline)) || die "the gateway's outbox did not drain within $1 s"
        sleep 0.2
    done
}

CEILING=0       # the sustained accept rate (whole pipeline): the base of the e2e rates
CEILING_ALONE=0 # the gateway alone, with nothing behind it consuming
accept_alone() {
    say "accept ceiling, gateway alone (keel-payments stopped; requests wait in Kafka): the same ramp"
    settle
    BACKLOG_SINCE="$(sql_gw "SELECT now()")"
    stop_service payments
    ramp_with_figure 10 alone rest_outbox "accept ceiling, gateway alone"
    CEILING_ALONE=${CEILINGS[alone]}
    say "accept ceiling, gateway alone: $CEILING_ALONE req/s"
}

accept_pipeline() {
    say "sustained accept rate, whole pipeline running: POST /v1/payments from $BENCH_RAMP_START req/s, x$BENCH_RAMP_FACTOR per ${BENCH_STEP_S}s step, until an error or p99 > $BENCH_P99_LIMIT_MS ms"
    ramp_with_figure 11 pipeline settle "sustained accept rate, whole pipeline running"
    CEILING=${CEILINGS[pipeline]}
    say "sustained accept rate: $CEILING req/s"
}

PGB_PREPARED=""
PGB_PIPELINED=""
# pgbench_run NAME SCRIPT: prints the tps of a run with the gateway's connection count.
pgbench_run() {
    local name=$1 script=$2 log="$OUT/pgbench-$1.log" tps
    local -a vars=()
    local v
    while IFS= read -r v; do vars+=(-D "$v"); done <"$OUT/pgbench-vars.txt"
    # The gateway's own role over TCP, as the gateway connects; the password through the
    # environment, never the command line.
    if ! PGPASSWORD="$(cat "$KEEL_STATE_DIR/secrets/gateway.db-password")" PGCONNECT_TIMEOUT=10 \
        timeout $((BENCH_PGBENCH_S + 60)) pgbench -n -M prepared -c "$BENCH_CONNECTIONS" -j 2 \
        -T "$BENCH_PGBENCH_S" -P 1 -h 127.0.0.1 -p "$KEEL_PG_PORT" -U keel_gateway \
        "${vars[@]}" -f "$script" keel_gateway >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "pgbench ($name) failed; full output in $log"
    fi
    tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log" | tail -n1)"
    [[ -n "$tps" ]] || die "pgbench ($name) printed no tps (see $log)"
    if grep -q '^number of failed transactions: [1-9]' "$log"; then
        say "  warning: pgbench ($name) reports failed transactions (see $log)"
    fi
    echo "$tps"
}

pgbench_compare() {
    say "pgbench: the gateway's own SQL per POST, $BENCH_CONNECTIONS connections, -M prepared, ${BENCH_PGBENCH_S}s each (gateway stopped)"
    KEEL_MERCHANT_ID="$KEEL_MERCHANT_ID" "$BIN_DIR/bench-print-sql" --pgbench-vars \
        --response-file "$OUT/sample-response.json" >"$OUT/pgbench-vars.txt" ||
        die "bench-print-sql could not describe the gateway's statements"
    "$BIN_DIR/bench-print-sql" --pgbench >"$OUT/pgbench-gateway.sql" || die "bench-print-sql --pgbench failed"
    "$BIN_DIR/bench-print-sql" --pgbench --pipeline >"$OUT/pgbench-gateway-pipelined.sql" ||
        die "bench-print-sql --pgbench --pipeline failed"
    stop_service gateway
    psql "$KEEL_PG_SUPERUSER_URL" -XAtq -c CHECKPOINT >/dev/null || die "CHECKPOINT failed"
    PGB_PREPARED="$(pgbench_run prepared "$OUT/pgbench-gateway.sql")"
    say "  -M prepared: $PGB_PREPARED tx/s"
    figure "20" "pgbench, the gateway's SQL, $BENCH_CONNECTIONS connections, -M prepared" "$(fmt "$PGB_PREPARED" 0) tx/s"
    # \startpipeline exists from pgbench 14 on.
    if (($(pgbench --version | awk '{print int($NF)}') >= 14)); then
        PGB_PIPELINED="$(pgbench_run pipelined "$OUT/pgbench-gateway-pipelined.sql")"
        say "  pipelined: $PGB_PIPELINED tx/s"
        figure "21" "pgbench, the gateway's SQL, pipelined (\\startpipeline)" "$(fmt "$PGB_PIPELINED" 0) tx/s"
    fi
    # pgbench's rows are no payments: take them out again before the gateway (and its relay)
    # comes back.
    "$BIN_DIR/bench-print-sql" --pgbench-cleanup | psql "$KEEL_GATEWAY_DB_URL" -XAtq -v ON_ERROR_STOP=1 >/dev/null ||
        die "could not remove pgbench's rows"
    start_service gateway
    gateway_warm
}

# A freshly started gateway opens its connections and prepares its statements on the first
# requests: pay that before anything is measured again.
gateway_warm() {
    loadgen --rate 20 --duration 1 --drain-s 10 >/dev/null || die "the load generator failed (warm-up)"
}

RELAY_RPS=""
BARE_RPS=""
relay_drain() {
    local n=$BENCH_DRAIN_ROWS line
    say "relay drain: $n outbox rows in one transaction, timed until the relay emptied the outbox"
    settle
    # A first small drain, untimed: the relay's producer learns the topic's metadata, as the
    # bare producer does with its first message.
    PGHOST="$KEEL_PG_SOCKET_DIR" PGPORT="$KEEL_PG_PORT" PGUSER=postgres PGDATABASE=keel_gateway \
        "$BIN_DIR/bench-outbox-drain" --topic "$BENCH_TOPIC" --rows 10 >/dev/null || die "the outbox drain (warm-up) failed"
    line="$(PGHOST="$KEEL_PG_SOCKET_DIR" PGPORT="$KEEL_PG_PORT" PGUSER=postgres PGDATABASE=keel_gateway \
        "$BIN_DIR/bench-outbox-drain" --topic "$BENCH_TOPIC" --rows "$n" --csv "$OUT/drain.csv")" ||
        die "the outbox drain failed"
    echo "$line" >"$OUT/drain.log"
    RELAY_RPS="$(kv rows_per_s "$line")"
    say "  relay: $n rows in $(kv drain_s "$line") s = $RELAY_RPS rows/s"
    figure "30" "relay drain, $n outbox rows -> Kafka ($PARTITIONS partitions)" "$(fmt "$RELAY_RPS" 0) rows/s ($(kv drain_s "$line") s)"
    say "bare producer: $n messages, same settings, sizes, keys, headers and partitions"
    line="$("$BIN_DIR/bench-kafka-produce" --brokers "$KEEL_KAFKA_BROKERS" --topic "$BENCH_TOPIC" \
        --partitions "$PARTITIONS" --messages "$n")" || die "the bare producer failed"
    echo "$line" >"$OUT/bare-producer.log"
    BARE_RPS="$(kv msgs_per_s "$line")"
    say "  bare producer: $BARE_RPS msgs/s"
    figure "31" "bare librdkafka producer, $n messages (keel's producer settings)" "$(fmt "$BARE_RPS" 0) msgs/s ($(kv seconds "$line") s)"
}

# One row per rate in e2e.csv; distributions in e2e-<pct>-{accept,e2e}.csv.
e2e_latency() {
    say "end-to-end latency at ${E2E_FRACTIONS[*]} % of the accept ceiling ($CEILING req/s), provider latency 0, ${BENCH_E2E_S}s each"
    echo "fraction_pct,rate_rps,ok,errors,missing,accept_p50_ms,accept_p99_ms,e2e_p50_ms,e2e_p90_ms,e2e_p99_ms,e2e_p999_ms,e2e_max_ms,view_p50_ms,view_p99_ms,view_max_ms" >"$OUT/e2e.csv"
    local f rate line t0 t1 view pid
    for f in "${E2E_FRACTIONS[@]}"; do
        rate="$(awk -v c="$CEILING" -v f="$f" 'BEGIN { r = c * f / 100; if (r < 1) r = 1; printf "%.1f", r }')"
        t0="$(sql_gw "SELECT now()")"
        loadgen --rate "$rate" --duration "$BENCH_E2E_S" --drain-s 30 --e2e "$KEEL_KAFKA_BROKERS" \
            --hist "$OUT/e2e-$f" >"$OUT/e2e-$f.log" &
        pid=$!
        if ((f == 70)); then
            # Memory under load: halfway through the 70 % run.
            sleep "$(calc "$BENCH_E2E_S / 2")"
            sample_rss load70
        fi
        wait "$pid" || die "the load generator failed at $rate req/s (e2e)"
        line="$(cat "$OUT/e2e-$f.log")"
        t1="$(sql_gw "SELECT now()")"
        settle
        # The same payments seen from the gateway's view: accepted (transaction start) to the
        # outcome applied there, i.e. visible in GET /v1/payments/{id}.
        view="$(sql_gw "SELECT coalesce(round((percentile_cont(0.5) WITHIN GROUP (ORDER BY d))::numeric, 3), 0) || ',' ||
                coalesce(round((percentile_cont(0.99) WITHIN GROUP (ORDER BY d))::numeric, 3), 0) || ',' ||
                coalesce(round(max(d)::numeric, 3), 0)
            FROM (SELECT extract(epoch FROM updated_at - created_at) * 1000 AS d FROM payments
                  WHERE merchant_id = '$KEEL_MERCHANT_ID' AND created_at >= '$t0' AND created_at < '$t1'
                  AND status <> 'pending') s")"
        printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$f" "$rate" "$(kv ok "$line")" "$(kv errors "$line")" \
            "$(kv e2e_missing "$line")" "$(kv accept_p50_ms "$line")" "$(kv accept_p99_ms "$line")" \
            "$(kv e2e_p50_ms "$line")" "$(kv e2e_p90_ms "$line")" "$(kv e2e_p99_ms "$line")" \
            "$(kv e2e_p999_ms "$line")" "$(kv e2e_max_ms "$line")" "$view" >>"$OUT/e2e.csv"
        say "  $f % = $rate req/s: POST->outcome event p50 $(kv e2e_p50_ms "$line") ms, p99 $(kv e2e_p99_ms "$line") ms, max $(kv e2e_max_ms "$line") ms; $(kv e2e_missing "$line") missing, $(kv errors "$line") errors"
        figure "40.$f" "e2e POST -> outcome event at $f % ($rate req/s): p50 / p99 / p99.9 / max" \
            "$(kv e2e_p50_ms "$line") / $(kv e2e_p99_ms "$line") / $(kv e2e_p999_ms "$line") / $(kv e2e_max_ms "$line") ms"
    done
}

# consumer_rate DB_URL SINCE WANT: waits until the busiest inbox consumer of that database
# wrote WANT rows after SINCE (or nothing new came for 3 s: a consumer may skip events it has
# no use for); prints "consumer,count,seconds,events_per_s" over its first WANT rows, from
# the first commit to the last.
consumer_rate() {
    local url=$1 since=$2 want=$3 deadline n=0 last=-1 still=0
    # At least 30 events/s, or something is wrong: no endless wait.
    deadline=$((SECONDS + 30 + want / 30))
    while ((SECONDS < deadline)); do
        n="$(psql "$url" -XAtq -c "SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c FROM inbox
                                   WHERE processed_at >= '$since' GROUP BY consumer) s")"
        ((n >= want)) && break
        if ((n > 0 && n == last)); then
            still=$((still + 1))
            ((still >= 15)) && break
        else
            still=0
        fi
        last=$n
        sleep 0.2
    done
    ((n >= want)) || say "  note: $n of $want events reached the inbox of $url"
    psql "$url" -XAtq -c "WITH busiest AS (SELECT consumer FROM inbox WHERE processed_at >= '$since'
                                           GROUP BY consumer ORDER BY count(*) DESC LIMIT 1),
        firsts AS (SELECT processed_at AS t FROM inbox WHERE consumer = (SELECT consumer FROM busiest)
                   AND processed_at >= '$since' ORDER BY processed_at LIMIT $want)
        SELECT (SELECT consumer FROM busiest) || ',' || count(*) || ',' ||
               round(extract(epoch FROM max(t) - min(t))::numeric, 3) || ',' ||
               CASE WHEN max(t) > min(t)
                    THEN round(((count(*) - 1) / extract(epoch FROM max(t) - min(t)))::numeric, 1)
                    ELSE 0 END
        FROM firsts"
}

# The keel services that own a database, from stack.env's KEEL_<SERVICE>_DB_URL.
db_services() {
    compgen -v | sed -n 's/^KEEL_\(.*\)_DB_URL$/\1/p' | tr 'A-Z_' 'a-z-' | sort
}

# consumer_row ORDER SERVICE TOPIC RESULT: one consumer's line in consumers.csv and the table.
consumer_row() {
    local order=$1 svc=$2 topic=$3 res=$4 name count rate
    IFS=, read -r name count _ rate <<<"$res"
    echo "keel-$svc ($name),$topic,$PARTITIONS,${res#*,},$(fmt "$(calc "$rate / $PARTITIONS")" 1)" >>"$OUT/consumers.csv"
    say "  keel-$svc: $rate events/s over $PARTITIONS partitions ($count events)"
    figure "$order" "consumer keel-$svc through its inbox ($topic)" \
        "$(fmt "$rate" 0) events/s = $(fmt "$(calc "$rate / $PARTITIONS")" 0) per partition ($PARTITIONS partitions)"
}

# The backlog the gateway-alone ramp left in Kafka is the consumers' workload. keel-payments
# starts on it alone, so the outcomes it publishes wait in Kafka too; then it stops and each
# consumer of the outcome events (the gateway, and every other service with a database)
# starts alone on them. Each rate is taken over at most BENCH_CONSUME_N events.
consumer_throughput() {
    local n since res deadline published svc order=52 url
    local -a others=()
    wait_gateway_outbox 60
    n="$(sql_gw "SELECT count(*) FROM payments WHERE merchant_id = '$KEEL_MERCHANT_ID'
                 AND created_at >= '$BACKLOG_SINCE' AND status = 'pending'")"
    ((n > BENCH_CONSUME_N)) && n=$BENCH_CONSUME_N
    ((n > 0)) || die "no payment requests wait in Kafka for the consumers"
    for svc in $(db_services); do [[ $svc == payments ]] || others+=("$svc"); done
    say "consumer throughput: keel-payments, then ${others[*]/#/keel-}, each alone on a backlog in Kafka (rate over $n events)"
    for svc in "${others[@]}"; do stop_service "$svc"; done
    echo "consumer,topic,partitions,events,seconds,events_per_s,events_per_s_per_partition" >"$OUT/consumers.csv"
    since="$(sql_pay "SELECT now()")"
    start_service payments
    res="$(consumer_rate "$KEEL_PAYMENTS_DB_URL" "$since" "$n")"
    consumer_row 50 payments "payment requests; its worker charging alongside" "$res"
    # Outcomes for the others: let keel-payments decide n payments, then stop it so it does
    # not compete with them. Published = decided minus still in its outbox (each decision
    # writes one outbox row).
    deadline=$((SECONDS + 30 + n / 20))
    while :; do
        published="$(sql_pay "SELECT (SELECT count(*) FROM payments WHERE updated_at >= '$since'
                                      AND status <> 'processing') - (SELECT count(*) FROM outbox)")"
        ((published >= n || SECONDS >= deadline)) && break
        sleep 0.3
    done
    stop_service payments
    published="$(sql_pay "SELECT (SELECT count(*) FROM payments WHERE updated_at >= '$since'
                                  AND status <> 'processing') - (SELECT count(*) FROM outbox)")"
    ((published > n)) && published=$n
    ((published > 0)) || die "keel-payments published no outcome within its time"
    for svc in "${others[@]}"; do
        url="KEEL_$(tr 'a-z-' 'A-Z_' <<<"$svc")_DB_URL"
        since="$(psql "${!url}" -XAtq -c "SELECT now()")"
        start_service "$svc"
        res="$(consumer_rate "${!url}" "$since" "$published")"
        if [[ $svc == gateway ]]; then
            consumer_row 51 "$svc" "payment events" "$res"
        else
            consumer_row "$order" "$svc" "payment events" "$res"
            order=$((order + 1))
            stop_service "$svc" # the next one runs alone
        fi
    done
    if [[ $MODE == smoke ]]; then
        # The test stack goes on serving other tests: everything back, the backlog worked off.
        for svc in payments "${others[@]}"; do start_service "$svc"; done
        settle
    fi
}

# ---- report ----------------------------------------------------------------------------------------
plots() {
    local files="" titles="" f
    gnuplot -e "alone='$OUT/ramp-alone.csv'; pipeline='$OUT/ramp-pipeline.csv'; out='$OUT/accept-ramp.png'; limit=$BENCH_P99_LIMIT_MS" \
        "$BENCH_DIR/plot_ramp.gp" 2>>"$OUT/gnuplot.log" || die "gnuplot failed on the ramps (see $OUT/gnuplot.log)"
    for kind in e2e accept; do
        files=""
        titles=""
        for f in "${E2E_FRACTIONS[@]}"; do
            [[ -s "$OUT/e2e-$f-$kind.csv" ]] || continue
            files+="$OUT/e2e-$f-$kind.csv "
            titles+="$f%_($(awk -F, -v f="$f" '$1 == f {print $2}' "$OUT/e2e.csv")/s) "
        done
        [[ -n "$files" ]] || continue
        local what="POST -> outcome event (keel.payment-events.v1)"
        [[ $kind == accept ]] && what="POST /v1/payments -> 202"
        gnuplot -e "files='$files'; titles='$titles'; out='$OUT/latency-$kind.png'; heading='$what latency by percentile, per rate'" \
            "$BENCH_DIR/plot_latency.gp" 2>>"$OUT/gnuplot.log" || die "gnuplot failed on the $kind latency (see $OUT/gnuplot.log)"
    done
    gnuplot -e "data='$OUT/drain.csv'; out='$OUT/relay-drain.png'" "$BENCH_DIR/plot_drain.gp" \
        2>>"$OUT/gnuplot.log" || die "gnuplot failed on the drain (see $OUT/gnuplot.log)"
}

ratios() {
    ratio "ratio accept ceiling (gateway alone) / pgbench -M prepared" "$(quotient "$CEILING_ALONE" "$PGB_PREPARED" 3)"
    if [[ -n "$PGB_PIPELINED" ]]; then
        ratio "ratio accept ceiling (gateway alone) / pgbench pipelined" "$(quotient "$CEILING_ALONE" "$PGB_PIPELINED" 3)"
    fi
    ratio "ratio sustained accept rate (whole pipeline) / accept ceiling (gateway alone)" "$(quotient "$CEILING" "$CEILING_ALONE" 3)"
    ratio "ratio relay drain / bare producer" "$(quotient "$RELAY_RPS" "$BARE_RPS" 3)"
    ratio "ratio relay drain / sustained accept rate" "$(quotient "$RELAY_RPS" "$CEILING" 2)"
}

rss_figures() {
    local comp idle load
    while IFS= read -r comp; do
        idle="$(awk -F, -v c="$comp" '$1 == "idle" && $2 == c {print $3}' "$OUT/rss.csv")"
        load="$(awk -F, -v c="$comp" '$1 == "load70" && $2 == c {print $3}' "$OUT/rss.csv")"
        figure "60" "memory $comp: idle / at 70 % load" "$(fmt "${idle:-0}" 1) / $(fmt "${load:-0}" 1) MiB"
    done < <(awk -F, 'NR > 1 {print $2}' "$OUT/rss.csv" | awk '!seen[$0]++')
}

print_table() {
    local row width=0 label
    # Sorted by their order key (stable: rows of one key keep their order), then the key goes.
    mapfile -t FIGURES < <(printf '%s\n' "${FIGURES[@]}" | sort -t'|' -k1,1n -s | cut -d'|' -f2-)
    for row in "${FIGURES[@]}" "${RATIOS[@]}"; do
        label="${row%%|*}"
        ((${#label} > width)) && width=${#label}
    done
    {
        printf '%-*s  %s\n' "$width" "figure" "value"
        printf '%-*s  %s\n' "$width" "------" "-----"
        for row in "${FIGURES[@]}" "${RATIOS[@]}"; do
            printf '%-*s  %s\n' "$width" "${row%%|*}" "${row#*|}"
        done
    } | tee "$OUT/figures.txt"
    {
        echo "figure,value"
        for row in "${FIGURES[@]}" "${RATIOS[@]}"; do
            printf '"%s","%s"\n' "${row%%|*}" "${row#*|}"
        done
    } >"$OUT/figures.csv"
}

csv_to_md() { # a CSV file as a markdown table
    awk -F, 'NR == 1 { h = "|"; s = "|"; for (i = 1; i <= NF; i++) { h = h " " $i " |"; s = s " --- |" } print h; print s; next }
             { r = "|"; for (i = 1; i <= NF; i++) r = r " " $i " |"; print r }' "$1"
}

write_report() {
    local cpu mem pgver
    cpu="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    mem="$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    pgver="$(psql "$KEEL_PG_SUPERUSER_URL" -XAtq -c 'SHOW server_version' 2>/dev/null || echo '?')"
    {
        echo "# keel benchmark, $STAMP"
        echo
        echo "Mode: $MODE. Machine: ${cpu:-unknown CPU}, $(nproc) cores, $mem, Linux $(uname -r)."
        echo "Load average (1, 5, 15 min) before the run: $LOAD_BEFORE; after: $LOAD_AFTER. Anything else"
        echo "busy on the machine lowers every figure; the ratios suffer less."
        echo "PostgreSQL $pgver (fsync on, synchronous_commit on), Kafka on the same machine"
        echo "(stack \`$KEEL_STACK\`, $PARTITIONS partitions per topic), librdkafka $(pkg-config --modversion rdkafka 2>/dev/null || echo '?')."
        echo "How to read these figures: docs/benchmarks.md. Everything below was measured in this run."
        echo
        echo "## Figures (ratios last)"
        echo
        echo '```'
        cat "$OUT/figures.txt"
        echo '```'
        echo
        echo "## Accept ceiling: POST /v1/payments, open loop"
        echo
        echo "Gateway alone (keel-payments stopped, requests wait in Kafka):"
        echo
        csv_to_md "$OUT/ramp-alone.csv"
        echo
        echo "Whole pipeline running (the sustained accept rate):"
        echo
        csv_to_md "$OUT/ramp-pipeline.csv"
        echo
        echo "![accept latency by offered rate](accept-ramp.png)"
        echo
        echo "## pgbench with the gateway's statements"
        echo
        echo "Scripts: \`pgbench-gateway.sql\`, \`pgbench-gateway-pipelined.sql\` (generated by"
        echo "\`bench-print-sql\` from the statements the gateway compiles in); output in \`pgbench-*.log\`."
        echo
        echo '```'
        for f in "$OUT"/pgbench-prepared.log "$OUT"/pgbench-pipelined.log; do
            [[ -f "$f" ]] || continue
            echo "$(basename "$f"):"
            grep -E '^(tps|latency average|number of (transactions actually processed|failed transactions))' "$f" || true
        done
        echo '```'
        echo
        echo "## Relay drain"
        echo
        echo "\`drain.log\`: $(cat "$OUT/drain.log")"
        echo
        echo "\`bare-producer.log\`: $(cat "$OUT/bare-producer.log")"
        echo
        echo "![outbox rows left while the relay drains](relay-drain.png)"
        echo
        echo "## End-to-end latency per rate"
        echo
        echo "e2e = scheduled send of POST to the outcome event consumed from keel.payment-events.v1;"
        echo "view = the payment's created_at to the outcome applied in the gateway's view (GET)."
        echo
        csv_to_md "$OUT/e2e.csv"
        echo
        echo "![POST to outcome latency by percentile](latency-e2e.png)"
        echo
        echo "![POST accept latency by percentile](latency-accept.png)"
        echo
        echo "## Consumers through the inbox"
        echo
        csv_to_md "$OUT/consumers.csv"
        echo
        echo "## Memory (MiB)"
        echo
        csv_to_md "$OUT/rss.csv"
    } >"$OUT/report.md"
}

# ---- the run --------------------------------------------------------------------------------------
T_START=$SECONDS
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
warm_up
accept_pipeline
pgbench_compare
relay_drain
e2e_latency
# Last: the gateway-alone ramp leaves a backlog in Kafka, which the consumers then measure on
# (a full run's stack is stopped afterwards, with whatever is left of it).
accept_alone
consumer_throughput
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
say "writing the report"
rss_figures
ratios
plots
print_table
write_report
say "done in $((SECONDS - T_START)) s; report: $OUT/report.md"
