import { formatCell, formatHeader, RECORD_END, type CsvCellOptions } from './csv.js';
import { splitDirection } from './direction.js';
import { formatDurationText } from './duration.js';
import { formatTimestamp } from './timestamp.js';

/**
 * The columns the conversation query selects, in order (see jobs/conversations/query.ts). Raw values
 * are formatted here, in TypeScript, so every rule is a unit-tested function; PostgreSQL only converts
 * timestamps into the export zone and subtracts the duration.
 */
export const CONVERSATION_SOURCE_COLUMNS = [
  'chat_id',
  'merchant_id',
  'provider',
  'chat_created_at',
  'message_created_at',
  'contact_id',
  'contact_identification',
  'contact_name',
  'contact_email',
  'contact_phone_number',
  'contact_mobile_number',
  'agent_id',
  'agent_name',
  'agent_username',
  'agent_email',
  'sender',
  'message_type',
  'body',
  'media_url',
  'caption',
  'alias',
  'bot_name',
  'status',
  'opened_at',
  'picked_up_at',
  'closed_at',
  'duration_seconds',
  'chat_message_count',
] as const;

/** One row of the conversation query, as text values from PostgreSQL (`null` for SQL NULL). */
export type ConversationSourceRow = readonly (string | null)[];

const column = Object.fromEntries(CONVERSATION_SOURCE_COLUMNS.map((name, index) => [name, index])) as Record<
  (typeof CONVERSATION_SOURCE_COLUMNS)[number],
  number
>;

/** The export's header, exactly as merchants receive it. */
export const CONVERSATION_HEADERS = [
  'Chat ID',
  'Merchant ID',
  'Provider',
  'Chat Created At',
  'Message Created At',
  'Contact ID',
  'Contact Identification',
  'Contact Name',
  'Contact Email',
  'Contact Phone Number',
  'Contact Mobile Number',
  'Agent ID',
  'Agent Name',
  'Agent Username',
  'Agent Email',
  'Message Incoming',
  'Message Contact',
  'Message Agent',
  'Message Type',
  'Message Caption',
  'Alias',
  'Bot',
  'Status',
  'Opened at',
  'Picked up at',
  'Closed at',
  'Duration',
] as const;

/** The header record (CRLF included). */
export const CONVERSATION_HEADER_RECORD = formatHeader(CONVERSATION_HEADERS);

/** The chat a source row belongs to: what part splitting groups by. */
export function chatIdOf(row: ConversationSourceRow): string {
  return row[column.chat_id] as string;
}

/** How many rows the row's chat has in the export (the query's window count). */
export function chatRowsOf(row: ConversationSourceRow): number {
  return Number(row[column.chat_message_count]);
}

/** Formats one source row as one CSV record of the conversation export (CRLF included). */
export function formatConversationRecord(row: ConversationSourceRow, options: CsvCellOptions): string {
  // Written out column by column, without a closure per row: this runs once per exported message.
  const type = row[column.message_type] as string;
  const direction = splitDirection(row[column.sender] as string, type, row[column.body] ?? null, row[column.media_url] ?? null);
  return (
    formatCell(row[column.chat_id] ?? null, 'numeric', options) +
    ',' +
    formatCell(row[column.merchant_id] ?? null, 'numeric', options) +
    ',' +
    formatCell(row[column.provider] ?? null, 'text', options) +
    ',' +
    formatTimestamp(row[column.chat_created_at] ?? null) +
    ',' +
    formatTimestamp(row[column.message_created_at] ?? null) +
    ',' +
    formatCell(row[column.contact_id] ?? null, 'numeric', options) +
    ',' +
    formatCell(row[column.contact_identification] ?? null, 'text', options) +
    ',' +
    formatCell(row[column.contact_name] ?? null, 'text', options) +
    ',' +
    formatCell(row[column.contact_email] ?? null, 'text', options) +
    ',' +
    formatCell(row[column.contact_phone_number] ?? null, 'phone', options) +
    ',' +
    formatCell(row[column.contact_mobile_number] ?? null, 'phone', options) +
    ',' +
    formatCell(row[column.agent_id] ?? null, 'numeric', options) +
    ',' +
    formatCell(row[column.agent_name] ?? null, 'text', options) +
    ',' +
    formatCell(row[column.agent_username] ?? null, 'text', options) +
    ',' +
    formatCell(row[column.agent_email] ?? null, 'text', options) +
    ',' +
    (direction.incoming ? 'true' : 'false') +
    ',' +
    formatCell(direction.contact, 'text', options) +
    ',' +
    formatCell(direction.agent, 'text', options) +
    ',' +
    formatCell(type, 'text', options) +
    ',' +
    formatCell(row[column.caption] ?? null, 'text', options) +
    ',' +
    formatCell(row[column.alias] ?? null, 'text', options) +
    ',' +
    formatCell(row[column.bot_name] ?? null, 'text', options) +
    ',' +
    formatCell(row[column.status] ?? null, 'text', options) +
    ',' +
    formatTimestamp(row[column.opened_at] ?? null) +
    ',' +
    formatTimestamp(row[column.picked_up_at] ?? null) +
    ',' +
    formatTimestamp(row[column.closed_at] ?? null) +
    ',' +
    formatDurationText(row[column.duration_seconds] ?? null) +
    RECORD_END
  );
}
