/**
 * Fault tests of the export itself, end to end through `audit-export run` (one request per process,
 * as a Cloud Run task; its retry is the same request run again): the database backend killed
 * mid-COPY, the storage server failing mid-upload. Each checks what the merchant sees: one object
 * (none from a failed attempt) with the right rows, one e-mail per recipient (through the mailer
 * child), and the request's final state (`status`). A worker killed mid-export: faults-worker.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.js';
import {
  expectDelivered,
  objectsOf,
  requestDocument,
  runRequest,
  sessionsOf,
  startRig,
  startRun,
  statusOf,
  until,
  type CliChild,
  type FaultRig,
} from './support/faults.js';
import { loadFixture } from './support/fixture.js';
import { loadVolume } from './support/volume.js';

const db = useTestDatabase();
let rig: FaultRig;

// Merchant 9: 100,000 rows (about 25 MB of CSV), enough that a COPY is still streaming when it is
// interrupted. Merchant 8: 20,000 rows, a zip of about 500 KB, for the upload faults.
const BIG = 9;
const MEDIUM = 8;
const SEPTEMBER = ['2026-09-01', '2026-10-01'] as const;

beforeAll(async () => {
  rig = await startRig(db, async (pool) => {
    await loadFixture(pool);
    await loadVolume(pool, BIG, 2000, 50);
    await loadVolume(pool, MEDIUM, 400, 50);
  });
}, 120_000);

afterAll(async () => {
  await rig?.close();
});

describe('fault: the database backend is killed mid-COPY', () => {
  it('fails the attempt cleanly (failed, no object), and the retry delivers', async () => {
    const document = requestDocument('fault-db-1', BIG, ...SEPTEMBER);
    // Stalling the upload holds the COPY open (backpressure), so it is certainly mid-stream when killed.
    const resume = rig.fake.pauseUploads();
    let first: CliChild;
    try {
      first = startRun(rig, document);
      await first.waitForLog('conversation export started', { requestId: document.requestId });
      let terminated = 0;
      await until(
        async () => {
          const { rows } = await db.pool.query<{ terminated: boolean }>(
            // The COPY's own backend only: its parallel workers show the same query text.
            `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
             WHERE query LIKE 'COPY%' AND state = 'active' AND datname = current_database()
               AND backend_type = 'client backend'`,
          );
          terminated = rows.filter((row) => row.terminated).length;
          return terminated > 0;
        },
        20_000,
        () => 'no COPY backend to terminate',
      );
      expect(terminated).toBe(1);
    } finally {
      resume();
    }
    // What the first attempt leaves: exit 1 with the summary line, the request failed with the
    // reason, no object, the upload session cancelled. Soft, so that the retry is still exercised.
    expect.soft(await first.exited, first.stderr).toBe(1);
    const failed = await statusOf(rig, document.requestId);
    expect.soft(failed, first.stderr).toMatchObject({ status: 'failed', attempts: 1, worker: null });
    expect.soft(String(failed.error)).toMatch(/terminating connection due to administrator command|Connection terminated/);
    expect.soft(first.stdout.trim().split('\n').pop(), 'the summary line').toMatch(/"status":"failed"/);
    expect.soft(objectsOf(rig, document.requestId)).toEqual([]);
    expect.soft(sessionsOf(rig, document.requestId).map((session) => session.state), 'upload sessions').toEqual(['cancelled']);

    // The retry: the same request run again, as a Cloud Run task retry does.
    const retry = await runRequest(rig, document);
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.summary).toMatchObject({ requestId: document.requestId, status: 'delivered' });
    const record = await expectDelivered(rig, document);
    expect(record.attempts).toBe(2);
    expect(record.error).toBeNull();
  });
});

describe('fault: the storage server fails mid-upload', () => {
  it('a connection dropped mid-upload fails the attempt without an object; the retry delivers', async () => {
    const document = requestDocument('fault-gcs-drop', MEDIUM, ...SEPTEMBER);
    rig.fake.injectUploadFault({ kind: 'drop', afterBytes: 256 * 1024 });
    const first = await runRequest(rig, document);
    expect(first.code, first.stderr).toBe(1);
    expect(first.summary).toMatchObject({ requestId: document.requestId, status: 'failed' });
    expect(await statusOf(rig, document.requestId)).toMatchObject({ status: 'failed', attempts: 1 });
    expect(objectsOf(rig, document.requestId)).toEqual([]);
    expect(sessionsOf(rig, document.requestId).map((session) => session.state)).toEqual(['cancelled']);

    const retry = await runRequest(rig, document);
    expect(retry.code, retry.stderr).toBe(0);
    expect((await expectDelivered(rig, document)).attempts).toBe(2);
  });

  it('a 503 after the server kept every byte: the upload resumes and the first attempt delivers', async () => {
    const document = requestDocument('fault-gcs-503', MEDIUM, ...SEPTEMBER);
    rig.fake.injectUploadFault({ kind: '503' });
    const first = await runRequest(rig, document);
    expect(first.code, first.stderr).toBe(0);
    expect((await expectDelivered(rig, document)).attempts).toBe(1);
    expect(sessionsOf(rig, document.requestId).map((session) => session.state)).toEqual(['finalized']);
  });

  it('a 503 after the server lost part of the body fails the attempt without an object; the retry delivers', async () => {
    const document = requestDocument('fault-gcs-503-lost', MEDIUM, ...SEPTEMBER);
    rig.fake.injectUploadFault({ kind: '503', persistBytes: 128 * 1024 });
    const first = await runRequest(rig, document);
    expect(first.code, first.stderr).toBe(1);
    expect(await statusOf(rig, document.requestId)).toMatchObject({ status: 'failed', attempts: 1 });
    expect(objectsOf(rig, document.requestId)).toEqual([]);
    expect(sessionsOf(rig, document.requestId).map((session) => session.state)).toEqual(['cancelled']);

    const retry = await runRequest(rig, document);
    expect(retry.code, retry.stderr).toBe(0);
    expect((await expectDelivered(rig, document)).attempts).toBe(2);
  });
});
