#!/usr/bin/env bash
# SIGTERM: every service stops taking work, finishes what it holds and exits 0 within 10 s.
source "$(dirname "$0")/lib.sh"

for svc in gateway payments provider-sim; do
    # A payment in flight while the services stop must still complete after they return.
    id=$(create_payment 4321 || true)
    start=$SECONDS
    code=$("$STACK" stop-service "$svc" 2>/dev/null | tail -1 || true)
    took=$((SECONDS - start))
    assert_eq 0 "$code" "$svc exits 0 on SIGTERM"
    assert_le 10 "$took" "$svc stopped within 10 s"
    "$STACK" start-service "$svc" >/dev/null
    [[ -n "$id" ]] && { wait_payment_status "$id" succeeded 60 && pass "payment in flight during $svc stop completed" \
        || fail "payment $id did not complete after $svc restart"; }
done
finish
