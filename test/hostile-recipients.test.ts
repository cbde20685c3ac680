import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { migrateState } from '../db/migrate.js';
import { MAX_RECIPIENTS, parseEmailAddress, parseRecipients } from '../jobs/announcement.js';
import { parseConversationRequest } from '../jobs/conversations/request.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { parseStopSlotsRequest } from '../jobs/stop-slots/request.js';
import { runCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { rejection } from './support/rejection.js';

/**
 * Hostile recipients: `--email` and a request's `recipients` / `requestedBy.email`. An address is
 * put into an SMTP envelope and a To header, so anything that could end a header line or hide
 * what it is (controls, format characters) is refused with the field named; the rest is
 * normalised (trimmed, domain lower-cased) and deduplicated ignoring case, at most 20.
 */

const db = useTestDatabase();
beforeAll(async () => {
  await loadFixture(db.pool);
  await migrateState(db.pool);
});

const base = { kind: 'conversations', merchantId: 1, from: '2026-09-01', to: '2026-10-31' } as const;

const HOSTILE: [string, unknown][] = [
  ['LF and a Bcc header', 'a@b.com\nBcc: x@y.com'],
  ['CRLF and a Bcc header', 'a@b.com\r\nBcc: x@y.com'],
  ['CRLF without a space', 'a@b.com\r\nBcc:x@y.com'],
  ['a bare CR', 'a@b.com\rX'],
  ['CRLF inside the local part', 'a\r\n@b.com'],
  ['a NUL', 'a\u0000b@x.com'],
  ['a NUL at the end', 'a@x.com\u0000'],
  ['an escape', 'a\u001b[31m@x.com'],
  ['DEL', 'a\u007f@x.com'],
  ['a C1 NEL', 'a\u0085@x.com'],
  ['a right-to-left override', 'moc.x\u202e@a.com'],
  ['a zero-width space', 'ana\u200b@x.com'],
  ['a byte order mark inside', 'an\ufeffa@x.com'],
  ['a line separator', 'a@x.com\u2028Bcc: y@z.com'],
  ['a lone surrogate', 'a\ud800@x.com'],
  ['two addresses', 'a@x.com, b@y.com'],
  ['a display name', 'Ana <a@x.com>'],
  ['two @', 'a@b@x.com'],
  ['no domain dot', 'a@localhost'],
  ['10,000 characters', `${'a'.repeat(9990)}@x.com`],
  ['255 characters', `${'a'.repeat(249)}@x.com`],
  ['empty', ''],
  ['spaces only', '   '],
  ['a number', 42],
  ['null in a list', null],
  ['an object', { address: 'a@x.com' }],
];

describe('one address', () => {
  it.each(HOSTILE)('refuses %s naming the field, with a short message', (_name, value) => {
    const error = rejection(() => parseRecipients('recipients', ['ok@x.com', value]));
    expect(error.field).toBe('recipients[1]');
    expect(error.message.length).toBeLessThan(400);
    expect(rejection(() => parseConversationRequest({ ...base, recipients: [value] })).field).toBe('recipients[0]');
    expect(rejection(() => parseStopSlotsRequest({ ...base, kind: 'stop-slots', requestedBy: { userId: 'u', email: value ?? 7 } })).field).toBe(
      'requestedBy.email',
    );
  });

  it('trims surrounding white space (a trailing CRLF is not part of the address) and lower-cases the domain only', () => {
    expect(parseEmailAddress('e', ' Ana@Example.COM\r\n')).toBe('Ana@example.com');
    expect(parseEmailAddress('e', `${'a'.repeat(248)}@x.com`)).toHaveLength(254);
  });

  it('accepts internationalised addresses (SMTPUTF8); the SMTP server has the last word', () => {
    expect(parseEmailAddress('e', 'ñandú@ejemplo.com')).toBe('ñandú@ejemplo.com');
    expect(parseEmailAddress('e', '用户@例子.广告')).toBe('用户@例子.广告');
    expect(parseEmailAddress('e', 'José@Ñandú.CO')).toBe('José@ñandú.co');
  });

  it('property: an accepted address has one @, a dotted domain, at most 254 characters, nothing that ends or hides a header, and parses to itself', () => {
    const unit = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('a', 'Z', '0', '.', '-', '_', '+', 'ñ', '中', '😀') },
      { weight: 2, arbitrary: fc.constantFrom('@', '.') },
      { weight: 1, arbitrary: fc.constantFrom('\r', '\n', '\u0000', '\t', ' ', '\u2028', '\u202e', '\u200b', '\u0085', ',', '<', '"', ':', '\ud800') },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 1 }) },
    );
    const forbidden = /[\p{Cc}\p{Cf}\p{Z}\s<>(),;:"[\]\\]/u;
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 40 }).map((parts) => parts.join('')), (value) => {
        let address: string;
        try {
          address = parseEmailAddress('recipients[0]', value);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidRequestError);
          expect((error as InvalidRequestError).field).toBe('recipients[0]');
          return;
        }
        expect(address.length).toBeLessThanOrEqual(254);
        expect(address.split('@')).toHaveLength(2);
        expect(address.split('@')[1]).toContain('.');
        expect(address).not.toMatch(forbidden);
        expect(encodeURIComponent(address)).toBeTypeOf('string'); // Throws on a lone surrogate.
        expect(parseEmailAddress('recipients[0]', address)).toBe(address);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('the list', () => {
  const addresses = (count: number): string[] => Array.from({ length: count }, (_, index) => `user${index}@x.com`);

  it(`accepts ${MAX_RECIPIENTS} and refuses ${MAX_RECIPIENTS + 1} distinct addresses`, () => {
    expect(parseRecipients('recipients', addresses(20))).toHaveLength(20);
    const error = rejection(() => parseRecipients('recipients', addresses(21)));
    expect(error.field).toBe('recipients');
    expect(error.message).toBe('recipients: at most 20 recipients, got 21');
  });

  it('deduplicates ignoring case over the whole address, keeping the first spelling (domain lower-cased); duplicates do not count', () => {
    expect(parseRecipients('recipients', ['A@x.com', 'a@X.com', 'a@x.COM', ' A@X.com '])).toEqual(['A@x.com']);
    expect(parseRecipients('recipients', [...addresses(20), 'USER0@X.COM'])).toHaveLength(20);
  });

  it('refuses a list that is not one', () => {
    for (const value of ['a@x.com', 42, { 0: 'a@x.com' }, true]) {
      expect(rejection(() => parseRecipients('recipients', value)).field).toBe('recipients');
    }
  });
});

describe('the CLI and run: exit 2 naming the field, nothing written or recorded as sent', () => {
  const args = (out: string, ...extra: string[]): string[] => [
    'export', 'conversations', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-31', '--out', `file://${out}`, ...extra,
  ];

  it.each([
    [['--email', 'a@b.com\nBcc: x@y.com']],
    [['--email', 'a@b.com\r\nBcc: x@y.com']],
    [['--email', `${'a'.repeat(10_000)}@x.com`]],
    [['--email', '']],
    [Array.from({ length: 21 }, (_, index) => ['--email', `u${index}@x.com`]).flat()],
  ])('export conversations %#', async (extra) => {
    const out = await temporaryDirectory();
    const result = await runCli(args(out, ...extra), { DATABASE_URL: db.url });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/audit-export: invalid request: --email: /);
    expect(result.stderr).not.toContain('Bcc: x@y.com');
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(result.stderr.length).toBeLessThan(5000);
    expect(await listFiles(out)).toEqual([]);
  });

  it('run records a request with a header-injecting recipient as rejected, naming recipients[0]', async () => {
    const out = await temporaryDirectory();
    const requestId = 'hostile-recipient-1';
    const result = await runCli(['run'], {
      DATABASE_URL: db.url,
      OUTPUT_URI: `file://${out}`,
      EXPORT_REQUEST: JSON.stringify({ ...base, requestId, recipients: ['a@b.com\r\nBcc: x@y.com'] }),
    });
    expect(result.code, result.stderr).toBe(2);
    expect(result.summary).toMatchObject({ requestId, status: 'rejected' });
    expect(String(result.summary?.error)).toMatch(/^recipients\[0\]: /);
    expect(await listFiles(out)).toEqual([]);
    const deliveries = await db.pool.query('SELECT count(*)::int AS n FROM audit_export_deliveries WHERE request_id = $1', [requestId]);
    expect(deliveries.rows[0]).toEqual({ n: 0 });
  });
});
