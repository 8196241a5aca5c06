-- Merchants become shared reference data (issue 4): each gets a default currency and a version
-- that grows by one per change, carried by MerchantCreated / MerchantUpdated on
-- keel.merchant-events.v1 so other services (the ledger) can order the updates they copy.
ALTER TABLE merchants
    ADD COLUMN default_currency text NOT NULL DEFAULT 'usd' CHECK (default_currency ~ '^[a-z]{3}$'),
    ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
