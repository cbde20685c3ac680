import type pg from 'pg';
import type { Logger } from 'pino';
import { secondsSince } from '../config/logs.js';
import { buildAnnouncement } from '../pipeline/announce.js';
import type { ProgressUpdate } from '../pipeline/progress.js';
import type { OutputTarget } from '../sinks/output.js';
import type { ReadyAnnouncement } from './announcement.js';
import { runConversationExport, type ConversationExportSummary } from './conversations/job.js';
import { boundText } from './request-fields.js';
import type { ExportRequest } from './requests.js';
import { runStopSlotsReport, type StopSlotsSummary } from './stop-slots/job.js';

/** One stored file of a request: what announcing it needs (kept in the state table too). */
export interface StoredReport {
  readonly uri: string;
  readonly bytes: number;
  readonly rows: number;
  readonly files: readonly string[];
  readonly gcs?: { readonly bucket: string; readonly object: string; readonly generation: string };
  /** Set for reports with one file per bot. */
  readonly botId?: string;
  readonly botName?: string;
}

/** What a request's report run stored, whatever its kind. */
export interface ReportResult {
  /** The kind's JSON summary line. */
  readonly summary: ConversationExportSummary | StopSlotsSummary;
  readonly reports: readonly StoredReport[];
  /** The zone the request was resolved in. */
  readonly timezone: string;
}

/** What a report runs with. */
export interface ReportContext {
  readonly pool: pg.Pool;
  readonly output: OutputTarget;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Told how far the report is (rows written; the rows expected or the bots done, when known). */
  readonly onProgress?: (update: ProgressUpdate) => void;
}

/** Runs the request's report kind (the one place that dispatches on it) and describes what it stored. */
export async function runReport(request: ExportRequest, context: ReportContext): Promise<ReportResult> {
  if (request.kind === 'stop-slots') {
    const result = await runStopSlotsReport(request, context);
    return {
      summary: result.summary,
      timezone: result.timezone,
      reports: result.reports.map((report) => ({
        uri: report.stored.uri,
        bytes: report.stored.bytes,
        rows: report.rows,
        files: [report.stored.uri.split('/').pop() ?? ''],
        ...(report.stored.gcs === undefined ? {} : { gcs: report.stored.gcs }),
        botId: report.botId,
        botName: report.botName,
      })),
    };
  }
  const result = await runConversationExport(request, context);
  return {
    summary: result.summary,
    timezone: result.resolved.timezone,
    reports: [
      {
        uri: result.summary.uri,
        bytes: result.summary.bytes,
        rows: result.summary.rows,
        files: result.summary.files,
        ...(result.stored.gcs === undefined ? {} : { gcs: result.stored.gcs }),
      },
    ],
  };
}

/** The ready announcements of a request's stored reports: one per file (per bot for stop-slots). */
export function reportAnnouncements(
  request: ExportRequest,
  reports: readonly StoredReport[],
  timezone: string | undefined,
  createdAt: Date,
): ReadyAnnouncement[] {
  const filters: Record<string, readonly string[]> =
    request.kind === 'conversations' ? { ...request.filters } : { botIds: request.botIds };
  return reports.map((report) =>
    buildAnnouncement(
      {
        requestId: request.requestId,
        kind: request.kind,
        merchantId: request.merchantId,
        recipients: request.recipients,
        locale: request.locale,
        parameters: { from: boundText(request.from), to: boundText(request.to), timezone: timezone ?? request.timezone ?? '', filters },
        ...(report.botId === undefined ? {} : { report: { botId: report.botId, botName: report.botName ?? '' } }),
      },
      { uri: report.uri, bytes: report.bytes, ...(report.gcs === undefined ? {} : { gcs: report.gcs }) },
      { rows: report.rows, files: report.files },
      createdAt,
    ),
  );
}

/**
 * Publishes the ready announcements of a request's stored reports one after the other, each
 * awaited (the server accepted it) before the next, and logs `export announced` for each.
 */
export async function announceReports(
  request: ExportRequest,
  reports: readonly StoredReport[],
  timezone: string | undefined,
  announce: (announcement: ReadyAnnouncement) => Promise<string>,
  log: Logger,
): Promise<void> {
  for (const announcement of reportAnnouncements(request, reports, timezone, new Date())) {
    const started = performance.now();
    const messageId = await announce(announcement);
    log.info(
      {
        messageId,
        recipients: request.recipients.length,
        ...(announcement.report === undefined ? {} : { botId: announcement.report.botId }),
        seconds: secondsSince(started),
      },
      'export announced',
    );
  }
}
