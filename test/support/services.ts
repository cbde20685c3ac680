import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrateState } from '../../db/migrate.js';
import { createPubSubClient } from '../../sinks/pubsub.js';
import type { TestDatabase } from './database.js';
import { createTestServiceAccount, startFakeGcs, type FakeGcs } from './fake-gcs.js';
import { createTopicAndSubscription, startPubSubEmulator, uniqueName, type PubSubEmulator } from './pubsub-emulator.js';
import { startSmtpServer, type TestSmtpServer } from './smtp.js';

/** The bucket the fake Cloud Storage serves. */
export const BUCKET = 'audit-exports';

/** Everything delivery needs, running on this machine, and the CLI environment that points at it. */
export interface DeliveryServices {
  readonly fake: FakeGcs;
  readonly emulator: PubSubEmulator;
  readonly smtp: TestSmtpServer;
  /** For CLI children: the test database (source and state), the fake, the emulator, SMTP, the ready topic. */
  readonly env: Record<string, string>;
  /** The mailer's subscription on the ready topic (ack deadline 10 s, Pub/Sub's minimum). */
  readonly mailerSubscription: string;
  close(): Promise<void>;
}

/**
 * Starts the fake Cloud Storage (with a test service account that signs links), the Pub/Sub
 * emulator with a ready topic and a mailer subscription, and an SMTP server; creates the state
 * tables in the test database.
 */
export async function startDeliveryServices(db: TestDatabase): Promise<DeliveryServices> {
  await migrateState(db.pool);
  const fake = await startFakeGcs({ buckets: [BUCKET] });
  const account = await createTestServiceAccount(fake, await mkdtemp(join(tmpdir(), 'audit-export-sa-')));
  const emulator = await startPubSubEmulator();
  const smtp = await startSmtpServer();
  const readyTopic = uniqueName('ready');
  const mailerSubscription = uniqueName('mailer');
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    GCS_API_ENDPOINT: fake.url,
    GOOGLE_APPLICATION_CREDENTIALS: account.keyFile,
    GOOGLE_CLOUD_PROJECT: emulator.projectId,
    PUBSUB_EMULATOR_HOST: emulator.host,
    METADATA_SERVER_DETECTION: 'none',
    READY_TOPIC: readyTopic,
    SMTP_URL: smtp.url,
    MAIL_FROM: 'Exports <exports@b2chat.test>',
  };
  const pubsub = createPubSubClient(env);
  try {
    await createTopicAndSubscription(pubsub, readyTopic, mailerSubscription, { ackDeadlineSeconds: 10 });
  } finally {
    await pubsub.close();
  }
  return {
    fake,
    emulator,
    smtp,
    env,
    mailerSubscription,
    async close() {
      await smtp.close();
      await emulator.stop();
      await fake.close();
    },
  };
}
