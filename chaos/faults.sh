#!/usr/bin/env bash
# The chaos fault scheduler: injects seeded faults into a running keel stack (kills, crash points, pauses, Kafka, PostgreSQL, provider faults), logs each one, and always restores the stack.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: chaos/faults.sh --duration S --log FILE [--seed N] [--faults LIST] [--gap MIN:MAX]
Injects faults into the stack named by the sourced stack.env (KEEL_STATE_DIR, KEEL_STACK_SCRIPT,
KEEL_PROVIDER_SIM_URL, KEEL_KAFKA_BROKERS) for S seconds, one after another, then restores it.
LIST (comma-separated, default kill,crashpoint,pause,kafka,postgres,provider):
  kill        SIGKILL of a random keel service instance, restarted after 0-2 s
  crashpoint  restart a service with KEEL_FAILPOINTS=<point>=crash, wait for it to die, restart it clean
  pause       SIGSTOP of a service (or a Kafka node) for 2-8 s, then SIGCONT
  kafka       SIGKILL of a Kafka node, restarted after 1-5 s
  leader      SIGKILL of the Kafka node leading most of keel's partitions (3 nodes), restarted after 2-6 s
  postgres    immediate stop (a crash) of PostgreSQL, restarted after 1-4 s
  provider    a provider fault through keel-provider-sim: 5xx burst, timeout after charge, outage
  partition   a payments, ledger or gateway instance moved into a network namespace of its own
              (deploy/local/netns.sh), cut off from every Kafka node for 4-12 s while it keeps
              its database and HTTP links, healed, moved back (needs root, ip netns, socat)
Every round runs each listed kind once in a seeded order, so every kind appears early.
The log gets one tab-separated line per fault:
  start_unix_ms end_unix_ms kind target detail result
EOF
}

DURATION=""
LOG=""
SEED=1
FAULTS="kill,crashpoint,pause,kafka,postgres,provider"
GAP="1:4"
while (($#)); do
    case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --faults) FAULTS=$2; shift 2 ;;
    --gap) GAP=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
[[ "$DURATION" =~ ^[0-9]+$ && -n "$LOG" && "$SEED" =~ ^[0-9]+$ && "$GAP" =~ ^[0-9]+:[0-9]+$ ]] || {
    usage >&2
    exit 2
}
: "${KEEL_STATE_DIR:?source the stack.env of the stack first}"
: "${KEEL_STACK_SCRIPT:?source the stack.env of the stack first}"
: "${KEEL_PROVIDER_SIM_URL:?source the stack.env of the stack first}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
STACK_SH="$KEEL_STACK_SCRIPT"
NETNS_SH="$REPO/deploy/local/netns.sh"
GAP_MIN=${GAP%%:*}
GAP_MAX=${GAP##*:}
RANDOM=$SEED

now_ms() { date +%s%3N; }
say() { printf '[chaos faults %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
# rand LO HI: a seeded integer in [LO, HI].
rand() { echo $(($1 + RANDOM % ($2 - $1 + 1))); }
pick() {
    local -a a=("$@")
    echo "${a[RANDOM % ${#a[@]}]}"
}
# sleep_ms MS
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

log_fault() { # start end kind target detail result
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$LOG"
    say "$3 $4 ($5): $6"
}

pid_file_pid() {
    local f="$KEEL_STATE_DIR/run/$1.pid" p
    [[ -s "$f" ]] || return 1
    p="$(cat "$f")"
    [[ "$p" =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null || return 1
    echo "$p"
}

# Keel service instances running now, as NAME-INSTANCE (provider-sim excluded: it plays the
# outside world, and its charge log, the audit's evidence, lives only in its memory).
keel_instances() {
    local f b
    for f in "$KEEL_STATE_DIR"/run/*.pid; do
        [[ -e "$f" ]] || continue
        b="$(basename "$f" .pid)"
        case "$b" in
        kafka-* | prometheus | provider-sim-*) continue ;;
        esac
        [[ "$b" =~ ^[a-z-]+-[0-9]+$ ]] || continue
        pid_file_pid "$b" >/dev/null && echo "$b"
    done
}
kafka_nodes() {
    local n
    for n in 1 2 3; do [[ -d "$KEEL_STATE_DIR/kafka-$n" ]] && echo "$n"; done
}

# The stack as it was when we started, to put back afterwards.
mapfile -t INITIAL_INSTANCES < <(keel_instances)
mapfile -t KAFKA_NODES < <(kafka_nodes)
((${#INITIAL_INSTANCES[@]} > 0)) || { say "no keel service is running in $KEEL_STATE_DIR"; exit 1; }
PROVIDER_FAULTS_BEFORE="$(curl -fsS -m 5 "$KEEL_PROVIDER_SIM_URL/_sim/faults" | jq -c '.data')" ||
    { say "cannot read $KEEL_PROVIDER_SIM_URL/_sim/faults"; exit 1; }

PAUSED_PID=""
DIRTY_INSTANCE="" # running with failpoints switched on
PARTITIONED=""    # running in a network namespace
PG_FAULTS=0
SVC_ERR="$(mktemp)"

svc_name() { echo "${1%-*}"; }
svc_inst() { echo "${1##*-}"; }

# stack.sh start-service with up to six tries, 8 s apart: a start can fail for a passing
# reason (the port held for up to a minute as some client's ephemeral source port in
# TIME_WAIT, stack.sh itself being edited).
stack_start() { # stack.sh start-service arguments
    local try
    for try in 1 2 3 4 5 6; do
        "$STACK_SH" start-service "$@" >/dev/null 2>"$SVC_ERR" && return 0
        ((try < 6)) && sleep 8
    done
    return 1
}

start_clean() { # NAME-INSTANCE
    stack_start "$(svc_name "$1")" "$(svc_inst "$1")"
}

provider_restore() {
    local p rc=0
    for p in $(jq -r '.[].provider' <<<"$PROVIDER_FAULTS_BEFORE"); do
        jq -c --arg p "$p" '.[] | select(.provider == $p) | {provider, error_rate, latency_ms,
            timeout_after_charge_rate, timeout_hold_ms, outage}' <<<"$PROVIDER_FAULTS_BEFORE" |
            curl -fsS -m 5 -H 'Content-Type: application/json' --data-binary @- \
                "$KEEL_PROVIDER_SIM_URL/_sim/faults" >/dev/null || {
            say "warning: could not restore $p's faults"
            rc=1
        }
    done
    return "$rc"
}

# Puts everything back: resumes a paused process, restarts what is down or carries failpoints,
# heals the providers. Runs on every exit.
restore() {
    local rc=$? i n broken=0
    trap - EXIT INT TERM
    if [[ -n "$PAUSED_PID" ]]; then kill -CONT "$PAUSED_PID" 2>/dev/null || true; fi
    if [[ -n "$PARTITIONED" ]]; then
        KEEL_STACK="$KEEL_STACK" "$NETNS_SH" leave "$(svc_name "$PARTITIONED")" "$(svc_inst "$PARTITIONED")" >/dev/null 2>&1 || {
            "$STACK_SH" kill-service "$(svc_name "$PARTITIONED")" "$(svc_inst "$PARTITIONED")" >/dev/null 2>&1 || true
            KEEL_STACK="$KEEL_STACK" "$NETNS_SH" clean >/dev/null 2>&1 || true
        }
    fi
    if [[ -n "$DIRTY_INSTANCE" ]]; then
        "$STACK_SH" kill-service "$(svc_name "$DIRTY_INSTANCE")" "$(svc_inst "$DIRTY_INSTANCE")" >/dev/null 2>&1 || true
    fi
    stack_start postgres || {
        say "error: PostgreSQL did not start: $(tail -n 3 "$SVC_ERR")"
        broken=1
    }
    for n in "${KAFKA_NODES[@]}"; do
        stack_start kafka "$n" || {
            say "error: kafka-$n did not start: $(tail -n 3 "$SVC_ERR")"
            broken=1
        }
    done
    for i in "${INITIAL_INSTANCES[@]}"; do
        pid_file_pid "$i" >/dev/null || start_clean "$i" || {
            say "error: $i did not start: $(tail -n 3 "$SVC_ERR")"
            broken=1
        }
    done
    provider_restore || broken=1
    # After a PostgreSQL crash the services' pools may still hold connections the server
    # dropped, which fail on their next use: restart every instance cleanly, so whatever runs
    # next starts fresh, and a service that cannot stop cleanly after the chaos is reported.
    if ((PG_FAULTS > 0 && !broken)); then
        for i in "${INITIAL_INSTANCES[@]}"; do
            if ! n="$("$STACK_SH" stop-service "$(svc_name "$i")" "$(svc_inst "$i")" 2>/dev/null)"; then
                say "error: $i did not stop cleanly after the faults (exit $n; see its log)"
                broken=1
            fi
            start_clean "$i" || {
                say "error: $i did not start: $(tail -n 3 "$SVC_ERR")"
                broken=1
            }
        done
        ((broken)) || say "every service restarted cleanly after the PostgreSQL faults"
    fi
    rm -f "$SVC_ERR"
    if ((broken)); then
        say "the stack could NOT be restored completely"
        exit 1
    fi
    say "stack restored"
    exit "$rc"
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the fault kinds: each prints nothing, logs one line, returns 0 ------------------------

fault_kill() {
    local target down start
    target="$(pick $(keel_instances))"
    down=$(rand 0 2000)
    start=$(now_ms)
    "$STACK_SH" kill-service "$(svc_name "$target")" "$(svc_inst "$target")" >/dev/null
    sleep_ms "$down"
    if start_clean "$target"; then
        log_fault "$start" "$(now_ms)" kill "$target" "SIGKILL, down ${down} ms" restarted
    else
        log_fault "$start" "$(now_ms)" kill "$target" "SIGKILL, down ${down} ms" "restart failed: $(tail -n 1 "$SVC_ERR")"
        return 1
    fi
}

# The crash points a service can reach: its own KEEL_FAILPOINT names, plus libkeel's relay and
# inbox points when it runs an outbox relay or claims inbox rows.
crash_points() {
    local svc=$1 dir="$REPO/services/$1"
    [[ -d "$dir" ]] || return 0
    grep -rhoE --include='*.c' --exclude-dir=tests 'KEEL_FAILPOINT\("[a-z0-9_.]+"\)' "$dir" 2>/dev/null |
        sed -E 's/KEEL_FAILPOINT\("([^"]+)"\)/\1/' || true
    if grep -rqE --include='*.c' --exclude-dir=tests 'keel_outbox_relay|keel_outbox_start|keel_relay' "$dir" 2>/dev/null; then
        echo outbox.before_publish
        echo outbox.after_publish
    fi
    if grep -rq --include='*.c' --exclude-dir=tests 'keel_inbox_claim' "$dir" 2>/dev/null; then echo inbox.after_claim; fi
}

fault_crashpoint() {
    local target svc inst point start deadline result pid
    local -a points
    target="$(pick $(keel_instances))"
    svc="$(svc_name "$target")"
    inst="$(svc_inst "$target")"
    mapfile -t points < <(crash_points "$svc" | sort -u)
    if ((${#points[@]} == 0)); then
        fault_kill
        return
    fi
    point="$(pick "${points[@]}")"
    start=$(now_ms)
    "$STACK_SH" kill-service "$svc" "$inst" >/dev/null
    DIRTY_INSTANCE="$target"
    # A point on the start-up path fires before /readyz: start-service then reports the death.
    "$STACK_SH" start-service "$svc" "$inst" "KEEL_FAILPOINTS=$point=crash" >/dev/null 2>&1 || true
    deadline=$((SECONDS + 20))
    result="did not fire within 20 s; SIGKILLed"
    while ((SECONDS < deadline)); do
        if ! pid="$(pid_file_pid "$target")"; then
            result="died at the point"
            break
        fi
        sleep 0.2
    done
    if [[ "$result" != "died at the point" ]]; then
        "$STACK_SH" kill-service "$svc" "$inst" >/dev/null 2>&1 || true
    fi
    DIRTY_INSTANCE=""
    if start_clean "$target"; then
        log_fault "$start" "$(now_ms)" crashpoint "$target" "$point" "$result; restarted"
    else
        log_fault "$start" "$(now_ms)" crashpoint "$target" "$point" "$result; restart failed: $(tail -n 1 "$SVC_ERR")"
        return 1
    fi
}

fault_pause() {
    local -a targets
    local target pid hold start n
    mapfile -t targets < <(keel_instances)
    pid_file_pid provider-sim-1 >/dev/null && targets+=(provider-sim-1)
    for n in "${KAFKA_NODES[@]}"; do targets+=("kafka-$n"); done
    target="$(pick "${targets[@]}")"
    hold=$(rand 2000 8000)
    pid="$(pid_file_pid "$target")" || {
        log_fault "$(now_ms)" "$(now_ms)" pause "$target" "not running" skipped
        return 0
    }
    start=$(now_ms)
    PAUSED_PID=$pid
    kill -STOP "$pid"
    sleep_ms "$hold"
    kill -CONT "$pid"
    PAUSED_PID=""
    log_fault "$start" "$(now_ms)" pause "$target" "SIGSTOP for ${hold} ms" resumed
}

kafka_restart() { # kind node down_ms
    local kind=$1 node=$2 down=$3 start
    start=$(now_ms)
    "$STACK_SH" kill-service kafka "$node" >/dev/null
    sleep_ms "$down"
    if stack_start kafka "$node"; then
        log_fault "$start" "$(now_ms)" "$kind" "kafka-$node" "SIGKILL, down ${down} ms" restarted
    else
        log_fault "$start" "$(now_ms)" "$kind" "kafka-$node" "SIGKILL, down ${down} ms" "restart failed: $(tail -n 1 "$SVC_ERR")"
        return 1
    fi
}

fault_kafka() {
    kafka_restart kafka "$(pick "${KAFKA_NODES[@]}")" "$(rand 1000 5000)"
}

# The node leading most partitions of keel's topics, from the cluster's metadata.
partition_leader() {
    kcat -b "$KEEL_KAFKA_BROKERS" -L -J -m 5 2>/dev/null | jq -r '
        [.topics[] | select(.topic | startswith("keel.")) | .partitions[].leader]
        | group_by(.) | map({id: .[0], n: length}) | max_by(.n) | .id // empty'
}

fault_leader() {
    local leader
    if ((${#KAFKA_NODES[@]} < 3)); then
        fault_kafka
        return
    fi
    leader="$(partition_leader)"
    [[ "$leader" =~ ^[1-3]$ ]] || leader="$(pick "${KAFKA_NODES[@]}")"
    kafka_restart leader "$leader" "$(rand 2000 6000)"
}

fault_postgres() {
    local down start
    down=$(rand 1000 4000)
    start=$(now_ms)
    PG_FAULTS=$((PG_FAULTS + 1))
    "$STACK_SH" kill-service postgres >/dev/null
    sleep_ms "$down"
    if stack_start postgres; then
        log_fault "$start" "$(now_ms)" postgres postgres "immediate stop, down ${down} ms" restarted
    else
        log_fault "$start" "$(now_ms)" postgres postgres "immediate stop, down ${down} ms" "restart failed: $(tail -n 1 "$SVC_ERR")"
        return 1
    fi
}

sim_faults() { # JSON body
    curl -fsS -m 5 -H 'Content-Type: application/json' --data-binary "$1" \
        "$KEEL_PROVIDER_SIM_URL/_sim/faults" >/dev/null
}

fault_provider() {
    local provider variant hold start body detail rate
    provider="$(pick $(jq -r '.[].provider' <<<"$PROVIDER_FAULTS_BEFORE"))"
    variant="$(pick errors timeout_after_charge outage)"
    hold=$(rand 3000 8000)
    case "$variant" in
    errors)
        rate="0.$(rand 5 9)"
        body="{\"provider\":\"$provider\",\"error_rate\":$rate}"
        detail="5xx burst: error_rate $rate for ${hold} ms"
        ;;
    timeout_after_charge)
        rate="0.$(rand 2 5)"
        body="{\"provider\":\"$provider\",\"timeout_after_charge_rate\":$rate,\"timeout_hold_ms\":8000}"
        detail="timeout after charge: rate $rate, answers held 8 s, for ${hold} ms"
        ;;
    outage)
        body="{\"provider\":\"$provider\",\"outage\":true}"
        detail="outage for ${hold} ms"
        ;;
    esac
    start=$(now_ms)
    if ! sim_faults "$body"; then
        log_fault "$start" "$(now_ms)" provider "$provider" "$detail" "the simulator refused the setting"
        return 1
    fi
    sleep_ms "$hold"
    provider_restore
    log_fault "$start" "$(now_ms)" provider "$provider" "$detail" healed
}

# The instance keeps PostgreSQL, its HTTP peers and its own port (through forwarders) and
# loses every Kafka node; it is moved back with a clean stop, so a service that cannot stop
# after a partition shows up as a failed fault.
fault_partition() {
    local -a targets
    local target svc inst hold start
    mapfile -t targets < <(keel_instances | grep -E '^(payments|ledger|gateway)-[0-9]+$')
    if ((${#targets[@]} == 0)); then
        log_fault "$(now_ms)" "$(now_ms)" partition none "no payments, ledger or gateway instance" skipped
        return 0
    fi
    target="$(pick "${targets[@]}")"
    svc="$(svc_name "$target")"
    inst="$(svc_inst "$target")"
    hold=$(rand 4000 12000)
    start=$(now_ms)
    PARTITIONED="$target"
    if ! KEEL_STACK="$KEEL_STACK" "$NETNS_SH" enter "$svc" "$inst" >/dev/null 2>"$SVC_ERR"; then
        log_fault "$start" "$(now_ms)" partition "$target" "into a namespace" "failed: $(tail -n 1 "$SVC_ERR")"
        return 1
    fi
    KEEL_STACK="$KEEL_STACK" "$NETNS_SH" cut "$svc" "$inst" >/dev/null
    sleep_ms "$hold"
    KEEL_STACK="$KEEL_STACK" "$NETNS_SH" heal "$svc" "$inst" >/dev/null
    # A moment to catch up inside the namespace before the clean stop.
    sleep 2
    if KEEL_STACK="$KEEL_STACK" "$NETNS_SH" leave "$svc" "$inst" >/dev/null 2>"$SVC_ERR"; then
        PARTITIONED=""
        log_fault "$start" "$(now_ms)" partition "$target" "cut off from Kafka for ${hold} ms" "healed; back in the host namespace"
    else
        log_fault "$start" "$(now_ms)" partition "$target" "cut off from Kafka for ${hold} ms" "leaving the namespace failed: $(tail -n 1 "$SVC_ERR")"
        return 1
    fi
}

# ---- the schedule --------------------------------------------------------------------------
IFS=, read -r -a KINDS <<<"$FAULTS"
for k in "${KINDS[@]}"; do
    case "$k" in
    kill | crashpoint | pause | kafka | leader | postgres | provider) ;;
    partition)
        KEEL_STACK="$KEEL_STACK" "$NETNS_SH" check ||
            { say "the partition fault needs network namespaces (root, ip netns, socat)"; exit 2; }
        ;;
    *) say "unknown fault kind '$k'"; usage >&2; exit 2 ;;
    esac
done
mkdir -p "$(dirname "$LOG")"
: >>"$LOG"
END=$((SECONDS + DURATION))
count=0
failed=0
round=()
say "injecting ${KINDS[*]} for ${DURATION}s (seed $SEED)"
# Give the load a few seconds to start before the first fault.
sleep "$(rand 2 4)"
# The first round always completes, so every listed kind runs at least once however short the
# window; later rounds stop when the window closes.
while ((SECONDS < END - 3 || count < ${#KINDS[@]})); do
    if ((${#round[@]} == 0)); then
        # A seeded shuffle of the kinds: every kind once per round.
        round=("${KINDS[@]}")
        for ((i = ${#round[@]} - 1; i > 0; i--)); do
            j=$((RANDOM % (i + 1)))
            t=${round[i]}
            round[i]=${round[j]}
            round[j]=$t
        done
    fi
    kind=${round[0]}
    round=("${round[@]:1}")
    "fault_$kind" || failed=$((failed + 1))
    count=$((count + 1))
    gap=$(rand "$GAP_MIN" "$GAP_MAX")
    ((SECONDS + gap < END - 3 || count < ${#KINDS[@]})) || break
    sleep "$gap"
done
# A restart that failed during the run is retried by restore(); only what restore() cannot
# bring back fails the run (the fault's own line in the log says what happened).
say "$count faults injected; $failed restart(s) failed during the run and are retried now"
