-- libkeel's own tables, applied as component "libkeel" in every service database.

-- Events waiting to be published. The relay reads from the oldest id, publishes, and deletes
-- a row only after the broker acknowledged it; ce_id lets consumers drop duplicates.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    message_key text NOT NULL,
    payload bytea NOT NULL,
    ce_id text NOT NULL UNIQUE,
    ce_source text NOT NULL,
    ce_type text NOT NULL,
    ce_time timestamptz,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Events a consumer already applied: the row commits with the effect, so a redelivered
-- event finds it and changes nothing.
CREATE TABLE inbox (
    consumer text NOT NULL,
    event_id text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- For pruning rows older than the topics' retention.
CREATE INDEX inbox_processed_at_idx ON inbox (processed_at);
