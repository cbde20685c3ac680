import { Readable } from 'node:stream';
import type pg from 'pg';
import type { Logger } from 'pino';
import { requestLogger, secondsSince } from '../../config/logs.js';
import { deliverStream } from '../../pipeline/deliver.js';
import type { ProgressUpdate } from '../../pipeline/progress.js';
import type { OutputTarget, StoredObject } from '../../sinks/output.js';
import { withReadOnlySnapshot } from '../../sources/postgres-snapshot.js';
import { resolveRange, type ResolvedRange } from '../resolve-range.js';
import { InvalidRequestError } from '../errors.js';
import { createZipStream, type ZipEntryChunk } from '../../sinks/zip.js';
import { XLSX_CONTENT_TYPE } from '../../transforms/xlsx.js';
import { queryStopSlots } from './query.js';
import { stopSlotsCsv, stopSlotsXlsx, type StopSlotGroup } from './report.js';
import type { StopSlotsRequest } from './request.js';

/** One bot's stored report. */
export interface StopSlotsBotReport {
  readonly botId: string;
  readonly botName: string;
  /** Data rows in the bot's CSV (0 for a header-only report). */
  readonly rows: number;
  readonly stored: StoredObject;
}

/** The JSON summary line of a stop-slots report. */
export interface StopSlotsSummary {
  readonly requestId: string;
  readonly kind: 'stop-slots';
  readonly reports: readonly { readonly botId: string; readonly uri: string; readonly rows: number }[];
  /** Only for XLSX (the CSV summary is unchanged): the format. */
  readonly format?: 'xlsx';
  /** Only for XLSX: cells cut at Excel's 32,767-character limit, over the workbooks written now. */
  readonly truncatedCells?: number;
}

/** A finished stop-slots request. */
export interface StopSlotsResult {
  readonly summary: StopSlotsSummary;
  readonly reports: readonly StopSlotsBotReport[];
  readonly timezone: string;
}

/** What a report runs with. */
export interface StopSlotsContext {
  readonly pool: pg.Pool;
  readonly output: OutputTarget;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Told the bots done out of all and the rows written so far, after each bot. */
  readonly onProgress?: (update: ProgressUpdate) => void;
}

/**
 * The CSV name of one bot's report: merchant, bot, range and request id, so the same id finds its
 * own file again and two ids never share one. Portable whatever id REQUEST_ID accepts
 * (test/hostile-names.test.ts).
 */
export function stopSlotsFileName(resolved: ResolvedRange<StopSlotsRequest>, botId: string): string {
  const { request } = resolved;
  const extension = request.format === 'xlsx' ? 'xlsx' : 'csv';
  return `stop-slots_merchant-${request.merchantId}_bot-${botId}_${resolved.fromLabel}_${resolved.toLabel}_${request.requestId}.${extension}`;
}

/** One bot's report as the stream to store, its content type and its counts. */
function botReport(
  groups: readonly StopSlotGroup[],
  request: StopSlotsRequest,
): { readonly stream: Readable; readonly stages: ReturnType<typeof createZipStream>[]; readonly contentType: string; readonly rows: number; readonly truncatedCells: number } {
  if (request.format === 'xlsx') {
    const workbook = stopSlotsXlsx(groups);
    const chunks: ZipEntryChunk[] = workbook.entries.map(({ entry, data }) => ({ entry, data }));
    return {
      stream: Readable.from(chunks),
      stages: [createZipStream({ level: 6 })],
      contentType: XLSX_CONTENT_TYPE,
      rows: workbook.rows,
      truncatedCells: workbook.truncatedCells,
    };
  }
  const csv = stopSlotsCsv(groups, request.csv);
  return { stream: Readable.from([Buffer.from(csv.text, 'utf8')]), stages: [], contentType: 'text/csv; charset=utf-8', rows: csv.rows, truncatedCells: 0 };
}

/**
 * Runs a stop-slots report: every bot's numbers from one snapshot, one plain CSV per bot. Bots are
 * checked before anything is written; a bot's file already stored by an earlier attempt of the same
 * request is kept, not written again.
 * @throws InvalidRequestError for an unknown merchant or zone, a bad range, or a bot that is not
 * the merchant's.
 */
export async function runStopSlotsReport(request: StopSlotsRequest, context: StopSlotsContext): Promise<StopSlotsResult> {
  const { pool, output, signal } = context;
  const logger = requestLogger(context.logger, request.requestId);
  signal.throwIfAborted();
  const started = performance.now();
  return await withReadOnlySnapshot(pool, async (session) => {
    const resolved = await resolveRange(session, request, undefined);
    const bots = await session.query<{ id: string; name: string }>(
      `SELECT id::text AS id, name FROM bots WHERE merchant_id = $1::bigint ORDER BY id`,
      [request.merchantId],
    );
    const byId = new Map(bots.rows.map((bot) => [BigInt(bot.id).toString(), bot]));
    for (const [index, botId] of request.botIds.entries()) {
      if (!byId.has(BigInt(botId).toString())) {
        throw new InvalidRequestError(`botIds[${index}]`, `bot ${botId} is not a bot of merchant ${request.merchantId}`);
      }
    }
    const selected = request.botIds.length > 0 ? request.botIds.map((botId) => byId.get(BigInt(botId).toString())!) : bots.rows;
    const groups = await queryStopSlots(session, {
      merchantId: request.merchantId,
      botIds: selected.map((bot) => bot.id),
      fromUtc: resolved.fromUtc,
      toUtc: resolved.toUtc,
    });
    const querySeconds = secondsSince(started);
    const reports: StopSlotsBotReport[] = [];
    let rows = 0;
    let truncatedCells = 0;
    context.onProgress?.({ rows, steps: { done: 0, total: selected.length } });
    for (const bot of selected) {
      signal.throwIfAborted();
      const botStarted = performance.now();
      const name = stopSlotsFileName(resolved, bot.id);
      const report = botReport(groups.get(bot.id) ?? [], request);
      const existing = await output.find(name);
      const stored =
        existing ??
        (await deliverStream(
          report.stream,
          report.stages,
          await output.open({
            name,
            contentType: report.contentType,
            metadata: { requestId: request.requestId, kind: 'stop-slots', merchantId: request.merchantId, botId: bot.id, rows: String(report.rows) },
          }),
          signal,
        ));
      if (existing === undefined && report.truncatedCells > 0) {
        logger.warn({ botId: bot.id, truncatedCells: report.truncatedCells }, `${report.truncatedCells} cells were longer than Excel's 32,767 characters and were cut, ending in …[truncated]`);
      }
      truncatedCells += existing === undefined ? report.truncatedCells : 0;
      // A file stored by an earlier attempt keeps the count it was written with.
      const storedRows = Number(existing?.metadata?.rows);
      const botReportStored = { botId: bot.id, botName: bot.name, rows: Number.isSafeInteger(storedRows) ? storedRows : report.rows, stored };
      reports.push(botReportStored);
      rows += botReportStored.rows;
      logger.info(
        { botId: bot.id, uri: stored.uri, rows: botReportStored.rows, bytes: stored.bytes, seconds: secondsSince(botStarted), reused: existing !== undefined },
        'stop-slots bot report stored',
      );
      context.onProgress?.({ rows, steps: { done: reports.length, total: selected.length } });
    }
    logger.info(
      {
        bots: reports.length,
        rows,
        bytes: reports.reduce((sum, report) => sum + report.stored.bytes, 0),
        seconds: secondsSince(started),
        querySeconds,
      },
      'stop-slots report stored',
    );
    return {
      summary: {
        requestId: request.requestId,
        kind: 'stop-slots',
        reports: reports.map((report) => ({ botId: report.botId, uri: report.stored.uri, rows: report.rows })),
        ...(request.format === 'xlsx' ? { format: 'xlsx' as const, truncatedCells } : {}),
      },
      reports,
      timezone: resolved.timezone,
    };
  });
}
