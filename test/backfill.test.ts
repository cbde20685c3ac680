import { beforeAll, describe, expect, it } from 'vitest';
import { collect, runCli, startCli, type CliResult } from './support/cli.js';
import { BACKFILL_UNIT_NAMES, seedBackfillData } from './support/backfill-data.js';
import { useTestDatabase } from './support/database.js';
import { listFiles as listAllFiles, temporaryDirectory } from './support/export.js';

/** The zips in a folder (each also has a hidden metadata file). */
const listFiles = async (directory: string): Promise<string[]> => (await listAllFiles(directory)).filter((name) => name.endsWith('.zip') && !name.startsWith('.'));

const db = useTestDatabase();

beforeAll(async () => {
  await seedBackfillData(db.pool);
}, 60_000);

const backfillArgs = (out: string, ...extra: string[]): string[] => [
  'backfill', '--from', '2026-09-01', '--to', '2026-12-01', '--out', `file://${out}`, ...extra,
];

async function runShards(out: string, count: number): Promise<CliResult[]> {
  return await Promise.all(
    Array.from({ length: count }, (_, index) =>
      collect(startCli(backfillArgs(out, '--task-index', String(index), '--task-count', String(count)), { DATABASE_URL: db.url })),
    ),
  );
}

const sum = (results: readonly CliResult[], key: string): number => results.reduce((total, result) => total + Number(result.summary?.[key]), 0);

describe('audit-export backfill', () => {
  it('three shards at once export every unit exactly once; a rerun skips them all', async () => {
    const out = await temporaryDirectory();
    const first = await runShards(out, 3);
    for (const result of first) {
      expect(result.code, result.stderr).toBe(0);
      expect(Object.keys(result.summary ?? {})).toEqual(['kind', 'units', 'done', 'skipped', 'failed', 'rows', 'bytes']);
      expect(result.summary).toMatchObject({ kind: 'backfill', units: 6, skipped: 0, failed: 0 });
      const progress = result.stderr
        .split('\n')
        .filter((line) => line.includes('"message":"backfill progress"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      // A line after each unit, then a final one with the totals.
      expect(progress.filter((line) => line.final === undefined).length).toBeGreaterThanOrEqual(6);
      expect(progress.at(-1)).toMatchObject({ units: 6, unitsDone: 6, done: 6, skipped: 0, failed: 0, rows: result.summary?.rows, final: true });
    }
    expect(sum(first, 'units')).toBe(18);
    expect(sum(first, 'done')).toBe(18);
    // Every chat of every status: 6 merchants x 3 months x 2 chats x 3 messages.
    expect(sum(first, 'rows')).toBe(108);
    const files = await listFiles(out);
    expect(files).toEqual([...BACKFILL_UNIT_NAMES].sort());
    const everything = await listAllFiles(out);
    // One hidden metadata file per zip, nothing partial.
    expect(everything).toHaveLength(36);

    const second = await runShards(out, 3);
    for (const result of second) {
      expect(result.code, result.stderr).toBe(0);
      expect(result.summary).toMatchObject({ units: 6, done: 0, skipped: 6, failed: 0 });
    }
    expect(sum(second, 'skipped')).toBe(18);
    expect(sum(second, 'rows')).toBe(108);
    expect(sum(second, 'bytes')).toBe(sum(first, 'bytes'));
    expect(await listAllFiles(out)).toEqual(everything);
  }, 120_000);

  it('goes on past a failing unit, exits 1 naming it, and a rerun exports only the failed units', async () => {
    const out = await temporaryDirectory();
    await db.pool.query(`UPDATE merchants SET timezone = 'Mars/Base' WHERE id = 4`);
    let failed: CliResult;
    try {
      failed = await runCli(backfillArgs(out, '--concurrency', '2'), { DATABASE_URL: db.url });
    } finally {
      await db.pool.query(`UPDATE merchants SET timezone = 'America/Bogota' WHERE id = 4`);
    }
    expect(failed.code, failed.stderr).toBe(1);
    expect(failed.summary).toMatchObject({ kind: 'backfill', units: 18, done: 15, skipped: 0, failed: 3 });
    for (const month of ['2026-09', '2026-10', '2026-11']) {
      expect(failed.stderr).toMatch(new RegExp(`backfill unit failed: backfill-m4-${month} .*Mars/Base`));
    }
    expect(await listFiles(out)).toHaveLength(15);

    const rerun = await runCli(backfillArgs(out), { DATABASE_URL: db.url });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.summary).toMatchObject({ units: 18, done: 3, skipped: 15, failed: 0, rows: 108 });
    expect(await listFiles(out)).toEqual([...BACKFILL_UNIT_NAMES].sort());
  }, 120_000);

  it('honours CLOUD_RUN_TASK_INDEX/COUNT and --merchant, and logs CLOUD_RUN_TASK_ATTEMPT', async () => {
    const out = await temporaryDirectory();
    const result = await runCli(backfillArgs(out, '--merchant', '2', '--merchant', '5'), {
      DATABASE_URL: db.url,
      CLOUD_RUN_TASK_INDEX: '1',
      CLOUD_RUN_TASK_COUNT: '2',
      CLOUD_RUN_TASK_ATTEMPT: '3',
    });
    expect(result.code, result.stderr).toBe(0);
    // Sorted units m2-09, m2-10, m2-11, m5-09, m5-10, m5-11: task 1 of 2 takes positions 1, 3, 5.
    expect(result.summary).toMatchObject({ units: 3, done: 3 });
    expect(await listFiles(out)).toEqual(
      [BACKFILL_UNIT_NAMES[4], BACKFILL_UNIT_NAMES[12], BACKFILL_UNIT_NAMES[14]].sort(),
    );
    expect(result.stderr).toContain('"taskAttempt":"3"');
  }, 60_000);

  it('cancels on SIGTERM with exit 3, leaving no partial file', async () => {
    const out = await temporaryDirectory();
    const child = startCli(backfillArgs(out), { DATABASE_URL: db.url });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      // Once: a second signal means "exit now".
      if (stderr.includes('"message":"backfill progress"') && child.signalCode === null && !child.killed) child.kill('SIGTERM');
    });
    const result = await collect(child);
    expect(result.code, stderr).toBe(3);
    expect((await listAllFiles(out)).filter((name) => name.endsWith('.partial'))).toEqual([]);
    expect((await listFiles(out)).length).toBeLessThan(18);
  }, 60_000);

  it.each([
    [['--task-index', '3', '--task-count', '3'], {}, /--task-index: expected a task index below the task count 3/],
    [[], { CLOUD_RUN_TASK_INDEX: '4', CLOUD_RUN_TASK_COUNT: '2' }, /CLOUD_RUN_TASK_INDEX: expected a task index below/],
    [['--task-count', 'x'], {}, /--task-count: expected a whole number/],
    [['--from', '2026-13-01'], {}, /--from: expected a calendar date/],
    [['--from', '2026-12-01'], {}, /--from: 2026-12-01 is not before --to 2026-12-01/],
    [['--merchant', 'abc'], {}, /--merchant: expected a positive whole number/],
    [['--concurrency', '0'], {}, /--concurrency: expected at least 1/],
    [['--out', 'ftp://x'], {}, /--out: expected file:\/\/DIR or gs:\/\/BUCKET/],
  ])('rejects %j %j with exit 2 and writes nothing', async (args, env, message) => {
    const out = await temporaryDirectory();
    const result = await runCli([...backfillArgs(out), ...args], { DATABASE_URL: db.url, ...env });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(await listFiles(out)).toEqual([]);
  });

  it('shows help that names the replica and the flags', async () => {
    const help = await runCli(['backfill', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/read replica/);
    for (const flag of ['--from', '--to', '--merchant', '--out', '--concurrency', '--task-index', '--task-count']) expect(help.stdout).toContain(flag);
  });
});
