#!/usr/bin/env bash
# Reference verifier of a keel webhook delivery: checks Keel-Signature over the raw body with openssl and a timestamp tolerance (docs/webhooks.md).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: verify-webhook.sh --signature 'HEADER VALUE' --body FILE [--secret SECRET]
                         [--tolerance SECONDS] [--now UNIX_TIME]

  --signature  the Keel-Signature header as received: t=<unix>,v1=<hex>[,v1=<hex>]
  --body       a file holding the request body exactly as received (raw bytes)
  --secret     the endpoint's signing secret (whsec_...); default: $KEEL_WEBHOOK_SECRET
  --tolerance  how far t may be from now, in seconds (default 300)
  --now        the time to check against (default: the clock)

Exit status: 0 and "valid" when a v1 signature matches and t is fresh; 1 and the reason
otherwise; 2 on a usage error. Note: openssl receives the secret as an argument, so other
users of this machine could see it in the process list; in production verify in-process.
USAGE
}

signature="" body="" secret="${KEEL_WEBHOOK_SECRET:-}" tolerance=300 now=""
while (($#)); do
    case "$1" in
    --signature) signature=${2-} && shift 2 ;;
    --body) body=${2-} && shift 2 ;;
    --secret) secret=${2-} && shift 2 ;;
    --tolerance) tolerance=${2-} && shift 2 ;;
    --now) now=${2-} && shift 2 ;;
    -h | --help) usage && exit 0 ;;
    *) usage >&2 && exit 2 ;;
    esac
done
[[ -n "$signature" && -n "$body" && -n "$secret" ]] || { usage >&2; exit 2; }
[[ -r "$body" ]] || { echo "invalid: cannot read body file $body" >&2; exit 2; }
[[ "$tolerance" =~ ^[0-9]+$ ]] || { echo "--tolerance must be a number of seconds" >&2; exit 2; }
[[ -z "$now" ]] && now=$(date +%s)
[[ "$now" =~ ^[0-9]+$ ]] || { echo "--now must be a unix time" >&2; exit 2; }

# The header: exactly one t=, one or more v1= (two during a secret rotation). Unknown
# schemes are ignored so that keel can add one later without breaking verifiers.
t="" candidates=()
IFS=',' read -r -a parts <<<"$signature"
for part in "${parts[@]}"; do
    case "$part" in
    t=*)
        [[ -z "$t" ]] || { echo "invalid: more than one t= in the signature header"; exit 1; }
        t=${part#t=}
        ;;
    v1=*) candidates+=("${part#v1=}") ;;
    esac
done
[[ "$t" =~ ^[0-9]{1,12}$ ]] || { echo "invalid: no usable t= in the signature header"; exit 1; }
((${#candidates[@]} > 0)) || { echo "invalid: no v1= signature in the header"; exit 1; }

# Freshness first: an old but correctly signed request is a replay.
age=$((now - t))
((age < 0)) && age=$((-age))
if ((age > tolerance)); then
    echo "invalid: timestamp $t is ${age}s away from now (tolerance ${tolerance}s): stale or replayed"
    exit 1
fi

# HMAC-SHA256 over "<t>." followed by the body's exact bytes (never a re-serialized JSON).
expected=$({ printf '%s.' "$t"; cat -- "$body"; } | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')
[[ "$expected" =~ ^[0-9a-f]{64}$ ]] || { echo "invalid: openssl produced no HMAC" >&2; exit 2; }
for candidate in "${candidates[@]}"; do
    if [[ "$candidate" == "$expected" ]]; then
        echo "valid"
        exit 0
    fi
done
echo "invalid: no v1 signature matches this body under this secret"
exit 1
