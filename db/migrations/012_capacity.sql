-- Capacity and fairness (DESIGN.md): Velro's own queue in front of every provider.
--
-- A generation asks for a slot of its provider's pool once its credits are reserved, and holds it
-- from the grant until its provider job has ended. A pool belongs to one deployment, its scope
-- ("<namespace>/<task queue>"): the workers of one task queue share their caps, across processes and
-- machines, because every grant is decided here, under one lock per scope, in one short transaction.
--
-- Fair turns are stride scheduling: each account (a user, or a team) has a `pass` per pool; a free
-- slot goes to the waiting account with the lowest pass, whose pass then grows by 1 / weight (its
-- priority, 1-10). Equal priorities take turns (round-robin, whoever queued most); a higher priority
-- gets a larger share, and the lowest still gets weight / (sum of weights): never starved. An account
-- that comes back after idling starts at the pool's virtual time (the pass of the last grant), so it
-- cannot save up turns. Within an account, a generation's own priority orders its work, aged by
-- its wait, so a low-priority one is never held back for ever either.
--
-- Only velro_system (the worker's system login) grants and releases; the API reads positions and
-- counts through two definer functions, and admins set an account's limits through a third.

CREATE TABLE capacity_requests (
  generation_id uuid PRIMARY KEY REFERENCES generations (id) ON DELETE CASCADE,
  scope text NOT NULL CHECK (length(scope) BETWEEN 1 AND 500),
  provider text NOT NULL CHECK (provider IN ('fal', 'replicate', 'local')),
  -- The paying account: the team of a team generation, else its user.
  account_id uuid NOT NULL,
  account_kind text NOT NULL CHECK (account_kind IN ('user', 'team')),
  media_kind text NOT NULL CHECK (media_kind IN ('image', 'video')),
  -- The generation's priority within its account's own work.
  priority smallint NOT NULL CHECK (priority BETWEEN 1 AND 10),
  enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  granted_at timestamptz CHECK (granted_at >= enqueued_at),
  released_at timestamptz,
  release_reason text CHECK (length(release_reason) <= 200),
  CHECK (released_at IS NOT NULL OR release_reason IS NULL)
);
CREATE INDEX capacity_requests_waiting ON capacity_requests (scope, provider, account_id, enqueued_at)
  WHERE granted_at IS NULL AND released_at IS NULL;
CREATE INDEX capacity_requests_held ON capacity_requests (scope, provider)
  WHERE granted_at IS NOT NULL AND released_at IS NULL;
CREATE INDEX capacity_requests_held_by_account ON capacity_requests (scope, account_id, media_kind)
  WHERE granted_at IS NOT NULL AND released_at IS NULL;

-- A pool's virtual time: the pass of its latest grant.
CREATE TABLE capacity_pools (
  scope text NOT NULL,
  provider text NOT NULL,
  virtual_time double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (scope, provider)
);

-- Each account's place in a pool's turns.
CREATE TABLE capacity_turns (
  scope text NOT NULL,
  provider text NOT NULL,
  account_id uuid NOT NULL,
  pass double precision NOT NULL,
  PRIMARY KEY (scope, provider, account_id)
);

-- An admin's overrides of an account's caps and priority; NULL: the deployment's default.
CREATE TABLE account_limits (
  account_id uuid PRIMARY KEY,
  account_kind text NOT NULL CHECK (account_kind IN ('user', 'team')),
  max_video integer CHECK (max_video BETWEEN 1 AND 10000),
  max_image integer CHECK (max_image BETWEEN 1 AND 10000),
  priority smallint CHECK (priority BETWEEN 1 AND 10),
  updated_by uuid REFERENCES users (id) ON DELETE SET NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

REVOKE ALL ON capacity_requests, capacity_pools, capacity_turns, account_limits FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON capacity_requests, capacity_pools, capacity_turns TO velro_system;
GRANT SELECT ON account_limits TO velro_system;

-- The account priority a stride weight falls back to (the middle of 1-10).
CREATE FUNCTION capacity_default_priority() RETURNS smallint LANGUAGE sql IMMUTABLE AS $$ SELECT 5::smallint $$;

-- Grants free slots of one pool, in fair order, and returns the generations granted. The caller (the
-- worker, with its configuration) names the pool's cap, the default per-account caps by media kind
-- and how fast a waiting generation's priority grows (1 per p_aging_seconds). One lock per scope:
-- per-account caps span the scope's pools, and a grant must see every other grant's result.
CREATE FUNCTION capacity_grant(p_scope text, p_provider text, p_cap integer, p_max_video integer,
                               p_max_image integer, p_aging_seconds integer)
RETURNS SETOF uuid
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
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
END $$;
REVOKE ALL ON FUNCTION capacity_grant(text, text, integer, integer, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION capacity_grant(text, text, integer, integer, integer, integer) TO velro_system;

-- Where waiting generations stand in their pool's turns: 1 is next. An estimate from the turns as
-- they are now: each account's waiting work in its own order, interleaved by pass and weight; it
-- leaves out per-account caps and aging. Safe for velro_app: capability by the generation's id (a
-- 122-bit random uuid), as generation_statuses; it answers one number per waiting generation.
CREATE FUNCTION capacity_queue_positions(p_ids uuid[])
RETURNS TABLE (generation_id uuid, queue_position integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
$$;

-- Slots in use and generations waiting, per pool and account kind (GET /metrics). Counts only.
CREATE FUNCTION capacity_stats(p_scope text)
RETURNS TABLE (provider text, account_kind text, in_use integer, waiting integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT r.provider, r.account_kind,
         (count(*) FILTER (WHERE r.granted_at IS NOT NULL))::integer,
         (count(*) FILTER (WHERE r.granted_at IS NULL))::integer
  FROM capacity_requests r
  WHERE r.scope = p_scope AND r.released_at IS NULL
  GROUP BY r.provider, r.account_kind
$$;

-- PATCH /v1/admin/accounts/:id/limits: an admin (app.user_id) sets or clears (p_clear names the
-- fields back to their defaults) an account's caps and priority. The account is a user or a team;
-- NULL when there is none with that id.
CREATE FUNCTION admin_set_account_limits(p_account uuid, p_max_video integer, p_max_image integer,
                                         p_priority integer, p_clear text[])
RETURNS account_limits
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
END $$;

-- GET /v1/admin/accounts/:id/limits: an admin reads an account's overrides; no row without any.
CREATE FUNCTION admin_account_limits(p_account uuid)
RETURNS TABLE (account_kind text, max_video integer, max_image integer, priority smallint,
               updated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
END $$;

GRANT INSERT, UPDATE ON account_limits TO velro_system;
GRANT CREATE ON SCHEMA public TO velro_system;
ALTER FUNCTION capacity_queue_positions(uuid[]) OWNER TO velro_system;
ALTER FUNCTION capacity_stats(text) OWNER TO velro_system;
ALTER FUNCTION admin_set_account_limits(uuid, integer, integer, integer, text[]) OWNER TO velro_system;
ALTER FUNCTION admin_account_limits(uuid) OWNER TO velro_system;
REVOKE CREATE ON SCHEMA public FROM velro_system;
REVOKE ALL ON FUNCTION capacity_queue_positions(uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION capacity_stats(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION admin_set_account_limits(uuid, integer, integer, integer, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION admin_account_limits(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION capacity_queue_positions(uuid[]) TO velro_app, velro_system;
GRANT EXECUTE ON FUNCTION capacity_stats(text) TO velro_app, velro_system;
GRANT EXECUTE ON FUNCTION admin_set_account_limits(uuid, integer, integer, integer, text[]) TO velro_app;
GRANT EXECUTE ON FUNCTION admin_account_limits(uuid) TO velro_app;
