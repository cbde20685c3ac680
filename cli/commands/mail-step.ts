import type pg from 'pg';
import type { Logger } from 'pino';
import { createPool } from '../../db/connection.js';
import { looksLikeAnnouncement, type ReadyAnnouncement } from '../../jobs/announcement.js';
import { InvalidRequestError } from '../../jobs/errors.js';
import { handleAnnouncement, type MailerDeps } from '../../jobs/mailer/handle.js';
import type { MessageHandler } from '../../jobs/mailer/handler.js';
import { consumeSubscription } from '../../jobs/mailer/pull.js';
import { startPushServer } from '../../jobs/mailer/push-server.js';
import { createMailTransport } from '../../jobs/mailer/smtp.js';
import { createPubSubClient } from '../../sinks/pubsub.js';
import { createLinkSigner } from '../link-signer.js';
import { openLifecycle, requestHandler, type Lifecycle } from './requests.js';
import { cliProgress } from '../progress.js';
import { setting } from '../../config/env.js';


function required(env: NodeJS.ProcessEnv, name: string, purpose: string): string {
  const value = setting(env, name);
  if (value === undefined) throw new InvalidRequestError(name, `not set: ${purpose}`);
  return value;
}

function optionalCount(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const value = setting(env, name);
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidRequestError(name, `expected a whole number from 1 up, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** Messages per second unless `MAIL_RATE_LIMIT` says otherwise. */
export const DEFAULT_MAIL_RATE_LIMIT = 10;

/** The state database's URL: `STATE_DATABASE_URL`, else `DATABASE_URL`. */
export function stateDatabaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const url = setting(env, 'STATE_DATABASE_URL') ?? setting(env, 'DATABASE_URL');
  if (url === undefined) throw new InvalidRequestError('STATE_DATABASE_URL', 'not set (nor DATABASE_URL): the mail step records every e-mail it sent there');
  return url;
}

async function assertStateTables(pool: pg.Pool): Promise<void> {
  try {
    await pool.query('SELECT 1 FROM audit_export_deliveries LIMIT 0');
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') {
      throw new Error('The state tables are missing: run `audit-export db migrate` (it uses STATE_DATABASE_URL, default DATABASE_URL)');
    }
    throw error;
  }
}

/** A running mail step's dependencies, built from the environment, and how to release them. */
export interface MailStep {
  readonly handler: MessageHandler;
  /** What `handler` hands each announcement to, for a caller that wants the whole {@link handleAnnouncement} result (the demo). */
  readonly deps: MailerDeps;
  close(): Promise<void>;
}

/**
 * Builds the mail step from the environment: `SMTP_URL`, `MAIL_FROM`, `MAIL_BRAND` (default
 * B2Chat), `MAIL_SUBJECT`, `MAIL_MAX_CONNECTIONS` (default 2), `MAIL_RATE_LIMIT` (messages per second, default 10), the
 * state database, and Cloud Storage for signing links (`EXPORT_RETENTION_DAYS`, default 8: no link
 * outlives its file).
 */
export async function openMailStep(logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<MailStep> {
  // First: a bad EXPORT_RETENTION_DAYS fails before anything is opened.
  const signLink: (announcement: ReadyAnnouncement) => Promise<{ url: string; expiresAt: Date }> = createLinkSigner(env);
  const transport = createMailTransport({
    url: required(env, 'SMTP_URL', 'the mail step sends through this SMTP server'),
    from: required(env, 'MAIL_FROM', 'the sender of the e-mails'),
    maxConnections: optionalCount(env, 'MAIL_MAX_CONNECTIONS'),
    // A pooled sender with no limit can trip the relay's abuse limits on a 20-recipient request.
    rateLimit: optionalCount(env, 'MAIL_RATE_LIMIT') ?? DEFAULT_MAIL_RATE_LIMIT,
  });
  const pool = createPool(stateDatabaseUrl(env), { applicationName: 'audit-export-mailer' }, (error) =>
    logger.warn({ err: error }, 'idle state database connection failed'),
  );
  try {
    await assertStateTables(pool);
  } catch (error) {
    transport.close();
    await pool.end();
    throw error;
  }
  const deps: MailerDeps = {
    pool,
    transport,
    signLink,
    logger,
    brand: setting(env, 'MAIL_BRAND') ?? 'B2Chat',
    ...(setting(env, 'MAIL_SUBJECT') === undefined ? {} : { subject: setting(env, 'MAIL_SUBJECT') }),
  };
  return {
    handler: async (data) => (await handleAnnouncement(data, deps)).outcome,
    deps,
    async close() {
      transport.close();
      await pool.end();
    },
  };
}

/** `audit-export mailer`: consumes the ready subscription with a streaming pull until the signal aborts. */
export async function runMailer(
  options: { subscription: string; concurrency: number },
  logger: Logger,
  signal: AbortSignal,
): Promise<void> {
  const pubsub = createPubSubClient();
  const step = await openMailStep(logger);
  try {
    logger.info({ subscription: options.subscription, concurrency: options.concurrency }, 'mailer started');
    await consumeSubscription(pubsub, options.subscription, step.handler, { concurrency: options.concurrency, signal, logger });
  } finally {
    await step.close();
    await pubsub.close().catch(() => {});
  }
}

/**
 * `audit-export serve`: answers Pub/Sub pushes on `POST /pubsub/push` until the signal aborts, for
 * both topics: ready announcements go to the mail step (needs `SMTP_URL`), export requests to the
 * request lifecycle (needs `DATABASE_URL`). Either may be left unconfigured; its messages are then
 * refused (nack) with the reason logged.
 */
export async function runPushServer(options: { port: number; host: string }, logger: Logger, signal: AbortSignal): Promise<void> {
  const env = process.env;
  const mail = setting(env, 'SMTP_URL') === undefined ? undefined : await openMailStep(logger, env);
  let lifecycle: Lifecycle | undefined;
  try {
    lifecycle = setting(env, 'DATABASE_URL') === undefined ? undefined : await openLifecycle(logger, signal, { allowEmbedded: false, progress: cliProgress({ enabled: true, logger, line: undefined }, env) }, env);
    if (mail === undefined && lifecycle === undefined) {
      throw new InvalidRequestError('SMTP_URL', 'not set, nor DATABASE_URL: serve needs the mail step, the request lifecycle, or both');
    }
    const requests = lifecycle === undefined ? undefined : requestHandler(lifecycle);
    const handler: MessageHandler = async (data, attributes, messageId) => {
      const step = looksLikeAnnouncement(data) ? mail?.handler : requests;
      if (step === undefined) {
        logger.error({ messageId }, `no handler configured for this message (${looksLikeAnnouncement(data) ? 'announcement: set SMTP_URL' : 'request: set DATABASE_URL'})`);
        return 'nack';
      }
      return await step(data, attributes, messageId);
    };
    const server = await startPushServer({ port: options.port, host: options.host, handler, logger });
    logger.info({ url: server.url, mail: mail !== undefined, requests: lifecycle !== undefined }, 'push endpoint listening');
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await server.close();
  } finally {
    await mail?.close();
    await lifecycle?.close();
  }
}
