/**
 * Fault tests of delivery and of the workers' intake, end to end through the real CLI: SMTP down
 * for a while, garbage on the requests topic, and a burst of 50 requests against two workers. Each
 * checks what the merchant sees: one object per request with the right rows, one e-mail per
 * recipient, the request's final state; garbage leaves a rejected record with its reason and
 * nothing else.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lifecyclePoolSizes } from '../cli/commands/requests.js';
import { useTestDatabase } from './support/database.js';
import {
  expectDelivered,
  expectOneEmailPerRecipient,
  expectOneObjectWithTheRightRows,
  objectsOf,
  publish,
  recordOf,
  requestDocument,
  runRequest,
  startRig,
  topicWithSubscription,
  until,
  type FaultRig,
  type RequestDocument,
} from './support/faults.js';
import { loadFixture } from './support/fixture.js';
import { freePort, startSmtpServer, type TestSmtpServer } from './support/smtp.js';
import { loadVolume } from './support/volume.js';

const db = useTestDatabase();
let rig: FaultRig;

/** Merchants of the load test: small volume merchants, 20 chats of 5 messages each. */
const LOAD_MERCHANTS = Array.from({ length: 25 }, (_, index) => 100 + index);

beforeAll(async () => {
  rig = await startRig(db, async (pool) => {
    await loadFixture(pool);
    for (const merchant of LOAD_MERCHANTS) await loadVolume(pool, merchant, 20, 5);
  });
}, 120_000);

afterAll(async () => {
  await rig?.close();
});

describe('fault: the SMTP server is down for a while', () => {
  it('sends every e-mail once it is back, exactly once each', async () => {
    // A mailer of its own, on a ready topic of its own, pointed at a port nothing listens on yet.
    const port = await freePort();
    const { topic, subscription } = await topicWithSubscription(rig, 'ready-smtp');
    const mailer = rig.start('mailer (SMTP down)', ['mailer', '--subscription', subscription], { SMTP_URL: `smtp://127.0.0.1:${port}` });
    await mailer.waitForLog('mailer started');
    const document = requestDocument('fault-smtp-1', 1, '2026-09-01', '2026-10-31', ['ana', 'bob', 'carla']);
    const exported = await runRequest(rig, document, { READY_TOPIC: topic });
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.summary).toMatchObject({ requestId: document.requestId, status: 'delivered' });

    // The mail step cannot reach the server: it leaves the announcement for a redelivery, again and again.
    await mailer.waitForLog('announcement to be delivered again', { requestId: document.requestId }, 30_000, 3);
    const { rows: sentWhileDown } = await db.pool.query(`SELECT 1 FROM audit_export_deliveries WHERE request_id = $1 AND status = 'sent'`, [
      document.requestId,
    ]);
    expect(sentWhileDown).toEqual([]);

    let smtp: TestSmtpServer | undefined;
    try {
      smtp = await startSmtpServer({ port });
      await expectDelivered(rig, document, { smtp, mailer });
      // Nothing more comes: every redelivery still under way finds the recipients sent.
      await sleep(1_000);
      expect(smtp.messages).toHaveLength(3);
    } finally {
      await smtp?.close();
    }
    expect(await mailer.stop(), mailer.stderr).toBe(0);
  });
});

/** 100 malformed or unservable request messages, each different; `i` makes every one unique. */
function garbage(i: number): Buffer {
  const requestId = `garbage-${i}`;
  const valid = {
    kind: 'conversations',
    requestId,
    merchantId: 1,
    from: '2026-09-01',
    to: '2026-10-31',
    recipients: [`g${i}@merchant.test`],
    locale: 'en',
  };
  const variants: (() => unknown)[] = [
    () => `not json ${i}`,
    () => Buffer.from([0xff, 0xfe, i & 0xff, 0x00, 0x7b]),
    () => JSON.stringify(valid).slice(0, 20 + (i % 40)),
    () => i,
    () => [valid],
    () => null,
    () => `"${requestId}"`,
    () => ({ ...valid, kind: undefined }),
    () => ({ ...valid, kind: 'messages' }),
    () => ({ ...valid, merchantId: -i }),
    () => ({ ...valid, merchantId: `merchant-${i}` }),
    () => ({ ...valid, from: `2026-13-${String((i % 28) + 1).padStart(2, '0')}` }),
    () => ({ ...valid, from: '2026-10-31', to: '2026-09-01' }),
    () => ({ ...valid, unexpected: i }),
    () => ({ ...valid, recipients: [`not-an-address-${i}`] }),
    () => ({ ...valid, recipients: Array.from({ length: 21 }, (_, k) => `r${k}.${i}@merchant.test`) }),
    () => ({ ...valid, locale: 'fr' }),
    () => ({ ...valid, requestId: `../${i}` }),
    () => ({ ...valid, csv: { rowsPerFile: 0 } }),
    // Valid in form, unservable: found out only when the export resolves them against the database.
    () => ({ ...valid, merchantId: 999_000 + i }),
    () => ({ ...valid, merchantId: 2, from: '2026-01-01' }),
    () => ({ ...valid, merchantId: 2, timezone: 'Mars/Nowhere' }),
    () => ({ ...valid, merchantId: 3 }),
    // A ready announcement on the wrong topic.
    () => ({ requestId, kind: 'conversations', merchantId: '1', bucket: 'audit-exports', object: `x-${i}.zip`, generation: '1', recipients: [] }),
  ];
  const value = (variants[i % variants.length] as () => unknown)();
  if (Buffer.isBuffer(value)) return value;
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
}

/** Runs `work`; a failure is recorded (like `expect.soft`) instead of ending the test. */
async function softly(what: string, work: () => Promise<void>): Promise<void> {
  let failure: unknown;
  try {
    await work();
  } catch (error) {
    failure = error;
  }
  expect.soft(failure === undefined ? undefined : String(failure), what).toBeUndefined();
}

describe('fault: garbage on the requests topic', () => {
  it('records 100 garbage messages as rejected with their reasons, delivers the 5 valid requests among them, and keeps serving', async () => {
    // Acked messages are retained, so the test can replay the subscription (seek) as an operator may.
    const { topic, subscription, handle } = await topicWithSubscription(rig, 'requests-garbage', { retainAckedMessages: true });
    const worker = rig.start('worker (garbage)', ['worker', '--subscription', subscription]);
    await worker.waitForLog('worker started');
    const since = (await db.pool.query<{ now: Date }>('SELECT now()')).rows[0]?.now;
    const publishedFrom = new Date(Date.now() - 1_000);
    const valid = Array.from({ length: 5 }, (_, index) =>
      requestDocument(`fault-garbage-valid-${index}`, 1, '2026-09-01', index % 2 === 0 ? '2026-10-31' : '2026-10-01', [`v${index}`]),
    );
    // Mixed: a valid request after every 20 garbage messages or so, the first one early.
    const messages: Buffer[] = Array.from({ length: 100 }, (_, i) => garbage(i));
    valid.forEach((document, index) => messages.splice(index * 21 + 3, 0, Buffer.from(JSON.stringify(document))));
    expect(messages).toHaveLength(105);
    await publish(rig, topic, messages);

    const rejectedRows = async () =>
      (
        await db.pool.query<{ request_id: string; error: string | null }>(
          `SELECT request_id, error FROM audit_export_requests WHERE status = 'rejected' AND created_at >= $1 ORDER BY created_at`,
          [since],
        )
      ).rows;
    /** Waits until the worker rejected nothing for 2 s (it handles a message about every 0.1 s). */
    const rejectionsStopped = () =>
      until(
        () => Date.now() - Date.parse(String(worker.logged('request rejected').at(-1)?.time)) > 2_000,
        40_000,
        () => 'the worker kept rejecting',
      );
    const expectOneRecordPerGarbageMessage = async (when: string): Promise<void> => {
      const rows = await rejectedRows();
      expect
        .soft(rows.length, `rejected records for 100 garbage messages ${when}; the extra ones: ${JSON.stringify(rows.slice(100).map((row) => row.error))}`)
        .toBe(100);
    };
    await until(
      async () => (await rejectedRows()).length >= 100,
      40_000,
      () => `rejected so far: ${worker.logged('request rejected').length}; worker:\n${worker.stderr.slice(-3000)}`,
    );
    await rejectionsStopped();

    // Each garbage message left a rejected record with the reason, and nothing else.
    const rejected = await rejectedRows();
    expect(rejected.filter((row) => row.request_id.startsWith('fault-'))).toEqual([]);
    for (const row of rejected) expect(row.error, row.request_id).toMatch(/\S/);
    const reasons = rejected.map((row) => row.error as string);
    for (const expected of [/not valid JSON/, /kind/, /merchantId/, /from/, /recipients/, /locale/, /requestId/, /unknown field/, /no merchant/, /time zone/, /60 days/]) {
      expect(reasons.some((reason) => expected.test(reason)), String(expected)).toBe(true);
    }
    expect([...rig.fake.objects.values()].filter((object) => object.metadata.requestId?.startsWith('garbage-'))).toEqual([]);
    expect(rig.smtp.messages.filter((message) => message.to.some((to) => /^(g\d+|r\d+\.\d+)@/.test(to)))).toEqual([]);
    // No handler failed (a throw would nack the message into a redelivery loop).
    expect(worker.logged('The message handler failed; nacking the message for redelivery')).toEqual([]);

    // The valid requests among them are delivered, the worker logging no error on the way. Soft
    // (as the checks below), so that a failure here does not hide the replay's outcome.
    await softly('the 5 valid requests are delivered', async () => {
      await until(
        async () => {
          worker.expectNoErrorsLogged();
          const records = await Promise.all(valid.map((document) => recordOf(rig, document.requestId)));
          return records.every((record) => record?.status === 'delivered');
        },
        30_000,
        () => `not all 5 valid requests delivered; worker:\n${worker.stderr.slice(-3000)}`,
      );
      for (const document of valid) await expectDelivered(rig, document);
    });

    // Pub/Sub delivers at least once: replay every message (seek back), as a redelivery or an
    // operator's replay would. Nothing may change: no new record, object or e-mail. Then one more
    // request: the worker still serves.
    const objectsBefore = rig.fake.objects.size;
    const mailsBefore = rig.smtp.messages.length;
    const rejectionsBefore = worker.logged('request rejected').length;
    await handle.seek(publishedFrom);
    const after = requestDocument('fault-garbage-after', 1, '2026-09-02', '2026-10-31', ['late']);
    await publish(rig, topic, [after]);
    await until(
      () => worker.logged('request rejected').length > rejectionsBefore && worker.logged('export running', { requestId: after.requestId }).length > 0,
      40_000,
      () => `the replay did not reach the worker:\n${worker.stderr.slice(-3000)}`,
    );
    await rejectionsStopped();
    await expectOneRecordPerGarbageMessage('after a replay of every message');
    expect.soft(rig.fake.objects.size, 'objects after the replay: only the new request\'s').toBe(objectsBefore + 1);
    for (const document of valid) expect.soft(objectsOf(rig, document.requestId), document.requestId).toHaveLength(1);
    await softly('the request published after the replay is delivered', async () => {
      await until(
        async () => {
          worker.expectNoErrorsLogged();
          return (await recordOf(rig, after.requestId))?.status === 'delivered';
        },
        30_000,
        () => `${after.requestId} not delivered; worker:\n${worker.stderr.slice(-3000)}`,
      );
      await expectDelivered(rig, after);
      expect(rig.smtp.messages.length, 'e-mails after the replay: only the new request\'s').toBe(mailsBefore + 1);
    });
    expect(worker.logged('The message handler failed; nacking the message for redelivery')).toEqual([]);
    expect(worker.running).toBe(true);
    expect(await worker.stop(), worker.stderr).toBe(0);
  }, 120_000);
});

describe('fault: 50 requests at once against two workers', () => {
  it('delivers each exactly once, within bounded database connections and without pool timeouts', async () => {
    const { topic, subscription } = await topicWithSubscription(rig, 'requests-load');
    // Concurrency 4 per worker (8 exports at once) so the workers' pools (shared by the exports,
    // heartbeats, intake and state updates) are under real pressure.
    const workers = ['worker-a', 'worker-b'].map((name) => rig.start(name, ['worker', '--subscription', subscription, '--concurrency', '4']));
    await Promise.all(workers.map((worker) => worker.waitForLog('worker started')));
    // The default limits stay (at most 2 active exports per merchant, 60 requests per hour): 25
    // merchants with 2 requests each (two ranges), so no request can be over a limit.
    const documents: RequestDocument[] = LOAD_MERCHANTS.flatMap((merchant) => [
      requestDocument(`fault-load-${merchant}-a`, merchant, '2026-09-01', '2026-10-01', ['ops']),
      requestDocument(`fault-load-${merchant}-b`, merchant, '2026-08-31', '2026-09-30', ['ops']),
    ]);
    expect(documents).toHaveLength(50);

    // Sessions on this database per application, sampled while the burst runs.
    const peak = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await db.pool.query<{ application_name: string; n: number }>(
          `SELECT application_name, count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND backend_type = 'client backend' GROUP BY 1`,
        );
        for (const row of rows) peak.set(row.application_name, Math.max(peak.get(row.application_name) ?? 0, row.n));
        await sleep(50);
      }
    })();

    try {
      // One after the other, 20 ms apart (about a second in all): the emulator hands everything it
      // has to the first stream that asks, ignoring the client's flow control (which the real
      // service honours), so a single burst of 50 would all go to one worker. Trickled, both
      // workers usually get a share, but which worker gets what is still up to the emulator.
      for (const document of documents) {
        await publish(rig, topic, [document]);
        await sleep(20);
      }
      await until(
        async () => {
          for (const worker of workers) worker.expectNoErrorsLogged();
          const { rows } = await db.pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM audit_export_requests WHERE request_id LIKE 'fault-load-%' AND status = 'delivered'`,
          );
          return rows[0]?.n === 50;
        },
        40_000,
        () => `not all 50 delivered; workers:\n${workers.map((worker) => worker.stderr.slice(-2000)).join('\n')}`,
      );
      for (const document of documents) {
        const object = await expectOneObjectWithTheRightRows(rig, document);
        await expectOneEmailPerRecipient(rig, document, object);
      }
    } finally {
      sampling = false;
      await sampler;
    }

    for (const document of documents) {
      const record = await recordOf(rig, document.requestId);
      expect(record, document.requestId).toMatchObject({ status: 'delivered', attempts: 1, error: null, coalescedInto: null });
    }
    const logs = workers.map((worker) => worker.stderr).join('\n') + rig.mailer.stderr;
    expect(logs).not.toContain('timeout exceeded when trying to connect');
    // Each worker's pool holds at most 2 x --concurrency + 2 connections (the source and the state
    // database are one here, so one pool has both shares; see lifecyclePoolSizes), and says so.
    const pool = lifecyclePoolSizes(4, true);
    for (const worker of workers) expect(worker.logged('worker started')[0]?.pools, worker.name).toEqual(pool);
    expect(peak.get('audit-export') ?? 0, JSON.stringify([...peak])).toBeLessThanOrEqual(2 * pool.source);
    expect(peak.get('audit-export-mailer') ?? 0, JSON.stringify([...peak])).toBeLessThanOrEqual(4);
    for (const worker of workers) {
      expect(worker.logged('export failed; a redelivery retries it'), worker.name).toEqual([]);
      expect(worker.logged('lease lost (cancelled or taken over): stopping the export'), worker.name).toEqual([]);
    }
    expect(workers.map((worker) => worker.logged('export announced').length).reduce((a, b) => a + b)).toBe(50);
    for (const worker of workers) expect(await worker.stop(), worker.stderr).toBe(0);
  }, 90_000);
});
