import { describe } from '../config/env.js';
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
    throw new InvalidRequestError('request', `expected a JSON object, got ${describe(input)}`);
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
      throw new InvalidRequestError('kind', `expected one of ${REQUEST_KINDS.join(', ')}, got ${describe(kind)}`);
  }
}

/** What makes two requests the same: every parameter and the recipients, never `requestId` or `requestedBy`. */
export function requestIdentity(request: ExportRequest): string {
  return request.kind === 'conversations' ? conversationRequestIdentity(request) : stopSlotsRequestIdentity(request);
}

/**
 * The largest request document taken, in bytes (UTF-8): a request with every list at its limit is
 * a few hundred KB. Larger ones are refused by their size before they are parsed.
 */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** The size rule's text, shared by every entry point that refuses a document by its size. */
export const REQUEST_SIZE_RULE = `larger than the limit of ${MAX_REQUEST_BYTES} bytes (1 MiB)`;

/**
 * Reads a request document's JSON: at most {@link MAX_REQUEST_BYTES}, valid JSON, no key twice in
 * one object (JSON.parse keeps the last copy, other parsers the first: a platform that checked
 * one `merchantId` must not have us export another).
 * @throws InvalidRequestError: `request` for the size or the syntax, the duplicated key's path.
 */
export function parseRequestDocument(data: Buffer | string): unknown {
  const bytes = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
  if (bytes > MAX_REQUEST_BYTES) throw new InvalidRequestError('request', `${bytes} bytes, ${REQUEST_SIZE_RULE}`);
  const text = typeof data === 'string' ? data : data.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidRequestError('request', 'not valid JSON');
  }
  const duplicate = duplicateKeyPath(text);
  if (duplicate !== undefined) {
    throw new InvalidRequestError(duplicate, 'appears more than once in its object (which copy counts would be ambiguous)');
  }
  return value;
}

interface Frame {
  /** The keys seen so far, for an object; undefined for an array. */
  readonly keys: Set<string> | undefined;
  expectKey: boolean;
  lastKey: string;
  index: number;
}

/**
 * The path (`filters.agentIds`, `list[1].b`) of the first key that appears twice in one object of
 * `text`, which must be valid JSON. One pass with an explicit stack, so nesting as deep as the
 * size limit allows costs no call stack.
 */
function duplicateKeyPath(text: string): string | undefined {
  const stack: Frame[] = [];
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code === 0x22) {
      let end = i + 1;
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
      const top = stack.at(-1);
      if (top?.keys !== undefined && top.expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.keys.has(key)) return pathOf(stack, key);
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = end;
    } else if (code === 0x7b) {
      stack.push({ keys: new Set(), expectKey: true, lastKey: '', index: 0 });
    } else if (code === 0x5b) {
      stack.push({ keys: undefined, expectKey: false, lastKey: '', index: 0 });
    } else if (code === 0x7d || code === 0x5d) {
      stack.pop();
    } else if (code === 0x2c) {
      const top = stack.at(-1);
      if (top?.keys !== undefined) top.expectKey = true;
      else if (top !== undefined) top.index += 1;
    }
  }
  return undefined;
}

function pathOf(stack: readonly Frame[], key: string): string {
  let path = '';
  for (let depth = 0; depth < stack.length - 1; depth += 1) {
    const frame = stack[depth] as Frame;
    path += frame.keys === undefined ? `[${frame.index}]` : `${path === '' ? '' : '.'}${frame.lastKey}`;
  }
  return `${path}${path === '' ? '' : '.'}${key}`;
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
