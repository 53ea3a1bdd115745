-- The credit ledger: two-phase transfers after TigerBeetle.
--
-- Counters per account: credits_posted (granted), debits_posted (spent or expired), debits_pending
-- (reserved). Available = credits_posted - debits_posted - debits_pending, never negative.
-- Every change is one row in the append-only credit_transfers table; counters change only inside
-- the SECURITY DEFINER functions below, in the same transaction as that row.
--
-- Grants are kept as lots so that spending draws from the soonest-expiring grant first and the
-- unspent remainder of an expired grant can leave through an expire transfer. At every moment:
--   sum(lots.remaining) = available.
--
-- Errors carry SQLSTATEs of class VL, mapped to API codes in lib/ledger/errors.ts:
--   VL400 invalid amount or argument   VL402 insufficient credits   VL404 unknown account/transfer
--   VL409 same transfer id, different fields   VL410 pending transfer already resolved

CREATE TABLE credit_accounts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL UNIQUE REFERENCES users (id),
  credits_posted bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
  debits_posted bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
  debits_pending bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT credit_accounts_no_overdraft CHECK (debits_posted + debits_pending <= credits_posted)
);

CREATE TABLE credit_transfers (
  id uuid PRIMARY KEY,
  account_id uuid NOT NULL REFERENCES credit_accounts (id),
  user_id uuid NOT NULL REFERENCES users (id),
  kind text NOT NULL CHECK (kind IN ('grant', 'reserve', 'commit', 'release', 'expire')),
  amount bigint NOT NULL CHECK (amount > 0),
  -- commit and release resolve a reserve; expire draws on a grant.
  pending_id uuid REFERENCES credit_transfers (id),
  grant_id uuid REFERENCES credit_transfers (id),
  generation_id uuid,
  -- grant: when its credit expires (NULL = never); reserve: the deadline after which the
  -- reconciler may release it.
  expires_at timestamptz,
  reason text CHECK (length(reason) <= 500),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT credit_transfers_pending_link CHECK ((kind IN ('commit', 'release')) = (pending_id IS NOT NULL)),
  CONSTRAINT credit_transfers_grant_link CHECK ((kind = 'expire') = (grant_id IS NOT NULL)),
  CONSTRAINT credit_transfers_expiry CHECK (
    (kind = 'reserve' AND expires_at IS NOT NULL) OR kind = 'grant' OR expires_at IS NULL)
);
-- A pending transfer resolves at most once, whatever the code does.
CREATE UNIQUE INDEX credit_transfers_resolve_once ON credit_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX credit_transfers_account_idx ON credit_transfers (account_id, created_at DESC, id DESC);
CREATE INDEX credit_transfers_user_idx ON credit_transfers (user_id, created_at DESC, id DESC);
CREATE INDEX credit_transfers_generation_idx ON credit_transfers (generation_id) WHERE generation_id IS NOT NULL;
CREATE INDEX credit_transfers_reserve_deadline_idx ON credit_transfers (expires_at) WHERE kind = 'reserve';

CREATE FUNCTION credit_transfers_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit_transfers is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER credit_transfers_no_update BEFORE UPDATE OR DELETE ON credit_transfers
  FOR EACH ROW EXECUTE FUNCTION credit_transfers_append_only();

CREATE TABLE credit_lots (
  grant_id uuid PRIMARY KEY REFERENCES credit_transfers (id),
  account_id uuid NOT NULL REFERENCES credit_accounts (id),
  user_id uuid NOT NULL REFERENCES users (id),
  expires_at timestamptz,
  remaining bigint NOT NULL CHECK (remaining >= 0)
);
CREATE INDEX credit_lots_draw_order ON credit_lots (account_id, expires_at NULLS LAST, grant_id) WHERE remaining > 0;

-- Which lots a reservation drew from, so a release can give the credit back to them.
CREATE TABLE credit_allocations (
  reserve_id uuid NOT NULL REFERENCES credit_transfers (id),
  grant_id uuid NOT NULL REFERENCES credit_lots (grant_id),
  user_id uuid NOT NULL REFERENCES users (id),
  amount bigint NOT NULL CHECK (amount > 0),
  PRIMARY KEY (reserve_id, grant_id)
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['credit_accounts', 'credit_transfers', 'credit_lots', 'credit_allocations'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY %I ON %I TO velro_app USING (user_id = (SELECT current_app_user()))', t || '_owner', t);
    EXECUTE format('CREATE POLICY %I ON %I TO velro_system USING (true) WITH CHECK (true)', t || '_system', t);
  END LOOP;
END $$;

-- The app reads its own ledger; it writes only through the functions below.
GRANT SELECT ON credit_accounts, credit_transfers, credit_lots, credit_allocations TO velro_app;
GRANT SELECT, INSERT, UPDATE ON credit_accounts, credit_lots TO velro_system;
GRANT SELECT, INSERT ON credit_transfers, credit_allocations TO velro_system;

-- Every user gets an account.
CREATE FUNCTION create_credit_account() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO credit_accounts (user_id) VALUES (NEW.id);
  RETURN NEW;
END $$;
CREATE TRIGGER users_create_credit_account AFTER INSERT ON users
  FOR EACH ROW EXECUTE FUNCTION create_credit_account();

-- A deterministic uuid from text, for transfer ids derived from other ids.
CREATE FUNCTION ledger_derived_id(p_text text) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$ SELECT md5(p_text)::uuid $$;

-- Expires every lapsed lot of an account that still holds credit. Caller holds the account lock.
CREATE FUNCTION ledger_expire_lapsed_lots(p_account credit_accounts) RETURNS bigint
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
    UPDATE credit_accounts SET debits_posted = debits_posted + v_total WHERE id = p_account.id;
  END IF;
  RETURN v_total;
END $$;

CREATE FUNCTION ledger_check_amount(p_amount bigint) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 OR p_amount > 1000000000000 THEN
    RAISE EXCEPTION 'amount must be a whole number from 1 to 1000000000000, got %', p_amount
      USING ERRCODE = 'VL400';
  END IF;
END $$;

CREATE FUNCTION ledger_conflict(p_id uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'transfer % already exists with different fields', p_id USING ERRCODE = 'VL409';
END $$;

-- Grants credit to a user (system path: admin grants, sign-up credit).
CREATE FUNCTION ledger_grant(p_id uuid, p_user_id uuid, p_amount bigint, p_reason text,
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
  INSERT INTO credit_lots (grant_id, account_id, user_id, expires_at, remaining)
  VALUES (p_id, v_account.id, p_user_id, p_expires_at, p_amount);
  UPDATE credit_accounts SET credits_posted = credits_posted + p_amount WHERE id = v_account.id;
  RETURN v_t;
END $$;

-- Reserves credit for the calling user (app.user_id): a pending debit with a deadline.
CREATE FUNCTION ledger_reserve(p_id uuid, p_amount bigint, p_generation_id uuid, p_deadline timestamptz)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_user uuid := current_app_user();
  v_account credit_accounts;
  v_t credit_transfers;
  v_lot credit_lots;
  v_left bigint := p_amount;
  v_take bigint;
BEGIN
  PERFORM ledger_check_amount(p_amount);
  IF p_deadline IS NULL THEN
    RAISE EXCEPTION 'a reservation needs a deadline' USING ERRCODE = 'VL400';
  END IF;
  SELECT * INTO v_account FROM credit_accounts WHERE user_id = v_user FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no credit account for the current user' USING ERRCODE = 'VL404';
  END IF;
  SELECT * INTO v_t FROM credit_transfers WHERE id = p_id;
  IF FOUND THEN
    IF v_t.kind = 'reserve' AND v_t.account_id = v_account.id AND v_t.amount = p_amount
       AND v_t.generation_id IS NOT DISTINCT FROM p_generation_id THEN
      RETURN v_t;
    END IF;
    PERFORM ledger_conflict(p_id);
  END IF;

  IF ledger_expire_lapsed_lots(v_account) > 0 THEN
    SELECT * INTO v_account FROM credit_accounts WHERE id = v_account.id;
  END IF;
  IF v_account.credits_posted - v_account.debits_posted - v_account.debits_pending < p_amount THEN
    RAISE EXCEPTION 'insufficient credits: % available, % needed',
      v_account.credits_posted - v_account.debits_posted - v_account.debits_pending, p_amount
      USING ERRCODE = 'VL402';
  END IF;

  INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, generation_id, expires_at)
  VALUES (p_id, v_account.id, v_user, 'reserve', p_amount, p_generation_id, p_deadline)
  RETURNING * INTO v_t;

  -- Soonest-expiring credit first; never-expiring credit last.
  FOR v_lot IN
    SELECT * FROM credit_lots WHERE account_id = v_account.id AND remaining > 0
    ORDER BY expires_at NULLS LAST, grant_id
  LOOP
    v_take := least(v_left, v_lot.remaining);
    UPDATE credit_lots SET remaining = remaining - v_take WHERE grant_id = v_lot.grant_id;
    INSERT INTO credit_allocations (reserve_id, grant_id, user_id, amount) VALUES (p_id, v_lot.grant_id, v_user, v_take);
    v_left := v_left - v_take;
    EXIT WHEN v_left = 0;
  END LOOP;
  IF v_left > 0 THEN
    RAISE EXCEPTION 'ledger lots out of step with account % counters', v_account.id;
  END IF;

  UPDATE credit_accounts SET debits_pending = debits_pending + p_amount WHERE id = v_account.id;
  RETURN v_t;
END $$;

-- Shared part of commit and release: finds the caller's pending reservation and locks its account.
-- Returns an earlier identical resolution (a replay) if there is one, else the reservation itself;
-- refuses a second, different resolution.
CREATE FUNCTION ledger_begin_resolve(p_id uuid, p_pending_id uuid, p_kind text)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_pending credit_transfers;
  v_t credit_transfers;
BEGIN
  SELECT * INTO v_pending FROM credit_transfers
  WHERE id = p_pending_id AND kind = 'reserve' AND user_id = current_app_user();
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no reservation % for the current user', p_pending_id USING ERRCODE = 'VL404';
  END IF;
  PERFORM 1 FROM credit_accounts WHERE id = v_pending.account_id FOR UPDATE;
  SELECT * INTO v_t FROM credit_transfers WHERE id = p_id;
  IF FOUND THEN
    IF v_t.kind = p_kind AND v_t.pending_id = p_pending_id THEN
      RETURN v_t;
    END IF;
    PERFORM ledger_conflict(p_id);
  END IF;
  SELECT * INTO v_t FROM credit_transfers WHERE pending_id = p_pending_id;
  IF FOUND THEN
    RAISE EXCEPTION 'reservation % was already resolved by a % (%)', p_pending_id, v_t.kind, v_t.id
      USING ERRCODE = 'VL410';
  END IF;
  RETURN v_pending;
END $$;

-- Posts a pending reservation: the credit is spent.
CREATE FUNCTION ledger_commit(p_id uuid, p_pending_id uuid)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_pending credit_transfers;
  v_t credit_transfers;
BEGIN
  v_pending := ledger_begin_resolve(p_id, p_pending_id, 'commit');
  IF v_pending.kind <> 'reserve' THEN
    RETURN v_pending; -- replay
  END IF;
  INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, pending_id, generation_id)
  VALUES (p_id, v_pending.account_id, v_pending.user_id, 'commit', v_pending.amount, p_pending_id, v_pending.generation_id)
  RETURNING * INTO v_t;
  UPDATE credit_accounts
  SET debits_pending = debits_pending - v_pending.amount, debits_posted = debits_posted + v_pending.amount
  WHERE id = v_pending.account_id;
  RETURN v_t;
END $$;

-- Voids a pending reservation: the credit goes back to the lots it came from, except the part
-- whose grant has expired meanwhile, which leaves at once through an expire transfer.
CREATE FUNCTION ledger_release(p_id uuid, p_pending_id uuid, p_reason text DEFAULT NULL)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_pending credit_transfers;
  v_t credit_transfers;
  v_alloc record;
  v_expired bigint := 0;
BEGIN
  v_pending := ledger_begin_resolve(p_id, p_pending_id, 'release');
  IF v_pending.kind <> 'reserve' THEN
    RETURN v_pending; -- replay
  END IF;
  INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, pending_id, generation_id, reason)
  VALUES (p_id, v_pending.account_id, v_pending.user_id, 'release', v_pending.amount, p_pending_id,
          v_pending.generation_id, p_reason)
  RETURNING * INTO v_t;
  FOR v_alloc IN
    SELECT a.grant_id, a.amount, l.expires_at FROM credit_allocations a JOIN credit_lots l USING (grant_id)
    WHERE a.reserve_id = p_pending_id
  LOOP
    -- Read after the account lock is held (clock_timestamp, not the transaction's start time), so an
    -- expiry that committed while this release waited is seen and the credit is not handed back.
    IF v_alloc.expires_at <= clock_timestamp() THEN
      INSERT INTO credit_transfers (id, account_id, user_id, kind, amount, grant_id, reason)
      VALUES (ledger_derived_id('expire:' || p_id || ':' || v_alloc.grant_id), v_pending.account_id,
              v_pending.user_id, 'expire', v_alloc.amount, v_alloc.grant_id, 'grant expired while reserved');
      v_expired := v_expired + v_alloc.amount;
    ELSE
      UPDATE credit_lots SET remaining = remaining + v_alloc.amount WHERE grant_id = v_alloc.grant_id;
    END IF;
  END LOOP;
  UPDATE credit_accounts
  SET debits_pending = debits_pending - v_pending.amount, debits_posted = debits_posted + v_expired
  WHERE id = v_pending.account_id;
  RETURN v_t;
END $$;

-- Expires the unspent remainder of every lapsed grant (system path: the reconciler).
CREATE FUNCTION ledger_expire_grants() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_account credit_accounts;
  v_total bigint := 0;
BEGIN
  FOR v_account IN
    SELECT a.* FROM credit_accounts a
    WHERE EXISTS (SELECT 1 FROM credit_lots l WHERE l.account_id = a.id AND l.remaining > 0 AND l.expires_at <= clock_timestamp())
    ORDER BY a.id FOR UPDATE
  LOOP
    v_total := v_total + ledger_expire_lapsed_lots(v_account);
  END LOOP;
  RETURN v_total;
END $$;

DO $$
DECLARE f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'ledger_expire_lapsed_lots(credit_accounts)', 'ledger_grant(uuid, uuid, bigint, text, timestamptz)',
    'ledger_reserve(uuid, bigint, uuid, timestamptz)', 'ledger_begin_resolve(uuid, uuid, text)',
    'ledger_commit(uuid, uuid)', 'ledger_release(uuid, uuid, text)', 'ledger_expire_grants()',
    'create_credit_account()'] LOOP
    EXECUTE format('ALTER FUNCTION %s OWNER TO velro_system', f);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;

GRANT EXECUTE ON FUNCTION ledger_reserve(uuid, bigint, uuid, timestamptz), ledger_commit(uuid, uuid),
  ledger_release(uuid, uuid, text) TO velro_app;
GRANT EXECUTE ON FUNCTION ledger_grant(uuid, uuid, bigint, text, timestamptz), ledger_expire_grants(),
  ledger_reserve(uuid, bigint, uuid, timestamptz), ledger_commit(uuid, uuid),
  ledger_release(uuid, uuid, text) TO velro_system;
