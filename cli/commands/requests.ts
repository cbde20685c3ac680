import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type pg from 'pg';
import type { Logger } from 'pino';
import { createPool, DEFAULT_POOL_SIZE } from '../../db/connection.js';
import { migrateState } from '../../db/migrate.js';
import { InvalidRequestError } from '../../jobs/errors.js';
import { MAX_REQUEST_BYTES, REQUEST_SIZE_RULE } from '../../jobs/requests.js';
import type { MessageHandler } from '../../jobs/mailer/handler.js';
import { consumeSubscription } from '../../jobs/mailer/pull.js';
import { processRequest, workerName, type LifecycleDeps, type ProcessOutcome } from '../../jobs/lifecycle/process.js';
import { cancelRequest, DEFAULT_LIMITS, listRequests, readRequest, readStoredReports, type RequestRecord } from '../../jobs/lifecycle/state.js';
import type { ProgressStarter } from '../../pipeline/progress.js';
import { checkOutputTarget, outputTargetFor } from '../../sinks/targets.js';
import { createPubSubClient } from '../../sinks/pubsub.js';
import { createAnnouncer, type Announcer } from '../announcer.js';
import { openDatabase } from '../database.js';
import { ExitCode } from '../exit-codes.js';
import { setting } from '../../config/env.js';
import { redactText } from '../../config/privacy.js';


function wholeNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const value = setting(env, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new InvalidRequestError(name, `expected a whole number from ${min} up, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** A state database pool: `STATE_DATABASE_URL`, or the source pool when it is not set. */
async function openState(
  source: pg.Pool,
  embedded: boolean,
  env: NodeJS.ProcessEnv,
  max: number | undefined,
): Promise<{ pool: pg.Pool; close(): Promise<void> }> {
  const url = setting(env, 'STATE_DATABASE_URL');
  if (url === undefined || stateIsSource(env)) {
    // A fresh embedded database has no state tables yet; a configured one was migrated by `db migrate`.
    if (embedded) await migrateState(source);
    return { pool: source, close: async () => {} };
  }
  const pool = createPool(url, { applicationName: 'audit-export-state', ...(max === undefined ? {} : { max }) });
  return { pool, close: () => pool.end() };
}

/** Connections each lifecycle pool keeps beyond one per running export: intake and claims of new deliveries, and the state writes of finishing ones. */
export const POOL_MARGIN = 2;

/**
 * How many connections the lifecycle's pools may open for `concurrency` exports at once. Each
 * running export holds one source connection (its snapshot) for its whole run and, every
 * `HEARTBEAT_MS`, one state connection (its heartbeat; at most one in flight). So each pool gets
 * `concurrency + POOL_MARGIN`; when one pool serves both databases (`STATE_DATABASE_URL` unset or
 * equal to `DATABASE_URL`) it gets both shares, `2 × concurrency + POOL_MARGIN`. A fixed 4 let
 * four snapshots starve every heartbeat, and their leases expired under them.
 */
export function lifecyclePoolSizes(concurrency: number, shared: boolean): { source: number; state: number } {
  const size = shared ? 2 * concurrency + POOL_MARGIN : concurrency + POOL_MARGIN;
  return { source: size, state: size };
}

/** Whether the state database is the source database (one pool serves both): `STATE_DATABASE_URL` unset or equal to `DATABASE_URL`. */
function stateIsSource(env: NodeJS.ProcessEnv): boolean {
  const url = setting(env, 'STATE_DATABASE_URL');
  return url === undefined || url === setting(env, 'DATABASE_URL');
}

/** The request lifecycle's dependencies from the environment, and how to release them. */
export interface Lifecycle {
  readonly deps: LifecycleDeps;
  /** The most connections each pool may open (one pool for both when the state database is the source one). */
  readonly pools: { readonly source: number; readonly state: number };
  close(): Promise<void>;
}

/**
 * Builds the request lifecycle from the environment: `DATABASE_URL` (the source; unset with
 * `allowEmbedded`: the embedded demo database), `STATE_DATABASE_URL`, `OUTPUT_URI` (default
 * `file://./exports`), `MAX_ACTIVE_EXPORTS_PER_MERCHANT` (2), `MAX_REQUESTS_PER_HOUR` (60),
 * `LEASE_SECONDS` (60: a running request whose heartbeat is older is taken over),
 * `HEARTBEAT_MS` (1000), and the announcement settings (`READY_TOPIC`...), used only for requests
 * with recipients. With `concurrency` (the worker), the pools are sized by {@link lifecyclePoolSizes}.
 */
export async function openLifecycle(
  logger: Logger,
  shutdown: AbortSignal,
  options: { allowEmbedded: boolean; progress?: ProgressStarter; concurrency?: number },
  env: NodeJS.ProcessEnv = process.env,
): Promise<Lifecycle> {
  const output = outputTargetFor(setting(env, 'OUTPUT_URI') ?? 'file://./exports', 'OUTPUT_URI', env);
  // Before any request is taken: a folder that can never take files is the deployment's fault,
  // not the request's, so no request is recorded as rejected for it.
  await checkOutputTarget(output, 'OUTPUT_URI');
  const limits = {
    maxActivePerMerchant: wholeNumber(env, 'MAX_ACTIVE_EXPORTS_PER_MERCHANT', DEFAULT_LIMITS.maxActivePerMerchant),
    maxAcceptedPerHour: wholeNumber(env, 'MAX_REQUESTS_PER_HOUR', DEFAULT_LIMITS.maxAcceptedPerHour),
    coalesceWindowSeconds: DEFAULT_LIMITS.coalesceWindowSeconds,
  };
  const leaseMs = wholeNumber(env, 'LEASE_SECONDS', 60) * 1000;
  const heartbeatMs = wholeNumber(env, 'HEARTBEAT_MS', 1000, 50);
  // Sized for `concurrency` exports at once (the worker); `run` and `serve` keep the pools' default (4).
  const sizes = options.concurrency === undefined ? undefined : lifecyclePoolSizes(options.concurrency, stateIsSource(env));
  const database = await openDatabase(logger, { allowEmbedded: options.allowEmbedded, max: sizes?.source }, env);
  let state;
  try {
    state = await openState(database.pool, database.embedded, env, sizes?.state);
  } catch (error) {
    await database.close();
    throw error;
  }
  let announcer: Announcer | undefined;
  const deps: LifecycleDeps = {
    source: database.pool,
    state: state.pool,
    output,
    announce: (announcement) => (announcer ??= createAnnouncer(logger, env)).announce(announcement),
    logger,
    worker: workerName(),
    limits,
    leaseMs,
    heartbeatMs,
    shutdown,
    ...(options.progress === undefined ? {} : { progress: options.progress }),
  };
  return {
    deps,
    pools: sizes ?? { source: DEFAULT_POOL_SIZE, state: DEFAULT_POOL_SIZE },
    async close() {
      await announcer?.close();
      await state.close();
      await database.close();
    },
  };
}

/**
 * Reads at most {@link MAX_REQUEST_BYTES} (and one byte more, to know) from `stream`, then stops:
 * a larger document is refused by its size without being buffered.
 */
async function readBounded(stream: Readable, field: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += bytes.length;
    if (size > MAX_REQUEST_BYTES) {
      stream.destroy();
      throw new InvalidRequestError(field, REQUEST_SIZE_RULE);
    }
    chunks.push(bytes);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/**
 * Reads the request of `run`: `--request FILE`, `--request -` (stdin), or `EXPORT_REQUEST` (JSON or
 * its base64); at most {@link MAX_REQUEST_BYTES}, refused by size before anything is parsed.
 */
export async function readRunRequest(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (file === '-') return await readBounded(process.stdin, '--request');
  if (file !== undefined) {
    let stream: Readable;
    try {
      const handle = await open(file, 'r');
      stream = handle.createReadStream();
    } catch (error) {
      throw new InvalidRequestError('--request', `cannot read ${JSON.stringify(file)}: ${(error as Error).message}`);
    }
    try {
      return await readBounded(stream, '--request');
    } catch (error) {
      if (error instanceof InvalidRequestError) throw error;
      throw new InvalidRequestError('--request', `cannot read ${JSON.stringify(file)}: ${(error as Error).message}`);
    } finally {
      stream.destroy();
    }
  }
  const inline = setting(env, 'EXPORT_REQUEST');
  if (inline === undefined) throw new InvalidRequestError('--request', 'give --request FILE, --request - (stdin) or EXPORT_REQUEST');
  // Base64 is a third longer than what it holds: the size rule is the document's, so allow for it.
  if (Buffer.byteLength(inline) > Math.ceil((MAX_REQUEST_BYTES * 4) / 3) + 4) throw new InvalidRequestError('EXPORT_REQUEST', REQUEST_SIZE_RULE);
  const trimmed = inline.trim();
  if (trimmed.startsWith('{')) return trimmed;
  const decoded = Buffer.from(trimmed, 'base64').toString('utf8');
  // Not JSON either way: hand the original over, so the rejection quotes what was given.
  return decoded.trim().startsWith('{') ? decoded : trimmed;
}

/**
 * The summary line of a request's record: the export commands' fields, plus its status. Its
 * error is redacted like a log line: where stdout is collected (Cloud Run), the summary is one.
 */
export async function summaryOf(record: RequestRecord, state: pg.Pool): Promise<Record<string, unknown>> {
  // A coalesced request's file is the one it was coalesced into.
  const source = record.coalescedInto === null ? record : ((await readRequest(state, record.coalescedInto)) ?? record);
  if (record.kind === 'stop-slots') {
    // A rejected request stored nothing; a delivery refused under another request's id must not show that request's files.
    const stored = record.status === 'rejected' ? [] : (await readStoredReports(state, source.requestId)).reports;
    const reports = stored.map((report) => ({
      botId: report.botId,
      uri: report.uri,
      rows: report.rows,
    }));
    return {
      requestId: record.requestId,
      kind: record.kind,
      reports,
      status: record.status,
      ...(record.error === null ? {} : { error: redactText(record.error) }),
      ...(record.coalescedInto === null ? {} : { coalescedInto: record.coalescedInto }),
    };
  }
  return {
    requestId: record.requestId,
    kind: record.kind,
    uri: source.uri,
    rows: source.rows,
    files: source.files ?? [],
    bytes: source.bytes,
    status: record.status,
    ...(record.error === null ? {} : { error: redactText(record.error) }),
    ...(record.coalescedInto === null ? {} : { coalescedInto: record.coalescedInto }),
  };
}

/**
 * The exit code of `run` for a request's outcome. Elsewhere it is the outcome's (0 done, 1
 * failed, 2 invalid, 3 cancelled). As a Cloud Run job task (`onCloudRunJob`: `CLOUD_RUN_JOB` is
 * set), a request that is `rejected` (2) or `cancelled` (3) for good exits 0: Cloud Run retries a
 * task on any non-zero exit, and no retry can change either. A request handed back at SIGTERM
 * (3, `queued`) and a failure (1) keep their codes: a retry is what runs them.
 */
export function runExitCode(outcome: Pick<ProcessOutcome, 'exitCode'> & { readonly record: Pick<RequestRecord, 'status'> }, onCloudRunJob: boolean): number {
  const final = (outcome.exitCode === ExitCode.InvalidRequest && outcome.record.status === 'rejected') ||
    (outcome.exitCode === ExitCode.Cancelled && outcome.record.status === 'cancelled');
  return onCloudRunJob && final ? ExitCode.Ok : outcome.exitCode;
}

/**
 * `audit-export run`: one request (`data`, from {@link readRunRequest}) per process; returns the
 * exit code and prints the summary line. `logger` is best bound to the request already (see
 * `requestIdOf`), so the lines written before the request is parsed name it too.
 */
export async function runRequest(
  data: string,
  logger: Logger,
  signal: AbortSignal,
  progress: ProgressStarter,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const lifecycle = await openLifecycle(logger, signal, { allowEmbedded: true, progress }, env);
  try {
    const outcome = await processRequest(data, lifecycle.deps);
    process.stdout.write(`${JSON.stringify(await summaryOf(outcome.record, lifecycle.deps.state))}\n`);
    const code = runExitCode(outcome, setting(env, 'CLOUD_RUN_JOB') !== undefined);
    if (code !== outcome.exitCode) {
      // The execution succeeds, so the outcome must stand out in the logs: alert on this line.
      const fields = { status: outcome.record.status, exitCode: code, outcomeExitCode: outcome.exitCode, reason: outcome.record.error };
      const message = `request ${outcome.record.status}: exit 0 as a Cloud Run job task, which no retry could change`;
      if (outcome.record.status === 'rejected') logger.error(fields, message);
      else logger.warn(fields, message);
    }
    return code;
  } finally {
    await lifecycle.close();
  }
}

/** The handler the worker and the push endpoint give each request message. */
export function requestHandler(lifecycle: Lifecycle): MessageHandler {
  return async (data, _attributes, messageId) => (await processRequest(data, lifecycle.deps, messageId)).verdict;
}

/** `audit-export worker`: streaming pull from the requests subscription until the signal aborts. */
export async function runWorker(
  options: { subscription: string; concurrency: number },
  logger: Logger,
  signal: AbortSignal,
  progress: ProgressStarter,
): Promise<void> {
  const pubsub = createPubSubClient();
  const lifecycle = await openLifecycle(logger, signal, { allowEmbedded: false, progress, concurrency: options.concurrency });
  try {
    logger.info(
      { subscription: options.subscription, concurrency: options.concurrency, worker: lifecycle.deps.worker, pools: lifecycle.pools },
      'worker started',
    );
    await consumeSubscription(pubsub, options.subscription, requestHandler(lifecycle), {
      concurrency: options.concurrency,
      signal,
      logger,
      // Cloud Run allows 10 s after SIGTERM: running exports abort at once and hand their requests back.
      drainTimeoutMs: 5_000,
    });
  } finally {
    await lifecycle.close();
    await pubsub.close().catch(() => {});
  }
}

function stateDatabase(env: NodeJS.ProcessEnv = process.env): pg.Pool {
  const url = setting(env, 'STATE_DATABASE_URL') ?? setting(env, 'DATABASE_URL');
  if (url === undefined) throw new InvalidRequestError('STATE_DATABASE_URL', 'not set (nor DATABASE_URL): requests are recorded there');
  return createPool(url, { applicationName: 'audit-export' });
}

/** `audit-export status ID`: prints the request's record as one JSON line; exit 2 when unknown. */
export async function printStatus(requestId: string): Promise<number> {
  const pool = stateDatabase();
  try {
    const record = await readRequest(pool, requestId);
    if (record === undefined) throw new InvalidRequestError('REQUEST_ID', `no request ${JSON.stringify(requestId)}`);
    process.stdout.write(`${JSON.stringify(record)}\n`);
    return ExitCode.Ok;
  } finally {
    await pool.end();
  }
}

/** `audit-export list --merchant M`: the merchant's recent requests, one JSON line each, newest first. */
export async function printList(merchantId: string, limit: number): Promise<number> {
  const pool = stateDatabase();
  try {
    for (const record of await listRequests(pool, merchantId, limit)) process.stdout.write(`${JSON.stringify(record)}\n`);
    return ExitCode.Ok;
  } finally {
    await pool.end();
  }
}

/** `audit-export cancel ID`: cancels a queued, running or failed request; exit 2 when it is unknown or already finished. */
export async function cancel(requestId: string, logger: Logger): Promise<number> {
  const pool = stateDatabase();
  try {
    const record = await cancelRequest(pool, requestId);
    if (record === undefined) throw new InvalidRequestError('REQUEST_ID', `no request ${JSON.stringify(requestId)}`);
    process.stdout.write(`${JSON.stringify(record)}\n`);
    if (record.status !== 'cancelled') {
      logger.warn({ requestId, status: record.status }, 'not cancelled: the request has already finished');
      process.stderr.write(`audit-export: request ${requestId} is ${record.status}; only queued, running or failed requests can be cancelled\n`);
      return ExitCode.InvalidRequest;
    }
    return ExitCode.Ok;
  } finally {
    await pool.end();
  }
}
