import { join, posix, win32 } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { migrateState } from '../db/migrate.js';
import { conversationZipName } from '../jobs/conversations/job.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { parseExportRequest } from '../jobs/requests.js';
import { stopSlotsFileName } from '../jobs/stop-slots/job.js';
import { parseStopSlotsRequest } from '../jobs/stop-slots/request.js';
import { metadataFileName } from '../sinks/file-metadata.js';
import { isPlainFileName, MAX_FILE_NAME_BYTES } from '../sinks/file.js';
import { gcsObjectName } from '../sinks/gcs.js';
import { runCli, type CliResult } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';

/**
 * Hostile request ids, from `--request-id` and from a request document through `run`: an id names
 * the files an export writes, so whatever is accepted must give plain, portable names inside the
 * output folder or prefix, and whatever is refused must exit 2 naming the field with nothing
 * written and no record under the hostile id.
 */

const db = useTestDatabase();
beforeAll(async () => {
  await loadFixture(db.pool);
  await migrateState(db.pool);
}, 60_000);

const RULE = "expected 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit";

/** Ids that must be refused; each can travel in argv (no NUL there). */
const REFUSED_IDS: readonly string[] = [
  '../x',
  '../../etc/passwd',
  'a/../../b',
  '/abs',
  'a/b',
  'a\\b',
  '\\',
  '..\\..\\x',
  'a\u0001b',
  'a\u007fb',
  'a\nb',
  'a\r\nb',
  'a\tb',
  'x'.repeat(129),
  'x'.repeat(2000),
  'report\u202Egpj.exe',
  '\u202Eabc',
  'a\u200Bb',
  '\uFEFFabc',
  'a\u2028b',
  '.',
  '..',
  '.hidden',
  '_x',
  '-x',
  ' a',
  'a b',
  'a ',
  'CON ',
  'a:b',
  'a*b',
  'a?b',
  'a"b',
  'a<b>',
  'a|b',
  'a%2F..%2Fb',
  'café',
  'ｆｕｌｌ',
  '\u0430dmin',
  '😀',
  '',
];

/** Ids only a JSON document can carry. */
const REFUSED_IN_DOCUMENTS: readonly unknown[] = [...REFUSED_IDS, 'a\u0000b', '\u0000', 'a\uD800b', '\uDFFF', 42, true, null, [], {}, ['a']];

const STOP_SLOTS_SAMPLE: readonly string[] = ['../x', 'a\\b', 'a\nb', 'x'.repeat(2000), 'report\u202Egpj.exe', '..', 'a:b', ''];

/**
 * Through `run` (a process with the state database each): the ids only a document can carry and a
 * sample of the others; every one of {@link REFUSED_IN_DOCUMENTS} goes through the parser below.
 */
const RUN_SAMPLE: readonly unknown[] = ['../x', 'a/b', 'a\nb', 'x'.repeat(2000), 'report\u202Egpj.exe', '.', 'a\u0000b', 'a\uD800b', 42, null, {}];

/** Ids the rule accepts that look dangerous on some system; their names must still be portable. */
const ACCEPTED_IDS: readonly string[] = ['CON', 'nul', 'COM1', 'LPT9.txt', 'aux.zip', 'a.', 'a..', 'a-', 'A._-z', 'x'.repeat(128), '0'];

/** Runs `work` over `items`, at most `limit` at once (CLI runs: two cores). */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

const conversationArgs = (out: string, requestId: string): string[] => [
  'export', 'conversations', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-01', '--out', `file://${out}`, '--no-progress', `--request-id=${requestId}`,
];
const stopSlotsArgs = (out: string, requestId: string): string[] => [
  'export', 'stop-slots', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-01', '--out', `file://${out}`, '--no-progress', `--request-id=${requestId}`,
];

/** What a refusal must look like on stderr: the flag named, the id shown escaped and short, no stack. */
function expectRefusal(result: CliResult, field: string): void {
  expect(result.code, result.stderr).toBe(2);
  expect(result.stderr).toContain(`invalid request: ${field}: ${RULE}, got `);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  // Escaped, never raw: a right-to-left override would reorder the rest of the line on a terminal.
  expect(result.stderr).not.toMatch(/[\u202E\u200B\u2028\uFEFF]/u);
  const line = result.stderr.split('\n').find((text) => text.startsWith('audit-export: invalid request')) ?? '';
  expect(line.length).toBeLessThan(500);
}

/** A name is portable on Linux, macOS, Windows and in Cloud Storage, and stays inside `folder`. */
function expectPortableInside(folder: string, name: string): void {
  expect(isPlainFileName(name), name).toBe(true);
  expect(posix.dirname(posix.join(folder, name))).toBe(folder);
  expect(win32.basename(name)).toBe(name);
  expect(posix.basename(name)).toBe(name);
}

describe('hostile --request-id', () => {
  it(`refuses ${REFUSED_IDS.length} ids on export conversations (and ${STOP_SLOTS_SAMPLE.length} on export stop-slots) with exit 2 naming --request-id, writing nothing`, async () => {
    // Both commands share the request parser: every id through one, a sample of each kind through the other.
    const cases = [...REFUSED_IDS.map((id) => ({ id, args: conversationArgs })), ...STOP_SLOTS_SAMPLE.map((id) => ({ id, args: stopSlotsArgs }))];
    await eachLimited(cases, 4, async ({ id, args }) => {
      const out = join(await temporaryDirectory(), 'exports');
      const result = await runCli(args(out, id), { DATABASE_URL: db.url });
      expectRefusal(result, '--request-id');
      expect(result.stdout).toBe('');
      expect(await listFiles(join(out, '..'))).toEqual([]);
    });
  }, 120_000);

  it(`accepts ${ACCEPTED_IDS.length} ids that look risky (CON, trailing dots, 128 characters) and names every file portably inside --out`, async () => {
    const cases = [
      ...ACCEPTED_IDS.map((id) => ({ id, args: conversationArgs })),
      ...['CON', 'a.', 'x'.repeat(128)].map((id) => ({ id, args: stopSlotsArgs })),
    ];
    await eachLimited(cases, 3, async ({ id, args }) => {
      const out = await temporaryDirectory();
      const result = await runCli(args(out, id), { DATABASE_URL: db.url });
      expect(result.code, result.stderr).toBe(0);
      const files = await listFiles(out);
      expect(files.length).toBeGreaterThan(0);
      for (const name of files) {
        expectPortableInside(out, name);
        expect(name).toContain(`_${id}.`);
      }
    });
  }, 120_000);
});

describe('hostile requestId in a request document (run)', () => {
  it(`the request parser refuses all ${REFUSED_IN_DOCUMENTS.length} ids naming requestId, whatever the kind`, () => {
    for (const requestId of REFUSED_IN_DOCUMENTS) {
      for (const kind of ['conversations', 'stop-slots']) {
        const error = (() => {
          try {
            parseExportRequest({ kind, requestId, merchantId: 1, from: '2026-09-01', to: '2026-10-01' });
          } catch (caught) {
            return caught;
          }
          return undefined;
        })();
        expect(error, JSON.stringify(requestId)).toBeInstanceOf(InvalidRequestError);
        expect((error as InvalidRequestError).field).toBe('requestId');
      }
    }
  });

  it(`refuses ${RUN_SAMPLE.length} of them through run with exit 2 naming requestId: nothing written, recorded only under an id derived from the content`, async () => {
    await eachLimited(RUN_SAMPLE, 4, async (requestId) => {
      const out = await temporaryDirectory();
      const document = JSON.stringify({ kind: 'conversations', requestId, merchantId: 1, from: '2026-09-01', to: '2026-10-01' });
      const result = await runCli(['run', '--no-progress'], { DATABASE_URL: db.url, OUTPUT_URI: `file://${out}`, EXPORT_REQUEST: document });
      expect(result.code, result.stderr).toBe(2);
      expect(result.summary).toMatchObject({ status: 'rejected' });
      expect(String(result.summary?.requestId)).toMatch(/^content-[0-9a-f]{32}$/);
      expect(String(result.summary?.error)).toContain(`requestId: ${RULE}, got `);
      expect(result.stderr).not.toMatch(/[\u202E\u200B\u2028\uFEFF]/u);
      expect(await listFiles(out)).toEqual([]);
      if (typeof requestId === 'string') {
        const { rows } = await db.pool.query('SELECT 1 FROM audit_export_requests WHERE request_id = $1', [requestId.replaceAll('\u0000', '')]);
        expect(rows).toEqual([]);
      }
    });
  }, 120_000);
});

describe('names derived from any accepted id (property)', () => {
  /** The longest labels a range gives (`YYYY-MM-DDTHHMM`, a five-digit year after a zone shift) and the largest ids. */
  const worstCase = { fromLabel: '10000-01-01T2359', toLabel: '10000-01-02T2359', timezone: 'America/Bogota', fromUtc: '', toUtc: '' };
  const MAX_BIGINT = '9223372036854775807';
  // Hidden names the sinks make beside a name: `.NAME.<12 hex>.partial` and `.NAME.metadata.json.<12 hex>.partial`.
  const temporary = (name: string): string => `.${name}.0123456789ab.partial`;
  const metadataTemporary = (name: string): string => `${metadataFileName(name)}.0123456789ab.partial`;

  const candidates = fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/),
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.string({ unit: fc.constantFrom('.', '/', '\\', ' ', '\u0000', '\n', '\u202E', 'C', 'O', 'N', 'a', '-', ':'), maxLength: 12 }),
    fc.constantFrom(...REFUSED_IDS, ...ACCEPTED_IDS),
  );

  it('is a plain portable file name inside the folder or prefix, with room for the sinks\' hidden files; refused ids name requestId', () => {
    let accepted = 0;
    fc.assert(
      fc.property(candidates, (requestId) => {
        const document = { kind: 'conversations', requestId, merchantId: MAX_BIGINT, from: '2026-09-01T08:30:00Z', to: '2026-09-02T08:30:00Z' };
        let conversation;
        try {
          conversation = parseConversationRequest(document);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidRequestError);
          expect((error as InvalidRequestError).field).toBe('requestId');
          expect(() => parseStopSlotsRequest({ ...document, kind: 'stop-slots' })).toThrow(/^requestId: /);
          return;
        }
        accepted += 1;
        const stopSlots = parseStopSlotsRequest({ ...document, kind: 'stop-slots' });
        const zip = conversationZipName({ ...worstCase, request: conversation });
        const csv = stopSlotsFileName({ ...worstCase, request: stopSlots }, MAX_BIGINT);
        for (const name of [zip, csv]) {
          expectPortableInside('/srv/exports', name);
          expect(Buffer.byteLength(temporary(name))).toBeLessThanOrEqual(MAX_FILE_NAME_BYTES);
          const object = gcsObjectName({ bucket: 'audit-exports', prefix: 'exports/2026' }, name);
          expect(object).toBe(`exports/2026/${name}`);
          expect(object.split('/').every((part) => part !== '' && part !== '.' && part !== '..')).toBe(true);
          expect(object.startsWith('.well-known/acme-challenge/')).toBe(false);
          expect(Buffer.byteLength(object)).toBeLessThanOrEqual(1024);
        }
        // Only conversation zips get local metadata (backfill), so only they need that longer hidden name to fit.
        expect(Buffer.byteLength(metadataTemporary(zip))).toBeLessThanOrEqual(MAX_FILE_NAME_BYTES);
      }),
      { numRuns: 2000 },
    );
    expect(accepted).toBeGreaterThan(200);
  });

  it('isPlainFileName refuses every hostile name, so no sink writes one whatever calls it', () => {
    for (const name of ['', '.', '..', '../x', 'a/b', 'a\\b', 'a\u0000b', 'a\nb', 'a\u202Eb', 'a\u200Bb', 'a\uD800', 'CON', 'con.zip', 'NUL.csv', 'COM1', 'LPT¹', 'a.', 'a ', 'a:b', 'a*b', 'a?b', 'a"b', 'a<b', 'a|b', '.hidden', 'é'.repeat(128)]) {
      expect(isPlainFileName(name), JSON.stringify(name)).toBe(false);
    }
    for (const name of ['export.zip', 'conversations_merchant-1_2026-09-01_2026-10-01_CON.zip', 'a..zip', 'CONSOLE.zip', 'é'.repeat(127), '中文.csv']) {
      expect(isPlainFileName(name), name).toBe(true);
    }
  });
});
