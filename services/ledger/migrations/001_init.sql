-- keel-ledger's books: merchants (a copy kept from keel.merchant-events.v1), accounts with
-- their running balances, and the append-only double-entry journal. docs/ledger.md explains
-- the posting rules; amounts are signed minor units, debit > 0 and credit < 0.

-- The ledger's own copy of the gateway's merchants; `version` orders updates, so a stale
-- MerchantUpdated never overwrites a newer one.
CREATE TABLE merchants (
    id text PRIMARY KEY,
    name text NOT NULL,
    time_zone text NOT NULL,
    default_currency text NOT NULL CHECK (default_currency ~ '^[a-z]{3}$'),
    version bigint NOT NULL CHECK (version >= 1),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One account per (kind, owner, currency): provider_clearing:<provider>:<cur>,
-- merchant_payable:<merchant>:<cur>, fee_revenue::<cur>. `balance` is the sum of the
-- account's lines, kept current in the transaction that adds them (keelctl audit checks it).
CREATE TABLE accounts (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('provider_clearing', 'merchant_payable', 'fee_revenue')),
    owner text NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    balance bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_kind_owner_currency_key UNIQUE (kind, owner, currency),
    CHECK ((kind = 'fee_revenue') = (owner = ''))
);

-- One row per posted payment or refund. The two unique constraints are what make a
-- payment post exactly once: a redelivered event (same id) and a republished one (new id,
-- same payment) both collide here. amount and fee are the merchant's view: a payment's
-- gross amount and keel's fee, a refund's negative amount and fee 0.
CREATE TABLE journal_transactions (
    id text COLLATE "C" PRIMARY KEY CHECK (id ~ '^txn_[0-9a-f]{32}$'),
    source_type text NOT NULL CHECK (source_type IN ('payment', 'refund')),
    source_id text NOT NULL,
    source_event_id text NOT NULL,
    merchant_id text NOT NULL,
    payment_id text NOT NULL,
    currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    amount bigint NOT NULL,
    fee bigint NOT NULL CHECK (fee >= 0),
    effective_at timestamptz NOT NULL,
    posted_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT journal_transactions_source_event_key UNIQUE (source_event_id),
    CONSTRAINT journal_transactions_source_key UNIQUE (source_type, source_id)
);
-- A merchant's entries, newest first, with the id as the tie-break of the cursor.
CREATE INDEX journal_transactions_merchant_idx
    ON journal_transactions (merchant_id, effective_at DESC, id DESC);

CREATE TABLE journal_lines (
    id bigserial PRIMARY KEY,
    transaction_id text COLLATE "C" NOT NULL REFERENCES journal_transactions (id),
    account_id bigint NOT NULL REFERENCES accounts (id),
    amount bigint NOT NULL,
    currency text NOT NULL,
    -- the transaction's effective time, copied so statements read one index
    effective_at timestamptz NOT NULL
);
CREATE INDEX journal_lines_transaction_idx ON journal_lines (transaction_id);
CREATE INDEX journal_lines_account_idx ON journal_lines (account_id, effective_at, transaction_id);

-- Events of keel.payment-events.v1 that were claimed in the inbox but posted nothing because
-- their payment or refund was already posted under another event id. With the journal they
-- account for every inbox row, which is how the audit proves "posted exactly once".
CREATE TABLE skipped_events (
    event_id text PRIMARY KEY,
    source_type text NOT NULL,
    source_id text NOT NULL,
    reason text NOT NULL CHECK (reason IN ('already_posted')),
    skipped_at timestamptz NOT NULL DEFAULT now()
);

-- The journal is append-only: a correction is a new transaction, never an edit.
CREATE FUNCTION journal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'post a correcting transaction instead';
END $$;
CREATE TRIGGER journal_transactions_append_only BEFORE UPDATE OR DELETE ON journal_transactions
    FOR EACH ROW EXECUTE FUNCTION journal_refuse_change();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION journal_refuse_change();

-- At COMMIT (deferred, so every line of the transaction is in): the lines of a journal
-- transaction sum to zero per currency, and each line's currency is its account's.
CREATE FUNCTION journal_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT l.currency, sum(l.amount) AS total INTO bad
      FROM journal_lines l
     WHERE l.transaction_id = NEW.transaction_id
     GROUP BY l.currency
    HAVING sum(l.amount) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal transaction % does not balance: its % lines sum to %',
            NEW.transaction_id, bad.currency, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM accounts a WHERE a.id = NEW.account_id
                                         AND a.currency <> NEW.currency) THEN
        RAISE EXCEPTION 'journal line of % is in % but account % is not',
            NEW.transaction_id, NEW.currency, NEW.account_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER journal_lines_balanced AFTER INSERT ON journal_lines
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION journal_check_balanced();

-- Every invariant of the books, one row per violation (none when all is well). keelctl
-- audit prints these and keel-ledger exports their count as keel_ledger_audit_failures.
-- 'ledger.payment-events' is the inbox consumer name of the payment-events handler.
CREATE FUNCTION ledger_audit()
RETURNS TABLE (check_name text, subject text, detail text)
LANGUAGE sql STABLE AS $$
    SELECT 'transaction_unbalanced', l.transaction_id,
           format('its %s lines sum to %s, not 0', l.currency, sum(l.amount))
      FROM journal_lines l
     GROUP BY l.transaction_id, l.currency
    HAVING sum(l.amount) <> 0
    UNION ALL
    SELECT 'transaction_too_few_lines', t.id,
           format('%s line(s); a transaction needs at least 2', count(l.id))
      FROM journal_transactions t LEFT JOIN journal_lines l ON l.transaction_id = t.id
     GROUP BY t.id
    HAVING count(l.id) < 2
    UNION ALL
    SELECT 'journal_unbalanced', l.currency,
           format('all %s lines sum to %s, not 0', l.currency, sum(l.amount))
      FROM journal_lines l
     GROUP BY l.currency
    HAVING sum(l.amount) <> 0
    UNION ALL
    SELECT 'balance_mismatch', format('%s:%s:%s', a.kind, a.owner, a.currency),
           format('balance %s but its lines sum to %s (account id %s)', a.balance,
                  coalesce(s.total, 0), a.id)
      FROM accounts a
      LEFT JOIN (SELECT account_id, sum(amount) AS total FROM journal_lines
                  GROUP BY account_id) s ON s.account_id = a.id
     WHERE a.balance <> coalesce(s.total, 0)
    UNION ALL
    SELECT 'line_currency_mismatch', l.transaction_id,
           format('a %s line on account %s, which is in %s', l.currency, a.id, a.currency)
      FROM journal_lines l JOIN accounts a ON a.id = l.account_id
     WHERE l.currency <> a.currency
    UNION ALL
    SELECT 'posted_more_than_once', t.source_type || ':' || t.source_id,
           format('%s journal transactions', count(*))
      FROM journal_transactions t
     GROUP BY t.source_type, t.source_id
    HAVING count(*) > 1
    UNION ALL
    SELECT 'event_not_posted', i.event_id,
           'claimed in the inbox but neither posted nor recorded as a duplicate'
      FROM inbox i
     WHERE i.consumer = 'ledger.payment-events'
       AND NOT EXISTS (SELECT 1 FROM journal_transactions t WHERE t.source_event_id = i.event_id)
       AND NOT EXISTS (SELECT 1 FROM skipped_events s WHERE s.event_id = i.event_id)
    UNION ALL
    SELECT 'duplicate_without_original', s.event_id,
           format('skipped as already posted, but %s:%s has no journal transaction',
                  s.source_type, s.source_id)
      FROM skipped_events s
     WHERE NOT EXISTS (SELECT 1 FROM journal_transactions t
                        WHERE t.source_type = s.source_type AND t.source_id = s.source_id)
    UNION ALL
    SELECT 'constraint_missing', c.name, 'the constraint that makes postings unique is gone'
      FROM (VALUES ('journal_transactions_source_key'),
                   ('journal_transactions_source_event_key')) AS c (name)
     WHERE NOT EXISTS (SELECT 1 FROM pg_constraint p
                        WHERE p.conname = c.name
                          AND p.conrelid = 'journal_transactions'::regclass)
$$;
