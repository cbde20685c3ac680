import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runConversationExport, type ConversationExportSummary } from '../jobs/conversations/job.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { FileOutputTarget } from '../sinks/file.js';
import { CONVERSATION_HEADERS } from '../transforms/conversation-row.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations, parseCsv, silentLogger, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { convertSheetsWithLibreOffice, readWithExceljs, readWithOpenpyxl, type ReadSheet, type TypedCell } from './support/xlsx-readers.js';

const db = useTestDatabase();
beforeAll(() => loadFixture(db.pool));

const request = { merchantId: 1, from: '2026-09-01', to: '2026-10-31' };

/** The type each conversation column has in the workbook (by header). */
const NUMBER_COLUMNS = new Set(['Chat ID', 'Merchant ID', 'Contact ID', 'Agent ID']);
const DATE_COLUMNS = new Set(['Chat Created At', 'Message Created At', 'Opened at', 'Picked up at', 'Closed at']);

/** What a reader must give for a CSV cell (formula guard off, so the texts are the raw ones). */
function expectedCell(header: string, csvCell: string): TypedCell {
  if (csvCell === '') return null;
  if (NUMBER_COLUMNS.has(header)) return { type: 'number', text: csvCell };
  if (DATE_COLUMNS.has(header)) return { type: 'date', text: csvCell };
  if (header === 'Message Incoming') return { type: 'boolean', text: csvCell };
  return { type: 'string', text: csvCell };
}

function expectedSheet(csvRows: string[][]): TypedCell[][] {
  const [header, ...rows] = csvRows;
  return [header!.map((name) => ({ type: 'string', text: name }) as TypedCell), ...rows.map((row) => row.map((cell, index) => expectedCell(header![index]!, cell)))];
}

async function exportWorkbook(extra: object): Promise<{ summary: ConversationExportSummary; path: string }> {
  const directory = await temporaryDirectory();
  const { summary } = await runConversationExport(parseConversationRequest({ ...request, format: 'xlsx', ...extra }), {
    pool: db.pool,
    output: new FileOutputTarget(directory),
    signal: new AbortController().signal,
    logger: silentLogger,
  });
  return { summary, path: fileURLToPath(summary.uri) };
}

describe('XLSX conversation export, read back by independent readers', () => {
  let csvParts: string[][][];
  let workbook: { summary: ConversationExportSummary; path: string };
  beforeAll(async () => {
    const csv = await exportConversations(db.pool, { ...request, requestId: 'readers-csv', csv: { formulaGuard: false } });
    csvParts = [...csv.csvFiles.values()].map(parseCsv);
    workbook = await exportWorkbook({ requestId: 'readers-xlsx' });
  });

  it('is one .xlsx workbook named like the zip, summarised with its sheets', () => {
    expect(workbook.path).toMatch(/\/conversations_merchant-1_2026-09-01_2026-10-31_readers-xlsx\.xlsx$/);
    expect(workbook.summary).toMatchObject({ kind: 'conversations', format: 'xlsx', files: ['Conversations'], truncatedCells: 0 });
    expect(workbook.summary.rows).toBe(csvParts[0]!.length - 1);
  });

  const readers: [string, (path: string) => Promise<ReadSheet[]>][] = [
    ['exceljs', readWithExceljs],
    ['openpyxl', readWithOpenpyxl],
  ];
  for (const [name, read] of readers) {
    it(`${name}: every cell has the CSV's value, with its type`, async () => {
      const sheets = await read(workbook.path);
      expect(sheets.map((sheet) => sheet.name)).toEqual(['Conversations']);
      expect(sheets[0]!.rows).toEqual(expectedSheet(csvParts[0]!));
      expect(sheets[0]!.rows[0]!.map((cell) => cell?.text)).toEqual(CONVERSATION_HEADERS);
    });
  }

  it('LibreOffice converts it to the same CSV cells', async () => {
    const sheets = await convertSheetsWithLibreOffice(workbook.path, ['Conversations']);
    const rows = parseCsv(sheets.get('Conversations')!);
    // LibreOffice shows a boolean as TRUE / FALSE; everything else as our CSV writes it.
    const incoming = CONVERSATION_HEADERS.indexOf('Message Incoming');
    expect(rows.map((row) => row.map((cell, index) => (index === incoming && rows.indexOf(row) > 0 ? cell.toLowerCase() : cell)))).toEqual(csvParts[0]);
  }, 180_000);
});
