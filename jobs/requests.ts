import { parseConversationRequest, conversationRequestIdentity, type ConversationRequest } from './conversations/request.js';
import { InvalidRequestError } from './errors.js';

/** The report kinds a request may ask for. */
export const REQUEST_KINDS = ['conversations'] as const;

/** A validated export request of any kind. */
export type ExportRequest = ConversationRequest;

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
    case undefined:
      throw new InvalidRequestError('kind', `required: one of ${REQUEST_KINDS.join(', ')}`);
    default:
      throw new InvalidRequestError('kind', `expected one of ${REQUEST_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  }
}

/** What makes two requests the same (see {@link conversationRequestIdentity}). */
export function requestIdentity(request: ExportRequest): string {
  return conversationRequestIdentity(request);
}
