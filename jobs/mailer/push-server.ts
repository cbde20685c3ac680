import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { OAuth2Client } from 'google-auth-library';
import type { Logger } from 'pino';
import { isVerdict, type MessageHandler } from './handler.js';
import { describe, setting } from '../../config/env.js';

/** The path Pub/Sub pushes to. */
export const PUSH_PATH = '/pubsub/push';
/** The liveness path: `GET` answers `200 ok`. */
export const HEALTH_PATH = '/healthz';
/** Largest request body accepted (Pub/Sub messages are at most 10 MB; announcements are a few KiB). */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/**
 * How long a client has to send a whole request, headers and body (default of
 * `PUSH_REQUEST_TIMEOUT_MS`): Pub/Sub sends a push at once, so only a stalled or trickling client
 * (slowloris) comes near it. The handler's own time is not counted.
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** How long {@link PushServer.close} waits for requests in flight. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;
/** The attributes of a ready announcement: what an unwrapped push carries over from its headers. */
export const ANNOUNCEMENT_ATTRIBUTES: readonly string[] = ['kind', 'requestId'];

/**
 * The headers of an unwrapped push ("payload unwrapping" with write metadata): the message's
 * metadata as `x-goog-pubsub-*`, its attributes as headers of their own name.
 */
export const UNWRAPPED_HEADERS = {
  messageId: 'x-goog-pubsub-message-id',
  publishTime: 'x-goog-pubsub-publish-time',
  subscription: 'x-goog-pubsub-subscription-name',
  orderingKey: 'x-goog-pubsub-ordering-key',
} as const;

/**
 * Checks a push's OIDC token (the JWT of `Authorization: Bearer`) for `audience`; rejects when it
 * is not acceptable. Reject with {@link ForbiddenTokenError} for a valid token of the wrong
 * identity (403); any other rejection answers 401.
 */
export type TokenVerifier = (token: string, audience: string) => Promise<void>;

/** A well-formed, correctly signed token of an identity that may not push here: answered 403. */
export class ForbiddenTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForbiddenTokenError';
  }
}

/** Options of {@link googleIdTokenVerifier}. */
export interface GoogleIdTokenVerifierOptions {
  /**
   * Where to fetch Google's signing certificates (JSON `{ kid: PEM }`); default Google's own.
   * Tests point it at a local key set.
   */
  readonly certsUrl?: string;
  /** When set, the token must be this service account's (`email`, with `email_verified`). */
  readonly serviceAccountEmail?: string;
}

/**
 * The default {@link TokenVerifier}: google-auth-library's `OAuth2Client.verifyIdToken` (signature
 * against Google's certificates, cached as they say; issuer `https://accounts.google.com`; audience;
 * expiry with five minutes' leeway), then the service account if one is required.
 */
export function googleIdTokenVerifier(options: GoogleIdTokenVerifierOptions = {}): TokenVerifier {
  const client = new OAuth2Client({
    // Pub/Sub's tokens come from Google accounts; the library's default list also has its universe domain.
    issuers: ['https://accounts.google.com', 'accounts.google.com'],
    ...(options.certsUrl === undefined ? {} : { endpoints: { oauth2FederatedSignonPemCertsUrl: options.certsUrl } }),
  });
  const expected = options.serviceAccountEmail?.toLowerCase();
  return async (token, audience) => {
    const ticket = await client.verifyIdToken({ idToken: token, audience });
    if (expected === undefined) return;
    const payload = ticket.getPayload();
    const email = payload?.email?.toLowerCase();
    if (email !== expected || payload?.email_verified !== true) {
      throw new ForbiddenTokenError(`token of ${JSON.stringify(payload?.email ?? null)}, expected ${expected} (verified)`);
    }
  };
}

/** Options of {@link startPushServer}. */
export interface PushServerOptions {
  /** TCP port; 0 picks a free one (see {@link PushServer.url}). */
  readonly port: number;
  /** Interface to listen on (default `127.0.0.1`; on Cloud Run, `0.0.0.0`). */
  readonly host?: string;
  /** Decides each push: `ack` answers 204, `nack` 503. */
  readonly handler: MessageHandler;
  /** Receives refusals with their reason (warn), handler failures (error), start and close (info). */
  readonly logger: Logger;
  /**
   * Require a Google OIDC token for this audience on every push (default `PUSH_AUDIENCE`); unset,
   * pushes are not authenticated (only for a server no one else can reach).
   */
  readonly audience?: string;
  /**
   * Checks tokens; default {@link googleIdTokenVerifier} with `PUSH_OIDC_CERTS_URL` (certificates)
   * and `PUSH_SERVICE_ACCOUNT` (required identity) from `env`.
   */
  readonly verifyToken?: TokenVerifier;
  /** Attributes to take from the headers of an unwrapped push (default {@link ANNOUNCEMENT_ATTRIBUTES}). */
  readonly attributeNames?: readonly string[];
  /** Larger bodies get 413 (default {@link DEFAULT_MAX_BODY_BYTES}). */
  readonly maxBodyBytes?: number;
  /**
   * A request whose headers and body have not all arrived this long after it started is answered
   * 408 and its connection closed (default `PUSH_REQUEST_TIMEOUT_MS`, else
   * {@link DEFAULT_REQUEST_TIMEOUT_MS}).
   */
  readonly requestTimeoutMs?: number;
  /** How long close waits for requests in flight (default {@link DEFAULT_CLOSE_TIMEOUT_MS}). */
  readonly closeTimeoutMs?: number;
  /** Where the `PUSH_*` defaults come from (default `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
}

/** A running push endpoint. */
export interface PushServer {
  /** Base URL, such as `http://127.0.0.1:8080` (push to `${url}/pubsub/push`). */
  readonly url: string;
  /**
   * Stops accepting connections, waits up to the close timeout for requests in flight, then drops
   * any left (Pub/Sub redelivers those). Idempotent.
   */
  close(): Promise<void>;
}

/** A push as the handler sees it. */
interface PushedMessage {
  readonly data: Buffer;
  readonly attributes: Record<string, string>;
  readonly messageId: string;
  readonly subscription: string | undefined;
  readonly publishTime: string | undefined;
}

/** A request refused with `status`; `reason` is logged (never secrets) and sent as the body. */
class Refusal extends Error {
  readonly status: number;
  constructor(status: number, reason: string) {
    super(reason);
    this.status = status;
  }
}



function wholeNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new TypeError(`Expected \`${name}\` to be a whole number from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Starts the HTTP endpoint Pub/Sub pushes ready announcements to, on node:http:
 *
 * - `POST /pubsub/push` takes the standard wrapped envelope (`{ message: { data, attributes,
 *   messageId, publishTime }, subscription }`) or an unwrapped push (the body is the data; metadata
 *   in `x-goog-pubsub-*` headers, attributes in headers of their own name: the subscription needs
 *   payload unwrapping with write metadata). The handler's `ack` answers 204, `nack` (or a throw)
 *   503, which Pub/Sub retries. A body that is no Pub/Sub push at all answers 400 (the mail step
 *   acks malformed announcements itself), one over `maxBodyBytes` 413.
 * - `GET /healthz` answers `200 ok`.
 * - With an `audience`, a push without a valid `Authorization: Bearer` OIDC token for it answers
 *   401 (403 for a valid token of another identity), before its body is read.
 * @throws TypeError naming a malformed option; the listen error if the port cannot be bound.
 */
export async function startPushServer(options: PushServerOptions): Promise<PushServer> {
  if (typeof options !== 'object' || options === null) throw new TypeError(`Expected \`options\` to be an object, got ${describe(options)}`);
  const { handler, logger } = options;
  const port = wholeNumber('port', options.port, 0, 65_535);
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw new TypeError(`Expected \`host\` to be an interface address, got ${describe(host)}`);
  if (typeof handler !== 'function') throw new TypeError(`Expected \`handler\` to be a function, got ${describe(handler)}`);
  if (typeof logger?.child !== 'function') throw new TypeError(`Expected \`logger\` to be a pino logger, got ${describe(logger)}`);
  const maxBodyBytes = wholeNumber('maxBodyBytes', options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, 1, 10 * 1024 * 1024 + 65_536);
  const closeTimeoutMs = wholeNumber('closeTimeoutMs', options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS, 0, 3_600_000);
  const env = options.env ?? process.env;
  const requestTimeoutSetting = setting(env, 'PUSH_REQUEST_TIMEOUT_MS');
  if (requestTimeoutSetting !== undefined && !/^\d+$/.test(requestTimeoutSetting)) {
    throw new TypeError(`Expected PUSH_REQUEST_TIMEOUT_MS to be a whole number of milliseconds, got ${describe(requestTimeoutSetting)}`);
  }
  const requestTimeoutMs = wholeNumber(
    options.requestTimeoutMs === undefined && requestTimeoutSetting !== undefined ? 'PUSH_REQUEST_TIMEOUT_MS' : 'requestTimeoutMs',
    options.requestTimeoutMs ?? (requestTimeoutSetting === undefined ? DEFAULT_REQUEST_TIMEOUT_MS : Number(requestTimeoutSetting)),
    100,
    3_600_000,
  );
  const attributeNames = options.attributeNames ?? ANNOUNCEMENT_ATTRIBUTES;
  if (!Array.isArray(attributeNames) || attributeNames.some((name) => typeof name !== 'string' || name === '')) {
    throw new TypeError(`Expected \`attributeNames\` to be a list of attribute names, got ${describe(attributeNames)}`);
  }
  // HTTP folds header case; attributes are matched without it and keep their declared spelling.
  const attributeByHeader = new Map(attributeNames.map((name) => [name.toLowerCase(), name]));
  const audience = options.audience ?? setting(env, 'PUSH_AUDIENCE');
  if (audience !== undefined && (typeof audience !== 'string' || audience.trim() === '')) {
    throw new TypeError(`Expected \`audience\` to be a non-empty string, got ${describe(audience)}`);
  }
  if (options.verifyToken !== undefined && typeof options.verifyToken !== 'function') {
    throw new TypeError(`Expected \`verifyToken\` to be a function, got ${describe(options.verifyToken)}`);
  }
  const verifyToken =
    audience === undefined
      ? undefined
      : (options.verifyToken ??
        googleIdTokenVerifier({ certsUrl: setting(env, 'PUSH_OIDC_CERTS_URL'), serviceAccountEmail: setting(env, 'PUSH_SERVICE_ACCOUNT') }));
  const log = logger.child({ component: 'push-server' });
  if (audience === undefined) log.warn('PUSH_AUDIENCE is not set: pushes are accepted without authentication');

  let inFlight = 0;
  let closing = false;
  let drained: (() => void) | undefined;

  const authenticate = async (request: IncomingMessage): Promise<void> => {
    if (audience === undefined || verifyToken === undefined) return;
    const header = request.headers.authorization;
    const match = header === undefined ? null : /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(header);
    if (match?.[1] === undefined) throw new Refusal(401, header === undefined ? 'no Authorization header' : 'Authorization is not a Bearer token');
    try {
      await verifyToken(match[1], audience);
    } catch (error) {
      if (error instanceof ForbiddenTokenError) throw new Refusal(403, `token refused: ${error.message}`);
      throw new Refusal(401, `token refused: ${tokenErrorReason(error)}`);
    }
  };

  const readBody = async (request: IncomingMessage, startedAt: number): Promise<Buffer> => {
    const declared = Number(request.headers['content-length'] ?? Number.NaN);
    if (declared > maxBodyBytes) throw new Refusal(413, `body of ${declared} bytes, at most ${maxBodyBytes}`);
    const chunks: Buffer[] = [];
    let size = 0;
    // A body trickled in byte by byte must not hold a connection (and its buffer) for ever: past
    // the deadline the refusal answers 408 and closes the connection.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () => reject(new Refusal(408, `request not received within ${requestTimeoutMs} ms`)),
        Math.max(0, startedAt + requestTimeoutMs - performance.now()),
      );
    });
    late.catch(() => {});
    const chunksOf = (request as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = chunksOf.next();
        // Left pending when the deadline wins; it settles when the connection is destroyed.
        next.catch(() => {});
        const { done, value } = await Promise.race([next, late]);
        if (done === true) break;
        size += value.length;
        if (size > maxBodyBytes) throw new Refusal(413, `body over ${maxBodyBytes} bytes`);
        chunks.push(value);
      }
    } finally {
      clearTimeout(timer);
    }
    return Buffer.concat(chunks, size);
  };

  const parsePush = (request: IncomingMessage, body: Buffer): PushedMessage => {
    const messageId = request.headers[UNWRAPPED_HEADERS.messageId];
    if (typeof messageId === 'string' && messageId !== '') {
      const attributes = Object.create(null) as Record<string, string>;
      // rawHeaders keeps every value apart; a repeated attribute header is refused, not merged.
      for (let index = 0; index + 1 < request.rawHeaders.length; index += 2) {
        const name = attributeByHeader.get((request.rawHeaders[index] ?? '').toLowerCase());
        if (name === undefined) continue;
        if (Object.hasOwn(attributes, name)) throw new Refusal(400, `attribute header ${name} appears more than once`);
        attributes[name] = request.rawHeaders[index + 1] ?? '';
      }
      return {
        data: body,
        attributes,
        messageId,
        subscription: headerText(request, UNWRAPPED_HEADERS.subscription),
        publishTime: headerText(request, UNWRAPPED_HEADERS.publishTime),
      };
    }
    let envelope: unknown;
    try {
      envelope = JSON.parse(body.toString('utf8'));
    } catch {
      throw new Refusal(
        400,
        `not a Pub/Sub push: neither a JSON envelope nor an ${UNWRAPPED_HEADERS.messageId} header (an unwrapped subscription needs write metadata)`,
      );
    }
    return parseEnvelope(envelope);
  };

  const serve = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const startedAt = performance.now();
    const path = (request.url ?? '/').split('?')[0];
    if (path === HEALTH_PATH) {
      if (request.method !== 'GET' && request.method !== 'HEAD') throw new Refusal(405, 'use GET');
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
      return;
    }
    if (path !== PUSH_PATH) throw new Refusal(404, 'not found');
    if (request.method !== 'POST') throw new Refusal(405, 'use POST');
    // A server on its way down takes no new work: Pub/Sub delivers it again elsewhere or later.
    if (closing) throw new Refusal(503, 'shutting down');
    await authenticate(request);
    const push = parsePush(request, await readBody(request, startedAt));
    const messageLog = log.child({ messageId: push.messageId, subscription: push.subscription, publishTime: push.publishTime });
    let verdict: unknown;
    try {
      verdict = await handler(push.data, push.attributes, push.messageId);
    } catch (error) {
      messageLog.error({ err: error }, 'The message handler failed; answering 503 so Pub/Sub redelivers');
      response.writeHead(503).end();
      return;
    }
    if (!isVerdict(verdict)) {
      messageLog.error(`The message handler returned ${describe(verdict)} instead of 'ack' or 'nack'; answering 503`);
      verdict = 'nack';
    }
    response.writeHead(verdict === 'ack' ? 204 : 503).end();
  };

  // Node's own timeouts catch headers trickled in (slowloris); checked every quarter of the limit.
  // Its request timeout comes a second after ours, so a slow body gets our 408 and its log line.
  const server = createServer({
    headersTimeout: requestTimeoutMs,
    requestTimeout: requestTimeoutMs + 1000,
    connectionsCheckingInterval: Math.min(30_000, Math.max(25, Math.floor(requestTimeoutMs / 4))),
  }, (request, response) => {
    inFlight += 1;
    response.once('close', () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
    serve(request, response).catch((error: unknown) => {
      const refusal = error instanceof Refusal ? error : undefined;
      const status = refusal?.status ?? 500;
      const reason = refusal?.message ?? 'internal error';
      if (refusal === undefined) log.error({ err: error, method: request.method, url: request.url }, 'Push request failed');
      else log.warn({ status, method: request.method, url: request.url }, `Push request refused: ${reason}`);
      if (response.headersSent) {
        response.destroy();
        return;
      }
      const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8' };
      if (status === 401) headers['www-authenticate'] = 'Bearer';
      if (status === 405) headers.allow = (request.url ?? '').startsWith(HEALTH_PATH) ? 'GET, HEAD' : 'POST';
      // The body was not (fully) read: close the connection rather than read on, so an oversized or
      // unauthenticated upload ends here.
      const unread = !request.readableEnded;
      if (unread) headers.connection = 'close';
      response.writeHead(status, headers).end(`${reason}\n`);
      if (unread) response.once('finish', () => request.destroy());
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  const url = `http://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${address.port}`;
  log.info({ url, authenticated: audience !== undefined }, 'Push endpoint listening');

  let closed: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    closing = true;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    // close() only stops new connections; idle keep-alive ones would otherwise hold it open.
    server.closeIdleConnections();
    if (inFlight > 0) {
      const idle = new Promise<void>((resolve) => {
        drained = resolve;
      });
      const outcome = await Promise.race([idle.then(() => 'drained' as const), sleep(closeTimeoutMs, 'timeout' as const)]);
      if (outcome === 'timeout') {
        log.warn({ inFlight }, `${inFlight} push request(s) still running after ${closeTimeoutMs} ms; dropping them (Pub/Sub redelivers)`);
      }
    }
    server.closeAllConnections();
    await stopped;
    log.info('Push endpoint closed');
  };
  return {
    url,
    close: async () => {
      closed ??= close();
      await closed;
    },
  };
}

function headerText(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads the standard push envelope; Pub/Sub sends both camelCase and snake_case metadata. */
function parseEnvelope(envelope: unknown): PushedMessage {
  const refuse = (reason: string): never => {
    throw new Refusal(400, `not a Pub/Sub push envelope: ${reason}`);
  };
  if (!isRecord(envelope)) return refuse('expected a JSON object');
  const message = envelope.message;
  if (!isRecord(message)) return refuse('expected `message` to be an object');
  const messageId = message.messageId ?? message.message_id;
  if (typeof messageId !== 'string' || messageId === '') return refuse('expected `message.messageId` to be a non-empty string');
  const data = message.data ?? '';
  if (typeof data !== 'string' || !BASE64.test(data)) return refuse('expected `message.data` to be base64');
  // No prototype: an attribute named __proto__ stays an attribute.
  const attributes = Object.create(null) as Record<string, string>;
  if (message.attributes !== undefined && message.attributes !== null) {
    if (!isRecord(message.attributes)) return refuse('expected `message.attributes` to be an object');
    for (const [name, value] of Object.entries(message.attributes)) {
      if (typeof value !== 'string') return refuse(`expected attribute ${JSON.stringify(name)} to be a string`);
      attributes[name] = value;
    }
  }
  const subscription = envelope.subscription;
  const publishTime = message.publishTime ?? message.publish_time;
  return {
    data: Buffer.from(data, 'base64'),
    attributes,
    messageId,
    subscription: typeof subscription === 'string' ? subscription : undefined,
    publishTime: typeof publishTime === 'string' ? publishTime : undefined,
  };
}

/**
 * Why a token was refused, without the token: google-auth-library's messages append the token or
 * its claims after a colon.
 */
function tokenErrorReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (message.split(/:\s/)[0] ?? message).slice(0, 200);
}
