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
  type CommonRequestFields,
  type RangeBound,
} from '../request-fields.js';

/** A validated stop-slots report request. */
export interface StopSlotsRequest extends CommonRequestFields {
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
    botIds: parseList('botIds', input.botIds, parseId),
    csv: {
      bom: parseBoolean('csv.bom', rawCsv.bom, true),
      formulaGuard: parseBoolean('csv.formulaGuard', rawCsv.formulaGuard, true),
    },
  };
}

/** What makes two stop-slots requests the same: everything but `requestId` and `requestedBy`. */
export function stopSlotsRequestIdentity(request: StopSlotsRequest): string {
  const bound = (value: RangeBound): string => (value.kind === 'date' ? value.date : new Date(value.epochMs).toISOString());
  return JSON.stringify([
    request.kind,
    request.merchantId,
    bound(request.from),
    bound(request.to),
    request.timezone ?? null,
    [...request.botIds].sort(),
    request.csv.bom,
    request.csv.formulaGuard,
    [...request.recipients].map((address) => address.toLowerCase()).sort(),
    request.locale,
  ]);
}
