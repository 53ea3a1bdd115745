-- Identity: login tokens, API key management, projects, and a tighter second wall.

-- Resolves the subject of a verified login token to its current role. The token's own role claim
-- is not trusted for authorisation: a demoted or deleted user loses access on the next request.
CREATE FUNCTION auth_user(p_user_id uuid)
RETURNS TABLE (user_id uuid, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT id, role FROM users WHERE id = p_user_id
$$;
ALTER FUNCTION auth_user(uuid) OWNER TO velro_system;
REVOKE ALL ON FUNCTION auth_user(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_user(uuid) TO velro_app;

-- create_user (any role, any email) and create_api_key (a key for any user) bypass row-level
-- security by design; they are bootstrap and sign-up paths, run as velro_system. The app role loses
-- them, so a bug or an injection in request code cannot mint an admin or a key for someone else.
-- (API keys for the caller are inserted through RLS, WITH CHECK user_id = app.user_id.)
REVOKE EXECUTE ON FUNCTION create_user(text, text, text), create_api_key(uuid, text, text, bytea) FROM velro_app;

-- Active keys of a user, newest first: GET /v1/api-keys.
CREATE INDEX api_keys_user_active_idx ON api_keys (user_id, created_at DESC, id DESC) WHERE revoked_at IS NULL;

-- A generation may only name a project of its own user. The single-column foreign key only checked
-- that the project exists (foreign keys are not subject to RLS), so the composite one replaces it.
-- Deleting a project keeps its generations (and their ledger history): only project_id is cleared.
ALTER TABLE projects ADD CONSTRAINT projects_id_user_key UNIQUE (id, user_id);
ALTER TABLE generations DROP CONSTRAINT IF EXISTS generations_project_id_fkey;
ALTER TABLE generations ADD CONSTRAINT generations_project_owner_fkey
  FOREIGN KEY (project_id, user_id) REFERENCES projects (id, user_id) ON DELETE SET NULL (project_id);
