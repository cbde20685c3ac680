/**
 * `format: xlsx` end to end apart from the cell values (test/xlsx-readers.test.ts): the request
 * field and flag, identity and coalescing, the workbook's layout (sheets, header, panes, filter,
 * widths), stop-slots workbooks and the e-mail's format line.
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import ExcelJS from 'exceljs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runConversationExport } from '../jobs/conversations/job.js';
import { conversationRequestIdentity, parseConversationRequest } from '../jobs/conversations/request.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { renderDownloadEmail, type DownloadLink } from '../jobs/mailer/templates.js';
import { differingFields } from '../jobs/requests.js';
import { runStopSlotsReport } from '../jobs/stop-slots/job.js';
import { parseStopSlotsRequest, stopSlotsRequestIdentity } from '../jobs/stop-slots/request.js';
import { FileOutputTarget } from '../sinks/file.js';
import { CONVERSATION_HEADERS } from '../transforms/conversation-row.js';
import { readyAnnouncement } from './support/announcement.js';
import { runCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations, parseCsv, silentLogger, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { convertSheetsWithLibreOffice, readWithExceljs } from './support/xlsx-readers.js';

const db = useTestDatabase();
beforeAll(() => loadFixture(db.pool));

const base = { merchantId: 1, from: '2026-09-01', to: '2026-10-31' };

describe('the format field', () => {
  it('defaults to csv and takes xlsx', () => {
    expect(parseConversationRequest(base).format).toBe('csv');
    expect(parseConversationRequest({ ...base, format: 'xlsx' }).format).toBe('xlsx');
    expect(parseStopSlotsRequest({ ...base, kind: 'stop-slots' }).format).toBe('csv');
    expect(parseStopSlotsRequest({ ...base, kind: 'stop-slots', format: 'xlsx' }).format).toBe('xlsx');
  });

  it.each([['pdf'], ['XLSX'], [3], [null], [['xlsx']], ['']])('rejects %j naming the field', (format) => {
    for (const parse of [() => parseConversationRequest({ ...base, format }), () => parseStopSlotsRequest({ ...base, kind: 'stop-slots', format })]) {
      expect(parse).toThrow(InvalidRequestError);
      expect(parse).toThrow(/^format: expected one of csv, xlsx/);
    }
  });

  it("leaves a CSV request's identity as it was before formats existed, and tells xlsx apart", () => {
    // Pinned: identities (and coalescing hashes) stored before this field must still match.
    const request = parseConversationRequest({ ...base, requestId: 'r', recipients: ['B@example.com'] });
    expect(conversationRequestIdentity(request)).toBe(
      '["conversations","1","2026-09-01","2026-10-31",null,[],[],[],[],true,true,1000000,["b@example.com"],"en"]',
    );
    const xlsx = parseConversationRequest({ ...base, requestId: 'r', recipients: ['B@example.com'], format: 'xlsx' });
    expect(conversationRequestIdentity(xlsx)).not.toBe(conversationRequestIdentity(request));
    expect(differingFields(request, xlsx)).toEqual(['format']);
    expect(differingFields(xlsx, request)).toEqual(['format']);
    const slots = parseStopSlotsRequest({ ...base, kind: 'stop-slots' });
    const slotsXlsx = parseStopSlotsRequest({ ...base, kind: 'stop-slots', format: 'xlsx' });
    expect(stopSlotsRequestIdentity(slotsXlsx)).not.toBe(stopSlotsRequestIdentity(slots));
    expect(stopSlotsRequestIdentity(slots)).not.toContain('csv');
  });

  it('--format pdf exits 2 naming --format, with nothing written', async () => {
    for (const command of [['export', 'conversations'], ['export', 'stop-slots']]) {
      const out = await temporaryDirectory();
      const result = await runCli([...command, '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-31', '--out', `file://${out}`, '--format', 'pdf'], {
        DATABASE_URL: db.url,
      });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/--format: expected one of csv, xlsx, got "pdf"/);
      expect(await readdir(out)).toEqual([]);
    }
    const out = await temporaryDirectory();
    const backfill = await runCli(['backfill', '--from', '2026-09-01', '--to', '2026-10-01', '--out', `file://${out}`, '--format', 'ods'], { DATABASE_URL: db.url });
    expect(backfill.code, backfill.stderr).toBe(2);
    expect(backfill.stderr).toMatch(/--format: expected csv or xlsx, got "ods"/);
  });

  it('--format xlsx through the CLI writes the workbook and says so in the summary line', async () => {
    const out = await temporaryDirectory();
    const result = await runCli(
      ['export', 'conversations', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-31', '--out', `file://${out}`, '--format', 'xlsx', '--request-id', 'cli-xlsx', '--no-progress'],
      { DATABASE_URL: db.url },
    );
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(summary).toMatchObject({ kind: 'conversations', format: 'xlsx', files: ['Conversations'], truncatedCells: 0, rows: 10 });
    expect(await readdir(out)).toEqual(['conversations_merchant-1_2026-09-01_2026-10-31_cli-xlsx.xlsx']);
  });
});

describe('workbook layout', () => {
  it('splits into sheets Part 1, Part 2, ... between chats exactly as the CSV parts, each with the header', async () => {
    const csv = await exportConversations(db.pool, { ...base, requestId: 'split-csv', csv: { rowsPerFile: 3, formulaGuard: false } });
    const parts = [...csv.csvFiles.values()].map(parseCsv);
    expect(parts.length).toBeGreaterThan(2);
    const directory = await temporaryDirectory();
    const { summary } = await runConversationExport(parseConversationRequest({ ...base, requestId: 'split-xlsx', format: 'xlsx', csv: { rowsPerFile: 3 } }), {
      pool: db.pool,
      output: new FileOutputTarget(directory),
      signal: new AbortController().signal,
      logger: silentLogger,
    });
    const names = parts.map((_, index) => `Part ${index + 1}`);
    expect(summary.files).toEqual(names);
    const path = fileURLToPath(summary.uri);
    const sheets = await readWithExceljs(path);
    expect(sheets.map((sheet) => sheet.name)).toEqual(names);
    for (const [index, sheet] of sheets.entries()) {
      expect(sheet.rows.length).toBe(parts[index]!.length);
      expect(sheet.rows[0]!.map((cell) => cell?.text)).toEqual(CONVERSATION_HEADERS);
      // Same chats in the same sheet as in the CSV part.
      expect(sheet.rows.slice(1).map((row) => row[0]?.text)).toEqual(parts[index]!.slice(1).map((row) => row[0]));
    }
    const libre = await convertSheetsWithLibreOffice(path, names);
    const incoming = CONVERSATION_HEADERS.indexOf('Message Incoming');
    for (const [index, name] of names.entries()) {
      const rows = parseCsv(libre.get(name)!).map((row, r) => row.map((cell, c) => (r > 0 && c === incoming ? cell.toLowerCase() : cell)));
      expect(rows).toEqual(parts[index]);
    }
  }, 180_000);

  it('has a bold, frozen header with an autofilter, wrapped multi-line cells and widths from the first rows', async () => {
    const directory = await temporaryDirectory();
    const { summary } = await runConversationExport(parseConversationRequest({ ...base, requestId: 'layout', format: 'xlsx' }), {
      pool: db.pool,
      output: new FileOutputTarget(directory),
      signal: new AbortController().signal,
      logger: silentLogger,
    });
    const workbook = new ExcelJS.Workbook();
    await workbook.xlsx.readFile(fileURLToPath(summary.uri));
    const sheet = workbook.worksheets[0]!;
    expect(sheet.views[0]).toMatchObject({ state: 'frozen', ySplit: 1, topLeftCell: 'A2' });
    expect(sheet.autoFilter).toBe('A1:AA11');
    for (let column = 1; column <= CONVERSATION_HEADERS.length; column++) expect(sheet.getRow(1).getCell(column).font?.bold).toBe(true);
    // Row 2's contact message holds a line break: wrapped; a one-line cell is not.
    const contact = sheet.getRow(2).getCell(CONVERSATION_HEADERS.indexOf('Message Contact') + 1);
    expect(contact.value).toBe('Hola, "amigo"\nline2');
    expect(contact.alignment?.wrapText).toBe(true);
    expect(sheet.getRow(2).getCell(CONVERSATION_HEADERS.indexOf('Provider') + 1).alignment?.wrapText).toBeFalsy();
    const created = sheet.getRow(2).getCell(CONVERSATION_HEADERS.indexOf('Chat Created At') + 1);
    expect(created.numFmt).toBe('yyyy-mm-dd hh:mm:ss');
    // Widths: the header or the widest first-row text, plus a margin; dates fit their 19 characters.
    expect(sheet.getColumn(CONVERSATION_HEADERS.indexOf('Chat Created At') + 1).width).toBe(21);
    expect(sheet.getColumn(CONVERSATION_HEADERS.indexOf('Contact Identification') + 1).width).toBe('Contact Identification'.length + 2);
    expect(sheet.getColumn(CONVERSATION_HEADERS.indexOf('Message Incoming') + 1).width).toBe('Message Incoming'.length + 2);
  });

  it('keeps phone numbers and identification numbers as text (no lost + or leading zero), ids as numbers', async () => {
    await db.pool.query(`INSERT INTO contacts (id, merchant_id, name, identification, phone_number, mobile_number) VALUES (77, 1, 'Zero', '000123', '+57 300 123 4567', '0301234567')`);
    await db.pool.query(`INSERT INTO chats (id, merchant_id, provider, contact_id, status, created_at, closed_at) VALUES (7700, 1, 'web', 77, 'CLOSED', '2026-10-20T10:00:00Z', '2026-10-20T11:00:00Z')`);
    await db.pool.query(`INSERT INTO messages (id, chat_id, created_at, sender, type, body) VALUES (77000, 7700, '2026-10-20T10:00:01Z', 'contact', 'text', 'hi')`);
    const directory = await temporaryDirectory();
    const { summary } = await runConversationExport(
      parseConversationRequest({ ...base, from: '2026-10-20', to: '2026-10-21', requestId: 'phones', format: 'xlsx' }),
      { pool: db.pool, output: new FileOutputTarget(directory), signal: new AbortController().signal, logger: silentLogger },
    );
    const [sheet] = await readWithExceljs(fileURLToPath(summary.uri));
    const row = sheet!.rows[1]!;
    const at = (header: string): unknown => row[CONVERSATION_HEADERS.indexOf(header as (typeof CONVERSATION_HEADERS)[number])];
    expect(at('Contact Identification')).toEqual({ type: 'string', text: '000123' });
    expect(at('Contact Phone Number')).toEqual({ type: 'string', text: '+57 300 123 4567' });
    expect(at('Contact Mobile Number')).toEqual({ type: 'string', text: '0301234567' });
    expect(at('Chat ID')).toEqual({ type: 'number', text: '7700' });
    expect(at('Duration')).toEqual({ type: 'string', text: '00:01:00:00' });
  });
});

describe('stop-slots as XLSX', () => {
  it('one workbook per bot: typed cells, Share shown with two decimals, content type of a workbook', async () => {
    const directory = await temporaryDirectory();
    const { summary } = await runStopSlotsReport(parseStopSlotsRequest({ ...base, kind: 'stop-slots', requestId: 'slots-xlsx', format: 'xlsx' }), {
      pool: db.pool,
      output: new FileOutputTarget(directory),
      signal: new AbortController().signal,
      logger: silentLogger,
    });
    const csvDirectory = await temporaryDirectory();
    const csv = await runStopSlotsReport(parseStopSlotsRequest({ ...base, kind: 'stop-slots', requestId: 'slots-csv', csv: { formulaGuard: false } }), {
      pool: db.pool,
      output: new FileOutputTarget(csvDirectory),
      signal: new AbortController().signal,
      logger: silentLogger,
    });
    expect(summary.reports.length).toBe(csv.summary.reports.length);
    expect(summary).toMatchObject({ format: 'xlsx', truncatedCells: 0 });
    for (const [index, report] of summary.reports.entries()) {
      expect(report.uri).toMatch(/_slots-xlsx\.xlsx$/);
      const csvRows = parseCsv(await readFile(fileURLToPath(csv.summary.reports[index]!.uri)));
      const [sheet] = await readWithExceljs(fileURLToPath(report.uri));
      expect(sheet!.name).toBe('Stop slots');
      const expected = csvRows.map((row, r) =>
        row.map((cell, c) => (cell === '' ? null : r === 0 || c === 1 || c === 2 ? { type: 'string', text: cell } : { type: 'number', text: String(Number(cell)) })),
      );
      expect(sheet!.rows).toEqual(expected);
      const libre = await convertSheetsWithLibreOffice(fileURLToPath(report.uri), ['Stop slots']);
      expect(parseCsv(libre.get('Stop slots')!)).toEqual(csvRows);
    }
    const workbook = new ExcelJS.Workbook();
    await workbook.xlsx.readFile(fileURLToPath(summary.reports[0]!.uri));
    expect(workbook.worksheets[0]!.getRow(2).getCell(5).numFmt).toBe('0.00');
  }, 120_000);
});

describe("the e-mail's format line", () => {
  const link: DownloadLink = { url: 'https://storage.example.test/a', expiresAt: new Date('2026-09-08T00:00:00Z') };
  it.each([
    ['en', 'x.xlsx', 'Format: Excel workbook (.xlsx)'],
    ['en', 'x.zip', 'Format: CSV (zipped)'],
    ['en', 'x.csv', 'Format: CSV'],
    ['es', 'x.xlsx', 'Formato: Libro de Excel (.xlsx)'],
    ['pt', 'x.zip', 'Formato: CSV (compactado em zip)'],
  ])('%s, %s: %s', (locale, object, line) => {
    const email = renderDownloadEmail(readyAnnouncement({ locale, object }), link, { brand: 'B2Chat' });
    expect(email.text.split('\n')).toContain(line);
    const [label, value] = line.split(': ') as [string, string];
    expect(email.html).toContain(`${label}:</th><td style="padding:4px 12px 4px 0;vertical-align:top;text-align:left">${value}</td>`);
  });
});

