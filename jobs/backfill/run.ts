import type pg from 'pg';
import type { Logger } from 'pino';
import { requestLogger, secondsSince } from '../../config/logs.js';
import { progressStarter, withProgress, type ProgressStarter } from '../../pipeline/progress.js';
import type { OutputTarget } from '../../sinks/output.js';
import { runConversationExport } from '../conversations/job.js';
import { parseConversationRequest } from '../conversations/request.js';
import type { ExportFormat } from '../request-fields.js';
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
  /** Shows the backfill's progress (a bar, or JSON lines); default: only a JSON line per unit. */
  readonly progress?: ProgressStarter;
  /** Every unit's format (default csv: a zip per unit; xlsx: a workbook per unit, found again by its own name). */
  readonly format?: ExportFormat;
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
 * a failing unit is recorded and the others go on. Logs a `backfill progress` line after each unit
 * (unless a bar shows the progress); the progress counts a running unit by its share of its rows.
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
  /** Rows written and expected by each running unit. */
  const running = new Map<BackfillUnit, { rows: number; totalRows?: number }>();
  const start = context.progress ?? progressStarter({ mode: 'json', logger, intervalMs: 0 });
  const progress = start({ label: 'backfill', message: 'backfill progress', stepName: 'units' });

  const report = (): void => {
    let runningRows = 0;
    let runningShare = 0;
    for (const unit of running.values()) {
      runningRows += unit.rows;
      if (unit.totalRows !== undefined && unit.totalRows > 0) runningShare += Math.min(1, unit.rows / unit.totalRows);
    }
    progress.update(
      { rows: rows + runningRows, steps: { done: done + skipped + failures.length + runningShare, total: units.length } },
      { units: units.length, done, skipped, failed: failures.length },
    );
  };

  const runUnit = async (unit: BackfillUnit): Promise<void> => {
    const current: { rows: number; totalRows?: number } = { rows: 0 };
    running.set(unit, current);
    // Each unit is a request of its own: its lines carry its id (and label).
    const log = requestLogger(logger, unit.requestId, { month: unit.month });
    const unitStarted = performance.now();
    try {
      const request = parseConversationRequest({
        kind: 'conversations',
        format: context.format ?? 'csv',
        requestId: unit.requestId,
        merchantId: unit.merchantId,
        from: unit.from,
        to: unit.to,
      });
      const result = await runConversationExport(request, {
        pool: context.pool,
        output: context.output,
        signal,
        logger: log,
        onProgress: (update) => {
          Object.assign(current, update);
          report();
        },
      });
      running.delete(unit);
      if (result.reused) skipped += 1;
      else done += 1;
      rows += result.summary.rows;
      bytes += result.summary.bytes;
      log.info(
        {
          merchantId: unit.merchantId,
          rows: result.summary.rows,
          bytes: result.summary.bytes,
          skipped: result.reused,
          seconds: secondsSince(unitStarted),
        },
        result.reused ? 'backfill unit skipped: already stored' : 'backfill unit done',
      );
    } catch (error) {
      running.delete(unit);
      if (signal.aborted && isAbortError(error)) return;
      const failure = error instanceof Error ? error : new Error(String(error));
      failures.push({ unit, error: failure });
      log.error({ err: failure, merchantId: unit.merchantId, seconds: secondsSince(unitStarted) }, `backfill unit ${describeUnit(unit)} failed`);
    }
    report();
    progress.logNow();
  };

  const worker = async (): Promise<void> => {
    while (!signal.aborted && next < units.length) {
      const unit = units[next] as BackfillUnit;
      next += 1;
      await runUnit(unit);
    }
  };
  report();
  return await withProgress(progress, signal, async () => {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(context.concurrency, units.length)) }, () => worker()));
    signal.throwIfAborted();
    const summary = { kind: 'backfill' as const, units: units.length, done, skipped, failed: failures.length, rows, bytes };
    logger.info({ units: summary.units, done, skipped, failed: summary.failed, rows, bytes, seconds: secondsSince(started) }, 'backfill finished');
    return { summary, failures };
  });
}
