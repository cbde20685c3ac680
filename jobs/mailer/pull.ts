import { Duration, SubscriptionCloseBehaviors, type Message, type PubSub, type SubscriptionOptions } from '@google-cloud/pubsub';
import type { Logger } from 'pino';
import { GRPC_NOT_FOUND, grpcCode, resourceId } from '../../sinks/pubsub.js';
import { isVerdict, type MessageHandler, type Verdict } from './handler.js';
import { describe } from '../../config/env.js';

/** Handler calls in flight at once when no `concurrency` is given. */
export const DEFAULT_CONCURRENCY = 4;

/** How long an aborted consumer waits for running handlers before nacking their messages. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

// How long closing may take to send the final nacks (and any acks still queued).
const CLOSE_FLUSH_MS = 5_000;

/** Options of {@link consumeSubscription}. */
export interface ConsumeOptions {
  /** At most this many handler calls run at once (default {@link DEFAULT_CONCURRENCY}). */
  readonly concurrency?: number;
  /** Aborting stops the consumer: see {@link consumeSubscription}. */
  readonly signal: AbortSignal;
  /** Receives handler failures (error), the drain (info, warn) and the library's debug events. */
  readonly logger: Logger;
  /**
   * The lease the library asks for and keeps extending while a handler runs (10 to 600 s).
   * Unset, the library adapts it to how long handlers take (the 99th percentile).
   */
  readonly ackDeadlineSeconds?: number;
  /** After an abort, wait this long for running handlers (default {@link DEFAULT_DRAIN_TIMEOUT_MS}). */
  readonly drainTimeoutMs?: number;
}

function wholeNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new TypeError(`Expected \`${name}\` to be a whole number from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/**
 * Receives messages from a subscription by streaming pull until `signal` aborts, handing each to
 * `handler` and acking or nacking it by the verdict. Never more than `concurrency` handler calls
 * run at once (flow control holds the rest, their leases extended). A handler that throws (or
 * returns something other than a verdict) has its message nacked and logged; the consumer goes on.
 *
 * On abort it starts no more handlers, waits up to `drainTimeoutMs` for the running ones (whose
 * verdicts still count), then closes the subscription, which nacks every message not done (held
 * back, or its handler still running) so it is redelivered, and resolves. It resolves at once if
 * `signal` is already aborted.
 * @throws TypeError for a malformed subscription name or option.
 * @throws Error naming subscription and project when the subscription does not exist (after
 * stopping as on abort), and with the server's reason for any other error the library gives up on.
 */
export async function consumeSubscription(
  pubsub: PubSub,
  subscriptionName: string,
  handler: MessageHandler,
  options: ConsumeOptions,
): Promise<void> {
  const subscriptionId = resourceId('subscriptionName', subscriptionName);
  if (typeof handler !== 'function') throw new TypeError(`Expected \`handler\` to be a function, got ${describe(handler)}`);
  if (typeof options !== 'object' || options === null) throw new TypeError(`Expected \`options\` to be an object, got ${describe(options)}`);
  const { signal, logger } = options;
  if (!(signal instanceof AbortSignal)) throw new TypeError(`Expected \`signal\` to be an AbortSignal, got ${describe(signal)}`);
  if (typeof logger?.child !== 'function') throw new TypeError(`Expected \`logger\` to be a pino logger, got ${describe(logger)}`);
  const concurrency = wholeNumber('concurrency', options.concurrency ?? DEFAULT_CONCURRENCY, 1, 1_000);
  const drainTimeoutMs = wholeNumber('drainTimeoutMs', options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS, 0, 3_600_000);
  const ackDeadlineSeconds =
    options.ackDeadlineSeconds === undefined ? undefined : wholeNumber('ackDeadlineSeconds', options.ackDeadlineSeconds, 10, 600);
  if (signal.aborted) return;

  const log = logger.child({ subscription: subscriptionId });
  const subscriptionOptions: SubscriptionOptions = {
    // allowExcessMessages: false makes maxMessages a hard bound on messages handed out at once;
    // the default lets a whole server batch through.
    flowControl: { maxMessages: concurrency, allowExcessMessages: false },
    // One stream is plenty for mail; more would lease more messages than we can work on, and hold
    // them back from other consumers.
    streamingOptions: { maxStreams: 1 },
    // Closed only once the running handlers are done (or the drain timed out): then it nacks every
    // message still held and waits, this long at most, for those nacks to be sent.
    closeOptions: {
      behavior: SubscriptionCloseBehaviors.NackImmediately,
      timeout: Duration.from({ milliseconds: CLOSE_FLUSH_MS }),
    },
  };
  if (ackDeadlineSeconds !== undefined) {
    const deadline = Duration.from({ seconds: ackDeadlineSeconds });
    subscriptionOptions.minAckDeadline = deadline;
    subscriptionOptions.maxAckDeadline = deadline;
  }
  const subscription = pubsub.subscription(subscriptionName, subscriptionOptions);

  return await new Promise<void>((resolve, reject) => {
    const inFlight = new Set<Promise<void>>();
    let stopping = false;

    const handle = async (message: Message): Promise<void> => {
      const messageLog = log.child({ messageId: message.id, deliveryAttempt: message.deliveryAttempt });
      let verdict: Verdict = 'nack';
      try {
        const result: unknown = await handler(message.data, { ...message.attributes }, message.id);
        if (isVerdict(result)) verdict = result;
        else messageLog.error(`The message handler returned ${describe(result)} instead of 'ack' or 'nack'; nacking the message`);
      } catch (error) {
        messageLog.error({ err: error }, 'The message handler failed; nacking the message for redelivery');
      }
      // After a drain timeout the library has nacked the message already; this is then a no-op.
      if (verdict === 'ack') message.ack();
      else message.nack();
    };

    const onMessage = (message: Message): void => {
      // While draining, a message that still arrives is held, unhandled, until close nacks it.
      // Held, it counts against flow control, so the library pauses the stream instead of
      // fetching more; nacking it now would only have the server send it straight back.
      if (stopping) return;
      const run = handle(message).finally(() => inFlight.delete(run));
      inFlight.add(run);
    };

    const stop = async (failure?: Error): Promise<void> => {
      if (stopping) return;
      stopping = true;
      signal.removeEventListener('abort', onAbort);
      // The stream stays open until the handlers are done: closing it first would leave messages
      // that flow control held back in the library, where close (in its WaitForProcessing mode)
      // waits out the whole timeout before nacking them.
      const unfinished = await settleWithin(inFlight, drainTimeoutMs);
      if (unfinished > 0) {
        log.warn({ unfinished }, `${unfinished} message handler(s) still running after ${drainTimeoutMs} ms; their messages were nacked for redelivery`);
      }
      await subscription.close().catch((error: unknown) => {
        log.warn({ err: error }, 'Closing the subscription failed; unacknowledged messages will be redelivered after their deadline');
      });
      subscription.off('message', onMessage);
      subscription.off('debug', onDebug);
      if (failure === undefined) resolve();
      else reject(failure);
    };

    const onAbort = (): void => {
      log.info('Stopping: no new messages; waiting for running handlers');
      void stop();
    };

    // Errors reach here only once the library has given up retrying (NOT_FOUND, PERMISSION_DENIED...).
    const onError = (error: unknown): void => {
      const message = error instanceof Error ? error.message : String(error);
      const failure =
        grpcCode(error) === GRPC_NOT_FOUND
          ? new Error(`Pub/Sub subscription "${subscriptionId}" does not exist in project "${pubsub.projectId}": create it (see README)`, { cause: error })
          : new Error(`Pulling from Pub/Sub subscription "${subscriptionId}" in project "${pubsub.projectId}" failed: ${message}`, { cause: error });
      if (stopping) log.warn({ err: error }, 'Pub/Sub error while stopping');
      else void stop(failure);
    };

    const onDebug = (debug: { message: string; error?: unknown }): void => {
      log.debug({ err: debug.error }, debug.message);
    };

    // The error listener stays: an 'error' event without one would throw.
    subscription.on('error', onError);
    subscription.on('debug', onDebug);
    subscription.on('message', onMessage);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Waits until every promise in `pending` settles or `ms` passes; returns how many are still pending. */
async function settleWithin(pending: ReadonlySet<Promise<void>>, ms: number): Promise<number> {
  if (pending.size === 0) return 0;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled([...pending]),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
  return pending.size;
}
