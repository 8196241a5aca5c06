/* The SQL of a POST /v1/payments, as the gateway sends it, in one place so tools (bench/)
 * can replay exactly these statements. A create runs, in this order:
 *   1. GATEWAY_SQL_AUTH_LOOKUP      outside any transaction ($1 key hash)
 *   2. GATEWAY_SQL_IDEM_CLAIM       outside any transaction: the claim commits at once so a
 *                                   concurrent twin sees it ($1 merchant, $2 key, $3 request
 *                                   hash, $4 method, $5 path, $6 canonical params, $7 lock
 *                                   token, $8 lease in ms); no row back = someone else's key
 *   3. BEGIN (READ COMMITTED)
 *   4. GATEWAY_SQL_PAYMENT_INSERT   ($1 id, $2 merchant, $3 amount, $4 currency, $5
 *                                   description, $6 metadata JSON, $7 payment method)
 *   5. the outbox row (keel/outbox.h)
 *   6. GATEWAY_SQL_IDEM_COMPLETE    ($1 merchant, $2 key, $3 lock token, $4 status, $5 body)
 *   7. COMMIT */
#ifndef GATEWAY_PAYMENT_SQL_H
#define GATEWAY_PAYMENT_SQL_H

/* A rotated key keeps working until its expires_at (the grace period keelctl gave it). */
#define GATEWAY_SQL_AUTH_LOOKUP                                                                    \
    "SELECT id, merchant_id, key_hash, coalesce(rate_limit_per_s, 0), "                            \
    "coalesce(rate_limit_burst, 0) FROM api_keys "                                                 \
    "WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"

/* How long a key replays its first answer; after that the key may be used afresh. */
#define GATEWAY_SQL_IDEM_TTL "interval '24 hours'"

/* A new key, one past its 24 hours, or one whose holder died (lease over) while working on
 * the same request becomes ours: RETURNING gives a row exactly then. Rows without a lease
 * count as a lease long over. */
#define GATEWAY_SQL_IDEM_CLAIM                                                                     \
    "INSERT INTO idempotency_keys AS k (merchant_id, idem_key, request_hash, request_method, "     \
    "request_path, request_params, lock_token, locked_until, expires_at, created_at) "             \
    "VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::bigint * interval '1 millisecond', "          \
    "now() + " GATEWAY_SQL_IDEM_TTL ", now()) "                                                    \
    "ON CONFLICT (merchant_id, idem_key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "     \
    "request_method = EXCLUDED.request_method, request_path = EXCLUDED.request_path, "             \
    "request_params = EXCLUDED.request_params, lock_token = EXCLUDED.lock_token, "                 \
    "locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at, "                     \
    "created_at = EXCLUDED.created_at, response_status = NULL, response_body = NULL "              \
    "WHERE k.expires_at <= now() OR (k.response_status IS NULL "                                   \
    "AND coalesce(k.locked_until, '-infinity') <= now() "                                          \
    "AND k.request_hash = EXCLUDED.request_hash) "                                                 \
    "RETURNING k.lock_token"

/* Only the holder of the lease records, and only once. */
#define GATEWAY_SQL_IDEM_COMPLETE                                                                  \
    "UPDATE idempotency_keys SET response_status = $4::int, response_body = $5, "                  \
    "lock_token = NULL, locked_until = NULL "                                                      \
    "WHERE merchant_id = $1 AND idem_key = $2 AND lock_token = $3 AND response_status IS NULL"

/* The columns a payment is rendered from, over alias t, in payment_store.c's order.
 * Timestamps travel as epoch milliseconds so rendering does not depend on the session's
 * DateStyle or TimeZone. */
#define GATEWAY_SQL_PAYMENT_COLUMNS                                                                \
    "t.id, t.amount, t.currency, t.status, t.description, t.metadata::text, t.payment_method, "    \
    "t.failure_code, t.failure_message, t.provider, "                                              \
    "floor(extract(epoch FROM t.created_at) * 1000)::bigint, "                                     \
    "floor(extract(epoch FROM t.updated_at) * 1000)::bigint, "                                     \
    "(SELECT coalesce(sum(r.amount), 0) FROM refunds r WHERE r.payment_id = t.id "                 \
    "AND r.status = 'succeeded')"

#define GATEWAY_SQL_PAYMENT_INSERT                                                                 \
    "INSERT INTO payments AS t (id, merchant_id, amount, currency, description, metadata, "        \
    "payment_method, status) VALUES ($1, $2, $3::bigint, $4, $5, $6::jsonb, $7, 'pending') "       \
    "RETURNING " GATEWAY_SQL_PAYMENT_COLUMNS

#endif
