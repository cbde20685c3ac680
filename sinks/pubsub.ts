import { PubSub, type ClientConfig } from '@google-cloud/pubsub';
import { parseAnnouncement, type ReadyAnnouncement } from '../jobs/announcement.js';
import { InvalidRequestError } from '../jobs/errors.js';
import { describe, setting } from '../config/env.js';

/** gRPC status NOT_FOUND: the topic (or subscription) does not exist. */
export const GRPC_NOT_FOUND = 5;

/** gRPC status DEADLINE_EXCEEDED: gax's answer when its total timeout ran out. */
const GRPC_DEADLINE_EXCEEDED = 4;

/** How long {@link publishAnnouncement} waits for the server's message id, retries included. */
export const DEFAULT_PUBLISH_TIMEOUT_MS = 30_000;

// Project ids are 6 to 30 lower-case letters, digits and hyphens; older ones may carry a
// `domain.com:` prefix. Anything with a slash or a space would make the resource names wrong.
const PROJECT_ID = /^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
// Resource ids: 3 to 255 characters from this set, starting with a letter, not starting with "goog".
const RESOURCE_ID = /^(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$/;
const RESOURCE_NAME = /^projects\/[^/]+\/(?:topics|subscriptions)\/([^/]+)$/;



/**
 * A Pub/Sub client for the project in `GOOGLE_CLOUD_PROJECT` (unset: the project of the
 * Application Default Credentials). With `PUBSUB_EMULATOR_HOST` (`host:port`) it talks plain gRPC
 * to that emulator without credentials, and then requires `GOOGLE_CLOUD_PROJECT`.
 *
 * The library reads `PUBSUB_EMULATOR_HOST` from `process.env` by itself too; the endpoint is passed
 * explicitly so that an emulator named in `env` is used even when `process.env` names none (the
 * reverse still holds: the library falls back to `process.env`'s when `env` has none).
 * @throws TypeError naming the variable and its rule.
 */
export function createPubSubClient(env: NodeJS.ProcessEnv = process.env): PubSub {
  const projectId = setting(env, 'GOOGLE_CLOUD_PROJECT');
  const emulatorHost = setting(env, 'PUBSUB_EMULATOR_HOST');
  if (projectId !== undefined && !PROJECT_ID.test(projectId)) {
    throw new TypeError(`Expected GOOGLE_CLOUD_PROJECT to be a project id (6 to 30 of a-z, 0-9, -), got ${describe(projectId)}`);
  }
  const config: ClientConfig = {};
  if (projectId !== undefined) config.projectId = projectId;
  if (emulatorHost !== undefined) {
    if (!/^[^\s/:]+:\d{1,5}$/.test(emulatorHost)) {
      throw new TypeError(`Expected PUBSUB_EMULATOR_HOST to be host:port, got ${describe(emulatorHost)}`);
    }
    // The emulator keeps topics per project but has none of its own to fall back on.
    if (projectId === undefined) {
      throw new TypeError('Expected GOOGLE_CLOUD_PROJECT to be set when PUBSUB_EMULATOR_HOST is: the emulator has no default project');
    }
    config.apiEndpoint = emulatorHost;
    config.emulatorMode = true;
    // gax asks the credentials for their universe domain before every stub, even over plain gRPC,
    // which probes the GCE metadata server (a network call, and seconds of delay off GCP). Naming
    // the domain skips that: the emulator path never looks for credentials at all.
    config.universeDomain = 'googleapis.com';
  }
  return new PubSub(config);
}

/**
 * The short id of a topic or subscription given as an id or as `projects/P/topics/ID`.
 * @throws TypeError naming `field` and the rule for ids.
 */
export function resourceId(field: string, name: unknown): string {
  if (typeof name === 'string') {
    const id = RESOURCE_NAME.exec(name)?.[1] ?? name;
    if (RESOURCE_ID.test(id)) return id;
  }
  throw new TypeError(
    `Expected \`${field}\` to be a Pub/Sub id (3 to 255 of A-Z a-z 0-9 - _ . ~ + %, starting with a letter, not "goog") ` +
      `or a full resource name, got ${describe(name)}`,
  );
}

/** The gRPC status code of a Google client error, if it has one. */
export function grpcCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Options of {@link publishAnnouncement}. */
export interface PublishOptions {
  /** Give up after this long, retries included (default {@link DEFAULT_PUBLISH_TIMEOUT_MS}). */
  readonly timeoutMs?: number;
}

/**
 * Publishes a ready announcement: the JSON of `announcement` as data, with the attributes `kind`
 * and `requestId` (so subscriptions can filter without parsing), and resolves with the message id
 * the server assigned. Topics are infrastructure: a missing topic is an error, never created here.
 *
 * Delivery is at least once: a publish that timed out may still have reached the topic, so
 * consumers key on `requestId`.
 * @throws TypeError for a malformed topic name or announcement.
 * @throws Error naming topic and project when the topic does not exist (gRPC NOT_FOUND), naming the
 * timeout when the server did not answer in time, and with the server's reason otherwise.
 */
export async function publishAnnouncement(
  pubsub: PubSub,
  topicName: string,
  announcement: ReadyAnnouncement,
  options: PublishOptions = {},
): Promise<string> {
  const topicId = resourceId('topicName', topicName);
  try {
    // The mail step rejects what this rejects: better to fail here, where the export can report it.
    parseAnnouncement(announcement);
  } catch (error) {
    if (error instanceof InvalidRequestError) throw new TypeError(`Expected a valid ready announcement: ${error.message}`);
    throw error;
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_PUBLISH_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
    throw new TypeError(`Expected \`timeoutMs\` to be a whole number of milliseconds from 1 up, got ${describe(timeoutMs)}`);
  }

  const topic = pubsub.topic(topicName, {
    // One message, sent at once: there is nothing to batch it with.
    batching: { maxMessages: 1, maxMilliseconds: 0 },
    // gax takes `timeout` as the total for the call, its retries of UNAVAILABLE and the like included
    // (the default would retry for 600 s against an unreachable endpoint).
    gaxOpts: { timeout: timeoutMs },
  });
  const publishing = topic.publishMessage({
    data: Buffer.from(JSON.stringify(announcement), 'utf8'),
    attributes: { kind: announcement.kind, requestId: announcement.requestId },
  });
  // gax bounds the RPC, but not what comes before it (resolving credentials or the project id); this
  // bounds the whole publish. A publish abandoned here may still complete: see "at least once".
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PublishTimeoutError(timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([publishing, timedOut]);
  } catch (error) {
    void publishing.catch(() => {});
    throw publishFailure(pubsub, topicId, announcement.requestId, timeoutMs, error);
  } finally {
    clearTimeout(timer);
  }
}

class PublishTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
    this.name = 'PublishTimeoutError';
  }
}

function publishFailure(pubsub: PubSub, topicId: string, requestId: string, timeoutMs: number, error: unknown): Error {
  // The project as resolved by the client (its placeholder if the call failed before resolving it).
  const project = pubsub.projectId;
  if (grpcCode(error) === GRPC_NOT_FOUND) {
    return new Error(`Pub/Sub topic "${topicId}" does not exist in project "${project}": create it (see README)`, { cause: error });
  }
  const slow = `no answer from Pub/Sub within ${timeoutMs} ms (is the endpoint reachable?)`;
  let reason = errorText(error);
  if (error instanceof PublishTimeoutError) reason = slow;
  else if (grpcCode(error) === GRPC_DEADLINE_EXCEEDED) reason = `${slow}: ${reason}`;
  return new Error(
    `Publishing the ready announcement of request ${requestId} to Pub/Sub topic "${topicId}" in project "${project}" failed: ${reason}`,
    { cause: error },
  );
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  // gax appends every retried attempt's error to its total-timeout message: the first says it all.
  return text.split(' : Previous errors')[0] ?? text;
}
