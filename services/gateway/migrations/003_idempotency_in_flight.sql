-- Idempotency keys claimed in a short transaction of their own before the work starts, so a
-- concurrent request with the same key sees the claim (409) instead of waiting on a lock.
-- A claim holds a lease (locked_until) with a random lock_token: when the process dies
-- mid-request, the key becomes recoverable once the lease is over, and the token keeps a
-- stale owner from recording an answer after someone else took over.
ALTER TABLE idempotency_keys
    ADD COLUMN request_method text NOT NULL DEFAULT 'POST',
    ADD COLUMN request_path text NOT NULL DEFAULT '',
    -- The request's parameters as canonical JSON, to say which ones differ on a reuse (422).
    ADD COLUMN request_params text NOT NULL DEFAULT '{}',
    ADD COLUMN lock_token text,
    ADD COLUMN locked_until timestamptz;
