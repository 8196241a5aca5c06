#!/usr/bin/env bash
# Creates the random secrets docker-compose.yml mounts (once; rerunning keeps them) under .keel/compose/secrets/.
set -euo pipefail

dir="${KEEL_COMPOSE_SECRETS_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/.keel/compose/secrets}"
mkdir -p "$dir"
# The folder keeps other users of this machine out. The files themselves are 0644 because
# compose bind-mounts them unchanged and the containers read them as non-root users
# (postgres, keel) whose uids do not match yours.
chmod 0700 "$dir"
for name in pg-superuser-password gateway-db-password payments-db-password ledger-db-password \
    notifier-db-password notifier-internal-token provider-api-key; do
    f="$dir/$name"
    if [[ ! -s "$f" ]]; then
        openssl rand -hex 24 >"$f"
        echo "created $f"
    fi
    chmod 0644 "$f"
done
echo "compose secrets in $dir"
