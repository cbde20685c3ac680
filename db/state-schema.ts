/**
 * The state of export requests (`audit_export_requests`) and the mail step's own bookkeeping, kept in the state database (`STATE_DATABASE_URL`, default
 * `DATABASE_URL`) rather than in the source tables the export reads. Every statement is idempotent,
 * so `db migrate` may run any number of times, also concurrently (see {@link migrateState}).
 *
 * `audit_export_requests.status` is one of `RequestStatus` (jobs/lifecycle/state.ts); `expired` is
 * the mail step's: the file was gone or about to be when its announcement came.
 *
 * One row per (request, recipient): the claim that makes each download e-mail go out once.
 * - `pending`: known, not being sent (a send failed transiently; the next delivery retries it).
 * - `sending`: claimed by a mailer since `claimed_at` under `claim_token`; a claim older than the
 *   lease is taken to belong to a mailer that died and may be taken over.
 * - `sent`: the SMTP server answered 250 to the message; never sent again.
 * - `rejected`: the server refused the recipient or the message for good (5xx); never retried.
 *
 * @see ../jobs/mailer/deliveries.ts for the transitions.
 */
export const STATE_SCHEMA_SQL = `
-- One row per export request, whatever its entry point (worker, run, push). See jobs/lifecycle/.
CREATE TABLE IF NOT EXISTS audit_export_requests (
  request_id text PRIMARY KEY,
  kind text NOT NULL,
  merchant_id text,
  -- Hash of what makes two requests the same (merchant, kind, parameters, recipients): duplicates
  -- arriving close together are coalesced into one export.
  identity text,
  request jsonb,
  requested_by jsonb,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'uploaded', 'delivered', 'failed', 'cancelled', 'rejected', 'coalesced', 'expired')),
  attempts integer NOT NULL DEFAULT 0,
  rows bigint,
  bytes bigint,
  uri text,
  object jsonb,
  files jsonb,
  error text,
  coalesced_into text REFERENCES audit_export_requests (request_id),
  worker text,
  heartbeat_at timestamptz,
  accepted_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT audit_export_requests_coalesced_check CHECK ((status = 'coalesced') = (coalesced_into IS NOT NULL))
);
-- A table made before the status 'expired' existed gets it. Only then: re-adding the constraint
-- scans the table under an exclusive lock.
DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_constraint
    WHERE conrelid = 'audit_export_requests'::regclass AND conname = 'audit_export_requests_status_check'
      AND pg_get_constraintdef(oid) LIKE '%''expired''%'
  ) THEN
    ALTER TABLE audit_export_requests DROP CONSTRAINT IF EXISTS audit_export_requests_status_check;
    ALTER TABLE audit_export_requests ADD CONSTRAINT audit_export_requests_status_check
      CHECK (status IN ('queued', 'running', 'uploaded', 'delivered', 'failed', 'cancelled', 'rejected', 'coalesced', 'expired'));
  END IF;
END $$;
CREATE INDEX IF NOT EXISTS audit_export_requests_identity_idx ON audit_export_requests (identity, status);
CREATE INDEX IF NOT EXISTS audit_export_requests_merchant_idx ON audit_export_requests (merchant_id, created_at DESC);

CREATE TABLE IF NOT EXISTS audit_export_deliveries (
  request_id text NOT NULL,
  recipient text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'rejected')),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  claim_token uuid,
  claimed_at timestamptz,
  smtp_response text,
  message_id text,
  last_error text,
  sent_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (request_id, recipient),
  -- Only a claim being sent holds a token: a token left on a finished row could let a late
  -- mailer release it, and a sending row without one could never be released by its owner.
  CONSTRAINT audit_export_deliveries_claim_check CHECK ((status = 'sending') = (claim_token IS NOT NULL)),
  CONSTRAINT audit_export_deliveries_claimed_at_check CHECK (status <> 'sending' OR claimed_at IS NOT NULL),
  CONSTRAINT audit_export_deliveries_sent_at_check CHECK (status <> 'sent' OR sent_at IS NOT NULL)
);
`;
