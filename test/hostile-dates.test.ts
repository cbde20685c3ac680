import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_RANGE_MS, parseConversationRequest } from '../jobs/conversations/request.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { parseRangeBound } from '../jobs/request-fields.js';
import { resolveRange } from '../jobs/resolve-range.js';
import { parseStopSlotsRequest } from '../jobs/stop-slots/request.js';
import { runCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations, listFiles, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { rejection, resolveRejection } from './support/rejection.js';

/**
 * Hostile dates and zones. A date is midnight in the export zone and the conversation limit is
 * 60 x 24 hours of real time (README: "at most 60 x 24 hours apart"), so across a DST change 60
 * calendar days may be an hour too long (autumn) or an hour short (spring).
 */

const db = useTestDatabase();
beforeAll(() => loadFixture(db.pool));

const base = { kind: 'conversations', merchantId: 1, from: '2026-09-01', to: '2026-10-31' } as const;

/** Days in a month of the proleptic Gregorian calendar: the oracle, independent of Date. */
function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

const pad = (value: number, width: number): string => String(value).padStart(width, '0');

describe('bounds', () => {
  it.each([
    '2026-02-30', '2026-02-29', '2026-13-01', '2026-00-10', '2026-01-00', '2026-01-32', '2026-04-31', '0000-01-01', '1900-02-29',
    '2026-9-1', '26-09-01', '+2026-09-01', '2026/09/01', '20260901', ' 2026-09-01', '2026-09-01 ', '2026-09-01\n', '２０２６-09-01', '',
    '2026-09-01T24:00:00Z', '2026-09-01T23:60:00Z', '2026-09-01T23:59:60Z', '2026-09-01T00:00:00', '2026-09-01T00:00:00z', '2026-09-01t00:00:00Z',
    '2026-09-01T00:00:00+25:00', '2026-09-01T00:00:00+24:00', '2026-09-01T00:00:00-24:00', '2026-09-01T00:00:00+12:60', '2026-09-01T00:00:00+5:00',
    '2026-09-01T00:00:00+05', '2026-09-01T00:00:00UTC', '2026-09-01T00:00:00 +05:00', '2026-02-30T00:00:00Z', '2026-09-01T00:00:00.1234567890Z',
  ])('refuses %j naming the field', (value) => {
    expect(rejection(() => parseRangeBound('from', value)).field).toBe('from');
    expect(rejection(() => parseConversationRequest({ ...base, to: value })).field).toBe('to');
  });

  it.each([1709, 20260901, null, true, {}, ['2026-09-01']])('refuses the non-text %j', (value) => {
    expect(rejection(() => parseConversationRequest({ ...base, from: value })).field).toBe('from');
  });

  it('accepts the first and last years four digits can write, as dates and as instants', () => {
    expect(parseRangeBound('from', '0001-01-01')).toEqual({ kind: 'date', date: '0001-01-01' });
    expect(parseRangeBound('from', '0004-02-29')).toEqual({ kind: 'date', date: '0004-02-29' });
    expect(parseRangeBound('from', '0099-12-31')).toEqual({ kind: 'date', date: '0099-12-31' });
    expect(parseRangeBound('to', '9999-12-31')).toEqual({ kind: 'date', date: '9999-12-31' });
    expect(parseRangeBound('from', '0001-01-01T00:00:00Z')).toMatchObject({ kind: 'instant', epochMs: Date.UTC(2000, 0, 1) - 730_119 * 86_400_000 });
    expect(parseRangeBound('to', '9999-12-31T23:59:59.999999+14:00')).toMatchObject({ kind: 'instant' });
  });

  it('property: a YYYY-MM-DD is accepted exactly when it is a day of the Gregorian calendar', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), (year, month, day) => {
        const text = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
        const valid = year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysIn(year, month);
        if (valid) expect(parseRangeBound('from', text)).toEqual({ kind: 'date', date: text });
        else expect(rejection(() => parseRangeBound('from', text)).message).toContain('is not a calendar date');
      }),
      { numRuns: 4000 },
    );
  });

  it('property: an instant with an offset is read as the same moment JavaScript reads its Z form', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('0001-01-02T00:00:00Z'), max: new Date('9999-12-30T00:00:00Z'), noInvalidDate: true }),
        fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }),
        (moment, offsetMinutes) => {
          const local = new Date(moment.getTime() + offsetMinutes * 60_000).toISOString().slice(0, 19);
          const sign = offsetMinutes < 0 ? '-' : '+';
          const offset = `${sign}${pad(Math.floor(Math.abs(offsetMinutes) / 60), 2)}:${pad(Math.abs(offsetMinutes) % 60, 2)}`;
          const bound = parseRangeBound('from', `${local}${offset}`);
          expect(bound).toMatchObject({ kind: 'instant', epochMs: Math.floor(moment.getTime() / 1000) * 1000 });
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('ranges', () => {
  it('refuses equal bounds and from after to, naming from', () => {
    for (const [from, to] of [
      ['2026-09-01', '2026-09-01'],
      ['2026-09-02', '2026-09-01'],
      ['2026-09-01T00:00:00Z', '2026-09-01T00:00:00Z'],
      ['2026-09-01T05:00:00Z', '2026-09-01T00:00:00-05:00'],
      ['2026-09-01T00:00:00.001Z', '2026-09-01T00:00:00Z'],
      ['9999-12-31', '0001-01-01'],
    ]) {
      const error = rejection(() => parseConversationRequest({ ...base, from, to }));
      expect(error.field, `${from} ${to}`).toBe('from');
      expect(error.message).toContain('is not before');
      expect(rejection(() => parseStopSlotsRequest({ ...base, kind: 'stop-slots', from, to })).field).toBe('from');
    }
  });

  it('takes exactly 60 x 24 hours between two instants and refuses one second more', () => {
    const from = '2026-09-01T00:00:00Z';
    expect(parseConversationRequest({ ...base, from, to: '2026-10-31T00:00:00Z' }).to).toMatchObject({ kind: 'instant' });
    expect(Date.parse('2026-10-31T00:00:00Z') - Date.parse(from)).toBe(MAX_RANGE_MS);
    const longer = rejection(() => parseConversationRequest({ ...base, from, to: '2026-10-31T00:00:01Z' }));
    expect(longer.field).toBe('to');
    expect(longer.message).toBe('to: the range is longer than 60 days (60 x 24 hours)');
    expect(rejection(() => parseConversationRequest({ ...base, from, to: '2026-10-31T00:00:00.001Z' })).field).toBe('to');
    // Stop-slots reports have no limit.
    expect(parseStopSlotsRequest({ ...base, kind: 'stop-slots', from: '0001-01-01', to: '9999-12-31' }).from).toEqual({ kind: 'date', date: '0001-01-01' });
  });

  it.each(['', ' ', 'America/New York', '../../etc/passwd', '/UTC', 'UTC/', 'Europe//Paris', 'UTC\u0000', 'Europe/Paris\n', 7, true, {}])(
    'refuses the time zone %j before the database',
    (timezone) => {
      expect(rejection(() => parseConversationRequest({ ...base, timezone })).field).toBe('timezone');
    },
  );
});

describe('against PostgreSQL zone rules', () => {
  const resolve = (fields: Record<string, unknown>) => resolveRange(db.pool, parseConversationRequest({ ...base, ...fields }), MAX_RANGE_MS);

  it('New York, autumn: 60 calendar days across the fall-back are 60 x 24 hours plus one, refused; one day fewer is taken', async () => {
    const longer = await resolveRejection(() => resolve({ timezone: 'America/New_York', from: '2026-10-01', to: '2026-11-30' }));
    expect(longer.field).toBe('to');
    expect(longer.message).toContain('longer than 60 days (60 x 24 hours)');
    expect(await resolve({ timezone: 'America/New_York', from: '2026-10-02', to: '2026-11-30' })).toMatchObject({
      fromUtc: '2026-10-02T04:00:00.000000Z',
      toUtc: '2026-11-30T05:00:00.000000Z',
    });
    // The same 60 x 24 hours as instants: exactly the limit, taken; a second more, refused.
    expect(await resolve({ timezone: 'America/New_York', from: '2026-10-01T00:00:00-04:00', to: '2026-11-29T23:00:00-05:00' })).toMatchObject({
      toLabel: '2026-11-29T2300',
    });
    expect(rejection(() => parseConversationRequest({ ...base, from: '2026-10-01T00:00:00-04:00', to: '2026-11-29T23:00:01-05:00' })).field).toBe('to');
  });

  it('New York, spring: 60 calendar days across the spring-forward are an hour short, taken; 61 are refused', async () => {
    expect(await resolve({ timezone: 'America/New_York', from: '2026-03-01', to: '2026-04-30' })).toMatchObject({
      fromUtc: '2026-03-01T05:00:00.000000Z',
      toUtc: '2026-04-30T04:00:00.000000Z',
    });
    expect((await resolveRejection(() => resolve({ timezone: 'America/New_York', from: '2026-03-01', to: '2026-05-01' }))).field).toBe('to');
  });

  it('São Paulo, 2018: DST began at midnight, so 2018-11-04 00:00 did not exist; that date starts at 01:00, the first instant of the day', async () => {
    const resolved = await resolve({ timezone: 'America/Sao_Paulo', from: '2018-11-04', to: '2018-11-05' });
    expect(resolved).toMatchObject({ fromUtc: '2018-11-04T03:00:00.000000Z', toUtc: '2018-11-05T02:00:00.000000Z', fromLabel: '2018-11-04T0100' });
    // Across the change: 60 calendar days are an hour short, taken.
    expect(await resolve({ timezone: 'America/Sao_Paulo', from: '2018-10-05', to: '2018-12-04' })).toMatchObject({ toUtc: '2018-12-04T02:00:00.000000Z' });
    // Today (no DST since 2019): 60 days are exactly 60 x 24 hours.
    expect(await resolve({ timezone: 'America/Sao_Paulo', from: '2026-09-01', to: '2026-10-31' })).toMatchObject({ fromUtc: '2026-09-01T03:00:00.000000Z' });
  });

  it.each(['Mars/Olympus', 'UTC+3', 'GMT+25', 'america/new_york', 'EST5EDT4', 'Etc/GMT+15'])('refuses the unknown zone %j naming timezone', async (timezone) => {
    const error = await resolveRejection(() => resolve({ timezone }));
    expect(error.field).toBe('timezone');
    expect(error.message).toContain(`unknown time zone ${JSON.stringify(timezone)}`);
  });

  it('resolves and exports (no rows) ranges in years 0001 and 9999, and an instant whose UTC is in year 10000', async () => {
    expect(await resolve({ from: '0001-01-01', to: '0001-02-01' })).toMatchObject({ fromLabel: '0001-01-01', toLabel: '0001-02-01' });
    expect(await resolve({ from: '9999-12-01', to: '9999-12-31' })).toMatchObject({ toUtc: '9999-12-31T05:00:00.000000Z' });
    for (const range of [
      { from: '0001-01-01', to: '0001-02-01' },
      { from: '9999-12-01', to: '9999-12-31' },
      { from: '9999-12-31T00:00:00Z', to: '9999-12-31T23:00:00-05:00' },
    ]) {
      const { summary } = await exportConversations(db.pool, { ...base, ...range });
      expect(summary.rows, JSON.stringify(range)).toBe(0);
    }
  });
});

describe('the CLI: exit 2 naming the flag, nothing written', () => {
  const args = (out: string, ...extra: string[]): string[] => [
    'export', 'conversations', '--merchant', '1', '--out', `file://${out}`, ...extra,
  ];

  it.each([
    [['--from', '2026-02-30', '--to', '2026-03-10'], '--from'],
    [['--from', '2026-09-01', '--to', '2026-00-10'], '--to'],
    [['--from', '2026-09-01T00:00:00+25:00', '--to', '2026-09-02'], '--from'],
    [['--from', '2026-09-01', '--to', '2026-09-01'], '--from'],
    [['--from', '2026-09-01T00:00:00Z', '--to', '2026-10-31T00:00:01Z'], '--to'],
    [['--from', '2026-10-01', '--to', '2026-11-30', '--timezone', 'America/New_York'], '--to'],
    [['--from', '2026-09-01', '--to', '2026-09-02', '--timezone', 'Mars/Olympus'], '--timezone'],
    [['--from', '2026-09-01', '--to', '2026-09-02', '--timezone', ''], '--timezone'],
  ])('%j', async (extra, flag) => {
    const out = await temporaryDirectory();
    const result = await runCli(args(out, ...extra), { DATABASE_URL: db.url });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(`audit-export: invalid request: ${flag}: `);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(await listFiles(out)).toEqual([]);
  });
});
