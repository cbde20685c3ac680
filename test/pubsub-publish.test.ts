import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PubSub, v1 } from '@google-cloud/pubsub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../db/embedded.js';
import { createPubSubClient, publishAnnouncement, resourceId } from '../sinks/pubsub.js';
import { sampleAnnouncement } from './support/announcements.js';
import { createTopicAndSubscription, startPubSubEmulator, uniqueName, type PubSubEmulator } from './support/pubsub-emulator.js';

let emulator: PubSubEmulator;
let pubsub: PubSub;

beforeAll(async () => {
  emulator = await startPubSubEmulator();
  pubsub = createPubSubClient({ PUBSUB_EMULATOR_HOST: emulator.host, GOOGLE_CLOUD_PROJECT: emulator.projectId });
});

afterAll(async () => {
  await pubsub?.close();
  await emulator?.stop();
});

/** Pulls one message synchronously (unary Pull), so the test sees exactly what was stored. */
async function pullOne(subscriptionName: string): Promise<{ data: Buffer; attributes: Record<string, string>; messageId: string }> {
  const client = new v1.SubscriberClient({ ...(await pubsub.getClientConfig()) });
  try {
    const subscription = `projects/${emulator.projectId}/subscriptions/${subscriptionName}`;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const [response] = await client.pull({ subscription, maxMessages: 1 });
      const received = response.receivedMessages?.[0];
      if (received?.message) {
        await client.acknowledge({ subscription, ackIds: [received.ackId ?? ''] });
        const { data, attributes, messageId } = received.message;
        return { data: Buffer.from(data ?? ''), attributes: { ...attributes }, messageId: messageId ?? '' };
      }
    }
    throw new Error('no message arrived');
  } finally {
    await client.close();
  }
}

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

describe('createPubSubClient', () => {
  it('uses the emulator and project from the given environment', () => {
    const client = createPubSubClient({ PUBSUB_EMULATOR_HOST: '127.0.0.1:1', GOOGLE_CLOUD_PROJECT: 'some-project' });
    expect(client.isEmulator).toBe(true);
    expect(client.projectId).toBe('some-project');
  });

  it('names the variable and the rule when a value is malformed', () => {
    expect(() => createPubSubClient({ GOOGLE_CLOUD_PROJECT: 'Bad/Project' })).toThrow(
      /Expected GOOGLE_CLOUD_PROJECT to be a project id .* got "Bad\/Project"/,
    );
    expect(() => createPubSubClient({ PUBSUB_EMULATOR_HOST: 'http://x', GOOGLE_CLOUD_PROJECT: 'some-project' })).toThrow(
      /Expected PUBSUB_EMULATOR_HOST to be host:port/,
    );
    expect(() => createPubSubClient({ PUBSUB_EMULATOR_HOST: '127.0.0.1:8085' })).toThrow(
      /GOOGLE_CLOUD_PROJECT to be set when PUBSUB_EMULATOR_HOST is/,
    );
  });
});

describe('resourceId', () => {
  it('accepts ids and full names, and names the rule otherwise', () => {
    expect(resourceId('topicName', 'ready')).toBe('ready');
    expect(resourceId('topicName', 'projects/p-1234/topics/ready.v1')).toBe('ready.v1');
    expect(() => resourceId('topicName', 'ab')).toThrow(/Expected `topicName` to be a Pub\/Sub id .* got "ab"/);
    expect(() => resourceId('topicName', 'google-x')).toThrow(TypeError);
    expect(() => resourceId('topicName', 42)).toThrow(/got 42/);
  });
});

describe('publishAnnouncement', () => {
  it('publishes the JSON with kind and requestId attributes and returns the server id', async () => {
    const topic = uniqueName('ready');
    const subscription = uniqueName('mailer');
    await createTopicAndSubscription(pubsub, topic, subscription);
    const announcement = sampleAnnouncement({ kind: 'stop-slots', linkSeconds: 86_400 });

    const id = await publishAnnouncement(pubsub, topic, announcement);

    expect(id).toMatch(/^\S+$/);
    const received = await pullOne(subscription);
    expect(received.messageId).toBe(id);
    expect(JSON.parse(received.data.toString('utf8'))).toEqual(announcement);
    expect(received.attributes).toEqual({ kind: 'stop-slots', requestId: announcement.requestId });
  });

  it('accepts a full topic name', async () => {
    const topic = uniqueName('ready');
    await createTopicAndSubscription(pubsub, topic, uniqueName('mailer'));
    await expect(publishAnnouncement(pubsub, `projects/${emulator.projectId}/topics/${topic}`, sampleAnnouncement())).resolves.toMatch(/\S/);
  });

  it('says the topic does not exist and where, never creating it', async () => {
    const topic = uniqueName('missing');
    await expect(publishAnnouncement(pubsub, topic, sampleAnnouncement())).rejects.toThrow(
      `Pub/Sub topic "${topic}" does not exist in project "${emulator.projectId}": create it (see README)`,
    );
    const [exists] = await pubsub.topic(topic).exists();
    expect(exists).toBe(false);
  });

  it('refuses a malformed announcement before publishing', async () => {
    const broken = { ...sampleAnnouncement(), recipients: ['not an address'] };
    await expect(publishAnnouncement(pubsub, 'ready', broken)).rejects.toThrow(
      /Expected a valid ready announcement: recipients\[0\]: "not an address" is not a valid e-mail address/,
    );
  });

  it('gives up on an unreachable endpoint within the timeout, with a clear error', async () => {
    const port = await freePort(); // Nothing listens there.
    const unreachable = createPubSubClient({ PUBSUB_EMULATOR_HOST: `127.0.0.1:${port}`, GOOGLE_CLOUD_PROJECT: emulator.projectId });
    const started = Date.now();
    try {
      await expect(publishAnnouncement(unreachable, 'ready', sampleAnnouncement(), { timeoutMs: 1_500 })).rejects.toThrow(
        /Publishing the ready announcement of request .* to Pub\/Sub topic "ready" in project ".*" failed: no answer from Pub\/Sub within 1500 ms/,
      );
    } finally {
      await unreachable.close();
    }
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('never asks the GCE metadata server when talking to the emulator', async () => {
    // A stand-in metadata server counts the lookups; METADATA_SERVER_DETECTION=none (set by the
    // emulator helper) is lifted for this test so that a lookup would actually be made.
    let lookups = 0;
    const metadata = createServer((request, response) => {
      lookups += 1;
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => metadata.listen(0, '127.0.0.1', resolve));
    const saved = { detection: process.env.METADATA_SERVER_DETECTION, host: process.env.GCE_METADATA_HOST };
    delete process.env.METADATA_SERVER_DETECTION;
    process.env.GCE_METADATA_HOST = `127.0.0.1:${(metadata.address() as AddressInfo).port}`;
    const topic = uniqueName('ready');
    await createTopicAndSubscription(pubsub, topic, uniqueName('mailer'));
    const ours = createPubSubClient({ PUBSUB_EMULATOR_HOST: emulator.host, GOOGLE_CLOUD_PROJECT: emulator.projectId });
    // The control: the library's own emulator set-up, without the universe domain.
    const plain = new PubSub({ apiEndpoint: emulator.host, emulatorMode: true, projectId: emulator.projectId });
    try {
      await publishAnnouncement(ours, topic, sampleAnnouncement());
      expect(lookups).toBe(0);
      await plain.topic(topic).publishMessage({ data: Buffer.from('control') });
      expect(lookups).toBeGreaterThan(0);
    } finally {
      await ours.close();
      await plain.close();
      restore('METADATA_SERVER_DETECTION', saved.detection);
      restore('GCE_METADATA_HOST', saved.host);
      metadata.closeAllConnections();
      await new Promise<void>((resolve) => metadata.close(() => resolve()));
    }
  });

  it('reports the emulator start time', () => {
    // Not an assertion on speed: a record in the test output of what a test file pays for it.
    console.info(`Pub/Sub emulator answered after ${emulator.startMs} ms`);
    expect(emulator.startMs).toBeGreaterThan(0);
  });
});
