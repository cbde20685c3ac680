/**
 * Hostile source data: whatever the platform's users typed, the export stays correct and
 * spreadsheet-safe. Every value of the catalogue (test/support/hostile.ts) goes into every free-text
 * column of the source tables; the export is read back with two independent CSV readers (csv-parse
 * and Python's csv module) and compared cell by cell with what README's rules say it must hold.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { beforeAll, describe, expect, it } from 'vitest';
import { copyLine } from '../db/copy-text.js';
import { runConversationExport, type ConversationExportSummary } from '../jobs/conversations/job.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { runStopSlotsReport } from '../jobs/stop-slots/job.js';
import { parseStopSlotsRequest } from '../jobs/stop-slots/request.js';
import { FileOutputTarget } from '../sinks/file.js';
import { CONVERSATION_HEADERS } from '../transforms/conversation-row.js';
import { XLSX_MAX_CELL_CHARS, XLSX_TRUNCATION_MARKER } from '../transforms/xlsx.js';
import { CLI_PATH } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations, silentLogger, temporaryDirectory } from './support/export.js';
import {
  expectedPhone,
  expectedText,
  FORMULA_START,
  HOSTILE_CASES,
  PLAIN_PHONE,
  readWithCsvParse,
  readWithPython,
} from './support/hostile.js';
import { convertSheetsWithLibreOffice, readWithExceljs, readWithOpenpyxl, type ReadSheet, type TypedCell } from './support/xlsx-readers.js';

const db = useTestDatabase();

// ---------------------------------------------------------------------------------------------
// A small model of the source rows: the same objects are inserted and turned into expected cells.

interface Contact {
  readonly id: number;
  readonly identification: string | null;
  readonly name: string | null;
  readonly email: string | null;
  readonly phone: string | null;
  readonly mobile: string | null;
}

interface Agent {
  readonly id: number;
  readonly name: string;
  readonly username: string;
  readonly email: string | null;
}

interface Bot {
  readonly id: number;
  readonly name: string;
}

interface Chat {
  readonly id: number;
  readonly merchantId: number;
  readonly provider: string;
  readonly alias: string | null;
  readonly contact: Contact;
  readonly agent: Agent | null;
  readonly bot: Bot | null;
  /** Milliseconds since the epoch; merchants here are in UTC. */
  readonly created: number;
  readonly closed: number;
}

interface Message {
  readonly id: number;
  readonly chat: Chat;
  readonly created: number;
  readonly sender: 'contact' | 'agent' | 'bot';
  readonly type: 'text' | 'image';
  readonly body: string | null;
  readonly mediaUrl: string | null;
  readonly caption: string | null;
}

const SEPT_1 = Date.UTC(2026, 8, 1);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const MiB = 1024 * 1024;

function localTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
}

function duration(chat: Chat): string {
  const seconds = Math.trunc((chat.closed - chat.created) / 1000);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${pad(Math.floor(seconds / 86_400))}:${pad(Math.floor(seconds / 3600) % 24)}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}`;
}

/** The 27 cells README promises for one message, from the source values alone. */
function expectedRecord(message: Message, guard: boolean): string[] {
  const { chat } = message;
  const t = (value: string | null): string => expectedText(value, guard);
  const p = (value: string | null): string => expectedPhone(value, guard);
  const incoming = message.sender === 'contact';
  const content = message.type === 'text' ? message.body : message.mediaUrl;
  return [
    String(chat.id),
    String(chat.merchantId),
    t(chat.provider),
    localTime(chat.created),
    localTime(message.created),
    String(chat.contact.id),
    t(chat.contact.identification),
    t(chat.contact.name),
    t(chat.contact.email),
    p(chat.contact.phone),
    p(chat.contact.mobile),
    chat.agent === null ? '' : String(chat.agent.id),
    t(chat.agent?.name ?? null),
    t(chat.agent?.username ?? null),
    t(chat.agent?.email ?? null),
    incoming ? 'true' : 'false',
    incoming ? t(content) : '',
    incoming ? '' : t(content),
    message.type,
    t(message.caption),
    t(chat.alias),
    t(chat.bot?.name ?? null),
    'CLOSED',
    localTime(chat.created),
    '',
    localTime(chat.closed),
    duration(chat),
  ];
}

/** Inserts the model with parameterized statements (binary-safe: no SQL text holds a value). */
async function insertChats(pool: pg.Pool, messages: readonly Message[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const seen = new Set<string>();
    const once = (key: string): boolean => {
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    };
    for (const { chat } of messages) {
      const { contact, agent, bot } = chat;
      if (once(`contact ${contact.id}`)) {
        await client.query(
          `INSERT INTO contacts (id, merchant_id, identification, name, email, phone_number, mobile_number) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [contact.id, chat.merchantId, contact.identification, contact.name, contact.email, contact.phone, contact.mobile],
        );
      }
      if (agent !== null && once(`agent ${agent.id}`)) {
        await client.query(`INSERT INTO agents (id, merchant_id, name, username, email) VALUES ($1, $2, $3, $4, $5)`, [
          agent.id, chat.merchantId, agent.name, agent.username, agent.email,
        ]);
      }
      if (bot !== null && once(`bot ${bot.id}`)) {
        await client.query(`INSERT INTO bots (id, merchant_id, name) VALUES ($1, $2, $3)`, [bot.id, chat.merchantId, bot.name]);
      }
      if (once(`chat ${chat.id}`)) {
        await client.query(
          `INSERT INTO chats (id, merchant_id, provider, alias, contact_id, agent_id, bot_id, status, created_at, opened_at, closed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'CLOSED', $8, $8, $9)`,
          [chat.id, chat.merchantId, chat.provider, chat.alias, contact.id, agent?.id ?? null, bot?.id ?? null, new Date(chat.created), new Date(chat.closed)],
        );
      }
    }
    for (const message of messages) {
      await client.query(
        `INSERT INTO messages (id, chat_id, created_at, sender, type, body, media_url, caption) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [message.id, message.chat.id, new Date(message.created), message.sender, message.type, message.body, message.mediaUrl, message.caption],
      );
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

async function insertMerchant(pool: pg.Pool, id: number): Promise<void> {
  await pool.query(`INSERT INTO merchants (id, name, timezone) VALUES ($1, $2, 'UTC')`, [id, `Merchant ${id}`]);
}

/** Both readers must see the same records; returns csv-parse's. */
async function readBoth(files: readonly Buffer[]): Promise<string[][][]> {
  const byCsvParse = files.map(readWithCsvParse);
  const byPython = await readWithPython(files);
  expect(byPython.length).toBe(byCsvParse.length);
  for (const [index, records] of byCsvParse.entries()) {
    // Compared record by record: a whole-file diff of megabyte cells is unreadable.
    expect(byPython[index]!.length, `records read by Python in file ${index}`).toBe(records.length);
    for (const [row, cells] of records.entries()) {
      if (JSON.stringify(byPython[index]![row]) !== JSON.stringify(cells)) {
        expect.fail(`file ${index}, record ${row}: Python's csv module and csv-parse disagree`);
      }
    }
  }
  return byCsvParse;
}

/** Compares records without printing megabytes: names the first differing row and column. */
function expectRecords(actual: readonly (readonly string[])[], expected: readonly (readonly string[])[]): void {
  expect(actual.length).toBe(expected.length);
  for (const [row, cells] of actual.entries()) {
    expect(cells.length, `cells in record ${row}`).toBe(CONVERSATION_HEADERS.length);
    for (const [column, cell] of cells.entries()) {
      const want = expected[row]![column]!;
      if (cell !== want) {
        const show = (text: string): string => JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}… (${text.length} chars)` : text);
        expect.fail(`record ${row}, column ${CONVERSATION_HEADERS[column] ?? column}: got ${show(cell)}, expected ${show(want)}`);
      }
    }
  }
}

/** Bytes of a file that no spreadsheet would split differently from the CSV readers. */
function expectCleanRecordEnds(bytes: Buffer): void {
  const text = bytes.toString('utf8');
  expect(text.endsWith('\r\n')).toBe(true);
  // A CR inside a cell is normalised away, so every CR is a record end.
  expect(/\r(?!\n)/.test(text)).toBe(false);
}

// ---------------------------------------------------------------------------------------------
// Merchant 1: the catalogue, one chat per hostile value, the value in every free-text column.

const CATALOGUE_MERCHANT = 1;
const CATALOGUE_BASE = 10_000;

function catalogueMessages(): Message[] {
  const messages: Message[] = [];
  for (const [index, { value }] of HOSTILE_CASES.entries()) {
    const id = CATALOGUE_BASE + index;
    const created = SEPT_1 + index * MINUTE;
    const chat: Chat = {
      id,
      merchantId: CATALOGUE_MERCHANT,
      provider: value,
      alias: value,
      contact: { id, identification: value, name: value, email: value, phone: value, mobile: value },
      agent: { id, name: value, username: value, email: value },
      bot: { id, name: value },
      created,
      closed: created + HOUR,
    };
    // An incoming text (body and caption) and an outgoing image (media URL and caption).
    messages.push(
      { id: 2 * id, chat, created: created + 1000, sender: 'contact', type: 'text', body: value, mediaUrl: 'ignored', caption: value },
      { id: 2 * id + 1, chat, created: created + 2000, sender: 'agent', type: 'image', body: 'ignored', mediaUrl: value, caption: value },
    );
  }
  // Ids are bigint: they may be negative, and are numbers, never formulas.
  const negative: Chat = {
    id: -1,
    merchantId: CATALOGUE_MERCHANT,
    provider: 'whatsapp',
    alias: null,
    contact: { id: -5, identification: null, name: 'Negative', email: null, phone: '-5', mobile: null },
    agent: { id: -7, name: 'Agent -7', username: '-7', email: null },
    bot: null,
    created: SEPT_1 + HOSTILE_CASES.length * MINUTE,
    closed: SEPT_1 + HOSTILE_CASES.length * MINUTE + 90 * 1000,
  };
  messages.push({ id: -2, chat: negative, created: negative.created, sender: 'contact', type: 'text', body: '-2', mediaUrl: null, caption: null });
  return messages;
}

// ---------------------------------------------------------------------------------------------
// Merchant 4: megabyte bodies, several in a row, and one chat with many.

const BIG_MERCHANT = 4;

function toBytes(pattern: string, bytes: number): string {
  return pattern.repeat(Math.ceil(bytes / Buffer.byteLength(pattern)));
}

const BIG_BODIES = {
  mixed: '=' + toBytes('a,b;"c"\r\nd\re\tf\\N\\\\ \u{1F1E8}\u{1F1F4}\u{1F468}\u200D\u{1F469}\u200D\u{1F467} e\u0301 مرحبا \u2028 ', MiB),
  emoji: toBytes('\u{1F44D}\u{1F3FD}', MiB), // 4-byte UTF-8 throughout
  backslashes: toBytes('\\', MiB), // twice as long on the COPY wire
  quotes: toBytes('"', MiB), // twice as long in the CSV
  carriageReturns: toBytes('a\r', MiB), // every break is a lone CR
  lineFeeds: toBytes('\n', MiB), // starts with LF: guarded
} as const;

function bigMessages(): Message[] {
  const contact = (id: number, name: string): Contact => ({ id, identification: '-' + 'x'.repeat(9999), name, email: null, phone: '+57 300 123 4567', mobile: null });
  const agent: Agent = { id: 40_000, name: '@' + 'a'.repeat(9999), username: 'big', email: null };
  const chat = (id: number, minute: number, name: string): Chat => ({
    id,
    merchantId: BIG_MERCHANT,
    provider: 'whatsapp',
    alias: null,
    contact: contact(id, name),
    agent,
    bot: null,
    created: SEPT_1 + minute * MINUTE,
    closed: SEPT_1 + minute * MINUTE + 2 * HOUR,
  });
  const many = Object.values(BIG_BODIES);
  const a = chat(40_001, 0, 'Ana '.repeat(2500));
  const c = chat(40_002, 1, '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}'.repeat(910));
  const b = chat(40_003, 2, '=' + 'x'.repeat(9999));
  let id = 400_000;
  const message = (of: Chat, index: number, body: string): Message => ({
    id: (id += 1),
    chat: of,
    created: of.created + (index + 1) * 1000,
    sender: index % 2 === 0 ? 'contact' : 'agent',
    type: 'text',
    body,
    mediaUrl: null,
    caption: null,
  });
  return [
    // Chat A: five different megabyte bodies in a row.
    ...many.slice(0, 5).map((body, index) => message(a, index, body)),
    // Chat C: one, continuing A's last part when split.
    message(c, 0, BIG_BODIES.lineFeeds),
    // Chat B: twelve.
    ...Array.from({ length: 12 }, (_, index) => message(b, index, many[index % many.length]!)),
  ];
}

// ---------------------------------------------------------------------------------------------

const catalogue = catalogueMessages();
const big = bigMessages();

beforeAll(async () => {
  for (const merchant of [CATALOGUE_MERCHANT, 2, 3, BIG_MERCHANT, 5]) await insertMerchant(db.pool, merchant);
  await insertChats(db.pool, catalogue);
  await insertChats(db.pool, big);
}, 120_000);

describe('what PostgreSQL text can hold', () => {
  it('refuses NUL in every way it can arrive, so no export ever meets one', async () => {
    await expect(db.pool.query('SELECT $1::text', ['a\u0000b'])).rejects.toThrow(/invalid byte sequence for encoding "UTF8": 0x00/);
    await expect(db.pool.query(`SELECT chr(0)`)).rejects.toThrow(/null character not permitted/);
    await expect(db.pool.query(`SELECT E'a\\u0000b'`)).rejects.toThrow(/invalid Unicode escape value/);
    await expect(db.pool.query(`SELECT E'a\\000b'`)).rejects.toThrow(/invalid byte sequence for encoding "UTF8": 0x00/);
    // The seed's COPY FROM path: the server refuses the line, nothing is stored.
    const client = await db.pool.connect();
    try {
      const copy = client.query(copyFrom(`COPY bots (id, merchant_id, name) FROM STDIN`));
      await expect(pipeline(Readable.from([copyLine([1, 2, 'a\u0000b'])]), copy)).rejects.toThrow(/0x00/);
    } finally {
      client.release(true);
    }
    expect((await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM bots WHERE id = 1`)).rows[0]!.n).toBe(0);
  });

  it('cannot hold a lone surrogate: the driver sends U+FFFD, and the server refuses one spelled out', async () => {
    const { rows } = await db.pool.query<{ value: string }>('SELECT $1::text AS value', ['a\uD800b\uDFFFc']);
    expect(rows[0]!.value).toBe('a\uFFFDb\uFFFDc');
    await expect(db.pool.query(`SELECT E'\\uD800'`)).rejects.toThrow(/invalid Unicode surrogate pair/);
    // U+FFFD and U+FEFF themselves are ordinary characters and are kept.
    const kept = await db.pool.query<{ value: string }>('SELECT $1::text AS value', ['\uFEFF\uFFFD\uFEFF']);
    expect(kept.rows[0]!.value).toBe('\uFEFF\uFFFD\uFEFF');
  });

  it('stores every catalogue value exactly, through parameters and through the COPY text the seed writes', async () => {
    const values = HOSTILE_CASES.map((entry) => entry.value);
    const stored = await db.pool.query<{ name: string }>(
      `SELECT name FROM contacts WHERE merchant_id = $1 AND id >= $2 ORDER BY id`,
      [CATALOGUE_MERCHANT, CATALOGUE_BASE],
    );
    expect(stored.rows.map((row) => row.name)).toEqual(values);

    // db/copy-text.ts escapes for COPY FROM: the same values, loaded as the seed loads rows.
    const client = await db.pool.connect();
    try {
      const copy = client.query(copyFrom(`COPY contacts (id, merchant_id, name, email) FROM STDIN`));
      await pipeline(Readable.from(values.map((value, index) => copyLine([60_000 + index, 3, value, null]))), copy);
    } finally {
      client.release();
    }
    const copied = await db.pool.query<{ name: string; email: string | null }>(`SELECT name, email FROM contacts WHERE merchant_id = 3 ORDER BY id`);
    expect(copied.rows.map((row) => row.name)).toEqual(values);
    expect(copied.rows.every((row) => row.email === null)).toBe(true);
  });
});

describe('conversation export of hostile text in every free-text column', () => {
  const request = { merchantId: CATALOGUE_MERCHANT, from: '2026-09-01', to: '2026-09-02' };

  it('every record has 27 cells and every cell reads back as the source value under the documented rules', async () => {
    const { summary, csvFiles } = await exportConversations(db.pool, { ...request, requestId: 'hostile-guarded' });
    expect(summary.rows).toBe(catalogue.length);
    const bytes = [...csvFiles.values()];
    expect(bytes).toHaveLength(1);
    expectCleanRecordEnds(bytes[0]!);
    const [[header, ...records]] = (await readBoth(bytes)) as [string[][]];
    expect(header).toEqual(CONVERSATION_HEADERS);
    expectRecords(records, catalogue.map((message) => expectedRecord(message, true)));
  });

  it('with the guard on, no free-text cell starts like a formula; only plain phone numbers and ids may start with + or -', async () => {
    const { csvFiles } = await exportConversations(db.pool, { ...request, requestId: 'hostile-safe' });
    const [, ...records] = readWithCsvParse([...csvFiles.values()][0]!);
    const numeric = new Set(['Chat ID', 'Merchant ID', 'Contact ID', 'Agent ID']);
    const phone = new Set(['Contact Phone Number', 'Contact Mobile Number']);
    let guarded = 0;
    let phonesLeftAlone = 0;
    for (const cells of records) {
      for (const [column, cell] of cells.entries()) {
        const name = CONVERSATION_HEADERS[column]!;
        if (numeric.has(name)) {
          expect(cell).toMatch(/^-?[0-9]+$/);
        } else if (phone.has(name) && PLAIN_PHONE.test(cell)) {
          // README: plain phone numbers are left alone. They hold digits, spaces, ( ) . - and one
          // leading +: arithmetic at worst, never a function call or a reference.
          expect(cell).not.toMatch(/[A-Za-z!|"'&$]/);
          if (/^[+-]/.test(cell)) phonesLeftAlone += 1;
        } else {
          expect(FORMULA_START.test(cell), `${name} ${JSON.stringify(cell.slice(0, 40))}`).toBe(false);
          if (cell.startsWith("'")) guarded += 1;
        }
      }
    }
    expect(guarded).toBeGreaterThan(200);
    expect(phonesLeftAlone).toBeGreaterThan(0);
  });

  it('with the guard off, cells hold the source text up to line breaks, nothing added', async () => {
    const { csvFiles } = await exportConversations(db.pool, {
      ...request,
      requestId: 'hostile-unguarded',
      csv: { bom: false, formulaGuard: false },
    });
    const bytes = [...csvFiles.values()];
    expect(bytes[0]!.subarray(0, 7).toString()).toBe('Chat ID');
    expectCleanRecordEnds(bytes[0]!);
    const [[, ...records]] = (await readBoth(bytes)) as [string[][]];
    expectRecords(records, catalogue.map((message) => expectedRecord(message, false)));
  });
});

describe('stop-slots report of hostile slot names and texts', () => {
  const BOT = 9;
  const SLOT_BASE = 30_000;

  beforeAll(async () => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO contacts (id, merchant_id, name) VALUES (30000, 2, 'Slots contact')`);
      await client.query(`INSERT INTO bots (id, merchant_id, name) VALUES ($1, 2, $2)`, [BOT, '=Slots bot']);
      for (const [index, { value }] of HOSTILE_CASES.entries()) {
        const id = SLOT_BASE + index;
        const created = new Date(SEPT_1 + index * MINUTE);
        await client.query(`INSERT INTO bot_slots (id, bot_id, name, text) VALUES ($1, $2, $3, $4)`, [id, BOT, value, value]);
        await client.query(
          `INSERT INTO chats (id, merchant_id, provider, contact_id, bot_id, status, created_at) VALUES ($1, 2, 'web', 30000, $2, 'CLOSED', $3)`,
          [id, BOT, created],
        );
        await client.query(
          `INSERT INTO messages (id, chat_id, created_at, sender, type, body, bot_slot_id) VALUES ($1, $1, $2, 'bot', 'text', $3, $1)`,
          [id, created, value],
        );
      }
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  });

  it('writes 5 cells per record, slot names and texts as the source under the documented rules', async () => {
    for (const guard of [true, false]) {
      const directory = await temporaryDirectory();
      const { summary } = await runStopSlotsReport(
        parseStopSlotsRequest({
          kind: 'stop-slots', merchantId: 2, from: '2026-09-01', to: '2026-09-02', requestId: `slots-${guard}`,
          botIds: [String(BOT)], csv: { formulaGuard: guard },
        }),
        { pool: db.pool, output: new FileOutputTarget(directory), signal: new AbortController().signal, logger: silentLogger },
      );
      const bytes = await readFile(fileURLToPath(summary.reports[0]!.uri));
      expectCleanRecordEnds(bytes);
      const [[header, ...records]] = (await readBoth([bytes])) as [string[][]];
      expect(header).toEqual(['Slot ID', 'Slot Name', 'Slot Text', 'Dialogs', 'Share']);
      // One dialog per slot: rows by slot id, every share the same.
      const share = (Math.round(10_000 / HOSTILE_CASES.length) / 100).toFixed(2);
      const expected = HOSTILE_CASES.map(({ value }, index) => [
        String(SLOT_BASE + index), expectedText(value, guard), expectedText(value, guard), '1', share,
      ]);
      expect(records.length).toBe(expected.length);
      for (const [row, cells] of records.entries()) {
        expect(cells.length).toBe(5);
        expect(cells, `record ${row}`).toEqual(expected[row]);
      }
    }
  });
});

describe('megabyte bodies', () => {
  const request = { merchantId: BIG_MERCHANT, from: '2026-09-01', to: '2026-09-02' };
  const expected = (): string[][] => big.map((message) => expectedRecord(message, true));

  it('round-trip in one file: several in a row, one chat with twelve, 10,000-character names', async () => {
    const { summary, csvFiles } = await exportConversations(db.pool, { ...request, requestId: 'big-one-file' });
    expect(summary.rows).toBe(big.length);
    const bytes = [...csvFiles.values()];
    expect(bytes).toHaveLength(1);
    expect(bytes[0]!.length).toBeGreaterThan(big.length * MiB);
    expectCleanRecordEnds(bytes[0]!);
    const [[, ...records]] = (await readBoth(bytes)) as [string[][]];
    expectRecords(records, expected());
  });

  it('split into parts of 2 rows: megabyte rows on both sides of every boundary, each part whole with its header', async () => {
    const { summary, csvFiles } = await exportConversations(db.pool, { ...request, requestId: 'big-parts', csv: { rowsPerFile: 2 } });
    // Chat A (5 rows) fills parts 1-2 and starts 3; chat C (1 row) continues part 3; chat B (12) takes 4-9.
    const base = 'conversations_merchant-4_2026-09-01_2026-09-02';
    const names = Array.from({ length: 9 }, (_, index) => `${base}-part-${String(index + 1).padStart(3, '0')}.csv`);
    expect(summary.files).toEqual(names);
    expect([...csvFiles.keys()]).toEqual(names);
    const files = [...csvFiles.values()];
    for (const bytes of files) {
      expect(bytes.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
      expectCleanRecordEnds(bytes);
    }
    const parts = await readBoth(files);
    for (const [header] of parts) expect(header).toEqual(CONVERSATION_HEADERS);
    expect(parts.map((records) => records.length - 1)).toEqual([2, 2, 2, 2, 2, 2, 2, 2, 2]);
    expect(parts[2]!.slice(1).map((cells) => cells[0])).toEqual(['40001', '40002']);
    expectRecords(parts.flatMap(([, ...records]) => records), expected());
  });
});

describe('memory with megabyte bodies', () => {
  const ROWS = 50;

  beforeAll(async () => {
    // Generated in the server: 50 messages of 1 MiB (September) and 50 of 1 KiB (October), one chat each month.
    await db.pool.query(`INSERT INTO contacts (id, merchant_id, name) VALUES (50000, 5, 'Memory contact')`);
    await db.pool.query(
      `INSERT INTO chats (id, merchant_id, provider, contact_id, status, created_at, closed_at) VALUES
         (50001, 5, 'whatsapp', 50000, 'CLOSED', '2026-09-01T00:00:00Z', '2026-09-01T01:00:00Z'),
         (50002, 5, 'whatsapp', 50000, 'CLOSED', '2026-10-01T00:00:00Z', '2026-10-01T01:00:00Z')`,
    );
    await db.pool.query(
      `INSERT INTO messages (id, chat_id, created_at, sender, type, body)
       SELECT 500000 + g, 50001, timestamptz '2026-09-01T00:00:00Z' + g * interval '1 second', 'contact', 'text',
              repeat(md5(g::text), 32768)
       FROM generate_series(1, $1::int) AS g
       UNION ALL
       SELECT 600000 + g, 50002, timestamptz '2026-10-01T00:00:00Z' + g * interval '1 second', 'contact', 'text',
              repeat(md5(g::text), 32)
       FROM generate_series(1, $1::int) AS g`,
      [ROWS],
    );
  }, 120_000);

  /** What a child export measured of itself, in MiB. */
  interface Measured {
    readonly code: number | null;
    readonly stderr: string;
    /** Peak resident set size (getrusage). */
    readonly peakRss: number;
    /** Peak of heap used plus external memory (Buffers) sampled right after a full GC: what is held, not garbage. */
    readonly peakLive: number;
  }

  /**
   * Runs the built CLI's export in a child that measures itself: every 20 ms a full GC, then
   * `heapUsed + external`; at exit the peak of that and the peak RSS. Without the forced GC, V8
   * collects dead Buffers only when its external-memory limit (tens of MiB) is reached, which hides
   * whether anything is held.
   */
  async function measureExport(from: string, to: string): Promise<Measured> {
    const directory = await temporaryDirectory();
    const report = join(directory, 'memory.json');
    const preload = [
      `import { writeFileSync } from 'node:fs';`,
      `let live = 0;`,
      `const sample = () => { globalThis.gc(); const m = process.memoryUsage(); live = Math.max(live, m.heapUsed + m.external); };`,
      `setInterval(sample, 20).unref();`,
      `process.on('exit', () => writeFileSync(process.env.MEMORY_REPORT, JSON.stringify({ live, rssKiB: process.resourceUsage().maxRSS })));`,
    ].join('');
    const child = spawn(
      process.execPath,
      ['--expose-gc', `--import=data:text/javascript,${encodeURIComponent(preload)}`, CLI_PATH, 'export', 'conversations',
        '--merchant', '5', '--from', from, '--to', to, '--out', `file://${directory}`, '--no-progress'],
      { env: { ...process.env, DATABASE_URL: db.url, MEMORY_REPORT: report, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const { live, rssKiB } = JSON.parse(await readFile(report, 'utf8')) as { live: number; rssKiB: number };
    return { code, stderr, peakRss: rssKiB / 1024, peakLive: live / MiB };
  }

  it(`exports ${ROWS} rows of 1 MiB holding a few rows' worth of memory, not the export's`, async () => {
    const small = await measureExport('2026-10-01', '2026-10-02');
    const large = await measureExport('2026-09-01', '2026-09-02');
    expect(small.code, small.stderr).toBe(0);
    expect(large.code, large.stderr).toBe(0);
    const live = large.peakLive - small.peakLive;
    const rss = large.peakRss - small.peakRss;
    console.log(
      `${ROWS} rows of 1 KiB / 1 MiB: peak live ${small.peakLive.toFixed(1)} / ${large.peakLive.toFixed(1)} MiB, ` +
        `peak RSS ${small.peakRss.toFixed(1)} / ${large.peakRss.toFixed(1)} MiB`,
    );
    // Measured on the 2-core machine: +11 MiB live and +17 MiB RSS, the same for 20 and for 100 rows
    // (a row is held a few times over: COPY bytes, text, CSV, and the queues of 4 chunks each side of the zip).
    expect(live).toBeLessThan(ROWS / 3);
    expect(rss).toBeLessThan(ROWS / 2);
  });
});

// ---------------------------------------------------------------------------------------------
// The same data as XLSX (issue 13): every text cell a string cell holding the source text (line
// breaks as LF, no guard), read back by exceljs and openpyxl.

const XLSX_NUMBERS = new Set(['Chat ID', 'Merchant ID', 'Contact ID', 'Agent ID']);
const XLSX_DATES = new Set(['Chat Created At', 'Message Created At', 'Opened at', 'Picked up at', 'Closed at']);

function typedConversationCell(header: string, text: string): TypedCell {
  if (text === '') return null;
  if (XLSX_NUMBERS.has(header)) return { type: 'number', text };
  if (XLSX_DATES.has(header)) return { type: 'date', text };
  if (header === 'Message Incoming') return { type: 'boolean', text };
  return { type: 'string', text };
}

function typedRecord(message: Message): TypedCell[] {
  return expectedRecord(message, false).map((text, index) => typedConversationCell(CONVERSATION_HEADERS[index]!, text));
}

async function exportXlsx(request: object): Promise<{ summary: ConversationExportSummary; path: string }> {
  const directory = await temporaryDirectory();
  const { summary } = await runConversationExport(parseConversationRequest({ ...request, format: 'xlsx' }), {
    pool: db.pool,
    output: new FileOutputTarget(directory),
    signal: new AbortController().signal,
    logger: silentLogger,
  });
  return { summary, path: fileURLToPath(summary.uri) };
}

/**
 * A text as the XML holds it: Excel's `_xHHHH_` for characters XML 1.0 cannot hold, and `_x005F_`
 * before a literal `_xHHHH_`. Excel and LibreOffice decode these; exceljs and openpyxl show them as
 * written (README, XLSX).
 */
function excelEscaped(text: string): string {
  return text
    .replace(/_(?=x[0-9A-Fa-f]{4}_)/g, '_x005F_')
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, (c) => `_x${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}_`);
}

function escapedCell(cell: TypedCell): TypedCell {
  return cell === null || cell.type !== 'string' ? cell : { ...cell, text: excelEscaped(cell.text) };
}

/** The columns the export writes through its shared-strings table (texts up to 256 UTF-8 bytes). */
const SHARED_TEXT_HEADERS = new Set([
  'Provider', 'Contact Identification', 'Contact Name', 'Contact Email', 'Contact Phone Number', 'Contact Mobile Number',
  'Agent Name', 'Agent Username', 'Agent Email', 'Message Type', 'Alias', 'Bot', 'Status',
]);

/**
 * What exceljs reads: it decodes Excel's escapes in shared strings, as Excel does, but shows them
 * as written in inline strings.
 */
function exceljsCell(header: string, cell: TypedCell): TypedCell {
  const shared = cell !== null && cell.type === 'string' && SHARED_TEXT_HEADERS.has(header) && Buffer.byteLength(cell.text) <= 256;
  return shared ? cell : escapedCell(cell);
}

function expectTypedRows(actual: readonly (readonly TypedCell[])[], expected: readonly (readonly TypedCell[])[]): void {
  expect(actual.length).toBe(expected.length);
  for (const [row, cells] of actual.entries()) {
    expect(cells.length, `row ${row}`).toBe(expected[row]!.length);
    for (const [column, cell] of cells.entries()) {
      expect(cell, `row ${row}, ${CONVERSATION_HEADERS[column]}`).toEqual(expected[row]![column]);
    }
  }
}

describe('XLSX of hostile text', () => {
  const readers: [string, (path: string) => Promise<ReadSheet[]>, (header: string, cell: TypedCell) => TypedCell][] = [
    ['exceljs', readWithExceljs, exceljsCell],
    ['openpyxl', readWithOpenpyxl, (_header, cell) => escapedCell(cell)],
  ];

  it('every cell of the catalogue reads back as the source text, typed, with no guard added', async () => {
    const { summary, path } = await exportXlsx({ merchantId: CATALOGUE_MERCHANT, from: '2026-09-01', to: '2026-09-02', requestId: 'hostile-xlsx' });
    expect(summary).toMatchObject({ rows: catalogue.length, format: 'xlsx', truncatedCells: 0, files: ['Conversations'] });
    const header = CONVERSATION_HEADERS.map((name): TypedCell => ({ type: 'string', text: name }));
    for (const [name, read, expectedCell] of readers) {
      const [sheet, ...others] = await read(path);
      expect(others, name).toEqual([]);
      const [first, ...rows] = sheet!.rows;
      expect(first, name).toEqual(header);
      expectTypedRows(rows, catalogue.map((message) => typedRecord(message).map((cell, column) => expectedCell(CONVERSATION_HEADERS[column]!, cell))));
    }
    // A spreadsheet program decodes the escapes: LibreOffice's CSV of the sheet is our CSV without the guard.
    const libre = readWithCsvParse(
      Buffer.from((await convertSheetsWithLibreOffice(path, ['Conversations'])).get('Conversations')!.toString('utf8').replace(/\n(?=(?:[^"]*"[^"]*")*[^"]*$)/g, '\r\n')),
    );
    const incoming = CONVERSATION_HEADERS.indexOf('Message Incoming');
    expect(libre[0]).toEqual(CONVERSATION_HEADERS);
    expectRecords(
      libre.slice(1).map((cells) => cells.map((cell, index) => (index === incoming ? cell.toLowerCase() : cell))),
      catalogue.map((message) => expectedRecord(message, false)),
    );
  }, 180_000);

  it('megabyte bodies are cut at 32,767 characters with a marker, counted in the summary, never split inside a character', async () => {
    const { summary, path } = await exportXlsx({ merchantId: BIG_MERCHANT, from: '2026-09-01', to: '2026-09-02', requestId: 'big-xlsx' });
    const expected = big.map(typedRecord);
    let cut = 0;
    const limited = expected.map((cells) =>
      cells.map((cell) => {
        if (cell === null || cell.text.length <= XLSX_MAX_CELL_CHARS) return cell;
        cut += 1;
        let keep = XLSX_MAX_CELL_CHARS - XLSX_TRUNCATION_MARKER.length;
        // A surrogate pair is never split: the cut falls before it.
        if (/[\uD800-\uDBFF]/.test(cell.text[keep - 1]!)) keep -= 1;
        return { ...cell, text: cell.text.slice(0, keep) + XLSX_TRUNCATION_MARKER };
      }).map(escapedCell),
    );
    expect(cut).toBe(big.length);
    expect(summary).toMatchObject({ rows: big.length, truncatedCells: cut });
    for (const [, read] of readers) {
      const [sheet] = await read(path);
      const rows = sheet!.rows.slice(1);
      for (const cells of rows) for (const cell of cells) expect((cell?.text.length ?? 0) <= XLSX_MAX_CELL_CHARS).toBe(true);
      expectTypedRows(rows, limited);
    }
  }, 180_000);
});
