-- Outgoing webhooks (Standard Webhooks, HMAC-SHA256): the account's default signing secret (for a
-- generation's own webhookUrl), registered endpoints with their own secrets and event filters, and
-- every event with its deliveries, so the user and the operator can see what was sent and how it went.
--
-- Secrets are kept readable (`whsec_<base64>`): signing needs them, and the account secret is shown
-- again on request (as Replicate does). Row-level security keeps them to their owner.
-- Rotation keeps the replaced secret in previous_secret until previous_expires_at: deliveries sign
-- with both meanwhile, so receivers can switch without losing a message.

CREATE TABLE webhook_secrets (
  user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  secret text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  previous_secret text CHECK (previous_secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  previous_expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  rotated_at timestamptz,
  CONSTRAINT webhook_secrets_previous_expires CHECK ((previous_secret IS NULL) = (previous_expires_at IS NULL))
);

CREATE TABLE webhook_endpoints (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
  -- NULL: every event type, including types added later.
  events text[] CHECK (events IS NULL OR cardinality(events) >= 1),
  secret text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  previous_secret text CHECK (previous_secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
  previous_expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- Set when the endpoint answered 410 Gone: nothing more is sent to it.
  disabled_at timestamptz,
  disabled_reason text CHECK (length(disabled_reason) <= 500),
  -- DELETE /v1/webhook-endpoints/:id; the row stays for its delivery history.
  deleted_at timestamptz,
  CONSTRAINT webhook_endpoints_previous_expires CHECK ((previous_secret IS NULL) = (previous_expires_at IS NULL)),
  CONSTRAINT webhook_endpoints_id_user_key UNIQUE (id, user_id)
);
CREATE INDEX webhook_endpoints_user_live_idx ON webhook_endpoints (user_id, created_at DESC, id DESC)
  WHERE deleted_at IS NULL;

-- One event per (generation, type); its id is derived from both, so a retried or replayed notify
-- finds the event it already made. `body` is the exact JSON sent (and signed) on every attempt.
CREATE TABLE webhook_events (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  type text NOT NULL CHECK (type ~ '^[a-z]+(\.[a-z_]+)+$'),
  generation_id uuid REFERENCES generations (id),
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_generation_idx ON webhook_events (generation_id) WHERE generation_id IS NOT NULL;

-- One delivery per (event, target): a registered endpoint, or (endpoint_id NULL) the generation's
-- own webhookUrl. Its id, and its workflow's id, follow from the event id and the target.
CREATE TABLE webhook_deliveries (
  id uuid PRIMARY KEY,
  event_id uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  endpoint_id uuid,
  url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'delivered', 'failed', 'gone', 'canceled')),
  attempts int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- HTTP status of the last answer (NULL: no answer, see last_error).
  last_status int CHECK (last_status BETWEEN 100 AND 599),
  last_error text CHECK (length(last_error) <= 1000),
  last_attempt_at timestamptz,
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT webhook_deliveries_endpoint_owner_fkey
    FOREIGN KEY (endpoint_id, user_id) REFERENCES webhook_endpoints (id, user_id),
  CONSTRAINT webhook_deliveries_delivered_at CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC)
  WHERE endpoint_id IS NOT NULL;
CREATE INDEX webhook_deliveries_user_idx ON webhook_deliveries (user_id, created_at DESC, id DESC);

ALTER TABLE webhook_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_secrets_owner ON webhook_secrets TO velro_app
  USING (user_id = (SELECT current_app_user())) WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY webhook_secrets_system ON webhook_secrets TO velro_system USING (true) WITH CHECK (true);

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_endpoints_owner ON webhook_endpoints TO velro_app
  USING (user_id = (SELECT current_app_user())) WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY webhook_endpoints_system ON webhook_endpoints TO velro_system USING (true) WITH CHECK (true);

ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_events FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_events_owner ON webhook_events TO velro_app
  USING (user_id = (SELECT current_app_user())) WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY webhook_events_system ON webhook_events TO velro_system USING (true) WITH CHECK (true);

ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_deliveries_owner ON webhook_deliveries TO velro_app
  USING (user_id = (SELECT current_app_user())) WITH CHECK (user_id = (SELECT current_app_user()));
CREATE POLICY webhook_deliveries_system ON webhook_deliveries TO velro_system USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE (secret, previous_secret, previous_expires_at, rotated_at) ON webhook_secrets TO velro_app;
GRANT SELECT, INSERT,
  UPDATE (secret, previous_secret, previous_expires_at, updated_at, disabled_at, disabled_reason, deleted_at)
  ON webhook_endpoints TO velro_app;
GRANT SELECT, INSERT ON webhook_events TO velro_app;
GRANT SELECT, INSERT,
  UPDATE (status, attempts, last_status, last_error, last_attempt_at, delivered_at, updated_at)
  ON webhook_deliveries TO velro_app;
-- Operators read deliveries across users (and may disable a misbehaving endpoint).
GRANT SELECT ON webhook_secrets, webhook_events, webhook_deliveries TO velro_system;
GRANT SELECT, UPDATE (disabled_at, disabled_reason, updated_at) ON webhook_endpoints TO velro_system;
