-- The gateway's view of refunds: written pending by POST /v1/payments/{id}/refunds (with the
-- RefundRequested outbox row, in one transaction) and finished by RefundSucceeded /
-- RefundFailed from keel.payment-events.v1.
CREATE TABLE refunds (
    id text PRIMARY KEY CHECK (id ~ '^re_[0-9a-f]{32}$'),
    payment_id text NOT NULL REFERENCES payments (id),
    merchant_id text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason text,
    failure_code text,
    failure_message text,
    provider text,
    provider_refund_id text,
    created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- A payment's refunds newest first (GET .../refunds), and the refundable-amount sum.
CREATE INDEX refunds_payment_created_idx ON refunds (payment_id, created_at DESC, id DESC);
