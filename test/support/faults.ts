/**
 * The rig of the fault tests (test/faults-*.test.ts): the real CLI as child processes against a
 * test database, the fake Cloud Storage, the Pub/Sub emulator and an in-process SMTP server, and
 * the checks of what a merchant would see (the object, its rows, the e-mails, the request's state).
 */
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CreateSubscriptionOptions, PubSub, Subscription } from '@google-cloud/pubsub';
import type pg from 'pg';
import { expect } from 'vitest';
import { readRequest, type RequestRecord } from '../../jobs/lifecycle/state.js';
import { createPubSubClient } from '../../sinks/pubsub.js';
import { runCli, startCli, type CliResult } from './cli.js';
import type { TestDatabase } from './database.js';
import { exportConversations, parseCsv, temporaryDirectory, type ExportResult } from './export.js';
import type { FakeGcs, FakeObject } from './fake-gcs.js';
import { createTopicAndSubscription, uniqueName, type PubSubEmulator } from './pubsub-emulator.js';
import type { TestSmtpServer } from './smtp.js';
import { BUCKET, startDeliveryServices } from './services.js';
import { readZip } from './zip.js';

export { BUCKET };

export const PREFIX = 'exports';

/** Polls `predicate` every 50 ms until it holds; throws `describe()` after `timeoutMs`. */
export async function until(predicate: () => boolean | Promise<boolean>, timeoutMs: number, describe: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(50);
  }
}

/** One JSON log line of a CLI child (`severity`, `message`, fields). */
export type LogLine = Record<string, unknown> & { message?: string; severity?: string };

/** A CLI child whose whole output is kept from the start (support/cli.ts `collect` attaches late). */
export class CliChild {
  readonly process: ChildProcess;
  readonly name: string;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  #exitCode: number | null | undefined;

  constructor(name: string, args: readonly string[], env: Record<string, string>) {
    this.name = name;
    this.process = startCli(args, env);
    this.process.stdout?.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.process.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) =>
      this.process.on('close', (code) => {
        this.#exitCode = code;
        resolve(code);
      }),
    );
  }

  get running(): boolean {
    return this.#exitCode === undefined;
  }

  /** The stderr lines that are JSON log lines. */
  logs(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // A line still being written.
      }
    }
    return lines;
  }

  /** Log lines with this message (and these fields, when given). */
  logged(message: string, fields: Record<string, unknown> = {}): LogLine[] {
    return this.logs().filter((line) => line.message === message && Object.entries(fields).every(([key, value]) => line[key] === value));
  }

  /** Waits until a line with `message` (and `fields`) was logged `times` times; fails at once if the child exits. */
  async waitForLog(message: string, fields: Record<string, unknown> = {}, timeoutMs = 30_000, times = 1): Promise<LogLine> {
    await until(
      () => {
        if (!this.running) throw new Error(`${this.name} exited (${this.#exitCode}) before logging "${message}":\n${this.stderr.slice(-4000)}`);
        return this.logged(message, fields).length >= times;
      },
      timeoutMs,
      () => `${this.name} did not log "${message}" ${JSON.stringify(fields)} ${times} time(s); stderr:\n${this.stderr.slice(-4000)}`,
    );
    return this.logged(message, fields)[times - 1] as LogLine;
  }

  /** Throws, quoting them, when the child logged lines of severity ERROR (or worse). */
  expectNoErrorsLogged(): void {
    const errors = this.logs().filter((line) => line.severity === 'ERROR' || line.severity === 'CRITICAL');
    if (errors.length === 0) return;
    const quoted = errors.slice(0, 3).map((line) => {
      const err = line.err as { message?: unknown } | undefined;
      return `${String(line.message)} (${JSON.stringify({ requestId: line.requestId, error: err?.message ?? line.error })})`;
    });
    throw new Error(`${this.name} logged ${errors.length} error(s), first: ${quoted.join('; ')}`);
  }

  /** SIGTERM, then the exit code. */
  async stop(): Promise<number | null> {
    if (this.running) this.process.kill('SIGTERM');
    return await this.exited;
  }
}

/** A request document as the `run` command, the worker and push take it. */
export interface RequestDocument {
  readonly kind: 'conversations';
  readonly requestId: string;
  readonly merchantId: number;
  readonly from: string;
  readonly to: string;
  readonly recipients: readonly string[];
  readonly locale: 'en' | 'es' | 'pt';
}

/** A request with one recipient per name in `who`, addresses unique to the request. */
export function requestDocument(requestId: string, merchantId: number, from: string, to: string, who: readonly string[] = ['ana', 'bob']): RequestDocument {
  return { kind: 'conversations', requestId, merchantId, from, to, recipients: who.map((name) => `${name}.${requestId}@merchant.test`), locale: 'en' };
}

/** Everything a fault test file runs against. */
export interface FaultRig {
  readonly db: TestDatabase;
  readonly fake: FakeGcs;
  readonly emulator: PubSubEmulator;
  readonly smtp: TestSmtpServer;
  /** The environment of every CLI child: the test database, the fake, the emulator, SMTP, short leases. */
  readonly env: Record<string, string>;
  readonly pubsub: PubSub;
  /** The mailer on the ready topic (`env.READY_TOPIC`), sending through {@link smtp}. */
  readonly mailer: CliChild;
  /** Every child started through {@link FaultRig.start}. */
  readonly children: CliChild[];
  start(name: string, args: readonly string[], env?: Record<string, string>): CliChild;
  close(): Promise<void>;
}

/**
 * Starts the rig after `load` filled the source database: state tables, fake Cloud Storage with a
 * test service account, the emulator with a ready topic and the mailer's subscription (ack deadline
 * 10 s), the SMTP server, and one `mailer --subscription` child.
 */
export async function startRig(db: TestDatabase, load: (pool: pg.Pool) => Promise<void>): Promise<FaultRig> {
  await load(db.pool);
  const services = await startDeliveryServices(db);
  const { fake, emulator, smtp, mailerSubscription } = services;
  const env: Record<string, string> = {
    ...services.env,
    STATE_DATABASE_URL: db.url,
    OUTPUT_URI: `gs://${BUCKET}/${PREFIX}`,
    LEASE_SECONDS: '2',
    HEARTBEAT_MS: '200',
    // The load test sends 50 e-mails; the default 10 per second would only slow the test down.
    MAIL_RATE_LIMIT: '200',
  };
  const pubsub = createPubSubClient(env);
  const children: CliChild[] = [];
  const start = (name: string, args: readonly string[], extra: Record<string, string> = {}): CliChild => {
    const child = new CliChild(name, args, { ...env, ...extra });
    children.push(child);
    return child;
  };
  const mailer = start('mailer', ['mailer', '--subscription', mailerSubscription]);
  await mailer.waitForLog('mailer started');
  return {
    db,
    fake,
    emulator,
    smtp,
    env,
    pubsub,
    mailer,
    children,
    start,
    async close() {
      for (const child of children) {
        if (child.running) child.process.kill('SIGKILL');
      }
      await Promise.all(children.map((child) => child.exited));
      await pubsub.close().catch(() => {});
      await services.close();
    },
  };
}

/** A topic and a subscription on it (ack deadline 10 s, Pub/Sub's minimum), for workers or a mailer. */
export async function topicWithSubscription(
  rig: FaultRig,
  prefix: string,
  options: CreateSubscriptionOptions = {},
): Promise<{ topic: string; subscription: string; handle: Subscription }> {
  const topic = uniqueName(prefix);
  const subscription = uniqueName(`${prefix}-sub`);
  const created = await createTopicAndSubscription(rig.pubsub, topic, subscription, { ackDeadlineSeconds: 10, ...options });
  return { topic, subscription, handle: created.subscription };
}

/** Publishes each document (as JSON, or as given when a string or Buffer) on `topic`. */
export async function publish(rig: FaultRig, topic: string, messages: readonly (RequestDocument | string | Buffer | Record<string, unknown>)[]): Promise<void> {
  const target = rig.pubsub.topic(topic);
  await Promise.all(
    messages.map((message) =>
      target.publishMessage({
        data: Buffer.isBuffer(message) ? message : Buffer.from(typeof message === 'string' ? message : JSON.stringify(message)),
      }),
    ),
  );
}

/** `audit-export run` with the document in EXPORT_REQUEST. */
export async function runRequest(rig: FaultRig, document: RequestDocument, extra: Record<string, string> = {}): Promise<CliResult> {
  return await runCli(['run'], { ...rig.env, ...extra, EXPORT_REQUEST: JSON.stringify(document) });
}

/** Starts `audit-export run` with the document in EXPORT_REQUEST. */
export function startRun(rig: FaultRig, document: RequestDocument, extra: Record<string, string> = {}): CliChild {
  return rig.start(`run ${document.requestId}`, ['run'], { ...extra, EXPORT_REQUEST: JSON.stringify(document) });
}

/** The request's record as the `status` command prints it. */
export async function statusOf(rig: FaultRig, requestId: string): Promise<RequestRecord> {
  const result = await runCli(['status', requestId], rig.env);
  expect(result.code, result.stderr).toBe(0);
  return result.summary as unknown as RequestRecord;
}

/** The request's record, read from the state table. */
export async function recordOf(rig: FaultRig, requestId: string): Promise<RequestRecord | undefined> {
  return await readRequest(rig.db.pool, requestId);
}

/** Every live object in the fake bucket that belongs to the request (its metadata names it). */
export function objectsOf(rig: FaultRig, requestId: string): FakeObject[] {
  return [...rig.fake.objects.values()].filter((object) => object.bucket === BUCKET && object.metadata.requestId === requestId);
}

/** The resumable upload sessions opened for the request's object, in order. */
export function sessionsOf(rig: FaultRig, requestId: string): { state: string; size: number }[] {
  return [...rig.fake.sessions.values()].filter((session) => session.name.endsWith(`_${requestId}.zip`));
}

const localExports = new Map<string, Promise<ExportResult>>();

/** The export of the same merchant and range straight into a local file, read back (cached). */
export async function localExport(rig: FaultRig, merchantId: number, from: string, to: string): Promise<ExportResult> {
  const key = `${merchantId}/${from}/${to}`;
  let result = localExports.get(key);
  if (result === undefined) {
    result = exportConversations(rig.db.pool, { merchantId, from, to });
    localExports.set(key, result);
  }
  return await result;
}

/**
 * Asserts the request ended as a merchant should see it: exactly one object in the bucket, whose
 * zip holds the same CSV as a local export of the same merchant and range.
 * @returns the object.
 */
export async function expectOneObjectWithTheRightRows(rig: FaultRig, document: RequestDocument): Promise<FakeObject> {
  const objects = objectsOf(rig, document.requestId);
  expect(objects.map((object) => object.name)).toEqual([
    `${PREFIX}/conversations_merchant-${document.merchantId}_${document.from}_${document.to}_${document.requestId}.zip`,
  ]);
  const object = objects[0] as FakeObject;
  const path = join(await temporaryDirectory(), 'download.zip');
  await writeFile(path, object.bytes);
  const downloaded = await readZip(path);
  const local = await localExport(rig, document.merchantId, document.from, document.to);
  expect([...downloaded.keys()]).toEqual([...local.csvFiles.keys()]);
  for (const [name, bytes] of downloaded) {
    const expected = local.csvFiles.get(name) as Buffer;
    // Byte for byte; parsed only to show a readable difference when they differ.
    if (!bytes.equals(expected)) expect(parseCsv(bytes)).toEqual(parseCsv(expected));
  }
  expect(object.metadata.rows).toBe(String(local.summary.rows));
  return object;
}

/** The rows of `audit_export_deliveries` of one request: recipient → status. */
export async function deliveriesOf(rig: FaultRig, requestId: string): Promise<Map<string, string>> {
  const { rows } = await rig.db.pool.query<{ recipient: string; status: string }>(
    'SELECT recipient, status FROM audit_export_deliveries WHERE request_id = $1',
    [requestId],
  );
  return new Map(rows.map((row) => [row.recipient, row.status]));
}

/**
 * Waits until every recipient of the request got its e-mail and the mail step acknowledged the
 * announcement (logged "announcement handled" for it), then asserts each got exactly one, recorded
 * as sent, whose link downloads exactly the stored object.
 */
export async function expectOneEmailPerRecipient(
  rig: FaultRig,
  document: RequestDocument,
  object: FakeObject,
  options: { smtp?: TestSmtpServer; mailer?: CliChild; timeoutMs?: number } = {},
): Promise<void> {
  const smtp = options.smtp ?? rig.smtp;
  const mailer = options.mailer ?? rig.mailer;
  const mailsTo = (recipient: string) => smtp.messages.filter((message) => message.to.includes(recipient));
  await until(
    () => document.recipients.every((recipient) => mailsTo(recipient).length > 0),
    options.timeoutMs ?? 30_000,
    () => `e-mails of ${document.requestId}: ${document.recipients.map((r) => `${r}: ${mailsTo(r).length}`).join(', ')}; mailer:\n${mailer.stderr.slice(-3000)}`,
  );
  await mailer.waitForLog('announcement handled', { requestId: document.requestId }, options.timeoutMs ?? 30_000);
  const deliveries = await deliveriesOf(rig, document.requestId);
  for (const recipient of document.recipients) {
    expect(mailsTo(recipient), recipient).toHaveLength(1);
    expect(deliveries.get(recipient), recipient).toBe('sent');
  }
  const mail = mailsTo(document.recipients[0] as string)[0];
  const link = /https?:\/\/\S+X-Goog-Signature=[0-9a-f]+/.exec(mail?.parsed.text ?? '')?.[0];
  expect(link, mail?.parsed.text).toBeDefined();
  const response = await fetch(link as string);
  expect(response.status).toBe(200);
  expect(Buffer.from(await response.arrayBuffer()).equals(object.bytes)).toBe(true);
}

/** Asserts the request is delivered (per the `status` command) and everything the merchant sees is right. */
export async function expectDelivered(
  rig: FaultRig,
  document: RequestDocument,
  options: { smtp?: TestSmtpServer; mailer?: CliChild; timeoutMs?: number } = {},
): Promise<RequestRecord> {
  const record = await statusOf(rig, document.requestId);
  expect(record.status, JSON.stringify(record)).toBe('delivered');
  const object = await expectOneObjectWithTheRightRows(rig, document);
  expect(record.uri).toBe(`gs://${BUCKET}/${object.name}`);
  expect(record.rows).toBe(Number(object.metadata.rows));
  await expectOneEmailPerRecipient(rig, document, object, options);
  return record;
}
