-- Provider webhooks: find a generation by its provider request id (a system path: the webhook
-- carries no user), and remember recent deliveries so that a replayed one is refused.

-- The key a stored request id is known by. fal request ids are stored as JSON with the queue URLs
-- fal returned ({"request_id": ..., "status_url": ...}); other providers store the bare id.
-- Mirrors providerRequestKey() in lib/providers/provider.ts.
CREATE FUNCTION provider_request_key(p_request_id text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF p_request_id IS NULL OR left(p_request_id, 1) <> '{' THEN
    RETURN p_request_id;
  END IF;
  BEGIN
    RETURN coalesce(p_request_id::jsonb ->> 'request_id', p_request_id);
  EXCEPTION WHEN invalid_text_representation THEN
    RETURN p_request_id;
  END;
END $$;

CREATE INDEX generations_provider_request_idx
  ON generations (provider, provider_request_key(provider_request_id))
  WHERE provider_request_id IS NOT NULL;

-- The generations a verified webhook is about: ids and statuses only.
CREATE FUNCTION find_generations_by_provider_request(p_provider text, p_request_key text)
RETURNS TABLE (id uuid, status text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT g.id, g.status FROM generations g
  WHERE g.provider = p_provider
    AND g.provider_request_id IS NOT NULL
    AND provider_request_key(g.provider_request_id) = p_request_key
  ORDER BY g.created_at DESC
  LIMIT 10
$$;

-- Verified deliveries of the last minutes, by a digest of what makes each one unique (fal: request
-- id, timestamp and signature; Standard Webhooks: webhook-id and timestamp). A provider's own retry
-- is sent with a new timestamp, so only a byte-for-byte replay meets its earlier copy here.
CREATE TABLE provider_webhook_receipts (
  provider text NOT NULL,
  delivery_digest text NOT NULL CHECK (delivery_digest ~ '^[0-9a-f]{64}$'),
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, delivery_digest)
);
CREATE INDEX provider_webhook_receipts_received_idx ON provider_webhook_receipts (received_at);

ALTER TABLE provider_webhook_receipts ENABLE ROW LEVEL SECURITY;
ALTER TABLE provider_webhook_receipts FORCE ROW LEVEL SECURITY;
CREATE POLICY provider_webhook_receipts_system ON provider_webhook_receipts TO velro_system
  USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, DELETE ON provider_webhook_receipts TO velro_system;

-- Records a verified delivery; false when it was already seen (a replay). Signatures are checked
-- with a ±5 min tolerance, so a delivery can verify for at most 10 minutes: older receipts go.
CREATE FUNCTION record_provider_webhook(p_provider text, p_delivery_digest text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  DELETE FROM provider_webhook_receipts WHERE received_at < now() - interval '15 minutes';
  INSERT INTO provider_webhook_receipts (provider, delivery_digest) VALUES (p_provider, p_delivery_digest)
  ON CONFLICT DO NOTHING;
  RETURN FOUND;
END $$;

ALTER FUNCTION find_generations_by_provider_request(text, text) OWNER TO velro_system;
ALTER FUNCTION record_provider_webhook(text, text) OWNER TO velro_system;
REVOKE ALL ON FUNCTION find_generations_by_provider_request(text, text), record_provider_webhook(text, text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION find_generations_by_provider_request(text, text), record_provider_webhook(text, text)
  TO velro_app, velro_system;
