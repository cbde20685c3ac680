import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runExitCode } from '../cli/commands/requests.js';
import { migrateState } from '../db/migrate.js';
import { cancelRequest, storedRequest, type RequestRecord } from '../jobs/lifecycle/state.js';
import { parseExportRequest } from '../jobs/requests.js';
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

describe('audit-export run as a Cloud Run job task (CLOUD_RUN_JOB set): only what a retry can change exits non-zero', () => {
  const onCloudRun = async (): Promise<{ env: Record<string, string>; out: string }> => {
    const { env, out } = await environment();
    return { out, env: { ...env, CLOUD_RUN_JOB: 'audit-export-run', CLOUD_RUN_EXECUTION: 'audit-export-run-abc12', CLOUD_RUN_TASK_INDEX: '0' } };
  };
  const errorLines = (stderr: string): Record<string, unknown>[] =>
    stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => /Cloud Run/.test(String(line.message)));

  it('maps the outcomes: rejected and cancelled exit 0 there, a request handed back and a failure do not', () => {
    const outcome = (exitCode: 0 | 1 | 2 | 3, status: RequestRecord['status']) => ({ exitCode, record: { status } });
    expect(runExitCode(outcome(2, 'rejected'), true)).toBe(0);
    expect(runExitCode(outcome(3, 'cancelled'), true)).toBe(0);
    expect(runExitCode(outcome(3, 'queued'), true)).toBe(3);
    expect(runExitCode(outcome(1, 'failed'), true)).toBe(1);
    expect(runExitCode(outcome(0, 'delivered'), true)).toBe(0);
    for (const [code, status] of [[2, 'rejected'], [3, 'cancelled'], [3, 'queued'], [1, 'failed']] as const) {
      expect(runExitCode(outcome(code, status), false)).toBe(code);
    }
  });

  it('an invalid request exits 0 with the rejection in the summary line and an error log line', async () => {
    const { env } = await onCloudRun();
    const result = await runCli(['run'], { ...env, EXPORT_REQUEST: doc('cli-cloudrun-bad', { to: '2026-12-01' }) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.summary).toMatchObject({ requestId: 'cli-cloudrun-bad', status: 'rejected' });
    expect(String(result.summary?.error)).toMatch(/longer than 60 days/);
    expect(errorLines(result.stderr)).toEqual([expect.objectContaining({ severity: 'ERROR', requestId: 'cli-cloudrun-bad', status: 'rejected', exitCode: 0, outcomeExitCode: 2 })]);
  });

  it('a cancelled request exits 0 there and 3 elsewhere', async () => {
    const { env } = await onCloudRun();
    const request = parseExportRequest(JSON.parse(doc('cli-cloudrun-cancelled')));
    await db.pool.query(
      `INSERT INTO audit_export_requests (request_id, kind, merchant_id, request, status) VALUES ($1, 'conversations', '1', $2, 'queued')`,
      [request.requestId, storedRequest(request)],
    );
    expect((await cancelRequest(db.pool, request.requestId))?.status).toBe('cancelled');
    const result = await runCli(['run'], { ...env, EXPORT_REQUEST: doc('cli-cloudrun-cancelled') });
    expect(result.code, result.stderr).toBe(0);
    expect(result.summary).toMatchObject({ requestId: 'cli-cloudrun-cancelled', status: 'cancelled' });
    expect(errorLines(result.stderr)).toEqual([expect.objectContaining({ severity: 'WARNING', status: 'cancelled', exitCode: 0, outcomeExitCode: 3 })]);
    const elsewhere = await runCli(['run'], { ...env, CLOUD_RUN_JOB: undefined, EXPORT_REQUEST: doc('cli-cloudrun-cancelled') });
    expect(elsewhere.code).toBe(3);
  });

  it('SIGTERM (the task timeout) still exits 3 with the request handed back, for the retry to run it', async () => {
    const { env, out } = await onCloudRun();
    const child = startCli(['run'], { ...env, EXPORT_REQUEST: doc('cli-cloudrun-sigterm', { merchantId: 9, to: '2026-10-01' }) });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('conversation export started') && child.signalCode === null && !child.killed) child.kill('SIGTERM');
    });
    const result = await collect(child);
    expect(result.code, stderr).toBe(3);
    expect(result.summary).toMatchObject({ requestId: 'cli-cloudrun-sigterm', status: 'queued' });
    expect(await listFiles(out)).toEqual([]);
  });
});
