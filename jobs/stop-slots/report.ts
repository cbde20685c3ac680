/**
 * The stop-slots report as pure functions: where a bot's dialogs stopped (the slot of each
 * dialog's last bot message), ordered and written as CSV under the same rules as the
 * conversation export. No I/O here; the numbers come from `query.ts`.
 */
import { ByteOutput } from '../../transforms/byte-output.js';
import { formatCell, formatHeader, formatRecord, UTF8_BOM, type CsvCellOptions } from '../../transforms/csv.js';
import {
  XlsxRowWriter,
  XlsxStyle,
  xlsxPackageParts,
  xlsxSheetEnd,
  xlsxSheetEntry,
  xlsxSheetNames,
  xlsxSheetStart,
} from '../../transforms/xlsx.js';

/** The dialogs of one bot that stopped on one slot, or on no slot at all (`slotId` null). */
export interface StopSlotGroup {
  /** The slot's id as decimal text (bigint stays exact), or null for dialogs whose last bot message had no slot. */
  readonly slotId: string | null;
  /** The slot's name; null when there is no slot or the slot belongs to another bot. */
  readonly slotName: string | null;
  /** The slot's bot text; null when the slot has none, there is no slot, or it belongs to another bot. */
  readonly slotText: string | null;
  /** How many dialogs stopped here, a positive integer. */
  readonly dialogs: number;
}

/** The report's columns, in order. */
export const STOP_SLOTS_HEADERS = ['Slot ID', 'Slot Name', 'Slot Text', 'Dialogs', 'Share'] as const;

/** What the `Slot Name` cell says for the row of dialogs whose last bot message had no slot. */
export const NO_SLOT_NAME = '(none)';

/** Options of {@link stopSlotsCsv}: the same switches as the conversation export. */
export interface StopSlotsCsvOptions {
  /** Start the file with the UTF-8 byte order mark. */
  readonly bom: boolean;
  /** Prefix `'` to free-text cells a spreadsheet would run as a formula. */
  readonly formulaGuard: boolean;
}

/** A written report. */
export interface StopSlotsCsv {
  /** The whole file, BOM included when asked for. */
  readonly text: string;
  /** Data records written, the header excluded. */
  readonly rows: number;
}

/**
 * `100 * dialogs / total` with exactly two decimals, rounded half up from the exact quotient:
 * 1 of 3 gives `33.33`, 1 of 32 gives `3.13`, 1 of 8 gives `12.50`. The arithmetic is on BigInt,
 * because binary floating point cannot represent most of these quotients and would round
 * `x.xx5` cases either way.
 *
 * @throws TypeError unless `dialogs` and `total` are safe integers with `0 <= dialogs <= total` and `total > 0`.
 */
export function formatShare(dialogs: number, total: number): string {
  if (!Number.isSafeInteger(dialogs) || !Number.isSafeInteger(total)) {
    throw new TypeError(`Share needs integer counts, got ${String(dialogs)} of ${String(total)}`);
  }
  if (total <= 0 || dialogs < 0 || dialogs > total) {
    throw new TypeError(`Share needs 0 <= dialogs <= total and total > 0, got ${dialogs} of ${total}`);
  }
  // Hundredths of a percent: 100 * 100 * dialogs / total, rounded half up on the remainder.
  const numerator = 10_000n * BigInt(dialogs);
  const denominator = BigInt(total);
  let hundredths = numerator / denominator;
  if (2n * (numerator % denominator) >= denominator) hundredths += 1n;
  const whole = hundredths / 100n;
  const fraction = (hundredths % 100n).toString().padStart(2, '0');
  return `${whole}.${fraction}`;
}

/**
 * Orders groups for the report: most dialogs first; equal counts by slot id ascending as
 * integers (ids are bigint, so `9 < 10 < 100`, which string order would get wrong), with the
 * no-slot group after the slot groups it ties with. Returns a new array; the sort is stable.
 *
 * @throws SyntaxError when a slot id is not integer text.
 */
export function orderStopSlotGroups(groups: readonly StopSlotGroup[]): StopSlotGroup[] {
  // Parse each id once rather than in every comparison.
  const keyed = groups.map((group) => ({ group, id: group.slotId === null ? null : BigInt(group.slotId) }));
  keyed.sort((a, b) => {
    if (a.group.dialogs !== b.group.dialogs) return b.group.dialogs - a.group.dialogs;
    if (a.id === null || b.id === null) return a.id === b.id ? 0 : a.id === null ? 1 : -1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  return keyed.map(({ group }) => group);
}

/**
 * Writes one bot's report: header, then one record per group in {@link orderStopSlotGroups}
 * order, shares computed from the sum of the groups' dialogs. No groups give the header only.
 * Slot names and texts are free text (formula guard, line breaks as LF); ids and numbers are not.
 *
 * @throws TypeError when a group's `dialogs` is not a non-negative safe integer, or all are zero.
 */
export function stopSlotsCsv(groups: readonly StopSlotGroup[], options: StopSlotsCsvOptions): StopSlotsCsv {
  const cellOptions: CsvCellOptions = { formulaGuard: options.formulaGuard };
  const total = groups.reduce((sum, group) => sum + group.dialogs, 0);
  const records = orderStopSlotGroups(groups).map((group) =>
    formatRecord([
      formatCell(group.slotId, 'numeric', cellOptions),
      formatCell(group.slotId === null ? NO_SLOT_NAME : group.slotName, 'text', cellOptions),
      formatCell(group.slotId === null ? null : group.slotText, 'text', cellOptions),
      formatCell(String(group.dialogs), 'numeric', cellOptions),
      formatCell(formatShare(group.dialogs, total), 'numeric', cellOptions),
    ]),
  );
  const text = (options.bom ? UTF8_BOM : '') + formatHeader(STOP_SLOTS_HEADERS) + records.join('');
  return { text, rows: records.length };
}

/** The sheet name of a stop-slots workbook. */
export const STOP_SLOTS_SHEET_NAME = 'Stop slots';

/** A written workbook: its zip entries in order, for the project's zip writer. */
export interface StopSlotsXlsx {
  readonly entries: readonly { readonly entry: string; readonly data: Buffer }[];
  /** Data rows written, the header excluded. */
  readonly rows: number;
  /** Cells cut at Excel's 32,767-character limit. */
  readonly truncatedCells: number;
}

/**
 * One bot's report as an XLSX workbook of one sheet: the rows {@link stopSlotsCsv} writes, with
 * `Slot ID` and `Dialogs` as numbers, `Share` as a number shown with two decimals, names and texts
 * as text (never a formula, so no guard). No groups give the header only.
 */
export function stopSlotsXlsx(groups: readonly StopSlotGroup[]): StopSlotsXlsx {
  const total = groups.reduce((sum, group) => sum + group.dialogs, 0);
  const out = new ByteOutput(16 * 1024);
  const writer = new XlsxRowWriter(out, STOP_SLOTS_HEADERS.length);
  const widths = new Int32Array(STOP_SLOTS_HEADERS.length);
  writer.measure = widths;
  writer.startRow(1);
  for (const [index, header] of STOP_SLOTS_HEADERS.entries()) writer.textString(index, header, XlsxStyle.header);
  writer.endRow();
  const ordered = orderStopSlotGroups(groups);
  for (const [index, group] of ordered.entries()) {
    if (!Number.isSafeInteger(group.dialogs) || group.dialogs < 0) {
      throw new TypeError(`Expected \`dialogs\` to be a non-negative safe integer, got ${String(group.dialogs)}`);
    }
    // Widths from the header and the first rows, as for conversations.
    if (index === 100) writer.measure = undefined;
    writer.startRow(index + 2);
    if (group.slotId !== null) {
      const id = Buffer.from(group.slotId, 'utf8');
      writer.integerOrText(0, id, 0, id.length);
    }
    writer.textString(1, group.slotId === null ? NO_SLOT_NAME : group.slotName);
    writer.textString(2, group.slotId === null ? null : group.slotText);
    const dialogs = Buffer.from(String(group.dialogs));
    writer.number(3, dialogs, 0, dialogs.length);
    const share = Buffer.from(formatShare(group.dialogs, total));
    writer.number(4, share, 0, share.length, XlsxStyle.twoDecimals);
    writer.endRow();
  }
  out.string(xlsxSheetEnd(STOP_SLOTS_HEADERS.length, ordered.length + 1));
  const sheet = Buffer.concat([Buffer.from(xlsxSheetStart(Array.from(widths)), 'utf8'), ...out.take()]);
  const entries = [
    ...xlsxPackageParts(xlsxSheetNames(STOP_SLOTS_SHEET_NAME, 1)).map(({ entry, text }) => ({ entry, data: Buffer.from(text, 'utf8') })),
    { entry: xlsxSheetEntry(0), data: sheet },
  ];
  return { entries, rows: ordered.length, truncatedCells: writer.truncatedCells };
}
