/**
 * Progress output of the CLI, end to end: JSON lines when stderr is not a terminal, a bar when it
 * is (through `script`, which gives the CLI a pseudo-terminal), nothing with --no-progress.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { migrateState } from '../db/migrate.js';
import { CLI_PATH, runCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { screenOf } from './support/terminal.js';
import { loadVolume } from './support/volume.js';

const db = useTestDatabase();
// 100,000 rows: an export long enough for many progress lines at a 5 ms interval.
const BIG = 9;
const BIG_ROWS = 2000 * 50;
beforeAll(async () => {
  await loadFixture(db.pool);
  await loadVolume(db.pool, BIG, 2000, 50);
  await migrateState(db.pool);
}, 180_000);

const bigExport = (out: string, ...extra: string[]): string[] => [
  'export', 'conversations', '--merchant', String(BIG), '--from', '2026-09-01', '--to', '2026-10-01', '--out', `file://${out}`, ...extra,
];

/** The stderr lines that are JSON, parsed. */
function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('progress when stderr is not a terminal', () => {
  it('logs a JSON progress line every PROGRESS_INTERVAL_MS with the rows growing towards the counted total, and a final one', async () => {
    const out = await temporaryDirectory();
    const result = await runCli(bigExport(out, '--request-id', 'progress-json-1'), { DATABASE_URL: db.url, PROGRESS_INTERVAL_MS: '5' });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain('\r');
    const lines = logLines(result.stderr).filter((line) => line.message === 'export progress');
    // 100,000 rows take far longer than a few 5 ms intervals, even on a fast machine.
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) {
      expect(line).toMatchObject({ severity: 'INFO', requestId: 'progress-json-1', kind: 'conversations' });
      expect(typeof line.rowsPerSecond).toBe('number');
      expect(typeof line.elapsedSeconds).toBe('number');
    }
    const rows = lines.map((line) => Number(line.rows));
    expect([...rows].sort((a, b) => a - b)).toEqual(rows);
    // Some line was written mid-export, with rows counted but not all written yet.
    expect(lines.some((line) => Number(line.rows) > 0 && Number(line.rows) < BIG_ROWS && line.totalRows === BIG_ROWS && typeof line.etaSeconds === 'number')).toBe(true);
    const final = lines.at(-1);
    expect(final).toMatchObject({ rows: BIG_ROWS, totalRows: BIG_ROWS, percent: 100, final: true });
    expect(lines.filter((line) => line.final === true)).toHaveLength(1);
    expect(result.summary).toMatchObject({ rows: BIG_ROWS });
  });

  it('logs nothing about progress with --no-progress or PROGRESS_INTERVAL_MS=0', async () => {
    for (const [extra, env] of [[['--no-progress'], { PROGRESS_INTERVAL_MS: '5' }], [[], { PROGRESS_INTERVAL_MS: '0' }]] as const) {
      const out = await temporaryDirectory();
      const result = await runCli(bigExport(out, ...extra), { DATABASE_URL: db.url, ...env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).not.toContain('export progress');
      expect(result.stderr).toContain('conversation export finished');
    }
  });

  it('rejects a malformed PROGRESS_INTERVAL_MS with exit 2, naming it', async () => {
    const out = await temporaryDirectory();
    const result = await runCli(bigExport(out), { DATABASE_URL: db.url, PROGRESS_INTERVAL_MS: 'often' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/PROGRESS_INTERVAL_MS: expected a whole number of milliseconds/);
  });

  it('stop-slots reports bots done out of all', async () => {
    const out = await temporaryDirectory();
    const result = await runCli(
      ['export', 'stop-slots', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-01', '--out', `file://${out}`],
      { DATABASE_URL: db.url },
    );
    expect(result.code, result.stderr).toBe(0);
    const final = logLines(result.stderr).find((line) => line.message === 'export progress' && line.final === true);
    expect(final).toMatchObject({ kind: 'stop-slots', bots: 1, botsDone: 1, percent: 100 });
  });

  it('run: JSON progress lines name the request', async () => {
    const cwd = await temporaryDirectory();
    const request = JSON.stringify({ kind: 'conversations', requestId: 'progress-run-1', merchantId: BIG, from: '2026-09-01', to: '2026-10-01' });
    const result = await runCli(['run'], { DATABASE_URL: db.url, EXPORT_REQUEST: request, PROGRESS_INTERVAL_MS: '5', OUTPUT_URI: 'file://./exports' }, cwd);
    expect(result.code, result.stderr).toBe(0);
    const lines = logLines(result.stderr).filter((line) => line.message === 'export progress');
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line.requestId).toBe('progress-run-1');
    expect(lines.at(-1)).toMatchObject({ rows: BIG_ROWS, totalRows: BIG_ROWS, final: true });
  });
});

/** Quotes one word for sh. */
const shellWord = (word: string): string => `'${word.replaceAll("'", "'\\''")}'`;

/**
 * Runs the CLI with stderr on a pseudo-terminal (util-linux `script`); stdout goes to a pipe of its
 * own. Returns what the terminal received.
 */
async function runOnTerminal(args: readonly string[], env: Record<string, string>): Promise<{ code: number | null; terminal: string; stdout: string }> {
  if (spawnSync('script', ['--version']).error !== undefined) {
    throw new Error('`script` (util-linux; Debian package bsdutils) is needed to give the CLI a terminal');
  }
  // The pseudo-terminal is stdin, stdout and stderr of the command; fd 3 carries stdout out.
  const command = `${[process.execPath, CLI_PATH, ...args].map(shellWord).join(' ')} >&3`;
  const child = spawn('script', ['-qec', command, '/dev/null'], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  let terminal = '';
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => (terminal += chunk.toString()));
  (child.stdio[3] as NodeJS.ReadableStream).on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  // A hung CLI must not outlive the test: closing the terminal hangs its session up.
  const guard = setTimeout(() => child.kill('SIGKILL'), 50_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', (exitCode) => resolve(exitCode)));
  clearTimeout(guard);
  return { code, terminal, stdout };
}

describe('progress on a terminal', () => {
  it('draws one redrawn status line with a bar, keeps log lines whole above it, and leaves the final state', async () => {
    const out = await temporaryDirectory();
    const result = await runOnTerminal(bigExport(out, '--request-id', 'progress-tty-1'), { DATABASE_URL: db.url, PROGRESS_INTERVAL_MS: '5' });
    expect(result.code, result.terminal).toBe(0);
    // Redrawn in place: carriage returns and clear-to-end-of-line, and a bar.
    expect(result.terminal).toContain('\r');
    expect(result.terminal).toContain('\u001b[K');
    expect(result.terminal).toMatch(/merchant 9 \[[█░]+\] \d+%/);
    // No JSON progress lines on a terminal: the bar replaces them.
    expect(result.terminal).not.toContain('export progress');
    const screen = screenOf(result.terminal).filter((line) => line !== '');
    // Every log line on the screen is whole JSON, not cut by the bar.
    const logs = screen.filter((line) => line.startsWith('{'));
    expect(logs.map((line) => (JSON.parse(line) as { message: string }).message)).toEqual(
      expect.arrayContaining(['conversation export started', 'conversation export finished']),
    );
    // The last state stays on screen, on a line of its own.
    expect(screen.at(-1)).toMatch(/^merchant 9 \[█+\] 100% {2}100,000\/100,000 rows {2}[\d,]+ rows\/s/);
    expect(screen.filter((line) => !line.startsWith('{'))).toHaveLength(1);
    // stdout still carries only the summary.
    expect(JSON.parse(result.stdout)).toMatchObject({ requestId: 'progress-tty-1', rows: BIG_ROWS });
  });

  it('removes the bar when the export fails', async () => {
    // A file already holds the zip's name: the export streams every row, then fails to commit
    // (exports never overwrite), with the bar up. (A folder that cannot take files is refused
    // before the export starts, with no bar.)
    const folder = await temporaryDirectory();
    await writeFile(join(folder, 'conversations_merchant-1_2026-09-01_2026-10-01_bar-fails.zip'), '');
    const result = await runOnTerminal(
      ['export', 'conversations', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-01', '--request-id', 'bar-fails', '--out', `file://${folder}`],
      { DATABASE_URL: db.url },
    );
    expect(result.code).toBe(1);
    // The bar was up before the failure...
    expect(result.terminal).toContain('\rmerchant 1 ');
    // ...and is gone from the screen after it.
    const screen = screenOf(result.terminal).filter((line) => line !== '');
    expect(screen.filter((line) => line.startsWith('merchant 1'))).toEqual([]);
    expect(screen.at(-1)).toMatch(/^audit-export: failed: /);
  });
});
