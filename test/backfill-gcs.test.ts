import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, runCli, startCli, type CliResult } from './support/cli.js';
import { BACKFILL_UNIT_NAMES, seedBackfillData } from './support/backfill-data.js';
import { useTestDatabase } from './support/database.js';
import { temporaryDirectory } from './support/export.js';
import { startFakeGcs, type FakeGcs } from './support/fake-gcs.js';
import { readZip } from './support/zip.js';

const BUCKET = 'backfills';
const db = useTestDatabase();
let fake: FakeGcs;

beforeAll(async () => {
  await seedBackfillData(db.pool);
  fake = await startFakeGcs({ buckets: [BUCKET] });
}, 60_000);

afterAll(async () => {
  await fake?.close();
});

/** The environment a Cloud Run task gets, with Cloud Storage replaced by the fake (as fake-gcs-server users set it). */
const taskEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
  DATABASE_URL: db.url,
  STORAGE_EMULATOR_HOST: fake.url,
  GOOGLE_CLOUD_PROJECT: 'audit-export-test',
  ...extra,
});

const backfillArgs = (prefix: string, ...extra: string[]): string[] => [
  'backfill', '--from', '2026-09-01', '--to', '2026-12-01', '--out', `gs://${BUCKET}/${prefix}`, ...extra,
];

/** Object names under `prefix/`, without the prefix, sorted. */
const objectsUnder = (prefix: string): string[] =>
  [...fake.objects.keys()]
    .filter((key) => key.startsWith(`${BUCKET}/${prefix}/`))
    .map((key) => key.slice(`${BUCKET}/${prefix}/`.length))
    .sort();

describe('audit-export backfill to gs://', () => {
  it('spreads the units over Cloud Run tasks, stores each once with its parameters, and a retried task skips them all', async () => {
    const prefix = 'year-2026';
    const tasks = (attempt: string): Promise<CliResult[]> =>
      Promise.all(
        [0, 1].map((index) =>
          collect(startCli(backfillArgs(prefix), taskEnv({ CLOUD_RUN_TASK_INDEX: String(index), CLOUD_RUN_TASK_COUNT: '2', CLOUD_RUN_TASK_ATTEMPT: attempt }))),
        ),
      );
    const first = await tasks('0');
    for (const result of first) {
      expect(result.code, result.stderr).toBe(0);
      expect(result.summary).toMatchObject({ kind: 'backfill', units: 9, done: 9, skipped: 0, failed: 0 });
    }
    expect(objectsUnder(prefix)).toEqual([...BACKFILL_UNIT_NAMES].sort());
    const uploads = fake.count('upload');

    const unit = fake.object(BUCKET, `${prefix}/conversations_merchant-4_2026-10-01_2026-11-01_backfill-m4-2026-10.zip`);
    expect(unit?.metadata).toMatchObject({ requestId: 'backfill-m4-2026-10', rows: '6' });
    const path = join(await temporaryDirectory(), 'unit.zip');
    await writeFile(path, unit!.bytes);
    const csv = (await readZip(path)).get('conversations_merchant-4_2026-10-01_2026-11-01.csv')?.toString('utf8');
    // Header and the 2 chats x 3 messages of merchant 4 in October.
    expect(csv?.trimEnd().split('\r\n')).toHaveLength(7);

    const retried = await tasks('1');
    for (const result of retried) {
      expect(result.code, result.stderr).toBe(0);
      expect(result.summary).toMatchObject({ units: 9, done: 0, skipped: 9, failed: 0 });
      expect(result.stderr).toContain('"taskAttempt":"1"');
    }
    expect(retried.reduce((rows, result) => rows + Number(result.summary?.rows), 0)).toBe(108);
    expect(fake.count('upload')).toBe(uploads);
  }, 120_000);

  it('fails only the unit whose name holds somebody else\'s object, and never overwrites it', async () => {
    const prefix = 'foreign';
    const name = `${prefix}/conversations_merchant-2_2026-09-01_2026-10-01_backfill-m2-2026-09.zip`;
    const foreign = fake.putObject(BUCKET, name, Buffer.from('not ours'), { metadata: { owner: 'someone else' } });
    const result = await runCli(backfillArgs(prefix, '--merchant', '2', '--merchant', '3'), taskEnv());
    expect(result.code, result.stderr).toBe(1);
    expect(result.summary).toMatchObject({ units: 6, done: 5, failed: 1 });
    expect(result.stderr).toMatch(/backfill unit failed: backfill-m2-2026-09 .*already exists and is not this request's export/);
    expect(fake.object(BUCKET, name)?.bytes.toString()).toBe('not ours');
    expect(fake.object(BUCKET, name)?.generation).toBe(foreign.generation);
    expect(objectsUnder(prefix)).toHaveLength(6);
  }, 60_000);
});
