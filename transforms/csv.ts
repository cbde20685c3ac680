/**
 * The CSV rules every report shares, as pure functions: RFC 4180 quoting with CRLF record ends,
 * line breaks inside cells normalised to LF, and a guard against formula injection.
 */

/** How a cell's value is treated by {@link formatCell}. */
export type CellKind =
  /** Identifiers and counts: written as they are. */
  | 'numeric'
  /** Values this program produced (timestamps, durations, booleans): written as they are, quoted if needed. */
  | 'generated'
  /** Free text from users or the database: line breaks normalised and guarded against formulas. */
  | 'text'
  /** Phone numbers: left alone when they look like one, otherwise treated as free text. */
  | 'phone';

/** Options of {@link formatCell}, resolved. */
export interface CsvCellOptions {
  /** Prefix a `'` to free-text cells that a spreadsheet would run as a formula. */
  readonly formulaGuard: boolean;
}

/** A record separator; every record, the last included, ends with it. */
export const RECORD_END = '\r\n';

/** The UTF-8 byte order mark that makes spreadsheets read the file as UTF-8. */
export const UTF8_BOM = '\uFEFF';

const PLAIN_PHONE_NUMBER = /^\+?[0-9]([0-9 ().-]*[0-9])?$/;
const NEEDS_QUOTES = /[",\r\n]|^ | $/;
const CARRIAGE_RETURNS = /\r\n?/g;

/** Turns CRLF and lone CR into LF: spreadsheets show a CR inside a cell as a box. */
export function normalizeLineBreaks(value: string): string {
  return value.includes('\r') ? value.replace(CARRIAGE_RETURNS, '\n') : value;
}

/** True when a spreadsheet could read the value as a formula: it starts with `=`, `+`, `-`, `@`, TAB, CR or LF. */
export function startsLikeFormula(value: string): boolean {
  switch (value.charCodeAt(0)) {
    case 0x3d: // =
    case 0x2b: // +
    case 0x2d: // -
    case 0x40: // @
    case 0x09: // TAB
    case 0x0d: // CR
    case 0x0a: // LF
      return true;
    default:
      return false;
  }
}

/** True for values such as `+57 300 123 4567` or `(601) 555-0100`, which the formula guard leaves alone. */
export function isPlainPhoneNumber(value: string): boolean {
  return PLAIN_PHONE_NUMBER.test(value);
}

/** Quotes a field when it holds a comma, a double quote, CR or LF, or starts or ends with a space. */
export function quoteField(value: string): string {
  if (!NEEDS_QUOTES.test(value)) return value;
  return `"${value.includes('"') ? value.replaceAll('"', '""') : value}"`;
}

/** Formats one cell; `null` (SQL NULL) and the empty string both give an empty field. */
export function formatCell(value: string | null, kind: CellKind, options: CsvCellOptions): string {
  if (value === null || value.length === 0) return '';
  switch (kind) {
    case 'numeric':
    case 'generated':
      return quoteField(value);
    case 'phone':
      if (isPlainPhoneNumber(value)) return value;
      return formatText(value, options);
    case 'text':
      return formatText(value, options);
  }
}

function formatText(value: string, options: CsvCellOptions): string {
  const normalized = normalizeLineBreaks(value);
  return quoteField(options.formulaGuard && startsLikeFormula(normalized) ? `'${normalized}` : normalized);
}

/** Joins already formatted cells into one record, CRLF included. */
export function formatRecord(cells: readonly string[]): string {
  return cells.join(',') + RECORD_END;
}

/** The header record: header names are ours, so they only need quoting, never guarding. */
export function formatHeader(names: readonly string[]): string {
  return formatRecord(names.map(quoteField));
}
