import type pg from 'pg';
import type { Logger } from 'pino';
import type { OutputTarget } from '../../sinks/output.js';
import { runConversationExport } from '../conversations/job.js';
import { parseConversationRequest } from '../conversations/request.js';
import { isAbortError } from '../errors.js';
import type { BackfillUnit } from './plan.js';

/** The JSON summary line of one backfill task: counts over this task's share of the units. */
export interface BackfillSummary {
  readonly kind: 'backfill';
  /** Units of this task's share. */
  readonly units: number;
  /** Units exported by this run. */
  readonly done: number;
  /** Units whose zip an earlier run had already stored. */
  readonly skipped: number;
  /** Units that failed; a rerun tries them again. */
  readonly failed: number;
  /** Data rows of the units exported or skipped. */
  readonly rows: number;
  /** Zip bytes of the units exported or skipped. */
  readonly bytes: number;
}

/** A unit that failed, and why. */
export interface BackfillFailure {
  readonly unit: BackfillUnit;
  readonly error: Error;
}

/** What a backfill runs with. */
export interface BackfillContext {
  readonly pool: pg.Pool;
  readonly output: OutputTarget;
  /** Aborting it stops starting units and cancels the running ones; the call then rejects with an AbortError. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Units run at once (at least 1). */
  readonly concurrency: number;
}

/** The outcome of {@link runBackfill}. */
export interface BackfillResult {
  readonly summary: BackfillSummary;
  readonly failures: readonly BackfillFailure[];
}

/** A unit's name in logs and error messages: `merchant 42 2026-09 [2026-09-01, 2026-10-01)`. */
export function describeUnit(unit: BackfillUnit): string {
  return `merchant ${unit.merchantId} ${unit.month} [${unit.from}, ${unit.to})`;
}

/**
 * Runs each unit as a conversation export (every status) with the unit's request id, at most
 * `concurrency` at once. A unit whose zip is already stored is skipped (nothing exported again);
 * a failing unit is recorded and the others go on. Logs one progress line after each unit.
 * @throws AbortError when `signal` aborted; running units leave nothing behind.
 */
export async function runBackfill(units: readonly BackfillUnit[], context: BackfillContext): Promise<BackfillResult> {
  const { signal, logger } = context;
  const started = performance.now();
  let done = 0;
  let skipped = 0;
  let rows = 0;
  let bytes = 0;
  const failures: BackfillFailure[] = [];
  let next = 0;

  const runUnit = async (unit: BackfillUnit): Promise<void> => {
    try {
      const request = parseConversationRequest({
        kind: 'conversations',
        requestId: unit.requestId,
        merchantId: unit.merchantId,
        from: unit.from,
        to: unit.to,
      });
      const result = await runConversationExport(request, { pool: context.pool, output: context.output, signal, logger });
      if (result.reused) skipped += 1;
      else done += 1;
      rows += result.summary.rows;
      bytes += result.summary.bytes;
    } catch (error) {
      if (signal.aborted && isAbortError(error)) return;
      const failure = error instanceof Error ? error : new Error(String(error));
      failures.push({ unit, error: failure });
      logger.error({ err: failure, requestId: unit.requestId, merchantId: unit.merchantId, month: unit.month }, `backfill unit ${describeUnit(unit)} failed`);
    }
    const seconds = (performance.now() - started) / 1000;
    logger.info(
      {
        units: units.length,
        done,
        skipped,
        failed: failures.length,
        rows,
        rowsPerSecond: Math.round(rows / Math.max(seconds, 0.001)),
      },
      'backfill progress',
    );
  };

  const worker = async (): Promise<void> => {
    while (!signal.aborted && next < units.length) {
      const unit = units[next] as BackfillUnit;
      next += 1;
      await runUnit(unit);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(context.concurrency, units.length)) }, () => worker()));
  signal.throwIfAborted();
  return {
    summary: { kind: 'backfill', units: units.length, done, skipped, failed: failures.length, rows, bytes },
    failures,
  };
}
