import { parseCopyTextRow } from '../../transforms/copy-text.js';
import { partFileName, PartPlanner } from '../../transforms/parts.js';
import type { SnapshotSession } from '../../sources/postgres-snapshot.js';
import { conversationChatFilter, conversationCountSql } from './query.js';
import type { ResolvedConversationExport } from './resolve.js';

/** What an export will write, known before its first row: stored as the object's metadata. */
export interface ConversationPlan {
  /** Data rows in all. */
  readonly rows: number;
  /** The CSV file names inside the zip, in order. */
  readonly files: readonly string[];
}

/**
 * Plans an export in its snapshot: counts the rows, and, when they exceed one part, replays the
 * part splitting over the chats' sizes (one small row per chat, streamed, nothing kept but the
 * planner's state) so the file names are known before the upload starts.
 */
export async function planConversationExport(
  session: SnapshotSession,
  resolved: ResolvedConversationExport,
  base: string,
): Promise<ConversationPlan> {
  const counted = await session.query<{ rows: string }>(conversationCountSql(resolved));
  const rows = Number(counted.rows[0]?.rows ?? 0);
  const { rowsPerFile } = resolved.request.csv;
  if (rows <= rowsPerFile) return { rows, files: [partFileName(base, 0, false)] };

  const planner = new PartPlanner(rowsPerFile);
  let parts = 0;
  let pending = '';
  const sizes = session.copyOut(`COPY (
SELECT c.id, count(*)
FROM chats c
JOIN messages m ON m.chat_id = c.id
WHERE ${conversationChatFilter(resolved)}
GROUP BY c.created_at, c.id
ORDER BY c.created_at, c.id
) TO STDOUT`);
  const placeChat = (line: string): void => {
    const [chatId, size] = parseCopyTextRow(line, 2) as [string, string];
    parts = planner.placeChat(chatId, Number(size)) + 1;
  };
  for await (const chunk of sizes as AsyncIterable<Buffer>) {
    const lines = (pending + chunk.toString('utf8')).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) placeChat(line);
  }
  if (pending.length > 0) placeChat(pending);
  return { rows, files: Array.from({ length: parts }, (_, index) => partFileName(base, index, true)) };
}
