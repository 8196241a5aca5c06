#!/usr/bin/env bash
# Installs the Debian packages keel builds and runs with, and fetches Kafka's broker jars from Maven Central; safe to rerun.
set -euo pipefail

# shellcheck source=deploy/local/common.sh
. "$(dirname "$0")/local/common.sh"

# One list for the build, the local stack and the tests. Keep it in step with the build
# stage of deploy/Dockerfile.
PACKAGES=(
    build-essential cmake pkg-config
    librdkafka-dev libprotobuf-c-dev protobuf-c-compiler libmicrohttpd-dev libpq-dev
    libcurl4-openssl-dev libssl-dev libjansson-dev libcmocka-dev
    postgresql postgresql-contrib prometheus maven default-jre-headless
    kcat jq curl clang-format python3-yaml procps iproute2 openssl gnuplot-nox
    # deploy/local/netns.sh: forwarders into a service's own network namespace.
    socat
    # fuzz/: clang with its libFuzzer and sanitizer runtimes.
    clang libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done
# tools/openapi/ (the OpenAPI lint and contract test) needs node and npm. Any install will do
# (Debian's or NodeSource's, which bundles npm and conflicts with Debian's npm package), so
# only ask apt for them when the commands are missing.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
fi

if ((${#missing[@]} == 0)); then
    keel_say "deps: ${#PACKAGES[@]} Debian packages present"
elif ((EUID != 0)); then
    printf 'error: missing Debian packages: %s\n' "${missing[*]}" >&2
    printf 'run as root:\n  apt-get update && apt-get install -y --no-install-recommends %s\n' \
        "${missing[*]}" >&2
    exit 1
else
    keel_say "deps: installing ${missing[*]}"
    # The stack runs its own PostgreSQL and Prometheus; the packages must not start the
    # system-wide ones. policy-rc.d answering 101 tells invoke-rc.d "not allowed" (Debian
    # policy); only put ours in place when none exists, and always take it away again.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# Temporary, from keel deploy/install-deps.sh.\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=1
    fi
    cleanup() { if ((own_policy)); then rm -f "$policy"; fi; }
    trap cleanup EXIT
    aptlog="$(mktemp)"
    if ! { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}"; } >"$aptlog" 2>&1; then
        tail -n 30 "$aptlog" >&2
        rm -f "$aptlog"
        keel_die "apt-get failed (output above)"
    fi
    rm -f "$aptlog"
    keel_say "deps: installed ${#missing[@]} Debian packages"
fi

# ---- npm packages of tools/openapi, exactly as package-lock.json pins them ----------------
# shellcheck source=tools/openapi/ensure.sh
(. "$KEEL_REPO/tools/openapi/ensure.sh") || keel_die "npm ci in tools/openapi failed (output above)"
keel_say "deps: tools/openapi npm packages present"

# ---- Kafka broker jars -------------------------------------------------------------------
version="$(keel_kafka_version)"
lib="$(keel_kafka_lib_dir)"
if keel_kafka_jars_ok; then
    keel_say "deps: Kafka $version jars present in $lib"
    exit 0
fi
keel_say "deps: fetching Kafka $version jars with Maven into $lib"
top="$(dirname "$lib")"
mkdir -p "$top"
# Fetch into a fresh folder and swap it in, so an interrupted fetch never looks complete.
tmp="$(mktemp -d "$top/lib.tmp.XXXXXX")"
mvnlog="$top/maven.log"
if ! mvn -q -B -f "$KEEL_KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$tmp" >"$mvnlog" 2>&1; then
    tail -n 30 "$mvnlog" >&2
    rm -rf "$tmp"
    keel_die "Maven could not fetch the Kafka jars (full log: $mvnlog)"
fi
if [[ ! -f "$tmp/kafka_2.13-$version.jar" ]]; then
    rm -rf "$tmp"
    keel_die "Maven finished but kafka_2.13-$version.jar is not among the jars; check $KEEL_KAFKA_POM"
fi
rm -rf "$lib"
mv "$tmp" "$lib"
keel_kafka_pom_sum >"$(keel_kafka_stamp)"
keel_say "deps: $(find "$lib" -name '*.jar' | wc -l) Kafka jars in $lib"
