import { describe } from '../../config/env.js';
import { InvalidRequestError } from '../errors.js';
import {
  COMMON_FIELDS,
  isRecord,
  parseBoolean,
  parseCommonFields,
  parseId,
  parseList,
  parseText,
  rejectUnknownFields,
  identityBound,
  identityText,
  type CommonRequestFields,
  type IdentityPart,
  parseFormat,
  formatIdentityPart,
  type ExportFormat,
} from '../request-fields.js';

export type { RangeBound, RequestedBy } from '../request-fields.js';
export { parseId, parseRangeBound } from '../request-fields.js';

/** Chat statuses as stored in `chats.status`. */
export const CHAT_STATUSES = ['OPENED', 'PICKED_UP', 'CLOSED'] as const;
/** A chat status. */
export type ChatStatus = (typeof CHAT_STATUSES)[number];

/** The longest range one conversation export may cover: 60 x 24 hours. */
export const MAX_RANGE_MS = 60 * 24 * 60 * 60 * 1000;

/** The default and the largest number of data rows per CSV file: a spreadsheet opens 1,048,576 rows. */
export const DEFAULT_ROWS_PER_FILE = 1_000_000;
const MAX_ROWS_PER_FILE = 1_048_575;

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
export interface ConversationRequest extends CommonRequestFields {
  readonly format: ExportFormat;
  readonly kind: 'conversations';
  readonly filters: ConversationFilters;
  readonly csv: CsvFileOptions;
}

function parseStatus(field: string, value: unknown): ChatStatus {
  // ASCII only: Unicode case mapping would turn "cloſed" (long s) into CLOSED.
  if (typeof value !== 'string' || !/^[A-Za-z_]+$/.test(value) || !(CHAT_STATUSES as readonly string[]).includes(value.toUpperCase())) {
    throw new InvalidRequestError(field, `expected one of ${CHAT_STATUSES.join(', ')}, got ${describe(value)}`);
  }
  return value.toUpperCase() as ChatStatus;
}

const REQUEST_FIELDS = [...COMMON_FIELDS, 'filters', 'csv'] as const;
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
  const common = parseCommonFields(input, 'conversations', MAX_RANGE_MS);

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
    ...common,
    kind: 'conversations',
    filters,
    format: parseFormat(input.format),
    csv: {
      bom: parseBoolean('csv.bom', rawCsv.bom, true),
      formulaGuard: parseBoolean('csv.formulaGuard', rawCsv.formulaGuard, true),
      rowsPerFile,
    },
  };
}

/**
 * What makes two conversation requests the same (for coalescing, and for telling a redelivery from
 * another request under a used id), field by field: merchant, kind, every parameter and the
 * recipients (sorted, case-insensitive) and locale; never `requestId` or `requestedBy`. Instants
 * count by the moment they name (any offset), lists by their members (any order).
 */
export function conversationIdentityParts(request: ConversationRequest): IdentityPart[] {
  const sorted = (values: readonly string[]): string[] => [...values].sort();
  return [
    ['kind', request.kind],
    formatIdentityPart(request.format),
    ['merchantId', request.merchantId],
    ['from', identityBound(request.from)],
    ['to', identityBound(request.to)],
    ['timezone', request.timezone ?? null],
    ['filters.agentIds', sorted(request.filters.agentIds)],
    ['filters.providers', sorted(request.filters.providers)],
    ['filters.aliases', sorted(request.filters.aliases)],
    ['filters.statuses', sorted(request.filters.statuses)],
    ['csv.bom', request.csv.bom],
    ['csv.formulaGuard', request.csv.formulaGuard],
    ['csv.rowsPerFile', request.csv.rowsPerFile],
    ['recipients', sorted(request.recipients.map((address) => address.toLowerCase()))],
    ['locale', request.locale],
  ];
}

/** {@link conversationIdentityParts} as one string (the `identity` column hashes it). */
export function conversationRequestIdentity(request: ConversationRequest): string {
  return identityText(conversationIdentityParts(request));
}
