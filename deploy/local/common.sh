# Shell helpers shared by deploy/install-deps.sh, deploy/local/stack.sh and deploy/run-tests.sh (sourced, not run).

# The repository root, whatever the caller's working directory.
KEEL_REPO="${KEEL_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
KEEL_CACHE="${KEEL_CACHE:-${HOME:-/root}/.cache/keel}"
KEEL_KAFKA_POM="$KEEL_REPO/deploy/local/kafka/pom.xml"

keel_say() { printf '%s\n' "$*"; }
keel_warn() { printf 'warning: %s\n' "$*" >&2; }
keel_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The Kafka version pinned in the pom, so the cache folder follows the pom when it changes.
keel_kafka_version() {
    local v
    v="$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$KEEL_KAFKA_POM" | head -n1)"
    [[ -n "$v" ]] || keel_die "no <kafka.version> in $KEEL_KAFKA_POM"
    printf '%s\n' "$v"
}

# Folder holding every broker jar (filled by install-deps.sh).
keel_kafka_lib_dir() { printf '%s/kafka-%s/lib\n' "$KEEL_CACHE" "$(keel_kafka_version)"; }

# The stamp records the pom's checksum: editing the pom refetches the jars.
keel_kafka_stamp() { printf '%s/kafka-%s/complete\n' "$KEEL_CACHE" "$(keel_kafka_version)"; }
keel_kafka_pom_sum() { sha256sum "$KEEL_KAFKA_POM" | cut -d' ' -f1; }
keel_kafka_jars_ok() {
    local stamp
    stamp="$(keel_kafka_stamp)"
    [[ -f "$stamp" && "$(cat "$stamp")" == "$(keel_kafka_pom_sum)" &&
        -f "$(keel_kafka_lib_dir)/kafka_2.13-$(keel_kafka_version).jar" ]]
}
