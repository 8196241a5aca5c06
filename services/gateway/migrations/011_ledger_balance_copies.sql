-- The last balance the ledger reported per merchant. GET /v1/balance refreshes it on every
-- successful call and answers from it, marked stale with its as_of, when the ledger is down
-- or slow. Only ever moves forward in as_of.
CREATE TABLE ledger_balance_copies (
    merchant_id text PRIMARY KEY,
    available jsonb NOT NULL CHECK (jsonb_typeof(available) = 'array'),
    as_of timestamptz NOT NULL,
    copied_at timestamptz NOT NULL DEFAULT now()
);
