import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPubSubClient } from '../sinks/pubsub.js';
import { collect, runCli, startCli } from './support/cli.js';
import { useTestDatabase } from './support/database.js';
import { exportConversations as exportLocally, parseCsv, temporaryDirectory } from './support/export.js';
import type { FakeGcs } from './support/fake-gcs.js';
import { loadFixture } from './support/fixture.js';
import { BUCKET, startDeliveryServices, type DeliveryServices } from './support/services.js';
import type { TestSmtpServer } from './support/smtp.js';
import { loadVolume } from './support/volume.js';
import { readZip } from './support/zip.js';

const db = useTestDatabase();
let services: DeliveryServices;
let fake: FakeGcs;
let smtp: TestSmtpServer;
let env: Record<string, string>;
let subscription: string;

beforeAll(async () => {
  await loadFixture(db.pool);
  await loadVolume(db.pool, 9, 2000, 50);
  services = await startDeliveryServices(db);
  ({ fake, smtp, env, mailerSubscription: subscription } = services);
}, 120_000);

afterAll(async () => {
  await services?.close();
});

const RECIPIENTS = ['ana@merchant.test', 'bob@merchant.test', 'carla@merchant.test'];
const exportArgs = (requestId: string, ...extra: string[]): string[] => [
  'export', 'conversations', '--merchant', '1', '--from', '2026-09-01', '--to', '2026-10-31',
  '--out', `gs://${BUCKET}/exports/`, '--request-id', requestId, ...extra,
];

/** Waits until `predicate` holds for the text a child wrote to stderr so far. */
async function waitForLog(child: ChildProcess, predicate: (stderr: string) => boolean, timeoutMs = 30_000): Promise<string> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate(stderr)) return stderr;
    await sleep(50);
  }
  throw new Error(`timed out waiting for the log; got:\n${stderr}`);
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

describe('delivery: Cloud Storage, the ready announcement and the mail step, end to end', () => {
  it('e-mails each recipient once a signed link that downloads the export, and a redelivery sends nothing new', async () => {
    const exported = await runCli(exportArgs('e2e-1', ...RECIPIENTS.flatMap((to) => ['--email', to]), '--locale', 'es'), env);
    expect(exported.code, exported.stderr).toBe(0);
    const uri = String(exported.summary?.uri);
    expect(uri).toMatch(/^gs:\/\/audit-exports\/exports\/conversations_merchant-1_2026-09-01_2026-10-31_e2e-1\.zip$/);
    const objectName = uri.slice(`gs://${BUCKET}/`.length);
    const stored = fake.object(BUCKET, objectName);
    expect(stored?.contentType).toBe('application/zip');
    expect(stored?.contentDisposition).toBe('attachment; filename="conversations_merchant-1_2026-09-01_2026-10-31_e2e-1.zip"');
    expect(stored?.metadata).toMatchObject({ requestId: 'e2e-1', kind: 'conversations', merchantId: '1', rows: String(exported.summary?.rows) });
    expect(exported.summary?.bytes).toBe(stored?.bytes.length);
    expect(exported.stderr).toContain('export announced');

    const mailer = startCli(['mailer', '--subscription', subscription], env);
    try {
      await smtp.waitForMessages(3, 30_000);
      const mails = smtp.messages.slice(0, 3);
      expect(mails.flatMap((mail) => mail.to).sort()).toEqual(RECIPIENTS);
      const local = await exportLocally(db.pool, { merchantId: 1, from: '2026-09-01', to: '2026-10-31' });
      for (const mail of mails) {
        expect(mail.parsed.subject).toBe('B2Chat Exporting messages');
        const link = /https?:\/\/\S+X-Goog-Signature=[0-9a-f]+/.exec(mail.parsed.text ?? '')?.[0];
        expect(link, mail.parsed.text).toBeDefined();
        const url = new URL(link!);
        expect(url.origin).toBe(fake.url);
        expect(url.searchParams.get('X-Goog-Expires')).toBe('604800');
        const response = await fetch(url);
        expect(response.status).toBe(200);
        const zipPath = join(await temporaryDirectory(), 'download.zip');
        await writeFile(zipPath, Buffer.from(await response.arrayBuffer()));
        const downloaded = await readZip(zipPath);
        expect([...downloaded.keys()]).toEqual([...local.csvFiles.keys()]);
        for (const [name, bytes] of downloaded) expect(parseCsv(bytes)).toEqual(parseCsv(local.csvFiles.get(name)!));
        expect(mail.parsed.text).toContain(`${exported.summary?.rows}`.replace(/\B(?=(\d{3})+(?!\d))/g, '.'));
      }

      // A tampered or expired link is refused.
      const link = new URL(/https?:\/\/\S+X-Goog-Signature=[0-9a-f]+/.exec(mails[0]!.parsed.text ?? '')![0]);
      const tampered = new URL(link);
      const signature = tampered.searchParams.get('X-Goog-Signature')!;
      tampered.searchParams.set('X-Goog-Signature', `${signature.slice(0, -1)}${signature.endsWith('0') ? '1' : '0'}`);
      expect((await fetch(tampered)).status).toBe(403);
      fake.clockSkewMs = 604_801_000;
      try {
        expect((await fetch(link)).status).toBe(403);
      } finally {
        fake.clockSkewMs = 0;
      }

      // A rerun of the same request finds the object, announces it again without exporting again,
      // and the mail step sends nothing new.
      const initiated = fake.count('initiate');
      const rerun = await runCli(exportArgs('e2e-1', ...RECIPIENTS.flatMap((to) => ['--email', to]), '--locale', 'es'), env);
      expect(rerun.code, rerun.stderr).toBe(0);
      expect(rerun.summary).toEqual(exported.summary);
      expect(rerun.stderr).toContain('already stored; not exporting again');
      expect(fake.count('initiate')).toBe(initiated);
      const log = await waitForLog(mailer, (stderr) => count(stderr, '"announcement handled"') >= 2);
      expect(log).toMatch(/"announcement handled".*"sent":0,"skipped":3/s);
      expect(smtp.messages).toHaveLength(3);

      // A malformed announcement is acknowledged and reported, never a crash loop.
      const pubsub = createPubSubClient(env);
      await pubsub.topic(env.READY_TOPIC!).publishMessage({ data: Buffer.from('{"not": "an announcement"}') });
      await pubsub.close();
      const afterGarbage = await waitForLog(mailer, (stderr) => stderr.includes('malformed announcement'));
      expect(afterGarbage).toContain('acknowledged without sending');
      expect(afterGarbage).not.toContain('ana@merchant.test');
    } finally {
      mailer.kill('SIGTERM');
      const stopped = await collect(mailer);
      expect(stopped.code, stopped.stderr).toBe(0);
    }
  });

  it('fails with a clear error when the topic is missing, and a rerun announces without exporting again', async () => {
    const missing = await runCli(exportArgs('e2e-2', '--email', 'dora@merchant.test'), { ...env, READY_TOPIC: 'no-such-topic' });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Pub/Sub topic "no-such-topic" does not exist');
    const objects = fake.objects.size;
    const initiated = fake.count('initiate');
    const rerun = await runCli(exportArgs('e2e-2', '--email', 'dora@merchant.test'), env);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(fake.count('initiate')).toBe(initiated);
    expect(fake.objects.size).toBe(objects);
  });

  it('announces nothing without --email', async () => {
    const result = await runCli(exportArgs('e2e-3'), { ...env, READY_TOPIC: 'no-such-topic' });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain('export announced');
  });

  it('leaves no object when a Cloud Storage export is cancelled', async () => {
    const objects = fake.objects.size;
    const child = startCli(
      ['export', 'conversations', '--merchant', '9', '--from', '2026-09-01', '--to', '2026-10-01', '--out', `gs://${BUCKET}/exports`],
      env,
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('conversation export started') && !child.killed) child.kill('SIGTERM');
    });
    const result = await collect(child);
    expect(result.code, stderr).toBe(3);
    expect(fake.objects.size).toBe(objects);
  });

  it('serves Pub/Sub pushes: health check, and each push e-mails once', async () => {
    const before = smtp.messages.length;
    const server = startCli(['serve', '--port', '0', '--host', '127.0.0.1'], env);
    try {
      const log = await waitForLog(server, (stderr) => stderr.includes('push endpoint listening'));
      const base = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(log)?.[1];
      expect(base).toBeDefined();
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const object = [...fake.objects.values()].find((candidate) => candidate.metadata.requestId === 'e2e-3')!;
      const announcement = {
        requestId: 'e2e-3', kind: 'conversations', merchantId: '1', bucket: BUCKET, object: object.name,
        generation: object.generation, bytes: object.bytes.length, rows: 10, files: ['x.csv'],
        recipients: ['eve@merchant.test'], locale: 'pt', linkSeconds: 604800, createdAt: new Date().toISOString(),
        uri: `gs://${BUCKET}/${object.name}`, parameters: { from: '2026-09-01', to: '2026-10-31', timezone: 'America/Bogota', filters: {} },
      };
      const push = async (): Promise<number> =>
        (
          await fetch(`${base}/pubsub/push`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({
              message: { data: Buffer.from(JSON.stringify(announcement)).toString('base64'), messageId: '42', attributes: { kind: 'conversations', requestId: 'e2e-3' } },
              subscription: 'projects/p/subscriptions/push',
            }),
          })
        ).status;
      expect(await push()).toBe(204);
      expect(await push()).toBe(204);
      expect(smtp.messages.length).toBe(before + 1);
      expect(smtp.messages.at(-1)?.to).toEqual(['eve@merchant.test']);
    } finally {
      server.kill('SIGTERM');
      const stopped = await collect(server);
      expect(stopped.code, stopped.stderr).toBe(0);
    }
  });
});
