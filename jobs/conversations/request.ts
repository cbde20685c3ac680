import { randomUUID } from 'node:crypto';
import { parseEmailAddress, parseLocale, parseRecipients, type Locale } from '../announcement.js';
import { InvalidRequestError } from '../errors.js';

/** Chat statuses as stored in `chats.status`. */
export const CHAT_STATUSES = ['OPENED', 'PICKED_UP', 'CLOSED'] as const;
/** A chat status. */
export type ChatStatus = (typeof CHAT_STATUSES)[number];

/** The longest range one conversation export may cover: 60 x 24 hours. */
export const MAX_RANGE_MS = 60 * 24 * 60 * 60 * 1000;

/** The default and the largest number of data rows per CSV file: a spreadsheet opens 1,048,576 rows. */
export const DEFAULT_ROWS_PER_FILE = 1_000_000;
const MAX_ROWS_PER_FILE = 1_048_575;

/** A bound of the range: a calendar date (midnight in the export zone) or an instant with an offset. */
export type RangeBound =
  | { readonly kind: 'date'; readonly date: string }
  | { readonly kind: 'instant'; readonly iso: string; readonly epochMs: number };

/** Optional narrowing of the exported chats; an empty list means no narrowing. */
export interface ConversationFilters {
  readonly agentIds: readonly string[];
  readonly providers: readonly string[];
  readonly aliases: readonly string[];
  readonly statuses: readonly ChatStatus[];
}

/** How the CSV is written. */
export interface CsvFileOptions {
  readonly bom: boolean;
  readonly formulaGuard: boolean;
  readonly rowsPerFile: number;
}

/** A validated conversation export request, before it is resolved against the database. */
export interface ConversationRequest {
  readonly kind: 'conversations';
  readonly requestId: string;
  /** A positive bigint, as decimal text (JSON numbers lose precision past 2^53). */
  readonly merchantId: string;
  readonly from: RangeBound;
  readonly to: RangeBound;
  /** IANA zone; when absent the merchant's zone is used. */
  readonly timezone: string | undefined;
  readonly filters: ConversationFilters;
  readonly csv: CsvFileOptions;
  /** Who gets an e-mail with the download link (validated, deduplicated, at most 20); none: no announcement. */
  readonly recipients: readonly string[];
  /** The e-mail's language. */
  readonly locale: Locale;
  /** Who asked (user id and e-mail), for the record; not part of what makes two requests the same. */
  readonly requestedBy: RequestedBy | undefined;
}

/** The user who made a request. */
export interface RequestedBy {
  readonly userId: string;
  readonly email: string | undefined;
}

function parseRequestedBy(value: unknown): RequestedBy | undefined {
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
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const TIMEZONE = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;

function describe(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value) ?? String(value);
}

/** Parses a positive bigint id given as a number or decimal text. */
export function parseId(field: string, value: unknown): string {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || !BIGINT_ID.test(text) || BigInt(text) > MAX_BIGINT) {
    throw new InvalidRequestError(field, `expected a positive whole number (a bigint id), got ${describe(value)}`);
  }
  return text;
}

function isCalendarDate(year: number, month: number, day: number): boolean {
  const date = new Date(Date.UTC(year, month - 1, day));
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

function parseList<T>(field: string, value: unknown, parseItem: (field: string, item: unknown) => T): T[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidRequestError(field, `expected a list, got ${describe(value)}`);
  const items = value.map((item, index) => parseItem(`${field}[${index}]`, item));
  return [...new Set(items)];
}

function parseText(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200) {
    throw new InvalidRequestError(field, `expected a non-empty text of at most 200 characters, got ${describe(value)}`);
  }
  return value;
}

function parseStatus(field: string, value: unknown): ChatStatus {
  if (typeof value !== 'string' || !(CHAT_STATUSES as readonly string[]).includes(value.toUpperCase())) {
    throw new InvalidRequestError(field, `expected one of ${CHAT_STATUSES.join(', ')}, got ${describe(value)}`);
  }
  return value.toUpperCase() as ChatStatus;
}

function parseBoolean(field: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidRequestError(field, `expected true or false, got ${describe(value)}`);
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function rejectUnknownFields(field: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new InvalidRequestError(field === '' ? key : `${field}.${key}`, `unknown field (expected one of ${known.join(', ')})`);
    }
  }
}

const REQUEST_FIELDS = ['kind', 'requestId', 'merchantId', 'from', 'to', 'timezone', 'filters', 'csv', 'recipients', 'locale', 'requestedBy'] as const;
const FILTER_FIELDS = ['agentIds', 'providers', 'aliases', 'statuses'] as const;
const CSV_FIELDS = ['bom', 'formulaGuard', 'rowsPerFile'] as const;

/**
 * Validates a conversation export request (from CLI flags or a JSON document) and fills in the
 * defaults. Everything that can be checked without the database is checked here; the merchant, the
 * time zone and the range's length are checked by `resolveConversationExport`.
 * @throws InvalidRequestError naming the field and the rule.
 */
export function parseConversationRequest(input: unknown): ConversationRequest {
  if (!isRecord(input)) throw new InvalidRequestError('request', `expected a JSON object, got ${describe(input)}`);
  rejectUnknownFields('', input, REQUEST_FIELDS);
  if (input.kind !== undefined && input.kind !== 'conversations') {
    throw new InvalidRequestError('kind', `expected "conversations", got ${describe(input.kind)}`);
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
    if (to.epochMs - from.epochMs > MAX_RANGE_MS) {
      throw new InvalidRequestError('to', 'the range is longer than 60 days (60 x 24 hours)');
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

  const rawFilters = input.filters ?? {};
  if (!isRecord(rawFilters)) throw new InvalidRequestError('filters', `expected an object, got ${describe(rawFilters)}`);
  rejectUnknownFields('filters', rawFilters, FILTER_FIELDS);
  const filters: ConversationFilters = {
    agentIds: parseList('filters.agentIds', rawFilters.agentIds, parseId),
    providers: parseList('filters.providers', rawFilters.providers, parseText),
    aliases: parseList('filters.aliases', rawFilters.aliases, parseText),
    statuses: parseList('filters.statuses', rawFilters.statuses, parseStatus),
  };
  if (filters.statuses.length > 0 && !filters.statuses.includes('CLOSED')) {
    throw new InvalidRequestError(
      'filters.statuses',
      `${filters.statuses.join(', ')} selects only active chats, which cannot be exported: include CLOSED`,
    );
  }

  const rawCsv = input.csv ?? {};
  if (!isRecord(rawCsv)) throw new InvalidRequestError('csv', `expected an object, got ${describe(rawCsv)}`);
  rejectUnknownFields('csv', rawCsv, CSV_FIELDS);
  let rowsPerFile = DEFAULT_ROWS_PER_FILE;
  if (rawCsv.rowsPerFile !== undefined) {
    const value = rawCsv.rowsPerFile;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > MAX_ROWS_PER_FILE) {
      throw new InvalidRequestError('csv.rowsPerFile', `expected a whole number from 1 to ${MAX_ROWS_PER_FILE}, got ${describe(value)}`);
    }
    rowsPerFile = value;
  }
  return {
    kind: 'conversations',
    requestId,
    merchantId,
    from,
    to,
    timezone,
    filters,
    csv: {
      bom: parseBoolean('csv.bom', rawCsv.bom, true),
      formulaGuard: parseBoolean('csv.formulaGuard', rawCsv.formulaGuard, true),
      rowsPerFile,
    },
    recipients: parseRecipients('recipients', input.recipients),
    locale: parseLocale('locale', input.locale),
    requestedBy: parseRequestedBy(input.requestedBy),
  };
}

/**
 * What makes two conversation requests the same for coalescing: merchant, kind, every parameter
 * and the recipients (sorted, case-insensitive) and locale; never `requestId` or `requestedBy`.
 */
export function conversationRequestIdentity(request: ConversationRequest): string {
  const bound = (value: RangeBound): string => (value.kind === 'date' ? value.date : new Date(value.epochMs).toISOString());
  const sorted = (values: readonly string[]): string[] => [...values].sort();
  return JSON.stringify([
    request.kind,
    request.merchantId,
    bound(request.from),
    bound(request.to),
    request.timezone ?? null,
    sorted(request.filters.agentIds),
    sorted(request.filters.providers),
    sorted(request.filters.aliases),
    sorted(request.filters.statuses),
    request.csv.bom,
    request.csv.formulaGuard,
    request.csv.rowsPerFile,
    sorted(request.recipients.map((address) => address.toLowerCase())),
    request.locale,
  ]);
}
