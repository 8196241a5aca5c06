-- keel-payments: one row per payment, worked as a state machine by lease-holding workers.
--
-- phase says where the work stands, and with it what is safe to do next:
--   received        nothing can have been charged yet: the next step is a charge call
--   charge_started  a charge call may have reached the provider and its outcome is not
--                   recorded: the next step is a status lookup under the same key
--   done            the outcome is recorded (status says which)
-- status is what the payment is, for everyone else:
--   processing, succeeded, failed, requires_review (an outcome nobody could establish;
--   an operator decides, the service never guesses).
CREATE TABLE payments (
    id                 text PRIMARY KEY,
    merchant_id        text NOT NULL,
    amount             bigint NOT NULL CHECK (amount > 0),
    currency           text NOT NULL,
    description        text NOT NULL DEFAULT '',
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    payment_method     text NOT NULL DEFAULT '',
    status             text NOT NULL DEFAULT 'processing'
                       CHECK (status IN ('processing', 'succeeded', 'failed', 'requires_review')),
    phase              text NOT NULL DEFAULT 'received'
                       CHECK (phase IN ('received', 'charge_started', 'done')),
    provider           text,
    provider_charge_id text,
    failure_code       text,
    failure_message    text,
    -- provider attempts that ended without an outcome (not processed or unknown)
    attempts           integer NOT NULL DEFAULT 0,
    -- true once any attempt ended without knowing whether the provider charged; such a
    -- payment is never failed for "provider unavailable", only sent to review
    ambiguous          boolean NOT NULL DEFAULT false,
    last_error         text,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    lease_owner        text,
    lease_until        timestamptz,
    traceparent        text,
    request_event_id   text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The workers' claim query: due payments that are not done, oldest due first.
CREATE INDEX payments_due_idx ON payments (phase, next_attempt_at) WHERE phase <> 'done';
-- Operators look for payments that need a person.
CREATE INDEX payments_review_idx ON payments (updated_at) WHERE status = 'requires_review';
