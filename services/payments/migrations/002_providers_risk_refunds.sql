-- keel-payments: several providers, the risk check, and refunds.
--
-- phase gains 'risk_checked' (the risk decision is recorded, no provider called yet for this
-- round); in 'charge_started', provider names the provider the charge may have reached, so
-- recovery asks that one first.
ALTER TABLE payments DROP CONSTRAINT payments_phase_check;
ALTER TABLE payments ADD CONSTRAINT payments_phase_check
    CHECK (phase IN ('received', 'risk_checked', 'charge_started', 'done'));

ALTER TABLE payments
    -- 0..100 from the risk API; -1 when local rules decided; NULL before the check
    ADD COLUMN risk_score integer CHECK (risk_score BETWEEN -1 AND 100),
    -- true when local rules decided because the risk API failed, was slow or is off
    ADD COLUMN risk_degraded boolean NOT NULL DEFAULT false,
    ADD COLUMN risk_reason text,
    -- the provider at which an outcome was ever unknown: the payment is pinned to it and is
    -- never sent to another provider (the first may have charged)
    ADD COLUMN ambiguous_provider text,
    -- when the outcome first became unknown; KEEL_PAYMENTS_UNKNOWN_DEADLINE_MS runs from here
    ADD COLUMN unknown_since timestamptz;

-- Rows from before this migration: provider A was the only provider, so an unrecorded charge
-- can only be there.
UPDATE payments SET provider = 'provider_a' WHERE phase = 'charge_started' AND provider IS NULL;
UPDATE payments SET ambiguous_provider = coalesce(provider, 'provider_a'),
                    unknown_since = updated_at
    WHERE ambiguous AND phase <> 'done';

-- One row per charge at one provider (a call and its in-place retries): written with the
-- intent before the first call, finished with the outcome. outcome NULL on a row that is not
-- the payment's current one means the process died before recording it.
CREATE TABLE payment_attempts (
    id          bigserial PRIMARY KEY,
    payment_id  text NOT NULL REFERENCES payments (id),
    provider    text NOT NULL,
    outcome     text CHECK (outcome IN ('succeeded', 'declined', 'not_processed', 'unknown')),
    calls       integer NOT NULL DEFAULT 0,
    detail      text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX payment_attempts_payment_idx ON payment_attempts (payment_id);

-- Refunds, worked like payments: phases around the provider call, lease-holding workers.
--   received        nothing sent yet
--   refund_started  a refund call may have reached the provider: look it up first
--   done            status says which outcome
-- A refund row exists for every RefundRequested consumed, also for those refused at intake
-- (status failed), so a redelivered request finds its answer.
CREATE TABLE refunds (
    id                 text PRIMARY KEY,
    payment_id         text NOT NULL,
    merchant_id        text NOT NULL,
    amount             bigint NOT NULL CHECK (amount > 0),
    currency           text NOT NULL,
    reason             text NOT NULL DEFAULT '',
    status             text NOT NULL DEFAULT 'processing'
                       CHECK (status IN ('processing', 'succeeded', 'failed', 'requires_review')),
    phase              text NOT NULL DEFAULT 'received'
                       CHECK (phase IN ('received', 'refund_started', 'done')),
    -- the provider that charged the payment, and its charge id: refunds go nowhere else
    provider           text,
    charge_id          text,
    provider_refund_id text,
    failure_code       text,
    failure_message    text,
    attempts           integer NOT NULL DEFAULT 0,
    ambiguous          boolean NOT NULL DEFAULT false,
    unknown_since      timestamptz,
    last_error         text,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    lease_owner        text,
    lease_until        timestamptz,
    traceparent        text,
    request_event_id   text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- What is refunded or in flight per payment (the over-refund check sums these).
CREATE INDEX refunds_payment_idx ON refunds (payment_id);
CREATE INDEX refunds_due_idx ON refunds (phase, next_attempt_at) WHERE phase <> 'done';
