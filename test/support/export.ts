import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import type pg from 'pg';
import pino from 'pino';
import { runConversationExport, type ConversationExportSummary } from '../../jobs/conversations/job.js';
import { parseConversationRequest } from '../../jobs/conversations/request.js';
import { FileOutputTarget } from '../../sinks/file.js';
import { readZip } from './zip.js';

/** A logger that drops everything, for library-level tests. */
export const silentLogger = pino({ level: 'silent' });

/** A fresh empty folder under the system's temporary directory. */
export async function temporaryDirectory(prefix = 'audit-export-test-'): Promise<string> {
  return await mkdtemp(join(tmpdir(), prefix));
}

/** Every file name in a folder, hidden ones included, sorted. */
export async function listFiles(directory: string): Promise<string[]> {
  return (await readdir(directory)).sort();
}

/** The result of {@link exportConversations}: the summary and the zip's CSV files, read back. */
export interface ExportResult {
  readonly summary: ConversationExportSummary;
  readonly csvFiles: Map<string, Buffer>;
}

/** Runs a conversation export of `request` into a new temporary folder and reads the zip back. */
export async function exportConversations(pool: pg.Pool, request: unknown): Promise<ExportResult> {
  const directory = await temporaryDirectory();
  const { summary } = await runConversationExport(parseConversationRequest(request), {
    pool,
    output: new FileOutputTarget(directory),
    signal: new AbortController().signal,
    logger: silentLogger,
  });
  return { summary, csvFiles: await readZip(fileURLToPath(summary.uri)) };
}

/** Parses one CSV file of an export (BOM allowed) into rows of cells, header included. */
export function parseCsv(bytes: Buffer): string[][] {
  return parse(bytes, { bom: true, relaxColumnCount: false }) as string[][];
}
