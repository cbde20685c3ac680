/**
 * Reads the stop-slots numbers: per bot, how many dialogs stopped on each slot. The result is
 * small (one row per bot and slot), so a plain parameterized query suffices; no COPY.
 */
import type { SnapshotSession } from '../../sources/postgres-snapshot.js';
import { orderStopSlotGroups, type StopSlotGroup } from './report.js';

/** Which dialogs the report covers. */
export interface StopSlotsQuery {
  /** The merchant's id, decimal text. */
  readonly merchantId: string;
  /** The bots to report on, decimal text; each gets an entry in the result. */
  readonly botIds: readonly string[];
  /** Start of the range, inclusive: a timestamp PostgreSQL reads as `timestamptz`. */
  readonly fromUtc: string;
  /** End of the range, exclusive. */
  readonly toUtc: string;
}

const INTEGER_ID = /^-?[0-9]+$/;

/**
 * The report's query. A dialog is a chat of the merchant created in `[$3, $4)` with one of the
 * bots `$2`; its stop is the slot of its last bot message (latest `created_at`, then highest id).
 *
 * - The range scan uses `chats (merchant_id, created_at, id)`; the last bot message is one
 *   backward probe per chat of the partial index `messages_chat_bot_created_idx` (bot messages
 *   only), so the contact and agent messages after it are never read. The inner join of the
 *   lateral drops chats without any bot message.
 * - The bot must belong to the chat's merchant, and a slot is named only when it belongs to the
 *   dialog's bot, so inconsistent data never shows another bot's (or merchant's) slot texts. A
 *   stop on a foreign slot keeps its id, with NULL name and text.
 * - Counting happens before the slot join, so long slot texts are never grouped on.
 * - Ids and counts come back as text: bigint stays exact in JavaScript.
 */
export const STOP_SLOTS_SQL = `WITH stops AS (
  SELECT c.bot_id, last_bot.bot_slot_id, count(*) AS dialogs
  FROM chats c
  JOIN bots b ON b.id = c.bot_id AND b.merchant_id = c.merchant_id
  CROSS JOIN LATERAL (
    SELECT m.bot_slot_id
    FROM messages m
    WHERE m.chat_id = c.id AND m.sender = 'bot'
    ORDER BY m.created_at DESC, m.id DESC
    LIMIT 1
  ) last_bot
  WHERE c.merchant_id = $1::bigint
    AND c.created_at >= $3::timestamptz
    AND c.created_at < $4::timestamptz
    AND c.bot_id = ANY ($2::bigint[])
  GROUP BY c.bot_id, last_bot.bot_slot_id
)
SELECT st.bot_id::text AS bot_id, st.bot_slot_id::text AS slot_id, s.name AS slot_name, s.text AS slot_text,
  st.dialogs::text AS dialogs
FROM stops st
LEFT JOIN bot_slots s ON s.id = st.bot_slot_id AND s.bot_id = st.bot_id`;

interface StopSlotsRow {
  readonly bot_id: string;
  readonly slot_id: string | null;
  readonly slot_name: string | null;
  readonly slot_text: string | null;
  readonly dialogs: string;
}

function checkId(what: string, value: string): void {
  if (!INTEGER_ID.test(value)) throw new TypeError(`${what} must be integer text, got ${JSON.stringify(value)}`);
}

/**
 * Groups per bot id (every requested bot present, with [] when it had no dialogs), each bot's
 * groups in report order. One query, run in the caller's snapshot. Result keys are the requested
 * ids as given; `'05'` and `'5'` name the same bot, and each spelling gets the same groups.
 *
 * @throws TypeError when the merchant id or a bot id is not integer text.
 */
export async function queryStopSlots(
  session: Pick<SnapshotSession, 'query'>,
  query: StopSlotsQuery,
): Promise<Map<string, StopSlotGroup[]>> {
  checkId('merchantId', query.merchantId);
  for (const botId of query.botIds) checkId('botId', botId);
  // PostgreSQL prints ids canonically; match the caller's spelling through the same canonical form.
  const canonical = new Map(query.botIds.map((botId) => [botId, BigInt(botId).toString()]));
  const groupsByBot = new Map<string, StopSlotGroup[]>();
  if (canonical.size > 0) {
    const distinct = [...new Set(canonical.values())];
    const result = await session.query<StopSlotsRow>(STOP_SLOTS_SQL, [query.merchantId, distinct, query.fromUtc, query.toUtc]);
    for (const row of result.rows) {
      const group: StopSlotGroup = {
        slotId: row.slot_id,
        slotName: row.slot_name,
        slotText: row.slot_text,
        dialogs: Number(row.dialogs),
      };
      const groups = groupsByBot.get(row.bot_id);
      if (groups === undefined) groupsByBot.set(row.bot_id, [group]);
      else groups.push(group);
    }
  }
  const byRequest = new Map<string, StopSlotGroup[]>();
  for (const [botId, key] of canonical) byRequest.set(botId, orderStopSlotGroups(groupsByBot.get(key) ?? []));
  return byRequest;
}
