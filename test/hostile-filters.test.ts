import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { MAX_LIST_VALUES, parseId, parseText } from '../jobs/request-fields.js';
import { parseStopSlotsRequest } from '../jobs/stop-slots/request.js';
import { runCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations, listFiles, parseCsv, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { rejection } from './support/rejection.js';

/**
 * Hostile filters and ids: what a careless or hostile caller puts into `--agent`, `--provider`,
 * `--alias`, `--status`, `--bot`, `--merchant` and the request document's filters. Each is either
 * refused with an InvalidRequestError naming the field (exit 2, nothing written), or accepted and
 * then selects exactly the rows it names: SQL metacharacters are data, never SQL.
 */

const db = useTestDatabase();
beforeAll(() => loadFixture(db.pool));

const base = { kind: 'conversations', merchantId: 1, from: '2026-09-01', to: '2026-10-31' } as const;

const SQL_METACHARACTERS = ["'; DROP TABLE chats; --", '%', '_', '\\', '$1', "' OR '1'='1", '"; SELECT pg_sleep(10); --', 'E\'\\x27\'', '*/ --', '%%', 'w_b', '\\\\'];

/** An oracle independent of the code under test: encodeURIComponent throws on a lone surrogate. */
function wellFormed(value: string): boolean {
  try {
    encodeURIComponent(value);
    return true;
  } catch {
    return false;
  }
}

/** Ids a caller may mistype or forge; none is a positive whole number in canonical decimal. */
const BAD_IDS: unknown[] = [
  -1, 0, -0, 1.5, 0.1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 53 + 2, 1e21,
  '-1', '0', '00', '007', '1.0', '1.5', '1e3', '1E3', '0x1F', '0b1', '0o7', ' 42', '42 ', '\t42', '4 2', '+42', '42abc', 'abc', '',
  '9223372036854775808', '99999999999999999999', '１２', '٤٢', "1'; DROP TABLE chats; --", '1\u0000', true, null, [], {}, ['1'],
];

describe('ids: merchantId, filters.agentIds, botIds', () => {
  it.each(BAD_IDS.map((value) => [value]))('refuses %j naming the field', (value) => {
    expect(rejection(() => parseId('merchantId', value)).field).toBe('merchantId');
    expect(rejection(() => parseConversationRequest({ ...base, merchantId: value })).field).toBe('merchantId');
    expect(rejection(() => parseConversationRequest({ ...base, filters: { agentIds: [7, value] } })).field).toBe('filters.agentIds[1]');
    expect(rejection(() => parseStopSlotsRequest({ ...base, kind: 'stop-slots', botIds: [value] })).field).toBe('botIds[0]');
  });

  it('accepts a positive whole number exactly: decimal text keeps ids past 2^53 exact, a JSON number must be safe', () => {
    expect(parseId('merchantId', '9007199254740993')).toBe('9007199254740993');
    expect(parseId('merchantId', '9223372036854775807')).toBe('9223372036854775807');
    expect(parseId('merchantId', Number.MAX_SAFE_INTEGER)).toBe('9007199254740991');
    // JSON.parse already rounded this one to 9007199254740992: refused rather than silently changed.
    expect(rejection(() => parseId('merchantId', JSON.parse('9007199254740993'))).message).toContain('expected a positive whole number');
  });

  it('property: any text or number is accepted only as canonical decimal from 1 to 2^63-1, and kept as given', () => {
    const candidates = fc.oneof(
      fc.string({ maxLength: 25 }),
      fc.stringMatching(/^[-+ 0]?[0-9]{1,21}[ .eE]?[0-9]?$/),
      fc.double(),
      fc.integer({ min: -1000, max: 1000 }),
      fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }).map(String),
    );
    fc.assert(
      fc.property(candidates, (value) => {
        const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
        const valid = typeof text === 'string' && /^[1-9][0-9]*$/.test(text) && BigInt(text) <= 9223372036854775807n;
        if (valid) expect(parseId('id', value)).toBe(text);
        else expect(rejection(() => parseId('id', value)).field).toBe('id');
      }),
      { numRuns: 3000 },
    );
  });
});

describe('text filters: providers and aliases', () => {
  it.each(SQL_METACHARACTERS.map((value) => [value]))('takes %j as plain text', (value) => {
    const request = parseConversationRequest({ ...base, filters: { providers: [value], aliases: [value] } });
    expect(request.filters.providers).toEqual([value]);
    expect(request.filters.aliases).toEqual([value]);
  });

  it.each([
    ['a NUL byte', 'web\u0000'],
    ['a lone NUL', '\u0000'],
    ['a line feed', 'web\nOR 1=1'],
    ['a carriage return', 'web\r'],
    ['a tab', '\tweb'],
    ['DEL', 'web\u007f'],
    ['a C1 control', 'web\u0085'],
    ['a lone surrogate', 'web\ud800'],
    ['the empty text', ''],
    ['201 characters', 'x'.repeat(201)],
    ['a number', 7],
    ['null', null],
  ])('refuses %s naming the field', (_name, value) => {
    expect(rejection(() => parseConversationRequest({ ...base, filters: { providers: ['web', value] } })).field).toBe('filters.providers[1]');
    expect(rejection(() => parseConversationRequest({ ...base, filters: { aliases: [value] } })).field).toBe('filters.aliases[0]');
  });

  it('property: any text is accepted exactly when it is 1 to 200 well-formed characters without control characters', () => {
    const unit = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('a', ' ', "'", '"', '\\', '%', '_', ';', '-', '$', 'ñ', '中', '😀') },
      { weight: 1, arbitrary: fc.constantFrom('\u0000', '\n', '\r', '\t', '\u001b', '\u007f', '\u0080', '\u009f', '\ud800', '\udfff') },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 1 }) },
    );
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 210 }).map((parts) => parts.join('')), (value) => {
        const valid = value.length >= 1 && value.length <= 200 && wellFormed(value) && !/\p{Cc}/u.test(value);
        if (valid) expect(parseText('filters.providers[0]', value)).toBe(value);
        else expect(rejection(() => parseText('filters.providers[0]', value)).field).toBe('filters.providers[0]');
      }),
      { numRuns: 3000 },
    );
  });
});

describe('statuses', () => {
  it.each(["CLOSED'; --", 'CLOSED ', ' CLOSED', 'CLOSE', 'cloſed', 'CLOſED', 'closed\u0000', '%', '_', '', 1, null])('refuses %j', (value) => {
    expect(rejection(() => parseConversationRequest({ ...base, filters: { statuses: ['CLOSED', value] } })).field).toBe('filters.statuses[1]');
  });

  it('takes the statuses in any ASCII case', () => {
    expect(parseConversationRequest({ ...base, filters: { statuses: ['closed', 'Opened', 'picked_up'] } }).filters.statuses).toEqual([
      'CLOSED',
      'OPENED',
      'PICKED_UP',
    ]);
  });
});

describe(`repeated filters: up to ${1000} values per list`, () => {
  it('deduplicates 1,000 repetitions of one value into one', () => {
    const request = parseConversationRequest({ ...base, filters: { agentIds: Array(1000).fill('100'), providers: Array(1000).fill('web') } });
    expect(request.filters.agentIds).toEqual(['100']);
    expect(request.filters.providers).toEqual(['web']);
  });

  it('accepts 1,000 distinct values and refuses 1,001 with the limit named', () => {
    expect(MAX_LIST_VALUES).toBe(1000);
    const ids = (count: number): string[] => Array.from({ length: count }, (_, index) => String(index + 1));
    expect(parseConversationRequest({ ...base, filters: { agentIds: ids(1000) } }).filters.agentIds).toHaveLength(1000);
    for (const [field, filters] of [
      ['filters.agentIds', { agentIds: ids(1001) }],
      ['filters.providers', { providers: ids(1001).map((id) => `p${id}`) }],
      ['filters.aliases', { aliases: ids(1001).map((id) => `a${id}`) }],
    ] as const) {
      const error = rejection(() => parseConversationRequest({ ...base, filters }));
      expect(error.field).toBe(field);
      expect(error.message).toBe(`${field}: at most 1000 distinct values, got 1001`);
    }
    expect(rejection(() => parseStopSlotsRequest({ ...base, kind: 'stop-slots', botIds: ids(1001) })).field).toBe('botIds');
    // Duplicates do not count: 1,001 values of which two are equal are 1,000 distinct ones.
    expect(parseConversationRequest({ ...base, filters: { agentIds: [...ids(1000), '1'] } }).filters.agentIds).toHaveLength(1000);
  });
});

describe('against the fixture: metacharacters match nothing, and nothing else happens', () => {
  /** The distinct chat ids of an export, in export order. */
  async function chatsOf(filters: Record<string, unknown>): Promise<string[]> {
    const { csvFiles } = await exportConversations(db.pool, { ...base, filters });
    const rows = parseCsv([...csvFiles.values()][0]!).slice(1);
    return [...new Set(rows.map((row) => row[0] as string))];
  }

  const tables = async (): Promise<{ chats: number; messages: number; merchants: number }> => {
    const { rows } = await db.pool.query<{ chats: number; messages: number; merchants: number }>(
      'SELECT (SELECT count(*)::int FROM chats) AS chats, (SELECT count(*)::int FROM messages) AS messages, (SELECT count(*)::int FROM merchants) AS merchants',
    );
    return rows[0]!;
  };

  it('matches no chat with any metacharacter filter, and every table is still whole afterwards', async () => {
    const before = await tables();
    for (const value of SQL_METACHARACTERS) {
      expect(await chatsOf({ providers: [value] }), value).toEqual([]);
      expect(await chatsOf({ aliases: [value] }), value).toEqual([]);
    }
    // 1,000 agent ids, none of merchant 1's but 100: only agent 100's chats.
    const agents = [...Array.from({ length: 999 }, (_, index) => String(5000 + index)), '100'];
    expect(await chatsOf({ agentIds: agents })).toEqual(['1000', '1003']);
    // 1,000 providers, two of them real: exactly their chats.
    const providers = [...Array.from({ length: 998 }, (_, index) => `p${index}%`), 'web', 'telegram'];
    expect(await chatsOf({ providers })).toEqual(['1002', '1003']);
    expect(await tables()).toEqual(before);
  });

  it('matches a value holding metacharacters exactly, never as a pattern', async () => {
    await db.pool.query(`
      INSERT INTO chats (id, merchant_id, provider, alias, contact_id, status, created_at)
        VALUES (1200, 1, E'it''s\\\\%_', E'a\\\\b', 10, 'CLOSED', '2026-10-02T12:00:00Z');
      INSERT INTO messages (id, chat_id, created_at, sender, type, body) VALUES (1201, 1200, '2026-10-02T12:00:01Z', 'contact', 'text', 'x');`);
    try {
      expect(await chatsOf({ providers: ["it's\\%_"] })).toEqual(['1200']);
      expect(await chatsOf({ aliases: ['a\\b'] })).toEqual(['1200']);
      expect(await chatsOf({ providers: ["it's\\%"] })).toEqual([]);
      expect(await chatsOf({ providers: ['%'] })).toEqual([]);
      expect(await chatsOf({ aliases: ['a_b'] })).toEqual([]);
    } finally {
      await db.pool.query('DELETE FROM messages WHERE chat_id = 1200; DELETE FROM chats WHERE id = 1200;');
    }
  });
});

describe('the CLI: exit 2 naming the flag, nothing written, no stack trace', () => {
  const args = (out: string, ...extra: string[]): string[] => [
    'export', 'conversations', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-31', '--out', `file://${out}`, ...extra,
  ];

  it.each([
    [['--merchant', '0x1'], '--merchant'],
    [['--merchant', '1e3'], '--merchant'],
    [['--merchant', ' 1'], '--merchant'],
    [['--merchant', '9223372036854775808'], '--merchant'],
    [['--agent', '-5'], '--agent'],
    [['--agent', '1.5'], '--agent'],
    [['--provider', 'web\ttab'], '--provider'],
    [['--status', "CLOSED'; DROP TABLE chats; --"], '--status'],
  ])('%j', async (extra, flag) => {
    const out = await temporaryDirectory();
    const result = await runCli(args(out, ...extra), { DATABASE_URL: db.url });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(`audit-export: invalid request: ${flag}: `);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stdout).toBe('');
    expect(await listFiles(out)).toEqual([]);
  });

  it('exports nothing for a metacharacter provider, and the stop-slots --bot is refused the same way', async () => {
    const out = await temporaryDirectory();
    const count = async (): Promise<unknown> => (await db.pool.query('SELECT count(*)::int AS n FROM chats')).rows[0];
    const before = await count();
    const result = await runCli(args(out, '--provider', "'; DROP TABLE chats; --", '--alias', '%'), { DATABASE_URL: db.url });
    expect(result.code, result.stderr).toBe(0);
    expect(result.summary).toMatchObject({ rows: 0 });
    expect(await count()).toEqual(before);
    const bots = await runCli(
      ['export', 'stop-slots', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-31', '--bot', '5 OR 1=1', '--out', `file://${out}`],
      { DATABASE_URL: db.url },
    );
    expect(bots.code, bots.stderr).toBe(2);
    expect(bots.stderr).toContain('audit-export: invalid request: --bot: expected a positive whole number');
  });
});
