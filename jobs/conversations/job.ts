import type pg from 'pg';
import type { Logger } from 'pino';
import { requestLogger, secondsSince } from '../../config/logs.js';
import { deliverStream } from '../../pipeline/deliver.js';
import type { OutputTarget, StoredObject } from '../../sinks/output.js';
import { createZipStream } from '../../sinks/zip.js';
import { withReadOnlySnapshot } from '../../sources/postgres-snapshot.js';
import { createCsvPartsStage } from '../../transforms/csv-parts.js';
import { createXlsxSheetsStage } from '../../transforms/xlsx-sheets.js';
import { XLSX_CONTENT_TYPE, xlsxSheetNames } from '../../transforms/xlsx.js';
import {
  appendConversationRecord,
  appendConversationXlsxRow,
  CONVERSATION_HEADERS,
  chatRowsOfCopyRow,
  CONVERSATION_CHAT_ID_COLUMN,
  CONVERSATION_HEADER_RECORD,
  CONVERSATION_SOURCE_COLUMNS,
} from '../../transforms/conversation-row.js';
import { partFileName } from '../../transforms/parts.js';
import type { ProgressUpdate } from '../../pipeline/progress.js';
import { planConversationExport } from './plan.js';
import { conversationCopySql } from './query.js';
import type { ConversationRequest } from './request.js';
import { resolveConversationExport, type ResolvedConversationExport } from './resolve.js';

/** The result of a conversation export: the JSON summary line's fields. */
export interface ConversationExportSummary {
  readonly requestId: string;
  readonly kind: 'conversations';
  /** The zip's (or workbook's) location. */
  readonly uri: string;
  /** Data rows written, over all parts. */
  readonly rows: number;
  /** The parts in export order: the CSV file names inside the zip, or the workbook's sheet names. */
  readonly files: readonly string[];
  /** The zip's (or workbook's) size. */
  readonly bytes: number;
  /** Only for XLSX (the CSV summary is unchanged): the format. */
  readonly format?: 'xlsx';
  /** Only for XLSX: cells cut at Excel's 32,767-character limit. */
  readonly truncatedCells?: number;
}

/** The sheet name of a conversation workbook with a single part (several are `Part 1`, `Part 2`, ...). */
export const CONVERSATION_SHEET_NAME = 'Conversations';

/** What an export runs with. */
export interface ConversationExportContext {
  readonly pool: pg.Pool;
  readonly output: OutputTarget;
  /** Aborting it cancels the export: nothing is left at the output and the call rejects with an AbortError. */
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** When the request was made; the zip entries carry it as their modification time. */
  readonly now?: Date;
  /**
   * Told how far the export is: the rows it will write once they are counted (before the COPY, in
   * its snapshot), then the rows written so far, about every 64 KB of CSV.
   */
  readonly onProgress?: (update: ProgressUpdate) => void;
}

/** Bytes per chunk a workbook's rows are handed on in (see the note where it is used). */
const XLSX_CHUNK_BYTES = 256 * 1024;
/** Deflate level of a workbook's entries (see the note where it is used). */
const XLSX_DEFLATE_LEVEL = 1;
/**
 * Deflate level of the CSV files. Level 5 deflated the bench's 1M-row CSV (340 MB) in a quarter
 * less CPU than level 6 (1.63-1.68 s against 2.13-2.35 s on one thread) into 25.4 MB, what
 * `zip -6` makes of it (level 6: 25.0 MB, level 4: 26.4 MB, 4% more). Deflate shares two cores
 * with the row formatting and the PostgreSQL backend, so its CPU is the export's time.
 */
const CSV_DEFLATE_LEVEL = 5;

/** The chat size given to part splitting when the export is one part: any size fits, 1 is the least. */
function unsplitChatRows(): number {
  return 1;
}

/** The file name base shared by the zip and its CSV files. */
export function conversationFileBase(resolved: ResolvedConversationExport): string {
  return `conversations_merchant-${resolved.request.merchantId}_${resolved.fromLabel}_${resolved.toLabel}`;
}

/**
 * The zip's name: the file base and the request id, so the same id always finds its own zip and
 * two ids never share one. Portable whatever id REQUEST_ID accepts (test/hostile-names.test.ts).
 */
export function conversationZipName(resolved: ResolvedConversationExport): string {
  return `${conversationFileBase(resolved)}_${resolved.request.requestId}.zip`;
}

/** The workbook's name: {@link conversationZipName} with `.xlsx` (it is a zip already, not zipped again). */
export function conversationWorkbookName(resolved: ResolvedConversationExport): string {
  return `${conversationFileBase(resolved)}_${resolved.request.requestId}.xlsx`;
}

/** A finished (or found) conversation export. */
export interface ConversationExportResult {
  /** The JSON summary line. */
  readonly summary: ConversationExportSummary;
  /** The zip as the storage confirmed it. */
  readonly stored: StoredObject;
  readonly resolved: ResolvedConversationExport;
  /** True when a rerun found the request's zip already stored and exported nothing again. */
  readonly reused: boolean;
}

/** File names of a plan's parts, from the base name and the count stored in the object's metadata. */
function partNames(base: string, parts: number): string[] {
  return Array.from({ length: parts }, (_, index) => partFileName(base, index, parts > 1));
}

/**
 * Runs one conversation export: resolves the request, then streams every matching message from one
 * snapshot through CSV formatting and zip into the output, and commits the object only when all of
 * it was written. The zip's name carries the request id; when a rerun of the same request finds it
 * already stored (with the metadata this function writes), nothing is exported again.
 *
 * @throws InvalidRequestError before anything is written when the request cannot be served.
 * @throws AbortError when `signal` aborted; nothing is left at the output.
 */
export async function runConversationExport(
  request: ConversationRequest,
  context: ConversationExportContext,
): Promise<ConversationExportResult> {
  const { pool, output, signal } = context;
  const logger = requestLogger(context.logger, request.requestId);
  signal.throwIfAborted();
  const started = performance.now();
  return await withReadOnlySnapshot(pool, async (session) => {
    await session.query(`SET LOCAL DateStyle = 'ISO, YMD'`);
    // One backend outruns the export (its query alone: 2.7 s per 1M rows on PostgreSQL 15, the
    // export about 5): parallel workers, which the planner picks for large exports once no window
    // keeps the query serial, only add CPU on a database that many backfill tasks share (the
    // bench at 5M rows: 6.1 s of backend CPU per 1M rows with a worker, 4.7 without).
    await session.query('SET LOCAL max_parallel_workers_per_gather = 0');
    const resolved = await resolveConversationExport(session, request);
    // Timestamps leave the server as local text of the export zone (see transforms/timestamp.ts).
    await session.query(`SELECT set_config('TimeZone', $1, true)`, [resolved.timezone]);
    const base = conversationFileBase(resolved);
    const xlsx = request.format === 'xlsx';
    const name = xlsx ? conversationWorkbookName(resolved) : conversationZipName(resolved);
    const xlsxFields = (truncatedCells: number): Pick<ConversationExportSummary, 'format' | 'truncatedCells'> =>
      xlsx ? { format: 'xlsx', truncatedCells } : {};

    const existing = await output.find(name);
    if (existing !== undefined) {
      const rows = Number(existing.metadata?.rows);
      const parts = Number(existing.metadata?.parts);
      if (existing.metadata?.requestId !== request.requestId || !Number.isSafeInteger(rows) || !Number.isSafeInteger(parts)) {
        throw new Error(`${existing.uri} already exists and is not this request's export; exports never overwrite a file`);
      }
      logger.info({ uri: existing.uri, rows, bytes: existing.bytes, seconds: secondsSince(started) }, 'conversation export already stored; not exporting again');
      context.onProgress?.({ rows, totalRows: rows });
      const summary: ConversationExportSummary = {
        requestId: request.requestId,
        kind: 'conversations',
        uri: existing.uri,
        rows,
        files: xlsx ? xlsxSheetNames(CONVERSATION_SHEET_NAME, parts) : partNames(base, parts),
        bytes: existing.bytes,
        // How many cells an earlier run cut is in its log, not in the object's metadata.
        ...(xlsx ? { format: 'xlsx' as const } : {}),
      };
      return { summary, stored: existing, resolved, reused: true };
    }

    const plan = await planConversationExport(session, resolved, base);
    context.onProgress?.({ rows: 0, totalRows: plan.rows });
    // Snapshot, resolution and the count of rows per part: the cost before the first row streams.
    const planSeconds = secondsSince(started);
    logger.info(
      { merchantId: request.merchantId, timezone: resolved.timezone, expectedRows: plan.rows, files: plan.files.length, planSeconds },
      'conversation export started',
    );
    const object = await output.open({
      name,
      contentType: xlsx ? XLSX_CONTENT_TYPE : 'application/zip',
      metadata: {
        requestId: request.requestId,
        kind: 'conversations',
        merchantId: request.merchantId,
        rows: String(plan.rows),
        parts: String(plan.files.length),
        ...(xlsx ? { format: 'xlsx' } : {}),
      },
    });
    // One part holds every row, so no chat can overflow it: the chat sizes are not read at all.
    const multipart = plan.files.length > 1;
    const split = {
      columns: CONVERSATION_SOURCE_COLUMNS.length,
      groupColumn: CONVERSATION_CHAT_ID_COLUMN,
      groupSize: multipart ? chatRowsOfCopyRow : unsplitChatRows,
      rowsPerFile: request.csv.rowsPerFile,
      ...(context.onProgress === undefined ? {} : { onRows: (rows: number) => context.onProgress?.({ rows }) }),
    };
    const sheetNames = xlsxSheetNames(CONVERSATION_SHEET_NAME, plan.files.length);
    const stage = xlsx
      ? createXlsxSheetsStage({
          ...split,
          headers: CONVERSATION_HEADERS,
          writeRow: appendConversationXlsxRow,
          sheetNames,
          sharedStrings: true,
          // Five times the CSV's bytes: larger chunks hand deflate a quarter as many writes, each
          // one a wake-up of a thread-pool thread on a machine whose two cores are both busy
          // (300k rows: about 8% faster).
          chunkSize: XLSX_CHUNK_BYTES,
        })
      : createCsvPartsStage({
          ...split,
          headerRecord: CONVERSATION_HEADER_RECORD,
          bom: request.csv.bom,
          formatRecord: (out, row) => appendConversationRecord(out, row, request.csv),
          multipart,
          partName: (index, multi) => partFileName(base, index, multi),
        });
    const files = (): readonly string[] => ('files' in stage ? stage.files : stage.sheets);
    // The workbook's XML is about five times the CSV's bytes, and deflate 6 on one thread took 2.6x
    // the CSV export's time at 1M rows; level 1 costs a sixth more bytes (300k rows: 41.6 MB against
    // 35.6 MB) and took 1.6-1.9x the CSV export (bench/export-vs-copy.ts, xlsx row).
    const zip = createZipStream({ level: xlsx ? XLSX_DEFLATE_LEVEL : CSV_DEFLATE_LEVEL, modifiedAt: context.now ?? new Date() });
    let streamed = started;
    const stored = await deliverStream(session.copyOut(conversationCopySql(resolved, { chatSizes: multipart })), [stage, zip], object, signal, () => {
      streamed = performance.now();
      // One snapshot serves the plan and the rows; a difference is a bug, and a wrong file must not be delivered.
      const expected = xlsx ? sheetNames : plan.files;
      if (stage.rows !== plan.rows || files().join('/') !== expected.join('/')) {
        throw new Error(`Exported ${stage.rows} rows in ${files().length} parts but planned ${plan.rows} in ${plan.files.length}`);
      }
    });
    const truncatedCells = 'truncatedCells' in stage ? stage.truncatedCells : 0;
    if (truncatedCells > 0) {
      logger.warn({ truncatedCells }, `${truncatedCells} cells were longer than Excel's 32,767 characters and were cut, ending in …[truncated]`);
    }
    const seconds = secondsSince(started);
    logger.info(
      {
        uri: stored.uri,
        rows: stage.rows,
        files: files().length,
        bytes: stored.bytes,
        ...xlsxFields(truncatedCells),
        seconds,
        planSeconds,
        // Storing the object for good: the last upload request to Cloud Storage, a rename locally.
        commitSeconds: secondsSince(streamed),
        rowsPerSecond: Math.round(stage.rows / Math.max(seconds, 0.001)),
      },
      'conversation export finished',
    );
    const summary: ConversationExportSummary = {
      requestId: request.requestId,
      kind: 'conversations',
      uri: stored.uri,
      rows: stage.rows,
      files: [...files()],
      bytes: stored.bytes,
      ...xlsxFields(truncatedCells),
    };
    return { summary, stored, resolved, reused: false };
  });
}
