#!/usr/bin/env bash
# Two gateway instances run at once: exactly one relay publishes. Kill the leader and the
# other takes over within 10 s; no event is lost and each partition keeps creation order.
source "$(dirname "$0")/lib.sh"
trap '"$STACK" kill-service gateway 2 >/dev/null 2>&1 || true; is_running gateway 1 || "$STACK" start-service gateway >/dev/null' EXIT

"$STACK" start-service gateway 2 >/dev/null
leader_of() { metric "$1" 'keel_outbox_leader'; }
one_leader() { (($(leader_of "$KEEL_GATEWAY_URL") + $(leader_of "$KEEL_GATEWAY2_URL") == 1)); }
wait_until 15 one_leader && pass "exactly one of two relays is the leader" || fail "leaders: $(leader_of "$KEEL_GATEWAY_URL")+$(leader_of "$KEEL_GATEWAY2_URL")"

if [[ "$(leader_of "$KEEL_GATEWAY_URL")" == 1 ]]; then
    leader=1 survivor_url=$KEEL_GATEWAY2_URL
else
    leader=2 survivor_url=$KEEL_GATEWAY_URL
fi
log "leader is instance $leader"

# Payments accepted by the survivor before, during and after the kill, one at a time.
ids=()
for i in 1 2 3; do ids+=("$(API_URL=$survivor_url create_payment $((100 + i)))"); done
"$STACK" kill-service gateway "$leader" >/dev/null
killed_at=$SECONDS
for i in 4 5 6 7 8; do ids+=("$(API_URL=$survivor_url create_payment $((100 + i)))"); done
survivor_leads() { [[ "$(leader_of "$survivor_url")" == 1 ]]; }
wait_until 10 survivor_leads && pass "the survivor took over in $((SECONDS - killed_at)) s (limit 10)" \
    || fail "no takeover within 10 s"
for i in 9 10; do ids+=("$(API_URL=$survivor_url create_payment $((100 + i)))"); done

for id in "${ids[@]}"; do
    API_URL=$survivor_url wait_payment_status "$id" succeeded 60 || fail "payment $id lost"
done
pass "all ${#ids[@]} payments completed"
for id in "${ids[@]}"; do
    (($(kafka_count_key keel.payment-requests.v1 "$id") >= 1)) || fail "no request event for $id"
done

# Per-key (and here per-partition) order: ids are UUIDv7-based and were created one after the
# other, so on each partition their first appearances must be in increasing order.
wanted=" ${ids[*]} "
kafka_records keel.payment-requests.v1 | while read -r p _ k _; do
    [[ "$wanted" == *" $k "* ]] && echo "$p $k"
done | awk '!seen[$2]++' >"$TMP_DIR/order"
disorder=$(awk '{ if (last[$1] != "" && $2 < last[$1]) bad++; last[$1] = $2 } END { print bad + 0 }' "$TMP_DIR/order")
assert_eq 0 "$disorder" "events appear in creation order on every partition"
trap - EXIT
"$STACK" kill-service gateway 2 >/dev/null 2>&1 || true
is_running gateway 1 || "$STACK" start-service gateway >/dev/null
finish
