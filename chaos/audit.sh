#!/usr/bin/env bash
# The chaos audit: waits until a run's payments are settled, then checks keel's money invariants across every service database, Kafka and the simulator's charge log, prints the figures and exits non-zero on any violation.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: chaos/audit.sh --out DIR --merchant ID [--wait S] [--faults-log FILE]
Audits the payments of merchant ID (the run's own merchant) in the stack named by the sourced
stack.env, using DIR/accepted.tsv, refunds.tsv and violations.tsv from keel-chaos-driver.
  --wait S        first wait up to S seconds for every payment to be terminal, every outbox
                  empty and the ledger caught up (default 0: audit at once)
  --faults-log F  the fault scheduler's log: figures by kind and the drain time after the
                  last fault
Writes DIR/invariants.tsv (name count detail), DIR/figures.txt and DIR/samples.txt (a few
offending ids per broken invariant); the raw data stays in the database keel_chaos_audit
of the stack's cluster for inspection. Exit status: 0 every invariant holds, 1 one is broken,
2 usage error.
EOF
}

OUT=""
MERCHANT=""
WAIT=0
FAULTS_LOG=""
while (($#)); do
    case "$1" in
    --out) OUT=$2; shift 2 ;;
    --merchant) MERCHANT=$2; shift 2 ;;
    --wait) WAIT=$2; shift 2 ;;
    --faults-log) FAULTS_LOG=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
[[ -d "$OUT" && "$MERCHANT" =~ ^mer_[0-9a-f]{32}$ && "$WAIT" =~ ^[0-9]+$ ]] || {
    usage >&2
    exit 2
}
: "${KEEL_PG_SUPERUSER_URL:?source the stack.env of the stack first}"
: "${KEEL_GATEWAY_DB_URL:?source the stack.env of the stack first}"
: "${KEEL_PAYMENTS_DB_URL:?source the stack.env of the stack first}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
say() { printf '[chaos audit %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
now_ms() { date +%s%3N; }

# The superuser URL of another database of the same cluster.
db_url() { echo "${KEEL_PG_SUPERUSER_URL/#postgresql:\/\/\/postgres/postgresql:///$1}"; }
AUDIT_DB=keel_chaos_audit
AUDIT_URL="$(db_url "$AUDIT_DB")"
sql() { PGCONNECT_TIMEOUT=10 psql "$1" -XAtq -v ON_ERROR_STOP=1 -c "$2"; }

# Every service database of the stack: KEEL_<NAME>_DB_URL in stack.env.
mapfile -t SERVICE_DBS < <(compgen -v | grep -E '^KEEL_[A-Z_]+_DB_URL$' | sort)
has_db() { [[ -n "${!1:-}" ]]; }
has_table() { [[ "$(sql "$1" "SELECT to_regclass('$2') IS NOT NULL")" == t ]]; }
LEDGER=0
if has_db KEEL_LEDGER_DB_URL && has_table "$KEEL_LEDGER_DB_URL" journal_transactions; then LEDGER=1; fi
# Webhooks are checked when the run's merchant has an endpoint (run.sh makes one that points
# at keel-chaos-receiver when the stack runs keel-notifier).
NOTIFIER=0
if has_db KEEL_NOTIFIER_DB_URL && has_table "$KEEL_NOTIFIER_DB_URL" webhook_deliveries &&
    [[ "$(sql "$KEEL_NOTIFIER_DB_URL" "SELECT count(*) FROM webhook_endpoints WHERE merchant_id = '$MERCHANT'")" != 0 ]]; then
    NOTIFIER=1
fi
REFUNDS=0
has_table "$KEEL_GATEWAY_DB_URL" refunds && REFUNDS=1

# ---- quiesce ------------------------------------------------------------------------------
# What is still moving, as one line ("" when settled).
unsettled() {
    local pending review outbox=0 n db lagging="" posted succeeded
    review="$(sql "$KEEL_PAYMENTS_DB_URL" "SELECT coalesce(string_agg(quote_literal(id), ','), '''''')
        FROM payments WHERE merchant_id = '$MERCHANT' AND status = 'requires_review'")" || return 0
    pending="$(sql "$KEEL_GATEWAY_DB_URL" "SELECT count(*) FROM payments WHERE merchant_id = '$MERCHANT'
        AND status = 'pending' AND id NOT IN ($review)")" || { echo "gateway database unreachable"; return; }
    for db in "${SERVICE_DBS[@]}"; do
        n="$(sql "${!db}" "SELECT CASE WHEN to_regclass('outbox') IS NULL THEN 0 ELSE (SELECT count(*) FROM outbox) END")" || n=1
        outbox=$((outbox + n))
    done
    if ((REFUNDS)); then
        # A refund keel-payments put in review stays pending at the gateway (docs/payments.md):
        # settled as far as keel goes, like a payment in review.
        review="$(sql "$KEEL_PAYMENTS_DB_URL" "SELECT coalesce(string_agg(quote_literal(id), ','), )
            FROM refunds WHERE merchant_id = '$MERCHANT' AND status = 'requires_review'")" || review="''"
        n="$(sql "$KEEL_GATEWAY_DB_URL" "SELECT count(*) FROM refunds WHERE merchant_id = '$MERCHANT'
            AND status = 'pending' AND id NOT IN ($review)")" || n=0
        ((n == 0)) || lagging+=" $n refunds pending"
    fi
    if ((NOTIFIER)); then
        n="$(sql "$KEEL_NOTIFIER_DB_URL" "SELECT count(*) FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
            WHERE e.merchant_id = '$MERCHANT' AND d.status = 'pending'")" || n=0
        ((n == 0)) || lagging+=" $n webhook deliveries pending"
    fi
    if ((LEDGER)); then
        succeeded="$(sql "$KEEL_GATEWAY_DB_URL" "SELECT count(*) FROM payments WHERE merchant_id = '$MERCHANT' AND status = 'succeeded'")"
        posted="$(sql "$KEEL_LEDGER_DB_URL" "SELECT count(*) FROM journal_transactions WHERE merchant_id = '$MERCHANT' AND source_type = 'payment'")"
        ((posted >= succeeded)) || lagging+=" ledger behind by $((succeeded - posted))"
    fi
    if ((pending > 0 || outbox > 0)) || [[ -n "$lagging" ]]; then
        echo "$pending pending, $outbox outbox rows$lagging"
    fi
}

DRAINED_MS=""
if ((WAIT > 0)); then
    deadline=$((SECONDS + WAIT))
    last_report=0
    while :; do
        state="$(unsettled)"
        if [[ -z "$state" ]]; then
            DRAINED_MS=$(now_ms)
            say "settled"
            break
        fi
        if ((SECONDS >= deadline)); then
            say "still unsettled after ${WAIT}s: $state"
            break
        fi
        if ((SECONDS - last_report >= 10)); then
            say "waiting: $state"
            last_report=$SECONDS
        fi
        sleep 1
    done
else
    [[ -z "$(unsettled)" ]] && DRAINED_MS=$(now_ms)
fi

# ---- collect ------------------------------------------------------------------------------
say "collecting the evidence into database $AUDIT_DB"
if [[ "$(sql "$KEEL_PG_SUPERUSER_URL" "SELECT 1 FROM pg_database WHERE datname = '$AUDIT_DB'")" != 1 ]]; then
    sql "$KEEL_PG_SUPERUSER_URL" "CREATE DATABASE $AUDIT_DB" >/dev/null
    # Only the superuser: the services' roles must reach nothing but their own database.
    sql "$KEEL_PG_SUPERUSER_URL" "REVOKE ALL ON DATABASE $AUDIT_DB FROM PUBLIC" >/dev/null
fi
psql "$AUDIT_URL" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<'EOF'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS audit CASCADE;
CREATE SCHEMA audit;
SET search_path = audit;
CREATE TABLE accepted (id text, key text, amount bigint, method text, at_ms bigint, attempts int);
CREATE TABLE driver_violations (kind text, key text, first_id text, second_id text);
CREATE TABLE refunds_asked (refund_id text, payment_id text, key text, amount bigint, at_ms bigint, attempts int);
CREATE TABLE gw (id text, status text, amount bigint, provider text);
CREATE TABLE pm (id text, status text, phase text, amount bigint, provider text);
CREATE TABLE charges (provider text, charge_id text, idem_key text, amount bigint, status text);
CREATE TABLE sim_refunds (provider text, refund_id text, idem_key text, charge_key text, amount bigint);
CREATE TABLE gw_refunds (id text, payment_id text, status text, amount bigint);
CREATE TABLE pm_refunds (id text, status text);
CREATE TABLE requests (key text, ce_id text, ce_type text);
CREATE TABLE events (key text, ce_id text, ce_type text);
CREATE TABLE gw_inbox (event_id text);
CREATE TABLE pm_inbox (event_id text);
CREATE TABLE outbox_left (db text, n bigint);
CREATE TABLE ledger_txn (source_type text, source_id text, payment_id text, amount bigint);
CREATE TABLE ledger_audit (check_name text, subject text, detail text);
CREATE TABLE notifier_deliveries (event_id text, source_event_id text, type text, endpoint_id text, status text);
CREATE TABLE receipts (event_id text, type text, object_id text, valid int, at_ms bigint, status int);
CREATE TABLE faults (start_ms bigint, end_ms bigint, kind text, target text, detail text, result text);
EOF

load() { # table (rows on stdin, tab-separated)
    psql "$AUDIT_URL" -XAtq -v ON_ERROR_STOP=1 -c "COPY audit.$1 FROM STDIN" >/dev/null
}
copy_out() { # url query
    psql "$1" -XAtq -v ON_ERROR_STOP=1 -c "COPY ($2) TO STDOUT"
}
load_file() { # table file
    if [[ -s "$2" ]]; then load "$1" <"$2"; fi
}

load_file accepted "$OUT/accepted.tsv"
load_file driver_violations "$OUT/violations.tsv"
load_file refunds_asked "$OUT/refunds.tsv"
[[ -n "$FAULTS_LOG" ]] && load_file faults "$FAULTS_LOG"
copy_out "$KEEL_GATEWAY_DB_URL" "SELECT id, status, amount, provider FROM payments WHERE merchant_id = '$MERCHANT'" | load gw
copy_out "$KEEL_PAYMENTS_DB_URL" "SELECT id, status, phase, amount, provider FROM payments WHERE merchant_id = '$MERCHANT'" | load pm
copy_out "$KEEL_GATEWAY_DB_URL" "SELECT event_id FROM inbox WHERE consumer = 'gateway'" | load gw_inbox
if ((REFUNDS)); then
    copy_out "$KEEL_GATEWAY_DB_URL" "SELECT id, payment_id, status, amount FROM refunds WHERE merchant_id = '$MERCHANT'" | load gw_refunds
    copy_out "$KEEL_PAYMENTS_DB_URL" "SELECT id, status FROM refunds WHERE merchant_id = '$MERCHANT'" | load pm_refunds
fi
copy_out "$KEEL_PAYMENTS_DB_URL" "SELECT event_id FROM inbox WHERE consumer = 'payments'" | load pm_inbox
for db in "${SERVICE_DBS[@]}"; do
    n="$(sql "${!db}" "SELECT CASE WHEN to_regclass('outbox') IS NULL THEN 0 ELSE (SELECT count(*) FROM outbox) END")"
    printf '%s\t%s\n' "$db" "$n" | load outbox_left
done

# The simulator's logs: every charge and refund at every provider, whoever asked.
curl -fsS -m 60 "$KEEL_PROVIDER_SIM_URL/_sim/charges" |
    jq -r '.data[] | [.provider, .id, .idempotency_key, .amount, .status] | @tsv' | load charges
if curl -fsS -m 60 "$KEEL_PROVIDER_SIM_URL/_sim/refunds" -o "$OUT/.sim_refunds.json" 2>/dev/null; then
    jq -r '.data[] | [.provider, .id, (.idempotency_key // ""), (.charge_idempotency_key // ""), .amount] | @tsv' \
        "$OUT/.sim_refunds.json" | load sim_refunds
fi
rm -f "$OUT/.sim_refunds.json"

# Kafka: key, ce_id and ce_type of every record (headers are comma-separated name=value).
kafka_headers() {
    timeout 300 kcat -b "$KEEL_KAFKA_BROKERS" -C -t "$1" -o beginning -e -q -f '%k\t%h\n' 2>/dev/null |
        awk -F'\t' '{ id = ""; type = ""; n = split($2, h, ",");
            for (i = 1; i <= n; i++) { p = index(h[i], "="); k = substr(h[i], 1, p - 1); v = substr(h[i], p + 1);
                if (k == "ce_id") id = v; if (k == "ce_type") type = v }
            print $1 "\t" id "\t" type }'
}
kafka_headers keel.payment-requests.v1 | load requests
kafka_headers keel.payment-events.v1 | load events

if ((LEDGER)); then
    copy_out "$KEEL_LEDGER_DB_URL" "SELECT source_type, source_id, payment_id, amount FROM journal_transactions WHERE merchant_id = '$MERCHANT'" | load ledger_txn
    copy_out "$KEEL_LEDGER_DB_URL" "SELECT check_name, subject, detail FROM ledger_audit()" | load ledger_audit
fi
if ((NOTIFIER)); then
    copy_out "$KEEL_NOTIFIER_DB_URL" "SELECT e.id, e.source_event_id, e.type, d.endpoint_id, d.status
        FROM webhook_events e LEFT JOIN webhook_deliveries d ON d.event_id = e.id
        WHERE e.merchant_id = '$MERCHANT'" | load notifier_deliveries
fi
load_file receipts "$OUT/webhooks.tsv"

# keelctl audit (the ledger's own checks, as an operator runs them), when this build has it.
KEELCTL="${KEEL_BIN_DIR:-}/keelctl"
KEELCTL_AUDIT="not available"
if [[ -x "$KEELCTL" ]] && "$KEELCTL" audit --help >/dev/null 2>&1; then
    set +e
    (
        set -a
        # shellcheck disable=SC1091
        . "$KEEL_STATE_DIR/env/keelctl.env"
        [[ -f "$KEEL_STATE_DIR/env/ledger.env" ]] && . "$KEEL_STATE_DIR/env/ledger.env"
        set +a
        timeout 120 "$KEELCTL" audit
    ) >"$OUT/keelctl-audit.txt" 2>&1
    rc=$?
    set -e
    if ((rc == 0)); then KEELCTL_AUDIT="clean"; else KEELCTL_AUDIT="exit $rc (see keelctl-audit.txt)"; fi
fi

# ---- check --------------------------------------------------------------------------------
say "checking"
psql "$AUDIT_URL" -XAtq -v ON_ERROR_STOP=1 -v ledger="$LEDGER" -v notifier="$NOTIFIER" -v refunds="$REFUNDS" \
    -v keelctl_audit="$KEELCTL_AUDIT" >/dev/null <<'EOF'
SET search_path = audit;
-- Every payment of the run: what the client was told was accepted, and whatever the gateway
-- holds for the run's merchant (a 202 lost on the way still made a payment).
CREATE TABLE universe AS SELECT id FROM accepted UNION SELECT id FROM gw;
CREATE TABLE charge_of AS
    SELECT substring(idem_key FROM 'pay_[0-9a-f]{32}') AS payment_id, provider, charge_id, amount, status
      FROM charges WHERE idem_key ~ 'pay_[0-9a-f]{32}';
CREATE TABLE paid AS
    SELECT u.id, count(c.*) FILTER (WHERE c.status = 'succeeded') AS n,
           array_agg(DISTINCT c.amount) FILTER (WHERE c.status = 'succeeded') AS amounts
      FROM universe u LEFT JOIN charge_of c ON c.payment_id = u.id GROUP BY u.id;
CREATE TABLE state AS
    SELECT u.id, g.status AS gw_status, p.status AS pm_status, g.amount AS gw_amount, p.amount AS pm_amount,
           coalesce(g.status IN ('succeeded', 'failed', 'requires_review') OR p.status = 'requires_review', false) AS terminal
      FROM universe u LEFT JOIN gw g USING (id) LEFT JOIN pm p USING (id);
CREATE TABLE req_of AS SELECT r.key AS id, r.ce_id FROM requests r JOIN universe u ON u.id = r.key
     WHERE r.ce_type = 'keel.v1.PaymentRequested';
CREATE TABLE out_of AS SELECT e.key AS id, e.ce_id, e.ce_type FROM events e JOIN universe u ON u.id = e.key
     WHERE e.ce_type IN ('keel.v1.PaymentSucceeded', 'keel.v1.PaymentFailed');

-- One row per invariant: name, violations, what a violation means. ids holds a few offenders.
CREATE TABLE result (ord int, name text, count bigint, meaning text, ids text);
INSERT INTO result
SELECT 1, 'lost', count(*), 'accepted or created but never terminal', string_agg(id, ' ')
  FROM (SELECT id FROM state WHERE NOT terminal ORDER BY id LIMIT 100000) s
UNION ALL
SELECT 2, 'accepted_not_in_gateway', count(*), 'the client got a 202 but the gateway has no such payment', string_agg(id, ' ')
  FROM (SELECT a.id FROM accepted a LEFT JOIN gw g USING (id) WHERE g.id IS NULL) s
UNION ALL
SELECT 3, 'status_mismatch', count(*), 'the gateway and keel-payments disagree on a final status', string_agg(id, ' ')
  FROM state WHERE gw_status IN ('succeeded', 'failed') AND pm_status IS DISTINCT FROM gw_status
UNION ALL
SELECT 4, 'amount_mismatch', count(*), 'amounts differ between the client, the gateway, keel-payments', string_agg(s.id, ' ')
  FROM state s LEFT JOIN accepted a USING (id)
 WHERE s.gw_amount IS DISTINCT FROM s.pm_amount OR (a.id IS NOT NULL AND a.amount IS DISTINCT FROM s.gw_amount)
UNION ALL
SELECT 5, 'double_charge', count(*), 'more than one successful charge across the providers', string_agg(id, ' ')
  FROM paid WHERE n > 1
UNION ALL
SELECT 6, 'succeeded_not_charged', count(*), 'succeeded, but no provider holds a successful charge', string_agg(s.id, ' ')
  FROM state s JOIN paid p USING (id) WHERE s.gw_status = 'succeeded' AND p.n = 0
UNION ALL
SELECT 7, 'failed_but_charged', count(*), 'failed (or still open), yet a provider took the money', string_agg(s.id, ' ')
  FROM state s JOIN paid p USING (id)
 WHERE p.n > 0 AND s.pm_status IS DISTINCT FROM 'requires_review' AND s.gw_status IS DISTINCT FROM 'succeeded'
UNION ALL
SELECT 8, 'charge_amount_mismatch', count(*), 'a provider charged another amount than the payment''s', string_agg(s.id, ' ')
  FROM state s JOIN paid p USING (id) WHERE p.n > 0 AND NOT (p.amounts <@ ARRAY[s.gw_amount])
UNION ALL
SELECT 9, 'duplicate_request_events', count(*), 'more than one PaymentRequested (distinct ce_id) for one payment', string_agg(id, ' ')
  FROM (SELECT id FROM req_of GROUP BY id HAVING count(DISTINCT ce_id) > 1) s
UNION ALL
SELECT 10, 'duplicate_outcome_events', count(*), 'more than one outcome event (distinct ce_id) for one payment', string_agg(id, ' ')
  FROM (SELECT id FROM out_of GROUP BY id HAVING count(DISTINCT ce_id) > 1) s
UNION ALL
SELECT 11, 'outcome_not_published', count(*), 'keel-payments recorded an outcome that never reached Kafka', string_agg(s.id, ' ')
  FROM state s WHERE s.pm_status IN ('succeeded', 'failed') AND NOT EXISTS (SELECT 1 FROM out_of o WHERE o.id = s.id)
UNION ALL
SELECT 12, 'payments_inbox_applied_twice', count(*), 'keel-payments applied two request events of one payment', string_agg(id, ' ')
  FROM (SELECT r.id FROM req_of r JOIN pm_inbox i ON i.event_id = r.ce_id GROUP BY r.id HAVING count(DISTINCT r.ce_id) > 1) s
UNION ALL
SELECT 13, 'gateway_inbox_applied_twice', count(*), 'the gateway applied two outcome events of one payment', string_agg(id, ' ')
  FROM (SELECT o.id FROM out_of o JOIN gw_inbox i ON i.event_id = o.ce_id GROUP BY o.id HAVING count(DISTINCT o.ce_id) > 1) s
UNION ALL
SELECT 14, 'idempotency_replay_mismatch', count(*), 'the same Idempotency-Key answered with another payment id', string_agg(key, ' ')
  FROM driver_violations WHERE kind = 'replay_mismatch'
UNION ALL
SELECT 15, 'outbox_left', coalesce(sum(n), 0), 'outbox rows still unpublished after the drain', string_agg(db || '=' || n, ' ')
  FROM outbox_left WHERE n > 0;

-- Refunds, when the gateway serves them: every refund the client was given settles, reaches
-- a provider at most once and exactly once when it succeeded, and never exceeds its payment.
-- A refund keel-payments put in review (its outcome stayed unknown past the deadline; keel
-- never guesses) counts as settled, and the provider may well have made it.
CREATE TABLE refund_review AS SELECT id FROM pm_refunds WHERE status = 'requires_review';
CREATE TABLE refund_at AS
    SELECT substring(idem_key FROM 're_[0-9a-f]{32}') AS refund_id, provider, amount
      FROM sim_refunds WHERE idem_key ~ 're_[0-9a-f]{32}';
INSERT INTO result
SELECT 40, 'refund_lost', count(*), 'a refund the client was given that never settled', string_agg(a.refund_id, ' ')
  FROM refunds_asked a LEFT JOIN gw_refunds r ON r.id = a.refund_id
 WHERE :refunds = 1 AND r.status IS DISTINCT FROM 'succeeded' AND r.status IS DISTINCT FROM 'failed'
   AND a.refund_id NOT IN (SELECT id FROM refund_review)
UNION ALL
SELECT 41, 'refund_double', count(*), 'more than one provider refund for one keel refund', string_agg(refund_id, ' ')
  FROM (SELECT refund_id FROM refund_at WHERE :refunds = 1 AND refund_id IN (SELECT id FROM gw_refunds)
         GROUP BY refund_id HAVING count(*) > 1) s
UNION ALL
SELECT 42, 'refund_succeeded_not_refunded', count(*), 'a succeeded refund no provider made', string_agg(r.id, ' ')
  FROM gw_refunds r WHERE :refunds = 1 AND r.status = 'succeeded'
   AND NOT EXISTS (SELECT 1 FROM refund_at x WHERE x.refund_id = r.id)
UNION ALL
SELECT 43, 'refund_failed_but_refunded', count(*), 'a failed (or open) refund a provider made anyway', string_agg(r.id, ' ')
  FROM gw_refunds r WHERE :refunds = 1 AND r.status <> 'succeeded'
   AND r.id NOT IN (SELECT id FROM refund_review)
   AND EXISTS (SELECT 1 FROM refund_at x WHERE x.refund_id = r.id)
UNION ALL
SELECT 44, 'refund_amount_mismatch', count(*), 'a provider refunded another amount than asked', string_agg(r.id, ' ')
  FROM gw_refunds r JOIN refund_at x ON x.refund_id = r.id WHERE :refunds = 1 AND x.amount <> r.amount
UNION ALL
SELECT 45, 'over_refunded', count(*), 'succeeded refunds of a payment exceed its amount', string_agg(payment_id, ' ')
  FROM (SELECT r.payment_id FROM gw_refunds r JOIN gw g ON g.id = r.payment_id
         WHERE :refunds = 1 AND r.status = 'succeeded' GROUP BY r.payment_id, g.amount
        HAVING sum(r.amount) > g.amount) s
UNION ALL
SELECT 46, 'refund_of_unpaid', count(*), 'a refund succeeded on a payment that did not', string_agg(r.id, ' ')
  FROM gw_refunds r JOIN gw g ON g.id = r.payment_id
 WHERE :refunds = 1 AND r.status = 'succeeded' AND g.status <> 'succeeded'
UNION ALL
SELECT 47, 'duplicate_refund_events', count(*), 'more refund outcome events for a payment than it has refunds', string_agg(key, ' ')
  FROM (SELECT e.key FROM events e JOIN universe u ON u.id = e.key
         WHERE :refunds = 1 AND e.ce_type IN ('keel.v1.RefundSucceeded', 'keel.v1.RefundFailed')
         GROUP BY e.key
        HAVING count(DISTINCT e.ce_id) > (SELECT count(*) FROM gw_refunds r WHERE r.payment_id = e.key)) s;

-- The ledger, when the stack runs it: every succeeded payment posted once, nothing else posted,
-- the books balanced (ledger_audit(): keelctl audit's checks).
INSERT INTO result
SELECT 20, 'ledger_not_posted', count(*), 'a succeeded payment has no journal transaction', string_agg(s.id, ' ')
  FROM state s WHERE :ledger = 1 AND s.gw_status = 'succeeded'
   AND NOT EXISTS (SELECT 1 FROM ledger_txn t WHERE t.source_type = 'payment' AND t.payment_id = s.id)
UNION ALL
SELECT 21, 'ledger_posted_twice', count(*), 'a payment or refund has more than one journal transaction',
       string_agg(source_type || ':' || source_id, ' ')
  FROM (SELECT source_type, source_id FROM ledger_txn WHERE :ledger = 1 GROUP BY 1, 2 HAVING count(*) > 1) s
UNION ALL
SELECT 22, 'ledger_posted_unpaid', count(*), 'a journal transaction for a payment that did not succeed', string_agg(t.payment_id, ' ')
  FROM ledger_txn t JOIN state s ON s.id = t.payment_id
 WHERE :ledger = 1 AND t.source_type = 'payment' AND s.gw_status IS DISTINCT FROM 'succeeded'
UNION ALL
SELECT 23, 'ledger_amount_mismatch', count(*), 'a journal transaction''s amount is not the payment''s', string_agg(t.payment_id, ' ')
  FROM ledger_txn t JOIN state s ON s.id = t.payment_id
 WHERE :ledger = 1 AND t.source_type = 'payment' AND t.amount <> s.gw_amount
UNION ALL
SELECT 25, 'ledger_refund_not_posted', count(*), 'a succeeded refund has no journal transaction', string_agg(r.id, ' ')
  FROM gw_refunds r WHERE :ledger = 1 AND r.status = 'succeeded'
   AND NOT EXISTS (SELECT 1 FROM ledger_txn t WHERE t.source_type = 'refund' AND t.source_id = r.id)
UNION ALL
SELECT 24, 'ledger_audit', count(*), 'violations reported by ledger_audit() (keelctl audit: ' || :'keelctl_audit' || ')',
       string_agg(check_name || ':' || subject, ' ')
  FROM ledger_audit WHERE :ledger = 1;

-- Webhooks, when the run's merchant has an endpoint: every outcome event of the run became a
-- webhook event, delivered to every endpoint (the notifier's record) and received at least
-- once with a valid signature (the receiver's own record).
INSERT INTO result
SELECT 30, 'webhook_not_delivered', count(*), 'an (event, endpoint) without a successful delivery', string_agg(event_id || '>' || endpoint_id, ' ')
  FROM (SELECT event_id, endpoint_id FROM notifier_deliveries WHERE :notifier = 1
         GROUP BY 1, 2 HAVING count(*) FILTER (WHERE status = 'succeeded') = 0) s
UNION ALL
SELECT 31, 'webhook_event_missing', count(*), 'an outcome event of the run that became no webhook event', string_agg(e.ce_id, ' ')
  FROM events e JOIN universe u ON u.id = e.key
 WHERE :notifier = 1 AND e.ce_type IN ('keel.v1.PaymentSucceeded', 'keel.v1.PaymentFailed',
                                       'keel.v1.RefundSucceeded', 'keel.v1.RefundFailed')
   AND NOT EXISTS (SELECT 1 FROM notifier_deliveries d WHERE d.source_event_id = e.ce_id)
UNION ALL
SELECT 32, 'webhook_not_received', count(*), 'a webhook event the receiver never got with a valid signature', string_agg(event_id, ' ')
  FROM (SELECT DISTINCT d.event_id FROM notifier_deliveries d WHERE :notifier = 1
         AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.event_id = d.event_id AND r.valid = 1 AND r.status = 200)) s
UNION ALL
SELECT 33, 'webhook_bad_signature', count(*), 'a delivery whose Keel-Signature did not verify', string_agg(event_id, ' ')
  FROM receipts WHERE :notifier = 1 AND valid <> 1;
EOF

# Without a ledger or notifier in the stack their rows say so instead of a count.
mapfile -t ROWS < <(psql "$AUDIT_URL" -XAtq -F $'\t' -v ON_ERROR_STOP=1 -c \
    "SELECT name, count, meaning, coalesce(left(ids, 2000), '') FROM audit.result ORDER BY ord")
: >"$OUT/invariants.tsv"
: >"$OUT/samples.txt"
broken=0
for row in "${ROWS[@]}"; do
    IFS=$'\t' read -r name count meaning ids <<<"$row"
    case "$name" in
    ledger_*) ((LEDGER)) || count="n/a" ;;
    webhook_*) ((NOTIFIER)) || count="n/a" ;;
    esac
    case "$name" in
    *refund*) ((REFUNDS)) || count="n/a" ;;
    esac
    printf '%s\t%s\t%s\n' "$name" "$count" "$meaning" >>"$OUT/invariants.tsv"
    if [[ "$count" =~ ^[0-9]+$ ]] && ((count > 0)); then
        broken=$((broken + 1))
        printf '%s (%s): %s\n' "$name" "$count" "$(cut -c1-600 <<<"$ids")" >>"$OUT/samples.txt"
    fi
done

# ---- figures ------------------------------------------------------------------------------
# Every figure in one query: (section, label, value, note) rows in print order.
FIGURES="$(psql "$AUDIT_URL" -XAtq -F $'\t' -v ON_ERROR_STOP=1 -v notifier="$NOTIFIER" -v refunds="$REFUNDS" <<'EOF'
SET search_path = audit;
SELECT section, label, value, note FROM (
    SELECT 1 AS ord, 'faults' AS section, kind AS label, count(*)::text AS value,
           CASE WHEN count(*) FILTER (WHERE result ~ 'failed') > 0
                THEN format('  (%s restart(s) failed, restored later)', count(*) FILTER (WHERE result ~ 'failed')) ELSE '' END AS note
      FROM faults GROUP BY kind
    UNION ALL SELECT 2, 'faults', 'total', count(*)::text, '' FROM faults
    UNION ALL SELECT 3, 'faults', 'crash points that fired', count(*)::text, '' FROM faults
               WHERE kind = 'crashpoint' AND result ~ '^died'
    UNION ALL SELECT 4, 'last_fault_end', '', coalesce(max(end_ms), 0)::text, '' FROM faults
    UNION ALL SELECT 10, 'payments', 'accepted (202)', count(*)::text, '' FROM accepted
    UNION ALL SELECT 11, 'payments', 'in the gateway (merchant)', count(*)::text, '' FROM gw
    UNION ALL SELECT 12, 'payments', 'terminal', count(*)::text, '' FROM state WHERE terminal
    UNION ALL SELECT 13, 'payments', '  succeeded', count(*)::text, '' FROM state WHERE gw_status = 'succeeded'
    UNION ALL SELECT 14, 'payments', '  failed', count(*)::text, '' FROM state WHERE gw_status = 'failed'
    UNION ALL SELECT 15, 'payments', '  requires_review', count(*)::text, '' FROM state
               WHERE pm_status = 'requires_review' OR gw_status = 'requires_review'
    UNION ALL SELECT 20, 'payments', 'webhook events', count(DISTINCT event_id)::text, '' FROM notifier_deliveries
    UNION ALL SELECT 21, 'payments', 'webhook deliveries received', count(*)::text, '' FROM receipts
    UNION ALL SELECT 22, 'payments', '  refused on purpose (500)', count(*)::text, '' FROM receipts WHERE status = 500
    UNION ALL SELECT 30, 'payments', 'charges (successful)', coalesce(sum(n), 0)::text, '' FROM paid
    UNION ALL SELECT 31, 'payments', 'charges at provider_b', count(*)::text, '' FROM charge_of c JOIN universe u ON u.id = c.payment_id
               WHERE c.provider = 'provider_b' AND c.status = 'succeeded'
    UNION ALL SELECT 40, 'payments', 'refunds accepted (202)', count(*)::text, '' FROM refunds_asked
    UNION ALL SELECT 41, 'payments', '  succeeded', count(*)::text, '' FROM gw_refunds WHERE status = 'succeeded'
    UNION ALL SELECT 42, 'payments', '  failed', count(*)::text, '' FROM gw_refunds WHERE status = 'failed'
    UNION ALL SELECT 43, 'payments', '  requires_review', count(*)::text, '' FROM refund_review
    UNION ALL SELECT 44, 'payments', 'provider refunds', count(*)::text, '' FROM refund_at
               WHERE refund_id IN (SELECT id FROM gw_refunds)
) f
WHERE NOT (:notifier = 0 AND ord BETWEEN 20 AND 29) AND NOT (:refunds = 0 AND ord BETWEEN 40 AND 49)
ORDER BY ord, label;
EOF
)"
figure_rows() { awk -F'\t' -v s="$1" '$1 == s { printf "  %-32s %8s%s\n", $2, $3, $4 }' <<<"$FIGURES"; }
LAST_FAULT_END="$(awk -F'\t' '$1 == "last_fault_end" { print $3 }' <<<"$FIGURES")"
if [[ -n "$DRAINED_MS" ]]; then
    if ((LAST_FAULT_END > 0)); then
        DRAIN="$(awk -v a="$DRAINED_MS" -v b="$LAST_FAULT_END" 'BEGIN { d = (a - b) / 1000; if (d < 0) d = 0; printf "%.1f s", d }')"
    else
        DRAIN="settled (no faults)"
    fi
else
    DRAIN="NOT SETTLED within the wait"
fi
driver_figure() { jq -r ".$1 // \"?\"" "$OUT/driver.json" 2>/dev/null || echo '?'; }
{
    printf '%-34s %s\n' "run" "$(driver_figure run_id)"
    printf '%-34s %s\n' "merchant" "$MERCHANT"
    echo
    printf '%-34s %8s\n' "FAULTS" "count"
    figure_rows faults
    echo
    printf '%-34s %8s\n' "PAYMENTS" "count"
    if [[ -s "$OUT/driver.json" ]]; then
        printf '  %-32s %8s\n' "started by the client" "$(driver_figure payments_started)"
        printf '  %-32s %8s\n' "abandoned by the client" "$(driver_figure abandoned)"
        printf '  %-32s %8s\n' "rejected (4xx)" "$(driver_figure rejected)"
        printf '  %-32s %8s\n' "client retries" "$(driver_figure retries)"
    fi
    figure_rows payments
    ((REFUNDS)) || printf '  %-32s %8s\n' "refunds" "not available"
    echo
    printf '%-34s %8s  %s\n' "INVARIANTS" "count" "status"
    while IFS=$'\t' read -r name count meaning; do
        status=ok
        [[ "$count" == "n/a" ]] && status="not available"
        [[ "$count" =~ ^[0-9]+$ ]] && ((count > 0)) && status=BROKEN
        printf '  %-32s %8s  %s\n' "$name" "$count" "$status"
    done <"$OUT/invariants.tsv"
    printf '  %-32s %8s  %s\n' "keelctl audit" "" "$KEELCTL_AUDIT"
    echo
    printf '%-34s %s\n' "drain after the last fault" "$DRAIN"
} | tee "$OUT/figures.txt"

if [[ "$KEELCTL_AUDIT" == exit* ]]; then broken=$((broken + 1)); fi
if ((broken > 0)); then
    echo
    echo "BROKEN: $broken invariant(s); offending ids in $OUT/samples.txt:"
    head -c 3000 "$OUT/samples.txt"
    exit 1
fi
echo
echo "every invariant holds"
