-- The read path (issue 16): authentication without a write per request, revocation pushed to every
-- API process, and a generation read in one statement without correlated sub-selects.
--
--   auth_api_key        a pure read now (STABLE); last_used_at is batched by the API and written by
--                       touch_api_keys, by key hash (the same capability auth_api_key asks for).
--   velro_auth          a NOTIFY channel: each API process caches credentials and evicts on what
--                       these triggers say (a key revoked or deleted, a user's role changed or deleted).
--   credit_state        the generation's credit state as a column, kept by the ledger's inserts.
--   generation_views    the generation as clients see it (security_invoker: row-level security of the
--                       caller); read_generation and list_generations set app.user_id and read in one call.

-- ---------------------------------------------------------------------------------------------
-- API keys: authentication reads; last use is written in batches.
CREATE OR REPLACE FUNCTION auth_api_key(p_key_hash bytea)
RETURNS TABLE (user_id uuid, role text, api_key_id uuid, team_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT u.id, u.role, k.id, k.team_id FROM api_keys k JOIN users u ON u.id = k.user_id
  WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
$$;

-- Records when keys were last used (at most 1,000 a call): only existing keys, only forward, never
-- past now(). By key hash, so it needs what authentication needs: the key itself.
CREATE FUNCTION touch_api_keys(p_key_hashes bytea[], p_used_at timestamptz[])
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
$$;

-- ---------------------------------------------------------------------------------------------
-- Revocation: `key:<api key id>`, `user:<user id>` or `all` on channel velro_auth, sent at commit to
-- every listening API process, whoever made the change (an API route, `npm run admin`, plain SQL).
CREATE FUNCTION velro_auth_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_notify('velro_auth', 'all');
  ELSIF TG_TABLE_NAME = 'api_keys' THEN
    PERFORM pg_notify('velro_auth', 'key:' || OLD.id);
  ELSE
    PERFORM pg_notify('velro_auth', 'user:' || OLD.id);
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER api_keys_auth_changed AFTER UPDATE ON api_keys FOR EACH ROW
  WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.key_hash IS DISTINCT FROM NEW.key_hash
        OR OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.team_id IS DISTINCT FROM NEW.team_id)
  EXECUTE FUNCTION velro_auth_notify();
CREATE TRIGGER api_keys_auth_deleted AFTER DELETE ON api_keys FOR EACH ROW
  EXECUTE FUNCTION velro_auth_notify();
CREATE TRIGGER api_keys_auth_truncated AFTER TRUNCATE ON api_keys FOR EACH STATEMENT
  EXECUTE FUNCTION velro_auth_notify();
CREATE TRIGGER users_auth_changed AFTER UPDATE ON users FOR EACH ROW
  WHEN (OLD.role IS DISTINCT FROM NEW.role OR OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION velro_auth_notify();
CREATE TRIGGER users_auth_deleted AFTER DELETE ON users FOR EACH ROW
  EXECUTE FUNCTION velro_auth_notify();
CREATE TRIGGER users_auth_truncated AFTER TRUNCATE ON users FOR EACH STATEMENT
  EXECUTE FUNCTION velro_auth_notify();

-- ---------------------------------------------------------------------------------------------
-- A generation's credit state, kept by the ledger: charged once committed, else refunded once
-- released, else reserved once reserved. The reservation is made before the generation's row
-- (activities/admission.ts), so the row takes the state the ledger already has when it is inserted,
-- and each later transfer naming it moves the state on, in the transfer's own transaction.
ALTER TABLE generations ADD COLUMN credit_state text NOT NULL DEFAULT 'none'
  CHECK (credit_state IN ('none', 'reserved', 'charged', 'refunded'));

CREATE FUNCTION generation_credit_state(p_generation uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT CASE WHEN bool_or(t.kind = 'commit') THEN 'charged'
              WHEN bool_or(t.kind = 'release') THEN 'refunded'
              WHEN bool_or(t.kind = 'reserve') THEN 'reserved'
              ELSE 'none' END
  FROM credit_transfers t WHERE t.generation_id = p_generation
$$;

-- Whatever an insert names as the state, the ledger decides it.
CREATE FUNCTION generations_credit_state_on_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  NEW.credit_state := generation_credit_state(NEW.id);
  RETURN NEW;
END $$;
CREATE TRIGGER generations_credit_state BEFORE INSERT ON generations FOR EACH ROW
  EXECUTE FUNCTION generations_credit_state_on_insert();

CREATE FUNCTION credit_transfers_generation_state() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  UPDATE generations
  SET credit_state = CASE NEW.kind WHEN 'commit' THEN 'charged' WHEN 'release' THEN 'refunded' ELSE 'reserved' END
  WHERE id = NEW.generation_id
    AND CASE NEW.kind WHEN 'commit' THEN credit_state <> 'charged'
                      WHEN 'release' THEN credit_state NOT IN ('charged', 'refunded')
                      ELSE credit_state = 'none' END;
  RETURN NULL;
END $$;
CREATE TRIGGER credit_transfers_generation_state AFTER INSERT ON credit_transfers FOR EACH ROW
  WHEN (NEW.generation_id IS NOT NULL AND NEW.kind IN ('reserve', 'commit', 'release'))
  EXECUTE FUNCTION credit_transfers_generation_state();

-- Forced row-level security filters the owner too: the backfill steps out of it for one statement.
ALTER TABLE generations NO FORCE ROW LEVEL SECURITY;
UPDATE generations g SET credit_state = generation_credit_state(g.id)
WHERE EXISTS (SELECT 1 FROM credit_transfers t WHERE t.generation_id = g.id);
ALTER TABLE generations FORCE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- The generation as clients see it (lib/generations/view.ts). Outputs are listed only once it has
-- succeeded (charged): one that failed or was canceled lists none. Inputs whatever the outcome.
CREATE VIEW generation_views WITH (security_invoker = true) AS
SELECT g.id, g.model, g.status, g.stage, g.input, g.project_id, g.team_id, g.user_id, g.credits,
       g.error_code, g.error_message, g.created_at, g.updated_at, g.completed_at, g.credit_state,
       coalesce(a.assets, '[]') AS assets,
       coalesce(i.inputs, '[]') AS inputs,
       CASE WHEN g.stage = 'waiting for capacity' THEN
         (SELECT p.queue_position FROM capacity_queue_positions(ARRAY[g.id]) p) END AS queue_position
FROM generations g
LEFT JOIN LATERAL (
  SELECT json_agg(json_build_object('id', a.id, 'content_type', a.content_type, 'bytes', a.bytes,
           'width', a.width, 'height', a.height, 'duration_ms', a.duration_ms, 'sha256', a.sha256)
           ORDER BY a.position) AS assets
  FROM assets a WHERE a.generation_id = g.id AND g.status = 'succeeded'
) a ON true
LEFT JOIN LATERAL (
  SELECT json_agg(json_build_object('field', i.field, 'upload_id', i.upload_id,
           'content_type', u.content_type, 'width', u.width, 'height', u.height) ORDER BY i.field DESC) AS inputs
  FROM generation_inputs i JOIN uploads u ON u.id = i.upload_id
  WHERE i.generation_id = g.id
) i ON true;
GRANT SELECT ON generation_views TO velro_app, velro_system;

-- One statement, one round trip: sets app.user_id and reads the generation as the API shows it
-- (a team generation to the team's members only: MEMBERS_ONLY of view.ts). It runs as its caller,
-- so row-level security applies as in any withUserTx; the SET clause restores app.user_id at exit,
-- so the setting ends with the call even inside a longer transaction.
CREATE FUNCTION read_generation(p_user uuid, p_id uuid)
RETURNS SETOF generation_views
LANGUAGE plpgsql STRICT SET search_path = public, pg_temp SET app.user_id = '' AS $$
BEGIN
  PERFORM set_config('app.user_id', p_user::text, true);
  RETURN QUERY
    SELECT * FROM generation_views g
    WHERE g.id = p_id AND (g.team_id IS NULL OR velro_team_role(g.team_id) IS NOT NULL);
END $$;

-- A page of generations, newest first (lib/generations/store.ts listGenerations: `p_limit` rows
-- after the cursor row `p_after_id`, at its exact time, else at `p_after_at`), the same way: a
-- user's personal ones, or with `p_team` the team's (the caller a viewer or higher, else
-- velro_require_team_role's refusal). Filters are optional (NULL: any).
CREATE FUNCTION list_generations(p_user uuid, p_team uuid, p_project uuid, p_status text, p_model text,
                                 p_after_at timestamptz, p_after_id uuid, p_limit integer)
RETURNS SETOF generation_views
LANGUAGE plpgsql SET search_path = public, pg_temp SET app.user_id = '' AS $$
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
END $$;

-- ---------------------------------------------------------------------------------------------
-- Owners and grants, as 008 set them for every function: velro_system owns the definer functions.
GRANT CREATE ON SCHEMA public TO velro_system;
ALTER FUNCTION touch_api_keys(bytea[], timestamptz[]) OWNER TO velro_system;
ALTER FUNCTION generation_credit_state(uuid) OWNER TO velro_system;
ALTER FUNCTION generations_credit_state_on_insert() OWNER TO velro_system;
ALTER FUNCTION credit_transfers_generation_state() OWNER TO velro_system;
REVOKE CREATE ON SCHEMA public FROM velro_system;
REVOKE ALL ON FUNCTION touch_api_keys(bytea[], timestamptz[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION generation_credit_state(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION read_generation(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION list_generations(uuid, uuid, uuid, text, text, timestamptz, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION touch_api_keys(bytea[], timestamptz[]) TO velro_app, velro_system;
GRANT EXECUTE ON FUNCTION read_generation(uuid, uuid) TO velro_app, velro_system;
GRANT EXECUTE ON FUNCTION list_generations(uuid, uuid, uuid, text, text, timestamptz, uuid, integer)
  TO velro_app, velro_system;
