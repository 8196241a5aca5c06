-- API keys that can be rotated with a grace period (expires_at) and carry their own rate
-- limit (NULL = the gateway's KEEL_GATEWAY_RATE_LIMIT_* defaults). Both set with keelctl.
ALTER TABLE api_keys
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN rate_limit_per_s double precision
        CHECK (rate_limit_per_s > 0 AND rate_limit_per_s <= 100000),
    ADD COLUMN rate_limit_burst double precision
        CHECK (rate_limit_burst >= 1 AND rate_limit_burst <= 1000000),
    -- The key that replaced this one in `keelctl apikey rotate`, for the audit trail.
    ADD COLUMN replaced_by text REFERENCES api_keys (id),
    ADD CONSTRAINT api_keys_rate_limit_pair
        CHECK ((rate_limit_per_s IS NULL) = (rate_limit_burst IS NULL));
