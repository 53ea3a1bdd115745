-- Idempotency keys (after Stripe): the first response to a (user, key) is kept and replayed to
-- every retry with the same body; the same key with another body is refused. Kept for 48 hours
-- (the API promises at least 24).
CREATE TABLE idempotency_keys (
  user_id uuid NOT NULL REFERENCES users (id),
  key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  request_hash text NOT NULL,
  response_status int,
  response_body text,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_owner ON idempotency_keys TO velro_app
  USING (user_id = (SELECT current_app_user())) WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY idempotency_keys_system ON idempotency_keys TO velro_system USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE (response_status, response_body, completed_at), DELETE ON idempotency_keys TO velro_app;
GRANT SELECT, DELETE ON idempotency_keys TO velro_system;
