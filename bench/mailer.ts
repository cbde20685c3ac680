/**
 * The mailer's benchmark: the built CLI's `mailer` (streaming pull) e-mailing 100 recipients
 * (5 announcements of 20, the most one request may name) through the test SMTP server, with the
 * Pub/Sub emulator and the fake Cloud Storage's test service account signing the links.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PubSub } from '@google-cloud/pubsub';
import { createPubSubClient } from '../sinks/pubsub.js';
import { createTopicAndSubscription, startPubSubEmulator, uniqueName, type PubSubEmulator } from '../test/support/pubsub-emulator.js';
import { startSmtpServer, type TestSmtpServer } from '../test/support/smtp.js';
import type { RunFigures } from './report.js';

/** Announcements per run: 5 x 20 = 100 e-mails. */
export const MAIL_ANNOUNCEMENTS = 5;
/** Recipients per announcement: the most one request may name. */
export const MAIL_RECIPIENTS_EACH = 20;
const MAIL_TOTAL = MAIL_ANNOUNCEMENTS * MAIL_RECIPIENTS_EACH;
const BUCKET = 'audit-exports';
const MiB = 1024 * 1024;

/** What the mail runs need from the rest of the benchmark. */
export interface MailBenchOptions {
  /** The built CLI (`dist/cli/main.js`). */
  readonly cliPath: string;
  /** A migrated state database. */
  readonly stateUrl: string;
  /** The fake Cloud Storage and a key file it trusts: the mailer signs each link with it. */
  readonly gcsUrl: string;
  readonly keyFile: string;
  /**
   * Stores a small object on the fake Cloud Storage and returns its generation: the mailer checks
   * that the announced object (that generation) exists before it e-mails a link to it.
   */
  readonly putObject: (bucket: string, name: string) => { readonly generation: string; readonly size: number };
  /** `MAIL_RATE_LIMIT` for the mailer: messages per second. */
  readonly rateLimit: number;
}

/** The running services; {@link MailBench.run} measures one run. */
export interface MailBench {
  run(round: number): Promise<RunFigures>;
  close(): Promise<void>;
}

/** Starts the Pub/Sub emulator and the SMTP server. Throws when the emulator is not installed. */
export async function startMailBench(options: MailBenchOptions): Promise<MailBench> {
  const emulator = await startPubSubEmulator();
  let smtp: TestSmtpServer | undefined;
  let pubsub: PubSub | undefined;
  try {
    smtp = await startSmtpServer();
    const env: Record<string, string> = {
      DATABASE_URL: options.stateUrl,
      GCS_API_ENDPOINT: options.gcsUrl,
      GOOGLE_APPLICATION_CREDENTIALS: options.keyFile,
      GOOGLE_CLOUD_PROJECT: emulator.projectId,
      PUBSUB_EMULATOR_HOST: emulator.host,
      METADATA_SERVER_DETECTION: 'none',
      SMTP_URL: smtp.url,
      MAIL_FROM: 'Exports <exports@b2chat.test>',
      MAIL_RATE_LIMIT: String(options.rateLimit),
      LOG_LEVEL: 'info',
    };
    pubsub = createPubSubClient(env);
    return mailBench(options, emulator, smtp, pubsub, env);
  } catch (error) {
    await pubsub?.close();
    await smtp?.close();
    await emulator.stop();
    throw error;
  }
}

function mailBench(options: MailBenchOptions, emulator: PubSubEmulator, smtp: TestSmtpServer, pubsub: PubSub, env: Record<string, string>): MailBench {
  const announcement = (requestId: string, recipients: readonly string[]): Buffer => {
    const object = `bench/conversations_merchant-1_2026-09-01_2026-10-31_${requestId}.zip`;
    const stored = options.putObject(BUCKET, object);
    return Buffer.from(
      JSON.stringify({
        requestId,
        kind: 'conversations',
        merchantId: '1',
        bucket: BUCKET,
        object,
        generation: stored.generation,
        bytes: stored.size,
        rows: 1_000_000,
        files: ['conversations_merchant-1_2026-09-01_2026-10-31.csv'],
        recipients,
        locale: 'en',
        linkSeconds: 604_800,
        createdAt: new Date().toISOString(),
        uri: `gs://${BUCKET}/${object}`,
        parameters: {
          from: '2026-09-01',
          to: '2026-10-31',
          timezone: 'America/Bogota',
          filters: { agentIds: [], providers: [], aliases: [], statuses: ['CLOSED'] },
        },
      }),
    );
  };

  return {
    async run(round) {
      // A topic and subscription per run, so that nothing a previous run left unacknowledged comes back.
      const topicName = uniqueName('bench-ready');
      const subscriptionName = uniqueName('bench-mailer');
      const { topic, subscription } = await createTopicAndSubscription(pubsub, topicName, subscriptionName, { ackDeadlineSeconds: 60 });
      const child = spawn(process.execPath, ['--max-semi-space-size=2', options.cliPath, 'mailer', '--subscription', subscriptionName], {
        env: { ...process.env, ...env, READY_TOPIC: topicName },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      child.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000)));
      const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
      try {
        await waitFor(() => log.includes('"mailer started"'), child, () => log, 30_000);
        smtp.messages.length = 0;
        // One e-mail first: the pull stream is open and the SMTP pool connected before timing starts.
        await topic.publishMessage({ data: announcement(`bench-${round}-warm-${uniqueName('r')}`, ['warm-up@merchant.test']) });
        await waitFor(() => smtp.messages.length >= 1, child, () => log, 60_000);
        const warmed = smtp.messages.length;

        const started = performance.now();
        const id = uniqueName('r');
        await Promise.all(
          Array.from({ length: MAIL_ANNOUNCEMENTS }, (_, index) =>
            topic.publishMessage({
              data: announcement(
                `bench-${round}-${id}-${index}`,
                Array.from({ length: MAIL_RECIPIENTS_EACH }, (_, n) => `user-${index}-${n}@merchant.test`),
              ),
            }),
          ),
        );
        await waitFor(() => smtp.messages.length >= warmed + MAIL_TOTAL, child, () => log, 300_000);
        const sent = smtp.messages.slice(warmed, warmed + MAIL_TOTAL);
        const last = Math.max(...sent.map((message) => message.acceptedAt));
        const maxRssMiB = await peakRssMiB(child);
        return {
          seconds: (last - started) / 1000,
          rows: sent.length,
          bytes: sent.reduce((total, message) => total + message.raw.length, 0),
          maxRssMiB,
        };
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const stopped = await Promise.race([closed, sleep(40_000, 'timeout' as const)]);
        if (stopped === 'timeout') {
          child.kill('SIGKILL');
          await closed;
        }
        await subscription.delete().catch(() => {});
        await topic.delete().catch(() => {});
      }
    },
    async close() {
      await pubsub.close();
      await smtp.close();
      await emulator.stop();
    },
  };
}

/** Waits until `done` holds; fails early, with the log's tail, when the child exits. */
async function waitFor(done: () => boolean, child: ChildProcess, log: () => string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the mailer exited (${child.exitCode ?? child.signalCode}):\n${log()}`);
    if (performance.now() > deadline) throw new Error(`the mailer did not get there within ${timeoutMs} ms:\n${log().slice(-4_000)}`);
    await sleep(5);
  }
}

/**
 * A running child's peak RSS so far, from Linux's `VmHWM` (the high-water mark `getrusage`'s
 * `ru_maxrss` reports after exit); null where /proc is not there.
 */
export async function peakRssMiB(child: ChildProcess): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    return kib === undefined ? null : (Number(kib) * 1024) / MiB;
  } catch {
    return null;
  }
}
