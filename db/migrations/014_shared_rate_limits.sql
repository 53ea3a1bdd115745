-- Rate limits counted in Postgres (issue 17): every API process of a deployment counts in the same
-- row, so N replicas together allow RATE_LIMIT_MAX per window, not N times it.
--
--   rate_limit_counts   one row per bucket (`<deployment>|user:<id>`, `<deployment>|ip:<address>`...):
--                       the hits of its current window and when that window ends. A window starts at
--                       the bucket's first hit after the previous one ended, as @fastify/rate-limit's
--                       in-memory store does. UNLOGGED: no WAL on the hot path; a crash or a failover
--                       empties it, which only restarts everyone's window.
--   rate_limit_hit      counts one hit, answers the window's hits and the milliseconds it has left.
--   rate_limit_peek     the same answer without counting (0, 0 when no window is open).
--
-- Safe for velro_app: a bucket holds a count and an end time, nothing of a user's. The worst a caller
-- with SQL on the app pool can do is spend another bucket's allowance until its window ends, which
-- the same caller could do over HTTP from that address or with that user's credential.

CREATE UNLOGGED TABLE rate_limit_counts (
  bucket text PRIMARY KEY,
  window_ends_at timestamptz NOT NULL,
  hits integer NOT NULL CHECK (hits > 0)
);
-- Finds the ended windows to delete.
CREATE INDEX rate_limit_counts_window_ends_at ON rate_limit_counts (window_ends_at);
REVOKE ALL ON rate_limit_counts FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_counts TO velro_system;

-- One statement counts the hit; a hit that opened a new bucket also deletes up to 4 ended ones, so
-- the table holds about the buckets of the last window whatever the traffic (only new buckets add
-- rows, and each removes more than it adds). SKIP LOCKED: cleaning never waits on a counting call.
CREATE FUNCTION rate_limit_hit(p_bucket text, p_window_ms integer)
RETURNS TABLE (hits integer, ttl_ms integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
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
END $$;

CREATE FUNCTION rate_limit_peek(p_bucket text)
RETURNS TABLE (hits integer, ttl_ms integer)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce(max(c.hits), 0),
         coalesce(max(ceil(extract(epoch FROM c.window_ends_at - clock_timestamp()) * 1000)::integer), 0)
  FROM rate_limit_counts c
  WHERE c.bucket = p_bucket AND c.window_ends_at > clock_timestamp()
$$;

-- Owners and grants, as 008 and 013 set them: velro_system owns the definer functions.
GRANT CREATE ON SCHEMA public TO velro_system;
ALTER FUNCTION rate_limit_hit(text, integer) OWNER TO velro_system;
ALTER FUNCTION rate_limit_peek(text) OWNER TO velro_system;
REVOKE CREATE ON SCHEMA public FROM velro_system;
REVOKE ALL ON FUNCTION rate_limit_hit(text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION rate_limit_peek(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION rate_limit_hit(text, integer) TO velro_app, velro_system;
GRANT EXECUTE ON FUNCTION rate_limit_peek(text) TO velro_app, velro_system;
