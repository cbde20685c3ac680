import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { collect, runCli, startCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, parseCsv, temporaryDirectory } from './support/export.js';
import { FIXTURE_EXPECTED_ROWS, loadFixture } from './support/fixture.js';
import { loadVolume } from './support/volume.js';
import { readZip } from './support/zip.js';

const db = useTestDatabase();
beforeAll(async () => {
  await loadFixture(db.pool);
  await loadVolume(db.pool, 9, 4000, 50);
}, 180_000);

const exportArgs = (out: string, ...extra: string[]): string[] => [
  'export', 'conversations', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-31', '--out', `file://${out}`, ...extra,
];

describe('audit-export export conversations', () => {
  it('exports, prints the JSON summary as the last stdout line, and exits 0', async () => {
    const out = await temporaryDirectory();
    const result = await runCli(exportArgs(out, '--request-id', 'cli-1'), { DATABASE_URL: db.url });
    expect(result.code, result.stderr).toBe(0);
    expect(Object.keys(result.summary ?? {})).toEqual(['requestId', 'kind', 'uri', 'rows', 'files', 'bytes']);
    expect(result.summary).toMatchObject({ requestId: 'cli-1', kind: 'conversations', rows: FIXTURE_EXPECTED_ROWS.length });
    const zipPath = fileURLToPath(String(result.summary?.uri));
    expect(await listFiles(out)).toEqual([zipPath.split('/').pop()]);
    const entries = await readZip(zipPath);
    expect(parseCsv([...entries.values()][0]!).slice(1)).toEqual(FIXTURE_EXPECTED_ROWS);
    expect(result.summary?.files).toEqual([...entries.keys()]);
    // Logs are JSON lines on stderr, never on stdout.
    expect(result.stdout.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('"severity":"INFO"');
  });

  it('accepts a relative file:// folder', async () => {
    const cwd = await temporaryDirectory();
    const result = await runCli(exportArgs('./exports'), { DATABASE_URL: db.url }, cwd);
    expect(result.code, result.stderr).toBe(0);
    expect(String(result.summary?.uri).startsWith(`file://${join(cwd, 'exports')}/`)).toBe(true);
  });

  it.each([
    [['--from', '2026-09-01', '--to', '2026-11-01'], /--to: .*longer than 60 days/],
    [['--from', '2026-09-01T00:00:00Z', '--to', '2026-10-31T00:00:01Z'], /--to: .*longer than 60 days/],
    [['--from', '2026-10-01', '--to', '2026-09-01'], /--from: .*not before/],
    // Midnight in Bogota is 05:00 UTC.
    [['--from', '2026-10-01T06:00:00Z', '--to', '2026-10-01'], /--from: .*not before/],
    [['--merchant', '999'], /--merchant: no merchant with id 999/],
    [['--merchant', '3'], /--timezone: unknown merchant 3's time zone "Mars\/Olympus_Mons"/],
    [['--timezone', 'Mars/Base'], /--timezone: unknown time zone "Mars\/Base"/],
    [['--timezone', 'EST; DROP TABLE chats'], /--timezone: expected an IANA time zone/],
    [['--status', 'OPENED', '--status', 'PICKED_UP'], /--status: .*only active chats/],
    [['--status', 'OPENED'], /--status: .*only active chats/],
    [['--status', 'LOST'], /--status: expected one of OPENED, PICKED_UP, CLOSED/],
    [['--merchant', 'abc'], /--merchant: expected a positive whole number/],
    [['--from', '2026-13-01'], /--from: .*not a calendar date/],
    [['--to', 'tomorrow'], /--to: expected a date YYYY-MM-DD/],
    [['--agent', 'x'], /--agent: expected a positive whole number/],
    [['--rows-per-file', '0'], /--rows-per-file: expected a whole number from 1/],
    [['--rows-per-file', 'ten'], /--rows-per-file: expected a whole number from 1/],
    [['--out', 'ftp://example/x'], /out: expected file:\/\/DIR or gs:\/\/BUCKET/],
    [['--colour', 'red'], /unknown option '--colour'/],
    [['--email', 'not-an-address'], /--email: "not-an-address" is not a valid e-mail address/],
    [Array.from({ length: 21 }, (_, i) => ['--email', `user${i}@merchant.test`]).flat(), /--email: at most 20 recipients, got 21/],
    [['--locale', 'fr'], /--locale: expected one of en, es, pt/],
  ])('rejects %j with exit 2, a message naming the problem, and nothing written', async (args, message) => {
    const out = await temporaryDirectory();
    const base = exportArgs(join(out, 'exports'));
    // Later flags override the defaults above.
    const result = await runCli([...base, ...args], { DATABASE_URL: db.url });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(existsSync(join(out, 'exports')) ? await listFiles(join(out, 'exports')) : []).toEqual([]);
  });

  it('treats a missing subcommand as a usage error (exit 2) and shows the subcommands', async () => {
    const result = await runCli(['export']);
    expect(result.code).toBe(2);
    expect(result.stdout + result.stderr).toContain('conversations');
  });

  it('rejects a missing required flag with exit 2', async () => {
    const result = await runCli(['export', 'conversations', '--merchant', '1', '--from', '2026-09-01'], { DATABASE_URL: db.url });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--to/);
  });

  it('cancels on SIGTERM with exit 3 and leaves no file', async () => {
    const out = await temporaryDirectory();
    const child = startCli(
      ['export', 'conversations', '--merchant', '9', '--from', '2026-09-01', '--to', '2026-10-01', '--out', `file://${out}`],
      { DATABASE_URL: db.url },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      // Once: a second signal means "exit now" and skips the clean-up this test checks.
      if (stderr.includes('conversation export started') && child.signalCode === null && !child.killed) child.kill('SIGTERM');
    });
    const result = await collect(child);
    expect(result.code, stderr).toBe(3);
    expect(await listFiles(out), stderr).toEqual([]);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY%' AND state = 'active'`,
    );
    expect(rows).toEqual([{ n: 0 }]);
  });

  it('shows useful help for every command', async () => {
    for (const args of [['--help'], ['export', 'conversations', '--help'], ['db', 'seed', '--help'], ['demo', '--help']]) {
      const result = await runCli(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/Usage: audit-export/);
    }
    const help = await runCli(['export', 'conversations', '--help']);
    for (const flag of ['--merchant', '--from', '--to', '--timezone', '--agent', '--provider', '--alias', '--status', '--out', '--rows-per-file', '--no-bom', '--no-formula-guard']) {
      expect(help.stdout).toContain(flag);
    }
  });
});

