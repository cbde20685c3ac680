import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { migrateState } from '../db/migrate.js';
import { collect, runCli, startCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { listFiles, temporaryDirectory } from './support/export.js';
import { loadFixture } from './support/fixture.js';
import { loadVolume } from './support/volume.js';

const db = useTestDatabase();
beforeAll(async () => {
  await loadFixture(db.pool);
  await loadVolume(db.pool, 9, 4000, 50);
  await migrateState(db.pool);
}, 120_000);

const doc = (requestId: string, fields: Record<string, unknown> = {}): string =>
  JSON.stringify({ kind: 'conversations', merchantId: 1, from: '2026-09-01', to: '2026-10-31', requestId, ...fields });

async function environment(): Promise<{ env: Record<string, string>; out: string }> {
  const out = await temporaryDirectory();
  return { out, env: { DATABASE_URL: db.url, OUTPUT_URI: `file://${out}`, HEARTBEAT_MS: '200' } };
}

describe('audit-export run, status, list, cancel', () => {
  it('runs a request from a file, prints the summary line, and the same request again (base64 in EXPORT_REQUEST) exports nothing new', async () => {
    const { env, out } = await environment();
    const file = join(out, '..', `request-${Date.now()}.json`);
    await writeFile(file, doc('cli-run-1'));
    const first = await runCli(['run', '--request', file], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.summary).toMatchObject({ requestId: 'cli-run-1', kind: 'conversations', rows: 10, status: 'uploaded' });
    expect(Object.keys(first.summary ?? {}).slice(0, 6)).toEqual(['requestId', 'kind', 'uri', 'rows', 'files', 'bytes']);
    const again = await runCli(['run'], { ...env, EXPORT_REQUEST: Buffer.from(doc('cli-run-1')).toString('base64') });
    expect(again.code, again.stderr).toBe(0);
    expect(again.summary).toEqual(first.summary);
    expect(await listFiles(out)).toHaveLength(1);

    const status = await runCli(['status', 'cli-run-1'], env);
    expect(status.code).toBe(0);
    expect(status.stdout.trim().split('\n')).toHaveLength(1);
    expect(status.summary).toMatchObject({ requestId: 'cli-run-1', status: 'uploaded', rows: 10, uri: first.summary?.uri, error: null, coalescedInto: null });
  });

  it('refuses a request with other parameters under a used id: exit 2, the summary says why, the stored request is left alone', async () => {
    const { env } = await environment();
    const before = await runCli(['status', 'cli-run-1'], env);
    const other = await runCli(['run'], { ...env, EXPORT_REQUEST: doc('cli-run-1', { merchantId: 2, locale: 'es' }) });
    expect(other.code, other.stderr).toBe(2);
    expect(other.summary).toEqual({
      requestId: 'cli-run-1',
      kind: 'conversations',
      uri: null,
      rows: null,
      files: [],
      bytes: null,
      status: 'rejected',
      error: 'requestId cli-run-1 was already used with other parameters: merchantId, locale',
    });
    expect((await runCli(['status', 'cli-run-1'], env)).summary).toEqual(before.summary);
  });

  it('reads the request from stdin too, and rejects an invalid one with exit 2 and the reason', async () => {
    const { env } = await environment();
    const child = startCli(['run', '--request', '-'], env, undefined, 'pipe');
    child.stdin?.end(doc('cli-run-bad', { from: '2026-09-01', to: '2026-12-01' }));
    const result = await collect(child);
    expect(result.code).toBe(2);
    expect(result.summary).toMatchObject({ requestId: 'cli-run-bad', status: 'rejected' });
    expect(String(result.summary?.error)).toMatch(/longer than 60 days/);
  });

  it('status and cancel of an unknown request exit 2; list shows the merchant\'s requests', async () => {
    const { env } = await environment();
    expect((await runCli(['status', 'no-such-request'], env)).code).toBe(2);
    expect((await runCli(['cancel', 'no-such-request'], env)).code).toBe(2);
    const list = await runCli(['list', '--merchant', '1'], env);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n').map((line) => JSON.parse(line) as { requestId: string });
    expect(lines.map((line) => line.requestId)).toContain('cli-run-1');
  });

  it('cancel stops a running request within 2 seconds: run exits 3 and leaves nothing; a finished one cannot be cancelled', async () => {
    const { env, out } = await environment();
    const child = startCli(['run'], { ...env, EXPORT_REQUEST: doc('cli-cancel-1', { merchantId: 9, to: '2026-10-01' }) });
    let stderr = '';
    let cancelledAt = 0;
    const cancelled = new Promise<void>((resolve) => {
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (cancelledAt === 0 && stderr.includes('conversation export started')) {
          cancelledAt = performance.now();
          void runCli(['cancel', 'cli-cancel-1'], env).then((result) => {
            expect(result.code, result.stderr).toBe(0);
            resolve();
          });
        }
      });
    });
    const result = await collect(child);
    await cancelled;
    expect(result.code, stderr).toBe(3);
    expect(performance.now() - cancelledAt).toBeLessThan(4000);
    expect(await listFiles(out)).toEqual([]);
    expect(result.summary).toMatchObject({ requestId: 'cli-cancel-1', status: 'cancelled' });

    const finished = await runCli(['cancel', 'cli-run-1'], env);
    expect(finished.code).toBe(2);
    expect(finished.stderr).toMatch(/is uploaded; only queued, running or failed requests can be cancelled/);
  });
});
