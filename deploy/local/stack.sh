#!/usr/bin/env bash
# Starts, stops and inspects keel's local stack (PostgreSQL, Kafka, Prometheus, keel services) under .keel/<stack>/; see docs/local-stack.md.
set -euo pipefail

# shellcheck source=deploy/local/common.sh
. "$(dirname "$0")/common.sh"

usage() {
    cat <<'EOF'
usage: stack.sh up | down | status | wipe
       stack.sh start-service NAME [INSTANCE] [VAR=value ...]
       stack.sh stop-service NAME [INSTANCE]
       stack.sh kill-service NAME [INSTANCE]
NAME: a keel service (gateway, payments, ledger, notifier, provider-sim; the keel- prefix is optional) or
postgres, kafka (INSTANCE = node), prometheus.
Environment: KEEL_STACK (local|test|...), KEEL_BIN_DIR, KEEL_PORT_BASE (other stacks),
KEEL_TOPIC_PARTITIONS (3), KEEL_KAFKA_NODES (1 or 3), KEEL_STACK_ONLY_INFRA=1 (no keel
services, no demo merchant), KEEL_LOG_LEVEL (info), KEEL_STACK_HIDE_KEY=1 (up does not print
the demo API key; it stays in stack.env), KEEL_NETNS (start-service runs the instance in that
network namespace; deploy/local/netns.sh sets it up).
EOF
}

# ---- the stack and its ports (docs/local-stack.md has the table) ---------------------------
STACK="${KEEL_STACK:-local}"
[[ "$STACK" =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] ||
    keel_die "KEEL_STACK='$STACK': use lower-case letters, digits and '-' (e.g. local, test)"
case "$STACK" in
local) default_base=18000 ;;
test) default_base=28000 ;;
*) default_base="" ;;
esac
BASE="${KEEL_PORT_BASE:-$default_base}"
[[ "$BASE" =~ ^[1-9][0-9]{3,4}$ ]] && ((BASE + 200 < 65536)) ||
    keel_die "stack '$STACK' needs KEEL_PORT_BASE (a free block of 200 ports, e.g. 38000)"

STATE="$KEEL_REPO/.keel/$STACK"
PG_PORT=$((BASE + 432))
PROM_PORT=$((BASE + 90))
# A formatted cluster keeps its node count (the quorum is in every node's metadata log).
KAFKA_NODES_RECORDED="$(cat "$STATE/kafka.nodes" 2>/dev/null || true)"
KAFKA_NODES="${KEEL_KAFKA_NODES:-${KAFKA_NODES_RECORDED:-1}}"
[[ "$KAFKA_NODES" == 1 || "$KAFKA_NODES" == 3 ]] || keel_die "KEEL_KAFKA_NODES must be 1 or 3"
TOPIC_PARTITIONS="${KEEL_TOPIC_PARTITIONS:-3}"
[[ "$TOPIC_PARTITIONS" =~ ^[1-9][0-9]{0,2}$ ]] || keel_die "KEEL_TOPIC_PARTITIONS must be 1..999"
LOG_LEVEL="${KEEL_LOG_LEVEL:-info}"
ONLY_INFRA="${KEEL_STACK_ONLY_INFRA:-0}"

kafka_port() { echo $((BASE + 92 + 2 * ($1 - 1))); }
kafka_ctrl_port() { echo $((BASE + 93 + 2 * ($1 - 1))); }
kafka_brokers() {
    local n list=""
    for ((n = 1; n <= KAFKA_NODES; n++)); do list+="${list:+,}127.0.0.1:$(kafka_port "$n")"; done
    echo "$list"
}
KAFKA_BROKERS="$(kafka_brokers)"

# The keel services, in start order: name:port offset:db|nodb. Adding a service (ledger,
# notifier, scheduler) is one entry here plus its lines in write_service_env.
KEEL_SERVICE_TABLE="${KEEL_SERVICE_TABLE:-provider-sim:100:nodb payments:110:db ledger:120:db notifier:130:db gateway:80:db}"
SERVICES=()
declare -A SVC_PORT SVC_DB
for entry in $KEEL_SERVICE_TABLE; do
    IFS=: read -r s_name s_off s_db <<<"$entry"
    SERVICES+=("$s_name")
    SVC_PORT[$s_name]=$((BASE + s_off))
    SVC_DB[$s_name]="$s_db"
done
DB_SERVICES=()
for s in "${SERVICES[@]}"; do [[ "${SVC_DB[$s]}" == db ]] && DB_SERVICES+=("$s"); done
PROVIDER_A_PORT=$((BASE + 101))
PROVIDER_B_PORT=$((BASE + 102))
RISK_PORT=$((BASE + 103))

# Instance N of a service listens on its port + N - 1 (gateway 2 gets +81). provider-sim
# owns the ports after its own, so it runs once.
service_port() {
    local name=$1 inst=$2
    if [[ "$name" == provider-sim && "$inst" != 1 ]]; then
        keel_die "provider-sim runs as one instance (its provider ports follow its admin port)"
    fi
    ((inst >= 1 && inst <= 9)) || keel_die "instance must be 1..9, got $inst"
    echo $((SVC_PORT[$name] + inst - 1))
}

# ---- small helpers -------------------------------------------------------------------------
say() { keel_say "stack $STACK: $*"; }

# Prints the last lines of a log, for a component that did not come up.
show_tail() {
    local f=$1 n=${2:-40}
    [[ -e "$f" ]] || return 0
    printf -- '----- last %d lines of %s -----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2 || true
    printf -- '-----\n' >&2
}

fail_with_log() {
    local log=$1
    shift
    show_tail "$log" 60
    keel_die "$* (full log: $log; stop what did start with: KEEL_STACK=$STACK $0 down)"
}

# Commands that look at or start an instance run inside KEEL_NETNS when one is named
# (deploy/local/netns.sh): its ports and its readiness are the namespace's, not the host's.
IN_NS=()
if [[ -n "${KEEL_NETNS:-}" ]]; then
    ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$KEEL_NETNS" ||
        keel_die "KEEL_NETNS=$KEEL_NETNS: no such network namespace (deploy/local/netns.sh enter creates it)"
    IN_NS=(ip netns exec "$KEEL_NETNS")
fi

port_busy() { [[ -n "$("${IN_NS[@]}" ss -ltnH "( sport = :$1 )" 2>/dev/null)" ]]; }
port_owner() { "${IN_NS[@]}" ss -ltnpH "( sport = :$1 )" 2>/dev/null | head -n1 | sed 's/.*users://'; }
require_free_port() {
    local port=$1 what=$2
    if port_busy "$port"; then
        keel_die "port $port for $what is already taken by $(port_owner "$port"); is another stack using KEEL_PORT_BASE=$BASE? (stop it, or pick another KEEL_PORT_BASE)"
    fi
}

# The process named by a pid file, if it is alive and its command line contains the
# pattern (a recycled pid after a reboot belongs to someone else: never signal it).
pid_of() {
    local pidfile=$1 pattern=$2 pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    is_live "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
    echo "$pid"
}

# Alive and not a zombie waiting for its parent.
is_live() {
    local state
    [[ -r "/proc/$1/stat" ]] || return 1
    state="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while is_live "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# Closes every descriptor above 2 and runs the command: a server must not hold the stack
# lock, nor a pipe of whoever called us (a CI step would wait for that pipe to close).
# shellcheck disable=SC2016
CLOSEFDS='for fd in /proc/$$/fd/*; do fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-"; done 2>/dev/null'

# Runs a long-lived command in its own session under a small supervisor shell that records
# the command's pid and, when it ends, its exit status. Signals are reset because
# background jobs of a non-interactive shell start with SIGINT and SIGQUIT ignored.
spawn() {
    local pidfile=$1 statusfile=$2 log=$3
    shift 3
    rm -f "$pidfile" "$statusfile"
    # shellcheck disable=SC2016
    setsid bash -c "$CLOSEFDS"'
        pidfile=$1 statusfile=$2 log=$3
        shift 3
        env --default-signal "$@" >>"$log" 2>&1 </dev/null &
        pid=$!
        echo "$pid" >"$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile"
        wait "$pid"
        echo "$?" >"$statusfile.tmp" && mv "$statusfile.tmp" "$statusfile"
    ' keel-supervise "$pidfile" "$statusfile" "$log" "$@" </dev/null >/dev/null 2>&1 9>&- &
    local deadline=$((SECONDS + 10))
    while [[ ! -s "$pidfile" ]]; do
        ((SECONDS < deadline)) || keel_die "could not start $* (no pid after 10 s)"
        sleep 0.05
    done
}

# SIGTERM, then SIGKILL after grace seconds. Prints the exit status the supervisor recorded
# (alone on its line: tests read it) and returns it; 0 is a clean stop.
stop_pid() {
    local label=$1 pid=$2 grace=$3 statusfile=$4 st
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$grace"; then
        keel_warn "$label did not stop within ${grace}s of SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || keel_die "$label (pid $pid) survives SIGKILL"
    fi
    st="$(read_status "$statusfile")"
    echo "$st"
    [[ "$st" =~ ^[0-9]+$ ]] || return 1
    return "$st"
}

read_status() {
    local f=$1 deadline=$((SECONDS + 5))
    while [[ ! -s "$f" ]]; do
        if ((SECONDS >= deadline)); then
            echo unknown
            return 0
        fi
        sleep 0.05
    done
    cat "$f"
}

http_ok() { "${IN_NS[@]}" curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

lock_state() {
    mkdir -p "$STATE"
    exec 9>"$STATE/.lock"
    flock -w 300 9 || keel_die "another stack.sh holds $STATE/.lock for more than 300 s"
}

# Writes stdin to a file atomically with the given mode.
write_file() {
    local f=$1 mode=$2 tmp
    tmp="$(mktemp "$f.XXXXXX")"
    cat >"$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$f"
}

# A libpq URL query value: percent-encode everything but unreserved characters.
uri_escape() { jq -rn --arg s "$1" '$s|@uri'; }

new_secret() { openssl rand -hex 24; }

# A secret file that survives restarts: created once, 0600.
ensure_secret() {
    local f=$1
    if [[ ! -s "$f" ]]; then new_secret | write_file "$f" 0600; fi
    chmod 0600 "$f"
}

resolve_bin_dir() {
    if [[ -z "${KEEL_BIN_DIR:-}" && -f "$STATE/stack.env" ]]; then
        KEEL_BIN_DIR="$(sed -n "s/^KEEL_BIN_DIR='\(.*\)'$/\1/p" "$STATE/stack.env")"
    fi
    if [[ -n "${KEEL_BIN_DIR:-}" ]]; then
        KEEL_BIN_DIR="$(cd "$KEEL_BIN_DIR" 2>/dev/null && pwd)" ||
            keel_die "KEEL_BIN_DIR does not exist; build first (make build) or point it at <build>/bin"
    fi
}

need_bin() {
    [[ -n "${KEEL_BIN_DIR:-}" ]] || keel_die "set KEEL_BIN_DIR to the folder holding the keel binaries (<build>/bin)"
    [[ -x "$KEEL_BIN_DIR/$1" ]] || keel_die "$KEEL_BIN_DIR/$1 is missing; build it first (make build)"
}

# ---- PostgreSQL ----------------------------------------------------------------------------
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
IS_ROOT=0
((EUID == 0)) && IS_ROOT=1

# Runs a PostgreSQL server program as the cluster's owner: `postgres` when we are root
# (the server refuses to run as root), else ourselves. From / so a 0700 working
# directory of root's does not trouble it.
as_pg() {
    if ((IS_ROOT)); then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# Where the cluster lives. Normally .keel/<stack>/pg; when the postgres user cannot reach
# it (a repo under root's 0700 home) or the socket path would be too long for a Unix
# socket, /var/tmp/keel-<stack>-<hash of the repo path>. The choice is recorded once.
pg_root() {
    local rec="$STATE/pg.location"
    if [[ -s "$rec" ]]; then
        cat "$rec"
        return
    fi
    local dir="$STATE/pg" sock_len
    mkdir -p "$dir"
    chmod 0700 "$dir"
    local ok=1
    if ((IS_ROOT)); then
        getent passwd postgres >/dev/null ||
            keel_die "running as root needs the 'postgres' system user (apt-get install postgresql creates it)"
        chown postgres:postgres "$dir"
        runuser -u postgres -- test -w "$dir/." -a -x "$dir" 2>/dev/null || ok=0
    fi
    sock_len=$(printf '%s/run/.s.PGSQL.%s' "$dir" "$PG_PORT" | wc -c)
    ((sock_len < 100)) || ok=0
    if ((!ok)); then
        rmdir "$dir" 2>/dev/null || true
        dir="/var/tmp/keel-$STACK-$(printf '%s' "$KEEL_REPO" | sha256sum | cut -c1-12)"
        mkdir -p "$dir"
        chmod 0700 "$dir"
        ((IS_ROOT)) && chown postgres:postgres "$dir"
    fi
    printf '%s\n' "$dir" | write_file "$rec" 0644
    printf '%s\n' "$dir"
}

pg_vars() {
    PG_ROOT="$(pg_root)"
    PG_DATA="$PG_ROOT/data"
    PG_SOCK="$PG_ROOT/run"
    PG_LOG="$PG_ROOT/postgresql.log"
}

pg_running() { [[ -f "$PG_DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

# Superuser psql over the socket (trust for `postgres` only, see pg_hba.conf below).
psql_su() {
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres "$@"
}

pg_su_url() { echo "postgresql:///$1?host=$(uri_escape "$PG_SOCK")&port=$PG_PORT&user=postgres"; }

pg_write_conf() {
    local f=$1
    write_file "$f" 0600
    ((IS_ROOT)) && chown postgres:postgres "$f"
    return 0
}

pg_init() {
    if [[ -f "$PG_DATA/PG_VERSION" ]]; then return 0; fi
    [[ -n "$PG_BIN" && -x "$PG_BIN/initdb" ]] ||
        keel_die "no PostgreSQL server under /usr/lib/postgresql/*/bin (run deploy/install-deps.sh)"
    say "initdb into $PG_DATA"
    mkdir -p "$STATE/logs"
    # --data-checksums: a torn or corrupted page is reported instead of read silently.
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale --data-checksums \
        --auth-local=trust --auth-host=scram-sha-256 >"$STATE/logs/initdb.log" 2>&1; then
        fail_with_log "$STATE/logs/initdb.log" "initdb failed"
    fi
    echo "include 'keel.conf'" >>"$PG_DATA/postgresql.conf"
}

pg_configure() {
    mkdir -p "$PG_SOCK"
    chmod 0700 "$PG_SOCK"
    ((IS_ROOT)) && chown postgres:postgres "$PG_SOCK"
    # Rewritten on every up so a changed port base takes effect; durability settings are
    # spelled out because surviving a kill -9 is what the stack is for.
    pg_write_conf "$PG_DATA/keel.conf" <<EOF
# Written by deploy/local/stack.sh on every up; edits are lost.
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCK'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 64MB
fsync = on
synchronous_commit = on
full_page_writes = on
wal_level = replica
password_encryption = 'scram-sha-256'
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
EOF
    # The superuser only through the socket (trust: only this user can open it); service
    # roles only over TCP with a password and only into the database of their own name.
    # CONNECT grants (pg_ensure_roles) say the same a second time.
    pg_write_conf "$PG_DATA/pg_hba.conf" <<'EOF'
# Written by deploy/local/stack.sh on every up; edits are lost.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
local   all       all                      reject
host    all       postgres  127.0.0.1/32   reject
host    sameuser  all       127.0.0.1/32   scram-sha-256
EOF
}

pg_start() {
    pg_vars
    pg_init
    pg_configure
    ln -sfn "$PG_LOG" "$STATE/logs/postgresql.log"
    if pg_running; then
        say "postgresql already running on 127.0.0.1:$PG_PORT"
        return 0
    fi
    require_free_port "$PG_PORT" PostgreSQL
    # setsid: the postmaster must not share the caller's process group (a Ctrl-C in the
    # terminal would stop it); CLOSEFDS: nor inherit the stack lock or the caller's pipes.
    if ! as_pg setsid -w bash -c "$CLOSEFDS"'; exec "$@"' pg-start "$PG_BIN/pg_ctl" -D "$PG_DATA" \
        -l "$PG_LOG" -w -t 60 start >"$STATE/logs/pg_ctl.log" 2>&1; then
        show_tail "$STATE/logs/pg_ctl.log" 20
        fail_with_log "$PG_LOG" "PostgreSQL did not start on port $PG_PORT"
    fi
    say "postgresql on 127.0.0.1:$PG_PORT (data in $PG_DATA)"
}

# Stops with -m fast (clients disconnected, checkpoint); `immediate` simulates a crash.
pg_stop() {
    local mode=${1:-fast}
    pg_vars
    if ! pg_running; then return 0; fi
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m "$mode" -w -t 60 stop >"$STATE/logs/pg_ctl.log" 2>&1; then
        show_tail "$STATE/logs/pg_ctl.log" 20
        keel_warn "pg_ctl stop -m $mode failed"
        return 1
    fi
    echo 0
}

sql_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# One login role and one database per service; the role reaches only its own database.
pg_ensure_roles() {
    local svc role pw exists
    psql_su -d postgres -c "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC" >/dev/null
    for svc in "${DB_SERVICES[@]}"; do
        role="keel_${svc//-/_}"
        ensure_secret "$STATE/secrets/$svc.db-password"
        pw="$(cat "$STATE/secrets/$svc.db-password")"
        exists="$(psql_su -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$role'")"
        # The password goes through stdin, never the command line.
        if [[ "$exists" != 1 ]]; then
            psql_su -d postgres >/dev/null <<EOF
CREATE ROLE $role LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD $(sql_quote "$pw");
EOF
        else
            psql_su -d postgres >/dev/null <<EOF
ALTER ROLE $role LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD $(sql_quote "$pw");
EOF
        fi
        exists="$(psql_su -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$role'")"
        if [[ "$exists" != 1 ]]; then
            psql_su -d postgres -c "CREATE DATABASE $role OWNER $role" >/dev/null
        fi
        psql_su -d postgres >/dev/null <<EOF
REVOKE ALL ON DATABASE $role FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE $role TO $role;
EOF
    done
    pg_check_isolation
}

# Proves the isolation on every up: each role gets into its own database and into no other.
pg_check_isolation() {
    local svc other role pw
    for svc in "${DB_SERVICES[@]}"; do
        role="keel_${svc//-/_}"
        pw="$(cat "$STATE/secrets/$svc.db-password")"
        PGPASSWORD="$pw" PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U "$role" \
            -d "$role" -tAc "SELECT 1" >/dev/null 2>"$STATE/logs/pg-check.log" ||
            fail_with_log "$STATE/logs/pg-check.log" "role $role cannot log in to database $role"
        for other in postgres "${DB_SERVICES[@]}"; do
            [[ "$other" == "$svc" ]] && continue
            [[ "$other" == postgres ]] || other="keel_${other//-/_}"
            if PGPASSWORD="$pw" PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$PG_PORT" \
                -U "$role" -d "$other" -tAc "SELECT 1" >/dev/null 2>&1; then
                keel_die "role $role can connect to database $other; the isolation is broken"
            fi
            if [[ "$(psql_su -d postgres -tAc "SELECT has_database_privilege('$role', '$other', 'CONNECT')")" != f ]]; then
                keel_die "role $role holds CONNECT on database $other; the isolation is broken"
            fi
        done
    done
}

# ---- Kafka ---------------------------------------------------------------------------------
# A fixed cluster id per stack (a formatted log dir remembers it): 16 bytes from the stack
# name, in Kafka's URL-safe base64 form.
# An id that starts with '-' would be read as an option by the storage tool's parser, so its
# first character is replaced (any 22 base64 characters are a valid 16-byte id).
kafka_cluster_id() {
    local id
    id="$(printf 'keel-%s' "$STACK" | openssl dgst -sha256 -binary | head -c 16 | base64 | tr '+/' '-_' | tr -d '=')"
    [[ "$id" == -* ]] && id="A${id:1}"
    echo "$id"
}

kafka_dir() { echo "$STATE/kafka-$1"; }

kafka_write_config() {
    local n=$1 dir voters="" i rf=1 isr=1
    dir="$(kafka_dir "$n")"
    mkdir -p "$dir/data" "$STATE/tmp"
    for ((i = 1; i <= KAFKA_NODES; i++)); do voters+="${voters:+,}$i@127.0.0.1:$(kafka_ctrl_port "$i")"; done
    if ((KAFKA_NODES == 3)); then
        rf=3
        isr=2
    fi
    write_file "$dir/server.properties" 0644 <<EOF
# Written by deploy/local/stack.sh on every up; edits are lost. Single-process KRaft:
# this node is broker and controller; static quorum.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$n"),CONTROLLER://127.0.0.1:$(kafka_ctrl_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
# Topics are created on purpose (keelctl topics ensure), each with its DLQ twin.
auto.create.topics.enable=false
num.partitions=$TOPIC_PARTITIONS
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
unclean.leader.election.enable=false
# After a kill -9 the restarted broker cannot register until the controller expires its
# previous incarnation (DUPLICATE_BROKER_REGISTRATION); the 9 s default made every crash
# test wait about 13 s.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=1000
# No 3 s pause before the first consumer group forms.
group.initial.rebalance.delay.ms=0
# The default reserves 128 MiB of heap for compaction we barely use.
log.cleaner.dedupe.buffer.size=2097152
# Seven days: consumers' inbox retention must be at least this long.
log.retention.hours=168
EOF
    write_file "$dir/log4j.properties" 0644 <<'EOF'
# Broker logging: to stdout, which stack.sh appends to logs/kafka-<n>.log.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
    write_file "$dir/log4j-tools.properties" 0644 <<'EOF'
# The storage tool's logging: warnings only, so its output stays readable.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

kafka_lib() {
    keel_kafka_jars_ok || keel_die "Kafka's jars are not in $(keel_kafka_lib_dir); run deploy/install-deps.sh"
    keel_kafka_lib_dir
}

kafka_pid() { pid_of "$STATE/run/kafka-$1.pid" "$(kafka_dir "$1")/server.properties"; }

# Starts node n without waiting for it; kafka_wait does that.
kafka_spawn() {
    local n=$1 dir lib log
    dir="$(kafka_dir "$n")"
    log="$STATE/logs/kafka-$n.log"
    # Already running: kafka_wait still checks that it answers.
    kafka_pid "$n" >/dev/null && return 0
    require_free_port "$(kafka_port "$n")" "Kafka node $n"
    require_free_port "$(kafka_ctrl_port "$n")" "Kafka node $n controller"
    lib="$(kafka_lib)"
    kafka_write_config "$n"
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        if ! java -cp "$lib/*" -Dlog4j.configuration="file:$dir/log4j-tools.properties" \
            -Djava.io.tmpdir="$STATE/tmp" kafka.tools.StorageTool format \
            -t "$(kafka_cluster_id)" -c "$dir/server.properties" -g >>"$log" 2>&1; then
            fail_with_log "$log" "formatting Kafka node $n's log dir failed"
        fi
    fi
    # The flags of Kafka's own kafka-server-start.sh, with a smaller heap; java.io.tmpdir
    # inside the state folder because zstd-jni and snappy unpack native code there.
    spawn "$STATE/run/kafka-$n.pid" "$STATE/run/kafka-$n.status" "$log" \
        java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Djava.io.tmpdir="$STATE/tmp" -Dlog4j.configuration="file:$dir/log4j.properties" \
        -Dkafka.logs.dir="$STATE/logs" -cp "$lib/*" kafka.Kafka "$dir/server.properties"
}

# Waits until node n answers a metadata request on its own listener and lists itself.
kafka_wait() {
    local n=$1 timeout=${2:-90} deadline port pid
    port="$(kafka_port "$n")"
    deadline=$((SECONDS + timeout))
    while :; do
        pid="$(kafka_pid "$n")" || fail_with_log "$STATE/logs/kafka-$n.log" "Kafka node $n exited during start-up (status $(read_status "$STATE/run/kafka-$n.status"))"
        if kcat -b "127.0.0.1:$port" -L -J -m 3 2>/dev/null |
            jq -e --argjson id "$n" '.brokers | map(.id) | index($id) != null' >/dev/null 2>&1; then
            break
        fi
        ((SECONDS < deadline)) || fail_with_log "$STATE/logs/kafka-$n.log" "Kafka node $n gave no metadata on 127.0.0.1:$port within ${timeout}s"
        sleep 0.5
    done
    say "kafka node $n on 127.0.0.1:$port (pid $pid)"
}

kafka_start() {
    local n
    if [[ -n "$KAFKA_NODES_RECORDED" && "$KAFKA_NODES_RECORDED" != "$KAFKA_NODES" ]]; then
        keel_die "stack $STACK's Kafka was formatted with $KAFKA_NODES_RECORDED node(s); set KEEL_KAFKA_NODES=$KAFKA_NODES_RECORDED or run '$0 wipe' first"
    fi
    echo "$KAFKA_NODES" | write_file "$STATE/kafka.nodes" 0644
    for ((n = 1; n <= KAFKA_NODES; n++)); do kafka_spawn "$n"; done
    for ((n = 1; n <= KAFKA_NODES; n++)); do kafka_wait "$n"; done
}

# A JVM stopped by SIGTERM reports 143 after its shutdown hooks ran: that is Kafka's clean
# stop. Controlled shutdown takes a few seconds; 60 s before SIGKILL.
kafka_stop() {
    local n=$1 pid st=0
    if ! pid="$(kafka_pid "$n")"; then
        echo "kafka-$n is not running" >&2
        return 0
    fi
    stop_pid "kafka-$n" "$pid" 60 "$STATE/run/kafka-$n.status" >/dev/null || st=$?
    rm -f "$STATE/run/kafka-$n.pid"
    ((st == 143)) && st=0
    echo "$st"
    return "$st"
}

# Every node at once: stopped one after another, the last nodes of a 3-node cluster lose
# their controller quorum and hang in controlled shutdown until SIGKILL.
kafka_stop_all() {
    local n pid pids=() nodes=() st deadline
    for n in 1 2 3; do
        if pid="$(kafka_pid "$n")"; then
            pids+=("$pid")
            nodes+=("$n")
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    deadline=$((SECONDS + 60))
    for n in "${!pids[@]}"; do
        if ! wait_gone "${pids[$n]}" $((deadline - SECONDS > 0 ? deadline - SECONDS : 0)); then
            keel_warn "kafka-${nodes[$n]} did not stop within 60s of SIGTERM; sending SIGKILL"
            kill -KILL "${pids[$n]}" 2>/dev/null || true
            wait_gone "${pids[$n]}" 10 || keel_die "kafka-${nodes[$n]} (pid ${pids[$n]}) survives SIGKILL"
        fi
    done
    for n in "${nodes[@]}"; do
        st="$(read_status "$STATE/run/kafka-$n.status")"
        rm -f "$STATE/run/kafka-$n.pid"
        [[ "$st" == 143 ]] && st=0
        say "kafka-$n exit $st"
    done
}

kafka_kill() {
    local n=$1 pid
    pid="$(kafka_pid "$n")" || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || keel_die "kafka-$n (pid $pid) survives SIGKILL"
    rm -f "$STATE/run/kafka-$n.pid"
}

topics_ensure() {
    if [[ -z "${KEEL_BIN_DIR:-}" || ! -x "$KEEL_BIN_DIR/keelctl" ]]; then
        if ((ONLY_INFRA)); then
            keel_warn "no keelctl in KEEL_BIN_DIR='${KEEL_BIN_DIR:-}': topics not created"
            return 0
        fi
        need_bin keelctl
    fi
    # Three nodes: every record on all three, acknowledged by at least two (one node may die).
    local -a layout=()
    ((KAFKA_NODES == 3)) && layout=(--replication-factor 3 --min-insync-replicas 2)
    if ! tool_env timeout 60 "$KEEL_BIN_DIR/keelctl" topics ensure "${layout[@]}" >>"$STATE/logs/keelctl.log" 2>&1; then
        fail_with_log "$STATE/logs/keelctl.log" "keelctl topics ensure failed"
    fi
    say "topics ensured ($TOPIC_PARTITIONS partitions each, with .dlq twins${layout:+, replication factor 3, min.insync.replicas 2})"
}

# ---- Prometheus ----------------------------------------------------------------------------
prom_pid() { pid_of "$STATE/run/prometheus.pid" "$STATE/prometheus/prometheus.yml"; }

prom_write_config() {
    local jobs="" s
    mkdir -p "$STATE/prometheus/targets" "$STATE/prometheus/data"
    for s in "${SERVICES[@]}"; do
        jobs+="  - job_name: keel-$s
    file_sd_configs:
      - files: [\"$STATE/prometheus/targets/$s-*.json\"]
        refresh_interval: 5s
"
    done
    local tmpl="$KEEL_REPO/deploy/prometheus/prometheus.local.yml.in"
    awk -v jobs="$jobs" -v stack="$STACK" -v port="$PROM_PORT" \
        -v rules="$KEEL_REPO/deploy/prometheus/alerts.yml" '
        /^@KEEL_JOBS@$/ { printf "%s", jobs; next }
        { gsub(/@STACK@/, stack); gsub(/@PROMETHEUS_PORT@/, port); gsub(/@RULES@/, rules); print }
    ' "$tmpl" | write_file "$STATE/prometheus/prometheus.yml" 0644
    if command -v promtool >/dev/null; then
        promtool check config "$STATE/prometheus/prometheus.yml" >"$STATE/logs/promtool.log" 2>&1 ||
            fail_with_log "$STATE/logs/promtool.log" "the generated Prometheus configuration is invalid"
    fi
}

prom_start() {
    local log="$STATE/logs/prometheus.log" deadline pid
    prom_write_config
    if prom_pid >/dev/null; then
        say "prometheus already running on http://127.0.0.1:$PROM_PORT"
        return 0
    fi
    require_free_port "$PROM_PORT" Prometheus
    spawn "$STATE/run/prometheus.pid" "$STATE/run/prometheus.status" "$log" \
        prometheus --config.file="$STATE/prometheus/prometheus.yml" \
        --storage.tsdb.path="$STATE/prometheus/data" --storage.tsdb.retention.time=3d \
        --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn
    deadline=$((SECONDS + 30))
    until http_ok "http://127.0.0.1:$PROM_PORT/-/ready"; do
        prom_pid >/dev/null || fail_with_log "$log" "Prometheus exited during start-up"
        ((SECONDS < deadline)) || fail_with_log "$log" "Prometheus not ready on port $PROM_PORT within 30 s"
        sleep 0.2
    done
    pid="$(prom_pid)"
    say "prometheus on http://127.0.0.1:$PROM_PORT (pid $pid)"
}

prom_stop() {
    local pid
    pid="$(prom_pid)" || return 0
    stop_pid prometheus "$pid" 30 "$STATE/run/prometheus.status" || true
    rm -f "$STATE/run/prometheus.pid"
}

# ---- keel services -------------------------------------------------------------------------
svc_name() {
    local n=${1#keel-}
    [[ -n "${SVC_PORT[$n]:-}" ]] || keel_die "unknown service '$1' (known: ${SERVICES[*]} postgres kafka prometheus)"
    echo "$n"
}

svc_db_url() { echo "postgresql://keel_${1//-/_}@127.0.0.1:$PG_PORT/keel_${1//-/_}"; }

# One env file per service: what it reads besides KEEL_INSTANCE_ID and, for instances after
# the first, KEEL_HTTP_PORT (start-service adds those). Plain KEY=value lines.
write_service_env() {
    local s=$1 f="$STATE/env/$1.env"
    {
        echo "KEEL_LOG_LEVEL=$LOG_LEVEL"
        echo "KEEL_HTTP_ADDRESS=127.0.0.1"
        echo "KEEL_HTTP_PORT=${SVC_PORT[$s]}"
        if [[ "${SVC_DB[$s]}" == db ]]; then
            echo "KEEL_DATABASE_URL=$(svc_db_url "$s")"
            echo "KEEL_DATABASE_PASSWORD_FILE=$STATE/secrets/$s.db-password"
        fi
        echo "KEEL_KAFKA_BROKERS=$KAFKA_BROKERS"
        case "$s" in
        payments)
            echo "KEEL_PAYMENTS_PROVIDER_URL=http://127.0.0.1:$PROVIDER_A_PORT"
            echo "KEEL_PAYMENTS_PROVIDER_API_KEY_FILE=$STATE/secrets/provider-sim.api-key"
            echo "KEEL_PAYMENTS_PROVIDER_B_URL=http://127.0.0.1:$PROVIDER_B_PORT"
            echo "KEEL_PAYMENTS_PROVIDER_B_API_KEY_FILE=$STATE/secrets/provider-sim.api-key"
            echo "KEEL_PAYMENTS_RISK_URL=http://127.0.0.1:$RISK_PORT"
            echo "KEEL_PAYMENTS_RISK_API_KEY_FILE=$STATE/secrets/provider-sim.api-key"
            echo "KEEL_PAYMENTS_ROUTES=default=provider_a,provider_b;ngn=provider_b,provider_a"
            if [[ "$STACK" != local ]]; then
                # Test stacks: provider trouble resolves in seconds (see docs/payments.md).
                echo "KEEL_PAYMENTS_PROVIDER_TIMEOUT_MS=1000"
                echo "KEEL_PAYMENTS_PROVIDER_CONNECT_TIMEOUT_MS=300"
                echo "KEEL_PAYMENTS_PROVIDER_BACKOFF_BASE_MS=50"
                echo "KEEL_PAYMENTS_PROVIDER_BACKOFF_CAP_MS=200"
                echo "KEEL_PAYMENTS_LEASE_MS=6000"
                echo "KEEL_PAYMENTS_UNKNOWN_DEADLINE_MS=4000"
                echo "KEEL_PAYMENTS_RISK_TIMEOUT_MS=300"
                echo "KEEL_PAYMENTS_BREAKER_OPEN_MS=1500"
                echo "KEEL_PAYMENTS_REFUND_WAIT_RETRIES=4"
            fi
            ;;
        gateway)
            # The balance endpoints proxy the ledger (started before the gateway).
            echo "KEEL_GATEWAY_LEDGER_URL=http://127.0.0.1:${SVC_PORT[ledger]}"
            # /v1/webhook_endpoints proxies the notifier's internal API with a shared token.
            echo "KEEL_GATEWAY_NOTIFIER_URL=http://127.0.0.1:${SVC_PORT[notifier]}"
            echo "KEEL_NOTIFIER_INTERNAL_TOKEN_FILE=$STATE/secrets/notifier.internal-token"
            ;;
        notifier)
            echo "KEEL_NOTIFIER_INTERNAL_TOKEN_FILE=$STATE/secrets/notifier.internal-token"
            # Local receivers (tests, a developer's own) listen on loopback over plain http;
            # production allows neither.
            echo "KEEL_NOTIFIER_ALLOW_CIDRS=127.0.0.0/8,::1/128"
            echo "KEEL_NOTIFIER_ALLOW_HTTP=true"
            if [[ "$STACK" != local ]]; then
                # Test stacks: retries over seconds instead of three days.
                echo "KEEL_NOTIFIER_RETRY_SCHEDULE=200ms,400ms,800ms,1600ms,2400ms,3s"
                echo "KEEL_NOTIFIER_POLL_MS=200"
                echo "KEEL_NOTIFIER_METRICS_INTERVAL_MS=500"
                echo "KEEL_NOTIFIER_DELIVERY_TIMEOUT_MS=3000"
                echo "KEEL_NOTIFIER_LEASE_MS=8000"
            fi
            ;;
        provider-sim)
            echo "KEEL_SIM_PROVIDER_A_PORT=$PROVIDER_A_PORT"
            echo "KEEL_SIM_PROVIDER_B_PORT=$PROVIDER_B_PORT"
            echo "KEEL_SIM_RISK_PORT=$RISK_PORT"
            echo "KEEL_SIM_API_KEY_FILE=$STATE/secrets/provider-sim.api-key"
            ;;
        esac
    } | write_file "$f" 0644
}

write_env_files() {
    local s
    mkdir -p "$STATE/env" "$STATE/secrets"
    chmod 0700 "$STATE/secrets"
    ensure_secret "$STATE/secrets/provider-sim.api-key"
    ensure_secret "$STATE/secrets/notifier.internal-token"
    for s in "${SERVICES[@]}"; do write_service_env "$s"; done
    # keelctl's merchant and apikey commands work on the gateway database.
    {
        echo "KEEL_LOG_LEVEL=warn"
        echo "KEEL_DATABASE_URL=$(svc_db_url gateway)"
        echo "KEEL_DATABASE_PASSWORD_FILE=$STATE/secrets/gateway.db-password"
        # keelctl audit checks the ledger's books in its own database.
        echo "KEEL_LEDGER_DATABASE_URL=$(svc_db_url ledger)"
        echo "KEEL_LEDGER_DATABASE_PASSWORD_FILE=$STATE/secrets/ledger.db-password"
        # keelctl deliveries lists and replays webhook deliveries in the notifier's database.
        echo "KEEL_NOTIFIER_DATABASE_URL=$(svc_db_url notifier)"
        echo "KEEL_NOTIFIER_DATABASE_PASSWORD_FILE=$STATE/secrets/notifier.db-password"
        echo "KEEL_KAFKA_BROKERS=$KAFKA_BROKERS"
        echo "KEEL_TOPIC_PARTITIONS=$TOPIC_PARTITIONS"
    } | write_file "$STATE/env/keelctl.env" 0644
}

# A clean environment for what we start: a few basics, the sanitizer settings of the
# caller (run-tests.sh sets them), then the given assignments. Nothing else leaks in, so a
# test's own KEEL_* variables never reach a service by accident.
base_env() {
    local v out=(PATH="/usr/local/bin:/usr/bin:/bin" HOME="${HOME:-/root}" TMPDIR="$STATE/tmp" TZ=UTC LANG=C.UTF-8)
    for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS ASAN_SYMBOLIZER_PATH LLVM_SYMBOLIZER_PATH; do
        [[ -n "${!v:-}" ]] && out+=("$v=${!v}")
    done
    printf '%s\0' "${out[@]}"
}

read_env_file() { grep -v '^[[:space:]]*\(#\|$\)' "$1" | tr '\n' '\0'; }

# Runs a tool (keelctl) with env/keelctl.env.
tool_env() {
    local -a envs
    mapfile -d '' envs < <(base_env)
    mapfile -d '' -O "${#envs[@]}" envs < <(read_env_file "$STATE/env/keelctl.env")
    env -i "${envs[@]}" "$@"
}

svc_pid() { pid_of "$STATE/run/$1-$2.pid" "keel-$1"; }

svc_target_file() { echo "$STATE/prometheus/targets/$1-$2.json"; }

svc_start() {
    local name=$1 inst=$2 port log pid deadline bin
    shift 2
    port="$(service_port "$name" "$inst")"
    log="$STATE/logs/$name-$inst.log"
    if pid="$(svc_pid "$name" "$inst")"; then
        say "$name-$inst already running (pid $pid) on http://127.0.0.1:$port"
        return 0
    fi
    [[ -f "$STATE/env/$name.env" ]] || keel_die "$STATE/env/$name.env is missing; run '$0 up' first"
    need_bin "keel-$name"
    bin="$KEEL_BIN_DIR/keel-$name"
    local -a envs
    mapfile -d '' envs < <(base_env)
    mapfile -d '' -O "${#envs[@]}" envs < <(read_env_file "$STATE/env/$name.env")
    envs+=("KEEL_INSTANCE_ID=$name-$inst" "KEEL_HTTP_PORT=$port")
    local a
    for a in "$@"; do
        [[ "$a" =~ ^[A-Z_][A-Z0-9_]*= ]] || keel_die "override '$a' is not VAR=value"
        envs+=("$a")
    done
    # The port that counts is the last KEEL_HTTP_PORT given (an override may move it).
    for a in "${envs[@]}"; do [[ "$a" == KEEL_HTTP_PORT=* ]] && port="${a#KEEL_HTTP_PORT=}"; done
    require_free_port "$port" "$name-$inst"
    mkdir -p "$STATE/tmp" "$STATE/run" "$STATE/logs"
    printf '%s start %s\n' "$(date -u +%FT%TZ)" "$name-$inst" >>"$log"
    spawn "$STATE/run/$name-$inst.pid" "$STATE/run/$name-$inst.status" "$log" "${IN_NS[@]}" env -i "${envs[@]}" "$bin"
    printf '[{"targets":["127.0.0.1:%s"],"labels":{"keel_instance":"%s-%s"}}]\n' "$port" "$name" "$inst" |
        write_file "$(svc_target_file "$name" "$inst")" 0644
    deadline=$((SECONDS + 60))
    until http_ok "http://127.0.0.1:$port/readyz"; do
        if ! svc_pid "$name" "$inst" >/dev/null; then
            fail_with_log "$log" "$name-$inst exited during start-up (status $(read_status "$STATE/run/$name-$inst.status"))"
        fi
        ((SECONDS < deadline)) || fail_with_log "$log" "$name-$inst not ready on http://127.0.0.1:$port/readyz within 60 s"
        sleep 0.2
    done
    say "$name-$inst ready on http://127.0.0.1:$port (pid $(svc_pid "$name" "$inst"))"
}

# Prints the exit status and returns it (0 = clean stop). One that is not running (never
# started, killed earlier) prints nothing on stdout and returns 0.
svc_stop() {
    local name=$1 inst=$2 pid st=0
    rm -f "$(svc_target_file "$name" "$inst")"
    if ! pid="$(svc_pid "$name" "$inst")"; then
        echo "$name-$inst is not running" >&2
        rm -f "$STATE/run/$name-$inst.pid"
        return 0
    fi
    stop_pid "$name-$inst" "$pid" 15 "$STATE/run/$name-$inst.status" || st=$?
    rm -f "$STATE/run/$name-$inst.pid"
    return "$st"
}

svc_kill() {
    local name=$1 inst=$2 pid
    pid="$(svc_pid "$name" "$inst")" || {
        echo "$name-$inst not running"
        return 0
    }
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || keel_die "$name-$inst (pid $pid) survives SIGKILL"
    echo "$name-$inst killed"
}

# Every instance with a pid file, so `down` also stops instances a test started.
svc_instances() {
    local f b
    for f in "$STATE/run/$1"-*.pid; do
        [[ -e "$f" ]] || continue
        b="$(basename "$f" .pid)"
        b="${b#"$1"-}"
        [[ "$b" =~ ^[0-9]+$ ]] && echo "$b"
    done
}

# ---- the demo merchant and the env files people source -------------------------------------
DEMO_MERCHANT_ID=""
DEMO_API_KEY=""

demo_merchant() {
    local idf="$STATE/secrets/demo-merchant-id" keyf="$STATE/secrets/demo-api-key" out
    if [[ ! -s "$idf" ]]; then
        out="$(tool_env timeout 30 "$KEEL_BIN_DIR/keelctl" merchant create --name "Demo Merchant" 2>>"$STATE/logs/keelctl.log")" ||
            fail_with_log "$STATE/logs/keelctl.log" "keelctl merchant create failed"
        out="$(printf '%s\n' "$out" | sed '/^[[:space:]]*$/d' | tail -n1 | tr -d '[:space:]')"
        [[ -n "$out" ]] || fail_with_log "$STATE/logs/keelctl.log" "keelctl merchant create printed no merchant id"
        printf '%s\n' "$out" | write_file "$idf" 0600
    fi
    DEMO_MERCHANT_ID="$(cat "$idf")"
    if [[ ! -s "$keyf" ]]; then
        out="$(tool_env timeout 30 "$KEEL_BIN_DIR/keelctl" apikey create --merchant "$DEMO_MERCHANT_ID" 2>>"$STATE/logs/keelctl.log")" ||
            fail_with_log "$STATE/logs/keelctl.log" "keelctl apikey create --merchant $DEMO_MERCHANT_ID failed"
        out="$(printf '%s\n' "$out" | sed '/^[[:space:]]*$/d' | tail -n1 | tr -d '[:space:]')"
        [[ -n "$out" ]] || fail_with_log "$STATE/logs/keelctl.log" "keelctl apikey create printed no key"
        printf '%s\n' "$out" | write_file "$keyf" 0600
    fi
    DEMO_API_KEY="$(cat "$keyf")"
}

shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

write_stack_env() {
    local s var
    pg_vars
    {
        echo "# Written by deploy/local/stack.sh up; source it (set -a; . stack.env) to reach stack '$STACK'."
        echo "KEEL_STACK=$(shq "$STACK")"
        echo "KEEL_STATE_DIR=$(shq "$STATE")"
        echo "KEEL_STACK_SCRIPT=$(shq "$KEEL_REPO/deploy/local/stack.sh")"
        echo "KEEL_BIN_DIR=$(shq "${KEEL_BIN_DIR:-}")"
        echo "KEEL_PORT_BASE=$(shq "$BASE")"
        echo "KEEL_PG_PORT=$(shq "$PG_PORT")"
        echo "KEEL_PG_SOCKET_DIR=$(shq "$PG_SOCK")"
        echo "KEEL_PG_SUPERUSER_URL=$(shq "$(pg_su_url postgres)")"
        for s in "${DB_SERVICES[@]}"; do
            var="KEEL_$(echo "${s//-/_}" | tr '[:lower:]' '[:upper:]')_DB_URL"
            echo "$var=$(shq "$(pg_su_url "keel_${s//-/_}")")"
        done
        echo "KEEL_KAFKA_BROKERS=$(shq "$KAFKA_BROKERS")"
        echo "KEEL_TOPIC_PARTITIONS=$(shq "$TOPIC_PARTITIONS")"
        echo "KEEL_GATEWAY_URL=$(shq "http://127.0.0.1:${SVC_PORT[gateway]}")"
        echo "KEEL_GATEWAY2_URL=$(shq "http://127.0.0.1:$((SVC_PORT[gateway] + 1))")"
        echo "KEEL_PAYMENTS_URL=$(shq "http://127.0.0.1:${SVC_PORT[payments]}")"
        echo "KEEL_LEDGER_URL=$(shq "http://127.0.0.1:${SVC_PORT[ledger]}")"
        echo "KEEL_NOTIFIER_URL=$(shq "http://127.0.0.1:${SVC_PORT[notifier]}")"
        echo "KEEL_PROVIDER_SIM_URL=$(shq "http://127.0.0.1:${SVC_PORT[provider-sim]}")"
        echo "KEEL_PROVIDER_A_URL=$(shq "http://127.0.0.1:$PROVIDER_A_PORT")"
        echo "KEEL_PROVIDER_B_URL=$(shq "http://127.0.0.1:$PROVIDER_B_PORT")"
        echo "KEEL_RISK_URL=$(shq "http://127.0.0.1:$RISK_PORT")"
        echo "KEEL_PROMETHEUS_URL=$(shq "http://127.0.0.1:$PROM_PORT")"
        echo "KEEL_PROVIDER_API_KEY_FILE=$(shq "$STATE/secrets/provider-sim.api-key")"
        echo "KEEL_MERCHANT_ID=$(shq "$DEMO_MERCHANT_ID")"
        echo "KEEL_API_KEY=$(shq "$DEMO_API_KEY")"
    } | write_file "$STATE/stack.env" 0600
    if [[ "$STACK" == local ]]; then
        {
            echo "# Written by deploy/local/stack.sh up: the local stack's gateway and demo API key."
            echo "KEEL_GATEWAY_URL=$(shq "http://127.0.0.1:${SVC_PORT[gateway]}")"
            echo "KEEL_MERCHANT_ID=$(shq "$DEMO_MERCHANT_ID")"
            echo "KEEL_API_KEY=$(shq "$DEMO_API_KEY")"
        } | write_file "$KEEL_REPO/.keel/local.env" 0600
    fi
}

print_summary() {
    local gw="http://127.0.0.1:${SVC_PORT[gateway]}"
    echo
    if ((ONLY_INFRA)); then
        echo "stack $STACK: infrastructure up (KEEL_STACK_ONLY_INFRA=1: no keel services)"
        echo "  PostgreSQL  $(pg_su_url postgres)"
        echo "  Kafka       $KAFKA_BROKERS"
        echo "  Prometheus  http://127.0.0.1:$PROM_PORT"
        echo "  env         $STATE/stack.env"
        return
    fi
    local key_shown=$DEMO_API_KEY
    # Test and CI stacks keep even their throw-away key out of logs.
    local key_curl=$DEMO_API_KEY
    if [[ "${KEEL_STACK_HIDE_KEY:-0}" == 1 ]]; then
        key_shown="(KEEL_API_KEY in $STATE/stack.env)"
        key_curl='$KEEL_API_KEY'
    fi
    cat <<EOF
stack $STACK is up.
  gateway     $gw
  merchant    $DEMO_MERCHANT_ID
  API key     $key_shown
  Prometheus  http://127.0.0.1:$PROM_PORT
  logs        $STATE/logs/
  env         $STATE/stack.env

Try it:
  curl -sS -X POST $gw/v1/payments \\
    -H "Authorization: Bearer $key_curl" \\
    -H "Idempotency-Key: demo-\$(date +%s)" \\
    -H 'Content-Type: application/json' \\
    -d '{"amount":1999,"currency":"usd","description":"demo"}'
EOF
}

# ---- commands ------------------------------------------------------------------------------
cmd_up() {
    resolve_bin_dir
    if ((!ONLY_INFRA)); then
        # Check everything before starting anything.
        local s
        need_bin keelctl
        for s in "${SERVICES[@]}"; do need_bin "keel-$s"; done
    fi
    lock_state
    mkdir -p "$STATE"/{env,logs,run,secrets,tmp}
    chmod 0700 "$STATE/secrets"
    write_env_files
    pg_start
    pg_ensure_roles
    say "databases ${DB_SERVICES[*]/#/keel_} with their own roles (isolation checked)"
    kafka_start
    topics_ensure
    prom_start
    write_stack_env
    if ((!ONLY_INFRA)); then
        local s
        for s in "${SERVICES[@]}"; do svc_start "$s" 1; done
        demo_merchant
        write_stack_env
    fi
    print_summary
}

cmd_down() {
    if [[ ! -d "$STATE" ]]; then
        say "nothing to stop ($STATE does not exist)"
        return 0
    fi
    lock_state
    local i s rc=0 out
    # Services in reverse start order, every instance that has a pid file.
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        s="${SERVICES[$i]}"
        for inst in $(svc_instances "$s"); do
            out="$(svc_stop "$s" "$inst" 2>/dev/null)" || {
                rc=1
                keel_warn "$s-$inst exit $out (not a clean stop; see $STATE/logs/$s-$inst.log)"
                continue
            }
            [[ -n "$out" ]] && say "$s-$inst exit $out"
        done
    done
    # Forwarders and namespaces a test or chaos run left (deploy/local/netns.sh).
    if compgen -G "$STATE/run/ns-*" >/dev/null; then
        KEEL_STACK="$STACK" "$KEEL_REPO/deploy/local/netns.sh" clean || rc=1
    fi
    out="$(prom_stop)" || true
    [[ -n "$out" ]] && say "prometheus exit $out"
    kafka_stop_all
    if [[ -s "$STATE/pg.location" ]]; then
        out="$(pg_stop fast)" || rc=1
        [[ -n "$out" ]] && say "postgres exit $out"
    fi
    say "down"
    return "$rc"
}

cmd_status() {
    local s inst pid any=0
    if [[ ! -d "$STATE" ]]; then
        say "no state folder ($STATE)"
        return 3
    fi
    printf '%-16s %-12s %-8s %s\n' COMPONENT STATE PID ADDRESS
    if [[ -s "$STATE/pg.location" ]]; then
        pg_vars
        if pg_running; then
            pid="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || echo '?')"
            printf '%-16s %-12s %-8s %s\n' postgres running "$pid" "127.0.0.1:$PG_PORT"
            any=1
        else
            printf '%-16s %-12s %-8s %s\n' postgres stopped - "127.0.0.1:$PG_PORT"
        fi
    fi
    local n
    for ((n = 1; n <= 3; n++)); do
        [[ -d "$(kafka_dir "$n")" ]] || continue
        if pid="$(kafka_pid "$n")"; then
            printf '%-16s %-12s %-8s %s\n' "kafka-$n" running "$pid" "127.0.0.1:$(kafka_port "$n")"
            any=1
        else
            printf '%-16s %-12s %-8s %s\n' "kafka-$n" stopped - "127.0.0.1:$(kafka_port "$n")"
        fi
    done
    if pid="$(prom_pid)"; then
        printf '%-16s %-12s %-8s %s\n' prometheus running "$pid" "http://127.0.0.1:$PROM_PORT"
        any=1
    else
        printf '%-16s %-12s %-8s %s\n' prometheus stopped - "http://127.0.0.1:$PROM_PORT"
    fi
    for s in "${SERVICES[@]}"; do
        for inst in $(svc_instances "$s"); do
            if pid="$(svc_pid "$s" "$inst")"; then
                printf '%-16s %-12s %-8s %s\n' "$s-$inst" running "$pid" "http://127.0.0.1:$(service_port "$s" "$inst")"
                any=1
            else
                printf '%-16s %-12s %-8s %s\n' "$s-$inst" "exited($(cat "$STATE/run/$s-$inst.status" 2>/dev/null || echo '?'))" - "http://127.0.0.1:$(service_port "$s" "$inst")"
            fi
        done
    done
    ((any)) || return 3
}

# down, then remove the state folder (and the cluster when it lives under /var/tmp).
cmd_wipe() {
    cmd_down || true
    local root=""
    [[ -s "$STATE/pg.location" ]] && root="$(cat "$STATE/pg.location")"
    if [[ -n "$root" && "$root" == /var/tmp/keel-"$STACK"-* ]]; then rm -rf "$root"; fi
    rm -rf "$STATE"
    [[ "$STACK" == local ]] && rm -f "$KEEL_REPO/.keel/local.env"
    say "wiped"
}

cmd_start_service() {
    (($# >= 1)) || {
        usage >&2
        exit 2
    }
    local name=$1 inst=1
    shift
    if (($# >= 1)) && [[ "$1" =~ ^[0-9]+$ ]]; then
        inst=$1
        shift
    fi
    resolve_bin_dir
    lock_state
    case "$name" in
    postgres | postgresql) pg_start ;;
    kafka)
        ((inst <= KAFKA_NODES)) || keel_die "kafka node $inst: this stack has $KAFKA_NODES node(s)"
        kafka_spawn "$inst"
        kafka_wait "$inst"
        ;;
    prometheus) prom_start ;;
    *)
        name="$(svc_name "$name")"
        svc_start "$name" "$inst" "$@"
        ;;
    esac
}

cmd_stop_service() {
    (($# >= 1)) || {
        usage >&2
        exit 2
    }
    local name=$1 inst=${2:-1}
    lock_state
    case "$name" in
    postgres | postgresql) pg_stop fast ;;
    kafka) kafka_stop "$inst" ;;
    prometheus) prom_stop ;;
    *)
        name="$(svc_name "$name")"
        svc_stop "$name" "$inst"
        ;;
    esac
}

cmd_kill_service() {
    (($# >= 1)) || {
        usage >&2
        exit 2
    }
    local name=$1 inst=${2:-1}
    lock_state
    case "$name" in
    # The postmaster's crash equivalent: no shutdown checkpoint, WAL recovery on restart.
    postgres | postgresql) pg_stop immediate >/dev/null && echo "postgres killed" ;;
    kafka) kafka_kill "$inst" && echo "kafka-$inst killed" ;;
    prometheus)
        local pid
        pid="$(prom_pid)" || return 0
        kill -KILL "$pid"
        wait_gone "$pid" 10
        ;;
    *)
        name="$(svc_name "$name")"
        svc_kill "$name" "$inst"
        ;;
    esac
}

main() {
    local cmd=${1:-}
    (($#)) && shift
    case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    wipe) cmd_wipe "$@" ;;
    start-service) cmd_start_service "$@" ;;
    stop-service) cmd_stop_service "$@" ;;
    kill-service) cmd_kill_service "$@" ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
