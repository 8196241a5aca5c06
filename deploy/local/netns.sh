#!/usr/bin/env bash
# Runs one keel service instance in a network namespace of its own, reaching the stack through forwarders, so tests and chaos runs can cut it off from Kafka alone; see docs/chaos.md.
set -euo pipefail

# shellcheck source=deploy/local/common.sh
. "$(dirname "$0")/common.sh"

usage() {
    cat <<'EOF'
usage: netns.sh enter NAME [INSTANCE]   restart the instance inside namespace keel-<stack>-<name>-<n>
       netns.sh cut NAME [INSTANCE]     cut it off from every Kafka node (its other links stay)
       netns.sh heal NAME [INSTANCE]    undo cut
       netns.sh leave NAME [INSTANCE]   stop it, remove the namespace, start it normally again
       netns.sh clean                   remove every namespace and forwarder of the stack
       netns.sh check                   exit 0 when this machine can create network namespaces
Environment: KEEL_STACK and KEEL_PORT_BASE as for stack.sh; root (ip netns) and socat needed.

Inside the namespace only its own loopback exists. For each TCP port the stack listens on in
its block (KEEL_PORT_BASE .. +999) a forwarder pair carries connections over a Unix socket in
the state folder: a listener on the namespace's 127.0.0.1:<port> and a connector to the host's
127.0.0.1:<port>. One pair the other way makes the instance's own port reachable from the host.
No address other than the two loopbacks is ever used. "cut" stops (SIGSTOP) the Kafka pairs:
open connections go silent and new ones are accepted by the kernel and never answered, as in a
network partition; "heal" resumes them, and what was queued flows again.
EOF
}

STACK="${KEEL_STACK:-local}"
STATE="$KEEL_REPO/.keel/$STACK"
STACK_SH="$KEEL_REPO/deploy/local/stack.sh"
say() { keel_say "netns $STACK: $*"; }

stack_env() {
    [[ -f "$STATE/stack.env" ]] || keel_die "$STATE/stack.env is missing: start stack '$STACK' first"
    set -a
    # shellcheck source=/dev/null
    . "$STATE/stack.env"
    set +a
}

ns_name() { echo "keel-$STACK-$1-$2"; }
ns_dir() { echo "$STATE/run/ns-$1-$2"; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }

can_netns() {
    local probe="keel-probe-$$"
    command -v socat >/dev/null && command -v ip >/dev/null && ((EUID == 0)) &&
        ip netns add "$probe" 2>/dev/null && ip netns del "$probe" 2>/dev/null
}

kafka_ports() { tr ',' '\n' <<<"$KEEL_KAFKA_BROKERS" | sed 's/.*://'; }

# The ports the stack listens on in its block (TCP on 127.0.0.1; Java shows it as the mapped
# [::ffff:127.0.0.1]), and always the Kafka nodes' (one may be down right now), one per line.
stack_ports() {
    {
        ss -ltnH 2>/dev/null | awk -v lo="$KEEL_PORT_BASE" -v hi="$((KEEL_PORT_BASE + 999))" '
            { n = split($4, a, ":"); p = a[n]; addr = substr($4, 1, length($4) - length(p) - 1) }
            (addr == "127.0.0.1" || addr == "[::ffff:127.0.0.1]") && p >= lo && p <= hi { print p }'
        kafka_ports
    } | sort -un
}

# forwarder DIR LABEL SIDE ARGS...: starts socat in a session of its own (so its per-connection
# children share its process group, which cut and heal signal as one) and records its pid.
# SIDE is "host" or a namespace name.
forwarder() {
    local dir=$1 label=$2 side=$3 pid
    shift 3
    local -a run=()
    [[ "$side" == host ]] || run=(ip netns exec "$side")
    # Descriptors above 2 are closed: a forwarder must not keep a caller's pipe open.
    setsid "${run[@]}" socat "$@" </dev/null >>"$dir/forwarders.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$dir/$label.pid"
}

wait_listening() { # SIDE PORT
    local side=$1 port=$2 i
    local -a run=()
    [[ "$side" == host ]] || run=(ip netns exec "$side")
    for ((i = 0; i < 100; i++)); do
        [[ -n "$("${run[@]}" ss -ltnH "( sport = :$port )" 2>/dev/null)" ]] && return 0
        sleep 0.05
    done
    keel_die "a forwarder did not listen on port $port ($side) within 5 s; see $dir/forwarders.log"
}

# A forwarder that cannot start (socat missing, a bad path) must not hang the caller.
wait_socket() { # PATH
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -S "$1" ]] && return 0
        sleep 0.05
    done
    keel_die "a forwarder did not create $1 within 5 s; see $(dirname "$1")/forwarders.log"
}

signal_group() { # SIGNAL PIDFILE...
    local sig=$1 f pid
    shift
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        pid="$(cat "$f")"
        kill "-$sig" -- "-$pid" 2>/dev/null || true
    done
}

teardown() { # NAME INSTANCE
    local ns dir f i
    ns="$(ns_name "$1" "$2")"
    dir="$(ns_dir "$1" "$2")"
    if [[ -d "$dir" ]]; then
        signal_group CONT "$dir"/*.pid
        signal_group KILL "$dir"/*.pid
        for f in "$dir"/*.pid; do
            [[ -s "$f" ]] || continue
            # SIGKILL cannot be refused; the cap only guards against a pid reused meanwhile.
            for ((i = 0; i < 100; i++)); do
                kill -0 "$(cat "$f")" 2>/dev/null || break
                sleep 0.05
            done
        done
        rm -rf "$dir"
    fi
    if ns_exists "$ns"; then ip netns del "$ns"; fi
}

cmd_enter() {
    local name=$1 inst=$2 ns dir own port sock
    can_netns || keel_die "cannot create network namespaces here (needs root, iproute2 and socat)"
    stack_env
    ns="$(ns_name "$name" "$inst")"
    dir="$(ns_dir "$name" "$inst")"
    # The instance's own port: stack.sh's layout (instance n listens on base port + n - 1).
    own="$(sed -n 's/^KEEL_HTTP_PORT=//p' "$STATE/env/$name.env")"
    [[ "$own" =~ ^[0-9]+$ ]] || keel_die "no KEEL_HTTP_PORT in $STATE/env/$name.env"
    own=$((own + inst - 1))
    # Unix socket paths are limited to 107 bytes.
    ((${#dir} + 24 < 107)) || keel_die "state folder path too long for Unix sockets: $dir"

    "$STACK_SH" stop-service "$name" "$inst" >/dev/null || true
    teardown "$name" "$inst"
    mkdir -p "$dir"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    local -a ports
    mapfile -t ports < <(stack_ports)
    for port in "${ports[@]}"; do
        [[ "$port" == "$own" ]] && continue
        sock="$dir/out-$port.sock"
        forwarder "$dir" "out-$port.host" host "UNIX-LISTEN:$sock,fork,unlink-early,mode=600" \
            "TCP:127.0.0.1:$port,connect-timeout=5"
        wait_socket "$sock"
        forwarder "$dir" "out-$port.ns" "$ns" "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr,backlog=256" \
            "UNIX-CONNECT:$sock"
        wait_listening "$ns" "$port"
    done
    sock="$dir/in.sock"
    forwarder "$dir" "in.ns" "$ns" "UNIX-LISTEN:$sock,fork,unlink-early,mode=600" "TCP:127.0.0.1:$own,connect-timeout=5"
    wait_socket "$sock"
    forwarder "$dir" "in.host" host "TCP-LISTEN:$own,bind=127.0.0.1,fork,reuseaddr,backlog=256" "UNIX-CONNECT:$sock"
    wait_listening host "$own"
    KEEL_NETNS="$ns" "$STACK_SH" start-service "$name" "$inst" >/dev/null
    say "$name-$inst runs in namespace $ns (${#ports[@]} ports forwarded, its own $own back)"
}

kafka_pidfiles() { # NAME INSTANCE
    local dir port
    dir="$(ns_dir "$1" "$2")"
    [[ -d "$dir" ]] || keel_die "$1-$2 is not in a namespace (run: netns.sh enter $1 $2)"
    for port in $(kafka_ports); do echo "$dir/out-$port.ns.pid" "$dir/out-$port.host.pid"; done
}

cmd_cut() {
    stack_env
    # shellcheck disable=SC2046
    signal_group STOP $(kafka_pidfiles "$1" "$2")
    say "$1-$2 cut off from Kafka ($KEEL_KAFKA_BROKERS)"
}

cmd_heal() {
    stack_env
    # shellcheck disable=SC2046
    signal_group CONT $(kafka_pidfiles "$1" "$2")
    say "$1-$2 reaches Kafka again"
}

cmd_leave() {
    local name=$1 inst=$2 out
    stack_env
    signal_group CONT "$(ns_dir "$name" "$inst")"/*.pid
    out="$("$STACK_SH" stop-service "$name" "$inst")" || keel_die "$name-$inst did not stop cleanly (exit $out)"
    teardown "$name" "$inst"
    "$STACK_SH" start-service "$name" "$inst" >/dev/null
    say "$name-$inst runs outside any namespace again"
}

cmd_clean() {
    local d b
    for d in "$STATE"/run/ns-*; do
        [[ -d "$d" ]] || continue
        b="${d##*/ns-}"
        teardown "${b%-*}" "${b##*-}"
    done
    return 0
}

main() {
    local cmd=${1:-} name inst
    (($#)) && shift
    case "$cmd" in
    enter | cut | heal | leave)
        (($# >= 1)) || {
            usage >&2
            exit 2
        }
        name=${1#keel-}
        inst=${2:-1}
        [[ "$name" =~ ^[a-z-]+$ && "$inst" =~ ^[0-9]+$ ]] || keel_die "bad service '$1' or instance '$inst'"
        "cmd_$cmd" "$name" "$inst"
        ;;
    clean) cmd_clean ;;
    check) can_netns ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
