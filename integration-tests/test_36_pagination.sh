#!/usr/bin/env bash
# GET /v1/payments pages newest first with the id as tie-breaker: a walk with starting_after
# sees every payment that existed when it began exactly once, in order, while new payments
# keep arriving; ending_before walks back; created[gte] / created[lt] take RFC 3339 with any
# offset or Unix seconds; status filters; has_more ends the walk.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api_lib.sh"
export LC_ALL=C # sort and comm in byte order, as PostgreSQL orders ids here

m=$(new_merchant "pages $TEST_NAME") || { fail "merchant"; finish; exit; }
k=$(new_key "$m" --rate-limit 100000 --burst 100000) || { fail "key"; finish; exit; }
post() { call POST /v1/payments "$k" "$(payment_body "$1")" "p-$1-$RANDOM$RANDOM"; }
for i in $(seq 1 45); do
    [[ "$(post $((1000 + i)))" == 202 ]] || fail "seed payment $i"
done
sql_gateway "select id from payments where merchant_id = '$m' order by id" >"$TMP_DIR/before"
assert_eq 45 "$(wc -l <"$TMP_DIR/before")" "45 payments exist before the walk"

# New payments keep arriving while the walk runs (at most 40, so every later check fits one
# page of 100).
(
    n=0
    while [[ ! -e "$TMP_DIR/stop" ]] && ((n < 40)); do
        # Its own curl: call's answer files belong to the walk.
        curl -sS -m 15 -o /dev/null -X POST -H "Authorization: Bearer $k" -H "Idempotency-Key: ins-$n-$RANDOM" \
            -H 'Content-Type: application/json' --data-binary "$(payment_body $((5000 + n)))" \
            "$KEEL_GATEWAY_URL/v1/payments" || true
        n=$((n + 1))
    done
) &
inserter=$!
cursor=""
pages=0
: >"$TMP_DIR/walk"
while :; do
    status=$(call GET "/v1/payments?limit=7${cursor:+&starting_after=$cursor}" "$k")
    [[ "$status" == 200 ]] || { fail "page $pages: $status $(last_body)"; break; }
    last_json '.data[] | "\(.created_at) \(.id)"' >>"$TMP_DIR/walk"
    pages=$((pages + 1))
    [[ "$(last_json .has_more)" == true ]] || break
    cursor=$(last_json '.data[-1].id')
    sleep 0.05 # give the inserter time between pages
done
touch "$TMP_DIR/stop"
wait "$inserter"
log "walked $pages pages, $(wc -l <"$TMP_DIR/walk") payments; $(sql_gateway "select count(*) from payments where merchant_id = '$m'") exist now"
assert_eq 0 "$(cut -d' ' -f2 "$TMP_DIR/walk" | sort | uniq -d | wc -l)" "no payment appears twice"
assert_eq "" "$(comm -23 "$TMP_DIR/before" <(cut -d' ' -f2 "$TMP_DIR/walk" | sort))" "every payment that existed is seen"
# Newest first: (created_at, id) strictly decreasing (RFC 3339 UTC with milliseconds sorts as text).
assert_eq "$(cat "$TMP_DIR/walk")" "$(sort -r "$TMP_DIR/walk")" "the walk is in (created_at, id) order, newest first"
assert_eq "$(wc -l <"$TMP_DIR/walk")" "$(sort -u "$TMP_DIR/walk" | wc -l)" "strictly: no two rows tie"

# Backwards from the oldest payment: ending_before pages reach the newest, still newest first.
oldest=$(tail -n1 "$TMP_DIR/walk" | cut -d' ' -f2)
cursor=$oldest
: >"$TMP_DIR/back"
while :; do
    status=$(call GET "/v1/payments?limit=9&ending_before=$cursor" "$k")
    [[ "$status" == 200 ]] || { fail "ending_before page: $status $(last_body)"; break; }
    { last_json '.data[] | "\(.created_at) \(.id)"'; cat "$TMP_DIR/back"; } >"$TMP_DIR/back.new"
    mv "$TMP_DIR/back.new" "$TMP_DIR/back"
    [[ "$(last_json .has_more)" == true ]] || break
    cursor=$(last_json '.data[0].id')
done
sql_gateway "select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') || ' ' || id from payments
             where merchant_id = '$m' and id <> '$oldest' order by created_at desc, id desc" >"$TMP_DIR/all_but_oldest"
assert_eq "$(cat "$TMP_DIR/all_but_oldest")" "$(cat "$TMP_DIR/back")" "walking back with ending_before sees every newer payment in order"

# created[gte] / created[lt]: RFC 3339 in any offset, or Unix seconds, name the same instants.
mid=$(sed -n 20p "$TMP_DIR/walk" | cut -d' ' -f1)
mid_s=$(date -u -d "$mid" +%s)
plus2=$(TZ=Etc/GMT-2 date -d "@$mid_s" +%Y-%m-%dT%H:%M:%S+02:00)
minus5=$(TZ=Etc/GMT+5 date -d "@$mid_s" +%Y-%m-%dT%H:%M:%S-05:00)
want=$(sql_gateway "select count(*) from payments where merchant_id = '$m' and created_at >= to_timestamp($mid_s)")
for form in "$mid_s" "$(jq -rn --arg s "$plus2" '$s|@uri')" "$(jq -rn --arg s "$minus5" '$s|@uri')" "${plus2/+/%20}"; do
    call GET "/v1/payments?limit=100&created%5Bgte%5D=$form" "$k" >/dev/null
    assert_eq "$want" "$(last_json '.data | length')" "created[gte]=$form holds the $want payments from $mid_s on"
done
before=$(sql_gateway "select count(*) from payments where merchant_id = '$m' and created_at < to_timestamp($mid_s)")
call GET "/v1/payments?limit=100&created%5Blt%5D=$(jq -rn --arg s "$minus5" '$s|@uri')" "$k" >/dev/null
assert_eq "$before" "$(last_json '.data | length')" "created[lt] holds the payments before it"
assert_eq 400 "$(call GET '/v1/payments?created%5Bgte%5D=2025-02-30T00:00:00Z' "$k")" "an impossible date → 400"
assert_eq 'created[gte]' "$(last_json .error.param)" "...naming created[gte]"

# status filters, limits are enforced.
call GET '/v1/payments?limit=100&status=pending' "$k" >/dev/null
assert_eq 0 "$(last_json '[.data[] | select(.status != "pending")] | length')" "status=pending holds only pending payments"
assert_eq 400 "$(call GET '/v1/payments?limit=101' "$k")" "limit=101 → 400"
assert_eq 400 "$(call GET "/v1/payments?starting_after=$oldest&ending_before=$oldest" "$k")" "both cursors → 400"
assert_eq parameters_exclusive "$(last_json .error.code)" "...parameters_exclusive"
call GET '/v1/payments' "$k" >/dev/null
assert_eq 10 "$(last_json '.data | length')" "the default page holds 10"
finish
