# Shell helpers shared by chaos/run.sh and chaos/selftest.sh (sourced, not run): the run's own
# merchant and API key, and the webhook receiver with its endpoint. Needs the stack's
# stack.env in the environment (KEEL_STATE_DIR, KEEL_BIN_DIR, KEEL_GATEWAY_URL).

# keelctl with the stack's keelctl.env, printing only the last non-empty line of its output
# (the id or key it created); its messages go to the file named by CHAOS_KEELCTL_LOG.
chaos_keelctl() {
    local -a envs
    mapfile -t envs < <(grep -v '^[[:space:]]*\(#\|$\)' "$KEEL_STATE_DIR/env/keelctl.env")
    env -i PATH="$PATH" HOME="${HOME:-/root}" "${envs[@]}" timeout 30 "$KEEL_BIN_DIR/keelctl" "$@" \
        2>>"${CHAOS_KEELCTL_LOG:-/dev/null}" | sed '/^[[:space:]]*$/d' | tail -n 1 | tr -d '[:space:]'
}

# chaos_new_merchant NAME: sets CHAOS_MERCHANT and CHAOS_API_KEY; returns 1 on failure.
chaos_new_merchant() {
    CHAOS_MERCHANT="$(chaos_keelctl merchant create --name "$1" || true)"
    [[ "$CHAOS_MERCHANT" =~ ^mer_ ]] || return 1
    CHAOS_API_KEY="$(chaos_keelctl apikey create --merchant "$CHAOS_MERCHANT" || true)"
    [[ -n "$CHAOS_API_KEY" ]]
}

# chaos_start_webhooks DIR SEED IDEMPOTENCY_KEY: when the stack runs keel-notifier, starts
# keel-chaos-receiver (DIR/webhooks.tsv) and gives CHAOS_MERCHANT an endpoint pointing at it.
# Sets CHAOS_RECEIVER_PID (empty when the stack has no notifier). Returns 1 on failure with
# the reason on stderr.
chaos_start_webhooks() {
    local dir=$1 seed=$2 idem=$3 answer secret
    CHAOS_RECEIVER_PID=""
    [[ -n "${KEEL_NOTIFIER_URL:-}" ]] || return 0
    [[ -x "$KEEL_BIN_DIR/keel-chaos-receiver" ]] || {
        echo "keel-chaos-receiver is not built in $KEEL_BIN_DIR" >&2
        return 1
    }
    rm -f "$dir/.webhook-port"
    "$KEEL_BIN_DIR/keel-chaos-receiver" --out "$dir/webhooks.tsv" --secret-file "$dir/.webhook-secret" \
        --port-file "$dir/.webhook-port" --seed "$seed" 2>"$dir/receiver.log" &
    CHAOS_RECEIVER_PID=$!
    for _ in $(seq 50); do
        [[ -s "$dir/.webhook-port" ]] && break
        sleep 0.1
    done
    [[ -s "$dir/.webhook-port" ]] || {
        echo "keel-chaos-receiver did not start (see $dir/receiver.log)" >&2
        return 1
    }
    answer="$(curl -sS -m 10 -X POST "$KEEL_GATEWAY_URL/v1/webhook_endpoints" \
        -H "Authorization: Bearer $CHAOS_API_KEY" -H "Idempotency-Key: $idem" \
        -H 'Content-Type: application/json' \
        -d "{\"url\":\"http://127.0.0.1:$(cat "$dir/.webhook-port")/hooks\",\"enabled_events\":[\"*\"],\"description\":\"chaos\"}")" ||
        answer=""
    secret="$(jq -r '.secret // empty' <<<"$answer" 2>/dev/null || true)"
    [[ "$secret" == whsec_* ]] || {
        echo "creating the webhook endpoint failed: ${answer:-no answer}" >&2
        return 1
    }
    (umask 077 && printf '%s\n' "$secret" >"$dir/.webhook-secret")
}

# Stops the receiver chaos_start_webhooks started (by its pid).
chaos_stop_webhooks() {
    if [[ -n "${CHAOS_RECEIVER_PID:-}" ]]; then
        kill -TERM "$CHAOS_RECEIVER_PID" 2>/dev/null || true
        wait "$CHAOS_RECEIVER_PID" 2>/dev/null || true
        CHAOS_RECEIVER_PID=""
    fi
}
