import type { Logger } from 'pino';
import { createPool } from '../../db/connection.js';
import { parseBackfillDate, planBackfillUnits, resolveShard, shardUnits } from '../../jobs/backfill/plan.js';
import { describeUnit, runBackfill, type BackfillSummary } from '../../jobs/backfill/run.js';
import { InvalidRequestError } from '../../jobs/errors.js';
import { parseFormat, type ExportFormat } from '../../jobs/request-fields.js';
import type { ProgressStarter } from '../../pipeline/progress.js';
import { withLocalMetadata } from '../../sinks/file-metadata.js';
import { checkOutputTarget, outputTargetFor } from '../../sinks/targets.js';

/** The flags of `backfill`, as commander parses them. */
export interface BackfillFlags {
  readonly from: string;
  readonly to: string;
  readonly merchant: string[];
  readonly out: string;
  readonly concurrency: number;
  /** `csv` or `xlsx` (default csv). */
  readonly format?: string;
  readonly taskIndex?: string;
  readonly taskCount?: string;
  /** False with `--no-progress`. */
  readonly progress: boolean;
}

function parseFormatFlag(value: string | undefined): ExportFormat {
  try {
    return parseFormat(value);
  } catch (error) {
    if (error instanceof InvalidRequestError) throw new InvalidRequestError('--format', `expected csv or xlsx, got ${JSON.stringify(value)}`);
    throw error;
  }
}

/** What a backfill task printed and how it should exit. */
export interface BackfillOutcome {
  readonly summary: BackfillSummary;
  /** One line per failed unit, naming it and its error. */
  readonly failures: readonly string[];
}

/**
 * Validates the flags and the shard, plans the units (every merchant when no `--merchant`), and runs
 * this task's share on a pool of `--concurrency` connections to `DATABASE_URL`
 * (`application_name` `audit-export-backfill`).
 * @throws InvalidRequestError naming the flag or variable, before anything is exported.
 * @throws AbortError when `signal` aborted.
 */
export async function backfill(
  flags: BackfillFlags,
  logger: Logger,
  signal: AbortSignal,
  progress: ProgressStarter,
  env: NodeJS.ProcessEnv = process.env,
): Promise<BackfillOutcome> {
  const from = parseBackfillDate('--from', flags.from);
  const to = parseBackfillDate('--to', flags.to);
  if (from >= to) throw new InvalidRequestError('--from', `${from} is not before --to ${to}`);
  const format = parseFormatFlag(flags.format);
  if (flags.concurrency < 1) throw new InvalidRequestError('--concurrency', `expected at least 1, got ${flags.concurrency}`);
  // Validated before the database is touched, so a bad flag exits 2 with nothing done.
  planBackfillUnits(flags.merchant, from, to);
  const shard = resolveShard(flags, env);
  // A local folder keeps each zip's metadata in a hidden file, so reruns recognise their zips there too.
  const output = withLocalMetadata(outputTargetFor(flags.out, '--out', env));
  await checkOutputTarget(output, '--out');
  const url = env.DATABASE_URL;
  if (url === undefined || url === '') {
    throw new InvalidRequestError('DATABASE_URL', 'not set: backfill needs the database (preferably a read replica) it should read');
  }
  const attempt = env.CLOUD_RUN_TASK_ATTEMPT;
  const pool = createPool(url, { applicationName: 'audit-export-backfill', max: flags.concurrency }, (error) =>
    logger.warn({ err: error }, 'idle database connection failed'),
  );
  try {
    let merchantIds = flags.merchant;
    if (merchantIds.length === 0) {
      const result = await pool.query<{ id: string }>('SELECT id::text AS id FROM merchants ORDER BY id');
      merchantIds = result.rows.map((row) => row.id);
    }
    const all = planBackfillUnits(merchantIds, from, to);
    const units = shardUnits(all, shard);
    logger.info(
      {
        from,
        to,
        merchants: new Set(merchantIds).size,
        allUnits: all.length,
        units: units.length,
        taskIndex: shard.index,
        taskCount: shard.count,
        concurrency: flags.concurrency,
        ...(attempt === undefined || attempt === '' ? {} : { taskAttempt: attempt }),
      },
      'backfill started',
    );
    const result = await runBackfill(units, { pool, output, signal, logger, concurrency: flags.concurrency, progress, format });
    return {
      summary: result.summary,
      failures: result.failures.map(({ unit, error }) => `${unit.requestId} (${describeUnit(unit)}): ${error.message}`),
    };
  } finally {
    await pool.end();
  }
}
