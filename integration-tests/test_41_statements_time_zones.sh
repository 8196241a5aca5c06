#!/usr/bin/env bash
# GET /v1/statements/{date} covers the merchant's own day: 23 h on the day New York's clocks
# go forward, 25 h on the day they go back, Asia/Kathmandu's +05:45 and Africa/Lagos's +01:00
# days start where they should, an entry at 23:59:59.999 local belongs to that day and one at
# 00:00:00 to the next, and a changed time zone (MerchantUpdated) moves the days.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ledger_lib.sh"

# statement KEY DATE: the usd section and the period, as "start end seconds count opening closing sum".
statement() {
    local body
    body=$(body_of "$(api_as "$1" GET "/v1/statements/$2")")
    jq -r '(.currencies[] | select(.currency == "usd")) as $c |
        "\(.period_start) \(.period_end) \(.period_seconds) \($c.entry_count) \($c.opening_balance) \($c.closing_balance) \([$c.entries[].net] | add // 0)"' <<<"$body"
}
# entry_times KEY DATE: the effective times of the day's entries, one per line.
entry_times() { body_of "$(api_as "$1" GET "/v1/statements/$2")" | jq -r '.currencies[0].entries[].effective_at'; }
n=0
post() { # MERCHANT INSTANT
    n=$((n + 1))
    publish_payment "evt-41-$$-$n" "pay_41_$$_$n" "$1" 1000 "$2"
}

# --- America/New_York: 2024-03-10 (EST→EDT at 02:00) and 2024-11-03 (EDT→EST at 02:00) ---
read -r ny ny_key < <(new_merchant "New York $$" America/New_York) || { fail "merchant"; finish; exit; }
# An entry on every UTC hour from 3 h before each day's local midnight to 3 h after its end.
for epoch in $(seq $(($(date -ud 2024-03-10T05:00:00Z +%s) - 3 * 3600)) 3600 $(date -ud 2024-03-11T07:00:00Z +%s)) \
    $(seq $(($(date -ud 2024-11-03T04:00:00Z +%s) - 3 * 3600)) 3600 $(date -ud 2024-11-04T08:00:00Z +%s)); do
    post "$ny" "$(date -ud "@$epoch" +%FT%TZ)"
done
post "$ny" 2024-03-10T23:59:59.999-04:00
post "$ny" 2024-03-11T00:00:00-04:00
wait_posted "$ny" "$n" && pass "$n New York entries posted" || fail "New York entries missing"

read -r start end seconds count opening closing sum <<<"$(statement "$ny_key" 2024-03-10)"
assert_eq "2024-03-10T05:00:00.000Z 2024-03-11T04:00:00.000Z 82800" "$start $end $seconds" \
    "2024-03-10 in New York is 23 hours"
assert_eq 24 "$count" "23 hourly entries and the one at 23:59:59.999"
assert_eq "$closing" "$((opening + sum))" "closing = opening + the day's entries"
assert_eq 2024-03-11T03:59:59.999Z "$(entry_times "$ny_key" 2024-03-10 | tail -1)" \
    "23:59:59.999 local is the last entry of 2024-03-10"
assert_eq 2024-03-11T04:00:00.000Z "$(entry_times "$ny_key" 2024-03-11 | head -1)" \
    "00:00:00 local is the first entry of 2024-03-11"
read -r _ _ _ _ next_opening _ _ <<<"$(statement "$ny_key" 2024-03-11)"
assert_eq "$closing" "$next_opening" "a day's closing balance is the next day's opening"

read -r start end seconds count opening closing sum <<<"$(statement "$ny_key" 2024-11-03)"
assert_eq "2024-11-03T04:00:00.000Z 2024-11-04T05:00:00.000Z 90000" "$start $end $seconds" \
    "2024-11-03 in New York is 25 hours"
assert_eq 25 "$count" "25 hourly entries"
assert_eq "$((25 * 941))" "$((closing - opening))" "the day's net change"

# --- Asia/Kathmandu (+05:45) and Africa/Lagos (+01:00, no DST) -----------------------------
read -r ktm ktm_key < <(new_merchant "Kathmandu $$" Asia/Kathmandu) || { fail "merchant"; finish; exit; }
read -r los los_key < <(new_merchant "Lagos $$" Africa/Lagos) || { fail "merchant"; finish; exit; }
ktm_n=$n
post "$ktm" 2024-05-31T18:14:59.999Z # 23:59:59.999 on 05-31 in Kathmandu
post "$ktm" 2024-05-31T18:15:00Z     # 00:00:00 on 06-01
post "$ktm" 2024-06-01T18:14:59.999Z # 23:59:59.999 on 06-01
post "$ktm" 2024-06-01T18:15:00Z     # 00:00:00 on 06-02
post "$los" 2024-05-31T22:59:59.999Z # 23:59:59.999 on 05-31 in Lagos
post "$los" 2024-05-31T23:00:00Z     # 00:00:00 on 06-01
post "$los" 2024-06-01T22:59:59.999Z
post "$los" 2024-06-01T23:00:00Z
wait_posted "$ktm" 4 && wait_posted "$los" 4 && pass "Kathmandu and Lagos entries posted" \
    || fail "entries missing ($((n - ktm_n)) published)"
read -r start end seconds count _ <<<"$(statement "$ktm_key" 2024-06-01)"
assert_eq "2024-05-31T18:15:00.000Z 2024-06-01T18:15:00.000Z 86400 2" "$start $end $seconds $count" \
    "Kathmandu's 2024-06-01 starts at 18:15Z and holds its two entries"
assert_eq "2024-05-31T18:15:00.000Z 2024-06-01T18:14:59.999Z" "$(entry_times "$ktm_key" 2024-06-01 | paste -sd' ')" \
    "Kathmandu: 00:00:00 in, 23:59:59.999 in, the neighbours out"
read -r start end seconds count _ <<<"$(statement "$los_key" 2024-06-01)"
assert_eq "2024-05-31T23:00:00.000Z 2024-06-01T23:00:00.000Z 86400 2" "$start $end $seconds $count" \
    "Lagos's 2024-06-01 starts at 23:00Z and holds its two entries"
assert_eq 2024-05-31T22:59:59.999Z "$(entry_times "$los_key" 2024-05-31)" "Lagos: 23:59:59.999 stays on 05-31"

# --- a new time zone moves the days (MerchantUpdated, version 2) --------------------------
keelctl merchant update --merchant "$los" --time-zone Asia/Kathmandu >/dev/null || fail "merchant update"
wait_until 30 ledger_has_merchant "$los" Asia/Kathmandu && pass "the ledger took the update" || fail "update not applied"
assert_eq 2 "$(sql_ledger "select version from merchants where id = '$los'")" "the copy is version 2"
read -r start _ _ count _ <<<"$(statement "$los_key" 2024-06-01)"
assert_eq "2024-05-31T18:15:00.000Z 2" "$start $count" "the Lagos merchant's days now follow Kathmandu"

# --- bad dates ------------------------------------------------------------------------------
for d in 2024-02-30 2024-13-01 yesterday 24-06-01; do
    res=$(api_as "$ktm_key" GET "/v1/statements/$d")
    assert_eq "400 date" "$(status_of "$res") $(body_of "$res" | jq -r .error.param)" "/v1/statements/$d is refused naming date"
done

ledger_audit
finish
