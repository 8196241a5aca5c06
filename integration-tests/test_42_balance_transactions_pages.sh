#!/usr/bin/env bash
# GET /v1/balance/transactions pages with limit / starting_after / ending_before / has_more.
# Walking every page while new entries are being posted returns each entry of the walked
# range exactly once and in order (keyset cursors, not offsets); bad parameters get a 400
# that names the parameter.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ledger_lib.sh"

read -r merchant key < <(new_merchant "Pages $$" UTC) || { fail "merchant"; finish; exit; }
# 30 entries, three per instant, so the id has to break ties.
for i in $(seq 0 29); do
    publish_payment "evt-42-$$-$i" "pay_42_$$_$i" "$merchant" $((1000 + i)) "2025-01-0$((1 + i / 10))T10:0$((i % 10 / 3)):00Z"
done
wait_posted "$merchant" 30 && pass "30 entries posted" || fail "entries missing"
sql_ledger "select id from journal_transactions where merchant_id = '$merchant'
            order by effective_at desc, id desc" >"$TMP_DIR/range"

# Post more entries in the background while walking: newer ones, and ones in between.
(
    for i in $(seq 100 139); do
        if ((i % 2)); then at="2025-01-02T10:01:30Z"; else at="$(date -u +%FT%T.%3NZ)"; fi
        publish_payment "evt-42-$$-$i" "pay_42_$$_$i" "$merchant" 500 "$at"
    done
) &
writer=$!

# walk QUERY: follows has_more; prints "id effective_at" per entry, in the order received.
walk() {
    local cursor="" more=true page res n=0
    : >"$TMP_DIR/walk"
    while [[ "$more" == true ]]; do
        res=$(api_as "$key" GET "/v1/balance/transactions?limit=7${cursor:+&$1=$cursor}")
        [[ "$(status_of "$res")" == 200 ]] || { fail "page answered $res"; return 1; }
        page=$(body_of "$res")
        if [[ "$1" == starting_after ]]; then
            jq -r '.data[] | "\(.id) \(.effective_at)"' <<<"$page" >>"$TMP_DIR/walk"
            cursor=$(jq -r '.data[-1].id // empty' <<<"$page")
        else
            jq -r '.data | reverse | .[] | "\(.id) \(.effective_at)"' <<<"$page" >>"$TMP_DIR/walk"
            cursor=$(jq -r '.data[0].id // empty' <<<"$page")
        fi
        more=$(jq -r .has_more <<<"$page")
        n=$((n + 1))
        ((n < 100)) || { fail "more than 100 pages"; return 1; }
        sleep 0.2
    done
}
walk starting_after
wait "$writer" || true
pages_seen=$(wc -l <"$TMP_DIR/walk")

# Each entry of the range exactly once; the whole walk strictly newest first.
missing_or_twice=$(awk 'NR == FNR {want[$1] = 1; next} {seen[$1]++}
    END {for (id in want) if (seen[id] != 1) print id, seen[id] + 0}' "$TMP_DIR/range" "$TMP_DIR/walk")
assert_eq "" "$missing_or_twice" "every entry of the walked range came exactly once"
assert_eq 0 "$(cut -d' ' -f1 "$TMP_DIR/walk" | sort | uniq -d | wc -l)" "no entry came twice"
out_of_order=$(awk '{key = $2 " " $1} NR > 1 && key >= prev {print NR": "$0} {prev = key}' "$TMP_DIR/walk")
assert_eq "" "$out_of_order" "the walk is strictly ordered (effective_at, id) descending"
log "walked $pages_seen entries ($(wc -l <"$TMP_DIR/range") in the range) while 40 were posted"

# Backwards from the oldest entry with ending_before: the same order, reversed.
oldest=$(tail -1 "$TMP_DIR/range")
res=$(api_as "$key" GET "/v1/balance/transactions?limit=5&ending_before=$oldest")
assert_eq 200 "$(status_of "$res")" "ending_before is accepted"
assert_eq "$(tail -6 "$TMP_DIR/range" | head -5 | paste -sd' ')" "$(body_of "$res" | jq -r '[.data[].id] | join(" ")')" \
    "the page before the oldest entry holds the five entries just newer, newest first"
assert_eq true "$(body_of "$res" | jq -r .has_more)" "has_more going backwards"
res=$(api_as "$key" GET "/v1/balance/transactions?limit=100&starting_after=$oldest")
assert_eq "0 false" "$(body_of "$res" | jq -r '"\(.data | length) \(.has_more)"')" "nothing after the oldest entry"
assert_eq /v1/balance/transactions "$(body_of "$res" | jq -r .url)" "the list names its url"

# Bad parameters: 400 with the parameter named.
bad() { # QUERY PARAM
    local res
    res=$(api_as "$key" GET "/v1/balance/transactions?$1")
    assert_eq "400 $2" "$(status_of "$res") $(body_of "$res" | jq -r .error.param)" "?$1 is refused naming $2"
}
bad limit=0 limit
bad limit=101 limit
bad limit=abc limit
bad limit= limit
bad limit=-3 limit
bad starting_after=bogus starting_after
bad starting_after=pay_00000000000000000000000000000000 starting_after
bad ending_before=txn_0123456789abcdef0123456789abcdef ending_before
bad "starting_after=$oldest&ending_before=$oldest" ending_before
bad currency=xyz currency
# Another merchant's entry is no cursor of this one.
read -r _ other_key < <(new_merchant "Pages other $$" UTC) || fail "other merchant"
res=$(api_as "$other_key" GET "/v1/balance/transactions?starting_after=$oldest")
assert_eq "400 starting_after" "$(status_of "$res") $(body_of "$res" | jq -r .error.param)" \
    "a cursor of another merchant is refused"

ledger_audit
finish
