import { randomUUID } from 'node:crypto';
import type pg from 'pg';

/**
 * Where one (request, recipient) stands; see `db/state-schema.ts`. A recipient without a row has
 * never been claimed.
 */
export type DeliveryStatus = 'pending' | 'sending' | 'sent' | 'rejected';

/** True for the statuses that end a recipient's delivery: it is never sent to again. */
export function isFinal(status: DeliveryStatus | undefined): status is 'sent' | 'rejected' {
  return status === 'sent' || status === 'rejected';
}

/** A mailer's right to send one e-mail, from {@link claimDelivery} until it records the outcome. */
export interface DeliveryClaim {
  readonly requestId: string;
  readonly recipient: string;
  /** Identifies this claim: only its holder may release it. */
  readonly token: string;
  /** 1 for the first claim of this recipient, counting every claim since. */
  readonly attempt: number;
  /** True when a `sending` claim of another mailer had outlived its lease and was taken over. */
  readonly tookOver: boolean;
}

/** The answer of {@link claimDelivery}. */
export type ClaimResult =
  | { readonly claimed: true; readonly claim: DeliveryClaim }
  /** Not claimed: already `sent` or `rejected`, or `sending` under another mailer's live lease. */
  | { readonly claimed: false; readonly status: 'sending' | 'sent' | 'rejected' };

/** Options of {@link claimDelivery}. */
export interface ClaimOptions {
  /**
   * How long a `sending` claim protects its recipient. Longer than the longest send (pool queue
   * wait plus SMTP timeouts), because a claim taken over while its mailer still sends is a duplicate.
   */
  readonly leaseMs: number;
}

/** The lease {@link claimDelivery} uses when the caller names none: 10 minutes. */
export const DEFAULT_LEASE_MS = 10 * 60 * 1000;

function requireText(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`Expected \`${name}\` to be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

function requireLease(leaseMs: unknown): number {
  if (typeof leaseMs !== 'number' || !Number.isSafeInteger(leaseMs) || leaseMs < 1) {
    throw new TypeError(`Expected \`leaseMs\` to be a whole number of milliseconds from 1 up, got ${String(leaseMs)}`);
  }
  return leaseMs;
}

/**
 * The delivery status of each of `recipients` of a request; recipients never claimed are absent.
 * A read, not a lock: only {@link claimDelivery} decides who sends.
 */
export async function readDeliveries(
  pool: pg.Pool,
  requestId: string,
  recipients: readonly string[],
): Promise<Map<string, DeliveryStatus>> {
  requireText('requestId', requestId);
  const { rows } = await pool.query<{ recipient: string; status: DeliveryStatus }>(
    `SELECT recipient, status FROM audit_export_deliveries WHERE request_id = $1 AND recipient = ANY($2::text[])`,
    [requestId, [...recipients]],
  );
  return new Map(rows.map((row) => [row.recipient, row.status]));
}

/**
 * Claims one recipient of a request for sending, atomically: exactly one of any number of
 * concurrent callers gets the claim. It succeeds when the recipient has no row yet, is `pending`
 * (an earlier send failed transiently), or is `sending` under a claim older than `leaseMs`.
 *
 * The last case is the one window for a duplicate: a mailer that died (or lost the state database)
 * after the SMTP server's 250 and before {@link markSent} committed leaves a `sending` claim; once
 * its lease has run out, the next mailer sends again. The handler keeps that window to the round
 * trip of one UPDATE, and gives every send of a recipient the same Message-ID so that mailbox
 * providers that collapse duplicates do.
 *
 * @throws TypeError for an empty `requestId` or `recipient` or a lease that is not a whole number of
 * milliseconds from 1 up.
 */
export async function claimDelivery(
  pool: pg.Pool,
  requestId: string,
  recipient: string,
  options: ClaimOptions = { leaseMs: DEFAULT_LEASE_MS },
): Promise<ClaimResult> {
  requireText('requestId', requestId);
  requireText('recipient', recipient);
  const leaseMs = requireLease(options.leaseMs);
  const token = randomUUID();
  // INSERT ... ON CONFLICT DO UPDATE ... WHERE locks the conflicting row and re-reads its newest
  // version, so two mailers racing for one recipient cannot both pass the WHERE.
  const { rows } = await pool.query<{ attempts: number; took_over: boolean }>(
    `WITH previous AS (
       SELECT status FROM audit_export_deliveries WHERE request_id = $1 AND recipient = $2
     )
     INSERT INTO audit_export_deliveries AS d (request_id, recipient, status, attempts, claim_token, claimed_at)
     VALUES ($1, $2, 'sending', 1, $3, clock_timestamp())
     ON CONFLICT (request_id, recipient) DO UPDATE
       SET status = 'sending', attempts = d.attempts + 1, claim_token = excluded.claim_token,
           claimed_at = excluded.claimed_at, updated_at = excluded.claimed_at
       WHERE d.status = 'pending'
          OR (d.status = 'sending' AND d.claimed_at <= clock_timestamp() - $4::double precision * interval '1 millisecond')
     RETURNING d.attempts, coalesce((SELECT status = 'sending' FROM previous), false) AS took_over`,
    [requestId, recipient, token, leaseMs],
  );
  const row = rows[0];
  if (row !== undefined) {
    return { claimed: true, claim: { requestId, recipient, token, attempt: row.attempts, tookOver: row.took_over } };
  }
  const current = await pool.query<{ status: DeliveryStatus }>(
    `SELECT status FROM audit_export_deliveries WHERE request_id = $1 AND recipient = $2`,
    [requestId, recipient],
  );
  const status = current.rows[0]?.status;
  // The row existed a moment ago and rows are never deleted; `pending` can only mean a claim was
  // released between the two statements, which is as good as busy: the next delivery retries.
  return { claimed: false, status: status === 'sent' || status === 'rejected' ? status : 'sending' };
}

/** What the SMTP server said when it accepted a message. */
export interface Acceptance {
  /** The server's final reply (`250 ...`), usually with its queue id. */
  readonly response: string;
  /** The Message-ID header the message carried. */
  readonly messageId: string;
}

/**
 * Records that the SMTP server accepted the e-mail: the recipient is never sent to again. Call it
 * right after the 250, before anything else. A 250 is a fact whoever holds the claim, so it is
 * recorded even when the claim was taken over meanwhile (that is, when a duplicate may be on its
 * way); the answer says so.
 *
 * @returns `'recorded'`; `'recorded-without-claim'` when this claim had been taken over (or
 * released) before the record; `'already-sent'` when another send had already been recorded.
 */
export async function markSent(
  pool: pg.Pool,
  claim: DeliveryClaim,
  acceptance: Acceptance,
): Promise<'recorded' | 'recorded-without-claim' | 'already-sent'> {
  const held = await pool.query(
    `UPDATE audit_export_deliveries
        SET status = 'sent', claim_token = NULL, smtp_response = $4, message_id = $5, last_error = NULL,
            sent_at = clock_timestamp(), updated_at = clock_timestamp()
      WHERE request_id = $1 AND recipient = $2 AND claim_token = $3`,
    [claim.requestId, claim.recipient, claim.token, acceptance.response, acceptance.messageId],
  );
  if (held.rowCount === 1) return 'recorded';
  const other = await pool.query(
    `UPDATE audit_export_deliveries
        SET status = 'sent', claim_token = NULL, smtp_response = $3, message_id = $4, last_error = NULL,
            sent_at = clock_timestamp(), updated_at = clock_timestamp()
      WHERE request_id = $1 AND recipient = $2 AND status <> 'sent'`,
    [claim.requestId, claim.recipient, acceptance.response, acceptance.messageId],
  );
  return other.rowCount === 1 ? 'recorded-without-claim' : 'already-sent';
}

/**
 * Records that the SMTP server refused the recipient (or the message to it) for good, with its 5xx
 * reply: the recipient is never retried. A `sent` recorded meanwhile by a mailer that took the claim
 * over wins (the e-mail did arrive).
 *
 * @returns false when the recipient was already `sent` or `rejected`.
 */
export async function markRejected(pool: pg.Pool, claim: DeliveryClaim, smtpResponse: string): Promise<boolean> {
  const { rowCount } = await pool.query(
    `UPDATE audit_export_deliveries
        SET status = 'rejected', claim_token = NULL, smtp_response = $3, last_error = $3, updated_at = clock_timestamp()
      WHERE request_id = $1 AND recipient = $2 AND status IN ('pending', 'sending')`,
    [claim.requestId, claim.recipient, smtpResponse],
  );
  return rowCount === 1;
}

/**
 * Gives a claim back after a transient failure (connection refused, timeout, 4xx), so the next
 * delivery of the announcement retries the recipient at once instead of after the lease. Only the
 * claim's holder can release it; a claim taken over by another mailer is left to that mailer.
 *
 * Never call it after the server accepted the message: a released claim is sent again.
 *
 * @returns false when the claim was no longer held.
 */
export async function releaseClaim(pool: pg.Pool, claim: DeliveryClaim, reason: string): Promise<boolean> {
  const { rowCount } = await pool.query(
    `UPDATE audit_export_deliveries
        SET status = 'pending', claim_token = NULL, last_error = $4, updated_at = clock_timestamp()
      WHERE request_id = $1 AND recipient = $2 AND claim_token = $3`,
    [claim.requestId, claim.recipient, claim.token, reason],
  );
  return rowCount === 1;
}
