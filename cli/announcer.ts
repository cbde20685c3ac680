import type { Logger } from 'pino';
import { createPubSubClient, publishAnnouncement } from '../sinks/pubsub.js';
import type { Announcer } from './commands/export-conversations.js';

/** The topic ready announcements go to unless `READY_TOPIC` names another. */
export const DEFAULT_READY_TOPIC = 'audit-export-ready';

/**
 * Publishes ready announcements on `READY_TOPIC` with a Pub/Sub client configured from the
 * environment (`GOOGLE_CLOUD_PROJECT`, `PUBSUB_EMULATOR_HOST`). The topic is infrastructure: a
 * missing one is an error, never created here.
 */
export function createAnnouncer(logger: Logger, env: NodeJS.ProcessEnv = process.env): Announcer {
  const topic = env.READY_TOPIC !== undefined && env.READY_TOPIC !== '' ? env.READY_TOPIC : DEFAULT_READY_TOPIC;
  const pubsub = createPubSubClient(env);
  return async (announcement) => {
    try {
      const messageId = await publishAnnouncement(pubsub, topic, announcement);
      logger.debug({ topic, messageId }, 'announcement published');
      return messageId;
    } finally {
      await pubsub.close().catch(() => {});
    }
  };
}
