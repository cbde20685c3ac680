import type { Logger } from 'pino';
import { requestLogger } from '../config/logs.js';
import type { ReadyAnnouncement } from '../jobs/announcement.js';
import type { PubSub } from '@google-cloud/pubsub';

/** The topic ready announcements go to unless `READY_TOPIC` names another. */
export const DEFAULT_READY_TOPIC = 'audit-export-ready';

/** Publishes ready announcements; one client for the life of the process, closed by {@link close}. */
export interface Announcer {
  /** Publishes and resolves with the message id once the server accepted it. */
  announce(announcement: ReadyAnnouncement): Promise<string>;
  close(): Promise<void>;
}

/**
 * Publishes ready announcements on `READY_TOPIC` with a Pub/Sub client configured from the
 * environment (`GOOGLE_CLOUD_PROJECT`, `PUBSUB_EMULATOR_HOST`). The topic is infrastructure: a
 * missing one is an error, never created here.
 */
export function createAnnouncer(logger: Logger, env: NodeJS.ProcessEnv = process.env): Announcer {
  const topic = env.READY_TOPIC !== undefined && env.READY_TOPIC !== '' ? env.READY_TOPIC : DEFAULT_READY_TOPIC;
  // Loaded on the first announcement: @google-cloud/pubsub (gRPC, protobufjs) adds about 20 MiB of
  // heap, and with it peak RSS, to every export, also to those that announce nothing (bench/).
  let connection: Promise<{ pubsub: PubSub; publish: typeof import('../sinks/pubsub.js').publishAnnouncement }> | undefined;
  const connect = () =>
    (connection ??= import('../sinks/pubsub.js').then((module) => ({ pubsub: module.createPubSubClient(env), publish: module.publishAnnouncement })));
  return {
    async announce(announcement) {
      const { pubsub, publish } = await connect();
      const messageId = await publish(pubsub, topic, announcement);
      requestLogger(logger, announcement.requestId).debug({ topic, messageId }, 'announcement published');
      return messageId;
    },
    async close() {
      const opened = await connection?.catch(() => undefined);
      await opened?.pubsub.close().catch(() => {});
    },
  };
}
