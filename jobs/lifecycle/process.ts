import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import type { Logger } from 'pino';
import { requestLogger, secondsSince } from '../../config/logs.js';
import { noProgress, type ProgressStarter } from '../../pipeline/progress.js';
import type { OutputTarget } from '../../sinks/output.js';
import type { ReadyAnnouncement } from '../announcement.js';
import { announceReports, runReport } from '../reports.js';
import { InvalidRequestError, isAbortError } from '../errors.js';
import { REQUEST_ID } from '../request-fields.js';
import { differingFields, parseExportRequest, parseRequestDocument, requestIdentity, type ExportRequest } from '../requests.js';
import {
  claim,
  heartbeat,
  intake,
  markDelivered,
  markFailed,
  markRejected,
  markUploaded,
  readRequest,
  readStoredReports,
  recordRejected,
  releaseLease,
  requestOfStored,
  storedRequest,
  type IntakeLimits,
  type RequestRecord,
} from './state.js';

/** What running one request needs. */
export interface LifecycleDeps {
  /** The source database the export reads. */
  readonly source: pg.Pool;
  /** The state database (`audit_export_requests`). */
  readonly state: pg.Pool;
  /** Where exports go (`OUTPUT_URI`). */
  readonly output: OutputTarget;
  /** Publishes a ready announcement; called only for requests with recipients. */
  readonly announce: (announcement: ReadyAnnouncement) => Promise<string>;
  readonly logger: Logger;
  /** This process's name in the `worker` column. */
  readonly worker: string;
  readonly limits: IntakeLimits;
  /** A running request whose heartbeat is older than this is taken over. */
  readonly leaseMs: number;
  /** How often a running export renews its lease and checks for cancellation (at most 1 s for a 2 s cancel). */
  readonly heartbeatMs: number;
  /** Aborted when the process shuts down: running exports stop and hand their requests back. */
  readonly shutdown: AbortSignal;
  /** Reports a running export's progress (JSON lines with the request id, or a bar); default none. */
  readonly progress?: ProgressStarter;
}

/** The outcome of one delivery of a request. */
export interface ProcessOutcome {
  /** For Pub/Sub: `ack` when nothing more can or needs to be done, `nack` to try again later. */
  readonly verdict: 'ack' | 'nack';
  /** For `run`: the CLI's exit code (0 done, 1 failed, 2 invalid, 3 cancelled). */
  readonly exitCode: 0 | 1 | 2 | 3;
  /**
   * The request's record after this delivery. For a delivery refused because its request id
   * belongs to a request with other parameters, a record of that refusal (status `rejected`, the
   * reason in `error`), which is not stored: the stored request is left as it was.
   */
  readonly record: RequestRecord;
}

/** A name for this process in the `worker` column: host, pid and a random part. */
export function workerName(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Handles one delivery of an export request, from any entry point: validates it (an invalid one is
 * recorded as rejected), takes it in (same id: the same request; an equal one recently: coalesced;
 * over a limit: rejected), then acts on its state: exports it under a lease with heartbeats,
 * announces it, or does nothing more when that was already done. Safe to call again with the same
 * message at any point: that is how Pub/Sub retries and how a Cloud Run task retries.
 */
export async function processRequest(data: Buffer | string, deps: LifecycleDeps, messageId?: string): Promise<ProcessOutcome> {
  const started = performance.now();
  const outcome = await processOnce(data, deps, messageId);
  requestLogger(deps.logger, outcome.record.requestId).info(
    { status: outcome.record.status, verdict: outcome.verdict, exitCode: outcome.exitCode, seconds: secondsSince(started) },
    'request processed',
  );
  return outcome;
}

/**
 * The request id of a request document, when it has a valid one: what `run` names its log lines
 * with before the request is parsed.
 */
export function requestIdOf(data: Buffer | string): string | undefined {
  try {
    const input = parseRequestDocument(data);
    if (typeof input !== 'object' || input === null) return undefined;
    const { requestId } = input as Record<string, unknown>;
    return typeof requestId === 'string' && REQUEST_ID.test(requestId) ? requestId : undefined;
  } catch {
    return undefined;
  }
}

async function processOnce(data: Buffer | string, deps: LifecycleDeps, messageId?: string): Promise<ProcessOutcome> {
  // A message without a usable request id is recorded under an id derived from the delivery, so a
  // redelivered garbage message lands on the same record instead of adding one each time.
  const derivedId = (): string =>
    messageId !== undefined && REQUEST_ID.test(`message-${messageId}`)
      ? `message-${messageId}`
      : `content-${createHash('sha256').update(data).digest('hex').slice(0, 32)}`;
  let input: unknown;
  try {
    input = parseRequestDocument(data);
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    // Too large, not JSON, or ambiguous (a key twice): even its request id cannot be trusted.
    const record = await recordRejected(deps.state, derivedId(), 'unknown', null, error.message);
    requestLogger(deps.logger, record.requestId).warn({ reason: record.error }, 'request rejected');
    return { verdict: 'ack', exitCode: record.status === 'rejected' ? 2 : 0, record };
  }
  let request: ExportRequest;
  try {
    request = parseExportRequest(input);
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    const fields = typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
    const requestId = typeof fields.requestId === 'string' && REQUEST_ID.test(fields.requestId) ? fields.requestId : derivedId();
    const kind = typeof fields.kind === 'string' ? fields.kind.slice(0, 64) : 'unknown';
    const merchantId = typeof fields.merchantId === 'string' || typeof fields.merchantId === 'number' ? String(fields.merchantId).slice(0, 32) : null;
    const record = await recordRejected(deps.state, requestId, kind, merchantId, error.message);
    requestLogger(deps.logger, record.requestId).warn({ reason: error.message }, 'request rejected');
    // A malformed copy of a known request id leaves that request alone; report what it is.
    return { verdict: 'ack', exitCode: record.status === 'rejected' ? 2 : 0, record };
  }

  const taken = await intake(deps.state, request, requestIdentity(request), deps.limits);
  const log = requestLogger(deps.logger, request.requestId);
  if (taken.kind === 'coalesced') log.info({ coalescedInto: taken.record.coalescedInto }, 'request coalesced into an equal one');
  if (taken.kind === 'rejected') log.warn({ reason: taken.record.error }, 'request rejected');
  if (taken.kind !== 'existing') return await act(request, taken.record, deps, log);
  const bound = boundRequest(request, taken.record, log);
  return 'refused' in bound ? bound.refused : await act(bound.request, taken.record, deps, log);
}

/**
 * A known request id is bound to the parameters it was first accepted with, like an idempotency
 * key: a delivery asking for the same thing (however worded: see `differingFields`) acts on the
 * request as stored, so a retry runs the stored parameters; one asking for anything else is
 * refused (status `rejected` for this delivery, exit 2, acked) and the stored request is left alone.
 */
function boundRequest(request: ExportRequest, record: RequestRecord, log: Logger): { request: ExportRequest } | { refused: ProcessOutcome } {
  // Only a request rejected before validation has no document, and intake replaced those.
  if (record.request === null) return { request };
  let reason: string;
  let fields: string[] = [];
  try {
    const stored = requestOfStored(record.request);
    fields = differingFields(stored, request);
    if (fields.length === 0) return { request: stored };
    reason = `requestId ${request.requestId} was already used with other parameters: ${fields.join(', ')}`;
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    // Nothing to compare with: running either document could be the wrong export.
    reason = `requestId ${request.requestId} was already used by a request that no longer validates (${error.message}): use a new requestId`;
  }
  log.warn({ fields, status: record.status, reason }, 'request id used with other parameters: delivery rejected, the stored request is left alone');
  const now = new Date().toISOString();
  const refusal: RequestRecord = {
    requestId: request.requestId,
    kind: request.kind,
    merchantId: request.merchantId,
    status: 'rejected',
    attempts: 0,
    rows: null,
    bytes: null,
    uri: null,
    files: null,
    error: reason,
    coalescedInto: null,
    worker: null,
    heartbeatAt: null,
    createdAt: now,
    startedAt: null,
    finishedAt: now,
    request: storedRequest(request),
  };
  return { refused: { verdict: 'ack', exitCode: 2, record: refusal } };
}

async function act(request: ExportRequest, record: RequestRecord, deps: LifecycleDeps, log: Logger): Promise<ProcessOutcome> {
  switch (record.status) {
    case 'coalesced':
    case 'delivered':
    // Announced, and the mail step found the file gone (or nearly): the same id cannot do better.
    case 'expired':
      return { verdict: 'ack', exitCode: 0, record };
    case 'rejected':
      return { verdict: 'ack', exitCode: 2, record };
    case 'cancelled':
      return { verdict: 'ack', exitCode: 3, record };
    case 'uploaded':
      return await announceStored(request, record, deps, log);
    case 'queued':
    case 'failed':
    case 'running': {
      const held = await claim(deps.state, request.requestId, deps.worker, deps.leaseMs);
      if (held === undefined) {
        // Another worker holds a fresh lease (or it just moved on): leave it, look again later.
        const now = (await readRequest(deps.state, request.requestId)) ?? record;
        log.info({ status: now.status, worker: now.worker }, 'request is being handled elsewhere');
        if (now.status !== record.status && now.status !== 'running' && now.status !== 'queued' && now.status !== 'failed') {
          return await act(request, now, deps, log);
        }
        return { verdict: 'nack', exitCode: 1, record: now };
      }
      return await exportUnderLease(request, held, deps, log);
    }
  }
}

async function exportUnderLease(request: ExportRequest, held: RequestRecord, deps: LifecycleDeps, log: Logger): Promise<ProcessOutcome> {
  const { state, worker } = deps;
  const controller = new AbortController();
  const onShutdown = (): void => controller.abort(deps.shutdown.reason);
  deps.shutdown.addEventListener('abort', onShutdown, { once: true });
  if (deps.shutdown.aborted) onShutdown();
  let rows = 0;
  let leaseLost = false;
  // At most one heartbeat in flight: a slow state database must not pile them up (each holds a
  // connection of the state pool, which is sized for one per running export).
  let inFlight: Promise<void> | undefined;
  const beat = setInterval(() => {
    if (inFlight !== undefined) return;
    inFlight = heartbeat(state, request.requestId, worker, rows)
      .then(
        (held) => {
          if (!held && !leaseLost) {
            leaseLost = true;
            log.warn('lease lost (cancelled or taken over): stopping the export');
            controller.abort(new Error('lease lost'));
          }
        },
        (error: unknown) => log.warn({ err: error }, 'heartbeat failed'),
      )
      .finally(() => {
        inFlight = undefined;
      });
  }, deps.heartbeatMs);
  // Before the export records how it ended: no heartbeat may land after that write (it would find
  // the request no longer running, or renew a lease that is over).
  const stopHeartbeats = async (): Promise<void> => {
    clearInterval(beat);
    await inFlight;
  };
  log.info({ attempt: held.attempts, worker }, 'export running');
  const progress = (deps.progress ?? noProgress)({
    label: `merchant ${request.merchantId}`,
    message: 'export progress',
    fields: { kind: request.kind },
    stepName: request.kind === 'stop-slots' ? 'bots' : 'steps',
    requestId: request.requestId,
  });
  try {
    const result = await runReport(request, {
      pool: deps.source,
      output: deps.output,
      signal: controller.signal,
      logger: log,
      onProgress: (update) => {
        // The heartbeat records the rows in the state table, where `status` shows them.
        if (update.rows !== undefined) rows = update.rows;
        progress.update(update);
      },
    });
    progress.end('done');
    await stopHeartbeats();
    const uploaded = await markUploaded(state, request.requestId, worker, {
      rows: result.reports.reduce((sum, report) => sum + report.rows, 0),
      bytes: result.reports.reduce((sum, report) => sum + report.bytes, 0),
      uri: result.reports[0]?.uri ?? null,
      files: result.reports.flatMap((report) => report.files),
      // The zone and each file's location are kept: a redelivery that only announces needs them.
      object: { timezone: result.timezone, reports: result.reports },
    });
    const record = (await readRequest(state, request.requestId)) as RequestRecord;
    if (!uploaded) {
      log.warn({ status: record.status }, 'export finished after the request was cancelled or taken over');
      return { verdict: 'ack', exitCode: record.status === 'cancelled' ? 3 : 0, record };
    }
    return await announceStored(request, record, deps, log);
  } catch (error) {
    progress.end(controller.signal.aborted ? 'cancelled' : 'failed');
    await stopHeartbeats();
    if (isAbortError(error) || controller.signal.aborted) {
      if (deps.shutdown.aborted) {
        await releaseLease(state, request.requestId, worker);
        log.warn('shutting down: request handed back');
        return { verdict: 'nack', exitCode: 3, record: (await readRequest(state, request.requestId)) as RequestRecord };
      }
      const record = (await readRequest(state, request.requestId)) as RequestRecord;
      if (record.status === 'cancelled') {
        log.info('export cancelled; nothing was left behind');
        return { verdict: 'ack', exitCode: 3, record };
      }
      // Taken over by another worker after our heartbeats stalled: that worker finishes it.
      return { verdict: 'ack', exitCode: 1, record };
    }
    if (error instanceof InvalidRequestError) {
      await markRejected(state, request.requestId, worker, error.message);
      log.warn({ reason: error.message }, 'request rejected');
      return { verdict: 'ack', exitCode: 2, record: (await readRequest(state, request.requestId)) as RequestRecord };
    }
    await markFailed(state, request.requestId, worker, describeError(error));
    log.error({ err: error }, 'export failed; a redelivery retries it');
    return { verdict: 'nack', exitCode: 1, record: (await readRequest(state, request.requestId)) as RequestRecord };
  } finally {
    clearInterval(beat);
    deps.shutdown.removeEventListener('abort', onShutdown);
  }
}

/**
 * uploaded → announced (when there are recipients; one announcement per stored file) → delivered.
 * An announce failure leaves it uploaded, for a retry that announces without exporting again.
 */
async function announceStored(request: ExportRequest, record: RequestRecord, deps: LifecycleDeps, log: Logger): Promise<ProcessOutcome> {
  if (request.recipients.length === 0) return { verdict: 'ack', exitCode: 0, record };
  try {
    const { reports, timezone } = await readStoredReports(deps.state, record.requestId);
    await announceReports(request, reports, timezone, deps.announce, log);
    await markDelivered(deps.state, record.requestId);
    return { verdict: 'ack', exitCode: 0, record: (await readRequest(deps.state, record.requestId)) as RequestRecord };
  } catch (error) {
    log.error({ err: error }, 'announcing the export failed; a redelivery announces it without exporting again');
    return { verdict: 'nack', exitCode: 1, record: (await readRequest(deps.state, record.requestId)) as RequestRecord };
  }
}
