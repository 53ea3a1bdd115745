-- Velro core schema: users, API keys, projects, generations, assets.
-- The API and worker act as the role velro_app, which owns nothing and cannot bypass row-level
-- security; every tenant table is filtered by the transaction setting app.user_id.

-- velro_app: what every request and activity runs as; sees only the rows of app.user_id.
-- velro_system: the few explicit system paths (ledger functions, reconciler, admin commands).
-- Neither logs in: the connecting role switches to them (SET ROLE is checked against the session
-- user, so velro_app itself can never become velro_system).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'velro_app') THEN
    CREATE ROLE velro_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'velro_system') THEN
    CREATE ROLE velro_system NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
  EXECUTE format('GRANT velro_app, velro_system TO %I', current_user);
END $$;

GRANT USAGE ON SCHEMA public TO velro_app, velro_system;
-- Owning the SECURITY DEFINER functions below needs CREATE on their schema.
GRANT CREATE ON SCHEMA public TO velro_system;

-- The caller's user id, or NULL when none is set: policies compare against it, so no setting
-- means no rows.
CREATE FUNCTION current_app_user() RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $$;

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL,
  role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  password_hash text,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_email_normalised CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254)
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  prefix text NOT NULL,
  key_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);

CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_user_idx ON projects (user_id, created_at DESC, id DESC);

CREATE TABLE generations (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id),
  project_id uuid REFERENCES projects (id) ON DELETE SET NULL,
  model text NOT NULL,
  input jsonb NOT NULL,
  status text NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
  stage text NOT NULL DEFAULT 'queued',
  credits bigint NOT NULL CHECK (credits > 0),
  provider text NOT NULL,
  provider_request_id text,
  webhook_url text,
  error_code text,
  error_message text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  CONSTRAINT generations_terminal_has_time
    CHECK ((status IN ('succeeded', 'failed', 'canceled')) = (completed_at IS NOT NULL))
);
CREATE INDEX generations_user_idx ON generations (user_id, created_at DESC, id DESC);
CREATE INDEX generations_project_idx ON generations (project_id, created_at DESC, id DESC) WHERE project_id IS NOT NULL;

CREATE TABLE assets (
  id uuid PRIMARY KEY,
  generation_id uuid NOT NULL REFERENCES generations (id),
  user_id uuid NOT NULL REFERENCES users (id),
  position int NOT NULL CHECK (position >= 0),
  storage_key text NOT NULL,
  content_type text NOT NULL,
  bytes bigint NOT NULL CHECK (bytes >= 0),
  width int,
  height int,
  duration_ms int,
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (generation_id, position)
);

-- Row-level security on every tenant table, forced so that even the owner is filtered.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_self ON users TO velro_app USING (id = (SELECT current_app_user()))
  WITH CHECK (id = (SELECT current_app_user()));
CREATE POLICY users_system ON users TO velro_system USING (true) WITH CHECK (true);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_owner ON api_keys TO velro_app USING (user_id = (SELECT current_app_user()))
  WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY api_keys_system ON api_keys TO velro_system USING (true) WITH CHECK (true);

ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE projects FORCE ROW LEVEL SECURITY;
CREATE POLICY projects_owner ON projects TO velro_app USING (user_id = (SELECT current_app_user()))
  WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY projects_system ON projects TO velro_system USING (true) WITH CHECK (true);

ALTER TABLE generations ENABLE ROW LEVEL SECURITY;
ALTER TABLE generations FORCE ROW LEVEL SECURITY;
CREATE POLICY generations_owner ON generations TO velro_app USING (user_id = (SELECT current_app_user()))
  WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY generations_system ON generations TO velro_system USING (true) WITH CHECK (true);

ALTER TABLE assets ENABLE ROW LEVEL SECURITY;
ALTER TABLE assets FORCE ROW LEVEL SECURITY;
CREATE POLICY assets_owner ON assets TO velro_app USING (user_id = (SELECT current_app_user()))
  WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY assets_system ON assets TO velro_system USING (true) WITH CHECK (true);

GRANT SELECT ON users TO velro_app;
GRANT SELECT, INSERT, UPDATE (last_used_at, revoked_at) ON api_keys TO velro_app;
GRANT SELECT, INSERT, UPDATE (name, updated_at), DELETE ON projects TO velro_app;
GRANT SELECT, INSERT, UPDATE (project_id, status, stage, provider_request_id, error_code, error_message, updated_at, completed_at) ON generations TO velro_app;
GRANT SELECT, INSERT ON assets TO velro_app;
GRANT SELECT, INSERT, UPDATE ON users, api_keys, projects, generations, assets TO velro_system;

-- System paths: the only ways to touch rows before a user is known. Each is SECURITY DEFINER,
-- owned by the schema owner, with a fixed search_path.

-- Resolves an API key hash to its (non-revoked) owner and stamps last_used_at at most once a minute.
CREATE FUNCTION auth_api_key(p_key_hash bytea)
RETURNS TABLE (user_id uuid, role text, api_key_id uuid)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  RETURN QUERY
  UPDATE api_keys k SET last_used_at = now()
  FROM users u
  WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL AND u.id = k.user_id
    AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
  RETURNING u.id, u.role, k.id;
  IF NOT FOUND THEN
    RETURN QUERY
    SELECT u.id, u.role, k.id FROM api_keys k JOIN users u ON u.id = k.user_id
    WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL;
  END IF;
END $$;

-- Creates a user (and its credit account, see 002) unless the email is taken; returns its id.
CREATE FUNCTION create_user(p_email text, p_password_hash text, p_role text DEFAULT 'user')
RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  v_id uuid;
BEGIN
  INSERT INTO users (email, password_hash, role) VALUES (lower(p_email), p_password_hash, p_role)
  ON CONFLICT (email) DO NOTHING RETURNING id INTO v_id;
  RETURN v_id;
END $$;

-- Looks a user up by email (login and admin commands).
CREATE FUNCTION find_user_by_email(p_email text)
RETURNS TABLE (id uuid, email text, role text, password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT id, email, role, password_hash FROM users WHERE email = lower(p_email)
$$;

-- Lets a user create keys for itself: inserting through RLS needs app.user_id, which is set per
-- transaction by the app; this function is for bootstrap (the demo user and admin commands).
CREATE FUNCTION create_api_key(p_user_id uuid, p_name text, p_prefix text, p_key_hash bytea)
RETURNS uuid
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES (p_user_id, p_name, p_prefix, p_key_hash)
  RETURNING id
$$;

ALTER FUNCTION auth_api_key(bytea) OWNER TO velro_system;
ALTER FUNCTION create_user(text, text, text) OWNER TO velro_system;
ALTER FUNCTION find_user_by_email(text) OWNER TO velro_system;
ALTER FUNCTION create_api_key(uuid, text, text, bytea) OWNER TO velro_system;

REVOKE ALL ON FUNCTION auth_api_key(bytea), create_user(text, text, text), find_user_by_email(text),
  create_api_key(uuid, text, text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_api_key(bytea), create_user(text, text, text), find_user_by_email(text),
  create_api_key(uuid, text, text, bytea), current_app_user() TO velro_app;
