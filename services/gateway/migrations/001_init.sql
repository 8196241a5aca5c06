-- keel-gateway's first schema: merchants and their API keys, idempotency records, and the
-- gateway's own view of each payment (what GET /v1/payments/:id answers).

CREATE TABLE merchants (
    id text PRIMARY KEY CHECK (id ~ '^mer_[0-9a-f]{32}$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- IANA name; a merchant's local day (statements, settlement) is computed in it.
    time_zone text NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a secret is stored: a leaked table holds no usable key.
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    merchant_id text NOT NULL REFERENCES merchants (id),
    key_hash text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    key_prefix text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_merchant_idx ON api_keys (merchant_id, created_at);

-- One row per (merchant, Idempotency-Key). The primary key is what makes a concurrent
-- twin request wait for the first one's commit and then replay its answer.
CREATE TABLE idempotency_keys (
    merchant_id text NOT NULL,
    idem_key text NOT NULL,
    request_hash text NOT NULL,
    response_status int,
    response_body text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (merchant_id, idem_key)
);
-- For the pruning job that deletes expired keys.
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- No foreign key to merchants: events published straight to Kafka by external producers
-- may name merchants the gateway has not seen, and the view must still record them.
CREATE TABLE payments (
    id text PRIMARY KEY,
    merchant_id text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    description text,
    metadata jsonb NOT NULL DEFAULT '{}',
    payment_method text,
    status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_code text,
    failure_message text,
    provider text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Lists of a merchant's payments, newest first, with a stable tie-break for pagination.
CREATE INDEX payments_merchant_created_idx ON payments (merchant_id, created_at DESC, id DESC);
