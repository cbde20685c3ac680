import { describe, expect, it } from 'vitest';
import { splitDirection } from '../transforms/direction.js';
import { formatTimestamp } from '../transforms/timestamp.js';

describe('splitDirection', () => {
  it('puts an incoming text in Message Contact', () => {
    expect(splitDirection('contact', 'text', 'hi', 'ignored')).toEqual({ incoming: true, contact: 'hi', agent: null });
  });
  it('puts agent and bot messages in Message Agent', () => {
    expect(splitDirection('agent', 'text', 'hello', null)).toEqual({ incoming: false, contact: null, agent: 'hello' });
    expect(splitDirection('bot', 'text', 'menu', null)).toEqual({ incoming: false, contact: null, agent: 'menu' });
  });
  it('uses the media URL for every other type', () => {
    expect(splitDirection('contact', 'image', 'body', 'https://x/y.png')).toEqual({
      incoming: true,
      contact: 'https://x/y.png',
      agent: null,
    });
    expect(splitDirection('bot', 'location', null, null)).toEqual({ incoming: false, contact: null, agent: null });
  });
});

describe('formatTimestamp', () => {
  it.each([
    ['2026-09-01 12:00:00.999999-05', '2026-09-01 12:00:00'],
    ['2026-09-01 12:00:00-05', '2026-09-01 12:00:00'],
    ['2026-09-01 12:00:00+05:30', '2026-09-01 12:00:00'],
    ['2026-09-01 12:00:00.5+00', '2026-09-01 12:00:00'],
    ['2026-09-01 12:00:00+05:53:28', '2026-09-01 12:00:00'],
    ['12026-09-01 12:00:00.1+00', '12026-09-01 12:00:00'],
  ])('%s gives %s (truncated, never rounded)', (text, expected) => {
    expect(formatTimestamp(text)).toBe(expected);
  });
  it('is empty for NULL', () => {
    expect(formatTimestamp(null)).toBe('');
  });
  it('refuses text it does not understand instead of writing it', () => {
    expect(() => formatTimestamp('yesterday')).toThrow(/Unexpected timestamp/);
  });
});
