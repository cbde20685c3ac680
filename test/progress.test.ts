import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  completedFraction,
  formatCount,
  formatDuration,
  progressFields,
  progressStarter,
  remainingMs,
  renderBar,
  renderProgressLine,
  rowsPerSecond,
  StatusLine,
  withProgress,
} from '../pipeline/progress.js';
import { progressIntervalMs } from '../cli/progress.js';
import { captureLogs } from './support/logs.js';
import { screenOf } from './support/terminal.js';

describe('progress arithmetic and text', () => {
  it('formats durations as m:ss, with hours only when there are any', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(7_999)).toBe('0:07');
    expect(formatDuration(754_000)).toBe('12:34');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
    expect(formatDuration(100 * 3600_000)).toBe('100:00:00');
    expect(formatDuration(Number.NaN)).toBe('?');
    expect(formatDuration(-1)).toBe('?');
  });

  it('groups counts by thousands, rounded', () => {
    expect(formatCount(0)).toBe('0');
    expect(formatCount(999)).toBe('999');
    expect(formatCount(1000)).toBe('1,000');
    expect(formatCount(1_234_567.6)).toBe('1,234,568');
    expect(formatCount(-1_000_000)).toBe('-1,000,000');
  });

  it('computes the rate, 0 before any time has passed', () => {
    expect(rowsPerSecond(1000, 500)).toBe(2000);
    expect(rowsPerSecond(1, 3000)).toBe(0);
    expect(rowsPerSecond(1000, 0)).toBe(0);
  });

  it('takes the share done from the steps when there are any, else from the rows', () => {
    expect(completedFraction({ rows: 10 })).toBeUndefined();
    expect(completedFraction({ rows: 25, totalRows: 100 })).toBe(0.25);
    expect(completedFraction({ rows: 0, totalRows: 0 })).toBe(1);
    // A count taken before the rows is never exceeded, but the bar must not overflow if it were.
    expect(completedFraction({ rows: 120, totalRows: 100 })).toBe(1);
    expect(completedFraction({ rows: 25, totalRows: 100, steps: { done: 1.5, total: 3 } })).toBe(0.5);
    expect(completedFraction({ rows: 0, steps: { done: 0, total: 0 } })).toBe(1);
  });

  it('estimates the time left at the pace so far, and nothing before anything is done', () => {
    expect(remainingMs({ rows: 25, totalRows: 100 }, 10_000)).toBe(30_000);
    expect(remainingMs({ rows: 0, totalRows: 100 }, 10_000)).toBeUndefined();
    expect(remainingMs({ rows: 50 }, 10_000)).toBeUndefined();
    expect(remainingMs({ rows: 0, steps: { done: 3, total: 4 } }, 9_000)).toBe(3_000);
    expect(remainingMs({ rows: 100, totalRows: 100 }, 9_000)).toBe(0);
  });

  it('draws a bar of the given width', () => {
    expect(renderBar(0, 10)).toBe('░'.repeat(10));
    expect(renderBar(0.5, 10)).toBe('█'.repeat(5) + '░'.repeat(5));
    expect(renderBar(1, 4)).toBe('████');
    expect(renderBar(2, 4)).toBe('████');
    expect(renderBar(0.5, 0)).toBe('');
  });

  it('renders the status line with everything when there is room', () => {
    const line = renderProgressLine('merchant 42', { rows: 450_123, totalRows: 1_000_000, elapsedMs: 5_000 }, 200);
    expect(line).toBe(
      `merchant 42 [${'█'.repeat(14)}${'░'.repeat(16)}] 45%  450,123/1,000,000 rows  90,025 rows/s  elapsed 0:05  ETA 0:06`,
    );
    const steps = renderProgressLine('backfill', { rows: 12_345, steps: { done: 3.4, total: 18 }, elapsedMs: 40_000 }, 200, 'units');
    expect(steps).toMatch(/^backfill \[[█░]{30}\] 18% {2}3\/18 units {2}12,345 rows {2}309 rows\/s {2}elapsed 0:40 {2}ETA 2:51$/);
    // Without a total there is no bar, no percentage and no estimate.
    expect(renderProgressLine('merchant 1', { rows: 12_345, elapsedMs: 4_000 }, 200)).toBe('merchant 1  12,345 rows  3,086 rows/s  elapsed 0:04');
    // Done: the elapsed time instead of an ETA of 0:00.
    expect(renderProgressLine('m', { rows: 5, totalRows: 5, elapsedMs: 61_000 }, 200)).toMatch(/100% {2}5\/5 rows {2}0 rows\/s {2}elapsed 1:01$/);
  });

  it('fits the line into the terminal: the bar shrinks, then the elapsed time and the rate go, then the bar, then it is cut', () => {
    const snapshot = { rows: 450_123, totalRows: 1_000_000, elapsedMs: 5_000 };
    const widths = [200, 100, 80, 60, 40, 20, 1, 0];
    const lines = widths.map((columns) => renderProgressLine('merchant 42', snapshot, columns));
    widths.forEach((columns, index) => expect(lines[index]!.length).toBeLessThanOrEqual(Math.max(0, columns - 1)));
    expect(lines[1]).toMatch(/^merchant 42 \[[█░]{18}\] 45% {2}450,123\/1,000,000 rows {2}90,025 rows\/s {2}elapsed 0:05 {2}ETA 0:06$/);
    expect(lines[2]).toMatch(/^merchant 42 \[[█░]{12}\] 45% {2}450,123\/1,000,000 rows {2}90,025 rows\/s {2}ETA 0:06$/);
    expect(lines[3]).toBe('merchant 42  45%  450,123/1,000,000 rows  ETA 0:06');
    expect(lines[4]).toBe('merchant 42  45%  450,123/1,000,000 row');
    expect(lines[7]).toBe('');
  });

  it('gives the JSON line its fields, named after the steps', () => {
    expect(progressFields({ rows: 250, totalRows: 1000, elapsedMs: 2_049 })).toEqual({
      rows: 250,
      totalRows: 1000,
      percent: 25,
      rowsPerSecond: 122,
      elapsedSeconds: 2,
      etaSeconds: 6,
    });
    expect(progressFields({ rows: 7, steps: { done: 2.9, total: 3 }, elapsedMs: 1_000 }, 'units')).toEqual({
      rows: 7,
      units: 3,
      unitsDone: 2,
      percent: 96.6,
      rowsPerSecond: 7,
      elapsedSeconds: 1,
      etaSeconds: 0,
    });
    expect(progressFields({ rows: 0, elapsedMs: 0 })).toEqual({ rows: 0, rowsPerSecond: 0, elapsedSeconds: 0 });
  });

  it('reads PROGRESS_INTERVAL_MS: default 5 s, 0 for none, anything else rejected by name', () => {
    expect(progressIntervalMs({})).toBe(5_000);
    expect(progressIntervalMs({ PROGRESS_INTERVAL_MS: ' 250 ' })).toBe(250);
    expect(progressIntervalMs({ PROGRESS_INTERVAL_MS: '0' })).toBe(0);
    expect(() => progressIntervalMs({ PROGRESS_INTERVAL_MS: '5s' })).toThrow(/PROGRESS_INTERVAL_MS: expected a whole number of milliseconds/);
  });
});

/** A terminal that records what was written, and the screen it would show. */
function fakeTerminal(columns = 100): { line: StatusLine; writes: string[]; screen: () => string[] } {
  const writes: string[] = [];
  return {
    line: new StatusLine((text) => void writes.push(text), () => columns),
    writes,
    screen: () => screenOf(writes.join('')),
  };
}

describe('the status line', () => {
  it('redraws in place, passes log lines above itself, and ends on a line of its own', () => {
    const terminal = fakeTerminal();
    terminal.line.draw('10%');
    terminal.line.draw('10%');
    expect(terminal.writes).toEqual(['\r10%\u001b[K']);
    terminal.line.draw('20%');
    terminal.line.writeAbove('{"message":"a log line"}\n');
    expect(terminal.screen()).toEqual(['{"message":"a log line"}', '20%']);
    terminal.line.finish('100%');
    terminal.line.writeAbove('after\n');
    expect(terminal.screen()).toEqual(['{"message":"a log line"}', '100%', 'after', '']);
  });

  it('clears itself without a trace', () => {
    const terminal = fakeTerminal();
    terminal.line.writeAbove('before\n');
    terminal.line.draw('50%');
    terminal.line.clear();
    terminal.line.clear();
    expect(terminal.screen()).toEqual(['before', '']);
    expect(terminal.writes).toHaveLength(3);
  });

  it('renders for 80 columns when the terminal does not say its width', () => {
    expect(new StatusLine(() => {}, () => 0).columns).toBe(80);
    expect(new StatusLine(() => {}, () => undefined).columns).toBe(80);
    expect(new StatusLine(() => {}, () => 132).columns).toBe(132);
  });
});

describe('progress reporters', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('bar: redraws at most 5 times a second whatever the updates, leaves the last state, and writes nothing after the end', () => {
    vi.useFakeTimers();
    let clock = 0;
    const terminal = fakeTerminal(120);
    const logs = captureLogs();
    const { logger } = logs;
    const progress = progressStarter({ mode: 'bar', logger, intervalMs: 1000, line: terminal.line, now: () => clock })({
      label: 'merchant 42',
      message: 'export progress',
    });
    expect(progress.mode).toBe('bar');
    expect(terminal.screen()).toEqual(['merchant 42  0 rows  0 rows/s  elapsed 0:00']);
    progress.update({ rows: 0, totalRows: 1000 });
    for (let rows = 1; rows <= 500; rows++) {
      clock += 0.1;
      progress.update({ rows });
    }
    // 500 updates, no timer fired yet: still the first drawing.
    expect(terminal.writes).toHaveLength(1);
    clock = 1000;
    vi.advanceTimersByTime(200);
    expect(terminal.writes).toHaveLength(2);
    expect(terminal.screen()[0]).toMatch(/^merchant 42 \[[█░]+\] 50% {2}500\/1,000 rows {2}500 rows\/s {2}elapsed 0:01 {2}ETA 0:01$/);
    // Nothing changed: the timer fires but writes nothing.
    vi.advanceTimersByTime(200);
    expect(terminal.writes).toHaveLength(2);
    progress.logNow();
    expect(logs.entries).toEqual([]);
    clock = 2000;
    progress.update({ rows: 1000 });
    progress.end('done');
    expect(terminal.screen()).toEqual([expect.stringMatching(/^merchant 42 \[█+\] 100% {2}1,000\/1,000 rows {2}500 rows\/s {2}elapsed 0:02$/), '']);
    const written = terminal.writes.length;
    progress.update({ rows: 2000 });
    progress.end('failed');
    vi.advanceTimersByTime(10_000);
    expect(terminal.writes).toHaveLength(written);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('bar: removed when the work fails or is cancelled', async () => {
    for (const [error, outcome] of [[new Error('boom'), 'failed'], [new DOMException('stop', 'AbortError'), 'cancelled']] as const) {
      const terminal = fakeTerminal();
      const controller = new AbortController();
      const progress = progressStarter({ mode: 'bar', logger: captureLogs().logger, intervalMs: 1000, line: terminal.line })({ label: 'x', message: 'm' });
      const end = vi.spyOn(progress, 'end');
      if (outcome === 'cancelled') controller.abort();
      await expect(withProgress(progress, controller.signal, async () => Promise.reject(error))).rejects.toBe(error);
      expect(end).toHaveBeenCalledWith(outcome);
      expect(terminal.screen()).toEqual(['']);
    }
  });

  it('json: a line every interval with the fields, one final line, nothing after the end', () => {
    vi.useFakeTimers();
    let clock = 0;
    const logs = captureLogs();
    const { logger } = logs;
    const progress = progressStarter({ mode: 'json', logger, intervalMs: 5000, now: () => clock })({
      label: 'ignored',
      message: 'export progress',
      fields: { requestId: 'r-1', kind: 'conversations' },
    });
    progress.update({ rows: 0, totalRows: 100 });
    vi.advanceTimersByTime(4999);
    expect(logs.entries).toEqual([]);
    clock = 5000;
    progress.update({ rows: 40 });
    vi.advanceTimersByTime(1);
    clock = 10_000;
    progress.update({ rows: 80 }, { extra: 'field' });
    vi.advanceTimersByTime(5000);
    progress.update({ rows: 100 });
    progress.end('done');
    progress.end('done');
    progress.logNow();
    vi.advanceTimersByTime(60_000);
    expect(logs.entries.map(({ time: _time, level: _level, ...rest }) => rest)).toEqual([
      { requestId: 'r-1', kind: 'conversations', rows: 40, totalRows: 100, percent: 40, rowsPerSecond: 8, elapsedSeconds: 5, etaSeconds: 8, msg: 'export progress' },
      { requestId: 'r-1', kind: 'conversations', rows: 80, totalRows: 100, percent: 80, rowsPerSecond: 8, elapsedSeconds: 10, etaSeconds: 3, extra: 'field', msg: 'export progress' },
      { requestId: 'r-1', kind: 'conversations', rows: 100, totalRows: 100, percent: 100, rowsPerSecond: 10, elapsedSeconds: 10, etaSeconds: 0, extra: 'field', final: true, msg: 'export progress' },
    ]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('json: no final line after a failure; logNow logs at once', () => {
    vi.useFakeTimers();
    const logs = captureLogs();
    const { logger } = logs;
    const progress = progressStarter({ mode: 'json', logger, intervalMs: 5000 })({ label: 'backfill', message: 'backfill progress', stepName: 'units' });
    progress.update({ rows: 3, steps: { done: 1, total: 2 } });
    progress.logNow();
    progress.end('failed');
    expect(logs.entries).toHaveLength(1);
    expect(logs.entries[0]).toMatchObject({ rows: 3, units: 2, unitsDone: 1, msg: 'backfill progress' });
  });

  it('off: no timer and no lines, but logNow still logs (a backfill keeps its line per unit)', () => {
    vi.useFakeTimers();
    const logs = captureLogs();
    const { logger } = logs;
    const progress = progressStarter({ mode: 'off', logger, intervalMs: 10 })({ label: 'l', message: 'backfill progress' });
    expect(vi.getTimerCount()).toBe(0);
    progress.update({ rows: 5 });
    vi.advanceTimersByTime(1000);
    progress.end('done');
    expect(logs.entries).toEqual([]);
    const again = progressStarter({ mode: 'off', logger, intervalMs: 10 })({ label: 'l', message: 'backfill progress' });
    again.logNow();
    expect(logs.entries).toHaveLength(1);
  });

  it('bar without a terminal line falls back to JSON lines', () => {
    const progress = progressStarter({ mode: 'bar', logger: captureLogs().logger, intervalMs: 1000 })({ label: 'l', message: 'm' });
    expect(progress.mode).toBe('json');
    progress.end('failed');
  });
});
