import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, formatDurationText } from '../transforms/duration.js';

describe('formatDuration', () => {
  it.each([
    [0, '00:00:00:00'],
    [59, '00:00:00:59'],
    [60, '00:00:01:00'],
    [3_600, '00:01:00:00'],
    [86_399, '00:23:59:59'],
    [86_400, '01:00:00:00'],
    [90_061, '01:01:01:01'],
    [100 * 86_400 + 5, '100:00:00:05'],
    [-65, '-00:00:01:05'],
  ])('%i seconds give %s', (seconds, expected) => {
    expect(formatDuration(seconds)).toBe(expected);
  });

  it('is empty for NULL', () => {
    expect(formatDuration(null)).toBe('');
    expect(formatDurationText(null)).toBe('');
  });

  it('rejects fractions with a TypeError naming the value', () => {
    expect(() => formatDuration(1.5)).toThrow(/`seconds`.*1\.5/);
  });

  it('parses back to the same number of seconds, each part in range', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 ** 10 }), (seconds) => {
        const text = formatDuration(seconds);
        const match = /^(\d{2,}):(\d{2}):(\d{2}):(\d{2})$/.exec(text);
        expect(match).not.toBeNull();
        const [d, h, m, s] = match!.slice(1).map(Number) as [number, number, number, number];
        expect(h).toBeLessThan(24);
        expect(m).toBeLessThan(60);
        expect(s).toBeLessThan(60);
        expect(((d * 24 + h) * 60 + m) * 60 + s).toBe(seconds);
      }),
    );
  });

  it('reads the whole seconds PostgreSQL computed', () => {
    expect(formatDurationText('93784')).toBe('01:02:03:04');
    expect(() => formatDurationText('1.5')).toThrow(/Unexpected duration/);
  });
});
