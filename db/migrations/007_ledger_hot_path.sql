-- The ledger's hot path: a busy account (one API client submitting many generations at once) must
-- not serialise on more than it has to. Postgres holds a row lock until the transaction's commit
-- record is on disk, so every transaction that touches an account's row queues behind the one
-- before it. This migration keeps that queue to what correctness needs:
--
-- 1. A reserve takes the account's row lock in its last statement (a guarded UPDATE), so the lock
--    is held only for the commit itself. It can be called as one autocommitted statement
--    (p_user), so no client round trip happens while the lock is held.
-- 2. A commit does not touch the account row at all. It changes no one's available credit, only
--    moves a debit from pending to posted; that move is counted in one of eight stripe rows of
--    credit_commit_stripes, which the reconciler folds into the account row every minute. The
--    true counters are the view credit_balances (account row + stripes).
-- 3. Lots exist only for grants that expire. Credit that never expires needs no draw order, so a
--    reserve on an account without expiring credit touches no lot; with expiring credit it takes
--    the old path (lock, expire what lapsed, draw soonest-expiring first).
-- 4. credit_transfers loses its foreign keys to credit_accounts and users: each insert took
--    FOR KEY SHARE on the hot account row, and many sharers of one row cost a multixact each.
--    Only the functions below insert transfers; ledger:check verifies every transfer's account.
--    credit_transfers_account_idx goes too: (user_id, ...) serves every read, accounts are 1:1.
-- 5. Reserves for one user that arrive together run as one batch (ledger_reserve_batch, at the end).

ALTER TABLE credit_transfers
  DROP CONSTRAINT credit_transfers_account_id_fkey,
  DROP CONSTRAINT credit_transfers_user_id_fkey;
DROP INDEX credit_transfers_account_idx;

-- 3. Lots only for expiring grants; the account knows how much expiring credit it holds.
ALTER TABLE credit_accounts ADD COLUMN expiring_credit bigint NOT NULL DEFAULT 0
  CHECK (expiring_credit >= 0);
DELETE FROM credit_allocations al USING credit_lots l WHERE al.grant_id = l.grant_id AND l.expires_at IS NULL;
DELETE FROM credit_lots WHERE expires_at IS NULL;
UPDATE credit_accounts a
SET expiring_credit = (SELECT coalesce(sum(remaining), 0) FROM credit_lots l WHERE l.account_id = a.id);
ALTER TABLE credit_accounts ADD CONSTRAINT credit_accounts_expiring_within_available
  CHECK (expiring_credit <= credits_posted - debits_posted - debits_pending);
DROP INDEX credit_lots_draw_order;
CREATE INDEX credit_lots_draw_order ON credit_lots (account_id, expires_at, grant_id) WHERE remaining > 0;
ALTER TABLE credit_lots ALTER COLUMN expires_at SET NOT NULL;

-- 2. Commits counted off the account row.
CREATE TABLE credit_commit_stripes (
  account_id uuid NOT NULL REFERENCES credit_accounts (id),
  stripe smallint NOT NULL CHECK (stripe BETWEEN 0 AND 7),
  user_id uuid NOT NULL,
  -- Committed since the last fold: still counted in the account row's debits_pending.
  amount bigint NOT NULL CHECK (amount >= 0),
  PRIMARY KEY (account_id, stripe)
);
ALTER TABLE credit_commit_stripes ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_commit_stripes FORCE ROW LEVEL SECURITY;
CREATE POLICY credit_commit_stripes_owner ON credit_commit_stripes TO velro_app
  USING (user_id = (SELECT current_app_user()));
CREATE POLICY credit_commit_stripes_system ON credit_commit_stripes TO velro_system USING (true) WITH CHECK (true);
GRANT SELECT ON credit_commit_stripes TO velro_app;
GRANT SELECT, INSERT, UPDATE ON credit_commit_stripes TO velro_system;

-- The counters as TigerBeetle defines them. Read these, not credit_accounts.
CREATE VIEW credit_balances WITH (security_invoker = true) AS
SELECT a.id AS account_id, a.user_id, a.credits_posted,
       a.debits_posted + s.committed AS debits_posted,
       a.debits_pending - s.committed AS debits_pending,
       a.credits_posted - a.debits_posted - a.debits_pending AS available,
       a.expiring_credit
FROM credit_accounts a
CROSS JOIN LATERAL (SELECT coalesce(sum(amount), 0)::bigint AS committed
                    FROM credit_commit_stripes WHERE account_id = a.id) s;
GRANT SELECT ON credit_balances TO velro_app, velro_system;

-- Replaced below with new signatures (an optional acting user) or new bodies.
DROP FUNCTION ledger_reserve(uuid, bigint, uuid, timestamptz);
DROP FUNCTION ledger_commit(uuid, uuid);
DROP FUNCTION ledger_release(uuid, uuid, text);
DROP FUNCTION ledger_begin_resolve(uuid, uuid, text);

-- The user a ledger call acts for: p_user when given (a call that is its own transaction), else the
-- user the transaction is scoped to. Both given and different is a bug in the caller.
CREATE FUNCTION ledger_acting_user(p_user uuid) RETURNS uuid
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_scoped uuid := current_app_user();
BEGIN
  IF p_user IS NOT NULL AND v_scoped IS NOT NULL AND p_user <> v_scoped THEN
    RAISE EXCEPTION 'the transaction is scoped to user %, not %', v_scoped, p_user
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF coalesce(p_user, v_scoped) IS NULL THEN
    RAISE EXCEPTION 'no user: pass one or scope the transaction to one' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN coalesce(p_user, v_scoped);
END $$;

-- Expires every lapsed lot of an account that still holds credit. Caller holds the account lock.
CREATE OR REPLACE FUNCTION ledger_expire_lapsed_lots(p_account credit_accounts) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_lot credit_lots;
  v_total bigint := 0;
BEGIN
  FOR v_lot IN
    SELECT * FROM credit_lots
    -- clock_timestamp(), not now(): the transaction may have started before it got the account lock.
    WHERE account_id = p_account.id AND remaining > 0 AND expires_at <= clock_timestamp()
  LOOP
    INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, grant_id, reason)
    VALUES (ledger_derived_id('expire:' || v_lot.grant_id), p_account.id, p_account.user_id, 'expire',
            v_lot.remaining, v_lot.grant_id, 'grant expired');
    UPDATE credit_lots SET remaining = 0 WHERE grant_id = v_lot.grant_id;
    v_total := v_total + v_lot.remaining;
  END LOOP;
  IF v_total > 0 THEN
    UPDATE credit_accounts SET debits_posted = debits_posted + v_total, expiring_credit = expiring_credit - v_total
    WHERE id = p_account.id;
  END IF;
  RETURN v_total;
END $$;

-- Grants credit to a user (system path: admin grants, sign-up credit).
CREATE OR REPLACE FUNCTION ledger_grant(p_id uuid, p_user_id uuid, p_amount bigint, p_reason text,
                                        p_expires_at timestamptz DEFAULT NULL)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_account credit_accounts;
  v_t credit_transfers;
BEGIN
  PERFORM ledger_check_amount(p_amount);
  SELECT * INTO v_account FROM credit_accounts WHERE user_id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no credit account for user %', p_user_id USING ERRCODE = 'VL404';
  END IF;
  SELECT * INTO v_t FROM credit_transfers WHERE id = p_id;
  IF FOUND THEN
    IF v_t.kind = 'grant' AND v_t.account_id = v_account.id AND v_t.amount = p_amount
       AND v_t.reason IS NOT DISTINCT FROM p_reason AND v_t.expires_at IS NOT DISTINCT FROM p_expires_at THEN
      RETURN v_t;
    END IF;
    PERFORM ledger_conflict(p_id);
  END IF;
  IF p_expires_at IS NOT NULL AND p_expires_at <= now() THEN
    RAISE EXCEPTION 'expiresAt must be in the future' USING ERRCODE = 'VL400';
  END IF;
  INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, expires_at, reason)
  VALUES (p_id, v_account.id, p_user_id, 'grant', p_amount, p_expires_at, p_reason)
  RETURNING * INTO v_t;
  IF p_expires_at IS NOT NULL THEN
    INSERT INTO credit_lots (grant_id, account_id, user_id, expires_at, remaining)
    VALUES (p_id, v_account.id, p_user_id, p_expires_at, p_amount);
  END IF;
  UPDATE credit_accounts
  SET credits_posted = credits_posted + p_amount,
      expiring_credit = expiring_credit + CASE WHEN p_expires_at IS NULL THEN 0 ELSE p_amount END
  WHERE id = v_account.id;
  RETURN v_t;
END $$;

-- Reserves credit: a pending debit with a deadline. Acts for p_user, or the transaction's user.
CREATE FUNCTION ledger_reserve(p_id uuid, p_amount bigint, p_generation_id uuid, p_deadline timestamptz,
                               p_user uuid DEFAULT NULL)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_user uuid := ledger_acting_user(p_user);
  v_account credit_accounts;
  v_t credit_transfers;
  v_lot credit_lots;
  v_left bigint;
  v_take bigint;
BEGIN
  PERFORM ledger_check_amount(p_amount);
  IF p_deadline IS NULL THEN
    RAISE EXCEPTION 'a reservation needs a deadline' USING ERRCODE = 'VL400';
  END IF;
  -- The transfer first, without any lock on the account: a replay or a refusal rolls it back.
  INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, generation_id, expires_at)
  SELECT p_id, a.id, v_user, 'reserve', p_amount, p_generation_id, p_deadline
  FROM credit_accounts a WHERE a.user_id = v_user
  ON CONFLICT (id) DO NOTHING
  RETURNING * INTO v_t;
  IF NOT FOUND THEN
    SELECT * INTO v_t FROM credit_transfers WHERE id = p_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no credit account for user %', v_user USING ERRCODE = 'VL404';
    END IF;
    IF v_t.kind = 'reserve' AND v_t.user_id = v_user AND v_t.amount = p_amount
       AND v_t.generation_id IS NOT DISTINCT FROM p_generation_id THEN
      RETURN v_t; -- replay
    END IF;
    PERFORM ledger_conflict(p_id);
  END IF;

  -- Fast path, no expiring credit to draw first: the row lock is taken here, by the last statement.
  UPDATE credit_accounts SET debits_pending = debits_pending + p_amount
  WHERE id = v_t.account_id AND expiring_credit = 0
    AND credits_posted - debits_posted - debits_pending >= p_amount;
  IF FOUND THEN
    RETURN v_t;
  END IF;

  SELECT * INTO v_account FROM credit_accounts WHERE id = v_t.account_id FOR UPDATE;
  IF v_account.expiring_credit > 0 AND ledger_expire_lapsed_lots(v_account) > 0 THEN
    SELECT * INTO v_account FROM credit_accounts WHERE id = v_account.id;
  END IF;
  IF v_account.credits_posted - v_account.debits_posted - v_account.debits_pending < p_amount THEN
    RAISE EXCEPTION 'insufficient credits: % available, % needed',
      v_account.credits_posted - v_account.debits_posted - v_account.debits_pending, p_amount
      USING ERRCODE = 'VL402';
  END IF;
  -- Soonest-expiring credit first; what the lots cannot cover comes from credit that never expires.
  v_left := least(p_amount, v_account.expiring_credit);
  FOR v_lot IN
    SELECT * FROM credit_lots WHERE account_id = v_account.id AND remaining > 0
    ORDER BY expires_at, grant_id
  LOOP
    EXIT WHEN v_left = 0;
    v_take := least(v_left, v_lot.remaining);
    UPDATE credit_lots SET remaining = remaining - v_take WHERE grant_id = v_lot.grant_id;
    INSERT INTO credit_allocations (reserve_id, grant_id, user_id, amount) VALUES (p_id, v_lot.grant_id, v_user, v_take);
    v_left := v_left - v_take;
  END LOOP;
  IF v_left > 0 THEN
    RAISE EXCEPTION 'ledger lots out of step with account % expiring_credit', v_account.id;
  END IF;
  UPDATE credit_accounts
  SET debits_pending = debits_pending + p_amount,
      expiring_credit = expiring_credit - least(p_amount, v_account.expiring_credit)
  WHERE id = v_account.id;
  RETURN v_t;
END $$;

-- The caller's reservation p_pending_id, or VL404. Looked up by primary key alone, on purpose: with
-- kind and user_id in the same WHERE clause, Postgres sometimes left the primary key for a plan
-- that reads more of the table as it grows (a seq scan, seen with stale statistics), and the
-- ledger benchmark slowed down round after round.
CREATE FUNCTION ledger_pending_reserve(p_pending_id uuid, p_user uuid) RETURNS credit_transfers
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_t credit_transfers;
BEGIN
  SELECT * INTO v_t FROM credit_transfers WHERE id = p_pending_id;
  IF NOT FOUND OR v_t.kind <> 'reserve' OR v_t.user_id <> p_user THEN
    RAISE EXCEPTION 'no reservation % for user %', p_pending_id, p_user USING ERRCODE = 'VL404';
  END IF;
  RETURN v_t;
END $$;

-- Called when a commit or release of an existing reservation (the caller checked it) inserted
-- nothing: returns the earlier identical resolution (a replay), or raises why not (id reused,
-- reservation resolved otherwise).
CREATE FUNCTION ledger_resolution_replay(p_id uuid, p_pending_id uuid, p_kind text)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_t credit_transfers;
BEGIN
  SELECT * INTO v_t FROM credit_transfers WHERE id = p_id;
  IF FOUND THEN
    IF v_t.kind = p_kind AND v_t.pending_id = p_pending_id THEN
      RETURN v_t;
    END IF;
    PERFORM ledger_conflict(p_id);
  END IF;
  SELECT * INTO v_t FROM credit_transfers WHERE pending_id = p_pending_id;
  RAISE EXCEPTION 'reservation % was already resolved by a % (%)', p_pending_id, v_t.kind, v_t.id
    USING ERRCODE = 'VL410';
END $$;

-- Posts a pending reservation: the credit is spent. Touches no account row (see the top).
CREATE FUNCTION ledger_commit(p_id uuid, p_pending_id uuid, p_user uuid DEFAULT NULL)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_user uuid := ledger_acting_user(p_user);
  v_r credit_transfers := ledger_pending_reserve(p_pending_id, v_user);
  v_t credit_transfers;
BEGIN
  -- The unique index on pending_id lets only one resolution of a reservation in; a concurrent one
  -- waits here for it and then inserts nothing.
  INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, pending_id, generation_id)
  VALUES (p_id, v_r.account_id, v_r.user_id, 'commit', v_r.amount, v_r.id, v_r.generation_id)
  ON CONFLICT DO NOTHING
  RETURNING * INTO v_t;
  IF NOT FOUND THEN
    RETURN ledger_resolution_replay(p_id, p_pending_id, 'commit');
  END IF;
  INSERT INTO credit_commit_stripes AS s (account_id, stripe, user_id, amount)
  VALUES (v_t.account_id, floor(random() * 8)::smallint, v_t.user_id, v_t.amount)
  ON CONFLICT (account_id, stripe) DO UPDATE SET amount = s.amount + excluded.amount;
  RETURN v_t;
END $$;

-- Voids a pending reservation: the credit goes back to the lots it came from, except the part
-- whose grant has expired meanwhile, which leaves at once through an expire transfer.
CREATE FUNCTION ledger_release(p_id uuid, p_pending_id uuid, p_reason text DEFAULT NULL, p_user uuid DEFAULT NULL)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_user uuid := ledger_acting_user(p_user);
  v_r credit_transfers := ledger_pending_reserve(p_pending_id, v_user);
  v_t credit_transfers;
  v_alloc record;
  v_expired bigint := 0;
  v_to_lots bigint := 0;
BEGIN
  INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, pending_id, generation_id, reason)
  VALUES (p_id, v_r.account_id, v_r.user_id, 'release', v_r.amount, v_r.id, v_r.generation_id, p_reason)
  ON CONFLICT DO NOTHING
  RETURNING * INTO v_t;
  IF NOT FOUND THEN
    RETURN ledger_resolution_replay(p_id, p_pending_id, 'release');
  END IF;
  IF EXISTS (SELECT 1 FROM credit_allocations WHERE reserve_id = p_pending_id) THEN
    PERFORM 1 FROM credit_accounts WHERE id = v_t.account_id FOR UPDATE;
    FOR v_alloc IN
      SELECT a.grant_id, a.amount, l.expires_at FROM credit_allocations a JOIN credit_lots l USING (grant_id)
      WHERE a.reserve_id = p_pending_id
    LOOP
      -- Read after the account lock is held (clock_timestamp, not the transaction's start time), so
      -- an expiry that committed while this release waited is seen and the credit not handed back.
      IF v_alloc.expires_at <= clock_timestamp() THEN
        INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, grant_id, reason)
        VALUES (ledger_derived_id('expire:' || p_id || ':' || v_alloc.grant_id), v_t.account_id,
                v_t.user_id, 'expire', v_alloc.amount, v_alloc.grant_id, 'grant expired while reserved');
        v_expired := v_expired + v_alloc.amount;
      ELSE
        UPDATE credit_lots SET remaining = remaining + v_alloc.amount WHERE grant_id = v_alloc.grant_id;
        v_to_lots := v_to_lots + v_alloc.amount;
      END IF;
    END LOOP;
  END IF;
  UPDATE credit_accounts
  SET debits_pending = debits_pending - v_t.amount, debits_posted = debits_posted + v_expired,
      expiring_credit = expiring_credit + v_to_lots
  WHERE id = v_t.account_id;
  RETURN v_t;
END $$;

-- Moves what the commit stripes counted into the account rows (system path: the reconciler).
-- Returns the number of accounts folded.
CREATE FUNCTION ledger_fold_commits() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_account uuid;
  v_amount bigint;
  v_count integer := 0;
BEGIN
  FOR v_account IN SELECT DISTINCT account_id FROM credit_commit_stripes WHERE amount > 0 ORDER BY 1 LOOP
    -- Stripes first, then the account: commits lock only a stripe, reserves only the account.
    SELECT sum(amount) INTO v_amount
    FROM (SELECT amount FROM credit_commit_stripes WHERE account_id = v_account FOR UPDATE) s;
    UPDATE credit_commit_stripes SET amount = 0 WHERE account_id = v_account AND amount > 0;
    UPDATE credit_accounts SET debits_pending = debits_pending - v_amount, debits_posted = debits_posted + v_amount
    WHERE id = v_account;
    v_count := v_count + 1;
  END LOOP;
  RETURN v_count;
END $$;

DO $$
DECLARE f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'ledger_reserve(uuid, bigint, uuid, timestamptz, uuid)', 'ledger_commit(uuid, uuid, uuid)',
    'ledger_release(uuid, uuid, text, uuid)', 'ledger_resolution_replay(uuid, uuid, text)',
    'ledger_pending_reserve(uuid, uuid)',
    'ledger_fold_commits()'] LOOP
    EXECUTE format('ALTER FUNCTION %s OWNER TO velro_system', f);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;

GRANT EXECUTE ON FUNCTION ledger_reserve(uuid, bigint, uuid, timestamptz, uuid), ledger_commit(uuid, uuid, uuid),
  ledger_release(uuid, uuid, text, uuid) TO velro_app, velro_system;
GRANT EXECUTE ON FUNCTION ledger_fold_commits() TO velro_system;

-- 5. Batching, after TigerBeetle: reserves for one user that arrive together are made in one
-- transaction, so a busy account pays one row lock and one commit (one fsync) for the lot instead
-- of one each. Each item still succeeds or fails on its own (a subtransaction each): the rows say,
-- in order, which transfer each became or which error refused it. lib/ledger/reserve-batcher.ts
-- gathers the items.
CREATE FUNCTION ledger_reserve_batch(p_user uuid, p_ids uuid[], p_amounts bigint[], p_generation_ids uuid[],
                                     p_deadlines timestamptz[])
RETURNS TABLE (ordinal integer, transfer credit_transfers, error_code text, error_message text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_user IS NULL THEN
    RAISE EXCEPTION 'a batch acts for one given user' USING ERRCODE = 'insufficient_privilege';
  END IF;
  FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
    ordinal := i;
    transfer := NULL;
    error_code := NULL;
    error_message := NULL;
    BEGIN
      transfer := ledger_reserve(p_ids[i], p_amounts[i], p_generation_ids[i], p_deadlines[i], p_user);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS error_code = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT;
    END;
    RETURN NEXT;
  END LOOP;
END $$;
ALTER FUNCTION ledger_reserve_batch(uuid, uuid[], bigint[], uuid[], timestamptz[]) OWNER TO velro_system;
REVOKE ALL ON FUNCTION ledger_reserve_batch(uuid, uuid[], bigint[], uuid[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_reserve_batch(uuid, uuid[], bigint[], uuid[], timestamptz[]) TO velro_app, velro_system;
