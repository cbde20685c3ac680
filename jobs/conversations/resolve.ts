import type { SnapshotSession } from '../../sources/postgres-snapshot.js';
import { resolveRange, type ResolvedRange } from '../resolve-range.js';
import { MAX_RANGE_MS, type ConversationRequest } from './request.js';

/** A conversation export's resolved request. */
export type ResolvedConversationExport = ResolvedRange<ConversationRequest>;

/** Resolves a conversation export: at most 60 x 24 hours. */
export async function resolveConversationExport(
  client: Pick<SnapshotSession, 'query'>,
  request: ConversationRequest,
): Promise<ResolvedConversationExport> {
  return await resolveRange(client, request, MAX_RANGE_MS);
}

