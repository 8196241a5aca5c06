#!/usr/bin/env bash
# docker-compose.yml cannot be run here (no Docker engine); it is kept correct by a parser check.
source "$(dirname "$0")/lib.sh"
python3 "$KEEL_REPO/integration-tests/check_compose.py" "$KEEL_REPO/docker-compose.yml" \
    && pass "docker-compose.yml is consistent" || fail "docker-compose.yml check failed"
finish
