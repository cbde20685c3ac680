import type { ByteOutput } from './byte-output.js';
import type { CopyTextRow } from './copy-text.js';
import { appendCopyValue, formatCell, formatHeader, RECORD_END, type CsvCellOptions } from './csv.js';
import { splitDirection } from './direction.js';
import { appendDurationBytes, formatDurationText } from './duration.js';
import { appendTimestampBytes, formatTimestamp } from './timestamp.js';
import type { XlsxRowWriter } from './xlsx.js';

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

const CONTACT = 'contact';
const CONTACT_BYTES = Buffer.from(CONTACT);
const TEXT = 'text';
const TEXT_BYTES = Buffer.from(TEXT);
const COMMA = 0x2c;
const TRUE_BYTES = Buffer.from('true');
const FALSE_BYTES = Buffer.from('false');
const RECORD_END_BYTES = Buffer.from(RECORD_END);

/** The column {@link chatIdOf} reads, for grouping on the raw bytes (transforms/csv-parts.ts). */
export const CONVERSATION_CHAT_ID_COLUMN = column.chat_id;

/** {@link chatRowsOf} on a COPY text row's bytes. */
export function chatRowsOfCopyRow(row: CopyTextRow): number {
  return Number(row.text(column.chat_message_count));
}

function appendTimestampValue(out: ByteOutput, row: CopyTextRow, c: number): void {
  if (row.isNull(c)) return;
  if (!appendTimestampBytes(out, row.src, row.starts[c]!, row.ends[c]!, row.plainAscii(c))) out.string(formatTimestamp(row.text(c)));
}

/**
 * Appends the record {@link formatConversationRecord} makes of the same row, from the row's COPY
 * text bytes: values without escapes are copied as they are unless a CSV rule changes them, and only
 * the direction split decodes (and only escaped values of it). test/csv-bytes.test.ts proves both
 * give the same bytes.
 */
export function appendConversationRecord(out: ByteOutput, row: CopyTextRow, options: CsvCellOptions): void {
  const incoming = row.equalsAscii(column.sender, CONTACT_BYTES, CONTACT);
  const content = row.equalsAscii(column.message_type, TEXT_BYTES, TEXT) ? column.body : column.media_url;
  appendCopyValue(out, row, column.chat_id, 'numeric', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.merchant_id, 'numeric', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.provider, 'text', options);
  out.byte(COMMA);
  appendTimestampValue(out, row, column.chat_created_at);
  out.byte(COMMA);
  appendTimestampValue(out, row, column.message_created_at);
  out.byte(COMMA);
  appendCopyValue(out, row, column.contact_id, 'numeric', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.contact_identification, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.contact_name, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.contact_email, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.contact_phone_number, 'phone', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.contact_mobile_number, 'phone', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.agent_id, 'numeric', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.agent_name, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.agent_username, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.agent_email, 'text', options);
  out.byte(COMMA);
  if (incoming) {
    out.bytes(TRUE_BYTES, 0, TRUE_BYTES.length);
    out.byte(COMMA);
    appendCopyValue(out, row, content, 'text', options);
    out.byte(COMMA);
  } else {
    out.bytes(FALSE_BYTES, 0, FALSE_BYTES.length);
    out.byte(COMMA);
    out.byte(COMMA);
    appendCopyValue(out, row, content, 'text', options);
  }
  out.byte(COMMA);
  appendCopyValue(out, row, column.message_type, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.caption, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.alias, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.bot_name, 'text', options);
  out.byte(COMMA);
  appendCopyValue(out, row, column.status, 'text', options);
  out.byte(COMMA);
  appendTimestampValue(out, row, column.opened_at);
  out.byte(COMMA);
  appendTimestampValue(out, row, column.picked_up_at);
  out.byte(COMMA);
  appendTimestampValue(out, row, column.closed_at);
  out.byte(COMMA);
  const duration = column.duration_seconds;
  if (!row.isNull(duration) && !appendDurationBytes(out, row.src, row.starts[duration]!, row.ends[duration]!)) {
    out.string(formatDurationText(row.text(duration)));
  }
  out.bytes(RECORD_END_BYTES, 0, RECORD_END_BYTES.length);
}

// The same row as XLSX cells (transforms/xlsx.ts): the CSV's cell texts, typed.

function xlsxTextValue(w: XlsxRowWriter, cell: number, row: CopyTextRow, c: number): void {
  if (!row.escaped(c)) {
    // Unescaped COPY text holds no raw CR or LF: the row's scan says whether XML needs escapes.
    w.text(cell, row.src, row.starts[c]!, row.ends[c]!, 0, row.xmlPlain(c));
  } else if (!row.isNull(c)) {
    const length = row.unescapeInto(c);
    w.text(cell, row.decoded, 0, length);
  }
}

/** {@link xlsxTextValue} through the shared-strings table, for texts that repeat. */
function xlsxSharedTextValue(w: XlsxRowWriter, cell: number, row: CopyTextRow, c: number): void {
  if (!row.escaped(c)) {
    w.sharedText(cell, row.src, row.starts[c]!, row.ends[c]!, row.xmlPlain(c));
  } else if (!row.isNull(c)) {
    const length = row.unescapeInto(c);
    w.sharedText(cell, row.decoded, 0, length);
  }
}

function xlsxIdValue(w: XlsxRowWriter, cell: number, row: CopyTextRow, c: number): void {
  if (!row.escaped(c)) w.integerOrText(cell, row.src, row.starts[c]!, row.ends[c]!);
  else xlsxTextValue(w, cell, row, c);
}

function xlsxTimestampValue(w: XlsxRowWriter, cell: number, row: CopyTextRow, c: number): void {
  if (row.isNull(c)) return;
  const start = row.starts[c]!;
  const after = row.src[start + 19];
  const plain = row.ends[c]! - start >= 20 && (after === 0x2e || after === 0x2b || after === 0x2d) && row.plainAscii(c);
  // Dates Excel cannot show as dates (before 1900-03-01, past 9999) keep the CSV's text.
  if (!plain || !w.dateTime(cell, row.src, start)) w.textString(cell, formatTimestamp(row.text(c)));
}

/**
 * Appends the cells of one data row of the conversation export as XLSX row `rowNumber`: the cells
 * {@link appendConversationRecord} writes, with ids as numbers (where a double holds them exactly),
 * timestamps as date-times, `Message Incoming` as a boolean and everything else as text (phone
 * numbers included, so no `+` or leading zero is lost). No formula guard: string cells are never
 * formulas.
 */
export function appendConversationXlsxRow(w: XlsxRowWriter, row: CopyTextRow, rowNumber: number): void {
  const incoming = row.equalsAscii(column.sender, CONTACT_BYTES, CONTACT);
  const content = row.equalsAscii(column.message_type, TEXT_BYTES, TEXT) ? column.body : column.media_url;
  w.startRow(rowNumber);
  // The chat's, contact's, agent's and bot's cells are the same on every row of a chat (one chats
  // row joined): after the chat's first row they are copied, not formatted again.
  const chat = column.chat_id;
  const repeat = w.sameKey(row.src, row.starts[chat]!, row.ends[chat]!);
  if (!repeat || !w.repeatCells(0, 3)) {
    chatCell(w, repeat, 0, row, chat, ChatCell.id);
    chatCell(w, repeat, 1, row, column.merchant_id, ChatCell.id);
    chatCell(w, repeat, 2, row, column.provider, ChatCell.text);
    chatCell(w, repeat, 3, row, column.chat_created_at, ChatCell.timestamp);
  }
  xlsxTimestampValue(w, 4, row, column.message_created_at);
  if (!repeat || !w.repeatCells(5, 14)) {
    chatCell(w, repeat, 5, row, column.contact_id, ChatCell.id);
    chatCell(w, repeat, 6, row, column.contact_identification, ChatCell.text);
    chatCell(w, repeat, 7, row, column.contact_name, ChatCell.text);
    chatCell(w, repeat, 8, row, column.contact_email, ChatCell.text);
    chatCell(w, repeat, 9, row, column.contact_phone_number, ChatCell.text);
    chatCell(w, repeat, 10, row, column.contact_mobile_number, ChatCell.text);
    chatCell(w, repeat, 11, row, column.agent_id, ChatCell.id);
    chatCell(w, repeat, 12, row, column.agent_name, ChatCell.text);
    chatCell(w, repeat, 13, row, column.agent_username, ChatCell.text);
    chatCell(w, repeat, 14, row, column.agent_email, ChatCell.text);
  }
  w.boolean(15, incoming);
  xlsxTextValue(w, incoming ? 16 : 17, row, content);
  xlsxSharedTextValue(w, 18, row, column.message_type);
  xlsxTextValue(w, 19, row, column.caption);
  if (!repeat || !w.repeatCells(20, 26)) {
    chatCell(w, repeat, 20, row, column.alias, ChatCell.text);
    chatCell(w, repeat, 21, row, column.bot_name, ChatCell.text);
    chatCell(w, repeat, 22, row, column.status, ChatCell.text);
    chatCell(w, repeat, 23, row, column.opened_at, ChatCell.timestamp);
    chatCell(w, repeat, 24, row, column.picked_up_at, ChatCell.timestamp);
    chatCell(w, repeat, 25, row, column.closed_at, ChatCell.timestamp);
    chatCell(w, repeat, 26, row, column.duration_seconds, ChatCell.duration);
  }
  w.endRow();
}

const enum ChatCell {
  id,
  text,
  timestamp,
  duration,
}

/** Cell `cell` of a chat column `c`: the chat's previous row's cell when `repeat`, else formatted and kept. */
function chatCell(w: XlsxRowWriter, repeat: boolean, cell: number, row: CopyTextRow, c: number, kind: ChatCell): void {
  if (repeat && w.repeatCell(cell)) return;
  const mark = w.cellMark();
  if (kind === ChatCell.id) xlsxIdValue(w, cell, row, c);
  else if (kind === ChatCell.text) xlsxSharedTextValue(w, cell, row, c);
  else if (kind === ChatCell.timestamp) xlsxTimestampValue(w, cell, row, c);
  else xlsxDurationValue(w, cell, row, c);
  w.keepCell(cell, mark);
}

function xlsxDurationValue(w: XlsxRowWriter, cell: number, row: CopyTextRow, c: number): void {
  if (row.isNull(c)) return;
  w.startText(cell, 11);
  if (!appendDurationBytes(w.out, row.src, row.starts[c]!, row.ends[c]!)) w.out.string(formatDurationText(row.text(c)));
  w.endText();
}
