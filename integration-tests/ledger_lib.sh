# Helpers of the ledger's integration tests (test_4x): keelctl with the stack's settings,
# merchants with their own API keys, payment events written by hand and published with kcat,
# and the audit every test ends with. Source it after lib.sh.

sql_ledger() { psql "$KEEL_LEDGER_DB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# keelctl ARGS...: keelctl with the stack's env/keelctl.env (gateway and ledger databases).
keelctl() {
    (
        set -a
        # shellcheck disable=SC1091
        . "$KEEL_STATE_DIR/env/keelctl.env"
        set +a
        "$KEEL_BIN_DIR/keelctl" "$@"
    )
}

# ledger_audit: keelctl audit must pass (the books add up after the test).
ledger_audit() {
    local out
    if out=$(keelctl audit 2>&1); then
        pass "keelctl audit: the books add up"
    else
        fail "keelctl audit failed: $out"
    fi
}

# new_merchant NAME TIME_ZONE: creates a merchant and an API key; prints "MERCHANT_ID KEY" and
# waits until the ledger has its copy (MerchantCreated went through the gateway's outbox).
new_merchant() {
    local id key
    id=$(keelctl merchant create --name "$1" --time-zone "$2") || return 1
    key=$(keelctl apikey create --merchant "$id" 2>/dev/null) || return 1
    wait_until 30 ledger_has_merchant "$id" "$2" || {
        log "the ledger has no copy of $id ($2) after 30 s"
        return 1
    }
    echo "$id $key"
}
ledger_has_merchant() { [[ "$(sql_ledger "select time_zone from merchants where id = '$1'")" == "$2" ]]; }

# api_as KEY METHOD PATH: lib.sh's api() with another merchant's key.
api_as() {
    local key=$1
    shift
    API_KEY=$key api "$@"
}

# --- protobuf by hand (proto3 wire format: varints and length-delimited strings) ----------
pb_varint() {
    local n=$1
    while ((n > 127)); do
        # shellcheck disable=SC2059
        printf "\\x$(printf %02x $(((n & 127) | 128)))"
        n=$((n >> 7))
    done
    # shellcheck disable=SC2059
    printf "\\x$(printf %02x "$n")"
}
pb_string() { # FIELD VALUE (ASCII)
    pb_varint $((($1 << 3) | 2))
    pb_varint "${#2}"
    printf '%s' "$2"
}
pb_int() { pb_varint $((($1 << 3) | 0)) && pb_varint "$2"; } # FIELD VALUE (>= 0)

# publish_event TYPE KEY EVENT_ID FILE: one record on keel.payment-events.v1 with CloudEvents
# headers, as keel-payments publishes it.
publish_event() {
    kcat -b "$KEEL_KAFKA_BROKERS" -P -t keel.payment-events.v1 -k "$2" \
        -H ce_specversion=1.0 -H "ce_id=$3" -H ce_source=/tests/ledger -H "ce_type=keel.v1.$1" \
        -H content-type=application/protobuf "$4"
}

# publish_payment EVENT_ID PAYMENT_ID MERCHANT AMOUNT SUCCEEDED_AT [CURRENCY]: a
# PaymentSucceeded at a chosen instant.
publish_payment() {
    local f="$TMP_DIR/pay-$1.bin"
    {
        pb_string 1 "$2"
        pb_string 2 "$3"
        pb_int 3 "$4"
        pb_string 4 "${6:-usd}"
        pb_string 5 provider_a
        pb_string 6 "ch_$2"
        pb_string 7 "$5"
    } >"$f"
    publish_event PaymentSucceeded "$2" "$1" "$f"
}

# publish_refund EVENT_ID REFUND_ID PAYMENT_ID MERCHANT AMOUNT SUCCEEDED_AT
publish_refund() {
    local f="$TMP_DIR/refund-$1.bin"
    {
        pb_string 1 "$2"
        pb_string 2 "$3"
        pb_string 3 "$4"
        pb_int 4 "$5"
        pb_string 5 usd
        pb_string 6 provider_a
        pb_string 7 "pr_$2"
        pb_string 8 "$6"
    } >"$f"
    publish_event RefundSucceeded "$3" "$1" "$f"
}

# posted_count MERCHANT: journal transactions of a merchant.
posted_count() { sql_ledger "select count(*) from journal_transactions where merchant_id = '$1'"; }
# wait_posted MERCHANT N: until the merchant has N journal transactions (60 s).
wait_posted() {
    local want=$2
    posted_n() { (($(posted_count "$1") >= want)); }
    wait_until 60 posted_n "$1" || log "merchant $1 has $(posted_count "$1") postings, wanted $want"
    (($(posted_count "$1") == want))
}
