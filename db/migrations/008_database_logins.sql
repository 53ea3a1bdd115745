-- Database logins that cannot step around row-level security (the "second wall").
--
-- Until now the API and worker connected as the owner and switched to velro_app with SET ROLE, so
-- any SQL that reached their pool could SET ROLE velro_system (or NONE) and act across users. Now:
--
--   velro_app     the API and worker log in as it. No superuser, no BYPASSRLS, owns nothing, member
--                 of no role: SET ROLE to anything fails, SET ROLE NONE leaves it velro_app.
--   velro_system  the worker's reconciler, admin commands, ledger check and bootstrap log in as it.
--                 Owns the SECURITY DEFINER functions (that is what lets them act across users), is
--                 member of no role, so it cannot become the owner either.
--   owner         migrations only.
--
-- Passwords are not set here: lib/db/logins.ts sets them (ALTER ROLE ... PASSWORD) from the owner
-- connection, or an operator does by hand (README, "Database roles").
--
-- Functions velro_app may execute act only for app.user_id, or by a capability the caller cannot
-- guess (an API key hash, a 122-bit random id, a provider's request id). Every function that acts
-- across users by name is granted to velro_system only. The audit of migrations 001-007 is at the end.

ALTER ROLE velro_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
ALTER ROLE velro_system LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;

-- Member of no role: whatever a previous setup granted them goes.
DO $$
DECLARE r record;
BEGIN
  FOR r IN
    SELECT m.member::regrole AS member, m.roleid::regrole AS granted
    FROM pg_auth_members m
    WHERE m.member IN ('velro_app'::regrole, 'velro_system'::regrole)
  LOOP
    EXECUTE format('REVOKE %s FROM %s CASCADE', r.granted, r.member);
  END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Settings only the owner (the provisioning step, lib/db/logins.ts) and velro_system write.
CREATE TABLE velro_settings (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  -- Credits every new account gets from register_user (SIGNUP_CREDITS).
  signup_credits bigint NOT NULL DEFAULT 0 CHECK (signup_credits BETWEEN 0 AND 1000000000),
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO velro_settings DEFAULT VALUES;
REVOKE ALL ON velro_settings FROM PUBLIC;
GRANT SELECT, UPDATE (signup_credits, updated_at) ON velro_settings TO velro_system;

-- ---------------------------------------------------------------------------------------------
-- Users: velro_app never reads a password hash, not even its own user's.
REVOKE SELECT ON users FROM velro_app;
GRANT SELECT (id, email, role, created_at) ON users TO velro_app;

-- ---------------------------------------------------------------------------------------------
-- The ledger acts for app.user_id only, unless the session logged in as velro_system (or the owner).
-- Inside a SECURITY DEFINER function current_user is the function's owner, so the decision reads
-- session_user: the login role, which only a superuser can change (SET SESSION AUTHORIZATION).
-- (No SET clause, as before: it runs inside the ledger's functions, under their fixed search_path, and
-- is on the hot path.)
CREATE OR REPLACE FUNCTION ledger_acting_user(p_user uuid) RETURNS uuid
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
  IF v_scoped IS NULL AND NOT pg_has_role(session_user, 'velro_system', 'MEMBER') THEN
    RAISE EXCEPTION 'the ledger acts only for app.user_id' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN coalesce(p_user, v_scoped);
END $$;

-- The batch refuses as a whole (not item by item) when it may not act for p_user.
CREATE OR REPLACE FUNCTION ledger_reserve_batch(p_user uuid, p_ids uuid[], p_amounts bigint[],
                                                p_generation_ids uuid[], p_deadlines timestamptz[])
RETURNS TABLE (ordinal integer, transfer credit_transfers, error_code text, error_message text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
END $$;

-- ---------------------------------------------------------------------------------------------
-- Ids derived in SQL (expiry transfers, sign-up grants) become RFC 9562 version-8 uuids, derived
-- exactly as lib/ledger/ids.ts derivedUuid() does (sha256 of the text): the API's schemas accept
-- only RFC uuids, and md5(text)::uuid rarely is one. Ids derived before stay as they are; nothing
-- derives an id again for a transfer that already exists (each lot expires once, each reservation
-- is released once).
CREATE OR REPLACE FUNCTION ledger_derived_id(p_text text) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
  SELECT (substr(h, 1, 12) || '8' || substr(h, 14, 3)
          || to_hex((('x' || substr(h, 17, 1))::bit(4)::int & 3) | 8) || substr(h, 18, 15))::uuid
  FROM encode(sha256(convert_to(p_text, 'UTF8')), 'hex') AS h
$$;

-- ---------------------------------------------------------------------------------------------
-- The API's few paths that start without a user, replaced by narrow functions (all owned by
-- velro_system, granted to velro_app).

-- Login, step 1: the parameters and salt of the email's password hash (`scrypt$N$r$p$salt`) and
-- the hash's length in bytes, never the hash. An unknown email, or a user without a password,
-- gets a fixed dummy of today's cost, so the caller does the same scrypt work either way (and
-- the check below then finds nothing). Safe: a salt and a cost are not secrets; they only let the
-- caller compute a candidate, which is worth something only if it knows the password.
CREATE FUNCTION auth_password_params(p_email text)
RETURNS TABLE (params text, key_bytes integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce(
           (SELECT substring(u.password_hash FROM '^(scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+)\$[A-Za-z0-9_-]+$')
            FROM users u WHERE u.email = lower(p_email)),
           'scrypt$32768$8$1$dmVscm8tZHVtbXktc2FsdA'),
         coalesce(
           (SELECT length(substring(u.password_hash FROM '\$([A-Za-z0-9_-]+)$')) * 3 / 4
            FROM users u WHERE u.email = lower(p_email)
              AND u.password_hash ~ '^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$'),
           32)
$$;

-- Login, step 2: the user whose stored hash is exactly p_candidate (the hash the caller derived
-- from the password with the parameters above), or no row. Safe: it answers only who the password
-- belongs to, which the login route answers anyway; it reveals nothing stored.
CREATE FUNCTION auth_password_check(p_email text, p_candidate text)
RETURNS TABLE (user_id uuid, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT u.id, u.role FROM users u
  WHERE u.email = lower(p_email) AND u.password_hash IS NOT NULL AND u.password_hash = p_candidate
$$;

-- Login, step 3 (sometimes): replaces the hash of app.user_id's password by a stronger one. Acts
-- only for app.user_id, and only with the current hash in hand (p_current, the candidate of step
-- 2): proof that the caller knows the password. True when it changed the hash.
CREATE FUNCTION auth_password_rehash(p_current text, p_new text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF p_new IS NULL OR p_new !~ '^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$' THEN
    RAISE EXCEPTION 'not a password hash' USING ERRCODE = 'VL400';
  END IF;
  UPDATE users SET password_hash = p_new
  WHERE id = current_app_user() AND password_hash IS NOT NULL AND password_hash = p_current;
  RETURN FOUND;
END $$;

-- Sign-up: a user with the role `user` (never another), granted the sign-up credits that the
-- settings say, not the caller. NULL when the email is taken. Safe: it creates only a plain new
-- account, which the public register route does for anyone; the amount is out of the caller's hands.
CREATE FUNCTION register_user(p_email text, p_password_hash text) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
END $$;

-- POST /v1/admin/credit-grants: a grant made by app.user_id, who must be an admin right now.
-- Safe: acts only for app.user_id, and only within what that user's role allows.
CREATE FUNCTION admin_grant_credits(p_id uuid, p_user_id uuid, p_amount bigint, p_reason text,
                                    p_expires_at timestamptz DEFAULT NULL)
RETURNS credit_transfers
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM users WHERE id = current_app_user() AND role = 'admin') THEN
    RAISE EXCEPTION 'only an admin (app.user_id) may grant credits' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN ledger_grant(p_id, p_user_id, p_amount, p_reason, p_expires_at);
END $$;

-- A signed output URL (GET /v1/assets/:id?signature=...): where ONE asset is stored, by its id,
-- only while its generation has succeeded (failed and canceled generations serve no output).
-- Safe: capability by unguessable id (random 122-bit uuid, handed out only in signed URLs and to
-- its owner), and it returns storage fields only.
CREATE FUNCTION signed_asset(p_id uuid)
RETURNS TABLE (storage_key text, content_type text, sha256 text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT a.storage_key, a.content_type, a.sha256
  FROM assets a JOIN generations g ON g.id = a.generation_id
  WHERE a.id = p_id AND g.status = 'succeeded'
$$;

-- Event streams (GET /v1/generations/:id/events): the API checks each stream's owner when it
-- opens, then watches all open streams with one query. Safe: capability by unguessable id, and it
-- returns only status fields (no input, no user, no outputs).
CREATE FUNCTION generation_statuses(p_ids uuid[])
RETURNS TABLE (id uuid, status text, stage text, error_code text, error_message text, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT g.id, g.status, g.stage, g.error_code, g.error_message, g.updated_at
  FROM generations g WHERE g.id = ANY (p_ids[1:10000])
$$;

-- A verified provider webhook: the unfinished generations waiting on that provider request.
-- Safe: capability by the provider's request id (known to the provider and the worker only), and
-- it returns ids and statuses of unfinished generations only.
CREATE FUNCTION provider_webhook_generations(p_provider text, p_request_key text)
RETURNS TABLE (id uuid, status text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT f.id, f.status FROM find_generations_by_provider_request(p_provider, p_request_key) f
  WHERE p_request_key <> '' AND f.status IN ('queued', 'running')
$$;

GRANT CREATE ON SCHEMA public TO velro_system;
DO $$
DECLARE f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'auth_password_params(text)', 'auth_password_check(text, text)', 'auth_password_rehash(text, text)',
    'register_user(text, text)', 'admin_grant_credits(uuid, uuid, bigint, text, timestamptz)',
    'signed_asset(uuid)', 'generation_statuses(uuid[])', 'provider_webhook_generations(text, text)'] LOOP
    EXECUTE format('ALTER FUNCTION %s OWNER TO velro_system', f);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO velro_app, velro_system', f);
  END LOOP;
END $$;

-- velro_system needed CREATE on the schema only to be given functions (ALTER ... OWNER TO checks
-- it). Kept, it could plant objects in public that a later migration, run as the owner, might
-- resolve to: it goes. A migration that gives velro_system a new function grants it and revokes it
-- again, as this one does.
REVOKE CREATE ON SCHEMA public FROM velro_system;

-- ---------------------------------------------------------------------------------------------
-- Cross-user functions: velro_system only. (A function's owner, velro_system, may always run it.)
REVOKE EXECUTE ON FUNCTION find_user_by_email(text) FROM velro_app;
REVOKE EXECUTE ON FUNCTION find_generations_by_provider_request(text, text) FROM velro_app;
REVOKE EXECUTE ON FUNCTION ledger_acting_user(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_acting_user(uuid) TO velro_system;

-- Audit of what velro_app may execute after this migration (everything else: velro_system only).
--   current_app_user()                       reads app.user_id
--   auth_api_key(bytea)                      capability: the hash of a secret API key
--   auth_user(uuid)                          role of a user whose login token the API verified; id and role only
--   ledger_reserve / _commit / _release      act for app.user_id only (ledger_acting_user above)
--   ledger_reserve_batch                     acts for app.user_id only
--   record_provider_webhook(text, text)      remembers a delivery digest; no user data
--   the eight functions above                see each one's comment
--   ledger_derived_id, ledger_check_amount, ledger_conflict, provider_request_key: pure, no data
-- Revoked from velro_app: find_user_by_email (returned password hashes),
-- find_generations_by_provider_request (cross-user lookup), ledger_acting_user (internal);
-- create_user and create_api_key already were (003); ledger_grant, ledger_expire_grants,
-- ledger_fold_commits, ledger_pending_reserve, ledger_resolution_replay, ledger_expire_lapsed_lots,
-- create_credit_account never were.
