import type { Logger } from 'pino';
import { requestLogger, secondsSince } from '../../config/logs.js';
import { InvalidRequestError } from '../../jobs/errors.js';
import { announceReports, runReport, type ReportResult } from '../../jobs/reports.js';
import type { ExportRequest } from '../../jobs/requests.js';
import { withProgress, type ProgressStarter } from '../../pipeline/progress.js';
import { checkOutputTarget, outputTargetFor } from '../../sinks/targets.js';
import type { Announcer } from '../announcer.js';
import { openDatabase, type Database } from '../database.js';

/** Accumulates a repeatable flag's values. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/**
 * Restates request errors in terms of the flags the user typed: `flagOfField` maps a request field
 * (`merchantId`, `filters.statuses`) to its flag; list indexes (`[2]`) are dropped.
 */
export function inFlagTerms(error: InvalidRequestError, flagOfField: Readonly<Record<string, string>>): InvalidRequestError {
  const flag = flagOfField[error.field.replace(/\[\d+\]$/, '')];
  if (flag === undefined) return error;
  return new InvalidRequestError(flag, error.message.slice(error.field.length + 2));
}

/** Flags every export command shares, by the request field they set. */
export const COMMON_FLAG_OF_FIELD: Readonly<Record<string, string>> = {
  requestId: '--request-id',
  merchantId: '--merchant',
  from: '--from',
  to: '--to',
  timezone: '--timezone',
  recipients: '--email',
  locale: '--locale',
  format: '--format',
};

/**
 * What the export commands share once their flags are a request: parse it (errors in flag terms),
 * run the report on the configured (or embedded) database into `--out`, and, with recipients,
 * announce each stored file only after the storage confirmed it. A rerun of the same request id
 * finds its files stored and announces again without exporting again. Progress is reported through
 * `progress` while the report runs. With `database` (the demo, which runs several reports on one
 * embedded server) the report runs on it and leaves it open; otherwise on `DATABASE_URL` or an
 * embedded one, closed at the end.
 */
export async function runReportCommand<R extends ExportRequest>(
  parse: () => R,
  out: string,
  flagOfField: Readonly<Record<string, string>>,
  logger: Logger,
  signal: AbortSignal,
  announcer: () => Announcer,
  progress: ProgressStarter,
  database?: Database,
): Promise<ReportResult['summary']> {
  const restate = (error: unknown): unknown => (error instanceof InvalidRequestError ? inFlagTerms(error, flagOfField) : error);
  let request: R;
  try {
    request = parse();
  } catch (error) {
    throw restate(error);
  }
  const log = requestLogger(logger, request.requestId);
  const output = outputTargetFor(out, '--out');
  // Before the database: a folder that can never take the files fails at once, naming --out.
  await checkOutputTarget(output, '--out');
  // Resolved before any work, so a bad Pub/Sub configuration fails before the export, not after.
  const announce = request.recipients.length > 0 ? announcer() : undefined;
  const opened = database ?? (await openDatabase(log, { allowEmbedded: true }));
  try {
    const reporter = progress({
      label: `merchant ${request.merchantId}`,
      message: 'export progress',
      fields: { kind: request.kind },
      stepName: request.kind === 'stop-slots' ? 'bots' : 'steps',
      requestId: request.requestId,
    });
    const result = await withProgress(reporter, signal, () =>
      runReport(request, { pool: opened.pool, output, signal, logger: log, onProgress: (update) => reporter.update(update) }),
    );
    if (announce !== undefined) {
      await announceReports(request, result.reports, result.timezone, (announcement) => announce.announce(announcement), log);
    }
    return result.summary;
  } catch (error) {
    throw restate(error);
  } finally {
    await announce?.close();
    if (database === undefined) await opened.close();
  }
}
