import { createHash } from 'node:crypto';
import type pg from 'pg';
import { checkOut } from '../../db/connection.js';
import type { StoredReport } from '../reports.js';
import { boundText, isRecord, type RangeBound } from '../request-fields.js';
import { parseExportRequest, type ExportRequest } from '../requests.js';

/** Where a request is in its life. */
export type RequestStatus = 'queued' | 'running' | 'uploaded' | 'delivered' | 'failed' | 'cancelled' | 'rejected' | 'coalesced' | 'expired';

/** One row of `audit_export_requests`, as `status` prints it. */
export interface RequestRecord {
  readonly requestId: string;
  readonly kind: string;
  readonly merchantId: string | null;
  readonly status: RequestStatus;
  readonly attempts: number;
  readonly rows: number | null;
  readonly bytes: number | null;
  readonly uri: string | null;
  readonly files: readonly string[] | null;
  readonly error: string | null;
  readonly coalescedInto: string | null;
  readonly worker: string | null;
  readonly heartbeatAt: string | null;
  readonly createdAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  /** The validated request document, as accepted (absent for requests rejected before validation). */
  readonly request: Record<string, unknown> | null;
}

interface RequestRow {
  request_id: string;
  kind: string;
  merchant_id: string | null;
  status: RequestStatus;
  attempts: number;
  rows: string | null;
  bytes: string | null;
  uri: string | null;
  files: string[] | null;
  error: string | null;
  coalesced_into: string | null;
  worker: string | null;
  heartbeat_at: Date | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  request: Record<string, unknown> | null;
}

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());
const count = (value: string | null): number | null => (value === null ? null : Number(value));

function recordOf(row: RequestRow): RequestRecord {
  return {
    requestId: row.request_id,
    kind: row.kind,
    merchantId: row.merchant_id,
    status: row.status,
    attempts: row.attempts,
    rows: count(row.rows),
    bytes: count(row.bytes),
    uri: row.uri,
    files: row.files,
    error: row.error,
    coalescedInto: row.coalesced_into,
    worker: row.worker,
    heartbeatAt: iso(row.heartbeat_at),
    createdAt: row.created_at.toISOString(),
    startedAt: iso(row.started_at),
    finishedAt: iso(row.finished_at),
    request: row.request,
  };
}

/** Limits on what one merchant may ask for. */
export interface IntakeLimits {
  /** At most this many of the merchant's exports queued or running at once (default 2). */
  readonly maxActivePerMerchant: number;
  /** At most this many of the merchant's requests accepted per rolling hour (default 60). */
  readonly maxAcceptedPerHour: number;
  /** An equal request finished this recently is reused instead of exported again (10 minutes). */
  readonly coalesceWindowSeconds: number;
}

/** The defaults of {@link IntakeLimits}. */
export const DEFAULT_LIMITS: IntakeLimits = { maxActivePerMerchant: 2, maxAcceptedPerHour: 60, coalesceWindowSeconds: 600 };

/** The stored form of a request (what `status` shows and a retry re-reads). */
export function storedRequest(request: ExportRequest): Record<string, unknown> {
  return JSON.parse(JSON.stringify(request)) as Record<string, unknown>;
}

/**
 * The request a record stored ({@link storedRequest}), validated again: what a retry of that
 * request runs, whatever the redelivered message said. The stored bounds are objects
 * (`{ kind: 'date', date }`); they are handed back as the text the request gave.
 * @throws InvalidRequestError naming the field when the stored document is not a valid request.
 */
export function requestOfStored(stored: Record<string, unknown>): ExportRequest {
  const bound = (value: unknown): unknown =>
    isRecord(value) && (value.kind === 'date' || value.kind === 'instant') ? boundText(value as RangeBound) : value;
  return parseExportRequest({ ...stored, from: bound(stored.from), to: bound(stored.to) });
}

function identityHash(identity: string): string {
  return createHash('sha256').update(identity).digest('hex');
}

function lockKey(merchantId: string): string {
  // One merchant's intakes are serialised, so two equal requests cannot both miss each other.
  return `audit-export:intake:${merchantId}`;
}

/** Reads a request's record, or undefined. */
export async function readRequest(pool: pg.Pool, requestId: string): Promise<RequestRecord | undefined> {
  const { rows } = await pool.query<RequestRow>('SELECT * FROM audit_export_requests WHERE request_id = $1', [requestId]);
  return rows[0] === undefined ? undefined : recordOf(rows[0]);
}

/** The merchant's most recent requests, newest first. */
export async function listRequests(pool: pg.Pool, merchantId: string, limit = 50): Promise<RequestRecord[]> {
  const { rows } = await pool.query<RequestRow>(
    'SELECT * FROM audit_export_requests WHERE merchant_id = $1 ORDER BY created_at DESC, request_id LIMIT $2',
    [merchantId, limit],
  );
  return rows.map(recordOf);
}

/**
 * Records a request that can never be served (invalid, over a limit), unless a request with that id
 * already exists: a malformed copy never overwrites the real one.
 */
export async function recordRejected(
  pool: pg.Pool,
  requestId: string,
  kind: string,
  merchantId: string | null,
  reason: string,
  request: Record<string, unknown> | null = null,
): Promise<RequestRecord> {
  const { rows } = await pool.query<RequestRow>(
    `INSERT INTO audit_export_requests (request_id, kind, merchant_id, status, error, request, finished_at)
     VALUES ($1, $2, $3, 'rejected', $4, $5, now())
     ON CONFLICT (request_id) DO NOTHING
     RETURNING *`,
    [requestId, kind, merchantId, reason, request],
  );
  return rows[0] === undefined ? ((await readRequest(pool, requestId)) as RequestRecord) : recordOf(rows[0]);
}

/** What {@link intake} decided. */
export type IntakeResult =
  /** The request id was known: act on the stored record (a redelivery, a retry, a repeat). */
  | { readonly kind: 'existing'; readonly record: RequestRecord }
  /** New and equal to a recent or active request: recorded as coalesced into it. */
  | { readonly kind: 'coalesced'; readonly record: RequestRecord }
  /** New and over a limit: recorded as rejected with the reason. */
  | { readonly kind: 'rejected'; readonly record: RequestRecord }
  /** New and accepted: recorded as queued. */
  | { readonly kind: 'accepted'; readonly record: RequestRecord };

/**
 * Takes a validated request in: the same request id is the same request (never a second export);
 * an equal request queued, running, or finished within the coalescing window absorbs it; the
 * merchant's limits are enforced; otherwise it is queued. Serialised per merchant.
 */
export async function intake(pool: pg.Pool, request: ExportRequest, identity: string, limits: IntakeLimits): Promise<IntakeResult> {
  const borrowed = await checkOut(pool);
  const { client } = borrowed;
  let broken = false;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockKey(request.merchantId)]);
    const known = await client.query<RequestRow>('SELECT * FROM audit_export_requests WHERE request_id = $1', [request.requestId]);
    const stored = known.rows[0];
    if (stored !== undefined && stored.status === 'rejected' && stored.request === null) {
      // Only a malformed document used this id so far: it must not block the valid request.
      await client.query('DELETE FROM audit_export_requests WHERE request_id = $1', [request.requestId]);
    } else if (stored !== undefined) {
      await client.query('COMMIT');
      return { kind: 'existing', record: recordOf(stored) };
    }
    const hash = identityHash(identity);
    const equal = await client.query<{ request_id: string }>(
      `SELECT request_id FROM audit_export_requests
       WHERE identity = $1
         AND (status IN ('queued', 'running')
              OR (status IN ('uploaded', 'delivered') AND finished_at > now() - make_interval(secs => $2)))
       ORDER BY created_at
       LIMIT 1`,
      [hash, limits.coalesceWindowSeconds],
    );
    const insert = async (status: RequestStatus, extra: { error?: string; coalescedInto?: string; accepted?: boolean }): Promise<RequestRecord> => {
      const { rows } = await client.query<RequestRow>(
        `INSERT INTO audit_export_requests
           (request_id, kind, merchant_id, identity, request, requested_by, status, error, coalesced_into, accepted_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                 CASE WHEN $10 THEN now() END, CASE WHEN $7 IN ('rejected', 'coalesced') THEN now() END)
         RETURNING *`,
        [
          request.requestId,
          request.kind,
          request.merchantId,
          hash,
          storedRequest(request),
          request.requestedBy ?? null,
          status,
          extra.error ?? null,
          extra.coalescedInto ?? null,
          extra.accepted === true,
        ],
      );
      return recordOf(rows[0] as RequestRow);
    };
    let result: IntakeResult;
    const into = equal.rows[0]?.request_id;
    if (into !== undefined) {
      result = { kind: 'coalesced', record: await insert('coalesced', { coalescedInto: into }) };
    } else {
      const load = await client.query<{ active: string; accepted: string }>(
        `SELECT count(*) FILTER (WHERE status IN ('queued', 'running')) AS active,
                count(*) FILTER (WHERE accepted_at > now() - interval '1 hour') AS accepted
         FROM audit_export_requests WHERE merchant_id = $1`,
        [request.merchantId],
      );
      const active = Number(load.rows[0]?.active ?? 0);
      const accepted = Number(load.rows[0]?.accepted ?? 0);
      if (active >= limits.maxActivePerMerchant) {
        const reason = `merchant ${request.merchantId} already has ${active} exports queued or running (at most ${limits.maxActivePerMerchant} at once)`;
        result = { kind: 'rejected', record: await insert('rejected', { error: reason }) };
      } else if (accepted >= limits.maxAcceptedPerHour) {
        const reason = `merchant ${request.merchantId} had ${accepted} requests accepted in the last hour (at most ${limits.maxAcceptedPerHour})`;
        result = { kind: 'rejected', record: await insert('rejected', { error: reason }) };
      } else {
        result = { kind: 'accepted', record: await insert('queued', { accepted: true }) };
      }
    }
    await client.query('COMMIT');
    return result;
  } catch (error) {
    broken = true;
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    borrowed.release(broken);
  }
}

/**
 * Takes the lease of a request for `worker`: compare-and-set from queued or failed, or from running
 * when its heartbeat is older than `staleAfterMs` (the worker that held it is presumed dead).
 * @returns the record as running, or undefined when another worker holds it or it moved on.
 */
export async function claim(pool: pg.Pool, requestId: string, worker: string, staleAfterMs: number): Promise<RequestRecord | undefined> {
  const { rows } = await pool.query<RequestRow>(
    `UPDATE audit_export_requests
     SET status = 'running', worker = $2, heartbeat_at = now(), attempts = attempts + 1,
         started_at = now(), error = NULL, rows = 0, updated_at = now()
     WHERE request_id = $1
       AND (status IN ('queued', 'failed')
            OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => $3::double precision / 1000)))
     RETURNING *`,
    [requestId, worker, staleAfterMs],
  );
  return rows[0] === undefined ? undefined : recordOf(rows[0]);
}

/**
 * Renews `worker`'s lease and records progress.
 * @returns false when the lease is gone: the request was cancelled or taken over, so stop.
 */
export async function heartbeat(pool: pg.Pool, requestId: string, worker: string, rows: number): Promise<boolean> {
  const result = await pool.query(
    `UPDATE audit_export_requests SET heartbeat_at = now(), rows = $3, updated_at = now()
     WHERE request_id = $1 AND worker = $2 AND status = 'running'`,
    [requestId, worker, rows],
  );
  return result.rowCount === 1;
}

/** What an export stored, for {@link markUploaded}. */
export interface UploadedObject {
  readonly rows: number;
  readonly bytes: number;
  /** The (first) stored file; null when a report stored none (a merchant without bots). */
  readonly uri: string | null;
  readonly files: readonly string[];
  readonly object: Record<string, unknown> | null;
}

/** running (held by `worker`) → uploaded. @returns false when the lease was lost meanwhile. */
export async function markUploaded(pool: pg.Pool, requestId: string, worker: string, stored: UploadedObject): Promise<boolean> {
  const result = await pool.query(
    `UPDATE audit_export_requests
     SET status = 'uploaded', rows = $3, bytes = $4, uri = $5, files = $6, object = $7,
         finished_at = now(), heartbeat_at = NULL, updated_at = now()
     WHERE request_id = $1 AND worker = $2 AND status = 'running'`,
    [requestId, worker, stored.rows, stored.bytes, stored.uri, JSON.stringify(stored.files), stored.object],
  );
  return result.rowCount === 1;
}

/** uploaded → delivered (announced). */
export async function markDelivered(pool: pg.Pool, requestId: string): Promise<void> {
  await pool.query(
    `UPDATE audit_export_requests SET status = 'delivered', worker = NULL, updated_at = now()
     WHERE request_id = $1 AND status = 'uploaded'`,
    [requestId],
  );
}

/**
 * uploaded or delivered → expired: the mail step found the stored file gone, or too close to its
 * deletion by the bucket's lifecycle, to e-mail a link to it. `reason` is kept in `error`; a
 * request with several files (one per bot) collects one reason per file, each once, however often
 * its announcement comes again.
 * @returns the request's status afterwards, or undefined when the state has no such request (an
 * `export --email` run outside the lifecycle).
 */
export async function markExpired(pool: pg.Pool, requestId: string, reason: string): Promise<RequestStatus | undefined> {
  const { rows } = await pool.query<{ status: RequestStatus }>(
    `UPDATE audit_export_requests
     SET status = 'expired', error = CASE WHEN status = 'expired' AND error IS NOT NULL THEN error || '; ' || $2 ELSE $2 END,
         worker = NULL, heartbeat_at = NULL, updated_at = now()
     WHERE request_id = $1
       AND (status IN ('uploaded', 'delivered') OR (status = 'expired' AND strpos(coalesce(error, ''), $2) = 0))
     RETURNING status`,
    [requestId, reason],
  );
  if (rows[0] !== undefined) return rows[0].status;
  return (await readRequest(pool, requestId))?.status;
}

/** running (held by `worker`) → failed, with the error; a redelivery retries it. */
export async function markFailed(pool: pg.Pool, requestId: string, worker: string, error: string): Promise<void> {
  await pool.query(
    `UPDATE audit_export_requests
     SET status = 'failed', error = $3, worker = NULL, heartbeat_at = NULL, finished_at = now(), updated_at = now()
     WHERE request_id = $1 AND worker = $2 AND status = 'running'`,
    [requestId, worker, error],
  );
}

/** running (held by `worker`) → rejected: the request turned out invalid (unknown merchant...). */
export async function markRejected(pool: pg.Pool, requestId: string, worker: string, reason: string): Promise<void> {
  await pool.query(
    `UPDATE audit_export_requests
     SET status = 'rejected', error = $3, worker = NULL, heartbeat_at = NULL, accepted_at = NULL,
         finished_at = now(), updated_at = now()
     WHERE request_id = $1 AND worker = $2 AND status = 'running'`,
    [requestId, worker, reason],
  );
}

/** running (held by `worker`) → queued: a worker shutting down hands the request back at once. */
export async function releaseLease(pool: pg.Pool, requestId: string, worker: string): Promise<void> {
  await pool.query(
    `UPDATE audit_export_requests SET status = 'queued', worker = NULL, heartbeat_at = NULL, updated_at = now()
     WHERE request_id = $1 AND worker = $2 AND status = 'running'`,
    [requestId, worker],
  );
}

/**
 * Cancels a queued or running request; a running export notices at its next heartbeat.
 * @returns the record after the attempt (its status says whether it was cancelled), or undefined.
 */
export async function cancelRequest(pool: pg.Pool, requestId: string): Promise<RequestRecord | undefined> {
  const { rows } = await pool.query<RequestRow>(
    `UPDATE audit_export_requests
     SET status = 'cancelled', error = 'cancelled', finished_at = now(), updated_at = now()
     WHERE request_id = $1 AND status IN ('queued', 'running', 'failed')
     RETURNING *`,
    [requestId],
  );
  return rows[0] === undefined ? await readRequest(pool, requestId) : recordOf(rows[0]);
}

/** The files a request stored and the zone it was resolved in, as its export recorded them. */
export async function readStoredReports(pool: pg.Pool, requestId: string): Promise<{ reports: StoredReport[]; timezone: string | undefined }> {
  const { rows } = await pool.query<{ object: { timezone?: string; reports?: StoredReport[] } | null }>(
    'SELECT object FROM audit_export_requests WHERE request_id = $1',
    [requestId],
  );
  const object = rows[0]?.object;
  return { reports: object?.reports ?? [], timezone: object?.timezone };
}
