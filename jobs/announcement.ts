import { describe } from '../config/env.js';
import { InvalidRequestError } from './errors.js';

/** The e-mail languages. */
export const LOCALES = ['en', 'es', 'pt'] as const;
/** An e-mail language. */
export type Locale = (typeof LOCALES)[number];

/** How long a download link stays valid, per report kind. 604800 s is the V4 signature maximum. */
export const LINK_SECONDS: Readonly<Record<string, number>> = { conversations: 604_800, 'stop-slots': 86_400 };

/** At most this many recipients per request. */
export const MAX_RECIPIENTS = 20;

// Deliberately plain: one @, no spaces or angle brackets, a dot in the domain. SMTP has the last word.
// Internationalised addresses pass; control characters (NUL, CR, LF, DEL, C1), format characters
// (bidi overrides, zero-width spaces) and separators never do: they could end an SMTP command or a
// header line, or make an address look like another.
/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const EMAIL = /^[^\s\p{Cc}\p{Cf}\p{Z}@<>(),;:"[\]\\]+@[^\s\p{Cc}\p{Cf}\p{Z}@<>(),;:"[\]\\]+\.[^\s\p{Cc}\p{Cf}\p{Z}@<>(),;:"[\]\\]+$/u;

/**
 * Validates one e-mail address and normalises it (trimmed, domain lower-cased).
 * @throws InvalidRequestError naming `field`.
 */
export function parseEmailAddress(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidRequestError(field, `expected an e-mail address, got ${describe(value)}`);
  const trimmed = value.trim();
  // With the u flag a lone surrogate is one code point the class lets through: refuse it here.
  if (trimmed.length > 254 || !EMAIL.test(trimmed) || LONE_SURROGATE.test(trimmed)) {
    throw new InvalidRequestError(field, `${describe(value)} is not a valid e-mail address`);
  }
  const at = trimmed.lastIndexOf('@');
  return `${trimmed.slice(0, at)}@${trimmed.slice(at + 1).toLowerCase()}`;
}

/**
 * Validates a recipient list: each address valid, duplicates (ignoring case) dropped, at most
 * {@link MAX_RECIPIENTS}.
 * @throws InvalidRequestError naming `field`.
 */
export function parseRecipients(field: string, value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidRequestError(field, `expected a list of e-mail addresses, got ${describe(value)}`);
  const seen = new Set<string>();
  const recipients: string[] = [];
  value.forEach((item, index) => {
    const address = parseEmailAddress(`${field}[${index}]`, item);
    if (seen.has(address.toLowerCase())) return;
    seen.add(address.toLowerCase());
    recipients.push(address);
  });
  if (recipients.length > MAX_RECIPIENTS) {
    throw new InvalidRequestError(field, `at most ${MAX_RECIPIENTS} recipients, got ${recipients.length}`);
  }
  return recipients;
}

/** Validates a locale; absent means `en`. */
export function parseLocale(field: string, value: unknown): Locale {
  if (value === undefined || value === null) return 'en';
  if (typeof value !== 'string' || !(LOCALES as readonly string[]).includes(value)) {
    throw new InvalidRequestError(field, `expected one of ${LOCALES.join(', ')}, got ${describe(value)}`);
  }
  return value as Locale;
}

/**
 * The message published on the ready topic once an export's object is confirmed: everything the
 * mail step needs to e-mail each recipient a link, without reading the export's database.
 */
export interface ReadyAnnouncement {
  readonly requestId: string;
  readonly kind: string;
  readonly merchantId: string;
  /** Cloud Storage bucket; `null` for a local `file://` export (demo and tests), linked as is. */
  readonly bucket: string | null;
  /** Object name in the bucket, or the local file's path. */
  readonly object: string;
  /** Object generation as a decimal string (`"0"` for local files): the link names exactly this object. */
  readonly generation: string;
  readonly bytes: number;
  readonly rows: number;
  /** File names inside the archive (or the file itself). */
  readonly files: readonly string[];
  readonly recipients: readonly string[];
  readonly locale: Locale;
  /** How long the e-mailed link stays valid. */
  readonly linkSeconds: number;
  /** When the export finished (ISO-8601). */
  readonly createdAt: string;
  /** The object's URI (`gs://bucket/object` or `file:///path`). */
  readonly uri: string;
  /** For a report with one file per bot (stop-slots): the bot this announcement's file is for. */
  readonly report?: { readonly botId: string; readonly botName: string };
  /** What was asked for, for the e-mail's text: range bounds as given, the zone, the filters. */
  readonly parameters: {
    readonly from: string;
    readonly to: string;
    readonly timezone: string;
    readonly filters: Readonly<Record<string, readonly string[]>>;
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidRequestError(field, `expected a non-empty text, got ${describe(value)}`);
  return value;
}

function count(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidRequestError(field, `expected a whole number from 0 up, got ${describe(value)}`);
  }
  return value;
}

/**
 * Validates a ready announcement (the parsed JSON of a Pub/Sub message).
 * @throws InvalidRequestError naming the field: a malformed announcement is acknowledged and
 * reported, never retried.
 */
export function parseAnnouncement(input: unknown): ReadyAnnouncement {
  if (!isRecord(input)) throw new InvalidRequestError('announcement', `expected a JSON object, got ${describe(input)}`);
  const bucket = input.bucket === null ? null : text('bucket', input.bucket);
  const uri = text('uri', input.uri);
  if (bucket === null && !uri.startsWith('file://')) throw new InvalidRequestError('bucket', 'required unless uri is a file:// URI');
  const generation = text('generation', input.generation);
  if (!/^\d+$/.test(generation)) throw new InvalidRequestError('generation', `expected a decimal string, got ${describe(generation)}`);
  const createdAt = text('createdAt', input.createdAt);
  if (Number.isNaN(Date.parse(createdAt))) throw new InvalidRequestError('createdAt', `expected an ISO-8601 timestamp, got ${describe(createdAt)}`);
  const linkSeconds = count('linkSeconds', input.linkSeconds);
  if (linkSeconds < 1 || linkSeconds > 604_800) {
    throw new InvalidRequestError('linkSeconds', `expected 1 to 604800 (7 days, the V4 signature maximum), got ${linkSeconds}`);
  }
  if (!Array.isArray(input.files) || input.files.some((file) => typeof file !== 'string')) {
    throw new InvalidRequestError('files', 'expected a list of file names');
  }
  const recipients = parseRecipients('recipients', input.recipients);
  if (recipients.length === 0) throw new InvalidRequestError('recipients', 'expected at least one recipient');
  const parameters = isRecord(input.parameters) ? input.parameters : {};
  const filters: Record<string, readonly string[]> = {};
  if (isRecord(parameters.filters)) {
    for (const [key, value] of Object.entries(parameters.filters)) {
      if (Array.isArray(value)) filters[key] = value.map(String);
    }
  }
  const report = isRecord(input.report)
    ? { botId: text('report.botId', String(input.report.botId ?? '')), botName: text('report.botName', input.report.botName) }
    : undefined;
  return {
    ...(report === undefined ? {} : { report }),
    requestId: text('requestId', input.requestId),
    kind: text('kind', input.kind),
    merchantId: text('merchantId', String(input.merchantId ?? '')),
    bucket,
    object: text('object', input.object),
    generation,
    bytes: count('bytes', input.bytes),
    rows: count('rows', input.rows),
    files: input.files as string[],
    recipients,
    locale: parseLocale('locale', input.locale),
    linkSeconds,
    createdAt,
    uri,
    parameters: {
      from: typeof parameters.from === 'string' ? parameters.from : '',
      to: typeof parameters.to === 'string' ? parameters.to : '',
      timezone: typeof parameters.timezone === 'string' ? parameters.timezone : '',
      filters,
    },
  };
}

/**
 * Tells a ready announcement from an export request on a shared push endpoint: only announcements
 * name a stored object (`object` and `generation`). Not a validation; each handler validates.
 */
export function looksLikeAnnouncement(data: Buffer): boolean {
  try {
    const value: unknown = JSON.parse(data.toString('utf8'));
    return isRecord(value) && 'object' in value && 'generation' in value;
  } catch {
    return false;
  }
}
