import type { Logger } from 'pino';
import { requestLogger } from '../config/logs.js';
import type { ReadyAnnouncement } from '../jobs/announcement.js';
import { createPubSubClient, publishAnnouncement } from '../sinks/pubsub.js';

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
  const pubsub = createPubSubClient(env);
  return {
    async announce(announcement) {
      const messageId = await publishAnnouncement(pubsub, topic, announcement);
      requestLogger(logger, announcement.requestId).debug({ topic, messageId }, 'announcement published');
      return messageId;
    },
    async close() {
      await pubsub.close().catch(() => {});
    },
  };
}
