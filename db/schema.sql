-- GENERATED FILE, do not edit: `npm run db:schema` (scripts/db-schema.ts) writes it.
--
-- The live definition of every function (pg_get_functiondef), view and row-level security policy of
-- the schema `public` after all of db/migrations/ has run, each kind sorted by name. A later
-- migration can drop and recreate what an earlier one defined (007 replaces most of 002's ledger
-- functions): this file is the current text, the migrations are the history.
-- The script migrates a scratch embedded Postgres (or reads DATABASE_URL); the test
-- test/integration/schema-file.test.ts regenerates it from the test stack's database and fails
-- when this file differs.

-- Functions (70)

CREATE OR REPLACE FUNCTION public.accept_team_invitation(p_token_hash bytea)
 RETURNS TABLE(outcome text, team_id uuid, role text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_user uuid := current_app_user();
  v_inv team_invitations;
  v_existing text;
BEGIN
  SELECT i.* INTO v_inv FROM team_invitations i JOIN teams t ON t.id = i.team_id
  WHERE i.token_hash = p_token_hash AND t.deleted_at IS NULL
    AND i.email = (SELECT u.email FROM users u WHERE u.id = v_user)
  FOR UPDATE OF i;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'not_found'::text, NULL::uuid, NULL::text;
    RETURN;
  END IF;
  SELECT m.role INTO v_existing FROM team_members m WHERE m.team_id = v_inv.team_id AND m.user_id = v_user;
  IF v_inv.accepted_by = v_user THEN
    RETURN QUERY SELECT 'already_joined'::text, v_inv.team_id, coalesce(v_existing, v_inv.role);
    RETURN;
  END IF;
  IF v_inv.accepted_at IS NOT NULL THEN
    RETURN QUERY SELECT 'used'::text, v_inv.team_id, NULL::text;
    RETURN;
  END IF;
  IF v_inv.revoked_at IS NOT NULL THEN
    RETURN QUERY SELECT 'revoked'::text, v_inv.team_id, NULL::text;
    RETURN;
  END IF;
  IF v_inv.expires_at <= now() THEN
    RETURN QUERY SELECT 'expired'::text, v_inv.team_id, NULL::text;
    RETURN;
  END IF;
  UPDATE team_invitations SET accepted_at = now(), accepted_by = v_user WHERE id = v_inv.id;
  IF v_existing IS NOT NULL THEN
    RETURN QUERY SELECT 'already_joined'::text, v_inv.team_id, v_existing;
    RETURN;
  END IF;
  INSERT INTO team_members (team_id, user_id, role) VALUES (v_inv.team_id, v_user, v_inv.role);
  RETURN QUERY SELECT 'joined'::text, v_inv.team_id, v_inv.role;
END $function$;

CREATE OR REPLACE FUNCTION public.admin_account_limits(p_account uuid)
 RETURNS TABLE(account_kind text, max_video integer, max_image integer, priority smallint, updated_at timestamp with time zone)
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM users WHERE id = current_app_user() AND role = 'admin') THEN
    RAISE EXCEPTION 'only an admin (app.user_id) may read account limits' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN QUERY
    SELECT coalesce(l.account_kind, k.kind), l.max_video, l.max_image, l.priority, l.updated_at
    FROM (SELECT CASE WHEN EXISTS (SELECT 1 FROM users WHERE id = p_account) THEN 'user'
                      WHEN EXISTS (SELECT 1 FROM teams WHERE id = p_account) THEN 'team' END AS kind) k
    LEFT JOIN account_limits l ON l.account_id = p_account
    WHERE k.kind IS NOT NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.admin_grant_credits(p_id uuid, p_user_id uuid, p_amount bigint, p_reason text, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM users WHERE id = current_app_user() AND role = 'admin') THEN
    RAISE EXCEPTION 'only an admin (app.user_id) may grant credits' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN ledger_grant(p_id, p_user_id, p_amount, p_reason, p_expires_at);
END $function$;

CREATE OR REPLACE FUNCTION public.admin_grant_team_credits(p_id uuid, p_team uuid, p_amount bigint, p_reason text, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM users WHERE id = current_app_user() AND role = 'admin') THEN
    RAISE EXCEPTION 'only an admin (app.user_id) may grant credits' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN ledger_grant_team(p_id, p_team, p_amount, p_reason, p_expires_at);
END $function$;

CREATE OR REPLACE FUNCTION public.admin_set_account_limits(p_account uuid, p_max_video integer, p_max_image integer, p_priority integer, p_clear text[])
 RETURNS account_limits
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_kind text;
  v_row account_limits;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM users WHERE id = current_app_user() AND role = 'admin') THEN
    RAISE EXCEPTION 'only an admin (app.user_id) may set account limits' USING ERRCODE = 'insufficient_privilege';
  END IF;
  v_kind := CASE WHEN EXISTS (SELECT 1 FROM users WHERE id = p_account) THEN 'user'
                 WHEN EXISTS (SELECT 1 FROM teams WHERE id = p_account) THEN 'team' END;
  IF v_kind IS NULL THEN
    RETURN NULL;
  END IF;
  INSERT INTO account_limits (account_id, account_kind) VALUES (p_account, v_kind) ON CONFLICT DO NOTHING;
  UPDATE account_limits SET
    max_video = CASE WHEN 'maxVideo' = ANY (p_clear) THEN NULL ELSE coalesce(p_max_video, max_video) END,
    max_image = CASE WHEN 'maxImage' = ANY (p_clear) THEN NULL ELSE coalesce(p_max_image, max_image) END,
    priority = CASE WHEN 'priority' = ANY (p_clear) THEN NULL ELSE coalesce(p_priority, priority) END,
    updated_by = current_app_user(),
    updated_at = now()
  WHERE account_id = p_account
  RETURNING * INTO v_row;
  RETURN v_row;
END $function$;

CREATE OR REPLACE FUNCTION public.api_keys_team_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_shown jsonb := jsonb_build_object('name', NEW.name, 'prefix', NEW.prefix);
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM team_audit(NEW.team_id, 'api_key.created', 'api_key', NEW.id::text, NULL, v_shown);
  ELSIF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
    PERFORM team_audit(NEW.team_id, 'api_key.revoked', 'api_key', NEW.id::text, v_shown, NULL);
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.auth_api_key(p_key_hash bytea)
 RETURNS TABLE(user_id uuid, role text, api_key_id uuid, team_id uuid)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT u.id, u.role, k.id, k.team_id FROM api_keys k JOIN users u ON u.id = k.user_id
  WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
$function$;

CREATE OR REPLACE FUNCTION public.auth_password_check(p_email text, p_candidate text)
 RETURNS TABLE(user_id uuid, role text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT u.id, u.role FROM users u
  WHERE u.email = lower(p_email) AND u.password_hash IS NOT NULL AND u.password_hash = p_candidate
$function$;

CREATE OR REPLACE FUNCTION public.auth_password_params(p_email text)
 RETURNS TABLE(params text, key_bytes integer)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT coalesce(
           (SELECT substring(u.password_hash FROM '^(scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+)\$[A-Za-z0-9_-]+$')
            FROM users u WHERE u.email = lower(p_email)),
           'scrypt$32768$8$1$dmVscm8tZHVtbXktc2FsdA'),
         coalesce(
           (SELECT length(substring(u.password_hash FROM '\$([A-Za-z0-9_-]+)$')) * 3 / 4
            FROM users u WHERE u.email = lower(p_email)
              AND u.password_hash ~ '^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$'),
           32)
$function$;

CREATE OR REPLACE FUNCTION public.auth_password_rehash(p_current text, p_new text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  IF p_new IS NULL OR p_new !~ '^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$' THEN
    RAISE EXCEPTION 'not a password hash' USING ERRCODE = 'VL400';
  END IF;
  UPDATE users SET password_hash = p_new
  WHERE id = current_app_user() AND password_hash IS NOT NULL AND password_hash = p_current;
  RETURN FOUND;
END $function$;

CREATE OR REPLACE FUNCTION public.auth_user(p_user_id uuid)
 RETURNS TABLE(user_id uuid, role text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT id, role FROM users WHERE id = p_user_id
$function$;

CREATE OR REPLACE FUNCTION public.capacity_default_priority()
 RETURNS smallint
 LANGUAGE sql
 IMMUTABLE
AS $function$ SELECT 5::smallint $function$;

CREATE OR REPLACE FUNCTION public.capacity_grant(p_scope text, p_provider text, p_cap integer, p_max_video integer, p_max_image integer, p_aging_seconds integer)
 RETURNS SETOF uuid
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_held integer;
  v_vt double precision;
  v_pick record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('velro.capacity:' || p_scope, 0));
  INSERT INTO capacity_pools (scope, provider) VALUES (p_scope, p_provider) ON CONFLICT DO NOTHING;
  SELECT virtual_time INTO v_vt FROM capacity_pools WHERE scope = p_scope AND provider = p_provider;
  SELECT count(*) INTO v_held FROM capacity_requests
  WHERE scope = p_scope AND provider = p_provider AND granted_at IS NOT NULL AND released_at IS NULL;
  WHILE v_held < p_cap LOOP
    SELECT e.generation_id, e.account_id, e.weight,
           greatest(coalesce(t.pass, v_vt), v_vt) AS pass
    INTO v_pick
    FROM (
      -- Each waiting account's next generation among those its caps allow.
      SELECT DISTINCT ON (r.account_id) r.generation_id, r.account_id, r.enqueued_at,
             coalesce(l.priority, capacity_default_priority()) AS weight
      FROM capacity_requests r
      LEFT JOIN account_limits l ON l.account_id = r.account_id
      WHERE r.scope = p_scope AND r.provider = p_provider
        AND r.granted_at IS NULL AND r.released_at IS NULL
        AND (SELECT count(*) FROM capacity_requests h
             WHERE h.scope = p_scope AND h.account_id = r.account_id AND h.media_kind = r.media_kind
               AND h.granted_at IS NOT NULL AND h.released_at IS NULL)
            < CASE r.media_kind WHEN 'video' THEN coalesce(l.max_video, p_max_video)
                                ELSE coalesce(l.max_image, p_max_image) END
      ORDER BY r.account_id,
               r.priority + extract(epoch FROM clock_timestamp() - r.enqueued_at) / p_aging_seconds DESC,
               r.enqueued_at
    ) e
    LEFT JOIN capacity_turns t
      ON t.scope = p_scope AND t.provider = p_provider AND t.account_id = e.account_id
    ORDER BY greatest(coalesce(t.pass, v_vt), v_vt), e.enqueued_at
    LIMIT 1;
    EXIT WHEN NOT FOUND;

    UPDATE capacity_requests SET granted_at = clock_timestamp() WHERE generation_id = v_pick.generation_id;
    UPDATE generations SET stage = 'starting', updated_at = now()
    WHERE id = v_pick.generation_id AND stage = 'waiting for capacity';
    INSERT INTO capacity_turns (scope, provider, account_id, pass)
    VALUES (p_scope, p_provider, v_pick.account_id, v_pick.pass + 1.0 / v_pick.weight)
    ON CONFLICT (scope, provider, account_id) DO UPDATE SET pass = excluded.pass;
    v_vt := v_pick.pass;
    v_held := v_held + 1;
    RETURN NEXT v_pick.generation_id;
  END LOOP;
  UPDATE capacity_pools SET virtual_time = v_vt WHERE scope = p_scope AND provider = p_provider;
END $function$;

CREATE OR REPLACE FUNCTION public.capacity_queue_positions(p_ids uuid[])
 RETURNS TABLE(generation_id uuid, queue_position integer)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  WITH mine AS (
    SELECT r.generation_id, r.scope, r.provider, r.account_id FROM capacity_requests r
    WHERE r.generation_id = ANY (p_ids[1:1000]) AND r.granted_at IS NULL AND r.released_at IS NULL
  ), waiting AS (
    SELECT w.generation_id, w.scope, w.provider, w.account_id,
           row_number() OVER (PARTITION BY w.scope, w.provider, w.account_id
                              ORDER BY w.priority DESC, w.enqueued_at) AS rank
    FROM capacity_requests w
    WHERE w.granted_at IS NULL AND w.released_at IS NULL
      AND (w.scope, w.provider) IN (SELECT scope, provider FROM mine)
  ), accounts AS (
    SELECT w.scope, w.provider, w.account_id, count(*) AS n,
           greatest(coalesce(t.pass, p.virtual_time, 0), coalesce(p.virtual_time, 0)) AS pass,
           coalesce(l.priority, capacity_default_priority()) AS weight
    FROM waiting w
    LEFT JOIN capacity_turns t ON (t.scope, t.provider, t.account_id) = (w.scope, w.provider, w.account_id)
    LEFT JOIN capacity_pools p ON (p.scope, p.provider) = (w.scope, w.provider)
    LEFT JOIN account_limits l ON l.account_id = w.account_id
    GROUP BY w.scope, w.provider, w.account_id, t.pass, p.virtual_time, l.priority
  )
  SELECT m.generation_id,
         1 + (SELECT sum(CASE WHEN b.account_id = a.account_id THEN wm.rank - 1
                              ELSE least(b.n, greatest(0::double precision,
                                     floor((a.pass + (wm.rank - 1)::double precision / a.weight - b.pass)
                                           * b.weight) + 1)) END)
              FROM accounts b WHERE (b.scope, b.provider) = (m.scope, m.provider))::integer
  FROM mine m
  JOIN waiting wm ON wm.generation_id = m.generation_id
  JOIN accounts a ON (a.scope, a.provider, a.account_id) = (m.scope, m.provider, m.account_id)
$function$;

CREATE OR REPLACE FUNCTION public.capacity_stats(p_scope text)
 RETURNS TABLE(provider text, account_kind text, in_use integer, waiting integer)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT r.provider, r.account_kind,
         (count(*) FILTER (WHERE r.granted_at IS NOT NULL))::integer,
         (count(*) FILTER (WHERE r.granted_at IS NULL))::integer
  FROM capacity_requests r
  WHERE r.scope = p_scope AND r.released_at IS NULL
  GROUP BY r.provider, r.account_kind
$function$;

CREATE OR REPLACE FUNCTION public.create_api_key(p_user_id uuid, p_name text, p_prefix text, p_key_hash bytea)
 RETURNS uuid
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES (p_user_id, p_name, p_prefix, p_key_hash)
  RETURNING id
$function$;

CREATE OR REPLACE FUNCTION public.create_credit_account()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  INSERT INTO credit_accounts (user_id) VALUES (NEW.id);
  RETURN NEW;
END $function$;

CREATE OR REPLACE FUNCTION public.create_team(p_name text)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_user uuid := current_app_user();
  v_team uuid;
BEGIN
  IF v_user IS NULL OR (SELECT kind FROM users WHERE id = v_user) IS DISTINCT FROM 'person' THEN
    RAISE EXCEPTION 'only a person creates teams' USING ERRCODE = 'VL403', DETAIL = 'person';
  END IF;
  INSERT INTO teams (name, created_by) VALUES (p_name, v_user) RETURNING id INTO v_team;
  INSERT INTO team_members (team_id, user_id, role) VALUES (v_team, v_user, 'owner');
  INSERT INTO credit_accounts (team_id) VALUES (v_team);
  RETURN v_team;
END $function$;

CREATE OR REPLACE FUNCTION public.create_team_api_key(p_team uuid, p_name text, p_prefix text, p_key_hash bytea)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_bot uuid := gen_random_uuid();
  v_key uuid;
BEGIN
  PERFORM velro_require_team_role(p_team, 'admin');
  INSERT INTO users (id, email, kind) VALUES (v_bot, 'key-' || v_bot || '@team-keys.velro.invalid', 'team_key');
  INSERT INTO team_members (team_id, user_id, role) VALUES (p_team, v_bot, 'member');
  INSERT INTO api_keys (user_id, name, prefix, key_hash, team_id, created_by)
  VALUES (v_bot, p_name, p_prefix, p_key_hash, p_team, current_app_user()) RETURNING id INTO v_key;
  RETURN v_key;
END $function$;

CREATE OR REPLACE FUNCTION public.create_user(p_email text, p_password_hash text, p_role text DEFAULT 'user'::text)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_id uuid;
BEGIN
  INSERT INTO users (email, password_hash, role) VALUES (lower(p_email), p_password_hash, p_role)
  ON CONFLICT (email) DO NOTHING RETURNING id INTO v_id;
  RETURN v_id;
END $function$;

CREATE OR REPLACE FUNCTION public.credit_transfers_append_only()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  RAISE EXCEPTION 'credit_transfers is append-only' USING ERRCODE = 'insufficient_privilege';
END $function$;

CREATE OR REPLACE FUNCTION public.credit_transfers_generation_state()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  UPDATE generations
  SET credit_state = CASE NEW.kind WHEN 'commit' THEN 'charged' WHEN 'release' THEN 'refunded' ELSE 'reserved' END
  WHERE id = NEW.generation_id
    AND CASE NEW.kind WHEN 'commit' THEN credit_state <> 'charged'
                      WHEN 'release' THEN credit_state NOT IN ('charged', 'refunded')
                      ELSE credit_state = 'none' END;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.current_app_user()
 RETURNS uuid
 LANGUAGE sql
 STABLE
AS $function$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $function$;

CREATE OR REPLACE FUNCTION public.delete_team(p_team uuid)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_balance credit_balances;
BEGIN
  PERFORM velro_require_team_role(p_team, 'owner');
  -- The account's row lock: a reserve for this team waits, then finds no credit.
  PERFORM 1 FROM credit_accounts WHERE team_id = p_team FOR UPDATE;
  SELECT * INTO v_balance FROM credit_balances WHERE team_id = p_team;
  IF v_balance.debits_pending > 0 OR EXISTS (
       SELECT 1 FROM generations WHERE team_id = p_team AND status IN ('queued', 'running')) THEN
    RAISE EXCEPTION 'the team has generations in flight' USING ERRCODE = 'VLT09', DETAIL = 'team_has_generations_in_flight';
  END IF;
  IF v_balance.available > 0 THEN
    RAISE EXCEPTION 'the team still holds % credits', v_balance.available
      USING ERRCODE = 'VLT09', DETAIL = 'team_has_credits';
  END IF;
  UPDATE teams SET deleted_at = now(), updated_at = now() WHERE id = p_team;
  UPDATE api_keys SET revoked_at = now() WHERE team_id = p_team AND revoked_at IS NULL;
  UPDATE team_invitations SET revoked_at = now()
  WHERE team_id = p_team AND revoked_at IS NULL AND accepted_at IS NULL;
  DELETE FROM team_members WHERE team_id = p_team;
END $function$;

CREATE OR REPLACE FUNCTION public.find_generations_by_provider_request(p_provider text, p_request_key text)
 RETURNS TABLE(id uuid, status text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT g.id, g.status FROM generations g
  WHERE g.provider = p_provider
    AND g.provider_request_id IS NOT NULL
    AND provider_request_key(g.provider_request_id) = p_request_key
  ORDER BY g.created_at DESC
  LIMIT 10
$function$;

CREATE OR REPLACE FUNCTION public.find_user_by_email(p_email text)
 RETURNS TABLE(id uuid, email text, role text, password_hash text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT id, email, role, password_hash FROM users WHERE email = lower(p_email)
$function$;

CREATE OR REPLACE FUNCTION public.generation_credit_state(p_generation uuid)
 RETURNS text
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT CASE WHEN bool_or(t.kind = 'commit') THEN 'charged'
              WHEN bool_or(t.kind = 'release') THEN 'refunded'
              WHEN bool_or(t.kind = 'reserve') THEN 'reserved'
              ELSE 'none' END
  FROM credit_transfers t WHERE t.generation_id = p_generation
$function$;

CREATE OR REPLACE FUNCTION public.generation_statuses(p_ids uuid[])
 RETURNS TABLE(id uuid, status text, stage text, error_code text, error_message text, updated_at timestamp with time zone)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT g.id, g.status, g.stage, g.error_code, g.error_message, g.updated_at
  FROM generations g WHERE g.id = ANY (p_ids[1:10000])
$function$;

CREATE OR REPLACE FUNCTION public.generations_credit_state_on_insert()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  NEW.credit_state := generation_credit_state(NEW.id);
  RETURN NEW;
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_acting_user(p_user uuid)
 RETURNS uuid
 LANGUAGE plpgsql
 STABLE
AS $function$
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
  IF v_scoped IS NULL AND NOT pg_has_role(session_user, 'velro_system', 'MEMBER') THEN
    RAISE EXCEPTION 'the ledger acts only for app.user_id' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN coalesce(p_user, v_scoped);
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_check_amount(p_amount bigint)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 OR p_amount > 1000000000000 THEN
    RAISE EXCEPTION 'amount must be a whole number from 1 to 1000000000000, got %', p_amount
      USING ERRCODE = 'VL400';
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_commit(p_id uuid, p_pending_id uuid, p_user uuid DEFAULT NULL::uuid)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_user uuid := ledger_acting_user(p_user);
  v_r credit_transfers := ledger_pending_reserve(p_pending_id, v_user);
  v_t credit_transfers;
BEGIN
  -- The unique index on pending_id lets only one resolution of a reservation in; a concurrent one
  -- waits here for it and then inserts nothing.
  INSERT INTO credit_transfers (id, account_id, user_id, team_id, kind, amount, pending_id, generation_id)
  VALUES (p_id, v_r.account_id, v_r.user_id, v_r.team_id, 'commit', v_r.amount, v_r.id, v_r.generation_id)
  ON CONFLICT DO NOTHING
  RETURNING * INTO v_t;
  IF NOT FOUND THEN
    RETURN ledger_resolution_replay(p_id, p_pending_id, 'commit');
  END IF;
  INSERT INTO credit_commit_stripes AS s (account_id, stripe, user_id, team_id, amount)
  VALUES (v_t.account_id, floor(random() * 8)::smallint,
          CASE WHEN v_t.team_id IS NULL THEN v_t.user_id END, v_t.team_id, v_t.amount)
  ON CONFLICT (account_id, stripe) DO UPDATE SET amount = s.amount + excluded.amount;
  RETURN v_t;
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_conflict(p_id uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
  RAISE EXCEPTION 'transfer % already exists with different fields', p_id USING ERRCODE = 'VL409';
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_derived_id(p_text text)
 RETURNS uuid
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT (substr(h, 1, 12) || '8' || substr(h, 14, 3)
          || to_hex((('x' || substr(h, 17, 1))::bit(4)::int & 3) | 8) || substr(h, 18, 15))::uuid
  FROM encode(sha256(convert_to(p_text, 'UTF8')), 'hex') AS h
$function$;

CREATE OR REPLACE FUNCTION public.ledger_expire_grants()
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_expire_lapsed_lots(p_account credit_accounts)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_lot credit_lots;
  v_total bigint := 0;
BEGIN
  FOR v_lot IN
    SELECT * FROM credit_lots
    -- clock_timestamp(), not now(): the transaction may have started before it got the account lock.
    WHERE account_id = p_account.id AND remaining > 0 AND expires_at <= clock_timestamp()
  LOOP
    INSERT INTO credit_transfers (id, account_id, user_id, team_id, kind, amount, grant_id, reason)
    VALUES (ledger_derived_id('expire:' || v_lot.grant_id), p_account.id, p_account.user_id, p_account.team_id,
            'expire', v_lot.remaining, v_lot.grant_id, 'grant expired');
    UPDATE credit_lots SET remaining = 0 WHERE grant_id = v_lot.grant_id;
    v_total := v_total + v_lot.remaining;
  END LOOP;
  IF v_total > 0 THEN
    UPDATE credit_accounts SET debits_posted = debits_posted + v_total, expiring_credit = expiring_credit - v_total
    WHERE id = p_account.id;
  END IF;
  RETURN v_total;
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_fold_commits()
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_grant(p_id uuid, p_user_id uuid, p_amount bigint, p_reason text, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_grant_team(p_id uuid, p_team uuid, p_amount bigint, p_reason text, p_expires_at timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_account credit_accounts;
  v_t credit_transfers;
BEGIN
  PERFORM ledger_check_amount(p_amount);
  SELECT a.* INTO v_account FROM credit_accounts a JOIN teams t ON t.id = a.team_id
  WHERE a.team_id = p_team AND t.deleted_at IS NULL FOR UPDATE OF a;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no credit account for team %', p_team USING ERRCODE = 'VL404';
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
  INSERT INTO credit_transfers (id, account_id, user_id, team_id, kind, amount, expires_at, reason)
  VALUES (p_id, v_account.id, NULL, p_team, 'grant', p_amount, p_expires_at, p_reason)
  RETURNING * INTO v_t;
  IF p_expires_at IS NOT NULL THEN
    INSERT INTO credit_lots (grant_id, account_id, user_id, team_id, expires_at, remaining)
    VALUES (p_id, v_account.id, NULL, p_team, p_expires_at, p_amount);
  END IF;
  UPDATE credit_accounts
  SET credits_posted = credits_posted + p_amount,
      expiring_credit = expiring_credit + CASE WHEN p_expires_at IS NULL THEN 0 ELSE p_amount END
  WHERE id = v_account.id;
  PERFORM team_audit(p_team, 'credits.granted', 'credit_transfer', p_id::text, NULL,
                     jsonb_build_object('credits', p_amount, 'reason', p_reason, 'expiresAt', p_expires_at));
  RETURN v_t;
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_pending_reserve(p_pending_id uuid, p_user uuid)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_t credit_transfers;
BEGIN
  SELECT * INTO v_t FROM credit_transfers WHERE id = p_pending_id;
  IF NOT FOUND OR v_t.kind <> 'reserve' OR v_t.user_id <> p_user THEN
    RAISE EXCEPTION 'no reservation % for user %', p_pending_id, p_user USING ERRCODE = 'VL404';
  END IF;
  RETURN v_t;
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_release(p_id uuid, p_pending_id uuid, p_reason text DEFAULT NULL::text, p_user uuid DEFAULT NULL::uuid)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_user uuid := ledger_acting_user(p_user);
  v_r credit_transfers := ledger_pending_reserve(p_pending_id, v_user);
  v_t credit_transfers;
  v_alloc record;
  v_expired bigint := 0;
  v_to_lots bigint := 0;
BEGIN
  INSERT INTO credit_transfers (id, account_id, user_id, team_id, kind, amount, pending_id, generation_id, reason)
  VALUES (p_id, v_r.account_id, v_r.user_id, v_r.team_id, 'release', v_r.amount, v_r.id, v_r.generation_id, p_reason)
  ON CONFLICT DO NOTHING
  RETURNING * INTO v_t;
  IF NOT FOUND THEN
    RETURN ledger_resolution_replay(p_id, p_pending_id, 'release');
  END IF;
  IF v_r.team_id IS NOT NULL THEN
    UPDATE team_member_usage SET used = used - v_r.amount
    WHERE team_id = v_r.team_id AND user_id = v_r.user_id
      AND month = date_trunc('month', v_r.created_at AT TIME ZONE 'UTC')::date;
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
        INSERT INTO credit_transfers (id, account_id, user_id, team_id, kind, amount, grant_id, reason)
        VALUES (ledger_derived_id('expire:' || p_id || ':' || v_alloc.grant_id), v_t.account_id,
                v_t.user_id, v_t.team_id, 'expire', v_alloc.amount, v_alloc.grant_id, 'grant expired while reserved');
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
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_reserve(p_id uuid, p_amount bigint, p_generation_id uuid, p_deadline timestamp with time zone, p_user uuid DEFAULT NULL::uuid)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_reserve_batch(p_user uuid, p_ids uuid[], p_amounts bigint[], p_generation_ids uuid[], p_deadlines timestamp with time zone[])
 RETURNS TABLE(ordinal integer, transfer credit_transfers, error_code text, error_message text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  IF p_user IS NULL THEN
    RAISE EXCEPTION 'a batch acts for one given user' USING ERRCODE = 'insufficient_privilege';
  END IF;
  PERFORM ledger_acting_user(p_user);
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
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_reserve_team(p_id uuid, p_amount bigint, p_generation_id uuid, p_deadline timestamp with time zone, p_team uuid, p_user uuid DEFAULT NULL::uuid)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_user uuid := ledger_acting_user(p_user);
  v_role text;
  v_limit bigint;
  v_used bigint;
  v_month date;
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
  SELECT * INTO v_t FROM credit_transfers WHERE id = p_id;
  IF FOUND THEN
    IF v_t.kind = 'reserve' AND v_t.user_id = v_user AND v_t.team_id IS NOT DISTINCT FROM p_team
       AND v_t.amount = p_amount AND v_t.generation_id IS NOT DISTINCT FROM p_generation_id THEN
      RETURN v_t; -- replay
    END IF;
    PERFORM ledger_conflict(p_id);
  END IF;
  SELECT m.role INTO v_role FROM team_members m JOIN teams t ON t.id = m.team_id
  WHERE m.team_id = p_team AND m.user_id = v_user AND t.deleted_at IS NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no team % for user %', p_team, v_user USING ERRCODE = 'VL404';
  END IF;
  IF v_role = 'viewer' THEN
    RAISE EXCEPTION 'a viewer cannot spend the team''s credits; needs the role member'
      USING ERRCODE = 'VL403', DETAIL = 'member';
  END IF;

  INSERT INTO credit_transfers (id, account_id, user_id, team_id, kind, amount, generation_id, expires_at)
  SELECT p_id, a.id, v_user, p_team, 'reserve', p_amount, p_generation_id, p_deadline
  FROM credit_accounts a WHERE a.team_id = p_team
  ON CONFLICT (id) DO NOTHING
  RETURNING * INTO v_t;
  IF NOT FOUND THEN
    -- The same id, inserted meanwhile by a concurrent call: answer as a replay would.
    RETURN ledger_reserve_team(p_id, p_amount, p_generation_id, p_deadline, p_team, v_user);
  END IF;

  v_month := date_trunc('month', v_t.created_at AT TIME ZONE 'UTC')::date;
  INSERT INTO team_member_usage (team_id, user_id, month) VALUES (p_team, v_user, v_month)
  ON CONFLICT DO NOTHING;
  UPDATE team_member_usage u SET used = u.used + p_amount
  FROM team_members m
  WHERE u.team_id = p_team AND u.user_id = v_user AND u.month = v_month
    AND m.team_id = p_team AND m.user_id = v_user
    AND (m.monthly_spend_limit IS NULL OR u.used + p_amount <= m.monthly_spend_limit);
  IF NOT FOUND THEN
    SELECT m.monthly_spend_limit INTO v_limit FROM team_members m WHERE m.team_id = p_team AND m.user_id = v_user;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'no team % for user %', p_team, v_user USING ERRCODE = 'VL404';
    END IF;
    SELECT u.used INTO v_used FROM team_member_usage u
    WHERE u.team_id = p_team AND u.user_id = v_user AND u.month = v_month;
    RAISE EXCEPTION 'monthly spend limit of % credits: % left this month, % needed',
      v_limit, greatest(v_limit - v_used, 0), p_amount
      USING ERRCODE = 'VL429',
            DETAIL = json_build_object('limit', v_limit, 'remaining', greatest(v_limit - v_used, 0))::text;
  END IF;

  -- The account, as ledger_reserve: fast path without expiring credit, else draw soonest-expiring first.
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
  v_left := least(p_amount, v_account.expiring_credit);
  FOR v_lot IN
    SELECT * FROM credit_lots WHERE account_id = v_account.id AND remaining > 0
    ORDER BY expires_at, grant_id
  LOOP
    EXIT WHEN v_left = 0;
    v_take := least(v_left, v_lot.remaining);
    UPDATE credit_lots SET remaining = remaining - v_take WHERE grant_id = v_lot.grant_id;
    INSERT INTO credit_allocations (reserve_id, grant_id, user_id, team_id, amount)
    VALUES (p_id, v_lot.grant_id, NULL, p_team, v_take);
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
END $function$;

CREATE OR REPLACE FUNCTION public.ledger_resolution_replay(p_id uuid, p_pending_id uuid, p_kind text)
 RETURNS credit_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION public.link_generation_input(p_generation uuid, p_field text, p_upload uuid)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_user uuid := current_app_user();
  v_team uuid;
  v_upload uploads%ROWTYPE;
  v_existing uuid;
BEGIN
  SELECT team_id INTO v_team FROM generations WHERE id = p_generation AND user_id = v_user;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  SELECT upload_id INTO v_existing FROM generation_inputs WHERE generation_id = p_generation AND field = p_field;
  IF FOUND THEN
    RETURN v_existing = p_upload;
  END IF;
  -- The row lock orders this against a purge of the same upload.
  SELECT * INTO v_upload FROM uploads WHERE id = p_upload FOR UPDATE;
  IF NOT FOUND OR v_upload.purged_at IS NOT NULL OR v_upload.deleted_at IS NOT NULL
     OR v_upload.team_id IS DISTINCT FROM v_team
     OR (v_team IS NULL AND v_upload.user_id <> v_user)
     OR (v_team IS NOT NULL AND velro_team_role(v_team) IS NULL) THEN
    RETURN false;
  END IF;
  UPDATE uploads SET used_at = coalesce(used_at, now()) WHERE id = p_upload;
  INSERT INTO generation_inputs (generation_id, field, upload_id, user_id, team_id)
  VALUES (p_generation, p_field, p_upload, v_user, v_team);
  RETURN true;
END $function$;

CREATE OR REPLACE FUNCTION public.list_generations(p_user uuid, p_team uuid, p_project uuid, p_status text, p_model text, p_after_at timestamp with time zone, p_after_id uuid, p_limit integer)
 RETURNS SETOF generation_views
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
 SET "app.user_id" TO ''
AS $function$
BEGIN
  IF p_user IS NULL OR p_limit IS NULL THEN
    RETURN;
  END IF;
  PERFORM set_config('app.user_id', p_user::text, true);
  IF p_team IS NOT NULL THEN
    PERFORM velro_require_team_role(p_team, 'viewer');
    RETURN QUERY
      SELECT * FROM generation_views g
      WHERE g.team_id = p_team AND velro_team_role(g.team_id) IS NOT NULL
        AND (p_project IS NULL OR g.project_id = p_project)
        AND (p_status IS NULL OR g.status = p_status)
        AND (p_model IS NULL OR g.model = p_model)
        AND (p_after_id IS NULL OR (g.created_at, g.id) <
             (coalesce((SELECT c.created_at FROM generations c WHERE c.id = p_after_id), p_after_at), p_after_id))
      ORDER BY g.created_at DESC, g.id DESC LIMIT p_limit;
  ELSE
    RETURN QUERY
      SELECT * FROM generation_views g
      WHERE g.user_id = p_user AND g.team_id IS NULL
        AND (p_project IS NULL OR g.project_id = p_project)
        AND (p_status IS NULL OR g.status = p_status)
        AND (p_model IS NULL OR g.model = p_model)
        AND (p_after_id IS NULL OR (g.created_at, g.id) <
             (coalesce((SELECT c.created_at FROM generations c WHERE c.id = p_after_id), p_after_at), p_after_id))
      ORDER BY g.created_at DESC, g.id DESC LIMIT p_limit;
  END IF;
END $function$;

CREATE OR REPLACE FUNCTION public.provider_request_key(p_request_id text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
BEGIN
  IF p_request_id IS NULL OR left(p_request_id, 1) <> '{' THEN
    RETURN p_request_id;
  END IF;
  BEGIN
    RETURN coalesce(p_request_id::jsonb ->> 'request_id', p_request_id);
  EXCEPTION WHEN invalid_text_representation THEN
    RETURN p_request_id;
  END;
END $function$;

CREATE OR REPLACE FUNCTION public.provider_webhook_generations(p_provider text, p_request_key text)
 RETURNS TABLE(id uuid, status text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT f.id, f.status FROM find_generations_by_provider_request(p_provider, p_request_key) f
  WHERE p_request_key <> '' AND f.status IN ('queued', 'running')
$function$;

CREATE OR REPLACE FUNCTION public.rate_limit_hit(p_bucket text, p_window_ms integer)
 RETURNS TABLE(hits integer, ttl_ms integer)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
#variable_conflict use_column
DECLARE
  v_now timestamptz := clock_timestamp();
  v_inserted boolean;
BEGIN
  IF p_window_ms IS NULL OR p_window_ms NOT BETWEEN 1 AND 86400000 THEN
    RAISE EXCEPTION 'a rate-limit window is 1 ms to 1 day' USING ERRCODE = 'VL400';
  END IF;
  IF p_bucket IS NULL OR length(p_bucket) NOT BETWEEN 1 AND 1000 THEN
    RAISE EXCEPTION 'a rate-limit bucket is 1 to 1000 characters' USING ERRCODE = 'VL400';
  END IF;
  INSERT INTO rate_limit_counts AS c (bucket, window_ends_at, hits)
  VALUES (p_bucket, v_now + p_window_ms * interval '1 millisecond', 1)
  ON CONFLICT (bucket) DO UPDATE
    SET hits = CASE WHEN c.window_ends_at <= v_now THEN 1 ELSE c.hits + 1 END,
        window_ends_at = CASE WHEN c.window_ends_at <= v_now THEN excluded.window_ends_at ELSE c.window_ends_at END
  RETURNING c.hits, ceil(extract(epoch FROM c.window_ends_at - v_now) * 1000)::integer, c.xmax = 0
  INTO hits, ttl_ms, v_inserted;
  IF v_inserted THEN
    DELETE FROM rate_limit_counts d
    WHERE d.ctid = ANY (ARRAY(
      SELECT e.ctid FROM rate_limit_counts e WHERE e.window_ends_at <= v_now
      LIMIT 4 FOR UPDATE SKIP LOCKED));
  END IF;
  RETURN NEXT;
END $function$;

CREATE OR REPLACE FUNCTION public.rate_limit_peek(p_bucket text)
 RETURNS TABLE(hits integer, ttl_ms integer)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT coalesce(max(c.hits), 0),
         coalesce(max(ceil(extract(epoch FROM c.window_ends_at - clock_timestamp()) * 1000)::integer), 0)
  FROM rate_limit_counts c
  WHERE c.bucket = p_bucket AND c.window_ends_at > clock_timestamp()
$function$;

CREATE OR REPLACE FUNCTION public.read_generation(p_user uuid, p_id uuid)
 RETURNS SETOF generation_views
 LANGUAGE plpgsql
 STRICT
 SET search_path TO 'public', 'pg_temp'
 SET "app.user_id" TO ''
AS $function$
BEGIN
  PERFORM set_config('app.user_id', p_user::text, true);
  RETURN QUERY
    SELECT * FROM generation_views g
    WHERE g.id = p_id AND (g.team_id IS NULL OR velro_team_role(g.team_id) IS NOT NULL);
END $function$;

CREATE OR REPLACE FUNCTION public.record_provider_webhook(p_provider text, p_delivery_digest text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  DELETE FROM provider_webhook_receipts WHERE received_at < now() - interval '15 minutes';
  INSERT INTO provider_webhook_receipts (provider, delivery_digest) VALUES (p_provider, p_delivery_digest)
  ON CONFLICT DO NOTHING;
  RETURN FOUND;
END $function$;

CREATE OR REPLACE FUNCTION public.register_user(p_email text, p_password_hash text)
 RETURNS uuid
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_id uuid;
  v_credits bigint;
BEGIN
  IF p_password_hash IS NULL OR p_password_hash !~ '^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$' THEN
    RAISE EXCEPTION 'not a password hash' USING ERRCODE = 'VL400';
  END IF;
  INSERT INTO users (email, password_hash, role) VALUES (lower(p_email), p_password_hash, 'user')
  ON CONFLICT (email) DO NOTHING RETURNING id INTO v_id;
  IF v_id IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT signup_credits INTO v_credits FROM velro_settings;
  IF coalesce(v_credits, 0) > 0 THEN
    PERFORM ledger_grant(ledger_derived_id('signup:' || v_id), v_id, v_credits, 'sign-up credits');
  END IF;
  RETURN v_id;
END $function$;

CREATE OR REPLACE FUNCTION public.signed_asset(p_id uuid)
 RETURNS TABLE(storage_key text, content_type text, sha256 text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT a.storage_key, a.content_type, a.sha256
  FROM assets a JOIN generations g ON g.id = a.generation_id
  WHERE a.id = p_id AND g.status = 'succeeded'
$function$;

CREATE OR REPLACE FUNCTION public.signed_upload(p_id uuid)
 RETURNS TABLE(storage_key text, content_type text, sha256 text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT u.storage_key, u.content_type, u.sha256 FROM uploads u
  WHERE u.id = p_id AND u.purged_at IS NULL AND (u.deleted_at IS NULL OR u.used_at IS NOT NULL)
$function$;

CREATE OR REPLACE FUNCTION public.team_audit(p_team uuid, p_action text, p_target_type text, p_target_id text, p_before jsonb, p_after jsonb)
 RETURNS void
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  INSERT INTO team_audit_events (team_id, actor_user_id, actor_api_key_id, action, target_type, target_id,
                                 before, after, request_id, created_at)
  VALUES (p_team, current_app_user(), NULLIF(current_setting('app.api_key_id', true), '')::uuid, p_action,
          p_target_type, p_target_id, p_before, p_after, NULLIF(current_setting('app.request_id', true), ''),
          date_trunc('milliseconds', clock_timestamp()))
$function$;

CREATE OR REPLACE FUNCTION public.team_expired_credit(p_team uuid)
 RETURNS bigint
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT CASE WHEN velro_team_role(p_team) IS NOT NULL OR pg_has_role(session_user, 'velro_system', 'MEMBER') THEN
    (SELECT coalesce(sum(amount), 0)::bigint FROM credit_transfers WHERE team_id = p_team AND kind = 'expire') END
$function$;

CREATE OR REPLACE FUNCTION public.team_invitations_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_shown jsonb := jsonb_build_object('email', NEW.email, 'role', NEW.role, 'expiresAt', NEW.expires_at);
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM team_audit(NEW.team_id, 'invitation.created', 'invitation', NEW.id::text, NULL, v_shown);
  ELSIF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
    PERFORM team_audit(NEW.team_id, 'invitation.revoked', 'invitation', NEW.id::text, v_shown, NULL);
  ELSIF NEW.accepted_at IS NOT NULL AND OLD.accepted_at IS NULL THEN
    PERFORM team_audit(NEW.team_id, 'invitation.accepted', 'invitation', NEW.id::text, v_shown,
                       jsonb_build_object('userId', NEW.accepted_by));
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.team_members_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_row team_members := coalesce(NEW, OLD);
BEGIN
  -- A team key's bot is audited as the key (api_key.created / api_key.revoked).
  IF (SELECT kind FROM users WHERE id = v_row.user_id) = 'team_key' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    PERFORM team_audit(NEW.team_id, 'member.added', 'user', NEW.user_id::text, NULL,
                       jsonb_build_object('role', NEW.role, 'monthlySpendLimit', NEW.monthly_spend_limit));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM team_audit(OLD.team_id, 'member.removed', 'user', OLD.user_id::text,
                       jsonb_build_object('role', OLD.role, 'monthlySpendLimit', OLD.monthly_spend_limit), NULL);
  ELSE
    IF NEW.role IS DISTINCT FROM OLD.role THEN
      PERFORM team_audit(NEW.team_id, 'member.role_changed', 'user', NEW.user_id::text,
                         jsonb_build_object('role', OLD.role), jsonb_build_object('role', NEW.role));
    END IF;
    IF NEW.monthly_spend_limit IS DISTINCT FROM OLD.monthly_spend_limit THEN
      PERFORM team_audit(NEW.team_id, 'member.spend_limit_changed', 'user', NEW.user_id::text,
                         jsonb_build_object('monthlySpendLimit', OLD.monthly_spend_limit),
                         jsonb_build_object('monthlySpendLimit', NEW.monthly_spend_limit));
    END IF;
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.team_members_guard()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_actor_rank integer;
BEGIN
  IF current_user <> 'velro_app' THEN
    RETURN coalesce(NEW, OLD);
  END IF;
  v_actor_rank := velro_role_rank(velro_team_role(OLD.team_id));
  IF velro_role_rank(OLD.role) > v_actor_rank THEN
    RAISE EXCEPTION 'needs the role %', OLD.role USING ERRCODE = 'VL403', DETAIL = OLD.role;
  END IF;
  IF TG_OP = 'DELETE' THEN
    IF OLD.role = 'owner' THEN
      RAISE EXCEPTION 'the owner stays until ownership is transferred'
        USING ERRCODE = 'VLT09', DETAIL = 'owner_cannot_leave';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.role = 'owner' AND NEW.role <> 'owner' THEN
    RAISE EXCEPTION 'the owner keeps its role until ownership is transferred'
      USING ERRCODE = 'VLT09', DETAIL = 'owner_required';
  END IF;
  IF NEW.role = 'owner' AND OLD.role <> 'owner' THEN
    RAISE EXCEPTION 'ownership moves only by transfer' USING ERRCODE = 'VLT09', DETAIL = 'transfer_required';
  END IF;
  IF velro_role_rank(NEW.role) > v_actor_rank THEN
    RAISE EXCEPTION 'needs the role %', NEW.role USING ERRCODE = 'VL403', DETAIL = NEW.role;
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END $function$;

CREATE OR REPLACE FUNCTION public.team_owner_check()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_team uuid;
BEGIN
  IF TG_TABLE_NAME = 'teams' THEN
    v_team := NEW.id;
  ELSIF TG_OP = 'DELETE' THEN
    v_team := OLD.team_id;
  ELSE
    v_team := NEW.team_id;
  END IF;
  IF EXISTS (SELECT 1 FROM teams WHERE id = v_team AND deleted_at IS NULL)
     AND NOT EXISTS (SELECT 1 FROM team_members WHERE team_id = v_team AND role = 'owner') THEN
    RAISE EXCEPTION 'team % must have exactly one owner', v_team USING ERRCODE = 'VLT09';
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.teams_audit()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM team_audit(NEW.id, 'team.created', 'team', NEW.id::text, NULL, jsonb_build_object('name', NEW.name));
  ELSIF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN
    PERFORM team_audit(NEW.id, 'team.deleted', 'team', NEW.id::text, jsonb_build_object('name', OLD.name), NULL);
  ELSIF NEW.name IS DISTINCT FROM OLD.name THEN
    PERFORM team_audit(NEW.id, 'team.renamed', 'team', NEW.id::text,
                       jsonb_build_object('name', OLD.name), jsonb_build_object('name', NEW.name));
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.touch_api_keys(p_key_hashes bytea[], p_used_at timestamp with time zone[])
 RETURNS integer
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  WITH used AS (
    SELECT h, max(least(t, now())) AS at
    FROM unnest(p_key_hashes[1:1000], p_used_at[1:1000]) AS x (h, t)
    WHERE h IS NOT NULL AND t IS NOT NULL
    GROUP BY h
  ), touched AS (
    UPDATE api_keys k SET last_used_at = used.at
    FROM used
    WHERE k.key_hash = used.h AND (k.last_used_at IS NULL OR k.last_used_at < used.at)
    RETURNING 1
  )
  SELECT count(*)::integer FROM touched
$function$;

CREATE OR REPLACE FUNCTION public.transfer_team_ownership(p_team uuid, p_user uuid)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_owner uuid := current_app_user();
BEGIN
  PERFORM velro_require_team_role(p_team, 'owner');
  IF p_user = v_owner THEN
    RETURN;
  END IF;
  PERFORM 1 FROM team_members m JOIN users u ON u.id = m.user_id
  WHERE m.team_id = p_team AND m.user_id = p_user AND u.kind = 'person' FOR UPDATE OF m;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no member % in team %', p_user, p_team USING ERRCODE = 'VL404', DETAIL = 'member';
  END IF;
  UPDATE team_members SET role = 'admin', updated_at = now() WHERE team_id = p_team AND user_id = v_owner;
  UPDATE team_members SET role = 'owner', updated_at = now() WHERE team_id = p_team AND user_id = p_user;
  PERFORM team_audit(p_team, 'ownership.transferred', 'user', p_user::text,
                     jsonb_build_object('owner', v_owner), jsonb_build_object('owner', p_user));
END $function$;

CREATE OR REPLACE FUNCTION public.velro_auth_notify()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_notify('velro_auth', 'all');
  ELSIF TG_TABLE_NAME = 'api_keys' THEN
    PERFORM pg_notify('velro_auth', 'key:' || OLD.id);
  ELSE
    PERFORM pg_notify('velro_auth', 'user:' || OLD.id);
  END IF;
  RETURN NULL;
END $function$;

CREATE OR REPLACE FUNCTION public.velro_require_team_role(p_team uuid, p_needed text)
 RETURNS text
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'public', 'pg_temp'
AS $function$
DECLARE
  v_role text := velro_team_role(p_team);
BEGIN
  IF v_role IS NULL THEN
    RAISE EXCEPTION 'no team % for the caller', p_team USING ERRCODE = 'VL404';
  END IF;
  IF velro_role_rank(v_role) < velro_role_rank(p_needed) THEN
    RAISE EXCEPTION 'needs the role %', p_needed USING ERRCODE = 'VL403', DETAIL = p_needed;
  END IF;
  RETURN v_role;
END $function$;

CREATE OR REPLACE FUNCTION public.velro_role_rank(p_role text)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE
AS $function$
  SELECT CASE p_role WHEN 'owner' THEN 4 WHEN 'admin' THEN 3 WHEN 'member' THEN 2 WHEN 'viewer' THEN 1 ELSE 0 END
$function$;

CREATE OR REPLACE FUNCTION public.velro_shares_team(p_user uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT EXISTS (
    SELECT 1 FROM team_members a JOIN team_members b ON b.team_id = a.team_id JOIN teams t ON t.id = a.team_id
    WHERE a.user_id = current_app_user() AND b.user_id = p_user AND t.deleted_at IS NULL)
$function$;

CREATE OR REPLACE FUNCTION public.velro_team_role(p_team uuid)
 RETURNS text
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'public', 'pg_temp'
AS $function$
  SELECT m.role FROM team_members m JOIN teams t ON t.id = m.team_id
  WHERE m.team_id = p_team AND m.user_id = current_app_user() AND t.deleted_at IS NULL
$function$;

-- Views (2)

CREATE VIEW credit_balances WITH (security_invoker=true) AS
 SELECT a.id AS account_id,
    a.user_id,
    a.credits_posted,
    a.debits_posted + s.committed AS debits_posted,
    a.debits_pending - s.committed AS debits_pending,
    a.credits_posted - a.debits_posted - a.debits_pending AS available,
    a.expiring_credit,
    a.team_id
   FROM credit_accounts a
     CROSS JOIN LATERAL ( SELECT COALESCE(sum(credit_commit_stripes.amount), 0::numeric)::bigint AS committed
           FROM credit_commit_stripes
          WHERE credit_commit_stripes.account_id = a.id) s;

CREATE VIEW generation_views WITH (security_invoker=true) AS
 SELECT g.id,
    g.model,
    g.status,
    g.stage,
    g.input,
    g.project_id,
    g.team_id,
    g.user_id,
    g.credits,
    g.error_code,
    g.error_message,
    g.created_at,
    g.updated_at,
    g.completed_at,
    g.credit_state,
    COALESCE(a.assets, '[]'::json) AS assets,
    COALESCE(i.inputs, '[]'::json) AS inputs,
        CASE
            WHEN g.stage = 'waiting for capacity'::text THEN ( SELECT p.queue_position
               FROM capacity_queue_positions(ARRAY[g.id]) p(generation_id, queue_position))
            ELSE NULL::integer
        END AS queue_position
   FROM generations g
     LEFT JOIN LATERAL ( SELECT json_agg(json_build_object('id', a_1.id, 'content_type', a_1.content_type, 'bytes', a_1.bytes, 'width', a_1.width, 'height', a_1.height, 'duration_ms', a_1.duration_ms, 'sha256', a_1.sha256) ORDER BY a_1."position") AS assets
           FROM assets a_1
          WHERE a_1.generation_id = g.id AND g.status = 'succeeded'::text) a ON true
     LEFT JOIN LATERAL ( SELECT json_agg(json_build_object('field', i_1.field, 'upload_id', i_1.upload_id, 'content_type', u.content_type, 'width', u.width, 'height', u.height) ORDER BY i_1.field DESC) AS inputs
           FROM generation_inputs i_1
             JOIN uploads u ON u.id = i_1.upload_id
          WHERE i_1.generation_id = g.id) i ON true;

-- Policies (67)

CREATE POLICY api_keys_owner ON api_keys
  AS PERMISSIVE FOR ALL TO velro_app
  USING ((user_id = ( SELECT current_app_user() AS current_app_user)))
  WITH CHECK ((user_id = ( SELECT current_app_user() AS current_app_user)));

CREATE POLICY api_keys_people_create ON api_keys
  AS RESTRICTIVE FOR INSERT TO velro_app
  WITH CHECK ((( SELECT u.kind
   FROM users u
  WHERE (u.id = ( SELECT current_app_user() AS current_app_user))) = 'person'::text));

CREATE POLICY api_keys_system ON api_keys
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY api_keys_team_admin ON api_keys
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))));

CREATE POLICY api_keys_team_revoke ON api_keys
  AS PERMISSIVE FOR UPDATE TO velro_app
  USING (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))))
  WITH CHECK (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))));

CREATE POLICY assets_create ON assets
  AS PERMISSIVE FOR INSERT TO velro_app
  WITH CHECK ((user_id = ( SELECT current_app_user() AS current_app_user)));

CREATE POLICY assets_read ON assets
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE ((velro_team_role(team_id) IS NOT NULL) OR (user_id = ( SELECT current_app_user() AS current_app_user)))
END);

CREATE POLICY assets_system ON assets
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY credit_accounts_owner ON credit_accounts
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE (velro_team_role(team_id) IS NOT NULL)
END);

CREATE POLICY credit_accounts_system ON credit_accounts
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY credit_allocations_owner ON credit_allocations
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE (velro_team_role(team_id) IS NOT NULL)
END);

CREATE POLICY credit_allocations_system ON credit_allocations
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY credit_commit_stripes_owner ON credit_commit_stripes
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE (velro_team_role(team_id) IS NOT NULL)
END);

CREATE POLICY credit_commit_stripes_system ON credit_commit_stripes
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY credit_lots_owner ON credit_lots
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE (velro_team_role(team_id) IS NOT NULL)
END);

CREATE POLICY credit_lots_system ON credit_lots
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY credit_transfers_owner ON credit_transfers
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])) OR ((user_id = ( SELECT current_app_user() AS current_app_user)) AND (velro_team_role(team_id) IS NOT NULL)))
END);

CREATE POLICY credit_transfers_system ON credit_transfers
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY generation_inputs_provider ON generation_inputs
  AS PERMISSIVE FOR UPDATE TO velro_app
  USING ((user_id = ( SELECT current_app_user() AS current_app_user)))
  WITH CHECK ((user_id = ( SELECT current_app_user() AS current_app_user)));

CREATE POLICY generation_inputs_read ON generation_inputs
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (((user_id = ( SELECT current_app_user() AS current_app_user)) OR ((team_id IS NOT NULL) AND (velro_team_role(team_id) IS NOT NULL))));

CREATE POLICY generation_inputs_system ON generation_inputs
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY generations_create ON generations
  AS PERMISSIVE FOR INSERT TO velro_app
  WITH CHECK (((user_id = ( SELECT current_app_user() AS current_app_user)) AND ((team_id IS NULL) OR (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text, 'member'::text])))));

CREATE POLICY generations_progress ON generations
  AS PERMISSIVE FOR UPDATE TO velro_app
  USING (((user_id = ( SELECT current_app_user() AS current_app_user)) OR ((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])))))
  WITH CHECK (((user_id = ( SELECT current_app_user() AS current_app_user)) OR ((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])))));

CREATE POLICY generations_read ON generations
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (((user_id = ( SELECT current_app_user() AS current_app_user)) OR ((team_id IS NOT NULL) AND (velro_team_role(team_id) IS NOT NULL))));

CREATE POLICY generations_system ON generations
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY idempotency_keys_owner ON idempotency_keys
  AS PERMISSIVE FOR ALL TO velro_app
  USING ((user_id = ( SELECT current_app_user() AS current_app_user)))
  WITH CHECK ((user_id = ( SELECT current_app_user() AS current_app_user)));

CREATE POLICY idempotency_keys_system ON idempotency_keys
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY projects_change ON projects
  AS PERMISSIVE FOR UPDATE TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])) OR ((user_id = ( SELECT current_app_user() AS current_app_user)) AND (velro_team_role(team_id) = 'member'::text)))
END)
  WITH CHECK (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])) OR ((user_id = ( SELECT current_app_user() AS current_app_user)) AND (velro_team_role(team_id) = 'member'::text)))
END);

CREATE POLICY projects_create ON projects
  AS PERMISSIVE FOR INSERT TO velro_app
  WITH CHECK (((user_id = ( SELECT current_app_user() AS current_app_user)) AND ((team_id IS NULL) OR (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text, 'member'::text])))));

CREATE POLICY projects_delete ON projects
  AS PERMISSIVE FOR DELETE TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])) OR ((user_id = ( SELECT current_app_user() AS current_app_user)) AND (velro_team_role(team_id) = 'member'::text)))
END);

CREATE POLICY projects_read ON projects
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE (velro_team_role(team_id) IS NOT NULL)
END);

CREATE POLICY projects_system ON projects
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY provider_webhook_receipts_system ON provider_webhook_receipts
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY team_audit_events_admin ON team_audit_events
  AS PERMISSIVE FOR SELECT TO velro_app
  USING ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])));

CREATE POLICY team_audit_events_system ON team_audit_events
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY team_invitations_admin ON team_invitations
  AS PERMISSIVE FOR ALL TO velro_app
  USING ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])))
  WITH CHECK (((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])) AND (invited_by = ( SELECT current_app_user() AS current_app_user)) AND (velro_role_rank(role) <= velro_role_rank(velro_team_role(team_id)))));

CREATE POLICY team_invitations_system ON team_invitations
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY team_member_usage_reader ON team_member_usage
  AS PERMISSIVE FOR SELECT TO velro_app
  USING ((((user_id = ( SELECT current_app_user() AS current_app_user)) AND (velro_team_role(team_id) IS NOT NULL)) OR (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))));

CREATE POLICY team_member_usage_system ON team_member_usage
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY team_members_admin_update ON team_members
  AS PERMISSIVE FOR UPDATE TO velro_app
  USING ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])))
  WITH CHECK ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])));

CREATE POLICY team_members_member ON team_members
  AS PERMISSIVE FOR SELECT TO velro_app
  USING ((velro_team_role(team_id) IS NOT NULL));

CREATE POLICY team_members_remove ON team_members
  AS PERMISSIVE FOR DELETE TO velro_app
  USING (((user_id = ( SELECT current_app_user() AS current_app_user)) OR (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))));

CREATE POLICY team_members_system ON team_members
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY teams_admin_update ON teams
  AS PERMISSIVE FOR UPDATE TO velro_app
  USING ((velro_team_role(id) = ANY (ARRAY['owner'::text, 'admin'::text])))
  WITH CHECK ((velro_team_role(id) = ANY (ARRAY['owner'::text, 'admin'::text])));

CREATE POLICY teams_member ON teams
  AS PERMISSIVE FOR SELECT TO velro_app
  USING ((velro_team_role(id) IS NOT NULL));

CREATE POLICY teams_system ON teams
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY uploads_create ON uploads
  AS PERMISSIVE FOR INSERT TO velro_app
  WITH CHECK (((user_id = ( SELECT current_app_user() AS current_app_user)) AND ((team_id IS NULL) OR (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text, 'member'::text])))));

CREATE POLICY uploads_delete ON uploads
  AS PERMISSIVE FOR UPDATE TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])) OR ((user_id = ( SELECT current_app_user() AS current_app_user)) AND (velro_team_role(team_id) = 'member'::text)))
END)
  WITH CHECK (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE ((velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])) OR ((user_id = ( SELECT current_app_user() AS current_app_user)) AND (velro_team_role(team_id) = 'member'::text)))
END);

CREATE POLICY uploads_read ON uploads
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (
CASE
    WHEN (team_id IS NULL) THEN (user_id = ( SELECT current_app_user() AS current_app_user))
    ELSE (velro_team_role(team_id) IS NOT NULL)
END);

CREATE POLICY uploads_system ON uploads
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY users_self ON users
  AS PERMISSIVE FOR ALL TO velro_app
  USING ((id = ( SELECT current_app_user() AS current_app_user)))
  WITH CHECK ((id = ( SELECT current_app_user() AS current_app_user)));

CREATE POLICY users_system ON users
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY users_teammates ON users
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (velro_shares_team(id));

CREATE POLICY webhook_deliveries_owner ON webhook_deliveries
  AS PERMISSIVE FOR ALL TO velro_app
  USING (((team_id IS NULL) AND (user_id = ( SELECT current_app_user() AS current_app_user))))
  WITH CHECK (((team_id IS NULL) AND (user_id = ( SELECT current_app_user() AS current_app_user))));

CREATE POLICY webhook_deliveries_system ON webhook_deliveries
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY webhook_deliveries_team_admin ON webhook_deliveries
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))));

CREATE POLICY webhook_endpoints_owner ON webhook_endpoints
  AS PERMISSIVE FOR ALL TO velro_app
  USING (((team_id IS NULL) AND (user_id = ( SELECT current_app_user() AS current_app_user))))
  WITH CHECK (((team_id IS NULL) AND (user_id = ( SELECT current_app_user() AS current_app_user))));

CREATE POLICY webhook_endpoints_system ON webhook_endpoints
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY webhook_endpoints_team_change ON webhook_endpoints
  AS PERMISSIVE FOR UPDATE TO velro_app
  USING (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))))
  WITH CHECK (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))));

CREATE POLICY webhook_endpoints_team_create ON webhook_endpoints
  AS PERMISSIVE FOR INSERT TO velro_app
  WITH CHECK (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text])) AND (created_by = ( SELECT current_app_user() AS current_app_user))));

CREATE POLICY webhook_endpoints_team_read ON webhook_endpoints
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))));

CREATE POLICY webhook_events_create ON webhook_events
  AS PERMISSIVE FOR INSERT TO velro_app
  WITH CHECK (((user_id = ( SELECT current_app_user() AS current_app_user)) AND (team_id IS NULL)));

CREATE POLICY webhook_events_owner ON webhook_events
  AS PERMISSIVE FOR SELECT TO velro_app
  USING ((user_id = ( SELECT current_app_user() AS current_app_user)));

CREATE POLICY webhook_events_system ON webhook_events
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);

CREATE POLICY webhook_events_team_admin ON webhook_events
  AS PERMISSIVE FOR SELECT TO velro_app
  USING (((team_id IS NOT NULL) AND (velro_team_role(team_id) = ANY (ARRAY['owner'::text, 'admin'::text]))));

CREATE POLICY webhook_secrets_owner ON webhook_secrets
  AS PERMISSIVE FOR ALL TO velro_app
  USING ((user_id = ( SELECT current_app_user() AS current_app_user)))
  WITH CHECK ((user_id = ( SELECT current_app_user() AS current_app_user)));

CREATE POLICY webhook_secrets_system ON webhook_secrets
  AS PERMISSIVE FOR ALL TO velro_system
  USING (true)
  WITH CHECK (true);
