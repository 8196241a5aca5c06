#!/usr/bin/env bash
# Runs every test (unit and integration) against a fresh test stack (.keel/test, ports 28xxx) and always stops it again.
set -euo pipefail

# shellcheck source=deploy/local/common.sh
. "$(dirname "$0")/local/common.sh"

if (($# != 1)); then
    echo "usage: $0 <build-dir>   (a build configured with -DKEEL_SANITIZE=ON, e.g. build-test)" >&2
    exit 2
fi
BUILD="$(cd "$1" 2>/dev/null && pwd)" || keel_die "build folder '$1' does not exist; run make build-test first"
[[ -d "$BUILD/bin" ]] || keel_die "$BUILD/bin does not exist; run make build-test first"

# KEEL_TEST_STACK / KEEL_PORT_BASE let several developers' test stacks share one machine.
export KEEL_STACK="${KEEL_TEST_STACK:-test}"
export KEEL_BIN_DIR="$BUILD/bin"
# Everything started from here (the stack's services too) stops at the first leak or UB.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The test stack's demo API key stays in its stack.env, out of the CI log.
export KEEL_STACK_HIDE_KEY=1
STACK_SH="$KEEL_REPO/deploy/local/stack.sh"
STATE="$KEEL_REPO/.keel/$KEEL_STACK"

print_logs() {
    local f n
    for f in "$STATE"/logs/*.log; do
        [[ -e "$f" ]] || continue
        case "$(basename "$f")" in
        kafka-* | postgresql.log | prometheus.log | initdb.log) n=15 ;;
        *) n=60 ;;
        esac
        printf '\n===== last %d lines of %s =====\n' "$n" "$f"
        tail -n "$n" "$f" || true
    done
}

# Always stop the stack; keep ctest's exit status. A service that does not stop cleanly
# (an ASan leak report at exit, a crash during shutdown) fails the run too.
finish() {
    local rc=$? down_rc=0
    trap - EXIT INT TERM
    echo "run-tests: stopping the test stack"
    "$STACK_SH" down || down_rc=$?
    if ((rc == 0 && down_rc != 0)); then
        echo "run-tests: tests passed but a component did not stop cleanly (see the warnings above)" >&2
        rc=1
    fi
    if ((rc != 0)); then
        print_logs
        echo "run-tests: FAILED (exit $rc); logs in $STATE/logs/" >&2
    fi
    exit "$rc"
}

# A run that was aborted earlier may have left the stack running.
"$STACK_SH" down >/dev/null 2>&1 || true
"$STACK_SH" wipe >/dev/null
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$STACK_SH" up
set -a
# shellcheck source=/dev/null
. "$STATE/stack.env"
set +a

# A scratch database for tests that need a real server but none of the services' databases.
psql -X -q -v ON_ERROR_STOP=1 "$KEEL_PG_SUPERUSER_URL" -c "CREATE DATABASE keel_unit" >/dev/null
export KEEL_TEST_DATABASE_URL="${KEEL_PG_SUPERUSER_URL/#postgresql:\/\/\/postgres/postgresql:///keel_unit}"
export KEEL_TEST_KAFKA_BROKERS="$KEEL_KAFKA_BROKERS"
psql -X -q "$KEEL_TEST_DATABASE_URL" -tAc "SELECT 1" >/dev/null ||
    keel_die "cannot reach the scratch database at $KEEL_TEST_DATABASE_URL"

echo "run-tests: ctest in $BUILD"
# ctest runs in its own session so that an interrupt or a CI timeout (SIGTERM to this
# script) stops it and every test it started at once, instead of after the running test.
# KEEL_CTEST_ARGS (e.g. "-R integration.2") narrows a developer's run; CI leaves it empty.
# shellcheck disable=SC2086
setsid ctest --test-dir "$BUILD" --output-on-failure -j2 ${KEEL_CTEST_ARGS:-} &
CTEST_PID=$!
trap 'kill -TERM -- -"$CTEST_PID" 2>/dev/null; exit 130' INT
trap 'kill -TERM -- -"$CTEST_PID" 2>/dev/null; exit 143' TERM
CTEST_RC=0
wait "$CTEST_PID" || CTEST_RC=$?
# ctest shows a passing test's output only on failure; the chaos run's figures table (faults,
# outcomes, every invariant's count) belongs in the log either way.
for figures in "$KEEL_REPO"/results/chaos-*/figures.txt; do
    if [[ -f "$figures" && "$figures" -nt "$STATE/stack.env" ]]; then
        echo "run-tests: figures of the chaos run in $(dirname "$figures")"
        cat "$figures"
    fi
done
exit "$CTEST_RC"
