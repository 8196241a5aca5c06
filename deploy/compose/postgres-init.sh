#!/usr/bin/env bash
# Runs once in docker-compose's PostgreSQL (empty volume): one login role and one database per keel service, each reachable only by its own role.
set -euo pipefail

# The keel services with a database; keep in step with docker-compose.yml.
SERVICES="gateway payments ledger notifier"

psql_su() { psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname postgres "$@"; }

psql_su -c "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC"
for svc in $SERVICES; do
    role="keel_$svc"
    secret="/run/secrets/${svc}_db_password"
    if [[ -s "$secret" ]]; then
        password="$(cat "$secret")"
    else
        # LOCAL-DEV DEFAULT, only when the compose secret is missing. Never use it elsewhere.
        password="keel-local-dev-$svc"
        echo "postgres-init: $secret missing; role $role gets the local-dev default password" >&2
    fi
    # The password goes in as a psql variable on stdin, never on a command line.
    psql_su -v role="$role" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"role" TO :"role";
SQL
    echo "postgres-init: database $role for role $role"
done
