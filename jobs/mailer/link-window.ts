/**
 * How long an e-mailed download link may live: never longer than the file it points at. The bucket's
 * lifecycle deletes an export `retentionDays` after its creation (docs/deploy.md, section 3), so a
 * link signed for its full 7 days (24 hours for stop-slots) by a late mail step (a backlog, a
 * dead-letter replay) would end in a 404 before it expires.
 */
import { InvalidRequestError } from '../errors.js';
import { setting } from '../../config/env.js';

/** The bucket lifecycle's `age` in docs/deploy.md: exports are deleted 8 days after creation. */
export const DEFAULT_RETENTION_DAYS = 8;

/** A link with less time left than this is not worth an e-mail: the recipient would likely open it too late. */
export const MIN_LINK_LIFETIME_MS = 3_600_000;

const DAY_MS = 86_400_000;

/**
 * `EXPORT_RETENTION_DAYS`: the age in days at which the bucket's lifecycle deletes exports; default
 * {@link DEFAULT_RETENTION_DAYS}. Keep it equal to the lifecycle rule's `age`.
 * @throws InvalidRequestError naming the variable for anything but a whole number from 1 up.
 */
export function exportRetentionDays(env: NodeJS.ProcessEnv = process.env): number {
  const value = setting(env, 'EXPORT_RETENTION_DAYS');
  if (value === undefined) return DEFAULT_RETENTION_DAYS;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < 1) {
    throw new InvalidRequestError(
      'EXPORT_RETENTION_DAYS',
      `expected a whole number of days from 1 up (the bucket lifecycle's age), got ${JSON.stringify(value)}`,
    );
  }
  return Number(value);
}

/** What {@link linkWindow} decides from. */
export interface LinkWindowInput {
  /** When the link is made. */
  readonly now: Date;
  /** The announcement's `linkSeconds`: the longest the link may last (604800 or 86400). */
  readonly linkSeconds: number;
  /** When the object was created (Cloud Storage's `timeCreated`, a local file's modification time). */
  readonly objectCreatedAt: Date;
  readonly retentionDays: number;
}

/** The answer of {@link linkWindow}. */
export type LinkWindow =
  | {
      readonly usable: true;
      /**
       * When the link stops working: `min(now + linkSeconds, deletedAt)`. A V4 signature made with
       * {@link seconds} ends up to a second earlier (its start is truncated to the second).
       */
      readonly expiresAt: Date;
      /**
       * `X-Goog-Expires` for a V4 signature made at `now`: it counts from `now` truncated to the
       * second, and these seconds keep its end at or before `deletedAt`.
       */
      readonly seconds: number;
      /** True when the object's retention, not `linkSeconds`, decided the expiry. */
      readonly shortened: boolean;
      readonly deletedAt: Date;
    }
  | {
      readonly usable: false;
      /** When the lifecycle deletes (or deleted) the object: creation + retention. */
      readonly deletedAt: Date;
    };

function validDate(name: string, value: Date): number {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw new TypeError(`Expected \`${name}\` to be a valid Date, got ${String(value)}`);
  return value.getTime();
}

/**
 * The life of a link made at `now` to an object created at `objectCreatedAt`: it ends at
 * `min(now + linkSeconds, objectCreatedAt + retentionDays)`, and is not usable at all when less
 * than {@link MIN_LINK_LIFETIME_MS} (an hour) is left before the object's deletion. The deletion
 * time is the earliest the lifecycle may act (Cloud Storage may delete later, never earlier).
 *
 * @throws TypeError for an invalid date, or `linkSeconds` or `retentionDays` not whole numbers from 1 up.
 */
export function linkWindow(input: LinkWindowInput): LinkWindow {
  const now = validDate('now', input.now);
  const created = validDate('objectCreatedAt', input.objectCreatedAt);
  for (const name of ['linkSeconds', 'retentionDays'] as const) {
    const value = input[name];
    if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`Expected \`${name}\` to be a whole number from 1 up, got ${String(value)}`);
  }
  const deletedAt = created + input.retentionDays * DAY_MS;
  if (deletedAt - now < MIN_LINK_LIFETIME_MS) return { usable: false, deletedAt: new Date(deletedAt) };
  const signedAt = Math.floor(now / 1000) * 1000;
  const shortened = deletedAt < now + input.linkSeconds * 1000;
  return {
    usable: true,
    expiresAt: new Date(Math.min(now + input.linkSeconds * 1000, deletedAt)),
    seconds: Math.min(input.linkSeconds, Math.floor((deletedAt - signedAt) / 1000)),
    shortened,
    deletedAt: new Date(deletedAt),
  };
}

/**
 * The announced object is gone, or goes before a link to it would be of use: no e-mail can help.
 * The mail step acknowledges the announcement and marks the request `expired` with this message.
 */
export class LinkUnavailableError extends Error {
  /** `gone`: no such object (generation); `expiring`: deleted, or to be, within the hour. */
  readonly reason: 'gone' | 'expiring';
  /** The object's URI (`gs://...`, `file://...`). */
  readonly uri: string;

  constructor(reason: 'gone' | 'expiring', uri: string, message: string) {
    super(message);
    this.name = 'LinkUnavailableError';
    this.reason = reason;
    this.uri = uri;
  }

  /** The object (this generation) does not exist. */
  static gone(uri: string): LinkUnavailableError {
    return new LinkUnavailableError('gone', uri, `object ${uri} is gone`);
  }

  /** The object is deleted at `deletedAt`, less than an hour after `now` (or before it). */
  static expiring(uri: string, deletedAt: Date, now: Date, retentionDays: number): LinkUnavailableError {
    const rule = `(EXPORT_RETENTION_DAYS=${retentionDays} after its creation)`;
    const message =
      deletedAt.getTime() <= now.getTime()
        ? `object ${uri} is past its retention: due for deletion since ${deletedAt.toISOString()} ${rule}`
        : `object ${uri} expires at ${deletedAt.toISOString()} ${rule}, within an hour`;
    return new LinkUnavailableError('expiring', uri, message);
  }
}
