#!/usr/bin/env bash
# Limits against slow or greedy clients: bodies over the limit get 413 and headers over the
# limit 431 (both as keel's error object), a client that opens a connection and goes quiet
# is cut off after the connection timeout, and one address cannot hold more than its share
# of connections (which is also what bounds clients that dribble bytes to stay under the
# idle timeout; see docs/api.md).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/api_lib.sh"
trap restore_gateway EXIT

m=$(new_merchant "limits $TEST_NAME") && k=$(new_key "$m") || { fail "merchant"; finish; exit; }

# 413: a declared length over 64 KiB is refused before the body is read, and so is a
# chunked body that turns out too large.
big=$(head -c 70000 /dev/zero | tr '\0' 'a')
assert_eq 413 "$(call POST /v1/payments "$k" "{\"description\":\"$big\"}" "big-$RANDOM")" "a 70 kB body → 413"
assert_eq body_too_large "$(last_json .error.code)" "...body_too_large"
openapi_check POST /v1/payments 413
assert_eq 413 "$(call POST /v1/payments "$k" "{\"description\":\"$big\"}" "big-$RANDOM" -H 'Transfer-Encoding: chunked')" \
    "the same body chunked → 413"
assert_eq 202 "$(call POST /v1/payments "$k" "{\"amount\":100,\"currency\":\"usd\",\"description\":\"$(head -c 900 /dev/zero | tr '\0' 'b')\"}" "ok-$RANDOM")" \
    "a body under the limit is fine"

# 431: 20 kB of headers (the limit is 16 KiB).
assert_eq 431 "$(call GET /v1/payments "$k" '' '' -H "X-Filler: $(head -c 20000 /dev/zero | tr '\0' 'h')")" "20 kB of headers → 431"
assert_eq headers_too_large "$(last_json .error.code)" "...headers_too_large, as keel's error object"
openapi_check GET /v1/payments 431
assert_eq 200 "$(call GET /v1/payments "$k" '' '' -H "X-Filler: $(head -c 8000 /dev/zero | tr '\0' 'h')")" "8 kB of headers are fine"

# Connection timeout and per-address limit, with small settings so the test is quick.
restart_gateway KEEL_GATEWAY_CONNECTION_TIMEOUT_S=2 KEEL_GATEWAY_MAX_CONNECTIONS_PER_IP=4
gw_port=${KEEL_GATEWAY_URL##*:}
# A silent client: the gateway closes its connection after about 2 s.
start=$(date +%s%N)
exec 5<>"/dev/tcp/127.0.0.1/$gw_port"
if timeout 10 cat <&5 >/dev/null; then
    ms=$((($(date +%s%N) - start) / 1000000))
    ((ms >= 1500 && ms <= 6000)) && pass "an idle connection is closed after ${ms} ms (timeout 2 s)" ||
        fail "the idle connection was closed after ${ms} ms, want about 2000"
else
    fail "the idle connection was still open after 10 s"
fi
exec 5<&-
# Four connections from one address are held open; the fifth is refused at once.
for i in 7 8 9 10; do
    eval "exec $i<>/dev/tcp/127.0.0.1/$gw_port"
done
status=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $k" "$KEEL_GATEWAY_URL/v1/payments?limit=1" 2>/dev/null || true)
[[ "$status" != 200 ]] && pass "a fifth connection from the same address is refused ($status)" || fail "a fifth connection was served"
for i in 7 8 9 10; do eval "exec $i<&-"; done
sleep 0.5
assert_eq 200 "$(call GET '/v1/payments?limit=1' "$k")" "once they are closed the address is served again"
finish
