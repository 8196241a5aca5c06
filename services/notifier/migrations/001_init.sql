-- keel-notifier: merchants' webhook endpoints, the events rendered for them, and one delivery
-- per (event, endpoint), worked by lease-holding workers on a persisted retry schedule.

-- A merchant's endpoint. The signing secrets live only here (never on Kafka, never logged).
-- During a rotation previous_secret stays valid until previous_secret_expires_at, and
-- deliveries carry a signature with each.
CREATE TABLE webhook_endpoints (
    id                         text PRIMARY KEY,          -- we_<32 hex>
    merchant_id                text NOT NULL,
    url                        text NOT NULL,
    description                text NOT NULL DEFAULT '',
    enabled_events             text[] NOT NULL,           -- event types, or {'*'}
    secret                     text NOT NULL,             -- whsec_...
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    status                     text NOT NULL DEFAULT 'enabled'
                               CHECK (status IN ('enabled', 'disabled')),
    disabled_reason            text,
    disabled_at                timestamptz,
    -- the first failed attempt of the current unbroken run of failures; NULL after a success
    failing_since              timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    deleted_at                 timestamptz
);
CREATE INDEX webhook_endpoints_merchant_idx ON webhook_endpoints (merchant_id, created_at)
    WHERE deleted_at IS NULL;

-- An event as merchants see it, rendered ONCE: every attempt sends these exact bytes, so a
-- signature always covers what was sent.
CREATE TABLE webhook_events (
    id              text PRIMARY KEY,                 -- evt_<32 hex>
    merchant_id     text NOT NULL,
    type            text NOT NULL,                    -- e.g. payment.succeeded
    source_event_id text NOT NULL UNIQUE,             -- ce_id of the Kafka record
    body            text NOT NULL,
    traceparent     text,                             -- of the outcome, for the delivery's logs
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One event to one endpoint. status: pending (an attempt is due at next_attempt_at),
-- succeeded, or dead (out of attempts, or the endpoint went away; kept for replay).
CREATE TABLE webhook_deliveries (
    id              text PRIMARY KEY,                 -- whd_<32 hex>
    event_id        text NOT NULL REFERENCES webhook_events (id),
    endpoint_id     text NOT NULL REFERENCES webhook_endpoints (id),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'dead')),
    -- attempts made in the current schedule (a replay starts a new schedule)
    attempts        integer NOT NULL DEFAULT 0,
    attempts_total  integer NOT NULL DEFAULT 0,
    replays         integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_owner     text,
    lease_until     timestamptz,
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    UNIQUE (event_id, endpoint_id)
);
-- The workers' claim: due pending deliveries, oldest due first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
-- Operators list dead deliveries; housekeeping prunes old finished ones.
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (updated_at) WHERE status = 'dead';
CREATE INDEX webhook_deliveries_completed_idx ON webhook_deliveries (completed_at)
    WHERE status = 'succeeded';

-- The delivery log: one row per attempt, for operators and merchants' support questions.
CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,                    -- 1-based within its schedule
    started_at   timestamptz NOT NULL,
    duration_ms  integer NOT NULL,
    address      text,                                -- the address connected to
    http_status  integer,
    error        text,
    outcome      text NOT NULL                        -- succeeded, retry, dead, gone, ...
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
