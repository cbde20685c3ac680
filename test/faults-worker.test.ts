/**
 * Fault test: a worker killed with SIGKILL mid-export, end to end through two real `worker`
 * processes on one requests subscription. The request must come back and the other worker must
 * deliver it once: one object with the right rows, one e-mail per recipient, state delivered.
 *
 * Its own file because it waits for Pub/Sub's redelivery: the subscription's ack deadline is 10 s
 * (the minimum, and what the client library starts its leases with), but the emulator handed the
 * message of a killed subscriber to the other, already open stream only 15 to 70 s after the first
 * delivery in our runs (70 s in one CI run on a loaded machine), so the wait allows 150 s. The real
 * service redelivers once the deadline passed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.js';
import {
  expectDelivered,
  publish,
  requestDocument,
  sessionsOf,
  startRig,
  topicWithSubscription,
  until,
  type CliChild,
  type FaultRig,
} from './support/faults.js';
import { loadVolume } from './support/volume.js';

const db = useTestDatabase();
let rig: FaultRig;

// 100,000 rows: the export is certainly still running when the worker is killed.
const BIG = 9;
const SEPTEMBER = ['2026-09-01', '2026-10-01'] as const;

beforeAll(async () => {
  rig = await startRig(db, (pool) => loadVolume(pool, BIG, 2000, 50));
}, 120_000);

afterAll(async () => {
  await rig?.close();
});

describe('fault: a worker is killed (SIGKILL) mid-export', () => {
  it('the request comes back after the ack deadline and the other worker delivers it once the lease expired', async () => {
    const { topic, subscription } = await topicWithSubscription(rig, 'requests');
    const workers = ['worker-a', 'worker-b'].map((name) => rig.start(name, ['worker', '--subscription', subscription]));
    await Promise.all(workers.map((worker) => worker.waitForLog('worker started')));
    const document = requestDocument('fault-sigkill-1', BIG, ...SEPTEMBER);
    // Stalled uploads keep the export running until the kill.
    const resume = rig.fake.pauseUploads();
    let victim: CliChild;
    try {
      await publish(rig, topic, [document]);
      // Mid-export: streaming, with its upload session open.
      await until(
        () =>
          workers.some((worker) => worker.logged('conversation export started', { requestId: document.requestId }).length > 0) &&
          sessionsOf(rig, document.requestId).length > 0,
        30_000,
        () => `no worker started the export:\n${workers.map((worker) => worker.stderr).join('\n')}`,
      );
      victim = workers.find((worker) => worker.logged('export running', { requestId: document.requestId }).length > 0) as CliChild;
      victim.process.kill('SIGKILL');
      await victim.exited;
    } finally {
      resume();
    }
    const survivor = workers.find((worker) => worker !== victim) as CliChild;
    // Redelivered once the ack deadline passed (15 to 70 s with the emulator); the 2 s lease expired long before.
    await survivor.waitForLog('export announced', { requestId: document.requestId }, 150_000);
    const record = await expectDelivered(rig, document);
    expect(record.attempts).toBe(2);
    expect(record.worker).toBeNull();
    // The killed worker's upload session stays open (nobody can cancel it); it never became an object.
    expect(sessionsOf(rig, document.requestId).map((session) => session.state).sort()).toEqual(['finalized', 'open']);
    expect(survivor.running).toBe(true);
    expect(await survivor.stop(), survivor.stderr).toBe(0);
  }, 180_000);
});
