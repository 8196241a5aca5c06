-- Payments keel-payments could not settle (an ambiguous provider answer past its deadline)
-- wait for a person as requires_review. Lists are ordered by (created_at, id); created_at is
-- kept at the millisecond precision the API shows, so a client sorting what it received by
-- the rendered created_at and id gets the server's order.
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'requires_review'));
ALTER TABLE payments ALTER COLUMN created_at SET DEFAULT date_trunc('milliseconds', now());
UPDATE payments SET created_at = date_trunc('milliseconds', created_at)
    WHERE created_at <> date_trunc('milliseconds', created_at);
-- GET /v1/payments?status=... pages through one status of one merchant.
CREATE INDEX payments_merchant_status_created_idx
    ON payments (merchant_id, status, created_at DESC, id DESC);
