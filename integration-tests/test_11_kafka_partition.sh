#!/usr/bin/env bash
# keel-payments partitioned from Kafka (in a network namespace of its own, deploy/local/netns.sh)
# while the gateway keeps accepting: nothing is processed during the cut, nothing is lost or
# charged twice, and after the heal every payment completes with one charge and one outcome.
source "$(dirname "$0")/lib.sh"
NETNS="$KEEL_REPO/deploy/local/netns.sh"

if ! "$NETNS" check; then
    # ctest reports 77 as skipped (integration-tests/CMakeLists.txt), not as passed.
    log "skipped: this machine cannot create network namespaces (needs root, iproute2, socat)"
    exit 77
fi
trap '"$NETNS" leave payments 1 >/dev/null 2>&1 || { "$NETNS" clean; "$STACK" start-service payments >/dev/null; }' EXIT

"$NETNS" enter payments 1 >/dev/null && pass "keel-payments runs in a network namespace of its own" ||
    { fail "could not move keel-payments into a namespace"; finish; exit; }
ns="keel-$KEEL_STACK-payments-1"
ns_of_pid() { readlink "/proc/$1/ns/net"; }
[[ "$(ns_of_pid "$(pid_of payments)")" != "$(ns_of_pid $$)" ]] && pass "its network namespace is not the host's" ||
    fail "keel-payments shares the host's network namespace"
assert_eq 0 "$(ip netns exec "$ns" ip -o addr show | grep -cv ' lo ')" "the namespace has no address but its loopback"

# Through the forwarders the flow works as before.
before=$(create_payment 1100) || { fail "POST"; finish; exit; }
wait_payment_status "$before" succeeded 60 && pass "a payment completes through the namespace's forwarders" ||
    fail "no outcome through the forwarders"

"$NETNS" cut payments 1 >/dev/null
consumed_before=$(consumer_ok_count)
ids=()
for i in 1 2 3 4 5; do
    id=$(create_payment $((1100 + i))) && ids+=("$id") || fail "POST $i during the partition"
done
assert_eq 5 "${#ids[@]}" "the gateway accepts payments while keel-payments is cut off"
sleep 8
pending=0
for id in "${ids[@]}"; do
    [[ "$(body_of "$(api GET "/v1/payments/$id")" | jq -r .status)" == pending ]] && pending=$((pending + 1))
done
assert_eq 5 "$pending" "none is processed during the partition (all pending after 8 s)"
charged=0
for id in "${ids[@]}"; do charged=$((charged + $(sim_charge_count "$id"))); done
assert_eq 0 "$charged" "nothing was charged during the partition"
assert_eq "$consumed_before" "$(consumer_ok_count)" "keel-payments consumed nothing while cut off"
is_running payments && pass "keel-payments stays up through the partition" || fail "keel-payments died"

"$NETNS" heal payments 1 >/dev/null
for id in "${ids[@]}"; do
    if wait_payment_status "$id" succeeded 90; then
        assert_eq "1 1" "$(sim_charge_count "$id") $(kafka_count_key keel.payment-events.v1 "$id")" \
            "$id: one charge and one outcome event after the heal"
    else
        fail "$id did not complete after the heal"
    fi
done

trap - EXIT
"$NETNS" leave payments 1 >/dev/null && pass "keel-payments left the namespace cleanly (SIGTERM, exit 0)" ||
    fail "keel-payments did not leave the namespace cleanly"
[[ "$(ns_of_pid "$(pid_of payments)")" == "$(ns_of_pid $$)" ]] && pass "it runs in the host's namespace again" ||
    fail "still in a namespace"
ip netns list | grep -q "^$ns\b" && fail "namespace $ns left behind" || pass "the namespace is gone"
after=$(create_payment 1199) || fail "POST after leaving"
wait_payment_status "$after" succeeded 60 && pass "a payment completes after leaving the namespace" ||
    fail "no outcome after leaving"
finish
