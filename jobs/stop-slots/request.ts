import { describe } from '../../config/env.js';
import { InvalidRequestError } from '../errors.js';
import {
  COMMON_FIELDS,
  isRecord,
  parseBoolean,
  parseCommonFields,
  parseId,
  parseList,
  rejectUnknownFields,
  identityBound,
  identityText,
  type CommonRequestFields,
  type IdentityPart,
  parseFormat,
  formatIdentityPart,
  type ExportFormat,
} from '../request-fields.js';

/** A validated stop-slots report request. */
export interface StopSlotsRequest extends CommonRequestFields {
  readonly format: ExportFormat;
  readonly kind: 'stop-slots';
  /** The bots to report on; empty means every bot of the merchant. */
  readonly botIds: readonly string[];
  readonly csv: { readonly bom: boolean; readonly formulaGuard: boolean };
}

const FIELDS = [...COMMON_FIELDS, 'botIds', 'csv'] as const;

/**
 * Validates a stop-slots request. The range has no 60-day limit (the report is small); the
 * recipients default to the requesting user's e-mail.
 * @throws InvalidRequestError naming the field and the rule.
 */
export function parseStopSlotsRequest(input: unknown): StopSlotsRequest {
  if (!isRecord(input)) throw new InvalidRequestError('request', `expected a JSON object, got ${describe(input)}`);
  rejectUnknownFields('', input, FIELDS);
  const common = parseCommonFields(input, 'stop-slots');
  const rawCsv = input.csv ?? {};
  if (!isRecord(rawCsv)) throw new InvalidRequestError('csv', `expected an object, got ${describe(rawCsv)}`);
  rejectUnknownFields('csv', rawCsv, ['bom', 'formulaGuard']);
  const recipients =
    input.recipients === undefined && common.requestedBy?.email !== undefined ? [common.requestedBy.email] : common.recipients;
  return {
    ...common,
    recipients,
    kind: 'stop-slots',
    format: parseFormat(input.format),
    botIds: parseList('botIds', input.botIds, parseId),
    csv: {
      bom: parseBoolean('csv.bom', rawCsv.bom, true),
      formulaGuard: parseBoolean('csv.formulaGuard', rawCsv.formulaGuard, true),
    },
  };
}

/** What makes two stop-slots requests the same, field by field: everything but `requestId` and `requestedBy`, instants by the moment they name, lists in any order. */
export function stopSlotsIdentityParts(request: StopSlotsRequest): IdentityPart[] {
  return [
    ['kind', request.kind],
    formatIdentityPart(request.format),
    ['merchantId', request.merchantId],
    ['from', identityBound(request.from)],
    ['to', identityBound(request.to)],
    ['timezone', request.timezone ?? null],
    ['botIds', [...request.botIds].sort()],
    ['csv.bom', request.csv.bom],
    ['csv.formulaGuard', request.csv.formulaGuard],
    ['recipients', [...request.recipients].map((address) => address.toLowerCase()).sort()],
    ['locale', request.locale],
  ];
}

/** {@link stopSlotsIdentityParts} as one string (the `identity` column hashes it). */
export function stopSlotsRequestIdentity(request: StopSlotsRequest): string {
  return identityText(stopSlotsIdentityParts(request));
}
