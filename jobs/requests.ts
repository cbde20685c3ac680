import { parseConversationRequest, conversationIdentityParts, conversationRequestIdentity, type ConversationRequest } from './conversations/request.js';
import { InvalidRequestError } from './errors.js';
import type { IdentityPart } from './request-fields.js';
import { parseStopSlotsRequest, stopSlotsIdentityParts, stopSlotsRequestIdentity, type StopSlotsRequest } from './stop-slots/request.js';

/** The report kinds a request may ask for. */
export const REQUEST_KINDS = ['conversations', 'stop-slots'] as const;

/** A validated export request of any kind. */
export type ExportRequest = ConversationRequest | StopSlotsRequest;

/**
 * Validates an export request document, whatever its entry point (CLI flags, `run`, the worker,
 * push): dispatches on `kind` to that kind's schema.
 * @throws InvalidRequestError naming the field and the rule.
 */
export function parseExportRequest(input: unknown): ExportRequest {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidRequestError('request', `expected a JSON object, got ${JSON.stringify(input)}`);
  }
  const kind = (input as { kind?: unknown }).kind;
  switch (kind) {
    case 'conversations':
      return parseConversationRequest(input);
    case 'stop-slots':
      return parseStopSlotsRequest(input);
    case undefined:
      throw new InvalidRequestError('kind', `required: one of ${REQUEST_KINDS.join(', ')}`);
    default:
      throw new InvalidRequestError('kind', `expected one of ${REQUEST_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  }
}

/** What makes two requests the same: every parameter and the recipients, never `requestId` or `requestedBy`. */
export function requestIdentity(request: ExportRequest): string {
  return request.kind === 'conversations' ? conversationRequestIdentity(request) : stopSlotsRequestIdentity(request);
}

/** {@link requestIdentity}, field by field. */
export function requestIdentityParts(request: ExportRequest): IdentityPart[] {
  return request.kind === 'conversations' ? conversationIdentityParts(request) : stopSlotsIdentityParts(request);
}

/**
 * The fields in which `incoming` asks for something else than `stored`, in the order of the
 * identity (empty: the same request, however it is worded). Compared like {@link requestIdentity}:
 * recipients are deduplicated and compared case-insensitively in any order, lists in any order,
 * instants by the moment they name; `requestedBy` does not count. Requests of different kinds are
 * compared on `kind` and the fields both kinds have.
 */
export function differingFields(stored: ExportRequest, incoming: ExportRequest): string[] {
  const theirs = new Map(requestIdentityParts(incoming).map(([field, value]) => [field, JSON.stringify(value)]));
  const differing: string[] = [];
  for (const [field, value] of requestIdentityParts(stored)) {
    const other = theirs.get(field);
    if (other !== undefined && other !== JSON.stringify(value)) differing.push(field);
  }
  return differing;
}
