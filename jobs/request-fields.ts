import { randomUUID } from 'node:crypto';
import { describe } from '../config/env.js';
import { parseEmailAddress, parseLocale, parseRecipients, type Locale } from './announcement.js';
import { InvalidRequestError } from './errors.js';

/**
 * The request fields every report kind shares, and the small parsers behind them: each throws an
 * InvalidRequestError naming the field and the rule.
 */

/** A bound of the range: a calendar date (midnight in the export zone) or an instant with an offset. */
export type RangeBound =
  | { readonly kind: 'date'; readonly date: string }
  | { readonly kind: 'instant'; readonly iso: string; readonly epochMs: number };

/** The user who made a request. */
export interface RequestedBy {
  readonly userId: string;
  readonly email: string | undefined;
}

/** Parses `requestedBy` (`{ userId, email }`); absent gives undefined. */
export function parseRequestedBy(value: unknown): RequestedBy | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw new InvalidRequestError('requestedBy', `expected an object with userId and email, got ${describe(value)}`);
  rejectUnknownFields('requestedBy', value, ['userId', 'email']);
  const userId = typeof value.userId === 'number' && Number.isSafeInteger(value.userId) ? String(value.userId) : value.userId;
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > 200) {
    throw new InvalidRequestError('requestedBy.userId', `expected a user id (text or number), got ${describe(value.userId)}`);
  }
  const email = value.email === undefined || value.email === null ? undefined : parseEmailAddress('requestedBy.email', value.email);
  return { userId, email };
}

const BIGINT_ID = /^[1-9][0-9]{0,18}$/;
const MAX_BIGINT = 9223372036854775807n;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})$/;
export const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const TIMEZONE = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

export function parseId(field: string, value: unknown): string {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || !BIGINT_ID.test(text) || BigInt(text) > MAX_BIGINT) {
    throw new InvalidRequestError(field, `expected a positive whole number (a bigint id), got ${describe(value)}`);
  }
  return text;
}

/** True when year-month-day is a day of the (proleptic Gregorian) calendar, years 1 to 9999 included. */
export function isCalendarDate(year: number, month: number, day: number): boolean {
  // Year 0 is 1 BC, which PostgreSQL does not read in ISO form.
  if (year < 1) return false;
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0 to 99 as 1900 to 1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** Parses `YYYY-MM-DD` or an ISO-8601 timestamp with an offset (`2026-09-01T08:00:00-05:00`, `...Z`). */
export function parseRangeBound(field: string, value: unknown): RangeBound {
  const rule = 'expected a date YYYY-MM-DD or an ISO-8601 timestamp with offset such as 2026-09-01T08:00:00-05:00';
  if (typeof value !== 'string') throw new InvalidRequestError(field, `${rule}, got ${describe(value)}`);
  const date = DATE.exec(value);
  if (date !== null) {
    if (!isCalendarDate(Number(date[1]), Number(date[2]), Number(date[3]))) {
      throw new InvalidRequestError(field, `${describe(value)} is not a calendar date`);
    }
    return { kind: 'date', date: value };
  }
  const instant = INSTANT.exec(value);
  if (instant === null) throw new InvalidRequestError(field, `${rule}, got ${describe(value)}`);
  const [, y, mo, d, h, mi, s] = instant;
  const offset = instant[8] as string;
  const validOffset = offset === 'Z' || /^[+-](?:[01]\d|2[0-3]):?[0-5]\d$/.test(offset);
  if (
    !isCalendarDate(Number(y), Number(mo), Number(d)) ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s ?? 0) > 59 ||
    !validOffset
  ) {
    throw new InvalidRequestError(field, `${describe(value)} is not a valid timestamp`);
  }
  const epochMs = Date.parse(offset.length === 5 ? `${value.slice(0, -5)}${offset.slice(0, 3)}:${offset.slice(3)}` : value);
  if (!Number.isFinite(epochMs)) throw new InvalidRequestError(field, `${describe(value)} is not a valid timestamp`);
  return { kind: 'instant', iso: value, epochMs };
}

/**
 * The most distinct values a list field (a filter, `botIds`) takes. A thousand agents or bots is
 * far beyond any real request, and keeps the inlined SQL of an export to a few hundred KB.
 */
export const MAX_LIST_VALUES = 1000;

/**
 * Parses a list field item by item (`field[i]` names a bad item) and drops duplicates; more than
 * {@link MAX_LIST_VALUES} distinct values is refused, naming the limit.
 */
export function parseList<T>(field: string, value: unknown, parseItem: (field: string, item: unknown) => T): T[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidRequestError(field, `expected a list, got ${describe(value)}`);
  const items = new Set<T>();
  value.forEach((item, index) => items.add(parseItem(`${field}[${index}]`, item)));
  if (items.size > MAX_LIST_VALUES) {
    throw new InvalidRequestError(field, `at most ${MAX_LIST_VALUES} distinct values, got ${items.size}`);
  }
  return [...items];
}

// C0 and C1 controls and DEL: no provider or alias holds one. A NUL would end the SQL text the
// export sends (the protocol's strings are NUL-terminated), and a line break forges log lines.
const CONTROL = /\p{Cc}/u;
/** A high surrogate not followed by a low one, or a low one not preceded by a high one. */
export const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Parses a free-text filter value: 1 to 200 characters, no control characters, well-formed
 * UTF-16 (a lone surrogate would reach PostgreSQL as U+FFFD and match something else).
 */
export function parseText(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    throw new InvalidRequestError(field, `expected a non-empty text of at most 200 characters, got ${describe(value)}`);
  }
  if (CONTROL.test(value) || LONE_SURROGATE.test(value)) {
    throw new InvalidRequestError(field, `expected text without control characters or lone surrogates, got ${describe(value)}`);
  }
  return value;
}

export function parseBoolean(field: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidRequestError(field, `expected true or false, got ${describe(value)}`);
  return value;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function rejectUnknownFields(field: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new InvalidRequestError(field === '' ? key : `${field}.${key}`, `unknown field (expected one of ${known.join(', ')})`);
    }
  }
}


/** What every request carries, whatever its kind. */
export interface CommonRequestFields {
  readonly requestId: string;
  /** A positive bigint, as decimal text (JSON numbers lose precision past 2^53). */
  readonly merchantId: string;
  readonly from: RangeBound;
  readonly to: RangeBound;
  /** IANA zone; when absent the merchant's zone is used. */
  readonly timezone: string | undefined;
  /** Who gets e-mails with the download links (validated, deduplicated, at most 20). */
  readonly recipients: readonly string[];
  /** The e-mail's language. */
  readonly locale: Locale;
  /** Who asked (user id and e-mail), for the record; not part of what makes two requests the same. */
  readonly requestedBy: RequestedBy | undefined;
}

/** The field names {@link parseCommonFields} reads; a kind adds its own. */
export const COMMON_FIELDS = ['format', 'kind', 'requestId', 'merchantId', 'from', 'to', 'timezone', 'recipients', 'locale', 'requestedBy'] as const;

/**
 * Parses the shared fields of a request of `kind` (the caller checked unknown fields). `from` must
 * come before `to`; `maxRangeMs` bounds two instants here (dates are checked once resolved).
 */
export function parseCommonFields(input: Record<string, unknown>, kind: string, maxRangeMs?: number): CommonRequestFields {
  if (input.kind !== undefined && input.kind !== kind) {
    throw new InvalidRequestError('kind', `expected ${JSON.stringify(kind)}, got ${describe(input.kind)}`);
  }
  let requestId: string = randomUUID();
  if (input.requestId !== undefined) {
    if (typeof input.requestId !== 'string' || !REQUEST_ID.test(input.requestId)) {
      throw new InvalidRequestError(
        'requestId',
        `expected 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit, got ${describe(input.requestId)}`,
      );
    }
    requestId = input.requestId;
  }
  const merchantId = parseId('merchantId', input.merchantId);
  const from = parseRangeBound('from', input.from);
  const to = parseRangeBound('to', input.to);
  if (from.kind === 'instant' && to.kind === 'instant') {
    if (from.epochMs >= to.epochMs) throw new InvalidRequestError('from', `${from.iso} is not before to ${to.iso}`);
    if (maxRangeMs !== undefined && to.epochMs - from.epochMs > maxRangeMs) {
      throw new InvalidRequestError('to', `the range is longer than ${maxRangeMs / 86_400_000} days (${maxRangeMs / 86_400_000} x 24 hours)`);
    }
  }
  if (from.kind === 'date' && to.kind === 'date' && from.date >= to.date) {
    throw new InvalidRequestError('from', `${from.date} is not before to ${to.date}`);
  }
  let timezone: string | undefined;
  if (input.timezone !== undefined && input.timezone !== null) {
    if (typeof input.timezone !== 'string' || !TIMEZONE.test(input.timezone)) {
      throw new InvalidRequestError('timezone', `expected an IANA time zone name such as America/Bogota, got ${describe(input.timezone)}`);
    }
    timezone = input.timezone;
  }
  return {
    requestId,
    merchantId,
    from,
    to,
    timezone,
    recipients: parseRecipients('recipients', input.recipients),
    locale: parseLocale('locale', input.locale),
    requestedBy: parseRequestedBy(input.requestedBy),
  };
}

/** A range bound as the user gave it: the date, or the ISO text. */
export function boundText(bound: RangeBound): string {
  return bound.kind === 'date' ? bound.date : bound.iso;
}

/**
 * One named part of what makes two requests the same: the field's name as a request spells it, its
 * normalised value, and optionally a value for which the part is left out of the identity text
 * (a field added later, at its old behaviour, so stored identities stay valid).
 */
export type IdentityPart = readonly [field: string, value: unknown, omittedAt?: unknown];

/** A range bound as it counts for identity: a date as written, an instant as the moment (UTC), whatever its offset. */
export function identityBound(bound: RangeBound): string {
  return bound.kind === 'date' ? bound.date : new Date(bound.epochMs).toISOString();
}

/** The identity string of a request's parts: their values in order (the names are only for telling which differ). */
export function identityText(parts: readonly IdentityPart[]): string {
  const counted = parts.filter((part) => part.length < 3 || JSON.stringify(part[1]) !== JSON.stringify(part[2]));
  return JSON.stringify(counted.map(([, value]) => value));
}

/** The output formats of every report kind. */
export const EXPORT_FORMATS = ['csv', 'xlsx'] as const;

/** An output format: `csv` (the default; conversation exports zipped) or `xlsx` (an Excel workbook). */
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/**
 * Parses the request's `format` (default `csv`).
 * @throws InvalidRequestError naming `format` for anything but `"csv"` or `"xlsx"`.
 */
export function parseFormat(value: unknown): ExportFormat {
  if (value === undefined) return 'csv';
  if (typeof value !== 'string' || !(EXPORT_FORMATS as readonly string[]).includes(value)) {
    throw new InvalidRequestError('format', `expected one of ${EXPORT_FORMATS.join(', ')}, got ${describe(value)}`);
  }
  return value as ExportFormat;
}

/**
 * The identity part of a request's format. A CSV request's identity leaves it out, so requests
 * stored before formats existed keep the identity (and coalescing hash) they were stored with.
 */
export function formatIdentityPart(format: ExportFormat): IdentityPart {
  return ['format', format, 'csv'];
}
