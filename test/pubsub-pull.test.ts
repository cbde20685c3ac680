import type { PubSub } from '@google-cloud/pubsub';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageHandler } from '../jobs/mailer/handler.js';
import { consumeSubscription } from '../jobs/mailer/pull.js';
import { createPubSubClient } from '../sinks/pubsub.js';
import { memoryLogger } from './support/memory-logger.js';
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

/** A fresh topic and subscription with `count` messages `m0`, `m1`... published (attribute `n`). */
async function backlog(count: number): Promise<{ subscription: string; ids: string[] }> {
  const topicName = uniqueName('ready');
  const subscription = uniqueName('mailer');
  const { topic } = await createTopicAndSubscription(pubsub, topicName, subscription, { ackDeadlineSeconds: 10 });
  const ids = await Promise.all(
    Array.from({ length: count }, (_, n) => topic.publishMessage({ data: Buffer.from(`m${n}`), attributes: { n: String(n) } })),
  );
  return { subscription, ids };
}

/** Runs a consumer until `until` resolves (or `ms` pass), then aborts it and waits for it to stop. */
async function consumeUntil(
  subscription: string,
  handler: MessageHandler,
  until: Promise<unknown>,
  options: { concurrency?: number; drainTimeoutMs?: number; ms?: number } = {},
): Promise<{ stoppedAfterMs: number; records: ReturnType<typeof memoryLogger>['records'] }> {
  const { logger, records } = memoryLogger();
  const controller = new AbortController();
  const consuming = consumeSubscription(pubsub, subscription, handler, {
    signal: controller.signal,
    logger,
    concurrency: options.concurrency,
    drainTimeoutMs: options.drainTimeoutMs,
  });
  await Promise.race([until, sleep(options.ms ?? 20_000), consuming]);
  const aborted = Date.now();
  controller.abort();
  await consuming;
  return { stoppedAfterMs: Date.now() - aborted, records };
}

/** What a fresh consumer receives within `ms`. */
async function receivedWithin(subscription: string, ms: number): Promise<string[]> {
  const seen: string[] = [];
  await consumeUntil(
    subscription,
    async (data) => {
      seen.push(data.toString('utf8'));
      return 'ack';
    },
    sleep(ms),
  );
  return seen;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe('consumeSubscription', () => {
  it('hands each message to the handler with data, attributes and id; ack removes it', async () => {
    const { subscription, ids } = await backlog(3);
    const seen = new Map<string, { data: string; attributes: Record<string, string> }>();
    const all = deferred();
    await consumeUntil(subscription, async (data, attributes, messageId) => {
      seen.set(messageId, { data: data.toString('utf8'), attributes });
      if (seen.size === 3) all.resolve();
      return 'ack';
    }, all.promise);

    expect([...seen.keys()].sort()).toEqual([...ids].sort());
    ids.forEach((id, n) => expect(seen.get(id)).toEqual({ data: `m${n}`, attributes: { n: String(n) } }));
    expect(await receivedWithin(subscription, 1_500)).toEqual([]);
  });

  it('nack redelivers the message', async () => {
    const { subscription, ids } = await backlog(1);
    const deliveries: string[] = [];
    const twice = deferred();
    await consumeUntil(subscription, async (_data, _attributes, messageId) => {
      deliveries.push(messageId);
      if (deliveries.length === 2) {
        twice.resolve();
        return 'ack';
      }
      return 'nack';
    }, twice.promise);
    expect(deliveries).toEqual([ids[0], ids[0]]);
  });

  it('nacks and logs when the handler throws, and keeps consuming', async () => {
    const { subscription } = await backlog(3);
    const attempts = new Map<string, number>();
    const acked = new Set<string>();
    const done = deferred();
    const { records } = await consumeUntil(subscription, async (data) => {
      const text = data.toString('utf8');
      const attempt = (attempts.get(text) ?? 0) + 1;
      attempts.set(text, attempt);
      if (text === 'm1' && attempt === 1) throw new Error('SMTP is down');
      acked.add(text);
      if (acked.size === 3) done.resolve();
      return 'ack';
    }, done.promise);

    expect([...acked].sort()).toEqual(['m0', 'm1', 'm2']);
    expect(attempts.get('m1')).toBe(2);
    const failure = records.find((record) => record.msg.includes('handler failed'));
    expect(failure).toMatchObject({ level: 50, subscription, err: { message: 'SMTP is down' } });
    expect(failure?.messageId).toEqual(expect.any(String));
  });

  it('never runs more than `concurrency` handlers at once', async () => {
    const { subscription } = await backlog(20);
    let running = 0;
    let most = 0;
    const handled = new Set<string>();
    const done = deferred();
    await consumeUntil(
      subscription,
      async (data) => {
        running += 1;
        most = Math.max(most, running);
        await sleep(30 + Math.random() * 70);
        running -= 1;
        handled.add(data.toString('utf8'));
        if (handled.size === 20) done.resolve();
        return 'ack';
      },
      done.promise,
      { concurrency: 3 },
    );
    expect(handled.size).toBe(20);
    expect(most).toBe(3);
  });

  it('on abort stops pulling, lets running handlers finish and keeps their verdicts', async () => {
    const { subscription } = await backlog(6);
    const started: string[] = [];
    const twoRunning = deferred();
    let finished = 0;
    const { stoppedAfterMs } = await consumeUntil(
      subscription,
      async (data) => {
        started.push(data.toString('utf8'));
        if (started.length === 2) twoRunning.resolve();
        await sleep(400);
        finished += 1;
        return 'ack';
      },
      twoRunning.promise,
      { concurrency: 2, drainTimeoutMs: 5_000 },
    );

    expect(started).toHaveLength(2);
    expect(finished).toBe(2);
    expect(stoppedAfterMs).toBeGreaterThanOrEqual(300);
    expect(stoppedAfterMs).toBeLessThan(4_000);
    // The two finished handlers acked; the other four were never handed out and are still there.
    const rest = await receivedWithin(subscription, 2_000);
    expect(rest.sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5'].filter((m) => !started.includes(m)));
  });

  it('on abort nacks messages whose handlers outlive the drain timeout', async () => {
    const { subscription } = await backlog(1);
    const running = deferred();
    const { stoppedAfterMs, records } = await consumeUntil(
      subscription,
      async () => {
        running.resolve();
        await sleep(60_000);
        return 'ack';
      },
      running.promise,
      { drainTimeoutMs: 500 },
    );

    expect(stoppedAfterMs).toBeLessThan(3_000);
    expect(records.some((record) => record.level === 40 && record.msg.includes('still running after 500 ms'))).toBe(true);
    expect(await receivedWithin(subscription, 2_000)).toEqual(['m0']);
  });

  it('resolves at once when the signal is already aborted', async () => {
    const { logger } = memoryLogger();
    await expect(
      consumeSubscription(pubsub, 'whatever', async () => 'ack', { signal: AbortSignal.abort(), logger }),
    ).resolves.toBeUndefined();
  });

  it('fails clearly when the subscription does not exist', async () => {
    const { logger } = memoryLogger();
    const name = uniqueName('missing');
    await expect(
      consumeSubscription(pubsub, name, async () => 'ack', { signal: new AbortController().signal, logger }),
    ).rejects.toThrow(`Pub/Sub subscription "${name}" does not exist in project "${emulator.projectId}": create it (see README)`);
  });

  it('names the option and rule for a malformed option', async () => {
    const { logger } = memoryLogger();
    const signal = new AbortController().signal;
    await expect(consumeSubscription(pubsub, 'mailer', async () => 'ack', { signal, logger, concurrency: 0 })).rejects.toThrow(
      'Expected `concurrency` to be a whole number from 1 to 1000, got 0',
    );
    await expect(consumeSubscription(pubsub, 'mailer', async () => 'ack', { signal, logger, ackDeadlineSeconds: 5 })).rejects.toThrow(
      'Expected `ackDeadlineSeconds` to be a whole number from 10 to 600, got 5',
    );
  });
});
