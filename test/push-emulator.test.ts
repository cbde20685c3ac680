import type { PubSub } from '@google-cloud/pubsub';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseAnnouncement } from '../jobs/announcement.js';
import type { MessageHandler } from '../jobs/mailer/handler.js';
import { startPushServer, type PushServer } from '../jobs/mailer/push-server.js';
import { createPubSubClient, publishAnnouncement } from '../sinks/pubsub.js';
import { sampleAnnouncement } from './support/announcements.js';
import { memoryLogger } from './support/memory-logger.js';
import { createTopicAndSubscription, startPubSubEmulator, uniqueName, type PubSubEmulator } from './support/pubsub-emulator.js';

// End to end: the emulator itself pushes to the push server, wrapped and unwrapped. (The emulator
// sends no OIDC token, so authentication is covered in push-server.test.ts.)

let emulator: PubSubEmulator;
let pubsub: PubSub;
let server: PushServer | undefined;

beforeAll(async () => {
  emulator = await startPubSubEmulator();
  pubsub = createPubSubClient({ PUBSUB_EMULATOR_HOST: emulator.host, GOOGLE_CLOUD_PROJECT: emulator.projectId });
});

afterEach(async () => {
  await server?.close();
  server = undefined;
});

afterAll(async () => {
  await pubsub?.close();
  await emulator?.stop();
});

interface Delivery {
  data: Buffer;
  attributes: Record<string, string>;
  messageId: string;
}

/**
 * A push server whose handler nacks the first delivery of each message and acks the next, and a
 * push subscription to it; resolves once a message has been delivered twice.
 */
async function pushSetup(noWrapper: boolean): Promise<{ topic: string; deliveries: Delivery[]; redelivered: Promise<void> }> {
  const deliveries: Delivery[] = [];
  let redeliveredResolve!: () => void;
  const redelivered = new Promise<void>((resolve) => {
    redeliveredResolve = resolve;
  });
  const handler: MessageHandler = async (data, attributes, messageId) => {
    deliveries.push({ data, attributes: { ...attributes }, messageId });
    const seen = deliveries.filter((delivery) => delivery.messageId === messageId).length;
    if (seen < 2) return 'nack';
    redeliveredResolve();
    return 'ack';
  };
  server = await startPushServer({ port: 0, host: '127.0.0.1', handler, logger: memoryLogger().logger, env: {} });
  const topic = uniqueName('ready');
  await createTopicAndSubscription(pubsub, topic, uniqueName(noWrapper ? 'push-raw' : 'push'), {
    pushConfig: {
      pushEndpoint: `${server.url}/pubsub/push`,
      ...(noWrapper ? { noWrapper: { writeMetadata: true } } : {}),
    },
  });
  return { topic, deliveries, redelivered };
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('emulator push to the push server', () => {
  for (const noWrapper of [false, true]) {
    it(`delivers ${noWrapper ? 'unwrapped (write metadata)' : 'wrapped'} announcements with attributes; 503 makes it redeliver`, async () => {
      const { topic, deliveries, redelivered } = await pushSetup(noWrapper);
      const announcement = sampleAnnouncement();
      const id = await publishAnnouncement(pubsub, topic, announcement);

      await within(redelivered, 30_000, 'a redelivery after 503');
      expect(deliveries).toHaveLength(2);
      for (const delivery of deliveries) {
        expect(delivery.messageId).toBe(id);
        expect(delivery.attributes).toEqual({ kind: announcement.kind, requestId: announcement.requestId });
        expect(parseAnnouncement(JSON.parse(delivery.data.toString('utf8')))).toEqual(announcement);
      }
    });
  }
});
